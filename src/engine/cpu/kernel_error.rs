//! CPU twin of shaders/kernel_error.wgsl: per (trial, row i), Σ_j (K_ij − φ_i·φ_j)², summed as
//! the shader's workgroup does (lane l takes j ≡ l mod KE_WG, then the same tree).

use super::common::{par_trials, tree_sum};
use crate::engine::layout::StageParams;

/// Invocations per workgroup of the shader (its lanes).
pub const KE_WG: usize = 256;

pub fn kernel_error(p: &StageParams, phi: &[f32], kmat: &[f32], partial: &mut [f32], threads: usize) {
    let k = &p.kern;
    let (rows, width, trials) = (k.rows as usize, k.width as usize, p.layer.trials as usize);
    let slot = &mut partial[p.layer.t_index as usize * trials * rows..][..trials * rows];
    par_trials(threads, trials, slot, rows, |first, n, out| {
        let mut acc = [0f32; KE_WG];
        for tl in 0..n {
            let t = first + tl;
            for i in 0..rows {
                let pi = &phi[(t * rows + i) * width..][..width];
                for (l, a) in acc.iter_mut().enumerate() {
                    let mut sum = 0f32;
                    for j in (l..rows).step_by(KE_WG) {
                        let pj = &phi[(t * rows + j) * width..][..width];
                        let mut dot = 0f32;
                        for f in 0..width {
                            dot += pi[f] * pj[f];
                        }
                        let e = kmat[i * rows + j] - dot;
                        sum += e * e;
                    }
                    *a = sum;
                }
                out[tl * rows + i] = tree_sum(&mut acc);
            }
        }
    });
}
