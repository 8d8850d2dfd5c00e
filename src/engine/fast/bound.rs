//! Fast CPU `bound` (shaders/bound.wgsl, twin src/engine/cpu/bound.rs), noise-models §7.
//! Listed vectors only (the usual case: `mvm` flagged a few saturated ones): the twin, whose
//! per-vector redo is a small share of the work. The full path (IR drop or per-read weight noise
//! on, every vector): level 0 of all samples of a (trial, tile) as GEMMs through `matrixmultiply`
//! (the MVM; for IR drop Σ|W||x'| and Σ W x' (1 − r_k²); for weight noise Σ|W| x'² or Σ x'²), then
//! the twin's epilogue per output (noise from the same counters, ADC, saturation); the vectors that
//! saturate are redone from level 1 by the twin's `bound_vector`.

use crate::engine::cpu::bound::bound_vector;
use crate::engine::cpu::common::{par_trials2, quant_in, quant_out, saturated};
use crate::engine::layout::{StageParams, TileInfo};
use crate::rng::{out_normals, W_NOISE_GROUP};

#[allow(clippy::too_many_arguments)]
pub fn bound(p: &StageParams, tiles: &[TileInfo], x: &[f32], nm: &[f32], weff: &[f32], satlist: &[u32], y: &mut [f32], bm_level: &mut [u32], threads: usize) {
    let l = &p.layer;
    if l.full_path == 0 {
        crate::engine::cpu::bound::bound(p, tiles, x, nm, weff, satlist, y, bm_level, threads);
        return;
    }
    let ntiles = (l.tiles_in * l.tiles_out) as usize;
    let (n_out, batch) = (l.n_out as usize, l.batch as usize);
    let y_per = l.tiles_in as usize * batch * n_out;
    par_trials2(threads, l.trials as usize, y, y_per, bm_level, batch * ntiles, |first, n, y, bm_level| {
        let mut sc = Scratch::default();
        for z in 0..n {
            for (tile, t) in tiles.iter().enumerate().take(ntiles) {
                full_tile(p, t, tile, x, nm, weff, first + z, z, y, bm_level, &mut sc);
            }
        }
    });
}

/// Per-thread buffers, reused across tiles.
#[derive(Default)]
struct Scratch {
    x0: Vec<f32>,
    xa: Vec<f32>,
    xc: Vec<f32>,
    x2: Vec<f32>,
    wa: Vec<f32>,
    acc: Vec<f32>,
    sa: Vec<f32>,
    sp: Vec<f32>,
    q: Vec<f32>,
    xw: Vec<f32>,
}

/// C (m × n, row-major) = A (m × k, row stride `rsa`) · Bᵀ with B n × k of row stride `rsb`.
#[allow(clippy::too_many_arguments)]
fn gemm_abt(m: usize, k: usize, n: usize, a: &[f32], rsa: usize, b: &[f32], rsb: usize, c: &mut Vec<f32>) {
    c.clear();
    c.resize(m * n, 0.0);
    if m == 0 || k == 0 || n == 0 {
        return;
    }
    assert!(a.len() >= (m - 1) * rsa + k && b.len() >= (n - 1) * rsb + k);
    // SAFETY: the assert above covers every element the strides address; C is m x n row-major.
    unsafe {
        matrixmultiply::sgemm(m, k, n, 1.0, a.as_ptr(), rsa as isize, 1, b.as_ptr(), 1, rsb as isize, 0.0, c.as_mut_ptr(), n as isize, 1);
    }
}

