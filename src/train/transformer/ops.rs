//! The dense kernels of the training transformer (src/train/transformer/mod.rs), generic over
//! [`Real`]: Linear forward and backward with W transposed (each output sums its inputs in index
//! order), output-noise injection for hardware-aware training, and LayerNorm forward and backward.

// Index loops mirror the gradient equations, so the backward pass reads beside them.
#![allow(clippy::needless_range_loop, clippy::too_many_arguments)]

use super::*;
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

/// Hardware-aware training's DAC on the rows of `x` [n, d_in] (`bits`; 0: none, `x` itself):
/// each row quantised over its own max|x| to steps of 2/(2^bits − 2) of the unit range, by the
/// same operations as [`Injector::dac`] (aihwkit's abs-max noise management). The forward pass
/// multiplies the quantised rows; the backward pass takes them again for the weight gradient and
/// passes the input gradient straight through (the quantiser's derivative taken as 1).
pub(super) fn dac_rows<T: Real>(bits: u32, x: &[T], d_in: usize) -> Cow<'_, [T]> {
    if bits == 0 || d_in == 0 {
        return Cow::Borrowed(x);
    }
    let step = T::of(crate::crossbar::step(bits, 1.0) as f32 as f64);
    let (lo, hi) = (T::of(-1.0), T::of(1.0));
    let mut q = x.to_vec();
    for row in q.chunks_exact_mut(d_in) {
        let amax = row.iter().fold(T::default(), |m, &v| max(m, max(v, -v)));
        if amax == T::default() {
            continue;
        }
        for v in row.iter_mut() {
            let level = (*v / amax / step).round() * step;
            *v = max(lo, if level > hi { hi } else { level }) * amax;
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
        let xmax = xt.iter().fold(0.0f64, |m, v| m.max(v.to_f64().abs())) as f32;
        let mut y32: Vec<f32> = yt.iter().map(|v| v.to_f64() as f32).collect();
        inj.output_noise(&mut y32, xmax);
        for (a, b) in yt.iter_mut().zip(y32) {
            *a = T::of(b as f64);
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
            let q = dac_rows(bits, &x, 8);
            for (row, qrow) in x.chunks(8).zip(q.chunks(8)) {
                let mut want = row.to_vec();
                inj.dac(&mut want);
                assert_eq!(want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), qrow.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "{bits} bits");
            }
            assert!(q[..24] != x[..24], "{bits} bits change the rows");
        }
        assert!(matches!(dac_rows(0, &x, 8), Cow::Borrowed(_)));
    }
}
