//! One-sample Kolmogorov–Smirnov test against an analytic CDF (Kolmogorov 1933), with the
//! asymptotic p-value and Stephens' (1970) small-sample correction. Used by the distribution
//! tests of the device models.

/// D statistic of `sample` (any order) against `cdf`. Ties are grouped and compared with the
/// CDF's left limit, so distributions with atoms (rectified conductances) are handled exactly.
pub fn ks_statistic(sample: &[f64], cdf: impl Fn(f64) -> f64) -> f64 {
    let mut s: Vec<f64> = sample.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len() as f64;
    let mut d = 0.0f64;
    let mut i = 0;
    while i < s.len() {
        let x = s[i];
        let mut j = i;
        while j + 1 < s.len() && s[j + 1] == x {
            j += 1;
        }
        d = d.max((j as f64 + 1.0) / n - cdf(x)).max(cdf(x.next_down()) - i as f64 / n);
        i = j + 1;
    }
    d
}

/// P(D_n >= d) under the null: Q_KS((√n + 0.12 + 0.11/√n)·d), Q_KS(λ) = 2 Σ (−1)^{k−1} e^{−2k²λ²}.
pub fn ks_p_value(d: f64, n: usize) -> f64 {
    let sn = (n as f64).sqrt();
    let lambda = (sn + 0.12 + 0.11 / sn) * d;
    if lambda < 0.2 {
        return 1.0;
    }
    let mut sum = 0.0;
    for k in 1..=100 {
        let k = k as f64;
        let term = (-2.0 * k * k * lambda * lambda).exp();
        sum += if k as u64 % 2 == 1 { term } else { -term };
        if term < 1e-16 {
            break;
        }
    }
    (2.0 * sum).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_grid_has_tiny_d_and_shifted_is_rejected() {
        let s: Vec<f64> = (0..1000).map(|i| (i as f64 + 0.5) / 1000.0).collect();
        let d = ks_statistic(&s, |x| x.clamp(0.0, 1.0));
        assert!(d <= 0.0005 + 1e-12, "{d}");
        assert!(ks_p_value(d, 1000) > 0.99);
        let d2 = ks_statistic(&s, |x| (x * 0.9).clamp(0.0, 1.0));
        assert!(ks_p_value(d2, 1000) < 1e-6);
        // Tabulated: the 5 % critical value of λ is 1.3581.
        let p = ks_p_value(1.3581 / (1000f64.sqrt() + 0.12 + 0.11 / 1000f64.sqrt()), 1000);
        assert!((p - 0.05).abs() < 1e-3, "{p}");
    }
}
