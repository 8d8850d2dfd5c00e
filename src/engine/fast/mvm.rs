//! Fast CPU `mvm` (shaders/mvm.wgsl, twin src/engine/cpu/mvm.rs): per (trial, tile) the GEMM
//! Y = X'·W_effᵀ through `gemm::gemm_abt` (register-blocked AVX2/FMA, `matrixmultiply`'s sums), then
//! the periphery epilogue eight Philox blocks (32 outputs) at a time: output noise
//! (`rng::out_normals`, one block per four outputs), ADC and the saturation flag per vector.
//! The level-1 pass (`bm_pass` = 1) redoes only the vectors flagged at level 0, through `bound`'s
//! listed redo on `dac`'s reduction-2 inputs: the twin's sums and draws, bit for bit, as the
//! CPU's `bound` computed that level before the pass existed.
// Index loops mirror the dispatch (trial, tile, chunk), so the kernels read beside the WGSL.
#![allow(clippy::needless_range_loop)]

use super::bound::{redo_listed, Redo, RedoInputs};
use super::gemm::{gemm_abt, Scratch as GemmScratch};
use super::lanes::{normal4_x8, philox_x8, L};
use super::simd_entry;
use crate::engine::cpu::common::{finish_mvm_pass, mvm_flags, par_vectors, quant_out, redo_in_gemm, saturated, VectorRows};
use crate::engine::layout::{StageParams, TileInfo};
use crate::rng::{ctr_word2, ctr_word3_out, stream};

#[allow(clippy::too_many_arguments)]
pub fn mvm(
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
    if l.bm_pass == 1 {
        // Only when enough vectors were flagged (else `bound` redoes them from level 1).
        if !redo_in_gemm(l, nsat) {
            return;
        }
        par_vectors(threads, l, y, sat, Redo::default, |sc, rows| {
            for (tile, t) in tiles.iter().enumerate().take(ntiles) {
                sc.active.clear();
                for s in rows.vecs.clone() {
                    if *rows.word(s, tile) & 1 != 0 {
                        sc.active.push(s);
                    }
                }
                if sc.active.is_empty() {
                    continue;
                }
                redo_listed(p, t, tile, &RedoInputs::Quantised(xq), weff, 1, true, rows, sc);
                for &s in &sc.again {
                    *rows.word(s, tile) |= 2;
                }
            }
        });
        finish_mvm_pass(1, l, sat, nsat, bm_level);
        return;
    }
    // Per-thread scratch: the GEMM result of a block of vectors of one tile and its output noise.
    // Blocks of about ACC_FLOATS results stay in L2 between the GEMM that writes them and the
    // epilogue that reads them (each block's sums are the whole batch's, element by element: the
    // split is over vectors, never over k).
    const ACC_FLOATS: usize = 1 << 18;
    par_vectors(
        threads,
        l,
        y,
        sat,
        || (Vec::new(), Vec::new(), GemmScratch::default()),
        |(acc, noise, gemm), rows| {
            for tile in 0..ntiles {
                let per_block = (ACC_FLOATS / (tiles[tile].rows as usize).max(1)).max(8);
                let all = rows.vecs.clone();
                for s0 in all.clone().step_by(per_block) {
                    let vecs = s0..(s0 + per_block).min(all.end);
                    gemm_tile(p, &tiles[tile], xq, weff, rows.trial_local, vecs.clone(), acc, gemm);
                    epilogue(p, &tiles[tile], tile, vecs, acc, rows, noise);
                }
            }
        },
    );
    finish_mvm_pass(0, l, sat, nsat, bm_level);
}

/// `acc[(s − vecs.start) * rows + o] = Σ_k xq[trial, s, col_start + k] · weff[trial, row_start + o, col_start + k]`
/// for the vectors s in `vecs`.
#[allow(clippy::too_many_arguments)]
fn gemm_tile(
    p: &StageParams,
    t: &TileInfo,
    xq: &[f32],
    weff: &[f32],
    trial_local: usize,
    vecs: std::ops::Range<usize>,
    acc: &mut Vec<f32>,
    gemm: &mut GemmScratch,
) {
    let l = &p.layer;
    let (n_in, n_out, batch) = (l.n_in as usize, l.n_out as usize, vecs.len());
    let (rows, cols) = (t.rows as usize, t.cols as usize);
    // Every sum is written below (zeros for an empty tile), so the block is not cleared first.
    if acc.len() < batch * rows {
        acc.resize(batch * rows, 0.0);
    }
    let acc = &mut acc[..batch * rows];
    if rows == 0 || cols == 0 || batch == 0 {
        acc.fill(0.0);
        return;
    }
    // A shared input (the first layer) was quantised once, as trial 0.
    let xbase = (if l.x_per_trial != 0 { trial_local } else { 0 } * l.batch as usize + vecs.start) * n_in + t.col_start as usize;
    let wbase = trial_local * n_out * n_in + t.row_start as usize * n_in + t.col_start as usize;
    let x = &xq[xbase..xbase + (batch - 1) * n_in + cols];
    let w = &weff[wbase..wbase + (rows - 1) * n_in + cols];
    gemm_abt(batch, cols, rows, x, n_in, w, n_in, acc, gemm);
}

