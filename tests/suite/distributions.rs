//! Distribution tests of the device models through the `program` + `drift` stages, on the CPU
//! twin and on the GPU: programmed conductance, drift exponent and read noise, for pcm and hermes,
//! at several target conductances, against the analytic model of noise-models.md §3-§4; and the
//! `simple` preset's programmed weight against kernel-attention.md §4.
//!
//! Each quantity is isolated by switching the other noise sources off (their scales are model
//! parameters). Fixed seeds, so deterministic. The threshold is far in the tail: a correct
//! sampler gives uniform p-values, so p > 1e-6 does not fire by chance on any seed; below it
//! the sampler is wrong.

use crate::common::*;
use aimc::crossbar::{Gdc, MappedMatrix, Periphery, TileShape};
use aimc::device::DeviceModel;
use aimc::engine::plan::{run_device_state, RunConfig};
use aimc::engine::Backend;
use aimc::stats::{ks_p_value, ks_statistic};
use statrs::distribution::{ContinuousCDF, Normal};

const P_MIN: f64 = 1e-6;
const TARGETS: [f64; 4] = [0.02, 0.1, 0.4, 0.9];
const N_IN: u32 = 2000;
const TRIALS: u32 = 10;

fn phi(x: f64) -> f64 {
    Normal::new(0.0, 1.0).unwrap().cdf(x)
}

/// Row r holds the target TARGETS[r] (normalised), except one weight of 1.0 that sets the tile
/// scale so that g_T = TARGETS[r] · g_max.
fn matrix() -> MappedMatrix {
    let mut w = Vec::new();
    for &x in &TARGETS {
        w.extend(std::iter::repeat_n(x as f32, N_IN as usize));
    }
    w[0] = 1.0;
    MappedMatrix::new(&w, TARGETS.len() as u32, N_IN, TileShape { max_in: 2048, max_out: 512 }, 1.0)
}

/// Effective weights per target row (the 1.0 weight left out), pooled over trials.
fn samples(be: &mut dyn Backend, dev: DeviceModel, t: f64) -> Vec<Vec<f64>> {
    let m = matrix();
    let cfg = RunConfig {
        reads_per_programming: 1,
        device: dev,
        periphery: Periphery::perfect(),
        gdc: Gdc::Off,
        key: aimc::rng::key(2024, 3),
        trials: TRIALS,
        times: vec![t],
        max_chunk: 4,
        first_trial: 0,
        layer_noise: Vec::new(),
    };
    let (w, _) = run_device_state(be, &m, &cfg).unwrap();
    let mut rows = vec![Vec::new(); TARGETS.len()];
    for trial in 0..TRIALS as usize {
        for r in 0..TARGETS.len() {
            for k in 0..N_IN as usize {
                if r == 0 && k == 0 {
                    continue;
                }
                rows[r].push(w[0][trial * m.len() + r * N_IN as usize + k] as f64);
            }
        }
    }
    rows
}

fn check(name: &str, model: &str, x: f64, sample: &[f64], cdf: impl Fn(f64) -> f64) {
    let d = ks_statistic(sample, cdf);
    let p = ks_p_value(d, sample.len());
    assert!(p > P_MIN, "{name} {model} g_T/g_max={x}: KS D={d:.4} over n={}, p={p:.3e}", sample.len());
}

/// Programmed weight = (G+ − G−)/s with G+ ~ max(0, N(g_T, σ(g_T))) and G− ~ max(0, N(0, σ(0))):
/// the CDF of the difference, with the rectified G− integrated numerically (Simpson, 400 panels).
fn programmed_cdf(m: &DeviceModel, g_t: f64) -> impl Fn(f64) -> f64 {
    pair_cdf(m.g_max, g_t, m.sigma_prog(g_t), m.sigma_prog(0.0))
}

