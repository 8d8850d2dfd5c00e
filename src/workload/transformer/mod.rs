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
//! Files: [`net`] (the weights as plain data), `check` (the settings against the network and the
//! data, before any compute), [`names`] (state-dict name tables: PyTorch
//! `nn.TransformerEncoder`, Hugging Face BERT and MobileBERT, aimc), [`mobilebert`] (MobileBERT's
//! shapes checked and its net built), [`gpt2`] (a GPT-2 state dict under PyTorch's names), [`reference`](mod@reference) (the independent f64 forward,
//! the floating-point baseline), this file (settings, metric, run).

pub mod baseline;
mod check;
pub mod glue;
pub mod gpt2;
pub mod mobilebert;
pub mod names;
pub mod net;
mod ranges;
pub mod reference;
pub mod score;
pub mod squad;
pub mod table;

pub(crate) use score::metrics;
pub use score::{best_span, in_top_n, score_answer, span_candidates, span_f1, span_of, top_n_cut};

use super::{Activation, GroupRun, Inputs, Metric, PointRun, SweepPoint, TimeMetrics};
use crate::engine::plan::{run_transformer, run_transformer_group, SeqAttention, SeqBlock, SeqBottleneck, SeqFfn, SeqModel};
use crate::engine::EngineError;
use crate::features::{Projection, SoftmaxFeatures};
use crate::workload::io::Dataset;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;

pub use baseline::Baseline;
pub use net::{Block, Bottleneck, Norm, Positions, TransformerNet};

/// Exact softmax attention or its kernel approximation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttentionKind {
    Softmax,
    Kernel,
}

/// A transformer's normalisation (Hugging Face `normalization_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormType {
    /// (x − mean) / sqrt(var + ε) · γ + β over each token's features.
    LayerNorm,
    /// x · γ + β element-wise (MobileBERT's `NoNorm`, Sun et al. ACL 2020).
    NoNorm,
}

/// What the model is asked: a class per sequence, or the next token at every position.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// A class per sequence (pooling, then the classifier head); the metric is the accuracy.
    #[default]
    Classify,
    /// A causal language model: the head gives every token's next-token logits (one output per
    /// vocabulary token; absent, the embedding table, tied as GPT-2 ties it); the metric is the
    /// perplexity exp(mean −log p(next token)) over every position with a next token.
    NextToken,
    /// The same model scored by next-token top-1 accuracy (exact counts over the predicted tokens).
    NextTokenAccuracy,
    /// Extractive question answering (SQuAD; BERT's `qa_outputs` head): two outputs per token,
    /// the start and end logits, and the answer the best span of the context (the second
    /// segment); the metric is the exact match of the answer with one of each row's labelled
    /// answers.
    QaExactMatch,
    /// The same model scored by the token-level F1 of the answer against the best labelled answer.
    QaF1,
    /// A class per sequence scored by Matthews' correlation coefficient over the data set
    /// (GLUE's CoLA; Gorodkin's R_K for more than two classes, as scikit-learn computes it).
    ClassifyMatthews,
    /// A binary classifier scored by the F1 of class 1 (GLUE's MRPC and QQP).
    ClassifyF1,
    /// A regression head (one output per sequence) scored by Pearson's correlation with the
    /// data's real-valued targets (GLUE's STS-B).
    RegressPearson,
    /// The same head scored by Spearman's rank correlation (ties at their average rank).
    RegressSpearman,
}

