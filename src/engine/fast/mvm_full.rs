//! Fast CPU `mvm_full` (shaders/mvm_full.wgsl, twin src/engine/cpu/mvm_full.rs), noise-models §7:
//! level 0 of every sample of a (trial, tile) on the full periphery path (the inputs plus their
//! input noise, eight Philox blocks at a time) as GEMMs through `gemm::gemm_abt` (the MVM; for IR
//! drop Σ|W||x'| and Σ W x' (1 − r_k²); for weight noise Σ|W| x'² or Σ x'²), then the twin's
//! epilogue per output (noise from the same counters, ADC, saturation flag). The level-1 pass is
//! the twin's (the flagged vectors one at a time through `bound_level` on `dac`'s reduction-2
//! inputs).
use super::lanes::{normal4_x8, philox_x8, L, U};
use super::simd_entry;
use crate::engine::cpu::common::{finish_mvm_pass, mvm_flags, par_gemm_trials, quant_out, saturated};
use crate::engine::layout::{IoParams, LayerParams, StageParams, TileInfo};
use crate::rng::{ctr_word2, ctr_word3_inp, out_normals, stream, W_NOISE_GROUP};

#[allow(clippy::too_many_arguments)]
pub fn mvm_full(
    p: &StageParams,
    tiles: &[TileInfo],
    xq: &[f32],
    weff: &[f32],
    y: &mut [f32],
    sat: &mut [u32],
    nsat: &mut [u32],
    bm_level: &mut [u32],
    threads: usize,
) {
    let l = &p.layer;
    let ntiles = (l.tiles_in * l.tiles_out) as usize;
    if l.bm_pass != 0 {
        // The level-1 pass: the flagged vectors one at a time, as the twin does it.
        return crate::engine::cpu::mvm_full::mvm_full(p, tiles, xq, weff, y, sat, nsat, bm_level, threads);
    }
    par_gemm_trials(threads, l, y, sat, |first, n, y, sat| {
        let mut sc = Scratch::default();
        for z in 0..n {
            for (tile, t) in tiles.iter().enumerate().take(ntiles) {
                full_tile(p, t, tile, xq, weff, first + z, z, y, sat, &mut sc);
            }
        }
    });
    finish_mvm_pass(0, l, sat, nsat, bm_level);
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
    gemm: super::gemm::Scratch,
}

/// C (m × n, row-major) = A (m × k, row stride `rsa`) · Bᵀ with B n × k of row stride `rsb`.
#[allow(clippy::too_many_arguments)]
fn gemm_abt(m: usize, k: usize, n: usize, a: &[f32], rsa: usize, b: &[f32], rsb: usize, c: &mut Vec<f32>, scratch: &mut super::gemm::Scratch) {
    // Every element is written (zeros when k is 0): sized, not cleared.
    c.resize(m * n, 0.0);
    super::gemm::gemm_abt(m, k, n, a, rsa, b, rsb, c, scratch);
}

simd_entry!(
    /// Every sample of one (trial, tile) on the full path: level 0 as GEMMs, the epilogue per
    /// output and the saturation flags (compiled for AVX2 where present).
    #[allow(clippy::too_many_arguments)]
    fn full_tile(p: &StageParams, t: &TileInfo, tile: usize, xq: &[f32], weff: &[f32], trial_local: usize, z: usize, y: &mut [f32], sat: &mut [u32], sc: &mut Scratch) => full_tile_body
);

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn full_tile_body(
    p: &StageParams,
    t: &TileInfo,
    tile: usize,
    xq: &[f32],
    weff: &[f32],
    trial_local: usize,
    z: usize,
    y: &mut [f32],
    sat: &mut [u32],
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
    // Level 0 inputs of every sample (`dac`'s): batch x cols. A shared input (the first layer)
    // was quantised once, as trial 0.
    let xbase = if l.x_per_trial != 0 { trial_local } else { 0 } * batch * n_in + t.col_start as usize;
    sc.x0.resize(batch * cols, 0.0);
    for s in 0..batch {
        let xs = &mut sc.x0[s * cols..(s + 1) * cols];
        xs.copy_from_slice(&xq[xbase + s * n_in..][..cols]);
        // Each tile's own input noise, the twin's draws eight blocks at a time.
        if io.inp_noise > 0.0 {
            inp_noise_x8(l, io, tile as u32, trial, s as u32, xs);
        }
    }
    let wbase = trial_local * n_out * n_in + t.row_start as usize * n_in + t.col_start as usize;
    let w = &weff[wbase..];
    gemm_abt(batch, cols, rows, &sc.x0, cols, w, n_in, &mut sc.acc, &mut sc.gemm);
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
        gemm_abt(batch, cols, rows, &sc.xa, cols, &sc.wa, cols, &mut sc.sa, &mut sc.gemm);
        sc.xc.resize(batch * cols, 0.0);
        for s in 0..batch {
            for k in 0..cols {
                let r = 1.0 - k as f32 / n_cols;
                sc.xc[s * cols + k] = sc.x0[s * cols + k] * (1.0 - r * r);
            }
        }
        gemm_abt(batch, cols, rows, &sc.xc, cols, w, n_in, &mut sc.sp, &mut sc.gemm);
    }
    if io.w_noise > 0.0 {
        sc.x2.clear();
        sc.x2.extend(sc.x0.iter().map(|v| v * v));
        if pcm_read {
            gemm_abt(batch, cols, rows, &sc.x2, cols, &sc.wa, cols, &mut sc.q, &mut sc.gemm);
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
        if any_sat && mvm_flags(io, 0) {
            sat[(z * batch + s) * ntiles + tile] |= 1;
        }
    }
}

/// The twin's `add_inp_noise` at level 0, eight Philox blocks (32 input lines) per step: the
/// same counters, the normals from the lanes' Box–Muller (`lanes::normal4_x8`, within its
/// polynomials' rounding of the twin's). Inlined into `full_tile`'s AVX2 and baseline bodies.
#[inline(always)]
fn inp_noise_x8(l: &LayerParams, io: &IoParams, tile: u32, trial: u32, s: u32, xs: &mut [f32]) {
    let w2 = ctr_word2(l.layer, stream::INP, l.t_index);
    let (to, ti) = (tile / l.tiles_in, tile % l.tiles_in);
    let blocks = xs.len().div_ceil(4);
    for b0 in (0..blocks).step_by(L) {
        let w3: U = std::array::from_fn(|i| ctr_word3_inp((b0 + i) as u32, to, ti, 0));
        let n = normal4_x8(&philox_x8([[l.vector_offset + s; L], [trial; L], [w2; L], w3], [l.key0, l.key1]));
        for (i, lines) in xs[b0 * 4..].chunks_mut(4).take(L).enumerate() {
            for (c, x) in lines.iter_mut().enumerate() {
                *x += io.inp_noise * n[c][i];
            }
        }
    }
}
