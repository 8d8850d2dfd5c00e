//! CPU twin of shaders/common/device.wgsl and the Philox helpers the stages call: the same
//! functions, the same f32 order of operations. Also the thread split the twins share.

use crate::device::{MAX_PROG_KNOTS, MAX_READ_KNOTS};
use crate::engine::layout::{Curve, DeviceParams, IoParams, LayerParams, TileInfo, PROG_TABLE_AT, READ_TABLE_AT};
pub use crate::rng::{ctr_word2, ctr_word3_out, normal2, normal4, philox4x32_10};

/// shaders/common/argmax.wgsl `first_argmax`: the first largest of a classifier's outputs.
pub fn first_argmax(out: &[f32]) -> usize {
    out.iter().enumerate().skip(1).fold(0, |b, (o, &v)| if v > out[b] { o } else { b })
}

/// shaders/common/device.wgsl `tile_device`: the device as tile `t` sees it (its programming
/// noise, drift exponent and read noise scaled by the tile's multipliers).
pub fn tile_device(d: &DeviceParams, t: &TileInfo) -> DeviceParams {
    DeviceParams { prog_scale: d.prog_scale * t.prog_mult, drift_scale: d.drift_scale * t.drift_mult, read_scale: d.read_scale * t.read_mult, ..*d }
}

/// shaders/common/layout.wgsl `row_entry`: the one-row tile entry of row r of tile `tile`.
pub fn row_entry(l: &LayerParams, tile: u32, r: u32) -> usize {
    (l.tiles_in * l.tiles_out + tile * l.max_rows + r) as usize
}

/// shaders/common/layout.wgsl `alpha_slot`: the GDC factor of (trial in chunk, tile, row r).
pub fn alpha_slot(l: &LayerParams, trial_local: u32, tile: u32, r: u32) -> usize {
    ((trial_local * l.tiles_in * l.tiles_out + tile) * l.alpha_rows + if l.alpha_rows > 1 { r } else { 0 }) as usize
}

/// shaders/common/layout.wgsl `chunk_elem`: (row, column) within tile `t` of element `lid` of its
/// 256-element chunk `wx`; row >= t.rows for an empty slot.
pub fn chunk_elem(l: &LayerParams, t: &TileInfo, wx: u32, lid: u32) -> (u32, u32) {
    if l.alpha_rows > 1 {
        let parts = l.chunks_per_tile / l.max_rows;
        let c = (wx % parts) * 256 + lid;
        return (if c < t.cols { wx / parts } else { t.rows }, c);
    }
    let e = wx * 256 + lid;
    (e / t.cols.max(1), e % t.cols.max(1))
}

pub fn split_index(n: u32, parts: u32, j: u32) -> u32 {
    crate::crossbar::split_index(n, parts, j)
}

#[inline(always)]
pub fn curve_eval(c: &Curve, gr_in: f32) -> f32 {
    let gr = gr_in.max(1e-7);
    if c.kind == 0 {
        if gr < c.brk {
            return (c.a * gr.ln() + c.b).clamp(c.lo, c.hi);
        }
        return ((c.c3 * gr + c.c2) * gr + c.c1) * gr + c.c0;
    }
    (c.a / gr.powf(c.p).max(c.lo)).min(c.hi)
}

/// shaders/common/device.wgsl `level_knot`: knot j of the measured per-level table that starts
/// at entry `at` of `level_tables`, (g/g_max, value), two knots per entry.
#[inline(always)]
pub fn level_knot(d: &DeviceParams, at: usize, j: usize) -> [f32; 2] {
    let e = d.level_tables[at + (j >> 1)];
    if j & 1 == 1 {
        [e[2], e[3]]
    } else {
        [e[0], e[1]]
    }
}

/// shaders/common/device.wgsl `level_table_eval`: a table of n knots at gr.
#[inline(always)]
pub fn level_table_eval(d: &DeviceParams, at: usize, n: usize, gr: f32) -> f32 {
    let mut lo = level_knot(d, at, 0);
    if gr <= lo[0] {
        return lo[1];
    }
    for j in 1..n {
        let hi = level_knot(d, at, j);
        if gr < hi[0] {
            let slope = (hi[1] - lo[1]) / (hi[0] - lo[0]);
            return slope * (gr - lo[0]) + lo[1];
        }
        lo = hi;
    }
    lo[1]
}

/// shaders/common/device.wgsl `relax_sigma`: a relaxation table's σ (µS) at its time k and
/// x = g_T/g_max.
#[inline(always)]
pub fn relax_sigma(d: &DeviceParams, k: usize, x: f32) -> f32 {
    let c = d.relax[2 * k];
    let c4 = d.relax[2 * k + 1][0];
    (((c4 * x + c[3]) * x + c[2]) * x + c[1]) * x + c[0]
}

