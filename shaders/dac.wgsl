// Stage `dac`: input range, noise management and DAC of every input vector slice
// (noise-models §7): with the tile's input range r (aihwkit's learned `input_range`; 0: none)
// every input is first clipped to ±r; nm = max_j |x_j| over the tile's input slice (0 if all
// zero: the output is exactly 0, as in aihwkit; 1 without noise management, nm_thres with
// `constant`; abs-max saturates at nm_thres when it is set; each times r with a range, see
// `nm_scale`), x' = clip(round(x / nm / step) * step, ±inp_bound), x / (nm · 2) in bound
// management's level-1 pass (bm_pass = 1). One workgroup = one (trial, sample, input tile)
// vector: its 64 invocations read the slice with unit stride (coalesced) and reduce the max in
// workgroup memory (max is exact, so any order gives the twin's value). When every slice is short
// (L.dac_short = 1: at most DAC_SHORT_COLS = 256 inputs, e.g. a convolution's patches or a
// small Linear layer), DAC_LANES = 8 invocations take a vector, 8 vectors per workgroup: each
// lane reads every eighth input (a subgroup's loads cover whole 32-byte sectors of four slices)
// and the lanes' maxima meet in workgroup memory. A workgroup per 9-input patch would leave 55 of
// its 64 invocations idle; one invocation per vector (the former short path) made every load of a
// subgroup touch 32 rows. An input shared by all trials (x_per_trial = 0, the first layer) is
// dispatched for one trial only and read as trial 0 by `mvm`, `bound` and `combine`. CPU twin:
// src/engine/cpu/dac.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> tiles: array<TileInfo>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
// `mvm`'s first pass's flags and count: the level-1 pass quantises only the slices a flagged
// vector reads (all of them for an input shared by all trials), and nothing when the redo is
// left to `bound` (fewer than 1 / REDO_GEMM_SHARE of the vectors flagged, none included).
@group(0) @binding(3) var<storage, read> sat: array<u32>;
@group(0) @binding(4) var<storage, read> nsat: array<u32>;
@group(0) @binding(5) var<storage, read_write> xq: array<f32>;
@group(0) @binding(6) var<storage, read_write> nm: array<f32>;

const DAC_WG: u32 = 64u;
const DAC_LANES: u32 = 8u;
var<workgroup> red: array<f32, DAC_WG>;

// `lanes` invocations per (trial, sample, input tile) vector: DAC_WG (one vector per workgroup)
// or, with short slices, DAC_LANES (DAC_WG / DAC_LANES vectors per workgroup). Every invocation
// reaches the barriers; only those of a real vector write.
@compute @workgroup_size(DAC_WG)
fn dac(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let L = P.layer;
    if (L.bm_pass != 0u && !redo_in_gemm(L, nsat[0])) {
        return;
    }
    let lanes = select(DAC_WG, DAC_LANES, L.dac_short != 0u);   // uniform over the dispatch
    let n = L.trials * L.batch * L.tiles_in;
    let lane = lid % lanes;
    let i_raw = (wid.x + wid.y * nwg.x) * (DAC_WG / lanes) + lid / lanes;
    let live = i_raw < n;
    let i = min(i_raw, n - 1u);
    let ti = i % L.tiles_in;
    let v = i / L.tiles_in;          // trial_local * batch + sample
    let t = tiles[ti];               // first row of tiles: the input splits
    let xo = select(v % L.batch, v, L.x_per_trial != 0u) * L.n_in + t.col_start;
    let r = t.input_range;
    var m = 1.0;
    if (L.bm_pass != 0u) {
        m = nm[i];
    } else if (P.io.nm_mode == 1u) {
        var a = 0.0;
        for (var k = lane; k < t.cols; k = k + lanes) {
            a = max(a, abs(in_range(r, x[xo + k])));
        }
        red[lid] = a;
        workgroupBarrier();
        for (var s = lanes / 2u; s > 0u; s = s >> 1u) {
            if (lane < s) {
                red[lid] = max(red[lid], red[lid + s]);
            }
            workgroupBarrier();
        }
        m = nm_scale(P.io, r, red[lid - lane]);
    } else {
        m = nm_scale(P.io, r, 0.0);
    }
    if (!live) {
        return;
    }
    if (L.bm_pass != 0u && L.x_per_trial != 0u) {
        // The vectors of tiles (to, ti) for every output tile `to` read this slice.
        let ntiles = L.tiles_in * L.tiles_out;
        var flagged = false;
        for (var to = 0u; to < L.tiles_out; to = to + 1u) {
            flagged = flagged || (sat[v * ntiles + to * L.tiles_in + ti] & 1u) != 0u;
        }
        if (!flagged) {
            return;
        }
    }
    // An all-zero slice stores nm = 0, so its tile's output is exactly 0 (aihwkit skips it: no
    // output noise); its quantised input is 0 either way.
    // The level-1 pass (bm_pass = 1) quantises the same slice at reduction 2 for `mvm`'s redo
    // of the vectors it flagged, as `bound` would (x / (nm · 2^level)), with the stored nm.
    if (lane == 0u && L.bm_pass == 0u) {
        nm[i] = m;
    }
    let m_div = select(m, 1.0, m == 0.0) * f32(1u << L.bm_pass);
    let xqo = v * L.n_in + t.col_start;
    for (var k = lane; k < t.cols; k = k + lanes) {
        xq[xqo + k] = quant_in(P.io, in_range(r, x[xo + k]) / m_div);
    }
}
