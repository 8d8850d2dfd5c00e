//! CPU twin of shaders/program.wgsl: each tile's max|W_prog| per trial. Loops shaped like the
//! dispatch: workgroup (chunk, tile, trial), invocation `lid`.

use super::common::*;
use crate::engine::layout::{StageParams, TileInfo};

pub fn program(p: &StageParams, groups: [u32; 3], wg_size: u32, w_norm: &[f32], tiles: &[TileInfo], progmax: &mut [u32], threads: usize) {
    let l = &p.layer;
    let ntiles = (l.tiles_in * l.tiles_out) as usize;
    par_trials(threads, groups[2] as usize, progmax, ntiles, |first, n, out| {
        for z in 0..n {
            let trial_local = (first + z) as u32;
            let trial = l.trial_offset + trial_local;
            for wy in 0..groups[1] {
                let t = &tiles[wy as usize];
                let s = p.dev.g_max / t.wmax_norm.max(1e-7);
                for wx in 0..groups[0] {
                    let mut wg_max = 0u32;
                    for lid in 0..wg_size {
                        let e = wx * wg_size + lid;
                        if e < t.rows * t.cols {
                            let elem = (t.row_start + e / t.cols) * l.n_in + t.col_start + e % t.cols;
                            let r = philox4x32_10([elem, trial, ctr_word2(l.layer, crate::rng::stream::PROG, 0), 0], [l.key0, l.key1]);
                            let wp = programmed_weight(&p.dev, w_norm[elem as usize], s, normal2(r));
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
