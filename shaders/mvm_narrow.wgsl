// Stage `mvm_narrow`: `mvm` for layers whose tiles have at most 32 outputs (a convolution's
// channels, a classifier's last layer) and many samples (see `plan::mvm_block`). The same GEMM Y[s, o] = sum_k x'[s, k] W_eff[o, k] per
// (trial, tile) with the same epilogue (shaders/common/mvm_block.wgsl), in a block of 256 samples
// x 32 outputs: `mvm`'s 128 x 128 block computes 16 times the useful work for a tile of 8 outputs,
// while such layers have samples (or output pixels) to spare. The kernel handles any number of
// 32-output blocks, though the plan sends it one.
// CPU twin: src/engine/cpu/mvm_narrow.rs (the `mvm` twin: every accumulator sums over k in
// increasing order, so the values do not depend on the block).
//
// Workgroup (x = 32-output block, y = 256-sample block, z = trial_local * n_tiles + tile): 4 x 64
// invocations. One invocation computes 4 samples x 8 outputs in eight vec4 accumulators: samples
// 4 ty .. 4 ty + 3, outputs 4 tx .. 4 tx + 3 and 16 + 4 tx .. 16 + 4 tx + 3 of the block; each k
// costs 3 vec4 reads of workgroup memory for 32 FMAs. K goes in steps of BK = 4, double-buffered
// as in `mvm`: xs[2][BK][64 vec4] (8 KB), ws[2][BK][8 vec4] (1 KB), vec4 column q of row k stored
// at q ^ k. Staging: invocation li loads samples 4 (li >> 2) .. + 3 at k = li & 3; the first 32
// invocations also load outputs 4 (li >> 2) .. + 3 at k = li & 3. Rows and k past the tile's edge
// are loaded as zeros.

const BM: u32 = 256u;          // samples per workgroup
const BN: u32 = 32u;           // outputs per workgroup
const BK: u32 = 4u;            // k per step
const RVX: u32 = 64u;          // vec4 per staged sample row (BM / 4)
const RVW: u32 = 8u;           // vec4 per staged output row (BN / 4)
var<workgroup> xs: array<vec4<f32>, 512>;   // [2][BK][RVX], column swizzled by k
var<workgroup> ws: array<vec4<f32>, 64>;    // [2][BK][RVW], column swizzled by k

@compute @workgroup_size(4, 64)
fn mvm_narrow(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
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

    // Staging role: sample rows 4 lq .. 4 lq + 3 at k = lk; output rows too for lq < RVW.
    let lk = li & 3u;
    let lq = li >> 2u;
    let xr = s0 + 4u * lq;
    let xn = select(0u, L.batch - xr, xr < L.batch);
    // An input shared by all trials (the first layer) was quantised once, as trial 0.
    let xi = select(0u, trial_local, L.x_per_trial != 0u) * L.batch * L.n_in + xr * L.n_in + t.col_start + lk;
    let stx = lk * RVX + (lq ^ lk);
    let loads_w = lq < RVW;
    let wr = o0 + 4u * lq;
    let wn = select(0u, t.rows - wr, loads_w && wr < t.rows);
    let wi = trial_local * L.n_out * L.n_in + (t.row_start + select(0u, wr, loads_w)) * L.n_in + t.col_start + lk;
    let stw = lk * RVW + ((lq & (RVW - 1u)) ^ lk);

    var c0a = vec4<f32>(0.0);
    var c0b = vec4<f32>(0.0);
    var c1a = vec4<f32>(0.0);
    var c1b = vec4<f32>(0.0);
    var c2a = vec4<f32>(0.0);
    var c2b = vec4<f32>(0.0);
    var c3a = vec4<f32>(0.0);
    var c3b = vec4<f32>(0.0);

    let nk = (t.cols + BK - 1u) / BK;
    var vx = gather_x(xi, L.n_in, xn, lk < t.cols);
    var vw = gather_w(wi, L.n_in, wn, lk < t.cols);
    xs[stx] = vx;
    if (loads_w) {
        ws[stw] = vw;
    }
    workgroupBarrier();
    for (var kt = 0u; kt < nk; kt = kt + 1u) {
        let curx = (kt & 1u) * (BK * RVX);
        let curw = (kt & 1u) * (BK * RVW);
        let more = kt + 1u < nk;
        if (more) {
            let k = (kt + 1u) * BK;
            vx = gather_x(xi + k, L.n_in, xn, k + lk < t.cols);
            vw = gather_w(wi + k, L.n_in, wn, k + lk < t.cols);
        }
        for (var kk = 0u; kk < BK; kk = kk + 1u) {
            let xa = xs[curx + kk * RVX + (ty ^ kk)];
            let wa = ws[curw + kk * RVW + (tx ^ kk)];
            let wb = ws[curw + kk * RVW + ((4u + tx) ^ kk)];
            c0a = c0a + xa.x * wa;
            c0b = c0b + xa.x * wb;
            c1a = c1a + xa.y * wa;
            c1b = c1b + xa.y * wb;
            c2a = c2a + xa.z * wa;
            c2b = c2b + xa.z * wb;
            c3a = c3a + xa.w * wa;
            c3b = c3b + xa.w * wb;
        }
        if (more) {
            xs[BK * RVX - curx + stx] = vx;
            if (loads_w) {
                ws[BK * RVW - curw + stw] = vw;
            }
        }
        workgroupBarrier();
    }

    let oa = o0 + 4u * tx;
    let sa = s0 + 4u * ty;
    emit_row(sa, oa, 16u, c0a, c0b, t, tile, trial_local);
    emit_row(sa + 1u, oa, 16u, c1a, c1b, t, tile, trial_local);
    emit_row(sa + 2u, oa, 16u, c2a, c2b, t, tile, trial_local);
    emit_row(sa + 3u, oa, 16u, c3a, c3b, t, tile, trial_local);
}
