//! Fast exact attention (`attention_softmax`) for the CPU backend: per query, the scores over
//! its keys into a buffer (eight keys at a time, from the head's keys transposed once per
//! sample), then the maximum, the exponentials (`lanes::exp`) and one weighted sum of V rows —
//! two passes that vectorise, where the twin (as the shader) keeps one online pass with a
//! rescale at every new maximum. The same function of the inputs in another order:
//! within `tolerances::SEQ_ABS` of the twin (tests/suite/fast.rs).

use super::lanes;
use crate::engine::cpu::attention_softmax::MAX_D_HEAD;
use crate::engine::cpu::common::par_trials;
use crate::engine::layout::StageParams;
use crate::rng::simd::simd_entry;

pub fn attention_softmax(p: &StageParams, q: &[f32], k: &[f32], v: &[f32], lengths: &[u32], out: &mut [f32], threads: usize) {
    let s = &p.seq;
    let (seq, d) = (s.seq as usize, s.d_model as usize);
    let dh = s.d_head.min(MAX_D_HEAD) as usize;
    let items = p.layer.trials as usize * s.samples as usize;
    par_trials(threads, items, out, seq * d, |first, n, o| {
        let mut sc = Scratch { w: vec![0f32; seq], acc: vec![0f32; dh], kt: vec![0f32; dh * seq] };
        for tl in 0..n {
            sample(p, q, k, v, lengths, first + tl, &mut o[tl * seq * d..][..seq * d], &mut sc);
        }
    });
}

/// Per-thread buffers: one query's scores, its weighted sum, and the head's keys transposed.
struct Scratch {
    w: Vec<f32>,
    acc: Vec<f32>,
    kt: Vec<f32>,
}

// One (trial, sample): every head's queries, compiled for AVX2+FMA where the CPU has them.
simd_entry!(
    #[allow(clippy::too_many_arguments)]
    fn sample(p: &StageParams, q: &[f32], k: &[f32], v: &[f32], lengths: &[u32], ts: usize, o: &mut [f32], sc: &mut Scratch) => sample_body
);

/// The keys of each head are transposed once (`kt[c * len + j]`), so a query's scores run over
/// eight keys at a time: score j is still (((0 + q₀k_j0) + q₁k_j1) + …) over the columns in
/// increasing order, with a separate multiply and add, as a per-key dot product sums it.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn sample_body(p: &StageParams, q: &[f32], k: &[f32], v: &[f32], lengths: &[u32], ts: usize, o: &mut [f32], sc: &mut Scratch) {
    let s = &p.seq;
    let (seq, d, heads) = (s.seq as usize, s.d_model as usize, s.heads as usize);
    let dh = s.d_head.min(MAX_D_HEAD) as usize;
    let inv = 1.0 / (s.d_head as f32).sqrt();
    let base = ts * seq * d;
    let len = (lengths[ts % s.samples as usize] as usize).min(seq);
    let Scratch { w, acc, kt } = sc;
    for h in 0..heads {
        let col = h * s.d_head as usize;
        for j in 0..len {
            for (c, &kv) in k[base + j * d + col..][..dh].iter().enumerate() {
                kt[c * len + j] = kv;
            }
        }
        for i in 0..seq {
            let keys = if s.causal != 0 { len.min(i + 1) } else { len };
            let qr = &q[base + i * d + col..][..dh];
            let w = &mut w[..keys];
            w.fill(0.0);
            for (c, &qc) in qr.iter().enumerate() {
                for (wj, &kv) in w.iter_mut().zip(&kt[c * len..][..keys]) {
                    *wj += qc * kv;
                }
            }
            let mut m = f32::NEG_INFINITY;
            for wj in w.iter_mut() {
                *wj *= inv;
                m = m.max(*wj);
            }
            let mut l = 0.0f32;
            for wj in w.iter_mut() {
                *wj = lanes::exp(*wj - m);
                l += *wj;
            }
            acc.fill(0.0);
            for (j, &wj) in w.iter().enumerate() {
                for (a, &vv) in acc.iter_mut().zip(&v[base + j * d + col..][..dh]) {
                    *a += wj * vv;
                }
            }
            let r = if l > 0.0 { 1.0 / l } else { 0.0 };
            for (ov, a) in o[i * d + col..][..dh].iter_mut().zip(acc.iter()) {
                *ov = a * r;
            }
        }
    }
}
