//! The transformer as the engine runs it, as plain data: [`SeqModel`] (analog layers by index,
//! the digital parts' parameters, the layer order) with its blocks, MobileBERT's bottlenecks and
//! stacked pairs, the shape checks every plan runs first, and the counts the bench's floors read
//! (FLOPs, output-noise Philox blocks, weights). The plan that records a forward pass of it is
//! [`super::transformer`].

use super::*;
use crate::engine::cpu::attention_softmax::MAX_D_HEAD;

/// How a layer attends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqAttention {
    /// Exact softmax (`attention_softmax`).
    Softmax,
    /// Linear attention on random features: `feature_map`'s map code (3 positive, 4 trig, 5 ReLU),
    /// projection rows s and feature columns per (token, head).
    Kernel { map: u32, s: u32, width: u32 },
}

/// A routed feed-forward layer (the moe workload's layer inside a transformer): the router and
/// each expert's pair, indices into [`SeqModel::layers`].
#[derive(Clone, Debug)]
pub struct SeqMoe {
    pub router: usize,
    pub experts: Vec<(usize, usize)>,
    pub top_k: u32,
}

/// One application of an encoder layer: indices into [`SeqModel::layers`] and the LayerNorms
/// (γ then β).
#[derive(Clone, Debug)]
pub struct SeqBlock {
    pub q: usize,
    pub k: usize,
    pub v: usize,
    pub o: usize,
    pub ffn1: usize,
    pub ffn2: usize,
    pub norm1: Vec<f32>,
    pub norm2: Vec<f32>,
    /// Kernel attention's projection for Q (with d_head^(−1/4) folded into its weights), and for
    /// K when it differs.
    pub feature_q: Option<usize>,
    pub feature_k: Option<usize>,
    /// The feed-forward pair as routed experts (then `ffn1`, `ffn2` are expert 0's).
    pub moe: Option<SeqMoe>,
    /// MobileBERT's bottleneck layers around the block (None: the block runs at d_model).
    pub bottleneck: Option<SeqBottleneck>,
    /// Feed-forward pairs before the main one, each with its residual and norm (MobileBERT's
    /// `num_feedforward_networks − 1`).
    pub extra_ffns: Vec<SeqFfn>,
}

/// MobileBERT's bottleneck around a block: indices into [`SeqModel::layers`] and the norms' γ
/// then β.
#[derive(Clone, Debug)]
pub struct SeqBottleneck {
    /// d_model → inner: the attention residual and, with `inner_attention`, Q's, K's and V's input.
    pub input: usize,
    pub input_norm: Vec<f32>,
    /// d_model → inner shared by Q and K (`key_query_shared_bottleneck`); V then reads the block input.
    pub shared: Option<(usize, Vec<f32>)>,
    /// Q, K and V read the input bottleneck (`use_bottleneck_attention`).
    pub inner_attention: bool,
    /// inner → d_model, the block input as its residual.
    pub output: usize,
    pub output_norm: Vec<f32>,
}

/// A stacked feed-forward pair with its residual and norm.
#[derive(Clone, Debug)]
pub struct SeqFfn {
    pub ffn1: usize,
    pub ffn2: usize,
    pub norm: Vec<f32>,
}

impl SeqBlock {
    /// A plain encoder layer: Q, K, V, O and the dense feed-forward pair at d_model, its two
    /// norms (γ then β); no feature projection, router, bottleneck or stacked pair.
    #[allow(clippy::too_many_arguments)]
    pub fn dense(q: usize, k: usize, v: usize, o: usize, ffn1: usize, ffn2: usize, norm1: Vec<f32>, norm2: Vec<f32>) -> SeqBlock {
        SeqBlock { q, k, v, o, ffn1, ffn2, norm1, norm2, feature_q: None, feature_k: None, moe: None, bottleneck: None, extra_ffns: vec![] }
    }

    /// The analog layers one application of the block runs on every token, each once (the
    /// router and experts of a routed layer and the feature projections not included).
    pub fn token_layers(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self.bottleneck.iter().flat_map(|b| std::iter::once(b.input).chain(b.shared.as_ref().map(|s| s.0))).collect();
        v.extend([self.q, self.k, self.v, self.o]);
        v.extend(self.extra_ffns.iter().flat_map(|f| [f.ffn1, f.ffn2]));
        if self.moe.is_none() {
            v.extend([self.ffn1, self.ffn2]);
        }
        v.extend(self.bottleneck.as_ref().map(|b| b.output));
        v
    }
}

