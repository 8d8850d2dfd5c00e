//! Random-feature kernel approximation, the digital half of the analog kernel workloads: drawing the projection
//! W that a crossbar holds, the feature maps φ(x) = h(x)·s^(-1/2)·[f(Wx)] from (noisy) projections y = W x,
//! the exact kernels, and the kernel approximation error ‖K − ΦΦᵀ‖_F / ‖K‖_F. Implements Büchel, Camposampiero
//! et al., "Kernel approximation using analogue in-memory computing", Nat. Mach. Intell. 2024, Methods
//! (feature-map table, Eq. for the error), and FAVOR+ (Choromanski et al., "Rethinking attention with
//! Performers", ICLR 2021, Lemma 1 and Eq. 7); spec: shared/spec/kernel-attention.md. [`ridge`] fits the
//! kernel ridge classifier, [`attention`] computes exact and linear attention; `draw` holds the projections.
//!
//! Feature maps (columns of Φ: the s-column blocks in the order listed; Φ has [`KernelSpec::width`] columns):
//!
//! | kernel | exact k(x, y) | f(y) | h(x) |
//! |---|---|---|---|
//! | RBF | exp(−γ‖x−y‖²) | [cos y, sin y], bias 0 | 1 |
//! | ArcCos₀ | (1/π)(π − θ) | Θ(y) (1 for y > 0) | √2 |
//! | ArcCos₁ | (1/π)‖x‖‖y‖(sin θ + (π − θ) cos θ) | max(y, 0) | √2 |
//! | softmax, positive | exp(xᵀy) | [exp(+y), exp(−y)] | 2^(−1/2)·exp(−‖x‖²/2) |
//! | softmax, trig | exp(xᵀy) | [sin y, cos y] | exp(+‖x‖²/2) |
//! | softmax, ReLU | (not estimated: see below) | max(y, 0) | exp(−‖x‖²/2) |
//!
//! With w ~ N(0, I) the first five are unbiased: cos(wᵀx)cos(wᵀy) + sin(wᵀx)sin(wᵀy) = cos(wᵀ(x−y)) whose mean
//! is exp(−‖x−y‖²/2) (so a uniform bias b, the paper's 2π·U, cancels exactly and we use b = 0); the positive
//! pair gives h(x)h(y)·½(E e^{wᵀ(x+y)} + E e^{−wᵀ(x+y)}) = e^{−(‖x‖²+‖y‖²)/2}·e^{‖x+y‖²/2} = e^{xᵀy}; the trig
//! pair gives e^{(‖x‖²+‖y‖²)/2}·E cos(wᵀ(x−y)) = e^{(‖x‖²+‖y‖²)/2}·e^{−‖x−y‖²/2} = e^{xᵀy} (the repository's
//! `funct="trig"` uses sin(2πy), which is not unbiased; we follow the spec). The ReLU variant estimates
//! e^{−(‖x‖²+‖y‖²)/2}·k₁(x, y)/2 (k₁ the ArcCos₁ kernel), a positive similarity that only resembles softmax:
//! its error against exp(xᵀy) does not vanish with s. RFF entries are truncated to [−3, 3] for RBF and ArcCos
//! (the repository's `trunc_normal_`: a floor of ~0.02 in the RBF error), untruncated for softmax (FAVOR+
//! needs exact Gaussian moments). ORF and SORF rows are marginally N(0, I) resp. of fixed norm √d'.

pub mod attention;
mod draw;
pub mod ridge;

use std::f64::consts::PI;

/// Sweep-point word of the projection key (`rng::key(seed, KEY_POINT)`): keeps these draws apart from every
/// trial stream keyed by the same experiment seed.
const KEY_POINT: u32 = 0x4B45_524E;

/// The kernel to approximate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kernel {
    /// exp(−γ‖x−y‖²).
    Rbf,
    /// Arc-cosine kernel of order 0, (1/π)(π − θ).
    Arccos0,
    /// Arc-cosine kernel of order 1, (1/π)‖x‖‖y‖(sin θ + (π − θ) cos θ).
    Arccos1,
    /// The softmax kernel exp(xᵀy) (FAVOR+).
    Softmax,
}

