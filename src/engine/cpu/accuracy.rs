//! CPU twin of shaders/accuracy.wgsl: per-trial count of correct argmax predictions, in slot
//! `[t_index][trial]` of the chunk's counts.

use super::common::first_argmax;
use crate::engine::layout::StageParams;

pub fn accuracy(p: &StageParams, h: &[f32], labels: &[u32], correct: &mut [u32]) {
    let l = &p.layer;
    let n_out = l.n_out as usize;
    for i in 0..(l.trials * l.batch) as usize {
        if first_argmax(&h[i * n_out..(i + 1) * n_out]) as u32 == labels[i % l.batch as usize] {
            correct[(l.t_index * l.trials) as usize + i / l.batch as usize] += 1;
        }
    }
}
