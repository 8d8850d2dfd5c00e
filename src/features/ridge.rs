//! Kernel ridge classification on random features (Büchel, Camposampiero et al., Nat. Mach. Intell. 2024,
//! Methods: W_out = (ΦᵀΦ + αI)⁻¹ Φᵀ y with α = 0.5 and an intercept; spec §3). One-vs-all regression onto
//! one-hot targets, prediction by argmax. The intercept is left unpenalised: features and targets are centred,
//! W = (Φ_cᵀΦ_c + αI)⁻¹ Φ_cᵀ Y_c and b = ȳ − Wᵀμ, the exact minimiser of ‖Y − 1bᵀ − ΦW‖²_F + α‖W‖²_F.
//! The normal matrix is accumulated in f64 by GEMM over row chunks and solved by a hand-written blocked
//! Cholesky factorisation (right-looking, the trailing update one GEMM per block).

use super::{dgemm_rm, to_f64};

/// Rows of Φ converted to f64 at a time (bounds the f64 copy to CHUNK x width).
const CHUNK: usize = 512;
/// Cholesky block size.
const NB: usize = 64;

/// A fitted ridge classifier: scores = Φ w + intercept, w is width x classes row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Ridge {
    pub width: usize,
    pub classes: usize,
    pub w: Vec<f64>,
    pub intercept: Vec<f64>,
}

impl Ridge {
    /// Fits on features Φ (n x width, row-major) and labels in 0..classes with penalty alpha > 0. Errors name
    /// the problem: shapes, labels out of range, non-finite features, alpha <= 0, a matrix that is not SPD.
    pub fn fit(phi: &[f32], labels: &[u32], width: usize, classes: usize, alpha: f64) -> Result<Ridge, String> {
        if width == 0 || classes == 0 {
            return Err(format!("ridge: width = {width}, classes = {classes}: both must be >= 1"));
        }
        if !(alpha > 0.0 && alpha.is_finite()) {
            return Err(format!("ridge: alpha = {alpha}: must be finite and > 0 (the paper uses 0.5)"));
        }
        let n = labels.len();
        if n == 0 || phi.len() != n * width {
            return Err(format!("ridge: {} feature values for {n} labels of width {width}: need n >= 1 and n * width values", phi.len()));
        }
        if let Some(l) = labels.iter().find(|&&l| l as usize >= classes) {
            return Err(format!("ridge: label {l} out of range for classes = {classes}"));
        }
        if let Some(i) = phi.iter().position(|v| !v.is_finite()) {
            return Err(format!("ridge: feature {} of row {} is {}: features must be finite", i % width, i / width, phi[i]));
        }
        let mut mu = vec![0.0; width];
        phi.chunks_exact(width).for_each(|r| mu.iter_mut().zip(r).for_each(|(m, &v)| *m += v as f64));
        mu.iter_mut().for_each(|m| *m /= n as f64);
        let mut ybar = vec![0.0; classes];
        labels.iter().for_each(|&l| ybar[l as usize] += 1.0 / n as f64);

        // A = Φ_cᵀΦ_c + αI, B = Φ_cᵀY_c (Y_c = one-hot − ȳ, so B = Σ_{i in class c} φ_c,i − ȳ_c Σ_i φ_c,i).
        let mut a = vec![0.0; width * width];
        let mut b = vec![0.0; width * classes];
        let mut colsum = vec![0.0; width];
        for (rows, labs) in phi.chunks(CHUNK * width).zip(labels.chunks(CHUNK)) {
            let mut xc = to_f64(rows);
            xc.chunks_exact_mut(width).zip(labs).for_each(|(r, &l)| {
                r.iter_mut().zip(&mu).for_each(|(v, m)| *v -= m);
                r.iter().enumerate().for_each(|(p, v)| {
                    b[p * classes + l as usize] += v;
                    colsum[p] += v;
                });
            });
            dgemm_rm(width, labs.len(), width, 1.0, &xc, true, &xc, false, 1.0, &mut a);
        }
        (0..width).for_each(|p| (0..classes).for_each(|c| b[p * classes + c] -= ybar[c] * colsum[p]));
        (0..width).for_each(|p| a[p * width + p] += alpha);

        cholesky(&mut a, width).map_err(|(j, v)| {
            format!("ridge: Phi^T Phi + alpha I is not positive definite at pivot {j} (value {v:e}); alpha = {alpha} is too small for the features' scale")
        })?;
        // Forward L z = B, then backward Lᵀ w = z, all classes at once.
        for i in 0..width {
            for p in 0..i {
                let l = a[i * width + p];
                (0..classes).for_each(|c| b[i * classes + c] -= l * b[p * classes + c]);
            }
            (0..classes).for_each(|c| b[i * classes + c] /= a[i * width + i]);
        }
        for i in (0..width).rev() {
            for p in i + 1..width {
                let l = a[p * width + i];
                (0..classes).for_each(|c| b[i * classes + c] -= l * b[p * classes + c]);
            }
            (0..classes).for_each(|c| b[i * classes + c] /= a[i * width + i]);
        }
        let intercept = (0..classes).map(|c| ybar[c] - (0..width).map(|p| mu[p] * b[p * classes + c]).sum::<f64>()).collect();
        Ok(Ridge { width, classes, w: b, intercept })
    }

