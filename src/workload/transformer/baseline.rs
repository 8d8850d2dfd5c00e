//! The floating-point value beside each point, from the run's own backend
//! (`transformer.baseline = "engine"`): one pass of the point's network with an ideal device
//! (no programming, drift or read noise) and perfect converters (no DAC or ADC steps, no output
//! noise, no clipping), in the engine's f32, scored by the workload's own metric. The default,
//! `reference`, is the independent f64 forward (`reference.rs`) at validation: exact, but on the
//! host's cores it costs a BERT-base reader about 1.4 core-seconds per 384-token window, hours
//! for SQuAD's dev set on a small host, where one pass at a GPU's measured GEMM rate would take
//! a minute or two (BENCHMARKS.md; not measured for this pass).

use super::{engine_labels, metrics, TransformerSettings};
use crate::config::Experiment;
use crate::crossbar::{Gdc, Periphery};
use crate::device::DeviceModel;
use crate::engine::plan::{run_transformer, RunConfig};
use crate::engine::{Backend, EngineError};
use crate::workload::io::Dataset;
use crate::workload::SweepPoint;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Where a transformer point's floating-point value comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Baseline {
    /// The f64 reference forward on the host, at validation.
    #[default]
    Reference,
    /// One noiseless pass of the run's backend, at the start of the run.
    Engine,
}

impl Baseline {
    pub fn is_reference(&self) -> bool {
        *self == Baseline::Reference
    }
}

/// Whether any point of `exp` takes its baseline from the engine.
pub fn wanted(exp: &Experiment) -> bool {
    exp.points.iter().any(|p| p.transformer.as_ref().is_some_and(|s| s.baseline == Baseline::Engine))
}

/// The engine's floating-point value of every point that asks for it, and its companion
/// metric's, each distinct network and setting run once (`fp_engine`, `fp_engine_companion`);
/// returns how many passes ran. `known` holds the values a
/// resumed run's checkpointed chunks recorded, by sweep index: they are kept, for their points
/// and every point that shares their network and settings, so a run resumed on another backend
/// reports the value its first chunks were scored against.
pub fn fill(exp: &mut Experiment, be: &mut dyn Backend, known: &HashMap<usize, (f64, Option<f64>)>) -> Result<usize, EngineError> {
    let mut done: HashMap<String, (f64, Option<f64>)> = HashMap::new();
    let mut values = Vec::new();
    let data = exp.data.as_ref().ok_or_else(|| EngineError::Invalid("the transformer workload needs [data]".into()))?;
    let t = exp.times.first().copied().unwrap_or(1.0);
    // Points that differ only in noise, converters or drift compensation share the value.
    let key = |sp: &SweepPoint, s: &TransformerSettings| format!("{}|{:?}", serde_json::to_string(s).expect("settings serialise"), sp.tile);
    let wants = |sp: &SweepPoint| sp.transformer.as_ref().filter(|s| s.baseline == Baseline::Engine).cloned();
    for sp in &exp.points {
        if let (Some(s), Some(&v)) = (wants(sp), known.get(&sp.index)) {
            done.entry(key(sp, &s)).or_insert(v);
        }
    }
    let seeded = done.len();
    for (i, sp) in exp.points.iter().enumerate() {
        let Some(s) = wants(sp) else { continue };
        let (key, s) = (key(sp, &s), &s);
        let fp = match done.get(&key) {
            Some(&v) => v,
            None => {
                let v = one_pass(be, sp, s, data, t)?;
                done.insert(key, v);
                v
            }
        };
        values.push((i, fp));
    }
    for (i, (fp, companion)) in values {
        let s = exp.points[i].transformer.as_mut().expect("a transformer point");
        (s.fp_engine, s.fp_engine_companion) = (Some(fp), companion);
    }
    Ok(done.len() - seeded)
}

/// One trial of the point's network on an ideal device with perfect converters at time `t`
/// after programming (nothing drifts), scored as its trials are: the metric and its companion.
fn one_pass(be: &mut dyn Backend, sp: &SweepPoint, s: &TransformerSettings, data: &Dataset, t: f64) -> Result<(f64, Option<f64>), EngineError> {
    let (tokens, lengths) = s.tokens(data);
    let model = s.seq_model(sp, data.n_features);
    // The point's weight scaling maps its weights; nothing else of its periphery applies.
    let periphery = Periphery {
        weight_scaling_omega: sp.periphery.weight_scaling_omega,
        weight_scaling_columnwise: sp.periphery.weight_scaling_columnwise,
        w_noise: 0.0,
        ir_drop: 0.0,
        ..Periphery::perfect()
    };
    let cfg = RunConfig {
        device: DeviceModel::ideal(),
        periphery,
        gdc: Gdc::Off,
        key: [0, 0],
        trials: 1,
        first_trial: 0,
        times: vec![t],
        max_chunk: 1,
        layer_noise: vec![],
        reads_per_programming: 1,
    };
    let pts = run_transformer(be, &model, &tokens, &lengths, engine_labels(s, data), &cfg, &mut |_| {})?;
    let m = metrics(s, data, &lengths, pts).swap_remove(0);
    Ok((m.per_trial[0], m.companion.map(|c| c.per_trial[0])))
}