/// How the projection W is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Projection {
    /// Random Fourier features: i.i.d. normals (truncated to [−3, 3] except for softmax).
    Rff,
    /// Orthogonal random features: Haar d x d blocks (Gram-Schmidt), rows scaled by χ_d norms.
    Orf,
    /// The IBM repository's ORF: Householder QR without R's diagonal signs folded into Q (not Haar).
    OrfRepo,
    /// Structured orthogonal features √d'·(D₁H)(D₂H)(D₃H), cut to d columns.
    Sorf,
}

/// Feature pair of the softmax kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SoftmaxFeatures {
    /// FAVOR+ positive features [exp(+y), exp(−y)] (unbiased, positive).
    Positive,
    /// [sin y, cos y] with h = exp(+‖x‖²/2) (unbiased, not positive).
    Trig,
    /// ReLU features with h = exp(−‖x‖²/2) (positive, biased: a different kernel).
    Relu,
}

/// One random-feature approximation: which kernel, how W is drawn, how many rows.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KernelSpec {
    pub kernel: Kernel,
    pub projection: Projection,
    /// Used only for [`Kernel::Softmax`].
    pub softmax_features: SoftmaxFeatures,
    /// RBF only: k = exp(−γ‖x−y‖²).
    pub gamma: f64,
    /// s: rows of the projection.
    pub features: usize,
    /// d: input dimension.
    pub d: usize,
}

