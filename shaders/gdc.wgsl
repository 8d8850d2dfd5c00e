// Stage `gdc`: drift compensation factor per tile and trial (noise-models §6, aihwkit
// GlobalDriftCompensation), or per output column of each tile (PerColumnDriftCompensation):
// alpha = baseline / max(mean|readout(t)|, 1e-4) over the tile, or over the column. Baseline: the
// readout right after programming (mode 1) or mean|W_ref| of the unprogrammed tile or column
// (mode 2); mode 0 gives alpha = 1. One invocation = one (trial, tile, row slot); per-column
// partials come one row at a time (`chunk_elem`). With input noise (periphery.inp_noise) the
// readouts are taken here instead of from `drift`'s partials: row i of the readout of input line
// j reads W_ij + inp_noise * sum_k W_ik n_k, since every input line carries its noise, so each
// row's readouts need its sum of squares first (`noisy_readout_sums`). CPU twin:
// src/engine/cpu/gdc.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> tiles: array<TileInfo>;
@group(0) @binding(2) var<storage, read> state: array<f32>;
@group(0) @binding(3) var<storage, read> weff: array<f32>;
@group(0) @binding(4) var<storage, read_write> partials: array<f32>;
@group(0) @binding(5) var<storage, read_write> alpha: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn gdc(@builtin(global_invocation_id) gid: vec3<u32>) {
    let L = P.layer;
    let ntiles = L.tiles_in * L.tiles_out;
    let i = gid.x;
    if (i >= L.trials * ntiles * L.alpha_rows) {
        return;
    }
    let tt = i / L.alpha_rows;          // trial_local * ntiles + tile
    let r = i % L.alpha_rows;
    let tile = tt % ntiles;
    let t = tiles[tile];
    var a = 1.0;
    if (L.gdc_mode != 0u && r < t.rows) {
        // The chunks of the tile, or of row r alone, and the weights they cover.
        var first = 0u;
        var n = L.chunks_per_tile;
        var count = f32(t.rows * t.cols);
        var reference = t.mean_abs_norm;
        if (L.alpha_rows > 1u) {
            n = L.chunks_per_tile / L.max_rows;
            first = r * n;
            count = f32(t.cols);
            reference = tiles[row_entry(L, tile, r)].mean_abs_norm;
        }
        var sr = 0.0;
        var sb = 0.0;
        for (var c = first; c < first + n; c = c + 1u) {
            sr = sr + partials[(tt * L.chunks_per_tile + c) * 2u];
            sb = sb + partials[(tt * L.chunks_per_tile + c) * 2u + 1u];
        }
        if (P.io.inp_noise > 0.0) {
            let rows = select(vec2<u32>(0u, t.rows), vec2<u32>(r, r + 1u), L.alpha_rows > 1u);
            let sums = noisy_readout_sums(t, tt / ntiles, rows);
            sr = sums.x;
            if (L.gdc_mode == 1u && L.gdc_base != 0u) {
                // The baseline, kept in the first chunk's slot for the later times.
                sb = sums.y;
                for (var c = first; c < first + n; c = c + 1u) {
                    partials[(tt * L.chunks_per_tile + c) * 2u + 1u] = select(0.0, sb, c == first);
                }
            }
        }
        let readout = max(sr / count, 1e-4);
        var baseline = reference;
        if (L.gdc_mode == 1u) {
            baseline = max(sb / count, 1e-4);
        }
        a = baseline / readout;
    }
    alpha[i] = a;
}

// The sums of |readout| over rows rows.x .. rows.y - 1 of tile t in trial slot trial_local with
// input noise, at this time (x, the effective weights) and right after programming (y, the
// programmed weights; only where this dispatch writes the baseline): each element by
// `gdc_readout_inp` with its row's sum of squares, the same draws `drift` uses (the read block's
// word 2, the baseline block's word 0), rows and columns in increasing order.
fn noisy_readout_sums(t: TileInfo, trial_local: u32, rows: vec2<u32>) -> vec2<f32> {
    let L = P.layer;
    let dev = tile_device(P.dev, t);
    let trial = L.trial_offset + trial_local;
    let key = vec2<u32>(L.key0, L.key1);
    let nw = L.n_in * L.n_out;
    let base = L.gdc_mode == 1u && L.gdc_base != 0u;
    var sums = vec2<f32>(0.0);
    for (var i = rows.x; i < rows.y; i = i + 1u) {
        let e0 = (t.row_start + i) * L.n_in + t.col_start;
        var sq = vec2<f32>(0.0);
        for (var c = 0u; c < t.cols; c = c + 1u) {
            let we = weff[trial_local * nw + e0 + c];
            sq.x = sq.x + we * we;
            if (base) {
                let wp = programmed_w(dev, t, trial_local, e0 + c);
                sq.y = sq.y + wp * wp;
            }
        }
        for (var c = 0u; c < t.cols; c = c + 1u) {
            let elem = e0 + c;
            let nr = normal4(philox4x32_10(vec4<u32>(elem, trial, ctr_word2(L.layer, STREAM_READ, L.t_index), 0u), key));
            sums.x = sums.x + abs(gdc_readout_inp(P.io, weff[trial_local * nw + elem], sq.x, nr.z));
            if (base) {
                let nb = normal2(philox4x32_10(vec4<u32>(elem, programming_of(L, trial), ctr_word2(L.layer, STREAM_GDC_BASE, 0u), 0u), key));
                sums.y = sums.y + abs(gdc_readout_inp(P.io, programmed_w(dev, t, trial_local, elem), sq.y, nb.x));
            }
        }
    }
    return sums;
}

// The programmed weight of element `elem` in trial slot `trial_local`, as `drift` reads it (wp).
fn programmed_w(dev: DeviceParams, t: TileInfo, trial_local: u32, elem: u32) -> f32 {
    let nw = P.layer.n_in * P.layer.n_out;
    if (dev.pairs > 1u) {
        return state[trial_local * (1u + pair_count(dev)) * nw + elem];
    }
    if (dev.drift_path == 1u) {
        let b = trial_local * 4u * nw + elem;
        return (state[b] - state[b + nw]) / (dev.g_max / max(t.wmax_norm, 1e-7));
    }
    return state[trial_local * 2u * nw + elem];
}
