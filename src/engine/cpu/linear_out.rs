//! CPU twin of shaders/linear_out.wgsl: linear attention's output per (trial, sample, token,
//! head, column) from `linear_kv`'s sums (plus the causal block's own keys).

use super::common::par_trials;
use crate::engine::layout::StageParams;
use crate::engine::stages::ATTN_BLOCK;

#[allow(clippy::too_many_arguments)]
pub fn linear_out(p: &StageParams, phiq: &[f32], phik: &[f32], kv: &[f32], v: &[f32], lengths: &[u32], out: &mut [f32], threads: usize) {
    let s = &p.seq;
    let (seq, d, heads, width, dh) = (s.seq as usize, s.d_model as usize, s.heads as usize, s.width as usize, s.d_head as usize);
    let (cols, blocks, causal) = (dh + 1, s.blocks as usize, s.causal != 0);
    let tokens = p.layer.trials as usize * s.samples as usize * seq;
    par_trials(threads, tokens, out, d, |first, n, o| {
        for tl in 0..n {
            let tok = first + tl;
            let (i, ts) = (tok % seq, tok / seq);
            for col in 0..d {
                let (h, c) = (col / dh, col % dh);
                let qrow = (tok * heads + h) * width;
                let b = if causal { i / ATTN_BLOCK } else { 0 };
                let kvo = ((ts * heads + h) * blocks + b) * width * cols;
                let (mut num, mut den) = (0.0f32, 0.0f32);
                for f in 0..width {
                    let pq = phiq[qrow + f];
                    num += pq * kv[kvo + f * cols + c];
                    den += pq * kv[kvo + f * cols + dh];
                }
                if causal {
                    let len = (lengths[ts % s.samples as usize] as usize).min(seq);
                    for j in b * ATTN_BLOCK..(i + 1).min(len) {
                        let krow = ((ts * seq + j) * heads + h) * width;
                        let mut a = 0.0f32;
                        for f in 0..width {
                            a += phiq[qrow + f] * phik[krow + f];
                        }
                        num += a * v[(ts * seq + j) * d + col];
                        den += a;
                    }
                }
                o[tl * d + col] = if den != 0.0 { num / den } else { 0.0 };
            }
        }
    });
}
