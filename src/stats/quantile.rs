//! Sample quantiles and the per-configuration summary reported for Monte
//! Carlo results.
//!
//! Implements Hyndman & Fan (1996) type 7 quantiles (linear interpolation
//! between order statistics at h = (n - 1) p), the default of numpy
//! (`method="linear"`) and R, so reported percentiles match Python analysis
//! of the same samples. Mean and std come from Welford (1962) via
//! [`Moments`].

use serde::{Deserialize, Serialize};

use super::{Moments, StatsError};

/// Type 7 quantile of an ascending-sorted slice at probability `p`.
///
/// Returns NaN when `sorted` is empty or `p` is outside [0, 1] (or NaN):
/// there is no meaningful value, and NaN makes the misuse visible downstream.
/// The slice is trusted to be sorted; the caller sorted it once for several
/// quantiles instead of paying for it per call.
pub fn quantile_sorted(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    if n == 0 || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    let h = (n - 1) as f64 * p;
    let lo = h.floor() as usize;
    if lo + 1 >= n {
        // p == 1 (or n == 1): the top order statistic, with no interpolation
        // partner to read past the end.
        return sorted[n - 1];
    }
    let frac = h - lo as f64;
    let (a, b) = (sorted[lo], sorted[lo + 1]);
    a + frac * (b - a)
}

/// Location, spread and tail percentiles of a sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub n: u64,
    pub mean: f64,
    /// Sample standard deviation (n - 1); 0 for a single value.
    pub std: f64,
    pub median: f64,
    pub p01: f64,
    pub p05: f64,
    pub p95: f64,
    pub p99: f64,
    pub min: f64,
    pub max: f64,
}

impl Summary {
    /// Summarises `sample` (any order). Errors on an empty sample or one
    /// holding NaN/infinity, since every field would be polluted.
    pub fn from_sample(sample: &[f64]) -> Result<Self, StatsError> {
        if sample.is_empty() {
            return Err(StatsError::EmptySample);
        }
        if let Some((index, &value)) = sample.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            return Err(StatsError::NonFiniteSample { index, value });
        }
        let moments: Moments = sample.iter().copied().collect();
        let mut sorted = sample.to_vec();
        // All values are finite here, so total_cmp is the ordinary order.
        sorted.sort_by(f64::total_cmp);
        let q = |p| quantile_sorted(&sorted, p);
        Ok(Self {
            n: moments.n,
            mean: moments.mean,
            std: moments.std(),
            median: q(0.5),
            p01: q(0.01),
            p05: q(0.05),
            p95: q(0.95),
            p99: q(0.99),
            min: sorted[0],
            max: sorted[sorted.len() - 1],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Interpolation is one multiply-add; only last-place rounding separates
    /// the result from the hand value.
    const TOL: f64 = 1e-12;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= TOL * b.abs().max(1.0)
    }

    #[test]
    fn type7_hand_values() {
        // numpy.percentile([1, 2, 3, 4], [0, 25, 50, 90, 100])
        //   h = 3p: 0 -> 1, 0.75 -> 1.75, 1.5 -> 2.5, 2.7 -> 3.7, 3 -> 4
        let x = [1.0, 2.0, 3.0, 4.0];
        for (p, want) in [(0.0, 1.0), (0.25, 1.75), (0.5, 2.5), (0.9, 3.7), (1.0, 4.0)] {
            let got = quantile_sorted(&x, p);
            assert!(close(got, want), "p={p}: {got} vs {want}");
        }
        // Unequal gaps: h = 2p; 0.2 -> 10 + 0.2*10, 1.5 -> 20 + 0.5*20,
        // 1.98 -> 20 + 0.98*20.
        let y = [10.0, 20.0, 40.0];
        for (p, want) in [(0.1, 12.0), (0.75, 30.0), (0.99, 39.6)] {
            let got = quantile_sorted(&y, p);
            assert!(close(got, want), "p={p}: {got} vs {want}");
        }
    }

    #[test]
    fn single_value_and_bad_inputs() {
        assert_eq!(quantile_sorted(&[7.0], 0.0), 7.0);
        assert_eq!(quantile_sorted(&[7.0], 0.37), 7.0);
        assert_eq!(quantile_sorted(&[7.0], 1.0), 7.0);
        assert!(quantile_sorted(&[], 0.5).is_nan());
        assert!(quantile_sorted(&[1.0, 2.0], -0.01).is_nan());
        assert!(quantile_sorted(&[1.0, 2.0], 1.01).is_nan());
        assert!(quantile_sorted(&[1.0, 2.0], f64::NAN).is_nan());
    }

    #[test]
    fn summary_hand_values() {
        // Sorted: [1, 1, 2, 3, 3, 4, 5, 5, 6, 9], h = 9p.
        //   median h=4.5  -> 3 + 0.5*1   = 3.5
        //   p01    h=0.09 -> 1 + 0.09*0  = 1
        //   p05    h=0.45 -> 1 + 0.45*0  = 1
        //   p95    h=8.55 -> 6 + 0.55*3  = 7.65
        //   p99    h=8.91 -> 6 + 0.91*3  = 8.73
        // mean 39/10, variance (207 - 152.1)/9 = 6.1.
        let s = Summary::from_sample(&[3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0]).unwrap();
        assert_eq!(s.n, 10);
        assert!(close(s.mean, 3.9));
        assert!(close(s.std, 6.1f64.sqrt()));
        assert!(close(s.median, 3.5));
        assert!(close(s.p01, 1.0));
        assert!(close(s.p05, 1.0));
        assert!(close(s.p95, 7.65));
        assert!(close(s.p99, 8.73));
        assert_eq!((s.min, s.max), (1.0, 9.0));
    }

    #[test]
    fn summary_of_one_value_is_nan_free() {
        let s = Summary::from_sample(&[0.91]).unwrap();
        let fields = [s.mean, s.std, s.median, s.p01, s.p05, s.p95, s.p99, s.min, s.max];
        assert!(fields.iter().all(|v| v.is_finite()), "{s:?}");
        assert_eq!(s.std, 0.0);
        assert_eq!(s.median, 0.91);
    }

    #[test]
    fn summary_rejects_empty_and_non_finite() {
        assert_eq!(Summary::from_sample(&[]), Err(StatsError::EmptySample));
        assert!(matches!(Summary::from_sample(&[1.0, f64::NAN]), Err(StatsError::NonFiniteSample { index: 1, .. })));
        assert!(matches!(Summary::from_sample(&[f64::NEG_INFINITY]), Err(StatsError::NonFiniteSample { index: 0, .. })));
    }
}
