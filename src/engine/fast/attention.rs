//! Fast non-causal linear attention (`attention_kv`, `attention_out`): S = K′ᵀ[V | 1] and
//! Q′S as SGEMMs (`matrixmultiply`) per (trial, head), then the per-token errors; the same
//! quantities as the twins, summed in another order. Causal attention runs the twins.

use crate::engine::cpu::common::par_trials;
use crate::engine::layout::StageParams;

pub fn attention_kv(p: &StageParams, phi: &[f32], v: &[f32], kv: &mut [f32], threads: usize) {
    let k = &p.kern;
    if k.causal != 0 {
        return crate::engine::cpu::attention_kv::attention_kv(p, phi, v, kv, threads);
    }
    let (rows, width, heads, seq, dv) = (k.rows as usize, k.width as usize, k.heads as usize, k.seq as usize, k.dv as usize);
    let cols = dv + 1;
    // [V | 1] per head, built once.
    let v1: Vec<f32> = (0..heads * seq).flat_map(|r| v[r * dv..][..dv].iter().copied().chain(std::iter::once(1.0))).collect();
    par_trials(threads, p.layer.trials as usize, kv, heads * width * cols, |first, n, out| {
        for tl in 0..n {
            for hd in 0..heads {
                let kf = &phi[((first + tl) * rows + heads * seq + hd * seq) * width..][..seq * width];
                let o = &mut out[(tl * heads + hd) * width * cols..][..width * cols];
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
        }
    });
}

#[allow(clippy::too_many_arguments)]
pub fn attention_out(p: &StageParams, phi: &[f32], kv: &[f32], v: &[f32], exact: &[f32], partial: &mut [f32], threads: usize) {
    let k = &p.kern;
    if k.causal != 0 {
        return crate::engine::cpu::attention_out::attention_out(p, phi, kv, v, exact, partial, threads);
    }
    let (rows, width, heads, seq, dv, trials) = (k.rows as usize, k.width as usize, k.heads as usize, k.seq as usize, k.dv as usize, p.layer.trials as usize);
    let cols = dv + 1;
    let slot = &mut partial[p.layer.t_index as usize * trials * heads * seq..][..trials * heads * seq];
    par_trials(threads, trials, slot, heads * seq, |first, n, out| {
        let mut num = vec![0f32; seq * cols];
        for tl in 0..n {
            let t = first + tl;
            for hd in 0..heads {
                let qf = &phi[(t * rows + hd * seq) * width..][..seq * width];
                let s = &kv[(t * heads + hd) * width * cols..][..width * cols];
                // SAFETY: qf is seq × width, s width × cols, num seq × cols, all row-major.
                unsafe {
                    matrixmultiply::sgemm(
                        seq,
                        width,
                        cols,
                        1.0,
                        qf.as_ptr(),
                        width as isize,
                        1,
                        s.as_ptr(),
                        cols as isize,
                        1,
                        0.0,
                        num.as_mut_ptr(),
                        cols as isize,
                        1,
                    );
                }
                for i in 0..seq {
                    let r = &num[i * cols..][..cols];
                    let den = r[dv];
                    out[(tl * heads + hd) * seq + i] = (0..dv).map(|c| exact[(hd * seq + i) * dv + c] - r[c] / den).map(|e| e * e).sum();
                }
            }
        }
    });
}