/// shaders/common/device.wgsl `relaxed_weight`: a relaxation table's read at its time k of the
/// weight with target w (normalised), re-converted with s2.
#[inline(always)]
pub fn relaxed_weight(d: &DeviceParams, w: f32, s: f32, s2: f32, k: usize, n: [f32; 2]) -> f32 {
    let gp_t = (s * w).clamp(0.0, d.g_max);
    let gn_t = (-s * w).clamp(0.0, d.g_max);
    let gp = (gp_t + d.drift_scale * relax_sigma(d, k, gp_t / d.g_max) * n[0]).max(0.0);
    let gn = (gn_t + d.drift_scale * relax_sigma(d, k, gn_t / d.g_max) * n[1]).max(0.0);
    (gp - gn) / s2
}

/// shaders/common/device.wgsl `order_key`: a float's bits as an order-preserving u32.
#[inline(always)]
pub fn order_key(x: f32) -> u32 {
    let b = x.to_bits();
    if b & 0x8000_0000 != 0 {
        !b
    } else {
        b | 0x8000_0000
    }
}

/// shaders/common/device.wgsl `order_value`: the float whose [`order_key`] is k.
#[inline(always)]
pub fn order_value(k: u32) -> f32 {
    f32::from_bits(if k & 0x8000_0000 != 0 { k & 0x7fff_ffff } else { !k })
}

/// log10(e), the literal of shaders/common/device.wgsl `log_relaxed_weight` (the twins test
/// compares the stage's outputs bit for bit on lavapipe).
pub const LOG10_E: f32 = std::f32::consts::LOG10_E;

/// shaders/common/device.wgsl `programmed_single`: one device per weight on [g_min, g_max].
#[inline(always)]
pub fn programmed_single(d: &DeviceParams, w: f32, lo: f32, hi: f32, n: f32) -> f32 {
    let g_min = d.relax[1][0];
    let sc = (d.g_max - g_min) / (hi - lo).max(1e-30);
    let g_t = (w - lo) * sc + g_min;
    let g = g_t + d.prog_scale * sigma_prog(d, g_t) * n;
    lo + (g - g_min) / sc
}

/// shaders/common/device.wgsl `log_relaxed_weight`: a log-time relaxation's read of wp.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn log_relaxed_weight(d: &DeviceParams, wp: f32, lo2: f32, hi2: f32, at: u32, log_t: f32, read_sqrt_log: f32, n: [f32; 2]) -> f32 {
    if at == 0 {
        return wp;
    }
    let r = d.relax[0];
    let g_min = d.relax[1][0];
    let sc = (d.g_max - g_min) / (hi2 - lo2).max(1e-30);
    let g = (wp - lo2) * sc + g_min;
    let g_d = g + d.drift_scale * (r[0] * log_t + (r[1] * log_t + r[2]) * n[0]);
    let sig = if g_d > 0.0 { r[3] * g_d.max(1e-30).ln() * LOG10_E * read_sqrt_log } else { 0.0 };
    let g_f = (g_d + d.read_scale * sig * n[1]).clamp(g_min, d.g_max);
    lo2 + (g_f - g_min) / sc
}

/// shaders/common/device.wgsl `sigma_prog`: a relaxation table's first time, the measured
/// table's σ, or the polynomials'.
#[inline(always)]
pub fn sigma_prog(d: &DeviceParams, g: f32) -> f32 {
    if d.drift_path == 2 {
        return relax_sigma(d, 0, g / d.g_max);
    }
    if d.prog_knots > 0 {
        return level_table_eval(d, PROG_TABLE_AT, (d.prog_knots as usize).min(MAX_PROG_KNOTS), g / d.g_max);
    }
    sigma_prog_poly(d, g)
}

/// [`sigma_prog`] of a device without a table (`prog_knots` = 0, `drift_path` ≠ 2): the
/// polynomials, for loops that test the tables once outside.
#[inline(always)]
pub fn sigma_prog_poly(d: &DeviceParams, g: f32) -> f32 {
    let x = g / d.g_max;
    if d.prog_brk > 0.0 && x > d.prog_brk {
        return (((d.prog_h3 * x + d.prog_h2) * x + d.prog_h1) * x + d.prog_h0) * d.prog_norm;
    }
    (((d.prog_c3 * x + d.prog_c2) * x + d.prog_c1) * x + d.prog_c0) * d.prog_norm
}