impl Task {
    /// The task's name in an experiment file (`transformer.task`).
    pub fn name(self) -> &'static str {
        match self {
            Task::Classify => "classify",
            Task::NextToken => "next_token",
            Task::NextTokenAccuracy => "next_token_accuracy",
            Task::QaExactMatch => "qa_exact_match",
            Task::QaF1 => "qa_f1",
            Task::ClassifyMatthews => "classify_matthews",
            Task::ClassifyF1 => "classify_f1",
            Task::RegressPearson => "regress_pearson",
            Task::RegressSpearman => "regress_spearman",
        }
    }

    /// Whether the head predicts the next token (the two language-model tasks).
    pub fn next_token(self) -> bool {
        matches!(self, Task::NextToken | Task::NextTokenAccuracy)
    }

    /// Whether the head picks an answer span (the two question-answering tasks).
    pub fn qa(self) -> bool {
        matches!(self, Task::QaExactMatch | Task::QaF1)
    }

    /// Whether the metric reads every sequence's pooled output (GLUE's correlations and F1), not
    /// a count of correct ones (`glue`).
    pub fn per_sequence(self) -> bool {
        matches!(self, Task::ClassifyMatthews | Task::ClassifyF1 | Task::RegressPearson | Task::RegressSpearman)
    }

    /// Whether the head's one output is a real value scored against real targets.
    pub fn regression(self) -> bool {
        matches!(self, Task::RegressPearson | Task::RegressSpearman)
    }

    /// Whether the head reads every token instead of one pooled vector per sequence.
    pub fn token_head(self) -> bool {
        self.next_token() || self.qa()
    }
}

/// Question answering's floating-point score over a data set (the f64 reference forward).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SpanScore {
    /// Rows whose answer is exactly one of their labelled answers.
    pub exact: u64,
    /// Σ token-level F1 over the rows.
    pub f1: f64,
}

/// SQuAD's answer-length limit in Hugging Face's post-processing (`max_answer_length`).
pub const MAX_ANSWER_TOKENS: u32 = 30;

/// The start and end logits SQuAD's answer may take, the largest of each, in Hugging Face's
/// post-processing (`n_best_size`).
pub const N_BEST: u32 = 20;

/// The language model's floating-point score over a data set (the f64 reference forward).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct NextTokenScore {
    /// Σ −ln p(next token) over the predicted positions, nats.
    pub nll: f64,
    /// Positions whose first largest logit is the next token.
    pub correct: u64,
    /// Predicted positions: Σ (len − 1) over the sequences.
    pub tokens: u64,
}

