//! The independent f64 forward pass of the transformer workload: the floating-point baseline
//! (`fp_correct`) and the oracle the engine's noiseless path is compared with. Written apart
//! from the engine (plain loops over the plain-data [`TransformerNet`], the token-wise Linear
//! layers as one f64 GEMM each, f64 throughout, the f32 weights widened exactly), so that a
//! shared misreading is unlikely. The semantics below are
//! the contract with the engine (Vaswani et al. 2017; Devlin et al., BERT, 2019; Choromanski et
//! al., FAVOR+, ICLR 2021, for the kernel path):
//!
//! - **Length.** `len` = the index of the first `pad_id` token (the whole sequence without
//!   `pad_id`); padding trails. Keys j ≥ len are masked, pooling reads i < len, and nothing at a
//!   padding position reaches a non-padding one (every other step is per token), so the forward
//!   runs on the first `len` tokens alone.
//! - **Embedding.** x_i = E\[tok_i\]·embed_scale + pos_i (+ token-type row type_i), pos_i
//!   Vaswani's sinusoid (in f64) or the learned row i; type_i = 1 for the tokens after the first
//!   `segment_sep` token (a sentence pair's second segment), else 0; then `embed_norm`. LayerNorm is
//!   (x − mean)/√(var + ε)·γ + β with the biased variance (PyTorch), ε = `layer_norm_eps`.
//!   MobileBERT's embedding (Sun et al., ACL 2020; Hugging Face `MobileBertEmbeddings`): the
//!   table rows of tokens i + 1, i, i − 1 of the padded sequence side by side (zero past either
//!   end; one tap: row i alone), times embed_scale, through the projection, then the positions and
//!   types as above. With `no_norm` every norm is NoNorm, x·γ + β.
//! - **Layers.** The stored blocks in order, the whole stack `repeat_layers` times. Post-LN:
//!   x = LN1(x + O(Attn(x))); x = LN2(x + FFN2(act(FFN1 x))). Pre-LN (`norm_first`):
//!   x = x + O(Attn(LN1 x)); x = x + FFN2(act(FFN1(LN2 x))). Then `final_norm`. A MobileBERT
//!   block (bottleneck, Hugging Face `MobileBertLayer`): l = N_in(B_in x); Q and K read
//!   N_sh(B_sh x) with a shared bottleneck (V reads x), or all three read l
//!   (`inner_attention`), or x; a = LN1(l + O(Attn)); per stacked pair a = N_j(a + FFN_j(a));
//!   a = LN2(a + FFN(a)); x = N_out(x + B_out a).
//! - **Softmax attention.** Q, K, V Linear (with biases); head h is outputs h·d_head..(h+1)·d_head;
//!   scores q_i·k_j/√d_head over j < len (and j ≤ i when causal), max-subtracted softmax, times V.
//! - **Kernel attention.** Per layer b, (W_q, W_k) = `settings.feature_projections(b)` (the same
//!   in every repetition; it reads the trained maps from `settings.net`, which must be the net
//!   given here); per head x̃ = x·d_head^(−1/4) for q and k, y = W x̃ (r rows),
//!   n = ‖x̃‖²; positive: φ = [exp(y − n/2), exp(−y − n/2)]/√(2r); trig:
//!   φ = exp(n/2)·[sin y, cos y]/√r; relu: φ = exp(−n/2)·max(y, 0)/√r (the constants of
//!   `features::KernelSpec::features` with s = r). out_i = Σ_j (φq_i·φk_j) v_j / Σ_j (φq_i·φk_j)
//!   over the allowed keys, formed as φq_i·S / φq_i·z with S = Σ_j φk_j v_jᵀ, z = Σ_j φk_j (prefix
//!   sums over j ≤ i when causal): the same sums, associated differently.
//! - **Pooling and head.** Mean over i < len, token 0 (`cls`) or token len − 1 (`last`); then the pooler tanh(dense x)
//!   when the net has one; then the head's Linear layers with `head_activation` between them
//!   (none after the last). `Activation::apply` gives the activations (`gelu_exact` the erf form).
//! - **Prediction.** The first index of the largest logit.
//! - **Next token** (`task = "next_token"`, a causal model). No pooling and no pooler: the head
//!   runs on every hidden row i < len − 1 and scores token i + 1: −ln softmax(logits)[token i + 1]
//!   (max-subtracted log-sum-exp), summed over the rows, and the rows whose first largest logit
//!   is that token.
//! - **Answer span** (`task = "qa_exact_match"` / `"qa_f1"`). No pooling: the head gives every
//!   hidden row a start and an end logit; the answer is the context span (after the first
//!   `segment_sep`, the separators excluded) start ≤ end < start + `max_answer_tokens` with the
//!   largest start + end logit, the first by start then end on ties; scored against the row's
//!   labelled answers by exact match and token-level F1 (`span_f1`), the best over the answers.

