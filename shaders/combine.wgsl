// Stage `combine`: the digital side of a layer. Sums the partial outputs over input tiles, each
// rescaled by its noise-management factor nm, bound-management reduction 2^level, GDC factor alpha
// (per tile, or per column) and the column's digital weight scale max|W|/omega (the tile's, or its
// own with per-column scales); adds the bias; applies the activation.
// One invocation = one (trial, sample, output). CPU twin: src/engine/cpu/combine.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> tiles: array<TileInfo>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read> nm: array<f32>;
@group(0) @binding(4) var<storage, read> bm_level: array<u32>;
@group(0) @binding(5) var<storage, read> alpha: array<f32>;
@group(0) @binding(6) var<storage, read> bias: array<f32>;
@group(0) @binding(7) var<storage, read_write> h: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn combine(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let L = P.layer;
    let ntiles = L.tiles_in * L.tiles_out;
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= L.trials * L.batch * L.n_out) {
        return;
    }
    let o = i % L.n_out;
    let vs = i / L.n_out;             // trial_local * batch + sample
    let s = vs % L.batch;
    let trial_local = vs / L.batch;
    let to = split_index(L.n_out, L.tiles_out, o);
    var acc = 0.0;
    for (var ti = 0u; ti < L.tiles_in; ti = ti + 1u) {
        let tile = to * L.tiles_in + ti;
        let yv = y[((trial_local * L.tiles_in + ti) * L.batch + s) * L.n_out + o];
        let red = f32(1u << bm_level[vs * ntiles + tile]);
        // A shared input's noise management was computed once, as trial 0.
        let r = o - tiles[tile].row_start;
        let f = nm[select(s, vs, L.x_per_trial != 0u) * L.tiles_in + ti] * red * alpha[alpha_slot(L, trial_local, tile, r)]
            * tiles[row_entry(L, tile, r)].scale;
        acc = acc + yv * f;
    }
    h[i] = activate(L.activation, acc + bias[o]);
}
