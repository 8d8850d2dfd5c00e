// Device physics and periphery helpers shared by the stages (no entry points).
// Equations: noise-models.md §2, §3, §7 (aihwkit PCMLikeNoiseModel / HermesNoiseModel,
// IOParameters). CPU twin: src/engine/cpu/common.rs (same names, same f32 order of operations).

// Which balanced split holds item j (inverse of split_start; src/crossbar/mod.rs split_index).
fn split_index(n: u32, parts: u32, j: u32) -> u32 {
    let base = n / parts;
    let extra = n % parts;
    let big = extra * (base + 1u);
    if (j < big) {
        return j / (base + 1u);
    }
    return extra + (j - big) / base;
}

// A piecewise fit of gr = g/g_max (kind 0: log-clamp below brk, cubic above; kind 1: power-clamp).
fn curve_eval(c: Curve, gr_in: f32) -> f32 {
    let gr = max(gr_in, 1e-7);
    if (c.kind == 0u) {
        if (gr < c.brk) {
            return clamp(c.a * log(gr) + c.b, c.lo, c.hi);
        }
        return ((c.c3 * gr + c.c2) * gr + c.c1) * gr + c.c0;
    }
    return min(c.a / max(pow(gr, c.p), c.lo), c.hi);
}

// The device as tile t sees it: its programming noise, drift exponent and read noise scaled by the
// tile's multipliers (3D tiers; all 1 otherwise). CPU twin: cpu/common.rs tile_device.
fn tile_device(d: DeviceParams, t: TileInfo) -> DeviceParams {
    var o = d;
    o.prog_scale = d.prog_scale * t.prog_mult;
    o.drift_scale = d.drift_scale * t.drift_mult;
    o.read_scale = d.read_scale * t.read_mult;
    return o;
}

// Knot j of the measured per-level table that starts at entry `at` of level_tables:
// (g/g_max, value). Read from the uniform where it lies (every stage binds P), as program.wgsl
// reads the drift table: a copy of the device's params would carry the knots through every
// invocation. CPU twin: cpu/common.rs level_knot.
fn level_knot(at: u32, j: u32) -> vec2<f32> {
    let e = P.dev.level_tables[at + (j >> 1u)];
    return select(e.xy, e.zw, (j & 1u) == 1u);
}

// A table of n knots at gr = g/g_max: linear between the knots around gr (numpy.interp's
// slope · (gr − x_j) + v_j), the end values beyond the ends. CPU twin: cpu/common.rs
// level_table_eval.
fn level_table_eval(at: u32, n: u32, gr: f32) -> f32 {
    var lo = level_knot(at, 0u);
    if (gr <= lo.x) {
        return lo.y;
    }
    for (var j = 1u; j < n; j = j + 1u) {
        let hi = level_knot(at, j);
        if (gr < hi.x) {
            let slope = (hi.y - lo.y) / (hi.x - lo.x);
            return slope * (gr - lo.x) + lo.y;
        }
        lo = hi;
    }
    return lo.y;
}

// A relaxation table's σ (µS) at its time k and x = g_T/g_max: the quartic in Horner's form,
// read from the uniform where it lies (as level_knot). CPU twin: cpu/common.rs relax_sigma.
fn relax_sigma(k: u32, x: f32) -> f32 {
    let c = P.dev.relax[2u * k];
    let c4 = P.dev.relax[2u * k + 1u].x;
    return (((c4 * x + c.w) * x + c.z) * x + c.y) * x + c.x;
}

// Programming noise std at target g (µS): a relaxation table's first time where the device has
// one (drift_path 2), a measured table where it has one (prog_knots > 0), else the cubic prog_c
// in x = g/g_max, or prog_h above prog_brk when prog_brk > 0 (AFM's OD/TD split; 0: one cubic
// everywhere).
fn sigma_prog(d: DeviceParams, g: f32) -> f32 {
    let x = g / d.g_max;
    if (d.drift_path == 2u) {
        return relax_sigma(0u, x);
    }
    if (d.prog_knots > 0u) {
        return level_table_eval(PROG_TABLE_AT, min(d.prog_knots, MAX_PROG_KNOTS), x);
    }
    if (d.prog_brk > 0.0 && x > d.prog_brk) {
        return (((d.prog_h3 * x + d.prog_h2) * x + d.prog_h1) * x + d.prog_h0) * d.prog_norm;
    }
    return (((d.prog_c3 * x + d.prog_c2) * x + d.prog_c1) * x + d.prog_c0) * d.prog_norm;
}

