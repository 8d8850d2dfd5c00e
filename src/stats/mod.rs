//! Statistics for Monte Carlo noise runs: streaming accumulators that merge
//! exactly across workers, sample summaries, and confidence intervals.
//!
//! Methods and where they come from:
//! - [`Moments`]: Welford (1962) one-pass mean/variance, with the pairwise
//!   combination of Chan, Golub & LeVeque (1979) so per-worker or per-chunk
//!   accumulators merge into the same result as a single pass.
//! - [`Counts`], [`Histogram`]: integer counters, so merging is exact and
//!   order-independent.
//! - [`quantile_sorted`], [`Summary`]: Hyndman & Fan (1996) type 7 sample
//!   quantiles, the default of numpy and R, so numbers match Python tooling.
//! - [`wilson`]: Wilson (1927) score interval for a binomial proportion.
//! - [`clopper_pearson`]: Clopper & Pearson (1934) exact interval via the
//!   beta inverse CDF.
//! - [`mean_t`], [`difference_of_means_t`]: Student t intervals; the
//!   difference uses the Welch (1947) – Satterthwaite (1946) degrees of
//!   freedom with the reference value's own uncertainty treated as normal.
//! - [`welch_t`]: Welch's interval for the difference of two independent samples.
//! - [`quantile_order_interval`]: distribution-free interval of a quantile from order statistics.
//! - [`trials_needed`]: normal-approximation sample size for a target
//!   half-width.
//! - [`VarianceSplit`]: balanced one-way random-effects ANOVA of a two-level Monte Carlo
//!   (programmings × reads), chi-square and Satterthwaite (1946) intervals.
//! - [`ks_statistic`], [`ks_p_value`]: one-sample Kolmogorov–Smirnov test
//!   (device-model distribution tests).
//!
//! Every fallible entry point returns [`StatsError`] instead of panicking, so
//! a bad experiment file surfaces as a message rather than an abort.

pub mod anova;
pub mod counts;
pub mod histogram;
pub mod interval;
pub mod ks;
pub mod moments;
pub mod quantile;

pub use anova::VarianceSplit;
pub use counts::Counts;
pub use histogram::Histogram;
pub use interval::{
    clopper_pearson, difference_of_means_t, jackknife_normal_interval, mean_t, quantile_interval_min_n, quantile_order_interval, ratio_exp_interval,
    ratio_variance, trials_needed, welch_t, wilson, wilson_proportion, Interval,
};
pub use ks::{ks_p_value, ks_statistic};
pub use moments::Moments;
pub use quantile::{quantile_sorted, Summary};

/// Errors from invalid statistical inputs. Each message states the problem
/// and what to change.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    #[error("a proportion needs at least one trial, got 0; run at least one trial before asking for an interval")]
    ZeroTrials,

    #[error("successes ({successes}) exceed trials ({trials}); pass the number of trials that produced those successes")]
    SuccessesExceedTrials { successes: u64, trials: u64 },

    #[error("confidence must lie strictly between 0 and 1, got {0}; use e.g. 0.95 for a 95% interval")]
    InvalidConfidence(f64),

    #[error("half-width must be a finite positive number, got {0}; give the target precision as e.g. 0.005 for ±0.5 points")]
    NonPositiveHalfWidth(f64),

    #[error("standard deviation must be finite and non-negative, got {0}; pass a pilot-run std such as Moments::std()")]
    InvalidStd(f64),

    #[error("standard error must be finite and non-negative, got {0}; pass 0 for an exact reference value")]
    InvalidSem(f64),

    #[error("sample is empty; record at least one value before summarising or forming an interval")]
    EmptySample,

    #[error("paired configurations ran different trial counts ({a} and {b}); pair points of one run with a fixed trial count")]
    UnpairedTrials { a: usize, b: usize },

    #[error("sample contains a non-finite value ({value}) at index {index}; drop or fix failed runs before summarising")]
    NonFiniteSample { index: usize, value: f64 },

    #[error("histogram needs finite lo < hi and at least one bin, got lo={lo}, hi={hi}, bins={bins}; fix the range or bin count")]
    InvalidHistogram { lo: f64, hi: f64, bins: usize },

    #[error("histograms have different edges (lo={lo_a}, hi={hi_a}, bins={bins_a} vs lo={lo_b}, hi={hi_b}, bins={bins_b}); build both with the same Histogram::new arguments before merging")]
    HistogramMismatch { lo_a: f64, hi_a: f64, bins_a: usize, lo_b: f64, hi_b: f64, bins_b: usize },
}

