//! The dense kernels of the training transformer (src/train/transformer/mod.rs), generic over
//! [`Real`]: Linear forward and backward with W transposed (each output sums its inputs in index
//! order), output-noise injection for hardware-aware training, and LayerNorm forward and backward.

// Index loops mirror the gradient equations, so the backward pass reads beside them.
#![allow(clippy::needless_range_loop, clippy::too_many_arguments)]

use super::*;
use crate::train::periphery::{dac_reduced, tile_ranges, FullSums};
use std::borrow::Cow;

/// y[t] = b + W x[t] for every row t, with W given transposed ([d_in, d_out]) so the inner loop
/// runs over outputs: each output still sums its inputs in index order.
pub(super) fn linear<T: Real>(x: &[T], d_in: usize, wt: &[T], b: Option<&[T]>, d_out: usize, y: &mut [T]) {
    for (xt, yt) in x.chunks_exact(d_in).zip(y.chunks_exact_mut(d_out)) {
        match b {
            Some(b) => yt.copy_from_slice(b),
            None => yt.fill(T::default()),
        }
        for (i, &a) in xt.iter().enumerate() {
            for (yo, &w) in yt.iter_mut().zip(&wt[i * d_out..(i + 1) * d_out]) {
                *yo += a * w;
            }
        }
    }
}

/// Hardware-aware training's DAC: its bits (0: none) and the tile height that splits a row into
/// slices ([`tile_ranges`], the engine's even split), each quantised over its own max|x| (the
/// engine's per-tile abs-max scaling).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Dac {
    pub bits: u32,
    pub max_in: usize,
}

impl Dac {
    pub fn of(inj: &Injector) -> Dac {
        Dac { bits: inj.cfg.dac_bits, max_in: inj.cfg.max_in.max(1) }
    }
}

/// Hardware-aware training's DAC on the rows of `x` [n, d_in] (`dac.bits` 0: none, `x` itself):
/// each tile slice of a row ([`tile_ranges`] of `dac.max_in`) quantised over its own max|x| to steps of
/// 2/(2^bits − 2) of the unit range, by the same operations as [`Injector::dac`] (aihwkit's
/// abs-max noise management). The forward pass multiplies the quantised rows; the backward pass
/// takes them again for the weight gradient and passes the input gradient straight through (the
/// quantiser's derivative taken as 1).
pub(super) fn dac_rows<T: Real>(dac: Dac, x: &[T], d_in: usize) -> Cow<'_, [T]> {
    if dac.bits == 0 || d_in == 0 {
        return Cow::Borrowed(x);
    }
    let step = T::of(crate::crossbar::step(dac.bits, 1.0) as f32 as f64);
    let (lo, hi) = (T::of(-1.0), T::of(1.0));
    let mut q = x.to_vec();
    for row in q.chunks_exact_mut(d_in) {
        for r in tile_ranges(d_in, dac.max_in) {
            let slice = &mut row[r];
            let amax = slice.iter().fold(T::default(), |m, &v| max(m, max(v, -v)));
            if amax == T::default() {
                continue;
            }
            for v in slice.iter_mut() {
                let level = (*v / amax / step).round() * step;
                *v = max(lo, if level > hi { hi } else { level }) * amax;
            }
        }
    }
    Cow::Owned(q)
}

/// Hardware-aware training's output noise on the rows of a [`linear`] output `y` [n, d_out]
/// whose input was `x` [n, d_in] (σ = output_noise · max|x_t| per row); nothing without it.
pub(super) fn output_noise<T: Real>(inj: &mut Injector, x: &[T], d_in: usize, y: &mut [T], d_out: usize) {
    if inj.cfg.output_noise <= 0.0 {
        return;
    }
    for (xt, yt) in x.chunks_exact(d_in).zip(y.chunks_exact_mut(d_out)) {
        let xmax = row_max(xt);
        let mut y32: Vec<f32> = yt.iter().map(|v| v.to_f64() as f32).collect();
        inj.output_noise(&mut y32, xmax);
        for (a, b) in yt.iter_mut().zip(y32) {
            *a = T::of(b as f64);
        }
    }
}

