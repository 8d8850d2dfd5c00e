//! The transformer as plain data: the weights of an encoder (or causal decoder) stack as a state
//! dict holds them, independent of where they came from (PyTorch `nn.TransformerEncoder`, Hugging
//! Face BERT-family or aimc's own names; see [`super::names`]) and of how they run (the engine's
//! plan in `engine::plan::transformer`, the f64 reference in [`super::reference`]).
//!
//! Conventions (Vaswani et al., "Attention is all you need", 2017; Devlin et al., BERT, 2019):
//! matrices are PyTorch's `nn.Linear.weight` layout, `[out][in]` row-major; the embedding is
//! `[vocab][d_model]`; Q, K and V are `d_model × d_model` with the heads as consecutive blocks of
//! `d_head` outputs; a kernel-attention feature projection is `[rows][d_head]`, applied to every
//! head's x̃ = x·d_head^(−1/4) (IBM's LRA code: a bias-free `Linear(d_head, m/2)`).

use crate::workload::io::{Linear, Matrix};

/// LayerNorm's affine parameters (`weight` γ and `bias` β), one per feature.
#[derive(Clone, Debug, PartialEq)]
pub struct Norm {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
}

impl Norm {
    /// γ then β, the layout the `layernorm` stage reads.
    pub fn packed(&self) -> Vec<f32> {
        self.gamma.iter().chain(&self.beta).copied().collect()
    }
}

/// Where a token's position comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Positions {
    /// Vaswani's sinusoids: `PE[p][2i] = sin(p / 10000^(2i/d))`, `PE[p][2i+1] = cos(p / 10000^(2i/d))`.
    Sinusoidal,
    /// A learned table `[max_positions][d_model]` (BERT's `position_embeddings`).
    Learned(Matrix),
}

/// One encoder layer: attention projections, feed-forward pair and the two LayerNorms.
#[derive(Clone, Debug)]
pub struct Block {
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    pub ffn1: Linear,
    pub ffn2: Linear,
    /// Around attention (post-LN: after the residual add; pre-LN: before Q, K, V).
    pub norm1: Norm,
    /// Around the feed-forward pair.
    pub norm2: Norm,
    /// Kernel attention's trained projection for Q (and K unless `feature_k` is set),
    /// `[rows][d_head]`, before the d_head^(−1/4) input scaling.
    pub feature_q: Option<Matrix>,
    /// A separate projection for K.
    pub feature_k: Option<Matrix>,
    /// MobileBERT's bottleneck layers around the block (then Q, K, V, O, the feed-forward pairs
    /// and norm1, norm2 are at the bottleneck's inner width).
    pub bottleneck: Option<Bottleneck>,
    /// Feed-forward pairs before the main one (MobileBERT's `ffn.J`), each with its residual and norm.
    pub extra_ffns: Vec<(Linear, Linear, Norm)>,
}

/// MobileBERT's bottleneck around an encoder layer (Sun et al., ACL 2020; Hugging Face
/// `MobileBertBottleneck` and `OutputBottleneck`).
#[derive(Clone, Debug)]
pub struct Bottleneck {
    /// `bottleneck.input`: d_model → inner, normed; the attention residual (`layer_input`).
    pub input: (Linear, Norm),
    /// `bottleneck.attention` (`key_query_shared_bottleneck`): d_model → inner, normed; Q's and
    /// K's input, while V reads the layer input.
    pub shared: Option<(Linear, Norm)>,
    /// `use_bottleneck_attention`: Q, K and V read the input bottleneck.
    pub inner_attention: bool,
    /// `output.bottleneck`: inner → d_model with the layer input as residual, normed.
    pub output: (Linear, Norm),
}

/// A whole network: embeddings, the layer stack, pooling and the classifier head.
#[derive(Clone, Debug)]
pub struct TransformerNet {
    /// `[vocab][d_model]`, or `[vocab][E]` with `embed_proj`.
    pub embedding: Matrix,
    /// MobileBERT's `embedding_transformation`: `[d_model][taps · E]` over the embeddings of
    /// tokens t + 1, t, t − 1 side by side (3 taps, `trigram_input`) or of token t (1 tap).
    pub embed_proj: Option<(Linear, usize)>,
    /// The family's norms are NoNorm (x·γ + β, MobileBERT's published `normalization_type =
    /// "no_norm"`) unless `transformer.norm` says otherwise ([`super::TransformerSettings::no_norm`]).
    pub no_norm: bool,
    pub positions: Positions,
    /// BERT's `token_type_embeddings`, `[types][d_model]`: row 0 is added to every token, or,
    /// with `transformer.segment_sep`, row 1 to the tokens after the first separator.
    pub token_types: Option<Matrix>,
    /// LayerNorm after the embedding sum (BERT, IBM's LRA model).
    pub embed_norm: Option<Norm>,
    /// The stored layers, applied in order (`repeat_layers` times over with shared weights).
    pub blocks: Vec<Block>,
    /// LayerNorm after the last layer (pre-LN stacks: `encoder.norm`).
    pub final_norm: Option<Norm>,
    /// BERT's pooler: dense + tanh on the first (CLS) token.
    pub pooler: Option<Linear>,
    /// The classifier: Linear layers with the head activation between them.
    pub head: Vec<Linear>,
    /// A projection shared by every layer's attention (a model-level `feature_projection.weight`).
    pub shared_feature: Option<Matrix>,
}