/// A transformer classifier as the engine runs it.
#[derive(Clone, Debug)]
pub struct SeqModel {
    /// Every analog matrix once; its index is its RNG layer id.
    pub layers: Vec<AnalogLayer>,
    pub d_model: u32,
    pub heads: u32,
    /// Tokens per (padded) sequence.
    pub seq: u32,
    pub vocab: u32,
    /// `[vocab][embed_width]`.
    pub embedding: Vec<f32>,
    /// The embedding table's width: d_model, or narrower with `embed_proj`.
    pub embed_width: u32,
    /// MobileBERT's embedding projection: the analog layer (taps · embed_width → d_model) and the
    /// tokens it reads side by side (3: the trigram input; 1).
    pub embed_proj: Option<(usize, u32)>,
    /// The norms are NoNorm (x·γ + β, MobileBERT) instead of LayerNorm.
    pub no_norm: bool,
    /// `[seq][d_model]`: positions plus any token-type row 0; for sentence pairs `[2][seq][d_model]`,
    /// the second block with token-type row 1, read by tokens that carry
    /// [`crate::workload::transformer::SEGMENT_BIT`].
    pub positions: Vec<f32>,
    pub embed_scale: f32,
    pub embed_norm: Option<Vec<f32>>,
    pub eps: f32,
    /// The layers in application order (a weight-shared stack lists a block again).
    pub blocks: Vec<SeqBlock>,
    pub norm_first: bool,
    pub final_norm: Option<Vec<f32>>,
    /// 0 mean over the non-padding tokens, 1 the first token, 2 the last non-padding token.
    pub pooling: u32,
    /// The head's layers in order (BERT's pooler first).
    pub head: Vec<usize>,
    pub attention: SeqAttention,
    pub causal: bool,
    /// A causal language model: the head reads every token (no pooling) and its outputs, one
    /// logit per vocabulary token, predict the next token (`token_nll`) instead of a class.
    pub next_token: bool,
    /// Extractive question answering: the head reads every token (no pooling) and its two
    /// outputs, the start and end logits, pick an answer span (`answer_span`).
    pub span: Option<SpanHead>,
    /// Metrics over every sequence's prediction (GLUE's Matthews correlation, F1, Pearson and
    /// Spearman correlations): the pooled head's outputs of every (trial, sequence) are read back
    /// (`head_out`). `regression`: the head's one output is a value, not a class logit, so no
    /// correct count is kept (`accuracy` does not run).
    pub head_out: bool,
    /// A classifier's right trials per row (`transformer.row_counts`), counted on the device
    /// (`row_correct`) and read back once per chunk.
    pub row_counts: bool,
    pub regression: bool,
}

/// Extractive question answering's answer search (`answer_span`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanHead {
    /// The longest answer, in tokens.
    pub max_answer: u32,
    /// The largest start and end logits an answer may take (0: every span).
    pub n_best: u32,
    /// The separator token id: the context is the second segment's tokens but it.
    pub sep: u32,
    /// Labelled answer spans per sequence (the best one scores); 0 where the answers are text
    /// the host scores from the predicted spans (SQuAD's official metrics).
    pub answers: u32,
}

impl SeqModel {
    /// Whether the head reads every token (a language model, question answering) rather than the
    /// one pooled vector of each sequence.
    pub fn token_head(&self) -> bool {
        self.next_token || self.span.is_some()
    }

    /// Width of the attention and feed-forward stream: the bottleneck's, else d_model.
    pub fn inner(&self) -> u32 {
        self.blocks.first().and_then(|b| b.bottleneck.as_ref()).map_or(self.d_model, |bn| self.layers[bn.input].mapped.n_out)
    }

    pub fn d_head(&self) -> u32 {
        self.inner() / self.heads.max(1)
    }

