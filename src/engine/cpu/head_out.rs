//! CPU twin of shaders/head_out.wgsl: a pooled head's outputs of every (trial, sequence) copied
//! to slot `[t_index][trial][sequence]` of the chunk's outputs (GLUE's per-sequence metrics:
//! Matthews correlation, F1, Pearson and Spearman correlations; each row's right trials).

use crate::engine::layout::StageParams;

pub fn head_out(p: &StageParams, h: &[f32], outputs: &mut [f32]) {
    let (l, s) = (&p.layer, &p.seq);
    let n_out = l.n_out as usize;
    for (i, &v) in h.iter().enumerate().take((l.trials * s.samples * l.n_out) as usize) {
        let (sample, trial) = ((i / n_out) % s.samples as usize, i / (n_out * s.samples as usize));
        let slot = (l.t_index * l.trials) as usize * l.batch as usize + trial * l.batch as usize + (s.sample_offset as usize + sample);
        outputs[slot * n_out + i % n_out] = v;
    }
}
