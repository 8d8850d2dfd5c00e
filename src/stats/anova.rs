//! Two-level Monte Carlo: the variance of a per-trial metric split into a between-programming and
//! a within-programming (read-to-read) component, by the balanced one-way random-effects ANOVA
//! (Searle, Casella & McCulloch, "Variance Components", 1992, §3.5–3.6):
//!
//!   y_pr = μ + b_p + e_pr,  b_p ~ N(0, σ_b²) per programming p, e_pr ~ N(0, σ_w²) per read r,
//!   MSB = R Σ_p (ȳ_p − ȳ)² / (P − 1),  MSW = Σ_p Σ_r (y_pr − ȳ_p)² / (P (R − 1)),
//!   σ̂_w² = MSW,  σ̂_b² = max(0, (MSB − MSW) / R),  Var(ȳ) = σ_b²/P + σ_w²/(P R).
//!
//! Intervals: σ_w² exact chi-square, P(R−1)·MSW/σ_w² ~ χ²(P(R−1)); σ_b² by Satterthwaite (1946):
//! σ̂_b² · ν / σ_b² ≈ χ²(ν) with ν = (MSB − MSW)² / (MSB²/(P−1) + MSW²/(P(R−1))) (Searle et al.
//! §3.6d). When MSB ≤ MSW the estimate is 0 and ν is undefined; the interval is then [0, U] with
//! U = (P−1)·MSB / (R·χ²_{α/2}(P−1)), the upper bound of E\[MSB\]/R = σ_b² + σ_w²/R ≥ σ_b²
//! (conservative).

use super::{check_confidence, StatsError};
use serde::{Deserialize, Serialize};
use statrs::distribution::{ChiSquared, ContinuousCDF};

/// The variance split of one sweep point and time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VarianceSplit {
    /// Programmings P and reads per programming R (balanced: P·R trials).
    pub programmings: u32,
    pub reads: u32,
    pub mean: f64,
    pub ms_between: f64,
    pub ms_within: f64,
    /// σ̂_b²: programming-to-programming variance of the metric.
    pub between: f64,
    pub between_ci: super::Interval,
    /// σ̂_w²: read-to-read variance within one programming.
    pub within: f64,
    pub within_ci: super::Interval,
    /// σ̂_b²/P + σ̂_w²/(P R): the variance of the mean over all trials.
    pub var_mean: f64,
    /// Share of `var_mean` from the between-programming term (σ̂_b²/P).
    pub between_share: f64,
}

/// Chi-square quantile; df > 0. statrs' inverse gives NaN for small fractional df (a
/// Satterthwaite ν below 1 with few programmings), so then bisect the CDF in ln x (monotone;
/// 200 halvings of [1e-300, 1e6·max(df, 1)] reach f64 resolution).
fn chi2_q(df: f64, p: f64) -> f64 {
    let d = ChiSquared::new(df).expect("df > 0 checked by the caller");
    let q = d.inverse_cdf(p);
    if q.is_finite() && q >= 0.0 {
        return q;
    }
    let (mut lo, mut hi) = (1e-300f64.ln(), (1e6 * df.max(1.0)).ln());
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if d.cdf(mid.exp()) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (0.5 * (lo + hi)).exp()
}

impl VarianceSplit {
    /// The split of `values` (trial-major, trials `first_trial ..`) into programmings of `reads`
    /// consecutive global trials. None when the trials do not cover at least two whole
    /// programmings and every one of them whole (a shard that cuts a programming: the merged run
    /// has the split), or when `reads` < 2.
    pub fn from_trials(values: &[f64], first_trial: u32, reads: u32, confidence: f64) -> Result<Option<VarianceSplit>, StatsError> {
        check_confidence(confidence)?;
        let r = reads as usize;
        if r < 2 || !(first_trial as usize).is_multiple_of(r) || !values.len().is_multiple_of(r) || values.len() / r < 2 {
            return Ok(None);
        }
        Ok(Some(Self::balanced(values, r, confidence)))
    }