/// shaders/common/device.wgsl `programmed_signed`: per-weight programming (AFM).
#[inline(always)]
pub fn programmed_signed(d: &DeviceParams, w: f32, s: f32, n: f32) -> [f32; 2] {
    let g_t = (s * w).clamp(-d.g_max, d.g_max);
    let mut g = 0.0f32;
    if g_t.abs() / d.g_max >= d.zero_below {
        g = g_t + d.prog_scale * sigma_prog(d, g_t.abs()) * n;
    }
    [g.max(0.0), (-g).max(0.0)]
}

#[inline(always)]
pub fn programmed_pair(d: &DeviceParams, w: f32, s: f32, n: [f32; 2]) -> [f32; 2] {
    if d.prog_mode == 1 {
        return programmed_signed(d, w, s, n[0]);
    }
    let gp_t = (s * w).clamp(0.0, d.g_max);
    let gn_t = (-s * w).clamp(0.0, d.g_max);
    let gp = (gp_t + d.prog_scale * sigma_prog(d, gp_t) * n[0]).max(0.0);
    let gn = (gn_t + d.prog_scale * sigma_prog(d, gn_t) * n[1]).max(0.0);
    [gp, gn]
}

pub fn programmed_weight(d: &DeviceParams, w: f32, s: f32, n: [f32; 2]) -> f32 {
    let g = programmed_pair(d, w, s, n);
    (g[0] - g[1]) / s
}

/// shaders/common/device.wgsl `read_q_s`: Q_s at gr from the measured table, else the curve.
#[inline(always)]
pub fn read_q_s(d: &DeviceParams, gr: f32) -> f32 {
    if d.read_knots > 0 {
        return level_table_eval(d, READ_TABLE_AT, (d.read_knots as usize).min(MAX_READ_KNOTS), gr);
    }
    curve_eval(&d.q_s, gr)
}

