//! Fast `kernel_error`: per trial the Gram matrix G = ΦΦᵀ by one GEMM (`gemm::gemm_abt`), then
//! Σ_j (K_ij − G_ij)² per row, the same quantity as the twin summed in another order.

use super::gemm::{gemm_abt, Scratch};
use crate::engine::cpu::common::par_trials;
use crate::engine::layout::StageParams;

pub fn kernel_error(p: &StageParams, phi: &[f32], kmat: &[f32], partial: &mut [f32], threads: usize) {
    let k = &p.kern;
    let (rows, width, trials) = (k.rows as usize, k.width as usize, p.layer.trials as usize);
    let slot = &mut partial[p.layer.t_index as usize * trials * rows..][..trials * rows];
    par_trials(threads, trials, slot, rows, |first, n, out| {
        let mut g = vec![0f32; rows * rows];
        let mut scratch = Scratch::default();
        for tl in 0..n {
            let ph = &phi[(first + tl) * rows * width..][..rows * width];
            gemm_abt(rows, width, rows, ph, width, ph, width, &mut g, &mut scratch);
            for (i, o) in out[tl * rows..][..rows].iter_mut().enumerate() {
                *o = kmat[i * rows..][..rows].iter().zip(&g[i * rows..][..rows]).map(|(a, b)| (a - b) * (a - b)).sum();
            }
        }
    });
}
