//! Fast CPU `bound` (shaders/bound.wgsl, twin src/engine/cpu/bound.rs), noise-models §7: the
//! vectors left to redo (still saturated after the level-1 pass of `mvm`, from level 2; or, when
//! too few saturated for that pass, the flagged ones from level 1) go through bound management
//! per (trial, tile) together, eight vectors in the lanes of one accumulator, four outputs at a
//! time. Every lane sums over k in increasing order with a separate multiply and add, as the
//! twin's per-vector loop does, and the output noise is the twin's `rng::out_normals` drawn once
//! per four outputs (the twin draws the block for each of them): the values are the twin's bit for
//! bit. `mvm`'s level-1 pass runs the same listed redo. On the full path (IR drop or per-read
//! weight noise on; `mvm_full` computed levels 0 and 1) the few vectors left go through the
//! twin's per-vector loop.
use super::simd_entry;
use crate::engine::cpu::bound::input_slice;
use crate::engine::cpu::common::{in_range, par_vectors, quant_in, quant_out, redo_in_gemm, saturated, VectorRows};
use crate::engine::layout::{StageParams, TileInfo};
use crate::rng::out_normals;

#[allow(clippy::too_many_arguments)]
pub fn bound(
    p: &StageParams,
    tiles: &[TileInfo],
    x: &[f32],
    nm: &[f32],
    weff: &[f32],
    sat: &[u32],
    nsat: &[u32],
    y: &mut [f32],
    bm_level: &mut [u32],
    threads: usize,
) {
    let l = &p.layer;
    let ntiles = (l.tiles_in * l.tiles_out) as usize;
    let batch = l.batch as usize;
    if l.full_path == 0 {
        // The twin's choice: after the GEMM's level-1 pass the vectors flagged again (bit 2) from
        // level 2, else those flagged at level 0 (bit 1) from level 1.
        let redo = redo_in_gemm(l, nsat);
        let (bit, from) = if redo { (2u32, 2u32) } else { (1, 1) };
        let any = nsat[from as usize - 1] != 0;
        let flagged = |v: usize| any && sat[v] & bit != 0;
        par_vectors(threads, l, y, bm_level, Redo::default, |sc, rows| {
            for (tile, t) in tiles.iter().enumerate().take(ntiles) {
                sc.active.clear();
                sc.active.extend(rows.vecs.clone().filter(|&s| flagged((rows.trial_local * batch + s) * ntiles + tile)));
                if !sc.active.is_empty() {
                    redo_listed(p, t, tile, &RedoInputs::Raw { x, nm }, weff, from, false, rows, sc);
                }
            }
        });
        return;
    }
    // The full path (IR drop, per-read weight noise) from level 2: the twin's per-vector loop.
    crate::engine::cpu::bound::bound(p, tiles, x, nm, weff, sat, nsat, y, bm_level, threads);
}

/// Where the listed redo's inputs come from: the layer's activations, quantised at each level's
/// reduction as the twin's `bound_vector` does (`x / (nm · 2^level)`), or `dac`'s level-1 pass,
/// which stored those same values for `mvm`'s level-1 redo.
pub(super) enum RedoInputs<'a> {
    Raw { x: &'a [f32], nm: &'a [f32] },
    Quantised(&'a [f32]),
}

/// Per-thread buffers of the listed redo, reused across tiles.
#[derive(Default)]
pub(super) struct Redo {
    /// Samples of the current (trial, tile) still saturated at the current level.
    pub(super) active: Vec<usize>,
    /// Samples that saturate again (the next level's `active`).
    pub(super) again: Vec<usize>,
    /// Quantised inputs of eight vectors, lane-interleaved: `xt[k * 8 + lane]`.
    xt: Vec<f32>,
}

/// Lanes of the listed redo: vectors per accumulator.
const V: usize = 8;
/// Outputs per pass over the inputs (independent accumulators that hide the add latency).
const O: usize = 8;

