//! The crossbar periphery of hardware-aware training's forward pass (`src/train/hwa.rs`): one
//! MVM as the evaluation's tiles compute it (the engine's `dac`, `mvm` epilogue, tile split and
//! weight scaling, `crossbar::MappedMatrix`; aihwkit's forward `IOParameters` with abs-max noise
//! management): a layer's input split evenly over tiles of at most `max_in` rows, each slice
//! quantised by the DAC over its own max|x| (Δ = 2/(2^bits − 2)), multiplied, given output noise
//! σ = out_noise·α (and per-read weight noise, `w_noise`) and passed through the ADC (steps
//! 2·out_bound/(2^bits − 2), clipped at ±out_bound, both in units of α = max|x̂|, times
//! max|W|/ω per tile or column with weight scaling ω > 0), the slices' outputs and the bias
//! added digitally; with iterative bound management a saturated tile is computed again with its
//! input halved ([`Injector::bound_redo`]). The backward pass takes the rounding's gradient as 1
//! (straight-through) and a clipped output's as 0 (the clamp's derivative), which [`Clipped`]
//! records per tile output.

use std::ops::Range;

use super::injector::{abs_max, Injector};
use crate::crossbar::{split_len, split_start};

/// The input slices of a layer with `n_in` inputs on tiles of at most `max_in` rows, as the
/// engine maps it (`crossbar::MappedMatrix`): ⌈n_in / max_in⌉ tiles, the inputs split evenly
/// (768 inputs on 512-row tiles are two slices of 384).
pub fn tile_ranges(n_in: usize, max_in: usize) -> impl Iterator<Item = Range<usize>> {
    let parts = n_in.div_ceil(max_in.max(1)) as u32;
    (0..parts).map(move |i| {
        let a = split_start(n_in as u32, parts, i) as usize;
        a..a + split_len(n_in as u32, parts, i) as usize
    })
}

impl Injector {
    /// Whether outputs go through an ADC (quantised or clipped).
    pub fn has_adc(&self) -> bool {
        self.cfg.adc_bits > 0 || self.cfg.out_bound > 0.0
    }

    /// The input slices of a layer with `n_in` inputs, one per tile ([`tile_ranges`]).
    pub fn tiles(&self, n_in: usize) -> impl Iterator<Item = Range<usize>> {
        tile_ranges(n_in, self.cfg.max_in)
    }

    /// The ADC on one output `v` in units of its input slice's max|x|: rounded to the step
    /// 2·out_bound / (2^adc_bits − 2) (ties to even, as the engine's `quant_out`) and clipped to
    /// ±out_bound; identity without an ADC.
    pub fn adc(&self, v: f32) -> f32 {
        self.adc_clipped(v).0
    }

    /// [`Injector::adc`] and whether the clamp acted: the rounded value lies beyond ±out_bound
    /// (the engine's `saturated`). The gradient of a clipped output is zero.
    pub fn adc_clipped(&self, v: f32) -> (f32, bool) {
        let step = crate::crossbar::step(self.cfg.adc_bits, self.cfg.out_bound) as f32;
        let q = if step > 0.0 { (v / step).round_ties_even() * step } else { v };
        let b = self.cfg.out_bound as f32;
        if b > 0.0 && q.abs() > b {
            (q.clamp(-b, b), true)
        } else {
            (q, false)
        }
    }

    /// The weight scales of a matrix [n_out, n_in] (entries `w(o, k)`) on its tiles, one per
    /// output and input tile (`o · tiles + t`), as the engine's mapping computes them
    /// (`crossbar::MappedMatrix`): with ω = `weight_scaling_omega` > 0 each tile, or with
    /// `weight_scaling_columnwise` each output column of a tile, is rescaled to max|W| = ω, so its
    /// outputs, output noise and ADC are in units of max|W| / ω; an all-zero tile or column
    /// keeps 1. Output tiles split the outputs evenly over tiles of at most `max_out` rows. None
    /// with ω = 0 (raw weights in the tile, aimc's and aihwkit's default).
    pub fn tile_scales(&self, n_out: usize, n_in: usize, w: impl Fn(usize, usize) -> f32) -> Option<Vec<f32>> {
        let omega = self.cfg.weight_scaling_omega as f32;
        if omega <= 0.0 {
            return None;
        }
        let tiles: Vec<_> = self.tiles(n_in).collect();
        let nt = tiles.len();
        let scale_of = |m: f32| if m > 0.0 { m / omega } else { 1.0 };
        let mut s = vec![1.0f32; n_out * nt];
        for (t, r) in tiles.iter().enumerate() {
            let col_max = |o: usize| r.clone().fold(0.0f32, |m, k| m.max(w(o, k).abs()));
            if self.cfg.weight_scaling_columnwise {
                for o in 0..n_out {
                    s[o * nt + t] = scale_of(col_max(o));
                }
            } else {
                for rows in tile_ranges(n_out, self.cfg.max_out) {
                    let m = rows.clone().fold(0.0f32, |m, o| m.max(col_max(o)));
                    for o in rows {
                        s[o * nt + t] = scale_of(m);
                    }
                }
            }
        }
        Some(s)
    }

