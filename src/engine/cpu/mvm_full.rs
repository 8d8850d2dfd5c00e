//! CPU twin of shaders/mvm_full.wgsl: `mvm` on the full periphery path (noise-models §7, IR drop,
//! per-read weight noise or input noise on). Per (trial, tile, sample) one level of the full path
//! from `dac`'s quantised inputs, plus their input noise, through `bound`'s `bound_level` (the MVM
//! and its IR-drop and weight-noise sums, each over k in increasing order, output and weight noise
//! from the level's counters, ADC), then the saturation flag; the level-1 pass (`bm_pass` = 1,
//! inputs at reduction 2) only for the vectors flagged at level 0.

use super::bound::bound_level;
use super::common::*;
use crate::engine::layout::{StageParams, TileInfo};

#[allow(clippy::too_many_arguments)]
pub fn mvm_full(p: &StageParams, tiles: &[TileInfo], xq: &[f32], weff: &[f32], y: &mut [f32], sat: &mut [u32], nsat: &mut [u32], bm_level: &mut [u32], threads: usize) {
    let l = &p.layer;
    let ntiles = (l.tiles_in * l.tiles_out) as usize;
    let (n_in, batch) = (l.n_in as usize, l.batch as usize);
    let level = l.bm_pass;
    let flags = mvm_flags(&p.io, level);
    // The level-1 pass runs when enough vectors were flagged; else `bound` redoes them and this
    // pass writes nothing, as the shader's workgroups return at once.
    if level != 0 && !redo_in_gemm(l, nsat) {
        return;
    }
    par_gemm_trials(threads, l, y, sat, |first, n, y, sat| {
        // With input noise each tile reads its own noisy copy of the inputs.
        let mut noisy = vec![0f32; if p.io.inp_noise > 0.0 { crate::crossbar::MAX_TILE_IN as usize } else { 0 }];
        for z in 0..n {
            let trial_local = first + z;
            for (tile, t) in tiles.iter().enumerate().take(ntiles) {
                // A shared input (the first layer) was quantised once, as trial 0.
                let xbase = if l.x_per_trial != 0 { trial_local } else { 0 } * batch * n_in + t.col_start as usize;
                for s in 0..batch {
                    let vi = (z * batch + s) * ntiles + tile;
                    if level != 0 && sat[vi] & 1 == 0 {
                        continue;
                    }
                    let mut xw = &xq[xbase + s * n_in..][..t.cols as usize];
                    if p.io.inp_noise > 0.0 {
                        let xn = &mut noisy[..t.cols as usize];
                        xn.copy_from_slice(xw);
                        add_inp_noise(l, &p.io, tile as u32, l.trial_offset + trial_local as u32, s as u32, level, xn);
                        xw = xn;
                    }
                    if bound_level(p, t, tile, xw, weff, trial_local, z, s, level, y) && flags {
                        sat[vi] |= 1 << level;
                    }
                }
            }
        }
    });
    finish_mvm_pass(level, l, sat, nsat, bm_level);
}
