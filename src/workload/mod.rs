//! Workloads: what a trial computes, on top of the engine's plan.
//! - weight error: effective-weight error statistics of one programmed matrix over time;
//! - classifier: an MLP (PyTorch Linear layers with digital activations) on a labelled data set;
//! - mvm: single-vector MVMs with programming noise (the device state regenerated in registers).

pub mod io;

use crate::crossbar::{MappedMatrix, Scaling, TileShape};
use crate::engine::plan::AnalogLayer;
use io::{Dataset, Linear};

#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("{path}: {msg}")]
    File { path: String, msg: String },
    #[error("{0}")]
    Shape(String),
}

/// Digital activation between analog layers (the last layer has none).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    None,
    Relu,
    Gelu,
    Tanh,
}

impl Activation {
    pub fn code(self) -> u32 {
        match self {
            Activation::None => 0,
            Activation::Relu => 1,
            Activation::Gelu => 2,
            Activation::Tanh => 3,
        }
    }

    pub fn apply(self, v: f64) -> f64 {
        match self {
            Activation::None => v,
            Activation::Relu => v.max(0.0),
            Activation::Gelu => 0.5 * v * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v * v * v)).tanh()),
            Activation::Tanh => v.tanh(),
        }
    }
}

/// The activation after each of `n` layers: `act` after every layer but the last (an
/// `nn.Sequential` of Linear layers with one activation between them).
pub fn between(n: usize, act: Activation) -> Vec<Activation> {
    (0..n).map(|i| if i + 1 < n { act } else { Activation::None }).collect()
}

/// Maps every Linear layer onto tiles; `acts[i]` follows layer i (see [`between`]).
pub fn analog_layers(layers: &[Linear], acts: &[Activation], shape: TileShape, scaling: Scaling) -> Vec<AnalogLayer> {
    layers
        .iter()
        .zip(acts)
        .map(|(l, a)| AnalogLayer {
            mapped: MappedMatrix::new(&l.weight.data, l.weight.rows as u32, l.weight.cols as u32, shape, scaling),
            bias: l.bias.clone(),
            activation: a.code(),
        })
        .collect()
}

/// Checks that the data set fits the model: features = first layer inputs, labels < outputs.
pub fn check_shapes(layers: &[Linear], data: &Dataset) -> Result<(), WorkloadError> {
    let n_in = layers[0].weight.cols;
    if data.n_features != n_in {
        return Err(WorkloadError::Shape(format!(
            "the data set has {} features per row but the model's first layer ({}.weight) takes {n_in} inputs",
            data.n_features, layers[0].name
        )));
    }
    let n_out = layers.last().unwrap().weight.rows;
    if let Some(&bad) = data.labels.iter().find(|&&l| l as usize >= n_out) {
        return Err(WorkloadError::Shape(format!("the data set has label {bad} but the model has only {n_out} outputs (classes 0..{n_out})")));
    }
    Ok(())
}

/// Floating-point (f64) accuracy of the model: the baseline every noisy run is compared with.
pub fn fp_accuracy(layers: &[Linear], acts: &[Activation], data: &Dataset) -> (u64, u64) {
    let mut correct = 0u64;
    for s in 0..data.len() {
        let mut h: Vec<f64> = data.x[s * data.n_features..(s + 1) * data.n_features].iter().map(|&v| v as f64).collect();
        for (i, l) in layers.iter().enumerate() {
            let w = &l.weight;
            h = (0..w.rows)
                .map(|o| {
                    let v = (0..w.cols).map(|k| w.data[o * w.cols + k] as f64 * h[k]).sum::<f64>() + l.bias[o] as f64;
                    acts[i].apply(v)
                })
                .collect();
        }
        let pred = h.iter().enumerate().fold((0, f64::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0;
        correct += u64::from(pred as u32 == data.labels[s]);
    }
    (correct, data.len() as u64)
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
