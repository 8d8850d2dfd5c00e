// Stage `mvm_full`: `mvm` on the full periphery path (noise-models §7; IR drop, per-read weight
// noise or input noise on). Per (trial, tile) the GEMM Y[s, o] = sum_k x'[s, k] W[o, k], x' the
// quantised inputs plus their input noise (staged with it, a draw per line, tile and pass), and,
// in the same pass over the operands, the three sums the full path needs per output:
//   SA[s, o] = sum_k |W[o, k]| |x'[s, k]|                 IR drop: the column currents
//   SP[s, o] = sum_k W[o, k] x'[s, k] (1 - r_k^2)          IR drop, r_k = 1 - k / cols
//   SQ[s, o] = sum_k |W[o, k]| x'[s, k]^2 (pcm_read)       per-read weight noise
//            or sum_k x'[s, k]^2 (additive constant)
// then the full path's epilogue, as `bound` computes one vector: Y - ir_drop c(a) SP with
// a = cols / ir_g_ratio SA and c(a) = a (a (0.05 a - 0.2) + 0.5), output noise, the weight noise
// w_noise sqrt(SQ) times a normal of its own stream (W_NOISE_GROUP), ADC, saturation flag. Under
// bound management a second pass at level 1 redoes the flagged vectors (`dac` at reduction 2, the
// same protocol as `mvm`: shaders/common/mvm_block.wgsl), and `bound` takes the rest from level 2.
// Before this stage `bound` computed every vector of the full path alone, at about 7 % of the
// case's floor on an H200 (BENCHMARKS.md, case (d)). CPU twin: src/engine/cpu/mvm_full.rs.
//
// Workgroup (x = 64-output block, y = 64-sample block, z = trial_local * n_tiles + tile): 16 x 16
// invocations; one computes 4 samples (4 ty ..) x 4 outputs (4 tx ..) in four sums, sixteen vec4
// accumulators as `mvm`'s 8 x 8 outputs in one. K goes in steps of BK = 8 through workgroup memory,
// double-buffered as in `mvm`: xs[2][BK][RV], ws[2][BK][RV] as vec4 along samples/outputs (8 KiB),
// column q of row k stored at q ^ k. Invocations 0 .. 127 stage samples 4 (li >> 3) .. + 3 at
// k = li & 7, invocations 128 .. 255 the outputs likewise; rows and k past the tile's edge are
// loaded as zeros. Every sum runs over k in increasing order, as the twin's.

const BM: u32 = 64u;           // samples per workgroup
const BN: u32 = 64u;           // outputs per workgroup
const BK: u32 = 8u;            // k per step
const RV: u32 = 16u;           // vec4 per staged row (BM / 4 = BN / 4)
const STAGE: u32 = 128u;       // vec4 per buffer (BK * RV)
var<workgroup> xs: array<vec4<f32>, 256>;   // [2][BK][RV], column swizzled by k
var<workgroup> ws: array<vec4<f32>, 256>;   // [2][BK][RV], column swizzled by k

