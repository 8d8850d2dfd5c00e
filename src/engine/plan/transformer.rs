//! The transformer plan: a token classifier whose static-weight matrices are analog layers and
//! whose embedding, LayerNorm, attention, residual adds and pooling are digital stages. Per trial
//! chunk every analog matrix is programmed once (a layer applied twice, as in weight-shared
//! stacks, is the same programmed crossbar); per time every matrix drifts once, then each sample
//! batch runs:
//!
//! `embed` → [`layernorm`] → per layer: Q, K, V (`dac` → `mvm` → `bound` → `combine`), attention
//! (`attention_softmax`, or kernel-approximated: the feature projection on crossbars per head
//! slice, `row_norms`, `feature_map`, `linear_kv`, `linear_out`), O, `residual`, LayerNorm, the
//! feed-forward pair, `residual`, LayerNorm → `seq_pool` → the head's analog layers → `accuracy`.
//!
//! MobileBERT (Sun et al., "MobileBERT: a Compact Task-Agnostic BERT for Resource-Limited
//! Devices", ACL 2020; Hugging Face `MobileBertLayer`) adds three things, all on the same stages:
//! the trigram input (`embed` mode 1, the analog projection to d_model, `embed` mode 2 adding the
//! positions), bottleneck layers around each block (the block's attention and feed-forward pairs
//! run at the narrower inner width: the input bottleneck gives the attention residual, a shared
//! bottleneck gives Q's and K's input, the output bottleneck widens back with the block input as
//! its residual) and stacked feed-forward pairs; its NoNorm is `layernorm` mode 1.
//!
//! Periphery noise is keyed by a layer's global vector index: the k-th application of a layer in a
//! forward pass numbers its vectors from k · (samples of the data set) · (vectors per sample), so
//! sample batches reproduce the whole set's numbers and a shared layer applied twice draws fresh
//! noise each time.

use super::*;
use crate::engine::cpu::attention_softmax::MAX_D_HEAD;
use crate::engine::layout::SeqParams;
use crate::engine::stages::{ATTN_BLOCK, SOFTMAX_SQ};

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
    /// 0 mean over the non-padding tokens, 1 the first token.
    pub pooling: u32,
    /// The head's layers in order (BERT's pooler first).
    pub head: Vec<usize>,
    pub attention: SeqAttention,
    pub causal: bool,
}

impl SeqModel {
    /// Width of the attention and feed-forward stream: the bottleneck's, else d_model.
    pub fn inner(&self) -> u32 {
        self.blocks.first().and_then(|b| b.bottleneck.as_ref()).map_or(self.d_model, |bn| self.layers[bn.input].mapped.n_out)
    }

    pub fn d_head(&self) -> u32 {
        self.inner() / self.heads.max(1)
    }

    fn d_ff(&self) -> u32 {
        let ffn1 = |b: &SeqBlock| {
            std::iter::once(b.ffn1)
                .chain(b.extra_ffns.iter().map(|f| f.ffn1))
                .chain(b.moe.iter().flat_map(|m| m.experts.iter().map(|e| e.0)))
                .collect::<Vec<_>>()
        };
        self.blocks.iter().flat_map(ffn1).map(|li| self.layers[li].mapped.n_out).max().unwrap_or(0)
    }

    /// Experts of the widest routed layer (0: none).
    fn experts(&self) -> u32 {
        self.blocks.iter().filter_map(|b| b.moe.as_ref()).map(|m| m.experts.len() as u32).max().unwrap_or(0)
    }

