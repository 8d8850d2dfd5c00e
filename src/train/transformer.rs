//! Reproducible training of the shipped transformers (`experiments/models/listops_transformer_softmax.safetensors`,
//! `listops_transformer_kernel.safetensors`, `digits_seq_transformer.safetensors`): the Long Range
//! Arena ListOps configuration of IBM's analog-transformer code (Büchel et al., "Kernel
//! approximation using analog in-memory computing", Nature Machine Intelligence 2024, whose LRA
//! models follow Tay et al., ICLR 2021), with softmax or with kernel-approximated attention.
//!
//! The model, per sequence of n non-padding tokens (padding tokens, id 0, are left out: they are
//! masked as keys, and their outputs reach nothing but the pooling, which skips them):
//! - x = LayerNorm(√d · E[token] + PE[position]), PE the sinusoids of Vaswani et al. (2017,
//!   §3.5): PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(p / 10000^(2i/d));
//! - one post-LN encoder layer applied `repeat` times with the same weights:
//!   x = LN1(x + MHA(x)), x = LN2(x + W2 GELU(W1 x + b1) + b2), GELU the exact erf form;
//!   MHA with bias-free Q, K, V (one stacked `in_proj_weight`, rows Q, K, V) and `out_proj` with
//!   bias; per head either softmax(q kᵀ / √d_h) v or linear attention with positive random
//!   features (FAVOR+, Choromanski et al., ICLR 2021, eq. for φ⁺ with the ± pair):
//!   x̃ = x · d_h^(−1/4), h = W x̃, φ(x) = exp([h, −h] − ‖x̃‖²/2 − log √m) (the m/2 "+h" features
//!   first), out_i = Σ_j (φ(q_i)·φ(k_j)) v_j / Σ_j φ(q_i)·φ(k_j), W one fixed projection
//!   [m/2, d_h] of orthogonal blocks with rows of norm √d_h, shared by Q and K, heads and layers,
//!   drawn once from the seed and never trained or redrawn;
//! - mean over the tokens, then Linear(d, hidden), GELU, Linear(hidden, classes).
//!
//! Numerics. Training runs the same code in f32 (the shipped weights) that the gradient test
//! runs in f64 ([`Real`]). Kernel attention subtracts a constant inside each exp: per query the
//! largest of its exponents, per head and sequence the largest key exponent. Each query's constant
//! scales its numerator and denominator alike, and the key constant scales every term of both
//! sums alike, so the output is unchanged (and its gradient with respect to the constants is
//! zero, so treating them as constants is exact); they only keep exp inside the f32 range.
//! The written model is the plain formula above, with no such constants.
//!
//! Optimiser: Adam (Kingma & Ba, 2015) with linear warm-up and linear decay to zero, global
//! gradient-norm clipping, softmax cross-entropy, mini-batches reshuffled every epoch.
//!
//! Determinism: single-threaded with a fixed order of every sum (the matrix loops add over the
//! input index in order, whatever the compiler vectorises across outputs), all randomness from
//! `rand_pcg::Pcg64Mcg` through `next_u64` (Gaussians as Irwin–Hall(12) − 6, no libm), so the
//! same seed and configuration give the same bytes on the same platform.

// Index loops mirror the gradient equations, so the backward pass reads beside them.
#![allow(clippy::needless_range_loop, clippy::too_many_arguments)]

use rand::{RngCore, SeedableRng};
use rand_pcg::Pcg64Mcg;
use std::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub, SubAssign};
use std::path::Path;

use super::hwa::{load_params, Injector, Param, TrainingConfig};
use super::listops::{self, ListOpsConfig, SeqData};
use super::{model_metadata, state_dict_bytes, write_model, NamedTensor, TrainError};

/// LayerNorm's ε (PyTorch's default).
pub const LN_EPS: f64 = 1e-5;

/// The float type the network computes in: f32 for training, f64 for the gradient check.
pub trait Real:
    Copy
    + Default
    + PartialOrd
    + std::fmt::Debug
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + 'static
{
    fn of(v: f64) -> Self;
    fn to_f64(self) -> f64;
    fn exp(self) -> Self;
    fn sqrt(self) -> Self;
    fn erf(self) -> Self;
}

impl Real for f32 {
    fn of(v: f64) -> f32 {
        v as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn exp(self) -> f32 {
        f32::exp(self)
    }
    fn sqrt(self) -> f32 {
        f32::sqrt(self)
    }
    fn erf(self) -> f32 {
        statrs::function::erf::erf(self as f64) as f32
    }
}

impl Real for f64 {
    fn of(v: f64) -> f64 {
        v
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn exp(self) -> f64 {
        f64::exp(self)
    }
    fn sqrt(self) -> f64 {
        f64::sqrt(self)
    }
    fn erf(self) -> f64 {
        statrs::function::erf::erf(self)
    }
}

fn max<T: Real>(a: T, b: T) -> T {
    if b > a {
        b
    } else {
        a
    }
}

/// The exact GELU, 0.5 v (1 + erf(v/√2)) (PyTorch's `nn.GELU()`).
pub fn gelu<T: Real>(v: T) -> T {
    T::of(0.5) * v * (T::of(1.0) + (v * T::of(std::f64::consts::FRAC_1_SQRT_2)).erf())
}

/// d GELU / dv = Φ(v) + v φ(v).
fn gelu_deriv<T: Real>(v: T) -> T {
    let cdf = T::of(0.5) * (T::of(1.0) + (v * T::of(std::f64::consts::FRAC_1_SQRT_2)).erf());
    cdf + v * (T::of(-0.5) * v * v).exp() * T::of(1.0 / (2.0 * std::f64::consts::PI).sqrt())
}

/// Attention of the encoder layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attention {
    /// softmax(q kᵀ / √d_h) over the non-padding keys.
    Softmax,
    /// Linear attention with positive random features (FAVOR+), non-padding keys only.
    Kernel,
}

impl Attention {
    pub fn name(self) -> &'static str {
        match self {
            Attention::Softmax => "softmax",
            Attention::Kernel => "kernel",
        }
    }
}

/// The training data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Generated ListOps ([`super::listops`]).
    ListOps,
    /// The digits as 64-token pixel sequences (token = pixel + 1), the digits CSV's split.
    Digits,
}

impl Task {
    pub fn name(self) -> &'static str {
        match self {
            Task::ListOps => "listops",
            Task::Digits => "digits",
        }
    }
}

/// Shapes of the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    pub vocab: usize,
    /// Positions (the longest sequence).
    pub max_len: usize,
    pub d_model: usize,
    pub heads: usize,
    pub d_ff: usize,
    /// Width of the classifier's hidden layer.
    pub hidden: usize,
    pub classes: usize,
    /// Random features m of kernel attention (m/2 projection rows, each giving a ± pair).
    pub features: usize,
    /// Times the one encoder layer is applied.
    pub repeat: usize,
}

impl Dims {
    /// The LRA ListOps configuration: d 64, 2 heads of 32, FFN 128, classifier 128, 256
    /// features, the layer applied twice.
    pub fn lra(vocab: usize, max_len: usize) -> Dims {
        Dims { vocab, max_len, d_model: 64, heads: 2, d_ff: 128, hidden: 128, classes: listops::CLASSES, features: 256, repeat: 2 }
    }

