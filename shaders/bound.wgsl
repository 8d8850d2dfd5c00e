// Stage `bound`: iterative bound management (noise-models §7): input scale halved, fresh noise,
// until nothing saturates or the reduction reaches bm_max_red (the last one aihwkit tries, computed
// on the host from max_bm_factor and max_bm_res by crossbar::bm_last_reduction); on the full path with
// IR drop and per-read weight noise. `mvm` (or `mvm_full`) read every vector at level 0. When at
// least 1 / REDO_GEMM_SHARE of them saturated (`redo_in_gemm`), its second pass redid those at
// level 1 and the ones that saturated again (bit 2 of `sat`) come here from level 2; otherwise the
// flagged ones (bit 1) come here from level 1. Writes each redone vector's final level (reduction
// 2^level; the buffer is cleared to level 0 before `mvm`, whose level-1 pass writes 1).
//
// Work comes in units of (trial, tile, block of VB samples); a fixed grid of workgroups strides
// over them, and when no vector is left (`nsat` of the starting level's flags = 0) every
// workgroup returns after one read. A unit takes its flagged samples through the levels together:
// the active ones are all at the same level, since each starts at the same level and leaves once
// it no longer saturates. Per level the unit's inputs are staged in workgroup memory KC at a time
// (with their input noise, a fresh draw per level),
// and each invocation sums four consecutive outputs (one output group, one Philox block per
// vector and level) for all VB vectors at once: a weight is read once per unit and level instead
// of once per vector. Level 1 runs in the tiled GEMM when many vectors saturate because in a
// BERT-sized layer nearly every vector saturates at level 0 and almost all settle at level 1:
// that redo, done here, was a second dense GEMM at about a tenth of `mvm`'s rate on an H200
// (BENCHMARKS.md); with few flagged vectors this stage's cost follows their number and the GEMM
// pass's would not. Every accumulator sums over k in increasing order, so the values are the
// twin's. CPU twin: src/engine/cpu/bound.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> tiles: array<TileInfo>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> nm: array<f32>;
@group(0) @binding(4) var<storage, read> weff: array<f32>;
// `mvm`'s per-vector saturation flags and how many it flagged.
@group(0) @binding(5) var<storage, read> sat: array<u32>;
@group(0) @binding(6) var<storage, read> nsat: array<u32>;
@group(0) @binding(7) var<storage, read_write> y: array<f32>;
@group(0) @binding(8) var<storage, read_write> bm_level: array<u32>;

// Invocations, samples per unit, inputs per staging step.
const BW: u32 = 64u;
const VB: u32 = 8u;
const KC: u32 = 256u;

// The unit's quantised inputs of this staging step, vector-major: xs[i * KC + kk].
var<workgroup> xs: array<f32, 2048>;
// Per sample slot: still to be redone, the level it was last computed at, whether it saturated
// at this level, where its inputs start and their divisor (noise management times reduction).
var<workgroup> live: array<u32, VB>;
var<workgroup> last_level: array<u32, VB>;
var<workgroup> vsat: array<atomic<u32>, VB>;
var<workgroup> v_xo: array<u32, VB>;
var<workgroup> v_div: array<f32, VB>;
var<workgroup> wg_units: u32;
var<workgroup> wg_live: u32;

@compute @workgroup_size(64)
fn bound(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let L = P.layer;
    if (lid == 0u) {
        let all = L.trials * L.tiles_in * L.tiles_out * ((L.batch + VB - 1u) / VB);
        wg_units = select(0u, all, nsat[select(0u, 1u, redo_in_gemm(L, nsat[0]))] != 0u);
    }
    let units = workgroupUniformLoad(&wg_units);
    for (var u = wg.x + wg.y * nwg.x; u < units; u = u + nwg.x * nwg.y) {
        bound_unit(u, lid);
    }
}

