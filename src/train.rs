//! Reproducible training of the shipped digits MLPs (`experiments/models/digits_mlp.safetensors`,
//! the default workload, and `experiments/models/digits_mlp_256.safetensors`, the larger model of
//! the throughput case `experiments/bench_mlp.toml`).
//!
//! This module owns everything needed to rebuild those files from the data in the repository:
//! parsing `experiments/data/digits.csv`, the fixed train/test split, a small deterministic
//! trainer for `Linear → act → … → Linear` with any number of hidden layers and a ReLU, GELU
//! (tanh approximation, as the engine applies it) or tanh activation, float accuracy, and writing
//! and reading the weights as a PyTorch-style `nn.Sequential` state dict in safetensors format.
//!
//! Data: the UCI "Optical Recognition of Handwritten Digits" test set (E. Alpaydin, C. Kaynak,
//! 1998; UCI Machine Learning Repository, CC BY 4.0), as shipped in scikit-learn's package data
//! (`sklearn/datasets/data/digits.csv.gz`, BSD-3-Clause). 1797 rows; 64 integer pixels in 0..=16
//! followed by the class 0..=9; no header. See `experiments/data/README.md`.
//!
//! Determinism: training is single-threaded with a fixed visiting order, and all randomness comes
//! from `rand_pcg::Pcg64Mcg` through `next_u64` only (our own uniform draws and Fisher–Yates
//! shuffle), so the weights depend on the PCG algorithm alone and not on `rand`'s sampling code,
//! which may change between `rand` releases. Same seed and config on the same platform give the
//! same weights bit for bit.

use std::collections::BTreeMap;
use std::path::Path;

use rand::{RngCore, SeedableRng};
use rand_pcg::Pcg64Mcg;

/// Pixels per digit image (8×8).
pub const DIGITS_FEATURES: usize = 64;
/// Digit classes 0..=9.
pub const DIGITS_CLASSES: usize = 10;
/// Rows in the shipped data file.
pub const DIGITS_ROWS: usize = 1797;
/// The first this many rows are the training split; the remaining 450 are the test split.
pub const DIGITS_TRAIN_ROWS: usize = 1347;
/// Largest raw pixel value; inputs are divided by it so they lie in [0, 1].
pub const DIGITS_PIXEL_MAX: f32 = 16.0;
/// Command that rebuilds `digits_mlp.safetensors` (the default configuration); recorded in its
/// metadata (see [`training_command`]).
pub const TRAINING_COMMAND: &str = "cargo run --release -- train-digits --out experiments/models/digits_mlp.safetensors";

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// `line` is 1-based, as an editor shows it.
    #[error("digits CSV line {line}: {message}")]
    Parse { line: usize, message: String },
    #[error("digits CSV has no data rows")]
    Empty,
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("safetensors: {0}")]
    SafeTensors(#[from] safetensors::SafeTensorError),
    #[error("model file: {0}")]
    Model(String),
}

/// A labelled data set, inputs already scaled to [0, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Row-major `n × n_features`.
    pub x: Vec<f32>,
    /// Class of each row, `< DIGITS_CLASSES`.
    pub y: Vec<u32>,
    pub n: usize,
    pub n_features: usize,
}

impl Dataset {
    pub fn row(&self, i: usize) -> &[f32] {
        &self.x[i * self.n_features..(i + 1) * self.n_features]
    }

    /// Rows `start..end` as a new data set (order kept).
    pub fn slice_rows(&self, start: usize, end: usize) -> Dataset {
        let end = end.min(self.n);
        let start = start.min(end);
        Dataset {
            x: self.x[start * self.n_features..end * self.n_features].to_vec(),
            y: self.y[start..end].to_vec(),
            n: end - start,
            n_features: self.n_features,
        }
    }
}

/// Parses the digits CSV: 64 pixel values in 0..=16, then the class 0..=9; no header.
/// Pixels are divided by 16. Blank lines are skipped; any other malformed line is an error
/// that names its 1-based line number.
pub fn parse_digits_csv(text: &str) -> Result<Dataset, TrainError> {
    let mut x = Vec::with_capacity(DIGITS_ROWS * DIGITS_FEATURES);
    let mut y = Vec::with_capacity(DIGITS_ROWS);
    for (idx, raw) in text.lines().enumerate() {
        let line = idx + 1;
        let err = |message: String| TrainError::Parse { line, message };
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            continue;
        }
        let fields: Vec<&str> = trimmed.split(',').map(str::trim).collect();
        if fields.len() != DIGITS_FEATURES + 1 {
            return Err(err(format!("expected {} fields (64 pixels + class), found {}", DIGITS_FEATURES + 1, fields.len())));
        }
        for (col, f) in fields[..DIGITS_FEATURES].iter().enumerate() {
            // Accept "3" and "3.0": some exports write integers as floats.
            let v: f32 = f.parse().map_err(|_| err(format!("pixel column {}: not a number: {f:?}", col + 1)))?;
            if !(0.0..=DIGITS_PIXEL_MAX).contains(&v) {
                return Err(err(format!("pixel column {}: {v} outside 0..=16", col + 1)));
            }
            x.push(v / DIGITS_PIXEL_MAX);
        }
        let label_text = fields[DIGITS_FEATURES];
        let label: f64 = label_text.parse().map_err(|_| err(format!("class: not a number: {label_text:?}")))?;
        if label.fract() != 0.0 || !(0.0..DIGITS_CLASSES as f64).contains(&label) {
            return Err(err(format!("class {label_text:?} is not an integer in 0..=9")));
        }
        y.push(label as u32);
    }
    if y.is_empty() {
        return Err(TrainError::Empty);
    }
    Ok(Dataset { n: y.len(), x, y, n_features: DIGITS_FEATURES })
}

