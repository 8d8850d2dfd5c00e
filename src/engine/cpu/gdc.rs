//! CPU twin of shaders/gdc.wgsl: alpha = baseline / readout per (trial, tile), or per
//! (trial, tile, row) with per-column GDC.

use super::common::row_entry;
use crate::engine::layout::{StageParams, TileInfo};

pub fn gdc(p: &StageParams, tiles: &[TileInfo], partials: &[f32], alpha: &mut [f32]) {
    let l = &p.layer;
    let ntiles = l.tiles_in * l.tiles_out;
    for i in 0..l.trials * ntiles * l.alpha_rows {
        let tt = i / l.alpha_rows;
        let r = i % l.alpha_rows;
        let tile = tt % ntiles;
        let t = &tiles[tile as usize];
        let mut a = 1.0f32;
        if l.gdc_mode != 0 && r < t.rows {
            let (mut first, mut n, mut count, mut reference) = (0, l.chunks_per_tile, (t.rows * t.cols) as f32, t.mean_abs_norm);
            if l.alpha_rows > 1 {
                n = l.chunks_per_tile / l.max_rows;
                first = r * n;
                count = t.cols as f32;
                reference = tiles[row_entry(l, tile, r)].mean_abs_norm;
            }
            let (mut sr, mut sb) = (0.0f32, 0.0f32);
            for c in first..first + n {
                sr += partials[((tt * l.chunks_per_tile + c) * 2) as usize];
                sb += partials[((tt * l.chunks_per_tile + c) * 2 + 1) as usize];
            }
            let readout = (sr / count).max(1e-4);
            let mut baseline = reference;
            if l.gdc_mode == 1 {
                baseline = (sb / count).max(1e-4);
            }
            a = baseline / readout;
        }
        alpha[i as usize] = a;
    }
}
