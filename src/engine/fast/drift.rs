//! Fast CPU `drift` (shaders/drift.wgsl, twin src/engine/cpu/drift.rs): a trial's effective
//! weights at time t from the stored programmed state and the GDC readout partial sums
//! (noise-models §1, §3), the same counters,
//! equations and fixed-shape tree reduction as the twin, eight weights at a time with the
//! branch-free `lanes` transcendentals.
// Index loops mirror the dispatch (trial, tile, chunk), so the kernels read beside the WGSL.
#![allow(clippy::needless_range_loop)]

use super::lanes::{self, normal2_x8, normal4_x8, philox_x8, F, L};
use super::simd_entry;
use crate::device::MAX_READ_KNOTS;
use crate::engine::cpu::common::tree_sum;
use crate::engine::cpu::common::{
    chunk_elem, drifted_pairs, gdc_readout, level_knot, log_relaxed_weight, order_value, pair_count, pair_gmax, pair_read_normals, par_trials2, par_units,
    relaxed_weight, tile_device, wgsl_sign,
};
use crate::engine::layout::{Curve, DeviceParams, StageParams, TileInfo, READ_TABLE_AT};
use crate::engine::stages::CHUNK;
use crate::rng::{ctr_word2, stream};

#[allow(clippy::too_many_arguments)]
pub fn drift(p: &StageParams, groups: [u32; 3], tiles: &[TileInfo], progmax: &[u32], state: &[f32], weff: &mut [f32], partials: &mut [f32], threads: usize) {
    let l = &p.layer;
    let ntiles = (l.tiles_in * l.tiles_out) as usize;
    let nw = (l.n_in * l.n_out) as usize;
    let (cpt, per_tile) = (groups[0] as usize, l.chunks_per_tile as usize * 2);
    let part_per = ntiles * per_tile;
    let trials = groups[2] as usize;
    if trials < threads && groups[1] as usize == ntiles && ntiles > 1 {
        // Fewer trials than threads: each trial's tiles in parallel, each into a buffer of its own
        // (a tile's weights are not contiguous in `weff`), copied into place row by row after.
        for (z, (wz, pz)) in weff[..trials * nw].chunks_mut(nw.max(1)).zip(partials[..trials * part_per].chunks_mut(part_per.max(1))).enumerate() {
            let mut bufs: Vec<Vec<f32>> = tiles[..ntiles].iter().map(|t| vec![0f32; (t.rows * t.cols) as usize]).collect();
            let mut units: Vec<(usize, &mut Vec<f32>, &mut [f32])> =
                bufs.iter_mut().zip(pz.chunks_mut(per_tile.max(1))).enumerate().map(|(wy, (b, pt))| (wy, b, pt)).collect();
            par_units(threads, &mut units, |(wy, buf, pt)| {
                for wx in 0..cpt {
                    chunk(p, &tiles[*wy], *wy, wx, z, Dst::Tile(buf), progmax, state, &mut pt[wx * 2..wx * 2 + 2]);
                }
            });
            for (t, b) in tiles.iter().zip(&bufs) {
                let cols = t.cols as usize;
                for (r, src) in b.chunks_exact(cols.max(1)).enumerate() {
                    let o = (t.row_start as usize + r) * l.n_in as usize + t.col_start as usize;
                    wz[o..o + cols].copy_from_slice(src);
                }
            }
        }
        return;
    }
    par_trials2(threads, trials, weff, nw, partials, part_per, |first, n, weff, partials| {
        for z in 0..n {
            let wz = &mut weff[z * nw..][..nw];
            for wy in 0..groups[1] as usize {
                for wx in 0..cpt {
                    let o = (z * ntiles + wy) * per_tile + wx * 2;
                    chunk(p, &tiles[wy], wy, wx, first + z, Dst::Layer(wz), progmax, state, &mut partials[o..o + 2]);
                }
            }
        }
    });
}

