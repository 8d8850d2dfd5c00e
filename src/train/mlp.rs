//! Reproducible training of the shipped digits MLPs (`experiments/models/digits_mlp.safetensors`,
//! the default workload, and `experiments/models/digits_mlp_256.safetensors`, the larger model of
//! the throughput case `experiments/bench_mlp.toml`).
//!
//! This module owns the trainer of `Linear → act → … → Linear` with any number of hidden layers
//! and a ReLU, GELU (tanh approximation, as the engine applies it) or tanh activation, its float
//! accuracy, and its state dict: a PyTorch-style `nn.Sequential` in safetensors format, which the
//! classifier workload reads (`workload::io::parse_state_dict`). Data, mini-batch loop, noise and
//! writer are the shared ones of [`crate::train`].

use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;
use std::path::Path;

use super::hwa::{load_params, Clipped, TrainingConfig};
use super::injector::{Injector, Param};
use super::{
    accuracy_of, activate, activation_name, derivative, minibatch_epochs, model_metadata, noisy_row, sgd_update, state_dict_bytes, torch_module, unit_f32,
    write_model, Dataset, Dense, NamedTensor, TrainError,
};
use crate::workload::Activation;

/// Command that rebuilds `digits_mlp.safetensors` (the default configuration); recorded in its
/// metadata (see [`training_command`]).
pub const TRAINING_COMMAND: &str = "cargo run --release -- train-digits --out experiments/models/digits_mlp.safetensors";

/// Hyper-parameters of [`train_mlp`]. `Default` is the configuration of the shipped model
/// `digits_mlp.safetensors`.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// Widths of the hidden layers, input side first (empty: softmax regression).
    pub hidden: Vec<usize>,
    /// Activation after every hidden layer.
    pub activation: Activation,
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
            activation: Activation::Relu,
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
        return format!("src/train/mlp.rs train_mlp on the digits train split with {cfg:?}");
    }
    let mut cmd = String::from("cargo run --release -- train-digits");
    if cfg.hidden != d.hidden {
        let widths: Vec<String> = cfg.hidden.iter().map(usize::to_string).collect();
        cmd.push_str(&format!(" --hidden {}", widths.join(",")));
    }
    if cfg.activation != d.activation {
        cmd.push_str(&format!(" --activation {}", activation_name(cfg.activation)));
    }
    cmd.push_str(" --out FILE");
    cmd
}