/// max|x| of one row, as an f32 (the scale output noise and the ADC take).
fn row_max<T: Real>(xt: &[T]) -> f32 {
    xt.iter().fold(0.0f64, |m, v| m.max(v.to_f64().abs())) as f32
}

/// Hardware-aware training's output noise and ADC on the rows of a tile's output `y` [n, d_out]
/// whose input slice was `x` [n, d_in] (weights `wt` [d_in, d_out]): each output in units of
/// u = max|x_t| (times `scale[o]`, the weight scale of its column with ω > 0,
/// [`Injector::tile_scales`]) gains N(0, (output_noise·u)²), and the per-read weight noise of the
/// DAC'd slice ([`crate::train::periphery::FullPath::terms`]) times u, and goes through [`Injector::adc_clipped`]; `clip` [n, d_out] marks the outputs the clamp acted
/// on. In f32 without scales the noise is [`output_noise`]'s, the same operations and draws.
#[allow(clippy::too_many_arguments)]
pub(super) fn periphery_rows<T: Real>(inj: &mut Injector, x: &[T], d_in: usize, wt: &[T], y: &mut [T], d_out: usize, scale: Option<&[f32]>, clip: &mut [bool]) {
    let (noise, adc, fp) = (inj.cfg.output_noise, inj.has_adc(), inj.full_path());
    // Per-read weight noise and IR drop read the DAC'd slice: each output's [FullSums],
    // accumulated over the weights' rows (contiguous in `wt`), in the order of its inputs.
    let xq = inj.reads_weights().then(|| dac_rows(Dac::of(inj), x, d_in).iter().map(|v| v.to_f64() as f32).collect::<Vec<f32>>());
    let (n, mut sums) = (d_in as f32, vec![FullSums::default(); d_out]);
    for (t, ((xt, yt), ct)) in x.chunks_exact(d_in).zip(y.chunks_exact_mut(d_out)).zip(clip.chunks_exact_mut(d_out)).enumerate() {
        let a = row_max(xt);
        let full = xq.is_some() && a > 0.0;
        if let Some(xq) = xq.as_ref().filter(|_| full) {
            sums.fill(FullSums::default());
            for (k, (&xk, wrow)) in xq[t * d_in..(t + 1) * d_in].iter().zip(wt.chunks_exact(d_out)).enumerate() {
                for (o, (s, wv)) in sums.iter_mut().zip(wrow).enumerate() {
                    fp.add(s, k, n, xk / a, wv.to_f64() as f32 / scale.map_or(1.0, |s| s[o]));
                }
            }
        }
        for (o, (v, c)) in yt.iter_mut().zip(ct).enumerate() {
            let u = scale.map_or(a, |s| a * s[o]);
            let (d, ws) = if full { fp.finish(&sums[o], n) } else { (0.0, 0.0) };
            if full && fp.ir_drop > 0.0 {
                *v = T::of(v.to_f64() + (d * u) as f64);
            }
            if noise > 0.0 && u > 0.0 {
                *v = T::of(v.to_f64() + noise * u as f64 * inj.normal());
            }
            if full && fp.w_noise > 0.0 {
                *v = T::of(v.to_f64() + ws as f64 * u as f64 * inj.normal());
            }
            if adc {
                let (q, clipped) = if u > 0.0 { inj.adc_clipped((v.to_f64() / u as f64) as f32) } else { (0.0, false) };
                *v = T::of(q as f64 * u as f64);
                *c = clipped;
            }
        }
    }
}

