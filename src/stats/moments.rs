//! Streaming mean, variance, min and max of a scalar stream.
//!
//! Implements Welford (1962) one-pass updates, which avoid the catastrophic
//! cancellation of the textbook sum-of-squares formula when the spread is
//! small relative to the mean (accuracies clustered near 0.9, say), and the
//! pairwise combination of Chan, Golub & LeVeque (1979) so accumulators built
//! on separate chunks or workers merge into the single-pass result.

use serde::{Deserialize, Serialize};

/// Running first and second central moments plus extrema.
///
/// `m2` is the sum of squared deviations from the running mean. While
/// `n == 0`, `mean`, `m2`, `min` and `max` are all 0: infinities would be the
/// natural identity for min/max, but JSON cannot carry them and an empty
/// accumulator must round-trip through experiment result files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    pub n: u64,
    pub mean: f64,
    pub m2: f64,
    pub min: f64,
    pub max: f64,
}

impl Default for Moments {
    fn default() -> Self {
        Self::new()
    }
}

impl Moments {
    /// Empty accumulator.
    pub fn new() -> Self {
        Self { n: 0, mean: 0.0, m2: 0.0, min: 0.0, max: 0.0 }
    }

    /// Adds one observation (Welford's update).
    pub fn push(&mut self, x: f64) {
        if self.n == 0 {
            self.min = x;
            self.max = x;
        } else {
            self.min = self.min.min(x);
            self.max = self.max.max(x);
        }
        self.n += 1;
        let delta = x - self.mean;
        self.mean += delta / self.n as f64;
        // Uses the updated mean on purpose: delta * (x - new_mean) is the
        // exact increment of the sum of squared deviations.
        self.m2 += delta * (x - self.mean);
    }

    /// Folds `other` into `self` (Chan et al. pairwise combination).
    pub fn merge(&mut self, other: &Moments) {
        if other.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = other.clone();
            return;
        }
        let na = self.n as f64;
        let nb = other.n as f64;
        let n = na + nb;
        let delta = other.mean - self.mean;
        // delta * nb / n rather than a weighted average of the two means:
        // it stays accurate when one side is much larger than the other.
        self.mean += delta * (nb / n);
        self.m2 += other.m2 + delta * delta * (na * nb / n);
        self.n += other.n;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Sample variance with Bessel's correction (n - 1); 0 when n < 2 so a
    /// single run reports no spread instead of NaN.
    pub fn variance(&self) -> f64 {
        if self.n < 2 {
            0.0
        } else {
            // Rounding can leave m2 a hair below zero for constant data.
            (self.m2 / (self.n - 1) as f64).max(0.0)
        }
    }

    /// Sample standard deviation.
    pub fn std(&self) -> f64 {
        self.variance().sqrt()
    }

    /// Standard error of the mean, std / sqrt(n); 0 when n < 2.
    pub fn sem(&self) -> f64 {
        if self.n < 2 {
            0.0
        } else {
            self.std() / (self.n as f64).sqrt()
        }
    }
}

impl Extend<f64> for Moments {
    fn extend<I: IntoIterator<Item = f64>>(&mut self, iter: I) {
        for x in iter {
            self.push(x);
        }
    }
}

impl FromIterator<f64> for Moments {
    fn from_iter<I: IntoIterator<Item = f64>>(iter: I) -> Self {
        let mut m = Moments::new();
        m.extend(iter);
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accumulated rounding over ~1000 updates stays far below this; a real
    /// formula error would be many orders of magnitude larger.
    const REL_TOL: f64 = 1e-12;

    fn rel_close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * a.abs().max(b.abs()).max(f64::MIN_POSITIVE)
    }

    #[test]
    fn matches_two_pass_formula() {
        let xs = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0];
        let m: Moments = xs.iter().copied().collect();
        // Hand values: sum 39, sum of squares 207, so var = (207 - 152.1) / 9.
        assert_eq!(m.n, 10);
        assert!(rel_close(m.mean, 3.9, REL_TOL));
        assert!(rel_close(m.variance(), 6.1, REL_TOL));
        assert!(rel_close(m.sem(), (6.1f64 / 10.0).sqrt(), REL_TOL));
        assert_eq!((m.min, m.max), (1.0, 9.0));
    }

    #[test]
    fn degenerate_sizes_are_nan_free() {
        let m = Moments::new();
        assert_eq!((m.variance(), m.std(), m.sem()), (0.0, 0.0, 0.0));
        let mut m = Moments::new();
        m.push(-2.5);
        assert_eq!((m.mean, m.min, m.max), (-2.5, -2.5, -2.5));
        assert_eq!((m.variance(), m.std(), m.sem()), (0.0, 0.0, 0.0));
    }

    #[test]
    fn constant_data_has_zero_variance() {
        let m: Moments = std::iter::repeat_n(0.912_345, 500).collect();
        assert!(m.variance() >= 0.0);
        assert!(m.std() < 1e-12, "std {}", m.std());
    }

    #[test]
    fn merge_with_empty_is_identity() {
        let a: Moments = [1.0, 2.0, 4.0].into_iter().collect();
        let mut left = Moments::new();
        left.merge(&a);
        assert_eq!(left, a);
        let mut right = a.clone();
        right.merge(&Moments::new());
        assert_eq!(right, a);
    }

    #[test]
    fn empty_round_trips_through_json() {
        let m = Moments::new();
        let s = serde_json::to_string(&m).unwrap();
        let back: Moments = serde_json::from_str(&s).unwrap();
        assert_eq!(back, m);
    }
}
