//! CPU twin of shaders/dac.wgsl: abs-max noise management and DAC per (trial, sample, input tile).

use super::common::*;
use crate::engine::layout::{StageParams, TileInfo};

pub fn dac(p: &StageParams, tiles: &[TileInfo], x: &[f32], xq: &mut [f32], nm: &mut [f32]) {
    let l = &p.layer;
    for i in 0..l.trials * l.batch * l.tiles_in {
        let ti = i % l.tiles_in;
        let v = i / l.tiles_in;
        let t = &tiles[ti as usize];
        let xo = (if l.x_per_trial != 0 { v } else { v % l.batch } * l.n_in) as usize;
        let mut m = 1.0f32;
        if p.io.nm_mode == 1 {
            m = 0.0;
            for k in 0..t.cols {
                m = m.max(x[xo + (t.col_start + k) as usize].abs());
            }
            if m == 0.0 {
                m = 1.0;
            }
        }
        nm[i as usize] = m;
        for k in 0..t.cols {
            xq[(v * l.n_in + t.col_start + k) as usize] = quant_in(&p.io, x[xo + (t.col_start + k) as usize] / m);
        }
    }
}