/// Rejects confidence levels outside the open interval (0, 1); NaN fails too
/// because both comparisons are false.
pub(crate) fn check_confidence(confidence: f64) -> Result<(), StatsError> {
    if confidence > 0.0 && confidence < 1.0 {
        Ok(())
    } else {
        Err(StatsError::InvalidConfidence(confidence))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Merged and single-pass moments differ only by reassociated rounding
    /// over ~1000 values; a wrong combination formula would be far off.
    const MERGE_REL_TOL: f64 = 1e-12;

    /// splitmix64 (Steele, Lea & Flood 2014): tiny, fixed-seed, good enough
    /// to make test data without a dependency.
    fn splitmix64(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(state: &mut u64) -> f64 {
        // Top 53 bits -> uniform in [0, 1).
        (splitmix64(state) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn rel_close(a: f64, b: f64) -> bool {
        (a - b).abs() <= MERGE_REL_TOL * a.abs().max(b.abs())
    }

    #[test]
    fn merge_at_every_split_equals_single_pass() {
        const N: usize = 1000;
        let mut state = 0x00C0_FFEE_u64;
        // Accuracy-like values near 0.85 with a spread that also lands some
        // outside the histogram range, exercising under- and overflow.
        let xs: Vec<f64> = (0..N).map(|_| 0.85 + 0.2 * (unit(&mut state) - 0.5)).collect();
        let batches: Vec<(u64, u64)> = (0..N)
            .map(|_| {
                let t = 1 + splitmix64(&mut state) % 64;
                (splitmix64(&mut state) % (t + 1), t)
            })
            .collect();

        let build = |range: std::ops::Range<usize>| {
            let mut m = Moments::new();
            let mut h = Histogram::new(0.78, 0.92, 16).unwrap();
            let mut c = Counts::new();
            for i in range {
                m.push(xs[i]);
                h.push(xs[i]);
                c.push(batches[i].0, batches[i].1).unwrap();
            }
            (m, h, c)
        };
        let (m_all, h_all, c_all) = build(0..N);
        assert!(h_all.underflow > 0 && h_all.overflow > 0, "{h_all:?}");

        for k in 0..=N {
            let (mut m, mut h, mut c) = build(0..k);
            let (m_r, h_r, c_r) = build(k..N);
            m.merge(&m_r);
            h.merge(&h_r).unwrap();
            c.merge(&c_r);

            assert_eq!(m.n, m_all.n, "k={k}");
            assert!(rel_close(m.mean, m_all.mean), "k={k}: {} vs {}", m.mean, m_all.mean);
            assert!(rel_close(m.m2, m_all.m2), "k={k}: {} vs {}", m.m2, m_all.m2);
            assert_eq!((m.min, m.max), (m_all.min, m_all.max), "k={k}");
            assert_eq!(h, h_all, "k={k}");
            assert_eq!(c, c_all, "k={k}");
        }
    }

    #[test]
    fn error_messages_name_the_fix() {
        let msg = StatsError::InvalidConfidence(95.0).to_string();
        assert!(msg.contains("95") && msg.contains("0.95"), "{msg}");
        let msg = StatsError::SuccessesExceedTrials { successes: 11, trials: 10 }.to_string();
        assert!(msg.contains("11") && msg.contains("10"), "{msg}");
    }

    #[test]
    fn confidence_check_rejects_edges_and_nan() {
        assert!(check_confidence(0.95).is_ok());
        for bad in [0.0, 1.0, -0.1, 1.5, f64::NAN, f64::INFINITY] {
            assert!(check_confidence(bad).is_err(), "{bad} accepted");
        }
    }
}
