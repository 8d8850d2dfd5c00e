//! The `transformer` workload: a transformer classifier on noisy crossbars (issue: transformers
//! on noisy crossbars). Every static-weight matrix (Q, K, V, O, the feed-forward pair, BERT's
//! pooler, the classifier head and kernel attention's feature projection) is an analog layer with
//! the tiling, periphery, programming noise, drift, read noise and GDC of every other workload;
//! embeddings, LayerNorm, softmax, residual adds, activations and pooling stay digital (FP32).
//! Attention runs exactly (softmax) or kernel-approximated (Choromanski et al., FAVOR+, ICLR
//! 2021; Büchel et al., "Kernel approximation using analog in-memory computing", Nat. Mach.
//! Intell. 2024, and IBM's LRA code): x̃ = x·d_head^(−1/4), positive features
//! exp(±W x̃ − ‖x̃‖²/2 − log √m), the projection W programmed on crossbars once and not redrawn,
//! then linear attention over the non-padding keys (kernel-attention spec §3).
//!
//! Files: [`net`] (the weights as plain data), [`names`] (state-dict name tables: PyTorch
//! `nn.TransformerEncoder`, Hugging Face BERT, aimc), [`reference`] (the independent f64 forward,
//! the floating-point baseline), this file (settings, metric, run).

pub mod names;
pub mod net;
pub mod reference;

use super::Activation;
use crate::features::{Projection, SoftmaxFeatures};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;

pub use net::{Block, Norm, Positions, TransformerNet};

/// Exact softmax attention or its kernel approximation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttentionKind {
    Softmax,
    Kernel,
}

/// What a sequence is reduced to before the head.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// The mean over the non-padding tokens (IBM's LRA models).
    Mean,
    /// The first token (BERT's CLS), through the pooler (dense + tanh) when the model has one.
    Cls,
}

/// Where kernel attention's feature projection comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureSource {
    /// The state dict's `feature_projection` tensors (the trained model's own); a draw from
    /// `projection_seed` when the file has none.
    Model,
    /// Drawn from `projection_seed` by the kernel workloads' constructions.
    Orf,
    Sorf,
    Rff,
}

impl FeatureSource {
    /// The construction of a drawn projection (`Model` draws ORF rows when the file has none).
    pub fn projection(self) -> Projection {
        match self {
            FeatureSource::Model | FeatureSource::Orf => Projection::Orf,
            FeatureSource::Sorf => Projection::Sorf,
            FeatureSource::Rff => Projection::Rff,
        }
    }
}

/// `[transformer]`: how the state dict runs. Every field but `names` can be a sweep axis.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformerSettings {
    /// The state dict in place of `[model] path` (a sweep over trained models), relative to the
    /// experiment file.
    #[serde(default)]
    pub state_dict: Option<PathBuf>,
    /// Attention heads (they must divide d_model).
    pub heads: u32,
    /// The stored layers are applied this many times in a row with the same (programmed once)
    /// weights: IBM's LRA models share one layer's weights between their two layers.
    #[serde(default = "one")]
    pub repeat_layers: u32,
    /// Pre-LayerNorm (`norm_first`, LN before attention and the feed-forward pair) instead of
    /// post-LN (BERT, the original transformer).
    #[serde(default)]
    pub norm_first: bool,
    /// The feed-forward activation (PyTorch's and BERT's "gelu" is `gelu_exact`, the erf form).
    #[serde(default = "gelu_exact")]
    pub activation: Activation,
    /// The activation between classifier-head layers.
    #[serde(default = "gelu_exact")]
    pub head_activation: Activation,
    #[serde(default = "mean")]
    pub pooling: Pooling,
    /// Token embeddings are multiplied by this before the positions are added (√d_model in
    /// Vaswani's and IBM's LRA models, 1 in BERT).
    #[serde(default = "unit")]
    pub embed_scale: f64,
    /// LayerNorm's ε (PyTorch 1e-5, BERT 1e-12).
    #[serde(default = "ln_eps")]
    pub layer_norm_eps: f64,
    /// Causal (decoder) attention: token i attends to tokens ≤ i.
    #[serde(default)]
    pub causal: bool,
    /// The padding token: keys at padding positions are masked and mean pooling skips them.
    /// Padding must trail each sequence. None: no padding.
    #[serde(default)]
    pub pad_id: Option<u32>,
    #[serde(default = "softmax")]
    pub attention: AttentionKind,
    /// Kernel attention: m, the features per head and token (m/2 projection rows for the paired
    /// maps `positive` and `trig`, m rows for `relu`).
    #[serde(default = "default_features")]
    pub features: u32,
    /// Kernel attention's estimator of exp(qᵀk): positive (FAVOR+), trig or relu.
    #[serde(default = "positive")]
    pub feature_map: SoftmaxFeatures,
    #[serde(default = "model_source")]
    pub projection: FeatureSource,
    /// Seed of a drawn projection (separate from the device-noise seed).
    #[serde(default)]
    pub projection_seed: u64,
    /// Separate feature projections for Q and K (drawn ones from seeds `projection_seed` and
    /// `projection_seed + 1`); false: one shared by both, as in IBM's LRA models.
    #[serde(default)]
    pub separate_qk: bool,
    /// The network, loaded and checked by validation.
    #[serde(skip)]
    pub net: Option<Arc<TransformerNet>>,
    /// The floating-point (f64 reference) correct count on the data set, set by validation.
    #[serde(skip)]
    pub fp_correct: Option<u64>,
}

