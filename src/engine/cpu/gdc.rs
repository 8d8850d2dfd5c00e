//! CPU twin of shaders/gdc.wgsl: alpha = baseline / readout per (trial, tile).

use crate::engine::layout::{StageParams, TileInfo};

pub fn gdc(p: &StageParams, tiles: &[TileInfo], partials: &[f32], alpha: &mut [f32]) {
    let l = &p.layer;
    let ntiles = l.tiles_in * l.tiles_out;
    for i in 0..l.trials * ntiles {
        let t = &tiles[(i % ntiles) as usize];
        let mut a = 1.0f32;
        if l.gdc_mode != 0 {
            let (mut sr, mut sb) = (0.0f32, 0.0f32);
            for c in 0..l.chunks_per_tile {
                sr += partials[((i * l.chunks_per_tile + c) * 2) as usize];
                sb += partials[((i * l.chunks_per_tile + c) * 2 + 1) as usize];
            }
            let count = (t.rows * t.cols) as f32;
            let readout = (sr / count).max(1e-4);
            let mut baseline = t.mean_abs_norm;
            if l.gdc_mode == 1 {
                baseline = (sb / count).max(1e-4);
            }
            a = baseline / readout;
        }
        alpha[i as usize] = a;
    }
}
