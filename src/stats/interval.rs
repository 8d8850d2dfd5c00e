//! Confidence intervals and sample-size planning.
//!
//! - Binomial proportions: Wilson (1927) score interval, which keeps good
//!   coverage near 0 and 1 where the Wald interval collapses, and the
//!   Clopper & Pearson (1934) exact interval from beta quantiles, which never
//!   under-covers and is the conservative choice for rare events.
//! - Means of Monte Carlo replicates: Student (1908) t interval.
//! - Difference between a reference value and a replicate mean (accuracy
//!   drop = baseline - mean noisy accuracy): t interval with Welch (1947) –
//!   Satterthwaite (1946) degrees of freedom, the reference treated as normal
//!   with known standard error (infinite degrees of freedom).
//! - Trials needed for a target half-width: normal approximation
//!   n = ceil((z std / half_width)^2).
//! - Quantiles (the 5th percentile over trials): distribution-free order-statistic bounds from
//!   the binomial (Conover 1999, §3.2).
//!
//! Distribution quantiles come from statrs (`Beta`, `StudentsT`, `Normal`).

use serde::{Deserialize, Serialize};
use statrs::distribution::{Beta, Continuous, ContinuousCDF, DiscreteCDF, Normal, StudentsT};

use super::{check_confidence, Moments, StatsError};

/// A two-sided confidence interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub lo: f64,
    pub hi: f64,
    /// Nominal coverage, e.g. 0.95.
    pub confidence: f64,
    /// Which construction produced it, so result files are self-describing.
    pub method: String,
}

impl Interval {
    /// Half the interval's width.
    pub fn half_width(&self) -> f64 {
        0.5 * (self.hi - self.lo)
    }

    /// Whether `x` lies in the closed interval.
    pub fn contains(&self, x: f64) -> bool {
        self.lo <= x && x <= self.hi
    }
}

/// Two-sided standard normal critical value z_{1 - alpha/2}.
fn z_critical(confidence: f64) -> f64 {
    let alpha = 1.0 - confidence;
    // Normal::new(0, 1) cannot fail; the fallback only avoids an unwrap.
    Normal::new(0.0, 1.0).map(|n| n.inverse_cdf(1.0 - alpha / 2.0)).unwrap_or(f64::NAN)
}

/// Two-sided Student t critical value t_{1 - alpha/2, df}. Infinite df is the
/// normal limit, which statrs' StudentsT does not accept as a parameter.
///
/// statrs inverts the t CDF through the inverse regularised incomplete beta, which is slow: up to
/// about a second per call at the small real df of a two-trial Welch interval, and a sweep asks
/// once per point and pair. Integer df (every interval over n trials) are computed once per thread
/// and kept, so those values are the same bits as before. Real (Welch–Satterthwaite) df, which
/// rarely repeat, are solved by [`t_quantile_between`] inside the normal–Cauchy bracket.
fn t_critical(confidence: f64, df: f64) -> f64 {
    if df.is_infinite() {
        return z_critical(confidence);
    }
    let compute = || {
        let alpha = 1.0 - confidence;
        StudentsT::new(0.0, 1.0, df).map(|t| t.inverse_cdf(1.0 - alpha / 2.0)).unwrap_or(f64::NAN)
    };
    if df.fract() != 0.0 {
        // df ≤ 1 (or NaN): statrs directly.
        if df.partial_cmp(&1.0) != Some(std::cmp::Ordering::Greater) {
            return compute();
        }
        // For df ≥ 1 the upper quantile lies between the normal's and the Cauchy's (df = 1,
        // closed form tan(π (p − ½))), both exact and fast.
        let p = 1.0 - (1.0 - confidence) / 2.0;
        let (a, b) = (z_critical(confidence), (std::f64::consts::PI * (p - 0.5)).tan());
        return t_quantile_between(p, df, a, b).unwrap_or_else(compute);
    }
    thread_local! {
        static T_CRITICAL: std::cell::RefCell<std::collections::HashMap<(u64, u64), f64>> = Default::default();
    }
    T_CRITICAL.with(|table| *table.borrow_mut().entry((confidence.to_bits(), df.to_bits())).or_insert_with(compute))
}