/// Where `drift` writes a trial's effective weights: the layer's matrix (indexed by element), or
/// a tile's own row-major buffer.
enum Dst<'a> {
    Layer(&'a mut [f32]),
    Tile(&'a mut [f32]),
}

simd_entry!(
    #[allow(clippy::too_many_arguments)]
    fn chunk(p: &StageParams, t: &TileInfo, wy: usize, wx: usize, trial_local: usize, dst: Dst<'_>, progmax: &[u32], state: &[f32], part: &mut [f32]) => chunk_body
);

/// `common::curve_eval` on eight lanes; the kind is uniform, so each branch is one simple loop.
#[inline(always)]
pub(super) fn curve_x8(c: &Curve, gr_in: &F) -> F {
    let mut out = [0f32; L];
    if c.kind == 0 {
        for i in 0..L {
            let gr = gr_in[i].max(1e-7);
            let log_part = (c.a * lanes::ln(gr) + c.b).clamp(c.lo, c.hi);
            let cubic = ((c.c3 * gr + c.c2) * gr + c.c1) * gr + c.c0;
            out[i] = if gr < c.brk { log_part } else { cubic };
        }
    } else {
        for i in 0..L {
            let gr = gr_in[i].max(1e-7);
            out[i] = (c.a / lanes::pow(gr, c.p).max(c.lo)).min(c.hi);
        }
    }
    out
}

/// `common::device_nu` on eight lanes.
#[inline(always)]
pub(super) fn drift_nu_x8(d: &DeviceParams, g_target: &F, n: &F) -> F {
    if d.nu_knots > 0 {
        // A measured table: the twin's lookup lane by lane.
        return std::array::from_fn(|i| crate::engine::cpu::common::device_nu(d, g_target[i], n[i]));
    }
    let gr: F = std::array::from_fn(|i| g_target[i] / d.g_max);
    let (mu, sg) = (curve_x8(&d.mu_nu, &gr), curve_x8(&d.sigma_nu, &gr));
    std::array::from_fn(|i| d.drift_scale * (mu[i] + sg[i] * n[i]).abs())
}

/// A measured per-level table (the `n` knots of `level_tables` from entry `at`) on eight lanes,
/// the values of the twin's `level_table_eval`: each lane's segment is the count of knots 1..n
/// not above it (one compare per knot and lane, no scan that stops per lane), then the twin's
/// interpolation on that segment. Out of line, so the loops of devices without a table stay as
/// they are.
#[inline(never)]
pub(super) fn level_table_x8(d: &DeviceParams, at: usize, n: usize, gr: &F) -> F {
    let knot = |k: usize| level_knot(d, at, k);
    let mut seg = [0usize; L];
    for k in 1..n {
        let x = knot(k)[0];
        for i in 0..L {
            // As the twin's scan, which passes a knot unless gr lies below it (a NaN passes them all).
            seg[i] += usize::from(gr[i] >= x || gr[i].is_nan());
        }
    }
    let first = knot(0);
    std::array::from_fn(|i| {
        if gr[i] <= first[0] {
            first[1]
        } else if seg[i] + 1 >= n {
            knot(n - 1)[1]
        } else {
            let (lo, hi) = (knot(seg[i]), knot(seg[i] + 1));
            let slope = (hi[1] - lo[1]) / (hi[0] - lo[0]);
            slope * (gr[i] - lo[0]) + lo[1]
        }
    })
}

/// `common::drift_device` on eight lanes.
#[inline(always)]
fn drift_device_x8(d: &DeviceParams, g: &F, nu: &F, log_t_ratio: f32, read_sqrt_log: f32, n_read: &F) -> F {
    let gr: F = std::array::from_fn(|i| g[i] / d.g_max);
    let q = if d.read_knots > 0 { level_table_x8(d, READ_TABLE_AT, (d.read_knots as usize).min(MAX_READ_KNOTS), &gr) } else { curve_x8(&d.q_s, &gr) };
    let mut out = [0f32; L];
    for i in 0..L {
        let gd = g[i] * lanes::exp(-nu[i] * log_t_ratio);
        let sig = q[i] * read_sqrt_log;
        out[i] = (gd + gd.abs() * d.read_scale * sig * n_read[i]).max(0.0);
    }
    out
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn chunk_body(p: &StageParams, t: &TileInfo, wy: usize, wx: usize, trial_local: usize, dst: Dst<'_>, progmax: &[u32], state: &[f32], part: &mut [f32]) {
    // The relaxation paths get a loop of their own: a branch to them inside the PCM loop costs
    // that loop about a tenth of its speed (measured on case (a)).
    if p.dev.drift_path >= 2 || p.dev.pairs > 1 {
        chunk_loop::<true>(p, t, wy, wx, trial_local, dst, progmax, state, part);
    } else {
        chunk_loop::<false>(p, t, wy, wx, trial_local, dst, progmax, state, part);
    }
}

/// One chunk's loop; `RELAX`: the relaxation paths (`drift_path` 2 and 3), else PCM's (0, 1).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn chunk_loop<const RELAX: bool>(
    p: &StageParams,
    t: &TileInfo,
    wy: usize,
    wx: usize,
    trial_local: usize,
    mut dst: Dst<'_>,
    progmax: &[u32],
    state: &[f32],
    part: &mut [f32],
) {
    let l = &p.layer;
    let dev = tile_device(&p.dev, t);
    let d = &dev;
    let io = &p.io;
    let ntiles = (l.tiles_in * l.tiles_out) as usize;
    let nw = (l.n_in * l.n_out) as usize;
    let trial = l.trial_offset + trial_local as u32;
    let key = [l.key0, l.key1];
    let s = d.g_max / t.wmax_norm.max(1e-7);
    let pm = (trial_local * ntiles + wy) * 2;
    let s2 = pair_gmax(d) / f32::from_bits(progmax[pm]).max(1e-7);
    let progmax_pair = [progmax[pm], progmax[pm + 1]];
    let w_read = ctr_word2(l.layer, stream::READ, l.t_index);
    let w_base = ctr_word2(l.layer, stream::GDC_BASE, 0);
    let base_needed = l.gdc_mode == 1 && l.gdc_base != 0;
    let n_elems = t.rows * t.cols;
    let mut sum_read = [0f32; CHUNK as usize];
    let mut sum_base = [0f32; CHUNK as usize];
    // Element index of the chunk's first weight, then stepped along the tile's rows (with
    // per-column GDC the chunk stays within one row: `chunk_elem`).
    let (mut row, mut col) = chunk_elem(l, t, wx as u32, 0);
    // Weights in this chunk: the rest of the tile, or of the row (which then never wraps).
    let in_chunk = if l.alpha_rows > 1 {
        if row < t.rows {
            (t.cols - col).min(CHUNK)
        } else {
            0
        }
    } else {
        n_elems.saturating_sub(wx as u32 * CHUNK).min(CHUNK)
    };
    for g in 0..(CHUNK as usize / L) {
        let mut elem = [0u32; L];
        let mut local = [0u32; L];
        let mut valid = [false; L];
        let mut cols = [0u32; L];
        for i in 0..L {
            if ((g * L + i) as u32) < in_chunk {
                elem[i] = (t.row_start + row) * l.n_in + t.col_start + col;
                local[i] = row * t.cols + col;
                cols[i] = col;
                valid[i] = true;
                col += 1;
                if col == t.cols {
                    col = 0;
                    row += 1;
                }
            }
        }
        if !valid[0] {
            break;
        }
        let nr = normal4_x8(&philox_x8([elem, [trial; L], [w_read; L], [0; L]], key));
        let mut we = [0f32; L];
        let mut wp = [0f32; L];
        if RELAX && d.pairs > 1 {
            let words = 1 + pair_count(d);
            let b = trial_local * words * nw;
            wp = std::array::from_fn(|i| state[b + elem[i] as usize]);
            we = pairs_lanes(p, d, &wp, |k, i| state[b + (1 + k) * nw + elem[i] as usize], s2, &elem, trial, &nr);
        } else if RELAX {
            let b = trial_local * 2 * nw;
            wp = std::array::from_fn(|i| state[b + elem[i] as usize]);
            let word1: F = std::array::from_fn(|i| state[b + nw + elem[i] as usize]);
            we = relaxation_lanes(p, d, &wp, &word1, [s, s2], progmax_pair, [&nr[0], &nr[1]]);
        } else if d.drift_path == 1 {
            let b = trial_local * 4 * nw;
            let word = |k: usize| -> F { std::array::from_fn(|i| state[b + k * nw + elem[i] as usize]) };
            let (gp, gn, nu_pos, nu_neg) = (word(0), word(1), word(2), word(3));
            let a = drift_device_x8(d, &gp, &nu_pos, l.log_t_ratio, l.read_sqrt_log, &nr[0]);
            let c = drift_device_x8(d, &gn, &nu_neg, l.log_t_ratio, l.read_sqrt_log, &nr[1]);
            for i in 0..L {
                wp[i] = (gp[i] - gn[i]) / s;
                we[i] = (a[i] - c[i]) / s;
            }
        } else {
            let b = trial_local * 2 * nw;
            wp = std::array::from_fn(|i| state[b + elem[i] as usize]);
            let nu: F = std::array::from_fn(|i| state[b + nw + elem[i] as usize]);
            let g: F = std::array::from_fn(|i| wp[i].abs() * s2);
            let gf = drift_device_x8(d, &g, &nu, l.log_t_ratio, l.read_sqrt_log, &nr[0]);
            for i in 0..L {
                we[i] = wgsl_sign(wp[i]) * gf[i] / s2;
            }
        }
        match &mut dst {
            Dst::Layer(w) => (0..L).filter(|&i| valid[i]).for_each(|i| w[elem[i] as usize] = we[i]),
            Dst::Tile(w) => (0..L).filter(|&i| valid[i]).for_each(|i| w[local[i] as usize] = we[i]),
        }
        if l.gdc_mode != 0 {
            for i in 0..L {
                sum_read[g * L + i] = if valid[i] { gdc_readout(io, we[i], cols[i], t.cols, nr[2][i]).abs() } else { 0.0 };
            }
            if base_needed {
                let nb = normal2_x8(&philox_x8([elem, [l.programming(trial); L], [w_base; L], [0; L]], key));
                for i in 0..L {
                    sum_base[g * L + i] = if valid[i] { gdc_readout(io, wp[i], cols[i], t.cols, nb[0][i]).abs() } else { 0.0 };
                }
            }
        }
    }
    tree_sum(&mut sum_read);
    tree_sum(&mut sum_base);
    part[0] = sum_read[0];
    if l.gdc_base != 0 {
        part[1] = sum_base[0];
    }
}

/// Several pairs per weight in `drift` (`pairs` > 1), lane by lane through the twin's
/// `drifted_pairs`, kept out of the one-pair loop: `nu(k, i)` is lane i's exponent of pair k,
/// `nr` the lanes' read blocks (`trial`: the global trial the blocks are drawn for).
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn pairs_lanes(p: &StageParams, d: &DeviceParams, wp: &F, nu: impl Fn(usize, usize) -> f32, s2: f32, elem: &[u32; L], trial: u32, nr: &[F; 4]) -> F {
    let l = &p.layer;
    let w_read = ctr_word2(l.layer, stream::READ, l.t_index);
    std::array::from_fn(|i| {
        let nus = std::array::from_fn(|k| if k < pair_count(d) { nu(k, i) } else { 0.0 });
        let n = pair_read_normals(d, [nr[0][i], nr[1][i], nr[2][i], nr[3][i]], [elem[i], trial, w_read], [l.key0, l.key1]);
        drifted_pairs(d, wp[i], nus, s2, l.log_t_ratio, l.read_sqrt_log, n)
    })
}

/// The relaxation paths of `drift` (`drift_path` 2: a redraw about the target in `word1`; 3: the
/// one-device log-time relaxation of the programmed weight `wp`, its trial's range from the two
/// `progmax` words), lane by lane through the twin's functions, kept out of the PCM path's loop.
#[inline(never)]
fn relaxation_lanes(p: &StageParams, d: &DeviceParams, wp: &F, word1: &F, [s, s2]: [f32; 2], progmax: [u32; 2], nr: [&F; 2]) -> F {
    let l = &p.layer;
    if d.drift_path == 2 {
        return std::array::from_fn(|i| relaxed_weight(d, word1[i], s, s2, l.relax_at as usize, [nr[0][i], nr[1][i]]));
    }
    let (lo2, hi2) = (-order_value(progmax[1]), order_value(progmax[0]));
    std::array::from_fn(|i| log_relaxed_weight(d, wp[i], lo2, hi2, l.relax_at, l.log_t_ratio, l.read_sqrt_log, [nr[0][i], nr[1][i]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{DeviceModel, ProgTable, ReadTable};
    use crate::engine::layout::PROG_TABLE_AT;

    /// The lane-parallel lookup gives the twin's `read_q_s` and `sigma_prog` bit for bit: below
    /// the first knot, on every knot, between them, past the last, and for NaN.
    #[test]
    fn level_table_lanes_are_the_twins_lookup() {
        let g = vec![0.0, 1.0, 4.0, 10.0, 18.0, 25.0];
        let read = ReadTable { g: g.clone(), q_s: vec![0.15, 0.1, 0.06, 0.01, 0.03, 0.05] };
        let prog = ProgTable { g: g.clone(), sigma: vec![0.3, 1.4, 0.9, 1.1, 0.6, 0.8] };
        let d = DeviceParams::from(&DeviceModel { read_table: Some(read), prog_table: Some(prog), ..DeviceModel::pcm() });
        let mut grs: Vec<f32> = (0..=300).map(|i| i as f32 / 250.0 - 0.1).collect();
        grs.extend(g.iter().map(|g| (g / 25.0) as f32));
        grs.push(f32::NAN);
        grs.resize(grs.len().div_ceil(L) * L, 0.5);
        for lanes in grs.chunks(L) {
            let gr: F = std::array::from_fn(|i| lanes[i]);
            let q = level_table_x8(&d, READ_TABLE_AT, d.read_knots as usize, &gr);
            // `program` looks σ up at g_T / g_max, as the twin's `sigma_prog` does.
            let g_t: F = std::array::from_fn(|i| gr[i] * d.g_max);
            let s = level_table_x8(&d, PROG_TABLE_AT, d.prog_knots as usize, &std::array::from_fn(|i| g_t[i] / d.g_max));
            for i in 0..L {
                let want = crate::engine::cpu::common::read_q_s(&d, gr[i]);
                assert_eq!(q[i].to_bits(), want.to_bits(), "read, gr = {}: {} against the twin's {want}", gr[i], q[i]);
                let want = crate::engine::cpu::common::sigma_prog(&d, g_t[i]);
                assert_eq!(s[i].to_bits(), want.to_bits(), "programming, gr = {}: {} against the twin's {want}", gr[i], s[i]);
            }
        }
    }
}