/// What a sequence is reduced to before the head.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// The mean over the non-padding tokens (IBM's LRA models).
    Mean,
    /// The first token (BERT's CLS), through the pooler (dense + tanh) when the model has one.
    Cls,
    /// The last non-padding token, the one a causal model's every token has attended to (GPT-2's
    /// sequence classifier, `GPT2ForSequenceClassification`).
    Last,
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
    /// `classify` (the default), or a causal language model's `next_token` (perplexity) or
    /// `next_token_accuracy`. It decides what the data rows hold and what the metric is, so it is
    /// not a sweep axis.
    #[serde(default, skip_serializing_if = "is_classify")]
    pub task: Task,
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
    /// The norms' kind (Hugging Face `normalization_type`): `layer_norm`, or `no_norm`, the
    /// element-wise x·γ + β of MobileBERT. None: `no_norm` for a MobileBERT state dict (its
    /// published form), `layer_norm` for every other family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub norm: Option<NormType>,
    /// Question answering: the longest answer, in tokens (Hugging Face's `max_answer_length`).
    #[serde(default = "max_answer", skip_serializing_if = "is_max_answer")]
    pub max_answer_tokens: u32,
    /// Question answering: an answer starts at one of the `n_best` largest start logits of its
    /// row and ends at one of the `n_best` largest end logits, ranked over all the row's tokens
    /// (Hugging Face's `n_best_size`, 20, whose post-processing this reproduces); 0 searches
    /// every span (the exact maximum).
    #[serde(default = "n_best", skip_serializing_if = "is_n_best")]
    pub n_best: u32,
    /// SQuAD 2.0 (answer text with unanswerable questions): a question answers nothing where its
    /// lowest null score exceeds its best span's by more than this (Hugging Face's
    /// `null_score_diff_threshold`; 0 by default, as there). A dev-set-tuned value moves the
    /// balance between answering and abstaining.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub null_score_diff_threshold: f64,
    /// Per row (per question with answer text), the trials that answer it right, at every point
    /// and time (`per_row_correct` in results.json, row_counts.csv, and the report's rows that noise
    /// breaks first): which inputs fail first. A classifier's are counted on the device
    /// (`row_correct`), a reader's from its answer slots. Classifiers and question answering.
    #[serde(default, skip_serializing_if = "is_false")]
    pub row_counts: bool,
    /// Question answering: labelled answers per row (SQuAD's dev set has up to three, and its
    /// metrics take the best); the data's last 2 · answers columns. It decides what the rows
    /// hold, so it is not a sweep axis.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub answers: u32,
    /// Causal (decoder) attention: token i attends to tokens ≤ i.
    #[serde(default)]
    pub causal: bool,
    /// The padding token: keys at padding positions are masked and mean pooling skips them.
    /// Padding must trail each sequence. None: no padding.
    #[serde(default)]
    pub pad_id: Option<u32>,
    /// Sentence pairs (BERT's `[CLS] A [SEP] B [SEP]`): the separator's token id. Tokens after
    /// the first one get token-type row 1, the others row 0, as a tokenizer's `token_type_ids`;
    /// None: row 0 everywhere (single-segment inputs). Needs a token-type table of >= 2 rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_sep: Option<u32>,
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
    /// Experts of a routed feed-forward layer in every layer, on the stacked tiers of 3D tiles
    /// (0: the dense pair). Sparse upcycling (Komatsuzaki et al., ICLR 2023): each expert starts
    /// as a copy of the layer's trained pair and the router is drawn from `router_seed`, so in
    /// floating point the layer computes exactly the dense pair (the gates sum to one over
    /// identical experts) and any accuracy difference comes from where the experts' crossbars sit.
    #[serde(default)]
    pub experts: u32,
    /// Experts per token (softmax over the chosen router logits).
    #[serde(default = "two")]
    pub top_k: u32,
    /// Tiers stacked per tile; the crossbars are `[tile]`-sized.
    #[serde(default = "eight")]
    pub tiers: u32,
    /// How experts are placed on tiles and tiers: greedy, experts_separated or co_selection.
    #[serde(default = "greedy")]
    pub moe_mapping: crate::arch::mapping::Strategy,
    /// Tier i of L scales programming, drift and read noise by 1 + slope · i / (L − 1).
    #[serde(default)]
    pub tier_noise_slope: f64,
    #[serde(default = "one64")]
    pub router_seed: u64,
    /// The network, loaded and checked by validation.
    #[serde(skip)]
    pub net: Option<Arc<TransformerNet>>,
    /// The floating-point (f64 reference) correct count on the data set, set by validation.
    #[serde(skip)]
    pub fp_correct: Option<u64>,
    /// A language model's floating-point score on the data set, set by validation.
    #[serde(skip)]
    pub fp_next: Option<NextTokenScore>,
    /// Question answering's floating-point score on the data set, set by validation.
    #[serde(skip)]
    pub fp_span: Option<SpanScore>,
    /// A per-sequence metric's floating-point value (`glue`), set by validation.
    #[serde(skip)]
    pub fp_score: Option<f64>,
    /// Its companion's (`glue::companion`), set with it.
    #[serde(skip)]
    pub fp_score_companion: Option<f64>,
    /// Where the floating-point value comes from: `reference` (the f64 forward at validation)
    /// or `engine` (one noiseless pass of the run's backend at the start of the run: for large
    /// models, whose f64 forward over the data takes hours on the host; `baseline.rs`).
    #[serde(default, skip_serializing_if = "Baseline::is_reference")]
    pub baseline: Baseline,
    /// The engine's floating-point metric (`baseline = "engine"`), set at the start of a run.
    #[serde(skip)]
    pub fp_engine: Option<f64>,
    /// The engine's floating-point value of the companion metric, set with `fp_engine`.
    #[serde(skip)]
    pub fp_engine_companion: Option<f64>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

fn is_classify(t: &Task) -> bool {
    *t == Task::Classify
}
fn is_one(v: &u32) -> bool {
    *v == 1
}
fn max_answer() -> u32 {
    MAX_ANSWER_TOKENS
}
fn is_max_answer(v: &u32) -> bool {
    *v == MAX_ANSWER_TOKENS
}
fn n_best() -> u32 {
    N_BEST
}
fn is_n_best(v: &u32) -> bool {
    *v == N_BEST
}

/// The bit of a token id the `embed` stage reads as "second segment" (token type 1); ids stay
/// below it (validation refuses a vocabulary that reaches it).
pub const SEGMENT_BIT: u32 = 1 << 31;

