//! Fast CPU `program` (shaders/program.wgsl, twin src/engine/cpu/program.rs): each trial's
//! programmed state (noise-models §2, §3: the programmed pair and the drift exponents from the
//! four words of one Philox block per weight) and each tile's max|W_prog|, eight weights at a time.
// Index loops mirror the dispatch (trial, tile, chunk), so the kernels read beside the WGSL.
#![allow(clippy::needless_range_loop)]

use super::drift::drift_nu_x8;
use super::lanes::{normal4_x8, philox_x8, F, L};
use super::simd_entry;
use crate::engine::cpu::common::{par_trials2, programmed_signed, sigma_prog, tile_device};
use crate::engine::cpu::program::state_words;
use crate::engine::layout::{StageParams, TileInfo};
use crate::rng::{ctr_word2, stream};

#[allow(clippy::too_many_arguments)]
pub fn program(p: &StageParams, groups: [u32; 3], _wg_size: u32, w_norm: &[f32], tiles: &[TileInfo], state: &mut [f32], progmax: &mut [u32], threads: usize) {
    let l = &p.layer;
    let ntiles = (l.tiles_in * l.tiles_out) as usize;
    let nw = (l.n_in * l.n_out) as usize;
    let words = state_words(p.dev.drift_path);
    par_trials2(threads, groups[2] as usize, state, words * nw, progmax, ntiles, |first, n, state, progmax| {
        for z in 0..n {
            for wy in 0..groups[1] as usize {
                tile(p, &tiles[wy], wy, first + z, z, w_norm, state, progmax);
            }
        }
    });
}

simd_entry!(
    #[allow(clippy::too_many_arguments)]
    fn tile(p: &StageParams, t: &TileInfo, wy: usize, trial_local: usize, z: usize, w_norm: &[f32], state: &mut [f32], progmax: &mut [u32]) => tile_body
);

/// One tile of one trial, row by row, eight weights at a time. The maximum is of exact values,
/// so it does not depend on the order (as the shader's atomic maximum).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn tile_body(p: &StageParams, t: &TileInfo, wy: usize, trial_local: usize, z: usize, w_norm: &[f32], state: &mut [f32], progmax: &mut [u32]) {
    let l = &p.layer;
    let dev = tile_device(&p.dev, t);
    let d = &dev;
    let ntiles = (l.tiles_in * l.tiles_out) as usize;
    let nw = (l.n_in * l.n_out) as usize;
    let words = state_words(d.drift_path);
    // Keyed by the programming, so the reads of one programming share its state.
    let prog = l.programming(l.trial_offset + trial_local as u32);
    let key = [l.key0, l.key1];
    let w_prog = ctr_word2(l.layer, stream::PROG, 0);
    let s = d.g_max / t.wmax_norm.max(1e-7);
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
            } else {
                for i in 0..L {
                    gp[i] = (gp_t[i] + d.prog_scale * sigma_prog(d, gp_t[i]) * n[0][i]).max(0.0);
                    gn[i] = (gn_t[i] + d.prog_scale * sigma_prog(d, gn_t[i]) * n[1][i]).max(0.0);
                    wp[i] = (gp[i] - gn[i]) / s;
                }
            }
            let nu_pos = drift_nu_x8(d, &gp_t, &n[2]);
            let nu_neg = drift_nu_x8(d, &gn_t, &n[3]);
            let b = z * words * nw;
            for i in 0..L {
                if !valid[i] {
                    continue;
                }
                let e = b + elem[i] as usize;
                if words == 4 {
                    state[e] = gp[i];
                    state[e + nw] = gn[i];
                    state[e + 2 * nw] = nu_pos[i];
                    state[e + 3 * nw] = nu_neg[i];
                } else {
                    state[e] = wp[i];
                    state[e + nw] = if wp[i] >= 0.0 { nu_pos[i] } else { nu_neg[i] };
                }
                max_bits = max_bits.max(wp[i].abs().to_bits());
            }
        }
    }
    let o = &mut progmax[z * ntiles + wy];
    *o = (*o).max(max_bits);
}
