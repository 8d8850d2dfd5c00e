//! CPU twin of shaders/embed.wgsl: `x = E[token]·scale + pos[segment][token index]`, broadcast
//! to every trial of the chunk; a token's segment is its id's top bit (`SEGMENT_BIT`, set on a
//! sentence pair's second segment), which picks the position block with token-type row 1.
//! Invocation index i = ((trial_local · samples + sample) · seq + token) · d_model + feature.

use super::common::par_trials;
use crate::engine::layout::StageParams;
use crate::workload::transformer::SEGMENT_BIT;

pub fn embed(p: &StageParams, tokens: &[u32], table: &[f32], pos: &[f32], x: &mut [f32], threads: usize) {
    let s = &p.seq;
    let d = s.d_model as usize;
    let per_trial = s.samples as usize * s.seq as usize * d;
    let rows = p.layer.trials as usize * s.samples as usize * s.seq as usize;
    par_trials(threads, rows, x, d, |first, n, out| {
        for r in 0..n {
            let tok = (first + r) % (per_trial / d.max(1));
            let raw = tokens[tok];
            let id = (raw & !SEGMENT_BIT).min(s.vocab - 1) as usize;
            let segment = (raw >> 31) as usize;
            let pr = (segment * s.seq as usize + tok % s.seq as usize) * d;
            for c in 0..d {
                out[r * d + c] = table[id * d + c] * s.scale + pos[pr + c];
            }
        }
    });
}
