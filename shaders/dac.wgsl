// Stage `dac`: noise management and DAC of every input vector slice (noise-models §7):
// nm = max_j |x_j| over the tile's input slice (0 if all zero: the output is exactly 0, as in
// aihwkit; 1 without noise management),
// x' = clip(round(x / nm / step) * step, ±inp_bound). One invocation = one (trial, sample, input
// tile). An input shared by all trials (x_per_trial = 0, the first layer) is dispatched for one
// trial only and read as trial 0 by `mvm`, `bound` and `combine`. CPU twin: src/engine/cpu/dac.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> tiles: array<TileInfo>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> xq: array<f32>;
@group(0) @binding(4) var<storage, read_write> nm: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn dac(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let L = P.layer;
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= L.trials * L.batch * L.tiles_in) {
        return;
    }
    let ti = i % L.tiles_in;
    let v = i / L.tiles_in;          // trial_local * batch + sample
    let t = tiles[ti];               // first row of tiles: the input splits
    let xo = select(v % L.batch, v, L.x_per_trial != 0u) * L.n_in;
    var m = 1.0;
    if (P.io.nm_mode == 1u) {
        m = 0.0;
        for (var k = 0u; k < t.cols; k = k + 1u) {
            m = max(m, abs(x[xo + t.col_start + k]));
        }
    }
    // An all-zero slice stores nm = 0, so its tile's output is exactly 0 (aihwkit skips it: no
    // output noise); its quantised input is 0 either way.
    nm[i] = m;
    let m_div = select(m, 1.0, m == 0.0);
    for (var k = 0u; k < t.cols; k = k + 1u) {
        xq[v * L.n_in + t.col_start + k] = quant_in(P.io, x[xo + t.col_start + k] / m_div);
    }
}