/// The weight (G+ − G−)/g_max of a pair with G+ ~ max(0, N(g_t, sp)), G− ~ max(0, N(0, s0)).
fn pair_cdf(gm: f64, g_t: f64, sp: f64, s0: f64) -> impl Fn(f64) -> f64 {
    move |w: f64| {
        let d = w * gm; // conductance difference, µS (s = g_max since the tile max is 1)
        let fa = |a: f64| if a < 0.0 { 0.0 } else { phi((a - g_t) / sp) };
        // P(G− = 0) = 1/2; otherwise G− = b > 0 with density φ(b/s0)/s0.
        let mut acc = 0.5 * fa(d);
        let (hi, n) = (9.0 * s0, 400);
        let h = hi / n as f64;
        let dens = |b: f64| (-0.5 * (b / s0).powi(2)).exp() / (s0 * (2.0 * std::f64::consts::PI).sqrt());
        for i in 0..=n {
            let b = i as f64 * h;
            let wgt = if i == 0 || i == n {
                1.0
            } else if i % 2 == 1 {
                4.0
            } else {
                2.0
            };
            acc += wgt * h / 3.0 * fa(d + b) * dens(b);
        }
        acc
    }
}

fn run_all(be: &mut dyn Backend) {
    for base in [DeviceModel::pcm(), DeviceModel::hermes()] {
        // Programming noise alone.
        let dev = DeviceModel { drift_scale: 0.0, read_noise_scale: 0.0, ..base.clone() };
        let rows = samples(be, dev.clone(), 0.0);
        for (r, &x) in TARGETS.iter().enumerate() {
            check("programmed conductance", &base.name, x, &rows[r], programmed_cdf(&dev, x * dev.g_max));
        }
        drift_exponent(be, &base, &base.name);
        // Read noise alone: w_eff = max(0, w (1 + σ_rd N)), σ_rd = Q_s(g_T) sqrt(ln((t + t_read)/(2 t_read))).
        let dev = DeviceModel { prog_noise_scale: 0.0, drift_scale: 0.0, ..base.clone() };
        let t = 3600.0;
        let rows = samples(be, dev.clone(), t);
        for (r, &x) in TARGETS.iter().enumerate() {
            let sig = dev.q_s(x * dev.g_max) * dev.read_sqrt_log(t);
            check("read noise", &base.name, x, &rows[r], |w| if w < 0.0 { 0.0 } else { phi((w / x - 1.0) / sig) });
        }
    }
    // A measured drift table (aihwkit's CustomDriftPCMLikeNoiseModel): the targets fall inside
    // three of its segments and on one knot (10 µS).
    let table = aimc::device::DriftTable { g: vec![0.0, 5.0, 10.0, 25.0], nu_mean: vec![0.09, 0.06, 0.045, 0.03], nu_std: vec![0.035, 0.02, 0.015, 0.01] };
    drift_exponent(be, &DeviceModel { drift_table: Some(table), ..DeviceModel::pcm() }, "pcm with drift_table");
    // A measured programming table: the targets (0.5, 2.5, 10, 22.5 µS) fall inside three of its
    // segments and on one knot (10 µS), G−'s target 0 on its first; σ is not the polynomial's.
    let prog = aimc::device::ProgTable { g: vec![0.0, 2.0, 10.0, 18.0, 25.0], sigma: vec![0.3, 1.5, 1.8, 0.5, 1.1] };
    let dev = DeviceModel { prog_table: Some(prog), drift_scale: 0.0, read_noise_scale: 0.0, ..DeviceModel::pcm() };
    assert!((dev.sigma_prog(10.0) - DeviceModel::pcm().sigma_prog(10.0)).abs() > 0.5);
    let rows = samples(be, dev.clone(), 0.0);
    for (r, &x) in TARGETS.iter().enumerate() {
        check("programmed conductance", "pcm with prog_table", x, &rows[r], programmed_cdf(&dev, x * dev.g_max));
    }
    // A measured read-noise table, read noise alone: Q_s from the table at the programmed
    // conductance (the targets inside three segments and on one knot, 10 µS).
    let read = aimc::device::ReadTable { g: vec![0.0, 1.0, 10.0, 25.0], q_s: vec![0.15, 0.1, 0.01, 0.05] };
    let dev = DeviceModel { read_table: Some(read), prog_noise_scale: 0.0, drift_scale: 0.0, ..DeviceModel::pcm() };
    assert!((dev.q_s(22.5) - DeviceModel::pcm().q_s(22.5)).abs() > 0.03);
    let t = 3600.0;
    let rows = samples(be, dev.clone(), t);
    for (r, &x) in TARGETS.iter().enumerate() {
        let sig = dev.q_s(x * dev.g_max) * dev.read_sqrt_log(t);
        check("read noise", "pcm with read_table", x, &rows[r], |w| if w < 0.0 { 0.0 } else { phi((w / x - 1.0) / sig) });
    }
    // A relaxation table (ReRAM, aihwkit's ReRamWan2022NoiseModel), programming noise off so the
    // re-conversion scale is the target's: a read at each table time is a fresh pair about the
    // targets with that time's σ (µS, not rescaled), whatever the time before it.
    let dev = DeviceModel { prog_noise_scale: 0.0, ..DeviceModel::reram() };
    let relax = dev.relax_table.clone().unwrap();
    for (k, &t) in relax.t.iter().enumerate() {
        let rows = samples(be, dev.clone(), t);
        for (r, &x) in TARGETS.iter().enumerate() {
            let g_t = x * dev.g_max;
            let cdf = pair_cdf(dev.g_max, g_t, relax.sigma(k, g_t, dev.g_max), relax.sigma(k, 0.0, dev.g_max));
            check("relaxed conductance", &format!("reram at {t} s"), x, &rows[r], cdf);
        }
    }
    // One device per weight with a log-time relaxation (CMO ReRAM, aihwkit's ReRamCMONoiseModel):
    // the tile's [min W, max W] = [0.02, 1] onto [g_min, g_max]. Programming alone (t = 0, the
    // programmed state as it is): N(g_T, σ(g_T)) unrectified. The relaxation alone at 1 d and the
    // read noise alone at 1 y: N(g_T + shift, σ), clamped to [g_min, g_max], as weights.
    let cmo = DeviceModel::reram_cmo();
    // The tile's minimum as the engine holds it (an f32), so weights clamped at g_min land on it.
    let lo = TARGETS[0] as f32 as f64;
    let sc = (cmo.g_max - cmo.g_min) / (1.0 - lo);
    let weight_cdf = move |g_t: f64, mu: f64, sig: f64| {
        let (g_min, g_max) = (cmo.g_min, cmo.g_max);
        move |w: f64| {
            let g = (w - lo) * sc + g_min;
            if g < g_min {
                0.0
            } else if g >= g_max {
                1.0
            } else {
                phi((g - g_t - mu) / sig)
            }
        }
    };
    let g_of = |x: f64| (x - lo) * sc + cmo.g_min;
    let dev = DeviceModel { drift_scale: 0.0, read_noise_scale: 0.0, ..DeviceModel::reram_cmo() };
    let rows = samples(be, dev.clone(), 0.0);
    for (r, &x) in TARGETS.iter().enumerate() {
        // Unclamped at programming: the plain normal.
        let (g_t, sig) = (g_of(x), dev.sigma_prog(g_of(x)));
        check("programmed conductance", "reram_cmo", x, &rows[r], move |w| phi(((w - lo) * sc + dev.g_min - g_t) / sig));
    }
    let r = cmo.log_relax.clone().unwrap();
    let t = 86400.0f64;
    let dev = DeviceModel { prog_noise_scale: 0.0, read_noise_scale: 0.0, ..DeviceModel::reram_cmo() };
    let rows = samples(be, dev.clone(), t);
    let (mu, sig) = (r.mean * t.ln(), r.std[0] * t.ln() + r.std[1]);
    // The lowest target sits at g_min: the loss clamps most of it there, an atom KS cannot test,
    // so its share at the atom is checked against Φ((g_min − g_T − μ)/σ) within 6 binomial σ.
    let p = phi(-mu / sig);
    let at = rows[0].iter().filter(|&&w| w == lo).count() as f64 / rows[0].len() as f64;
    assert!((at - p).abs() < 6.0 * (p * (1.0 - p) / rows[0].len() as f64).sqrt(), "reram_cmo at 1 d: {at} of the lowest target at g_min, expected {p}");
    for (k, &x) in TARGETS.iter().enumerate().skip(1) {
        check("relaxed conductance", "reram_cmo at 1 d", x, &rows[k], weight_cdf(g_of(x), mu, sig));
    }
    let t = 3.15e7f64;
    let dev = DeviceModel { prog_noise_scale: 0.0, drift_scale: 0.0, ..DeviceModel::reram_cmo() };
    let rows = samples(be, dev.clone(), t);
    for (k, &x) in TARGETS.iter().enumerate().skip(1) {
        let sig = r.read_k * g_of(x).log10() * dev.read_sqrt_log(t);
        check("read noise", "reram_cmo at 1 y", x, &rows[k], weight_cdf(g_of(x), 0.0, sig));
    }
    // Several conductance pairs per weight (aihwkit's NPairConductanceConverter, F = 1 and 2):
    // programming alone, then drift and read noise alone, against the f64 model.
    let pairs = DeviceModel { pair_significance: vec![1.0, 2.0], ..DeviceModel::pcm() };
    for (what, dev, t) in [
        ("programmed weight", DeviceModel { drift_scale: 0.0, read_noise_scale: 0.0, ..pairs.clone() }, 0.0),
        ("drifted and read weight", DeviceModel { prog_noise_scale: 0.0, ..pairs.clone() }, 86400.0),
    ] {
        let rows = samples(be, dev.clone(), t);
        for (r, &x) in TARGETS.iter().enumerate() {
            check_two_sample(what, "pcm on pairs [1, 2]", x, &rows[r], &pairs_oracle(&dev, x, t, 7));
        }
    }
    // Stuck devices (2 % at g_max, 5 % at 0 µS, drawn per device): programming alone, on one pair
    // and on pairs [1, 2]; drift and read alone on one pair, where a stuck device does not drift.
    let stuck = DeviceModel { stuck_set: 0.02, stuck_reset: 0.05, ..DeviceModel::pcm() };
    for (what, dev, t) in [
        ("programmed weight", DeviceModel { drift_scale: 0.0, read_noise_scale: 0.0, ..stuck.clone() }, 0.0),
        ("programmed weight", DeviceModel { drift_scale: 0.0, read_noise_scale: 0.0, pair_significance: vec![1.0, 2.0], ..stuck.clone() }, 0.0),
        ("drifted and read weight", DeviceModel { prog_noise_scale: 0.0, ..stuck.clone() }, 86400.0),
    ] {
        let rows = samples(be, dev.clone(), t);
        for (r, &x) in TARGETS.iter().enumerate() {
            check_two_sample(what, &format!("pcm with stuck devices on pairs {:?}", dev.pair_factors()), x, &rows[r], &pairs_oracle(&dev, x, t, 9));
        }
    }
    // `simple` (kernel-attention §4): g_T + 0.067·N per weight in normalised units, unrectified.
    let rows = samples(be, DeviceModel::simple(), 0.0);
    for (r, &x) in TARGETS.iter().enumerate() {
        check("programmed weight", "simple", x, &rows[r], simple_cdf(x));
    }
}

