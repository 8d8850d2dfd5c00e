// Stage `token_nll`: a causal language model's next-token loss (the cross-entropy behind
// perplexity; Jelinek et al. 1977, as every language-model paper reports it). Every position
// p < len − 1 of a sequence predicts token p + 1 from its logits row
// h[(trial · samples + sample) · seq + p][vocab]: its negative log-likelihood
// −log softmax(h)[next] = (m + log Σ_o exp(h_o − m)) − h_next, m the row's largest logit. One
// invocation sums it over the positions of one block of NLL_BLOCK tokens of one (trial, sequence),
// in order, into slot ([t_index][trial][batch] + sample_offset + sample) · blocks + block of `nll`
// (`layer.batch` is the data set's sequence count); rows whose first largest logit is the next
// token are counted with an integer atomic into `correct`'s slot [t_index][trial], as `accuracy`
// counts. The blocks are fixed by the sequence, not by the dispatch, and each slot is written by one
// invocation, so the sums do not depend on the dispatch shape or the sample batches.
// CPU twin: src/engine/cpu/token_nll.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> h: array<f32>;
@group(0) @binding(2) var<storage, read> tokens: array<u32>;
@group(0) @binding(3) var<storage, read> lengths: array<u32>;
@group(0) @binding(4) var<storage, read_write> nll: array<f32>;
@group(0) @binding(5) var<storage, read_write> correct: array<atomic<u32>>;

override WG: u32 = 64u;

// Positions per partial sum (engine::stages::NLL_BLOCK).
const NLL_BLOCK: u32 = 64u;

@compute @workgroup_size(WG)
fn token_nll(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let S = P.seq;
    let L = P.layer;
    let blocks = (S.seq + NLL_BLOCK - 1u) / NLL_BLOCK;
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= L.trials * S.samples * blocks) {
        return;
    }
    let b = i % blocks;
    let ts = i / blocks;
    let trial = ts / S.samples;
    let sample = ts % S.samples;
    let len = min(lengths[sample], S.seq);
    // Positions with a next token: len − 1 (none for an empty sequence); this block's share.
    let predicted = select(0u, len - 1u, len > 0u);
    let last = min(predicted, (b + 1u) * NLL_BLOCK);
    var total = 0.0;
    var hits = 0u;
    for (var p = b * NLL_BLOCK; p < last; p = p + 1u) {
        let row = (ts * S.seq + p) * S.vocab;
        let next = tokens[sample * S.seq + p + 1u];
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
        total = total + ((m + log(s)) - h[row + next]);
        hits = hits + select(0u, 1u, best == next);
    }
    nll[((L.t_index * L.trials + trial) * L.batch + S.sample_offset + sample) * blocks + b] = total;
    if (hits > 0u) {
        atomicAdd(&correct[L.t_index * L.trials + trial], hits);
    }
}
