// Stage `attention_out`: linear attention's output for token i of one head,
// Â_i = (Q′_i·S) / (Q′_i·z) (kernel-attention spec §3), against the exact softmax attention A_i:
// Σ_c (A_ic − Â_ic)² into slot [t_index][trial][head·seq + i] of `partial` (the host sums a
// trial's slots in f64 and divides by ‖A‖²). Causal: S and z are `attention_kv`'s prefix before
// i's block plus the block's tokens j ≤ i, weighted by a_ij = Q′_i·K′_j.
// CPU twin: src/engine/cpu/attention_out.rs.
//
// A tiled GEMM like `mvm`: one workgroup of 16 × 16 invocations per (trial, head, block of
// ATTN_BLOCK tokens) and 64-column block of V (usually the only one). Features go in steps of
// OUT_BK through workgroup memory: the block's Q′ rows and (causal) K′ rows as vec4 along tokens,
// S's rows as vec4 along columns, z. Invocation (tx, ty) accumulates tokens i = 4 ty .. 4 ty + 3
// × columns 4 tx .. 4 tx + 3 of Q′S, the four denominators Q′_i·z and (causal) the block's
// weights a_ij for keys j = 4 tx .. 4 tx + 3 (zero for j > i). The weights then go through
// workgroup memory (the staging space, reused) so that each invocation adds Σ_j a_ij V_jc and
// Σ_j a_ij to its numerators and denominators, as the twin does: features in order, then the
// block's keys in order. The squared errors of a token's columns are summed over the 16
// invocations of its row. Tokens, features and columns past the edges load as zeros.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> phi: array<f32>;
@group(0) @binding(2) var<storage, read> kv: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> exact: array<f32>;
@group(0) @binding(5) var<storage, read_write> partial: array<f32>;

const ATTN_BLOCK: u32 = 64u;
const OUT_BC: u32 = 64u;       // V columns per pass
const OUT_BK: u32 = 8u;        // features per step
// Staging: Q′ [0, 128), K′ [128, 256) as [OUT_BK][16] vec4 along tokens, S [256, 384) as
// [OUT_BK][16] vec4 along columns, z [384, 392) (splat); after the feature loop the causal
// weights [key][16] vec4 along queries fill all 1024; at the end the row sums of the errors.
// 1024 vec4 = 16384 bytes, WebGPU's default limit.
var<workgroup> sh: array<vec4<f32>, 1024>;

// Four scalars of Φ (rows r .. r + 3 of `width`, column f), zero past `rows_left` or the width.
fn phi4(r: u32, f: u32, rows_left: u32) -> vec4<f32> {
    let W = P.kern.width;
    var o = vec4<f32>(0.0);
    if (f < W) {
        if (rows_left > 0u) { o.x = phi[r * W + f]; }
        if (rows_left > 1u) { o.y = phi[(r + 1u) * W + f]; }
        if (rows_left > 2u) { o.z = phi[(r + 2u) * W + f]; }
        if (rows_left > 3u) { o.w = phi[(r + 3u) * W + f]; }
    }
    return o;
}

// Four consecutive scalars of a row of S (`kv4`) or of V (`v4`), zero past `cols_left`.
fn kv4(o: u32, cols_left: u32) -> vec4<f32> {
    var r = vec4<f32>(0.0);
    if (cols_left > 0u) { r.x = kv[o]; }
    if (cols_left > 1u) { r.y = kv[o + 1u]; }
    if (cols_left > 2u) { r.z = kv[o + 2u]; }
    if (cols_left > 3u) { r.w = kv[o + 3u]; }
    return r;
}

fn v4(o: u32, cols_left: u32) -> vec4<f32> {
    var r = vec4<f32>(0.0);
    if (cols_left > 0u) { r.x = v[o]; }
    if (cols_left > 1u) { r.y = v[o + 1u]; }
    if (cols_left > 2u) { r.z = v[o + 2u]; }
    if (cols_left > 3u) { r.w = v[o + 3u]; }
    return r;
}

// Σ over the four columns of (exact − num/den)², columns past dv and tokens past seq give 0.
fn sq_err(i: u32, c: u32, hd: u32, num: vec4<f32>, den: f32) -> f32 {
    let K = P.kern;
    if (i >= K.seq) {
        return 0.0;
    }
    let o = (hd * K.seq + i) * K.dv + c;
    var s = 0.0;
    for (var q = 0u; q < 4u; q = q + 1u) {
        if (c + q < K.dv) {
            let e = exact[o + q] - num[q] / den;
            s = s + e * e;
        }
    }
    return s;
}

