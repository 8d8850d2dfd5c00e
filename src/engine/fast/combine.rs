//! Fast CPU `combine` (shaders/combine.wgsl, twin src/engine/cpu/combine.rs): the digital sum
//! over input tiles with noise-management, bound-management, GDC and weight scales, the bias and
//! the activation, row by row; GELU and tanh through the eight-lane `lanes::tanh`.
// Index loops mirror the dispatch (trial, tile, chunk), so the kernels read beside the WGSL.
#![allow(clippy::needless_range_loop)]

use super::lanes;
use super::simd_entry;
use crate::engine::cpu::common::{alpha_slot, par_trials, row_entry};
use crate::engine::layout::{StageParams, TileInfo};

#[allow(clippy::too_many_arguments)]
pub fn combine(p: &StageParams, tiles: &[TileInfo], y: &[f32], nm: &[f32], bm_level: &[u32], alpha: &[f32], bias: &[f32], h: &mut [f32], threads: usize) {
    // Split by output row (trial × sample), so a chunk of one trial still runs on every thread.
    let vectors = (p.layer.trials * p.layer.batch) as usize;
    par_trials(threads, vectors, h, p.layer.n_out as usize, |first, n, h| rows(p, tiles, y, nm, bm_level, alpha, bias, first, n, h));
}

simd_entry!(
    #[allow(clippy::too_many_arguments)]
    fn rows(p: &StageParams, tiles: &[TileInfo], y: &[f32], nm: &[f32], bm_level: &[u32], alpha: &[f32], bias: &[f32], first: usize, n: usize, h: &mut [f32]) => rows_body
);

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn rows_body(p: &StageParams, tiles: &[TileInfo], y: &[f32], nm: &[f32], bm_level: &[u32], alpha: &[f32], bias: &[f32], first: usize, n: usize, h: &mut [f32]) {
    let l = &p.layer;
    let (batch, n_out, tin) = (l.batch as usize, l.n_out as usize, l.tiles_in as usize);
    let ntiles = (l.tiles_in * l.tiles_out) as usize;
    // Rows first .. first + n (trial-major: vs = trial · batch + sample).
    for r in 0..n {
        let vs = first + r;
        let (trial_local, s) = (vs / batch, vs % batch);
        let hrow = &mut h[r * n_out..][..n_out];
        for to in 0..l.tiles_out as usize {
            // Outputs of output tile `to`: the same factors for the whole row slice.
            let t0 = &tiles[to * tin];
            let (lo, hi) = (t0.row_start as usize, (t0.row_start + t0.rows) as usize);
            let out = &mut hrow[lo..hi];
            out.fill(0.0);
            for ti in 0..tin {
                let tile = to * tin + ti;
                let fc = nm[if l.x_per_trial != 0 { vs } else { s } * tin + ti] * (1u32 << bm_level[vs * ntiles + tile]) as f32;
                // Each output's GDC factor (one per tile, or its own) and digital scale, in
                // the twin's order of multiplication.
                let a0 = alpha_slot(l, trial_local as u32, tile as u32, 0);
                let per_row = usize::from(l.alpha_rows > 1);
                let scales = &tiles[row_entry(l, tile as u32, 0)..][..hi - lo];
                let yrow = &y[((trial_local * tin + ti) * batch + s) * n_out..][lo..hi];
                for (k, (a, &yv)) in out.iter_mut().zip(yrow).enumerate() {
                    *a += yv * (fc * alpha[a0 + k * per_row] * scales[k].scale);
                }
            }
            for (a, &b) in out.iter_mut().zip(&bias[lo..hi]) {
                *a += b;
            }
            activate_row(l.activation, out);
        }
    }
}

/// `common::activate` over a row, the kind chosen once per row so each loop vectorises; GELU and
/// tanh through `lanes::tanh`.
#[inline(always)]
fn activate_row(kind: u32, row: &mut [f32]) {
    match kind {
        1 => row.iter_mut().for_each(|v| *v = v.max(0.0)),
        2 => row.iter_mut().for_each(|v| *v = 0.5 * *v * (1.0 + lanes::tanh(0.797_884_6 * (*v + 0.044715 * *v * *v * *v)))),
        3 => row.iter_mut().for_each(|v| *v = lanes::tanh(*v)),
        4 => row.iter_mut().for_each(|v| *v = 0.5 * *v * (1.0 + erf_as(*v * std::f32::consts::FRAC_1_SQRT_2))),
        5 => row.iter_mut().for_each(|v| *v = *v / (1.0 + lanes::exp(-*v))),
        _ => {}
    }
}

/// `common::erf_as` (Abramowitz & Stegun 7.1.26) with `lanes::exp`, so the erf GELU vectorises.
#[inline(always)]
fn erf_as(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_8 + t * (-1.453_152 + t * 1.061_405_4))));
    (1.0 - poly * lanes::exp(-a * a)).copysign(x)
}