    pub fn d_head(&self) -> usize {
        self.d_model / self.heads
    }
}

/// Parameter tensors, in the order they are initialised and updated.
pub const EMBEDDING: usize = 0;
pub const EMBED_NORM_W: usize = 1;
pub const EMBED_NORM_B: usize = 2;
pub const IN_PROJ: usize = 3;
pub const OUT_PROJ_W: usize = 4;
pub const OUT_PROJ_B: usize = 5;
pub const LINEAR1_W: usize = 6;
pub const LINEAR1_B: usize = 7;
pub const LINEAR2_W: usize = 8;
pub const LINEAR2_B: usize = 9;
pub const NORM1_W: usize = 10;
pub const NORM1_B: usize = 11;
pub const NORM2_W: usize = 12;
pub const NORM2_B: usize = 13;
pub const CLS0_W: usize = 14;
pub const CLS0_B: usize = 15;
pub const CLS2_W: usize = 16;
pub const CLS2_B: usize = 17;
pub const N_PARAMS: usize = 18;

/// State-dict name and shape of every parameter tensor (PyTorch `nn.TransformerEncoder` names).
pub fn param_names(d: &Dims) -> Vec<(&'static str, Vec<usize>)> {
    let (m, f, h, c) = (d.d_model, d.d_ff, d.hidden, d.classes);
    vec![
        ("embedding.weight", vec![d.vocab, m]),
        ("embed_norm.weight", vec![m]),
        ("embed_norm.bias", vec![m]),
        ("encoder.layers.0.self_attn.in_proj_weight", vec![3 * m, m]),
        ("encoder.layers.0.self_attn.out_proj.weight", vec![m, m]),
        ("encoder.layers.0.self_attn.out_proj.bias", vec![m]),
        ("encoder.layers.0.linear1.weight", vec![f, m]),
        ("encoder.layers.0.linear1.bias", vec![f]),
        ("encoder.layers.0.linear2.weight", vec![m, f]),
        ("encoder.layers.0.linear2.bias", vec![m]),
        ("encoder.layers.0.norm1.weight", vec![m]),
        ("encoder.layers.0.norm1.bias", vec![m]),
        ("encoder.layers.0.norm2.weight", vec![m]),
        ("encoder.layers.0.norm2.bias", vec![m]),
        ("classifier.0.weight", vec![h, m]),
        ("classifier.0.bias", vec![h]),
        ("classifier.2.weight", vec![c, h]),
        ("classifier.2.bias", vec![c]),
    ]
}

/// Name of the fixed feature projection (kernel attention only), [m/2, d_h].
pub const FEATURE_PROJECTION: &str = "encoder.layers.0.self_attn.feature_projection.weight";

/// The network: trained parameters, the fixed feature projection and the positional table.
#[derive(Debug, Clone, PartialEq)]
pub struct Net<T> {
    pub dims: Dims,
    pub attention: Attention,
    /// Indexed by [`EMBEDDING`] … [`CLS2_B`]; row-major, PyTorch layouts.
    pub params: Vec<Vec<T>>,
    /// [m/2, d_h], row-major (kernel attention; empty for softmax).
    pub projection: Vec<T>,
    /// [max_len, d_model] sinusoids.
    pub positions: Vec<T>,
}

use super::normal;

fn uniform(rng: &mut Pcg64Mcg, bound: f64) -> f64 {
    ((rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64) * 2.0 - 1.0) * bound
}

/// The sinusoidal positions, computed in f64 and rounded once.
pub fn sinusoids(max_len: usize, d: usize) -> Vec<f64> {
    let mut pe = vec![0.0; max_len * d];
    for p in 0..max_len {
        for i in 0..d / 2 {
            let angle = p as f64 / 10000f64.powf(2.0 * i as f64 / d as f64);
            pe[p * d + 2 * i] = angle.sin();
            pe[p * d + 2 * i + 1] = angle.cos();
        }
    }
    pe
}

/// The fixed feature projection: blocks of d_h rows, each block the Gram–Schmidt orthonormal
/// basis of a Gaussian d_h × d_h matrix (in f64), every row then scaled to norm √d_h; `rows`
/// rows in all (the last block cut if needed).
pub fn orthogonal_projection(rows: usize, d_h: usize, rng: &mut Pcg64Mcg) -> Vec<f64> {
    let mut w = Vec::with_capacity(rows * d_h);
    while w.len() < rows * d_h {
        let mut block: Vec<Vec<f64>> = Vec::with_capacity(d_h);
        while block.len() < d_h {
            let mut v: Vec<f64> = (0..d_h).map(|_| normal(rng)).collect();
            for b in &block {
                let dot: f64 = v.iter().zip(b).map(|(x, y)| x * y).sum();
                for (x, y) in v.iter_mut().zip(b) {
                    *x -= dot * y;
                }
            }
            let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            // A draw (almost) in the span of the rows so far: draw again.
            if norm < 1e-6 {
                continue;
            }
            block.push(v.iter().map(|x| x / norm).collect());
        }
        for b in block {
            w.extend(b.iter().map(|x| x * (d_h as f64).sqrt()));
        }
    }
    w.truncate(rows * d_h);
    w
}

/// y[t] = b + W x[t] for every row t, with W given transposed ([d_in, d_out]) so the inner loop
/// runs over outputs: each output still sums its inputs in index order.
fn linear<T: Real>(x: &[T], d_in: usize, wt: &[T], b: Option<&[T]>, d_out: usize, y: &mut [T]) {
    for (xt, yt) in x.chunks_exact(d_in).zip(y.chunks_exact_mut(d_out)) {
        match b {
            Some(b) => yt.copy_from_slice(b),
            None => yt.fill(T::default()),
        }
        for (i, &a) in xt.iter().enumerate() {
            for (yo, &w) in yt.iter_mut().zip(&wt[i * d_out..(i + 1) * d_out]) {
                *yo += a * w;
            }
        }
    }
}

/// Hardware-aware training's output noise on the rows of a [`linear`] output `y` [n, d_out]
/// whose input was `x` [n, d_in] (σ = output_noise · max|x_t| per row); nothing without it.
fn output_noise<T: Real>(inj: &mut Injector, x: &[T], d_in: usize, y: &mut [T], d_out: usize) {
    if inj.cfg.output_noise <= 0.0 {
        return;
    }
    for (xt, yt) in x.chunks_exact(d_in).zip(y.chunks_exact_mut(d_out)) {
        let xmax = xt.iter().fold(0.0f64, |m, v| m.max(v.to_f64().abs())) as f32;
        let mut y32: Vec<f32> = yt.iter().map(|v| v.to_f64() as f32).collect();
        inj.output_noise(&mut y32, xmax);
        for (a, b) in yt.iter_mut().zip(y32) {
            *a = T::of(b as f64);
        }
    }
}

