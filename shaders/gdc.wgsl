// Stage `gdc`: global drift compensation factor per tile and trial (noise-models §6,
// aihwkit GlobalDriftCompensation): alpha = baseline / max(mean|readout(t)|, 1e-4). Baseline: the
// readout right after programming (mode 1) or mean|W_ref| of the unprogrammed tile (mode 2);
// mode 0 gives alpha = 1. One invocation = one (trial, tile). CPU twin: src/engine/cpu/gdc.rs.

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
    if (i >= L.trials * ntiles) {
        return;
    }
    let t = tiles[i % ntiles];
    var a = 1.0;
    if (L.gdc_mode != 0u) {
        var sr = 0.0;
        var sb = 0.0;
        for (var c = 0u; c < L.chunks_per_tile; c = c + 1u) {
            sr = sr + partials[(i * L.chunks_per_tile + c) * 2u];
            sb = sb + partials[(i * L.chunks_per_tile + c) * 2u + 1u];
        }
        let count = f32(t.rows * t.cols);
        let readout = max(sr / count, 1e-4);
        var baseline = t.mean_abs_norm;
        if (L.gdc_mode == 1u) {
            baseline = max(sb / count, 1e-4);
        }
        a = baseline / readout;
    }
    alpha[i] = a;
}
