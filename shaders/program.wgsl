// Stage `program`: program one trial's devices (noise-models §2, §3): the programmed pair from
// the programming noise and the drift exponents drawn from the target conductances, all from the
// four words of one Philox block per weight; stores the trial's programmed state for `drift`
// (aihwkit tile path: programmed weight and the drift exponent of the device that holds it;
// both_devices: G+, G-, nu+, nu-; a relaxation table: programmed weight and target weight; one
// device per weight: programmed weight, 0; several pairs per weight: programmed weight, then each
// pair's drift exponent), planar [trial][word][weight], and finds each tile's
// max|W_prog| (needed by aihwkit's re-conversion before drift; with one device per weight the
// order keys of max W_prog and max −W_prog), two words per (trial, tile). One invocation = one
// weight (differential pair) of one trial; workgroup (x = WG-element chunk of a tile, y = tile,
// z = trial in chunk). CPU twin: src/engine/cpu/program.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> w_norm: array<f32>;
@group(0) @binding(2) var<storage, read> tiles: array<TileInfo>;
@group(0) @binding(3) var<storage, read_write> state: array<f32>;
@group(0) @binding(4) var<storage, read_write> progmax: array<atomic<u32>>;

override WG: u32 = 256u;
var<workgroup> wg_max: atomic<u32>;
var<workgroup> wg_max2: atomic<u32>;

// A measured drift table's (ν mean, ν std) at gr = g/g_max: linear between the knots around gr
// (numpy.interp's slope · (gr − x_j) + v_j), the end values beyond the ends. Read from the uniform
// where it lies (P.dev.nu_table, indexed by the loop): a copy of the device's params would carry
// its 16 knots through every invocation. CPU twin: cpu/common.rs nu_table_eval.
fn nu_table_eval(gr: f32) -> vec2<f32> {
    let n = min(P.dev.nu_knots, MAX_DRIFT_KNOTS);
    if (gr <= P.dev.nu_table[0].x) {
        return P.dev.nu_table[0].yz;
    }
    for (var j = 1u; j < n; j = j + 1u) {
        let hi = P.dev.nu_table[j];
        if (gr < hi.x) {
            let lo = P.dev.nu_table[j - 1u];
            let slope = (hi.yz - lo.yz) / (hi.x - lo.x);
            return slope * (gr - lo.x) + lo.yz;
        }
    }
    return P.dev.nu_table[n - 1u].yz;
}

// A device's drift exponent (folded normal): ν's mean and std from the measured table where the
// device has one (nu_knots > 0), else from its curves (common/device.wgsl drift_nu). `dev` is
// the tile's device (tile_device: its drift scale); the table is the model's.
// CPU twin: cpu/common.rs device_nu.
fn device_nu(dev: DeviceParams, g_target: f32, n: f32) -> f32 {
    if (dev.nu_knots > 0u) {
        let m = nu_table_eval(g_target / dev.g_max);
        return dev.drift_scale * abs(m.x + m.y * n);
    }
    return drift_nu(dev, g_target, n);
}

// A weight on one or several conductance pairs (aihwkit's NPairConductanceConverter,
// noise-models §2 with significance factors F_k), with stuck devices: pair k holds the part of
// |s·w| above the lower pairs' range over F_k; its two devices are programmed from block k of the
// weight's programming counter (counter word 3 = k; words 0 and 1 the G+ and G− noise, 2 and 3
// their drift exponents' draws, from the targets). With stuck devices, pair k's fault block
// (stream FAULT, counter word 3 = k; words 0 and 1 for G+ and G−, stuck_fate) puts a stuck device
// at 0 µS or g_max with drift exponent 0. Returns the programmed weight Σ F_k (G+_k − G−_k) / s and
// writes, per pair, the drift exponent of the device on its sign's side into nu_out.
// CPU twin: cpu/common.rs programmed_pairs.
fn programmed_pairs(dev: DeviceParams, w: f32, s: f32, ctr: vec3<u32>, fault_w2: u32, key: vec2<u32>, nu_out: ptr<function, vec4<f32>>) -> f32 {
    let u = s * w;
    let up = max(u, 0.0);
    let un = max(-u, 0.0);
    var acc = 0.0;
    var lower = 0.0;
    var nu_p = vec4<f32>(0.0);
    var nu_n = vec4<f32>(0.0);
    for (var k = 0u; k < pair_count(dev); k = k + 1u) {
        // One pair's factor cancels (its scale is g_max / max|W|, as pair_gmax gives).
        var f = 1.0;
        if (dev.pairs > 1u) {
            f = dev.pair_f[k];
        }
        let n = normal4(philox4x32_10(vec4<u32>(ctr, k), key));
        let gp_t = clamp((up - lower) / f, 0.0, dev.g_max);
        let gn_t = clamp((un - lower) / f, 0.0, dev.g_max);
        var gp = max(0.0, gp_t + dev.prog_scale * sigma_prog(dev, gp_t) * n.x);
        var gn = max(0.0, gn_t + dev.prog_scale * sigma_prog(dev, gn_t) * n.y);
        nu_p[k] = device_nu(dev, gp_t, n.z);
        nu_n[k] = device_nu(dev, gn_t, n.w);
        if (has_stuck(dev)) {
            let r = philox4x32_10(vec4<u32>(ctr.x, ctr.y, fault_w2, k), key);
            let fp = stuck_fate(dev, r.x);
            if (fp != 0u) {
                gp = select(0.0, dev.g_max, fp == 2u);
                nu_p[k] = 0.0;
            }
            let fn_ = stuck_fate(dev, r.y);
            if (fn_ != 0u) {
                gn = select(0.0, dev.g_max, fn_ == 2u);
                nu_n[k] = 0.0;
            }
        }
        acc = acc + f * (gp - gn);
        lower = lower + f * dev.g_max;
    }
    let wp = acc / s;
    *nu_out = select(nu_n, nu_p, wp >= 0.0);
    return wp;
}

