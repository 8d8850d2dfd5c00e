//! The classifier workload: a network ([`super::model`]) on noisy crossbars over a labelled data
//! set; per trial the test accuracy, with the first trials' per-layer effective-weight error
//! (noise-models §8) and layer insight (each layer's MVM error against floating point, the share
//! of vectors bound management repeated, the share of clipped ADC outputs).

use super::{analog_layers, GroupRun, Inputs, Metric, PointRun, SweepPoint, TimeMetrics};
use crate::crossbar::{MappedMatrix, Scaling};
use crate::engine::plan::{self, AnalogLayer};
use crate::engine::EngineError;
use crate::results::{LayerInsight, LayerWeightError};
use crate::stats::Summary;

pub fn metric(_: &Inputs<'_>, _: &SweepPoint) -> Metric {
    Metric { text: "test accuracy", column: "test_accuracy", higher_is_better: true }
}

pub fn run(r: &mut PointRun<'_>) -> Result<Vec<TimeMetrics>, EngineError> {
    let data = r.inputs.data.expect("validated: classifier has data");
    let (layers, fp) = network(r.inputs, r.point);
    let rows = r.inputs.row_counts;
    let progress = &mut *r.progress;
    let mut pts = plan::run_classifier_group(r.be, &layers, &data.x, &data.labels, std::slice::from_ref(&r.cfg), rows, &mut |n| progress(n as u64))?;
    with_extras(r, &layers, pts.pop().expect("one configuration, one result"), fp)
}

/// Whether two points run the same network on the same tiles with the same programmed-state
/// layout, so they can run as one plan (they differ in noise scales, converter settings and
/// drift compensation only: the noise budget's configurations, a sweep over noise or GDC).
pub fn alike(a: &SweepPoint, b: &SweepPoint) -> bool {
    let same_model = match (&a.classifier, &b.classifier) {
        (None, None) => true,
        (Some(x), Some(y)) => std::sync::Arc::ptr_eq(x, y),
        _ => false,
    };
    same_model && same_tiles(a, b)
}

/// Whether two points map a network alike (tile shape, weight scaling) and keep its device
/// state in buffers alike (the programmed-state layout of every layer's device, drift
/// compensation per tile or per column; with or without it, the programmed states are shared).
pub fn same_tiles(a: &SweepPoint, b: &SweepPoint) -> bool {
    let layout = |d: &crate::device::DeviceModel| (crate::engine::layout::DeviceParams::from(d).drift_path, crate::engine::plan::state_words(d));
    a.tile == b.tile
        && a.gdc.per_column() == b.gdc.per_column()
        && Scaling::from(&a.periphery) == Scaling::from(&b.periphery)
        && layout(&a.device) == layout(&b.device)
        && a.layer_noise.iter().chain(&b.layer_noise).flatten().all(|(d, _)| layout(d) == layout(&a.device))
}

/// Points that are [`alike`] as one plan (`plan::run_classifier_group`): one set of buffers,
/// and the device states they share programmed and drifted once. Each point's counts are those
/// of its own run, bit for bit; its weight-error and layer-insight trials run as in [`run`].
pub fn run_group(g: &mut GroupRun<'_>) -> Result<Vec<Vec<TimeMetrics>>, EngineError> {
    let data = g.inputs.data.expect("validated: classifier has data");
    let (layers, fp) = network(g.inputs, &g.points[0]);
    let per_chunk = g.points.len() as u64;
    let progress = &mut *g.progress;
    let all = plan::run_classifier_group(g.be, &layers, &data.x, &data.labels, &g.cfgs, g.inputs.row_counts, &mut |n| progress(n as u64 * per_chunk))?;
    let mut out = Vec::with_capacity(all.len());
    for ((sp, cfg), pts) in g.points.iter().zip(&g.cfgs).zip(all) {
        let mut r = PointRun { be: &mut *g.be, inputs: g.inputs, point: sp, cfg: cfg.clone(), chunk: g.chunk, progress: &mut *g.progress };
        out.push(with_extras(&mut r, &layers, pts, fp)?);
    }
    Ok(out)
}

/// The point's network on its tiles, and its floating-point accuracy. A `model_path` point runs
/// its own network (same architecture) with its own baseline.
fn network(inputs: Inputs<'_>, sp: &SweepPoint) -> (Vec<AnalogLayer>, f64) {
    let (net, (fc, fn_)) = match &sp.classifier {
        Some(c) => (&c.0[..], c.1),
        None => (inputs.layers, inputs.fp_correct.expect("validated: a classifier's baseline is computed at load")),
    };
    (analog_layers(net, inputs.activations, sp.tile, (&sp.periphery).into()), fc as f64 / fn_ as f64)
}

