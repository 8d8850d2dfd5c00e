//! CPU twin of shaders/program.wgsl: each trial's programmed state (programmed weight and drift
//! exponents) and each tile's max|W_prog|. Loops shaped like the
//! dispatch: workgroup (chunk, tile, trial), invocation `lid`.

use super::common::*;
use crate::engine::layout::{StageParams, TileInfo};

/// Words of programmed state per weight: 2 on the aihwkit tile path (programmed weight, drift
/// exponent of the device that holds it), 1 + `pairs` with several pairs per weight (programmed
/// weight, then per pair the drift exponent of the device on its sign's side), with a relaxation
/// table (programmed weight, target weight) and with one device per weight (programmed weight,
/// 0), 4 with both devices drifting (G+, G-, nu+, nu-). `progmax` holds two words per (trial,
/// tile): max|W_prog|'s bits, or with one device per weight the order keys of max W_prog and
/// max −W_prog.
pub fn state_words(drift_path: u32, pairs: u32) -> usize {
    if drift_path == 1 {
        4
    } else if pairs > 1 {
        1 + (pairs as usize).min(crate::device::MAX_PAIRS)
    } else {
        2
    }
}

#[allow(clippy::too_many_arguments)]
pub fn program(p: &StageParams, groups: [u32; 3], wg_size: u32, w_norm: &[f32], tiles: &[TileInfo], state: &mut [f32], progmax: &mut [u32], threads: usize) {
    let l = &p.layer;
    let ntiles = (l.tiles_in * l.tiles_out) as usize;
    let nw = (l.n_in * l.n_out) as usize;
    let words = state_words(p.dev.drift_path, p.dev.pairs);
    par_trials2(threads, groups[2] as usize, state, words * nw, progmax, 2 * ntiles, |first, n, state, out| {
        for z in 0..n {
            let trial_local = (first + z) as u32;
            let trial = l.trial_offset + trial_local;
            for wy in 0..groups[1] {
                let t = &tiles[wy as usize];
                let dev = tile_device(&p.dev, t);
                let s = pair_gmax(&dev) / t.wmax_norm.max(1e-7);
                for wx in 0..groups[0] {
                    let (mut wg_max, mut wg_max2) = (0u32, 0u32);
                    for lid in 0..wg_size {
                        let e = wx * wg_size + lid;
                        if e < t.rows * t.cols {
                            let elem = (t.row_start + e / t.cols) * l.n_in + t.col_start + e % t.cols;
                            let w = w_norm[elem as usize];
                            let ctr = |k: u32| [elem, l.programming(trial), ctr_word2(l.layer, crate::rng::stream::PROG, 0), k];
                            let n = normal4(philox4x32_10(ctr(0), [l.key0, l.key1]));
                            if dev.pairs > 1 || has_stuck(&dev) {
                                // Several pairs or stuck devices: block k programs pair k (block 0 is the
                                // one-pair block), fault block k says which of its devices are stuck.
                                let fault = |k: u32| philox4x32_10([elem, l.programming(trial), ctr_word2(l.layer, crate::rng::stream::FAULT, 0), k], [l.key0, l.key1]);
                                let (wp, nu) = programmed_pairs(&dev, w, s, |k| if k == 0 { n } else { normal4(philox4x32_10(ctr(k), [l.key0, l.key1])) }, fault);
                                let b = z * words * nw + elem as usize;
                                state[b] = wp;
                                for k in 0..pair_count(&dev) {
                                    state[b + (1 + k) * nw] = nu[k];
                                }
                                wg_max = wg_max.max(wp.abs().to_bits());
                                continue;
                            }
                            let gpair = programmed_pair(&dev, w, s, [n[0], n[1]]);
                            let wp = if dev.prog_mode == 2 { programmed_single(&dev, w, t.w_lo, t.w_hi, n[0]) } else { (gpair[0] - gpair[1]) / s };
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
                            } else if dev.drift_path == 3 {
                                state[b] = wp;
                                state[b + nw] = 0.0;
                            } else {
                                state[b] = wp;
                                state[b + nw] = if wp >= 0.0 { nu_pos } else { nu_neg };
                            }
                            if dev.drift_path == 3 {
                                wg_max = wg_max.max(order_key(wp));
                                wg_max2 = wg_max2.max(order_key(-wp));
                            } else {
                                wg_max = wg_max.max(wp.abs().to_bits());
                            }
                        }
                    }
                    let o = (z * ntiles + wy as usize) * 2;
                    out[o] = out[o].max(wg_max);
                    out[o + 1] = out[o + 1].max(wg_max2);
                }
            }
        }
    });
}