    /// One tile output of a crossbar MVM, `p` the tile's sum Σ w·x̂ over its input slice (the
    /// slice reduced by `red`, 1 at the first level) in the output unit `u` (α, times the weight
    /// scale with ω > 0): output noise σ = output_noise·u, per-read weight noise σ = ws·u
    /// ([`FullPath::terms`]), the ADC in units of u, multiplied back by u·red; and whether
    /// the ADC clipped it. An all-zero slice (u = 0) gives 0.
    pub fn tile_output(&mut self, p: f32, u: f32, red: u32, ws: f32) -> (f32, bool) {
        let noise = self.cfg.output_noise;
        let mut p = p;
        if noise > 0.0 && u > 0.0 {
            p = (p as f64 + noise * u as f64 * self.normal()) as f32;
        }
        if ws > 0.0 && u > 0.0 {
            p = (p as f64 + ws as f64 * u as f64 * self.normal()) as f32;
        }
        if u > 0.0 {
            let (q, clip) = self.adc_clipped(p / u);
            (q * u * red as f32, clip)
        } else {
            (0.0, false)
        }
    }

    /// The evaluation's full-path settings (per-read weight noise, IR drop), apart from the
    /// injector (for closures that run while it draws).
    pub fn full_path(&self) -> FullPath {
        FullPath {
            w_noise: self.cfg.w_noise as f32,
            pcm_read: self.cfg.w_noise_type == "pcm_read",
            ir_drop: self.cfg.ir_drop as f32,
            ir_g_ratio: self.cfg.ir_drop_g_ratio as f32,
        }
    }

    /// Whether a tile output needs its weights beyond the dot product: per-read weight noise or
    /// IR drop.
    pub fn reads_weights(&self) -> bool {
        self.cfg.w_noise > 0.0 || self.cfg.ir_drop > 0.0
    }

    /// Iterative bound management of one tile (an input slice × the outputs `rows`) whose first
    /// level saturated, as the evaluation's `bound` stage and aihwkit's forward redo it: the input
    /// reduced by 2, 4, … (`dots(red, p)` writes the tile's sums Σ w·x̂ of the input divided by
    /// `red` and quantised again by the DAC, one per output of `rows`, and `ws` their per-read
    /// weight noise, [`FullPath::terms`] of that input), each level with fresh
    /// output noise and the ADC ([`Injector::tile_output`], multiplied back by `red`), until no
    /// output saturates or the reduction reaches [`super::hwa::TrainingConfig::bm_last_reduction`]. `write(o,
    /// y, clipped)` takes every output of each level (the last one's stand); returns the last
    /// reduction computed.
    pub fn bound_redo(
        &mut self,
        rows: Range<usize>,
        unit: impl Fn(usize) -> f32,
        mut dots: impl FnMut(f32, &mut [f32], &mut [f32]),
        mut write: impl FnMut(usize, f32, bool),
    ) -> u32 {
        let last = self.cfg.bm_last_reduction();
        let (mut p, mut ws) = (vec![0.0f32; rows.len()], vec![0.0f32; rows.len()]);
        let mut red = 1;
        while red < last {
            red *= 2;
            dots(red as f32, &mut p, &mut ws);
            let mut any = false;
            for ((o, &po), &wso) in rows.clone().zip(&p).zip(&ws) {
                let (y, clip) = self.tile_output(po, unit(o), red, wso);
                write(o, y, clip);
                any |= clip;
            }
            if !any {
                break;
            }
        }
        red
    }

    /// One crossbar MVM of a training forward pass, `y = bias + W x` for W [y.len(), x.len()]
    /// row-major, through the periphery the evaluation models: the input is split evenly over
    /// tiles of at most `max_in` rows ([`Injector::tiles`]); each slice is quantised by the DAC
    /// over its own max|x| (into `xq`, the input the weight gradient takes), multiplied, gains
    /// output noise σ = output_noise·α and goes through the ADC in units of α (α = max|x̂| of the
    /// slice, times the weight scale with ω > 0, [`Injector::tile_scales`]); the
    /// slices' outputs and the bias add digitally. `clipped` records the tile outputs the ADC
    /// clipped: the backward pass takes their gradient as zero (the clamp's derivative) and passes
    /// the rest straight through the rounding ([`Clipped::passing`]). With one tile and no ADC
    /// this is the DAC, the dot products from the bias and [`Injector::output_noise`] in that
    /// order, the same operations and draws.
    pub fn crossbar(&mut self, w: &[f32], x: &[f32], bias: Option<&[f32]>, xq: &mut [f32], y: &mut [f32], clipped: &mut Clipped) {
        self.crossbar_in_ranges(w, x, None, bias, xq, y, clipped)
    }

