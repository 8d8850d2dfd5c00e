// Stage `bound`: the full-featured per-vector MVM (noise-models §7). It redoes the vectors that
// `mvm` flagged as saturated with iterative bound management (input scale halved, fresh noise,
// until nothing saturates or the reduction reaches max_bm_factor), and it computes every vector
// when IR drop or per-read weight noise is on (full_path). Writes each redone vector's final
// bound-management level (reduction 2^level; the buffer is cleared to level 0 before `mvm`).
// The vectors are `mvm`'s list of saturated ones (`satlist`: [0] count, then ids), or all of them
// on the full path; a fixed grid of workgroups strides over them, one vector at a time per
// workgroup, so a layer with nothing saturated costs one read per workgroup. Invocations stride
// over outputs. At reduction 1 it draws the same noise as `mvm` (same counters).
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
    loop {
        let red = f32(1u << level);
        for (var k = lid; k < t.cols; k = k + BW) {
            xw[k] = quant_in(P.io, x[xo + k] / (m_div * red));
        }
        if (lid == 0u) {
            atomicStore(&any_sat, 0u);
        }
        workgroupBarrier();
        for (var o = lid; o < t.rows; o = o + BW) {
            let orow = t.row_start + o;
            let wrow = wbase + orow * L.n_in;
            var acc = 0.0;
            for (var k = 0u; k < t.cols; k = k + 1u) {
                acc = acc + xw[k] * weff[wrow + k];
            }
            var yv = acc;
            if (L.full_path != 0u) {
                if (P.io.ir_drop > 0.0) {
                    var sa = 0.0;
                    var sp = 0.0;
                    for (var k = 0u; k < t.cols; k = k + 1u) {
                        let wk = weff[wrow + k];
                        sa = sa + abs(wk) * abs(xw[k]);
                        let r = 1.0 - f32(k) / n_cols;
                        sp = sp + wk * xw[k] * (1.0 - r * r);
                    }
                    let a = n_cols / P.io.ir_g_ratio * sa;
                    let c = a * (a * (0.05 * a - 0.2) + 0.5);
                    yv = yv - P.io.ir_drop * c * sp;
                }
                var wstd = 0.0;
                if (P.io.w_noise > 0.0) {
                    var q = 0.0;
                    for (var k = 0u; k < t.cols; k = k + 1u) {
                        let x2 = xw[k] * xw[k];
                        q = q + select(x2, abs(weff[wrow + k]) * x2, P.io.w_noise_type == 1u);
                    }
                    wstd = P.io.w_noise * sqrt(q);
                }
                if (P.io.out_noise > 0.0) {
                    yv = yv + P.io.out_noise * out_normals(L.vector_offset + s, trial, L.layer, L.t_index, orow >> 2u, ti, level, key)[orow & 3u];
                }
                if (wstd > 0.0) {
                    yv = yv + wstd * out_normals(L.vector_offset + s, trial, L.layer, L.t_index, (orow >> 2u) | W_NOISE_GROUP, ti, level, key)[orow & 3u];
                }
            } else if (P.io.out_noise > 0.0) {
                yv = yv + P.io.out_noise * out_normals(L.vector_offset + s, trial, L.layer, L.t_index, orow >> 2u, ti, level, key)[orow & 3u];
            }
            let q = quant_out(P.io, yv);
            if (saturated(P.io, q)) {
                atomicOr(&any_sat, 1u);
            }
            y[((trial_local * L.tiles_in + ti) * L.batch + s) * L.n_out + orow] = clamp(q, -P.io.out_bound, P.io.out_bound);
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
