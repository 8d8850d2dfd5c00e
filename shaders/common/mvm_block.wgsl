// The blocked noisy GEMM's shared part, prepended to `mvm` and `mvm_narrow` (which differ only in
// their block shape): the bindings, the staging loads and the epilogue (output noise, ADC,
// saturation flag and count). Both kernels sum every accumulator over k in increasing order, so
// their values are the CPU twin's (src/engine/cpu/mvm.rs) whatever the block.
// Output noise: one Philox block per four consecutive outputs (orow >> 2, all four words used),
// drawn again whenever an output's group changes: two blocks per sample for an invocation's eight
// outputs when the tile's row_start is a multiple of 4, four otherwise.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> tiles: array<TileInfo>;
@group(0) @binding(2) var<storage, read> xq: array<f32>;
@group(0) @binding(3) var<storage, read> weff: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> sat: array<atomic<u32>>;
// How many vectors are flagged (one word).
@group(0) @binding(6) var<storage, read_write> nsat: array<atomic<u32>>;

// Four rows `stride` apart at one column: `nrows` of them exist, the column exists if `kin`.
fn gather_x(idx: u32, stride: u32, nrows: u32, kin: bool) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (kin) {
        if (nrows >= 4u) {
            v = vec4<f32>(xq[idx], xq[idx + stride], xq[idx + 2u * stride], xq[idx + 3u * stride]);
        } else {
            if (nrows > 0u) { v.x = xq[idx]; }
            if (nrows > 1u) { v.y = xq[idx + stride]; }
            if (nrows > 2u) { v.z = xq[idx + 2u * stride]; }
        }
    }
    return v;
}

fn gather_w(idx: u32, stride: u32, nrows: u32, kin: bool) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (kin) {
        if (nrows >= 4u) {
            v = vec4<f32>(weff[idx], weff[idx + stride], weff[idx + 2u * stride], weff[idx + 3u * stride]);
        } else {
            if (nrows > 0u) { v.x = weff[idx]; }
            if (nrows > 1u) { v.y = weff[idx + stride]; }
            if (nrows > 2u) { v.z = weff[idx + 2u * stride]; }
        }
    }
    return v;
}

// Epilogue for one sample row of an invocation: outputs oa .. oa + 3 (values va) and
// oa + gap .. oa + gap + 3 (vb) of tile `tile`.
fn emit_row(s: u32, oa: u32, gap: u32, va: vec4<f32>, vb: vec4<f32>, t: TileInfo, tile: u32, trial_local: u32) {
    let L = P.layer;
    if (s >= L.batch) {
        return;
    }
    let ntiles = L.tiles_in * L.tiles_out;
    let ti = tile % L.tiles_in;
    let trial = L.trial_offset + trial_local;
    let key = vec2<u32>(L.key0, L.key1);
    let yrow = ((trial_local * L.tiles_in + ti) * L.batch + s) * L.n_out;
    var group = 0xFFFFFFFFu;
    var noise = vec4<f32>(0.0);
    var any_sat = false;
    for (var j = 0u; j < 8u; j = j + 1u) {
        let hi = j >= 4u;
        let o = oa + (j & 3u) + select(0u, gap, hi);
        if (o < t.rows) {
            let orow = t.row_start + o;
            var v = select(va[j & 3u], vb[j & 3u], hi);
            if (P.io.out_noise > 0.0) {
                if ((orow >> 2u) != group) {
                    group = orow >> 2u;
                    noise = out_normals(L.vector_offset + s, trial, L.layer, L.t_index, group, ti, 0u, key);
                }
                v = v + P.io.out_noise * noise[orow & 3u];
            }
            let q = quant_out(P.io, v);
            if (P.io.bm_mode == 1u && saturated(P.io, q)) {
                any_sat = true;
            }
            y[yrow + orow] = clamp(q, -P.io.out_bound, P.io.out_bound);
        }
    }
    if (any_sat) {
        let v = (trial_local * L.batch + s) * ntiles + tile;
        if (atomicOr(&sat[v], 1u) == 0u) {
            atomicAdd(&nsat[0], 1u);
        }
    }
}