    /// Class scores Φ w + intercept (n x classes, f64), by GEMM over row chunks.
    pub fn scores(&self, phi: &[f32]) -> Vec<f64> {
        assert_eq!(phi.len() % self.width, 0, "ridge: {} feature values are not rows of width {}", phi.len(), self.width);
        let mut out = Vec::with_capacity(phi.len() / self.width * self.classes);
        for rows in phi.chunks(CHUNK * self.width) {
            let m = rows.len() / self.width;
            let mut s: Vec<f64> = (0..m).flat_map(|_| self.intercept.iter().copied()).collect();
            dgemm_rm(m, self.width, self.classes, 1.0, &to_f64(rows), false, &self.w, false, 1.0, &mut s);
            out.extend(s);
        }
        out
    }

    /// The argmax class of each row (the lowest index on ties).
    pub fn predict(&self, phi: &[f32]) -> Vec<u32> {
        let s = self.scores(phi);
        s.chunks_exact(self.classes).map(|r| (0..r.len()).fold(0, |best, c| if r[c] > r[best] { c } else { best }) as u32).collect()
    }

    /// Fraction of rows whose argmax equals the label (NaN for no rows).
    pub fn accuracy(&self, phi: &[f32], labels: &[u32]) -> f64 {
        let pred = self.predict(phi);
        assert_eq!(pred.len(), labels.len(), "ridge accuracy: {} rows of features for {} labels", pred.len(), labels.len());
        pred.iter().zip(labels).filter(|(p, l)| p == l).count() as f64 / labels.len() as f64
    }
}