/// Fields a point reads only when a switch is on: the switch's field, its default as a file
/// writes it (the transformer then runs without the feature), what turning it on takes, and the
/// fields. A file that sets such a field but leaves its switch out (nowhere: not in
/// `[transformer]`, a `--set`, an axis or a variant) is refused (`config::sweep`): the value
/// would go unused, and the likely intent, the feature, would silently not run.
pub struct Switched {
    pub switch: &'static str,
    pub default: &'static str,
    pub on: &'static str,
    pub fields: &'static [&'static str],
}

/// Kernel attention's fields, and the routed feed-forward layer's.
pub const SWITCHED: [Switched; 2] = [
    Switched {
        switch: "attention",
        default: "\"softmax\" (exact attention)",
        on: "attention = \"kernel\" for kernel-approximated attention",
        fields: &["features", "feature_map", "projection", "projection_seed", "separate_qk"],
    },
    Switched {
        switch: "experts",
        default: "0 (the dense feed-forward pair)",
        on: "experts >= 1 for routed feed-forward layers on 3D tiers",
        fields: &["top_k", "tiers", "moe_mapping", "tier_noise_slope", "router_seed"],
    },
];

fn one() -> u32 {
    1
}
fn one64() -> u64 {
    1
}
fn two() -> u32 {
    2
}
fn eight() -> u32 {
    8
}
fn greedy() -> crate::arch::mapping::Strategy {
    crate::arch::mapping::Strategy::Greedy
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

    /// Whether the norms are NoNorm: `norm` where set, else the network family's (MobileBERT's
    /// NoNorm, LayerNorm elsewhere). The net is cached per file across sweep points, so this is
    /// read here, per point, never stored in the net.
    pub fn no_norm(&self) -> bool {
        self.norm.map_or(self.net().no_norm, |n| n == NormType::NoNorm)
    }

    /// The network (validation loads it; a settings value built by hand must set it).
    pub fn net(&self) -> &TransformerNet {
        self.net.as_deref().expect("validation loads the transformer's network")
    }
}

/// The most times a shared layer stack may run: far past any published weight-sharing depth
/// (ALBERT: 12 or 24), and a bound on the floating-point reference validation runs.
pub const MAX_REPEAT_LAYERS: u32 = 256;

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
        let d_head = net.inner() / self.heads.max(1) as usize;
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

/// A routed layer's matrices: the router and each expert's (FFN1, FFN2).
pub type Routed = (usize, Vec<(usize, usize)>);

/// One analog matrix of the network: its name (`layers.N.q`, `layers.N.feature_q`, `pooler`,
/// `head.K`; `model.digital` names them, or a group by its last part: `q`, `ffn1`, `feature_q`,
/// `head`), the layer and the activation after it.
pub struct Matrices {
    pub layers: Vec<crate::workload::io::Linear>,
    pub activations: Vec<Activation>,
    /// Per stored block: indices of q, k, v, o, ffn1, ffn2, feature_q, feature_k (ffn1 and ffn2
    /// are expert 0's in a routed layer).
    pub blocks: Vec<[Option<usize>; 8]>,
    /// Per stored block of a routed layer: the router and each expert's pair.
    pub moe: Vec<Option<Routed>>,
    /// Pooler and head layers in order.
    pub head: Vec<usize>,
    /// MobileBERT's embedding projection (`embedding.proj`).
    pub embed_proj: Option<usize>,
    /// Per stored block: the bottleneck's input, shared Q/K and output layers
    /// (`layers.N.bottleneck.input`, `.attention`, `.output`).
    pub bottlenecks: Vec<Option<(usize, Option<usize>, usize)>>,
    /// Per stored block: the stacked feed-forward pairs (`layers.N.ffn.J.ffn1`, `.ffn2`).
    pub extra_ffns: Vec<Vec<(usize, usize)>>,
}