    /// [`Injector::crossbar`] with the layer's input ranges, one per tile (`training.input_range`):
    /// each slice clipped to ±range and quantised over it, the range its unit in place of max|x|
    /// (aihwkit's `pre_forward` and constant noise management). None: the slices' max|x|.
    #[allow(clippy::too_many_arguments)]
    pub fn crossbar_in_ranges(
        &mut self,
        w: &[f32],
        x: &[f32],
        ranges: Option<&[f32]>,
        bias: Option<&[f32]>,
        xq: &mut [f32],
        y: &mut [f32],
        clipped: &mut Clipped,
    ) {
        let n_in = x.len();
        debug_assert_eq!(w.len(), n_in * y.len());
        xq.copy_from_slice(x);
        let tiles: Vec<_> = self.tiles(n_in).collect();
        let alpha: Vec<f32> = tiles
            .iter()
            .enumerate()
            .map(|(t, r)| match ranges {
                Some(rg) => {
                    self.dac_in_range(&mut xq[r.clone()], rg[t]);
                    rg[t]
                }
                None => {
                    self.dac(&mut xq[r.clone()]);
                    abs_max(&xq[r.clone()])
                }
            })
            .collect();
        let (adc, noise) = (self.has_adc(), self.cfg.output_noise);
        clipped.start(self.cfg.max_in, tiles.len());
        let scales = self.tile_scales(y.len(), n_in, |o, k| w[o * n_in + k]);
        let nt = tiles.len();
        let unit = |o: usize, t: usize| scales.as_ref().map_or(alpha[t], |s| alpha[t] * s[o * nt + t]);
        let scale = |o: usize, t: usize| scales.as_ref().map_or(1.0, |s| s[o * nt + t]);
        let (wn, full, fp) = (self.cfg.w_noise > 0.0, self.reads_weights(), self.full_path());
        // The full-path terms of output o of tile t from its slice `xs` and weights `wo`: IR
        // drop's change in raw units and the per-read weight noise's σ in the output's unit.
        let terms = |o: usize, t: usize, xs: &[f32], wo: &[f32]| {
            if !full {
                return (0.0, 0.0);
            }
            let (d, ws) = fp.terms(xs, alpha[t], scale(o, t), |k| wo[k]);
            (d * unit(o, t), ws)
        };
        if adc && self.cfg.bm_last_reduction() > 1 {
            // Bound management: every tile output at the first level, kept per tile; a tile
            // (input slice × output tile) with a saturated output computed again with its input
            // halved ([`Injector::bound_redo`]); then the outputs summed from the bias in tile
            // order as below.
            let (mut v, mut c) = (vec![0.0f32; y.len() * nt], vec![false; y.len() * nt]);
            for (o, wo) in w.chunks_exact(n_in.max(1)).enumerate() {
                for (t, r) in tiles.iter().enumerate() {
                    let (d, ws) = terms(o, t, &xq[r.clone()], &wo[r.clone()]);
                    let p = wo[r.clone()].iter().zip(&xq[r.clone()]).fold(0.0f32, |s, (&wk, &xk)| s + wk * xk) + d;
                    (v[o * nt + t], c[o * nt + t]) = self.tile_output(p, unit(o, t), 1, ws);
                }
            }
            let mut xr = vec![0.0f32; self.cfg.max_in.min(n_in)];
            for (t, r) in tiles.iter().enumerate() {
                for rows in tile_ranges(y.len(), self.cfg.max_out) {
                    if !rows.clone().any(|o| c[o * nt + t]) {
                        continue;
                    }
                    let xr = &mut xr[..r.len()];
                    let dac_bits = self.cfg.dac_bits;
                    let rows_p = rows.clone();
                    self.bound_redo(
                        rows,
                        |o| unit(o, t),
                        |red, p, ws| {
                            dac_reduced(dac_bits, &x[r.clone()], red, xr);
                            for ((po, wso), o) in p.iter_mut().zip(ws.iter_mut()).zip(rows_p.clone()) {
                                let wo = &w[o * n_in + r.start..][..r.len()];
                                let (d, ws) = terms(o, t, xr, wo);
                                *po = wo.iter().zip(xr.iter()).fold(0.0f32, |s, (&wk, &xk)| s + wk * xk) + d;
                                *wso = ws;
                            }
                        },
                        |o, out, clip| (v[o * nt + t], c[o * nt + t]) = (out, clip),
                    );
                }
            }
            for (o, yo) in y.iter_mut().enumerate() {
                let mut acc = bias.map_or(0.0, |b| b[o]);
                for t in 0..nt {
                    acc += v[o * nt + t];
                    if c[o * nt + t] {
                        clipped.set(o, t);
                    }
                }
                *yo = acc;
            }
            return;
        }
        for (o, (wo, yo)) in w.chunks_exact(n_in.max(1)).zip(y.iter_mut()).enumerate() {
            let mut acc = bias.map_or(0.0, |b| b[o]);
            for (t, (r, &a)) in tiles.iter().zip(&alpha).enumerate() {
                // The output's unit: α, times the tile's (or column's) weight scale with ω > 0.
                let a = scales.as_ref().map_or(a, |s| a * s[o * tiles.len() + t]);
                if adc {
                    let mut p = 0.0f32;
                    for (&wk, &xk) in wo[r.clone()].iter().zip(&xq[r.clone()]) {
                        p += wk * xk;
                    }
                    let (d, ws) = terms(o, t, &xq[r.clone()], &wo[r.clone()]);
                    if full {
                        p += d;
                    }
                    if noise > 0.0 && a > 0.0 {
                        p = (p as f64 + noise * a as f64 * self.normal()) as f32;
                    }
                    if wn && a > 0.0 {
                        p = (p as f64 + ws as f64 * a as f64 * self.normal()) as f32;
                    }
                    if a > 0.0 {
                        let (q, clip) = self.adc_clipped(p / a);
                        if clip {
                            clipped.set(o, t);
                        }
                        acc += q * a;
                    }
                } else {
                    for (&wk, &xk) in wo[r.clone()].iter().zip(&xq[r.clone()]) {
                        acc += wk * xk;
                    }
                    let (d, ws) = terms(o, t, &xq[r.clone()], &wo[r.clone()]);
                    if full {
                        acc += d;
                    }
                    if noise > 0.0 && a > 0.0 {
                        acc = (acc as f64 + noise * a as f64 * self.normal()) as f32;
                    }
                    if wn && a > 0.0 {
                        acc = (acc as f64 + ws as f64 * a as f64 * self.normal()) as f32;
                    }
                }
            }
            *yo = acc;
        }
    }
}

