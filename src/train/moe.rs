//! Reproducible training of the shipped digits mixture-of-experts classifier
//! (`experiments/models/digits_moe.safetensors`, the model of `experiments/moe_digits.toml`).
//!
//! The network is one MoE layer as the `moe` workload runs it (Büchel et al., Nat. Comput. Sci.
//! 5, 13–26 (2025); Mixtral's gating): a router Linear(64 → E), the top-k of its logits (ties to
//! the lower index) with gates from the softmax over the chosen logits, and experts
//! Linear(64 → d_ff) → activation → Linear(d_ff → 10) whose outputs, scaled by the gates and
//! summed, are the class logits. Training: softmax cross-entropy, mini-batch SGD with momentum,
//! linear learning-rate decay, L2 weight decay and input-noise augmentation as in
//! [`crate::train::mlp::train_mlp`], plus the Switch Transformer load-balancing loss
//! (Fedus et al., JMLR 23 (2022), eq. 4: α · E · Σ_i f_i P_i) so that every expert is used.
//! Gradients reach the router through the gates of the chosen experts and through the balancing
//! loss; the top-k choice itself is not differentiated.
//!
//! Determinism: single-threaded, a fixed visiting order, and all randomness from
//! `rand_pcg::Pcg64Mcg` through `next_u64` (the helpers of `crate::train`): the same seed and
//! configuration give the same weights bit for bit. The state dict uses the `moe` workload's
//! names: `router.weight` [E, 64], `experts.{e}.w1.weight` [d_ff, 64], `experts.{e}.w2.weight`
//! [10, d_ff], each with its `.bias`.

// Index loops mirror the gradient equations (dL/dW[o][j] = δ_o h_j), so the backward pass reads
// beside them.
#![allow(clippy::needless_range_loop)]

use super::hwa::{load_params, Clipped, TrainingConfig};
use super::injector::{Injector, Param};
use super::{
    accuracy_of, activate, add_input_noise, derivative, minibatch_epochs, model_metadata, row, sgd_update, state_dict_bytes, torch_module, unit_f32,
    write_model, Dataset, Dense, NamedTensor, TrainError,
};
use crate::workload::Activation;
use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;
use std::path::Path;

/// Command that rebuilds the shipped model (the default configuration); recorded in its metadata.
pub const TRAINING_COMMAND: &str = "cargo run --release -- train-digits-moe --out experiments/models/digits_moe.safetensors";

/// Hyper-parameters of [`train_moe`]. `Default` is the shipped model's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct MoeTrainConfig {
    pub experts: usize,
    pub top_k: usize,
    /// Hidden width of each expert.
    pub d_ff: usize,
    pub activation: Activation,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    /// Std of the input noise added at every visit (as in `TrainConfig::input_noise`).
    pub input_noise: f32,
    /// Weight α of the load-balancing loss: 0.1 evens the experts' loads (27, 23, 20 and 30 % of
    /// the routing slots on the test rows; 0.02 left one expert with 49 %).
    pub balance: f32,
    pub seed: u64,
}

impl Default for MoeTrainConfig {
    fn default() -> Self {
        MoeTrainConfig {
            experts: 4,
            top_k: 2,
            d_ff: 32,
            activation: Activation::Gelu,
            epochs: 120,
            batch_size: 32,
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 1e-4,
            input_noise: 0.2,
            balance: 0.1,
            seed: 20_251_127,
        }
    }
}

/// The MoE classifier: router, then (FFN1, FFN2) of each expert.
#[derive(Debug, Clone, PartialEq)]
pub struct MoeNet {
    pub router: Dense,
    pub experts: Vec<(Dense, Dense)>,
    pub top_k: usize,
    pub activation: Activation,
}