/// Backward of [`linear`] with W [d_out, d_in]: gw += dyᵀ x, gb += Σ_t dy, dx += dy W.
fn linear_back<T: Real>(x: &[T], d_in: usize, w: &[T], dy: &[T], d_out: usize, gw: &mut [T], mut gb: Option<&mut [T]>, mut dx: Option<&mut [T]>) {
    for (t, (xt, dyt)) in x.chunks_exact(d_in).zip(dy.chunks_exact(d_out)).enumerate() {
        for (o, &g) in dyt.iter().enumerate() {
            if let Some(gb) = gb.as_deref_mut() {
                gb[o] += g;
            }
            for (gwk, &xk) in gw[o * d_in..(o + 1) * d_in].iter_mut().zip(xt) {
                *gwk += g * xk;
            }
            if let Some(dx) = dx.as_deref_mut() {
                for (dxk, &wk) in dx[t * d_in..(t + 1) * d_in].iter_mut().zip(&w[o * d_in..(o + 1) * d_in]) {
                    *dxk += g * wk;
                }
            }
        }
    }
}

fn transpose<T: Real>(w: &[T], rows: usize, cols: usize) -> Vec<T> {
    let mut t = vec![T::default(); w.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = w[r * cols + c];
        }
    }
    t
}

/// LayerNorm of every row of `x` (width d): writes y, x̂ and 1/σ.
fn layer_norm<T: Real>(x: &[T], d: usize, g: &[T], b: &[T], y: &mut [T], xhat: &mut [T], rstd: &mut [T]) {
    let inv_d = T::of(1.0 / d as f64);
    for (t, xt) in x.chunks_exact(d).enumerate() {
        let mut mu = T::default();
        for &v in xt {
            mu += v;
        }
        mu *= inv_d;
        let mut var = T::default();
        for &v in xt {
            var += (v - mu) * (v - mu);
        }
        let r = T::of(1.0) / (var * inv_d + T::of(LN_EPS)).sqrt();
        rstd[t] = r;
        for k in 0..d {
            let h = (xt[k] - mu) * r;
            xhat[t * d + k] = h;
            y[t * d + k] = h * g[k] + b[k];
        }
    }
}

/// Backward of [`layer_norm`]: gg += Σ dy x̂, gb += Σ dy, and dx (overwritten).
fn layer_norm_back<T: Real>(dy: &[T], d: usize, g: &[T], xhat: &[T], rstd: &[T], gg: &mut [T], gb: &mut [T], dx: &mut [T]) {
    let inv_d = T::of(1.0 / d as f64);
    for (t, dyt) in dy.chunks_exact(d).enumerate() {
        let xh = &xhat[t * d..(t + 1) * d];
        let (mut m1, mut m2) = (T::default(), T::default());
        for k in 0..d {
            gg[k] += dyt[k] * xh[k];
            gb[k] += dyt[k];
            let dxh = dyt[k] * g[k];
            m1 += dxh;
            m2 += dxh * xh[k];
        }
        m1 *= inv_d;
        m2 *= inv_d;
        for k in 0..d {
            dx[t * d + k] = rstd[t] * (dyt[k] * g[k] - m1 - xh[k] * m2);
        }
    }
}

/// Transposed weight matrices of one step (the forward pass's layouts).
struct Prepared<T> {
    in_proj: Vec<T>,
    out_proj: Vec<T>,
    linear1: Vec<T>,
    linear2: Vec<T>,
    /// The feature projection transposed, [d_h, m/2].
    projection: Vec<T>,
}

/// One application of the encoder layer, kept for the backward pass.
struct LayerTrace<T> {
    /// Input [n, d].
    x: Vec<T>,
    /// [n, 3d]: Q, K, V.
    qkv: Vec<T>,
    /// Softmax: probabilities [heads, n, n].
    probs: Vec<T>,
    /// Kernel: features of queries and keys [heads, n, m], Σ_j φ(k_j) v_jᵀ [heads, m, d_h],
    /// Σ_j φ(k_j) [heads, m] and the denominators [heads, n].
    phi_q: Vec<T>,
    phi_k: Vec<T>,
    kv: Vec<T>,
    z: Vec<T>,
    den: Vec<T>,
    /// Heads' outputs, concatenated [n, d].
    att: Vec<T>,
    xhat1: Vec<T>,
    rstd1: Vec<T>,
    y1: Vec<T>,
    ff_pre: Vec<T>,
    ff_act: Vec<T>,
    xhat2: Vec<T>,
    rstd2: Vec<T>,
}

/// The forward pass of one sequence.
struct Trace<T> {
    n: usize,
    xhat0: Vec<T>,
    rstd0: Vec<T>,
    layers: Vec<LayerTrace<T>>,
    pool: Vec<T>,
    c_pre: Vec<T>,
    c_act: Vec<T>,
    logits: Vec<T>,
}

impl<T: Real> Net<T> {
    /// A fresh network: embedding N(0, 1/d) (so √d · E has unit scale, as the sinusoids), LayerNorms
    /// (1, 0), `in_proj_weight` Xavier-uniform and `out_proj.bias` 0 (as `nn.MultiheadAttention`),
    /// other Linear layers PyTorch's default uniform ±1/√fan_in; then the feature projection
    /// (kernel attention only, so both attentions start from the same weights).
    pub fn init(dims: Dims, attention: Attention, rng: &mut Pcg64Mcg) -> Net<T> {
        assert!(dims.heads > 0 && dims.d_model.is_multiple_of(dims.heads) && dims.features.is_multiple_of(2), "bad dimensions {dims:?}");
        let names = param_names(&dims);
        let mut params = Vec::with_capacity(N_PARAMS);
        let (m, f, h) = (dims.d_model as f64, dims.d_ff as f64, dims.hidden as f64);
        for (k, (_, shape)) in names.iter().enumerate() {
            let len: usize = shape.iter().product();
            let v: Vec<f64> = match k {
                EMBEDDING => (0..len).map(|_| normal(rng) / m.sqrt()).collect(),
                EMBED_NORM_W | NORM1_W | NORM2_W => vec![1.0; len],
                EMBED_NORM_B | NORM1_B | NORM2_B | OUT_PROJ_B => vec![0.0; len],
                IN_PROJ => (0..len).map(|_| uniform(rng, (6.0 / (m + 3.0 * m)).sqrt())).collect(),
                OUT_PROJ_W | LINEAR1_W | LINEAR1_B | CLS0_W | CLS0_B => (0..len).map(|_| uniform(rng, 1.0 / m.sqrt())).collect(),
                LINEAR2_W | LINEAR2_B => (0..len).map(|_| uniform(rng, 1.0 / f.sqrt())).collect(),
                _ => (0..len).map(|_| uniform(rng, 1.0 / h.sqrt())).collect(),
            };
            params.push(v.into_iter().map(T::of).collect());
        }
        let projection = match attention {
            Attention::Softmax => vec![],
            Attention::Kernel => orthogonal_projection(dims.features / 2, dims.d_head(), rng).into_iter().map(T::of).collect(),
        };
        let positions = sinusoids(dims.max_len, dims.d_model).into_iter().map(T::of).collect();
        Net { dims, attention, params, projection, positions }
    }

