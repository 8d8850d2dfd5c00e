//! Fast exact attention (`attention_softmax`) for the CPU backend: per query, the scores over
//! its keys into a buffer, then the maximum, the exponentials (`lanes::exp`) and one weighted
//! sum of V rows — two passes that vectorise, where the twin (as the shader) keeps one online
//! pass with a rescale at every new maximum. The same function of the inputs in another order:
//! within `tolerances::SEQ_ABS` of the twin (tests/suite/fast.rs).

use super::lanes;
use crate::engine::cpu::attention_softmax::MAX_D_HEAD;
use crate::engine::cpu::common::par_trials;
use crate::engine::layout::StageParams;

pub fn attention_softmax(p: &StageParams, q: &[f32], k: &[f32], v: &[f32], lengths: &[u32], out: &mut [f32], threads: usize) {
    let s = &p.seq;
    let (seq, d, heads) = (s.seq as usize, s.d_model as usize, s.heads as usize);
    let dh = s.d_head.min(MAX_D_HEAD) as usize;
    let inv = 1.0 / (s.d_head as f32).sqrt();
    let items = p.layer.trials as usize * s.samples as usize;
    par_trials(threads, items, out, seq * d, |first, n, o| {
        let mut w = vec![0f32; seq];
        let mut acc = vec![0f32; dh];
        for tl in 0..n {
            let ts = first + tl;
            let base = ts * seq * d;
            let len = (lengths[ts % s.samples as usize] as usize).min(seq);
            for h in 0..heads {
                let col = h * s.d_head as usize;
                for i in 0..seq {
                    let keys = if s.causal != 0 { len.min(i + 1) } else { len };
                    let qr = &q[base + i * d + col..][..dh];
                    let mut m = f32::NEG_INFINITY;
                    for (j, wj) in w[..keys].iter_mut().enumerate() {
                        let kr = &k[base + j * d + col..][..dh];
                        let mut sc = 0.0f32;
                        for (a, b) in qr.iter().zip(kr) {
                            sc += a * b;
                        }
                        *wj = sc * inv;
                        m = m.max(*wj);
                    }
                    let mut l = 0.0f32;
                    for wj in &mut w[..keys] {
                        *wj = lanes::exp(*wj - m);
                        l += *wj;
                    }
                    acc.fill(0.0);
                    for (j, &wj) in w[..keys].iter().enumerate() {
                        for (a, &vv) in acc.iter_mut().zip(&v[base + j * d + col..][..dh]) {
                            *a += wj * vv;
                        }
                    }
                    let r = if l > 0.0 { 1.0 / l } else { 0.0 };
                    for (ov, a) in o[tl * seq * d + i * d + col..][..dh].iter_mut().zip(&acc) {
                        *ov = a * r;
                    }
                }
            }
        }
    });
}
