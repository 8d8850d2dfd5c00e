//! The weight_error workload: one programmed matrix over time; per trial the std of the
//! effective-weight error E = (α·W_eff − W)/max|W| (noise-models §8), with the pooled moments and
//! the GDC factor's statistics.

use super::{Inputs, Metric, PointRun, SweepPoint, TimeMetrics};
use crate::engine::plan;
use crate::engine::EngineError;
use crate::results::LayerWeightError;

pub fn metric(_: &Inputs<'_>, _: &SweepPoint) -> Metric {
    Metric { text: "std of the weight error (α·W_eff − W)/max|W|", column: "weight_error_std", higher_is_better: false }
}

pub fn run(r: &mut PointRun<'_>) -> Result<Vec<TimeMetrics>, EngineError> {
    let sp = r.point;
    let layers = super::analog_layers(r.inputs.layers, r.inputs.activations, sp.tile, (&sp.periphery).into());
    let pts = plan::run_weight_error_layer(r.be, &layers[0].mapped, 0, &r.cfg, &mut |n| (r.progress)(n as u64))?;
    let rows = summarize_weight_error(&pts);
    Ok(pts
        .iter()
        .zip(rows)
        .map(|(p, w)| {
            let n = p.n_weights as f64;
            let per_trial = p.sum_e.iter().zip(&p.sum_e2).map(|(s1, s2)| (s2 / n - (s1 / n).powi(2)).max(0.0).sqrt()).collect();
            let weight_error =
                vec![LayerWeightError { layer: 0, trials: w.trials, mean: w.mean, std: w.std, alpha_mean: w.alpha_mean, alpha_std: w.alpha_std }];
            TimeMetrics { per_trial, weight_error, ..TimeMetrics::default() }
        })
        .collect())
}

/// Effective-weight error statistics at one time (noise-models §8): E = (α W_eff − W)/max|W|
/// pooled over all weights and trials, and the GDC factor over trials and tiles (population
/// moments, so shards pool exactly).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WeightErrorRow {
    pub t_inf: f64,
    pub trials: u64,
    pub mean: f64,
    pub std: f64,
    pub alpha_mean: f64,
    pub alpha_std: f64,
}

pub fn summarize_weight_error(points: &[crate::engine::plan::WeightErrorPoint]) -> Vec<WeightErrorRow> {
    points
        .iter()
        .map(|p| {
            let n = p.n_weights as f64 * p.sum_e.len() as f64;
            let mean = p.sum_e.iter().sum::<f64>() / n;
            // Population moments over all weights (and tiles) of all trials: they pool exactly
            // across shards (n is in the hundreds of thousands, so n vs n−1 is immaterial).
            let var = (p.sum_e2.iter().sum::<f64>() / n - mean * mean).max(0.0);
            let alpha: crate::stats::Moments = p.alpha.iter().map(|&a| a as f64).collect();
            let alpha_var = if alpha.n > 0 { alpha.m2 / alpha.n as f64 } else { 0.0 };
            WeightErrorRow { t_inf: p.t_inf, trials: p.sum_e.len() as u64, mean, std: var.sqrt(), alpha_mean: alpha.mean, alpha_std: alpha_var.sqrt() }
        })
        .collect()
}
