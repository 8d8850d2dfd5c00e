// Stage `token_nll`: a causal language model's next-token loss (the cross-entropy behind
// perplexity; Jelinek et al. 1977, as every language-model paper reports it). Every position p <
// len − 1 of a sequence predicts token p + 1 from its logits row h[(trial · samples + sample) · seq
// + p][vocab]: its negative log-likelihood −log softmax(h)[next] = (m + log Σ_o exp(h_o − m)) −
// h_next, m the row's largest logit. One invocation or workgroup (below) sums it over the positions
// of one block of NLL_BLOCK tokens of one (trial, sequence), in order, into slot
// ([t_index][trial][batch] + sample_offset + sample) · blocks + block of `nll` (`layer.batch` is
// the data set's sequence count); rows whose first largest logit is the next token are counted with
// an integer atomic into `correct`'s slot [t_index][trial], as `accuracy` counts, and per slot: a
// slot is NLL_SLOT_WORDS words, the loss and the block's hits (an f32, exact: at most NLL_BLOCK).
// The blocks are fixed by the sequence, not by the dispatch, and each slot is written once, so the
// sums do not depend on the dispatch shape or the sample batches.
//
// A vocabulary of more than NLL_WG tokens is reduced a row at a time by the whole workgroup (one
// workgroup per block): invocation l reads the logits o ≡ l (mod NLL_WG) (a vocabulary of 50 257
// tokens, GPT-2's, is 197 per invocation, in coalesced strides), then a tree over workgroup memory
// combines the partial maxima (the lowest index among equal maxima, so the first largest logit wins
// as in `accuracy`) and, with the row's maximum, the partial sums of exp(h − m). A smaller
// vocabulary runs one block per invocation, each row in order. CPU twin: src/engine/cpu/token_nll.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> h: array<f32>;
@group(0) @binding(2) var<storage, read> tokens: array<u32>;
@group(0) @binding(3) var<storage, read> lengths: array<u32>;
@group(0) @binding(4) var<storage, read_write> nll: array<f32>;
@group(0) @binding(5) var<storage, read_write> correct: array<atomic<u32>>;

// Positions per partial sum (engine::stages::NLL_BLOCK).
const NLL_BLOCK: u32 = 64u;
// Words per slot of `nll`: the loss, the hits (engine::stages::NLL_SLOT_WORDS).
const NLL_SLOT_WORDS: u32 = 2u;
// Invocations per workgroup, one row at a time (engine::stages::NLL_WG; a power of two).
const NLL_WG: u32 = 256u;
// An invocation whose share of the row is empty (vocabularies under NLL_WG tokens).
const NONE: u32 = 0xffffffffu;

var<workgroup> wmax: array<f32, 256>;
var<workgroup> warg: array<u32, 256>;
var<workgroup> wsum: array<f32, 256>;

// One block's slot and its hits: the loss sum, the hits as an f32, and the trial's count.
fn write_block(trial: u32, sample: u32, b: u32, blocks: u32, total: f32, hits: u32) {
    let L = P.layer;
    let slot = ((L.t_index * L.trials + trial) * L.batch + P.seq.sample_offset + sample) * blocks + b;
    nll[slot * NLL_SLOT_WORDS] = total;
    nll[slot * NLL_SLOT_WORDS + 1u] = f32(hits);
    if (hits > 0u) {
        atomicAdd(&correct[L.t_index * L.trials + trial], hits);
    }
}

// The end of the positions block b of `sample` scores, from b · NLL_BLOCK: the sequence's len − 1
// positions with a next token (none for an empty sequence), this block's share.
fn block_end(sample: u32, b: u32) -> u32 {
    let len = min(lengths[sample], P.seq.seq);
    let predicted = select(0u, len - 1u, len > 0u);
    return min(predicted, (b + 1u) * NLL_BLOCK);
}