/// One token's forward pass, kept for the backward pass.
struct Trace {
    /// Router logits.
    z: Vec<f32>,
    /// Chosen experts and their gates.
    chosen: Vec<(usize, f32)>,
    /// Per chosen expert: FFN1 pre-activation, activation, FFN2 output.
    pre: Vec<Vec<f32>>,
    hid: Vec<Vec<f32>>,
    out: Vec<Vec<f32>>,
    /// Class logits.
    y: Vec<f32>,
    /// The input as the router and FFN1 multiplied it, and each chosen expert's FFN2 input
    /// (after the DAC when training injects one; else copies): the weight gradients' inputs.
    xq: Vec<f32>,
    hidq: Vec<Vec<f32>>,
    /// The outputs the ADCs clipped (zero gradient): the router's, and per chosen expert its
    /// FFN1's and FFN2's.
    clip_z: Clipped,
    clip_pre: Vec<Clipped>,
    clip_out: Vec<Clipped>,
}

impl MoeNet {
    /// PyTorch's `nn.Linear` init (uniform ±1/√fan_in, weight before bias): router, then each
    /// expert's FFN1 and FFN2.
    fn init(n_in: usize, n_out: usize, cfg: &MoeTrainConfig, rng: &mut Pcg64Mcg) -> MoeNet {
        let mut layer = |n_in: usize, n_out: usize| {
            let bound = 1.0 / (n_in as f32).sqrt();
            let mut draw = |len: usize| (0..len).map(|_| (2.0 * unit_f32(rng) - 1.0) * bound).collect::<Vec<f32>>();
            let w = draw(n_out * n_in);
            let b = draw(n_out);
            Dense { w, b, n_in, n_out }
        };
        let router = layer(n_in, cfg.experts);
        let experts = (0..cfg.experts).map(|_| (layer(n_in, cfg.d_ff), layer(cfg.d_ff, n_out))).collect();
        MoeNet { router, experts, top_k: cfg.top_k, activation: cfg.activation }
    }

    fn zeros_like(&self) -> MoeNet {
        MoeNet {
            router: self.router.zeros_like(),
            experts: self.experts.iter().map(|(a, b)| (a.zeros_like(), b.zeros_like())).collect(),
            top_k: self.top_k,
            activation: self.activation,
        }
    }

    fn classes(&self) -> usize {
        self.experts[0].1.n_out
    }

    fn trace(&self, x: &[f32], inj: &mut Injector) -> Trace {
        // The router and every expert's first layer are crossbars reading the same input: one
        // DAC per tile slice, the same quantised copy for each.
        let mut xq = vec![0.0; x.len()];
        let mut z = vec![0.0; self.router.n_out];
        let mut clip_z = Clipped::default();
        inj.crossbar(&self.router.w, x, Some(&self.router.b), &mut xq, &mut z, &mut clip_z);
        let chosen = crate::workload::moe::top_k(&z, self.top_k);
        let mut t = Trace {
            z,
            chosen,
            pre: vec![],
            hid: vec![],
            out: vec![],
            y: vec![0.0; self.classes()],
            xq: vec![],
            hidq: vec![],
            clip_z,
            clip_pre: vec![],
            clip_out: vec![],
        };
        let mut scratch = vec![0.0; x.len()];
        for &(e, g) in &t.chosen {
            let (a, b) = &self.experts[e];
            let mut pre = vec![0.0; a.n_out];
            let (mut clip_pre, mut clip_out) = (Clipped::default(), Clipped::default());
            inj.crossbar(&a.w, x, Some(&a.b), &mut scratch, &mut pre, &mut clip_pre);
            let hid: Vec<f32> = pre.iter().map(|&v| activate(self.activation, v)).collect();
            let mut hidq = vec![0.0; hid.len()];
            let mut out = vec![0.0; b.n_out];
            inj.crossbar(&b.w, &hid, Some(&b.b), &mut hidq, &mut out, &mut clip_out);
            t.clip_pre.push(clip_pre);
            t.clip_out.push(clip_out);
            for (y, &o) in t.y.iter_mut().zip(&out) {
                *y += g * o;
            }
            t.pre.push(pre);
            t.hid.push(hid);
            t.hidq.push(hidq);
            t.out.push(out);
        }
        t.xq = xq;
        t
    }

    /// Class logits of one input.
    pub fn logits(&self, x: &[f32]) -> Vec<f32> {
        self.trace(x, &mut Injector::off()).y
    }

    /// Arg-max class (the lowest index wins ties).
    pub fn predict(&self, x: &[f32]) -> usize {
        super::argmax(&self.logits(x))
    }