#[allow(clippy::too_many_arguments)]
fn full_tile(
    p: &StageParams,
    t: &TileInfo,
    tile: usize,
    x: &[f32],
    nm: &[f32],
    weff: &[f32],
    trial_local: usize,
    z: usize,
    y: &mut [f32],
    bm_level: &mut [u32],
    sc: &mut Scratch,
) {
    let l = &p.layer;
    let io = &p.io;
    let ntiles = (l.tiles_in * l.tiles_out) as usize;
    let (n_in, n_out, batch) = (l.n_in as usize, l.n_out as usize, l.batch as usize);
    let (rows, cols) = (t.rows as usize, t.cols as usize);
    let ti = tile % l.tiles_in as usize;
    let trial = l.trial_offset + trial_local as u32;
    let key = [l.key0, l.key1];
    let n_cols = t.cols as f32;
    // Level 0 inputs of every sample: batch x cols.
    sc.x0.resize(batch * cols, 0.0);
    for s in 0..batch {
        let vs = trial_local * batch + s;
        let xs = if l.x_per_trial != 0 { vs } else { s };
        let m = nm[xs * l.tiles_in as usize + ti];
        // nm = 0 marks an all-zero slice (its output is dropped in `combine`).
        let m_div = if m == 0.0 { 1.0 } else { m };
        let xo = xs * n_in + t.col_start as usize;
        for k in 0..cols {
            sc.x0[s * cols + k] = quant_in(io, x[xo + k] / m_div);
        }
    }
    let wbase = trial_local * n_out * n_in + t.row_start as usize * n_in + t.col_start as usize;
    let w = &weff[wbase..];
    gemm_abt(batch, cols, rows, &sc.x0, cols, w, n_in, &mut sc.acc);
    let pcm_read = io.w_noise > 0.0 && io.w_noise_type == 1;
    if io.ir_drop > 0.0 || pcm_read {
        sc.wa.resize(rows * cols, 0.0);
        for o in 0..rows {
            for k in 0..cols {
                sc.wa[o * cols + k] = w[o * n_in + k].abs();
            }
        }
    }
    if io.ir_drop > 0.0 {
        sc.xa.clear();
        sc.xa.extend(sc.x0.iter().map(|v| v.abs()));
        gemm_abt(batch, cols, rows, &sc.xa, cols, &sc.wa, cols, &mut sc.sa);
        sc.xc.resize(batch * cols, 0.0);
        for s in 0..batch {
            for k in 0..cols {
                let r = 1.0 - k as f32 / n_cols;
                sc.xc[s * cols + k] = sc.x0[s * cols + k] * (1.0 - r * r);
            }
        }
        gemm_abt(batch, cols, rows, &sc.xc, cols, w, n_in, &mut sc.sp);
    }
    if io.w_noise > 0.0 {
        sc.x2.clear();
        sc.x2.extend(sc.x0.iter().map(|v| v * v));
        if pcm_read {
            gemm_abt(batch, cols, rows, &sc.x2, cols, &sc.wa, cols, &mut sc.q);
        } else {
            // Σ x'² is the same for every output of a sample.
            sc.q.clear();
            sc.q.extend(sc.x2.chunks_exact(cols.max(1)).map(|r| r.iter().sum::<f32>()));
        }
    }
    for s in 0..batch {
        let yrow = (z * l.tiles_in as usize + ti) * batch * n_out + s * n_out;
        let mut any_sat = false;
        let mut groups = [(u32::MAX, [0f32; 4]); 2];
        for o in 0..rows {
            let orow = t.row_start + o as u32;
            let mut yv = sc.acc[s * rows + o];
            if io.ir_drop > 0.0 {
                let a = n_cols / io.ir_g_ratio * sc.sa[s * rows + o];
                let c = a * (a * (0.05 * a - 0.2) + 0.5);
                yv -= io.ir_drop * c * sc.sp[s * rows + o];
            }
            let mut wstd = 0.0f32;
            if io.w_noise > 0.0 {
                let q = if pcm_read { sc.q[s * rows + o] } else { sc.q[s] };
                wstd = io.w_noise * q.sqrt();
            }
            // The blocks of the current output group (plain and weight-noise streams).
            let mut noise = |slot: usize, group: u32| {
                if groups[slot].0 != group {
                    groups[slot] = (group, out_normals(l.vector_offset + s as u32, trial, l.layer, l.t_index, group, ti as u32, 0, key));
                }
                groups[slot].1[(orow & 3) as usize]
            };
            if io.out_noise > 0.0 {
                yv += io.out_noise * noise(0, orow >> 2);
            }
            if wstd > 0.0 {
                yv += wstd * noise(1, (orow >> 2) | W_NOISE_GROUP);
            }
            let q = quant_out(io, yv);
            any_sat |= saturated(io, q);
            y[yrow + orow as usize] = q.clamp(-io.out_bound, io.out_bound);
        }
        let vl = (z * batch + s) * ntiles + tile;
        bm_level[vl] = 0;
        if any_sat && io.bm_mode != 0 && 1.0 < io.bm_max_red {
            sc.xw.resize(crate::crossbar::MAX_TILE_IN as usize, 0.0);
            bm_level[vl] = bound_vector(p, t, tile, x, nm, weff, trial_local, z, s, 1, y, &mut sc.xw);
        }
    }
}
