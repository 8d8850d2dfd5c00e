//! CPU twin of shaders/combine.wgsl: digital sum over input tiles, rescaling, bias, activation.
//! Invocation index i = (trial_local · batch + sample) · n_out + output, as in the shader;
//! trials are split over threads.
// Index loops mirror the shader's invocation indices, so the twin reads beside the WGSL.
#![allow(clippy::needless_range_loop)]

use super::common::*;
use crate::engine::layout::{StageParams, TileInfo};

#[allow(clippy::too_many_arguments)]
pub fn combine(p: &StageParams, tiles: &[TileInfo], y: &[f32], nm: &[f32], bm_level: &[u32], alpha: &[f32], bias: &[f32], h: &mut [f32], threads: usize) {
    let l = &p.layer;
    let ntiles = l.tiles_in * l.tiles_out;
    let per = (l.batch * l.n_out) as usize;
    par_trials(threads, l.trials as usize, h, per, |first, n, h| {
        for i_local in 0..n * per {
            let i = (first * per + i_local) as u32;
            let o = i % l.n_out;
            let vs = i / l.n_out;
            let s = vs % l.batch;
            let trial_local = vs / l.batch;
            let to = split_index(l.n_out, l.tiles_out, o);
            let mut acc = 0.0f32;
            for ti in 0..l.tiles_in {
                let tile = to * l.tiles_in + ti;
                let yv = y[(((trial_local * l.tiles_in + ti) * l.batch + s) * l.n_out + o) as usize];
                let f = nm[(if l.x_per_trial != 0 { vs } else { s } * l.tiles_in + ti) as usize]
                    * (1u32 << bm_level[(vs * ntiles + tile) as usize]) as f32
                    * alpha[alpha_slot(l, trial_local, tile, o - tiles[tile as usize].row_start)]
                    * tiles[row_entry(l, tile, o - tiles[tile as usize].row_start)].scale;
                acc += yv * f;
            }
            h[i_local] = activate(l.activation, acc + bias[o as usize]);
        }
    });
}