impl Injector {
    /// A slice clipped to ±`range` and, with a DAC, quantised over it (the step 2/(2^bits − 2)
    /// of the range, ties away from zero as [`Injector::dac`]).
    pub fn dac_in_range(&self, x: &mut [f32], range: f32) {
        let step = if self.cfg.dac_bits > 0 { crate::crossbar::step(self.cfg.dac_bits, 1.0) as f32 } else { 0.0 };
        for v in x.iter_mut() {
            *v = v.clamp(-range, range);
            if step > 0.0 {
                *v = ((*v / range / step).round() * step).clamp(-1.0, 1.0) * range;
            }
        }
    }
}

/// The evaluation's full-path terms of a tile output (`mvm_full`): per-read weight noise, its
/// size and type, and IR drop. Both read the output's weights and DAC'd inputs; [`FullSums`]
/// gathers what they need in one pass, in the engine's order.
#[derive(Clone, Copy, Debug)]
pub struct FullPath {
    pub w_noise: f32,
    pub pcm_read: bool,
    pub ir_drop: f32,
    pub ir_g_ratio: f32,
}

/// One tile output's sums over its n inputs, x̃ the DAC'd input over its max and w̃ the weight
/// in the tile's unit: Σ x̃² (or Σ|w̃|·x̃² for PCM reads), Σ|w̃|·|x̃| and Σ w̃·x̃·(1 − r_k²),
/// r_k = 1 − k/n.
#[derive(Clone, Copy, Debug, Default)]
pub struct FullSums {
    q: f32,
    sa: f32,
    sp: f32,
}

impl FullPath {
    /// Adds input `k` of `n` (x̃ = `xt`, w̃ = `wt`) to `s`.
    #[inline]
    pub fn add(self, s: &mut FullSums, k: usize, n: f32, xt: f32, wt: f32) {
        s.q += if self.pcm_read { wt.abs() * xt * xt } else { xt * xt };
        s.sa += wt.abs() * xt.abs();
        let r = 1.0 - k as f32 / n;
        s.sp += wt * xt * (1.0 - r * r);
    }

    /// IR drop's change to the output and its per-read weight noise's σ, both in the output's
    /// unit, from its sums over `n` inputs: −ir_drop·c(a)·Σ w̃·x̃·(1 − r_k²) with
    /// a = n / g_ratio·Σ|w̃||x̃|, c(a) = a·(a·(0.05a − 0.2) + 0.5) (aihwkit's formula), and
    /// w_noise·sqrt(Σ x̃²) or w_noise·sqrt(Σ|w̃|·x̃²). Each 0 when off.
    pub fn finish(self, s: &FullSums, n: f32) -> (f32, f32) {
        let ir = if self.ir_drop > 0.0 {
            let a = n / self.ir_g_ratio * s.sa;
            -self.ir_drop * a * (a * (0.05 * a - 0.2) + 0.5) * s.sp
        } else {
            0.0
        };
        (ir, self.w_noise * s.q.sqrt())
    }

    /// [`FullPath::finish`] of one tile output whose slice's DAC output is `xq` (max `alpha`)
    /// and whose weights are `w(k)` in a tile of weight scale `scale`; (0, 0) for an all-zero
    /// slice.
    pub fn terms(self, xq: &[f32], alpha: f32, scale: f32, w: impl Fn(usize) -> f32) -> (f32, f32) {
        if alpha <= 0.0 {
            return (0.0, 0.0);
        }
        let (n, mut s) = (xq.len() as f32, FullSums::default());
        for (k, &x) in xq.iter().enumerate() {
            self.add(&mut s, k, n, x / alpha, w(k) / scale);
        }
        self.finish(&s, n)
    }

    /// IR drop's change from the sums Σ|w̃||x̃| (`sa`) and Σ w̃·x̃·(1 − r_k²) (`sp`) over `n`
    /// inputs, for sums gathered otherwise (a convolution's, as convolutions).
    pub fn ir_from_sums(self, n: f32, sa: f32, sp: f32) -> f32 {
        self.finish(&FullSums { q: 0.0, sa, sp }, n).0
    }
}

/// The DAC on an input slice `x` reduced by `red` (bound management's later levels): x/red
/// quantised to `bits` over the slice's max|x| (steps of 2/(2^bits − 2), clamped to ±1, as
/// [`Injector::dac`] at `red` = 1), into `out`; x/red without a DAC.
pub fn dac_reduced(bits: u32, x: &[f32], red: f32, out: &mut [f32]) {
    let amax = abs_max(x);
    if bits == 0 || amax == 0.0 {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = v / red;
        }
        return;
    }
    let step = crate::crossbar::step(bits, 1.0) as f32;
    for (o, &v) in out.iter_mut().zip(x) {
        *o = ((v / amax / red / step).round() * step).clamp(-1.0, 1.0) * amax;
    }
}

/// The tile outputs an ADC clipped in one crossbar MVM of a training forward pass
/// ([`Injector::crossbar`]): output `o` of tile `t`. A clipped output's gradient is zero, the
/// clamp's derivative: its weights and inputs learn nothing from it (its digital bias still
/// does); an output inside the range passes its gradient straight through the rounding. Zeroing
/// rather than passing the gradient of a clipped output matters: the digits MLP fine-tuned
/// against a 6-bit ADC over ±2 reaches 95.3 % under it this way and 41 % with the clamp passed
/// straight through too (docs/training.md).
#[derive(Clone, Debug, Default)]
pub struct Clipped {
    rows: usize,
    tiles: usize,
    /// `o · tiles + t` for every clipped output, in increasing order; empty when none is.
    flags: Vec<usize>,
}

