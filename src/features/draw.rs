//! Drawing the random projection W (s x d) of a random-feature map, before any kernel-specific scale: the
//! truncated Gaussian of RFF (Rahimi & Recht 2007), the Haar orthogonal blocks of ORF and the repository's
//! unfolded-sign QR variant (Yu et al., "Orthogonal Random Features", NeurIPS 2016; Büchel, Camposampiero
//! et al., Nat. Mach. Intell. 2024, Methods and `hwkeap/utils/misc.py::get_orthogonal_matrix`), and the
//! structured √d'·(D₁H)(D₂H)(D₃H) blocks of SORF. Spec: shared/spec/kernel-attention.md §2 and §5.
//!
//! Every entry is a pure function of (key, row, column, tag): normals come from Philox counters
//! `[row, col / 4, tag, attempt]`, so W for s rows is the first s rows of W for more rows, and nothing
//! depends on thread count or call order.

use crate::rng::{normal4_f64, philox4x32_10};

/// RFF Gaussian entries.
pub(super) const TAG_RFF: u32 = 0x4B10;
/// ORF (Haar) Gaussian rows before Gram-Schmidt.
const TAG_ORF: u32 = 0x4B11;
/// `orf_repo` Gaussian blocks before Householder QR.
const TAG_REPO: u32 = 0x4B12;
/// χ_d row norms of ORF and `orf_repo` (one independent Gaussian d-vector per row).
const TAG_CHI: u32 = 0x4B13;
/// SORF's ±1 diagonals.
const TAG_SIGN: u32 = 0x4B14;

/// Standard normals of row `row`, `d` of them. `trunc`: the normal truncated to [-3, 3] by rejection: an entry
/// outside is redrawn from the same lane of counter `[row, col / 4, tag, attempt]`, attempt = 1, 2, ...
/// (independent draws, so the entry is exactly N(0,1) conditioned on |g| <= 3; variance 0.9733, as the
/// repository's `trunc_normal_`; 0.27 % of entries need a second draw).
pub(super) fn normal_row(key: [u32; 2], tag: u32, row: usize, d: usize, trunc: bool) -> Vec<f64> {
    let mut out = Vec::with_capacity(d);
    for c4 in 0..d.div_ceil(4) {
        let g = normal4_f64(philox4x32_10([row as u32, c4 as u32, tag, 0], key));
        for (lane, &first) in g.iter().enumerate().take(d - 4 * c4) {
            let (mut v, mut attempt) = (first, 1u32);
            while trunc && v.abs() > 3.0 {
                v = normal4_f64(philox4x32_10([row as u32, c4 as u32, tag, attempt], key))[lane];
                attempt += 1;
            }
            out.push(v);
        }
    }
    out
}

/// χ_d-distributed norm of row `row`: the norm of an independent Gaussian d-vector.
fn chi_norm(key: [u32; 2], row: usize, d: usize) -> f64 {
    normal_row(key, TAG_CHI, row, d, false).iter().map(|g| g * g).sum::<f64>().sqrt()
}

/// RFF: i.i.d. (optionally truncated) standard normals, s x d row-major.
pub(super) fn rff(key: [u32; 2], s: usize, d: usize, trunc: bool) -> Vec<f64> {
    (0..s).flat_map(|r| normal_row(key, TAG_RFF, r, d, trunc)).collect()
}

/// ORF, Haar version: blocks of d rows; within a block each Gaussian row is Gram-Schmidt-orthogonalised against
/// the block's earlier rows (two passes of modified Gram-Schmidt, "twice is enough") and normalised, which is
/// the Q of a QR with positive diag(R), i.e. Haar-distributed; then row r is scaled by its own χ_d norm, so
/// each row is marginally N(0, I_d). The last block simply stops at row s (GS of the first rows does not
/// depend on later ones). Untruncated normals: truncation would break the rotation invariance Haar needs.
pub(super) fn orf(key: [u32; 2], s: usize, d: usize) -> Vec<f64> {
    let mut w = vec![0.0; s * d];
    let mut units: Vec<Vec<f64>> = Vec::with_capacity(d);
    for r in 0..s {
        if r % d == 0 {
            units.clear();
        }
        let mut g = normal_row(key, TAG_ORF, r, d, false);
        for _pass in 0..2 {
            for u in &units {
                let dot: f64 = g.iter().zip(u).map(|(a, b)| a * b).sum();
                g.iter_mut().zip(u).for_each(|(a, b)| *a -= dot * b);
            }
        }
        let norm = g.iter().map(|a| a * a).sum::<f64>().sqrt();
        g.iter_mut().for_each(|a| *a /= norm);
        let chi = chi_norm(key, r, d);
        w[r * d..(r + 1) * d].iter_mut().zip(&g).for_each(|(o, u)| *o = chi * u);
        units.push(g);
    }
    w
}

