//! CPU twin of shaders/rng.wgsl: raw Philox blocks and their normals.

use super::common::*;
use crate::engine::layout::StageParams;

pub fn rng(p: &StageParams, words: &mut [u32], normals: &mut [f32]) {
    let l = &p.layer;
    for i in 0..l.trials {
        let r = philox4x32_10([i, l.trial_offset, l.layer, l.t_index], [l.key0, l.key1]);
        words[i as usize * 4..i as usize * 4 + 4].copy_from_slice(&r);
        normals[i as usize * 4..i as usize * 4 + 4].copy_from_slice(&normal4(r));
    }
}