/// The fixed split: the first 1347 rows are train, the rest (450 for the full file) are test.
/// A file-order split rather than a shuffled one, so that it needs no seed and other tools can
/// reproduce it by slicing. A shorter data set gives all of its rows to train.
pub fn split_digits(data: &Dataset) -> (Dataset, Dataset) {
    (data.slice_rows(0, DIGITS_TRAIN_ROWS), data.slice_rows(DIGITS_TRAIN_ROWS, data.n))
}

/// Activation after every hidden layer (the output layer has none). The formulas are the engine's
/// (`activate` in `src/engine/cpu/common.rs`, selected by `workload::Activation`), bit for bit in
/// f32, so a model trained here is evaluated with the function it was trained with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HiddenActivation {
    /// `max(v, 0)`; PyTorch `nn.ReLU()`.
    Relu,
    /// The tanh approximation `0.5·v·(1 + tanh(0.7978846·(v + 0.044715·v³)))`; PyTorch
    /// `nn.GELU(approximate='tanh')`.
    Gelu,
    /// `tanh(v)`; PyTorch `nn.Tanh()`.
    Tanh,
}

/// √(2/π) in f32, as the engine spells it.
const GELU_C: f32 = 0.797_884_6;
const GELU_A: f32 = 0.044715;

impl HiddenActivation {
    /// The name used by `--activation` and by experiment files.
    pub fn name(self) -> &'static str {
        match self {
            HiddenActivation::Relu => "relu",
            HiddenActivation::Gelu => "gelu",
            HiddenActivation::Tanh => "tanh",
        }
    }

    /// The PyTorch module that computes the same function (as written in the file's metadata).
    pub fn torch_module(self) -> &'static str {
        match self {
            HiddenActivation::Relu => "nn.ReLU()",
            HiddenActivation::Gelu => "nn.GELU(approximate='tanh')",
            HiddenActivation::Tanh => "nn.Tanh()",
        }
    }

    /// The activation of pre-activation `v`.
    pub fn apply(self, v: f32) -> f32 {
        match self {
            HiddenActivation::Relu => v.max(0.0),
            HiddenActivation::Gelu => 0.5 * v * (1.0 + (GELU_C * (v + GELU_A * v * v * v)).tanh()),
            HiddenActivation::Tanh => v.tanh(),
        }
    }

    /// d activation / dv, from the pre-activation `v` and the activation `h = apply(v)`.
    /// ReLU's is 0 at v = 0 (where `h <= 0`); exactly zero derivatives let the backward pass skip
    /// the unit.
    pub fn derivative(self, v: f32, h: f32) -> f32 {
        match self {
            HiddenActivation::Relu => {
                if h > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            HiddenActivation::Gelu => {
                // h = v·s(v) with s = (1 + tanh u)/2, u = c·(v + a·v³):
                // h' = s + v·(1 − tanh²u)/2 · c·(1 + 3a·v²).
                let t = (GELU_C * (v + GELU_A * v * v * v)).tanh();
                0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * GELU_C * (1.0 + 3.0 * GELU_A * v * v)
            }
            HiddenActivation::Tanh => 1.0 - h * h,
        }
    }
}

/// Hyper-parameters of [`train_mlp`]. `Default` is the configuration of the shipped model
/// `digits_mlp.safetensors`.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// Widths of the hidden layers, input side first (empty: softmax regression).
    pub hidden: Vec<usize>,
    /// Activation after every hidden layer.
    pub activation: HiddenActivation,
    pub epochs: usize,
    pub batch_size: usize,
    /// Initial learning rate; it decays linearly to zero over the run, which settles the weights
    /// without needing a validation split to pick a stopping epoch.
    pub lr: f32,
    pub momentum: f32,
    /// L2 penalty on the weight matrices (not the biases), added to the gradient.
    pub weight_decay: f32,
    /// Standard deviation of zero-mean, near-Gaussian noise added to every training input each
    /// time it is visited (0 disables). Without it the network fits train to 100 % and reaches
    /// only 93 % test, below 1-nearest-neighbour's 96 %; 0.2 was chosen on a validation tail of
    /// the train split (rows 1047..1347), not on test.
    pub input_noise: f32,
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            hidden: vec![64],
            activation: HiddenActivation::Relu,
            epochs: 200,
            batch_size: 32,
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 1e-4,
            input_noise: 0.2,
            seed: 20_240_917,
        }
    }
}