/// Draws of the f64 model (`DeviceModel::pair_targets`, `program`, `stuck_at`, `nu`,
/// `drift_read`) for the weight x of a tile whose max|W| is 1, on the device's pairs: each pair's
/// two devices programmed as aihwkit programs them, or stuck; at t > 0 (programming noise off, and
/// max|W_prog| = 1, so the re-conversion scale is the programming's) the programmed weight
/// re-converted onto the pairs of its sign's side, each nonzero device drifted with its own
/// exponent (0 where that device is stuck) and read with its own draw. An independent stream
/// (its own key), [`ORACLE_DRAWS`] of them.
fn pairs_oracle(dev: &DeviceModel, x: f64, t: f64, seed: u64) -> Vec<f64> {
    oracle(dev, x, t, seed, false)
}

/// [`pairs_oracle`], where `stuck_drifts` gives a stuck device the exponent of its target as if
/// it were programmed (a wrong model, for the power check).
fn oracle(dev: &DeviceModel, x: f64, t: f64, seed: u64, stuck_drifts: bool) -> Vec<f64> {
    use aimc::rng::{key, normal4_f64, philox4x32_10};
    let s = dev.pair_span() * dev.g_max;
    let k = key(seed, 0xACE);
    let mut ctr = 0u32;
    let mut draw = move || {
        ctr += 1;
        philox4x32_10([ctr, 0, 0xFFFF_0000, 0], k)
    };
    let f = dev.pair_factors();
    let targets = [dev.pair_targets(s * x), dev.pair_targets(0.0)];
    (0..ORACLE_DRAWS)
        .map(|_| {
            let mut held = 0.0;
            let mut stuck = vec![[false; 2]; f.len()];
            for (k, &fk) in f.iter().enumerate() {
                let mut g = [0.0; 2];
                for side in 0..2 {
                    let r = draw();
                    let u = (r[0] >> 8) as f64 / 16_777_216.0;
                    g[side] = match dev.stuck_at(u) {
                        Some(at) if dev.has_stuck() => {
                            stuck[k][side] = true;
                            at
                        }
                        // The normal from words 2 and 3: words 0 and 1 make the fate's uniform.
                        _ => dev.program(targets[side][k], normal4_f64(r)[2]),
                    };
                }
                held += fk * (g[0] - g[1]);
            }
            let wp = held / s;
            if t == 0.0 {
                return wp;
            }
            let side = if wp >= 0.0 { 0 } else { 1 };
            let g = dev.pair_targets(wp.abs() * s);
            let read: f64 = (0..f.len())
                .map(|k| {
                    let n = normal4_f64(draw());
                    let nu = if stuck[k][side] && !stuck_drifts { 0.0 } else { dev.nu(targets[side][k], n[0]) };
                    f[k] * if g[k] > 0.0 { dev.drift_read(g[k], nu, t, n[1]) } else { 0.0 }
                })
                .sum();
            wp.signum() * read / s
        })
        .collect()
}

