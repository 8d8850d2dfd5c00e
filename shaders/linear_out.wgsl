// Stage `linear_out`: a transformer's linear-attention output (kernel-attention spec §3),
// out_ic = (φq_i·S_c) / (φq_i·z) with `linear_kv`'s sums; causal: the prefix before i's block
// plus the block's keys j ≤ i (and j < len), weighted a_j = φq_i·φk_j. A zero denominator (no
// key, or features that cancel) gives 0. Layouts as `linear_kv`; out is [trial][sample][token]
// [d_model]. One invocation = one (trial, sample, token, head, c). CPU twin:
// src/engine/cpu/linear_out.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> phiq: array<f32>;
@group(0) @binding(2) var<storage, read> phik: array<f32>;
@group(0) @binding(3) var<storage, read> kv: array<f32>;
@group(0) @binding(4) var<storage, read> v: array<f32>;
@group(0) @binding(5) var<storage, read> lengths: array<u32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

override WG: u32 = 64u;

const ATTN_BLOCK: u32 = 64u;

@compute @workgroup_size(WG)
fn linear_out(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let S = P.seq;
    let g = gid.x + gid.y * nwg.x * WG;
    if (g >= P.layer.trials * S.samples * S.seq * S.d_model) {
        return;
    }
    let col = g % S.d_model;
    let h = col / S.d_head;
    let c = col % S.d_head;
    let tok = g / S.d_model;                 // (trial_local · samples + sample) · seq + i
    let i = tok % S.seq;
    let ts = tok / S.seq;
    let cols = S.d_head + 1u;
    let qrow = (tok * S.heads + h) * S.width;
    let causal = S.causal != 0u;
    let b = select(0u, i / ATTN_BLOCK, causal);
    let kvo = (((ts * S.heads + h) * S.blocks + b) * S.width) * cols;
    var num = 0.0;
    var den = 0.0;
    for (var f = 0u; f < S.width; f = f + 1u) {
        let pq = phiq[qrow + f];
        num = num + pq * kv[kvo + f * cols + c];
        den = den + pq * kv[kvo + f * cols + S.d_head];
    }
    if (causal) {
        let len = min(lengths[ts % S.samples], S.seq);
        let last = min(i + 1u, len);
        for (var j = b * ATTN_BLOCK; j < last; j = j + 1u) {
            let krow = ((ts * S.seq + j) * S.heads + h) * S.width;
            var a = 0.0;
            for (var f = 0u; f < S.width; f = f + 1u) {
                a = a + phiq[qrow + f] * phik[krow + f];
            }
            num = num + a * v[(ts * S.seq + j) * S.d_model + col];
            den = den + a;
        }
    }
    out[g] = select(0.0, num / den, den != 0.0);
}