impl TransformerNet {
    /// Every Linear layer of the net (its analog matrices), in no particular order.
    pub fn linears(&self) -> Vec<&Linear> {
        let mut out: Vec<&Linear> = self.embed_proj.iter().map(|(l, _)| l).collect();
        for b in &self.blocks {
            out.extend([&b.q, &b.k, &b.v, &b.o, &b.ffn1, &b.ffn2]);
            if let Some(bn) = &b.bottleneck {
                out.push(&bn.input.0);
                out.extend(bn.shared.iter().map(|(l, _)| l));
                out.push(&bn.output.0);
            }
            out.extend(b.extra_ffns.iter().flat_map(|(a, c, _)| [a, c]));
        }
        out.extend(self.pooler.iter());
        out.extend(self.head.iter());
        out
    }

    /// Checks the layers' input ranges against a tile shape (see
    /// [`crate::workload::check_input_ranges`]).
    pub fn check_input_ranges(&self, shape: crate::crossbar::TileShape) -> Result<(), String> {
        crate::workload::check_input_ranges(&self.linears(), shape)
    }

    pub fn d_model(&self) -> usize {
        self.embed_proj.as_ref().map_or(self.embedding.cols, |(l, _)| l.weight.rows)
    }

    /// Width of attention and the feed-forward pairs: the bottleneck's, else d_model.
    pub fn inner(&self) -> usize {
        self.blocks.first().and_then(|b| b.bottleneck.as_ref()).map_or(self.d_model(), |bn| bn.input.0.weight.rows)
    }

    pub fn vocab(&self) -> usize {
        self.embedding.rows
    }

    /// Classes: the last head layer's outputs.
    pub fn classes(&self) -> usize {
        self.head.last().map_or(0, |l| l.weight.rows)
    }

    /// Feed-forward width of the first layer.
    pub fn d_ff(&self) -> usize {
        self.blocks.first().map_or(0, |b| b.ffn1.weight.rows)
    }

    /// Rows of a learned position table (None: sinusoidal, any length).
    pub fn max_positions(&self) -> Option<usize> {
        match &self.positions {
            Positions::Sinusoidal => None,
            Positions::Learned(m) => Some(m.rows),
        }
    }

    /// The position rows `[seq][d_model]` added to the scaled token embeddings, the token-type
    /// row 0 folded in; with `segments`, `[2][seq][d_model]`: a second block with row 1 folded
    /// in, for the tokens of a sentence pair's second segment.
    pub fn position_rows(&self, seq: usize, segments: bool) -> Vec<f32> {
        let d = self.d_model();
        let types = if segments { 2 } else { 1 };
        let mut out = vec![0f32; types * seq * d];
        for ty in 0..types {
            // A one-row table (RoBERTa's) adds that row to both segments (a question-answering
            // pair's context marker without token types).
            let row = self.token_types.as_ref().map(|m| &m.data[ty.min(m.rows - 1) * d..(ty.min(m.rows - 1) + 1) * d]);
            for p in 0..seq {
                for c in 0..d {
                    let v = match &self.positions {
                        Positions::Sinusoidal => sinusoid(p, c, d),
                        Positions::Learned(m) => m.data[p * d + c] as f64,
                    };
                    out[(ty * seq + p) * d + c] = (v + row.map_or(0.0, |r| r[c] as f64)) as f32;
                }
            }
        }
        out
    }

    /// Rows of the token-type table (0 without one).
    pub fn token_type_rows(&self) -> usize {
        self.token_types.as_ref().map_or(0, |m| m.rows)
    }

    /// A language model's head tied to its token embedding (GPT-2's `lm_head`, Press & Wolf,
    /// "Using the output embedding to improve language models", EACL 2017): logits = E h, no bias.
    pub fn tied_head(&self) -> Result<Linear, String> {
        let (e, d) = (self.embedding.cols, self.d_model());
        if e != d {
            return Err(format!(
                "the file has no lm_head.weight and its embedding is {e} wide, not d_model = {d}: a tied head needs the two equal; save the head as lm_head.weight [vocab, {d}]"
            ));
        }
        Ok(Linear::dense("head.0", self.embedding.clone(), vec![0.0; self.embedding.rows]))
    }
}

/// Vaswani's sinusoidal position encoding, entry (position p, feature c) of d features.
pub fn sinusoid(p: usize, c: usize, d: usize) -> f64 {
    let i2 = (c - c % 2) as f64;
    let angle = p as f64 / 10000f64.powf(i2 / d as f64);
    if c.is_multiple_of(2) {
        angle.sin()
    } else {
        angle.cos()
    }
}