#[inline(always)]
pub fn drift_device(d: &DeviceParams, g: f32, nu: f32, log_t_ratio: f32, read_sqrt_log: f32, n_read: f32) -> f32 {
    let gd = g * (-nu * log_t_ratio).exp();
    let sig = read_q_s(d, g / d.g_max) * read_sqrt_log;
    (gd + gd.abs() * d.read_scale * sig * n_read).max(0.0)
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn drift_pair(d: &DeviceParams, g: [f32; 2], nu_pos: f32, nu_neg: f32, s: f32, log_t_ratio: f32, read_sqrt_log: f32, n_read: [f32; 2]) -> f32 {
    let gp = drift_device(d, g[0], nu_pos, log_t_ratio, read_sqrt_log, n_read[0]);
    let gn = drift_device(d, g[1], nu_neg, log_t_ratio, read_sqrt_log, n_read[1]);
    (gp - gn) / s
}

/// shaders/program.wgsl `nu_table_eval`: a measured drift table's (ν mean, ν std) at gr.
#[inline(always)]
pub fn nu_table_eval(d: &DeviceParams, gr: f32) -> [f32; 2] {
    let n = (d.nu_knots as usize).min(d.nu_table.len());
    let t = &d.nu_table;
    if gr <= t[0][0] {
        return [t[0][1], t[0][2]];
    }
    for j in 1..n {
        let (lo, hi) = (t[j - 1], t[j]);
        if gr < hi[0] {
            let dx = hi[0] - lo[0];
            let slope = [(hi[1] - lo[1]) / dx, (hi[2] - lo[2]) / dx];
            return [slope[0] * (gr - lo[0]) + lo[1], slope[1] * (gr - lo[0]) + lo[2]];
        }
    }
    [t[n - 1][1], t[n - 1][2]]
}

/// shaders/common/device.wgsl `drift_nu`: ν from the model's curves.
#[inline(always)]
pub fn drift_nu(d: &DeviceParams, g_target: f32, n: f32) -> f32 {
    let gr = g_target / d.g_max;
    d.drift_scale * (curve_eval(&d.mu_nu, gr) + curve_eval(&d.sigma_nu, gr) * n).abs()
}

/// shaders/program.wgsl `device_nu`: ν from the measured table where there is one, else the curves.
#[inline(always)]
pub fn device_nu(d: &DeviceParams, g_target: f32, n: f32) -> f32 {
    if d.nu_knots > 0 {
        let [m, s] = nu_table_eval(d, g_target / d.g_max);
        return d.drift_scale * (m + s * n).abs();
    }
    drift_nu(d, g_target, n)
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn drift_weight(d: &DeviceParams, wp: f32, nu_pos: f32, nu_neg: f32, s2: f32, log_t_ratio: f32, read_sqrt_log: f32, n_read: f32) -> f32 {
    let nu = if wp >= 0.0 { nu_pos } else { nu_neg };
    let gf = drift_device(d, wp.abs() * s2, nu, log_t_ratio, read_sqrt_log, n_read);
    wgsl_sign(wp) * gf / s2
}

/// shaders/common/device.wgsl `pair_gmax`: the conductance a tile's max|W| maps to, Σ F_k · g_max
/// over the weight's pairs (g_max for one pair, computed as before pairs existed).
#[inline(always)]
pub fn pair_gmax(d: &DeviceParams) -> f32 {
    if d.pairs > 1 {
        (((d.pair_f[0] + d.pair_f[1]) + d.pair_f[2]) + d.pair_f[3]) * d.g_max
    } else {
        d.g_max
    }
}

/// Pairs a weight's state holds (1 for one pair or a zeroed `DeviceParams`).
#[inline(always)]
pub fn pair_count(d: &DeviceParams) -> usize {
    (d.pairs as usize).clamp(1, crate::device::MAX_PAIRS)
}

/// shaders/common/device.wgsl `has_stuck`: whether any device is stuck.
#[inline(always)]
pub fn has_stuck(d: &DeviceParams) -> bool {
    d.stuck_set > 0.0 || d.stuck_reset > 0.0
}

/// shaders/common/device.wgsl `stuck_fate`: a device's fate from its fault draw r: 1 stuck at
/// 0 µS (RESET, u01(r) < stuck_reset), 2 stuck at g_max (SET, below stuck_reset + stuck_set), 0
/// programmed.
#[inline(always)]
pub fn stuck_fate(d: &DeviceParams, r: u32) -> u32 {
    let u = crate::rng::u01(r);
    if u < d.stuck_reset {
        1
    } else if u < d.stuck_reset + d.stuck_set {
        2
    } else {
        0
    }
}

/// shaders/program.wgsl `programmed_pairs`: a weight on one or several conductance pairs
/// (aihwkit's `NPairConductanceConverter`, noise-models §2 with significance factors F_k), with
/// stuck devices. Pair k holds the part of |s·w| above the lower pairs' range over F_k
/// (`DeviceModel::pair_targets`); its two devices are programmed from block k of the weight's
/// programming counter (`block(k)`: words 0 and 1 the G+ and G− noise, 2 and 3 their drift
/// exponents' draws, from the targets). With stuck devices, `fate(k)` is pair k's fault block
/// (words 0 and 1 for G+ and G−, [`stuck_fate`]): a stuck device sits at 0 µS or g_max and does
/// not drift (exponent 0). Returns the programmed weight Σ F_k (G+_k − G−_k) / s and, per pair,
/// the drift exponent of the device on its sign's side (aihwkit's tile path drifts that device;
/// the other is at 0 µS). One pair without stuck devices gives `programmed_pair`'s weight.
#[allow(clippy::needless_range_loop)] // indexed as the shader indexes
#[inline(always)]
pub fn programmed_pairs(
    d: &DeviceParams,
    w: f32,
    s: f32,
    block: impl Fn(u32) -> [f32; 4],
    fate: impl Fn(u32) -> [u32; 4],
) -> (f32, [f32; crate::device::MAX_PAIRS]) {
    let u = s * w;
    let (up, un) = (u.max(0.0), (-u).max(0.0));
    let (mut acc, mut lower) = (0.0f32, 0.0f32);
    let mut nu = [[0f32; crate::device::MAX_PAIRS]; 2];
    for k in 0..pair_count(d) {
        // One pair's factor cancels (its scale is g_max / max|W|, as `pair_gmax` gives).
        let f = if d.pairs > 1 { d.pair_f[k] } else { 1.0 };
        let n = block(k as u32);
        let gp_t = ((up - lower) / f).clamp(0.0, d.g_max);
        let gn_t = ((un - lower) / f).clamp(0.0, d.g_max);
        let mut gp = (gp_t + d.prog_scale * sigma_prog(d, gp_t) * n[0]).max(0.0);
        let mut gn = (gn_t + d.prog_scale * sigma_prog(d, gn_t) * n[1]).max(0.0);
        nu[0][k] = device_nu(d, gp_t, n[2]);
        nu[1][k] = device_nu(d, gn_t, n[3]);
        if has_stuck(d) {
            let r = fate(k as u32);
            for (side, g) in [&mut gp, &mut gn].into_iter().enumerate() {
                match stuck_fate(d, r[side]) {
                    1 => (*g, nu[side][k]) = (0.0, 0.0),
                    2 => (*g, nu[side][k]) = (d.g_max, 0.0),
                    _ => {}
                }
            }
        }
        acc += f * (gp - gn);
        lower += f * d.g_max;
    }
    let wp = acc / s;
    (wp, if wp >= 0.0 { nu[0] } else { nu[1] })
}

/// shaders/common/device.wgsl `drifted_pairs`: aihwkit's tile path with several pairs. |W_prog|
/// re-converted at s2 = Σ F_k g_max / max|W_prog| onto the pairs of its sign's side, each device
/// drifted with its pair's exponent `nu[k]` and read with its own normal `n[k]`; a device at
/// 0 µS stays there (drift and read noise scale with g). Returns sign(W_prog) Σ F_k g_k / s2.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn drifted_pairs(d: &DeviceParams, wp: f32, nu: [f32; crate::device::MAX_PAIRS], s2: f32, log_t_ratio: f32, read_sqrt_log: f32, n: [f32; 4]) -> f32 {
    let u = wp.abs() * s2;
    let (mut acc, mut lower) = (0.0f32, 0.0f32);
    for k in 0..pair_count(d) {
        let f = d.pair_f[k];
        let g = ((u - lower) / f).clamp(0.0, d.g_max);
        if g > 0.0 {
            acc += f * drift_device(d, g, nu[k], log_t_ratio, read_sqrt_log, n[k]);
        }
        lower += f * d.g_max;
    }
    wgsl_sign(wp) * acc / s2
}

/// shaders/drift.wgsl `pair_read_normals`: the read-noise normals of a weight's pairs at one
/// time: pairs 0 and 1 from words 0 and 1 of the weight's read block `nr` (the one-pair block),
/// pairs 2 and 3 from words 0 and 1 of the block at counter word 3 = 1 (drawn only with more
/// than two pairs). `ctr`: the read block's first three counter words.
#[inline(always)]
pub fn pair_read_normals(d: &DeviceParams, nr: [f32; 4], ctr: [u32; 3], key: [u32; 2]) -> [f32; 4] {
    if d.pairs > 2 {
        let n2 = normal4(philox4x32_10([ctr[0], ctr[1], ctr[2], 1], key));
        [nr[0], nr[1], n2[0], n2[1]]
    } else {
        [nr[0], nr[1], 0.0, 0.0]
    }
}

/// WGSL `sign`: 0 at 0 (Rust's `signum` gives ±1).
#[inline(always)]
pub fn wgsl_sign(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// An input clipped to the tile's input range r (0: none), as aihwkit's `apply_input_range`.
#[inline(always)]
pub fn in_range(r: f32, v: f32) -> f32 {
    if r > 0.0 {
        v.clamp(-r, r)
    } else {
        v
    }
}

/// The noise-management scale of an input slice (what its inputs are divided by before the DAC
/// and its outputs multiplied by after the ADC), from `amax` = max |x| of the slice clipped to
/// the tile's input range r (read by abs-max only). With a range the inputs are first divided by
/// r (aihwkit's `pre_forward`), so every scale is r times aihwkit's: none r, constant r · nm_thres,
/// abs-max min(max|x|, r · nm_thres). Without one (r = 0) none is 1 and abs-max max|x|.
#[inline(always)]
pub fn nm_scale(io: &IoParams, r: f32, amax: f32) -> f32 {
    let s = if r > 0.0 { r } else { 1.0 };
    match io.nm_mode {
        // With input noise an all-zero slice keeps the scale s (rpucuda skips its short cut).
        1 if io.inp_noise > 0.0 && amax == 0.0 => s,
        1 if io.nm_thres > 0.0 => amax.min(s * io.nm_thres),
        1 => amax,
        2 => s * if io.nm_thres > 0.0 { io.nm_thres } else { 1.0 },
        _ => s,
    }
}

/// shaders/common/device.wgsl `inp_noise_line`, for a whole slice: adds each input line's noise
/// to the quantised inputs `xw` of one vector of tile `tile` (lines 0 .. xw.len()) at
/// bound-management level `level`, one Philox block per four lines.
pub fn add_inp_noise(l: &LayerParams, io: &IoParams, tile: u32, trial: u32, s: u32, level: u32, xw: &mut [f32]) {
    for (k4, lines) in xw.chunks_mut(4).enumerate() {
        let n =
            crate::rng::inp_normals(l.vector_offset + s, trial, l.layer, l.t_index, k4 as u32, tile / l.tiles_in, tile % l.tiles_in, level, [l.key0, l.key1]);
        for (x, z) in lines.iter_mut().zip(n) {
            *x += io.inp_noise * z;
        }
    }
}

#[inline(always)]
pub fn quant_in(io: &IoParams, v: f32) -> f32 {
    let mut q = v;
    if io.inp_step > 0.0 {
        q = (v / io.inp_step).round_ties_even() * io.inp_step;
    }
    q.clamp(-io.inp_bound, io.inp_bound)
}

#[inline(always)]
pub fn quant_out(io: &IoParams, v: f32) -> f32 {
    let mut q = v;
    if io.out_step > 0.0 {
        q = (v / io.out_step).round_ties_even() * io.out_step;
    }
    q
}

#[inline(always)]
pub fn adc(io: &IoParams, v: f32) -> f32 {
    quant_out(io, v).clamp(-io.out_bound, io.out_bound)
}

/// shaders/common/device.wgsl `gdc_readout`: one element of a GDC readout (noise-models §6), the
/// output of row i of a tile for the one-hot input on its input line `j` of `n`, through the full
/// forward path with the weight `w` = W_ij. After the DAC x' = e_j (abs-max noise management), so
/// the full-path MVM (`bound_level`) reduces to: IR drop with Σ_k |W_ik||x'_k| = |w| and
/// Σ_k W_ik x'_k (1 − (1 − k/n)²) = w (1 − (1 − j/n)²), a deterministic shift before the noise;
/// per-read weight noise of std w_noise (additive constant, ‖x'‖₂ = 1) or w_noise·sqrt(|w|) (PCM
/// read), independent of the output noise, so both are one Gaussian `z` of std
/// sqrt(out_noise² + σ_w²); then the ADC. Without weight noise the expression is the one used
/// before the full path reached the readout, so those results stay bit for bit.
#[inline(always)]
pub fn gdc_readout(io: &IoParams, w: f32, j: u32, n: u32, z: f32) -> f32 {
    let mut y = w;
    if io.ir_drop > 0.0 {
        let nf = n as f32;
        let a = nf / io.ir_g_ratio * w.abs();
        let c = a * (a * (0.05 * a - 0.2) + 0.5);
        let r = 1.0 - j as f32 / nf;
        y -= io.ir_drop * c * (w * (1.0 - r * r));
    }
    if io.w_noise > 0.0 {
        let sw = if io.w_noise_type == 1 { io.w_noise * w.abs().sqrt() } else { io.w_noise };
        return adc(io, y + (io.out_noise * io.out_noise + sw * sw).sqrt() * z);
    }
    adc(io, y + io.out_noise * z)
}

/// shaders/common/device.wgsl `gdc_readout_inp`: one element of a GDC readout with input noise,
/// w plus one normal of std sqrt(out_noise² + inp_noise² · row_sq), then the ADC.
pub fn gdc_readout_inp(io: &IoParams, w: f32, row_sq: f32, z: f32) -> f32 {
    adc(io, w + (io.out_noise * io.out_noise + io.inp_noise * io.inp_noise * row_sq).sqrt() * z)
}

#[inline(always)]
/// `q`: the quantised value `quant_out(v)`.
pub fn saturated(io: &IoParams, q: f32) -> bool {
    q.abs() > io.out_bound
}

#[inline(always)]
pub fn activate(kind: u32, v: f32) -> f32 {
    match kind {
        1 => v.max(0.0),
        2 => 0.5 * v * (1.0 + (0.797_884_6 * (v + 0.044715 * v * v * v)).tanh()),
        3 => v.tanh(),
        4 => 0.5 * v * (1.0 + erf_as(v * std::f32::consts::FRAC_1_SQRT_2)),
        5 => v / (1.0 + (-v).exp()),
        _ => v,
    }
}

/// erf by Abramowitz & Stegun 7.1.26 (absolute error <= 1.5e-7), as shaders/common/device.wgsl.
pub fn erf_as(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_8 + t * (-1.453_152 + t * 1.061_405_4))));
    (1.0 - poly * (-a * a).exp()).copysign(x)
}

