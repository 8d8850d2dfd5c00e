//! Fast linear attention of the transformer (`linear_kv`, `linear_out`) and `feature_map` over
//! many rows: the twins' sums in the twins' order (so the results are bit-identical), with loops
//! ordered for the cache: `linear_kv` walks the keys once per (trial, sample, head), adding each
//! key's φ_j ⊗ [v_j | 1] row by row; `linear_out` forms each token's numerator row by row of S
//! and its denominator once (the twin recomputes it per output column); `feature_map` picks the
//! map once per row (the twin per feature) and splits rows or trials over the threads.

use super::lanes;
use crate::engine::cpu::common::par_trials;
use crate::engine::layout::{KernelParams, StageParams};
use crate::engine::stages::ATTN_BLOCK;
use crate::rng::simd::simd_entry;
use std::f32::consts::SQRT_2 as SQRT2;

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

/// `feature_map`: the twin's arithmetic row by row with the map chosen once per row and the
/// replica sums as whole rows. The maps without a transcendental per feature (1, 2, 5) are
/// bit-identical to the twin; the others take `lanes::exp` and `lanes::sincos` in place of libm,
/// within `tolerances::FAST_FEATURE_REL` of the twin. With one flattened trial (the transformer's
/// (token, head) slices) the rows split over the threads, otherwise the trials do.
pub fn feature_map(p: &StageParams, h: &[f32], norms: &[f32], phi: &mut [f32], threads: usize) {
    let k = &p.kern;
    let (rows, rs, width) = (k.rows as usize, (k.replicas * k.s) as usize, k.width as usize);
    if p.layer.trials == 1 {
        par_trials(threads, rows, phi, width, |first, n, out| {
            let mut y = Vec::new();
            for (row, o) in out[..n * width].chunks_exact_mut(width).enumerate() {
                feature_row(k, &h[(first + row) * rs..][..rs], norms[first + row], o, &mut y);
            }
        });
        return;
    }
    par_trials(threads, p.layer.trials as usize, phi, rows * width, |first, n, out| {
        let mut y = Vec::new();
        for (i, o) in out[..n * rows * width].chunks_exact_mut(width).enumerate() {
            let (tl, row) = (i / rows, i % rows);
            feature_row(k, &h[((first + tl) * rows + row) * rs..][..rs], norms[row], o, &mut y);
        }
    });
}

// One row of `feature_map`, compiled for AVX2+FMA where the CPU has them (the `lanes` functions
// then run on 256-bit registers).
simd_entry!(fn feature_row(k: &KernelParams, hr: &[f32], sq: f32, out: &mut [f32], y: &mut Vec<f32>) => feature_row_body);

/// One row of `feature_map`'s twin: `hr` is the row's s · replicas outputs, `sq` its squared norm.
#[inline(always)]
fn feature_row_body(k: &KernelParams, hr: &[f32], sq: f32, out: &mut [f32], y: &mut Vec<f32>) {
    let (s, r) = (k.s as usize, k.replicas as usize);
    // y_j = (((0 + h_0j) + h_1j) + ...) / r, as the twin sums.
    y.clear();
    y.resize(s, 0.0);
    for rep in hr.chunks_exact(s).take(r) {
        for (yj, &v) in y.iter_mut().zip(rep) {
            *yj += v;
        }
    }
    let rf = r as f32;
    for yj in y.iter_mut() {
        *yj /= rf;
    }
    let c0 = 1.0 / (s as f32).sqrt();
    let half = 0.5 * sq;
    let (a, b) = out.split_at_mut(s);
    // The pair maps (0, 3, 4) write both columns when `width` is 2s (always, as planned); every
    // map writes the first s only when it is s, as the twin does. Each loop is over whole
    // slices, so LLVM vectorises the `lanes` functions inside them.
    let pair = if b.len() == s { s } else { 0 };
    let b = &mut b[..pair];
    match k.map {
        0 => pairs(a, b, y, |v| {
            let (sn, cs) = lanes::sincos(v);
            (c0 * cs, c0 * sn)
        }),
        3 => {
            let c2 = c0 / SQRT2;
            pairs(a, b, y, |v| (c2 * exp_or_zero(v - half), c2 * exp_or_zero(-v - half)));
        }
        4 => {
            let e = c0 * half.exp();
            pairs(a, b, y, |v| {
                let (sn, cs) = lanes::sincos(v);
                (e * sn, e * cs)
            });
        }
        1 => a.iter_mut().zip(y.iter()).for_each(|(aj, &v)| *aj = if v > 0.0 { c0 * SQRT2 } else { 0.0 }),
        2 => a.iter_mut().zip(y.iter()).for_each(|(aj, &v)| *aj = c0 * SQRT2 * v.max(0.0)),
        _ => {
            let e = c0 * (-half).exp();
            a.iter_mut().zip(y.iter()).for_each(|(aj, &v)| *aj = e * v.max(0.0));
        }
    }
}

