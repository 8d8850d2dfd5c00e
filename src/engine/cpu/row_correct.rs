//! CPU twin of shaders/row_correct.wgsl: per test row, the chunk's trials whose argmax prediction
//! is its label, added into slot `[t_index][sample]` of the chunk's row counts (top-level
//! `row_counts`).

use super::common::first_argmax;
use crate::engine::layout::StageParams;

pub fn row_correct(p: &StageParams, h: &[f32], labels: &[u32], rows: &mut [u32]) {
    let l = &p.layer;
    let (batch, n_out) = (l.batch as usize, l.n_out as usize);
    for i in 0..l.trials as usize * batch {
        if first_argmax(&h[i * n_out..(i + 1) * n_out]) as u32 == labels[i % batch] {
            rows[l.t_index as usize * batch + i % batch] += 1;
        }
    }
}
