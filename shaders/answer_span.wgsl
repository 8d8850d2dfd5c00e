// Stage `answer_span`: extractive question answering (SQuAD, Rajpurkar et al. EMNLP 2016; BERT's
// span head, Devlin et al. NAACL 2019 §4.2). The head gives every token a start and an end logit,
// h[((trial · samples + sample) · seq + p) · 2 + {0, 1}]; the predicted answer is the span
// start ≤ end < start + max_answer of context tokens with the largest start logit + end logit (the
// first such span, by start then end, on ties), its start among the sequence's n_best largest start
// logits and its end among its n_best largest end logits, ranked over all its tokens (Hugging
// Face's `n_best_size` in `postprocess_qa_predictions`; n_best = 0 searches every span). Context
// tokens carry the second-segment bit (`transformer.segment_sep`), lie before the sequence's
// length and are not the separator itself: the question, [CLS], the separators and the padding
// cannot be answers, as in Hugging Face's SQuAD post-processing.
//
// Against the labelled answers (labels[sample · answers + j] = start · seq + end; SQuAD's dev set
// has up to three per question and its metrics take the best) the slot
// ([t_index][trial][batch] + sample_offset + sample) of `spans` gets SPAN_SLOT_WORDS words: the
// overlap in tokens with the answer of the best F1 (the first such answer; 2 · overlap /
// (predicted + labelled length) compared exactly by cross-multiplication), the predicted span's
// length and that answer's length (overlap and predicted length 0 when the sequence has no
// context), then the predicted span's start, end and its score's f32 bits (all 0 without a
// context), and the null score, position 0's start + end logit (SQuAD 2.0's "no answer"). The host forms the token-level F1 from the counts, so it is the same on every
// backend, and SQuAD's official metrics from the span (the text it covers, the best of a
// question's windows by score: workload::transformer::squad); an
// exact match (the best answer is the predicted span) is counted with an integer atomic into
// `correct`'s slot [t_index][trial]. One invocation = one (trial, sequence). CPU twin:
// src/engine/cpu/answer_span.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> h: array<f32>;
@group(0) @binding(2) var<storage, read> tokens: array<u32>;
@group(0) @binding(3) var<storage, read> lengths: array<u32>;
@group(0) @binding(4) var<storage, read> labels: array<u32>;
@group(0) @binding(5) var<storage, read_write> spans: array<u32>;
@group(0) @binding(6) var<storage, read_write> correct: array<atomic<u32>>;

override WG: u32 = 64u;

// Words per slot of `spans`: the overlap, the predicted and the labelled length, the predicted
// start, end and score, the null score (engine::stages::SPAN_SLOT_WORDS).
const SPAN_SLOT_WORDS: u32 = 7u;
// The token id bit that marks the second segment (workload::transformer::SEGMENT_BIT).
const SEGMENT_BIT: u32 = 0x80000000u;

// Whether position p of `sample` (its batch index) may be part of an answer.
fn in_context(sample: u32, p: u32) -> bool {
    let t = tokens[sample * P.seq.seq + p];
    return (t & SEGMENT_BIT) != 0u && (t & ~SEGMENT_BIT) != P.seq.sep;
}

// The n-th of a row's `len` logits (which: 0 start, 1 end) ordered by value, larger first, then by
// position, lower first: (value, position). n passes, each taking the first position after the
// last one taken (workload::transformer::top_n_cut). Position len keeps every position.
fn top_n_cut(row: u32, which: u32, len: u32, n: u32) -> vec2<u32> {
    if (n == 0u || n >= len) {
        return vec2<u32>(0u, len);
    }
    var cv = 0.0;
    var cp = len;
    for (var k = 0u; k < n; k = k + 1u) {
        var found = false;
        var nv = 0.0;
        var np = 0u;
        for (var p = 0u; p < len; p = p + 1u) {
            let v = h[(row + p) * 2u + which];
            let after_cut = cp == len || v < cv || (v == cv && p > cp);
            if (after_cut && (!found || v > nv) && v == v) {
                found = true;
                nv = v;
                np = p;
            }
        }
        if (!found) {
            break;
        }
        cv = nv;
        cp = np;
    }
    return vec2<u32>(bitcast<u32>(cv), cp);
}

// Whether position p with logit v is among the n best the cut keeps.
fn in_top_n(cut: vec2<u32>, len: u32, p: u32, v: f32) -> bool {
    let cv = bitcast<f32>(cut.x);
    return cut.y == len || v > cv || (v == cv && p <= cut.y);
}

@compute @workgroup_size(WG)
fn answer_span(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let L = P.layer;
    let S = P.seq;
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= L.trials * S.samples) {
        return;
    }
    let sample = i % S.samples;
    let trial = i / S.samples;
    let len = min(lengths[sample], S.seq);
    let row = i * S.seq;
    let cut_s = top_n_cut(row, 0u, len, S.n_best);
    let cut_e = top_n_cut(row, 1u, len, S.n_best);
    var found = false;
    var best = 0.0;
    var bs = 0u;
    var be = 0u;
    for (var s = 0u; s < len; s = s + 1u) {
        let start = h[(row + s) * 2u];
        if (!in_context(sample, s) || !in_top_n(cut_s, len, s, start)) {
            continue;
        }
        let last = min(len, s + S.max_answer);
        for (var e = s; e < last; e = e + 1u) {
            let end = h[(row + e) * 2u + 1u];
            if (!in_context(sample, e) || !in_top_n(cut_e, len, e, end)) {
                continue;
            }
            let score = start + end;
            if (!found || score > best) {
                found = true;
                best = score;
                bs = s;
                be = e;
            }
        }
    }
    let predicted = select(0u, be - bs + 1u, found);
    var overlap = 0u;
    var labelled = 0u;
    for (var j = 0u; j < S.answers; j = j + 1u) {
        let label = labels[sample * S.answers + j];
        let gs = label / S.seq;
        let ge = label % S.seq;
        let g = ge - gs + 1u;
        let lo = max(bs, gs);
        let hi = min(be, ge);
        let o = select(0u, hi - lo + 1u, found && hi >= lo);
        // F1 = 2 o / (predicted + g): a larger one, exactly, or the first answer.
        if (j == 0u || o * (predicted + labelled) > overlap * (predicted + g)) {
            overlap = o;
            labelled = g;
        }
    }
    let slot = (L.t_index * L.trials + trial) * L.batch + S.sample_offset + sample;
    spans[slot * SPAN_SLOT_WORDS] = overlap;
    spans[slot * SPAN_SLOT_WORDS + 1u] = predicted;
    spans[slot * SPAN_SLOT_WORDS + 2u] = labelled;
    spans[slot * SPAN_SLOT_WORDS + 3u] = bs;
    spans[slot * SPAN_SLOT_WORDS + 4u] = be;
    spans[slot * SPAN_SLOT_WORDS + 5u] = bitcast<u32>(best);
    spans[slot * SPAN_SLOT_WORDS + 6u] = bitcast<u32>(h[row * 2u] + h[row * 2u + 1u]);
    if (found && overlap == predicted && predicted == labelled) {
        atomicAdd(&correct[L.t_index * L.trials + trial], 1u);
    }
}