/// A pair map over a row: `(a_j, b_j) = f(y_j)`, or only `a_j` where `b` is empty.
#[inline(always)]
fn pairs(a: &mut [f32], b: &mut [f32], y: &[f32], f: impl Fn(f32) -> (f32, f32)) {
    if b.is_empty() {
        a.iter_mut().zip(y).for_each(|(aj, &v)| *aj = f(v).0);
    } else {
        for ((aj, bj), &v) in a.iter_mut().zip(b.iter_mut()).zip(y) {
            (*aj, *bj) = f(v);
        }
    }
}

/// e^x through `lanes::exp`, and 0 where x < -87 (`lanes::exp` saturates there at e^-87; libm and
/// the GPUs' `exp` give 0 or a denormal), so a feature that underflows stays 0 and an all-zero
/// denominator still gives the twin's 0 output.
#[inline(always)]
fn exp_or_zero(x: f32) -> f32 {
    let e = lanes::exp(x);
    if x < -87.0 {
        0.0
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_map_matches_the_twin() {
        // Every map, one and three replicas, one and two feature columns per projection, one
        // flattened trial and several, one thread and three. Maps 1, 2 and 5 must give the twin's
        // bits; the pair maps (`lanes` exp and sincos against libm) must be within
        // FAST_FEATURE_REL of the feature's scale: the value for the exponential map, the row's
        // amplitude for the trigonometric ones.
        use crate::tolerances::FAST_FEATURE_REL;
        let (rows, s) = (11usize, 9usize);
        for map in 0..6u32 {
            for replicas in [1u32, 3] {
                for width in [s, 2 * s] {
                    if width == s && matches!(map, 0 | 3 | 4) {
                        continue; // pair maps always have 2s columns
                    }
                    for trials in [1u32, 3] {
                        let mut p = StageParams::default();
                        p.layer.trials = trials;
                        p.kern = KernelParams { rows: rows as u32, s: s as u32, replicas, width: width as u32, map, ..Default::default() };
                        let n = trials as usize * rows * replicas as usize * s;
                        // Outputs around 0 (both signs, a -0.0), a few far out (|y| up to 400, past
                        // one turn many times over), and norms of several sizes.
                        let mut h: Vec<f32> = crate::rng::uniform_signed(n, 7 + map as u64).iter().map(|v| 2.5 * v).collect();
                        h[3] = -0.0;
                        h.iter_mut().step_by(17).for_each(|v| *v *= 160.0);
                        let norms: Vec<f32> = (0..rows).map(|i| 0.3 * i as f32).collect();
                        let mut want = vec![0f32; trials as usize * rows * width];
                        crate::engine::cpu::feature_map::feature_map(&p, &h, &norms, &mut want, 1);
                        let c0 = 1.0 / (s as f32).sqrt();
                        for threads in [1, 3] {
                            let mut got = vec![0f32; want.len()];
                            feature_map(&p, &h, &norms, &mut got, threads);
                            for (i, (&a, &b)) in want.iter().zip(&got).enumerate() {
                                let row = (i / width) % rows;
                                let scale = match map {
                                    0 => c0,
                                    4 => c0 * (0.5 * norms[row]).exp(),
                                    // Below e^-87 the twin may give a denormal, the fast map 0.
                                    3 => a.abs().max(f32::MIN_POSITIVE / FAST_FEATURE_REL),
                                    _ => {
                                        assert_eq!(
                                            a.to_bits(),
                                            b.to_bits(),
                                            "map {map}, replicas {replicas}, width {width}, trials {trials}, threads {threads}, value {i}"
                                        );
                                        continue;
                                    }
                                };
                                assert!(
                                    (a - b).abs() <= FAST_FEATURE_REL * scale,
                                    "map {map}, replicas {replicas}, width {width}, trials {trials}, threads {threads}, value {i}: twin {a}, fast {b}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
