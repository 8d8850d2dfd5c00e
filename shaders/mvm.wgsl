// Stage `mvm`: batched noisy MVMs of one layer, all trials at once: for each (trial, tile) the
// GEMM Y[s, o] = sum_k x'[s, k] W_eff[o, k] over the tile's inputs, workgroup-tiled (64 samples x
// 64 outputs per workgroup, 16 x 16 invocations with 4 x 4 outputs each, K in steps of 16
// through workgroup memory), with the periphery in the epilogue: output noise, ADC, and a
// saturation flag per vector for iterative bound management (redone by `bound`). One Philox
// block gives the output noise of four consecutive outputs (all four words used).
// Each accumulator sums over k in increasing order, so the result is independent of the tiling.
// workgroup (x = 64-output block, y = 64-sample block, z = trial_local * n_tiles + tile).
// CPU twin: src/engine/cpu/mvm.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> tiles: array<TileInfo>;
@group(0) @binding(2) var<storage, read> xq: array<f32>;
@group(0) @binding(3) var<storage, read> weff: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> sat: array<atomic<u32>>;

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;
var<workgroup> xs: array<f32, 1024>;   // [BK][BM]
var<workgroup> ws: array<f32, 1024>;   // [BK][BN]

@compute @workgroup_size(16, 16)
fn mvm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
       @builtin(local_invocation_index) li: u32) {
    let L = P.layer;
    let ntiles = L.tiles_in * L.tiles_out;
    let tile = wg.z % ntiles;
    let trial_local = wg.z / ntiles;
    let ti = tile % L.tiles_in;
    let t = tiles[tile];
    let o0 = wg.x * BN;
    let s0 = wg.y * BM;
    let xbase = trial_local * L.batch * L.n_in + t.col_start;
    let wbase = trial_local * L.n_out * L.n_in + t.row_start * L.n_in + t.col_start;
    // One vec4 accumulator per sample row: 4 samples x 4 outputs per invocation, no dynamic
    // indexing of private arrays (which some compilers spill to memory).
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < t.cols; k0 = k0 + BK) {
        // Consecutive invocations read consecutive k: coalesced loads.
        for (var i = li; i < BK * BM; i = i + 256u) {
            let kk = i % BK;
            let m = i / BK;
            var xv = 0.0;
            if (k0 + kk < t.cols && s0 + m < L.batch) {
                xv = xq[xbase + (s0 + m) * L.n_in + k0 + kk];
            }
            xs[kk * BM + m] = xv;
            var wv = 0.0;
            if (k0 + kk < t.cols && o0 + m < t.rows) {
                wv = weff[wbase + (o0 + m) * L.n_in + k0 + kk];
            }
            ws[kk * BN + m] = wv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk = kk + 1u) {
            let xb = kk * BM + lid.y * 4u;
            let wb = kk * BN + lid.x * 4u;
            let x4 = vec4<f32>(xs[xb], xs[xb + 1u], xs[xb + 2u], xs[xb + 3u]);
            let w4 = vec4<f32>(ws[wb], ws[wb + 1u], ws[wb + 2u], ws[wb + 3u]);
            a0 = a0 + x4.x * w4;
            a1 = a1 + x4.y * w4;
            a2 = a2 + x4.z * w4;
            a3 = a3 + x4.w * w4;
        }
        workgroupBarrier();
    }
    let trial = L.trial_offset + trial_local;
    let key = vec2<u32>(L.key0, L.key1);
    for (var i = 0u; i < 4u; i = i + 1u) {
        let s = s0 + lid.y * 4u + i;
        let row = select(select(select(a3, a2, i == 2u), a1, i == 1u), a0, i == 0u);
        // One Philox block gives the noise of four consecutive outputs (a tile that starts off a
        // multiple of 4 needs a second block for the last ones).
        var group = 0xFFFFFFFFu;
        var noise = vec4<f32>(0.0);
        for (var j = 0u; j < 4u; j = j + 1u) {
            let o = o0 + lid.x * 4u + j;
            if (s < L.batch && o < t.rows) {
                let orow = t.row_start + o;
                var v = row[j];
                if (P.io.out_noise > 0.0) {
                    if ((orow >> 2u) != group) {
                        group = orow >> 2u;
                        noise = out_normals(s, trial, L.layer, L.t_index, group, ti, 0u, key);
                    }
                    v = v + P.io.out_noise * noise[orow & 3u];
                }
                if (P.io.bm_mode == 1u && saturated(P.io, v)) {
                    atomicOr(&sat[(trial_local * L.batch + s) * ntiles + tile], 1u);
                }
                y[((trial_local * L.tiles_in + ti) * L.batch + s) * L.n_out + orow] = adc(P.io, v);
            }
        }
    }
}
