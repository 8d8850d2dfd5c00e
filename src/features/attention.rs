//! Exact softmax attention and its kernel-approximated linear form (Choromanski et al., "Rethinking attention
//! with Performers", ICLR 2021, Eq. 4-5 and §2.6 for the causal prefix sums; Büchel, Camposampiero et al., Nat.
//! Mach. Intell. 2024, attention study; spec §3): Â = D⁻¹ Q′(K′ᵀV), D = diag(Q′(K′ᵀ1)), with Q′ = φ(Q·d^(−1/4)),
//! K′ = φ(K·d^(−1/4)) from [`super::KernelSpec::features`] (the caller scales Q and K by d^(−1/4) before
//! projecting, so that exp(q′ᵀk′) = exp(qᵀk/√d)), compared with softmax(QKᵀ/√d)V on the raw Q and K.
//! With non-positive features (trig) D can be near zero and Â blows up: that is the estimator, not a bug.

use super::{dgemm_rm, ratio, to_f64};
use crate::rng::{key, normal4_f64, philox4x32_10};

/// Rows of scores held at once by [`exact_attention`].
const BLOCK: usize = 64;
/// Sweep-point word of the synthetic Q, K, V key.
const QKV_POINT: u32 = 0x5141_4B56;

/// Exact softmax(Q K^T / sqrt(d)) V for one head: q, k (n x d), v (n x dv); causal masks j > i. f64 accumulation,
/// O(n^2 d) in blocks of rows (never more than a block x n scores at once), each row stabilised by its max.
pub fn exact_attention(q: &[f32], k: &[f32], v: &[f32], n: usize, d: usize, dv: usize, causal: bool) -> Vec<f32> {
    assert!(
        d > 0 && q.len() == n * d && k.len() == n * d && v.len() == n * dv,
        "exact_attention: shapes q {}, k {}, v {} for n {n}, d {d}, dv {dv}",
        q.len(),
        k.len(),
        v.len()
    );
    let (q, k, v) = (to_f64(q), to_f64(k), to_f64(v));
    let scale = 1.0 / (d as f64).sqrt();
    let mut out = vec![0f32; n * dv];
    let (mut p, mut o) = (vec![0.0; BLOCK * n], vec![0.0; BLOCK * dv]);
    for i0 in (0..n).step_by(BLOCK) {
        let i1 = (i0 + BLOCK).min(n);
        let (b, cols) = (i1 - i0, if causal { i1 } else { n });
        let p = &mut p[..b * cols];
        dgemm_rm(b, d, cols, scale, &q[i0 * d..i1 * d], false, &k[..cols * d], true, 0.0, p);
        let mut sums = vec![0.0; b];
        for (r, row) in p.chunks_exact_mut(cols).enumerate() {
            let lim = if causal { i0 + r + 1 } else { n };
            let m = row[..lim].iter().fold(f64::NEG_INFINITY, |a, &x| a.max(x));
            row[..lim].iter_mut().for_each(|x| *x = (*x - m).exp());
            row[lim..].iter_mut().for_each(|x| *x = 0.0);
            sums[r] = row[..lim].iter().sum();
        }
        dgemm_rm(b, cols, dv, 1.0, p, false, &v[..cols * dv], false, 0.0, &mut o[..b * dv]);
        for r in 0..b {
            (0..dv).for_each(|c| out[(i0 + r) * dv + c] = (o[r * dv + c] / sums[r]) as f32);
        }
    }
    out
}