@compute @workgroup_size(16, 16)
fn attention_out(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let K = P.kern;
    let iblocks = (K.seq + ATTN_BLOCK - 1u) / ATTN_BLOCK;
    let g = wid.x + wid.y * nwg.x;   // uniform over the workgroup
    if (g >= P.layer.trials * K.heads * iblocks) {
        return;
    }
    let b = g % iblocks;
    let th = g / iblocks;   // trial_local * heads + head
    let hd = th % K.heads;
    let t = th / K.heads;
    let cols = K.dv + 1u;
    let causal = K.causal != 0u;
    let i0 = b * ATTN_BLOCK;
    let kvo = (th * K.blocks + select(0u, b, causal)) * K.width * cols;
    let qrow0 = t * K.rows + hd * K.seq + i0;
    let krow0 = t * K.rows + K.heads * K.seq + hd * K.seq + i0;
    let tok_left = K.seq - i0;
    let tx = lid.x;
    let ty = lid.y;
    let cblocks = max((K.dv + OUT_BC - 1u) / OUT_BC, 1u);
    let nk = (K.width + OUT_BK - 1u) / OUT_BK;

    // Staging roles: invocations 0..127 load Q′ (4 tokens at one feature) and 4 columns of S;
    // 128..255 load K′ (4 keys at one feature) and the first 8 load z.
    let low = li < 128u;
    let sl = li & 127u;
    let sk = sl & 7u;            // feature within the step (Φ)
    let sr = 4u * (sl >> 3u);    // first token of the four (Φ)
    let srow = select(krow0, qrow0, low) + sr;
    let srows = select(0u, tok_left - sr, sr < tok_left);
    let ck = sl >> 4u;           // feature within the step (S)
    let cq = 4u * (sl & 15u);    // first column of the four (S)

    var err = vec4<f32>(0.0);
    for (var cb = 0u; cb < cblocks; cb = cb + 1u) {
        let c0 = cb * OUT_BC;
        let ccols = select(0u, K.dv - (c0 + cq), c0 + cq < K.dv);
        var n0 = vec4<f32>(0.0);
        var n1 = vec4<f32>(0.0);
        var n2 = vec4<f32>(0.0);
        var n3 = vec4<f32>(0.0);
        var a0 = vec4<f32>(0.0);
        var a1 = vec4<f32>(0.0);
        var a2 = vec4<f32>(0.0);
        var a3 = vec4<f32>(0.0);
        var den = vec4<f32>(0.0);
        for (var kt = 0u; kt < nk; kt = kt + 1u) {
            let f0 = kt * OUT_BK;
            if (low) {
                sh[sk * 16u + (sr >> 2u)] = phi4(srow, f0 + sk, srows);
                let f = f0 + ck;
                var s = vec4<f32>(0.0);
                if (f < K.width) {
                    s = kv4(kvo + f * cols + c0 + cq, ccols);
                }
                sh[256u + ck * 16u + (cq >> 2u)] = s;
            } else {
                if (causal) {
                    sh[128u + sk * 16u + (sr >> 2u)] = phi4(srow, f0 + sk, srows);
                }
                if (sl < OUT_BK) {
                    var z = 0.0;
                    if (f0 + sl < K.width) {
                        z = kv[kvo + (f0 + sl) * cols + K.dv];
                    }
                    sh[384u + sl] = vec4<f32>(z);
                }
            }
            workgroupBarrier();
            for (var kk = 0u; kk < OUT_BK; kk = kk + 1u) {
                let q4 = sh[kk * 16u + ty];
                let s4 = sh[256u + kk * 16u + tx];
                n0 = n0 + q4.x * s4;
                n1 = n1 + q4.y * s4;
                n2 = n2 + q4.z * s4;
                n3 = n3 + q4.w * s4;
                den = den + q4 * sh[384u + kk].x;
                if (causal) {
                    let k4 = sh[128u + kk * 16u + tx];
                    a0 = a0 + q4.x * k4;
                    a1 = a1 + q4.y * k4;
                    a2 = a2 + q4.z * k4;
                    a3 = a3 + q4.w * k4;
                }
            }
            workgroupBarrier();
        }
        if (causal) {
            // Weights to workgroup memory as [key][query vec4], zero for keys after the query.
            let ia = 4u * ty;
            for (var q = 0u; q < 4u; q = q + 1u) {
                let j = 4u * tx + q;
                let w = vec4<f32>(a0[q], a1[q], a2[q], a3[q]);
                let keep = vec4<bool>(j <= ia, j <= ia + 1u, j <= ia + 2u, j <= ia + 3u);
                sh[j * 16u + ty] = select(vec4<f32>(0.0), w, keep);
            }
            workgroupBarrier();
            let keys = min(ATTN_BLOCK, tok_left);
            for (var l = 0u; l < ATTN_BLOCK; l = l + 1u) {
                den = den + sh[l * 16u + ty];
            }
            for (var l = 0u; l < keys; l = l + 1u) {
                let w = sh[l * 16u + ty];
                let v4r = v4((hd * K.seq + i0 + l) * K.dv + c0 + 4u * tx, select(0u, K.dv - (c0 + 4u * tx), c0 + 4u * tx < K.dv));
                n0 = n0 + w.x * v4r;
                n1 = n1 + w.y * v4r;
                n2 = n2 + w.z * v4r;
                n3 = n3 + w.w * v4r;
            }
            workgroupBarrier();
        }
        let ir = i0 + 4u * ty;
        let c = c0 + 4u * tx;
        err = err + vec4<f32>(sq_err(ir, c, hd, n0, den.x), sq_err(ir + 1u, c, hd, n1, den.y), sq_err(ir + 2u, c, hd, n2, den.z), sq_err(ir + 3u, c, hd, n3, den.w));
    }
    // Row sums over the 16 invocations that share the tokens.
    sh[ty * 16u + tx] = err;
    workgroupBarrier();
    if (tx == 0u) {
        var s = vec4<f32>(0.0);
        for (var l = 0u; l < 16u; l = l + 1u) {
            s = s + sh[ty * 16u + l];
        }
        let o = (P.layer.t_index * P.layer.trials + t) * K.heads * K.seq + hd * K.seq + i0 + 4u * ty;
        for (var q = 0u; q < 4u; q = q + 1u) {
            if (4u * ty + q < tok_left) {
                partial[o + q] = s[q];
            }
        }
    }
}