/// `Linear → act → Linear → act → … → Linear`: the same activation after every layer but the
/// last, whose outputs are the logits. As a PyTorch `nn.Sequential` the Linear layers have
/// indices 0, 2, 4, … (the activation modules sit in between).
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp {
    /// Input side first; `layers[i].n_out == layers[i + 1].n_in`.
    pub layers: Vec<Dense>,
    /// Each layer's learned input ranges, one per input tile (`training.input_range`); empty:
    /// none (the slices' max|x| scales them).
    pub ranges: Vec<Vec<f32>>,
    pub activation: Activation,
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
    /// The input each layer multiplied (after the DAC when training injects one): the weight
    /// gradient's input.
    xin: Vec<Vec<f32>>,
    /// The outputs each layer's ADC clipped (their gradient is zero).
    clipped: Vec<Clipped>,
    /// Per layer and input tile, over the batch so far: inputs inside the range, inputs, their
    /// sum and sum of squares (the range's decay and its initialisation from data).
    range_stats: Vec<Vec<[f64; 4]>>,
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
    fn init(dims: &[usize], activation: Activation, rng: &mut Pcg64Mcg) -> Mlp {
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
        Mlp { layers, ranges: Vec::new(), activation }
    }

    /// Every parameter tensor by its state-dict name; the weights are crossbar matrices.
    pub fn params_mut(&mut self) -> Vec<Param<'_>> {
        let mut out = Vec::new();
        for (i, l) in self.layers.iter_mut().enumerate() {
            out.push(Param { name: format!("{}.weight", 2 * i), data: &mut l.w, matrix: Some((l.n_out, l.n_in)), fixed: false });
            out.push(Param { name: format!("{}.bias", 2 * i), data: &mut l.b, matrix: None, fixed: false });
        }
        out
    }

    /// All-zero parameters of the same shapes (gradient and velocity buffers).
    fn zeros_like(&self) -> Mlp {
        Mlp {
            layers: self.layers.iter().map(Dense::zeros_like).collect(),
            ranges: self.ranges.iter().map(|r| vec![0.0; r.len()]).collect(),
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
            xin: self.layers.iter().map(|l| vec![0.0; l.n_in]).collect(),
            clipped: vec![Clipped::default(); self.layers.len()],
            range_stats: self.ranges.iter().map(|r| vec![[0.0; 4]; r.len()]).collect(),
        }
    }

    /// Pre-activations, activations and logits for one input; every layer is one crossbar MVM
    /// ([`Injector::crossbar`]: the DAC, output noise and ADC when hardware-aware training asks
    /// for them, the plain product otherwise), its quantised input kept for the weight gradient.
    fn forward_into(&self, x: &[f32], ws: &mut Workspace, inj: &mut Injector) {
        let last = self.layers.len() - 1;
        for (l, layer) in self.layers.iter().enumerate() {
            let out: &mut [f32] = if l == last { &mut ws.z } else { &mut ws.pre[l] };
            let ranges = self.ranges.get(l).map(Vec::as_slice).filter(|r| !r.is_empty());
            inj.crossbar_in_ranges(&layer.w, if l == 0 { x } else { &ws.act[l - 1] }, ranges, Some(&layer.b), &mut ws.xin[l], out, &mut ws.clipped[l]);
            if l != last {
                for (a, &p) in ws.act[l].iter_mut().zip(&ws.pre[l]) {
                    *a = activate(self.activation, p);
                }
            }
        }
    }

    /// Forward pass for `x`, then adds `scale ×` the gradient of the softmax cross-entropy loss
    /// for `label` to `g` (same shapes as `self`).
    fn backprop(&self, x: &[f32], label: usize, scale: f32, ws: &mut Workspace, g: &mut Mlp, inj: &mut Injector) {
        self.forward_into(x, ws, inj);
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
            let input: &[f32] = &ws.xin[l];
            let (n_in, n_out) = (layer.n_in, layer.n_out);
            if l == last {
                ws.delta[..n_out].copy_from_slice(&ws.z);
            }
            // The inputs' gradient: for the layer below, and for this layer's input ranges.
            let ranges = self.ranges.get(l).filter(|r| !r.is_empty());
            let need_up = l > 0 || ranges.is_some();
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
                // The weights and inputs of every tile whose ADC did not clip this output.
                for r in ws.clipped[l].passing(o, n_in) {
                    let gw = &mut gl.w[o * n_in + r.start..o * n_in + r.end];
                    let w = &layer.w[o * n_in + r.start..o * n_in + r.end];
                    if !need_up {
                        for (gwk, &xk) in gw.iter_mut().zip(&input[r]) {
                            *gwk += d * xk;
                        }
                    } else {
                        for (((gwk, &wk), &xk), upk) in gw.iter_mut().zip(w).zip(&input[r.clone()]).zip(up[r].iter_mut()) {
                            *gwk += d * xk;
                            *upk += d * wk;
                        }
                    }
                }
            }
            if let Some(rg) = ranges {
                // aihwkit's `post_backward`: the range's gradient from the inputs it clipped (the
                // part of their gradient that would widen it; the inputs' own passes straight
                // through), and the batch statistics of the inputs.
                let raw: &[f32] = if l == 0 { x } else { &ws.act[l - 1] };
                for (t, r) in inj.tiles(n_in).enumerate() {
                    let rt = rg[t];
                    let mut gr = 0.0f32;
                    let st = &mut ws.range_stats[l][t];
                    for k in r {
                        let (v, u) = (raw[k], ws.up[k]);
                        if v >= rt {
                            gr += u.min(0.0);
                        } else if v <= -rt {
                            gr -= u.max(0.0);
                        }
                        st[0] += f64::from(u8::from(v.abs() < rt));
                        st[1] += 1.0;
                        st[2] += v as f64;
                        st[3] += v as f64 * v as f64;
                    }
                    g.ranges[l][t] += gr;
                }
            }
            if l > 0 {
                // Through the activation of layer l − 1: delta = dL/dh · h'(pre).
                let (pre, act, deriv) = (&ws.pre[l - 1], &ws.act[l - 1], &mut ws.deriv[l - 1]);
                for j in 0..n_in {
                    deriv[j] = derivative(self.activation, pre[j], act[j]);
                    ws.delta[j] = ws.up[j] * deriv[j];
                }
            }
        }
    }

    /// Logits for one input of length `dims()[0]`.
    pub fn logits(&self, x: &[f32]) -> Vec<f32> {
        let mut ws = self.workspace();
        self.forward_into(x, &mut ws, &mut Injector::off());
        ws.z
    }

    /// Arg-max class; the lowest index wins ties.
    pub fn predict(&self, x: &[f32]) -> usize {
        super::argmax(&self.logits(x))
    }
}

