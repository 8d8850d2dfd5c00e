// Stage `gdc`: drift compensation factor per tile and trial (noise-models §6, aihwkit
// GlobalDriftCompensation), or per output column of each tile (PerColumnDriftCompensation):
// alpha = baseline / max(mean|readout(t)|, 1e-4) over the tile, or over the column. Baseline: the
// readout right after programming (mode 1) or mean|W_ref| of the unprogrammed tile or column
// (mode 2); mode 0 gives alpha = 1. One invocation = one (trial, tile, row slot); per-column
// partials come one row at a time (`chunk_elem`). CPU twin: src/engine/cpu/gdc.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> tiles: array<TileInfo>;
@group(0) @binding(2) var<storage, read> partials: array<f32>;
@group(0) @binding(3) var<storage, read_write> alpha: array<f32>;

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
        let readout = max(sr / count, 1e-4);
        var baseline = reference;
        if (L.gdc_mode == 1u) {
            baseline = max(sb / count, 1e-4);
        }
        a = baseline / readout;
    }
    alpha[i] = a;
}