/// The `p`-quantile (p > ½) of Student t with real `df`, given a bracket `lo ≤ t ≤ hi` (the
/// upper quantile falls as df grows): Newton steps on statrs' CDF (the regularised incomplete beta, fast and accurate to a few ulps), kept inside the
/// bracket by bisection, to a relative step of 4 ε. `None` for a bracket that is not one.
fn t_quantile_between(p: f64, df: f64, lo: f64, hi: f64) -> Option<f64> {
    let t = StudentsT::new(0.0, 1.0, df).ok()?;
    let (mut a, mut b) = (lo, hi);
    if !(a.is_finite() && b.is_finite() && a <= b) {
        return None;
    }
    // At very large df the quantile is z to within the CDF's rounding, which can put cdf(z) a
    // hair above p: the bracket's end is then the answer.
    if t.cdf(a) >= p {
        return Some(a);
    }
    if t.cdf(b) <= p {
        return Some(b);
    }
    // Start from the first Cornish–Fisher term, z + (z³ + z) / (4 df), inside the bracket.
    let mut x = (a + (a * a * a + a) / (4.0 * df)).clamp(a, b);
    for _ in 0..200 {
        let f = t.cdf(x) - p;
        if f == 0.0 {
            return Some(x);
        }
        if f < 0.0 {
            a = x;
        } else {
            b = x;
        }
        let mut next = x - f / t.pdf(x);
        if !(next > a && next < b) {
            next = 0.5 * (a + b);
        }
        if (next - x).abs() <= T_QUANTILE_STEP * x.abs() {
            return Some(next);
        }
        x = next;
    }
    Some(x)
}

/// Relative step at which the t quantile's Newton iteration stops: a few ulps, the CDF's own
/// accuracy, so further steps only chase rounding.
const T_QUANTILE_STEP: f64 = 4.0 * f64::EPSILON;

fn check_counts(successes: u64, trials: u64) -> Result<(), StatsError> {
    if trials == 0 {
        return Err(StatsError::ZeroTrials);
    }
    if successes > trials {
        return Err(StatsError::SuccessesExceedTrials { successes, trials });
    }
    Ok(())
}

/// Wilson (1927) score interval for a binomial proportion.
pub fn wilson(successes: u64, trials: u64, confidence: f64) -> Result<Interval, StatsError> {
    check_counts(successes, trials)?;
    check_confidence(confidence)?;
    let n = trials as f64;
    let p = successes as f64 / n;
    let z = z_critical(confidence);
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denom;
    let half = z / denom * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    // At x = 0 and x = n the bound is exactly 0 or 1 analytically; pin it so
    // rounding cannot produce -1e-17 or a bound that excludes p.
    let lo = if successes == 0 { 0.0 } else { (center - half).max(0.0) };
    let hi = if successes == trials { 1.0 } else { (center + half).min(1.0) };
    Ok(Interval { lo, hi, confidence, method: "wilson".to_string() })
}

/// Clopper & Pearson (1934) exact interval:
/// lo = Beta(x, n - x + 1) quantile at alpha/2,
/// hi = Beta(x + 1, n - x) quantile at 1 - alpha/2,
/// with lo = 0 when x = 0 and hi = 1 when x = n (the beta is undefined there
/// and the one-sided bound is the exact edge).
pub fn clopper_pearson(successes: u64, trials: u64, confidence: f64) -> Result<Interval, StatsError> {
    check_counts(successes, trials)?;
    check_confidence(confidence)?;
    let alpha = 1.0 - confidence;
    let x = successes as f64;
    let n = trials as f64;
    let lo = if successes == 0 { 0.0 } else { Beta::new(x, n - x + 1.0).map(|b| b.inverse_cdf(alpha / 2.0)).unwrap_or(f64::NAN) };
    let hi = if successes == trials { 1.0 } else { Beta::new(x + 1.0, n - x).map(|b| b.inverse_cdf(1.0 - alpha / 2.0)).unwrap_or(f64::NAN) };
    Ok(Interval { lo, hi, confidence, method: "clopper-pearson".to_string() })
}

/// Student t interval for the mean of the values in `moments`:
/// mean ± t_{1 - alpha/2, n - 1} · sem.
///
/// With a single value there is no spread estimate, so the interval is the
/// point lo = hi = mean; callers that need coverage must run more trials.
/// Errors on an empty accumulator (its mean is a placeholder, not data).
pub fn mean_t(moments: &Moments, confidence: f64) -> Result<Interval, StatsError> {
    check_confidence(confidence)?;
    if moments.n == 0 {
        return Err(StatsError::EmptySample);
    }
    let method = "student-t".to_string();
    let mean = moments.mean;
    if moments.n < 2 {
        return Ok(Interval { lo: mean, hi: mean, confidence, method });
    }
    let half = t_critical(confidence, (moments.n - 1) as f64) * moments.sem();
    Ok(Interval { lo: mean - half, hi: mean + half, confidence, method })
}

