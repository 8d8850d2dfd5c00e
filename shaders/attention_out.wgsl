// Stage `attention_out`: linear attention's output for one token i of one head,
// Â_i = (Q′_i·S) / (Q′_i·z) (kernel-attention spec §3), against the exact softmax attention A_i:
// Σ_c (A_ic − Â_ic)² into slot [t_index][trial][head·seq + i] of `partial` (the host sums a
// trial's slots in f64 and divides by ‖A‖²). Causal: S and z are `attention_kv`'s prefix before
// i's block plus the block's tokens j ≤ i, whose weights a_j = Q′_i·K′_j the workgroup computes
// first, one token per invocation. One workgroup of ATTN_BLOCK = one (trial, head, token);
// invocations stride over the output columns c. CPU twin: src/engine/cpu/attention_out.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> phi: array<f32>;
@group(0) @binding(2) var<storage, read> kv: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> exact: array<f32>;
@group(0) @binding(5) var<storage, read_write> partial: array<f32>;

const ATTN_BLOCK: u32 = 64u;
var<workgroup> aw: array<f32, ATTN_BLOCK>;
var<workgroup> red: array<f32, ATTN_BLOCK>;

@compute @workgroup_size(ATTN_BLOCK)
fn attention_out(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let K = P.kern;
    let g = wid.x + wid.y * nwg.x;   // uniform over the workgroup
    if (g >= P.layer.trials * K.heads * K.seq) {
        return;
    }
    let i = g % K.seq;
    let th = g / K.seq;
    let hd = th % K.heads;
    let t = th / K.heads;
    let cols = K.dv + 1u;
    let qrow = (t * K.rows + hd * K.seq + i) * K.width;
    let causal = K.causal != 0u;
    let b = select(0u, i / ATTN_BLOCK, causal);
    let kvo = (th * K.blocks + b) * K.width * cols;
    let j0 = b * ATTN_BLOCK;
    // The block's own weights a_j = Q′_i·K′_j for j0 <= j <= i (0 beyond i, and non-causal).
    var a = 0.0;
    let j = j0 + lid;
    if (causal && j <= i) {
        let krow = (t * K.rows + K.heads * K.seq + hd * K.seq + j) * K.width;
        for (var f = 0u; f < K.width; f = f + 1u) {
            a = a + phi[qrow + f] * phi[krow + f];
        }
    }
    aw[lid] = a;
    workgroupBarrier();
    var den = 0.0;
    for (var f = 0u; f < K.width; f = f + 1u) {
        den = den + phi[qrow + f] * kv[kvo + f * cols + K.dv];
    }
    for (var l = 0u; l < ATTN_BLOCK; l = l + 1u) {
        den = den + aw[l];
    }
    let last = min(ATTN_BLOCK, i + 1u - j0);
    var err = 0.0;
    for (var c = lid; c < K.dv; c = c + ATTN_BLOCK) {
        var num = 0.0;
        for (var f = 0u; f < K.width; f = f + 1u) {
            num = num + phi[qrow + f] * kv[kvo + f * cols + c];
        }
        if (causal) {
            for (var l = 0u; l < last; l = l + 1u) {
                num = num + aw[l] * v[(hd * K.seq + j0 + l) * K.dv + c];
            }
        }
        let e = exact[(hd * K.seq + i) * K.dv + c] - num / den;
        err = err + e * e;
    }
    red[lid] = err;
    workgroupBarrier();
    for (var half = ATTN_BLOCK / 2u; half > 0u; half = half >> 1u) {
        if (lid < half) {
            red[lid] = red[lid] + red[lid + half];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        partial[(P.layer.t_index * P.layer.trials + t) * K.heads * K.seq + hd * K.seq + i] = red[0];
    }
}