    /// Adds `scale ×` the gradient of the cross-entropy of `label` to `g`, and of the balancing
    /// term with the batch's routing fractions `f` (weight `balance`).
    #[allow(clippy::too_many_arguments)]
    fn backprop(&self, x: &[f32], label: usize, scale: f32, f: &[f32], balance: f32, g: &mut MoeNet, inj: &mut Injector) {
        let t = self.trace(x, inj);
        let x = &t.xq[..];
        let ymax = t.y.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let ex: Vec<f32> = t.y.iter().map(|&v| (v - ymax).exp()).collect();
        let sum: f32 = ex.iter().sum();
        let dy: Vec<f32> = ex.iter().enumerate().map(|(o, &v)| (v / sum - if o == label { 1.0 } else { 0.0 }) * scale).collect();
        // Experts: dL/d(out_e) = g_e dy; dL/dg_e = dy · out_e.
        let mut dgate = Vec::with_capacity(t.chosen.len());
        for (k, &(e, gate)) in t.chosen.iter().enumerate() {
            let (a, b) = &self.experts[e];
            let (ga, gb) = &mut g.experts[e];
            dgate.push(dy.iter().zip(&t.out[k]).map(|(d, o)| d * o).sum::<f32>());
            let mut dh = vec![0.0f32; b.n_in];
            for o in 0..b.n_out {
                let d = gate * dy[o];
                gb.b[o] += d;
                for r in t.clip_out[k].passing(o, b.n_in) {
                    for j in r {
                        gb.w[o * b.n_in + j] += d * t.hidq[k][j];
                        dh[j] += d * b.w[o * b.n_in + j];
                    }
                }
            }
            for j in 0..a.n_out {
                let d = dh[j] * derivative(self.activation, t.pre[k][j], t.hid[k][j]);
                if d == 0.0 {
                    continue;
                }
                ga.b[j] += d;
                for r in t.clip_pre[k].passing(j, a.n_in) {
                    for (gw, &xi) in ga.w[j * a.n_in + r.start..j * a.n_in + r.end].iter_mut().zip(&x[r]) {
                        *gw += d * xi;
                    }
                }
            }
        }
        // Router: through the gates (softmax over the chosen logits) ...
        let mut dz = vec![0.0f32; self.router.n_out];
        let mean: f32 = t.chosen.iter().zip(&dgate).map(|(&(_, gate), d)| gate * d).sum();
        for (&(e, gate), d) in t.chosen.iter().zip(&dgate) {
            dz[e] += gate * (d - mean);
        }
        // ... and through the balancing loss α·E·Σ f_i P_i, P the batch mean of the full softmax:
        // d/dz_j = α·E·scale · p_j (f_j − Σ_i f_i p_i).
        if balance > 0.0 {
            let zmax = t.z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let p: Vec<f32> = t.z.iter().map(|&v| (v - zmax).exp()).collect();
            let ps: f32 = p.iter().sum();
            let p: Vec<f32> = p.iter().map(|v| v / ps).collect();
            let fp: f32 = f.iter().zip(&p).map(|(a, b)| a * b).sum();
            let e = self.router.n_out as f32;
            for j in 0..dz.len() {
                dz[j] += balance * e * scale * p[j] * (f[j] - fp);
            }
        }
        let r = &self.router;
        for (o, &d) in dz.iter().enumerate() {
            g.router.b[o] += d;
            for rg in t.clip_z.passing(o, r.n_in) {
                for (gw, &xi) in g.router.w[o * r.n_in + rg.start..o * r.n_in + rg.end].iter_mut().zip(&x[rg]) {
                    *gw += d * xi;
                }
            }
        }
    }

