//! CPU twin of shaders/attention_softmax.wgsl: exact attention with the padding mask (and the
//! causal one), one online-softmax pass per (trial, sample, head, query) in the shader's order.

use super::common::par_trials;
use crate::engine::layout::StageParams;

/// The shader's private accumulator size (`MAX_D_HEAD`).
pub const MAX_D_HEAD: u32 = 128;

pub fn attention_softmax(p: &StageParams, q: &[f32], k: &[f32], v: &[f32], lengths: &[u32], out: &mut [f32], threads: usize) {
    let s = &p.seq;
    let (seq, d, heads) = (s.seq as usize, s.d_model as usize, s.heads as usize);
    let dh = s.d_head.min(MAX_D_HEAD) as usize;
    let inv = 1.0 / (s.d_head as f32).sqrt();
    // Parallel over (trial, sample) rows of seq · d_model outputs.
    let items = p.layer.trials as usize * s.samples as usize;
    par_trials(threads, items, out, seq * d, |first, n, o| {
        let mut acc = vec![0f32; dh];
        for tl in 0..n {
            let ts = first + tl;
            let base = ts * seq * d;
            for h in 0..heads {
                for i in 0..seq {
                    let mut keys = (lengths[ts % s.samples as usize] as usize).min(seq);
                    if s.causal != 0 {
                        keys = keys.min(i + 1);
                    }
                    let qo = base + i * d + h * s.d_head as usize;
                    acc.fill(0.0);
                    let (mut m, mut l) = (-3.0e38f32, 0.0f32);
                    for j in 0..keys {
                        let ko = base + j * d + h * s.d_head as usize;
                        let mut sc = 0.0f32;
                        for c in 0..dh {
                            sc += q[qo + c] * k[ko + c];
                        }
                        sc *= inv;
                        if sc > m {
                            let corr = (m - sc).exp();
                            l *= corr;
                            acc.iter_mut().for_each(|a| *a *= corr);
                            m = sc;
                        }
                        let pj = (sc - m).exp();
                        l += pj;
                        for c in 0..dh {
                            acc[c] += pj * v[ko + c];
                        }
                    }
                    let r = if l > 0.0 { 1.0 / l } else { 0.0 };
                    let oo = tl * seq * d + i * d + h * s.d_head as usize;
                    for c in 0..dh {
                        o[oo + c] = acc[c] * r;
                    }
                }
            }
        }
    });
}
