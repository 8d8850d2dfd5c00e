//! CPU twin of shaders/gdc.wgsl: alpha = baseline / readout per (trial, tile), or per
//! (trial, tile, row) with per-column GDC; with input noise the readouts are taken here, each
//! row's with its sum of squares (`noisy_readout_sums`).

use super::common::*;
use crate::engine::layout::{DeviceParams, StageParams, TileInfo};
use crate::rng::stream;

pub fn gdc(p: &StageParams, tiles: &[TileInfo], state: &[f32], weff: &[f32], partials: &mut [f32], alpha: &mut [f32], threads: usize) {
    let l = &p.layer;
    let ntiles = l.tiles_in * l.tiles_out;
    // Trials apart: each trial's factors and partial sums are its own.
    let (per_alpha, per_part) = ((ntiles * l.alpha_rows) as usize, (ntiles * l.chunks_per_tile * 2) as usize);
    par_trials2(threads, l.trials as usize, alpha, per_alpha, partials, per_part, |first, n, alpha, partials| {
        for (j, a) in alpha[..n * per_alpha].iter_mut().enumerate() {
            *a = gdc_factor(p, tiles, state, weff, partials, first as u32 * ntiles, (first * per_alpha + j) as u32);
        }
    });
}

/// One invocation: the factor of slot `i` (trial · tiles · alpha_rows + tile · alpha_rows + row);
/// `partials` holds the trials from trial-major tile slot `tt0` on.
fn gdc_factor(p: &StageParams, tiles: &[TileInfo], state: &[f32], weff: &[f32], partials: &mut [f32], tt0: u32, i: u32) -> f32 {
    let l = &p.layer;
    let ntiles = l.tiles_in * l.tiles_out;
    let tt = i / l.alpha_rows;
    let r = i % l.alpha_rows;
    let tile = tt % ntiles;
    let t = &tiles[tile as usize];
    let mut a = 1.0f32;
    if l.gdc_mode != 0 && r < t.rows {
        let (mut first, mut n, mut count, mut reference) = (0, l.chunks_per_tile, (t.rows * t.cols) as f32, t.mean_abs_norm);
        if l.alpha_rows > 1 {
            n = l.chunks_per_tile / l.max_rows;
            first = r * n;
            count = t.cols as f32;
            reference = tiles[row_entry(l, tile, r)].mean_abs_norm;
        }
        let (mut sr, mut sb) = (0.0f32, 0.0f32);
        let slot = |c: u32| (((tt - tt0) * l.chunks_per_tile + c) * 2) as usize;
        for c in first..first + n {
            sr += partials[slot(c)];
            sb += partials[slot(c) + 1];
        }
        if p.io.inp_noise > 0.0 {
            let rows = if l.alpha_rows > 1 { r..r + 1 } else { 0..t.rows };
            let sums = noisy_readout_sums(p, t, state, weff, tt / ntiles, rows);
            sr = sums[0];
            if l.gdc_mode == 1 && l.gdc_base != 0 {
                // The baseline, kept in the first chunk's slot for the later times.
                sb = sums[1];
                for c in first..first + n {
                    partials[slot(c) + 1] = if c == first { sb } else { 0.0 };
                }
            }
        }
        let readout = (sr / count).max(1e-4);
        let mut baseline = reference;
        if l.gdc_mode == 1 {
            baseline = (sb / count).max(1e-4);
        }
        a = baseline / readout;
    }
    a
}

/// shaders/gdc.wgsl `noisy_readout_sums`: the sums of |readout| over `rows` of tile `t` in trial
/// slot `trial_local` with input noise, at this time and (where this dispatch writes the
/// baseline) right after programming, each element by `gdc_readout_inp` with its row's sum of
/// squares and `drift`'s draws, rows and columns in increasing order.
fn noisy_readout_sums(p: &StageParams, t: &TileInfo, state: &[f32], weff: &[f32], trial_local: u32, rows: std::ops::Range<u32>) -> [f32; 2] {
    let l = &p.layer;
    let dev = tile_device(&p.dev, t);
    let trial = l.trial_offset + trial_local;
    let key = [l.key0, l.key1];
    let nw = (l.n_in * l.n_out) as usize;
    let base = l.gdc_mode == 1 && l.gdc_base != 0;
    let we = |elem: u32| weff[trial_local as usize * nw + elem as usize];
    let wp = |elem: u32| programmed_w(&dev, t, state, nw, trial_local as usize, elem as usize);
    let mut sums = [0f32; 2];
    for i in rows {
        let e0 = (t.row_start + i) * l.n_in + t.col_start;
        let mut sq = [0f32; 2];
        for c in 0..t.cols {
            sq[0] += we(e0 + c) * we(e0 + c);
            if base {
                sq[1] += wp(e0 + c) * wp(e0 + c);
            }
        }
        for c in 0..t.cols {
            let elem = e0 + c;
            let nr = normal4(philox4x32_10([elem, trial, ctr_word2(l.layer, stream::READ, l.t_index), 0], key));
            sums[0] += gdc_readout_inp(&p.io, we(elem), sq[0], nr[2]).abs();
            if base {
                let nb = normal2(philox4x32_10([elem, l.programming(trial), ctr_word2(l.layer, stream::GDC_BASE, 0), 0], key));
                sums[1] += gdc_readout_inp(&p.io, wp(elem), sq[1], nb[0]).abs();
            }
        }
    }
    sums
}

/// shaders/gdc.wgsl `programmed_w`: the programmed weight of element `elem` in trial slot
/// `trial_local`, as `drift` reads it.
fn programmed_w(dev: &DeviceParams, t: &TileInfo, state: &[f32], nw: usize, trial_local: usize, elem: usize) -> f32 {
    if dev.pairs > 1 {
        return state[trial_local * (1 + pair_count(dev)) * nw + elem];
    }
    if dev.drift_path == 1 {
        let b = trial_local * 4 * nw + elem;
        return (state[b] - state[b + nw]) / (dev.g_max / t.wmax_norm.max(1e-7));
    }
    state[trial_local * 2 * nw + elem]
}