use super::{feature_input_scale, AttentionKind, NextTokenScore, Pooling, SpanScore, TransformerNet, TransformerSettings};
use crate::features::SoftmaxFeatures;
use crate::workload::io::{Dataset, Linear, Matrix};

/// A Linear layer widened to f64.
struct Lin {
    rows: usize,
    cols: usize,
    w: Vec<f64>,
    b: Vec<f64>,
    /// Each input's clipping bound from the layer's input ranges (empty: none).
    bounds: Vec<f64>,
}

impl Lin {
    fn new(l: &Linear) -> Lin {
        let bounds = if l.input_range.is_empty() { Vec::new() } else { (0..l.weight.cols).map(|k| l.clip_input(k, f64::INFINITY)).collect() };
        Lin { rows: l.weight.rows, cols: l.weight.cols, w: wide(&l.weight.data), b: wide(&l.bias), bounds }
    }

    /// `x` (rows of `cols` inputs) with every input clipped to its range, as the tiles clip it.
    fn clipped<'a>(&self, x: &'a [f64]) -> std::borrow::Cow<'a, [f64]> {
        if self.bounds.is_empty() {
            return std::borrow::Cow::Borrowed(x);
        }
        std::borrow::Cow::Owned(x.iter().enumerate().map(|(i, &v)| v.clamp(-self.bounds[i % self.cols], self.bounds[i % self.cols])).collect())
    }

    /// y = W x + b for one vector.
    fn apply(&self, x: &[f64], y: &mut [f64]) {
        let x = self.clipped(x);
        for (r, out) in y.iter_mut().enumerate().take(self.rows) {
            *out = self.b[r] + dot(&self.w[r * self.cols..(r + 1) * self.cols], &x);
        }
    }

    /// The layer on each of the `n` rows of `x` (`n × cols`), giving `n × rows`: Y = X·Wᵀ + b
    /// as one f64 GEMM (matrixmultiply's dgemm, cache-blocked: a BERT-base baseline would
    /// otherwise stream every weight matrix once per token). The engine's f32 path shares no code
    /// with it (it runs `sgemm` on noisy conductances through its own stages).
    fn rows_of(&self, x: &[f64], n: usize) -> Vec<f64> {
        assert_eq!(x.len(), n * self.cols, "reference Linear: {n} rows of {} inputs", self.cols);
        let x = &*self.clipped(x);
        let mut y: Vec<f64> = (0..n).flat_map(|_| self.b.iter().copied()).collect();
        if n == 0 || self.rows == 0 || self.cols == 0 {
            return y;
        }
        let (m, k, c) = (n, self.cols, self.rows);
        // SAFETY: X is m × k row-major (x.len() == m·k, checked above), Wᵀ is k × c read from W
        // (c × k row-major: element (p, j) at j·k + p, inside w's c·k values), Y is m × c
        // row-major (y.len() == m·c); the slices outlive the call and Y aliases neither input.
        unsafe {
            matrixmultiply::dgemm(m, k, c, 1.0, x.as_ptr(), k as isize, 1, self.w.as_ptr(), 1, k as isize, 1.0, y.as_mut_ptr(), c as isize, 1);
        }
        y
    }
}