@compute @workgroup_size(16, 16)
fn mvm_full(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
            @builtin(local_invocation_index) li: u32) {
    let L = P.layer;
    let ntiles = L.tiles_in * L.tiles_out;
    let tile = wg.z % ntiles;
    let trial_local = wg.z / ntiles;
    let t = tiles[tile];
    let o0 = wg.x * BN;
    let s0 = wg.y * BM;
    // Output blocks are sized for the layer's tallest tile; this tile may have none here.
    if (o0 >= t.rows) {
        return;
    }
    if (!block_redoes(s0, BM, tile, trial_local, li)) {
        return;
    }
    let tx = lid.x;
    let ty = lid.y;

    // Staging role: four rows of one operand at k = lk of every K step.
    let lk = li & 7u;
    let lq = (li >> 3u) & 15u;
    let loads_w = li >= 128u;
    let xr = s0 + 4u * lq;
    let wr = o0 + 4u * lq;
    let xn = select(0u, L.batch - xr, xr < L.batch);
    let wn = select(0u, t.rows - wr, wr < t.rows);
    // An input shared by all trials (the first layer) was quantised once, as trial 0.
    let xi = select(0u, trial_local, L.x_per_trial != 0u) * L.batch * L.n_in + xr * L.n_in + t.col_start + lk;
    let wi = trial_local * L.n_out * L.n_in + (t.row_start + select(0u, wr, wn > 0u)) * L.n_in + t.col_start + lk;
    let st = lk * RV + (lq ^ lk);

    let ir = P.io.ir_drop > 0.0;
    let wnoise = P.io.w_noise > 0.0;
    let pcm_read = P.io.w_noise_type == 1u;
    let n_cols = f32(t.cols);
    var y0 = vec4<f32>(0.0);
    var y1 = vec4<f32>(0.0);
    var y2 = vec4<f32>(0.0);
    var y3 = vec4<f32>(0.0);
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    var p0 = vec4<f32>(0.0);
    var p1 = vec4<f32>(0.0);
    var p2 = vec4<f32>(0.0);
    var p3 = vec4<f32>(0.0);
    var q0 = vec4<f32>(0.0);
    var q1 = vec4<f32>(0.0);
    var q2 = vec4<f32>(0.0);
    var q3 = vec4<f32>(0.0);

    let nk = (t.cols + BK - 1u) / BK;
    let trial = L.trial_offset + trial_local;
    let noisy_x = !loads_w && P.io.inp_noise > 0.0;
    var v = stage_operand(loads_w, xi, wi, xn, wn, lk < t.cols);
    if (noisy_x && lk < t.cols) {
        v = v + staged_inp_noise(tile, trial, xr, xn, lk);
    }
    if (loads_w) {
        ws[st] = v;
    } else {
        xs[st] = v;
    }
    workgroupBarrier();
    for (var kt = 0u; kt < nk; kt = kt + 1u) {
        let cur = (kt & 1u) * STAGE;
        let more = kt + 1u < nk;
        if (more) {
            let k = (kt + 1u) * BK;
            v = stage_operand(loads_w, xi + k, wi + k, xn, wn, k + lk < t.cols);
            if (noisy_x && k + lk < t.cols) {
                v = v + staged_inp_noise(tile, trial, xr, xn, k + lk);
            }
        }
        for (var kk = 0u; kk < BK; kk = kk + 1u) {
            let row = cur + kk * RV;
            let xa = xs[row + (ty ^ kk)];
            let wa = ws[row + (tx ^ kk)];
            // The products W x' of the four samples, shared by Y and SP.
            let m0 = wa * xa.x;
            let m1 = wa * xa.y;
            let m2 = wa * xa.z;
            let m3 = wa * xa.w;
            y0 = y0 + m0;
            y1 = y1 + m1;
            y2 = y2 + m2;
            y3 = y3 + m3;
            let aw = abs(wa);
            if (ir) {
                let r = 1.0 - f32(kt * BK + kk) / n_cols;
                let f = 1.0 - r * r;
                a0 = a0 + aw * abs(xa.x);
                a1 = a1 + aw * abs(xa.y);
                a2 = a2 + aw * abs(xa.z);
                a3 = a3 + aw * abs(xa.w);
                p0 = p0 + m0 * f;
                p1 = p1 + m1 * f;
                p2 = p2 + m2 * f;
                p3 = p3 + m3 * f;
            }
            if (wnoise) {
                let x2 = xa * xa;
                q0 = q0 + select(vec4<f32>(x2.x), aw * x2.x, pcm_read);
                q1 = q1 + select(vec4<f32>(x2.y), aw * x2.y, pcm_read);
                q2 = q2 + select(vec4<f32>(x2.z), aw * x2.z, pcm_read);
                q3 = q3 + select(vec4<f32>(x2.w), aw * x2.w, pcm_read);
            }
        }
        if (more) {
            let nxt = STAGE - cur;
            if (loads_w) {
                ws[nxt + st] = v;
            } else {
                xs[nxt + st] = v;
            }
        }
        workgroupBarrier();
    }

    let oa = o0 + 4u * tx;
    let sa = s0 + 4u * ty;
    emit_full(sa, oa, y0, a0, p0, q0, t, tile, trial_local);
    emit_full(sa + 1u, oa, y1, a1, p1, q1, t, tile, trial_local);
    emit_full(sa + 2u, oa, y2, a2, p2, q2, t, tile, trial_local);
    emit_full(sa + 3u, oa, y3, a3, p3, q3, t, tile, trial_local);
}