    pub(super) fn d_ff(&self) -> u32 {
        let ffn1 = |b: &SeqBlock| {
            std::iter::once(b.ffn1)
                .chain(b.extra_ffns.iter().map(|f| f.ffn1))
                .chain(b.moe.iter().flat_map(|m| m.experts.iter().map(|e| e.0)))
                .collect::<Vec<_>>()
        };
        self.blocks.iter().flat_map(ffn1).map(|li| self.layers[li].mapped.n_out).max().unwrap_or(0)
    }

    /// Experts of the widest routed layer (0: none).
    pub(super) fn experts(&self) -> u32 {
        self.blocks.iter().filter_map(|b| b.moe.as_ref()).map(|m| m.experts.len() as u32).max().unwrap_or(0)
    }

    /// Kernel attention's (s, width), (0, 0) for softmax.
    pub(super) fn features(&self) -> (u32, u32) {
        match self.attention {
            SeqAttention::Softmax => (0, 0),
            SeqAttention::Kernel { s, width, .. } => (s, width),
        }
    }

    /// Checks shapes against each other; every message names the layer and what to fix.
    pub fn check(&self) -> Result<(), EngineError> {
        let bad = |m: String| Err(EngineError::Invalid(m));
        let (d, dh) = (self.d_model, self.d_head());
        let inner = self.inner();
        if self.heads == 0 || !inner.is_multiple_of(self.heads) {
            return bad(format!("heads = {} must divide the attention width {inner}", self.heads));
        }
        if inner > d {
            return bad(format!("the bottleneck width {inner} exceeds d_model = {d}"));
        }
        if dh > MAX_D_HEAD {
            return bad(format!("d_head = {dh} exceeds the {MAX_D_HEAD} the attention stage holds; use more heads"));
        }
        if self.seq == 0 || self.vocab == 0 || self.blocks.is_empty() || self.head.is_empty() {
            return bad("a transformer needs tokens, a vocabulary, at least one layer and a head".into());
        }
        if self.next_token {
            let out = self.layers[*self.head.last().expect("checked above")].mapped.n_out;
            if !self.causal {
                return bad("next-token prediction needs causal attention: every token would see the one it predicts".into());
            }
            if out != self.vocab {
                return bad(format!("the language-model head has {out} outputs, one per vocabulary token needs {}", self.vocab));
            }
        }
        if let Some(sp) = self.span {
            let out = self.layers[*self.head.last().expect("checked above")].mapped.n_out;
            if out != 2 || self.next_token || sp.max_answer == 0 {
                return bad(format!("a question-answering head gives 2 outputs per token (start, end) and answers of >= 1 token; it has {out}"));
            }
        }
        for (i, l) in self.layers.iter().enumerate() {
            check_indices(&l.mapped, i)?;
        }
        let shape = |li: usize, n_in: u32, n_out: Option<u32>, what: &str| -> Result<(), EngineError> {
            let m = &self.layers[li].mapped;
            if m.n_in != n_in || n_out.is_some_and(|o| o != m.n_out) {
                return Err(EngineError::Invalid(format!(
                    "{what} (layer {li}) is {} x {}, expected {} x {n_in}",
                    m.n_out,
                    m.n_in,
                    n_out.map_or("any".into(), |o| o.to_string())
                )));
            }
            Ok(())
        };
        let (s, _) = self.features();
        let norm_len = |v: &[f32], w: u32, what: &str| -> Result<(), EngineError> {
            if v.len() != 2 * w as usize {
                return Err(EngineError::Invalid(format!("{what}: norm parameters must be 2 x {w}")));
            }
            Ok(())
        };
        for (bi, b) in self.blocks.iter().enumerate() {
            // Q's and K's input, V's input and the attention/feed-forward stream's width.
            let (qk_in, v_in) = match &b.bottleneck {
                None => (d, d),
                Some(bn) => {
                    if self.norm_first || b.moe.is_some() || self.features().0 > 0 {
                        return bad(format!("layer {bi}: bottleneck layers run post-norm, with the dense feed-forward pair and softmax attention"));
                    }
                    shape(bn.input, d, Some(inner), &format!("layer {bi} input bottleneck"))?;
                    norm_len(&bn.input_norm, inner, &format!("layer {bi} input bottleneck"))?;
                    shape(bn.output, inner, Some(d), &format!("layer {bi} output bottleneck"))?;
                    norm_len(&bn.output_norm, d, &format!("layer {bi} output bottleneck"))?;
                    if let Some((sh, sn)) = &bn.shared {
                        shape(*sh, d, Some(inner), &format!("layer {bi} shared Q/K bottleneck"))?;
                        norm_len(sn, inner, &format!("layer {bi} shared Q/K bottleneck"))?;
                    }
                    match (bn.inner_attention, bn.shared.is_some()) {
                        (true, true) => return bad(format!("layer {bi}: Q, K and V read either the input bottleneck or the shared one")),
                        (true, false) => (inner, inner),
                        (false, true) => (inner, d),
                        (false, false) => (d, d),
                    }
                }
            };
            for (li, n_in, what) in [(b.q, qk_in, "Q"), (b.k, qk_in, "K"), (b.v, v_in, "V"), (b.o, inner, "O")] {
                shape(li, n_in, Some(inner), &format!("layer {bi} {what}"))?;
            }
            for (fi, (f1, f2)) in std::iter::once((b.ffn1, b.ffn2)).chain(b.extra_ffns.iter().map(|f| (f.ffn1, f.ffn2))).enumerate() {
                let dff = self.layers[f1].mapped.n_out;
                shape(f1, inner, None, &format!("layer {bi} FFN {fi} up"))?;
                shape(f2, dff, Some(inner), &format!("layer {bi} FFN {fi} down"))?;
            }
            for f in &b.extra_ffns {
                norm_len(&f.norm, inner, &format!("layer {bi} stacked FFN"))?;
            }
            if !b.extra_ffns.is_empty() && (self.norm_first || b.moe.is_some()) {
                return bad(format!("layer {bi}: stacked feed-forward pairs run post-norm with the dense pair"));
            }
            norm_len(&b.norm1, inner, &format!("layer {bi} norm1"))?;
            norm_len(&b.norm2, inner, &format!("layer {bi} norm2"))?;
            if b.bottleneck.as_ref().map(|bn| self.layers[bn.input].mapped.n_out)
                != self.blocks[0].bottleneck.as_ref().map(|bn| self.layers[bn.input].mapped.n_out)
            {
                return bad(format!("layer {bi}: every layer needs the same bottleneck"));
            }
            if let Some(moe) = &b.moe {
                let e = moe.experts.len() as u32;
                if e == 0 || e > crate::engine::cpu::moe_gate::MAX_EXPERTS || moe.top_k == 0 || moe.top_k > e {
                    return bad(format!(
                        "layer {bi}: {e} experts with top_k = {} (1 <= top_k <= experts <= {})",
                        moe.top_k,
                        crate::engine::cpu::moe_gate::MAX_EXPERTS
                    ));
                }
                shape(moe.router, d, Some(e), &format!("layer {bi} router"))?;
                for (j, &(f1, f2)) in moe.experts.iter().enumerate() {
                    let h = self.layers[f1].mapped.n_out;
                    shape(f1, d, None, &format!("layer {bi} expert {j} FFN1"))?;
                    shape(f2, h, Some(d), &format!("layer {bi} expert {j} FFN2"))?;
                }
            }
            if let SeqAttention::Kernel { .. } = self.attention {
                let fq = b.feature_q.ok_or_else(|| EngineError::Invalid(format!("layer {bi}: kernel attention needs a feature projection")))?;
                for f in [Some(fq), b.feature_k].into_iter().flatten() {
                    shape(f, dh, Some(s), &format!("layer {bi} feature projection"))?;
                }
            }
        }
        let mut width = d;
        for &li in &self.head {
            shape(li, width, None, "head layer")?;
            width = self.layers[li].mapped.n_out;
        }
        let blocks = self.positions.len() / ((self.seq * d) as usize).max(1);
        let e = self.embed_width;
        if self.embedding.len() != (self.vocab * e) as usize || !(1..=2).contains(&blocks) || self.positions.len() != blocks * (self.seq * d) as usize {
            return bad("the embedding must be vocab x embed_width and the positions seq x d_model (2 x seq x d_model for sentence pairs)".into());
        }
        match self.embed_proj {
            Some((li, taps)) => {
                if taps != 1 && taps != 3 {
                    return bad(format!("the embedding projection reads 1 or 3 tokens, not {taps}"));
                }
                shape(li, taps * e, Some(d), "the embedding projection")?;
            }
            None if e != d => return bad(format!("an embedding {e} wide needs a projection to d_model = {d}")),
            None => {}
        }
        if let Some(n) = &self.embed_norm {
            norm_len(n, d, "the embedding norm")?;
        }
        if self.vocab > crate::workload::transformer::SEGMENT_BIT {
            return bad(format!("a vocabulary of {} tokens reaches the segment bit of a token id", self.vocab));
        }
        Ok(())
    }
}