/// Interval for `b_value - a.mean`, e.g. the accuracy drop of noisy
/// replicates `a` against a clean baseline `b_value`.
///
/// `b_sem` is the baseline's own standard error (0 for a value taken as
/// exact; for a test-set accuracy p on m examples, sqrt(p (1 - p) / m)).
/// The standard error is sqrt(a.sem² + b_sem²) and the degrees of freedom
/// follow Welch–Satterthwaite with the baseline's taken as infinite:
/// df = se⁴ / (a.sem⁴ / (n - 1)). With b_sem = 0 this is exactly the
/// t interval of `mean_t` reflected around `b_value`.
///
/// Degenerate cases: with fewer than two replicates `a` contributes no
/// spread, so only the baseline term remains (normal quantile); with no
/// spread at all the interval is the point difference.
pub fn difference_of_means_t(a: &Moments, b_value: f64, b_sem: f64, confidence: f64) -> Result<Interval, StatsError> {
    check_confidence(confidence)?;
    if a.n == 0 {
        return Err(StatsError::EmptySample);
    }
    if !(b_sem.is_finite() && b_sem >= 0.0) {
        return Err(StatsError::InvalidSem(b_sem));
    }
    // With an exact reference this is Student's t over the replicates; Welch's only with the
    // reference's own spread.
    let method = if b_sem == 0.0 { "student-t (reference exact)" } else { "welch-t" }.to_string();
    let diff = b_value - a.mean;
    let va = a.sem().powi(2);
    let vb = b_sem * b_sem;
    let var = va + vb;
    if var == 0.0 {
        return Ok(Interval { lo: diff, hi: diff, confidence, method });
    }
    let df = if a.n < 2 || va == 0.0 { f64::INFINITY } else { var * var / (va * va / (a.n - 1) as f64) };
    let half = t_critical(confidence, df) * var.sqrt();
    Ok(Interval { lo: diff - half, hi: diff + half, confidence, method })
}

/// Welch's (1947) interval for mean(b) − mean(a) of two independent samples: se² = s_a²/n_a +
/// s_b²/n_b, Welch–Satterthwaite degrees of freedom from both (a sample of one contributes no
/// spread and no degrees of freedom).
pub fn welch_t(a: &Moments, b: &Moments, confidence: f64) -> Result<Interval, StatsError> {
    check_confidence(confidence)?;
    if a.n == 0 || b.n == 0 {
        return Err(StatsError::EmptySample);
    }
    let method = "welch-t (two samples)".to_string();
    let diff = b.mean - a.mean;
    let (va, vb) = (a.sem().powi(2), b.sem().powi(2));
    let var = va + vb;
    if var == 0.0 {
        return Ok(Interval { lo: diff, hi: diff, confidence, method });
    }
    let term = |v: f64, n: u64| if n < 2 || v == 0.0 { 0.0 } else { v * v / (n - 1) as f64 };
    let denom = term(va, a.n) + term(vb, b.n);
    let df = if denom == 0.0 { f64::INFINITY } else { var * var / denom };
    let half = t_critical(confidence, df) * var.sqrt();
    Ok(Interval { lo: diff - half, hi: diff + half, confidence, method })
}