impl TransformerSettings {
    /// Every analog matrix of the network, named; kernel attention's projections carry the
    /// d_head^(−1/4) input scaling in their weights (a uniform factor on a matrix changes only its
    /// digital output scale: the programmed conductances are the same).
    pub fn matrices(&self) -> Matrices {
        use crate::workload::io::{Linear, Matrix};
        let net = self.net();
        let d_head = net.inner() / self.heads.max(1) as usize;
        let (mut layers, mut activations, mut blocks, mut head, mut moe) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut bottlenecks, mut extra_ffns) = (Vec::new(), Vec::new());
        let mut push = |l: &Linear, name: String, act: Activation| {
            layers.push(Linear { name, ..l.clone() });
            activations.push(act);
            layers.len() - 1
        };
        let embed_proj = net.embed_proj.as_ref().map(|(l, _)| push(l, "embedding.proj".into(), Activation::None));
        for (bi, b) in net.blocks.iter().enumerate() {
            // In the order the block applies them: the bottleneck's inputs first, its output last.
            let pre = b.bottleneck.as_ref().map(|bn| {
                let input = push(&bn.input.0, format!("layers.{bi}.bottleneck.input"), Activation::None);
                let shared = bn.shared.as_ref().map(|s| push(&s.0, format!("layers.{bi}.bottleneck.attention"), Activation::None));
                (input, shared)
            });
            let mut idx = [None; 8];
            for (j, (l, part, act)) in
                [(&b.q, "q", Activation::None), (&b.k, "k", Activation::None), (&b.v, "v", Activation::None), (&b.o, "o", Activation::None)]
                    .into_iter()
                    .enumerate()
            {
                idx[j] = Some(push(l, format!("layers.{bi}.{part}"), act));
            }
            extra_ffns.push(
                b.extra_ffns
                    .iter()
                    .enumerate()
                    .map(|(j, (f1, f2, _))| {
                        (push(f1, format!("layers.{bi}.ffn.{j}.ffn1"), self.activation), push(f2, format!("layers.{bi}.ffn.{j}.ffn2"), Activation::None))
                    })
                    .collect::<Vec<_>>(),
            );
            if self.experts == 0 {
                idx[4] = Some(push(&b.ffn1, format!("layers.{bi}.ffn1"), self.activation));
                idx[5] = Some(push(&b.ffn2, format!("layers.{bi}.ffn2"), Activation::None));
                moe.push(None);
            } else {
                let d = net.d_model();
                let e = self.experts as usize;
                let router = Linear::dense("", Matrix { rows: e, cols: d, data: router_weights(e, d, self.router_seed, bi) }, vec![0.0; e]);
                let r = push(&router, format!("layers.{bi}.router"), Activation::None);
                let pairs: Vec<(usize, usize)> = (0..e)
                    .map(|j| {
                        (
                            push(&b.ffn1, format!("layers.{bi}.experts.{j}.ffn1"), self.activation),
                            push(&b.ffn2, format!("layers.{bi}.experts.{j}.ffn2"), Activation::None),
                        )
                    })
                    .collect();
                idx[4] = Some(pairs[0].0);
                idx[5] = Some(pairs[0].1);
                moe.push(Some((r, pairs)));
            }
            if self.attention == AttentionKind::Kernel {
                let (wq, wk) = self.feature_projections(bi);
                let scale = feature_input_scale(d_head) as f32;
                let scaled =
                    |w: &Matrix| Linear::dense("", Matrix { rows: w.rows, cols: w.cols, data: w.data.iter().map(|v| v * scale).collect() }, vec![0.0; w.rows]);
                idx[6] = Some(push(&scaled(&wq), format!("layers.{bi}.feature_q"), Activation::None));
                if wk != wq {
                    idx[7] = Some(push(&scaled(&wk), format!("layers.{bi}.feature_k"), Activation::None));
                }
            }
            blocks.push(idx);
            let post = b.bottleneck.as_ref().map(|bn| push(&bn.output.0, format!("layers.{bi}.bottleneck.output"), Activation::None));
            bottlenecks.push(pre.zip(post).map(|((i, s), o)| (i, s, o)));
        }
        if let Some(p) = &net.pooler {
            head.push(push(p, "pooler".into(), Activation::Tanh));
        }
        for (i, l) in net.head.iter().enumerate() {
            let act = if i + 1 < net.head.len() { self.head_activation } else { Activation::None };
            head.push(push(l, format!("head.{i}"), act));
        }
        Matrices { layers, activations, blocks, head, moe, embed_proj, bottlenecks, extra_ffns }
    }

    /// The engine's model for a point: the matrices mapped onto its tiles, the digital parts and
    /// the layer order (the stored blocks `repeat_layers` times), for sequences of `seq` tokens.
    pub fn seq_model(&self, sp: &SweepPoint, seq: usize) -> SeqModel {
        let net = self.net();
        let mx = self.matrices();
        let mut layers = crate::workload::analog_layers(&mx.layers, &mx.activations, sp.tile, (&sp.periphery).into());
        // Each expert's (and router's) crossbars carry the noise of the tier holding them.
        if let Ok((arch, mapping)) = self.moe_mapping(sp.tile) {
            for (r, pairs) in mx.moe.iter().flatten() {
                let mut set = |li: usize, map: &crate::arch::mapping::MatrixMap| {
                    layers[li].mapped.set_tile_noise(|t| {
                        let m = crate::workload::moe::tier_mult(&arch, self.tier_noise_slope, crate::workload::moe::tier_of(&arch, map, t));
                        [m.prog as f32, m.drift as f32, m.read as f32]
                    })
                };
                set(*r, mapping.router());
                for (j, &(a, b)) in pairs.iter().enumerate() {
                    set(a, mapping.ffn1(j as u32));
                    set(b, mapping.ffn2(j as u32));
                }
            }
        }
        let stored: Vec<(&Block, usize)> = net.blocks.iter().zip(0..).collect();
        let blocks: Vec<SeqBlock> = (0..self.repeat_layers.max(1))
            .flat_map(|_| stored.iter().map(|&(b, bi)| (b, bi, &mx.blocks[bi], &mx.moe[bi])))
            .map(|(b, bi, i, moe)| SeqBlock {
                q: i[0].unwrap(),
                k: i[1].unwrap(),
                v: i[2].unwrap(),
                o: i[3].unwrap(),
                ffn1: i[4].unwrap(),
                ffn2: i[5].unwrap(),
                norm1: b.norm1.packed(),
                norm2: b.norm2.packed(),
                feature_q: i[6],
                feature_k: i[7],
                moe: moe.as_ref().map(|(r, pairs)| crate::engine::plan::SeqMoe { router: *r, experts: pairs.clone(), top_k: self.top_k }),
                bottleneck: mx.bottlenecks[bi].zip(b.bottleneck.as_ref()).map(|((input, shared, output), bn)| SeqBottleneck {
                    input,
                    input_norm: bn.input.1.packed(),
                    shared: shared.zip(bn.shared.as_ref()).map(|(li, s)| (li, s.1.packed())),
                    inner_attention: bn.inner_attention,
                    output,
                    output_norm: bn.output.1.packed(),
                }),
                extra_ffns: mx.extra_ffns[bi].iter().zip(&b.extra_ffns).map(|(&(ffn1, ffn2), f)| SeqFfn { ffn1, ffn2, norm: f.2.packed() }).collect(),
            })
            .collect();
        let rows = self.projection_rows();
        let map = match self.feature_map {
            SoftmaxFeatures::Positive => 3,
            SoftmaxFeatures::Trig => 4,
            SoftmaxFeatures::Relu => 5,
        };
        SeqModel {
            layers,
            d_model: net.d_model() as u32,
            heads: self.heads,
            seq: seq as u32,
            vocab: net.vocab() as u32,
            embedding: net.embedding.data.clone(),
            embed_width: net.embedding.cols as u32,
            embed_proj: mx.embed_proj.zip(net.embed_proj.as_ref()).map(|(li, (_, taps))| (li, *taps as u32)),
            no_norm: self.no_norm(),
            positions: net.position_rows(seq, self.segment_sep.is_some()),
            embed_scale: self.embed_scale as f32,
            embed_norm: net.embed_norm.as_ref().map(Norm::packed),
            eps: self.layer_norm_eps as f32,
            blocks,
            norm_first: self.norm_first,
            final_norm: net.final_norm.as_ref().map(Norm::packed),
            pooling: match self.pooling {
                Pooling::Mean => 0,
                Pooling::Cls => 1,
                Pooling::Last => 2,
            },
            head: mx.head,
            attention: match self.attention {
                AttentionKind::Softmax => SeqAttention::Softmax,
                AttentionKind::Kernel => SeqAttention::Kernel { map, s: rows, width: if map == 5 { rows } else { 2 * rows } },
            },
            causal: self.causal,
            next_token: self.task.next_token(),
            span: self.task.qa().then(|| crate::engine::plan::SpanHead {
                max_answer: self.max_answer_tokens,
                n_best: self.n_best,
                sep: self.segment_sep.unwrap_or(u32::MAX),
                answers: self.answers,
            }),
            head_out: self.task.per_sequence(),
            row_counts: self.row_counts && !self.task.token_head() && !self.task.regression(),
            regression: self.task.regression(),
        }
    }

    /// The routed layers' 3D architecture (the fewest tiles of `tiers` tiers of `tile`-sized
    /// crossbars that hold one layer's router and experts) and their mapping.
    pub fn moe_mapping(&self, tile: crate::crossbar::TileShape) -> Result<(crate::arch::tiers::Architecture, crate::arch::mapping::Mapping), String> {
        let net = self.net();
        let layer = crate::arch::tiers::MoeLayer { d_model: net.d_model() as u32, d_ff: net.d_ff() as u32, experts: self.experts, top_k: self.top_k, d_out: 0 };
        crate::workload::moe::fit_architecture(&layer, self.tiers, tile.max_in, tile.max_out, self.moe_mapping)
    }

    /// Token ids and non-padding lengths of a data set whose rows are token sequences; with
    /// `segment_sep`, every token after a row's first separator carries [`SEGMENT_BIT`] (the
    /// `embed` stage then reads its position row from the block with token-type row 1).
    pub fn tokens(&self, data: &Dataset) -> (Vec<u32>, Vec<u32>) {
        let seq = data.n_features;
        let mut tokens: Vec<u32> = data.x.iter().map(|&v| v as u32).collect();
        let lengths = tokens.chunks(seq.max(1)).map(|row| self.length(row) as u32).collect();
        if let Some(sep) = self.segment_sep {
            for row in tokens.chunks_mut(seq.max(1)) {
                if let Some(j) = row.iter().position(|&t| t == sep) {
                    row[j + 1..].iter_mut().for_each(|t| *t |= SEGMENT_BIT);
                }
            }
        }
        (tokens, lengths)
    }

    /// Tokens before the first padding token.
    pub fn length(&self, row: &[u32]) -> usize {
        self.pad_id.and_then(|p| row.iter().position(|&t| t == p)).unwrap_or(row.len())
    }
}