/// Iterative bound management on the rows of one tile's output `y` [n, d_out] after
/// [`periphery_rows`] (`x` [n, d_in] the tile's input slice, `wt` its weights transposed
/// [d_in, d_out]): every row whose outputs saturated in an output tile (`max_out` columns) is
/// computed again with its input halved, quantised again by the DAC, with fresh output noise and
/// the ADC, as [`Injector::bound_redo`] does for the other trainers; `clip` keeps the last
/// level's clipped outputs. In f32 (the periphery's precision).
pub(super) fn bound_rows<T: Real>(inj: &mut Injector, x: &[T], d_in: usize, wt: &[T], d_out: usize, y: &mut [T], scale: Option<&[f32]>, clip: &mut [bool]) {
    let (bits, max_out, fp) = (inj.cfg.dac_bits, inj.cfg.max_out, inj.full_path());
    let mut xr = vec![0.0f32; d_in];
    for ((xt, yt), ct) in x.chunks_exact(d_in).zip(y.chunks_exact_mut(d_out)).zip(clip.chunks_exact_mut(d_out)) {
        let a = row_max(xt);
        let x32: Vec<f32> = xt.iter().map(|v| v.to_f64() as f32).collect();
        for rows in tile_ranges(d_out, max_out) {
            if !ct[rows.clone()].contains(&true) {
                continue;
            }
            let cols = rows.clone();
            inj.bound_redo(
                rows,
                |o| scale.map_or(a, |s| a * s[o]),
                |red, p, ws| {
                    dac_reduced(bits, &x32, red, &mut xr);
                    for ((po, wso), o) in p.iter_mut().zip(ws.iter_mut()).zip(cols.clone()) {
                        let w = |k: usize| wt[k * d_out + o].to_f64() as f32;
                        let sc = scale.map_or(1.0, |s| s[o]);
                        let (d, ws) = fp.terms(&xr, a, sc, w);
                        *po = xr.iter().enumerate().fold(0.0f32, |s, (k, &xk)| s + xk * w(k)) + d * a * sc;
                        *wso = ws;
                    }
                },
                |o, v, c| {
                    yt[o] = T::of(v as f64);
                    ct[o] = c;
                },
            );
        }
    }
}

/// The outputs the ADCs of one [`crossbar_linear`] clipped: per tile, per row and output
/// ([tiles][n, d_out]); empty when none was. Their gradient is zero (the clamp's derivative):
/// [`crossbar_back`] passes the others straight through the rounding.
#[derive(Clone, Debug, Default)]
pub(super) struct ClipRows {
    max_in: usize,
    flags: Vec<bool>,
}

/// One crossbar matrix of the training transformer, `y[t] = b + W x[t]` for every row (W given
/// transposed, [d_in, d_out]), through hardware-aware training's periphery as
/// [`Injector::crossbar`] models it: the input split evenly over tiles of at most `max_in` rows, each slice
/// quantised by the DAC over its own max|x|, multiplied, given output noise and passed through
/// the ADC in units of that max; the slices' outputs and the bias add digitally; `clip` records
/// what the ADC clipped. With one tile and no ADC this is [`linear`] of [`dac_rows`] and
/// [`output_noise`], the same operations.
pub(super) fn crossbar_linear<T: Real>(inj: &mut Injector, x: &[T], d_in: usize, wt: &[T], b: Option<&[T]>, d_out: usize, y: &mut [T], clip: &mut ClipRows) {
    let dac = Dac::of(inj);
    clip.max_in = dac.max_in;
    clip.flags.clear();
    let scales = inj.tile_scales(d_out, d_in, |o, k| wt[k * d_out + o].to_f64() as f32);
    if d_in <= dac.max_in && !inj.has_adc() && scales.is_none() && !inj.reads_weights() {
        linear(&dac_rows(dac, x, d_in), d_in, wt, b, d_out, y);
        output_noise(inj, x, d_in, y, d_out);
        return;
    }
    for yt in y.chunks_exact_mut(d_out) {
        match b {
            Some(b) => yt.copy_from_slice(b),
            None => yt.fill(T::default()),
        }
    }
    let tiles: Vec<_> = inj.tiles(d_in).collect();
    let nt = tiles.len();
    let mut part = vec![T::default(); y.len()];
    let mut flags = vec![false; nt * y.len()];
    for (t, r) in tiles.into_iter().enumerate() {
        let w = r.len();
        let xs: Vec<T> = x.chunks_exact(d_in).flat_map(|xt| xt[r.clone()].iter().copied()).collect();
        linear(&dac_rows(dac, &xs, w), w, &wt[r.start * d_out..r.end * d_out], None, d_out, &mut part);
        let scale: Option<Vec<f32>> = scales.as_ref().map(|s| (0..d_out).map(|o| s[o * nt + t]).collect());
        periphery_rows(inj, &xs, w, &wt[r.start * d_out..r.end * d_out], &mut part, d_out, scale.as_deref(), &mut flags[t * y.len()..(t + 1) * y.len()]);
        if inj.cfg.bm_last_reduction() > 1 {
            bound_rows(inj, &xs, w, &wt[r.start * d_out..r.end * d_out], d_out, &mut part, scale.as_deref(), &mut flags[t * y.len()..(t + 1) * y.len()]);
        }
        for (a, &v) in y.iter_mut().zip(&part) {
            *a += v;
        }
    }
    if flags.contains(&true) {
        clip.flags = flags;
    }
}