/// Runs `f(first_trial, n, out)` on disjoint trial ranges in parallel; `out` is split so each
/// range gets `per_trial` consecutive items per trial (buffers are trial-major).
pub fn par_trials<T: Send>(threads: usize, trials: usize, out: &mut [T], per_trial: usize, f: impl Fn(usize, usize, &mut [T]) + Sync) {
    let threads = threads.max(1).min(trials.max(1));
    let per = trials.div_ceil(threads).max(1);
    let out = &mut out[..trials * per_trial];
    if threads == 1 {
        f(0, trials, out);
        return;
    }
    std::thread::scope(|sc| {
        for (i, part) in out.chunks_mut(per * per_trial).enumerate() {
            let f = &f;
            sc.spawn(move || f(i * per, part.len() / per_trial.max(1), part));
        }
    });
}

/// As [`par_trials`] for stages with two trial-major outputs.
#[allow(clippy::too_many_arguments)]
pub fn par_trials2<T: Send, U: Send>(
    threads: usize,
    trials: usize,
    a: &mut [T],
    a_per: usize,
    b: &mut [U],
    b_per: usize,
    f: impl Fn(usize, usize, &mut [T], &mut [U]) + Sync,
) {
    let threads = threads.max(1).min(trials.max(1));
    let per = trials.div_ceil(threads).max(1);
    let (a, b) = (&mut a[..trials * a_per], &mut b[..trials * b_per]);
    if threads == 1 {
        f(0, trials, a, b);
        return;
    }
    std::thread::scope(|sc| {
        for (i, (pa, pb)) in a.chunks_mut(per * a_per).zip(b.chunks_mut(per * b_per)).enumerate() {
            let f = &f;
            let n = (trials - i * per).min(per);
            sc.spawn(move || f(i * per, n, pa, pb));
        }
    });
}