simd_entry!(
    #[allow(clippy::too_many_arguments)]
    fn epilogue(p: &StageParams, t: &TileInfo, tile: usize, vecs: std::ops::Range<usize>, acc: &[f32], rows: &mut VectorRows<'_>, noise: &mut Vec<f32>) => epilogue_body
);

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn epilogue_body(p: &StageParams, t: &TileInfo, tile: usize, vecs: std::ops::Range<usize>, acc: &[f32], out: &mut VectorRows<'_>, noise: &mut Vec<f32>) {
    let l = &p.layer;
    let io = &p.io;
    let ti = tile % l.tiles_in as usize;
    let rows = t.rows as usize;
    let trial = l.trial_offset + out.trial_local as u32;
    let key = [l.key0, l.key1];
    let w2 = ctr_word2(l.layer, stream::OUT, l.t_index);
    // Output groups of four (one Philox block each) covering the tile's rows. The lanes run over
    // the (vector, group) pairs of a block of vectors: a narrow tile (8 outputs, 2 groups) would
    // otherwise compute 8 blocks per vector for the 2 it reads, and blocks of at most
    // PAIRS_PER_BLOCK pairs keep the noise in L1 for the ADC loop that reads it.
    const PAIRS_PER_BLOCK: usize = 1024;
    let (r0, r1) = (t.row_start, t.row_start + t.rows);
    let (g0, g1) = (r0 >> 2, (r1 + 3) >> 2);
    let ng = ((g1 - g0) as usize).max(1);
    let off = (r0 - 4 * g0) as usize;
    let (lo, hi) = (-io.out_bound, io.out_bound);
    let per_block = (PAIRS_PER_BLOCK / ng).max(1);
    for s_first in vecs.clone().step_by(per_block) {
        let vectors = per_block.min(vecs.end - s_first);
        let pairs = vectors * ng;
        noise.clear();
        if io.out_noise > 0.0 {
            noise.resize(pairs.div_ceil(L) * L * 4, 0.0);
            // The next lane's (vector, group), stepped without a division per lane; lanes past
            // the last pair repeat it and their blocks are dropped.
            let (mut sv, mut jv) = (s_first as u32, 0u32);
            for c0 in (0..pairs).step_by(L) {
                let (mut vs, mut gs) = ([0u32; L], [0u32; L]);
                for i in 0..L {
                    vs[i] = l.vector_offset + sv;
                    gs[i] = ctr_word3_out(g0 + jv, ti as u32, 0);
                    if c0 + i + 1 < pairs {
                        jv += 1;
                        if jv as usize == ng {
                            (sv, jv) = (sv + 1, 0);
                        }
                    }
                }
                let n = normal4_x8(&philox_x8([vs, [trial; L], [w2; L], gs], key));
                for i in 0..L {
                    for (w, nw) in n.iter().enumerate() {
                        noise[(c0 + i) * 4 + w] = nw[i];
                    }
                }
            }
        }
        for sb in 0..vectors {
            let s = s_first + sb;
            let yt = &mut out.y(ti, s)[r0 as usize..r1 as usize];
            let arow = &acc[(s - vecs.start) * rows..][..rows];
            let mut any = false;
            // The ADC in straight loops over the tile's outputs (no branch inside), so they
            // vectorise; the same operations in the same order as the twin.
            if io.out_noise > 0.0 {
                let nrow = &noise[sb * ng * 4 + off..][..rows];
                for ((yo, &a), &nz) in yt.iter_mut().zip(arow).zip(nrow) {
                    let q = quant_out(io, a + io.out_noise * nz);
                    any |= saturated(io, q);
                    *yo = q.clamp(lo, hi);
                }
            } else {
                for (yo, &a) in yt.iter_mut().zip(arow) {
                    let q = quant_out(io, a);
                    any |= saturated(io, q);
                    *yo = q.clamp(lo, hi);
                }
            }
            if any && mvm_flags(io, 0) {
                *out.word(s, tile) |= 1;
            }
        }
    }
}
