//! CPU twin of shaders/residual.wgsl: x = activate(x + y) over rows · width_in values (the
//! transformer's residual add, activation none; a residual network's shortcut, He et al. 2016).

use super::common::activate;
use crate::engine::layout::StageParams;

pub fn residual(p: &StageParams, y: &[f32], x: &mut [f32]) {
    let n = p.seq.rows as usize * p.seq.width_in as usize;
    for (a, b) in x[..n].iter_mut().zip(&y[..n]) {
        *a = activate(p.layer.activation, *a + *b);
    }
}