/// The per-time metrics of a point's counts, with the chunk's weight-error and layer-insight
/// trials.
fn with_extras(r: &mut PointRun<'_>, layers: &[AnalogLayer], pts: Vec<plan::ClassifierPoint>, fp: f64) -> Result<Vec<TimeMetrics>, EngineError> {
    let mapped: Vec<MappedMatrix> = layers.iter().map(|l| l.mapped.clone()).collect();
    let we = layer_weight_errors(r, &mapped)?;
    let insight_trials = if r.point.budget_only() { 0 } else { r.chunk.layer_insight_trials };
    let insight = layer_insight(r, layers, insight_trials)?;
    Ok(pts
        .into_iter()
        .zip(we)
        .zip(insight)
        .map(|((p, w), li)| TimeMetrics {
            per_trial: p.correct.iter().map(|&c| c as f64 / p.n_samples as f64).collect(),
            row_correct: r.inputs.row_counts.then_some(p.row_correct),
            correct: Some((p.correct, p.n_samples)),
            fp: Some(fp),
            weight_error: w,
            layer_insight: li,
            ..TimeMetrics::default()
        })
        .collect())
}

/// Per time, every layer's effective-weight error over the chunk's weight-error trials.
fn layer_weight_errors(r: &mut PointRun<'_>, mapped: &[MappedMatrix]) -> Result<Vec<Vec<LayerWeightError>>, EngineError> {
    let mut per_time = vec![Vec::new(); r.inputs.times.len()];
    if r.chunk.weight_error_trials == 0 {
        return Ok(per_time);
    }
    let mut cfg = r.cfg.clone();
    cfg.trials = r.chunk.weight_error_trials;
    cfg.first_trial = r.chunk.first_weight_error_trial;
    for (li, m) in mapped.iter().enumerate() {
        let pts = plan::run_weight_error_layer(r.be, m, li as u32, &cfg, &mut |n| (r.progress)(n as u64))?;
        for (ti, w) in super::summarize_weight_error(&pts).into_iter().enumerate() {
            per_time[ti].push(LayerWeightError { layer: li, trials: w.trials, mean: w.mean, std: w.std, alpha_mean: w.alpha_mean, alpha_std: w.alpha_std });
        }
    }
    Ok(per_time)
}

/// Per time, every layer's [`LayerInsight`] over the first `trials` trials of the point (the same
/// device states and noise as those trials of the accuracy run).
fn layer_insight(r: &mut PointRun<'_>, layers: &[AnalogLayer], trials: u32) -> Result<Vec<Vec<LayerInsight>>, EngineError> {
    let nt = r.inputs.times.len();
    if trials == 0 {
        return Ok(vec![Vec::new(); nt]);
    }
    let data = r.inputs.data.expect("validated: classifier has data");
    let mut cfg = r.cfg.clone();
    cfg.trials = trials;
    cfg.first_trial = r.chunk.first_trial;
    let got = plan::run_layer_insight(r.be, layers, &data.x, data.labels.len() as u32, &cfg)?;
    (r.progress)(trials as u64);
    got.into_iter()
        .map(|per_layer| {
            per_layer
                .into_iter()
                .enumerate()
                .map(|(layer, tr)| {
                    let err: Vec<f64> = tr
                        .iter()
                        .map(|t| if t.sq_ref > 0.0 { (t.sq_err / t.sq_ref).sqrt() } else if t.sq_err == 0.0 { 0.0 } else { f64::INFINITY })
                        .collect();
                    let share = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
                    let sum = |f: &dyn Fn(&plan::LayerTrial) -> u64| tr.iter().map(f).sum::<u64>();
                    Ok(LayerInsight {
                        layer,
                        trials: tr.len() as u64,
                        mvm_error: Summary::from_sample(&err).map_err(|e| {
                            EngineError::Invalid(format!("layer {layer}: its floating-point outputs are all zero on the data set, so its relative MVM error is undefined ({e}); set layer_insight_trials = 0"))
                        })?,
                        bm_repeated: share(sum(&|t| t.bm_repeated), sum(&|t| t.vectors)),
                        clipped: share(sum(&|t| t.clipped), sum(&|t| t.conversions)),
                    })
                })
                .collect()
        })
        .collect()
}