/// The `training` metadata of a model trained with `cfg`: the command that rebuilds it.
///
/// The default configuration records [`TRAINING_COMMAND`], which rebuilds the shipped file in
/// place. Any other configuration that `train-digits` flags can express records those flags (the
/// ones that differ from the defaults, in a fixed order) and `--out FILE`: the weights do not
/// depend on the output path, so retraining to any path gives the same bytes. A configuration
/// the flags cannot express (library use) records the whole config instead.
pub fn training_command(cfg: &TrainConfig) -> String {
    let d = TrainConfig::default();
    if *cfg == d {
        return TRAINING_COMMAND.to_string();
    }
    let flags_only = TrainConfig { hidden: d.hidden.clone(), activation: d.activation, ..cfg.clone() };
    if flags_only != d {
        return format!("src/train.rs train_mlp on the digits train split with {cfg:?}");
    }
    let mut cmd = String::from("cargo run --release -- train-digits");
    if cfg.hidden != d.hidden {
        let widths: Vec<String> = cfg.hidden.iter().map(usize::to_string).collect();
        cmd.push_str(&format!(" --hidden {}", widths.join(",")));
    }
    if cfg.activation != d.activation {
        cmd.push_str(&format!(" --activation {}", cfg.activation.name()));
    }
    cmd.push_str(" --out FILE");
    cmd
}

/// One `nn.Linear` layer. The weight is row-major `n_out × n_in`, the layout of PyTorch's
/// `nn.Linear.weight`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    /// `n_out × n_in`.
    pub w: Vec<f32>,
    /// `n_out`.
    pub b: Vec<f32>,
    pub n_in: usize,
    pub n_out: usize,
}

/// `Linear → act → Linear → act → … → Linear`: the same activation after every layer but the
/// last, whose outputs are the logits. As a PyTorch `nn.Sequential` the Linear layers have
/// indices 0, 2, 4, … (the activation modules sit in between).
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp {
    /// Input side first; `layers[i].n_out == layers[i + 1].n_in`.
    pub layers: Vec<Dense>,
    pub activation: HiddenActivation,
}

/// Per-sample buffers of the forward and backward pass.
struct Workspace {
    /// Pre-activations of each hidden layer.
    pre: Vec<Vec<f32>>,
    /// Activations of each hidden layer.
    act: Vec<Vec<f32>>,
    /// Activation derivatives of each hidden layer (backward pass).
    deriv: Vec<Vec<f32>>,
    /// Logits; after [`Mlp::backprop`], dL/dlogits.
    z: Vec<f32>,
    /// dL/d(outputs) of the layer below the one being back-propagated, and the layer's own delta.
    up: Vec<f32>,
    delta: Vec<f32>,
}

impl Mlp {
    /// Layer widths: `[n_in, hidden…, n_out]`.
    pub fn dims(&self) -> Vec<usize> {
        let mut d = vec![self.layers[0].n_in];
        d.extend(self.layers.iter().map(|l| l.n_out));
        d
    }

    /// PyTorch's `nn.Linear` default init: weights and biases uniform in ±1/sqrt(fan_in), drawn
    /// layer by layer from the input side, weight before bias.
    fn init(dims: &[usize], activation: HiddenActivation, rng: &mut Pcg64Mcg) -> Mlp {
        let mut draw = |fan_in: usize, len: usize| -> Vec<f32> {
            let bound = 1.0 / (fan_in as f32).sqrt();
            (0..len).map(|_| (2.0 * unit_f32(rng) - 1.0) * bound).collect()
        };
        let layers = dims
            .windows(2)
            .map(|p| {
                let (n_in, n_out) = (p[0], p[1]);
                let w = draw(n_in, n_out * n_in);
                let b = draw(n_in, n_out);
                Dense { w, b, n_in, n_out }
            })
            .collect();
        Mlp { layers, activation }
    }

    /// All-zero parameters of the same shapes (gradient and velocity buffers).
    fn zeros_like(&self) -> Mlp {
        Mlp {
            layers: self.layers.iter().map(|l| Dense { w: vec![0.0; l.w.len()], b: vec![0.0; l.b.len()], n_in: l.n_in, n_out: l.n_out }).collect(),
            activation: self.activation,
        }
    }

    fn workspace(&self) -> Workspace {
        let hidden = &self.layers[..self.layers.len() - 1];
        let bufs = || -> Vec<Vec<f32>> { hidden.iter().map(|l| vec![0.0; l.n_out]).collect() };
        let widest = self.dims().into_iter().max().unwrap_or(0);
        Workspace {
            pre: bufs(),
            act: bufs(),
            deriv: bufs(),
            z: vec![0.0; self.layers.last().map_or(0, |l| l.n_out)],
            up: vec![0.0; widest],
            delta: vec![0.0; widest],
        }
    }

    /// Pre-activations, activations and logits for one input.
    fn forward_into(&self, x: &[f32], ws: &mut Workspace) {
        let last = self.layers.len() - 1;
        for (l, layer) in self.layers.iter().enumerate() {
            let (done, rest) = ws.act.split_at_mut(l);
            let input: &[f32] = if l == 0 { x } else { &done[l - 1] };
            let out: &mut [f32] = if l == last { &mut ws.z } else { &mut rest[0] };
            for (o, (w, &b)) in layer.w.chunks_exact(layer.n_in).zip(&layer.b).enumerate() {
                let mut s = b;
                for (&wk, &xk) in w.iter().zip(input) {
                    s += wk * xk;
                }
                if l == last {
                    out[o] = s;
                } else {
                    ws.pre[l][o] = s;
                    out[o] = self.activation.apply(s);
                }
            }
        }
    }

