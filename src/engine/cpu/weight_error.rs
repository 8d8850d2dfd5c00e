//! CPU twin of shaders/weight_error.wgsl: per-chunk sums of E and E² with E = (alpha W_eff − W)/max|W|.

use super::common::{alpha_slot, chunk_elem, row_entry, tree_sum};
use crate::engine::layout::{StageParams, TileInfo};
use crate::engine::stages::CHUNK;

pub fn weight_error(p: &StageParams, groups: [u32; 3], tiles: &[TileInfo], w_norm: &[f32], weff: &[f32], alpha: &[f32], partials: &mut [f32]) {
    let l = &p.layer;
    let ntiles = (l.tiles_in * l.tiles_out) as usize;
    let nw = (l.n_in * l.n_out) as usize;
    let mut s1 = [0f32; CHUNK as usize];
    let mut s2 = [0f32; CHUNK as usize];
    for z in 0..groups[2] as usize {
        for wy in 0..groups[1] as usize {
            let t = &tiles[wy];
            for wx in 0..groups[0] {
                for lid in 0..CHUNK {
                    let (r, c) = chunk_elem(l, t, wx, lid);
                    let mut d = 0.0f32;
                    if r < t.rows {
                        let elem = ((t.row_start + r) * l.n_in + t.col_start + c) as usize;
                        let a = alpha[alpha_slot(l, z as u32, wy as u32, r)];
                        let scale = tiles[row_entry(l, wy as u32, r)].scale;
                        d = (a * weff[z * nw + elem] - w_norm[elem]) * scale / l.wmax;
                    }
                    s1[lid as usize] = d;
                    s2[lid as usize] = d * d;
                }
                tree_sum(&mut s1);
                tree_sum(&mut s2);
                let o = ((z * ntiles + wy) * l.chunks_per_tile as usize + wx as usize) * 2;
                partials[o] = s1[0];
                partials[o + 1] = s2[0];
            }
        }
    }
}
