//! CPU twin of shaders/feature_map.wgsl: replica-averaged projections to random features
//! (the map table of `crate::kernel`, in f32 as the shader computes it).

use super::common::par_trials;
use crate::engine::layout::StageParams;

/// √2 in f32, as the shader's constant.
const SQRT2: f32 = std::f32::consts::SQRT_2;

/// φ of every (trial, row): `h` is the layer's output `[trial][row][replicas · s]`.
pub fn feature_map(p: &StageParams, h: &[f32], norms: &[f32], phi: &mut [f32], threads: usize) {
    let k = &p.kern;
    let (rows, s, r, width) = (k.rows as usize, k.s as usize, k.replicas as usize, k.width as usize);
    par_trials(threads, p.layer.trials as usize, phi, rows * width, |first, n, out| {
        for tl in 0..n {
            for (row, &sq) in norms[..rows].iter().enumerate() {
                let tr = (first + tl) * rows + row;
                let o = (tl * rows + row) * width;
                let c0 = 1.0 / (s as f32).sqrt();
                let half = 0.5 * sq;
                for j in 0..s {
                    let mut y = 0.0f32;
                    for c in 0..r {
                        y += h[tr * r * s + c * s + j];
                    }
                    y /= r as f32;
                    let (a, b) = match k.map {
                        0 => (c0 * y.cos(), c0 * y.sin()),
                        1 => (if y > 0.0 { c0 * SQRT2 } else { 0.0 }, 0.0),
                        2 => (c0 * SQRT2 * y.max(0.0), 0.0),
                        3 => {
                            let c2 = c0 / SQRT2;
                            (c2 * (y - half).exp(), c2 * (-y - half).exp())
                        }
                        4 => {
                            let e = c0 * half.exp();
                            (e * y.sin(), e * y.cos())
                        }
                        _ => (c0 * (-half).exp() * y.max(0.0), 0.0),
                    };
                    out[o + j] = a;
                    if width == 2 * s {
                        out[o + s + j] = b;
                    }
                }
            }
        }
    });
}
