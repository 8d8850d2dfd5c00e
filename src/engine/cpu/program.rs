//! CPU twin of shaders/program.wgsl: each trial's programmed state (programmed weight and drift
//! exponents) and each tile's max|W_prog|. Loops shaped like the
//! dispatch: workgroup (chunk, tile, trial), invocation `lid`.

use super::common::*;
use crate::engine::layout::{StageParams, TileInfo};

/// Words of programmed state per weight: 2 on the aihwkit tile path (programmed weight, drift
/// exponent of the device that holds it) and with a relaxation table (programmed weight, target
/// weight), 4 with both devices drifting (G+, G-, nu+, nu-).
pub fn state_words(drift_path: u32) -> usize {
    if drift_path == 1 {
        4
    } else {
        2
    }
}

#[allow(clippy::too_many_arguments)]
pub fn program(p: &StageParams, groups: [u32; 3], wg_size: u32, w_norm: &[f32], tiles: &[TileInfo], state: &mut [f32], progmax: &mut [u32], threads: usize) {
    let l = &p.layer;
    let ntiles = (l.tiles_in * l.tiles_out) as usize;
    let nw = (l.n_in * l.n_out) as usize;
    let words = state_words(p.dev.drift_path);
    par_trials2(threads, groups[2] as usize, state, words * nw, progmax, ntiles, |first, n, state, out| {
        for z in 0..n {
            let trial_local = (first + z) as u32;
            let trial = l.trial_offset + trial_local;
            for wy in 0..groups[1] {
                let t = &tiles[wy as usize];
                let dev = tile_device(&p.dev, t);
                let s = dev.g_max / t.wmax_norm.max(1e-7);
                for wx in 0..groups[0] {
                    let mut wg_max = 0u32;
                    for lid in 0..wg_size {
                        let e = wx * wg_size + lid;
                        if e < t.rows * t.cols {
                            let elem = (t.row_start + e / t.cols) * l.n_in + t.col_start + e % t.cols;
                            let w = w_norm[elem as usize];
                            let n = normal4(philox4x32_10([elem, l.programming(trial), ctr_word2(l.layer, crate::rng::stream::PROG, 0), 0], [l.key0, l.key1]));
                            let gpair = programmed_pair(&dev, w, s, [n[0], n[1]]);
                            let wp = (gpair[0] - gpair[1]) / s;
                            let nu_pos = device_nu(&dev, (s * w).clamp(0.0, dev.g_max), n[2]);
                            let nu_neg = device_nu(&dev, (-s * w).clamp(0.0, dev.g_max), n[3]);
                            let b = z * words * nw + elem as usize;
                            if words == 4 {
                                state[b] = gpair[0];
                                state[b + nw] = gpair[1];
                                state[b + 2 * nw] = nu_pos;
                                state[b + 3 * nw] = nu_neg;
                            } else if dev.drift_path == 2 {
                                state[b] = wp;
                                state[b + nw] = w;
                            } else {
                                state[b] = wp;
                                state[b + nw] = if wp >= 0.0 { nu_pos } else { nu_neg };
                            }
                            wg_max = wg_max.max(wp.abs().to_bits());
                        }
                    }
                    let o = &mut out[z * ntiles + wy as usize];
                    *o = (*o).max(wg_max);
                }
            }
        }
    });
}