/// Backward of [`crossbar_linear`] (W [d_out, d_in], `xq` the quantised input the forward pass
/// multiplied): [`linear_back`], but a clipped output passes its gradient to the bias alone.
#[allow(clippy::too_many_arguments)]
pub(super) fn crossbar_back<T: Real>(
    xq: &[T],
    d_in: usize,
    w: &[T],
    dy: &[T],
    d_out: usize,
    gw: &mut [T],
    mut gb: Option<&mut [T]>,
    mut dx: Option<&mut [T]>,
    clip: &ClipRows,
) {
    if clip.flags.is_empty() {
        return linear_back(xq, d_in, w, dy, d_out, gw, gb, dx);
    }
    let per_tile = dy.len();
    for (t, (xt, dyt)) in xq.chunks_exact(d_in).zip(dy.chunks_exact(d_out)).enumerate() {
        for (o, &g) in dyt.iter().enumerate() {
            if let Some(gb) = gb.as_deref_mut() {
                gb[o] += g;
            }
            for (tile, r) in tile_ranges(d_in, clip.max_in).enumerate() {
                if clip.flags[tile * per_tile + t * d_out + o] {
                    continue;
                }
                for (gwk, &xk) in gw[o * d_in + r.start..o * d_in + r.end].iter_mut().zip(&xt[r.clone()]) {
                    *gwk += g * xk;
                }
                if let Some(dx) = dx.as_deref_mut() {
                    for (dxk, &wk) in dx[t * d_in + r.start..t * d_in + r.end].iter_mut().zip(&w[o * d_in + r.start..o * d_in + r.end]) {
                        *dxk += g * wk;
                    }
                }
            }
        }
    }
}

/// Backward of [`linear`] with W [d_out, d_in]: gw += dyᵀ x, gb += Σ_t dy, dx += dy W.
pub(super) fn linear_back<T: Real>(x: &[T], d_in: usize, w: &[T], dy: &[T], d_out: usize, gw: &mut [T], mut gb: Option<&mut [T]>, mut dx: Option<&mut [T]>) {
    for (t, (xt, dyt)) in x.chunks_exact(d_in).zip(dy.chunks_exact(d_out)).enumerate() {
        for (o, &g) in dyt.iter().enumerate() {
            if let Some(gb) = gb.as_deref_mut() {
                gb[o] += g;
            }
            for (gwk, &xk) in gw[o * d_in..(o + 1) * d_in].iter_mut().zip(xt) {
                *gwk += g * xk;
            }
            if let Some(dx) = dx.as_deref_mut() {
                for (dxk, &wk) in dx[t * d_in..(t + 1) * d_in].iter_mut().zip(&w[o * d_in..(o + 1) * d_in]) {
                    *dxk += g * wk;
                }
            }
        }
    }
}

pub(super) fn transpose<T: Real>(w: &[T], rows: usize, cols: usize) -> Vec<T> {
    let mut t = vec![T::default(); w.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = w[r * cols + c];
        }
    }
    t
}

