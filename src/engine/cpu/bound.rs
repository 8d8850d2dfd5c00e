//! CPU twin of shaders/bound.wgsl: iterative bound management of the vectors left to redo (with
//! IR drop and per-read weight noise on the full path): after the level-1 pass of `mvm` (or
//! `mvm_full`) the vectors still saturated, from level 2; when too few saturated at level 0 for
//! that pass (`redo_in_gemm`), the flagged ones from level 1. Writes each redone vector's final
//! level. Every level quantises the inputs again and draws their input noise afresh.
// Index loops mirror the shader's invocation indices, so the twin reads beside the WGSL.
#![allow(clippy::needless_range_loop)]

use super::common::*;
use crate::engine::layout::{LayerParams, StageParams, TileInfo};
use crate::rng::{out_normals, W_NOISE_GROUP};

#[allow(clippy::too_many_arguments)]
pub fn bound(p: &StageParams, tiles: &[TileInfo], x: &[f32], nm: &[f32], weff: &[f32], sat: &[u32], nsat: &[u32], y: &mut [f32], bm_level: &mut [u32], threads: usize) {
    let l = &p.layer;
    let ntiles = (l.tiles_in * l.tiles_out) as usize;
    let batch = l.batch as usize;
    // After the GEMM's level-1 pass the vectors it flagged again (bit 2) from level 2, else those
    // flagged at level 0 (bit 1) from level 1; read only when there are any (the early exit).
    let redo = redo_in_gemm(l, nsat);
    let (bit, from) = if redo { (2u32, 2u32) } else { (1, 1) };
    let any = nsat[from as usize - 1] != 0;
    let flagged = |v: usize| any && sat[v] & bit != 0;
    par_gemm_trials(threads, l, y, bm_level, |first, n, y, bm_level| {
        let mut xw = vec![0f32; crate::crossbar::MAX_TILE_IN as usize];
        for z in 0..n {
            let trial_local = first + z;
            for s in 0..batch {
                let vs = trial_local * batch + s;
                for tile in 0..ntiles {
                    let v = vs * ntiles + tile;
                    let vl = (z * batch + s) * ntiles + tile;
                    if !flagged(v) {
                        continue;
                    }
                    bm_level[vl] = bound_vector(p, &tiles[tile], tile, x, nm, weff, trial_local, z, s, from, y, &mut xw);
                }
            }
        }
    });
}

/// Where vector (trial `trial_local`, sample `s`)'s inputs to tile `t` (input tile `ti`) start in
/// `x`, and their noise-management divisor (1 for an all-zero slice, marked nm = 0, whose output
/// `combine` drops). A shared input's noise management was computed once, as trial 0.
pub fn input_slice(l: &LayerParams, t: &TileInfo, ti: usize, trial_local: usize, s: usize, nm: &[f32]) -> (usize, f32) {
    let xs = if l.x_per_trial != 0 { trial_local * l.batch as usize + s } else { s };
    let m = nm[xs * l.tiles_in as usize + ti];
    (xs * l.n_in as usize + t.col_start as usize, if m == 0.0 { 1.0 } else { m })
}

/// One vector (trial `trial_local`, sample `s`, tile `tile`) of the shader's `bound_unit`: the
/// redo loop from `level` on (the shader takes a unit's vectors through it together); writes the
/// vector's outputs into `y` (the rows of trial slot `z`) and returns the level it ended at. `xw`
/// is scratch of at least the tile's inputs.
#[allow(clippy::too_many_arguments)]
pub fn bound_vector(
    p: &StageParams,
    t: &TileInfo,
    tile: usize,
    x: &[f32],
    nm: &[f32],
    weff: &[f32],
    trial_local: usize,
    z: usize,
    s: usize,
    mut level: u32,
    y: &mut [f32],
    xw: &mut [f32],
) -> u32 {
    let l = &p.layer;
    let io = &p.io;
    let ti = tile % l.tiles_in as usize;
    let (xo, m_div) = input_slice(l, t, ti, trial_local, s, nm);
    loop {
        let red = (1u32 << level) as f32;
        for k in 0..t.cols as usize {
            xw[k] = quant_in(io, in_range(t.input_range, x[xo + k]) / (m_div * red));
        }
        if io.inp_noise > 0.0 {
            let trial = l.trial_offset + trial_local as u32;
            add_inp_noise(l, io, tile as u32, trial, s as u32, level, &mut xw[..t.cols as usize]);
        }
        let any_sat = bound_level(p, t, tile, &xw[..t.cols as usize], weff, trial_local, z, s, level, y);
        if !any_sat || io.bm_mode == 0 || red >= io.bm_max_red {
            break;
        }
        level += 1;
    }
    level
}

