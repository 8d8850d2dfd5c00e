//! CPU twin of shaders/dac.wgsl: input range, noise management and DAC per (trial, sample, input tile).
//! Invocation index i = (trial_local · batch + sample) · tiles_in + tile, as in the shader;
//! trials are split over threads.
// Index loops mirror the shader's invocation indices, so the twin reads beside the WGSL.
#![allow(clippy::needless_range_loop)]

use super::common::*;
use crate::engine::layout::{LayerParams, StageParams, TileInfo};

#[allow(clippy::too_many_arguments)]
pub fn dac(p: &StageParams, tiles: &[TileInfo], x: &[f32], sat: &[u32], nsat: &[u32], xq: &mut [f32], nm: &mut [f32], threads: usize) {
    let l = &p.layer;
    let (batch, n_in, tin) = (l.batch as usize, l.n_in as usize, l.tiles_in as usize);
    if l.bm_pass != 0 && !redo_in_gemm(l, nsat) {
        return;
    }
    par_trials2(threads, l.trials as usize, xq, batch * n_in, nm, batch * tin, |first, n, xq, nm| {
        for i_local in 0..n * batch * tin {
            let i = first * batch * tin + i_local;
            let ti = i % tin;
            let v = i / tin;
            let v_local = i_local / tin;
            let t = &tiles[ti];
            let xo = if l.x_per_trial != 0 { v } else { v % batch } * n_in;
            if l.bm_pass != 0 && !reads_flagged(l, sat, v, ti) {
                continue;
            }
            let r = t.input_range;
            let m = if l.bm_pass != 0 {
                // The level-1 pass: reduction 2 with the stored nm.
                nm[i_local]
            } else {
                let mut a = 0.0f32;
                if p.io.nm_mode == 1 {
                    for k in 0..t.cols as usize {
                        a = a.max(in_range(r, x[xo + t.col_start as usize + k]).abs());
                    }
                }
                nm_scale(&p.io, r, a)
            };
            nm[i_local] = m;
            let m_div = if m == 0.0 { 1.0 } else { m } * (1u32 << l.bm_pass) as f32;
            for k in 0..t.cols as usize {
                xq[v_local * n_in + t.col_start as usize + k] = quant_in(&p.io, in_range(r, x[xo + t.col_start as usize + k]) / m_div);
            }
        }
    });
}

/// Whether the level-1 pass quantises slice `ti` of vector `v` (trial_local · batch + sample): a
/// vector `mvm` flagged at level 0 reads it (tile (to, ti) for any output tile `to`). An input
/// shared by all trials (quantised once, as trial 0) serves every trial's flags: always.
pub fn reads_flagged(l: &LayerParams, sat: &[u32], v: usize, ti: usize) -> bool {
    let (tin, tout) = (l.tiles_in as usize, l.tiles_out as usize);
    l.x_per_trial == 0 || (0..tout).any(|to| sat[v * tin * tout + to * tin + ti] & 1 != 0)
}