    /// The same network in another float type.
    pub fn cast<U: Real>(&self) -> Net<U> {
        let c = |v: &Vec<T>| v.iter().map(|x| U::of(x.to_f64())).collect::<Vec<U>>();
        Net {
            dims: self.dims,
            attention: self.attention,
            params: self.params.iter().map(c).collect(),
            projection: c(&self.projection),
            positions: c(&self.positions),
        }
    }

    /// All-zero tensors of the parameters' shapes.
    pub fn zero_grads(&self) -> Vec<Vec<T>> {
        self.params.iter().map(|p| vec![T::default(); p.len()]).collect()
    }

    fn prepare(&self) -> Prepared<T> {
        let d = &self.dims;
        let p = &self.params;
        Prepared {
            in_proj: transpose(&p[IN_PROJ], 3 * d.d_model, d.d_model),
            out_proj: transpose(&p[OUT_PROJ_W], d.d_model, d.d_model),
            linear1: transpose(&p[LINEAR1_W], d.d_ff, d.d_model),
            linear2: transpose(&p[LINEAR2_W], d.d_model, d.d_ff),
            projection: transpose(&self.projection, self.projection.len() / d.d_head().max(1), d.d_head()),
        }
    }

    /// The exponents of φ for one query or key (d_h values of Q or K) into `phi` (m values):
    /// [h, −h] + offset; the caller shifts them and takes exp.
    fn features(&self, prep: &Prepared<T>, x: &[T], phi: &mut [T]) {
        let half = self.dims.features / 2;
        let s = T::of((self.dims.d_head() as f64).powf(-0.25));
        let mut sq = T::default();
        let (h, minus) = phi.split_at_mut(half);
        h.fill(T::default());
        // h = W x̃ as a sum over the inputs in order (W transposed, so the loop runs over rows).
        for (c, &v) in x.iter().enumerate() {
            let xs = v * s;
            sq += xs * xs;
            for (hr, &w) in h.iter_mut().zip(&prep.projection[c * half..(c + 1) * half]) {
                *hr += xs * w;
            }
        }
        let off = T::of(-0.5) * sq - T::of((self.dims.features as f64).sqrt().ln());
        for (hr, mr) in h.iter_mut().zip(minus.iter_mut()) {
            *mr = -*hr + off;
            *hr += off;
        }
    }

    /// d φ → d x for one query or key (the exponent shift is a constant: see the module header).
    fn features_back(&self, x: &[T], phi: &[T], dphi: &[T], dx: &mut [T]) {
        let dh = self.dims.d_head();
        let half = self.dims.features / 2;
        let s = T::of((dh as f64).powf(-0.25));
        let mut doff = T::default();
        for f in 0..2 * half {
            doff += dphi[f] * phi[f];
        }
        for c in 0..dh {
            dx[c] = -(doff * x[c] * s) * s;
        }
        for r in 0..half {
            let dh_r = dphi[r] * phi[r] - dphi[half + r] * phi[half + r];
            for (dxc, &w) in dx.iter_mut().zip(&self.projection[r * dh..(r + 1) * dh]) {
                *dxc += dh_r * w * s;
            }
        }
    }

    /// Multi-head attention of `qkv` [n, 3d] into `lt.att`, filling the layer trace.
    fn attention_forward(&self, prep: &Prepared<T>, n: usize, lt: &mut LayerTrace<T>) {
        let d = self.dims.d_model;
        let dh = self.dims.d_head();
        let heads = self.dims.heads;
        let qkv = &lt.qkv;
        match self.attention {
            Attention::Softmax => {
                let sc = T::of(1.0 / (dh as f64).sqrt());
                lt.probs = vec![T::default(); heads * n * n];
                for h in 0..heads {
                    for i in 0..n {
                        let q = &qkv[i * 3 * d + h * dh..][..dh];
                        let row = &mut lt.probs[(h * n + i) * n..][..n];
                        let mut mx = T::of(f64::NEG_INFINITY);
                        for j in 0..n {
                            let k = &qkv[j * 3 * d + d + h * dh..][..dh];
                            let mut s = T::default();
                            for c in 0..dh {
                                s += q[c] * k[c];
                            }
                            row[j] = s * sc;
                            mx = max(mx, row[j]);
                        }
                        let mut sum = T::default();
                        for r in row.iter_mut() {
                            *r = (*r - mx).exp();
                            sum += *r;
                        }
                        for r in row.iter_mut() {
                            *r = *r / sum;
                        }
                        let out = &mut lt.att[i * d + h * dh..][..dh];
                        out.fill(T::default());
                        for j in 0..n {
                            let p = row[j];
                            for (o, &v) in out.iter_mut().zip(&qkv[j * 3 * d + 2 * d + h * dh..][..dh]) {
                                *o += p * v;
                            }
                        }
                    }
                }
            }
            Attention::Kernel => {
                let m = self.dims.features;
                lt.phi_q = vec![T::default(); heads * n * m];
                lt.phi_k = vec![T::default(); heads * n * m];
                lt.kv = vec![T::default(); heads * m * dh];
                lt.z = vec![T::default(); heads * m];
                lt.den = vec![T::default(); heads * n];
                for h in 0..heads {
                    // Keys: exponents, then one shift for the whole head.
                    let pk = &mut lt.phi_k[h * n * m..(h + 1) * n * m];
                    let mut mx = T::of(f64::NEG_INFINITY);
                    for j in 0..n {
                        self.features(prep, &qkv[j * 3 * d + d + h * dh..][..dh], &mut pk[j * m..(j + 1) * m]);
                        for &a in &pk[j * m..(j + 1) * m] {
                            mx = max(mx, a);
                        }
                    }
                    for a in pk.iter_mut() {
                        *a = (*a - mx).exp();
                    }
                    let kv = &mut lt.kv[h * m * dh..(h + 1) * m * dh];
                    let z = &mut lt.z[h * m..(h + 1) * m];
                    for j in 0..n {
                        let v = &qkv[j * 3 * d + 2 * d + h * dh..][..dh];
                        for f in 0..m {
                            let p = pk[j * m + f];
                            z[f] += p;
                            for (o, &vc) in kv[f * dh..(f + 1) * dh].iter_mut().zip(v) {
                                *o += p * vc;
                            }
                        }
                    }
                    // Queries: each shifted by its own largest exponent.
                    for i in 0..n {
                        let pq = &mut lt.phi_q[(h * n + i) * m..][..m];
                        self.features(prep, &qkv[i * 3 * d + h * dh..][..dh], pq);
                        let mx = pq.iter().fold(T::of(f64::NEG_INFINITY), |a, &b| max(a, b));
                        for a in pq.iter_mut() {
                            *a = (*a - mx).exp();
                        }
                        let out = &mut lt.att[i * d + h * dh..][..dh];
                        out.fill(T::default());
                        let mut den = T::default();
                        for f in 0..m {
                            let p = pq[f];
                            den += p * z[f];
                            for (o, &k) in out.iter_mut().zip(&kv[f * dh..(f + 1) * dh]) {
                                *o += p * k;
                            }
                        }
                        lt.den[h * n + i] = den;
                        for o in out.iter_mut() {
                            *o = *o / den;
                        }
                    }
                }
            }
        }
    }