impl KernelSpec {
    /// Checks the fields; each message names the field and the fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.features == 0 {
            return Err("kernel.features = 0: must be >= 1 (projection rows s)".into());
        }
        if self.d == 0 {
            return Err("kernel.d = 0: must be >= 1 (input dimension)".into());
        }
        if self.features > u32::MAX as usize || self.d > (u32::MAX as usize) / 4 {
            return Err(format!("kernel.features = {} / kernel.d = {}: too large (counters are 32-bit)", self.features, self.d));
        }
        if self.kernel == Kernel::Rbf && !(self.gamma > 0.0 && self.gamma.is_finite()) {
            return Err(format!("kernel.gamma = {}: the RBF kernel needs a finite gamma > 0 (the paper uses 0.05)", self.gamma));
        }
        Ok(())
    }

    /// Feature width: 2s for `[cos, sin]`, `[exp(+y), exp(-y)]` and `[sin, cos]` pairs, s otherwise.
    pub fn width(&self) -> usize {
        match (self.kernel, self.softmax_features) {
            (Kernel::Rbf, _) | (Kernel::Softmax, SoftmaxFeatures::Positive | SoftmaxFeatures::Trig) => 2 * self.features,
            _ => self.features,
        }
    }

    /// The s x d projection to program (row-major f32), scale included (√(2γ) for RBF; FAVOR+ uses the rows as
    /// drawn: χ_d norms for ORF, √d' for SORF), a pure function of (seed, s, d, projection, kernel). Call
    /// [`validate`](Self::validate) first: an invalid spec gives an empty or non-finite matrix.
    pub fn projection(&self, seed: u64) -> Vec<f32> {
        let (s, d) = (self.features, self.d);
        if s == 0 || d == 0 {
            return Vec::new();
        }
        let key = crate::rng::key(seed, KEY_POINT);
        let w = match self.projection {
            Projection::Rff => draw::rff(key, s, d, self.kernel != Kernel::Softmax),
            Projection::Orf => draw::orf(key, s, d),
            Projection::OrfRepo => draw::orf_repo(key, s, d),
            Projection::Sorf => draw::sorf(key, s, d),
        };
        let scale = if self.kernel == Kernel::Rbf { (2.0 * self.gamma).sqrt() } else { 1.0 };
        w.iter().map(|v| (v * scale) as f32).collect()
    }

    /// Features Phi (n x width, row-major) from projections y = W x (n x s, row-major) and the inputs'
    /// squared norms |x|^2 (n), including h(x) and the s^(-1/2) scale, per the module table (f64 inside, so
    /// h(x)·exp(±y) is formed as one exponent). Panics if the slice lengths do not match n, s.
    pub fn features(&self, y: &[f32], sq_norms: &[f32], n: usize) -> Vec<f32> {
        let s = self.features;
        assert_eq!(y.len(), n * s, "kernel features: y has {} values, expected n * s = {n} * {s}", y.len());
        assert_eq!(sq_norms.len(), n, "kernel features: {} squared norms for n = {n} rows", sq_norms.len());
        let width = self.width();
        let c = 1.0 / (s as f64).sqrt();
        let mut phi = vec![0f32; n * width];
        for ((yr, &sq), out) in y.chunks_exact(s.max(1)).zip(sq_norms).zip(phi.chunks_exact_mut(width.max(1))) {
            let half = sq as f64 / 2.0;
            for (j, &yj) in yr.iter().enumerate() {
                let y = yj as f64;
                let (a, b) = match (self.kernel, self.softmax_features) {
                    (Kernel::Rbf, _) => (c * y.cos(), c * y.sin()),
                    (Kernel::Arccos0, _) => (if y > 0.0 { c * 2f64.sqrt() } else { 0.0 }, 0.0),
                    (Kernel::Arccos1, _) => (c * 2f64.sqrt() * y.max(0.0), 0.0),
                    (Kernel::Softmax, SoftmaxFeatures::Positive) => {
                        let c2 = c * std::f64::consts::FRAC_1_SQRT_2;
                        (c2 * (y - half).exp(), c2 * (-y - half).exp())
                    }
                    (Kernel::Softmax, SoftmaxFeatures::Trig) => (c * half.exp() * y.sin(), c * half.exp() * y.cos()),
                    (Kernel::Softmax, SoftmaxFeatures::Relu) => (c * (-half).exp() * y.max(0.0), 0.0),
                };
                out[j] = a as f32;
                if width == 2 * s {
                    out[s + j] = b as f32;
                }
            }
        }
        phi
    }

    /// Exact kernel matrix k(a_i, b_j) (na x nb, row-major f64) for rows of a (na x d) and b (nb x d); dot
    /// products by one f64 GEMM. A zero vector has θ = π/2 against anything (ArcCos convention).
    pub fn exact(&self, a: &[f32], b: &[f32]) -> Vec<f64> {
        let d = self.d;
        assert!(d > 0 && a.len().is_multiple_of(d) && b.len().is_multiple_of(d), "kernel exact: a ({}) and b ({}) must be rows of d = {d}", a.len(), b.len());
        let (na, nb) = (a.len() / d, b.len() / d);
        let (a64, b64) = (to_f64(a), to_f64(b));
        let (sa, sb) = (sq_norms_f64(&a64, d), sq_norms_f64(&b64, d));
        let mut k = vec![0.0; na * nb];
        dgemm_rm(na, d, nb, 1.0, &a64, false, &b64, true, 0.0, &mut k);
        for (i, row) in k.chunks_exact_mut(nb.max(1)).enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                let dot = *v;
                *v = match self.kernel {
                    Kernel::Rbf => (-self.gamma * (sa[i] + sb[j] - 2.0 * dot).max(0.0)).exp(),
                    Kernel::Arccos0 | Kernel::Arccos1 => {
                        let nn = (sa[i] * sb[j]).sqrt();
                        let cos = if nn > 0.0 { (dot / nn).clamp(-1.0, 1.0) } else { 0.0 };
                        let theta = cos.acos();
                        if self.kernel == Kernel::Arccos0 {
                            (PI - theta) / PI
                        } else {
                            nn * (theta.sin() + (PI - theta) * cos) / PI
                        }
                    }
                    Kernel::Softmax => dot.exp(),
                };
            }
        }
        k
    }
}

/// ||K - Phi Phi^T||_F / ||K||_F for K (n x n) and Phi (n x width). Never allocates more than one n x n
/// (ΦΦᵀ by one f64 GEMM). 0 when both are zero, +inf when only K is.
pub fn kernel_error(k: &[f64], phi: &[f32], n: usize, width: usize) -> f64 {
    assert_eq!(k.len(), n * n, "kernel_error: K has {} values for n = {n}", k.len());
    assert_eq!(phi.len(), n * width, "kernel_error: Phi has {} values for n x width = {n} x {width}", phi.len());
    let p = to_f64(phi);
    let mut g = vec![0.0; n * n];
    dgemm_rm(n, width, n, 1.0, &p, false, &p, true, 0.0, &mut g);
    let num: f64 = k.iter().zip(&g).map(|(a, b)| (a - b) * (a - b)).sum();
    let den: f64 = k.iter().map(|a| a * a).sum();
    ratio(num, den)
}

