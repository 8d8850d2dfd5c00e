//! The fast CPU kernels' GEMMs: `gemm_abt`, C = A·Bᵀ with B stored as a tile's weights are
//! (n × k, row-major: `mvm`, `mvm_full`, and ΦΦᵀ in `kernel_error`), and `gemm_ab`, C = A·B with
//! B's rows contiguous (Q′S in `attention_out`).
//!
//! With AVX2+FMA, an unpacked register-blocked kernel: one operand is copied once per call into
//! panels of 16 lanes (Bᵀ, or Aᵀ when that moves fewer elements and wastes fewer lanes: a few
//! vectors through a wide tile; `gemm_ab` reads B's rows in place), then 6 rows of the other × 16 lanes of C live in twelve 8-lane
//! accumulators while k runs, over chunks of rows that stay in L1. `matrixmultiply` (the crate,
//! used for the other GEMMs) packs both operands on every call, which for the small tiles of
//! everyday models (k of 9 to 256, n of 8 to 64, a few hundred vectors) cost more than its
//! kernel: 15 % against 12 % of the digits noise budget's run (`perf record`). BENCHMARKS.md
//! has the end-to-end effect.
//!
//! The sums are `matrixmultiply`'s, bit for bit, so no number changes: its FMA kernels (AVX2+FMA
//! and AVX-512, whichever it picks) accumulate each element as a chain of FMAs over k from +0,
//! in blocks of `KC` = 256 (its `S_KC`), each later block's sum added to C in order. This kernel
//! computes the same chains. Without AVX2+FMA the call goes to `matrixmultiply` as before
//! (whose kernels there round the product and the sum apart). `gemm_matches_matrixmultiply` and
//! `gemm_ab_matches_matrixmultiply` check the bits on odd shapes, both orientations and across
//! block edges.

/// `matrixmultiply`'s depth block for f32 (`archparam_defaults::S_KC`).
pub const KC: usize = 256;

/// Per-thread buffers of [`gemm_abt`] and [`gemm_ab`], reused across calls.
#[derive(Default)]
pub struct Scratch {
    /// The transposed operand, in panels.
    panel: Vec<f32>,
    /// Cᵀ, when A is the operand transposed into panels.
    ct: Vec<f32>,
}

/// How B is laid out: element (p, j) of the k × n operand at p·`depth` + j·`col`.
#[derive(Clone, Copy)]
struct Layout {
    depth: usize,
    col: usize,
}

/// What both products share: the empty and zero-depth cases, the bounds every index stays
/// within, and `matrixmultiply` where the CPU lacks AVX2+FMA. `fast` runs the product otherwise.
#[allow(clippy::too_many_arguments)]
fn product(m: usize, k: usize, n: usize, a: &[f32], rsa: usize, b: &[f32], lb: Layout, c: &mut [f32], fast: impl FnOnce(&mut [f32])) {
    if m == 0 || n == 0 {
        return;
    }
    let c = &mut c[..m * n];
    if k == 0 {
        c.fill(0.0);
        return;
    }
    assert!(a.len() >= (m - 1) * rsa + k && b.len() > (k - 1) * lb.depth + (n - 1) * lb.col);
    if super::has_avx2() {
        fast(c);
        return;
    }
    // SAFETY: the assert above covers every element the strides address; C is m x n row-major.
    unsafe {
        matrixmultiply::sgemm(m, k, n, 1.0, a.as_ptr(), rsa as isize, 1, b.as_ptr(), lb.depth as isize, lb.col as isize, 0.0, c.as_mut_ptr(), n as isize, 1);
    }
}

