//! Reproducible training of the shipped transformers (`experiments/models/listops_transformer_softmax.safetensors`,
//! `listops_transformer_kernel.safetensors`, `digits_seq_transformer.safetensors`, the
//! `cicero_lm_*` language models): the Long Range
//! Arena ListOps configuration of IBM's analog-transformer code (Büchel et al., "Kernel
//! approximation using analog in-memory computing", Nature Machine Intelligence 2024, whose LRA
//! models follow Tay et al., ICLR 2021), with softmax or with kernel-approximated attention.
//!
//! The model, per sequence of n non-padding tokens (padding tokens, id 0, are left out: they are
//! masked as keys, and their outputs reach nothing but the pooling, which skips them):
//! - x = LayerNorm(√d · E\[token\] + PE\[position\]), PE the sinusoids of Vaswani et al. (2017,
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
//! - mean over the tokens, then Linear(d, hidden), GELU, Linear(hidden, classes); a causal
//!   language model (`Dims::lm`, the Cicero task) instead masks keys j > i (kernel attention: the
//!   prefix sums Σ_{j ≤ i}) and runs the head on every token against the next one; a span head
//!   (`Dims::span`, the kvqa task) runs it on every token with two outputs, the start and end
//!   logits of an answer.
//!
//! Numerics. Training runs the same code in f32 (the shipped weights) that the gradient test
//! runs in f64 ([`Real`]). Kernel attention subtracts a constant inside each exp: per query the
//! largest of its exponents, per head and sequence the largest key exponent (causal: per position,
//! the largest key exponent so far, the prefix sums rescaled as it grows, so no position reads a
//! later key). Each query's constant scales its numerator and denominator alike, and the key
//! constant scales every term of both sums alike, so the output is unchanged (and its gradient with respect to the constants is
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
//!
//! This file holds the numeric type, the dimensions, the parameter layout and the initial weights;
//! `ops` the dense kernels, `net` the forward and backward passes, `train` the optimiser and
//! configuration, `io` the safetensors file.

// Index loops mirror the gradient equations, so the backward pass reads beside them.
#![allow(clippy::needless_range_loop, clippy::too_many_arguments)]

use rand::{RngCore, SeedableRng};
use rand_pcg::Pcg64Mcg;
use std::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub, SubAssign};
use std::path::Path;

use super::hwa::{load_params, TrainingConfig};
use super::injector::{Injector, Param};
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
    /// Rounds half away from zero (`f32::round`).
    fn round(self) -> Self;
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
    fn round(self) -> f32 {
        f32::round(self)
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
    fn round(self) -> f64 {
        f64::round(self)
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
    /// Next-character prediction on Cicero's *De finibus* I ([`crate::train::text`]): a causal
    /// language model.
    Cicero,
    /// Extractive question answering on generated key–value contexts ([`crate::train::kvqa`]).
    Kvqa,
}

impl Task {
    pub fn name(self) -> &'static str {
        match self {
            Task::ListOps => "listops",
            Task::Digits => "digits",
            Task::Cicero => "cicero",
            Task::Kvqa => "kvqa",
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
    /// A causal language model: token i attends to tokens j ≤ i, the classifier runs on every
    /// token (no pooling) with one output per vocabulary token, and the loss is the mean
    /// cross-entropy of each position's logits against the next token (`classes` = `vocab`).
    pub lm: bool,
    /// Extractive question answering: the classifier runs on every token (no pooling) with two
    /// outputs, the start and end logits, and the loss is the mean of the cross-entropies of the
    /// start logits over the positions against the answer's start and of the end logits against
    /// its end (BERT's SQuAD loss, Devlin et al. 2019 §4.2); `classes` = 2, attention bidirectional.
    pub span: bool,
}

impl Dims {
    /// The LRA ListOps configuration: d 64, 2 heads of 32, FFN 128, classifier 128, 256
    /// features, the layer applied twice.
    pub fn lra(vocab: usize, max_len: usize) -> Dims {
        Dims { vocab, max_len, d_model: 64, heads: 2, d_ff: 128, hidden: 128, classes: listops::CLASSES, features: 256, repeat: 2, lm: false, span: false }
    }

    /// The same shapes as a causal character-level language model over `vocab` tokens: the head
    /// gives one logit per token.
    pub fn lra_lm(vocab: usize, max_len: usize) -> Dims {
        Dims { classes: vocab, lm: true, ..Dims::lra(vocab, max_len) }
    }

    /// The same shapes with a span head (two outputs per token) for question answering.
    pub fn lra_span(vocab: usize, max_len: usize) -> Dims {
        Dims { classes: 2, span: true, ..Dims::lra(vocab, max_len) }
    }

    /// Whether the head runs on every token (a language model, a span head).
    pub fn token_head(&self) -> bool {
        self.lm || self.span
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

mod io;
mod net;
mod ops;
mod train;

pub use io::*;
use ops::*;
pub use train::*;