    /// Forward pass for `x`, then adds `scale ×` the gradient of the softmax cross-entropy loss
    /// for `label` to `g` (same shapes as `self`).
    fn backprop(&self, x: &[f32], label: usize, scale: f32, ws: &mut Workspace, g: &mut Mlp) {
        self.forward_into(x, ws);
        // Softmax shifted by the max logit so exp never overflows.
        let z = &mut ws.z;
        let zmax = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f32;
        for zi in z.iter_mut() {
            *zi = (*zi - zmax).exp();
            sum += *zi;
        }
        // z becomes dL/dlogits = (softmax − onehot) · scale.
        for (o, zi) in z.iter_mut().enumerate() {
            *zi = (*zi / sum - if o == label { 1.0 } else { 0.0 }) * scale;
        }
        let last = self.layers.len() - 1;
        for l in (0..=last).rev() {
            let layer = &self.layers[l];
            let gl = &mut g.layers[l];
            let input: &[f32] = if l == 0 { x } else { &ws.act[l - 1] };
            let (n_in, n_out) = (layer.n_in, layer.n_out);
            if l == last {
                ws.delta[..n_out].copy_from_slice(&ws.z);
            }
            let up = &mut ws.up[..n_in];
            up.fill(0.0);
            for o in 0..n_out {
                // A unit whose activation derivative is exactly zero (ReLU clamped) passes no
                // gradient: skip it.
                if l != last && ws.deriv[l][o] == 0.0 {
                    continue;
                }
                let d = ws.delta[o];
                gl.b[o] += d;
                let gw = &mut gl.w[o * n_in..(o + 1) * n_in];
                let w = &layer.w[o * n_in..(o + 1) * n_in];
                if l == 0 {
                    for (gwk, &xk) in gw.iter_mut().zip(input) {
                        *gwk += d * xk;
                    }
                } else {
                    for (((gwk, &wk), &xk), upk) in gw.iter_mut().zip(w).zip(input).zip(up.iter_mut()) {
                        *gwk += d * xk;
                        *upk += d * wk;
                    }
                }
            }
            if l > 0 {
                // Through the activation of layer l − 1: delta = dL/dh · h'(pre).
                let (pre, act, deriv) = (&ws.pre[l - 1], &ws.act[l - 1], &mut ws.deriv[l - 1]);
                for j in 0..n_in {
                    deriv[j] = self.activation.derivative(pre[j], act[j]);
                    ws.delta[j] = ws.up[j] * deriv[j];
                }
            }
        }
    }

    /// Logits for one input of length `dims()[0]`.
    pub fn logits(&self, x: &[f32]) -> Vec<f32> {
        let mut ws = self.workspace();
        self.forward_into(x, &mut ws);
        ws.z
    }

    /// Arg-max class; the lowest index wins ties.
    pub fn predict(&self, x: &[f32]) -> usize {
        argmax(&self.logits(x))
    }
}

/// Index of the largest value; the lowest index wins ties (the predicted class of logits).
pub fn argmax(z: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in z.iter().enumerate() {
        if v > z[best] {
            best = i;
        }
    }
    best
}