// Per-weight programming (prog_mode 1, AFM): one draw on the signed target g_T = s·w,
// g_T + σ(|g_T|)·N, not rectified; |g_T|/g_max below zero_below programs exactly 0. Returned as
// the pair (max(g, 0), max(−g, 0)), so (G+ − G−)/s is the programmed weight.
fn programmed_signed(d: DeviceParams, w: f32, s: f32, n: f32) -> vec2<f32> {
    let g_t = clamp(s * w, -d.g_max, d.g_max);
    var g = 0.0;
    if (abs(g_t) / d.g_max >= d.zero_below) {
        g = g_t + d.prog_scale * sigma_prog(d, abs(g_t)) * n;
    }
    return vec2<f32>(max(g, 0.0), max(-g, 0.0));
}

// Programmed conductances (G+, G-) of a differential pair with conductance scale s: both
// devices are programmed, the one with target 0 too (rectified at 0).
fn programmed_pair(d: DeviceParams, w: f32, s: f32, n: vec2<f32>) -> vec2<f32> {
    if (d.prog_mode == 1u) {
        return programmed_signed(d, w, s, n.x);
    }
    let gp_t = clamp(s * w, 0.0, d.g_max);
    let gn_t = clamp(-s * w, 0.0, d.g_max);
    let gp = max(0.0, gp_t + d.prog_scale * sigma_prog(d, gp_t) * n.x);
    let gn = max(0.0, gn_t + d.prog_scale * sigma_prog(d, gn_t) * n.y);
    return vec2<f32>(gp, gn);
}

// Programmed weight in normalised units.
fn programmed_weight(d: DeviceParams, w: f32, s: f32, n: vec2<f32>) -> f32 {
    let g = programmed_pair(d, w, s, n);
    return (g.x - g.y) / s;
}

// The 1/f read-noise amplitude Q_s at gr = g/g_max: a measured table where the device has one
// (read_knots > 0), else the model's curve. CPU twin: cpu/common.rs read_q_s.
fn read_q_s(d: DeviceParams, gr: f32) -> f32 {
    if (d.read_knots > 0u) {
        return level_table_eval(READ_TABLE_AT, min(d.read_knots, MAX_READ_KNOTS), gr);
    }
    return curve_eval(d.q_s, gr);
}

// Drift and read noise of one device with programmed conductance g (µS).
fn drift_device(d: DeviceParams, g: f32, nu: f32, log_t_ratio: f32, read_sqrt_log: f32, n_read: f32) -> f32 {
    let gd = g * exp(-nu * log_t_ratio);
    let sig = read_q_s(d, g / d.g_max) * read_sqrt_log;
    return max(0.0, gd + abs(gd) * d.read_scale * sig * n_read);
}

// The "both devices drift separately" variant: each programmed device of the pair drifts with its
// own nu and gets its own read noise; no re-conversion (the original scale s converts back).
fn drift_pair(d: DeviceParams, g: vec2<f32>, nu_pos: f32, nu_neg: f32, s: f32,
              log_t_ratio: f32, read_sqrt_log: f32, n_read: vec2<f32>) -> f32 {
    let gp = drift_device(d, g.x, nu_pos, log_t_ratio, read_sqrt_log, n_read.x);
    let gn = drift_device(d, g.y, nu_neg, log_t_ratio, read_sqrt_log, n_read.y);
    return (gp - gn) / s;
}

// Drift exponent drawn from the target conductance (folded normal), ν's mean and std from the
// model's curves (a measured table instead: program.wgsl device_nu).
fn drift_nu(d: DeviceParams, g_target: f32, n: f32) -> f32 {
    let gr = g_target / d.g_max;
    return d.drift_scale * abs(curve_eval(d.mu_nu, gr) + curve_eval(d.sigma_nu, gr) * n);
}

// aihwkit tile path: the programmed weight is re-converted with s2 = g_max / max|W_prog|, so one
// device holds |wp|·s2 and the other 0; that device drifts with the nu drawn for its target
// device, Q_s is evaluated at the programmed conductance, and the result converts back with s2.
fn drift_weight(d: DeviceParams, wp: f32, nu_pos: f32, nu_neg: f32, s2: f32,
                log_t_ratio: f32, read_sqrt_log: f32, n_read: f32) -> f32 {
    let nu = select(nu_neg, nu_pos, wp >= 0.0);
    let gf = drift_device(d, abs(wp) * s2, nu, log_t_ratio, read_sqrt_log, n_read);
    return sign(wp) * gf / s2;
}