pub fn metric(inputs: &Inputs<'_>, sp: &SweepPoint) -> Metric {
    let text = inputs.data.and_then(|d| d.text.as_ref());
    let v2 = text.is_some_and(|t| t.unanswerable);
    match sp.transformer.as_ref().map_or(Task::Classify, |s| s.task) {
        Task::QaExactMatch if v2 => Metric { text: "official SQuAD 2.0 exact match (question answering)", column: "exact_match", higher_is_better: true },
        Task::QaF1 if v2 => Metric { text: "official SQuAD 2.0 answer F1 (question answering)", column: "f1", higher_is_better: true },
        Task::QaExactMatch if text.is_some() => {
            Metric { text: "official SQuAD exact match (question answering)", column: "exact_match", higher_is_better: true }
        }
        Task::QaF1 if text.is_some() => Metric { text: "official SQuAD answer F1 (question answering)", column: "f1", higher_is_better: true },
        Task::Classify => Metric { text: "test accuracy (transformer)", column: "test_accuracy", higher_is_better: true },
        Task::NextToken => Metric { text: "next-token perplexity (causal language model)", column: "perplexity", higher_is_better: false },
        Task::NextTokenAccuracy => Metric { text: "next-token top-1 accuracy (causal language model)", column: "next_token_accuracy", higher_is_better: true },
        Task::QaExactMatch => Metric { text: "answer exact match (question answering)", column: "exact_match", higher_is_better: true },
        Task::QaF1 => Metric { text: "answer token F1 (question answering)", column: "f1", higher_is_better: true },
        Task::ClassifyMatthews => {
            Metric { text: "Matthews correlation (transformer classifier; GLUE's CoLA)", column: "matthews_correlation", higher_is_better: true }
        }
        Task::ClassifyF1 => Metric { text: "F1 of class 1 (transformer classifier; GLUE's MRPC, QQP)", column: "f1", higher_is_better: true },
        Task::RegressPearson => Metric { text: "Pearson correlation (transformer regression; GLUE's STS-B)", column: "pearson", higher_is_better: true },
        Task::RegressSpearman => {
            Metric { text: "Spearman rank correlation (transformer regression; GLUE's STS-B)", column: "spearman", higher_is_better: true }
        }
    }
}