/// Uniform in [0, 1) from the top 24 bits of one `next_u64`.
pub(crate) fn unit_f32(rng: &mut Pcg64Mcg) -> f32 {
    (rng.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
}

/// One heavy-ball momentum step with L2 weight decay: v = μ v + g + λ p, p −= lr v.
pub(crate) fn sgd_update(p: &mut [f32], g: &[f32], v: &mut [f32], lr: f32, momentum: f32, weight_decay: f32) {
    for ((p, &gr), v) in p.iter_mut().zip(g).zip(v.iter_mut()) {
        *v = momentum * *v + gr + weight_decay * *p;
        *p -= lr * *v;
    }
}

/// `out = x + std · n` with n of zero mean and unit variance: Irwin–Hall(3) − 1.5 has variance
/// 1/4, so doubling it gives unit variance from three uniforms, with no transcendental function
/// to differ by libm.
pub(crate) fn add_input_noise(out: &mut [f32], x: &[f32], std: f32, rng: &mut Pcg64Mcg) {
    for (o, &v) in out.iter_mut().zip(x) {
        let u = unit_f32(rng) + unit_f32(rng) + unit_f32(rng) - 1.5;
        *o = v + 2.0 * std * u;
    }
}

/// Fisher–Yates with a widening-multiply index (bias below n/2^64, irrelevant here).
pub(crate) fn shuffle(order: &mut [usize], rng: &mut Pcg64Mcg) {
    for i in (1..order.len()).rev() {
        let j = ((rng.next_u64() as u128 * (i as u128 + 1)) >> 64) as usize;
        order.swap(i, j);
    }
}

/// The shipped digits data (`experiments/data/digits.csv`), for the trainers' tests.
#[cfg(test)]
pub(crate) fn shipped_digits() -> Dataset {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/data/digits.csv");
    parse_digits_csv(&std::fs::read_to_string(path).expect("experiments/data/digits.csv is shipped")).unwrap()
}

/// The mini-batch loop every trainer shares: per epoch a fresh shuffle of the rows (from `rng`),
/// then `step(batch, lr, rng)` per batch, with the learning rate decayed linearly from `lr` to 0
/// over all steps; the last batch of an epoch may be smaller than `batch_size`. The trainers
/// draw their input noise from the same `rng` inside `step`, so the draw order is fixed.
pub(crate) fn minibatch_epochs(n: usize, epochs: usize, batch_size: usize, lr: f32, rng: &mut Pcg64Mcg, mut step: impl FnMut(&[usize], f32, &mut Pcg64Mcg)) {
    let mut order: Vec<usize> = (0..n).collect();
    let steps = (epochs * n.div_ceil(batch_size)).max(1);
    let mut k = 0usize;
    for _ in 0..epochs {
        shuffle(&mut order, rng);
        for batch in order.chunks(batch_size) {
            step(batch, lr * (1.0 - k as f32 / steps as f32), rng);
            k += 1;
        }
    }
}

/// Row `i` of `train` with fresh input noise of std `std` in `noisy` (none when `std` is 0).
pub(crate) fn noisy_row<'a>(noisy: &'a mut [f32], train: &'a Dataset, i: usize, std: f32, rng: &mut Pcg64Mcg) -> &'a [f32] {
    if std > 0.0 {
        add_input_noise(noisy, train.row(i), std, rng);
        noisy
    } else {
        train.row(i)
    }
}

/// Trains the MLP with softmax cross-entropy and mini-batch SGD with (heavy-ball) momentum,
/// linear learning-rate decay, L2 weight decay and input-noise augmentation.
/// Deterministic: the seed drives the init, the per-epoch shuffle and the input noise; the last
/// batch of an epoch may be smaller than `batch_size`. Parameters are updated layer by layer
/// from the input side, weight before bias.
pub fn train_mlp(train: &Dataset, cfg: &TrainConfig) -> Mlp {
    assert!(train.n > 0, "empty training set");
    assert!(cfg.batch_size > 0 && cfg.hidden.iter().all(|&h| h > 0), "batch_size and every hidden width must be > 0");
    let n_out = train.y.iter().map(|&c| c as usize + 1).max().unwrap_or(1).max(DIGITS_CLASSES);
    let mut dims = vec![train.n_features];
    dims.extend_from_slice(&cfg.hidden);
    dims.push(n_out);
    let n_in = train.n_features;

    let mut rng = Pcg64Mcg::seed_from_u64(cfg.seed);
    let mut m = Mlp::init(&dims, cfg.activation, &mut rng);

    // Gradient and velocity buffers, one per parameter tensor.
    let mut g = m.zeros_like();
    let mut v = g.clone();
    let mut ws = m.workspace();
    let mut noisy = vec![0.0f32; n_in];

    minibatch_epochs(train.n, cfg.epochs, cfg.batch_size, cfg.lr, &mut rng, |batch, lr, rng| {
        for gl in &mut g.layers {
            gl.w.fill(0.0);
            gl.b.fill(0.0);
        }
        let inv_b = 1.0 / batch.len() as f32;
        for &i in batch {
            let x = noisy_row(&mut noisy, train, i, cfg.input_noise, rng);
            m.backprop(x, train.y[i] as usize, inv_b, &mut ws, &mut g);
        }
        for ((ml, gl), vl) in m.layers.iter_mut().zip(&g.layers).zip(&mut v.layers) {
            sgd_update(&mut ml.w, &gl.w, &mut vl.w, lr, cfg.momentum, cfg.weight_decay);
            sgd_update(&mut ml.b, &gl.b, &mut vl.b, lr, cfg.momentum, 0.0);
        }
    });
    m
}

/// Fraction of rows whose arg-max logit equals the label (float32 forward pass, no noise).
pub fn accuracy(model: &Mlp, data: &Dataset) -> f64 {
    if data.n == 0 {
        return 0.0;
    }
    let correct = (0..data.n).filter(|&i| model.predict(data.row(i)) == data.y[i] as usize).count();
    correct as f64 / data.n as f64
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Minimal JSON string quoting for the header (keys and metadata values are ours).
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The `model` metadata: the PyTorch module and what its input and output mean.
fn architecture(model: &Mlp) -> String {
    let mut modules = Vec::new();
    for (i, l) in model.layers.iter().enumerate() {
        if i > 0 {
            modules.push(model.activation.torch_module().to_string());
        }
        modules.push(format!("nn.Linear({}, {})", l.n_in, l.n_out));
    }
    let n_out = model.layers.last().map_or(0, |l| l.n_out);
    format!("nn.Sequential({}); input = pixel/16 of the UCI 8x8 digits; output = logits of classes 0..{}", modules.join(", "), n_out.saturating_sub(1))
}

/// The safetensors bytes of the model, as `safetensors.torch.save_file(model.state_dict())`
/// would lay them out for `nn.Sequential(Linear, act, Linear, act, …, Linear)`: tensors
/// `0.weight`, `0.bias`, `2.weight`, `2.bias`, `4.weight`, …, F32 little-endian row-major
/// (`out × in`), data sorted by name. Metadata: `format = "pt"`, `model` (the module, which also
/// names the activation) and `training` (see [`training_command`]).
///
/// The header is written here rather than by `safetensors::serialize` because that takes the
/// metadata as a `HashMap`, whose iteration order changes from run to run; sorted keys keep the
/// shipped files byte-for-byte reproducible. [`load_safetensors`] reads it back through the
/// `safetensors` crate, which validates the layout.
pub fn safetensors_bytes(model: &Mlp, training: &str) -> Vec<u8> {
    let metadata: BTreeMap<&str, String> =
        [("format", "pt".to_string()), ("model", architecture(model)), ("training", training.to_string())].into_iter().collect();
    let mut tensors: BTreeMap<String, (Vec<usize>, &[f32])> = BTreeMap::new();
    for (i, l) in model.layers.iter().enumerate() {
        tensors.insert(format!("{}.weight", 2 * i), (vec![l.n_out, l.n_in], l.w.as_slice()));
        tensors.insert(format!("{}.bias", 2 * i), (vec![l.n_out], l.b.as_slice()));
    }
    state_dict_bytes(&tensors, &metadata)
}

/// The safetensors bytes of F32 tensors and string metadata, both in name order (BTreeMap: "10.bias"
/// before "2.bias", as strings sort, which is also safetensors' order for same-dtype tensors), so
/// the same tensors give the same bytes.
pub(crate) fn state_dict_bytes(tensors: &BTreeMap<String, (Vec<usize>, &[f32])>, metadata: &BTreeMap<&str, String>) -> Vec<u8> {
    let mut header = String::from("{\"__metadata__\":{");
    let meta: Vec<String> = metadata.iter().map(|(k, v)| format!("{}:{}", json_string(k), json_string(v))).collect();
    header.push_str(&meta.join(","));
    header.push('}');
    let mut data = Vec::new();
    for (name, (shape, values)) in tensors {
        let start = data.len();
        data.extend_from_slice(&f32_bytes(values));
        let shape: Vec<String> = shape.iter().map(usize::to_string).collect();
        header.push_str(&format!(",{}:{{\"dtype\":\"F32\",\"shape\":[{}],\"data_offsets\":[{},{}]}}", json_string(name), shape.join(","), start, data.len()));
    }
    header.push('}');
    // The format pads the header with spaces to a multiple of 8 so the data is aligned.
    while header.len() % 8 != 0 {
        header.push(' ');
    }

    let mut out = Vec::with_capacity(8 + header.len() + data.len());
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&data);
    out
}

/// Writes [`safetensors_bytes`] to `path`.
pub fn save_safetensors(model: &Mlp, training: &str, path: impl AsRef<Path>) -> Result<(), TrainError> {
    std::fs::write(path, safetensors_bytes(model, training))?;
    Ok(())
}

/// Reads a `Sequential(Linear, act, Linear, …)` F32 state dict back into an [`Mlp`]: tensors
/// `0.weight`/`0.bias`, `2.weight`/`2.bias`, … with consecutive even indices and chained shapes,
/// and nothing else. The activation comes from the `model` metadata that [`safetensors_bytes`]
/// writes; a file without it (PyTorch's `save_file` of a bare state dict) is read as ReLU, the
/// default.
pub fn load_safetensors_bytes(bytes: &[u8]) -> Result<Mlp, TrainError> {
    let st = safetensors::SafeTensors::deserialize(bytes)?;
    let get = |name: &str, rank: usize| -> Result<(Vec<usize>, Vec<f32>), TrainError> {
        let t = st.tensor(name)?;
        if t.dtype() != safetensors::Dtype::F32 || t.shape().len() != rank {
            return Err(TrainError::Model(format!("{name}: expected F32 rank {rank}, found {:?} {:?}", t.dtype(), t.shape())));
        }
        let v = t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        Ok((t.shape().to_vec(), v))
    };
    let mut layers: Vec<Dense> = Vec::new();
    let mut i = 0;
    while i == 0 || st.names().contains(&&*format!("{i}.weight")) {
        let (s_w, w) = get(&format!("{i}.weight"), 2)?;
        let (s_b, b) = get(&format!("{i}.bias"), 1)?;
        let (n_out, n_in) = (s_w[0], s_w[1]);
        if s_b[0] != n_out {
            return Err(TrainError::Model(format!("inconsistent shapes: {i}.weight {s_w:?}, {i}.bias {s_b:?}")));
        }
        if let Some(prev) = layers.last() {
            if prev.n_out != n_in {
                return Err(TrainError::Model(format!("inconsistent shapes: {}.weight has {} outputs but {i}.weight takes {n_in} inputs", i - 2, prev.n_out)));
            }
        }
        layers.push(Dense { w, b, n_in, n_out });
        i += 2;
    }
    if st.len() != 2 * layers.len() {
        let mut extra: Vec<&str> = st
            .names()
            .into_iter()
            .filter(|n| {
                let idx = n.split('.').next().and_then(|p| p.parse::<usize>().ok());
                !matches!(idx, Some(k) if k % 2 == 0 && k / 2 < layers.len()) || !(n.ends_with(".weight") || n.ends_with(".bias"))
            })
            .collect();
        extra.sort();
        return Err(TrainError::Model(format!("unexpected tensors {extra:?}; expected 0.weight, 0.bias, 2.weight, ... with consecutive even indices")));
    }

    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)?;
    let arch = meta.metadata().as_ref().and_then(|m| m.get("model").cloned());
    let activation = match arch {
        None => HiddenActivation::Relu,
        Some(arch) => {
            let found: Vec<HiddenActivation> =
                [HiddenActivation::Relu, HiddenActivation::Gelu, HiddenActivation::Tanh].into_iter().filter(|a| arch.contains(a.torch_module())).collect();
            match found[..] {
                [a] => a,
                [] if layers.len() == 1 => HiddenActivation::Relu,
                _ => {
                    return Err(TrainError::Model(format!(
                        "metadata model {arch:?} does not name exactly one of nn.ReLU(), \
                         nn.GELU(approximate='tanh'), nn.Tanh()"
                    )))
                }
            }
        }
    };
    Ok(Mlp { layers, activation })
}