// The conductance a tile's max|W| maps to: Σ F_k · g_max over the weight's pairs (g_max for one
// pair). CPU twin: cpu/common.rs pair_gmax.
fn pair_gmax(d: DeviceParams) -> f32 {
    if (d.pairs > 1u) {
        return (((d.pair_f.x + d.pair_f.y) + d.pair_f.z) + d.pair_f.w) * d.g_max;
    }
    return d.g_max;
}

// Whether any device is stuck (device.stuck_set or stuck_reset above 0). CPU twin:
// cpu/common.rs has_stuck.
fn has_stuck(d: DeviceParams) -> bool {
    return d.stuck_set > 0.0 || d.stuck_reset > 0.0;
}

// A device's fate from its fault draw r: 1 stuck at 0 µS (RESET), 2 stuck at g_max (SET), 0
// programmed. CPU twin: cpu/common.rs stuck_fate.
fn stuck_fate(d: DeviceParams, r: u32) -> u32 {
    let u = u01(r);
    if (u < d.stuck_reset) {
        return 1u;
    }
    if (u < d.stuck_reset + d.stuck_set) {
        return 2u;
    }
    return 0u;
}

// Pairs a weight's state holds (1 for one pair). CPU twin: cpu/common.rs pair_count.
fn pair_count(d: DeviceParams) -> u32 {
    return clamp(d.pairs, 1u, 4u);
}

// aihwkit's tile path with several pairs per weight (aihwkit NPairConductanceConverter):
// |W_prog| re-converted at s2 = Σ F_k g_max / max|W_prog| onto the pairs of its sign's side
// (pair k: the part above the lower pairs' range over F_k), each device drifted with its pair's
// exponent nu[k] and read with its own normal n[k]; a device at 0 µS stays there. Returns
// sign(W_prog) Σ F_k g_k / s2. CPU twin: cpu/common.rs drifted_pairs.
fn drifted_pairs(d: DeviceParams, wp: f32, nu: vec4<f32>, s2: f32, log_t_ratio: f32, read_sqrt_log: f32, n: vec4<f32>) -> f32 {
    let u = abs(wp) * s2;
    var acc = 0.0;
    var lower = 0.0;
    for (var k = 0u; k < pair_count(d); k = k + 1u) {
        let f = d.pair_f[k];
        let g = clamp((u - lower) / f, 0.0, d.g_max);
        if (g > 0.0) {
            acc = acc + f * drift_device(d, g, nu[k], log_t_ratio, read_sqrt_log, n[k]);
        }
        lower = lower + f * d.g_max;
    }
    return sign(wp) * acc / s2;
}

// A relaxation table's read (drift_path 2) of the weight whose target is w (normalised), at the
// table's time k: each device of the pair a fresh draw about its target g_T = clamp(±s·w),
// max(0, g_T + drift_scale·σ_k(g_T)·N), independent of the programming draw, converted back with
// the re-conversion scale s2 = g_max / max|W_prog| (aihwkit's tile: `apply_drift_noise` converts
// the programmed weights, and ReRamWan2022NoiseModel redraws about the stored targets).
fn relaxed_weight(d: DeviceParams, w: f32, s: f32, s2: f32, k: u32, n: vec2<f32>) -> f32 {
    let gp_t = clamp(s * w, 0.0, d.g_max);
    let gn_t = clamp(-s * w, 0.0, d.g_max);
    let gp = max(0.0, gp_t + d.drift_scale * relax_sigma(k, gp_t / d.g_max) * n.x);
    let gn = max(0.0, gn_t + d.drift_scale * relax_sigma(k, gn_t / d.g_max) * n.y);
    return (gp - gn) / s2;
}

