// Stage `attention_kv`: the sums of linear attention (Katharopoulos et al., ICML 2020;
// kernel-attention spec §3) per trial and head: S[f][c] = Σ_j K′_jf V_jc and, as column c = dv,
// z[f] = Σ_j K′_jf. Non-causal: over all tokens, one slot. Causal: exclusive prefix sums per block
// of ATTN_BLOCK tokens, slot b holding the sums over the tokens before block b (`attention_out`
// adds the block's own tokens), so no n × n matrix and no per-token state is ever stored.
// Layout kv[trial][head][block][f][dv + 1]; Φ rows are every head's Q, then every head's K
// ([trial][2·heads·seq][width]); V is [head][seq][dv]. CPU twin: src/engine/cpu/attention_kv.rs.
//
// A tiled GEMM Kᵀ[V | 1] like `mvm`: one workgroup of 16 × 16 invocations per (trial, head,
// 64-feature block, 64-column block of V); the z column rides along in column block 0. Tokens go
// in steps of KV_BT through workgroup memory (K′ rows as vec4 along features, V rows as vec4
// along columns); invocation (tx, ty) accumulates features 4 ty .. 4 ty + 3 × columns 4 tx ..
// 4 tx + 3 in four vec4 registers (2 vec4 reads of workgroup memory per 16 FMAs). Causal prefixes
// are the running accumulators themselves: at each block's first token (KV_BT divides
// ATTN_BLOCK) the workgroup stores them into that block's slot, so every sum runs over the tokens
// in increasing order, as in the twin. Tokens, features and columns past the edges load as zeros.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> phi: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read_write> kv: array<f32>;

const ATTN_BLOCK: u32 = 64u;
const KV_BF: u32 = 64u;        // features per workgroup
const KV_BC: u32 = 64u;        // V columns per workgroup
const KV_BT: u32 = 16u;        // tokens per step
var<workgroup> ks: array<vec4<f32>, 256>;   // [KV_BT][KV_BF / 4]
var<workgroup> vs: array<vec4<f32>, 256>;   // [KV_BT][KV_BC / 4]

// Columns c .. c + 3 of feature f of one slot (those inside the row of dv V columns).
fn put4(base: u32, f: u32, c: u32, a: vec4<f32>) {
    let K = P.kern;
    if (f >= K.width) {
        return;
    }
    let o = base + f * (K.dv + 1u);
    if (c < K.dv) { kv[o + c] = a.x; }
    if (c + 1u < K.dv) { kv[o + c + 1u] = a.y; }
    if (c + 2u < K.dv) { kv[o + c + 2u] = a.z; }
    if (c + 3u < K.dv) { kv[o + c + 3u] = a.w; }
}

// z of features f .. f + 3 (column dv).
fn putz(base: u32, f: u32, z: vec4<f32>) {
    let K = P.kern;
    let cols = K.dv + 1u;
    if (f < K.width) { kv[base + f * cols + K.dv] = z.x; }
    if (f + 1u < K.width) { kv[base + (f + 1u) * cols + K.dv] = z.y; }
    if (f + 2u < K.width) { kv[base + (f + 2u) * cols + K.dv] = z.z; }
    if (f + 3u < K.width) { kv[base + (f + 3u) * cols + K.dv] = z.w; }
}

@compute @workgroup_size(16, 16)
fn attention_kv(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let K = P.kern;
    let fblocks = (K.width + KV_BF - 1u) / KV_BF;
    let cblocks = max((K.dv + KV_BC - 1u) / KV_BC, 1u);
    let g = wid.x + wid.y * nwg.x;   // uniform over the workgroup
    if (g >= P.layer.trials * K.heads * fblocks * cblocks) {
        return;
    }
    let cb = g % cblocks;
    let fb = (g / cblocks) % fblocks;
    let th = g / (cblocks * fblocks);   // trial_local * heads + head
    let hd = th % K.heads;
    let t = th / K.heads;
    let f0 = fb * KV_BF;
    let c0 = cb * KV_BC;
    let krow0 = t * K.rows + K.heads * K.seq + hd * K.seq;
    let tx = lid.x;
    let ty = lid.y;
    let with_z = cb == 0u;
    let slot = K.width * (K.dv + 1u);

    // Staging role: token lk of the step, features (columns) 4 lq .. 4 lq + 3 of the block.
    let lk = li >> 4u;
    let lq = li & 15u;
    let sf = f0 + 4u * lq;
    let sc = c0 + 4u * lq;

    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    var z = vec4<f32>(0.0);
    let steps = (K.seq + KV_BT - 1u) / KV_BT;
    for (var st = 0u; st < steps; st = st + 1u) {
        let jt = st * KV_BT;
        if (K.causal != 0u && jt % ATTN_BLOCK == 0u) {
            let base = (th * K.blocks + jt / ATTN_BLOCK) * slot;
            put4(base, f0 + 4u * ty, c0 + 4u * tx, a0);
            put4(base, f0 + 4u * ty + 1u, c0 + 4u * tx, a1);
            put4(base, f0 + 4u * ty + 2u, c0 + 4u * tx, a2);
            put4(base, f0 + 4u * ty + 3u, c0 + 4u * tx, a3);
            if (with_z && tx == 0u) {
                putz(base, f0 + 4u * ty, z);
            }
        }
        let j = jt + lk;
        var kq = vec4<f32>(0.0);
        var vq = vec4<f32>(0.0);
        if (j < K.seq) {
            let kr = (krow0 + j) * K.width;
            if (sf < K.width) { kq.x = phi[kr + sf]; }
            if (sf + 1u < K.width) { kq.y = phi[kr + sf + 1u]; }
            if (sf + 2u < K.width) { kq.z = phi[kr + sf + 2u]; }
            if (sf + 3u < K.width) { kq.w = phi[kr + sf + 3u]; }
            let vr = (hd * K.seq + j) * K.dv;
            if (sc < K.dv) { vq.x = v[vr + sc]; }
            if (sc + 1u < K.dv) { vq.y = v[vr + sc + 1u]; }
            if (sc + 2u < K.dv) { vq.z = v[vr + sc + 2u]; }
            if (sc + 3u < K.dv) { vq.w = v[vr + sc + 3u]; }
        }
        ks[li] = kq;
        vs[li] = vq;
        workgroupBarrier();
        for (var kk = 0u; kk < KV_BT; kk = kk + 1u) {
            let k4 = ks[kk * 16u + ty];
            let v4 = vs[kk * 16u + tx];
            a0 = a0 + k4.x * v4;
            a1 = a1 + k4.y * v4;
            a2 = a2 + k4.z * v4;
            a3 = a3 + k4.w * v4;
            if (with_z) {
                z = z + k4;
            }
        }
        workgroupBarrier();
    }
    if (K.causal == 0u) {
        let base = th * slot;
        put4(base, f0 + 4u * ty, c0 + 4u * tx, a0);
        put4(base, f0 + 4u * ty + 1u, c0 + 4u * tx, a1);
        put4(base, f0 + 4u * ty + 2u, c0 + 4u * tx, a2);
        put4(base, f0 + 4u * ty + 3u, c0 + 4u * tx, a3);
        if (with_z && tx == 0u) {
            putz(base, f0 + 4u * ty, z);
        }
    }
}