// A vocabulary of at most NLL_WG tokens: one invocation per (trial, sequence, block), each row
// in order (a workgroup per row would leave most of it idle between barriers).
fn small_vocabulary(i: u32, blocks: u32) {
    let S = P.seq;
    let b = i % blocks;
    let ts = i / blocks;
    let sample = ts % S.samples;
    let last = block_end(sample, b);
    var total = 0.0;
    var hits = 0u;
    for (var p = b * NLL_BLOCK; p < last; p = p + 1u) {
        let row = (ts * S.seq + p) * S.vocab;
        var m = h[row];
        var best = 0u;
        for (var o = 1u; o < S.vocab; o = o + 1u) {
            if (h[row + o] > m) {
                m = h[row + o];
                best = o;
            }
        }
        var s = 0.0;
        for (var o = 0u; o < S.vocab; o = o + 1u) {
            s = s + exp(h[row + o] - m);
        }
        let next = tokens[sample * S.seq + p + 1u];
        total = total + ((m + log(s)) - h[row + next]);
        hits = hits + select(0u, 1u, best == next);
    }
    write_block(ts / S.samples, sample, b, blocks, total, hits);
}

@compute @workgroup_size(256)
fn token_nll(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let S = P.seq;
    let L = P.layer;
    let blocks = (S.seq + NLL_BLOCK - 1u) / NLL_BLOCK;
    let items = L.trials * S.samples * blocks;
    let w = wid.x + wid.y * nwg.x;
    if (S.vocab <= NLL_WG) {
        // engine::stages::token_nll_groups: NLL_WG items per workgroup.
        let i = w * NLL_WG + lid;
        if (i < items) {
            small_vocabulary(i, blocks);
        }
        return;   // uniform over the workgroup: the vocabulary is
    }
    if (w >= items) {
        return;   // uniform over the workgroup
    }
    let b = w % blocks;
    let ts = w / blocks;
    let trial = ts / S.samples;
    let sample = ts % S.samples;
    let last = block_end(sample, b);
    var total = 0.0;
    var hits = 0u;
    for (var p = b * NLL_BLOCK; p < last; p = p + 1u) {
        let row = (ts * S.seq + p) * S.vocab;
        // This invocation's first largest logit among its strided share; none: below every logit.
        var m = -3.40282347e38;
        var best = NONE;
        for (var o = lid; o < S.vocab; o = o + NLL_WG) {
            if (h[row + o] > m || best == NONE) {
                m = h[row + o];
                best = o;
            }
        }
        wmax[lid] = m;
        warg[lid] = best;
        workgroupBarrier();
        for (var half = NLL_WG / 2u; half > 0u; half = half / 2u) {
            if (lid < half) {
                let m2 = wmax[lid + half];
                let b2 = warg[lid + half];
                let b1 = warg[lid];
                if (b2 != NONE && (b1 == NONE || m2 > wmax[lid] || (m2 == wmax[lid] && b2 < b1))) {
                    wmax[lid] = m2;
                    warg[lid] = b2;
                }
            }
            workgroupBarrier();
        }
        let mx = wmax[0];
        var s = 0.0;
        for (var o = lid; o < S.vocab; o = o + NLL_WG) {
            s = s + exp(h[row + o] - mx);
        }
        wsum[lid] = s;
        workgroupBarrier();
        for (var half = NLL_WG / 2u; half > 0u; half = half / 2u) {
            if (lid < half) {
                wsum[lid] = wsum[lid] + wsum[lid + half];
            }
            workgroupBarrier();
        }
        if (lid == 0u) {
            let next = tokens[sample * S.seq + p + 1u];
            total = total + ((mx + log(wsum[0])) - h[row + next]);
            hits = hits + select(0u, 1u, warg[0] == next);
        }
        // Every invocation has read wmax[0], warg[0] and wsum[0] before the next row writes them.
        workgroupBarrier();
    }
    if (lid == 0u) {
        write_block(trial, sample, b, blocks, total, hits);
    }
}
