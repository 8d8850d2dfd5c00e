//! CPU twin of shaders/attention_kv.wgsl: linear attention's sums S = K′ᵀV and z = K′ᵀ1 per
//! (trial, head), in token order; causal: exclusive prefixes per block of ATTN_BLOCK tokens.

use super::common::par_trials;
use crate::engine::layout::StageParams;

pub use crate::engine::stages::ATTN_BLOCK;

pub fn attention_kv(p: &StageParams, phi: &[f32], v: &[f32], kv: &mut [f32], threads: usize) {
    let k = &p.kern;
    let (rows, width, heads, seq, dv, blocks) = (k.rows as usize, k.width as usize, k.heads as usize, k.seq as usize, k.dv as usize, k.blocks as usize);
    let cols = dv + 1;
    let per_trial = heads * blocks * width * cols;
    par_trials(threads, p.layer.trials as usize, kv, per_trial, |first, n, out| {
        for tl in 0..n {
            let t = first + tl;
            for hd in 0..heads {
                let krow0 = t * rows + heads * seq + hd * seq;
                let th = tl * heads + hd;
                for f in 0..width {
                    for c in 0..cols {
                        let mut acc = 0f32;
                        for j in 0..seq {
                            if k.causal != 0 && j % ATTN_BLOCK == 0 {
                                out[((th * blocks + j / ATTN_BLOCK) * width + f) * cols + c] = acc;
                            }
                            let vv = if c < dv { v[(hd * seq + j) * dv + c] } else { 1.0 };
                            acc += phi[(krow0 + j) * width + f] * vv;
                        }
                        if k.causal == 0 {
                            out[(th * width + f) * cols + c] = acc;
                        }
                    }
                }
            }
        }
    });
}
