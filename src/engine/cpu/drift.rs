//! CPU twin of shaders/drift.wgsl: effective weights at time t from the stored programmed state
//! (or, with a relaxation table, a fresh draw about the stored target)
//! and the GDC readout partial sums (each element by `gdc_readout`, the full forward path for a
//! one-hot input), with the same fixed-shape tree reduction over each 256-element chunk.

use super::common::*;
use crate::engine::layout::{StageParams, TileInfo};
use crate::engine::stages::CHUNK;
use crate::rng::stream;

#[allow(clippy::too_many_arguments)]
pub fn drift(p: &StageParams, groups: [u32; 3], tiles: &[TileInfo], progmax: &[u32], state: &[f32], weff: &mut [f32], partials: &mut [f32], threads: usize) {
    let l = &p.layer;
    let ntiles = (l.tiles_in * l.tiles_out) as usize;
    let nw = (l.n_in * l.n_out) as usize;
    let part_per = ntiles * l.chunks_per_tile as usize * 2;
    let key = [l.key0, l.key1];
    par_trials2(threads, groups[2] as usize, weff, nw, partials, part_per, |first, n, weff, partials| {
        let mut sum_read = [0f32; CHUNK as usize];
        let mut sum_base = [0f32; CHUNK as usize];
        for z in 0..n {
            let trial_local = (first + z) as u32;
            let trial = l.trial_offset + trial_local;
            for wy in 0..groups[1] {
                let t = &tiles[wy as usize];
                let dev = tile_device(&p.dev, t);
                let s = dev.g_max / t.wmax_norm.max(1e-7);
                let pm = (trial_local as usize * ntiles + wy as usize) * 2;
                let s2 = pair_gmax(&dev) / f32::from_bits(progmax[pm]).max(1e-7);
                let (lo2, hi2) = (-order_value(progmax[pm + 1]), order_value(progmax[pm]));
                for wx in 0..groups[0] {
                    for lid in 0..CHUNK {
                        let (r, c) = chunk_elem(l, t, wx, lid);
                        let (mut rd, mut bs) = (0.0f32, 0.0f32);
                        if r < t.rows {
                            let elem = (t.row_start + r) * l.n_in + t.col_start + c;
                            let nr = normal4(philox4x32_10([elem, trial, ctr_word2(l.layer, stream::READ, l.t_index), 0], key));
                            let (wp, we) = if dev.drift_path == 1 {
                                let b = trial_local as usize * 4 * nw + elem as usize;
                                let gpair = [state[b], state[b + nw]];
                                let wp = (gpair[0] - gpair[1]) / s;
                                (wp, drift_pair(&dev, gpair, state[b + 2 * nw], state[b + 3 * nw], s, l.log_t_ratio, l.read_sqrt_log, [nr[0], nr[1]]))
                            } else if dev.pairs > 1 {
                                let words = 1 + pair_count(&dev);
                                let b = trial_local as usize * words * nw + elem as usize;
                                let wp = state[b];
                                let nu = std::array::from_fn(|k| if k < pair_count(&dev) { state[b + (1 + k) * nw] } else { 0.0 });
                                (wp, drifted_pairs(&dev, wp, nu, s2, l.log_t_ratio, l.read_sqrt_log, pair_read_normals(&dev, nr, [elem, trial, ctr_word2(l.layer, stream::READ, l.t_index)], key)))
                            } else if dev.drift_path == 2 {
                                let b = trial_local as usize * 2 * nw + elem as usize;
                                (state[b], relaxed_weight(&dev, state[b + nw], s, s2, l.relax_at as usize, [nr[0], nr[1]]))
                            } else if dev.drift_path == 3 {
                                let wp = state[trial_local as usize * 2 * nw + elem as usize];
                                (wp, log_relaxed_weight(&dev, wp, lo2, hi2, l.relax_at, l.log_t_ratio, l.read_sqrt_log, [nr[0], nr[1]]))
                            } else {
                                let b = trial_local as usize * 2 * nw + elem as usize;
                                let (wp, nu) = (state[b], state[b + nw]);
                                (wp, drift_weight(&dev, wp, nu, nu, s2, l.log_t_ratio, l.read_sqrt_log, nr[0]))
                            };
                            weff[z * nw + elem as usize] = we;
                            if l.gdc_mode != 0 {
                                rd = gdc_readout(&p.io, we, c, t.cols, nr[2]).abs();
                                if l.gdc_mode == 1 && l.gdc_base != 0 {
                                    let nb = normal2(philox4x32_10([elem, l.programming(trial), ctr_word2(l.layer, stream::GDC_BASE, 0), 0], key));
                                    bs = gdc_readout(&p.io, wp, c, t.cols, nb[0]).abs();
                                }
                            }
                        }
                        sum_read[lid as usize] = rd;
                        sum_base[lid as usize] = bs;
                    }
                    tree_sum(&mut sum_read);
                    tree_sum(&mut sum_base);
                    let o = ((z * ntiles + wy as usize) * l.chunks_per_tile as usize + wx as usize) * 2;
                    partials[o] = sum_read[0];
                    if l.gdc_base != 0 {
                        partials[o + 1] = sum_base[0];
                    }
                }
            }
        }
    });
}