    /// Every parameter tensor by its state-dict name; the weights are crossbar matrices.
    pub fn params_mut(&mut self) -> Vec<Param<'_>> {
        fn dense(name: String, d: &mut Dense) -> [Param<'_>; 2] {
            let shape = (d.n_out, d.n_in);
            let Dense { w, b, .. } = d;
            [
                Param { name: format!("{name}.weight"), data: w, matrix: Some(shape), fixed: false },
                Param { name: format!("{name}.bias"), data: b, matrix: None, fixed: false },
            ]
        }
        let mut v: Vec<Param<'_>> = dense("router".into(), &mut self.router).into();
        for (j, (a, b)) in self.experts.iter_mut().enumerate() {
            v.extend(dense(format!("experts.{j}.w1"), a));
            v.extend(dense(format!("experts.{j}.w2"), b));
        }
        v
    }

    /// Every parameter tensor, router first, weight before bias (the update order).
    fn tensors_mut(&mut self) -> Vec<(&mut Vec<f32>, bool)> {
        let mut v: Vec<(&mut Vec<f32>, bool)> = vec![(&mut self.router.w, true), (&mut self.router.b, false)];
        for (a, b) in &mut self.experts {
            v.push((&mut a.w, true));
            v.push((&mut a.b, false));
            v.push((&mut b.w, true));
            v.push((&mut b.b, false));
        }
        v
    }
}

/// Trains the MoE classifier on `train` (see the module header). Deterministic.
pub fn train_moe(train: &Dataset, cfg: &MoeTrainConfig) -> MoeNet {
    train_moe_with(train, cfg, &TrainingConfig::default()).expect("a floating-point run reads no file")
}

/// [`train_moe`] with a `[training]` section (see [`crate::train::hwa`]); the default section
/// gives [`train_moe`]'s weights bit for bit. The routing fractions of the balancing loss come
/// from the clean router.
pub fn train_moe_with(train: &Dataset, cfg: &MoeTrainConfig, hwa: &TrainingConfig) -> Result<MoeNet, TrainError> {
    hwa.refuse_input_range("mixture-of-experts")?;
    assert!(!train.is_empty() && cfg.batch_size > 0 && cfg.d_ff > 0 && cfg.top_k >= 1 && cfg.top_k <= cfg.experts, "bad training configuration {cfg:?}");
    let n_out = super::classes(train);
    let mut rng = Pcg64Mcg::seed_from_u64(cfg.seed);
    let mut m = MoeNet::init(train.n_features, n_out, cfg, &mut rng);
    if let Some(path) = &hwa.init {
        load_params(path, m.params_mut())?;
    }
    let mut inj = Injector::new(hwa, cfg.seed);
    let mut g = m.zeros_like();
    let mut v = m.zeros_like();
    let mut noisy = vec![0.0f32; train.len() * train.n_features];
    minibatch_epochs(train.len(), hwa.epochs.unwrap_or(cfg.epochs), cfg.batch_size, hwa.lr.unwrap_or(cfg.lr), &mut rng, |batch, lr, rng| {
        for (p, _) in g.tensors_mut() {
            p.fill(0.0);
        }
        // The batch's inputs with their noise, then the fraction of its routing slots each
        // expert takes (the balancing loss's f, a constant of the step).
        for &i in batch {
            add_input_noise(&mut noisy[i * train.n_features..][..train.n_features], row(train, i), cfg.input_noise, rng);
        }
        let mut f = vec![0.0f32; cfg.experts];
        let mut z = vec![0.0f32; cfg.experts];
        for &i in batch {
            m.router.forward(&noisy[i * train.n_features..][..train.n_features], &mut z);
            for (e, _) in crate::workload::moe::top_k(&z, cfg.top_k) {
                f[e] += 1.0 / (batch.len() * cfg.top_k) as f32;
            }
        }
        let noisy_model = inj.perturbs_weights().then(|| {
            let mut c = m.clone();
            inj.perturb(c.params_mut());
            c
        });
        let fwd = noisy_model.as_ref().unwrap_or(&m);
        let inv_b = 1.0 / batch.len() as f32;
        for &i in batch {
            fwd.backprop(&noisy[i * train.n_features..][..train.n_features], train.labels[i] as usize, inv_b, &f, cfg.balance, &mut g, &mut inj);
        }
        let grads: Vec<Vec<f32>> = g.tensors_mut().into_iter().map(|(p, _)| p.clone()).collect();
        for (((p, decays), vp), gp) in m.tensors_mut().into_iter().zip(v.tensors_mut()).zip(&grads) {
            sgd_update(p, gp, vp.0, lr, cfg.momentum, if decays { cfg.weight_decay } else { 0.0 });
        }
        inj.clip(m.params_mut());
    });
    Ok(m)
}