/// Draws of [`pairs_oracle`]: ten times a row's sample, so the oracle's own spread adds little.
const ORACLE_DRAWS: usize = 10 * (N_IN as usize) * (TRIALS as usize);

/// Two-sample Kolmogorov–Smirnov: `sample` against the empirical CDF of `oracle`, the p-value at
/// the effective size n·m/(n + m).
fn check_two_sample(name: &str, model: &str, x: f64, sample: &[f64], oracle: &[f64]) {
    let (d, p) = two_sample(sample, oracle);
    assert!(p > P_MIN, "{name} {model} g_T/g_max={x}: two-sample KS D={d:.4} over n={}, m={}, p={p:.3e}", sample.len(), oracle.len());
}

fn two_sample(sample: &[f64], oracle: &[f64]) -> (f64, f64) {
    let mut sorted = oracle.to_vec();
    sorted.sort_by(f64::total_cmp);
    let m = sorted.len() as f64;
    let d = ks_statistic(sample, |v| sorted.partition_point(|&o| o <= v) as f64 / m);
    let n = sample.len() as f64;
    (d, ks_p_value(d, (n * m / (n + m)) as usize))
}

/// The drift exponent alone: w_eff / w = (t/t0)^−ν, so ν = −ln(w_eff/w) / ln(t/t0), against the
/// folded normal |N(μ(g_T), σ(g_T))| of the model's f64 reference.
fn drift_exponent(be: &mut dyn Backend, base: &DeviceModel, name: &str) {
    let dev = DeviceModel { prog_noise_scale: 0.0, read_noise_scale: 0.0, ..base.clone() };
    let t = 1e7;
    let lr = dev.log_t_ratio(t);
    let rows = samples(be, dev.clone(), t);
    for (r, &x) in TARGETS.iter().enumerate() {
        let g = x * dev.g_max;
        let (mu, sg) = (dev.mu_nu(g), dev.sigma_nu(g));
        let nu: Vec<f64> = rows[r].iter().map(|&w| -(w / x).ln() / lr).collect();
        check("drift exponent", name, x, &nu, |v| if v < 0.0 { 0.0 } else { phi((v - mu) / sg) - phi((-v - mu) / sg) });
    }
}