pub fn run(r: &mut PointRun<'_>) -> Result<Vec<TimeMetrics>, EngineError> {
    let (s, data) = settings(r.point, r.inputs)?;
    let (tokens, lengths) = s.tokens(data);
    let model = s.seq_model(r.point, data.n_features);
    let pts = run_transformer(r.be, &model, &tokens, &lengths, engine_labels(s, data), &r.cfg, &mut |n| (r.progress)(n as u64))?;
    Ok(metrics(s, data, &lengths, pts))
}

/// Whether two points run the same network (the same loaded state dict and every
/// `[transformer]` setting) on the same tiles with the same drift compensation and
/// programmed-state layout, so they can run as one plan: they differ in noise scales and
/// converter settings only (the noise budget's configurations, a sweep over noise).
pub fn alike(a: &SweepPoint, b: &SweepPoint) -> bool {
    let (Some(x), Some(y)) = (&a.transformer, &b.transformer) else { return false };
    let same_net = match (&x.net, &y.net) {
        (Some(p), Some(q)) => Arc::ptr_eq(p, q),
        _ => false,
    };
    let fields = |s: &TransformerSettings| serde_json::to_value(s).ok();
    same_net && fields(x).is_some() && fields(x) == fields(y) && super::classifier::same_tiles(a, b)
}