    /// The split of P·R values, programming-major (reads of one programming consecutive).
    pub fn balanced(values: &[f64], reads: usize, confidence: f64) -> VarianceSplit {
        let r = reads as f64;
        let p = values.len() / reads;
        let pf = p as f64;
        let means: Vec<f64> = values.chunks(reads).map(|g| g.iter().sum::<f64>() / r).collect();
        let mean = means.iter().sum::<f64>() / pf;
        let ssb = r * means.iter().map(|m| (m - mean) * (m - mean)).sum::<f64>();
        let ssw: f64 = values.chunks(reads).zip(&means).map(|(g, m)| g.iter().map(|y| (y - m) * (y - m)).sum::<f64>()).sum();
        let (df_b, df_w) = (pf - 1.0, pf * (r - 1.0));
        let (msb, msw) = (ssb / df_b, ssw / df_w);
        let alpha = 1.0 - confidence;
        let within_ci = if msw > 0.0 {
            super::Interval {
                lo: df_w * msw / chi2_q(df_w, 1.0 - alpha / 2.0),
                hi: df_w * msw / chi2_q(df_w, alpha / 2.0),
                confidence,
                method: "chi-square".into(),
            }
        } else {
            super::Interval { lo: 0.0, hi: 0.0, confidence, method: "chi-square (no read-to-read spread)".into() }
        };
        let between = ((msb - msw) / r).max(0.0);
        let between_ci = if between > 0.0 {
            let nu = (msb - msw).powi(2) / (msb * msb / df_b + msw * msw / df_w);
            super::Interval {
                lo: nu * between / chi2_q(nu, 1.0 - alpha / 2.0),
                hi: nu * between / chi2_q(nu, alpha / 2.0),
                confidence,
                method: format!("Satterthwaite (ν = {nu:.1})"),
            }
        } else {
            let hi = if msb > 0.0 { df_b * msb / (r * chi2_q(df_b, alpha / 2.0)) } else { 0.0 };
            super::Interval { lo: 0.0, hi, confidence, method: "MSB ≤ MSW: estimate 0, upper bound from MSB".into() }
        };
        let (vb, vw) = (between / pf, msw / (pf * r));
        let var_mean = vb + vw;
        VarianceSplit {
            programmings: p as u32,
            reads: reads as u32,
            mean,
            ms_between: msb,
            ms_within: msw,
            between,
            between_ci,
            within: msw,
            within_ci,
            var_mean,
            between_share: if var_mean > 0.0 { vb / var_mean } else { 0.0 },
        }
    }