/// [`par_trials2`] over the two trial-major outputs of the MVM stages (`mvm`, `mvm_full`, `bound`
/// and their fast kernels): per trial, the partial outputs `y` (input tiles × batch × n_out) and
/// one word per vector (batch × tiles: `sat`'s flags, or `bound`'s levels).
pub fn par_gemm_trials(threads: usize, l: &LayerParams, y: &mut [f32], per_vector: &mut [u32], f: impl Fn(usize, usize, &mut [f32], &mut [u32]) + Sync) {
    let (batch, ntiles) = (l.batch as usize, (l.tiles_in * l.tiles_out) as usize);
    par_trials2(threads, l.trials as usize, y, l.tiles_in as usize * batch * l.n_out as usize, per_vector, batch * ntiles, f);
}

/// Runs `f` on every unit, the units split over at most `threads` threads in contiguous groups
/// (the fast `program` and `drift` run a trial's tiles this way).
pub fn par_units<U: Send>(threads: usize, units: &mut [U], f: impl Fn(&mut U) + Sync) {
    let threads = threads.clamp(1, units.len().max(1));
    if threads == 1 {
        units.iter_mut().for_each(f);
        return;
    }
    let per = units.len().div_ceil(threads);
    std::thread::scope(|sc| {
        for group in units.chunks_mut(per) {
            let f = &f;
            sc.spawn(move || group.iter_mut().for_each(f));
        }
    });
}

