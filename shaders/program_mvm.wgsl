// Stage `program_mvm`: single-vector noisy MVMs with programming noise only, the device state
// regenerated in registers from the counter-based RNG and never stored (noise-models §2-§3, §7).
// y[trial, o] = ADC(sum_k W_prog[o, k] x'[k] + out_noise N); same programming counters as
// `program`/`drift`, so the weights are the ones those stages see. Single-tile layers.
// One invocation = one (trial, output row); x' is shared by all trials.
// CPU twin: src/engine/cpu/program_mvm.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> w_norm: array<f32>;
@group(0) @binding(2) var<storage, read> tiles: array<TileInfo>;
@group(0) @binding(3) var<storage, read> xq: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

override WG: u32 = 64u;
var<workgroup> xw: array<f32, 2048>;

@compute @workgroup_size(WG)
fn program_mvm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let L = P.layer;
    let t = tiles[0];
    let dev = tile_device(P.dev, t);
    for (var k = lid; k < L.n_in; k = k + WG) {
        xw[k] = xq[k];
    }
    workgroupBarrier();
    let i = (wg.x + wg.y * nwg.x) * WG + lid;
    if (i >= L.trials * L.n_out) {
        return;
    }
    let o = i % L.n_out;
    let trial_local = i / L.n_out;
    let trial = L.trial_offset + trial_local;
    let key = vec2<u32>(L.key0, L.key1);
    let s = dev.g_max / max(t.wmax_norm, 1e-7);
    let w2 = ctr_word2(L.layer, STREAM_PROG, 0u);
    var acc = 0.0;
    for (var k = 0u; k < L.n_in; k = k + 1u) {
        let elem = o * L.n_in + k;
        let wp = programmed_weight(dev, w_norm[elem], s, normal2(philox4x32_10(vec4<u32>(elem, programming_of(L, trial), w2, 0u), key)));
        acc = acc + xw[k] * wp;
    }
    var v = acc;
    if (P.io.out_noise > 0.0) {
        let n = normal2(philox4x32_10(vec4<u32>(0u, trial, ctr_word2(L.layer, STREAM_OUT, L.t_index), ctr_word3_out(o, 0u, 0u)), key));
        v = v + P.io.out_noise * n.x;
    }
    y[i] = adc(P.io, v);
}
