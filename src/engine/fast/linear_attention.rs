//! Fast linear attention of the transformer (`linear_kv`, `linear_out`) and `feature_map` over
//! many rows: the twins' sums in the twins' order (so the results are bit-identical), with loops
//! ordered for the cache: `linear_kv` walks the keys once per (trial, sample, head), adding each
//! key's φ_j ⊗ [v_j | 1] row by row; `linear_out` forms each token's numerator row by row of S
//! and its denominator once (the twin recomputes it per output column); `feature_map` with one
//! flattened trial (the transformer's (token, head) slices) splits its rows over the threads.

use crate::engine::cpu::common::par_trials;
use crate::engine::layout::StageParams;
use crate::engine::stages::ATTN_BLOCK;

pub fn linear_kv(p: &StageParams, phik: &[f32], v: &[f32], lengths: &[u32], kv: &mut [f32], threads: usize) {
    let s = &p.seq;
    let (seq, d, heads, width, dh) = (s.seq as usize, s.d_model as usize, s.heads as usize, s.width as usize, s.d_head as usize);
    let (cols, blocks, causal) = (dh + 1, s.blocks as usize, s.causal != 0);
    let items = p.layer.trials as usize * s.samples as usize * heads;
    par_trials(threads, items, kv, blocks * width * cols, |first, n, out| {
        let mut acc = vec![0f32; width * cols];
        for il in 0..n {
            let tsh = first + il;
            let (h, ts) = (tsh % heads, tsh / heads);
            let len = (lengths[ts % s.samples as usize] as usize).min(seq);
            acc.fill(0.0);
            let o = &mut out[il * blocks * width * cols..][..blocks * width * cols];
            for j in 0..seq {
                if causal && j % ATTN_BLOCK == 0 {
                    o[(j / ATTN_BLOCK) * width * cols..][..width * cols].copy_from_slice(&acc);
                }
                if j < len {
                    let vr = &v[(ts * seq + j) * d + h * dh..][..dh];
                    let fr = &phik[((ts * seq + j) * heads + h) * width..][..width];
                    for (f, &pf) in fr.iter().enumerate() {
                        let row = &mut acc[f * cols..][..cols];
                        for (a, &vv) in row[..dh].iter_mut().zip(vr) {
                            *a += pf * vv;
                        }
                        row[dh] += pf;
                    }
                }
            }
            if !causal {
                o[..width * cols].copy_from_slice(&acc);
            }
        }
    });
}

#[allow(clippy::too_many_arguments)]
pub fn linear_out(p: &StageParams, phiq: &[f32], phik: &[f32], kv: &[f32], v: &[f32], lengths: &[u32], out: &mut [f32], threads: usize) {
    let s = &p.seq;
    let (seq, d, heads, width, dh) = (s.seq as usize, s.d_model as usize, s.heads as usize, s.width as usize, s.d_head as usize);
    let (cols, blocks, causal) = (dh + 1, s.blocks as usize, s.causal != 0);
    let tokens = p.layer.trials as usize * s.samples as usize * seq;
    par_trials(threads, tokens, out, d, |first, n, o| {
        let mut num = vec![0f32; cols];
        for tl in 0..n {
            let tok = first + tl;
            let (i, ts) = (tok % seq, tok / seq);
            for h in 0..heads {
                let q = &phiq[(tok * heads + h) * width..][..width];
                let b = if causal { i / ATTN_BLOCK } else { 0 };
                let sm = &kv[((ts * heads + h) * blocks + b) * width * cols..][..width * cols];
                // Column dh of `num` is the denominator: the same sum over f as the others.
                num.fill(0.0);
                for (f, &pq) in q.iter().enumerate() {
                    for (a, &sv) in num.iter_mut().zip(&sm[f * cols..][..cols]) {
                        *a += pq * sv;
                    }
                }
                if causal {
                    let len = (lengths[ts % s.samples as usize] as usize).min(seq);
                    for j in b * ATTN_BLOCK..(i + 1).min(len) {
                        let k = &phik[((ts * seq + j) * heads + h) * width..][..width];
                        let mut a = 0.0f32;
                        for (&x, &y) in q.iter().zip(k) {
                            a += x * y;
                        }
                        for (c, nv) in num[..dh].iter_mut().enumerate() {
                            *nv += a * v[(ts * seq + j) * d + h * dh + c];
                        }
                        num[dh] += a;
                    }
                }
                let den = num[dh];
                for c in 0..dh {
                    o[tl * d + h * dh + c] = if den != 0.0 { num[c] / den } else { 0.0 };
                }
            }
        }
    });
}

/// `feature_map`: with one flattened trial (per-row norms) the rows split over the threads, each
/// range through the twin; otherwise (norms shared by the trials) the twin itself.
pub fn feature_map(p: &StageParams, h: &[f32], norms: &[f32], phi: &mut [f32], threads: usize) {
    let k = &p.kern;
    if p.layer.trials != 1 || threads <= 1 {
        return crate::engine::cpu::feature_map::feature_map(p, h, norms, phi, threads);
    }
    let (rows, rs, width) = (k.rows as usize, (k.replicas * k.s) as usize, k.width as usize);
    par_trials(threads, rows, phi, width, |first, n, out| {
        let mut sub = *p;
        sub.kern.rows = n as u32;
        crate::engine::cpu::feature_map::feature_map(&sub, &h[first * rs..(first + n) * rs], &norms[first..first + n], &mut out[..n * width], 1);
    });
}