// A float's bits in an order-preserving u32 (larger float, larger u32; −0 below +0), so an atomic
// maximum of the keys is the maximum of the floats. CPU twin: cpu/common.rs order_key.
fn order_key(x: f32) -> u32 {
    let b = bitcast<u32>(x);
    return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

// The float whose order_key is k. CPU twin: cpu/common.rs order_value.
fn order_value(k: u32) -> f32 {
    return bitcast<f32>(select(~k, k & 0x7fffffffu, (k & 0x80000000u) != 0u));
}

// One device per weight (prog_mode 2, aihwkit's SingleDeviceConductanceConverter): the tile's
// weights [lo, hi] mapped affinely onto [g_min, g_max], programmed to g_T + σ_prog(g_T)·N (not
// rectified), converted back. CPU twin: cpu/common.rs programmed_single.
fn programmed_single(d: DeviceParams, w: f32, lo: f32, hi: f32, n: f32) -> f32 {
    let g_min = P.dev.relax[1u].x;
    let sc = (d.g_max - g_min) / max(hi - lo, 1e-30);
    let g_t = (w - lo) * sc + g_min;
    let g = g_t + d.prog_scale * sigma_prog(d, g_t) * n;
    return lo + (g - g_min) / sc;
}

// A log-time relaxation's read (drift_path 3, aihwkit's ReRamCMONoiseModel) of the programmed
// weight wp: re-converted with its trial's tile range [lo2, hi2] onto [g_min, g_max], shifted by
// mean·ln t, spread by (std0·ln t + std1)·N₁, read with K·log10(g)·sqrt(ln((t + t_read)/(2 t_read)))·N₂,
// clamped to [g_min, g_max], converted back; at t = 0 (at = 0) wp itself. log_t is ln t,
// read_sqrt_log the square root (host, f64). CPU twin: cpu/common.rs log_relaxed_weight.
fn log_relaxed_weight(d: DeviceParams, wp: f32, lo2: f32, hi2: f32, at: u32, log_t: f32, read_sqrt_log: f32, n: vec2<f32>) -> f32 {
    if (at == 0u) {
        return wp;
    }
    let r = P.dev.relax[0u];
    let g_min = P.dev.relax[1u].x;
    let sc = (d.g_max - g_min) / max(hi2 - lo2, 1e-30);
    let g = (wp - lo2) * sc + g_min;
    let g_d = g + d.drift_scale * (r.x * log_t + (r.y * log_t + r.z) * n.x);
    // No read noise on a device already below 0 µS (it ends at g_min; aihwkit's log10 is NaN).
    // log10(g) = ln(g)·log10(e); 0.4342944819 is std::f32::consts::LOG10_E's f32 (the twin's).
    let sig = select(0.0, r.w * log(max(g_d, 1e-30)) * 0.4342944819 * read_sqrt_log, g_d > 0.0);
    let g_f = clamp(g_d + d.read_scale * sig * n.y, g_min, d.g_max);
    return lo2 + (g_f - g_min) / sc;
}

// An input clipped to the tile's input range r (0: none), as aihwkit's `apply_input_range`.
fn in_range(r: f32, v: f32) -> f32 {
    return select(v, clamp(v, -r, r), r > 0.0);
}

// The noise-management scale of an input slice, from amax = max |x| of the slice clipped to the
// tile's input range r (read by abs-max only): with a range every scale is r times aihwkit's
// (none r, constant r * nm_thres, abs-max min(max|x|, r * nm_thres)); without one (r = 0) none
// is 1 and abs-max max|x|; abs-max's 0 (an all-zero slice, whose outputs `combine` drops) is s
// when the inputs are noisy. CPU twin: src/engine/cpu/common.rs `nm_scale`.
fn nm_scale(io: IoParams, r: f32, amax: f32) -> f32 {
    let s = select(1.0, r, r > 0.0);
    if (io.nm_mode == 1u) {
        let m = select(amax, min(amax, s * io.nm_thres), io.nm_thres > 0.0);
        // With input noise an all-zero slice keeps the scale s: rpucuda then skips its short cut
        // (outputs 0) and leaves the inputs unscaled, so the noise alone reaches the outputs.
        return select(m, s, m == 0.0 && io.inp_noise > 0.0);
    }
    if (io.nm_mode == 2u) {
        return s * select(1.0, io.nm_thres, io.nm_thres > 0.0);
    }
    return s;
}

// DAC: quantise (round half to even) and clip to the DAC's range.
fn quant_in(io: IoParams, v: f32) -> f32 {
    var q = v;
    if (io.inp_step > 0.0) {
        q = round(v / io.inp_step) * io.inp_step;
    }
    return clamp(q, -io.inp_bound, io.inp_bound);
}

// Input noise after the DAC (aihwkit inp_noise, rpucuda `prepareInput`): inp_noise times the
// normal of input line k of tile `tile` for sample s of the layer's vectors at bound-management
// level `level`; each output tile draws its own. Twin: src/engine/cpu/common.rs `add_inp_noise`.
fn inp_noise_line(L: LayerParams, io: IoParams, tile: u32, trial: u32, s: u32, level: u32, k: u32) -> f32 {
    let n = inp_normals(L.vector_offset + s, trial, L.layer, L.t_index, k >> 2u, tile / L.tiles_in, tile % L.tiles_in, level, vec2<u32>(L.key0, L.key1));
    return io.inp_noise * n[k & 3u];
}

// ADC quantisation (round half to even), before clipping.
fn quant_out(io: IoParams, v: f32) -> f32 {
    var q = v;
    if (io.out_step > 0.0) {
        q = round(v / io.out_step) * io.out_step;
    }
    return q;
}

// ADC: quantise and clip to ±out_bound.
fn adc(io: IoParams, v: f32) -> f32 {
    return clamp(quant_out(io, v), -io.out_bound, io.out_bound);
}

// One element of a GDC readout (noise-models §6): row i of a tile for the one-hot input on its
// input line j of n, through the full forward path, w = W_ij. After the DAC x' = e_j, so IR drop
// (as `bound`'s full path, with Σ|W||x'| = |w| and Σ W x' (1 − (1 − k/n)²) = w (1 − (1 − j/n)²))
// shifts it before the noise; per-read weight noise (std w_noise, or w_noise·sqrt(|w|) for PCM
// read) and output noise are independent Gaussians, drawn as one z of std sqrt(out_noise² + σ_w²);
// then the ADC. Without weight noise, the expression used before (bit for bit).
fn gdc_readout(io: IoParams, w: f32, j: u32, n: u32, z: f32) -> f32 {
    var y = w;
    if (io.ir_drop > 0.0) {
        let nf = f32(n);
        let a = nf / io.ir_g_ratio * abs(w);
        let c = a * (a * (0.05 * a - 0.2) + 0.5);
        let r = 1.0 - f32(j) / nf;
        y = y - io.ir_drop * c * (w * (1.0 - r * r));
    }
    if (io.w_noise > 0.0) {
        var sw = io.w_noise;
        if (io.w_noise_type == 1u) {
            sw = io.w_noise * sqrt(abs(w));
        }
        return adc(io, y + sqrt(io.out_noise * io.out_noise + sw * sw) * z);
    }
    return adc(io, y + io.out_noise * z);
}

// One element of a GDC readout with input noise (periphery.inp_noise): every input line carries
// its noise, so row i of the readout of line j reads W_ij + inp_noise * sum_k W_ik n_k; that sum
// and the output noise are independent Gaussians, one z of std
// sqrt(out_noise² + inp_noise² row_sq) with row_sq = sum_k W_ik². (With input noise, IR drop and
// per-read weight noise are refused under GDC: their readout terms would read the noisy lines.)
fn gdc_readout_inp(io: IoParams, w: f32, row_sq: f32, z: f32) -> f32 {
    return adc(io, w + sqrt(io.out_noise * io.out_noise + io.inp_noise * io.inp_noise * row_sq) * z);
}

// Saturation as aihwkit tests it, on the quantised value q = quant_out(v): beyond the bound.
// The MVM epilogues quantise once and clip q themselves.
fn saturated(io: IoParams, q: f32) -> bool {
    return abs(q) > io.out_bound;
}

// Digital activation after a layer: 0 none, 1 ReLU, 2 GELU (tanh form), 3 tanh, 4 GELU (erf
// form), 5 SiLU.
fn activate(kind: u32, v: f32) -> f32 {
    switch kind {
        case 1u: { return max(v, 0.0); }
        case 2u: { return 0.5 * v * (1.0 + tanh(0.7978845608 * (v + 0.044715 * v * v * v))); }
        case 3u: { return tanh(v); }
        case 4u: { return 0.5 * v * (1.0 + erf_as(v * 0.70710678)); }
        case 5u: { return v / (1.0 + exp(-v)); }
        default: { return v; }
    }
}

// erf by Abramowitz & Stegun 7.1.26 (absolute error <= 1.5e-7), odd-symmetric.
fn erf_as(x: f32) -> f32 {
    let a = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    return sign(x) * (1.0 - poly * exp(-a * a));
}
