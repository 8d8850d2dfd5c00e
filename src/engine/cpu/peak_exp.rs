//! CPU twin of shaders/peak_exp.wgsl: transcendental throughput of the CPU backend: 8
//! independent four-lane chains a ← exp(−a) per item (32 exponentials per iteration), as in the
//! shader, each with the branch-free `lanes::exp` the fast kernels use for the device state
//! (so it measures the CPU's own transcendental ceiling), summed as the shader's `dot` of the
//! chains' sum.
// Index loops mirror the dispatch (trial, tile, chunk), so the kernels read beside the WGSL.
#![allow(clippy::needless_range_loop)]

use super::common::*;
use crate::engine::fast::lanes;
use crate::engine::fast::simd_entry;
use crate::engine::layout::StageParams;

/// Chains x lanes per item.
const LANES: usize = 32;

/// The chains' starting values after the item's own (lane 0 of each chain): the shader's vectors.
const START: [f32; 24] = [
    0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 0.0625, 0.1875, 0.3125, 0.4375, 0.5625, 0.6875, 0.8125, 0.9375, 0.03125, 0.09375, 0.15625, 0.21875,
    0.28125, 0.34375, 0.40625, 0.46875,
];

pub fn peak_exp(p: &StageParams, sink: &mut [f32], threads: usize) {
    let l = &p.layer;
    par_trials(threads, l.trials as usize, sink, 1, |first, n, out| items(l.batch, first, n, out));
}

simd_entry!(fn items(iters: u32, first: usize, n: usize, out: &mut [f32]) => items_body);

#[inline(always)]
fn items_body(iters: u32, first: usize, n: usize, out: &mut [f32]) {
    for z in 0..n {
        let i = (first + z) as u32;
        let x = (i & 255) as f32 / 256.0;
        // Chain j: lane 0 starts at x, lanes 1..3 at START[3j..3j + 3].
        let mut a: [f32; LANES] = std::array::from_fn(|k| if k % 4 == 0 { x } else { START[3 * (k / 4) + k % 4 - 1] });
        for _ in 0..iters {
            for v in a.iter_mut() {
                *v = lanes::exp(-*v);
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