@compute @workgroup_size(WG)
fn program(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let L = P.layer;
    let ntiles = L.tiles_in * L.tiles_out;
    let t = tiles[wg.y];
    let dev = tile_device(P.dev, t);
    let trial_local = wg.z;
    let trial = L.trial_offset + trial_local;
    if (lid == 0u) {
        atomicStore(&wg_max, 0u);
        atomicStore(&wg_max2, 0u);
    }
    workgroupBarrier();
    let e = wg.x * WG + lid;
    if (e < t.rows * t.cols) {
        let elem = (t.row_start + e / t.cols) * L.n_in + t.col_start + e % t.cols;
        let nw = L.n_in * L.n_out;
        let w = w_norm[elem];
        let s = pair_gmax(dev) / max(t.wmax_norm, 1e-7);
        // Keyed by the programming, so the reads of one programming share its state.
        let ctr = vec3<u32>(elem, programming_of(L, trial), ctr_word2(L.layer, STREAM_PROG, 0u));
        let n = normal4(philox4x32_10(vec4<u32>(ctr, 0u), vec2<u32>(L.key0, L.key1)));
        let gpair = programmed_pair(dev, w, s, n.xy);
        var wp = (gpair.x - gpair.y) / s;
        if (dev.prog_mode == 2u) {
            wp = programmed_single(dev, w, t.w_lo, t.w_hi, n.x);
        }
        let nu_pos = device_nu(dev, clamp(s * w, 0.0, dev.g_max), n.z);
        let nu_neg = device_nu(dev, clamp(-s * w, 0.0, dev.g_max), n.w);
        if (dev.pairs > 1u || has_stuck(dev)) {
            // Several pairs or stuck devices: the programmed weight, then each pair's drift exponent.
            var nu = vec4<f32>(0.0);
            wp = programmed_pairs(dev, w, s, ctr, ctr_word2(L.layer, STREAM_FAULT, 0u), vec2<u32>(L.key0, L.key1), &nu);
            let words = 1u + pair_count(dev);
            let b = trial_local * words * nw + elem;
            state[b] = wp;
            for (var k = 0u; k < pair_count(dev); k = k + 1u) {
                state[b + (1u + k) * nw] = nu[k];
            }
        } else if (dev.drift_path == 1u) {
            let b = trial_local * 4u * nw + elem;
            state[b] = gpair.x;
            state[b + nw] = gpair.y;
            state[b + 2u * nw] = nu_pos;
            state[b + 3u * nw] = nu_neg;
        } else if (dev.drift_path == 2u) {
            // A relaxation table: the programmed weight and the target each read redraws about.
            let b = trial_local * 2u * nw + elem;
            state[b] = wp;
            state[b + nw] = w;
        } else if (dev.drift_path == 3u) {
            // A log-time relaxation: the programmed weight (each read re-converts it).
            let b = trial_local * 2u * nw + elem;
            state[b] = wp;
            state[b + nw] = 0.0;
        } else {
            let b = trial_local * 2u * nw + elem;
            state[b] = wp;
            state[b + nw] = select(nu_neg, nu_pos, wp >= 0.0);
        }
        if (dev.drift_path == 3u) {
            // The signed range of W_prog, for the one-device re-conversion: max W and max −W.
            atomicMax(&wg_max, order_key(wp));
            atomicMax(&wg_max2, order_key(-wp));
        } else {
            // Non-negative floats order like their bit patterns, so an integer max is exact.
            atomicMax(&wg_max, bitcast<u32>(abs(wp)));
        }
    }
    workgroupBarrier();
    if (lid == 0u) {
        let o = (trial_local * ntiles + wg.y) * 2u;
        atomicMax(&progmax[o], atomicLoad(&wg_max));
        atomicMax(&progmax[o + 1u], atomicLoad(&wg_max2));
    }
}