/// The rows one unit of work of a GEMM stage's fast kernel writes: the vectors `vecs` of trial
/// `trial_local`, as one slice of `y` per input tile (`y(ti, s)`: the output row of vector `s`)
/// and one word per (vector, tile) (`word(s, tile)`: `sat`'s flags or `bound`'s levels).
pub struct VectorRows<'a> {
    pub trial_local: usize,
    pub vecs: std::ops::Range<usize>,
    ys: Vec<&'a mut [f32]>,
    words: &'a mut [u32],
    n_out: usize,
    ntiles: usize,
}

impl VectorRows<'_> {
    /// Vector `s`'s outputs from input tile `ti` (all n_out of them).
    #[inline(always)]
    pub fn y(&mut self, ti: usize, s: usize) -> &mut [f32] {
        &mut self.ys[ti][(s - self.vecs.start) * self.n_out..][..self.n_out]
    }

    /// Vector `s`'s word for tile `tile`.
    #[inline(always)]
    pub fn word(&mut self, s: usize, tile: usize) -> &mut u32 {
        &mut self.words[(s - self.vecs.start) * self.ntiles + tile]
    }
}

/// Vectors a unit of [`par_vectors`] keeps at least (a GEMM of fewer rows is mostly packing).
const MIN_UNIT_VECTORS: usize = 16;

