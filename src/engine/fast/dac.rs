//! Fast CPU `dac` (shaders/dac.wgsl, twin src/engine/cpu/dac.rs): abs-max noise management and
//! the DAC of every (trial, sample, input tile), the same f32 operations as the twin, compiled
//! for AVX2 where available.
// Index loops mirror the dispatch (trial, tile, chunk), so the kernels read beside the WGSL.
#![allow(clippy::needless_range_loop)]

use super::simd_entry;
use crate::engine::cpu::common::{nm_scale, par_trials2, quant_in, redo_in_gemm};
use crate::engine::cpu::dac::reads_flagged;
use crate::engine::layout::{StageParams, TileInfo};

#[allow(clippy::too_many_arguments)]
pub fn dac(p: &StageParams, tiles: &[TileInfo], x: &[f32], sat: &[u32], nsat: &[u32], xq: &mut [f32], nm: &mut [f32], threads: usize) {
    let l = &p.layer;
    let (batch, n_in, tin) = (l.batch as usize, l.n_in as usize, l.tiles_in as usize);
    let trials = l.trials as usize;
    // The level-1 pass: nothing to quantise when the redo is left to `bound`.
    if l.bm_pass != 0 && !redo_in_gemm(l, nsat) {
        return;
    }
    // Split by vector (trial × sample), so a chunk of one trial still runs on every thread.
    par_trials2(threads, trials * batch, xq, n_in, nm, tin, |first, n, xq, nm| rows(p, tiles, x, sat, first, n, xq, nm));
}

simd_entry!(
    #[allow(clippy::too_many_arguments)]
    fn rows(p: &StageParams, tiles: &[TileInfo], x: &[f32], sat: &[u32], first: usize, n: usize, xq: &mut [f32], nm: &mut [f32]) => rows_body
);

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn rows_body(p: &StageParams, tiles: &[TileInfo], x: &[f32], sat: &[u32], first: usize, n: usize, xq: &mut [f32], nm: &mut [f32]) {
    let l = &p.layer;
    let (batch, n_in, tin) = (l.batch as usize, l.n_in as usize, l.tiles_in as usize);
    // Vectors first .. first + n (trial-major: v = trial · batch + sample).
    for v_local in 0..n {
        let v = first + v_local;
        let xo = if l.x_per_trial != 0 { v } else { v % batch } * n_in;
        for ti in 0..tin {
            let t = &tiles[ti];
            let (c0, cols) = (t.col_start as usize, t.cols as usize);
            let src = &x[xo + c0..xo + c0 + cols];
            if l.bm_pass != 0 && !reads_flagged(l, sat, v, ti) {
                continue;
            }
            let r = t.input_range;
            let m = if l.bm_pass != 0 {
                // The level-1 pass: reduction 2 with the stored nm.
                nm[v_local * tin + ti]
            } else {
                // The range's test taken out of the loops: without one they are the plain ones.
                let a = match (p.io.nm_mode == 1, r > 0.0) {
                    (false, _) => 0.0,
                    (true, false) => src.iter().fold(0.0f32, |a, &b| a.max(b.abs())),
                    (true, true) => src.iter().fold(0.0f32, |a, &b| a.max(b.clamp(-r, r).abs())),
                };
                nm_scale(&p.io, r, a)
            };
            // nm = 0 for an all-zero slice: its tile's output is exactly 0 (as in aihwkit).
            nm[v_local * tin + ti] = m;
            let m_div = if m == 0.0 { 1.0 } else { m } * (1u32 << l.bm_pass) as f32;
            let dst = &mut xq[v_local * n_in + c0..v_local * n_in + c0 + cols];
            if r > 0.0 {
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d = quant_in(&p.io, s.clamp(-r, r) / m_div);
                }
            } else {
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d = quant_in(&p.io, s / m_div);
                }
            }
        }
    }
}
