//! Fast linear attention of the kernel workloads (`attention_kv`, `attention_out`; Katharopoulos
//! et al., ICML 2020, kernel-attention spec §3), split over the threads by (trial, head).
//! Non-causal: S = K′ᵀ[V | 1] (`matrixmultiply`, which packs the transposed K′) and Q′S
//! (`gemm::gemm_ab`, S read in place) as SGEMMs per (trial, head), then the
//! per-token errors; the same quantities as the twins, summed in another order. Causal: the twins'
//! sums in the twins' order (bit-identical), with loops ordered for the cache: `attention_kv` walks
//! the keys once, adding each key's φ_j ⊗ [v_j | 1] row by row of S (the twin walks them once per
//! (feature, column)); `attention_out` forms a token's numerators and denominator row by row of S
//! (the twin strides down a column of S per output column).

use super::gemm::{gemm_ab, Scratch};
use crate::engine::cpu::common::{par_trials, tree_sum};
use crate::engine::layout::StageParams;
use crate::engine::stages::ATTN_BLOCK;

pub fn attention_kv(p: &StageParams, phi: &[f32], v: &[f32], kv: &mut [f32], threads: usize) {
    let k = &p.kern;
    let (rows, width, heads, seq, dv, blocks) = (k.rows as usize, k.width as usize, k.heads as usize, k.seq as usize, k.dv as usize, k.blocks as usize);
    let (cols, causal) = (dv + 1, k.causal != 0);
    let items = p.layer.trials as usize * heads;
    if causal {
        par_trials(threads, items, kv, blocks * width * cols, |first, n, out| {
            let mut acc = vec![0f32; width * cols];
            for il in 0..n {
                let (t, hd) = ((first + il) / heads, (first + il) % heads);
                let krow0 = t * rows + heads * seq + hd * seq;
                let o = &mut out[il * blocks * width * cols..][..blocks * width * cols];
                acc.fill(0.0);
                for j in 0..seq {
                    if j % ATTN_BLOCK == 0 {
                        o[(j / ATTN_BLOCK) * width * cols..][..width * cols].copy_from_slice(&acc);
                    }
                    let vr = &v[(hd * seq + j) * dv..][..dv];
                    let fr = &phi[(krow0 + j) * width..][..width];
                    for (f, &pf) in fr.iter().enumerate() {
                        let row = &mut acc[f * cols..][..cols];
                        for (a, &vv) in row[..dv].iter_mut().zip(vr) {
                            *a += pf * vv;
                        }
                        row[dv] += pf * 1.0;
                    }
                }
            }
        });
        return;
    }
    // [V | 1] per head, built once.
    let v1: Vec<f32> = (0..heads * seq).flat_map(|r| v[r * dv..][..dv].iter().copied().chain(std::iter::once(1.0))).collect();
    par_trials(threads, items, kv, width * cols, |first, n, out| {
        for il in 0..n {
            let (t, hd) = ((first + il) / heads, (first + il) % heads);
            let kf = &phi[(t * rows + heads * seq + hd * seq) * width..][..seq * width];
            let o = &mut out[il * width * cols..][..width * cols];
            // SAFETY: kf is seq × width (read transposed), v1's head block seq × cols, o width × cols.
            unsafe {
                matrixmultiply::sgemm(
                    width,
                    seq,
                    cols,
                    1.0,
                    kf.as_ptr(),
                    1,
                    width as isize,
                    v1[hd * seq * cols..].as_ptr(),
                    cols as isize,
                    1,
                    0.0,
                    o.as_mut_ptr(),
                    cols as isize,
                    1,
                );
            }
        }
    });
}

#[allow(clippy::too_many_arguments)]
pub fn attention_out(p: &StageParams, phi: &[f32], kv: &[f32], v: &[f32], exact: &[f32], partial: &mut [f32], threads: usize) {
    let k = &p.kern;
    let (rows, width, heads, seq, dv, blocks, trials) =
        (k.rows as usize, k.width as usize, k.heads as usize, k.seq as usize, k.dv as usize, k.blocks as usize, p.layer.trials as usize);
    let (cols, causal) = (dv + 1, k.causal != 0);
    let slot = &mut partial[p.layer.t_index as usize * trials * heads * seq..][..trials * heads * seq];
    if causal {
        par_trials(threads, trials * heads, slot, seq, |first, n, out| {
            let mut aw = [0f32; ATTN_BLOCK];
            let mut red = [0f32; ATTN_BLOCK];
            let mut num = vec![0f32; cols];
            for il in 0..n {
                let (t, hd) = ((first + il) / heads, (first + il) % heads);
                let th = t * heads + hd;
                for i in 0..seq {
                    let qrow = &phi[(t * rows + hd * seq + i) * width..][..width];
                    let b = i / ATTN_BLOCK;
                    let sm = &kv[(th * blocks + b) * width * cols..][..width * cols];
                    let j0 = b * ATTN_BLOCK;
                    // The block's weights a_j = Q′_i·K′_j for j0 <= j <= i, 0 beyond.
                    for (lid, a) in aw.iter_mut().enumerate() {
                        let j = j0 + lid;
                        *a = 0.0;
                        if j <= i {
                            let krow = &phi[(t * rows + heads * seq + hd * seq + j) * width..][..width];
                            for (&x, &y) in qrow.iter().zip(krow) {
                                *a += x * y;
                            }
                        }
                    }
                    // Q′S row by row of S; column dv is the denominator's sum over f.
                    num.fill(0.0);
                    for (f, &q) in qrow.iter().enumerate() {
                        for (nv, &sv) in num.iter_mut().zip(&sm[f * cols..][..cols]) {
                            *nv += q * sv;
                        }
                    }
                    let mut den = num[dv];
                    for a in &aw {
                        den += a;
                    }
                    let last = ATTN_BLOCK.min(i + 1 - j0);
                    for (l, &a) in aw[..last].iter().enumerate() {
                        for (nv, &vv) in num[..dv].iter_mut().zip(&v[(hd * seq + j0 + l) * dv..][..dv]) {
                            *nv += a * vv;
                        }
                    }
                    let ex = &exact[(hd * seq + i) * dv..][..dv];
                    for (lid, r) in red.iter_mut().enumerate() {
                        let mut err = 0f32;
                        for c in (lid..dv).step_by(ATTN_BLOCK) {
                            let e = ex[c] - num[c] / den;
                            err += e * e;
                        }
                        *r = err;
                    }
                    out[il * seq + i] = tree_sum(&mut red);
                }
            }
        });
        return;
    }
    par_trials(threads, trials * heads, slot, seq, |first, n, out| {
        let mut num = vec![0f32; seq * cols];
        let mut scratch = Scratch::default();
        for il in 0..n {
            let (t, hd) = ((first + il) / heads, (first + il) % heads);
            let qf = &phi[(t * rows + hd * seq) * width..][..seq * width];
            let s = &kv[(t * heads + hd) * width * cols..][..width * cols];
            // Q′ (seq × width) times S (width × cols).
            gemm_ab(seq, width, cols, qf, width, s, cols, &mut num, &mut scratch);
            for i in 0..seq {
                let r = &num[i * cols..][..cols];
                let den = r[dv];
                out[il * seq + i] = (0..dv).map(|c| exact[(hd * seq + i) * dv + c] - r[c] / den).map(|e| e * e).sum();
            }
        }
    });
}
