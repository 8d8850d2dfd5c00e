//! The mvm_error workload: one weight matrix on `[mvm] inputs` random input vectors (uniform in
//! [−1, 1], drawn from the experiment seed); per trial the relative error ‖y − W x‖/‖W x‖ of the
//! noisy MVM outputs over all vectors, against the exact f64 product.

use super::{GroupRun, Inputs, Metric, PointRun, SweepPoint, TimeMetrics};
use crate::engine::plan;
use crate::engine::EngineError;

pub fn metric(_: &Inputs<'_>, _: &SweepPoint) -> Metric {
    Metric { text: "relative MVM error ‖y − W x‖/‖W x‖", column: "mvm_relative_error", higher_is_better: false }
}

pub fn run(r: &mut PointRun<'_>) -> Result<Vec<TimeMetrics>, EngineError> {
    let (layers, x, exact) = problem(r.inputs, r.point);
    let outs = plan::run_outputs(r.be, &layers, &x, r.inputs.mvm_inputs, &r.cfg, &mut |n| (r.progress)(n as u64))?;
    Ok(errors(&outs, &exact))
}

/// Points that differ only in noise scales, converter or drift-compensation settings (the noise
/// budget's configurations, a sweep over the ADC's bits) run as one plan.
pub fn alike(a: &SweepPoint, b: &SweepPoint) -> bool {
    super::classifier::same_tiles(a, b)
}

/// Points that are [`alike`] as one plan (`plan::run_outputs_group`); each point's errors are
/// those of its own run, bit for bit.
pub fn run_group(g: &mut GroupRun<'_>) -> Result<Vec<Vec<TimeMetrics>>, EngineError> {
    let (layers, x, exact) = problem(g.inputs, &g.points[0]);
    let per_chunk = g.points.len() as u64;
    let progress = &mut *g.progress;
    let all = plan::run_outputs_group(g.be, &layers, &x, g.inputs.mvm_inputs, &g.cfgs, &mut |n| progress(n as u64 * per_chunk))?;
    Ok(all.iter().map(|outs| errors(outs, &exact)).collect())
}

/// The matrix on the point's tiles, the random inputs (from the experiment seed) and the exact
/// f64 products `[vector][output]`.
fn problem(inputs: Inputs<'_>, sp: &SweepPoint) -> (Vec<plan::AnalogLayer>, Vec<f32>, Vec<f64>) {
    let layers = super::analog_layers(inputs.layers, inputs.activations, sp.tile, (&sp.periphery).into());
    let m = &inputs.layers[0].weight;
    let batch = inputs.mvm_inputs as usize;
    let x = crate::rng::uniform_signed(batch * m.cols, inputs.seed);
    let exact: Vec<f64> = (0..batch)
        .flat_map(|s| (0..m.rows).map(move |o| (s, o)))
        .map(|(s, o)| (0..m.cols).map(|k| m.data[o * m.cols + k] as f64 * x[s * m.cols + k] as f64).sum())
        .collect();
    (layers, x, exact)
}

/// Per time, each trial's relative error ‖y − W x‖/‖W x‖ over all vectors.
fn errors(outs: &[Vec<f32>], exact: &[f64]) -> Vec<TimeMetrics> {
    let norm = exact.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-30);
    let per = exact.len().max(1);
    super::plain(
        outs.iter().map(|y| y.chunks(per).map(|yt| yt.iter().zip(exact).map(|(&a, &b)| (a as f64 - b).powi(2)).sum::<f64>().sqrt() / norm).collect()),
        None,
    )
}
