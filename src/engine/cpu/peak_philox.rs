//! CPU twin of shaders/peak_philox.wgsl: Philox throughput of the CPU backend. The blocks of one
//! item are generated eight at a time with `fast::lanes::philox_x8` (bit-exact with
//! `rng::philox4x32_10`, and XOR folding does not depend on order), compiled for AVX2 where the CPU
//! has it: the ceiling the fast kernels' RNG is measured against.
// Index loops mirror the dispatch (trial, tile, chunk), so the kernels read beside the WGSL.
#![allow(clippy::needless_range_loop)]

use super::common::*;
use crate::engine::fast::lanes::{philox_x8, L};
use crate::engine::fast::simd_entry;
use crate::engine::layout::StageParams;

pub fn peak_philox(p: &StageParams, sink: &mut [u32], threads: usize) {
    let l = &p.layer;
    par_trials(threads, l.trials as usize, sink, 1, |first, n, out| items([l.key0, l.key1], l.batch, first, n, out));
}

simd_entry!(fn items(key: [u32; 2], batch: u32, first: usize, n: usize, out: &mut [u32]) => items_body);

#[inline(always)]
fn items_body(key: [u32; 2], batch: u32, first: usize, n: usize, out: &mut [u32]) {
    for z in 0..n {
        let i = (first + z) as u32;
        let mut acc = [0u32; L];
        for k0 in (0..batch).step_by(L) {
            let live: [bool; L] = std::array::from_fn(|j| k0 + (j as u32) < batch);
            let r = philox_x8([std::array::from_fn(|j| k0 + j as u32), [i; L], [0; L], [0; L]], key);
            for j in 0..L {
                acc[j] ^= if live[j] { r[0][j] ^ r[1][j] ^ r[2][j] ^ r[3][j] } else { 0 };
            }
        }
        out[z] = acc.iter().fold(0, |a, b| a ^ b);
    }
}
