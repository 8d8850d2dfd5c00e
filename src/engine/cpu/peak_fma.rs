//! CPU twin of shaders/peak_fma.wgsl: FP32 multiply-add throughput of the CPU backend: 16
//! independent four-lane chains per item (64 lanes, 128 FLOPs per iteration), as in the shader,
//! each step a fused multiply-add (`mul_add`, which the shader's `fma` is), summed as the shader's
//! `dot` of the chains' sum. Compiled for AVX2+FMA where the CPU has them, so it measures the
//! CPU's real FMA ceiling.
// Index loops mirror the dispatch (trial, tile, chunk), so the kernels read beside the WGSL.
#![allow(clippy::needless_range_loop)]

use super::common::*;
use crate::engine::fast::simd_entry;
use crate::engine::layout::StageParams;

/// Chains x lanes per item.
const LANES: usize = 64;

pub fn peak_fma(p: &StageParams, sink: &mut [f32], threads: usize) {
    let l = &p.layer;
    par_trials(threads, l.trials as usize, sink, 1, |first, n, out| items(p.io.out_noise, l.batch, first, n, out));
}

simd_entry!(fn items(c: f32, iters: u32, first: usize, n: usize, out: &mut [f32]) => items_body);

#[inline(always)]
fn items_body(c: f32, iters: u32, first: usize, n: usize, out: &mut [f32]) {
    for z in 0..n {
        let i = (first + z) as u32;
        let m = 0.999 + (i & 7) as f32 * 1e-6;
        // Chain j, lane 0 starts at i; lanes 1..3 at 4j, 4j + 1, 4j + 2 (the shader's vectors).
        let mut a: [f32; LANES] = std::array::from_fn(|k| if k % 4 == 0 { i as f32 } else { (4 * (k / 4) + k % 4 - 1) as f32 });
        for _ in 0..iters {
            for v in a.iter_mut() {
                *v = v.mul_add(m, c);
            }
        }
        let mut sum = [0f32; 4];
        for k in 0..4 {
            for j in 0..LANES / 4 {
                sum[k] += a[4 * j + k];
            }
        }
        out[z] = sum[0] + sum[1] + sum[2] + sum[3];
    }
}