/// Trains the MLP with softmax cross-entropy and mini-batch SGD with (heavy-ball) momentum,
/// linear learning-rate decay, L2 weight decay and input-noise augmentation.
/// Deterministic: the seed drives the init, the per-epoch shuffle and the input noise; the last
/// batch of an epoch may be smaller than `batch_size`. Parameters are updated layer by layer
/// from the input side, weight before bias.
pub fn train_mlp(train: &Dataset, cfg: &TrainConfig) -> Mlp {
    train_mlp_with(train, cfg, &TrainingConfig::default()).expect("a floating-point run reads no file")
}

/// [`train_mlp`] with a `[training]` section: hardware-aware noise, clipping and fine-tuning
/// (see [`crate::train::hwa`]). The default section gives [`train_mlp`]'s weights bit for bit.
pub fn train_mlp_with(train: &Dataset, cfg: &TrainConfig, hwa: &TrainingConfig) -> Result<Mlp, TrainError> {
    assert!(!train.is_empty(), "empty training set");
    assert!(cfg.batch_size > 0 && cfg.hidden.iter().all(|&h| h > 0), "batch_size and every hidden width must be > 0");
    let n_out = super::classes(train);
    let mut dims = vec![train.n_features];
    dims.extend_from_slice(&cfg.hidden);
    dims.push(n_out);
    let n_in = train.n_features;

    let mut rng = Pcg64Mcg::seed_from_u64(cfg.seed);
    let mut m = Mlp::init(&dims, cfg.activation, &mut rng);
    if let Some(path) = &hwa.init {
        load_params(path, m.params_mut())?;
    }
    let mut inj = Injector::new(hwa, cfg.seed);
    if hwa.input_range {
        m.ranges = m.layers.iter().map(|l| vec![hwa.input_range_init as f32; inj.tiles(l.n_in).count()]).collect();
    }
    // Batches each range was initialised from (aihwkit's `input_range_update_idx`).
    let mut range_updates: Vec<Vec<u32>> = m.ranges.iter().map(|r| vec![0; r.len()]).collect();

    // Gradient and velocity buffers, one per parameter tensor.
    let mut g = m.zeros_like();
    let mut v = g.clone();
    let mut ws = m.workspace();
    let mut noisy = vec![0.0f32; n_in];

    let (epochs, lr0) = (hwa.epochs.unwrap_or(cfg.epochs), hwa.lr.unwrap_or(cfg.lr));
    minibatch_epochs(train.len(), epochs, cfg.batch_size, lr0, &mut rng, |batch, lr, rng| {
        for gl in &mut g.layers {
            gl.w.fill(0.0);
            gl.b.fill(0.0);
        }
        for (gr, st) in g.ranges.iter_mut().zip(&mut ws.range_stats) {
            gr.fill(0.0);
            st.fill([0.0; 4]);
        }
        // This batch's noisy weights: the gradient is taken there and applied to the clean ones.
        let noisy_model = inj.perturbs_weights().then(|| {
            let mut c = m.clone();
            inj.perturb(c.params_mut());
            c
        });
        let fwd = noisy_model.as_ref().unwrap_or(&m);
        let inv_b = 1.0 / batch.len() as f32;
        for &i in batch {
            let x = noisy_row(&mut noisy, train, i, cfg.input_noise, rng);
            fwd.backprop(x, train.labels[i] as usize, inv_b, &mut ws, &mut g, &mut inj);
        }
        for ((ml, gl), vl) in m.layers.iter_mut().zip(&g.layers).zip(&mut v.layers) {
            sgd_update(&mut ml.w, &gl.w, &mut vl.w, lr, cfg.momentum, cfg.weight_decay);
            sgd_update(&mut ml.b, &gl.b, &mut vl.b, lr, cfg.momentum, 0.0);
        }
        super::ranges::update_ranges(&mut m.ranges, &g.ranges, &mut v.ranges, &ws.range_stats, &mut range_updates, hwa, lr, cfg.momentum);
        inj.clip(m.params_mut());
    });
    Ok(m)
}

