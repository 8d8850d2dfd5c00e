// Stage `mvm`: batched noisy MVMs of one layer, all trials at once: for each (trial, tile) the
// GEMM Y[s, o] = sum_k x'[s, k] W_eff[o, k] over the tile's inputs, with the periphery in the
// epilogue: output noise, ADC, and a saturation flag per vector for iterative bound management;
// the first workgroup to flag a vector counts it in `nsat`, so `bound` returns at once when
// nothing saturated and otherwise redoes the flagged vectors. CPU twin: src/engine/cpu/mvm.rs.
//
// Workgroup (x = 128-output block, y = 128-sample block, z = trial_local * n_tiles + tile): a
// 128 x 128 block of Y, 16 x 16 invocations. One invocation computes 8 samples x 8 outputs in
// sixteen vec4 accumulators (no dynamically indexed private arrays, which some compilers spill):
// samples 4 ty .. 4 ty + 3 and 64 + 4 ty .. 64 + 4 ty + 3, outputs 4 tx .. 4 tx + 3 and
// 64 + 4 tx .. 64 + 4 tx + 3 of the block. The two groups of four sit 64 apart so that a
// subgroup's vec4 reads of workgroup memory are contiguous (no bank conflicts) and its y stores
// cover 64 consecutive outputs. Each k step costs 4 vec4 reads for 64 FMAs.
//
// K goes in steps of BK = 8 through workgroup memory, k-major: xs[buf][k][sample], ws[buf][k][output],
// as vec4 along samples/outputs, double-buffered (tile k + 1 is read from global memory into
// registers before tile k is computed and stored into the other buffer after it: one barrier per
// step). 2 buffers x 2 operands x 8 x 128 x 4 bytes = 16384 bytes, exactly WebGPU's default
// limit, so there is no room for padding; bank conflicts are avoided by a swizzle instead: vec4
// column q of row k is stored at q ^ k. Staging: invocation li loads rows 4 (li >> 3) .. + 3 at
// k = li & 7 of each operand (4 scalars: the buffers are array<f32>; a subgroup's loads cover 32
// contiguous bytes of each of 16 rows) and stores them as one whole vec4 (no concurrent writes
// to components of one vector), so each quarter subgroup's 8 stores land in 8 different bank
// groups; the inner loop reads row k at q ^ k, which permutes a contiguous range and keeps its
// reads conflict-free. Rows and k past the tile's edge (ragged batch, rows or cols; any
// col_start) are loaded as zeros.
//
// Each accumulator sums over k in increasing order, so the result is independent of the tiling.
// Bindings, staging loads and the epilogue: shaders/common/mvm_block.wgsl. Layers whose tiles
// have at most 32 outputs and many samples run `mvm_narrow` instead (a 256-sample x 32-output
// block; see `plan::mvm_block`).

const BM: u32 = 128u;          // samples per workgroup
const BN: u32 = 128u;          // outputs per workgroup
const BK: u32 = 8u;            // k per step
const RV: u32 = 32u;           // vec4 per staged row (BM / 4 = BN / 4)
const STAGE: u32 = 256u;       // vec4 per buffer (BK * RV)
var<workgroup> xs: array<vec4<f32>, 512>;   // [2][BK][RV], column swizzled by k
var<workgroup> ws: array<vec4<f32>, 512>;   // [2][BK][RV], column swizzled by k