    /// Backward of [`Self::attention_forward`]: d att → d qkv.
    fn attention_back(&self, n: usize, lt: &LayerTrace<T>, datt: &[T], dqkv: &mut [T]) {
        let d = self.dims.d_model;
        let dh = self.dims.d_head();
        let qkv = &lt.qkv;
        for h in 0..self.dims.heads {
            match self.attention {
                Attention::Softmax => {
                    let sc = T::of(1.0 / (dh as f64).sqrt());
                    let mut ds = vec![T::default(); n];
                    for i in 0..n {
                        let row = &lt.probs[(h * n + i) * n..][..n];
                        let dout = &datt[i * d + h * dh..][..dh];
                        let mut dot = T::default();
                        for j in 0..n {
                            let v = &qkv[j * 3 * d + 2 * d + h * dh..][..dh];
                            let mut dp = T::default();
                            for c in 0..dh {
                                dp += dout[c] * v[c];
                            }
                            ds[j] = dp;
                            dot += row[j] * dp;
                            for (dv, &g) in dqkv[j * 3 * d + 2 * d + h * dh..][..dh].iter_mut().zip(dout) {
                                *dv += row[j] * g;
                            }
                        }
                        for j in 0..n {
                            let g = row[j] * (ds[j] - dot) * sc;
                            for c in 0..dh {
                                let (qc, kc) = (qkv[i * 3 * d + h * dh + c], qkv[j * 3 * d + d + h * dh + c]);
                                dqkv[i * 3 * d + h * dh + c] += g * kc;
                                dqkv[j * 3 * d + d + h * dh + c] += g * qc;
                            }
                        }
                    }
                }
                Attention::Kernel => {
                    let m = self.dims.features;
                    let kv = &lt.kv[h * m * dh..(h + 1) * m * dh];
                    let z = &lt.z[h * m..(h + 1) * m];
                    let mut dkv = vec![T::default(); m * dh];
                    let mut dz = vec![T::default(); m];
                    let mut dphi = vec![T::default(); m];
                    let mut dx = vec![T::default(); dh];
                    for i in 0..n {
                        let den = lt.den[h * n + i];
                        let dout = &datt[i * d + h * dh..][..dh];
                        let out = &lt.att[i * d + h * dh..][..dh];
                        let dnum: Vec<T> = dout.iter().map(|&g| g / den).collect();
                        let mut dden = T::default();
                        for c in 0..dh {
                            dden -= dout[c] * out[c];
                        }
                        dden = dden / den;
                        let pq = &lt.phi_q[(h * n + i) * m..][..m];
                        for f in 0..m {
                            let mut s = z[f] * dden;
                            for (&k, &g) in kv[f * dh..(f + 1) * dh].iter().zip(&dnum) {
                                s += k * g;
                            }
                            dphi[f] = s;
                            dz[f] += pq[f] * dden;
                            for (o, &g) in dkv[f * dh..(f + 1) * dh].iter_mut().zip(&dnum) {
                                *o += pq[f] * g;
                            }
                        }
                        self.features_back(&qkv[i * 3 * d + h * dh..][..dh], pq, &dphi, &mut dx);
                        for (o, &g) in dqkv[i * 3 * d + h * dh..][..dh].iter_mut().zip(&dx) {
                            *o += g;
                        }
                    }
                    for j in 0..n {
                        let pk = &lt.phi_k[(h * n + j) * m..][..m];
                        let v = &qkv[j * 3 * d + 2 * d + h * dh..][..dh];
                        let dv = &mut dqkv[j * 3 * d + 2 * d + h * dh..][..dh];
                        for f in 0..m {
                            let mut s = dz[f];
                            for (&g, &vc) in dkv[f * dh..(f + 1) * dh].iter().zip(v) {
                                s += g * vc;
                            }
                            dphi[f] = s;
                            for (o, &g) in dv.iter_mut().zip(&dkv[f * dh..(f + 1) * dh]) {
                                *o += pk[f] * g;
                            }
                        }
                        self.features_back(&qkv[j * 3 * d + d + h * dh..][..dh], pk, &dphi, &mut dx);
                        for (o, &g) in dqkv[j * 3 * d + d + h * dh..][..dh].iter_mut().zip(&dx) {
                            *o += g;
                        }
                    }
                }
            }
        }
    }

    fn forward(&self, prep: &Prepared<T>, tokens: &[u32], inj: &mut Injector) -> Trace<T> {
        let dims = &self.dims;
        let (d, ff) = (dims.d_model, dims.d_ff);
        let n = tokens.len();
        assert!(n >= 1 && n <= dims.max_len, "sequence of {n} tokens; the model has {} positions", dims.max_len);
        let p = &self.params;
        let zeros = |len: usize| vec![T::default(); len];
        let scale = T::of((d as f64).sqrt());
        let mut e = zeros(n * d);
        for (t, &tok) in tokens.iter().enumerate() {
            let row = &p[EMBEDDING][tok as usize * d..][..d];
            for k in 0..d {
                e[t * d + k] = row[k] * scale + self.positions[t * d + k];
            }
        }
        let (mut xhat0, mut rstd0, mut x) = (zeros(n * d), zeros(n), zeros(n * d));
        layer_norm(&e, d, &p[EMBED_NORM_W], &p[EMBED_NORM_B], &mut x, &mut xhat0, &mut rstd0);
        let mut layers = Vec::with_capacity(dims.repeat);
        for _ in 0..dims.repeat {
            let mut lt = LayerTrace {
                qkv: zeros(n * 3 * d),
                probs: vec![],
                phi_q: vec![],
                phi_k: vec![],
                kv: vec![],
                z: vec![],
                den: vec![],
                att: zeros(n * d),
                xhat1: zeros(n * d),
                rstd1: zeros(n),
                y1: zeros(n * d),
                ff_pre: zeros(n * ff),
                ff_act: zeros(n * ff),
                xhat2: zeros(n * d),
                rstd2: zeros(n),
                x,
            };
            linear(&lt.x, d, &prep.in_proj, None, 3 * d, &mut lt.qkv);
            output_noise(inj, &lt.x, d, &mut lt.qkv, 3 * d);
            self.attention_forward(prep, n, &mut lt);
            let mut r = zeros(n * d);
            linear(&lt.att, d, &prep.out_proj, Some(&p[OUT_PROJ_B]), d, &mut r);
            output_noise(inj, &lt.att, d, &mut r, d);
            for (r, &xi) in r.iter_mut().zip(&lt.x) {
                *r += xi;
            }
            layer_norm(&r, d, &p[NORM1_W], &p[NORM1_B], &mut lt.y1, &mut lt.xhat1, &mut lt.rstd1);
            linear(&lt.y1, d, &prep.linear1, Some(&p[LINEAR1_B]), ff, &mut lt.ff_pre);
            output_noise(inj, &lt.y1, d, &mut lt.ff_pre, ff);
            for (a, &v) in lt.ff_act.iter_mut().zip(&lt.ff_pre) {
                *a = gelu(v);
            }
            linear(&lt.ff_act, ff, &prep.linear2, Some(&p[LINEAR2_B]), d, &mut r);
            output_noise(inj, &lt.ff_act, ff, &mut r, d);
            for (r, &y) in r.iter_mut().zip(&lt.y1) {
                *r += y;
            }
            x = zeros(n * d);
            layer_norm(&r, d, &p[NORM2_W], &p[NORM2_B], &mut x, &mut lt.xhat2, &mut lt.rstd2);
            layers.push(lt);
        }
        let mut pool = zeros(d);
        for xt in x.chunks_exact(d) {
            for (a, &v) in pool.iter_mut().zip(xt) {
                *a += v;
            }
        }
        for a in pool.iter_mut() {
            *a = *a / T::of(n as f64);
        }
        let mut c_pre = zeros(dims.hidden);
        linear(&pool, d, &transpose(&p[CLS0_W], dims.hidden, d), Some(&p[CLS0_B]), dims.hidden, &mut c_pre);
        output_noise(inj, &pool, d, &mut c_pre, dims.hidden);
        let c_act: Vec<T> = c_pre.iter().map(|&v| gelu(v)).collect();
        let mut logits = zeros(dims.classes);
        linear(&c_act, dims.hidden, &transpose(&p[CLS2_W], dims.classes, dims.hidden), Some(&p[CLS2_B]), dims.classes, &mut logits);
        output_noise(inj, &c_act, dims.hidden, &mut logits, dims.classes);
        Trace { n, xhat0, rstd0, layers, pool, c_pre, c_act, logits }
    }

