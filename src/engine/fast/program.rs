//! Fast CPU `program` (shaders/program.wgsl, twin src/engine/cpu/program.rs): each trial's
//! programmed state (noise-models §2, §3: the programmed pair and the drift exponents from the
//! four words of one Philox block per weight) and each tile's max|W_prog|, eight weights at a time.
// Index loops mirror the dispatch (trial, tile, chunk), so the kernels read beside the WGSL.
#![allow(clippy::needless_range_loop)]

use super::drift::{drift_nu_x8, level_table_x8};
use super::lanes::{normal4_x8, philox_x8, F, L};
use super::simd_entry;
use crate::device::MAX_PROG_KNOTS;
use crate::engine::cpu::common::{
    has_stuck, normal4, order_key, pair_count, pair_gmax, par_trials2, par_units, philox4x32_10, programmed_pairs, programmed_signed, programmed_single,
    sigma_prog, sigma_prog_poly, tile_device,
};
use crate::engine::cpu::program::state_words;
use crate::engine::layout::{StageParams, TileInfo, PROG_TABLE_AT};
use crate::rng::{ctr_word2, stream};

#[allow(clippy::too_many_arguments)]
pub fn program(p: &StageParams, groups: [u32; 3], _wg_size: u32, w_norm: &[f32], tiles: &[TileInfo], state: &mut [f32], progmax: &mut [u32], threads: usize) {
    let l = &p.layer;
    let ntiles = (l.tiles_in * l.tiles_out) as usize;
    let nw = (l.n_in * l.n_out) as usize;
    let words = state_words(p.dev.drift_path, p.dev.pairs);
    let trials = groups[2] as usize;
    if trials < threads && groups[1] as usize == ntiles && ntiles > 1 {
        // Fewer trials than threads: each trial's tiles in parallel, each into a buffer of its own
        // (word planes of the tile's weights, row-major), copied into the state's planes after.
        for (z, (sz, mz)) in state[..trials * words * nw].chunks_mut((words * nw).max(1)).zip(progmax[..trials * 2 * ntiles].chunks_mut(2 * ntiles)).enumerate()
        {
            let mut units: Vec<(usize, Vec<f32>, [u32; 2])> =
                tiles[..ntiles].iter().enumerate().map(|(wy, t)| (wy, vec![0f32; words * (t.rows * t.cols) as usize], [0; 2])).collect();
            par_units(threads, &mut units, |(wy, buf, max)| {
                let t = &tiles[*wy];
                *max = tile(p, t, z, w_norm, buf, (t.rows * t.cols) as usize, true);
            });
            for ((wy, buf, max), m) in units.iter().zip(mz.chunks_mut(2)) {
                let t = &tiles[*wy];
                (m[0], m[1]) = (m[0].max(max[0]), m[1].max(max[1]));
                let (cols, n) = (t.cols as usize, (t.rows * t.cols) as usize);
                for (k, plane) in buf.chunks_exact(n.max(1)).enumerate() {
                    for (r, src) in plane.chunks_exact(cols.max(1)).enumerate() {
                        let o = k * nw + (t.row_start as usize + r) * l.n_in as usize + t.col_start as usize;
                        sz[o..o + cols].copy_from_slice(src);
                    }
                }
            }
        }
        return;
    }
    par_trials2(threads, trials, state, words * nw, progmax, 2 * ntiles, |first, n, state, progmax| {
        for z in 0..n {
            for wy in 0..groups[1] as usize {
                let max = tile(p, &tiles[wy], first + z, w_norm, &mut state[z * words * nw..][..words * nw], nw, false);
                let o = (z * ntiles + wy) * 2;
                (progmax[o], progmax[o + 1]) = (progmax[o].max(max[0]), progmax[o + 1].max(max[1]));
            }
        }
    });
}

simd_entry!(
    #[allow(clippy::too_many_arguments)]
    fn tile(p: &StageParams, t: &TileInfo, trial_local: usize, w_norm: &[f32], out: &mut [f32], plane: usize, tile_local: bool) -> [u32; 2] => tile_body
);