/// Squared row norms of x (n x d).
pub fn sq_norms(x: &[f32], d: usize) -> Vec<f32> {
    x.chunks_exact(d.max(1)).map(|r| r.iter().map(|&v| v as f64 * v as f64).sum::<f64>() as f32).collect()
}

/// The floating-point projection y = W x for rows of x (n x d) and W (s x d): n x s row-major (f64 GEMM,
/// rounded once), the noiseless reference of the analog MVM.
pub fn project(x: &[f32], w: &[f32], d: usize) -> Vec<f32> {
    assert!(d > 0 && x.len().is_multiple_of(d) && w.len().is_multiple_of(d), "kernel project: x ({}) and w ({}) must be rows of d = {d}", x.len(), w.len());
    let (n, s) = (x.len() / d, w.len() / d);
    let mut y = vec![0.0; n * s];
    dgemm_rm(n, d, s, 1.0, &to_f64(x), false, &to_f64(w), true, 0.0, &mut y);
    y.iter().map(|&v| v as f32).collect()
}

/// A relative error from a sum of squared differences and the reference's squared norm:
/// sqrt(num / den), 0/0 = 0, x/0 = inf.
pub fn ratio_of(num: f64, den: f64) -> f64 {
    ratio(num, den)
}

/// sqrt(num / den) with 0/0 = 0 and x/0 = inf.
pub(crate) fn ratio(num: f64, den: f64) -> f64 {
    if den > 0.0 {
        (num / den).sqrt()
    } else if num == 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}