/// In-place lower Cholesky factor of the symmetric w x w row-major `a` (the lower triangle becomes L; the strict
/// upper triangle is scratch). Blocks of NB columns: the block's columns are finished left-looking within the
/// block (whole column below the diagonal), then the trailing matrix gets A₂₂ −= L₂₁L₂₁ᵀ in one GEMM.
/// Err((pivot, value)) when a pivot is not > 0.
fn cholesky(a: &mut [f64], w: usize) -> Result<(), (usize, f64)> {
    let mut k0 = 0;
    while k0 < w {
        let k1 = (k0 + NB).min(w);
        for j in k0..k1 {
            let djj = a[j * w + j] - (k0..j).map(|p| a[j * w + p] * a[j * w + p]).sum::<f64>();
            if !(djj > 0.0 && djj.is_finite()) {
                return Err((j, djj));
            }
            let ljj = djj.sqrt();
            a[j * w + j] = ljj;
            for i in j + 1..w {
                let v = a[i * w + j] - (k0..j).map(|p| a[i * w + p] * a[j * w + p]).sum::<f64>();
                a[i * w + j] = v / ljj;
            }
        }
        if k1 < w {
            let (m, kb) = (w - k1, k1 - k0);
            // SAFETY: L₂₁ (rows k1.., columns k0..k1) and the updated A₂₂ (rows k1.., columns k1..) are disjoint
            // elements of `a`, and every index the strides reach is < w * w. Both pointers come from one as_mut_ptr.
            unsafe {
                let base = a.as_mut_ptr();
                let l21 = base.add(k1 * w + k0) as *const f64;
                matrixmultiply::dgemm(m, kb, m, -1.0, l21, w as isize, 1, l21, 1, w as isize, 1.0, base.add(k1 * w + k1), w as isize, 1);
            }
        }
        k0 = k1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::{attention::synthetic_qkv, project, sq_norms, Kernel, KernelSpec, Projection, SoftmaxFeatures};

    /// The fit is the minimiser: the gradients of ‖Y − 1bᵀ − ΦW‖² + α‖W‖² in W and b vanish. width 150 > 2·NB
    /// exercises the blocked Cholesky path (two trailing GEMM updates).
    #[test]
    fn fit_zeroes_the_gradient() {
        let (n, width, classes, alpha) = (200, 150, 3, 0.5);
        let phi: Vec<f32> = synthetic_qkv(1, n, width, 1.0, 3).0.iter().map(|v| v + 0.3).collect();
        let labels: Vec<u32> = (0..n as u32).map(|i| (i * 7 + i / 5) % classes as u32).collect();
        let r = Ridge::fit(&phi, &labels, width, classes, alpha).unwrap();
        let scores = r.scores(&phi);
        let resid: Vec<f64> = (0..n * classes).map(|i| scores[i] - if labels[i / classes] as usize == i % classes { 1.0 } else { 0.0 }).collect();
        for c in 0..classes {
            let gb: f64 = (0..n).map(|i| resid[i * classes + c]).sum();
            assert!(gb.abs() < 1e-9, "d/db_{c} = {gb}");
            for p in 0..width {
                let gw = (0..n).map(|i| phi[i * width + p] as f64 * resid[i * classes + c]).sum::<f64>() + alpha * r.w[p * classes + c];
                assert!(gw.abs() < 1e-8, "d/dW[{p},{c}] = {gw}");
            }
        }
    }

    /// Three well-separated blobs in d = 8 through RBF ORF features: perfect held-out accuracy.
    #[test]
    fn separable_blobs_are_classified() {
        let (n, d) = (90, 8);
        let noise = synthetic_qkv(1, 2 * n, d, 0.3, 9).0;
        let x: Vec<f32> = noise.iter().enumerate().map(|(i, v)| v + if (i / d) % 3 == i % d % 3 && i % d < 3 { 3.0 } else { 0.0 }).collect();
        let labels: Vec<u32> = (0..2 * n as u32).map(|i| i % 3).collect();
        let sp = KernelSpec { kernel: Kernel::Rbf, projection: Projection::Orf, softmax_features: SoftmaxFeatures::Positive, gamma: 0.1, features: 64, d };
        let phi = sp.features(&project(&x, &sp.projection(1), d), &sq_norms(&x, d), 2 * n);
        let w = sp.width();
        let r = Ridge::fit(&phi[..n * w], &labels[..n], w, 3, 0.5).unwrap();
        assert_eq!(r.accuracy(&phi[n * w..], &labels[n..]), 1.0);
    }

    #[test]
    fn errors_name_the_problem() {
        let phi = [1.0f32, 2.0, 3.0, 4.0];
        assert!(Ridge::fit(&phi, &[0, 1], 2, 2, 0.0).unwrap_err().contains("alpha = 0"));
        assert!(Ridge::fit(&phi, &[0, 2], 2, 2, 0.5).unwrap_err().contains("label 2"));
        assert!(Ridge::fit(&phi, &[0], 2, 2, 0.5).unwrap_err().contains("4 feature values"));
        assert!(Ridge::fit(&[f32::NAN, 0.0], &[0], 2, 2, 0.5).unwrap_err().contains("finite"));
        assert!(cholesky(&mut [1.0, 2.0, 2.0, 1.0], 2).is_err());
    }
}
