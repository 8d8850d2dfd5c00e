//! CPU twin of shaders/moe_combine.wgsl: y (+)= gate_e · y_e.

use crate::engine::layout::StageParams;

pub fn moe_combine(p: &StageParams, gates: &[f32], ye: &[f32], y: &mut [f32]) {
    let s = &p.seq;
    let w = s.width_in as usize;
    for (i, o) in y[..s.rows as usize * w].iter_mut().enumerate() {
        let g = gates[(i / w) * s.experts as usize + s.expert as usize];
        *o = if s.expert == 0 { 0.0 } else { *o } + g * ye[i];
    }
}
