//! Token routing as a Monte Carlo variable (tiers-energy.md §2; Büchel et al., Nat. Comput. Sci. 5,
//! 13–26 (2025), "Expert co-selection"): the top-k experts of each token are drawn from a routing
//! density (uniform, Zipf, measured histogram, or a co-selection matrix) with the counter-based
//! Philox generator, so every draw is a pure function of (seed, trial, token, pick).

use crate::rng;
use serde::{Deserialize, Serialize};

/// Stream tag of routing draws (bits 8..16 of counter word 2; the noise stages use 1..5).
pub const ROUTING_STREAM: u32 = 0x52;

/// The density experts are drawn from.
///
/// TOML: `{ kind = "uniform" }`, `{ kind = "zipf", s = 1.2 }`, `{ kind = "histogram", weights = [...] }`
/// (E entries, any scale), `{ kind = "co_selection", density = [...] }` (E × E row-major, see [`coselection_density`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Routing {
    /// Every k-subset equally likely.
    Uniform,
    /// Weights (i + 1)^-s, sampled without replacement.
    Zipf {
        /// Skew exponent (0 = uniform).
        s: f64,
    },
    /// Measured per-expert weights, sampled without replacement.
    Histogram {
        /// One weight per expert, >= 0.
        weights: Vec<f64>,
    },
    /// A co-selection density P: the first expert by its marginal P[i, i], each further one with
    /// weight Σ over the chosen c of P[c, j].
    CoSelection {
        /// E × E, row-major.
        density: Vec<f64>,
    },
}

impl Routing {
    /// Checks the density against `experts` and `k`; messages name the field and the fix.
    pub fn validate(&self, experts: u32, k: u32) -> Result<(), String> {
        if k == 0 || k > experts {
            return Err(format!("top_k = {k} with experts = {experts}: must be 1 <= top_k <= experts"));
        }
        let check = |name: &str, v: &[f64], len: usize| -> Result<(), String> {
            if v.len() != len {
                return Err(format!("routing.{name} has {} entries: needs {len} (experts = {experts})", v.len()));
            }
            if let Some((i, x)) = v.iter().enumerate().find(|(_, x)| !(x.is_finite() && **x >= 0.0)) {
                return Err(format!("routing.{name}[{i}] = {x}: must be finite and >= 0"));
            }
            Ok(())
        };
        let e = experts as usize;
        let positive = match self {
            Routing::Uniform => e,
            Routing::Zipf { s } if !(s.is_finite() && *s >= 0.0) => return Err(format!("routing.s = {s}: the Zipf exponent must be finite and >= 0")),
            Routing::Zipf { .. } => e,
            Routing::Histogram { weights } => {
                check("weights", weights, e)?;
                weights.iter().filter(|w| **w > 0.0).count()
            }
            Routing::CoSelection { density } => {
                check("density", density, e * e)?;
                (0..e).filter(|&i| density[i * e + i] > 0.0).count()
            }
        };
        if positive < k as usize {
            return Err(format!("routing gives {positive} experts a positive weight but top_k = {k}: at least top_k must be > 0"));
        }
        Ok(())
    }
}