/// Linear attention D^-1 Q'(K'^T V) with D = diag(Q'(K'^T 1)); causal: prefix sums over positions (O(n * width * dv)).
/// qf, kf: n x width features. f64 state; the non-causal products are GEMMs.
pub fn linear_attention(qf: &[f32], kf: &[f32], v: &[f32], n: usize, width: usize, dv: usize, causal: bool) -> Vec<f32> {
    check(qf, kf, v, n, width, dv);
    let mut out = vec![0f32; n * dv];
    if !causal {
        let (q, k, v) = (to_f64(qf), to_f64(kf), to_f64(v));
        let mut kv = vec![0.0; width * dv];
        dgemm_rm(width, n, dv, 1.0, &k, true, &v, false, 0.0, &mut kv);
        let mut z = vec![0.0; width];
        k.chunks_exact(width.max(1)).for_each(|r| z.iter_mut().zip(r).for_each(|(a, b)| *a += b));
        let mut num = vec![0.0; n * dv];
        dgemm_rm(n, width, dv, 1.0, &q, false, &kv, false, 0.0, &mut num);
        for i in 0..n {
            let den: f64 = q[i * width..(i + 1) * width].iter().zip(&z).map(|(a, b)| a * b).sum();
            (0..dv).for_each(|c| out[i * dv + c] = (num[i * dv + c] / den) as f32);
        }
        return out;
    }
    let (mut s, mut z) = (vec![0.0; width * dv], vec![0.0; width]);
    for i in 0..n {
        let (kr, vr) = (&kf[i * width..(i + 1) * width], &v[i * dv..(i + 1) * dv]);
        for (p, &kp) in kr.iter().enumerate() {
            z[p] += kp as f64;
            s[p * dv..(p + 1) * dv].iter_mut().zip(vr).for_each(|(a, &b)| *a += kp as f64 * b as f64);
        }
        let (mut num, mut den) = (vec![0.0; dv], 0.0);
        for (p, &qp) in qf[i * width..(i + 1) * width].iter().enumerate() {
            den += qp as f64 * z[p];
            num.iter_mut().zip(&s[p * dv..(p + 1) * dv]).for_each(|(a, b)| *a += qp as f64 * b);
        }
        (0..dv).for_each(|c| out[i * dv + c] = (num[c] / den) as f32);
    }
    out
}

/// Direct O(n^2) linear attention with an explicit feature map (the test oracle for linear_attention):
/// out_i = Σ_j (q′_i·k′_j) v_j / Σ_j q′_i·k′_j over j (j <= i when causal).
pub fn linear_attention_direct(qf: &[f32], kf: &[f32], v: &[f32], n: usize, width: usize, dv: usize, causal: bool) -> Vec<f32> {
    check(qf, kf, v, n, width, dv);
    let mut out = vec![0f32; n * dv];
    for i in 0..n {
        let (mut num, mut den) = (vec![0.0; dv], 0.0);
        for j in 0..if causal { i + 1 } else { n } {
            let a: f64 = qf[i * width..(i + 1) * width].iter().zip(&kf[j * width..(j + 1) * width]).map(|(&x, &y)| x as f64 * y as f64).sum();
            den += a;
            num.iter_mut().zip(&v[j * dv..(j + 1) * dv]).for_each(|(o, &x)| *o += a * x as f64);
        }
        (0..dv).for_each(|c| out[i * dv + c] = (num[c] / den) as f32);
    }
    out
}

fn check(qf: &[f32], kf: &[f32], v: &[f32], n: usize, width: usize, dv: usize) {
    assert!(
        qf.len() == n * width && kf.len() == n * width && v.len() == n * dv,
        "linear attention: shapes q' {}, k' {}, v {} for n {n}, width {width}, dv {dv}",
        qf.len(),
        kf.len(),
        v.len()
    );
}

/// ||a - b||_F / ||a||_F in f64 (0 when both are zero, inf when only the reference is).
pub fn rel_error(reference: &[f32], approx: &[f32]) -> f64 {
    assert_eq!(reference.len(), approx.len(), "rel_error: {} reference values, {} approximate", reference.len(), approx.len());
    let num: f64 = reference.iter().zip(approx).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum();
    ratio(num, reference.iter().map(|&a| (a as f64).powi(2)).sum())
}