    /// Whether more programmings or more reads would tighten the mean's interval, with numbers:
    /// doubling P halves Var(ȳ) (the interval narrows by 1 − 1/√2 ≈ 29 %); doubling R halves only
    /// the within term; infinitely many reads leave σ_b²/P.
    pub fn advice(&self) -> String {
        let b = self.between_share;
        if self.var_mean <= 0.0 {
            return "The metric did not vary over trials: neither more programmings nor more reads change the mean.".into();
        }
        let double_reads = 100.0 * (1.0 - (b + (1.0 - b) / 2.0).sqrt());
        let many_reads = 100.0 * (1.0 - b.sqrt());
        if b >= 0.5 {
            format!(
                "Programming-to-programming spread makes {:.0} % of the variance of the mean: more programmings tighten its interval (twice as many narrow it by 29 %); more reads per programming narrow it by at most {:.0} % (twice as many: {:.0} %).",
                100.0 * b,
                many_reads,
                double_reads
            )
        } else {
            format!(
                "Read-to-read spread makes {:.0} % of the variance of the mean: more reads per programming tighten its interval almost as well as more programmings (twice the reads narrow it by {:.0} %, twice the programmings by 29 %) without reprogramming; the programming term caps what reads alone can do at {:.0} %.",
                100.0 * (1.0 - b),
                double_reads,
                many_reads
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand computation below is exact in a few operations of f64.
    const HAND_REL_TOL: f64 = 1e-12;

    fn close(a: f64, b: f64, what: &str) {
        assert!((a - b).abs() <= HAND_REL_TOL * b.abs().max(1.0), "{what}: got {a}, by hand {b}");
    }

    /// P = 3 programmings of R = 2 reads: y = [1, 3 | 4, 6 | 7, 11].
    /// Group means 2, 5, 9; grand mean 16/3. SSB = 2·((2 − 16/3)² + (5 − 16/3)² + (9 − 16/3)²)
    /// = 2·(100 + 1 + 121)/9 = 444/9, MSB = 222/9; SSW = 2 + 2 + 8 = 12, MSW = 12/3 = 4.
    /// σ̂_b² = (222/9 − 4)/2 = 93/9, σ̂_w² = 4; Var(ȳ) = (93/9)/3 + 4/6 = MSB/6 = 37/9.
    /// ν = (186/9)² / ((222/9)²/2 + 16/3).
    #[test]
    fn hand_computed_example() {
        let v = VarianceSplit::balanced(&[1.0, 3.0, 4.0, 6.0, 7.0, 11.0], 2, 0.95);
        close(v.mean, 16.0 / 3.0, "mean");
        close(v.ms_between, 222.0 / 9.0, "MSB");
        close(v.ms_within, 4.0, "MSW");
        close(v.between, 93.0 / 9.0, "sigma_b^2");
        close(v.within, 4.0, "sigma_w^2");
        close(v.var_mean, 37.0 / 9.0, "Var(mean)");
        close(v.between_share, (93.0 / 27.0) / (37.0 / 9.0), "between share");
        let nu = (186.0f64 / 9.0).powi(2) / ((222.0f64 / 9.0).powi(2) / 2.0 + 16.0 / 3.0);
        // χ² quantiles for df = 3: 0.2158 (2.5 %) and 9.348 (97.5 %) (standard tables).
        assert!((v.within_ci.lo - 12.0 / 9.348).abs() < 1e-3 && (v.within_ci.hi - 12.0 / 0.2158).abs() < 0.1, "{:?}", v.within_ci);
        let (lo, hi) = (nu * v.between / chi2_q(nu, 0.975), nu * v.between / chi2_q(nu, 0.025));
        close(v.between_ci.lo, lo, "between lo");
        close(v.between_ci.hi, hi, "between hi");
        assert!(v.between_ci.method.contains("1.4"), "ν ≈ 1.38: {}", v.between_ci.method);
    }

    /// χ² quantiles at a fractional df below 1 (a Satterthwaite ν with few programmings) are
    /// finite and invert the CDF.
    #[test]
    fn small_df_quantiles() {
        for df in [0.3, 0.7, 1.5] {
            for p in [0.025, 0.975] {
                let q = chi2_q(df, p);
                let back = ChiSquared::new(df).unwrap().cdf(q);
                assert!(q.is_finite() && (back - p).abs() < 1e-9, "df {df} p {p}: q {q}, cdf(q) {back}");
            }
        }
    }

    #[test]
    fn whole_programmings_only() {
        let y = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert!(VarianceSplit::from_trials(&y, 0, 3, 0.95).unwrap().is_some());
        assert!(VarianceSplit::from_trials(&y, 1, 3, 0.95).unwrap().is_none(), "a shard starting inside a programming");
        assert!(VarianceSplit::from_trials(&y[..5], 0, 3, 0.95).unwrap().is_none());
        assert!(VarianceSplit::from_trials(&y, 0, 1, 0.95).unwrap().is_none());
        let flat = VarianceSplit::balanced(&[2.0, 2.0, 5.0, 5.0], 2, 0.95);
        assert_eq!((flat.within, flat.between_share), (0.0, 1.0));
        assert!(flat.advice().contains("100 %"), "{}", flat.advice());
    }

    /// splitmix64 + Box–Muller: fixed-seed normal draws without a dependency.
    fn normals(seed: u64) -> impl FnMut() -> f64 {
        let mut s = seed;
        move || {
            let mut u = || {
                s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = s;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
            };
            let (u1, u2) = (u().max(1e-300), u());
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        }
    }

    /// Known components σ_b² = 4, σ_w² = 1 (P = 40, R = 5), 400 replications. The within
    /// interval is exact, so its coverage count is Binomial(400, 0.95): mean 380, sd 4.36; the
    /// band 356..=400 is beyond 5 sd below (p < 1e-6), so a correct interval cannot fail it and a
    /// wrong degree of freedom or quantile side does. Satterthwaite's interval is approximate;
    /// with P = 40 its coverage is close to nominal, and below 0.85 it would be wrong.
    /// Fixed seeds, so deterministic.
    #[test]
    fn known_components_are_covered() {
        let (sb2, sw2, p, r, reps) = (4.0f64, 1.0f64, 40usize, 5usize, 400);
        let mut n = normals(20);
        let (mut cover_w, mut cover_b) = (0, 0);
        let (mut sum_b, mut sum_w) = (0.0, 0.0);
        for _ in 0..reps {
            let mut y = Vec::with_capacity(p * r);
            for _ in 0..p {
                let b = sb2.sqrt() * n();
                for _ in 0..r {
                    y.push(10.0 + b + sw2.sqrt() * n());
                }
            }
            let v = VarianceSplit::balanced(&y, r, 0.95);
            cover_w += usize::from(v.within_ci.lo <= sw2 && sw2 <= v.within_ci.hi);
            cover_b += usize::from(v.between_ci.lo <= sb2 && sb2 <= v.between_ci.hi);
            sum_b += v.between;
            sum_w += v.within;
        }
        assert!((356..=400).contains(&cover_w), "within coverage {cover_w}/{reps}");
        assert!(cover_b as f64 >= 0.85 * reps as f64, "between coverage {cover_b}/{reps}");
        // Averages over 400 replications: sd of the mean of σ̂_w² ≈ 1·sqrt(2/160)/20 = 0.0056,
        // of σ̂_b² ≈ 4·sqrt(2/39)/20·1.05 ≈ 0.047; 6 sd bounds.
        assert!((sum_w / reps as f64 - sw2).abs() < 0.034, "mean within {}", sum_w / reps as f64);
        assert!((sum_b / reps as f64 - sb2).abs() < 0.3, "mean between {}", sum_b / reps as f64);
    }
}