    /// Adds `scale ×` the gradient of the trace's cross-entropy for `label` to `g`; returns the loss.
    fn backward(&self, tokens: &[u32], tr: &Trace<T>, label: usize, scale: T, g: &mut [Vec<T>]) -> T {
        let dims = &self.dims;
        let (d, ff, n) = (dims.d_model, dims.d_ff, tr.n);
        let p = &self.params;
        let zeros = |len: usize| vec![T::default(); len];
        let mx = tr.logits.iter().fold(T::of(f64::NEG_INFINITY), |a, &b| max(a, b));
        let mut sum = T::default();
        for &z in &tr.logits {
            sum += (z - mx).exp();
        }
        let loss = mx + T::of(sum.to_f64().ln()) - tr.logits[label];
        let dlogits: Vec<T> =
            tr.logits.iter().enumerate().map(|(o, &z)| ((z - mx).exp() / sum - if o == label { T::of(1.0) } else { T::default() }) * scale).collect();
        let mut dc_act = zeros(dims.hidden);
        {
            let (gw, rest) = g[CLS2_W..].split_at_mut(1);
            linear_back(&tr.c_act, dims.hidden, &p[CLS2_W], &dlogits, dims.classes, &mut gw[0], Some(&mut rest[0]), Some(&mut dc_act));
        }
        let dc_pre: Vec<T> = dc_act.iter().zip(&tr.c_pre).map(|(&a, &v)| a * gelu_deriv(v)).collect();
        let mut dpool = zeros(d);
        {
            let (gw, rest) = g[CLS0_W..].split_at_mut(1);
            linear_back(&tr.pool, d, &p[CLS0_W], &dc_pre, dims.hidden, &mut gw[0], Some(&mut rest[0]), Some(&mut dpool));
        }
        let inv_n = T::of(1.0 / n as f64);
        let mut dx: Vec<T> = (0..n * d).map(|i| dpool[i % d] * inv_n).collect();
        for lt in tr.layers.iter().rev() {
            // x_out = LN2(r2), r2 = y1 + FFN(y1).
            let mut dr2 = zeros(n * d);
            {
                let (a, b) = g.split_at_mut(NORM2_B);
                layer_norm_back(&dx, d, &p[NORM2_W], &lt.xhat2, &lt.rstd2, &mut a[NORM2_W], &mut b[0], &mut dr2);
            }
            let mut dff_act = zeros(n * ff);
            {
                let (a, b) = g.split_at_mut(LINEAR2_B);
                linear_back(&lt.ff_act, ff, &p[LINEAR2_W], &dr2, d, &mut a[LINEAR2_W], Some(&mut b[0]), Some(&mut dff_act));
            }
            for (a, &v) in dff_act.iter_mut().zip(&lt.ff_pre) {
                *a *= gelu_deriv(v);
            }
            let mut dy1 = dr2;
            {
                let (a, b) = g.split_at_mut(LINEAR1_B);
                linear_back(&lt.y1, d, &p[LINEAR1_W], &dff_act, ff, &mut a[LINEAR1_W], Some(&mut b[0]), Some(&mut dy1));
            }
            // y1 = LN1(r1), r1 = x + out_proj(att).
            let mut dr1 = zeros(n * d);
            {
                let (a, b) = g.split_at_mut(NORM1_B);
                layer_norm_back(&dy1, d, &p[NORM1_W], &lt.xhat1, &lt.rstd1, &mut a[NORM1_W], &mut b[0], &mut dr1);
            }
            let mut datt = zeros(n * d);
            {
                let (a, b) = g.split_at_mut(OUT_PROJ_B);
                linear_back(&lt.att, d, &p[OUT_PROJ_W], &dr1, d, &mut a[OUT_PROJ_W], Some(&mut b[0]), Some(&mut datt));
            }
            let mut dqkv = zeros(n * 3 * d);
            self.attention_back(n, lt, &datt, &mut dqkv);
            let mut dxin = dr1;
            linear_back(&lt.x, d, &p[IN_PROJ], &dqkv, 3 * d, &mut g[IN_PROJ], None, Some(&mut dxin));
            dx = dxin;
        }
        let mut de = zeros(n * d);
        {
            let (a, b) = g.split_at_mut(EMBED_NORM_B);
            layer_norm_back(&dx, d, &p[EMBED_NORM_W], &tr.xhat0, &tr.rstd0, &mut a[EMBED_NORM_W], &mut b[0], &mut de);
        }
        let sc = T::of((d as f64).sqrt());
        for (t, &tok) in tokens.iter().enumerate() {
            for (gk, &v) in g[EMBEDDING][tok as usize * d..][..d].iter_mut().zip(&de[t * d..(t + 1) * d]) {
                *gk += v * sc;
            }
        }
        loss
    }

    /// Class logits of one sequence (its non-padding tokens).
    pub fn logits(&self, tokens: &[u32]) -> Vec<T> {
        self.forward(&self.prepare(), tokens, &mut Injector::off()).logits
    }

    /// Cross-entropy of `label` and its gradient (one tensor per parameter, as [`Self::params`]).
    pub fn loss_and_gradient(&self, tokens: &[u32], label: usize) -> (T, Vec<Vec<T>>) {
        let mut g = self.zero_grads();
        let tr = self.forward(&self.prepare(), tokens, &mut Injector::off());
        let loss = self.backward(tokens, &tr, label, T::of(1.0), &mut g);
        (loss, g)
    }