fn wide(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

struct Ln {
    gamma: Vec<f64>,
    beta: Vec<f64>,
    /// NoNorm: x·γ + β.
    no_norm: bool,
}

impl Ln {
    fn new(n: &super::Norm, no_norm: bool) -> Ln {
        Ln { gamma: wide(&n.gamma), beta: wide(&n.beta), no_norm }
    }

    /// LayerNorm (or NoNorm) of every row of `x` (rows of d), in place.
    fn apply(&self, x: &mut [f64], eps: f64) {
        let d = self.gamma.len();
        if self.no_norm {
            for row in x.chunks_exact_mut(d) {
                for (c, v) in row.iter_mut().enumerate() {
                    *v = *v * self.gamma[c] + self.beta[c];
                }
            }
            return;
        }
        for row in x.chunks_exact_mut(d) {
            let mean = row.iter().sum::<f64>() / d as f64;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / d as f64;
            let inv = 1.0 / (var + eps).sqrt();
            for (c, v) in row.iter_mut().enumerate() {
                *v = (*v - mean) * inv * self.gamma[c] + self.beta[c];
            }
        }
    }
}

/// Kernel attention's projections of one layer, `[rows][d_head]` each.
struct Features {
    rows: usize,
    q: Vec<f64>,
    k: Vec<f64>,
}

struct PBlock {
    q: Lin,
    k: Lin,
    v: Lin,
    o: Lin,
    ffn1: Lin,
    ffn2: Lin,
    norm1: Ln,
    norm2: Ln,
    features: Option<Features>,
    bottleneck: Option<PBottleneck>,
    extra_ffns: Vec<(Lin, Lin, Ln)>,
}

struct PBottleneck {
    input: (Lin, Ln),
    shared: Option<(Lin, Ln)>,
    inner_attention: bool,
    output: (Lin, Ln),
}

/// The net and settings prepared once (weights widened, projections drawn) for many sequences.
struct Prepared<'a> {
    net: &'a TransformerNet,
    s: &'a TransformerSettings,
    d: usize,
    /// Attention's width (the bottleneck's, else d).
    inner: usize,
    heads: usize,
    d_head: usize,
    embed_proj: Option<(Lin, usize)>,
    embed_norm: Option<Ln>,
    blocks: Vec<PBlock>,
    final_norm: Option<Ln>,
    pooler: Option<Lin>,
    head: Vec<Lin>,
}

