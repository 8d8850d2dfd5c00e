//! Exact success/trial counter for binomial quantities (top-1 hits, bit
//! errors, threshold crossings).
//!
//! Integer counts merge exactly and in any order, unlike averaged
//! proportions; the interval methods (Wilson 1927, Clopper & Pearson 1934)
//! in `interval.rs` take these counts directly.

use serde::{Deserialize, Serialize};

use super::StatsError;

/// Number of successes out of a number of trials.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub successes: u64,
    pub trials: u64,
}

impl Counts {
    /// Empty counter.
    pub fn new() -> Self {
        Self { successes: 0, trials: 0 }
    }

    /// Adds a batch of `trials` with `successes` among them. Rejects
    /// successes > trials so the counter can never hold an impossible state.
    pub fn push(&mut self, successes: u64, trials: u64) -> Result<(), StatsError> {
        if successes > trials {
            return Err(StatsError::SuccessesExceedTrials { successes, trials });
        }
        self.successes += successes;
        self.trials += trials;
        Ok(())
    }

    /// Folds `other` into `self`; exact and order-independent.
    pub fn merge(&mut self, other: &Counts) {
        self.successes += other.successes;
        self.trials += other.trials;
    }

    /// Observed proportion successes / trials; `None` with no trials, since
    /// any number would be invented.
    pub fn proportion(&self) -> Option<f64> {
        if self.trials == 0 {
            None
        } else {
            Some(self.successes as f64 / self.trials as f64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_and_proportion() {
        let mut c = Counts::new();
        assert_eq!(c.proportion(), None);
        c.push(3, 4).unwrap();
        c.push(0, 4).unwrap();
        assert_eq!(c, Counts { successes: 3, trials: 8 });
        assert_eq!(c.proportion(), Some(0.375));
    }

    #[test]
    fn rejects_more_successes_than_trials() {
        let mut c = Counts::new();
        assert_eq!(c.push(5, 4), Err(StatsError::SuccessesExceedTrials { successes: 5, trials: 4 }));
        // A rejected batch must leave the counter untouched.
        assert_eq!(c, Counts::new());
    }

    #[test]
    fn merge_adds() {
        let mut a = Counts { successes: 1, trials: 2 };
        a.merge(&Counts { successes: 10, trials: 20 });
        assert_eq!(a, Counts { successes: 11, trials: 22 });
    }
}