pub(crate) fn to_f64(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

fn sq_norms_f64(x: &[f64], d: usize) -> Vec<f64> {
    x.chunks_exact(d).map(|r| r.iter().map(|v| v * v).sum()).collect()
}

/// C (m x n) = alpha·op(A)·op(B) + beta·C, all row-major: op(A) is m x k (A stored k x m when `ta`), op(B) is
/// k x n (B stored n x k when `tb`). matrixmultiply's dgemm with the matching strides.
#[allow(clippy::too_many_arguments)]
pub(crate) fn dgemm_rm(m: usize, k: usize, n: usize, alpha: f64, a: &[f64], ta: bool, b: &[f64], tb: bool, beta: f64, c: &mut [f64]) {
    assert!(a.len() == m * k && b.len() == k * n && c.len() == m * n, "dgemm_rm: shapes {m}x{k}x{n} vs {} {} {}", a.len(), b.len(), c.len());
    if m == 0 || n == 0 {
        return;
    }
    let (rsa, csa) = if ta { (1, m as isize) } else { (k as isize, 1) };
    let (rsb, csb) = if tb { (1, k as isize) } else { (n as isize, 1) };
    // SAFETY: the asserts above bound every index the strides reach; c does not alias a or b.
    unsafe { matrixmultiply::dgemm(m, k, n, alpha, a.as_ptr(), rsa, csa, b.as_ptr(), rsb, csb, beta, c.as_mut_ptr(), n as isize, 1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kernel: Kernel, projection: Projection, features: usize, d: usize) -> KernelSpec {
        KernelSpec { kernel, projection, softmax_features: SoftmaxFeatures::Positive, gamma: 0.5 / d as f64, features, d }
    }

    /// Mean kernel error over `seeds` projections for inputs x (n x d).
    fn mean_error(sp: &KernelSpec, x: &[f32], seeds: u64) -> f64 {
        let (n, k) = (x.len() / sp.d, sp.exact(x, x));
        let sq = sq_norms(x, sp.d);
        let total: f64 = (0..seeds).map(|seed| kernel_error(&k, &sp.features(&project(x, &sp.projection(seed), sp.d), &sq, n), n, sp.width())).sum();
        total / seeds as f64
    }

    /// For an unbiased map, K̂ − K is a mean over s/d independent blocks (or s i.i.d. rows), so E‖K − K̂‖²_F ∝ 1/s
    /// and the error ratio between s = d and s = 16d is √16 = 4. SORF rows have the fixed norm √d' instead of χ_d
    /// norms, which biases RBF by O(1/d) (Yu et al. 2016): with err² = v/s + f² the floor f (measured at s = 256d:
    /// 0.108 at d = 8, 0.016 at d = 64, 0.0087 at d = 128) predicts a ratio of 2.1 at d = 8 and 3.6 at d = 128, so
    /// RBF/SORF runs at d = 128 (ratio 3.71 over 64 seeds). FAVOR+ features are heavy-tailed (exp of a Gaussian):
    /// ‖x‖² ≈ 0.25. (ArcCos₀ only sees row directions.)
    ///
    /// Why it cannot flake: the ratio of the mean errors over N seeds has a relative spread σ₁/√N, σ₁ the spread of
    /// one seed's ratio, measured over 64 seeds per case: ≤ 0.56 (softmax/ORF/positive, the heaviest-tailed) at
    /// d = 8, 0.034 for RBF/SORF at d = 128. With N = 400 resp. 16 that is ≤ 0.028 resp. 0.0085 (σ ≤ 0.12 in the
    /// ratio), so [3.1, 4.9] lies ≥ 5.5σ from every case's mean ratio (3.69-4.16 over 64 and 400 seeds): p < 4e-8
    /// per case, < 1e-6 for the ten, whatever the random streams. A wrong scaling (error ∝ s^(−1/4): ratio 2) or a floor (ratio ~1) fails it.
    #[test]
    fn fp_error_falls_like_inverse_sqrt_s() {
        const RATIO: std::ops::RangeInclusive<f64> = 3.1..=4.9;
        let n = 64;
        let data = |d: usize, sq: f32| -> Vec<f32> { attention::synthetic_qkv(1, n, d, (sq / d as f32).sqrt() as f64, 7).0 };
        let (unit, small, wide) = (data(8, 8.0), data(8, 0.25), data(128, 128.0));
        let (pos, trig) = (SoftmaxFeatures::Positive, SoftmaxFeatures::Trig);
        let cases = [
            (Kernel::Rbf, Projection::Rff, pos, &unit, 400),
            (Kernel::Rbf, Projection::Orf, pos, &unit, 400),
            (Kernel::Rbf, Projection::Sorf, pos, &wide, 16),
            (Kernel::Arccos0, Projection::Rff, pos, &unit, 400),
            (Kernel::Arccos0, Projection::Orf, pos, &unit, 400),
            (Kernel::Arccos0, Projection::Sorf, pos, &unit, 400),
            (Kernel::Arccos1, Projection::Orf, pos, &unit, 400),
            (Kernel::Softmax, Projection::Orf, pos, &small, 400),
            (Kernel::Softmax, Projection::Rff, pos, &small, 400),
            (Kernel::Softmax, Projection::Orf, trig, &small, 400),
        ];
        for (kernel, projection, softmax_features, x, seeds) in cases {
            let d = x.len() / n;
            let mut sp = KernelSpec { softmax_features, ..spec(kernel, projection, d, d) };
            let e1 = mean_error(&sp, x, seeds);
            sp.features = 16 * d;
            let e16 = mean_error(&sp, x, seeds);
            let r = e1 / e16;
            assert!(
                RATIO.contains(&r),
                "{kernel:?}/{projection:?}/{softmax_features:?}: error {e1:.4} at s=d, {e16:.4} at s=16d, ratio {r:.3} (want {RATIO:?})"
            );
        }
    }

    #[test]
    fn orthogonal_blocks() {
        let d = 8;
        for projection in [Projection::Orf, Projection::OrfRepo, Projection::Sorf] {
            let sp = spec(Kernel::Rbf, projection, 2 * d + 3, d);
            let w = sp.projection(3);
            let row = |r: usize| w[r * d..(r + 1) * d].iter().map(|&v| v as f64).collect::<Vec<_>>();
            for r in 0..sp.features {
                for q in (r - r % d)..r {
                    let (a, b) = (row(r), row(q));
                    let dot: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
                    let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
                    let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
                    assert!((dot / (na * nb)).abs() < 1e-5, "{projection:?}: rows {q}, {r} cos = {}", dot / (na * nb));
                }
            }
        }
        // SORF rows have norm exactly √d when d is a power of two; RFF entries stay in [−3, 3].
        let w = spec(Kernel::Arccos0, Projection::Sorf, 20, d).projection(1);
        assert!(w.chunks_exact(d).all(|r| (r.iter().map(|v| v * v).sum::<f32>() - d as f32).abs() < 1e-4));
        assert!(spec(Kernel::Arccos0, Projection::Rff, 500, d).projection(1).iter().all(|v| v.abs() <= 3.0));
        // The repository's unfolded Householder sign: the first row of every block points away from e_1.
        let w = spec(Kernel::Arccos0, Projection::OrfRepo, 8 * d, d).projection(5);
        assert!((0..8).all(|b| w[b * d * d] < 0.0));
    }

    #[test]
    fn exact_kernels_on_hand_points() {
        let rbf = KernelSpec { gamma: 0.5, ..spec(Kernel::Rbf, Projection::Rff, 1, 2) };
        let k = rbf.exact(&[1.0, 2.0, 0.0, 1.0], &[1.0, 2.0, 1.0, 1.0]);
        assert!((k[0] - 1.0).abs() < 1e-12 && (k[1] - (-0.5f64).exp()).abs() < 1e-12 && (k[2] - (-1.0f64).exp()).abs() < 1e-12);
        let a0 = spec(Kernel::Arccos0, Projection::Rff, 1, 2).exact(&[1.0, 0.0], &[0.0, 3.0, 2.0, 0.0, -1.0, 0.0]);
        assert!((a0[0] - 0.5).abs() < 1e-12 && (a0[1] - 1.0).abs() < 1e-12 && a0[2].abs() < 1e-12);
        let a1 = spec(Kernel::Arccos1, Projection::Rff, 1, 2).exact(&[1.0, 0.0], &[0.0, 2.0, 3.0, 0.0]);
        assert!((a1[0] - 2.0 / PI).abs() < 1e-12 && (a1[1] - 3.0).abs() < 1e-12);
        let sm = spec(Kernel::Softmax, Projection::Orf, 1, 2).exact(&[0.5, -1.0], &[2.0, 0.25]);
        assert!((sm[0] - 0.75f64.exp()).abs() < 1e-12);
    }

    #[test]
    fn validate_names_the_field() {
        let ok = spec(Kernel::Rbf, Projection::Orf, 16, 8);
        assert!(ok.validate().is_ok());
        assert!(KernelSpec { features: 0, ..ok.clone() }.validate().unwrap_err().contains("kernel.features = 0"));
        assert!(KernelSpec { d: 0, ..ok.clone() }.validate().unwrap_err().contains("kernel.d = 0"));
        for gamma in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(KernelSpec { gamma, ..ok.clone() }.validate().unwrap_err().contains("kernel.gamma"));
        }
        assert!(KernelSpec { gamma: 0.0, ..spec(Kernel::Arccos0, Projection::Orf, 16, 8) }.validate().is_ok());
        let json = serde_json::to_string(&KernelSpec { projection: Projection::OrfRepo, ..ok }).unwrap();
        assert!(json.contains("\"orf_repo\"") && json.contains("\"rbf\"") && json.contains("\"positive\""));
    }

    #[test]
    fn projection_is_reproducible() {
        for projection in [Projection::Rff, Projection::Orf, Projection::OrfRepo, Projection::Sorf] {
            let sp = spec(Kernel::Rbf, projection, 24, 12);
            let w = sp.projection(11);
            assert_eq!(w.len(), 24 * 12);
            assert_eq!(w, sp.projection(11), "{projection:?}");
            assert_ne!(w, sp.projection(12), "{projection:?}");
        }
    }

    #[test]
    fn widths_and_relu_features() {
        let mut sp = spec(Kernel::Softmax, Projection::Orf, 10, 4);
        assert_eq!(sp.width(), 20);
        sp.softmax_features = SoftmaxFeatures::Relu;
        assert_eq!((sp.width(), spec(Kernel::Arccos1, Projection::Rff, 10, 4).width(), spec(Kernel::Rbf, Projection::Rff, 10, 4).width()), (10, 10, 20));
        let phi = sp.features(&[1.0, -1.0, 0.5, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0], &[2.0], 1);
        assert!((phi[0] as f64 - (-1f64).exp() / 10f64.sqrt()).abs() < 1e-7 && phi[1] == 0.0);
    }
}