impl<'a> Prepared<'a> {
    fn new(net: &'a TransformerNet, s: &'a TransformerSettings) -> Prepared<'a> {
        let (d, inner) = (net.d_model(), net.inner());
        let heads = s.heads as usize;
        assert!(heads > 0 && inner.is_multiple_of(heads), "transformer.heads = {heads} must divide the attention width {inner} (validation checks this)");
        let d_head = inner / heads;
        let nn = s.norm.map_or(net.no_norm, |k| k == super::NormType::NoNorm);
        let ln = |n: &super::Norm| Ln::new(n, nn);
        let blocks = net
            .blocks
            .iter()
            .enumerate()
            .map(|(b, blk)| {
                let features = (s.attention == AttentionKind::Kernel).then(|| {
                    let (q, k): (Matrix, Matrix) = s.feature_projections(b);
                    assert!(q.cols == d_head && k.cols == d_head && q.rows == k.rows, "feature projections of layer {b} must be [rows, d_head = {d_head}]");
                    Features { rows: q.rows, q: wide(&q.data), k: wide(&k.data) }
                });
                PBlock {
                    q: Lin::new(&blk.q),
                    k: Lin::new(&blk.k),
                    v: Lin::new(&blk.v),
                    o: Lin::new(&blk.o),
                    ffn1: Lin::new(&blk.ffn1),
                    ffn2: Lin::new(&blk.ffn2),
                    norm1: ln(&blk.norm1),
                    norm2: ln(&blk.norm2),
                    features,
                    bottleneck: blk.bottleneck.as_ref().map(|b| PBottleneck {
                        input: (Lin::new(&b.input.0), ln(&b.input.1)),
                        shared: b.shared.as_ref().map(|(l, n)| (Lin::new(l), ln(n))),
                        inner_attention: b.inner_attention,
                        output: (Lin::new(&b.output.0), ln(&b.output.1)),
                    }),
                    extra_ffns: blk.extra_ffns.iter().map(|(a, b, n)| (Lin::new(a), Lin::new(b), ln(n))).collect(),
                }
            })
            .collect();
        Prepared {
            net,
            s,
            d,
            inner,
            heads,
            d_head,
            embed_proj: net.embed_proj.as_ref().map(|(l, taps)| (Lin::new(l), *taps)),
            embed_norm: net.embed_norm.as_ref().map(ln),
            blocks,
            final_norm: net.final_norm.as_ref().map(ln),
            pooler: net.pooler.as_ref().map(Lin::new),
            head: net.head.iter().map(Lin::new).collect(),
        }
    }

    /// x_i = E[tok_i]·embed_scale + pos_i (+ token type), then the embedding LayerNorm, for
    /// the first `len` tokens (MobileBERT's taps read the padded sequence's neighbours).
    fn embed(&self, tokens: &[u32], len: usize) -> Vec<f64> {
        let (d, net) = (self.d, self.net);
        // The token term of each row: E[tok]·scale, or the projection of the taps.
        let token_rows: Vec<f64> = match &self.embed_proj {
            None => tokens[..len].iter().flat_map(|&t| net.embedding.data[t as usize * d..][..d].iter().map(|&v| v as f64 * self.s.embed_scale)).collect(),
            Some((proj, taps)) => {
                let e = net.embedding.cols;
                let mut tapped = vec![0.0; len * taps * e];
                for p in 0..len {
                    for j in 0..*taps {
                        let src = p as isize + if *taps == 3 { 1 - j as isize } else { 0 };
                        if src < 0 || src as usize >= tokens.len() {
                            continue;
                        }
                        let row = &net.embedding.data[tokens[src as usize] as usize * e..][..e];
                        for (o, &v) in tapped[(p * taps + j) * e..][..e].iter_mut().zip(row) {
                            *o = v as f64 * self.s.embed_scale;
                        }
                    }
                }
                proj.rows_of(&tapped, len)
            }
        };
        let mut x = vec![0.0; len * d];
        let mut second = false; // past the first separator: token type 1
        for (p, &t) in tokens[..len].iter().enumerate() {
            let t = t as usize;
            assert!(t < net.vocab(), "token id {t} at position {p} is outside the vocabulary of {} (validation checks this)", net.vocab());
            if let Some(max) = net.max_positions() {
                assert!(p < max, "position {p} is past the {max} learned positions (validation checks this)");
            }
            for c in 0..d {
                let pos = match &net.positions {
                    super::Positions::Sinusoidal => super::net::sinusoid(p, c, d),
                    super::Positions::Learned(m) => m.data[p * d + c] as f64,
                };
                // A one-row table (RoBERTa's) adds its row to both segments of a question-answering pair.
                let tt = net.token_types.as_ref().map_or(0.0, |m| m.data[usize::from(second).min(m.rows - 1) * d + c] as f64);
                x[p * d + c] = token_rows[p * d + c] + pos + tt;
            }
            second |= self.s.segment_sep == Some(t as u32);
        }
        if let Some(n) = &self.embed_norm {
            n.apply(&mut x, self.s.layer_norm_eps);
        }
        x
    }

    /// Multi-head attention of the `n` rows, Q and K from `qk`, V from `hv` (before O).
    fn attention(&self, blk: &PBlock, qk: &[f64], hv: &[f64], n: usize) -> Vec<f64> {
        let (q, k, v) = (blk.q.rows_of(qk, n), blk.k.rows_of(qk, n), blk.v.rows_of(hv, n));
        let (d, dh) = (self.inner, self.d_head);
        let mut out = vec![0.0; n * d];
        for hd in 0..self.heads {
            let slice = |m: &[f64], i: usize| -> Vec<f64> { m[i * d + hd * dh..i * d + (hd + 1) * dh].to_vec() };
            let qs: Vec<Vec<f64>> = (0..n).map(|i| slice(&q, i)).collect();
            let ks: Vec<Vec<f64>> = (0..n).map(|i| slice(&k, i)).collect();
            let vs: Vec<Vec<f64>> = (0..n).map(|i| slice(&v, i)).collect();
            let heads_out = match &blk.features {
                None => softmax_attention(&qs, &ks, &vs, self.s.causal),
                Some(f) => {
                    let scale = feature_input_scale(dh);
                    let phi = |w: &[f64], x: &[f64]| {
                        let xs: Vec<f64> = x.iter().map(|v| v * scale).collect();
                        feature_map(self.s.feature_map, w, f.rows, &xs)
                    };
                    let pq: Vec<Vec<f64>> = qs.iter().map(|x| phi(&f.q, x)).collect();
                    let pk: Vec<Vec<f64>> = ks.iter().map(|x| phi(&f.k, x)).collect();
                    linear_attention(&pq, &pk, &vs, self.s.causal)
                }
            };
            for (i, o) in heads_out.iter().enumerate() {
                out[i * d + hd * dh..i * d + (hd + 1) * dh].copy_from_slice(o);
            }
        }
        out
    }

    /// A feed-forward pair on every row.
    fn ffn(&self, ffn1: &Lin, ffn2: &Lin, h: &[f64], n: usize) -> Vec<f64> {
        let mut a = ffn1.rows_of(h, n);
        for v in &mut a {
            *v = self.s.activation.apply(*v);
        }
        ffn2.rows_of(&a, n)
    }

    /// The final hidden states of the first `len` tokens, `[len][d_model]`.
    fn hidden(&self, tokens: &[u32], len: usize) -> Vec<f64> {
        let (n, eps) = (len, self.s.layer_norm_eps);
        let mut x = self.embed(tokens, len);
        for _ in 0..self.s.repeat_layers.max(1) {
            for blk in &self.blocks {
                if blk.bottleneck.is_some() || !blk.extra_ffns.is_empty() {
                    let normed = |(l, nm): &(Lin, Ln), h: &[f64]| {
                        let mut y = l.rows_of(h, n);
                        nm.apply(&mut y, eps);
                        y
                    };
                    let b = blk.bottleneck.as_ref();
                    let li = b.map_or_else(|| x.clone(), |b| normed(&b.input, &x));
                    let att = match b {
                        Some(PBottleneck { shared: Some(sh), .. }) => self.attention(blk, &normed(sh, &x), &x, n),
                        Some(PBottleneck { inner_attention: true, .. }) => self.attention(blk, &li, &li, n),
                        _ => self.attention(blk, &x, &x, n),
                    };
                    let mut a = blk.o.rows_of(&att, n);
                    add(&mut a, &li);
                    blk.norm1.apply(&mut a, eps);
                    for (f1, f2, nm) in blk.extra_ffns.iter().map(|(f1, f2, nm)| (f1, f2, nm)).chain([(&blk.ffn1, &blk.ffn2, &blk.norm2)]) {
                        let f = self.ffn(f1, f2, &a, n);
                        add(&mut a, &f);
                        nm.apply(&mut a, eps);
                    }
                    x = match b {
                        Some(b) => {
                            let mut y = b.output.0.rows_of(&a, n);
                            add(&mut y, &x);
                            b.output.1.apply(&mut y, eps);
                            y
                        }
                        None => a,
                    };
                } else if self.s.norm_first {
                    let mut h = x.clone();
                    blk.norm1.apply(&mut h, eps);
                    add(&mut x, &blk.o.rows_of(&self.attention(blk, &h, &h, n), n));
                    let mut h = x.clone();
                    blk.norm2.apply(&mut h, eps);
                    add(&mut x, &self.ffn(&blk.ffn1, &blk.ffn2, &h, n));
                } else {
                    let a = blk.o.rows_of(&self.attention(blk, &x, &x, n), n);
                    add(&mut x, &a);
                    blk.norm1.apply(&mut x, eps);
                    let f = self.ffn(&blk.ffn1, &blk.ffn2, &x, n);
                    add(&mut x, &f);
                    blk.norm2.apply(&mut x, eps);
                }
            }
        }
        if let Some(nf) = &self.final_norm {
            nf.apply(&mut x, eps);
        }
        x
    }

    /// A language model's next-token score of one sequence: the head on every hidden row i < len − 1,
    /// −ln softmax(logits)[tokens[i + 1]] (max-subtracted log-sum-exp in f64) summed, and the
    /// positions whose first largest logit is tokens[i + 1].
    fn next_token(&self, tokens: &[u32], len: usize) -> NextTokenScore {
        let d = self.d;
        let x = self.hidden(tokens, len);
        let mut score = NextTokenScore::default();
        for i in 0..len.saturating_sub(1) {
            let h = self.head(x[i * d..(i + 1) * d].to_vec());
            let target = tokens[i + 1] as usize;
            let m = h.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + h.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            score.nll += lse - h[target];
            score.correct += u64::from(argmax(&h) == target);
            score.tokens += 1;
        }
        score
    }

    /// Question answering's answer to one sequence: the head on every hidden row gives (start,
    /// end) logits; the answer is the context span start ≤ end < start + max_answer_tokens with
    /// the largest start + end logit (the first by start, then end, on ties), its start and end
    /// among the `n_best` largest start and end logits of the sequence, the context being
    /// the tokens after the first `segment_sep` but the separators; with that score, and the
    /// null score, position 0's start + end logit (SQuAD 2.0's "no answer").
    fn answer(&self, tokens: &[u32], len: usize) -> (Option<(usize, usize, f64)>, f64) {
        let d = self.d;
        let x = self.hidden(tokens, len);
        let logits: Vec<[f64; 2]> = (0..len).map(|i| self.head(x[i * d..(i + 1) * d].to_vec())).map(|h| [h[0], h[1]]).collect();
        let sep = self.s.segment_sep;
        let first = sep.and_then(|s| tokens[..len].iter().position(|&t| t == s));
        let context: Vec<usize> = (0..len).filter(|&p| first.is_some_and(|f| p > f) && Some(tokens[p]) != sep).collect();
        let (starts, ends) = super::span_candidates(&context, len, self.s.n_best as usize, |p| logits[p][0], |p| logits[p][1]);
        (super::best_span(&starts, &ends, self.s.max_answer_tokens as usize, |s, e| logits[s][0] + logits[e][1]), logits[0][0] + logits[0][1])
    }

    /// One sequence's score against its labelled answers (the best of them).
    fn span(&self, tokens: &[u32], len: usize, answers: &[(u32, u32)]) -> SpanScore {
        super::score_answer(self.answer(tokens, len).0.map(|(s, e, _)| (s, e)), answers)
    }

    fn logits(&self, tokens: &[u32], len: usize) -> Vec<f64> {
        assert!(len >= 1 && len <= tokens.len(), "sequence length {len} of {} tokens: a sequence needs a non-padding token first", tokens.len());
        if let Some(pad) = self.s.pad_id {
            assert!(tokens[len..].iter().all(|&t| t == pad), "padding must trail the sequence (validation checks this)");
        }
        let d = self.d;
        let x = self.hidden(tokens, len);
        let mut pooled = match self.s.pooling {
            Pooling::Mean => (0..d).map(|c| (0..len).map(|i| x[i * d + c]).sum::<f64>() / len as f64).collect::<Vec<f64>>(),
            Pooling::Cls => x[..d].to_vec(),
            Pooling::Last => x[(len - 1) * d..len * d].to_vec(),
        };
        if let Some(p) = &self.pooler {
            let mut y = vec![0.0; d];
            p.apply(&pooled, &mut y);
            pooled = y.iter().map(|v| v.tanh()).collect();
        }
        self.head(pooled)
    }

    /// The head's Linear layers on one vector, `head_activation` between them (none after the last).
    fn head(&self, mut h: Vec<f64>) -> Vec<f64> {
        let last = self.head.len() - 1;
        for (i, l) in self.head.iter().enumerate() {
            let mut y = vec![0.0; l.rows];
            l.apply(&h, &mut y);
            if i < last {
                y.iter_mut().for_each(|v| *v = self.s.head_activation.apply(*v));
            }
            h = y;
        }
        h
    }
}

