//! CPU twin of shaders/attention_out.wgsl: Σ_c (A_ic − Â_ic)² per (trial, head, token). Each
//! numerator and denominator sums as the shader's do (features in order, then the block's keys in
//! order); the squared errors are summed in another order than the shader's tiles.

use super::attention_kv::ATTN_BLOCK;
use super::common::{par_trials, tree_sum};
use crate::engine::layout::StageParams;

#[allow(clippy::too_many_arguments)]
pub fn attention_out(p: &StageParams, phi: &[f32], kv: &[f32], v: &[f32], exact: &[f32], partial: &mut [f32], threads: usize) {
    let k = &p.kern;
    let (rows, width, heads, seq, dv, blocks) = (k.rows as usize, k.width as usize, k.heads as usize, k.seq as usize, k.dv as usize, k.blocks as usize);
    let (cols, causal, trials) = (dv + 1, k.causal != 0, p.layer.trials as usize);
    let slot = &mut partial[p.layer.t_index as usize * trials * heads * seq..][..trials * heads * seq];
    par_trials(threads, trials, slot, heads * seq, |first, n, out| {
        let mut aw = [0f32; ATTN_BLOCK];
        let mut red = [0f32; ATTN_BLOCK];
        for tl in 0..n {
            let t = first + tl;
            for hd in 0..heads {
                let th = t * heads + hd;
                for i in 0..seq {
                    let qrow = &phi[(t * rows + hd * seq + i) * width..][..width];
                    let b = if causal { i / ATTN_BLOCK } else { 0 };
                    let kvo = (th * blocks + b) * width * cols;
                    let j0 = b * ATTN_BLOCK;
                    for (lid, a) in aw.iter_mut().enumerate() {
                        let j = j0 + lid;
                        *a = 0.0;
                        if causal && j <= i {
                            let krow = &phi[(t * rows + heads * seq + hd * seq + j) * width..][..width];
                            for f in 0..width {
                                *a += qrow[f] * krow[f];
                            }
                        }
                    }
                    let mut den = 0f32;
                    for f in 0..width {
                        den += qrow[f] * kv[kvo + f * cols + dv];
                    }
                    for a in &aw {
                        den += a;
                    }
                    let last = ATTN_BLOCK.min(i + 1 - j0);
                    for (lid, r) in red.iter_mut().enumerate() {
                        let mut err = 0f32;
                        for c in (lid..dv).step_by(ATTN_BLOCK) {
                            let mut num = 0f32;
                            for f in 0..width {
                                num += qrow[f] * kv[kvo + f * cols + c];
                            }
                            if causal {
                                for l in 0..last {
                                    num += aw[l] * v[(hd * seq + j0 + l) * dv + c];
                                }
                            }
                            let e = exact[(hd * seq + i) * dv + c] - num / den;
                            err += e * e;
                        }
                        *r = err;
                    }
                    out[(tl * heads + hd) * seq + i] = tree_sum(&mut red);
                }
            }
        }
    });
}