/// Fraction of rows classified correctly (float32, no noise).
pub fn accuracy(m: &MoeNet, data: &Dataset) -> f64 {
    accuracy_of(data, |x| m.predict(x))
}

/// Share of routing slots each expert takes on `data` (E values summing to 1).
pub fn expert_load(m: &MoeNet, data: &Dataset) -> Vec<f64> {
    let mut load = vec![0.0; m.experts.len()];
    for i in 0..data.len() {
        let mut z = vec![0.0; m.router.n_out];
        m.router.forward(row(data, i), &mut z);
        for (e, _) in crate::workload::moe::top_k(&z, m.top_k) {
            load[e] += 1.0 / (data.len() * m.top_k) as f64;
        }
    }
    load
}

/// The safetensors bytes of the model, with the `moe` workload's tensor names and the metadata
/// `format = "pt"`, `model` (the layer's shape in words) and `training` (the rebuild command).
pub fn safetensors_bytes(m: &MoeNet, training: &str) -> Result<Vec<u8>, TrainError> {
    let (d, f, c) = (m.router.n_in, m.experts[0].0.n_out, m.classes());
    let model = format!(
        "mixture of experts: router nn.Linear({d}, {}), top-{} of its logits with gates softmax over the chosen; experts nn.Linear({d}, {f}), {}, nn.Linear({f}, {c}); output = the gate-weighted sum of the chosen experts = logits of classes 0..{}; input = pixel/16 of the UCI 8x8 digits",
        m.experts.len(),
        m.top_k,
        torch_module(m.activation),
        c - 1
    );
    let mut layers: Vec<(String, &Dense)> = vec![("router".into(), &m.router)];
    for (e, (a, b)) in m.experts.iter().enumerate() {
        layers.push((format!("experts.{e}.w1"), a));
        layers.push((format!("experts.{e}.w2"), b));
    }
    let mut tensors: Vec<NamedTensor> = Vec::new();
    for (name, l) in layers {
        tensors.push((format!("{name}.weight"), vec![l.n_out, l.n_in], &l.w));
        tensors.push((format!("{name}.bias"), vec![l.n_out], &l.b));
    }
    state_dict_bytes(&tensors, &model_metadata(model, training))
}

/// Writes [`safetensors_bytes`] to `path`.
pub fn save_safetensors(m: &MoeNet, training: &str, path: impl AsRef<Path>) -> Result<(), TrainError> {
    write_model(path.as_ref(), &safetensors_bytes(m, training)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::moe::{fp_forward, load_weights, MoeSettings};

    fn digits() -> (Dataset, Dataset) {
        crate::train::split_digits(&crate::train::shipped_digits())
    }

    /// The `moe` workload's floating-point forward pass on the written state dict computes the
    /// trainer's logits: same gating, activation, tensor names and layouts.
    #[test]
    fn the_workload_reads_back_the_trained_network() {
        let (train, test) = digits();
        let cfg = MoeTrainConfig { epochs: 2, ..MoeTrainConfig::default() };
        let net = train_moe(&train.rows(0, 200), &cfg);
        let path = std::env::temp_dir().join(format!("aimc-moe-{}.safetensors", std::process::id()));
        save_safetensors(&net, "test", &path).unwrap();
        let tokens = 50;
        let s: MoeSettings = toml::from_str(&format!(
            "d_model = 64\nd_ff = {}\nd_out = 10\nexperts = {}\ntop_k = {}\ntokens = {tokens}\nactivation = \"gelu\"\nmodel = {:?}",
            cfg.d_ff,
            cfg.experts,
            cfg.top_k,
            path.display().to_string()
        ))
        .unwrap();
        let s = MoeSettings { inputs: Some(test.x[..tokens * 64].to_vec().into()), ..s };
        let w = load_weights(&s).unwrap();
        let (y, _) = fp_forward(&s, &w);
        for t in 0..tokens {
            let want = net.logits(row(&test, t));
            for (a, b) in y[t * 10..(t + 1) * 10].iter().zip(&want) {
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "token {t}: workload {a}, trainer {b}");
            }
        }
        let _ = std::fs::remove_file(path);
    }
}
