//! CPU twin of shaders/dac.wgsl: abs-max noise management and DAC per (trial, sample, input tile).
//! Invocation index i = (trial_local · batch + sample) · tiles_in + tile, as in the shader;
//! trials are split over threads.
// Index loops mirror the shader's invocation indices, so the twin reads beside the WGSL.
#![allow(clippy::needless_range_loop)]

use super::common::*;
use crate::engine::layout::{StageParams, TileInfo};

pub fn dac(p: &StageParams, tiles: &[TileInfo], x: &[f32], xq: &mut [f32], nm: &mut [f32], threads: usize) {
    let l = &p.layer;
    let (batch, n_in, tin) = (l.batch as usize, l.n_in as usize, l.tiles_in as usize);
    par_trials2(threads, l.trials as usize, xq, batch * n_in, nm, batch * tin, |first, n, xq, nm| {
        for i_local in 0..n * batch * tin {
            let i = first * batch * tin + i_local;
            let ti = i % tin;
            let v = i / tin;
            let v_local = i_local / tin;
            let t = &tiles[ti];
            let xo = if l.x_per_trial != 0 { v } else { v % batch } * n_in;
            let mut m = 1.0f32;
            if p.io.nm_mode == 1 {
                m = 0.0;
                for k in 0..t.cols as usize {
                    m = m.max(x[xo + t.col_start as usize + k].abs());
                }
            }
            // The level-1 pass quantises at reduction 2 and leaves nm as stored.
            if l.bm_pass == 0 {
                nm[i_local] = m;
            }
            let m_div = if m == 0.0 { 1.0 } else { m } * (1u32 << l.bm_pass) as f32;
            for k in 0..t.cols as usize {
                xq[v_local * n_in + t.col_start as usize + k] = quant_in(&p.io, x[xo + t.col_start as usize + k] / m_div);
            }
        }
    });
}