/// Fraction of rows whose arg-max logit equals the label (float32 forward pass, no noise).
pub fn accuracy(model: &Mlp, data: &Dataset) -> f64 {
    accuracy_of(data, |x| model.predict(x))
}

/// The `model` metadata: the PyTorch module and what its input and output mean.
fn architecture(model: &Mlp) -> String {
    let mut modules = Vec::new();
    for (i, l) in model.layers.iter().enumerate() {
        if i > 0 {
            modules.push(torch_module(model.activation).to_string());
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
pub fn safetensors_bytes(model: &Mlp, training: &str) -> Result<Vec<u8>, TrainError> {
    let mut tensors: Vec<NamedTensor> = Vec::new();
    for (i, l) in model.layers.iter().enumerate() {
        tensors.push((format!("{}.weight", 2 * i), vec![l.n_out, l.n_in], &l.w));
        tensors.push((format!("{}.bias", 2 * i), vec![l.n_out], &l.b));
        if let Some(r) = model.ranges.get(i).filter(|r| !r.is_empty()) {
            tensors.push((format!("{}.input_range", 2 * i), vec![r.len()], r));
        }
    }
    state_dict_bytes(&tensors, &model_metadata(architecture(model), training))
}

/// Writes [`safetensors_bytes`] to `path`.
pub fn save_safetensors(model: &Mlp, training: &str, path: impl AsRef<Path>) -> Result<(), TrainError> {
    write_model(path.as_ref(), &safetensors_bytes(model, training)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::train::{shipped_digits, split_digits, DIGITS_FEATURES, GELU_A, GELU_C};

    fn digits() -> Dataset {
        shipped_digits()
    }

    /// Four well-separated synthetic classes, so the test needs no data file.
    fn synthetic(n: usize) -> Dataset {
        let mut rng = Pcg64Mcg::seed_from_u64(7);
        let mut x = Vec::new();
        let mut labels = Vec::new();
        for i in 0..n {
            let c = i % 4;
            for k in 0..DIGITS_FEATURES {
                let base = if k % 4 == c { 0.8 } else { 0.1 };
                x.push(base + 0.1 * unit_f32(&mut rng));
            }
            labels.push(c as u32);
        }
        Dataset { x, labels, n_features: DIGITS_FEATURES, spans: vec![], text: None, targets: vec![] }
    }

    fn tiny_cfg() -> TrainConfig {
        TrainConfig { hidden: vec![16], epochs: 5, batch_size: 16, ..TrainConfig::default() }
    }

    /// The layers as the classifier workload reads them from the written bytes.
    fn read_back(bytes: &[u8]) -> Vec<Dense> {
        let layers = crate::workload::io::parse_state_dict(bytes).unwrap();
        layers.into_iter().map(|l| Dense { n_in: l.weight.cols, n_out: l.weight.rows, w: l.weight.data, b: l.bias }).collect()
    }

    #[test]
    fn training_is_deterministic() {
        let d = synthetic(64);
        let a = train_mlp(&d, &tiny_cfg());
        let b = train_mlp(&d, &tiny_cfg());
        let bits = |m: &Mlp| -> Vec<u32> { m.layers.iter().flat_map(|l| l.w.iter().chain(&l.b)).map(|v| v.to_bits()).collect() };
        assert_eq!(bits(&a), bits(&b));
        assert_eq!(safetensors_bytes(&a, TRAINING_COMMAND).unwrap(), safetensors_bytes(&b, TRAINING_COMMAND).unwrap());
        let c = train_mlp(&d, &TrainConfig { seed: 1, ..tiny_cfg() });
        assert_ne!(bits(&a), bits(&c), "the seed must matter");
    }

    #[test]
    fn tiny_run_beats_chance() {
        let (tr, te) = split_digits(&digits());
        let small = tr.rows(0, 300);
        let m = train_mlp(&small, &tiny_cfg());
        let acc = accuracy(&m, &te);
        assert!(acc > 0.5, "test accuracy {acc} (chance is 0.1)");
    }

    #[test]
    fn safetensors_round_trip_and_layout() {
        let m = train_mlp(&synthetic(32), &TrainConfig { hidden: vec![64], epochs: 1, ..tiny_cfg() });
        let bytes = safetensors_bytes(&m, TRAINING_COMMAND).unwrap();
        assert_eq!(read_back(&bytes), m.layers);

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
    fn two_hidden_gelu_round_trips_and_backprop_matches_finite_differences() {
        // Round trip of a trained 64-12-8-10 GELU model through the writer and reader.
        let cfg = TrainConfig { hidden: vec![12, 8], activation: Activation::Gelu, epochs: 2, ..tiny_cfg() };
        let m = train_mlp(&synthetic(32), &cfg);
        assert_eq!(m.dims(), [64, 12, 8, 10]);
        let flags = TrainConfig { hidden: vec![12, 8], activation: Activation::Gelu, ..TrainConfig::default() };
        assert_eq!(training_command(&flags), "cargo run --release -- train-digits --hidden 12,8 --activation gelu --out FILE");
        let training = training_command(&cfg);
        assert!(training.contains("epochs: 2"), "{training}");
        let bytes = safetensors_bytes(&m, &training).unwrap();
        assert_eq!(read_back(&bytes), m.layers);
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
        let m = Mlp::init(&[5, 7, 6, 4], Activation::Gelu, &mut rng);
        let x: Vec<f32> = (0..5).map(|_| 4.0 * unit_f32(&mut rng) - 2.0).collect();
        let label = 2;
        let mut g = m.zeros_like();
        let mut ws = m.workspace();
        m.backprop(&x, label, 1.0, &mut ws, &mut g, &mut Injector::off());
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

    /// aihwkit's gradient of an input range (`post_backward`) on a softmax regression with two
    /// 32-input tiles: the inputs' gradient at the clipped input, summed over the inputs at or
    /// beyond the range where it would widen it; the forward clips and scales by the range.
    #[test]
    fn input_range_gradient_is_aihwkits() {
        let mut rng = Pcg64Mcg::seed_from_u64(3);
        let mut m = Mlp::init(&[DIGITS_FEATURES, 5], Activation::Relu, &mut rng);
        m.ranges = vec![vec![0.3, 0.6]];
        let x: Vec<f32> = (0..DIGITS_FEATURES).map(|k| (k as f32 * 0.37).sin()).collect();
        let hwa = TrainingConfig { input_range: true, max_in: 32, ..TrainingConfig::default() };
        let mut inj = Injector::new(&hwa, 0);
        let (mut ws, mut g) = (m.workspace(), m.zeros_like());
        m.backprop(&x, 2, 1.0, &mut ws, &mut g, &mut inj);
        let l = &m.layers[0];
        let clip = |k: usize| x[k].clamp(-m.ranges[0][k / 32], m.ranges[0][k / 32]);
        let z: Vec<f32> = (0..5).map(|o| l.b[o] + (0..DIGITS_FEATURES).map(|k| l.w[o * DIGITS_FEATURES + k] * clip(k)).sum::<f32>()).collect();
        let zmax = z.iter().copied().fold(f32::MIN, f32::max);
        let e: Vec<f32> = z.iter().map(|v| (v - zmax).exp()).collect();
        let d: Vec<f32> = e.iter().enumerate().map(|(o, v)| v / e.iter().sum::<f32>() - f32::from(u8::from(o == 2))).collect();
        for t in 0..2 {
            let r = m.ranges[0][t];
            let mut want = 0.0f32;
            for (k, &xk) in x.iter().enumerate().skip(32 * t).take(32) {
                let up: f32 = (0..5).map(|o| d[o] * l.w[o * DIGITS_FEATURES + k]).sum();
                if xk >= r {
                    want += up.min(0.0);
                } else if xk <= -r {
                    want -= up.max(0.0);
                }
            }
            assert!((g.ranges[0][t] - want).abs() < 1e-5, "tile {t}: {} vs {want}", g.ranges[0][t]);
            assert!(want != 0.0, "tile {t} clips inputs whose gradient widens it");
        }
        // The weights' gradient reads the clipped inputs.
        assert!((g.layers[0].w[0] - d[0] * clip(0)).abs() < 1e-6);
    }

    /// Trained with learned ranges: they move from their first value (the running mean of the
    /// inputs' 3 std, then the gradient), stay positive, and the file holds them per input tile
    /// (`0.input_range`, `2.input_range`) as the classifier workload reads them.
    #[test]
    fn input_ranges_are_learned_and_written() {
        let d = synthetic(64);
        let hwa = TrainingConfig::parse("[training]\ninput_range = true\ninput_range_init_from_data = 2\ndac_bits = 7\nmax_in = 32\n").unwrap();
        let m = train_mlp_with(&d, &tiny_cfg(), &hwa).unwrap();
        assert_eq!(m.ranges.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 1]);
        assert!(m.ranges.iter().flatten().all(|&r| r.is_finite() && r > 0.0 && r != 3.0), "{:?}", m.ranges);
        let layers = crate::workload::io::parse_state_dict(&safetensors_bytes(&m, "test").unwrap()).unwrap();
        assert_eq!(layers[0].input_range, m.ranges[0]);
        assert_eq!(layers[1].input_range, m.ranges[1]);
        assert!(hwa.summary().contains("learned input ranges"));
        // The other trainers do not learn ranges and say so.
        let e = crate::train::cnn::train_cnn_with(&d, &crate::train::cnn::CnnTrainConfig::default(), &hwa).unwrap_err().to_string();
        assert!(e.contains("the CNN trainer does not learn input ranges"), "{e}");
        for (text, want) in [
            ("input_range_decay = 0.01", "training.input_range_decay is set but training.input_range is not"),
            ("input_range = true\nbound_management = \"iterative\"\nout_bound = 10.0", "training.input_range with bound_management"),
            ("input_range = true\ninput_range_init = 0.0", "training.input_range_init = 0"),
        ] {
            let e = TrainingConfig::parse(&format!("[training]\n{text}\n")).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