/// Reads a model file written by [`save_safetensors`] (or by PyTorch for the same module).
pub fn load_safetensors(path: impl AsRef<Path>) -> Result<Mlp, TrainError> {
    load_safetensors_bytes(&std::fs::read(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits() -> Dataset {
        shipped_digits()
    }

    /// Four well-separated synthetic classes, so the test needs no data file.
    fn synthetic(n: usize) -> Dataset {
        let mut rng = Pcg64Mcg::seed_from_u64(7);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..n {
            let c = i % 4;
            for k in 0..DIGITS_FEATURES {
                let base = if k % 4 == c { 0.8 } else { 0.1 };
                x.push(base + 0.1 * unit_f32(&mut rng));
            }
            y.push(c as u32);
        }
        Dataset { x, y, n, n_features: DIGITS_FEATURES }
    }

    fn tiny_cfg() -> TrainConfig {
        TrainConfig { hidden: vec![16], epochs: 5, batch_size: 16, ..TrainConfig::default() }
    }

    #[test]
    fn shipped_csv_parses_and_splits() {
        let d = digits();
        assert_eq!((d.n, d.n_features), (DIGITS_ROWS, DIGITS_FEATURES));
        assert!(d.x.iter().all(|&v| (0.0..=1.0).contains(&v)));
        assert!(d.y.iter().all(|&c| c < 10));
        let (tr, te) = split_digits(&d);
        assert_eq!((tr.n, te.n), (1347, 450));
        assert_eq!(tr.row(0), d.row(0));
        assert_eq!(te.row(0), d.row(1347));
        assert_eq!(te.y[449], d.y[1796]);
    }

    #[test]
    fn parse_errors_name_the_line() {
        let good = vec!["0"; 64].join(",") + ",3";
        let short = vec!["0"; 63].join(",") + ",3";
        let bad_pixel = vec!["0"; 63].join(",") + ",x,3";
        let big_pixel = vec!["0"; 63].join(",") + ",17,3";
        let bad_class = vec!["0"; 64].join(",") + ",10";
        for (bad, what) in [(short, "fields"), (bad_pixel, "not a number"), (big_pixel, "outside"), (bad_class, "class")] {
            let text = format!("{good}\n\n{bad}\n");
            let e = parse_digits_csv(&text).unwrap_err();
            let msg = e.to_string();
            assert!(matches!(e, TrainError::Parse { line: 3, .. }), "{msg}");
            assert!(msg.contains("line 3") && msg.contains(what), "{msg}");
        }
        assert!(matches!(parse_digits_csv("\n\n"), Err(TrainError::Empty)));
        let ok = parse_digits_csv(&format!("{good}\n{good}")).unwrap();
        assert_eq!((ok.n, ok.y[1]), (2, 3));
    }

    #[test]
    fn training_is_deterministic() {
        let d = synthetic(64);
        let a = train_mlp(&d, &tiny_cfg());
        let b = train_mlp(&d, &tiny_cfg());
        let bits = |m: &Mlp| -> Vec<u32> { m.layers.iter().flat_map(|l| l.w.iter().chain(&l.b)).map(|v| v.to_bits()).collect() };
        assert_eq!(bits(&a), bits(&b));
        assert_eq!(safetensors_bytes(&a, TRAINING_COMMAND), safetensors_bytes(&b, TRAINING_COMMAND));
        let c = train_mlp(&d, &TrainConfig { seed: 1, ..tiny_cfg() });
        assert_ne!(bits(&a), bits(&c), "the seed must matter");
    }

    #[test]
    fn tiny_run_beats_chance() {
        let (tr, te) = split_digits(&digits());
        let small = tr.slice_rows(0, 300);
        let m = train_mlp(&small, &tiny_cfg());
        let acc = accuracy(&m, &te);
        assert!(acc > 0.5, "test accuracy {acc} (chance is 0.1)");
    }

    #[test]
    fn safetensors_round_trip_and_layout() {
        let m = train_mlp(&synthetic(32), &TrainConfig { hidden: vec![64], epochs: 1, ..tiny_cfg() });
        let bytes = safetensors_bytes(&m, TRAINING_COMMAND);
        assert_eq!(load_safetensors_bytes(&bytes).unwrap(), m);

        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut names = st.names();
        names.sort();
        assert_eq!(names, ["0.bias", "0.weight", "2.bias", "2.weight"]);
        assert_eq!(st.tensor("0.weight").unwrap().shape(), [64, 64]);
        assert_eq!(st.tensor("0.bias").unwrap().shape(), [64]);
        assert_eq!(st.tensor("2.weight").unwrap().shape(), [10, 64]);
        assert_eq!(st.tensor("2.bias").unwrap().shape(), [10]);
        // Row-major out × in: element [1, 2] of 0.weight is w[1 * 64 + 2].
        let w = st.tensor("0.weight").unwrap();
        let off = (64 + 2) * 4;
        assert_eq!(w.data()[off..off + 4], m.layers[0].w[66].to_le_bytes());

        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let meta = meta.metadata().clone().unwrap();
        assert_eq!(meta["format"], "pt");
        assert_eq!(meta["training"], TRAINING_COMMAND);
    }

    /// f64 cross-entropy of `m` on (`x`, `label`), GELU in f64, for finite differences.
    fn loss_f64(m: &Mlp, x: &[f32], label: usize) -> f64 {
        let gelu = |v: f64| 0.5 * v * (1.0 + (GELU_C as f64 * (v + GELU_A as f64 * v * v * v)).tanh());
        let mut h: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        for (i, l) in m.layers.iter().enumerate() {
            h = (0..l.n_out)
                .map(|o| {
                    let s = (0..l.n_in).map(|k| l.w[o * l.n_in + k] as f64 * h[k]).sum::<f64>() + l.b[o] as f64;
                    if i + 1 < m.layers.len() {
                        gelu(s)
                    } else {
                        s
                    }
                })
                .collect();
        }
        let zmax = h.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = zmax + h.iter().map(|z| (z - zmax).exp()).sum::<f64>().ln();
        lse - h[label]
    }

    #[test]
    fn gelu_matches_engine_and_its_derivative() {
        let engine = crate::workload::Activation::Gelu.code();
        for i in -400..=400 {
            let v = i as f32 * 0.01;
            let a = HiddenActivation::Gelu;
            assert_eq!(a.apply(v).to_bits(), crate::engine::cpu::common::activate(engine, v).to_bits(), "GELU({v}) differs from the engine's");
            let h = 1e-2f32;
            let fd = (a.apply(v + h) as f64 - a.apply(v - h) as f64) / (2.0 * h as f64);
            let d = a.derivative(v, a.apply(v)) as f64;
            assert!((d - fd).abs() < 2e-4, "GELU'({v}) = {d}, finite difference {fd}");
        }
    }

    #[test]
    fn two_hidden_gelu_round_trips_and_backprop_matches_finite_differences() {
        // Round trip of a trained 64-12-8-10 GELU model through the writer and reader.
        let cfg = TrainConfig { hidden: vec![12, 8], activation: HiddenActivation::Gelu, epochs: 2, ..tiny_cfg() };
        let m = train_mlp(&synthetic(32), &cfg);
        assert_eq!(m.dims(), [64, 12, 8, 10]);
        let flags = TrainConfig { hidden: vec![12, 8], activation: HiddenActivation::Gelu, ..TrainConfig::default() };
        assert_eq!(training_command(&flags), "cargo run --release -- train-digits --hidden 12,8 --activation gelu --out FILE");
        let training = training_command(&cfg);
        assert!(training.contains("epochs: 2"), "{training}");
        let bytes = safetensors_bytes(&m, &training);
        assert_eq!(load_safetensors_bytes(&bytes).unwrap(), m);
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut names = st.names();
        names.sort();
        assert_eq!(names, ["0.bias", "0.weight", "2.bias", "2.weight", "4.bias", "4.weight"]);
        assert_eq!(st.tensor("2.weight").unwrap().shape(), [8, 12]);
        assert_eq!(st.tensor("4.weight").unwrap().shape(), [10, 8]);
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let arch = meta.metadata().as_ref().unwrap()["model"].clone();
        assert!(
            arch.starts_with(
                "nn.Sequential(nn.Linear(64, 12), nn.GELU(approximate='tanh'), nn.Linear(12, 8), \
                 nn.GELU(approximate='tanh'), nn.Linear(8, 10));"
            ),
            "{arch}"
        );

        // Back-propagated gradient of a small 5-7-6-4 GELU model against central differences
        // of the f64 loss, for every parameter.
        let mut rng = Pcg64Mcg::seed_from_u64(3);
        let m = Mlp::init(&[5, 7, 6, 4], HiddenActivation::Gelu, &mut rng);
        let x: Vec<f32> = (0..5).map(|_| 4.0 * unit_f32(&mut rng) - 2.0).collect();
        let label = 2;
        let mut g = m.zeros_like();
        let mut ws = m.workspace();
        m.backprop(&x, label, 1.0, &mut ws, &mut g);
        let mut checked = 0;
        for l in 0..m.layers.len() {
            for (is_w, len) in [(true, m.layers[l].w.len()), (false, m.layers[l].b.len())] {
                for k in 0..len {
                    fn param(m: &mut Mlp, l: usize, is_w: bool, k: usize) -> &mut f32 {
                        let layer = &mut m.layers[l];
                        if is_w {
                            &mut layer.w[k]
                        } else {
                            &mut layer.b[k]
                        }
                    }
                    let at = |m: &mut Mlp| -> f32 { *param(m, l, is_w, k) };
                    let (mut plus, mut minus) = (m.clone(), m.clone());
                    *param(&mut plus, l, is_w, k) += 1e-3;
                    *param(&mut minus, l, is_w, k) -= 1e-3;
                    let step = at(&mut plus) as f64 - at(&mut minus) as f64;
                    let fd = (loss_f64(&plus, &x, label) - loss_f64(&minus, &x, label)) / step;
                    let an = at(&mut g) as f64;
                    assert!(
                        (an - fd).abs() < 1e-4 + 1e-3 * fd.abs(),
                        "layer {l} {} [{k}]: backprop {an}, finite difference {fd}",
                        if is_w { "weight" } else { "bias" }
                    );
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 5 * 7 + 7 + 7 * 6 + 6 + 6 * 4 + 4);
    }
}
