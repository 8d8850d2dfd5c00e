//! CPU twin of shaders/layernorm.wgsl: LayerNorm of each row, two passes in f32 in the shader's
//! order, or with mode 1 MobileBERT's NoNorm or an inference BatchNorm, activate(x·γ + β). `gb`
//! holds γ then β.

use super::common::{activate, par_trials};
use crate::engine::layout::StageParams;

pub fn layernorm(p: &StageParams, x: &[f32], gb: &[f32], y: &mut [f32], threads: usize) {
    let w = p.seq.width_in as usize;
    let eps = p.seq.eps;
    par_trials(threads, p.seq.rows as usize, y, w, |first, n, out| {
        for r in 0..n {
            let row = &x[(first + r) * w..][..w];
            if p.seq.mode == 1 {
                for c in 0..w {
                    out[r * w + c] = activate(p.layer.activation, row[c] * gb[c] + gb[w + c]);
                }
                continue;
            }
            let mut sum = 0.0f32;
            for &v in row {
                sum += v;
            }
            let mean = sum / w as f32;
            let mut sq = 0.0f32;
            for &v in row {
                let e = v - mean;
                sq += e * e;
            }
            let inv = 1.0 / (sq / w as f32 + eps).sqrt();
            for c in 0..w {
                out[r * w + c] = (row[c] - mean) * inv * gb[c] + gb[w + c];
            }
        }
    });
}