/// One tile of one trial, row by row, eight weights at a time, into `out`: the trial's state
/// (word k of element e at k · plane + e), or with `tile_local` the tile's own buffer (element e
/// at its row-major place in the tile). Returns the tile's two `progmax` words: max|W_prog| as f32
/// bits (or, one device per weight, the order keys of max W_prog and max −W_prog), maxima of
/// exact values, so they do not depend on the order (as the shader's atomic maxima).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn tile_body(p: &StageParams, t: &TileInfo, trial_local: usize, w_norm: &[f32], out: &mut [f32], plane: usize, tile_local: bool) -> [u32; 2] {
    let l = &p.layer;
    let dev = tile_device(&p.dev, t);
    let d = &dev;
    let words = state_words(d.drift_path, d.pairs);
    // Keyed by the programming, so the reads of one programming share its state.
    let prog = l.programming(l.trial_offset + trial_local as u32);
    let key = [l.key0, l.key1];
    let w_prog = ctr_word2(l.layer, stream::PROG, 0);
    let s = d.g_max / t.wmax_norm.max(1e-7);
    if p.dev.prog_mode == 2 {
        return single_tile(p, t, trial_local, w_norm, out, plane, tile_local);
    }
    if p.dev.pairs > 1 || has_stuck(&p.dev) {
        return pairs_tile(p, t, trial_local, w_norm, out, plane, tile_local);
    }
    let mut max_bits = 0u32;
    for row in t.row_start..t.row_start + t.rows {
        let row_elem = row * l.n_in + t.col_start;
        for c0 in (0..t.cols).step_by(L) {
            let valid: [bool; L] = std::array::from_fn(|i| c0 + (i as u32) < t.cols);
            let elem: [u32; L] = std::array::from_fn(|i| if valid[i] { row_elem + c0 + i as u32 } else { row_elem });
            let w: F = std::array::from_fn(|i| w_norm[elem[i] as usize]);
            let n = normal4_x8(&philox_x8([elem, [prog; L], [w_prog; L], [0; L]], key));
            let gp_t: F = std::array::from_fn(|i| (s * w[i]).clamp(0.0, d.g_max));
            let gn_t: F = std::array::from_fn(|i| (-s * w[i]).clamp(0.0, d.g_max));
            let mut gp = [0f32; L];
            let mut gn = [0f32; L];
            let mut wp = [0f32; L];
            if d.prog_mode == 1 {
                for i in 0..L {
                    [gp[i], gn[i]] = programmed_signed(d, w[i], s, n[0][i]);
                    wp[i] = (gp[i] - gn[i]) / s;
                }
            } else if d.drift_path == 2 {
                // A relaxation table: the first time's quartic (the twin's `sigma_prog`).
                for i in 0..L {
                    gp[i] = (gp_t[i] + d.prog_scale * sigma_prog(d, gp_t[i]) * n[0][i]).max(0.0);
                    gn[i] = (gn_t[i] + d.prog_scale * sigma_prog(d, gn_t[i]) * n[1][i]).max(0.0);
                    wp[i] = (gp[i] - gn[i]) / s;
                }
            } else if d.prog_knots > 0 {
                // A measured table: the lanes' σ by the lane-parallel lookup (the twin's values).
                let knots = (d.prog_knots as usize).min(MAX_PROG_KNOTS);
                let sp = level_table_x8(d, PROG_TABLE_AT, knots, &std::array::from_fn(|i| gp_t[i] / d.g_max));
                let sn = level_table_x8(d, PROG_TABLE_AT, knots, &std::array::from_fn(|i| gn_t[i] / d.g_max));
                for i in 0..L {
                    gp[i] = (gp_t[i] + d.prog_scale * sp[i] * n[0][i]).max(0.0);
                    gn[i] = (gn_t[i] + d.prog_scale * sn[i] * n[1][i]).max(0.0);
                    wp[i] = (gp[i] - gn[i]) / s;
                }
            } else {
                for i in 0..L {
                    gp[i] = (gp_t[i] + d.prog_scale * sigma_prog_poly(d, gp_t[i]) * n[0][i]).max(0.0);
                    gn[i] = (gn_t[i] + d.prog_scale * sigma_prog_poly(d, gn_t[i]) * n[1][i]).max(0.0);
                    wp[i] = (gp[i] - gn[i]) / s;
                }
            }
            let nu_pos = drift_nu_x8(d, &gp_t, &n[2]);
            let nu_neg = drift_nu_x8(d, &gn_t, &n[3]);
            for i in 0..L {
                if !valid[i] {
                    continue;
                }
                let e = if tile_local { ((row - t.row_start) * t.cols + c0) as usize + i } else { elem[i] as usize };
                if words == 4 {
                    out[e] = gp[i];
                    out[e + plane] = gn[i];
                    out[e + 2 * plane] = nu_pos[i];
                    out[e + 3 * plane] = nu_neg[i];
                } else if d.drift_path == 2 {
                    out[e] = wp[i];
                    out[e + plane] = w[i];
                } else {
                    out[e] = wp[i];
                    out[e + plane] = if wp[i] >= 0.0 { nu_pos[i] } else { nu_neg[i] };
                }
                max_bits = max_bits.max(wp[i].abs().to_bits());
            }
        }
    }
    [max_bits, 0]
}