fn one() -> u32 {
    1
}
fn gelu_exact() -> Activation {
    Activation::GeluExact
}
fn mean() -> Pooling {
    Pooling::Mean
}
fn unit() -> f64 {
    1.0
}
fn ln_eps() -> f64 {
    1e-5
}
fn softmax() -> AttentionKind {
    AttentionKind::Softmax
}
fn default_features() -> u32 {
    256
}
fn positive() -> SoftmaxFeatures {
    SoftmaxFeatures::Positive
}
fn model_source() -> FeatureSource {
    FeatureSource::Model
}

impl TransformerSettings {
    /// Projection rows per feature map: m/2 for the paired maps, m for ReLU features.
    pub fn projection_rows(&self) -> u32 {
        match self.feature_map {
            SoftmaxFeatures::Positive | SoftmaxFeatures::Trig => self.features / 2,
            SoftmaxFeatures::Relu => self.features,
        }
    }

    /// The network (validation loads it; a settings value built by hand must set it).
    pub fn net(&self) -> &TransformerNet {
        self.net.as_deref().expect("validation loads the transformer's network")
    }
}

/// d_head^(−1/4): kernel attention's input scaling, so that φ(q̃)·φ(k̃) estimates exp(qᵀk/√d_head).
pub fn feature_input_scale(d_head: usize) -> f64 {
    (d_head as f64).powf(-0.25)
}

impl TransformerSettings {
    /// Kernel attention's projections of layer `block` for Q and K, `[rows][d_head]`, before the
    /// d_head^(−1/4) input scaling: the state dict's own (`projection = "model"`, when it has
    /// them), else drawn from `projection_seed` (K's from `projection_seed + 1` with
    /// `separate_qk`). A drawn projection is the same for every layer (IBM's LRA models share one).
    pub fn feature_projections(&self, block: usize) -> (crate::workload::io::Matrix, crate::workload::io::Matrix) {
        use crate::workload::io::Matrix;
        let net = self.net();
        let d_head = net.d_model() / self.heads.max(1) as usize;
        let rows = self.projection_rows() as usize;
        if self.projection == FeatureSource::Model {
            let b = &net.blocks[block];
            if let Some(q) = b.feature_q.as_ref().or(net.shared_feature.as_ref()) {
                let k = b.feature_k.clone().unwrap_or_else(|| q.clone());
                return (q.clone(), k);
            }
        }
        let draw = |seed: u64| {
            let spec = crate::features::KernelSpec {
                kernel: crate::features::Kernel::Softmax,
                projection: self.projection.projection(),
                softmax_features: self.feature_map,
                gamma: 1.0,
                features: rows,
                d: d_head,
            };
            Matrix { rows, cols: d_head, data: spec.projection(seed) }
        };
        let q = draw(self.projection_seed);
        let k = if self.separate_qk { draw(self.projection_seed.wrapping_add(1)) } else { q.clone() };
        (q, k)
    }
}
