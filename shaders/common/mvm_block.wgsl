// The blocked noisy GEMM's shared part, prepended to `mvm`, `mvm_narrow` (which differ only in
// their block shape) and `mvm_full` (the full periphery path's sums and epilogue): the bindings,
// the staging loads, the level-1 pass's block test and the epilogue (output noise, ADC,
// saturation flag and count). Under bound management each kernel runs twice per layer: the first
// read of every vector (bm_pass 0), then, when enough vectors saturated (`redo_in_gemm`), the redo
// of the flagged ones at level 1 (bm_pass 1, inputs from `dac` at reduction 2), which skips sample
// blocks with no flagged vector; `bound` takes what still saturates. Every accumulator sums over k
// in increasing order, so the values are the CPU twins' (src/engine/cpu/mvm.rs, mvm_full.rs)
// whatever the block.
// Output noise: one Philox block per four consecutive outputs (orow >> 2, all four words used),
// drawn again whenever an output's group changes: two blocks per sample for an invocation's eight
// outputs when the tile's row_start is a multiple of 4, four otherwise.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> tiles: array<TileInfo>;
@group(0) @binding(2) var<storage, read> xq: array<f32>;
@group(0) @binding(3) var<storage, read> weff: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> sat: array<atomic<u32>>;
// How many vectors are flagged: [0] at level 0, [1] again at level 1.
@group(0) @binding(6) var<storage, read_write> nsat: array<atomic<u32>>;
// Final bound-management level per vector: the level-1 pass writes 1 for every vector it redoes
// (`bound` overwrites those it takes further).
@group(0) @binding(7) var<storage, read_write> bm_level: array<u32>;

// The level-1 pass (L.bm_pass = 1) redoes only the vectors flagged at level 0, and nothing when
// too few were flagged for a GEMM pass to pay (`redo_in_gemm`: `bound` redoes them). Whether any
// of samples s0 .. s0 + bm - 1 of this (trial, tile) is to be redone, uniformly over the
// workgroup of 256 invocations (the first pass: always true). The flags meet in a max-reduction
// over the first 256 entries of the kernel's staging buffer `xs`, unused until the GEMM starts
// (`mvm`'s workgroup memory is exactly WebGPU's default 16 KiB: no room for another variable).
fn block_redoes(s0: u32, bm: u32, tile: u32, trial_local: u32, li: u32) -> bool {
    let L = P.layer;
    if (L.bm_pass == 0u) {
        return true;
    }
    // Whether the pass runs at all, first (one barrier when it does not, the usual case).
    if (li == 0u) {
        xs[0] = vec4<f32>(select(0.0, 1.0, redo_in_gemm(L, atomicLoad(&nsat[0]))));
    }
    if (workgroupUniformLoad(&xs[0]).x == 0.0) {
        return false;
    }
    workgroupBarrier();
    let ntiles = L.tiles_in * L.tiles_out;
    var f = 0.0;
    for (var i = li; i < bm; i = i + 256u) {
        let s = s0 + i;
        if (s < L.batch && (atomicLoad(&sat[(trial_local * L.batch + s) * ntiles + tile]) & 1u) != 0u) {
            f = 1.0;
        }
    }
    xs[li] = vec4<f32>(f);
    workgroupBarrier();
    for (var h = 128u; h > 0u; h = h >> 1u) {
        if (li < h) {
            xs[li] = max(xs[li], xs[li + h]);
        }
        workgroupBarrier();
    }
    let any = workgroupUniformLoad(&xs[0]).x != 0.0;
    // Every invocation has read the flag before the staging overwrites it.
    workgroupBarrier();
    return any;
}

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
    let vi = (trial_local * L.batch + s) * ntiles + tile;
    let level = L.bm_pass;
    if (!writes_vector(vi, oa)) {
        return;
    }
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
                    noise = out_normals(L.vector_offset + s, trial, L.layer, L.t_index, group, ti, level, key);
                }
                v = v + P.io.out_noise * noise[orow & 3u];
            }
            let q = quant_out(P.io, v);
            if (saturated(P.io, q)) {
                any_sat = true;
            }
            y[yrow + orow] = clamp(q, -P.io.out_bound, P.io.out_bound);
        }
    }
    flag_saturated(vi, level, any_sat);
}

// Whether this pass writes vector `vi`: every vector at level 0; at level 1 only those flagged at
// level 0 (the others keep their outputs), whose level the invocation holding output 0 (`oa`)
// records.
fn writes_vector(vi: u32, oa: u32) -> bool {
    let level = P.layer.bm_pass;
    if (level == 0u) {
        return true;
    }
    if ((atomicLoad(&sat[vi]) & 1u) == 0u) {
        return false;
    }
    if (oa == 0u) {
        bm_level[vi] = level;
    }
    return true;
}

// Flags vector `v` for the next bound-management level when it saturated at `level` and the
// reduction 2^level is below bm_max_red (the last one tried): bit `level` of `sat` (level 0: 1, level 1: 2),
// counted once in nsat[level].
fn flag_saturated(v: u32, level: u32, any_sat: bool) {
    let more = P.io.bm_mode == 1u && f32(1u << level) < P.io.bm_max_red;
    if (any_sat && more) {
        let bit = 1u << level;
        if ((atomicOr(&sat[v], bit) & bit) == 0u) {
            atomicAdd(&nsat[level], 1u);
        }
    }
}