fn add(x: &mut [f64], y: &[f64]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// Exact attention of one head: rows of q, k, v (`d_head` each), keys j ≤ i when causal.
pub fn softmax_attention(q: &[Vec<f64>], k: &[Vec<f64>], v: &[Vec<f64>], causal: bool) -> Vec<Vec<f64>> {
    let n = q.len();
    let dh = v.first().map_or(0, Vec::len);
    let scale = 1.0 / (q.first().map_or(1, Vec::len) as f64).sqrt();
    let mut out = vec![vec![0.0; dh]; n];
    for i in 0..n {
        let keys = if causal { i + 1 } else { n };
        let scores: Vec<f64> = (0..keys).map(|j| dot(&q[i], &k[j]) * scale).collect();
        let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let w: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
        let sum: f64 = w.iter().sum();
        for (j, wj) in w.iter().enumerate() {
            let p = wj / sum;
            for (o, vc) in out[i].iter_mut().zip(&v[j]) {
                *o += p * vc;
            }
        }
    }
    out
}

/// Linear attention of one head from the features of queries and keys: out_i =
/// Σ_j (φq_i·φk_j) v_j / Σ_j (φq_i·φk_j), keys j ≤ i when causal (by prefix sums).
pub fn linear_attention(pq: &[Vec<f64>], pk: &[Vec<f64>], v: &[Vec<f64>], causal: bool) -> Vec<Vec<f64>> {
    let n = pq.len();
    let m = pq.first().map_or(0, Vec::len);
    let dh = v.first().map_or(0, Vec::len);
    let mut s = vec![0.0; m * dh];
    let mut z = vec![0.0; m];
    let accumulate = |j: usize, s: &mut Vec<f64>, z: &mut Vec<f64>| {
        for (f, &a) in pk[j].iter().enumerate() {
            z[f] += a;
            for (sc, vc) in s[f * dh..(f + 1) * dh].iter_mut().zip(&v[j]) {
                *sc += a * vc;
            }
        }
    };
    if !causal {
        for j in 0..n {
            accumulate(j, &mut s, &mut z);
        }
    }
    let mut out = vec![vec![0.0; dh]; n];
    for i in 0..n {
        if causal {
            accumulate(i, &mut s, &mut z);
        }
        let den = dot(&pq[i], &z);
        let o = &mut out[i];
        for (f, &a) in pq[i].iter().enumerate() {
            for (oc, sc) in o.iter_mut().zip(&s[f * dh..(f + 1) * dh]) {
                *oc += a * sc;
            }
        }
        o.iter_mut().for_each(|v| *v /= den);
    }
    out
}

/// Kernel attention's features of one already scaled input x̃ (`d_head`) through the projection
/// `w` (`rows × d_head`): 2·rows values for the paired maps (the + or sin block first), rows for
/// ReLU. The constants are those of `features::KernelSpec::features` with s = rows.
pub fn feature_map(map: SoftmaxFeatures, w: &[f64], rows: usize, x: &[f64]) -> Vec<f64> {
    let dh = x.len();
    let n = dot(x, x);
    let c = 1.0 / (rows as f64).sqrt();
    let y: Vec<f64> = (0..rows).map(|r| dot(&w[r * dh..(r + 1) * dh], x)).collect();
    match map {
        SoftmaxFeatures::Positive => {
            // exp(±y − n/2) as h·exp(y) and h/exp(y), h = c/√2·exp(−n/2): one exp per row.
            let h = c * std::f64::consts::FRAC_1_SQRT_2 * (-n / 2.0).exp();
            let e: Vec<f64> = y.iter().map(|y| y.exp()).collect();
            e.iter().map(|e| h * e).chain(e.iter().map(|e| h / e)).collect()
        }
        SoftmaxFeatures::Trig => {
            let h = c * (n / 2.0).exp();
            y.iter().map(|y| h * y.sin()).chain(y.iter().map(|y| h * y.cos())).collect()
        }
        SoftmaxFeatures::Relu => {
            let h = c * (-n / 2.0).exp();
            y.iter().map(|y| h * y.max(0.0)).collect()
        }
    }
}

/// Σ a_i b_i in four interleaved partial sums (independent add chains: the loops here are
/// latency-bound otherwise; any fixed order is as good for an f64 reference).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0; 4];
    for (x, y) in a.chunks_exact(4).zip(b.chunks_exact(4)) {
        for k in 0..4 {
            acc[k] += x[k] * y[k];
        }
    }
    let tail: f64 = a[n - n % 4..].iter().zip(&b[n - n % 4..]).map(|(x, y)| x * y).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// The non-padding length of a sequence: the index of the first `pad_id`, else its length.
pub fn seq_len(tokens: &[u32], pad_id: Option<u32>) -> usize {
    pad_id.and_then(|p| tokens.iter().position(|&t| t == p)).unwrap_or(tokens.len())
}

/// Logits of one sequence (`tokens`, its first `len` not padding), f64 throughout.
pub fn logits(net: &TransformerNet, s: &TransformerSettings, tokens: &[u32], len: usize) -> Vec<f64> {
    Prepared::new(net, s).logits(tokens, len)
}

/// The final hidden states `[len][d_model]` of a sequence's first `len` tokens (before pooling).
pub fn hidden(net: &TransformerNet, s: &TransformerSettings, tokens: &[u32], len: usize) -> Vec<f64> {
    Prepared::new(net, s).hidden(tokens, len)
}

/// The token ids of a data set's row (`x` holds them as f32, one row per sequence).
pub fn row_tokens(data: &Dataset, row: usize) -> Vec<u32> {
    let n = data.n_features;
    data.x[row * n..(row + 1) * n]
        .iter()
        .map(|&v| {
            assert!(v >= 0.0 && v.fract() == 0.0 && v < 4294967296.0, "row {row}: token id {v} is not a non-negative integer (validation checks this)");
            v as u32
        })
        .collect()
}

/// `f(prepared, tokens, len)` of every row of a token data set, in row order, the rows split over
/// every core; the result does not depend on the thread count (rows are independent).
fn per_row<T: Send>(net: &TransformerNet, s: &TransformerSettings, data: &Dataset, f: impl Fn(&Prepared<'_>, &[u32], usize) -> T + Sync) -> Vec<T> {
    per_row_at(net, s, data, |p, tokens, len, _| f(p, tokens, len))
}

/// [`per_row`] with each row's index (for its labels).
fn per_row_at<T: Send>(net: &TransformerNet, s: &TransformerSettings, data: &Dataset, f: impl Fn(&Prepared<'_>, &[u32], usize, usize) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism().map_or(1, |p| p.get());
    let p = Prepared::new(net, s);
    let n = data.len();
    let chunk = n.div_ceil(threads).max(1);
    let one = |row: usize| {
        let tokens = row_tokens(data, row);
        f(&p, &tokens, seq_len(&tokens, s.pad_id), row)
    };
    std::thread::scope(|sc| {
        let handles: Vec<_> = (0..n).step_by(chunk).map(|start| sc.spawn(move || (start..(start + chunk).min(n)).map(one).collect::<Vec<T>>())).collect();
        handles.into_iter().flat_map(|h| h.join().expect("reference forward thread")).collect()
    })
}

/// The f64 forward's predicted class of every row (the first largest logit).
pub fn fp_predictions(net: &TransformerNet, s: &TransformerSettings, data: &Dataset) -> Vec<usize> {
    per_row(net, s, data, |p, tokens, len| argmax(&p.logits(tokens, len)))
}

/// The first index of the largest value.
pub fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// A language model's f64 next-token score over a token data set: the rows' sums added in row
/// order.
pub fn fp_next_token(net: &TransformerNet, s: &TransformerSettings, data: &Dataset) -> NextTokenScore {
    let rows = per_row(net, s, data, |p, tokens, len| p.next_token(tokens, len));
    rows.iter().fold(NextTokenScore::default(), |a, r| NextTokenScore { nll: a.nll + r.nll, correct: a.correct + r.correct, tokens: a.tokens + r.tokens })
}

/// A language model's per-sequence f64 score (the oracle of the engine's noiseless loss).
pub fn next_token_score(net: &TransformerNet, s: &TransformerSettings, tokens: &[u32], len: usize) -> NextTokenScore {
    Prepared::new(net, s).next_token(tokens, len)
}

/// Question answering's f64 score over a token data set: exact matches and Σ F1, each row's
/// best over its labelled answers (`spans`, start · seq + end), the rows' values added in row
/// order; or, with `data.text`, each question's over its rows (SQuAD's official metrics), the
/// questions' values added in question order.
pub fn fp_span(net: &TransformerNet, s: &TransformerSettings, data: &Dataset) -> SpanScore {
    let add = |a: SpanScore, exact: u64, f1: f64| SpanScore { exact: a.exact + exact, f1: a.f1 + f1 };
    if let Some(text) = &data.text {
        let answers = per_row_at(net, s, data, |p, tokens, len, _| p.answer(tokens, len));
        return text.score(s.null_score_diff_threshold, |row| answers[row]).iter().fold(SpanScore::default(), |a, q| add(a, u64::from(q.exact), q.f1));
    }
    let (seq, k) = (data.n_features, data.answers().max(1));
    let rows = per_row_at(net, s, data, |p, tokens, len, row| {
        let answers: Vec<(u32, u32)> = data.spans[row * k..(row + 1) * k].iter().map(|&l| super::span_of(l, seq)).collect();
        p.span(tokens, len, &answers)
    });
    rows.iter().fold(SpanScore::default(), |a, r| add(a, r.exact, r.f1))
}

/// One row's f64 answer (first token, last token, start + end logit; None without a context)
/// and null score, the oracle of the engine's noiseless answer.
pub fn span_answer(net: &TransformerNet, s: &TransformerSettings, tokens: &[u32], len: usize) -> (Option<(usize, usize, f64)>, f64) {
    Prepared::new(net, s).answer(tokens, len)
}

/// One row's f64 question-answering score (the oracle of the engine's noiseless answer).
pub fn span_score(net: &TransformerNet, s: &TransformerSettings, tokens: &[u32], len: usize, answers: &[(u32, u32)]) -> SpanScore {
    Prepared::new(net, s).span(tokens, len, answers)
}

/// A per-sequence metric's f64 value (GLUE's correlations and F1, `glue`) from every row's
/// logits, and its companion's (`glue::companion`).
pub fn fp_score(net: &TransformerNet, s: &TransformerSettings, data: &Dataset) -> (f64, Option<f64>) {
    let rows = per_row(net, s, data, |p, tokens, len| p.logits(tokens, len)).concat();
    (super::glue::score(s.task, &rows, net.classes(), data), super::glue::companion_score(s.task, &rows, net.classes(), data))
}

/// Correct predictions of the f64 forward over a token data set.
pub fn fp_correct(net: &TransformerNet, s: &TransformerSettings, data: &Dataset) -> u64 {
    fp_predictions(net, s, data).iter().zip(&data.labels).filter(|(p, &l)| **p == l as usize).count() as u64
}
