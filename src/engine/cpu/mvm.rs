//! CPU twin of shaders/mvm.wgsl: per (trial, tile) the product of the quantised inputs with the
//! effective weights, summed over k in increasing order as every shader accumulator does, then
//! output noise, ADC and the saturation flag.

use super::common::*;
use crate::engine::layout::{StageParams, TileInfo};
use crate::rng::stream;

#[allow(clippy::too_many_arguments)]
pub fn mvm(p: &StageParams, tiles: &[TileInfo], xq: &[f32], weff: &[f32], y: &mut [f32], sat: &mut [u32], threads: usize) {
    let l = &p.layer;
    let ntiles = (l.tiles_in * l.tiles_out) as usize;
    let (n_in, n_out, batch) = (l.n_in as usize, l.n_out as usize, l.batch as usize);
    let y_per = l.tiles_in as usize * batch * n_out;
    let sat_per = batch * ntiles;
    par_trials2(threads, l.trials as usize, y, y_per, sat, sat_per, |first, n, y, sat| {
        for z in 0..n {
            let trial_local = first + z;
            let trial = l.trial_offset + trial_local as u32;
            for tile in 0..ntiles {
                let t = &tiles[tile];
                let ti = tile % l.tiles_in as usize;
                let xbase = trial_local * batch * n_in + t.col_start as usize;
                let wbase = trial_local * n_out * n_in + t.row_start as usize * n_in + t.col_start as usize;
                for s in 0..batch {
                    let xr = &xq[xbase + s * n_in..xbase + s * n_in + t.cols as usize];
                    for o in 0..t.rows as usize {
                        let wr = &weff[wbase + o * n_in..wbase + o * n_in + t.cols as usize];
                        let mut acc = 0.0f32;
                        for k in 0..t.cols as usize {
                            acc += xr[k] * wr[k];
                        }
                        let orow = t.row_start + o as u32;
                        let mut v = acc;
                        if p.io.out_noise > 0.0 {
                            let nn = normal2(philox4x32_10(
                                [s as u32, trial, ctr_word2(l.layer, stream::OUT, l.t_index), ctr_word3_out(orow, ti as u32, 0)],
                                [l.key0, l.key1],
                            ));
                            v += p.io.out_noise * nn[0];
                        }
                        if p.io.bm_mode == 1 && saturated(&p.io, v) {
                            sat[(z * batch + s) * ntiles + tile] |= 1;
                        }
                        y[(z * l.tiles_in as usize + ti) * batch * n_out + s * n_out + orow as usize] = adc(&p.io, v);
                    }
                }
            }
        }
    });
}