    /// Kernel attention's (s, width), (0, 0) for softmax.
    fn features(&self) -> (u32, u32) {
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

/// Words per sample of each per-batch buffer, the largest first-class buffer per sample, and the
/// sum of all of them per sample.
fn per_sample_words(m: &SeqModel) -> (u64, u64) {
    let (seq, d, heads, dh) = (m.seq as u64, m.d_model as u64, m.heads as u64, m.d_head() as u64);
    let (s, width) = m.features();
    let (s, width) = (s as u64, width as u64);
    let blocks = if m.causal { seq.div_ceil(ATTN_BLOCK as u64) } else { 1 };
    let vps = |li: usize| vectors_per_sample(m, li) as u64;
    let scratch = m
        .layers
        .iter()
        .enumerate()
        .map(|(li, l)| {
            let mm = &l.mapped;
            vps(li) * (mm.tiles_in as u64 * mm.n_out as u64).max(mm.n_in as u64)
        })
        .max()
        .unwrap_or(0);
    let act = seq * d;
    let kernel = [seq * heads * s, seq * heads * width, heads * blocks * width * (dh + 1)];
    let gates = seq * m.experts() as u64;
    let taps = seq * m.embed_proj.map_or(0, |(_, t)| t as u64 * m.embed_width as u64);
    let largest = [act, seq * m.d_ff() as u64, scratch, gates, taps].into_iter().chain(kernel).max().unwrap();
    let total = 8 * act
        + taps
        + seq * m.d_ff() as u64
        + 3 * scratch
        + if s > 0 { 2 * kernel[0] + 2 * kernel[1] + kernel[2] } else { 0 }
        + if gates > 0 { 2 * gates + act } else { 0 };
    (largest, total)
}

/// Vectors per sample of an analog layer: tokens, (token, head) slices, or one (head layers).
fn vectors_per_sample(m: &SeqModel, li: usize) -> u32 {
    if m.head.contains(&li) {
        1
    } else if m.blocks.iter().any(|b| b.feature_q == Some(li) || b.feature_k == Some(li)) {
        m.seq * m.heads
    } else {
        m.seq
    }
}

/// Program the model `cfg.trials` times and classify the token sequences at every time.
/// `tokens` is `[samples][seq]`, `lengths` the non-padding tokens of each, `labels` the classes.
pub fn run_transformer(
    be: &mut dyn Backend,
    m: &SeqModel,
    tokens: &[u32],
    lengths: &[u32],
    labels: &[u32],
    cfg: &RunConfig,
    on_chunk: &mut dyn FnMut(u32),
) -> Result<Vec<ClassifierPoint>, EngineError> {
    let mut all = run_transformer_group(be, m, tokens, lengths, labels, std::slice::from_ref(cfg), on_chunk)?;
    Ok(all.pop().expect("one configuration, one result"))
}

/// Several configurations of one model as one plan (noise-budget configurations, a sweep over
/// noise; see `forward`): one set of buffers, each distinct device state programmed once per
/// chunk and drifted once per time, every configuration's counts read back once per chunk. Per
/// configuration, what [`run_transformer`] gives for it alone, bit for bit.
pub fn run_transformer_group(
    be: &mut dyn Backend,
    m: &SeqModel,
    tokens: &[u32],
    lengths: &[u32],
    labels: &[u32],
    cfgs: &[RunConfig],
    on_chunk: &mut dyn FnMut(u32),
) -> Result<Vec<Vec<ClassifierPoint>>, EngineError> {
    let matrices: Vec<&MappedMatrix> = m.layers.iter().map(|l| &l.mapped).collect();
    run_distinct(cfgs, &matrices, |cfgs| transformer_group(be, m, tokens, lengths, labels, cfgs, on_chunk))
}

/// [`run_transformer_group`] of configurations that all differ.
fn transformer_group(
    be: &mut dyn Backend,
    m: &SeqModel,
    tokens: &[u32],
    lengths: &[u32],
    labels: &[u32],
    cfgs: &[RunConfig],
    on_chunk: &mut dyn FnMut(u32),
) -> Result<Vec<Vec<ClassifierPoint>>, EngineError> {
    m.check()?;
    let cfg = group_lead(cfgs)?;
    check_layer_times(m.layers.len(), cfg.times.len())?;
    let samples = labels.len() as u32;
    if samples == 0 || tokens.len() != (samples * m.seq) as usize || lengths.len() != samples as usize {
        return Err(EngineError::Invalid(format!("{} tokens and {} lengths for {samples} sequences of {} tokens", tokens.len(), lengths.len(), m.seq)));
    }
    let pairs = m.positions.len() == 2 * (m.seq * m.d_model) as usize;
    if !pairs && tokens.iter().any(|&t| t & crate::workload::transformer::SEGMENT_BIT != 0) {
        return Err(EngineError::Invalid("tokens of a second segment, but the positions hold no token-type row 1 block".into()));
    }
    // Sample batches: one trial's largest buffer within a binding, and the feature projection's
    // (token, head) vectors within one `mvm` dispatch.
    let limit = be.max_binding_bytes().min(CHUNK_BUDGET_BYTES);
    let (largest, total) = per_sample_words(m);
    let by_mvm = (MAX_GROUPS as u64 * MVM_MIN_BM as u64) / (m.seq as u64 * m.heads as u64);
    let sb = ((limit / 4 / largest.max(1)).min(by_mvm).min(samples as u64) as u32).max(1);
    if largest * 4 > limit {
        return Err(EngineError::TooLarge {
            what: "one sequence's activations".into(),
            need: largest * 4,
            limit,
            fix: "the sequence length (the data set's columns) or the model width".into(),
        });
    }
    // Trials per chunk: the batch's buffers and every matrix's device state within the budget.
    let state: u64 = m.layers.iter().map(|l| state_bytes(&l.mapped, &cfg.device) + 4 * l.mapped.len() as u64).sum();
    let per_trial = state + 4 * total * sb as u64;
    let max_tiles = m.layers.iter().map(|l| l.mapped.n_tiles()).max().unwrap_or(1);
    let biggest_state = m.layers.iter().map(|l| state_bytes(&l.mapped, &cfg.device)).max().unwrap_or(4);
    let chunk = chunk_size(be, cfg, biggest_state.max(4 * largest * sb as u64), "one trial's device state or activations")?
        .min((CHUNK_BUDGET_BYTES / per_trial.max(1)).max(1) as u32)
        .min((MAX_GROUPS / max_tiles).max(1));
    // Periphery counters: the last application's last vector must fit 32 bits.
    let mut uses = vec![0u64; m.layers.len()];
    for b in &m.blocks {
        let fq = b.feature_q.into_iter().chain([b.feature_k.or(b.feature_q)].into_iter().flatten());
        let moe = b.moe.iter().flat_map(|x| std::iter::once(x.router).chain(x.experts.iter().flat_map(|e| [e.0, e.1])));
        for li in b.token_layers().into_iter().chain(fq).chain(moe) {
            uses[li] += 1;
        }
    }
    if let Some((li, _)) = m.embed_proj {
        uses[li] += 1;
    }
    let apps = uses.iter().zip(0..).map(|(&u, li)| u * vectors_per_sample(m, li) as u64).max().unwrap_or(1);
    if apps * samples as u64 >= u32::MAX as u64 {
        return Err(EngineError::Invalid(format!(
            "{samples} sequences of {} tokens over {} layers exceed the 2^32 MVM vectors a run numbers; use fewer rows",
            m.seq,
            m.blocks.len()
        )));
    }

    let (seq, d, heads, dh) = (m.seq, m.d_model, m.heads, m.d_head());
    let (s, width) = m.features();
    let kernel = s > 0;
    let blocks_causal = if m.causal { seq.div_ceil(ATTN_BLOCK as u32) } else { 1 };
    let words = |per_sample: u32| chunk as usize * sb as usize * per_sample as usize;
    let upload = |be: &mut dyn Backend, label: &str, data: &[u32]| {
        let b = be.create(label, data.len().max(1));
        be.upload(b, data);
        b
    };
    let f32s = |v: &[f32]| -> Vec<u32> { bytemuck::cast_slice(v).to_vec() };
    let mats: Vec<MatrixBufs> = m.layers.iter().map(|l| MatrixBufs::new(be, &l.mapped, chunk, cfg)).collect();
    let biases: Vec<Buf> = m.layers.iter().map(|l| upload(be, "bias", &f32s(&l.bias))).collect();
    let vps: Vec<u32> = (0..m.layers.len()).map(|li| vectors_per_sample(m, li)).collect();
    let scratch = MvmBufs::new(be, chunk, &m.layers.iter().zip(&vps).map(|(l, &v)| (v * sb, &l.mapped)).collect::<Vec<_>>());
    let emb = upload(be, "embedding", &f32s(&m.embedding));
    let pos = upload(be, "positions", &f32s(&m.positions));
    let norm = |be: &mut dyn Backend, v: &Option<Vec<f32>>| v.as_ref().map(|g| upload(be, "norm", &f32s(g)));
    let embed_norm = norm(be, &m.embed_norm);
    let final_norm = norm(be, &m.final_norm);
    let norms: Vec<(Buf, Buf)> = m.blocks.iter().map(|b| (upload(be, "norm1", &f32s(&b.norm1)), upload(be, "norm2", &f32s(&b.norm2)))).collect();
    // Per block: the bottleneck's norms (input, shared Q/K, output), the stacked pairs' norms.
    let bn_norms: Vec<Option<[Buf; 3]>> = m
        .blocks
        .iter()
        .map(|b| {
            b.bottleneck.as_ref().map(|bn| {
                let shared = bn.shared.as_ref().map_or(&bn.input_norm, |s| &s.1);
                [upload(be, "norm_in", &f32s(&bn.input_norm)), upload(be, "norm_shared", &f32s(shared)), upload(be, "norm_out", &f32s(&bn.output_norm))]
            })
        })
        .collect();
    let ffn_norms: Vec<Vec<Buf>> = m.blocks.iter().map(|b| b.extra_ffns.iter().map(|f| upload(be, "norm_ffn", &f32s(&f.norm))).collect()).collect();
    let act = |be: &mut dyn Backend, label: &str| be.create(label, words(seq * d));
    let mut x = act(be, "x");
    let mut tmp = act(be, "tmp");
    let (q, k, v, att, y) = (act(be, "q"), act(be, "k"), act(be, "v"), act(be, "att"), act(be, "y"));
    // The bottleneck's inner stream beside the block input x.
    let mut lb = act(be, "inner");
    let f1 = be.create("ffn", words(seq * m.d_ff()));
    let tri = m.embed_proj.map(|(_, taps)| be.create("taps", words(seq * taps * m.embed_width)));
    let kbufs = if kernel {
        let th = seq * heads;
        Some([
            be.create("hq", words(th * s)),
            be.create("hk", words(th * s)),
            be.create("nq", words(th)),
            be.create("nk", words(th)),
            be.create("phiq", words(th * width)),
            be.create("phik", words(th * width)),
            be.create("kv", words(heads * blocks_causal * width * (dh + 1))),
        ])
    } else {
        None
    };
    let e_max = m.experts();
    let moe_bufs =
        (e_max > 0).then(|| [be.create("router", words(seq * e_max)), be.create("gates", words(seq * e_max)), be.create("expert_out", words(seq * d))]);
    let head_width = m.head.iter().map(|&li| m.layers[li].mapped.n_out).max().unwrap_or(1).max(d);
    let pooled = be.create("pooled", words(d));
    let hb = [be.create("head0", words(head_width)), be.create("head1", words(head_width))];
    let tok_b = be.create("tokens", (sb * seq) as usize);
    let len_b = be.create("lengths", sb as usize);
    let lab_b = be.create("labels", sb as usize);
    let (nt, nc) = (cfg.times.len(), cfgs.len());
    // Counts of every configuration and time of a chunk, [config][t_index][trial].
    let correct = be.create("correct", nc * nt * chunk as usize);
    let mut out: Vec<Vec<ClassifierPoint>> =
        cfgs.iter().map(|_| cfg.times.iter().map(|&t| ClassifierPoint { t_inf: t, correct: vec![], n_samples: samples }).collect()).collect();
    let wg = be.wg();
    let classes = m.layers[*m.head.last().unwrap()].mapped.n_out;
    // Every matrix's params for `program` and `drift` (one vector per trial: the device state
    // does not depend on the batch).
    let state_params =
        |c: &RunConfig, li: usize, n: u32, offset: u32, ti: usize| params(c, li as u32, &m.layers[li].mapped, n, offset, 1, ti as u32, cfg.times[ti]);
    let n0 = chunk.min(cfg.trials);
    let groups = sharing_groups(cfgs, |c| {
        let prog = (0..m.layers.len()).flat_map(|li| program_tag(&params(c, li as u32, &m.layers[li].mapped, n0, 0, 1, 0, 0.0))).collect();
        let drift = (0..m.layers.len()).flat_map(|li| drift_tag(&state_params(c, li, n0, 0, 0))).collect();
        (prog, drift)
    });
    let mut tags = StateTags::new(m.layers.len());

    let mut offset = 0;
    let mut result = Ok(());
    while offset < cfg.trials {
        let n = chunk.min(cfg.trials - offset);
        tags.forget();
        be.clear(correct);
        // Per group of configurations that drift alike: its programs, then each time of each
        // member.
        let steps = groups.iter().flat_map(|g| {
            std::iter::once(Step::Program(g[0])).chain(cfg.times.iter().enumerate().flat_map(move |(ti, &t)| g.iter().map(move |&ci| Step::Run(ci, ti, t))))
        });
        for step in steps {
            let (ci, ti, t) = match step {
                Step::Program(ci) => {
                    for (li, l) in m.layers.iter().enumerate() {
                        let p = params(&cfgs[ci], li as u32, &l.mapped, n, offset, 1, 0, 0.0);
                        if tags.program(li, &p) {
                            record_program(be, &p, &l.mapped, &mats[li]);
                        }
                    }
                    continue;
                }
                Step::Run(ci, ti, t) => (ci, ti, t),
            };
            let c = &cfgs[ci];
            for (li, l) in m.layers.iter().enumerate() {
                let p = state_params(c, li, n, offset, ti);
                match tags.drift(li, &p) {
                    Drift::Held => {}
                    Drift::Record => record_drift(be, &p, &l.mapped, &mats[li]),
                    Drift::BaselineFirst => {
                        record_drift(be, &state_params(c, li, n, offset, 0), &l.mapped, &mats[li]);
                        record_drift(be, &p, &l.mapped, &mats[li]);
                    }
                }
            }
            for s0 in (0..samples).step_by(sb as usize) {
                let sbl = sb.min(samples - s0);
                let (a, b) = ((s0 * seq) as usize, ((s0 + sbl) * seq) as usize);
                be.upload(tok_b, &tokens[a..b]);
                be.upload(len_b, &lengths[s0 as usize..(s0 + sbl) as usize]);
                be.upload(lab_b, &labels[s0 as usize..(s0 + sbl) as usize]);
                let rows = n * sbl * seq;
                let base = SeqParams {
                    samples: sbl,
                    seq,
                    d_model: d,
                    heads,
                    d_head: dh,
                    width,
                    causal: u32::from(m.causal),
                    blocks: blocks_causal,
                    vocab: m.vocab,
                    pool: m.pooling,
                    rows,
                    width_in: d,
                    scale: m.embed_scale,
                    eps: m.eps,
                    sample_offset: s0,
                    ..SeqParams::default()
                };
                let dig = |sp: SeqParams| {
                    let mut p = StageParams::default();
                    p.layer.trials = n;
                    p.layer.t_index = ti as u32;
                    p.seq = sp;
                    p
                };
                let mut apps = vec![0u32; m.layers.len()];
                let mut analog = |be: &mut dyn Backend, li: usize, input: Buf, output: Buf| {
                    let l = &m.layers[li];
                    let mut p = params(c, li as u32, &l.mapped, n, offset, sbl * vps[li], ti as u32, t);
                    p.layer.x_per_trial = 1;
                    p.layer.activation = l.activation;
                    p.layer.vector_offset = (apps[li] * samples + s0) * vps[li];
                    apps[li] += 1;
                    record_layer(be, &p, &l.mapped, &mats[li], &scratch, input, biases[li], output);
                };
                let mode = u32::from(m.no_norm);
                let layernorm_w = |be: &mut dyn Backend, input: Buf, gb: Buf, output: Buf, w: u32| {
                    be.dispatch(Stage::Layernorm, &dig(SeqParams { width_in: w, mode, ..base }), &[input, gb, output], grid(rows as u64, wg));
                };
                let layernorm = |be: &mut dyn Backend, input: Buf, gb: Buf, output: Buf| layernorm_w(be, input, gb, output, d);
                // The residual add at width w: x += y.
                let residual = |be: &mut dyn Backend, y: Buf, x: Buf, w: u32| {
                    be.dispatch(Stage::Residual, &dig(SeqParams { width_in: w, ..base }), &[y, x], grid(rows as u64 * w as u64, wg));
                };
                match (m.embed_proj, tri) {
                    (Some((li, taps)), Some(tri)) => {
                        let e = m.embed_width;
                        be.dispatch(
                            Stage::Embed,
                            &dig(SeqParams { mode: 1, taps, width_in: e, ..base }),
                            &[tok_b, emb, pos, tri],
                            grid(rows as u64 * (taps * e) as u64, wg),
                        );
                        analog(be, li, tri, y);
                        be.dispatch(Stage::Embed, &dig(SeqParams { mode: 2, ..base }), &[tok_b, y, pos, x], grid(rows as u64 * d as u64, wg));
                    }
                    _ => be.dispatch(Stage::Embed, &dig(base), &[tok_b, emb, pos, x], grid(rows as u64 * d as u64, wg)),
                }
                if let Some(g) = embed_norm {
                    layernorm(be, x, g, tmp);
                    std::mem::swap(&mut x, &mut tmp);
                }
                // The attention and feed-forward stream: its width and geometry.
                let inner = m.inner();
                let ib = SeqParams { d_model: inner, width_in: inner, ..base };
                for (bi, blk) in m.blocks.iter().enumerate() {
                    let (n1, n2) = norms[bi];
                    let bn = blk.bottleneck.as_ref().zip(bn_norms[bi].as_ref());
                    // The stream's residual source r (x, or the input bottleneck in lb) and Q's,
                    // K's and V's inputs.
                    let (r, qk_in, v_in) = match bn {
                        Some((b, &[ni, ns, _])) => {
                            analog(be, b.input, x, tmp);
                            layernorm_w(be, tmp, ni, lb, inner);
                            match &b.shared {
                                Some((sh, _)) => {
                                    analog(be, *sh, x, tmp);
                                    layernorm_w(be, tmp, ns, att, inner);
                                    (lb, att, x)
                                }
                                None if b.inner_attention => (lb, lb, lb),
                                None => (lb, x, x),
                            }
                        }
                        _ => {
                            let a = if m.norm_first {
                                layernorm(be, x, n1, tmp);
                                tmp
                            } else {
                                x
                            };
                            (x, a, a)
                        }
                    };
                    analog(be, blk.q, qk_in, q);
                    analog(be, blk.k, qk_in, k);
                    analog(be, blk.v, v_in, v);
                    let base = ib;
                    match (m.attention, &kbufs) {
                        (SeqAttention::Kernel { map, .. }, Some([hq, hk, nq, nk, phiq, phik, kv])) => {
                            let fq = blk.feature_q.expect("checked");
                            let fk = blk.feature_k.unwrap_or(fq);
                            let slices = rows * heads;
                            let norms_p = dig(SeqParams { rows: slices, width_in: dh, scale: 1.0 / (dh as f32).sqrt(), ..base });
                            let mut fp = StageParams::default();
                            fp.layer.trials = 1;
                            fp.kern = KernelParams { rows: slices, s, replicas: 1, width, map, ..KernelParams::default() };
                            for (f, src, h, nrm, phi) in [(fq, q, *hq, *nq, *phiq), (fk, k, *hk, *nk, *phik)] {
                                analog(be, f, src, h);
                                be.dispatch(Stage::RowNorms, &norms_p, &[src, nrm], grid(slices as u64, wg));
                                be.dispatch(Stage::FeatureMap, &fp, &[h, nrm, phi], grid(slices as u64 * s as u64, wg));
                            }
                            let kv_items = n as u64 * sbl as u64 * heads as u64 * width as u64 * (dh as u64 + 1);
                            be.dispatch(Stage::LinearKv, &dig(base), &[*phik, v, len_b, *kv], grid(kv_items, wg));
                            be.dispatch(Stage::LinearOut, &dig(base), &[*phiq, *phik, *kv, v, len_b, att], grid(rows as u64 * d as u64, wg));
                        }
                        _ => {
                            // A workgroup per block of SOFTMAX_SQ queries of one (trial, sample, head).
                            let blocks = rows as u64 / seq as u64 * heads as u64 * (seq as u64).div_ceil(SOFTMAX_SQ as u64);
                            be.dispatch(Stage::AttentionSoftmax, &dig(base), &[q, k, v, len_b, att], grid(blocks, 1))
                        }
                    }
                    analog(be, blk.o, att, y);
                    if bn.is_some() || !blk.extra_ffns.is_empty() {
                        // Post-norm at the inner width: a = norm1(O + r), r the input bottleneck
                        // (else x), each stacked pair a = norm(down(up(a)) + a), then the main
                        // pair, then the output bottleneck x = norm(out(a) + x).
                        residual(be, y, r, inner);
                        layernorm_w(be, r, n1, tmp, inner);
                        let mut a = tmp;
                        let mut spare = r;
                        let pairs = blk.extra_ffns.iter().zip(&ffn_norms[bi]).map(|(f, &g)| (f.ffn1, f.ffn2, g)).chain([(blk.ffn1, blk.ffn2, n2)]);
                        for (u, dn, g) in pairs {
                            analog(be, u, a, f1);
                            analog(be, dn, f1, y);
                            residual(be, y, a, inner);
                            layernorm_w(be, a, g, spare, inner);
                            std::mem::swap(&mut a, &mut spare);
                        }
                        let Some((b, &[_, _, no])) = bn else {
                            // No bottleneck: r was x; the block's output is a.
                            x = a;
                            tmp = spare;
                            continue;
                        };
                        analog(be, b.output, a, y);
                        residual(be, y, x, d);
                        layernorm(be, x, no, spare);
                        // x's buffer becomes free; the block's output is in `spare`.
                        let old_x = x;
                        x = spare;
                        if a == tmp {
                            lb = old_x;
                        } else {
                            tmp = old_x;
                        }
                        continue;
                    }
                    residual(be, y, x, d);
                    if !m.norm_first {
                        layernorm(be, x, n1, tmp);
                        std::mem::swap(&mut x, &mut tmp);
                    }
                    let a = if m.norm_first {
                        layernorm(be, x, n2, tmp);
                        tmp
                    } else {
                        x
                    };
                    match (&blk.moe, &moe_bufs) {
                        (Some(moe), Some([logits, gates, ye])) => {
                            let e = moe.experts.len() as u32;
                            analog(be, moe.router, a, *logits);
                            be.dispatch(Stage::MoeGate, &dig(SeqParams { experts: e, top_k: moe.top_k, ..base }), &[*logits, *gates], grid(rows as u64, wg));
                            for (j, &(e1, e2)) in moe.experts.iter().enumerate() {
                                analog(be, e1, a, f1);
                                analog(be, e2, f1, *ye);
                                let pc = dig(SeqParams { experts: e, expert: j as u32, ..base });
                                be.dispatch(Stage::MoeCombine, &pc, &[*gates, *ye, y], grid(rows as u64 * d as u64, wg));
                            }
                        }
                        _ => {
                            analog(be, blk.ffn1, a, f1);
                            analog(be, blk.ffn2, f1, y);
                        }
                    }
                    be.dispatch(Stage::Residual, &dig(base), &[y, x], grid(rows as u64 * d as u64, wg));
                    if !m.norm_first {
                        layernorm(be, x, n2, tmp);
                        std::mem::swap(&mut x, &mut tmp);
                    }
                }
                if let Some(g) = final_norm {
                    layernorm(be, x, g, tmp);
                    std::mem::swap(&mut x, &mut tmp);
                }
                be.dispatch(Stage::SeqPool, &dig(base), &[x, len_b, pooled], grid(n as u64 * sbl as u64 * d as u64, wg));
                let mut h = pooled;
                for (i, &li) in m.head.iter().enumerate() {
                    analog(be, li, h, hb[i % 2]);
                    h = hb[i % 2];
                }
                let mut pa = dig(base);
                pa.layer.batch = sbl;
                pa.layer.n_out = classes;
                // The shader's slot is [t_index][trial]: configuration ci's slots follow ci · nt.
                pa.layer.t_index = (ci * nt + ti) as u32;
                be.dispatch(Stage::Accuracy, &pa, &[h, lab_b, correct], grid(n as u64 * sbl as u64, wg));
            }
        }
        match be.download(correct) {
            Ok(got) => {
                let n = n as usize;
                for (ci, pts) in out.iter_mut().enumerate() {
                    for (ti, pt) in pts.iter_mut().enumerate() {
                        let at = (ci * nt + ti) * n;
                        pt.correct.extend_from_slice(&got[at..at + n]);
                    }
                }
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
        offset += n;
        on_chunk(n);
    }
    for mb in &mats {
        mb.free(be);
    }
    scratch.free(be);
    let mut all = vec![emb, pos, x, tmp, q, k, v, att, y, lb, f1, pooled, hb[0], hb[1], tok_b, len_b, lab_b, correct];
    all.extend(tri);
    all.extend(bn_norms.into_iter().flatten().flatten());
    all.extend(ffn_norms.into_iter().flatten());
    all.extend(biases);
    all.extend(embed_norm.into_iter().chain(final_norm));
    all.extend(norms.iter().flat_map(|&(a, b)| [a, b]));
    all.extend(kbufs.into_iter().flatten());
    all.extend(moe_bufs.into_iter().flatten());
    for b in all {
        be.free(b);
    }
    result.map(|_| out)
}

/// One step of a chunk of [`run_transformer_group`].
enum Step {
    /// Program every matrix for this configuration (where its state is not held already).
    Program(usize),
    /// Drift every matrix for this configuration at this time (index, seconds), then run the
    /// sample batches.
    Run(usize, usize, f64),
}

impl SeqModel {
    /// Unavoidable FLOPs of one sequence of `len` non-padding tokens (of `seq`): every analog
    /// layer's MACs (2 FLOPs each) over its vectors, and attention: softmax 2·2·keys·d_head per
    /// (query, head) (scores and the weighted sum; keys = len, or i + 1 causal), or linear
    /// attention's feature projections, key sums (2·len·width·(d_head + 1) per head) and outputs
    /// (2·seq·width·(d_head + 1) per head). LayerNorm, softmax exponentials and the feature maps'
    /// exponentials are not counted.
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
        f + self.head.iter().map(|&li| mac(li, 1.0)).sum::<f64>()
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
        n + self.head.iter().map(|&li| blocks(li, 1.0)).sum::<f64>()
    }

    /// Analog weights of the model (each matrix once).
    pub fn weights(&self) -> u64 {
        self.layers.iter().map(|l| l.mapped.len() as u64).sum()
    }
}
