//! Fixed-edge histogram with under/overflow counters.
//!
//! Edges are fixed at construction (equal-width bins on [lo, hi]) rather than
//! adapted to the data, so histograms built by different workers or runs
//! have identical bins and merge by adding integer counts, exactly and in any
//! order. The last bin is closed on the right, matching numpy.histogram, so a
//! value equal to `hi` is counted instead of overflowing.

use serde::{Deserialize, Serialize};

use super::StatsError;

/// Equal-width histogram on [lo, hi] with `counts.len()` bins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    pub lo: f64,
    pub hi: f64,
    pub counts: Vec<u64>,
    /// Values below `lo`.
    pub underflow: u64,
    /// Values above `hi`, and NaN, so that `total()` accounts for every push.
    pub overflow: u64,
}

impl Histogram {
    /// Empty histogram; errors unless lo and hi are finite with lo < hi and
    /// bins >= 1.
    pub fn new(lo: f64, hi: f64, bins: usize) -> Result<Self, StatsError> {
        if !(lo.is_finite() && hi.is_finite() && lo < hi && bins >= 1) {
            return Err(StatsError::InvalidHistogram { lo, hi, bins });
        }
        Ok(Self { lo, hi, counts: vec![0; bins], underflow: 0, overflow: 0 })
    }

    /// Number of bins.
    pub fn bins(&self) -> usize {
        self.counts.len()
    }

    /// Counts one value.
    pub fn push(&mut self, x: f64) {
        if x < self.lo {
            self.underflow += 1;
        } else if x <= self.hi {
            let bins = self.counts.len();
            let frac = (x - self.lo) / (self.hi - self.lo);
            // `as usize` saturates; the min() puts x == hi (frac == 1) in the
            // last bin instead of one past the end.
            let idx = ((frac * bins as f64) as usize).min(bins - 1);
            self.counts[idx] += 1;
        } else {
            // x > hi, or NaN (every comparison false).
            self.overflow += 1;
        }
    }

    /// Folds `other` into `self`. Errors, leaving `self` unchanged, when the
    /// edges differ: adding counts of different bins would be meaningless.
    pub fn merge(&mut self, other: &Histogram) -> Result<(), StatsError> {
        if self.lo != other.lo || self.hi != other.hi || self.bins() != other.bins() {
            return Err(StatsError::HistogramMismatch {
                lo_a: self.lo,
                hi_a: self.hi,
                bins_a: self.bins(),
                lo_b: other.lo,
                hi_b: other.hi,
                bins_b: other.bins(),
            });
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.underflow += other.underflow;
        self.overflow += other.overflow;
        Ok(())
    }

    /// The bins + 1 bin edges, first exactly `lo` and last exactly `hi`.
    pub fn edges(&self) -> Vec<f64> {
        let bins = self.counts.len();
        let width = self.hi - self.lo;
        let mut e: Vec<f64> = (0..=bins).map(|i| self.lo + width * (i as f64 / bins as f64)).collect();
        // Pin the end so plotting code sees the exact configured range.
        e[bins] = self.hi;
        e
    }

    /// Every value pushed: binned plus underflow plus overflow.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum::<u64>() + self.underflow + self.overflow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_and_edges() {
        let mut h = Histogram::new(0.0, 1.0, 4).unwrap();
        for x in [-0.1, 0.0, 0.1, 0.25, 0.5, 0.74, 0.99, 1.0, 1.01, f64::NAN] {
            h.push(x);
        }
        assert_eq!(h.counts, vec![2, 1, 2, 2]);
        assert_eq!((h.underflow, h.overflow), (1, 2));
        assert_eq!(h.total(), 10);
        assert_eq!(h.edges(), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
    }

    #[test]
    fn hi_goes_in_last_bin_for_awkward_ranges() {
        let mut h = Histogram::new(0.1, 0.7, 3).unwrap();
        h.push(0.7);
        assert_eq!(h.counts, vec![0, 0, 1]);
        assert_eq!(h.overflow, 0);
    }

    #[test]
    fn invalid_construction_is_an_error() {
        assert!(Histogram::new(1.0, 1.0, 4).is_err());
        assert!(Histogram::new(2.0, 1.0, 4).is_err());
        assert!(Histogram::new(0.0, 1.0, 0).is_err());
        assert!(Histogram::new(f64::NAN, 1.0, 4).is_err());
        assert!(Histogram::new(0.0, f64::INFINITY, 4).is_err());
    }

    #[test]
    fn merge_mismatch_is_an_error_and_leaves_self_alone() {
        let mut a = Histogram::new(0.0, 1.0, 4).unwrap();
        a.push(0.3);
        let before = a.clone();
        for other in [Histogram::new(0.0, 1.0, 5).unwrap(), Histogram::new(0.0, 2.0, 4).unwrap(), Histogram::new(-1.0, 1.0, 4).unwrap()] {
            assert!(matches!(a.merge(&other), Err(StatsError::HistogramMismatch { .. })));
            assert_eq!(a, before);
        }
    }
}