/// Points that are [`alike`] as one plan (`plan::run_transformer_group`); each point's counts
/// are those of its own run, bit for bit.
pub fn run_group(g: &mut GroupRun<'_>) -> Result<Vec<Vec<TimeMetrics>>, EngineError> {
    let (s, data) = settings(&g.points[0], g.inputs)?;
    let (tokens, lengths) = s.tokens(data);
    let model = s.seq_model(&g.points[0], data.n_features);
    let per_chunk = g.points.len() as u64;
    let progress = &mut *g.progress;
    let all = run_transformer_group(g.be, &model, &tokens, &lengths, engine_labels(s, data), &g.cfgs, &mut |n| progress(n as u64 * per_chunk))?;
    Ok(all.into_iter().map(|pts| metrics(s, data, &lengths, pts)).collect())
}

/// What the plan scores each sequence against: its class, or question answering's answers.
pub(crate) fn engine_labels<'a>(s: &TransformerSettings, data: &'a Dataset) -> &'a [u32] {
    if s.task.qa() {
        &data.spans
    } else {
        &data.labels
    }
}

fn settings<'a>(sp: &'a SweepPoint, inputs: Inputs<'a>) -> Result<(&'a TransformerSettings, &'a Dataset), EngineError> {
    let s = sp.transformer.as_ref().ok_or_else(|| EngineError::Invalid("the transformer workload needs [transformer]".into()))?;
    let data = inputs.data.ok_or_else(|| EngineError::Invalid("the transformer workload needs [data]".into()))?;
    Ok((s, data))
}

/// A routed layer's router for stored layer `block`: Philox normals scaled 1/√d_model from
/// `seed` (each layer its own stream), as the moe workload draws its router.
fn router_weights(experts: usize, d: usize, seed: u64, block: usize) -> Vec<f32> {
    let key = crate::rng::key(seed, 0x5246_0000 | block as u32);
    let scale = 1.0 / (d as f64).sqrt();
    (0..(experts * d).div_ceil(4))
        .flat_map(|b| crate::rng::normal4_f64(crate::rng::philox4x32_10([b as u32, block as u32, 0x52, 0], key)))
        .take(experts * d)
        .map(|v| (v * scale) as f32)
        .collect()
}
