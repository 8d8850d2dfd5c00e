//! CPU twin of shaders/program_mvm.wgsl: single-vector MVMs with programming noise only, the
//! programmed weights regenerated from the counters and never stored.

use super::common::*;
use crate::engine::layout::{StageParams, TileInfo};
use crate::rng::stream;

pub fn program_mvm(p: &StageParams, w_norm: &[f32], tiles: &[TileInfo], xq: &[f32], y: &mut [f32], threads: usize) {
    let l = &p.layer;
    let t = &tiles[0];
    let dev = super::common::tile_device(&p.dev, t);
    let key = [l.key0, l.key1];
    let s = dev.g_max / t.wmax_norm.max(1e-7);
    let w2 = ctr_word2(l.layer, stream::PROG, 0);
    par_trials(threads, l.trials as usize, y, l.n_out as usize, |first, n, y| {
        for z in 0..n {
            let trial = l.trial_offset + (first + z) as u32;
            for o in 0..l.n_out {
                let mut acc = 0.0f32;
                for k in 0..l.n_in {
                    let elem = o * l.n_in + k;
                    let wp = programmed_weight(&dev, w_norm[elem as usize], s, normal2(philox4x32_10([elem, l.programming(trial), w2, 0], key)));
                    acc += xq[k as usize] * wp;
                }
                let mut v = acc;
                if p.io.out_noise > 0.0 {
                    let nn = normal2(philox4x32_10([0, trial, ctr_word2(l.layer, stream::OUT, l.t_index), ctr_word3_out(o, 0, 0)], key));
                    v += p.io.out_noise * nn[0];
                }
                y[z * l.n_out as usize + o as usize] = adc(&p.io, v);
            }
        }
    });
}
