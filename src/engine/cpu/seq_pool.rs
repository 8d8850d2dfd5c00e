//! CPU twin of shaders/seq_pool.wgsl: the mean over a sequence's non-padding tokens, its first
//! token, or its last non-padding token.

use super::common::par_trials;
use crate::engine::layout::StageParams;

pub fn seq_pool(p: &StageParams, x: &[f32], lengths: &[u32], out: &mut [f32], threads: usize) {
    let s = &p.seq;
    let (seq, d) = (s.seq as usize, s.d_model as usize);
    let items = p.layer.trials as usize * s.samples as usize;
    par_trials(threads, items, out, d, |first, n, o| {
        for tl in 0..n {
            let ts = first + tl;
            let base = ts * seq * d;
            let len = (lengths[ts % s.samples as usize] as usize).min(seq);
            for c in 0..d {
                o[tl * d + c] = if s.pool == 1 {
                    x[base + c]
                } else if s.pool == 2 {
                    if len > 0 {
                        x[base + (len - 1) * d + c]
                    } else {
                        0.0
                    }
                } else {
                    let mut acc = 0.0f32;
                    for j in 0..len {
                        acc += x[base + j * d + c];
                    }
                    if len > 0 {
                        acc / len as f32
                    } else {
                        0.0
                    }
                };
            }
        }
    });
}