impl SeqModel {
    /// Unavoidable FLOPs of one sequence of `len` non-padding tokens (of `seq`): every analog
    /// layer's MACs (2 FLOPs each) over its vectors, and attention: softmax 2·2·keys·d_head per
    /// (query, head) (scores and the weighted sum; keys = len, or i + 1 causal), or linear
    /// attention's feature projections, key sums (2·len·width·(d_head + 1) per head) and outputs
    /// (2·seq·width·(d_head + 1) per head). LayerNorm, softmax exponentials and the feature maps'
    /// exponentials are not counted. A language model's head runs on every token.
    pub fn flops_per_sequence(&self, len: f64) -> f64 {
        let (seq, heads, dh) = (self.seq as f64, self.heads as f64, self.d_head() as f64);
        let mac = |li: usize, vectors: f64| 2.0 * vectors * self.layers[li].mapped.n_in as f64 * self.layers[li].mapped.n_out as f64;
        let mut f = 0.0;
        f += self.embed_proj.map_or(0.0, |(li, _)| mac(li, seq));
        for b in &self.blocks {
            for li in b.token_layers() {
                f += mac(li, seq);
            }
            // A routed layer's unavoidable work: the router and top_k of its experts per token.
            if let Some(moe) = &b.moe {
                f += mac(moe.router, seq) + moe.top_k as f64 * (mac(moe.experts[0].0, seq) + mac(moe.experts[0].1, seq));
            }
            let keys = if self.causal { (len + 1.0) / 2.0 } else { len };
            f += match self.attention {
                SeqAttention::Softmax => 4.0 * seq * keys * self.inner() as f64,
                SeqAttention::Kernel { width, .. } => {
                    let fq = b.feature_q.unwrap_or(b.q);
                    let w = width as f64;
                    2.0 * mac(fq, seq * heads) + 2.0 * heads * (len + seq) * w * (dh + 1.0)
                }
            };
        }
        f + self.head.iter().map(|&li| mac(li, self.head_vectors())).sum::<f64>()
    }

