// Stage `bound`: the full-featured per-vector MVM (noise-models §7). It redoes the vectors that
// `mvm` flagged as saturated with iterative bound management (input scale halved, fresh noise,
// until nothing saturates or the reduction reaches max_bm_factor), and it computes every vector
// when IR drop or per-read weight noise is on (full_path). Writes each redone vector's final
// bound-management level (reduction 2^level; the buffer is cleared to level 0 before `mvm`).
// The vectors are `mvm`'s list of saturated ones (`satlist`: [0] count, then ids), or all of them
// on the full path; a fixed grid of workgroups strides over them, one vector at a time per
// workgroup, so a layer with nothing saturated costs one read per workgroup. Invocations stride
// over groups of four outputs, the outputs of one Philox block (as in `mvm`): each block is drawn
// once per vector and level, and each output still sums over k in increasing order, so the
// values are the twin's. At reduction 1 it draws the same noise as `mvm` (same counters).
// CPU twin: src/engine/cpu/bound.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> tiles: array<TileInfo>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> nm: array<f32>;
@group(0) @binding(4) var<storage, read> weff: array<f32>;
@group(0) @binding(5) var<storage, read> satlist: array<u32>;
@group(0) @binding(6) var<storage, read_write> y: array<f32>;
@group(0) @binding(7) var<storage, read_write> bm_level: array<u32>;

const BW: u32 = 64u;
var<workgroup> xw: array<f32, 2048>;
var<workgroup> any_sat: atomic<u32>;
var<workgroup> go: u32;
var<workgroup> n_work_wg: u32;

@compute @workgroup_size(64)
fn bound(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let L = P.layer;
    let ntiles = L.tiles_in * L.tiles_out;
    if (lid == 0u) {
        n_work_wg = select(satlist[0], L.trials * L.batch * ntiles, L.full_path != 0u);
    }
    let n_work = workgroupUniformLoad(&n_work_wg);
    for (var j = wg.x + wg.y * nwg.x; j < n_work; j = j + nwg.x * nwg.y) {
        let v = select(satlist[1u + j], j, L.full_path != 0u);
        bound_vector(v, lid);
    }
}

// One vector: the redo loop over bound-management levels (all invocations of the workgroup).
fn bound_vector(v: u32, lid: u32) {
    let L = P.layer;
    let ntiles = L.tiles_in * L.tiles_out;
    let tile = v % ntiles;
    let ti = tile % L.tiles_in;
    let vs = v / ntiles;              // trial_local * batch + sample
    let s = vs % L.batch;
    let trial_local = vs / L.batch;
    let trial = L.trial_offset + trial_local;
    let t = tiles[tile];
    // A listed vector saturated at level 0 in `mvm`: start at level 1.
    var level = select(1u, 0u, L.full_path != 0u);
    // A shared input's noise management was computed once, as trial 0.
    let m = nm[select(s, vs, L.x_per_trial != 0u) * L.tiles_in + ti];
    // nm = 0 marks an all-zero slice (its output is dropped in `combine`).
    let m_div = select(m, 1.0, m == 0.0);
    let xo = select(s, vs, L.x_per_trial != 0u) * L.n_in + t.col_start;
    let wbase = trial_local * L.n_out * L.n_in + t.col_start;
    let n_cols = f32(t.cols);
    let key = vec2<u32>(L.key0, L.key1);
    let r_end = t.row_start + t.rows;
    let g0 = t.row_start >> 2u;
    let g1 = (r_end + 3u) >> 2u;
    loop {
        let red = f32(1u << level);
        for (var k = lid; k < t.cols; k = k + BW) {
            xw[k] = quant_in(P.io, x[xo + k] / (m_div * red));
        }
        if (lid == 0u) {
            atomicStore(&any_sat, 0u);
        }
        workgroupBarrier();
        // One invocation per group of four outputs (absolute rows 4g .. 4g + 3, the rows of one
        // Philox block): each block is drawn once, not once per output.
        for (var g = g0 + lid; g < g1; g = g + BW) {
            // Rows outside the tile repeat its nearest row (computed, never written).
            let w0 = wbase + clamp(4u * g, t.row_start, r_end - 1u) * L.n_in;
            let w1 = wbase + clamp(4u * g + 1u, t.row_start, r_end - 1u) * L.n_in;
            let w2 = wbase + clamp(4u * g + 2u, t.row_start, r_end - 1u) * L.n_in;
            let w3 = wbase + clamp(4u * g + 3u, t.row_start, r_end - 1u) * L.n_in;
            var acc = vec4<f32>(0.0);
            var sa = vec4<f32>(0.0);
            var sp = vec4<f32>(0.0);
            var sq = vec4<f32>(0.0);
            for (var k = 0u; k < t.cols; k = k + 1u) {
                let xk = xw[k];
                let wk = vec4<f32>(weff[w0 + k], weff[w1 + k], weff[w2 + k], weff[w3 + k]);
                acc = acc + xk * wk;
                if (L.full_path != 0u) {
                    sa = sa + abs(wk) * abs(xk);
                    let r = 1.0 - f32(k) / n_cols;
                    sp = sp + wk * xk * (1.0 - r * r);
                    let x2 = xk * xk;
                    sq = sq + select(vec4<f32>(x2), abs(wk) * x2, P.io.w_noise_type == 1u);
                }
            }
            var nz = vec4<f32>(0.0);
            if (P.io.out_noise > 0.0) {
                nz = out_normals(L.vector_offset + s, trial, L.layer, L.t_index, g, ti, level, key);
            }
            var nw = vec4<f32>(0.0);
            if (L.full_path != 0u && P.io.w_noise > 0.0) {
                nw = out_normals(L.vector_offset + s, trial, L.layer, L.t_index, g | W_NOISE_GROUP, ti, level, key);
            }
            for (var j = 0u; j < 4u; j = j + 1u) {
                let orow = 4u * g + j;
                if (orow < t.row_start || orow >= r_end) {
                    continue;
                }
                var yv = acc[j];
                if (L.full_path != 0u) {
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
                        yv = yv + P.io.out_noise * nz[j];
                    }
                    if (wstd > 0.0) {
                        yv = yv + wstd * nw[j];
                    }
                } else if (P.io.out_noise > 0.0) {
                    yv = yv + P.io.out_noise * nz[j];
                }
                let q = quant_out(P.io, yv);
                if (saturated(P.io, q)) {
                    atomicOr(&any_sat, 1u);
                }
                y[((trial_local * L.tiles_in + ti) * L.batch + s) * L.n_out + orow] = clamp(q, -P.io.out_bound, P.io.out_bound);
            }
        }
        workgroupBarrier();
        if (lid == 0u) {
            go = atomicLoad(&any_sat);
        }
        let again = workgroupUniformLoad(&go);
        if (again == 0u || P.io.bm_mode == 0u || red >= P.io.bm_max_red) {
            break;
        }
        level = level + 1u;
    }
    if (lid == 0u) {
        bm_level[v] = level;
    }
}