/// Runs `f(scratch, rows)` over units of the layer's (trial, vectors), in parallel, with one
/// `scratch()` per thread. With at least as many trials as threads a unit is a whole trial (as
/// [`par_gemm_trials`]); with fewer, each trial's vectors split into `threads / trials` ranges,
/// so a single trial (a large model's one noisy pass) still runs on every thread. Every output
/// depends only on its own (trial, vector): sums run over k within a vector, never across
/// vectors, and the Philox counters name the vector, so the split changes no bit.
pub fn par_vectors<S>(
    threads: usize,
    l: &LayerParams,
    y: &mut [f32],
    words: &mut [u32],
    scratch: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, &mut VectorRows) + Sync,
) {
    let (trials, batch, tin) = (l.trials as usize, l.batch as usize, l.tiles_in as usize);
    let (n_out, ntiles) = (l.n_out as usize, (l.tiles_in * l.tiles_out) as usize);
    let threads = threads.max(1);
    let parts = if trials >= threads { 1 } else { (threads / trials.max(1)).min(batch.div_ceil(MIN_UNIT_VECTORS)).max(1) };
    let per = batch.div_ceil(parts).max(1);
    let (y, words) = (&mut y[..trials * tin * batch * n_out], &mut words[..trials * batch * ntiles]);
    let mut units = Vec::with_capacity(trials * parts);
    for (z, (yz, wz)) in y.chunks_mut((tin * batch * n_out).max(1)).zip(words.chunks_mut((batch * ntiles).max(1))).enumerate() {
        let mut rest_y: Vec<&mut [f32]> = yz.chunks_mut((batch * n_out).max(1)).collect();
        let mut rest_w = wz;
        for s0 in (0..batch).step_by(per) {
            let n = per.min(batch - s0);
            let ys = rest_y
                .iter_mut()
                .map(|r| {
                    let (a, b) = std::mem::take(r).split_at_mut(n * n_out);
                    *r = b;
                    a
                })
                .collect();
            let (w, b) = std::mem::take(&mut rest_w).split_at_mut(n * ntiles);
            rest_w = b;
            units.push(VectorRows { trial_local: z, vecs: s0..s0 + n, ys, words: w, n_out, ntiles });
        }
    }
    let threads = threads.min(units.len()).max(1);
    if threads == 1 {
        let mut s = scratch();
        units.iter_mut().for_each(|u| f(&mut s, u));
        return;
    }
    let per_thread = units.len().div_ceil(threads);
    std::thread::scope(|sc| {
        for group in units.chunks_mut(per_thread) {
            let (f, scratch) = (&f, &scratch);
            sc.spawn(move || {
                let mut s = scratch();
                group.iter_mut().for_each(|u| f(&mut s, u));
            });
        }
    });
}

/// The end of an `mvm` pass at bound-management level `level` (0 or 1) that ran over the layer's
/// vectors (trials × batch × tiles): `nsat[level]` counts the vectors flagged with bit
/// `1 << level`, and the level-1 pass records level 1 for every vector it redid (those flagged at
/// level 0; `bound` overwrites the ones it takes further).
pub fn finish_mvm_pass(level: u32, l: &LayerParams, sat: &[u32], nsat: &mut [u32], bm_level: &mut [u32]) {
    let vectors = (l.trials * l.batch * l.tiles_in * l.tiles_out) as usize;
    let bit = 1u32 << level;
    nsat[level as usize] = sat[..vectors].iter().filter(|&&f| f & bit != 0).count() as u32;
    if level == 1 {
        for (b, &f) in bm_level[..vectors].iter_mut().zip(&sat[..vectors]) {
            if f & 1 != 0 {
                *b = 1;
            }
        }
    }
}

/// Whether bound management's level-1 redo of this layer runs as the GEMM's second pass (`dac`
/// and `mvm`/`mvm_full` at bm_pass 1, then `bound` from level 2 on the vectors flagged again):
/// at least 1 / REDO_GEMM_SHARE of the layer's vectors saturated at level 0 (`nsat[0]`).
/// Otherwise those passes do nothing and `bound` redoes the flagged vectors from level 1.
pub fn redo_in_gemm(l: &LayerParams, nsat: &[u32]) -> bool {
    // nsat · share ≥ vectors, as the shaders write it (no u32 overflow).
    let share = crate::engine::stages::REDO_GEMM_SHARE;
    nsat[0] != 0 && nsat[0] >= l.redo_vectors.div_ceil(share)
}

/// Whether an `mvm` pass at `level` flags the vectors that saturate for the next level: bound
/// management on and the reduction 2^level below the last one tried (`bm_max_red`, aihwkit's
/// stopping rule computed on the host by `crossbar::bm_last_reduction`).
pub fn mvm_flags(io: &IoParams, level: u32) -> bool {
    io.bm_mode == 1 && ((1u32 << level) as f32) < io.bm_max_red
}

/// The shaders' workgroup reduction: halves summed pairwise down to lane 0 (a power-of-two
/// length), so the twins add in the same order as the GPU.
pub fn tree_sum(lanes: &mut [f32]) -> f32 {
    let mut half = lanes.len() / 2;
    while half > 0 {
        for l in 0..half {
            lanes[l] += lanes[l + half];
        }
        half /= 2;
    }
    lanes[0]
}