/// [`tile_body`] for several pairs per weight (`pairs` > 1) or stuck devices, kept out of the
/// one-pair loop: the twin's `programmed_pairs` per weight from its blocks (block k at counter
/// word 3 = k, the first drawn eight lanes at a time; the fault blocks likewise), the programmed
/// weight and each pair's drift exponent stored.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn pairs_tile(p: &StageParams, t: &TileInfo, trial_local: usize, w_norm: &[f32], out: &mut [f32], plane: usize, tile_local: bool) -> [u32; 2] {
    let l = &p.layer;
    let dev = tile_device(&p.dev, t);
    let prog = l.programming(l.trial_offset + trial_local as u32);
    let (key, w_prog, w_fault) = ([l.key0, l.key1], ctr_word2(l.layer, stream::PROG, 0), ctr_word2(l.layer, stream::FAULT, 0));
    let s = pair_gmax(&dev) / t.wmax_norm.max(1e-7);
    let mut max_bits = 0u32;
    tile_lanes(p, t, prog, tile_local, |elem, n, i, e| {
        let block = |k: u32| if k == 0 { [n[0][i], n[1][i], n[2][i], n[3][i]] } else { normal4(philox4x32_10([elem[i], prog, w_prog, k], key)) };
        let fault = |k: u32| philox4x32_10([elem[i], prog, w_fault, k], key);
        let (wp, nu) = programmed_pairs(&dev, w_norm[elem[i] as usize], s, block, fault);
        out[e] = wp;
        for k in 0..pair_count(&dev) {
            out[e + (1 + k) * plane] = nu[k];
        }
        max_bits = max_bits.max(wp.abs().to_bits());
    });
    [max_bits, 0]
}

/// [`tile_body`] for one device per weight (`prog_mode` 2, CMO ReRAM), kept out of the pair
/// path's loop: the twin's `programmed_single` per weight from the block's first normal, the
/// programmed weight and 0 stored, and the order keys of max W_prog and max −W_prog.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn single_tile(p: &StageParams, t: &TileInfo, trial_local: usize, w_norm: &[f32], out: &mut [f32], plane: usize, tile_local: bool) -> [u32; 2] {
    let l = &p.layer;
    let dev = tile_device(&p.dev, t);
    let prog = l.programming(l.trial_offset + trial_local as u32);
    let mut keys = [0u32; 2];
    tile_lanes(p, t, prog, tile_local, |elem, n, i, e| {
        let wp = programmed_single(&dev, w_norm[elem[i] as usize], t.w_lo, t.w_hi, n[0][i]);
        (out[e], out[e + plane]) = (wp, 0.0);
        keys = [keys[0].max(order_key(wp)), keys[1].max(order_key(-wp))];
    });
    keys
}

/// Every weight of tile `t` for programming `prog`, row by row, eight at a time: the lanes'
/// elements and their programming blocks (drawn eight lanes at a time), and for each valid lane
/// `f(elem, blocks, lane, place)`, its place in the output (`tile_local`: the tile's own
/// row-major buffer, else the layer's element index).
#[inline(always)]
fn tile_lanes(p: &StageParams, t: &TileInfo, prog: u32, tile_local: bool, mut f: impl FnMut(&[u32; L], &[F; 4], usize, usize)) {
    let l = &p.layer;
    let (key, w_prog) = ([l.key0, l.key1], ctr_word2(l.layer, stream::PROG, 0));
    for row in t.row_start..t.row_start + t.rows {
        let row_elem = row * l.n_in + t.col_start;
        for c0 in (0..t.cols).step_by(L) {
            let valid: [bool; L] = std::array::from_fn(|i| c0 + (i as u32) < t.cols);
            let elem: [u32; L] = std::array::from_fn(|i| if valid[i] { row_elem + c0 + i as u32 } else { row_elem });
            let n = normal4_x8(&philox_x8([elem, [prog; L], [w_prog; L], [0; L]], key));
            for i in (0..L).filter(|&i| valid[i]) {
                let e = if tile_local { ((row - t.row_start) * t.cols + c0) as usize + i } else { elem[i] as usize };
                f(&elem, &n, i, e);
            }
        }
    }
}
