//! CPU twin of shaders/residual.wgsl: x += y over rows · width_in values.

use crate::engine::layout::StageParams;

pub fn residual(p: &StageParams, y: &[f32], x: &mut [f32]) {
    let n = p.seq.rows as usize * p.seq.width_in as usize;
    for (a, b) in x[..n].iter_mut().zip(&y[..n]) {
        *a += *b;
    }
}