/// `c[i·n + j] = Σ_p a[i·rsa + p] · b[j·rsb + p]` for i < m, j < n (C row-major, m × n).
#[allow(clippy::too_many_arguments)]
pub fn gemm_abt(m: usize, k: usize, n: usize, a: &[f32], rsa: usize, b: &[f32], rsb: usize, c: &mut [f32], scratch: &mut Scratch) {
    product(m, k, n, a, rsa, b, Layout { depth: 1, col: rsb }, c, |c| {
        #[cfg(target_arch = "x86_64")]
        {
            // One operand is transposed into panels of NB lanes, the other broadcast. Which one:
            // the cheaper by lanes computed (padding a panel wastes lanes) plus elements moved
            // (a strided copy costs about as much as NB lanes). Transposing A computes Cᵀ = B·Aᵀ
            // and then C from it; each sum is the same FMA chain either way.
            let lanes = |rows: usize| rows.div_ceil(NB) * NB;
            let keep = lanes(n) * m * k + NB * n * k;
            let swap = lanes(m) * n * k + NB * (m * k + m * n);
            if swap < keep {
                // Every element of Cᵀ is written: grown, never cleared.
                if scratch.ct.len() < n * m {
                    scratch.ct.resize(n * m, 0.0);
                }
                let ct = &mut scratch.ct[..n * m];
                // SAFETY: `product` checked AVX2 and FMA and the bounds of every index.
                unsafe { x86::gemm_abt(n, k, m, b, rsb, a, rsa, ct, &mut scratch.panel) };
                for (i, row) in c.chunks_exact_mut(n).enumerate() {
                    for (j, v) in row.iter_mut().enumerate() {
                        *v = ct[j * m + i];
                    }
                }
            } else {
                // SAFETY: as above.
                unsafe { x86::gemm_abt(m, k, n, a, rsa, b, rsb, c, &mut scratch.panel) };
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (c, scratch);
    });
}

/// `c[i·n + j] = Σ_p a[i·rsa + p] · b[p·rsb + j]` for i < m, j < n (C row-major, m × n): A·B
/// with B's rows contiguous, read in place as the panels (the last one copied when n is not a
/// multiple of 16). An A with contiguous columns (Aᵀ·B) is left to `matrixmultiply`, whose
/// packing suits it: broadcasts a row apart per depth, or a copy of A first, measured slower.
#[allow(clippy::too_many_arguments)]
pub fn gemm_ab(m: usize, k: usize, n: usize, a: &[f32], rsa: usize, b: &[f32], rsb: usize, c: &mut [f32], scratch: &mut Scratch) {
    product(m, k, n, a, rsa, b, Layout { depth: rsb, col: 1 }, c, |c| {
        // SAFETY: `product` checked AVX2 and FMA and the bounds of every index.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            x86::gemm_ab(m, k, n, a, rsa, b, rsb, c, &mut scratch.panel)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (c, scratch);
    });
}

/// Lanes per panel (two 8-lane registers) and rows of the broadcast operand per register block.
#[cfg(target_arch = "x86_64")]
const NB: usize = 16;
#[cfg(target_arch = "x86_64")]
const MB: usize = 6;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{KC, MB, NB};
    use std::arch::x86_64::*;

    /// C = A·Bᵀ, Bᵀ copied into panels of NB columns: panel q holds b[q·NB + j][p] at
    /// q·k·NB + p·NB + j, columns past n zero (their sums are computed and dropped).
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn gemm_abt(m: usize, k: usize, n: usize, a: &[f32], rsa: usize, b: &[f32], rsb: usize, c: &mut [f32], panel: &mut Vec<f32>) {
        let panels = n.div_ceil(NB);
        // Every lane is written below (the padding with zeros): grown, never cleared.
        if panel.len() < panels * k * NB {
            panel.resize(panels * k * NB, 0.0);
        }
        // Written in order, read from up to NB rows of B at once (each row's cache lines serve
        // NB consecutive depths).
        for q in 0..panels {
            let cols = NB.min(n - q * NB);
            let dst = &mut panel[q * k * NB..(q + 1) * k * NB];
            let src = &b[q * NB * rsb..];
            for (p, d) in dst.chunks_exact_mut(NB).enumerate() {
                let (data, pad) = d.split_at_mut(cols);
                for (jj, v) in data.iter_mut().enumerate() {
                    *v = src[jj * rsb + p];
                }
                pad.fill(0.0);
            }
        }
        let panel = &panel[..];
        core(m, k, n, a, rsa, &|q| (panel[q * k * NB..].as_ptr(), NB), c);
    }

    /// C = A·B, B's rows read in place as the panels (depth stride `rsb`); a last panel of
    /// fewer than NB columns is copied, zero-padded, so no load passes the end of a row.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn gemm_ab(m: usize, k: usize, n: usize, a: &[f32], rsa: usize, b: &[f32], rsb: usize, c: &mut [f32], tail: &mut Vec<f32>) {
        let full = n / NB;
        tail.clear();
        if !n.is_multiple_of(NB) {
            tail.resize(k * NB, 0.0);
            for (p, d) in tail.chunks_exact_mut(NB).enumerate() {
                d[..n - full * NB].copy_from_slice(&b[p * rsb + full * NB..p * rsb + n]);
            }
        }
        let tail = &tail[..];
        core(m, k, n, a, rsa, &|q| if q < full { (b[q * NB..].as_ptr(), rsb) } else { (tail.as_ptr(), NB) }, c);
    }

    /// The blocked product: rows of A (element (i, p) at i·rsa + p) in chunks that stay in L1
    /// while every panel passes over them; `panel(q)` gives panel q's first element and its
    /// stride between depths (its NB lanes contiguous).
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn core(m: usize, k: usize, n: usize, a: &[f32], rsa: usize, panel: &dyn Fn(usize) -> (*const f32, usize), c: &mut [f32]) {
        let panels = n.div_ceil(NB);
        // About 16 KB of A per chunk.
        let chunk = (16384 / (4 * k.min(KC))).max(MB) / MB * MB;
        let (ap, cp) = (a.as_ptr(), c.as_mut_ptr());
        for i0 in (0..m).step_by(chunk) {
            let i1 = (i0 + chunk).min(m);
            // Depth blocks outermost, so the chunk's block of A (at most KC depths) stays in L1
            // across the panels.
            for k0 in (0..k).step_by(KC) {
                let kk = KC.min(k - k0);
                // The first depth block stores its sums, each later one adds them
                // (matrixmultiply's C ← 1·AB + 1·C), in depth order for every element.
                let add = k0 > 0;
                for q in 0..panels {
                    let (bq, bs) = panel(q);
                    let cols = NB.min(n - q * NB);
                    let mut i = i0;
                    while i < i1 {
                        let rows = MB.min(i1 - i);
                        let (a, b, c) = (ap.add(i * rsa + k0), bq.add(k0 * bs), cp.add(i * n + q * NB));
                        match rows {
                            6 => block::<6>(a, rsa, kk, b, bs, c, n, cols, add),
                            5 => block::<5>(a, rsa, kk, b, bs, c, n, cols, add),
                            4 => block::<4>(a, rsa, kk, b, bs, c, n, cols, add),
                            3 => block::<3>(a, rsa, kk, b, bs, c, n, cols, add),
                            2 => block::<2>(a, rsa, kk, b, bs, c, n, cols, add),
                            _ => block::<1>(a, rsa, kk, b, bs, c, n, cols, add),
                        }
                        i += rows;
                    }
                }
            }
        }
    }

    /// R rows of A over `kk` depths times one panel (NB lanes, `bs` apart per depth) into R rows
    /// of C (row stride `rsc`, `cols` columns): each sum an FMA chain over the depths from +0,
    /// stored, or added to C when `add`. The caller's bounds cover every address.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn block<const R: usize>(a: *const f32, rsa: usize, kk: usize, b: *const f32, bs: usize, c: *mut f32, rsc: usize, cols: usize, add: bool) {
        let mut lo = [_mm256_setzero_ps(); R];
        let mut hi = [_mm256_setzero_ps(); R];
        for p in 0..kk {
            let b0 = _mm256_loadu_ps(b.add(p * bs));
            let b1 = _mm256_loadu_ps(b.add(p * bs + 8));
            for r in 0..R {
                let x = _mm256_broadcast_ss(&*a.add(r * rsa + p));
                lo[r] = _mm256_fmadd_ps(x, b0, lo[r]);
                hi[r] = _mm256_fmadd_ps(x, b1, hi[r]);
            }
        }
        for r in 0..R {
            let cr = c.add(r * rsc);
            if cols == NB {
                let (mut l, mut h) = (lo[r], hi[r]);
                if add {
                    l = _mm256_add_ps(_mm256_loadu_ps(cr), l);
                    h = _mm256_add_ps(_mm256_loadu_ps(cr.add(8)), h);
                }
                _mm256_storeu_ps(cr, l);
                _mm256_storeu_ps(cr.add(8), h);
            } else {
                let mut sums = [0.0f32; NB];
                _mm256_storeu_ps(sums.as_mut_ptr(), lo[r]);
                _mm256_storeu_ps(sums.as_mut_ptr().add(8), hi[r]);
                for (j, &v) in sums.iter().enumerate().take(cols) {
                    if add {
                        *cr.add(j) += v;
                    } else {
                        *cr.add(j) = v;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(m: usize, k: usize, n: usize, a: &[f32], rsa: usize, b: &[f32], rsb: usize) -> Vec<f32> {
        let mut c = vec![f32::NAN; m * n];
        // SAFETY: the shapes below are built to cover every index.
        unsafe {
            matrixmultiply::sgemm(m, k, n, 1.0, a.as_ptr(), rsa as isize, 1, b.as_ptr(), 1, rsb as isize, 0.0, c.as_mut_ptr(), n as isize, 1);
        }
        c
    }

    /// Values of mixed sign and magnitude, zeros included, so rounding differs by order.
    fn values() -> impl FnMut() -> f32 {
        let mut state = 0x2545_f491_u32;
        move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let v = (state >> 8) as f32 / 16_777_216.0 - 0.5;
            if state.is_multiple_of(17) {
                0.0
            } else {
                v * (1 + state % 7) as f32
            }
        }
    }

    #[test]
    fn gemm_matches_matrixmultiply() {
        let mut next = values();
        let mut panel = Scratch::default();
        // (m, k, n) across the register block (6), the panel (16) and the depth block (256), with
        // Bᵀ in panels (e.g. 450 × 300 × 10) and Aᵀ (e.g. 64 × 513 × 40) on both sides of it.
        for &(m, k, n) in &[
            (1, 1, 1),
            (7, 9, 8),
            (450, 64, 10),
            (13, 64, 64),
            (6, 255, 16),
            (5, 256, 17),
            (11, 257, 33),
            (3, 600, 5),
            (64, 513, 40),
            (16, 70, 17),
            (20, 300, 64),
            (33, 5, 40),
            (450, 300, 10),
        ] {
            let (rsa, rsb) = (k + 3, k + 1);
            let a: Vec<f32> = (0..m * rsa).map(|_| next()).collect();
            let b: Vec<f32> = (0..n * rsb).map(|_| next()).collect();
            let want = reference(m, k, n, &a, rsa, &b, rsb);
            let mut got = vec![f32::NAN; m * n];
            gemm_abt(m, k, n, &a, rsa, &b, rsb, &mut got, &mut panel);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g.to_bits(), w.to_bits(), "m {m} k {k} n {n}: element {i}: {g} against matrixmultiply's {w}");
            }
        }
    }

    #[test]
    fn gemm_ab_matches_matrixmultiply() {
        let mut next = values();
        let mut scratch = Scratch::default();
        // (m, k, n): full and partial panels, depths past 256.
        for &(m, k, n) in &[(1, 1, 1), (128, 256, 65), (256, 128, 65), (7, 300, 16), (13, 9, 33), (64, 600, 48)] {
            let (rsa, rsb) = (k + 3, n + 2);
            let a: Vec<f32> = (0..m * rsa).map(|_| next()).collect();
            let b: Vec<f32> = (0..k * rsb).map(|_| next()).collect();
            let mut want = vec![f32::NAN; m * n];
            // SAFETY: the shapes above cover every index.
            unsafe {
                matrixmultiply::sgemm(m, k, n, 1.0, a.as_ptr(), rsa as isize, 1, b.as_ptr(), rsb as isize, 1, 0.0, want.as_mut_ptr(), n as isize, 1);
            }
            let mut got = vec![f32::NAN; m * n];
            gemm_ab(m, k, n, &a, rsa, &b, rsb, &mut got, &mut scratch);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g.to_bits(), w.to_bits(), "m {m} k {k} n {n}: element {i}: {g} against matrixmultiply's {w}");
            }
        }
    }
}
