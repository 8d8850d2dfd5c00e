//! CPU twin of shaders/peak_philox.wgsl: Philox throughput of the CPU backend.
// Index loops mirror the shader's invocation indices, so the twin reads beside the WGSL.
#![allow(clippy::needless_range_loop)]

use super::common::*;
use crate::engine::layout::StageParams;

pub fn peak_philox(p: &StageParams, sink: &mut [u32], threads: usize) {
    let l = &p.layer;
    par_trials(threads, l.trials as usize, sink, 1, |first, n, out| {
        for z in 0..n {
            let i = (first + z) as u32;
            let mut acc = 0u32;
            for k in 0..l.batch {
                let r = philox4x32_10([k, i, 0, 0], [l.key0, l.key1]);
                acc ^= r[0] ^ r[1] ^ r[2] ^ r[3];
            }
            out[z] = acc;
        }
    });
}