    /// Vectors per sequence through the head: every token of a language model or a span head, else the one
    /// pooled vector.
    pub fn head_vectors(&self) -> f64 {
        if self.token_head() {
            self.seq as f64
        } else {
            1.0
        }
    }

    /// Philox blocks of the periphery's output noise per sequence: one block per four outputs of
    /// each input tile of every analog MVM (as `aimc bench` case (c) counts them); a routed
    /// layer's top_k experts and router.
    pub fn noise_blocks_per_sequence(&self) -> f64 {
        let seq = self.seq as f64;
        let blocks = |li: usize, vectors: f64| vectors * self.layers[li].mapped.n_out as f64 * self.layers[li].mapped.tiles_in as f64 / 4.0;
        let mut n = self.embed_proj.map_or(0.0, |(li, _)| blocks(li, seq));
        for b in &self.blocks {
            for li in b.token_layers() {
                n += blocks(li, seq);
            }
            if let Some(moe) = &b.moe {
                n += blocks(moe.router, seq) + moe.top_k as f64 * (blocks(moe.experts[0].0, seq) + blocks(moe.experts[0].1, seq));
            }
            if let SeqAttention::Kernel { .. } = self.attention {
                let fq = b.feature_q.unwrap_or(b.q);
                n += 2.0 * blocks(fq, seq * self.heads as f64);
            }
        }
        n + self.head.iter().map(|&li| blocks(li, self.head_vectors())).sum::<f64>()
    }

    /// Analog weights of the model (each matrix once).
    pub fn weights(&self) -> u64 {
        self.layers.iter().map(|l| l.mapped.len() as u64).sum()
    }
}