simd_entry!(
    /// The twin's `bound_vector` loop for the listed samples `sc.active` of one (trial, tile),
    /// level by level from `from`, eight vectors at a time (compiled for AVX2 where the CPU has
    /// it, so the quantisers' rounding is one instruction, not a libm call). `once`: only level
    /// `from`, leaving the samples that go on in `sc.again` and `bm_level` to the caller (`mvm`'s
    /// level-1 pass).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn redo_listed(p: &StageParams, t: &TileInfo, tile: usize, inputs: &RedoInputs, weff: &[f32], from: u32, once: bool, out: &mut VectorRows<'_>, sc: &mut Redo) => redo_listed_body
);

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn redo_listed_body(
    p: &StageParams,
    t: &TileInfo,
    tile: usize,
    inputs: &RedoInputs,
    weff: &[f32],
    from: u32,
    once: bool,
    out: &mut VectorRows<'_>,
    sc: &mut Redo,
) {
    let l = &p.layer;
    let io = &p.io;
    let trial_local = out.trial_local;
    let (n_in, n_out, batch) = (l.n_in as usize, l.n_out as usize, l.batch as usize);
    let (rows, cols) = (t.rows as usize, t.cols as usize);
    let ti = tile % l.tiles_in as usize;
    let trial = l.trial_offset + trial_local as u32;
    let key = [l.key0, l.key1];
    let wbase = trial_local * n_out * n_in + t.row_start as usize * n_in + t.col_start as usize;
    let mut level = from;
    loop {
        let red = (1u32 << level) as f32;
        let last = io.bm_mode == 0 || red >= io.bm_max_red;
        sc.again.clear();
        for vb in (0..sc.active.len()).step_by(V) {
            let nv = (sc.active.len() - vb).min(V);
            let lanes: [usize; V] = std::array::from_fn(|i| sc.active[vb + i.min(nv - 1)]);
            // Inputs at this level's reduction, as the twin quantises them.
            sc.xt.clear();
            sc.xt.resize(cols * V, 0.0);
            for (i, &s) in lanes.iter().enumerate() {
                match *inputs {
                    RedoInputs::Raw { x, nm } => {
                        let (xo, m_div) = input_slice(l, t, ti, trial_local, s, nm);
                        for k in 0..cols {
                            sc.xt[k * V + i] = quant_in(io, in_range(t.input_range, x[xo + k]) / (m_div * red));
                        }
                    }
                    RedoInputs::Quantised(xq) => {
                        let xs = if l.x_per_trial != 0 { trial_local * batch + s } else { s };
                        for k in 0..cols {
                            sc.xt[k * V + i] = xq[xs * n_in + t.col_start as usize + k];
                        }
                    }
                }
            }
            let mut any_sat = [false; V];
            for o0 in (0..rows).step_by(O) {
                let no = (rows - o0).min(O);
                let acc = dots(&sc.xt, weff, wbase + o0 * n_in, n_in, cols, no);
                for (i, &s) in lanes.iter().enumerate().take(nv) {
                    let mut group = (u32::MAX, [0f32; 4]);
                    for (j, aj) in acc.iter().enumerate().take(no) {
                        let orow = t.row_start + (o0 + j) as u32;
                        let mut yv = aj[i];
                        if io.out_noise > 0.0 {
                            if group.0 != orow >> 2 {
                                group = (orow >> 2, out_normals(l.vector_offset + s as u32, trial, l.layer, l.t_index, orow >> 2, ti as u32, level, key));
                            }
                            yv += io.out_noise * group.1[(orow & 3) as usize];
                        }
                        let q = quant_out(io, yv);
                        any_sat[i] |= saturated(io, q);
                        out.y(ti, s)[orow as usize] = q.clamp(-io.out_bound, io.out_bound);
                    }
                }
            }
            for (i, &s) in lanes.iter().enumerate().take(nv) {
                if any_sat[i] && !last {
                    sc.again.push(s);
                } else if !once {
                    *out.word(s, tile) = level;
                }
            }
        }
        if once || sc.again.is_empty() {
            return;
        }
        std::mem::swap(&mut sc.active, &mut sc.again);
        level += 1;
    }
}

/// `acc[j][i] = Σ_k xt[k·8 + i] · w[w0 + j·n_in + k]` for the first `no` of the O rows, each lane
/// summing over k in increasing order (a multiply, then an add), as the twin does. Inlined into
/// `redo_listed`'s AVX2 and baseline bodies alike.
///
/// The eight rows are walked by one zipped iterator, so no index is checked inside the loop:
/// indexing them by k left bounds checks in the loop whenever the compiler kept the row slices
/// on the stack (case (j)'s level-1 pass ran 30 % slower for it).
#[inline(always)]
fn dots(xt: &[f32], w: &[f32], w0: usize, n_in: usize, cols: usize, no: usize) -> [[f32; V]; O] {
    const _: () = assert!(O == 8, "dots zips exactly eight rows");
    // Rows past the tile's last repeat its last row (computed, never written).
    let wr: [&[f32]; O] = std::array::from_fn(|j| &w[w0 + j.min(no - 1) * n_in..][..cols]);
    let rows = wr[0].iter().zip(wr[1]).zip(wr[2]).zip(wr[3]).zip(wr[4]).zip(wr[5]).zip(wr[6]).zip(wr[7]);
    let mut a = [[0f32; V]; O];
    for (xk, (((((((w0, w1), w2), w3), w4), w5), w6), w7)) in xt[..cols * V].chunks_exact(V).zip(rows) {
        let wk = [*w0, *w1, *w2, *w3, *w4, *w5, *w6, *w7];
        for j in 0..O {
            for i in 0..V {
                a[j][i] += xk[i] * wk[j];
            }
        }
    }
    a
}