// One staging load: four sample rows of the inputs, or four output rows of the weights.
fn stage_operand(loads_w: bool, xi: u32, wi: u32, xn: u32, wn: u32, kin: bool) -> vec4<f32> {
    let L = P.layer;
    if (loads_w) {
        return gather_w(wi, L.n_in, wn, kin);
    }
    return gather_x(xi, L.n_in, xn, kin);
}

// The input noise of the four staged samples xr .. xr + 3 (the first xn of them exist) on input
// line k of the tile; the bound-management pass is the level.
fn staged_inp_noise(tile: u32, trial: u32, xr: u32, xn: u32, k: u32) -> vec4<f32> {
    let L = P.layer;
    var n = vec4<f32>(0.0);
    if (xn > 0u) { n.x = inp_noise_line(L, P.io, tile, trial, xr, L.bm_pass, k); }
    if (xn > 1u) { n.y = inp_noise_line(L, P.io, tile, trial, xr + 1u, L.bm_pass, k); }
    if (xn > 2u) { n.z = inp_noise_line(L, P.io, tile, trial, xr + 2u, L.bm_pass, k); }
    if (xn > 3u) { n.w = inp_noise_line(L, P.io, tile, trial, xr + 3u, L.bm_pass, k); }
    return n;
}

// The full path's epilogue for one sample: outputs oa .. oa + 3 of tile `tile` from their four
// sums (the same operations, in the same order, as `bound` and the twins).
fn emit_full(s: u32, oa: u32, acc: vec4<f32>, sa: vec4<f32>, sp: vec4<f32>, sq: vec4<f32>, t: TileInfo, tile: u32, trial_local: u32) {
    let L = P.layer;
    if (s >= L.batch) {
        return;
    }
    let ntiles = L.tiles_in * L.tiles_out;
    let ti = tile % L.tiles_in;
    let trial = L.trial_offset + trial_local;
    let key = vec2<u32>(L.key0, L.key1);
    let v = (trial_local * L.batch + s) * ntiles + tile;
    let level = L.bm_pass;
    if (!writes_vector(v, oa)) {
        return;
    }
    let yrow = ((trial_local * L.tiles_in + ti) * L.batch + s) * L.n_out;
    let n_cols = f32(t.cols);
    var group = 0xFFFFFFFFu;
    var nz = vec4<f32>(0.0);
    var nw = vec4<f32>(0.0);
    var any_sat = false;
    for (var j = 0u; j < 4u; j = j + 1u) {
        let o = oa + j;
        if (o < t.rows) {
            let orow = t.row_start + o;
            if ((orow >> 2u) != group) {
                group = orow >> 2u;
                if (P.io.out_noise > 0.0) {
                    nz = out_normals(L.vector_offset + s, trial, L.layer, L.t_index, group, ti, level, key);
                }
                if (P.io.w_noise > 0.0) {
                    nw = out_normals(L.vector_offset + s, trial, L.layer, L.t_index, group | W_NOISE_GROUP, ti, level, key);
                }
            }
            var yv = acc[j];
            if (P.io.ir_drop > 0.0) {
                let a = n_cols / P.io.ir_g_ratio * sa[j];
                let c = a * (a * (0.05 * a - 0.2) + 0.5);
                yv = yv - P.io.ir_drop * c * sp[j];
            }
            var wstd = 0.0;
            if (P.io.w_noise > 0.0) {
                wstd = P.io.w_noise * sqrt(sq[j]);
            }
            if (P.io.out_noise > 0.0) {
                yv = yv + P.io.out_noise * nz[orow & 3u];
            }
            if (wstd > 0.0) {
                yv = yv + wstd * nw[orow & 3u];
            }
            let q = quant_out(P.io, yv);
            if (saturated(P.io, q)) {
                any_sat = true;
            }
            y[yrow + orow] = clamp(q, -P.io.out_bound, P.io.out_bound);
        }
    }
    flag_saturated(v, level, any_sat);
}
