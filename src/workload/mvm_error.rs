//! The mvm_error workload: one weight matrix on `[mvm] inputs` random input vectors (uniform in
//! [−1, 1], drawn from the experiment seed); per trial the relative error ‖y − W x‖/‖W x‖ of the
//! noisy MVM outputs over all vectors, against the exact f64 product.

use super::{Inputs, Metric, PointRun, SweepPoint, TimeMetrics};
use crate::engine::plan;
use crate::engine::EngineError;

pub fn metric(_: &Inputs<'_>, _: &SweepPoint) -> Metric {
    Metric { text: "relative MVM error ‖y − W x‖/‖W x‖", column: "mvm_relative_error", higher_is_better: false }
}

pub fn run(r: &mut PointRun<'_>) -> Result<Vec<TimeMetrics>, EngineError> {
    let (inputs, sp) = (r.inputs, r.point);
    let layers = super::analog_layers(inputs.layers, inputs.activations, sp.tile, (&sp.periphery).into());
    let m = &inputs.layers[0].weight;
    let batch = inputs.mvm_inputs;
    let x = crate::rng::uniform_signed(batch as usize * m.cols, inputs.seed);
    let exact: Vec<f64> = (0..batch as usize)
        .flat_map(|s| (0..m.rows).map(move |o| (s, o)))
        .map(|(s, o)| (0..m.cols).map(|k| m.data[o * m.cols + k] as f64 * x[s * m.cols + k] as f64).sum())
        .collect();
    let norm = exact.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-30);
    let outs = plan::run_outputs(r.be, &layers, &x, batch, &r.cfg, &mut |n| (r.progress)(n as u64))?;
    let per = batch as usize * m.rows;
    Ok(super::plain(
        outs.iter().map(|y| y.chunks(per).map(|yt| yt.iter().zip(&exact).map(|(&a, &b)| (a as f64 - b).powi(2)).sum::<f64>().sqrt() / norm).collect()),
        None,
    ))
}
