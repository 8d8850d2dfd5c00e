//! CPU twin of shaders/embed.wgsl: `x = E[token]·scale + pos[token index]`, broadcast to every
//! trial of the chunk. Invocation index i = ((trial_local · samples + sample) · seq + token) ·
//! d_model + feature.

use super::common::par_trials;
use crate::engine::layout::StageParams;

pub fn embed(p: &StageParams, tokens: &[u32], table: &[f32], pos: &[f32], x: &mut [f32], threads: usize) {
    let s = &p.seq;
    let d = s.d_model as usize;
    let per_trial = s.samples as usize * s.seq as usize * d;
    let rows = p.layer.trials as usize * s.samples as usize * s.seq as usize;
    par_trials(threads, rows, x, d, |first, n, out| {
        for r in 0..n {
            let tok = (first + r) % (per_trial / d.max(1));
            let id = tokens[tok].min(s.vocab - 1) as usize;
            let pr = (tok % s.seq as usize) * d;
            for c in 0..d {
                out[r * d + c] = table[id * d + c] * s.scale + pos[pr + c];
            }
        }
    });
}