/// Trials needed so a normal-approximation interval for a mean with standard
/// deviation `std` has at most `half_width`: n = ceil((z std / half_width)²),
/// at least 2 so that a spread can be estimated at all.
///
/// `std` usually comes from a short pilot run; the t quantile would need n
/// itself, and the normal value is the standard planning approximation.
pub fn trials_needed(std: f64, half_width: f64, confidence: f64) -> Result<u64, StatsError> {
    check_confidence(confidence)?;
    if !(half_width.is_finite() && half_width > 0.0) {
        return Err(StatsError::NonPositiveHalfWidth(half_width));
    }
    if !(std.is_finite() && std >= 0.0) {
        return Err(StatsError::InvalidStd(std));
    }
    let ratio = z_critical(confidence) * std / half_width;
    // `as u64` saturates, so an absurd ratio reports u64::MAX, not garbage.
    Ok(((ratio * ratio).ceil() as u64).max(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Published tables give 4-6 significant digits; 1e-4 absorbs their
    /// rounding while still catching a wrong alpha or swapped beta shape.
    const TABLE_TOL: f64 = 1e-4;
    /// t_{0.975,9} = 2.262157 is quoted to 7 digits; times sem ~0.96 the
    /// rounding is below 1e-6.
    const T_TOL: f64 = 2e-6;

    fn assert_interval(iv: &Interval, lo: f64, hi: f64, tol: f64) {
        assert!((iv.lo - lo).abs() <= tol && (iv.hi - hi).abs() <= tol, "{} got [{}, {}], want [{lo}, {hi}]", iv.method, iv.lo, iv.hi);
    }

    /// Newcombe (1998), "Two-sided confidence intervals for the single proportion", Stat. Med. 17,
    /// 857-872, Table I (95 %): the examples 81/263, 15/148, 0/20 and 1/29, method 1 (Wilson score,
    /// no continuity correction) and method 5 (Clopper-Pearson exact). Reproduced to 6 digits with
    /// scipy 1.17 (`norm.ppf`, `beta.ppf`), which the 4-digit table rounds to.
    const NEWCOMBE_TABLE_I: [(u64, u64, [f64; 2], [f64; 2]); 4] = [
        (81, 263, [0.255289, 0.366210], [0.252737, 0.367622]),
        (15, 148, [0.062386, 0.160487], [0.057844, 0.161650]),
        (0, 20, [0.0, 0.161125], [0.0, 0.168433]),
        (1, 29, [0.006113, 0.171755], [0.000873, 0.177644]),
    ];

    #[test]
    fn newcombe_table_i() {
        for (x, n, w, cp) in NEWCOMBE_TABLE_I {
            assert_interval(&wilson(x, n, 0.95).unwrap(), w[0], w[1], TABLE_TOL);
            assert_interval(&clopper_pearson(x, n, 0.95).unwrap(), cp[0], cp[1], TABLE_TOL);
        }
    }

    #[test]
    fn clopper_pearson_published_values() {
        let cases = [(0, 10, 0.0, 0.30850), (5, 10, 0.18709, 0.81291), (10, 10, 0.69150, 1.0), (1, 20, 0.001265, 0.248733)];
        for (x, n, lo, hi) in cases {
            let iv = clopper_pearson(x, n, 0.95).unwrap();
            assert_interval(&iv, lo, hi, TABLE_TOL);
        }
        // The edges are exact, not merely close.
        assert_eq!(clopper_pearson(0, 10, 0.95).unwrap().lo, 0.0);
        assert_eq!(clopper_pearson(10, 10, 0.95).unwrap().hi, 1.0);
    }

    #[test]
    fn wilson_known_values() {
        assert_interval(&wilson(5, 10, 0.95).unwrap(), 0.2366, 0.7634, TABLE_TOL);
        let iv = wilson(0, 10, 0.95).unwrap();
        assert_interval(&iv, 0.0, 0.2775, TABLE_TOL);
        assert_eq!(iv.lo, 0.0);
        assert_eq!(wilson(10, 10, 0.95).unwrap().hi, 1.0);
    }

    #[test]
    fn wilson_is_narrower_than_clopper_pearson() {
        // Clopper-Pearson is conservative by construction; Wilson should sit
        // inside it for a mid-range proportion.
        let w = wilson(37, 120, 0.95).unwrap();
        let cp = clopper_pearson(37, 120, 0.95).unwrap();
        assert!(cp.lo < w.lo && w.hi < cp.hi, "{w:?} vs {cp:?}");
    }

    #[test]
    fn mean_t_hand_value() {
        // 1..=10: mean 5.5, variance 55/6, sem = sqrt(55/6 / 10).
        let m: Moments = (1..=10).map(f64::from).collect();
        let half = 2.262157 * (55.0f64 / 6.0 / 10.0).sqrt();
        let iv = mean_t(&m, 0.95).unwrap();
        assert_interval(&iv, 5.5 - half, 5.5 + half, T_TOL);
        assert_eq!(iv.method, "student-t");
    }

    #[test]
    fn mean_t_single_value_is_a_point() {
        let mut m = Moments::new();
        m.push(0.87);
        let iv = mean_t(&m, 0.95).unwrap();
        assert_eq!((iv.lo, iv.hi), (0.87, 0.87));
    }

    #[test]
    fn difference_with_exact_baseline_reflects_mean_t() {
        let m: Moments = (1..=10).map(|i| 0.80 + 0.01 * f64::from(i)).collect();
        let baseline = 0.92;
        let t = mean_t(&m, 0.95).unwrap();
        let d = difference_of_means_t(&m, baseline, 0.0, 0.95).unwrap();
        // Same construction reflected, so only rounding differs.
        let tol = 1e-12;
        assert_interval(&d, baseline - t.hi, baseline - t.lo, tol);
    }

    #[test]
    fn difference_widens_with_baseline_uncertainty() {
        let m: Moments = (1..=10).map(f64::from).collect();
        let exact = difference_of_means_t(&m, 8.0, 0.0, 0.95).unwrap();
        let noisy = difference_of_means_t(&m, 8.0, 0.5, 0.95).unwrap();
        assert!(noisy.half_width() > exact.half_width());
        // Welch df (about 14.6 here) lies between 9 and infinity, so the
        // half-width lies between the normal and the t_9 constructions.
        let se = (m.sem().powi(2) + 0.25).sqrt();
        let z = z_critical(0.95);
        assert!(z * se < noisy.half_width() && noisy.half_width() < 2.262157 * se);
        assert!(noisy.contains(8.0 - 5.5));
    }

    #[test]
    fn difference_degenerate_cases() {
        let mut one = Moments::new();
        one.push(0.9);
        let point = difference_of_means_t(&one, 0.95, 0.0, 0.95).unwrap();
        assert_eq!(point.lo, point.hi);
        let normal = difference_of_means_t(&one, 0.95, 0.01, 0.95).unwrap();
        // Only the baseline term remains, at the normal quantile.
        let tol = 1e-12;
        assert!((normal.half_width() - z_critical(0.95) * 0.01).abs() < tol);
    }

    #[test]
    fn real_df_quantile_matches_statrs() {
        // The bracketed Newton solve against statrs' own inversion, at Welch-like real df;
        // 1e-9 relative is far below any interval's rounding in the report and results.
        for df in [1.37, 2.5, 7.91, 30.2, 151.6] {
            let fast = t_critical(0.95, df);
            let slow = StudentsT::new(0.0, 1.0, df).unwrap().inverse_cdf(0.975);
            assert!((fast - slow).abs() <= 1e-9 * slow, "df {df}: {fast} vs statrs {slow}");
        }
    }

    #[test]
    fn trials_needed_textbook_value() {
        // (1.959964 * 0.01 / 0.001)^2 = 384.15 -> 385, the classic figure.
        assert_eq!(trials_needed(0.01, 0.001, 0.95).unwrap(), 385);
        assert_eq!(trials_needed(0.0, 0.001, 0.95).unwrap(), 2);
        assert_eq!(trials_needed(1e-9, 1.0, 0.95).unwrap(), 2);
    }

    #[test]
    fn invalid_arguments_are_errors() {
        assert_eq!(wilson(0, 0, 0.95), Err(StatsError::ZeroTrials));
        assert_eq!(clopper_pearson(0, 0, 0.95), Err(StatsError::ZeroTrials));
        assert_eq!(wilson(11, 10, 0.95), Err(StatsError::SuccessesExceedTrials { successes: 11, trials: 10 }));
        assert_eq!(clopper_pearson(11, 10, 0.95), Err(StatsError::SuccessesExceedTrials { successes: 11, trials: 10 }));
        for c in [0.0, 1.0, 95.0, -0.5] {
            assert_eq!(wilson(1, 2, c), Err(StatsError::InvalidConfidence(c)));
            assert_eq!(clopper_pearson(1, 2, c), Err(StatsError::InvalidConfidence(c)));
            assert_eq!(trials_needed(1.0, 0.1, c), Err(StatsError::InvalidConfidence(c)));
        }
        assert!(matches!(wilson(1, 2, f64::NAN), Err(StatsError::InvalidConfidence(_))));
        for hw in [0.0, -0.1] {
            assert_eq!(trials_needed(1.0, hw, 0.95), Err(StatsError::NonPositiveHalfWidth(hw)));
        }
        assert!(matches!(trials_needed(1.0, f64::NAN, 0.95), Err(StatsError::NonPositiveHalfWidth(_))));
        assert_eq!(trials_needed(-1.0, 0.1, 0.95), Err(StatsError::InvalidStd(-1.0)));
        let m: Moments = [1.0, 2.0].into_iter().collect();
        assert_eq!(mean_t(&m, 1.0), Err(StatsError::InvalidConfidence(1.0)));
        assert_eq!(mean_t(&Moments::new(), 0.95), Err(StatsError::EmptySample));
        assert_eq!(difference_of_means_t(&Moments::new(), 0.9, 0.0, 0.95), Err(StatsError::EmptySample));
        assert_eq!(difference_of_means_t(&m, 0.9, -0.01, 0.95), Err(StatsError::InvalidSem(-0.01)));
    }

    #[test]
    fn interval_round_trips_through_json() {
        let iv = clopper_pearson(3, 40, 0.9).unwrap();
        let back: Interval = serde_json::from_str(&serde_json::to_string(&iv).unwrap()).unwrap();
        // serde_json's default float parser is not guaranteed correctly
        // rounded, so allow a few ulps on the bounds.
        let ulps = 1e-15;
        assert!((back.lo - iv.lo).abs() <= ulps && (back.hi - iv.hi).abs() <= ulps);
        assert_eq!((back.confidence, back.method), (iv.confidence, iv.method));
    }
}

/// Wilson interval for a proportion `p` observed on `n` items (a fractional count allowed): the
/// test-set sampling uncertainty of a mean accuracy `p` measured on `n` test images (how far the
/// accuracy on another test set of the same size and distribution could lie).
pub fn wilson_proportion(p: f64, n: u64, confidence: f64) -> Result<Interval, StatsError> {
    check_confidence(confidence)?;
    if n == 0 {
        return Err(StatsError::EmptySample);
    }
    let p = p.clamp(0.0, 1.0);
    let nf = n as f64;
    let z = z_critical(confidence);
    let z2 = z * z;
    let denom = 1.0 + z2 / nf;
    let center = (p + z2 / (2.0 * nf)) / denom;
    let half = z / denom * (p * (1.0 - p) / nf + z2 / (4.0 * nf * nf)).sqrt();
    Ok(Interval { lo: (center - half).max(0.0), hi: (center + half).min(1.0), confidence, method: "wilson (test-set sampling)".to_string() })
}

/// Linearisation (delta-method) variance of a ratio estimator r = Σ_s ℓ_s / Σ_s n_s over S units
/// drawn independently (Cochran, *Sampling Techniques*, 3rd ed., 1977, §6.4):
/// Var(r) ≈ S / (S − 1) · Σ_s (ℓ_s − r n_s)² / (Σ_s n_s)². A language model's log perplexity is
/// such a ratio (the summed next-token loss over the predicted tokens): the tokens of a sequence
/// are not independent draws, the sequences are, so the sequence is the unit. None with fewer than
/// two units or nothing counted.
pub fn ratio_variance(totals: &[f64], counts: &[u64]) -> Option<f64> {
    let s = totals.len().min(counts.len());
    let n: u64 = counts[..s].iter().sum();
    if s < 2 || n == 0 {
        return None;
    }
    let r = totals[..s].iter().sum::<f64>() / n as f64;
    let ss: f64 = totals[..s].iter().zip(counts).map(|(&l, &c)| (l - r * c as f64).powi(2)).sum();
    Some(s as f64 / (s - 1) as f64 * ss / (n as f64 * n as f64))
}

/// Test-set sampling interval of a mean over trials of statistics r_t on the same test set, each
/// with a jackknife variance over its rows `variances[t]` (Efron & Stein 1981; a correlation
/// coefficient, which may be negative, so no log): the normal interval mean ± z σ, σ² the trials'
/// mean variance (conservative, as in [`ratio_exp_interval`]), kept within [lo, hi] (the
/// statistic's range).
pub fn jackknife_normal_interval(mean: f64, variances: &[f64], confidence: f64, lo: f64, hi: f64) -> Result<Interval, StatsError> {
    check_confidence(confidence)?;
    if variances.is_empty() {
        return Err(StatsError::EmptySample);
    }
    let half = z_critical(confidence) * (variances.iter().sum::<f64>() / variances.len() as f64).sqrt();
    Ok(Interval { lo: (mean - half).max(lo), hi: (mean + half).min(hi), confidence, method: "jackknife over the rows, normal (test-set sampling)".to_string() })
}

/// Test-set sampling interval of a mean over trials of exp(r_t), each r_t a ratio estimator on the
/// same test set with variance `variances[t]` ([`ratio_variance`]; a mean perplexity): another
/// test set moves every trial's r together, so the interval is the mean scaled by exp(∓ z σ), σ²
/// the trials' mean variance, which bounds the variance of their mean r from above (the variance
/// of a mean of correlated terms is at most the mean of their variances): conservative.
pub fn ratio_exp_interval(mean: f64, variances: &[f64], confidence: f64) -> Result<Interval, StatsError> {
    check_confidence(confidence)?;
    if variances.is_empty() {
        return Err(StatsError::EmptySample);
    }
    let sigma = (variances.iter().sum::<f64>() / variances.len() as f64).sqrt();
    let k = (z_critical(confidence) * sigma).exp();
    Ok(Interval { lo: mean / k, hi: mean * k, confidence, method: "delta method over sequences (ratio estimator of the log; test-set sampling)".to_string() })
}

/// Distribution-free interval of the `q`-quantile from the sample's order statistics (Conover,
/// *Practical Nonparametric Statistics*, 3rd ed., 1999, §3.2; Hahn & Meeker 1991, §5.2): the
/// count B of draws below the true quantile is Binomial(n, q) whatever the distribution, so
/// [x₍ₗ₎, x₍ᵤ₎] (1-based order statistics) covers it with probability P(l ≤ B < u) ≥
/// `confidence`, with l the largest index with P(B < l) ≤ α/2 and u the smallest with
/// P(B ≥ u) ≤ α/2. Ties (discrete accuracies) only make it more conservative. `None` where the
/// sample is too small for a bound on either side ([`quantile_interval_min_n`]): no number
/// stands in for a bound the sample cannot give. The percentile bootstrap this replaces covered
/// the 5th percentile 40 % of the time at 10 trials and 88 % at 50.
pub fn quantile_order_interval(sample: &[f64], q: f64, confidence: f64) -> Result<Option<Interval>, StatsError> {
    check_confidence(confidence)?;
    if sample.is_empty() {
        return Err(StatsError::EmptySample);
    }
    let n = sample.len() as u64;
    let Some((l, u)) = order_indices(n, q, confidence) else { return Ok(None) };
    let mut sorted = sample.to_vec();
    sorted.sort_by(f64::total_cmp);
    Ok(Some(Interval {
        lo: sorted[l as usize - 1],
        hi: sorted[u as usize - 1],
        confidence,
        method: format!("order statistics x({l}), x({u}) of {n} (binomial, distribution-free)"),
    }))
}

/// The 1-based order statistics (l, u) of [`quantile_order_interval`], by bisection on the
/// binomial CDF (monotone in k), so a sample of 10⁸ trials costs a few dozen CDF evaluations.
fn order_indices(n: u64, q: f64, confidence: f64) -> Option<(u64, u64)> {
    if n == 0 || !(q > 0.0 && q < 1.0) {
        return None;
    }
    let a = (1.0 - confidence) / 2.0;
    let b = statrs::distribution::Binomial::new(q, n).ok()?;
    // P(B < l) = cdf(l − 1) ≤ a: the largest such l in 1..=n (none when P(B = 0) > a).
    if b.cdf(0) > a {
        return None;
    }
    let (mut lo, mut hi) = (1u64, n);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if b.cdf(mid - 1) <= a {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let l = lo;
    // P(B ≥ u) = 1 − cdf(u − 1) = sf(u − 1) ≤ a: the smallest such u in 1..=n (none when
    // P(B = n) > a).
    if b.sf(n - 1) > a {
        return None;
    }
    let (mut lo, mut hi) = (1u64, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if b.sf(mid - 1) <= a {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Some((l, lo))
}

/// The fewest trials for which [`quantile_order_interval`] gives both bounds: (1 − q)ⁿ ≤ α/2 and
/// qⁿ ≤ α/2 (at 95 %, 72 trials for the 5th percentile).
pub fn quantile_interval_min_n(q: f64, confidence: f64) -> u64 {
    let a = (1.0 - confidence) / 2.0;
    let p = q.min(1.0 - q);
    (a.ln() / (1.0 - p).ln()).ceil().max(1.0) as u64
}

#[cfg(test)]
mod tail_tests {
    use super::*;

    /// Against values computed outside this code (not against `wilson`, which shares its formula):
    /// Newcombe (1998) Table I's 81/263 (Wilson 0.2553-0.3662), and a fractional accuracy 0.9134
    /// on 100 test images, Wilson's formula evaluated with scipy 1.17's `norm.ppf(0.975)`.
    #[test]
    fn test_set_interval_published_and_fractional_values() {
        let iv = wilson_proportion(81.0 / 263.0, 263, 0.95).unwrap();
        assert!((iv.lo - 0.255289).abs() < 1e-6 && (iv.hi - 0.366210).abs() < 1e-6, "{iv:?}");
        let iv = wilson_proportion(0.9134, 100, 0.95).unwrap();
        assert!((iv.lo - 0.841892).abs() < 1e-6 && (iv.hi - 0.954321).abs() < 1e-6, "{iv:?}");
    }

    /// Welch's interval by hand: s_a² = 1/3 over 4, s_b² = 2.5 over 5, so se² = 1/12 + 1/2 and
    /// df = se⁴ / ((1/12)²/3 + (1/2)²/4) = 5.25.
    #[test]
    fn welch_two_samples_match_their_definition() {
        let a: Moments = [1.0, 2.0, 2.0, 1.0].into_iter().collect();
        let b: Moments = [3.0, 5.0, 4.0, 6.0, 2.0].into_iter().collect();
        let iv = welch_t(&a, &b, 0.95).unwrap();
        let (va, vb) = (a.sem().powi(2), b.sem().powi(2));
        let df = (va + vb).powi(2) / (va * va / 3.0 + vb * vb / 4.0);
        let half = t_critical(0.95, df) * (va + vb).sqrt();
        assert!((iv.lo - (2.5 - half)).abs() < 1e-12 && (iv.hi - (2.5 + half)).abs() < 1e-12, "{iv:?}");
        assert!((df - 5.25).abs() < 1e-9, "{df}");
    }

    /// The order statistics against binomial sums done outside this code (exact, Python's
    /// `math.comb`): for the median of 20 draws at 95 %, x(6) and x(15) (P(B < 6) = P(B ≥ 15) =
    /// 0.0207, P(B < 7) = 0.0577; coverage 0.9586); for the 5th percentile, none below 72 draws
    /// (P(B = 0) = 0.0262 at 71) and x(1), x(9) at 72 (P(B = 0) = 0.0249, P(B ≥ 9) = 0.0096,
    /// P(B ≥ 8) = 0.0272; coverage 0.9655).
    #[test]
    fn order_statistic_bounds_match_their_binomial_definition() {
        assert_eq!(order_indices(20, 0.5, 0.95), Some((6, 15)));
        assert_eq!(order_indices(71, 0.05, 0.95), None);
        assert_eq!(order_indices(72, 0.05, 0.95), Some((1, 9)));
        assert_eq!(quantile_interval_min_n(0.05, 0.95), 72);
        assert_eq!(quantile_interval_min_n(0.95, 0.95), 72);
        // Huge n: a handful of CDF evaluations, and the bounds straddle n q.
        let (l, u) = order_indices(100_000_000, 0.05, 0.95).unwrap();
        assert!(l < 5_000_000 && u > 5_000_000 && u - l < 10_000, "{l} {u}");
        let sample: Vec<f64> = (0..20).rev().map(f64::from).collect();
        let iv = quantile_order_interval(&sample, 0.5, 0.95).unwrap().unwrap();
        assert_eq!((iv.lo, iv.hi), (5.0, 14.0));
        assert!(quantile_order_interval(&sample[..5], 0.05, 0.95).unwrap().is_none());
    }

    /// Coverage of the 5th percentile's interval on a skewed, accuracy-like distribution
    /// (1 − Exp): 4000 deterministic replicates of 100 draws each. The construction guarantees
    /// ≥ 95 %; the binomial standard error of the estimate is 0.34 points, so 93.5 % is more
    /// than 4 standard errors below the guarantee (far tail, no flake).
    #[test]
    fn order_statistic_interval_covers_the_fifth_percentile() {
        let key = crate::rng::key(7, 0xC0);
        // X = 1 + ln U (U uniform; 1 − Exp(1)): P(X ≤ x) = e^(x − 1), so its 5th percentile is
        // 1 + ln 0.05.
        let q05 = 1.0 + 0.05f64.ln();
        let mut covered = 0;
        let reps = 4000;
        for r in 0..reps {
            let sample: Vec<f64> = (0..100u32)
                .map(|i| {
                    let w = crate::rng::philox4x32_10([i, r, 0, 0], key)[0];
                    let u = (w as f64 + 0.5) / 4294967296.0;
                    1.0 + u.ln()
                })
                .collect();
            if quantile_order_interval(&sample, 0.05, 0.95).unwrap().unwrap().contains(q05) {
                covered += 1;
            }
        }
        assert!(covered as f64 / reps as f64 >= 0.935, "coverage {covered}/{reps}");
    }

    /// Coverage of the ratio estimator's test-set interval on a skewed population of sequences:
    /// lengths 5–50 tokens, a per-sequence difficulty 1.5 + Exp(1) nats per token and a loss of
    /// n·μ + 0.5·√n·N(0, 1), so the population's log perplexity is E μ = 2.5 exactly. 4000
    /// deterministic test sets of 100 sequences. Nominal 95 %; a simulation of this population
    /// gives 93.5 % (the skew at 100 sequences), 98.5 % with the variance doubled and 81 % with it
    /// halved. With binomial standard errors of 0.39, 0.19 and 0.62 points, the bounds
    /// 91.5 % and 97.5 % are at least 5 of them from each: the correct one passes, both wrong ones
    /// fail.
    #[test]
    fn ratio_interval_covers_the_population_perplexity() {
        let key = crate::rng::key(9, 0xD1);
        let (reps, seqs) = (4000u32, 100u32);
        let truth = 2.5f64.exp();
        let mut covered = 0;
        for r in 0..reps {
            let (mut totals, mut counts) = (Vec::new(), Vec::new());
            for s in 0..seqs {
                let w = crate::rng::philox4x32_10([s, r, 1, 0], key);
                let u = |k: usize| (w[k] as f64 + 0.5) / 4294967296.0;
                let n = 5 + (u(0) * 46.0) as u64;
                let mu = 1.5 - u(1).ln();
                let z = crate::rng::normal4_f64(crate::rng::philox4x32_10([s, r, 2, 0], key))[0];
                totals.push(n as f64 * mu + 0.5 * (n as f64).sqrt() * z);
                counts.push(n);
            }
            let est = totals.iter().sum::<f64>() / counts.iter().sum::<u64>() as f64;
            let v = ratio_variance(&totals, &counts).unwrap();
            if ratio_exp_interval(est.exp(), &[v], 0.95).unwrap().contains(truth) {
                covered += 1;
            }
        }
        let c = covered as f64 / reps as f64;
        assert!((0.915..=0.975).contains(&c), "coverage {covered}/{reps}");
    }

    #[test]
    fn ratio_variance_needs_two_units_and_a_count() {
        assert_eq!(ratio_variance(&[3.0], &[2]), None);
        assert_eq!(ratio_variance(&[0.0, 0.0], &[0, 0]), None);
        // Every unit at the same rate: no spread.
        assert_eq!(ratio_variance(&[2.0, 4.0, 6.0], &[1, 2, 3]), Some(0.0));
        assert!(ratio_exp_interval(1.0, &[], 0.95).is_err());
    }
}
