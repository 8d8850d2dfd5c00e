//! CPU twin of shaders/peak_fma.wgsl: FP32 multiply-add throughput of the CPU backend (eight
//! independent chains per item, as in the shader; the compiler may vectorise across them).
// Index loops mirror the shader's invocation indices, so the twin reads beside the WGSL.
#![allow(clippy::needless_range_loop)]

use super::common::*;
use crate::engine::layout::StageParams;

pub fn peak_fma(p: &StageParams, sink: &mut [f32], threads: usize) {
    let l = &p.layer;
    let c = p.io.out_noise;
    par_trials(threads, l.trials as usize, sink, 1, |first, n, out| {
        for z in 0..n {
            let i = (first + z) as u32;
            let m = 0.999 + (i & 7) as f32 * 1e-6;
            let mut a = [i as f32, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];
            for _ in 0..l.batch {
                for v in a.iter_mut() {
                    *v = *v * m + c;
                }
            }
            out[z] = a[0] * a[4] + a[1] * a[5] + a[2] * a[6] + a[3] * a[7];
        }
    });
}
