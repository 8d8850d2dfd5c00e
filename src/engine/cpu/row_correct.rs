//! CPU twin of shaders/row_correct.wgsl: per test row, the chunk's trials whose argmax prediction
//! is its label, in slot `[t_index][sample]` of the chunk's row counts (top-level `row_counts`).

use crate::engine::layout::StageParams;

pub fn row_correct(p: &StageParams, h: &[f32], labels: &[u32], rows: &mut [u32]) {
    let l = &p.layer;
    let (batch, n_out) = (l.batch as usize, l.n_out as usize);
    for (s, &label) in labels.iter().enumerate().take(batch) {
        let right = (0..l.trials as usize)
            .filter(|&t| {
                let out = &h[(t * batch + s) * n_out..(t * batch + s + 1) * n_out];
                let best = out.iter().enumerate().skip(1).fold(0, |b, (o, &v)| if v > out[b] { o } else { b });
                best as u32 == label
            })
            .count();
        rows[l.t_index as usize * batch + s] = right as u32;
    }
}