/// `simple`'s programmed weight: N(x, 0.067²) at every target x.
fn simple_cdf(x: f64) -> impl Fn(f64) -> f64 {
    move |w: f64| phi((w - x) / aimc::device::SIMPLE_PROG_SIGMA)
}

#[test]
fn device_distributions_cpu_twin() {
    run_all(&mut cpu());
}

#[test]
fn device_distributions_gpu() {
    let Some(mut g) = gpu(256) else { return };
    run_all(&mut g);
}

/// The tests above must be able to fail: a sampler with a 10 % wrong σ is rejected.
#[test]
fn distribution_test_has_power() {
    let dev = DeviceModel { drift_scale: 0.0, read_noise_scale: 0.0, ..DeviceModel::pcm() };
    let rows = samples(&mut cpu(), dev.clone(), 0.0);
    let wrong = DeviceModel { prog_coeff: dev.prog_coeff.map(|c| c * 1.1), ..dev.clone() };
    let d = ks_statistic(&rows[2], programmed_cdf(&wrong, 0.4 * dev.g_max));
    assert!(ks_p_value(d, rows[2].len()) < P_MIN, "a 10 % wrong σ_prog went unnoticed (D={d})");
    // `simple` programmed as a rectified pair (each device 0.067·g_max, shrunk towards 0) is
    // rejected at a large and at a small target.
    let pair = DeviceModel { programming: aimc::device::Programming::Pair, ..DeviceModel::simple() };
    let rows = samples(&mut cpu(), pair, 0.0);
    for r in [0, 3] {
        let d = ks_statistic(&rows[r], simple_cdf(TARGETS[r]));
        assert!(ks_p_value(d, rows[r].len()) < P_MIN, "simple as a rectified pair went unnoticed at {} (D={d})", TARGETS[r]);
    }
    // Two pairs of significance 1 and 2 checked against the f64 model of one pair: rejected at a
    // small weight after drift and read (on three pairs' range the weight sits at three times the
    // conductance, where drift and read noise are smaller).
    let pairs = DeviceModel { pair_significance: vec![1.0, 2.0], prog_noise_scale: 0.0, ..DeviceModel::pcm() };
    let rows = samples(&mut cpu(), pairs.clone(), 86400.0);
    let one = DeviceModel { pair_significance: Vec::new(), ..pairs.clone() };
    let (d, p) = two_sample(&rows[0], &pairs_oracle(&one, TARGETS[0], 86400.0, 7));
    assert!(p < P_MIN, "pairs of significance 1 and 2 read as one pair went unnoticed (D={d})");
    // Stuck devices read as drifting like the others (their exponent drawn from the target):
    // rejected at 1 y.
    let stuck = DeviceModel { stuck_set: 0.05, prog_noise_scale: 0.0, ..DeviceModel::pcm() };
    let rows = samples(&mut cpu(), stuck.clone(), 3.15e7);
    let (d, p) = two_sample(&rows[1], &oracle(&stuck, TARGETS[1], 3.15e7, 9, true));
    assert!(p < P_MIN, "stuck devices that drift went unnoticed (D={d})");
    // CMO ReRAM at 1 d checked without its shift mean·ln t (−1.0 µS): rejected.
    let dev = DeviceModel { prog_noise_scale: 0.0, read_noise_scale: 0.0, ..DeviceModel::reram_cmo() };
    let rows = samples(&mut cpu(), dev.clone(), 86400.0);
    let sc = (dev.g_max - dev.g_min) / (1.0 - TARGETS[0]);
    let (g_t, r) = ((TARGETS[2] - TARGETS[0]) * sc + dev.g_min, dev.log_relax.clone().unwrap());
    let sig = r.std[0] * 86400f64.ln() + r.std[1];
    let d = ks_statistic(&rows[2], |w| phi(((w - TARGETS[0]) * sc + dev.g_min - g_t) / sig));
    assert!(ks_p_value(d, rows[2].len()) < P_MIN, "a relaxation without its shift went unnoticed (D={d})");
    // ReRAM read at 2 days but checked against the 1 s σ (the programming's): rejected.
    let dev = DeviceModel { prog_noise_scale: 0.0, ..DeviceModel::reram() };
    let relax = dev.relax_table.clone().unwrap();
    let rows = samples(&mut cpu(), dev.clone(), relax.t[2]);
    let g_t = TARGETS[2] * dev.g_max;
    let d = ks_statistic(&rows[2], pair_cdf(dev.g_max, g_t, relax.sigma(0, g_t, dev.g_max), relax.sigma(0, 0.0, dev.g_max)));
    assert!(ks_p_value(d, rows[2].len()) < P_MIN, "a read at the programming's σ went unnoticed (D={d})");
}
