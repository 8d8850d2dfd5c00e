//! CPU twin of shaders/row_correct.wgsl: per test row, the chunk's trials whose argmax prediction
//! is its label, added into slot `[t_index][sample_offset + sample]` (stride `batch`) of the
//! chunk's row counts (top-level `row_counts`, a transformer classifier's `transformer.row_counts`).

use super::common::first_argmax;
use crate::engine::layout::StageParams;

pub fn row_correct(p: &StageParams, h: &[f32], labels: &[u32], rows: &mut [u32]) {
    let (l, s) = (&p.layer, &p.seq);
    let (samples, n_out) = (s.samples as usize, l.n_out as usize);
    let slot0 = l.t_index as usize * l.batch as usize + s.sample_offset as usize;
    for i in 0..l.trials as usize * samples {
        if first_argmax(&h[i * n_out..(i + 1) * n_out]) as u32 == labels[i % samples] {
            rows[slot0 + i % samples] += 1;
        }
    }
}