    /// Fraction of rows whose arg-max logit is the label.
    pub fn accuracy(&self, data: &SeqData) -> f64 {
        let prep = self.prepare();
        let correct = (0..data.len())
            .filter(|&i| {
                let z: Vec<f32> = self.forward(&prep, data.seq(i), &mut Injector::off()).logits.iter().map(|v| v.to_f64() as f32).collect();
                super::argmax(&z) == data.labels[i] as usize
            })
            .count();
        correct as f64 / data.len().max(1) as f64
    }
}

/// Hyper-parameters of [`train_transformer`]; [`TransformerTrainConfig::shipped`] gives the
/// shipped models' ones.
#[derive(Debug, Clone, PartialEq)]
pub struct TransformerTrainConfig {
    pub task: Task,
    pub attention: Attention,
    pub dims: Dims,
    pub epochs: usize,
    pub batch_size: usize,
    /// Peak learning rate of Adam (β 0.9, 0.999, ε 1e-8).
    pub lr: f32,
    /// Steps of linear warm-up from 0 to `lr`; then linear decay to 0 at the last step.
    pub warmup: usize,
    /// Largest global gradient norm (larger gradients are scaled down to it).
    pub clip: f32,
    /// Seed of the initialisation and the shuffles (the data have their own seeds).
    pub seed: u64,
    /// The ListOps generator (task `listops`).
    pub listops: ListOpsConfig,
}

impl TransformerTrainConfig {
    /// The configuration of the shipped model of `task` with `attention`.
    pub fn shipped(task: Task, attention: Attention) -> TransformerTrainConfig {
        let listops = ListOpsConfig::default();
        let dims = match task {
            Task::ListOps => Dims::lra(listops::LISTOPS_VOCAB, listops.max_len),
            Task::Digits => Dims::lra(listops::DIGITS_VOCAB, super::DIGITS_FEATURES),
        };
        let (epochs, batch_size) = match task {
            Task::ListOps => (10, 32),
            Task::Digits => (20, 32),
        };
        TransformerTrainConfig { task, attention, dims, epochs, batch_size, lr: 1e-3, warmup: 200, clip: 1.0, seed: 20_261_205, listops }
    }
}

/// Where `train-transformer` writes the model of `task` and `attention` by default.
pub fn default_out(task: Task, attention: Attention) -> String {
    match (task, attention) {
        (Task::ListOps, a) => format!("experiments/models/listops_transformer_{}.safetensors", a.name()),
        (Task::Digits, Attention::Softmax) => "experiments/models/digits_seq_transformer.safetensors".into(),
        (Task::Digits, Attention::Kernel) => "experiments/models/digits_seq_transformer_kernel.safetensors".into(),
    }
}

/// The `training` metadata: the command that rebuilds the model of a shipped configuration, else
/// the whole configuration.
pub fn training_command(cfg: &TransformerTrainConfig) -> String {
    if *cfg == TransformerTrainConfig::shipped(cfg.task, cfg.attention) {
        format!(
            "cargo run --release -- train-transformer --task {} --attention {} --out {}",
            cfg.task.name(),
            cfg.attention.name(),
            default_out(cfg.task, cfg.attention)
        )
    } else {
        format!("src/train/transformer.rs train_transformer with {cfg:?}")
    }
}

/// The data of `cfg.task`: (train, test). ListOps is generated from its seeds; the digits come
/// from `digits` (the digits CSV's rows, split as the other trainers split them).
pub fn task_data(cfg: &TransformerTrainConfig, digits: Option<&super::Dataset>) -> Result<(SeqData, SeqData), TrainError> {
    match cfg.task {
        Task::ListOps => {
            let (train, _, test) = listops::splits(&cfg.listops);
            Ok((train, test))
        }
        Task::Digits => {
            let d = digits.ok_or_else(|| TrainError::Data("the digits task needs the digits CSV".into()))?;
            let (train, test) = super::split_digits(d);
            Ok((listops::digits_as_sequences(&train), listops::digits_as_sequences(&test)))
        }
    }
}

impl Net<f32> {
    /// Every parameter tensor by its state-dict name (and the kernel's feature projection); the
    /// crossbar matrices (Q/K/V, O, the FFN pair, the classifier and the projection) carry their
    /// shapes. The embedding is a lookup table, not a crossbar.
    pub fn params_mut(&mut self) -> Vec<Param<'_>> {
        let names = param_names(&self.dims);
        let d = self.dims;
        let mut out: Vec<Param<'_>> = names
            .into_iter()
            .zip(self.params.iter_mut())
            .enumerate()
            .map(|(i, ((name, shape), data))| {
                let matrix = matches!(i, IN_PROJ | OUT_PROJ_W | LINEAR1_W | LINEAR2_W | CLS0_W | CLS2_W).then(|| (shape[0], shape[1]));
                Param { name: name.to_string(), data, matrix }
            })
            .collect();
        if self.attention == Attention::Kernel {
            out.push(Param { name: FEATURE_PROJECTION.into(), data: &mut self.projection, matrix: Some((d.features / 2, d.d_head())) });
        }
        out
    }
}

/// Adam's moments and step count.
struct Adam {
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    b1t: f32,
    b2t: f32,
}

const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
const ADAM_EPS: f32 = 1e-8;

/// Trains a network on `train` (see the module header). Deterministic.
pub fn train_transformer(train: &SeqData, cfg: &TransformerTrainConfig) -> Net<f32> {
    train_transformer_with(train, cfg, |_, _| {})
}

/// [`train_transformer`], calling `epoch_done(epoch, mean training loss)` after every epoch.
pub fn train_transformer_with(train: &SeqData, cfg: &TransformerTrainConfig, epoch_done: impl FnMut(usize, f64)) -> Net<f32> {
    train_transformer_hwa(train, cfg, &TrainingConfig::default(), epoch_done).expect("a floating-point run reads no file")
}