// One unit: its flagged samples through the bound-management levels.
fn bound_unit(u: u32, lid: u32) {
    let L = P.layer;
    let ntiles = L.tiles_in * L.tiles_out;
    let blocks = (L.batch + VB - 1u) / VB;
    let sb = u % blocks;
    let tile = (u / blocks) % ntiles;
    let trial_local = u / (blocks * ntiles);
    let ti = tile % L.tiles_in;
    let trial = L.trial_offset + trial_local;
    let t = tiles[tile];
    let full = L.full_path != 0u;
    // After the GEMM's level-1 pass the vectors flagged again (bit 2) start at level 2; when the
    // redo was left here, those flagged at level 0 (bit 1) start at level 1.
    let first = select(1u, 2u, redo_in_gemm(L, nsat[0]));
    var level = first;
    if (lid < VB) {
        let s = sb * VB + lid;
        var a = 0u;
        if (s < L.batch) {
            a = sat[(trial_local * L.batch + s) * ntiles + tile] & first;
        }
        live[lid] = select(0u, 1u, a != 0u);
        last_level[lid] = level;
    }
    let key = vec2<u32>(L.key0, L.key1);
    let n_cols = f32(t.cols);
    let wbase = trial_local * L.n_out * L.n_in + t.col_start;
    let r_end = t.row_start + t.rows;
    let g0 = t.row_start >> 2u;
    let g1 = (r_end + 3u) >> 2u;
    loop {
        workgroupBarrier();
        if (lid == 0u) {
            var n = 0u;
            for (var i = 0u; i < VB; i = i + 1u) {
                n = n + live[i];
            }
            wg_live = n;
        }
        if (workgroupUniformLoad(&wg_live) == 0u) {
            break;
        }
        let red = f32(1u << level);
        if (lid < VB) {
            atomicStore(&vsat[lid], 0u);
            // An inactive slot's inputs are staged as zeros and its outputs never written.
            let s = min(sb * VB + lid, L.batch - 1u);
            let xi = select(s, trial_local * L.batch + s, L.x_per_trial != 0u);
            // A shared input's noise management was computed once, as trial 0; nm = 0 marks an
            // all-zero slice (its output is dropped in `combine`).
            let m = nm[xi * L.tiles_in + ti];
            v_div[lid] = select(m, 1.0, m == 0.0) * red;
            v_xo[lid] = xi * L.n_in + t.col_start;
        }
        // Groups of four outputs (absolute rows 4g .. 4g + 3, the rows of one Philox block).
        for (var gb = g0; gb < g1; gb = gb + BW) {
            let g = gb + lid;
            // Rows outside the tile repeat its nearest row (computed, never written).
            let w0 = wbase + clamp(4u * g, t.row_start, r_end - 1u) * L.n_in;
            let w1 = wbase + clamp(4u * g + 1u, t.row_start, r_end - 1u) * L.n_in;
            let w2 = wbase + clamp(4u * g + 2u, t.row_start, r_end - 1u) * L.n_in;
            let w3 = wbase + clamp(4u * g + 3u, t.row_start, r_end - 1u) * L.n_in;
            // Per vector i, the four outputs' sums (and the full path's IR-drop and weight-noise
            // sums).
            var acc: array<vec4<f32>, VB>;
            var sa: array<vec4<f32>, VB>;
            var sp: array<vec4<f32>, VB>;
            var sq: array<vec4<f32>, VB>;
            for (var k0 = 0u; k0 < t.cols; k0 = k0 + KC) {
                workgroupBarrier();
                for (var e = lid; e < VB * KC; e = e + BW) {
                    let i = e / KC;
                    let k = k0 + e % KC;
                    var xv = 0.0;
                    if (k < t.cols && live[i] != 0u) {
                        xv = quant_in(P.io, in_range(t.input_range, x[v_xo[i] + k]) / v_div[i]);
                        if (P.io.inp_noise > 0.0) {
                            xv = xv + inp_noise_line(L, P.io, tile, trial, sb * VB + i, level, k);
                        }
                    }
                    xs[e] = xv;
                }
                workgroupBarrier();
                if (g < g1) {
                    let kn = min(KC, t.cols - k0);
                    for (var kk = 0u; kk < kn; kk = kk + 1u) {
                        let k = k0 + kk;
                        let wk = vec4<f32>(weff[w0 + k], weff[w1 + k], weff[w2 + k], weff[w3 + k]);
                        for (var i = 0u; i < VB; i = i + 1u) {
                            let xk = xs[i * KC + kk];
                            acc[i] = acc[i] + xk * wk;
                            if (full) {
                                sa[i] = sa[i] + abs(wk) * abs(xk);
                                let r = 1.0 - f32(k) / n_cols;
                                sp[i] = sp[i] + wk * xk * (1.0 - r * r);
                                let x2 = xk * xk;
                                sq[i] = sq[i] + select(vec4<f32>(x2), abs(wk) * x2, P.io.w_noise_type == 1u);
                            }
                        }
                    }
                }
            }
            if (g < g1) {
                for (var i = 0u; i < VB; i = i + 1u) {
                    if (live[i] == 0u) {
                        continue;
                    }
                    let s = sb * VB + i;
                    var nz = vec4<f32>(0.0);
                    if (P.io.out_noise > 0.0) {
                        nz = out_normals(L.vector_offset + s, trial, L.layer, L.t_index, g, ti, level, key);
                    }
                    var nw = vec4<f32>(0.0);
                    if (full && P.io.w_noise > 0.0) {
                        nw = out_normals(L.vector_offset + s, trial, L.layer, L.t_index, g | W_NOISE_GROUP, ti, level, key);
                    }
                    var hit = false;
                    for (var j = 0u; j < 4u; j = j + 1u) {
                        let orow = 4u * g + j;
                        if (orow < t.row_start || orow >= r_end) {
                            continue;
                        }
                        var yv = acc[i][j];
                        if (full) {
                            if (P.io.ir_drop > 0.0) {
                                let a = n_cols / P.io.ir_g_ratio * sa[i][j];
                                let c = a * (a * (0.05 * a - 0.2) + 0.5);
                                yv = yv - P.io.ir_drop * c * sp[i][j];
                            }
                            var wstd = 0.0;
                            if (P.io.w_noise > 0.0) {
                                wstd = P.io.w_noise * sqrt(sq[i][j]);
                            }
                            if (P.io.out_noise > 0.0) {
                                yv = yv + P.io.out_noise * nz[j];
                            }
                            if (wstd > 0.0) {
                                yv = yv + wstd * nw[j];
                            }
                        } else if (P.io.out_noise > 0.0) {
                            yv = yv + P.io.out_noise * nz[j];
                        }
                        let q = quant_out(P.io, yv);
                        hit = hit || saturated(P.io, q);
                        y[((trial_local * L.tiles_in + ti) * L.batch + s) * L.n_out + orow] = clamp(q, -P.io.out_bound, P.io.out_bound);
                    }
                    if (hit) {
                        atomicOr(&vsat[i], 1u);
                    }
                }
            }
        }
        workgroupBarrier();
        let done = P.io.bm_mode == 0u || red >= P.io.bm_max_red || level >= 30u;
        if (lid < VB && live[lid] != 0u) {
            last_level[lid] = level;
            if (atomicLoad(&vsat[lid]) == 0u || done) {
                live[lid] = 0u;
            }
        }
        level = level + 1u;
    }
    // The loop ended on a barrier (workgroupUniformLoad): the levels are final.
    if (lid < VB) {
        let s = sb * VB + lid;
        if (s < L.batch) {
            let v = (trial_local * L.batch + s) * ntiles + tile;
            if ((sat[v] & first) != 0u) {
                bm_level[v] = last_level[lid];
            }
        }
    }
}
