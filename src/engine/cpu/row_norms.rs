//! CPU twin of shaders/row_norms.wgsl: scale · ‖x_r‖² of each row.

use super::common::par_trials;
use crate::engine::layout::StageParams;

pub fn row_norms(p: &StageParams, x: &[f32], norms: &mut [f32], threads: usize) {
    let w = p.seq.width_in as usize;
    par_trials(threads, p.seq.rows as usize, norms, 1, |first, n, out| {
        for (r, o) in out[..n].iter_mut().enumerate() {
            let mut sq = 0.0f32;
            for &e in &x[(first + r) * w..][..w] {
                sq += e * e;
            }
            *o = p.seq.scale * sq;
        }
    });
}