@compute @workgroup_size(16, 16)
fn mvm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
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

    // Staging role: rows 4 lq .. 4 lq + 3 of each operand at k = lk of every K step.
    let lk = li & 7u;
    let lq = li >> 3u;
    let xr = s0 + 4u * lq;
    let wr = o0 + 4u * lq;
    let xn = select(0u, L.batch - xr, xr < L.batch);
    let wn = select(0u, t.rows - wr, wr < t.rows);
    // An input shared by all trials (the first layer) was quantised once, as trial 0.
    let xi = select(0u, trial_local, L.x_per_trial != 0u) * L.batch * L.n_in + xr * L.n_in + t.col_start + lk;
    let wi = trial_local * L.n_out * L.n_in + (t.row_start + wr) * L.n_in + t.col_start + lk;
    let st = lk * RV + (lq ^ lk);

    var c0a = vec4<f32>(0.0);
    var c0b = vec4<f32>(0.0);
    var c1a = vec4<f32>(0.0);
    var c1b = vec4<f32>(0.0);
    var c2a = vec4<f32>(0.0);
    var c2b = vec4<f32>(0.0);
    var c3a = vec4<f32>(0.0);
    var c3b = vec4<f32>(0.0);
    var c4a = vec4<f32>(0.0);
    var c4b = vec4<f32>(0.0);
    var c5a = vec4<f32>(0.0);
    var c5b = vec4<f32>(0.0);
    var c6a = vec4<f32>(0.0);
    var c6b = vec4<f32>(0.0);
    var c7a = vec4<f32>(0.0);
    var c7b = vec4<f32>(0.0);

    let nk = (t.cols + BK - 1u) / BK;
    var vx = gather_x(xi, L.n_in, xn, lk < t.cols);
    var vw = gather_w(wi, L.n_in, wn, lk < t.cols);
    xs[st] = vx;
    ws[st] = vw;
    workgroupBarrier();
    for (var kt = 0u; kt < nk; kt = kt + 1u) {
        let cur = (kt & 1u) * STAGE;
        let more = kt + 1u < nk;
        if (more) {
            let k = (kt + 1u) * BK;
            vx = gather_x(xi + k, L.n_in, xn, k + lk < t.cols);
            vw = gather_w(wi + k, L.n_in, wn, k + lk < t.cols);
        }
        for (var kk = 0u; kk < BK; kk = kk + 1u) {
            let row = cur + kk * RV;
            let xa = xs[row + (ty ^ kk)];
            let xb = xs[row + ((16u + ty) ^ kk)];
            let wa = ws[row + (tx ^ kk)];
            let wb = ws[row + ((16u + tx) ^ kk)];
            c0a = c0a + xa.x * wa;
            c0b = c0b + xa.x * wb;
            c1a = c1a + xa.y * wa;
            c1b = c1b + xa.y * wb;
            c2a = c2a + xa.z * wa;
            c2b = c2b + xa.z * wb;
            c3a = c3a + xa.w * wa;
            c3b = c3b + xa.w * wb;
            c4a = c4a + xb.x * wa;
            c4b = c4b + xb.x * wb;
            c5a = c5a + xb.y * wa;
            c5b = c5b + xb.y * wb;
            c6a = c6a + xb.z * wa;
            c6b = c6b + xb.z * wb;
            c7a = c7a + xb.w * wa;
            c7b = c7b + xb.w * wb;
        }
        if (more) {
            let nxt = STAGE - cur;
            xs[nxt + st] = vx;
            ws[nxt + st] = vw;
        }
        workgroupBarrier();
    }

    let oa = o0 + 4u * tx;
    let sa = s0 + 4u * ty;
    let sb = sa + 64u;
    emit_row(sa, oa, 64u, c0a, c0b, t, tile, trial_local);
    emit_row(sa + 1u, oa, 64u, c1a, c1b, t, tile, trial_local);
    emit_row(sa + 2u, oa, 64u, c2a, c2b, t, tile, trial_local);
    emit_row(sa + 3u, oa, 64u, c3a, c3b, t, tile, trial_local);
    emit_row(sb, oa, 64u, c4a, c4b, t, tile, trial_local);
    emit_row(sb + 1u, oa, 64u, c5a, c5b, t, tile, trial_local);
    emit_row(sb + 2u, oa, 64u, c6a, c6b, t, tile, trial_local);
    emit_row(sb + 3u, oa, 64u, c7a, c7b, t, tile, trial_local);
}