/// One bound-management level of one vector from its quantised inputs `xw` (the tile's `cols`):
/// the MVM, on the full path with IR drop and per-read weight noise, output noise from the
/// level's counters, ADC; writes the outputs into `y` and returns whether any saturated. Shared by
/// `bound_vector` and the `mvm_full` twin, so both compute a level with the same operations.
#[allow(clippy::too_many_arguments)]
pub fn bound_level(p: &StageParams, t: &TileInfo, tile: usize, xw: &[f32], weff: &[f32], trial_local: usize, z: usize, s: usize, level: u32, y: &mut [f32]) -> bool {
    let l = &p.layer;
    let io = &p.io;
    let (n_in, n_out, batch) = (l.n_in as usize, l.n_out as usize, l.batch as usize);
    let trial = l.trial_offset + trial_local as u32;
    let ti = tile % l.tiles_in as usize;
    let wbase = trial_local * n_out * n_in + t.col_start as usize;
    let n_cols = t.cols as f32;
    let mut any_sat = false;
    for o in 0..t.rows {
        let orow = t.row_start + o;
        let wrow = wbase + orow as usize * n_in;
        let mut acc = 0.0f32;
        for k in 0..t.cols as usize {
            acc += xw[k] * weff[wrow + k];
        }
        let mut yv = acc;
        let key = [l.key0, l.key1];
        let noise = |group: u32| out_normals(l.vector_offset + s as u32, trial, l.layer, l.t_index, group, ti as u32, level, key)[(orow & 3) as usize];
        if l.full_path != 0 {
            if io.ir_drop > 0.0 {
                let (mut sa, mut sp) = (0.0f32, 0.0f32);
                for k in 0..t.cols as usize {
                    let wk = weff[wrow + k];
                    sa += wk.abs() * xw[k].abs();
                    let r = 1.0 - k as f32 / n_cols;
                    sp += wk * xw[k] * (1.0 - r * r);
                }
                let a = n_cols / io.ir_g_ratio * sa;
                let c = a * (a * (0.05 * a - 0.2) + 0.5);
                yv -= io.ir_drop * c * sp;
            }
            let mut wstd = 0.0f32;
            if io.w_noise > 0.0 {
                let mut q = 0.0f32;
                for k in 0..t.cols as usize {
                    let x2 = xw[k] * xw[k];
                    q += if io.w_noise_type == 1 { weff[wrow + k].abs() * x2 } else { x2 };
                }
                wstd = io.w_noise * q.sqrt();
            }
            if io.out_noise > 0.0 {
                yv += io.out_noise * noise(orow >> 2);
            }
            if wstd > 0.0 {
                yv += wstd * noise((orow >> 2) | W_NOISE_GROUP);
            }
        } else if io.out_noise > 0.0 {
            yv += io.out_noise * noise(orow >> 2);
        }
        let q = quant_out(io, yv);
        if saturated(io, q) {
            any_sat = true;
        }
        y[(z * l.tiles_in as usize + ti) * batch * n_out + s * n_out + orow as usize] = q.clamp(-io.out_bound, io.out_bound);
    }
    any_sat
}
