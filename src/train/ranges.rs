//! Learned input ranges in the trainers (aihwkit's `pre_post.input_range`; Rasch et al., Nat.
//! Commun. 2023): the `[training]` fields' checks, the trainers that refuse them, and the step
//! every range takes after a batch (aihwkit's `post_backward` and `apply_input_range`). The
//! forward's clip is `Injector::crossbar_in_ranges`; the MLP trainer gathers the gradient: from
//! the inputs the range clipped alone (the part of their gradient that would widen it),
//! relative to the range, plus `input_range_decay`·range while more than
//! `input_range_min_inside` of the batch's inputs lie inside it; the inputs' own gradient passes
//! the clip straight through.

use super::hwa::TrainingConfig;
use super::{sgd_update, TrainError};

impl TrainingConfig {
    /// Checks the input-range fields: set only with `input_range`, each in its domain, and not
    /// with bound management (training redoes a saturated tile over its max|x|).
    pub(super) fn check_input_range(&self) -> Result<(), String> {
        let defaults = TrainingConfig::default();
        if self.input_range {
            if !(self.input_range_init.is_finite() && self.input_range_init > 0.0) {
                return Err(format!("training.input_range_init = {}: the ranges' first value must be > 0 (aihwkit's default 3)", self.input_range_init));
            }
            if !(self.input_range_std_alpha.is_finite() && self.input_range_std_alpha > 0.0) {
                return Err(format!("training.input_range_std_alpha = {}: must be > 0 (aihwkit's default 3)", self.input_range_std_alpha));
            }
            if !(self.input_range_decay.is_finite() && self.input_range_decay >= 0.0) {
                return Err(format!("training.input_range_decay = {}: must be a finite number >= 0", self.input_range_decay));
            }
            if !(0.0..=1.0).contains(&self.input_range_min_inside) {
                return Err(format!("training.input_range_min_inside = {}: a fraction in 0..=1 (aihwkit's default 0.95)", self.input_range_min_inside));
            }
            if self.bound_management == "iterative" {
                return Err("training.input_range with bound_management = \"iterative\": training redoes a saturated tile over its max|x|, not its range; use bound_management = \"none\" (as aihwkit's StandardHWATrainingPreset trains)".into());
            }
        } else {
            for (name, set) in [
                ("input_range_init", self.input_range_init != defaults.input_range_init),
                ("input_range_init_from_data", self.input_range_init_from_data != defaults.input_range_init_from_data),
                ("input_range_std_alpha", self.input_range_std_alpha != defaults.input_range_std_alpha),
                ("input_range_decay", self.input_range_decay != defaults.input_range_decay),
                ("input_range_min_inside", self.input_range_min_inside != defaults.input_range_min_inside),
            ] {
                if set {
                    return Err(format!(
                        "training.{name} is set but training.input_range is not: set input_range = true to learn input ranges, or remove {name}"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Refuses `input_range` in a trainer that does not learn ranges (`trainer` names it).
    pub fn refuse_input_range(&self, trainer: &str) -> Result<(), TrainError> {
        if self.input_range {
            return Err(TrainError::Training(format!(
                "training.input_range = true: the {trainer} trainer does not learn input ranges (the MLP trainer, train-digits, does); remove it"
            )));
        }
        Ok(())
    }
}

/// One step of every input range after a batch, as aihwkit's `post_backward` and
/// `apply_input_range` (gradient_relative, gradient_scale 1): the gradient times the range, plus
/// `decay`·range while more than `min_inside` of the batch's inputs lay inside it, an SGD step
/// with the trainer's momentum; then, during the first `init_from_data` batches, the running mean
/// with `std_alpha`·std of the batch's inputs (aihwkit takes it at the start of the batch, before
/// the forward; here the batch's statistics follow its pass), and the absolute value.
#[allow(clippy::too_many_arguments)]
pub(super) fn update_ranges(
    ranges: &mut [Vec<f32>],
    grads: &[Vec<f32>],
    vel: &mut [Vec<f32>],
    stats: &[Vec<[f64; 4]>],
    updates: &mut [Vec<u32>],
    hwa: &TrainingConfig,
    lr: f32,
    momentum: f32,
) {
    for (l, rl) in ranges.iter_mut().enumerate() {
        for (t, r) in rl.iter_mut().enumerate() {
            let [inside, n, sum, sumsq] = stats[l][t];
            let mut g = grads[l][t] * *r;
            if hwa.input_range_decay > 0.0 && n > 0.0 && inside / n > hwa.input_range_min_inside {
                g += (hwa.input_range_decay * *r as f64) as f32;
            }
            sgd_update(std::slice::from_mut(r), &[g], std::slice::from_mut(&mut vel[l][t]), lr, momentum, 0.0);
            let k = &mut updates[l][t];
            if *k < hwa.input_range_init_from_data && n > 1.0 {
                let std = ((sumsq - sum * sum / n) / (n - 1.0)).max(0.0).sqrt();
                if std > 0.0 {
                    *r = ((*r as f64 * *k as f64 + hwa.input_range_std_alpha * std) / (*k as f64 + 1.0)) as f32;
                    *k += 1;
                }
            }
            *r = r.abs();
        }
    }
}
