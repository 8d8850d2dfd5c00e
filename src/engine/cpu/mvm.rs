//! CPU twin of shaders/mvm.wgsl: per (trial, tile) the product of the quantised inputs with the
//! effective weights, summed over k in increasing order as every shader accumulator does, then
//! output noise, ADC and the saturation flag. The level-1 pass (`bm_pass` = 1, inputs from `dac`
//! at reduction 2) writes only the vectors flagged at level 0, with level-1 noise, and flags bit 2.
// Index loops mirror the shader's invocation indices, so the twin reads beside the WGSL.
#![allow(clippy::needless_range_loop)]

use super::common::*;
use crate::engine::layout::{StageParams, TileInfo};
use crate::rng::out_normals;

#[allow(clippy::too_many_arguments)]
pub fn mvm(p: &StageParams, tiles: &[TileInfo], xq: &[f32], weff: &[f32], y: &mut [f32], sat: &mut [u32], nsat: &mut [u32], bm_level: &mut [u32], threads: usize) {
    let l = &p.layer;
    let ntiles = (l.tiles_in * l.tiles_out) as usize;
    let (n_in, n_out, batch) = (l.n_in as usize, l.n_out as usize, l.batch as usize);
    let level = l.bm_pass;
    let flags = mvm_flags(&p.io, level);
    // The level-1 pass runs when enough vectors were flagged; else `bound` redoes them and this
    // pass writes nothing, as the shader's workgroups return at once.
    if level != 0 && !redo_in_gemm(l, nsat) {
        return;
    }
    par_gemm_trials(threads, l, y, sat, |first, n, y, sat| {
        for z in 0..n {
            let trial_local = first + z;
            let trial = l.trial_offset + trial_local as u32;
            for tile in 0..ntiles {
                let t = &tiles[tile];
                let ti = tile % l.tiles_in as usize;
                // A shared input (the first layer) was quantised once, as trial 0.
                let xbase = if l.x_per_trial != 0 { trial_local } else { 0 } * batch * n_in + t.col_start as usize;
                let wbase = trial_local * n_out * n_in + t.row_start as usize * n_in + t.col_start as usize;
                let cols = t.cols as usize;
                // Register blocking like the shader's (there 8 samples x 8 outputs per
                // invocation): every accumulator still sums over k in increasing order, so the
                // values are the shader's, while independent chains keep the FPU busy.
                let mut acc = vec![0.0f32; batch * t.rows as usize];
                for s0 in (0..batch).step_by(4) {
                    let ns = (batch - s0).min(4);
                    for o0 in (0..t.rows as usize).step_by(2) {
                        let no = (t.rows as usize - o0).min(2);
                        let mut a = [[0.0f32; 2]; 4];
                        let xr: [&[f32]; 4] = std::array::from_fn(|i| {
                            let s = s0 + i.min(ns - 1);
                            &xq[xbase + s * n_in..xbase + s * n_in + cols]
                        });
                        let wr: [&[f32]; 2] = std::array::from_fn(|j| {
                            let o = o0 + j.min(no - 1);
                            &weff[wbase + o * n_in..wbase + o * n_in + cols]
                        });
                        for k in 0..cols {
                            for i in 0..4 {
                                for j in 0..2 {
                                    a[i][j] += xr[i][k] * wr[j][k];
                                }
                            }
                        }
                        for i in 0..ns {
                            for j in 0..no {
                                acc[(s0 + i) * t.rows as usize + o0 + j] = a[i][j];
                            }
                        }
                    }
                }
                for s in 0..batch {
                    let vi = (z * batch + s) * ntiles + tile;
                    if level != 0 && sat[vi] & 1 == 0 {
                        continue;
                    }
                    // One block per four consecutive outputs, as in the shader.
                    let mut group = u32::MAX;
                    let mut noise = [0.0f32; 4];
                    for o in 0..t.rows as usize {
                        let orow = t.row_start + o as u32;
                        let mut v = acc[s * t.rows as usize + o];
                        if p.io.out_noise > 0.0 {
                            if orow >> 2 != group {
                                group = orow >> 2;
                                noise = out_normals(l.vector_offset + s as u32, trial, l.layer, l.t_index, group, ti as u32, level, [l.key0, l.key1]);
                            }
                            v += p.io.out_noise * noise[(orow & 3) as usize];
                        }
                        let q = quant_out(&p.io, v);
                        if flags && saturated(&p.io, q) {
                            sat[vi] |= 1 << level;
                        }
                        y[(z * l.tiles_in as usize + ti) * batch * n_out + s * n_out + orow as usize] = q.clamp(-p.io.out_bound, p.io.out_bound);
                    }
                }
            }
        }
    });
    finish_mvm_pass(level, l, sat, nsat, bm_level);
}