/// [`train_transformer_with`] with a `[training]` section (see [`crate::train::hwa`]): weight
/// noise on the crossbar matrices (and the feature projection), output noise after every
/// linear layer, clipping and fine-tuning; the DAC is not modelled in this trainer. The
/// default section gives [`train_transformer_with`]'s weights bit for bit.
pub fn train_transformer_hwa(
    train: &SeqData,
    cfg: &TransformerTrainConfig,
    hwa: &TrainingConfig,
    mut epoch_done: impl FnMut(usize, f64),
) -> Result<Net<f32>, TrainError> {
    assert!(!train.is_empty() && cfg.batch_size > 0, "bad training configuration {cfg:?}");
    let mut rng = Pcg64Mcg::seed_from_u64(cfg.seed);
    let mut net: Net<f32> = Net::init(cfg.dims, cfg.attention, &mut rng);
    if let Some(path) = &hwa.init {
        load_params(path, net.params_mut())?;
    }
    let mut inj = Injector::new(hwa, cfg.seed);
    let cfg = &TransformerTrainConfig { epochs: hwa.epochs.unwrap_or(cfg.epochs), lr: hwa.lr.unwrap_or(cfg.lr), ..cfg.clone() };
    let mut g = net.zero_grads();
    let mut adam = Adam { m: net.zero_grads(), v: net.zero_grads(), b1t: 1.0, b2t: 1.0 };
    let mut order: Vec<usize> = (0..train.len()).collect();
    let steps = (cfg.epochs * train.len().div_ceil(cfg.batch_size)).max(1);
    let mut k = 0usize;
    for epoch in 0..cfg.epochs {
        super::shuffle(&mut order, &mut rng);
        let mut loss_sum = 0.0f64;
        for batch in order.chunks(cfg.batch_size) {
            for t in g.iter_mut() {
                t.fill(0.0);
            }
            // This batch's noisy weights: the gradient is taken there and applied to the clean ones.
            let noisy_net = inj.perturbs_weights().then(|| {
                let mut c = net.clone();
                inj.perturb(c.params_mut());
                c
            });
            let fwd = noisy_net.as_ref().unwrap_or(&net);
            let prep = fwd.prepare();
            let inv_b = 1.0 / batch.len() as f32;
            for &i in batch {
                let tr = fwd.forward(&prep, train.seq(i), &mut inj);
                loss_sum += fwd.backward(train.seq(i), &tr, train.labels[i] as usize, inv_b, &mut g) as f64;
            }
            let norm = g.iter().flatten().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
            let clip = if norm > cfg.clip as f64 { (cfg.clip as f64 / norm) as f32 } else { 1.0 };
            let lr = if k < cfg.warmup {
                cfg.lr * (k + 1) as f32 / cfg.warmup as f32
            } else {
                cfg.lr * (steps - k) as f32 / (steps - cfg.warmup.min(steps - 1)) as f32
            };
            adam.b1t *= BETA1;
            adam.b2t *= BETA2;
            let (c1, c2) = (1.0 - adam.b1t, 1.0 - adam.b2t);
            for ((p, gp), (m, v)) in net.params.iter_mut().zip(&g).zip(adam.m.iter_mut().zip(adam.v.iter_mut())) {
                for (((p, &gr), m), v) in p.iter_mut().zip(gp).zip(m.iter_mut()).zip(v.iter_mut()) {
                    let gr = gr * clip;
                    *m = BETA1 * *m + (1.0 - BETA1) * gr;
                    *v = BETA2 * *v + (1.0 - BETA2) * gr * gr;
                    *p -= lr * (*m / c1) / ((*v / c2).sqrt() + ADAM_EPS);
                }
            }
            inj.clip(net.params_mut());
            k += 1;
        }
        epoch_done(epoch, loss_sum / train.len() as f64);
    }
    Ok(net)
}

/// The `model` metadata: the architecture in words.
fn architecture(net: &Net<f32>, task: Task) -> String {
    let d = &net.dims;
    let attention = match net.attention {
        Attention::Softmax => "softmax attention softmax(q k^T / sqrt(d_head)) over the non-padding keys".to_string(),
        Attention::Kernel => format!(
            "kernel-approximated attention (FAVOR+ positive features, {m} features: phi(x) = exp([h, -h] - |x~|^2/2 - log sqrt({m})), h = W x~, x~ = x * {dh}^(-1/4), W = {FEATURE_PROJECTION} [{}, {dh}] fixed orthogonal blocks with rows of norm sqrt({dh}), shared by Q and K and both layers; out_i = sum_j (phi(q_i).phi(k_j)) v_j / sum_j phi(q_i).phi(k_j) over the non-padding keys)",
            d.features / 2,
            m = d.features,
            dh = d.d_head()
        ),
    };
    let input = match task {
        Task::ListOps => "input = ListOps token ids (0 padding at the end, 1..=10 digits 0..9, 11 [MIN, 12 [MAX, 13 [MED, 14 [SM, 15 ])",
        Task::Digits => "input = UCI 8x8 digits as 64 pixel tokens in row-major order, token = pixel value 0..16 + 1",
    };
    format!(
        "transformer encoder classifier: nn.Embedding({v}, {m}) times sqrt({m}) plus sinusoidal positions (max_len {l}), embed_norm nn.LayerNorm({m}, eps=1e-5); {r} post-LN layers sharing weights (encoder.layers.0 applied {r} times, repeat_layers = {r}): nn.TransformerEncoderLayer({m}, nhead={h}, dim_feedforward={f}, activation=nn.GELU() (erf), norm_first=False, layer_norm_eps=1e-5), bias-free Q/K/V (in_proj_weight, rows Q, K, V), out_proj with bias, {attention}; mean pooling over the non-padding tokens; classifier nn.Sequential(nn.Linear({m}, {hid}), nn.GELU(), nn.Linear({hid}, {c})); {input}; output = logits of classes 0..{}",
        d.classes - 1,
        v = d.vocab,
        m = d.d_model,
        l = d.max_len,
        r = d.repeat,
        h = d.heads,
        f = d.d_ff,
        hid = d.hidden,
        c = d.classes,
    )
}

/// The safetensors bytes of the model (names of [`param_names`], plus [`FEATURE_PROJECTION`]
/// for kernel attention), F32, with the metadata `format`, `model` and `training`.
pub fn safetensors_bytes(net: &Net<f32>, task: Task, training: &str) -> Result<Vec<u8>, TrainError> {
    let mut tensors: Vec<NamedTensor> =
        param_names(&net.dims).into_iter().zip(&net.params).map(|((name, shape), v)| (name.to_string(), shape, v.as_slice())).collect();
    if net.attention == Attention::Kernel {
        tensors.push((FEATURE_PROJECTION.to_string(), vec![net.dims.features / 2, net.dims.d_head()], &net.projection));
    }
    state_dict_bytes(&tensors, &model_metadata(architecture(net, task), training))
}

/// Reads a model written by [`safetensors_bytes`] with shapes `dims`: kernel attention when the
/// file has [`FEATURE_PROJECTION`]. Errors name the missing or mis-shaped tensor.
pub fn from_safetensors(bytes: &[u8], dims: Dims) -> Result<Net<f32>, TrainError> {
    let st = safetensors::SafeTensors::deserialize(bytes)?;
    let read = |name: &str, shape: &[usize]| -> Result<Vec<f32>, TrainError> {
        let t = st.tensor(name).map_err(|e| TrainError::Model(format!("{name}: {e}")))?;
        if t.shape() != shape || t.dtype() != safetensors::Dtype::F32 {
            return Err(TrainError::Model(format!("{name}: shape {:?} {:?}, expected F32 {shape:?}", t.shape(), t.dtype())));
        }
        Ok(t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    };
    let params = param_names(&dims).iter().map(|(name, shape)| read(name, shape)).collect::<Result<Vec<_>, _>>()?;
    let (attention, projection) = if st.names().contains(&FEATURE_PROJECTION) {
        (Attention::Kernel, read(FEATURE_PROJECTION, &[dims.features / 2, dims.d_head()])?)
    } else {
        (Attention::Softmax, vec![])
    };
    let positions = sinusoids(dims.max_len, dims.d_model).into_iter().map(|v| v as f32).collect();
    Ok(Net { dims, attention, params, projection, positions })
}

/// Writes [`safetensors_bytes`] to `path`.
pub fn save_safetensors(net: &Net<f32>, task: Task, training: &str, path: impl AsRef<Path>) -> Result<(), TrainError> {
    write_model(path.as_ref(), &safetensors_bytes(net, task, training)?)
}