/// LayerNorm of every row of `x` (width d): writes y, x̂ and 1/σ.
pub(super) fn layer_norm<T: Real>(x: &[T], d: usize, g: &[T], b: &[T], y: &mut [T], xhat: &mut [T], rstd: &mut [T]) {
    let inv_d = T::of(1.0 / d as f64);
    for (t, xt) in x.chunks_exact(d).enumerate() {
        let mut mu = T::default();
        for &v in xt {
            mu += v;
        }
        mu *= inv_d;
        let mut var = T::default();
        for &v in xt {
            var += (v - mu) * (v - mu);
        }
        let r = T::of(1.0) / (var * inv_d + T::of(LN_EPS)).sqrt();
        rstd[t] = r;
        for k in 0..d {
            let h = (xt[k] - mu) * r;
            xhat[t * d + k] = h;
            y[t * d + k] = h * g[k] + b[k];
        }
    }
}

/// Backward of [`layer_norm`]: gg += Σ dy x̂, gb += Σ dy, and dx (overwritten).
pub(super) fn layer_norm_back<T: Real>(dy: &[T], d: usize, g: &[T], xhat: &[T], rstd: &[T], gg: &mut [T], gb: &mut [T], dx: &mut [T]) {
    let inv_d = T::of(1.0 / d as f64);
    for (t, dyt) in dy.chunks_exact(d).enumerate() {
        let xh = &xhat[t * d..(t + 1) * d];
        let (mut m1, mut m2) = (T::default(), T::default());
        for k in 0..d {
            gg[k] += dyt[k] * xh[k];
            gb[k] += dyt[k];
            let dxh = dyt[k] * g[k];
            m1 += dxh;
            m2 += dxh * xh[k];
        }
        m1 *= inv_d;
        m2 *= inv_d;
        for k in 0..d {
            dx[t * d + k] = rstd[t] * (dyt[k] * g[k] - m1 - xh[k] * m2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In f32 the rows quantise bit for bit as the other trainers' [`Injector::dac`] quantises a
    /// vector; 0 bits leave the rows as they are (borrowed, no copy), a zero row stays zero.
    #[test]
    fn dac_rows_is_the_injectors_dac_row_by_row() {
        let x: Vec<f32> = (0..24).map(|i| ((i * 37 % 23) as f32 - 11.3) * 0.173).chain([0.0; 8]).collect();
        for bits in [2, 3, 7, 12] {
            let inj = Injector::new(&TrainingConfig { dac_bits: bits, ..TrainingConfig::default() }, 0);
            let q = dac_rows(Dac { bits, max_in: 512 }, &x, 8);
            for (row, qrow) in x.chunks(8).zip(q.chunks(8)) {
                let mut want = row.to_vec();
                inj.dac(&mut want);
                assert_eq!(want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), qrow.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "{bits} bits");
            }
            assert!(q[..24] != x[..24], "{bits} bits change the rows");
        }
        assert!(matches!(dac_rows(Dac { bits: 0, max_in: 512 }, &x, 8), Cow::Borrowed(_)));
        // Tiles of at most 3 rows (3, 3, 2): each slice of a row is quantised as its own vector.
        let q = dac_rows(Dac { bits: 3, max_in: 3 }, &x, 8);
        let inj = Injector::new(&TrainingConfig { dac_bits: 3, ..TrainingConfig::default() }, 0);
        for (row, qrow) in x.chunks(8).zip(q.chunks(8)) {
            for r in tile_ranges(8, 3) {
                let (slice, qslice) = (&row[r.clone()], &qrow[r]);
                let mut want = slice.to_vec();
                inj.dac(&mut want);
                assert_eq!(want, qslice);
            }
        }
    }

    /// The transformer's crossbar is the other trainers' [`Injector::crossbar`]: with an ADC, tiles
    /// and weight scaling (no output noise, where both take the same scales), and with a DAC and
    /// bound management, every row's outputs are the same f32 values; with one tile and no ADC it is the DAC'd [`linear`] and its noise.
    #[test]
    fn crossbar_linear_is_the_injectors_crossbar() {
        let (d_in, d_out, n) = (7, 3, 2);
        let x: Vec<f32> = (0..n * d_in).map(|i| ((i * 29 % 17) as f32 - 8.1) * 0.21).collect();
        let w: Vec<f32> = (0..d_out * d_in).map(|i| ((i * 13 % 11) as f32 - 5.2) * 0.31).collect();
        let b = [0.5f32, -0.25, 0.125];
        let wt = transpose(&w, d_out, d_in);
        let mut redone = 0;
        for (max_in, omega, columnwise, bm) in [
            (3, 0.0, false, false),
            (7, 0.0, false, false),
            (3, 1.0, true, false),
            (3, 0.7, false, false),
            (3, 0.0, false, true),
            (7, 0.0, false, true),
            (3, 3.0, true, true),
        ] {
            let cfg = TrainingConfig {
                adc_bits: 5,
                out_bound: 1.5,
                max_in,
                weight_scaling_omega: omega,
                weight_scaling_columnwise: columnwise,
                dac_bits: if bm { 6 } else { 0 },
                bound_management: if bm { "iterative" } else { "none" }.into(),
                ..TrainingConfig::default()
            };
            if bm {
                let mut y0 = vec![0.0f32; n * d_out];
                let none = TrainingConfig { bound_management: "none".into(), ..cfg.clone() };
                crossbar_linear(&mut Injector::new(&none, 0), &x, d_in, &wt, Some(&b), d_out, &mut y0, &mut ClipRows::default());
                let mut y1 = vec![0.0f32; n * d_out];
                crossbar_linear(&mut Injector::new(&cfg, 0), &x, d_in, &wt, Some(&b), d_out, &mut y1, &mut ClipRows::default());
                redone += (y0 != y1) as usize;
            }
            let mut y = vec![0.0f32; n * d_out];
            crossbar_linear(&mut Injector::new(&cfg, 0), &x, d_in, &wt, Some(&b), d_out, &mut y, &mut ClipRows::default());
            for (xt, yt) in x.chunks(d_in).zip(y.chunks(d_out)) {
                let (mut xq, mut want) = (vec![0.0; d_in], vec![0.0; d_out]);
                Injector::new(&cfg, 0).crossbar(&w, xt, Some(&b), &mut xq, &mut want, &mut crate::train::hwa::Clipped::default());
                assert_eq!(yt, &want[..], "max_in {max_in}, ω {omega}");
            }
            let plain = {
                let mut p = vec![0.0f32; n * d_out];
                linear(&x, d_in, &wt, Some(&b), d_out, &mut p);
                p
            };
            assert!(y != plain, "the ADC changes the outputs");
        }
        assert_eq!(redone, 3, "bound management redoes a saturated tile in every case");
        // One row on one tile with output noise, per-read weight noise of both types, IR drop, the
        // DAC, the ADC and bound management: the same draws in the same order, so the same values.
        for w_noise_type in ["additive_constant", "pcm_read"] {
            let cfg = TrainingConfig {
                adc_bits: 5,
                out_bound: 1.5,
                dac_bits: 6,
                output_noise: 0.05,
                w_noise: 0.08,
                w_noise_type: w_noise_type.into(),
                ir_drop: 0.5,
                ir_drop_g_ratio: 10.0,
                bound_management: "iterative".into(),
                ..TrainingConfig::default()
            };
            let mut y = vec![0.0f32; d_out];
            crossbar_linear(&mut Injector::new(&cfg, 4), &x[..d_in], d_in, &wt, Some(&b), d_out, &mut y, &mut ClipRows::default());
            let (mut xq, mut want) = (vec![0.0; d_in], vec![0.0; d_out]);
            Injector::new(&cfg, 4).crossbar(&w, &x[..d_in], Some(&b), &mut xq, &mut want, &mut crate::train::hwa::Clipped::default());
            assert_eq!(y, want, "{w_noise_type}");
        }
        let cfg = TrainingConfig { dac_bits: 4, output_noise: 0.1, ..TrainingConfig::default() };
        let mut y = vec![0.0f32; n * d_out];
        crossbar_linear(&mut Injector::new(&cfg, 5), &x, d_in, &wt, Some(&b), d_out, &mut y, &mut ClipRows::default());
        let mut want = vec![0.0f32; n * d_out];
        let mut inj = Injector::new(&cfg, 5);
        linear(&dac_rows(Dac::of(&inj), &x, d_in), d_in, &wt, Some(&b), d_out, &mut want);
        output_noise(&mut inj, &x, d_in, &mut want, d_out);
        assert_eq!(y, want);
    }
}
