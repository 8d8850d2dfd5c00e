//! CPU twin of shaders/accuracy.wgsl: per-trial count of correct argmax predictions, in slot
//! `[t_index][trial]` of the chunk's counts.

use crate::engine::layout::StageParams;

pub fn accuracy(p: &StageParams, h: &[f32], labels: &[u32], correct: &mut [u32]) {
    let l = &p.layer;
    for i in 0..(l.trials * l.batch) as usize {
        let base = i * l.n_out as usize;
        let mut best = 0usize;
        let mut best_v = h[base];
        for o in 1..l.n_out as usize {
            if h[base + o] > best_v {
                best_v = h[base + o];
                best = o;
            }
        }
        if best as u32 == labels[i % l.batch as usize] {
            correct[(l.t_index * l.trials) as usize + i / l.batch as usize] += 1;
        }
    }
}
