// Stage `weight_error`: per-trial sums of the effective-weight error E = (alpha W_eff - W) / max|W|
// (noise-models §8), in real units (each column's digital scale applied), as partial sums of E and E^2 per
// 256-element chunk of each tile (fixed tree shape). One invocation = one weight of one trial;
// workgroup (x = chunk, y = tile, z = trial in chunk). CPU twin: src/engine/cpu/weight_error.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> tiles: array<TileInfo>;
@group(0) @binding(2) var<storage, read> w_norm: array<f32>;
@group(0) @binding(3) var<storage, read> weff: array<f32>;
@group(0) @binding(4) var<storage, read> alpha: array<f32>;
@group(0) @binding(5) var<storage, read_write> partials: array<f32>;

const CHUNK: u32 = 256u;
var<workgroup> s1: array<f32, 256>;
var<workgroup> s2: array<f32, 256>;

@compute @workgroup_size(256)
fn weight_error(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let L = P.layer;
    let ntiles = L.tiles_in * L.tiles_out;
    let t = tiles[wg.y];
    let trial_local = wg.z;
    let rc = chunk_elem(L, t, wg.x, lid);
    var d = 0.0;
    if (rc.x < t.rows) {
        let elem = (t.row_start + rc.x) * L.n_in + t.col_start + rc.y;
        let a = alpha[alpha_slot(L, trial_local, wg.y, rc.x)];
        let scale = tiles[row_entry(L, wg.y, rc.x)].scale;
        d = (a * weff[trial_local * L.n_out * L.n_in + elem] - w_norm[elem]) * scale / L.wmax;
    }
    s1[lid] = d;
    s2[lid] = d * d;
    workgroupBarrier();
    for (var half = CHUNK / 2u; half > 0u; half = half / 2u) {
        if (lid < half) {
            s1[lid] = s1[lid] + s1[lid + half];
            s2[lid] = s2[lid] + s2[lid + half];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        let o = ((trial_local * ntiles + wg.y) * L.chunks_per_tile + wg.x) * 2u;
        partials[o] = s1[0];
        partials[o + 1u] = s2[0];
    }
}
