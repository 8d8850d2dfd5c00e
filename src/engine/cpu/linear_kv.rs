//! CPU twin of shaders/linear_kv.wgsl: linear attention's key sums per (trial, sample, head),
//! non-causal over the non-padding keys, or causal exclusive prefixes per ATTN_BLOCK tokens.

use super::common::par_trials;
use crate::engine::layout::StageParams;
use crate::engine::stages::ATTN_BLOCK;

pub fn linear_kv(p: &StageParams, phik: &[f32], v: &[f32], lengths: &[u32], kv: &mut [f32], threads: usize) {
    let s = &p.seq;
    let (seq, d, heads, width, dh) = (s.seq as usize, s.d_model as usize, s.heads as usize, s.width as usize, s.d_head as usize);
    let (cols, blocks) = (dh + 1, s.blocks as usize);
    let items = p.layer.trials as usize * s.samples as usize * heads;
    par_trials(threads, items, kv, blocks * width * cols, |first, n, out| {
        for il in 0..n {
            let tsh = first + il;
            let (h, ts) = (tsh % heads, tsh / heads);
            let len = (lengths[ts % s.samples as usize] as usize).min(seq);
            for f in 0..width {
                for c in 0..cols {
                    let mut acc = 0.0f32;
                    for j in 0..seq {
                        if s.causal != 0 && j % ATTN_BLOCK == 0 {
                            out[((il * blocks + j / ATTN_BLOCK) * width + f) * cols + c] = acc;
                        }
                        if j < len {
                            let vv = if c < dh { v[(ts * seq + j) * d + h * dh + c] } else { 1.0 };
                            acc += phik[((ts * seq + j) * heads + h) * width + f] * vv;
                        }
                    }
                    if s.causal == 0 {
                        out[(il * width + f) * cols + c] = acc;
                    }
                }
            }
        }
    });
}