/// A uniform f64 in [0, 1) (53 bits) for pick `pick` of `token` in `trial`.
fn draw(key: [u32; 2], trial: u32, token: u32, pick: u32) -> f64 {
    let r = rng::philox4x32_10(rng::ctr(token, trial, rng::ctr_word2(0, ROUTING_STREAM, 0), pick), key);
    ((((r[0] as u64) << 32) | r[1] as u64) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Index with weight `w[i]` among those not taken (`w` already zero for taken ones); uniform over the
/// untaken if every weight is zero.
fn pick_weighted(w: &[f64], taken: &[bool], u: f64) -> usize {
    let total: f64 = w.iter().zip(taken).filter(|(_, t)| !**t).map(|(x, _)| x).sum();
    let free: Vec<usize> = (0..w.len()).filter(|&i| !taken[i]).collect();
    if total <= 0.0 {
        return free[((u * free.len() as f64) as usize).min(free.len() - 1)];
    }
    let mut target = u * total;
    for &i in &free {
        if w[i] > 0.0 {
            if target < w[i] {
                return i;
            }
            target -= w[i];
        }
    }
    // rounding: the last positive-weight expert
    *free.iter().rev().find(|&&i| w[i] > 0.0).unwrap_or(&free[0])
}

/// The top-k experts of one token: `k` distinct indices, a pure function of (routing, seed, trial, token).
///
/// Uniform: a partial Fisher–Yates shuffle. Zipf / histogram: successive sampling without replacement,
/// each pick proportional to the weights of the experts not yet chosen (for k = 1 the marginal is the
/// normalised weight exactly). Co-selection: the first pick proportional to the diagonal P[i, i], each
/// further pick j proportional to Σ over the chosen c of P[c, j] (for k = 2 and a consistent density,
/// Σ_j≠i P[i, j] = P[i, i], the pair {i, j} comes out with probability P[i, j] exactly).
/// Call [`Routing::validate`] first: with a bad density it degrades to uniform picks, never panics
/// (k is clamped to `experts`).
pub fn sample_topk(routing: &Routing, experts: u32, k: u32, seed: u64, trial: u32, token: u32) -> Vec<u32> {
    let e = experts as usize;
    let k = k.min(experts) as usize;
    let key = rng::key(seed, 0);
    let u = |j: usize| draw(key, trial, token, j as u32);
    if let Routing::Uniform = routing {
        let mut idx: Vec<u32> = (0..experts).collect();
        for j in 0..k {
            let r = j + ((u(j) * (e - j) as f64) as usize).min(e - j - 1);
            idx.swap(j, r);
        }
        idx.truncate(k);
        return idx;
    }
    let mut taken = vec![false; e];
    let mut out = Vec::with_capacity(k);
    let mut w: Vec<f64> = match routing {
        Routing::Zipf { s } => (0..e).map(|i| (i as f64 + 1.0).powf(-s)).collect(),
        Routing::Histogram { weights } => (0..e).map(|i| weights.get(i).copied().unwrap_or(0.0)).collect(),
        Routing::CoSelection { density } => (0..e).map(|i| density.get(i * e + i).copied().unwrap_or(0.0)).collect(),
        Routing::Uniform => vec![1.0; e],
    };
    w.iter_mut().for_each(|x| *x = if x.is_finite() && *x > 0.0 { *x } else { 0.0 });
    for j in 0..k {
        let i = pick_weighted(&w, &taken, u(j));
        taken[i] = true;
        out.push(i as u32);
        w[i] = 0.0;
        if let Routing::CoSelection { density } = routing {
            if j == 0 {
                w.iter_mut().for_each(|x| *x = 0.0);
            }
            for (f, x) in w.iter_mut().enumerate() {
                let v = density.get(i * e + f).copied().unwrap_or(0.0);
                if !taken[f] && v.is_finite() && v > 0.0 {
                    *x += v;
                }
            }
        }
    }
    out
}

/// `tokens` tokens of one trial (token index 0..tokens), after validating the routing once.
pub fn sample_tokens(routing: &Routing, experts: u32, k: u32, seed: u64, trial: u32, tokens: u32) -> Result<Vec<Vec<u32>>, String> {
    routing.validate(experts, k)?;
    Ok((0..tokens).map(|t| sample_topk(routing, experts, k, seed, trial, t)).collect())
}

/// The co-selection density of sampled choices, E × E row-major: P[i, j] (i ≠ j) the fraction of
/// tokens that chose both i and j, P[i, i] the fraction that chose i (the inclusion probability).
pub fn coselection_density(samples: &[Vec<u32>], experts: u32) -> Vec<f64> {
    let e = experts as usize;
    let mut p = vec![0.0; e * e];
    for s in samples {
        for &a in s.iter().filter(|&&a| (a as usize) < e) {
            for &b in s.iter().filter(|&&b| (b as usize) < e) {
                p[a as usize * e + b as usize] += 1.0;
            }
        }
    }
    let n = samples.len().max(1) as f64;
    p.iter_mut().for_each(|x| *x /= n);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Far-tail bound on an empirical frequency, in standard errors sqrt(p(1-p)/N) of its binomial
    /// count: P(|Z| > 5) = 5.7e-7 per cell, so across the ~40 cells checked here a correct sampler
    /// fails with probability < 3e-5 (and the seeds are fixed, so a pass is reproducible).
    const TAIL_SE: f64 = 5.0;
    const N: u32 = 20_000;

    fn check_inclusion(samples: &[Vec<u32>], want: &[f64]) {
        let p = coselection_density(samples, want.len() as u32);
        let e = want.len();
        for (i, &w) in want.iter().enumerate() {
            let se = (w * (1.0 - w) / samples.len() as f64).sqrt();
            let got = p[i * e + i];
            assert!((got - w).abs() <= TAIL_SE * se, "expert {i}: {got} vs {w} (se {se})");
        }
    }

    #[test]
    fn uniform_frequencies_and_distinct() {
        let s = sample_tokens(&Routing::Uniform, 8, 2, 7, 0, N).unwrap();
        assert!(s.iter().all(|t| t.len() == 2 && t[0] != t[1] && t.iter().all(|&x| x < 8)));
        check_inclusion(&s, &[0.25; 8]);
    }

    #[test]
    fn zipf_frequencies_top1_and_top2() {
        let s_exp = 1.2;
        let w: Vec<f64> = (0..6).map(|i| (i as f64 + 1.0).powf(-s_exp)).collect();
        let z: f64 = w.iter().sum();
        let p: Vec<f64> = w.iter().map(|x| x / z).collect();
        let r = Routing::Zipf { s: s_exp };
        check_inclusion(&sample_tokens(&r, 6, 1, 11, 3, N).unwrap(), &p);
        // top-2 successive sampling: pi_i = p_i + sum_{j != i} p_j p_i / (1 - p_j)
        let pi: Vec<f64> = (0..6).map(|i| p[i] + (0..6).filter(|&j| j != i).map(|j| p[j] * p[i] / (1.0 - p[j])).sum::<f64>()).collect();
        let s = sample_tokens(&r, 6, 2, 11, 3, N).unwrap();
        assert!(s.iter().all(|t| t[0] != t[1]));
        check_inclusion(&s, &pi);
    }

    #[test]
    fn coselection_reproduces_its_pair_density() {
        // pair probabilities over the 6 pairs of 4 experts
        let q = [((0, 1), 0.4), ((2, 3), 0.3), ((0, 2), 0.1), ((1, 3), 0.1), ((0, 3), 0.05), ((1, 2), 0.05)];
        let mut d = vec![0.0; 16];
        for ((i, j), v) in q {
            d[i * 4 + j] = v;
            d[j * 4 + i] = v;
            d[i * 4 + i] += v;
            d[j * 4 + j] += v;
        }
        let s = sample_tokens(&Routing::CoSelection { density: d.clone() }, 4, 2, 5, 1, N).unwrap();
        let got = coselection_density(&s, 4);
        for (x, (&g, &w)) in got.iter().zip(&d).enumerate() {
            let se = (w * (1.0 - w) / N as f64).sqrt().max(1e-12);
            assert!((g - w).abs() <= TAIL_SE * se, "cell {x}: {g} vs {w}");
        }
    }

    #[test]
    fn reproducible_and_order_free() {
        let r = Routing::Histogram { weights: vec![1.0, 0.0, 3.0, 2.0, 5.0] };
        let a = sample_topk(&r, 5, 3, 42, 9, 1234);
        assert_eq!(a, sample_topk(&r, 5, 3, 42, 9, 1234));
        assert!(!a.contains(&1), "a zero-weight expert is never chosen while others remain");
        let fwd: Vec<_> = (0..50).map(|t| sample_topk(&r, 5, 3, 42, 9, t)).collect();
        let back: Vec<_> = (0..50).rev().map(|t| sample_topk(&r, 5, 3, 42, 9, t)).collect();
        assert!(fwd.iter().eq(back.iter().rev()));
        assert_ne!(fwd, (0..50).map(|t| sample_topk(&r, 5, 3, 43, 9, t)).collect::<Vec<_>>());
    }

    #[test]
    fn bad_routing_names_the_field() {
        assert!(Routing::Zipf { s: -1.0 }.validate(4, 2).unwrap_err().contains("routing.s"));
        assert!(Routing::Histogram { weights: vec![1.0; 3] }.validate(4, 2).unwrap_err().contains("routing.weights has 3"));
        assert!(Routing::Histogram { weights: vec![1.0, 0.0, 0.0, 0.0] }.validate(4, 2).unwrap_err().contains("top_k = 2"));
        assert!(Routing::Uniform.validate(4, 5).unwrap_err().contains("top_k = 5"));
        let r: Routing = toml::from_str("kind = \"zipf\"\ns = 1.2\n").unwrap();
        assert_eq!(r, Routing::Zipf { s: 1.2 });
    }
}
