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
//! A causal language model (`next_token`) skips the pooling: its head runs on every token and
//! `token_nll` scores each position's logits against the next token (Σ −log p and top-1 hits);
//! a question-answering head (`span`) runs on every token too, and `answer_span` picks each
//! sequence's answer from the start and end logits and scores it against its labelled answers.
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
use crate::engine::layout::SeqParams;
use crate::engine::stages::{token_nll_groups, ATTN_BLOCK, NLL_BLOCK, NLL_SLOT_WORDS, SOFTMAX_SQ, SPAN_SLOT_WORDS};

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
    // The head's two ping-pong buffers: one vector per sample, or one per token of a language model.
    let head = m.head_vectors() as u64 * m.head.iter().map(|&li| m.layers[li].mapped.n_out as u64).max().unwrap_or(1).max(d);
    let largest = [act, seq * m.d_ff() as u64, scratch, gates, taps, head].into_iter().chain(kernel).max().unwrap();
    let total = 8 * act
        + 2 * head
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
        m.head_vectors() as u32
    } else if m.blocks.iter().any(|b| b.feature_q == Some(li) || b.feature_k == Some(li)) {
        m.seq * m.heads
    } else {
        m.seq
    }
}

/// Program the model `cfg.trials` times and classify the token sequences at every time.
/// `tokens` is `[samples][seq]`, `lengths` the non-padding tokens of each, `labels` the classes
/// (question answering: each sequence's `span.answers` packed answer spans).
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
    // Labels per sequence: a class, or question answering's labelled answers (none where the
    // host scores the answers' text).
    let per_label = m.span.map_or(1, |sp| sp.answers);
    let samples = lengths.len() as u32;
    if samples == 0 || tokens.len() != (samples * m.seq) as usize || labels.len() != (samples * per_label) as usize {
        return Err(EngineError::Invalid(format!(
            "{} tokens and {} labels for {samples} sequences of {} tokens ({per_label} labels each)",
            tokens.len(),
            labels.len(),
            m.seq
        )));
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
    if largest * 4 > be.binding_ceiling() {
        return Err(EngineError::TooLarge {
            what: "one sequence's activations".into(),
            need: largest * 4,
            limit: be.binding_ceiling(),
            fix: "the sequence length (the data set's columns) or the model width".into(),
        });
    }
    // Trials per chunk: the batch's buffers and every matrix's device state within the budget
    // (a language model's loss slots: one per configuration, time, sequence and block of positions,
    // each NLL_SLOT_WORDS words; question answering's, SPAN_SLOT_WORDS per sequence).
    let state: u64 = m.layers.iter().map(|l| state_bytes(&l.mapped, &cfg.device) + 4 * l.mapped.len() as u64).sum();
    let nll_blocks = m.seq.div_ceil(NLL_BLOCK);
    let slot_words = if m.next_token {
        nll_blocks * NLL_SLOT_WORDS
    } else if m.span.is_some() {
        SPAN_SLOT_WORDS
    } else {
        0
    };
    let nll_slots = (cfgs.len() * cfg.times.len()) as u64 * samples as u64 * slot_words as u64;
    let per_trial = state + 4 * total * sb as u64 + 4 * nll_slots;
    let max_tiles = m.layers.iter().map(|l| l.mapped.n_tiles()).max().unwrap_or(1);
    let biggest_state = m.layers.iter().map(|l| state_bytes(&l.mapped, &cfg.device)).max().unwrap_or(4);
    let chunk = chunk_size(be, cfg, biggest_state.max(4 * largest * sb as u64), "one trial's device state or activations")?
        .min((CHUNK_BUDGET_BYTES / per_trial.max(1)).max(1) as u32)
        .min((MAX_GROUPS / max_tiles).max(1))
        .min((limit / (4 * nll_slots).max(1)).max(1) as u32);
    if 4 * nll_slots > be.binding_ceiling() {
        return Err(EngineError::TooLarge {
            what: "one trial's next-token losses (one per configuration, time and sequence)".into(),
            need: 4 * nll_slots,
            limit: be.binding_ceiling(),
            fix: "fewer sequences (data.rows) or fewer times and configurations per run".into(),
        });
    }
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
    let head_width = m.head_vectors() as u32 * m.head.iter().map(|&li| m.layers[li].mapped.n_out).max().unwrap_or(1).max(d);
    let pooled = be.create("pooled", words(d));
    let hb = [be.create("head0", words(head_width)), be.create("head1", words(head_width))];
    let tok_b = be.create("tokens", (sb * seq) as usize);
    let len_b = be.create("lengths", sb as usize);
    let lab_b = be.create("labels", (sb * per_label) as usize);
    let (nt, nc) = (cfg.times.len(), cfgs.len());
    // Counts of every configuration and time of a chunk, [config][t_index][trial].
    let correct = be.create("correct", nc * nt * chunk as usize);
    // A language model's summed loss per block of a sequence, [config][t_index][trial][sequence][block].
    let nll = m.next_token.then(|| be.create("nll", nc * nt * chunk as usize * samples as usize * nll_blocks as usize * NLL_SLOT_WORDS as usize));
    // Question answering's answer spans, [config][t_index][trial][sequence] (SPAN_SLOT_WORDS each).
    let spans = m.span.map(|_| be.create("spans", nc * nt * chunk as usize * samples as usize * SPAN_SLOT_WORDS as usize));
    let classes = m.layers[*m.head.last().unwrap()].mapped.n_out;
    // A pooled head's outputs, [config][t_index][trial][sequence][output] (GLUE's metrics, row counts).
    let outputs = m.head_out.then(|| be.create("outputs", nc * nt * chunk as usize * samples as usize * classes as usize));
    // A classifier's right trials per sequence, [config][t_index][sequence] (`row_correct`).
    let rows_b = m.row_counts.then(|| be.create("row correct", nc * nt * samples as usize));
    // What is scored: sequences, or a language model's predicted tokens (len − 1 per sequence).
    let scored = if m.next_token { lengths.iter().map(|&l| l.min(seq).saturating_sub(1)).sum() } else { samples };
    if scored == 0 {
        return Err(EngineError::Invalid("no sequence has two tokens: next-token prediction needs a token to predict from and one to predict".into()));
    }
    let mut out: Vec<Vec<ClassifierPoint>> = cfgs.iter().map(|_| cfg.times.iter().map(|&t| ClassifierPoint::new(t, scored)).collect()).collect();
    let wg = be.wg();
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
        if let Some(r) = rows_b {
            be.clear(r);
        }
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
                be.upload(lab_b, &labels[(s0 * per_label) as usize..((s0 + sbl) * per_label) as usize]);
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
                    // Attention runs at the stream's width: its stages read this geometry.
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
                let mut h = match m.token_head() {
                    true => x,
                    false => {
                        be.dispatch(Stage::SeqPool, &dig(base), &[x, len_b, pooled], grid(n as u64 * sbl as u64 * d as u64, wg));
                        pooled
                    }
                };
                for (i, &li) in m.head.iter().enumerate() {
                    analog(be, li, h, hb[i % 2]);
                    h = hb[i % 2];
                }
                let mut pa = dig(base);
                pa.layer.batch = sbl;
                pa.layer.n_out = classes;
                // The shader's slot is [t_index][trial]: configuration ci's slots follow ci · nt.
                pa.layer.t_index = (ci * nt + ti) as u32;
                match (nll, spans, m.span) {
                    (_, Some(spans), Some(sp)) => {
                        // Slots [t_index][trial][sequence], as token_nll's.
                        pa.layer.batch = samples;
                        pa.seq.max_answer = sp.max_answer;
                        pa.seq.n_best = sp.n_best;
                        pa.seq.sep = sp.sep;
                        pa.seq.answers = sp.answers;
                        be.dispatch(Stage::AnswerSpan, &pa, &[h, tok_b, len_b, lab_b, spans, correct], grid(n as u64 * sbl as u64, wg));
                    }
                    (Some(nll), _, _) => {
                        // Slots [t_index][trial][sequence]: `batch` is the data set's sequence count.
                        pa.layer.batch = samples;
                        be.dispatch(
                            Stage::TokenNll,
                            &pa,
                            &[h, tok_b, len_b, nll, correct],
                            grid(token_nll_groups(n as u64 * sbl as u64 * nll_blocks as u64, m.vocab), 1),
                        );
                    }
                    _ => {
                        if !m.regression {
                            be.dispatch(Stage::Accuracy, &pa, &[h, lab_b, correct], grid(n as u64 * sbl as u64, wg));
                        }
                        if let Some(r) = rows_b {
                            // Slots [t_index][sequence]: `batch` is the data set's sequence count.
                            let mut pr = pa;
                            pr.layer.batch = samples;
                            be.dispatch(Stage::RowCorrect, &pr, &[h, lab_b, r], grid(n as u64 * sbl as u64, wg));
                        }
                        if let Some(outputs) = outputs {
                            // Slots [t_index][trial][sequence], as answer_span's.
                            pa.layer.batch = samples;
                            be.dispatch(Stage::HeadOut, &pa, &[h, outputs], grid(n as u64 * sbl as u64 * classes as u64, wg));
                        }
                    }
                }
            }
        }
        let losses = match nll.or(spans) {
            Some(b) => be.download(b).map(Some),
            None => Ok(None),
        };
        let head_outputs = match outputs {
            Some(b) => be.download(b).map(Some),
            None => Ok(None),
        };
        let row_counts = match rows_b {
            Some(b) => be.download(b).map(Some),
            None => Ok(None),
        };
        let read = be.download(correct).and_then(|c| losses.map(|l| (c, l))).and_then(|c| head_outputs.map(|o| (c, o)));
        match read.and_then(|c| row_counts.map(|r| (c, r))) {
            Ok((((got, losses), head_outputs), row_counts)) => {
                let n = n as usize;
                for (ci, pts) in out.iter_mut().enumerate() {
                    for (ti, pt) in pts.iter_mut().enumerate() {
                        let at = (ci * nt + ti) * n;
                        pt.correct.extend_from_slice(&got[at..at + n]);
                        if let Some(r) = &row_counts {
                            let (at, s) = ((ci * nt + ti) * samples as usize, samples as usize);
                            pt.row_correct.resize(s, 0);
                            pt.row_correct.iter_mut().zip(&r[at..at + s]).for_each(|(a, &b)| *a += b);
                        }
                        if let Some(o) = &head_outputs {
                            let per = samples as usize * classes as usize;
                            pt.seq_out.extend(o[at * per..(at + n) * per].iter().map(|&w| f32::from_bits(w)));
                        }
                        // Each trial's loss: its sequences' block sums added in f64 in order; and
                        // each sequence's loss and hits.
                        if let (Some(l), Some(_)) = (&losses, spans) {
                            let w = SPAN_SLOT_WORDS as usize;
                            for slot in l[at * samples as usize * w..(at + n) * samples as usize * w].chunks(w) {
                                pt.seq_overlap.push(slot[0]);
                                pt.seq_predicted.push(slot[1]);
                                pt.seq_labelled.push(slot[2]);
                                pt.seq_answer.push((slot[1] > 0).then(|| (slot[3], slot[4], f32::from_bits(slot[5]))));
                                pt.seq_null.push(f32::from_bits(slot[6]));
                            }
                        } else if let Some(l) = &losses {
                            let words = NLL_SLOT_WORDS as usize;
                            let per = samples as usize * nll_blocks as usize * words;
                            let part = &l[at * per..(at + n) * per];
                            let word = |s: &[u32], k: usize| s.iter().skip(k).step_by(words).map(|&w| f32::from_bits(w) as f64).sum::<f64>();
                            pt.nll.extend(part.chunks(per).map(|t| word(t, 0)));
                            for s in part.chunks(nll_blocks as usize * words) {
                                pt.seq_nll.push(word(s, 0));
                                pt.seq_correct.push(word(s, 1) as u32);
                            }
                        }
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
    all.extend(nll);
    all.extend(spans);
    all.extend(outputs);
    all.extend(rows_b);
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