impl Clipped {
    /// Starts a new MVM with tiles of `rows` inputs, `tiles` of them.
    pub fn start(&mut self, rows: usize, tiles: usize) {
        self.rows = rows.max(1);
        self.tiles = tiles;
        self.flags.clear();
    }

    /// Marks output `o` of tile `t` clipped (outputs in increasing order).
    pub fn set(&mut self, o: usize, t: usize) {
        self.flags.push(o * self.tiles + t);
    }

    /// Whether no output was clipped.
    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }

    /// Whether output `o` of tile `t` was clipped.
    pub fn get(&self, o: usize, t: usize) -> bool {
        !self.flags.is_empty() && self.flags.binary_search(&(o * self.tiles + t)).is_ok()
    }

    /// The input ranges (of a layer with `n_in` inputs) whose weights and inputs take output
    /// `o`'s gradient: every tile's but the clipped ones'.
    pub fn passing(&self, o: usize, n_in: usize) -> impl Iterator<Item = Range<usize>> + '_ {
        tile_ranges(n_in, self.rows).enumerate().filter(move |&(t, _)| !self.get(o, t)).map(|(_, r)| r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::hwa::TrainingConfig;

    /// The tile periphery of [`Injector::crossbar`]: with one tile and no ADC it is the DAC, the
    /// dot products from the bias and the output noise, bit for bit and draw for draw; with tiles
    /// every slice has its own DAC scale; with an ADC every tile's output lies on the ADC's grid
    /// in units of its slice's max|x̂| and saturates at ±out_bound; the bias adds after the ADC.
    #[test]
    fn crossbar_has_the_tile_periphery() {
        let x: Vec<f32> = vec![4.0, -0.35, 1.3, 0.02, -0.03, 0.011, 0.9];
        let w: Vec<f32> = (0..3 * 7).map(|i| ((i * 13 % 11) as f32 - 5.2) * 0.11).collect();
        let b = [0.5f32, -0.25, 0.125];
        // One tile, no ADC: the operations the trainers ran before tiles and ADCs.
        let cfg = TrainingConfig { dac_bits: 5, output_noise: 0.07, ..TrainingConfig::default() };
        let (mut inj, mut old) = (Injector::new(&cfg, 3), Injector::new(&cfg, 3));
        let (mut xq, mut y) = (vec![0.0; 7], vec![0.0; 3]);
        inj.crossbar(&w, &x, Some(&b), &mut xq, &mut y, &mut Clipped::default());
        let mut want_xq = x.clone();
        old.dac(&mut want_xq);
        let mut want: Vec<f32> = w.chunks(7).zip(&b).map(|(wo, &bo)| wo.iter().zip(&want_xq).fold(bo, |s, (a, c)| s + a * c)).collect();
        old.output_noise(&mut want, abs_max(&want_xq));
        assert_eq!((xq.clone(), y.clone()), (want_xq, want));
        // Tiles of at most 3 rows split 7 inputs evenly, as the engine does: [0, 3), [3, 5), [5, 7).
        assert_eq!(tile_ranges(7, 3).collect::<Vec<_>>(), vec![0..3, 3..5, 5..7]);
        assert_eq!(tile_ranges(768, 512).collect::<Vec<_>>(), vec![0..384, 384..768]);
        assert_eq!(tile_ranges(64, 512).collect::<Vec<_>>(), vec![0..64]);
        // The small slice [0.02, −0.03] keeps its values on its own scale (over the whole
        // vector's max 4 a 5-bit DAC rounds them to 0).
        let cfg = TrainingConfig { dac_bits: 5, max_in: 3, ..TrainingConfig::default() };
        Injector::new(&cfg, 0).crossbar(&w, &x, None, &mut xq, &mut y, &mut Clipped::default());
        assert!((xq[3] - 0.02).abs() < 0.002 && (xq[4] + 0.03).abs() < 1e-6, "{xq:?}");
        let mut whole = x.clone();
        Injector::new(&TrainingConfig { dac_bits: 5, ..TrainingConfig::default() }, 0).dac(&mut whole);
        assert_eq!(&whole[3..5], &[0.0, 0.0]);
        // A 4-bit ADC over ±2 and tiles of 3 rows, no DAC: each tile's output is α·k·step with
        // |k·step| <= 2, α the slice's max|x|; the first tile's outputs saturate.
        let cfg = TrainingConfig { adc_bits: 4, out_bound: 2.0, max_in: 3, ..TrainingConfig::default() };
        let inj = Injector::new(&cfg, 0);
        let step = 4.0 / 14.0;
        assert_eq!(crate::crossbar::step(4, 2.0) as f32, step as f32);
        let big = vec![2.0f32; 21];
        let (mut yb, mut clipped) = (vec![0.0; 3], Clipped::default());
        Injector::new(&cfg, 0).crossbar(&big, &x, Some(&b), &mut xq, &mut yb, &mut clipped);
        // The first tile's outputs clipped: their gradient reaches inputs 3..7 only.
        for o in 0..3 {
            assert!(clipped.get(o, 0) && !clipped.get(o, 1) && !clipped.get(o, 2), "output {o}: {clipped:?}");
            assert_eq!(clipped.passing(o, 7).collect::<Vec<_>>(), vec![3..5, 5..7]);
        }
        for (o, &yo) in yb.iter().enumerate() {
            // Tile sums in units of α: 9.9/4 saturates at 2 (· α = 4); −0.02/0.03 rounds to −2
            // steps (· α = 0.03); 1.822/0.9 rounds to 7 steps, the top code 2 (· α = 0.9). The
            // bias adds after the ADC.
            let want = b[o] as f64 + 2.0 * 4.0 - 2.0 * step * 0.03 + 2.0 * 0.9;
            assert!((yo as f64 - want).abs() < 1e-5, "output {o}: {yo} against {want}");
        }
        // ω = 1 per column: every weight 2, so the outputs are in units of 2α and the first
        // tile's 9.9/8 no longer clips: 4 steps · 8; −0.02/0.06 rounds to −1 step · 0.06; 1.822/1.8
        // to 4 steps (1.14…) · 1.8.
        let scaled = TrainingConfig { weight_scaling_omega: 1.0, weight_scaling_columnwise: true, ..cfg.clone() };
        Injector::new(&scaled, 0).crossbar(&big, &x, Some(&b), &mut xq, &mut yb, &mut clipped);
        assert!(clipped.is_empty(), "{clipped:?}");
        for (o, &yo) in yb.iter().enumerate() {
            let want = b[o] as f64 + 4.0 * step * 8.0 - step * 0.06 + 4.0 * step * 1.8;
            assert!((yo as f64 - want).abs() < 1e-5, "output {o}: {yo} against {want}");
        }
        assert_eq!(inj.adc(5.0), 2.0);
        assert_eq!(inj.adc(-0.2), -(step as f32));
        assert!((inj.adc(0.5) - 2.0 * step as f32).abs() < 1e-7);
        // Checks name the field and the fix.
        for (text, field) in [
            ("adc_bits = 8", "training.out_bound > 0"),
            ("adc_bits = 1\nout_bound = 12.0", "training.adc_bits = 1"),
            ("out_bound = -1.0", "training.out_bound"),
            ("max_in = 0", "training.max_in = 0"),
        ] {
            let e = TrainingConfig::parse(&format!("[training]\n{text}\n")).unwrap_err();
            assert!(e.contains(field), "{text}: {e}");
        }
        let c = TrainingConfig::parse("[training]\nadc_bits = 8\nout_bound = 10.0\nmax_in = 256\n").unwrap();
        assert!(c.is_hardware_aware() && c.summary().contains("8-bit ADC over +-10") && c.summary().contains("tiles of 256x512"), "{}", c.summary());
    }

    /// Bound management as the evaluation's: a tile with a saturated output is computed again
    /// with its input halved until none saturates (its outputs then within one ADC step times the
    /// reduction of the exact sum) or the last reduction is reached (still clipped there); a tile
    /// that does not saturate, and every draw when none does, is as without bound management.
    #[test]
    fn bound_management_redoes_a_saturated_tile() {
        let x: Vec<f32> = vec![4.0, -0.35, 1.3, 0.02, -0.03, 0.011, 0.9];
        let b = [0.5f32, -0.25, 0.125];
        let big = vec![2.0f32; 21];
        let plain = TrainingConfig { adc_bits: 4, out_bound: 2.0, max_in: 3, ..TrainingConfig::default() };
        let bm = TrainingConfig { bound_management: "iterative".into(), ..plain.clone() };
        // No DAC: the reduction stops past max_bm_factor (1024); a 5-bit DAC: past 0.25 / (2/30).
        assert_eq!((plain.bm_last_reduction(), bm.bm_last_reduction()), (1, 1024));
        assert_eq!(TrainingConfig { dac_bits: 5, ..bm.clone() }.bm_last_reduction(), 4);
        let run = |cfg: &TrainingConfig, w: &[f32]| {
            let (mut xq, mut y, mut clipped) = (vec![0.0; 7], vec![0.0; 3], Clipped::default());
            Injector::new(cfg, 3).crossbar(w, &x, Some(&b), &mut xq, &mut y, &mut clipped);
            (y, clipped)
        };
        let ((y0, c0), (y1, c1)) = (run(&plain, &big), run(&bm, &big));
        // The first tile (9.9 / α = 4 saturates ±2) redone at 1/2: 1.2375 rounds to 4 steps,
        // · 2 · α; the other tiles as without bound management; nothing clipped.
        let step = crate::crossbar::step(4, 2.0) as f32;
        assert!(c0.get(0, 0) && c1.is_empty(), "{c0:?} {c1:?}");
        for o in 0..3 {
            let want = y0[o] - 2.0 * 4.0 + 4.0 * step * 2.0 * 4.0;
            assert!((y1[o] - want).abs() < 1e-5, "output {o}: {} against {want}", y1[o]);
            assert!((y1[o] - (b[o] + 9.9 - 0.02 * 2.0 + 0.911 * 2.0)).abs() <= 4.0 * step, "output {o}: {}", y1[o]);
        }
        // max_bm_factor 1: the last reduction is 2. Tile sums / α: 49.5 / 4 and 9.11 / 0.9 still
        // saturate at 1/2 (clipped: 2 · 2 · α), −0.1 / 0.03 at 1/2 is −1.67: −6 steps · 2 · α.
        let huge = vec![10.0f32; 21];
        let (y2, c2) = run(&TrainingConfig { max_bm_factor: 1.0, ..bm.clone() }, &huge);
        assert!((0..3).all(|o| c2.get(o, 0) && !c2.get(o, 1) && c2.get(o, 2)), "{c2:?}");
        for o in 0..3 {
            let want = b[o] + 2.0 * 2.0 * 4.0 - 6.0 * step * 2.0 * 0.03 + 2.0 * 2.0 * 0.9;
            assert!((y2[o] - want).abs() < 1e-5, "output {o}: {} against {want}", y2[o]);
        }
        // With output noise and a DAC, where nothing saturates, the same draws and outputs.
        let noisy = |c: &TrainingConfig| TrainingConfig { output_noise: 0.05, dac_bits: 6, out_bound: 40.0, ..c.clone() };
        let small: Vec<f32> = (0..21).map(|i| ((i * 7 % 5) as f32 - 2.0) * 0.3).collect();
        assert_eq!(run(&noisy(&plain), &small).0, run(&noisy(&bm), &small).0);
        // The reduced DAC: x / red on the same grid over max|x| (a 3-bit DAC's steps of 1/3 at
        // 1/2: 0.5 rounds away from zero to 2/3 as Injector::dac rounds, −0.25 to −1/3, 0.1 to 0).
        let mut out = [0.0f32; 3];
        dac_reduced(3, &[1.0, -0.5, 0.2], 2.0, &mut out);
        assert_eq!(out, [2.0 / 3.0, -1.0 / 3.0, 0.0]);
        dac_reduced(0, &[1.0, -0.5, 0.2], 4.0, &mut out);
        assert_eq!(out, [0.25, -0.125, 0.05]);
        // Checks name the field and the fix.
        for (text, field) in [
            ("bound_management = \"iterative\"", "training.out_bound > 0"),
            ("bound_management = \"sometimes\"", "training.bound_management = \"sometimes\""),
            ("out_bound = 12.0\nbound_management = \"iterative\"\nmax_bm_factor = -1.0", "training.max_bm_factor"),
            ("out_bound = 12.0\nbound_management = \"iterative\"\nmax_bm_res = 0.0", "training.max_bm_res"),
        ] {
            let e = TrainingConfig::parse(&format!("[training]\n{text}\n")).unwrap_err();
            assert!(e.contains(field), "{text}: {e}");
        }
        let c = TrainingConfig::parse("[training]\nadc_bits = 9\nout_bound = 12.0\ndac_bits = 7\nbound_management = \"iterative\"\n").unwrap();
        assert!(c.summary().contains("iterative bound management up to 16x"), "{}", c.summary());
    }

    /// Per-read weight noise as the evaluation draws it: over 10,000 MVMs of one tile without an
    /// ADC, the deviation of an output from its exact value has σ = w_noise·‖x‖₂ (additive
    /// constant) and w_noise·sqrt(Σ|w|·x²) (PCM read) in the raw units (the tile unit α cancels),
    /// within 4 % (5 σ of the sampling error of a standard deviation, √(1/20000) = 0.7 %); with
    /// output noise as well the variances add.
    #[test]
    fn w_noise_has_the_evaluations_std() {
        let x: Vec<f32> = vec![4.0, -0.35, 1.3, 0.02, -0.03, 0.011, 0.9];
        let w: Vec<f32> = (0..3 * 7).map(|i| ((i * 13 % 11) as f32 - 5.2) * 0.11).collect();
        let exact: Vec<f64> = w.chunks(7).map(|wo| wo.iter().zip(&x).map(|(&a, &b)| a as f64 * b as f64).sum()).collect();
        let std_of = |cfg: &TrainingConfig| -> Vec<f64> {
            let mut inj = Injector::new(cfg, 11);
            let (mut xq, mut y, mut sq) = (vec![0.0; 7], vec![0.0; 3], vec![0.0f64; 3]);
            let n = 10_000;
            for _ in 0..n {
                inj.crossbar(&w, &x, None, &mut xq, &mut y, &mut Clipped::default());
                for o in 0..3 {
                    sq[o] += (y[o] as f64 - exact[o]).powi(2);
                }
            }
            sq.iter().map(|s| (s / n as f64).sqrt()).collect()
        };
        let norm = x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
        let cfg = TrainingConfig { w_noise: 0.1, ..TrainingConfig::default() };
        for (o, got) in std_of(&cfg).into_iter().enumerate() {
            assert!((got / (0.1 * norm) - 1.0).abs() < 0.04, "output {o}: {got} against {}", 0.1 * norm);
        }
        let pcm = TrainingConfig { w_noise: 0.1, w_noise_type: "pcm_read".into(), ..TrainingConfig::default() };
        for (o, got) in std_of(&pcm).into_iter().enumerate() {
            let want = 0.1 * w[o * 7..(o + 1) * 7].iter().zip(&x).map(|(&a, &b)| (a as f64).abs() * (b as f64).powi(2)).sum::<f64>().sqrt();
            assert!((got / want - 1.0).abs() < 0.04, "output {o}: {got} against {want}");
        }
        let both = TrainingConfig { output_noise: 0.05, ..cfg.clone() };
        for (o, got) in std_of(&both).into_iter().enumerate() {
            let want = ((0.1 * norm).powi(2) + (0.05 * 4.0f64).powi(2)).sqrt();
            assert!((got / want - 1.0).abs() < 0.04, "output {o}: {got} against {want}");
        }
        let e = TrainingConfig::parse("[training]\nw_noise = 0.1\nw_noise_type = \"pcm\"\n").unwrap_err();
        assert!(e.contains("training.w_noise_type = \"pcm\": expected \"additive_constant\""), "{e}");
        assert!(cfg.summary().contains("additive constant per-read weight noise 0.1"), "{}", cfg.summary());
    }

    /// IR drop as the evaluation's full path computes it (aihwkit's formula), by hand in f64 on
    /// one 7-input tile: y = W x − α·ir_drop·c(a)·Σ w·x̃·(1 − r_k²), x̃ = x/α, r_k = 1 − k/7,
    /// a = 7/g·Σ|w||x̃|; and with ω = 1 per column the same in the tile's unit.
    #[test]
    fn ir_drop_is_the_evaluations_formula() {
        let x: Vec<f32> = vec![4.0, -0.35, 1.3, 0.02, -0.03, 0.011, 0.9];
        let w: Vec<f32> = (0..3 * 7).map(|i| ((i * 13 % 11) as f32 - 5.2) * 0.11).collect();
        let want = |omega: bool| -> Vec<f64> {
            w.chunks(7)
                .map(|wo| {
                    let s = if omega { wo.iter().fold(0.0f64, |m, &v| m.max((v as f64).abs())) } else { 1.0 };
                    let (mut dot, mut sa, mut sp) = (0.0, 0.0, 0.0);
                    for (k, (&wk, &xk)) in wo.iter().zip(&x).enumerate() {
                        let (wt, xt) = (wk as f64 / s, xk as f64 / 4.0);
                        dot += wk as f64 * xk as f64;
                        sa += wt.abs() * xt.abs();
                        let r = 1.0 - k as f64 / 7.0;
                        sp += wt * xt * (1.0 - r * r);
                    }
                    let a = 7.0 / 10.0 * sa;
                    dot - 4.0 * s * 0.8 * a * (a * (0.05 * a - 0.2) + 0.5) * sp
                })
                .collect()
        };
        for omega in [false, true] {
            let cfg = TrainingConfig {
                ir_drop: 0.8,
                ir_drop_g_ratio: 10.0,
                weight_scaling_omega: if omega { 1.0 } else { 0.0 },
                weight_scaling_columnwise: omega,
                ..TrainingConfig::default()
            };
            let (mut xq, mut y) = (vec![0.0; 7], vec![0.0; 3]);
            Injector::new(&cfg, 0).crossbar(&w, &x, None, &mut xq, &mut y, &mut Clipped::default());
            for (o, (&got, want)) in y.iter().zip(want(omega)).enumerate() {
                assert!((got as f64 - want).abs() < 1e-5 * (1.0 + want.abs()), "ω {omega}, output {o}: {got} against {want}");
            }
            assert!(
                y.iter().zip(w.chunks(7)).any(|(&v, wo)| (v - wo.iter().zip(&x).map(|(a, b)| a * b).sum::<f32>()).abs() > 0.01),
                "IR drop changes the outputs"
            );
        }
        let e = TrainingConfig::parse("[training]\nir_drop = 1.0\nir_drop_g_ratio = 0.0\n").unwrap_err();
        assert!(e.contains("training.ir_drop_g_ratio = 0"), "{e}");
    }

    /// The weight scales follow the engine's mapping: with ω > 0 one per tile (the max over the
    /// tile's block of outputs and inputs) or per column; 1 for an all-zero block; none with
    /// ω = 0. Output noise then has σ = output_noise · max|x| · max|W_col| / ω.
    #[test]
    fn weight_scaling_sets_the_output_unit() {
        // W [3, 7]: row o holds o + 1 on input 0, and 0.5 on input 4; tiles of ≤ 3 rows
        // ([0, 3), [3, 5), [5, 7)), ≤ 2 columns ([0, 2), [2, 3)).
        let w = |o: usize, k: usize| {
            if k == 0 {
                (o + 1) as f32
            } else if k == 4 {
                0.5
            } else {
                0.0
            }
        };
        let cfg = |omega: f64, columnwise: bool| TrainingConfig {
            weight_scaling_omega: omega,
            weight_scaling_columnwise: columnwise,
            max_in: 3,
            max_out: 2,
            ..TrainingConfig::default()
        };
        assert_eq!(Injector::new(&cfg(0.0, false), 0).tile_scales(3, 7, w), None);
        let tile = Injector::new(&cfg(0.5, false), 0).tile_scales(3, 7, w).unwrap();
        assert_eq!(tile, vec![4.0, 1.0, 1.0, 4.0, 1.0, 1.0, 6.0, 1.0, 1.0]);
        let column = Injector::new(&cfg(0.5, true), 0).tile_scales(3, 7, w).unwrap();
        assert_eq!(column, vec![2.0, 1.0, 1.0, 4.0, 1.0, 1.0, 6.0, 1.0, 1.0]);
        // Output noise of a column with max|W| = 4 at ω = 1: σ = 0.1 · 1 · 4.
        let cfg = TrainingConfig { output_noise: 0.1, weight_scaling_omega: 1.0, weight_scaling_columnwise: true, ..TrainingConfig::default() };
        let mut inj = Injector::new(&cfg, 5);
        let (mut xq, mut y, mut clipped) = (vec![0.0; 2], vec![0.0; 1], Clipped::default());
        let n = 20_000;
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for _ in 0..n {
            inj.crossbar(&[4.0, 0.0], &[1.0, 0.0], None, &mut xq, &mut y, &mut clipped);
            let e = y[0] as f64 - 4.0;
            s1 += e;
            s2 += e * e;
        }
        let sd = (s2 / n as f64 - (s1 / n as f64).powi(2)).sqrt();
        // The sample sd of 20 000 normals has sd σ/√(2n) = 0.002; 6 of them.
        assert!((sd - 0.4).abs() < 0.012, "output noise sd {sd}, want 0.4");
        for (text, field) in [("weight_scaling_columnwise = true", "training.weight_scaling_omega > 0"), ("max_out = 0", "training.max_out = 0")] {
            let e = TrainingConfig::parse(&format!("[training]\n{text}\n")).unwrap_err();
            assert!(e.contains(field), "{text}: {e}");
        }
    }
}