/// Documented synthetic Q, K, V recipe: Q, K ~ N(0, qk_std^2), V ~ N(0, 1), Philox normals from `seed`, heads x n x d
/// each (row-major, head-major). Element e of tensor t (0 = Q, 1 = K, 2 = V) is lane e % 4 of
/// `normal4_f64(philox4x32_10([e / 4 (low 32 bits), e / 4 (high 32 bits), 0x5100 + t, 0], rng::key(seed, 0x5141_4B56)))`.
pub fn synthetic_qkv(heads: usize, n: usize, d: usize, qk_std: f64, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let len = heads * n * d;
    let k = key(seed, QKV_POINT);
    let draw = |t: u32, std: f64| -> Vec<f32> {
        (0..len.div_ceil(4))
            .flat_map(|b| normal4_f64(philox4x32_10([b as u32, (b as u64 >> 32) as u32, 0x5100 + t, 0], k)))
            .take(len)
            .map(|g| (g * std) as f32)
            .collect()
    };
    (draw(0, qk_std), draw(1, qk_std), draw(2, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::{project, sq_norms, Kernel, KernelSpec, Projection, SoftmaxFeatures};

    #[test]
    fn linear_matches_direct() {
        let (n, width, dv) = (150, 24, 8);
        let (q, k, _) = synthetic_qkv(1, n, width, 1.0, 4);
        let v = synthetic_qkv(1, n, dv, 1.0, 4).2;
        let (qf, kf): (Vec<f32>, Vec<f32>) = (q.iter().map(|x| x.exp()).collect(), k.iter().map(|x| x.exp()).collect());
        for causal in [false, true] {
            let e = rel_error(&linear_attention_direct(&qf, &kf, &v, n, width, dv, causal), &linear_attention(&qf, &kf, &v, n, width, dv, causal));
            assert!(e < 1e-4, "causal {causal}: {e}");
        }
    }

    /// Exact attention against a direct per-row softmax (blocks of 64 rows: n = 150 spans three blocks).
    #[test]
    fn exact_matches_direct_softmax() {
        let (n, d, dv) = (150, 8, 8);
        let (q, k, v) = synthetic_qkv(1, n, d, 1.0, 5);
        for causal in [false, true] {
            let got = exact_attention(&q, &k, &v, n, d, dv, causal);
            for i in [0, 63, 64, 149] {
                let lim = if causal { i + 1 } else { n };
                let s: Vec<f64> = (0..lim).map(|j| (0..d).map(|c| q[i * d + c] as f64 * k[j * d + c] as f64).sum::<f64>() / (d as f64).sqrt()).collect();
                let z: f64 = s.iter().map(|x| x.exp()).sum();
                for c in 0..dv {
                    let want = (0..lim).map(|j| s[j].exp() * v[j * dv + c] as f64).sum::<f64>() / z;
                    assert!((got[i * dv + c] as f64 - want).abs() < 1e-5, "causal {causal} row {i}: {} vs {want}", got[i * dv + c]);
                }
            }
        }
    }

    /// FAVOR+ end to end: small Q, K (‖q d^(−1/4)‖² ≈ 1), positive ORF features with s = 16d approximate exact
    /// attention, and more features do better.
    #[test]
    fn favor_plus_approximates_softmax_attention() {
        let (n, d) = (128, 16);
        let (q, k, v) = synthetic_qkv(1, n, d, 0.5, 6);
        let exact = exact_attention(&q, &k, &v, n, d, d, false);
        let err = |s: usize| {
            let sp =
                KernelSpec { kernel: Kernel::Softmax, projection: Projection::Orf, softmax_features: SoftmaxFeatures::Positive, gamma: 1.0, features: s, d };
            let w = sp.projection(2);
            let feat = |x: &[f32]| {
                let xs: Vec<f32> = x.iter().map(|a| a / (d as f32).powf(0.25)).collect();
                sp.features(&project(&xs, &w, d), &sq_norms(&xs, d), n)
            };
            rel_error(&exact, &linear_attention(&feat(&q), &feat(&k), &v, n, sp.width(), d, false))
        };
        let (e1, e16) = (err(d), err(16 * d));
        assert!(e16 < 0.1 && e16 < e1, "error {e1} at s = d, {e16} at s = 16d");
    }
}