/// ORF as the IBM repository draws it (`torch.linalg.qr(G)` then `q.T`, G truncated to [-3, 3]): block rows are
/// the columns of the Q of a LAPACK-style Householder QR (geqrf + orgqr: R_jj = -sign(G_jj)·‖G[j.., j]‖, no
/// reflection when the sub-column is zero) **without** folding sign(R_jj) into Q. Q is then not Haar: column j
/// is biased towards -e_j (always Q[0][0] < 0), which is harmless for RBF (cos is even) but leaves an error
/// floor for ArcCos. Rows are χ_d-scaled like the Haar version. Only for reproducing the repository's numbers.
pub(super) fn orf_repo(key: [u32; 2], s: usize, d: usize) -> Vec<f64> {
    let mut w = vec![0.0; s * d];
    for b in 0..s.div_ceil(d) {
        let mut a: Vec<f64> = (0..d).flat_map(|i| normal_row(key, TAG_REPO, b * d + i, d, true)).collect();
        let mut q: Vec<f64> = (0..d * d).map(|i| if i / d == i % d { 1.0 } else { 0.0 }).collect();
        for j in 0..d {
            let alpha = a[j * d + j];
            let xnorm = (j + 1..d).map(|i| a[i * d + j] * a[i * d + j]).sum::<f64>().sqrt();
            if xnorm == 0.0 {
                continue; // LAPACK dlarfg: tau = 0, H = I.
            }
            let beta = -alpha.signum() * alpha.hypot(xnorm);
            let tau = (beta - alpha) / beta;
            let v: Vec<f64> = (j..d).map(|i| if i == j { 1.0 } else { a[i * d + j] / (alpha - beta) }).collect();
            for c in j..d {
                let t: f64 = v.iter().enumerate().map(|(p, vp)| vp * a[(j + p) * d + c]).sum();
                v.iter().enumerate().for_each(|(p, vp)| a[(j + p) * d + c] -= tau * vp * t);
            }
            for qrow in q.chunks_exact_mut(d) {
                let t: f64 = v.iter().enumerate().map(|(p, vp)| vp * qrow[j + p]).sum();
                v.iter().enumerate().for_each(|(p, vp)| qrow[j + p] -= tau * t * vp);
            }
        }
        for r in 0..d.min(s - b * d) {
            let row = b * d + r;
            let chi = chi_norm(key, row, d);
            (0..d).for_each(|c| w[row * d + c] = chi * q[c * d + r]);
        }
    }
    w
}

/// In-place normalised Walsh-Hadamard transform of a power-of-two-long vector.
fn fwht(x: &mut [f64]) {
    let n = x.len();
    let mut h = 1;
    while h < n {
        for i in (0..n).step_by(2 * h) {
            for j in i..i + h {
                let (a, b) = (x[j], x[j + h]);
                x[j] = a + b;
                x[j + h] = a - b;
            }
        }
        h *= 2;
    }
    let norm = 1.0 / (n as f64).sqrt();
    x.iter_mut().for_each(|v| *v *= norm);
}

/// SORF: blocks X = √d'·(D₁H)(D₂H)(D₃H) of d' x d' (d' = next power of two >= d, H the normalised Hadamard,
/// D_k random ±1 diagonals), the order of the repository's `get_square_block_fast`; X is orthogonal with rows
/// of norm √d'. Blocks of d' rows are stacked to s rows and cut to the first d columns (the same as zero-padding
/// x to d'); when d is not a power of two the cut rows are no longer orthogonal, which leaves an error floor.
/// Sign of D_k[j] in block b: top bit of lane j % 4 of Philox `[j / 4, b, TAG_SIGN, k]`.
pub(super) fn sorf(key: [u32; 2], s: usize, d: usize) -> Vec<f64> {
    let dp = d.next_power_of_two();
    let mut w = vec![0.0; s * d];
    let mut y = vec![0.0; dp * dp];
    for b in 0..s.div_ceil(dp) {
        let sign = |k: u32, j: usize| if philox4x32_10([(j / 4) as u32, b as u32, TAG_SIGN, k], key)[j % 4] >> 31 == 1 { -1.0 } else { 1.0 };
        // Y = Xᵀ/√d' = H D₃ H D₂ H D₁ (H and D symmetric), built as I·H·D₃·H·D₂·H·D₁ by right multiplications:
        // ·H transforms each row, ·D scales the columns.
        y.iter_mut().enumerate().for_each(|(i, v)| *v = if i / dp == i % dp { 1.0 } else { 0.0 });
        for k in [2u32, 1, 0] {
            let diag: Vec<f64> = (0..dp).map(|j| sign(k, j)).collect();
            for row in y.chunks_exact_mut(dp) {
                fwht(row);
                row.iter_mut().zip(&diag).for_each(|(v, s)| *v *= s);
            }
        }
        let scale = (dp as f64).sqrt();
        for i in 0..dp.min(s - b * dp) {
            (0..d).for_each(|c| w[(b * dp + i) * d + c] = scale * y[c * dp + i]);
        }
    }
    w
}
