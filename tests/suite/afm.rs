//! The `afm` device model: the evaluation noise of IBM's Analog Foundation Models
//! (github.com/IBM/analog-foundation-models, `apply_noise_model.py`, `add_PCM_noise`, commit
//! 93bb6cacfbd6c6ac84f52d90789da0454a9ce9af). Per output row of each 512-input tile, weights are
//! scaled to max|w| = 180; w + σ(|w|)·N with σ the cubic OD for |w| ≤ 52.5 and TD above; |w| < 0.6
//! set to 0; no drift, no read noise. Checked here: σ against the file's cubics evaluated by hand,
//! the zero threshold and the break, the f32 twin against the f64 oracle draw by draw, and the
//! distribution of programmed weights on the CPU twin and the GPU (KS, far-tail threshold).

use crate::common::*;
use aimc::crossbar::{Gdc, MappedMatrix, Periphery, Scaling, TileShape};
use aimc::device::DeviceModel;
use aimc::engine::plan::{run_device_state, RunConfig};
use aimc::engine::Backend;
use aimc::rng::{ctr_word2, normal4, philox4x32_10, stream};
use aimc::stats::{ks_p_value, ks_statistic};
use statrs::distribution::{ContinuousCDF, Normal};

/// The file's numbers, as printed there (highest degree first, |w| in 0..180 units).
const OD: [f64; 4] = [2.939751381126213e-05, -0.00371581208142707, 0.22419685954327148, 2.5797410660159494];
const TD: [f64; 4] = [1.2329755395573392e-05, -0.003054993405157235, 0.2453487119885723, 2.110295720240385];

/// The model's cubic in x = |w|/180 against the file's cubic in |w|: the same polynomial
/// re-expanded, so only f64 rounding separates them.
const CUBIC_REL_TOL: f64 = 1e-12;
/// The printed hand values below carry 5 significant digits.
const HAND_REL_TOL: f64 = 1e-4;
/// f32 twin against the f64 oracle, in weight units (|w| ≤ 1, σ ≤ 0.11): a few f32 roundings of
/// values below 2 in the target, σ and the sum (≤ 2⁻²³·2·4).
const ORACLE_ABS: f64 = 1e-6;
const P_MIN: f64 = 1e-6;

fn polyval(c: [f64; 4], w: f64) -> f64 {
    ((c[0] * w + c[1]) * w + c[2]) * w + c[3]
}

#[test]
fn sigma_matches_the_file_cubics() {
    let m = DeviceModel::afm();
    assert_eq!((m.g_max, m.prog_g_ref, m.drift_scale, m.read_noise_scale), (180.0, 180.0, 0.0, 0.0));
    // g_max = 180, so a conductance is the file's scaled weight |w| itself.
    for w in [0.0, 0.6, 1.0, 10.0, 30.0, 52.5] {
        let (got, want) = (m.sigma_prog(w), polyval(OD, w));
        assert!((got - want).abs() <= CUBIC_REL_TOL * want, "OD |w|={w}: model {got} file {want}");
    }
    for w in [52.500001, 60.0, 100.0, 150.0, 180.0] {
        let (got, want) = (m.sigma_prog(w), polyval(TD, w));
        assert!((got - want).abs() <= CUBIC_REL_TOL * want, "TD |w|={w}: model {got} file {want}");
    }
    // By hand (numpy.polyval of the file's coefficients, rounded).
    for (w, want) in [(0.6, 2.71293), (1.0, 2.80025), (10.0, 4.47953), (30.0, 6.75515), (52.5, 8.36228), (60.0, 8.49647), (100.0, 8.42499), (180.0, 19.1984)] {
        let got = m.sigma_prog(w);
        assert!((got - want).abs() <= HAND_REL_TOL * want, "|w|={w}: σ={got}, by hand {want}");
    }
}

#[test]
fn zero_threshold_and_break() {
    let m = DeviceModel::afm();
    // Below 0.6 (strictly) the weight is 0 whatever the draw; at 0.6 it is programmed.
    for g in [0.0, 0.3, 0.5999, -0.5999] {
        assert_eq!(m.program_weight(g, 3.0), 0.0, "|w|={g} must be zeroed");
    }
    assert_eq!(m.program_weight(0.6, 0.0), 0.6);
    assert!((m.program_weight(-0.6, 1.0) - (-0.6 + polyval(OD, 0.6))).abs() < 1e-12, "signed target, σ of |w|, no rectification");
    // The break: OD up to and including 52.5 (the file replaces only |w| > 52.5 by TD).
    assert!((m.sigma_prog(52.5) - polyval(OD, 52.5)).abs() < 1e-12);
    assert!((m.sigma_prog(52.5 + 1e-9) - polyval(TD, 52.5 + 1e-9)).abs() < 1e-12);
    // The two fits meet within 0.1 % at the break (8.3623 vs 8.3549).
    assert!((polyval(OD, 52.5) / polyval(TD, 52.5) - 1.0).abs() < 1e-3);
    // Every other preset keeps one polynomial and the pair, but `simple`: one draw per weight.
    for name in ["pcm", "hermes", "hermes1", "ideal", "simple"] {
        let d = DeviceModel::by_name(name).unwrap();
        let programming = if name == "simple" { aimc::device::Programming::Weight } else { aimc::device::Programming::Pair };
        assert_eq!((d.prog_break, d.zero_below, d.programming), (0.0, 0.0, programming), "{name}");
    }
    assert!(aimc::device::MODEL_NAMES.contains(&"afm"));
}

/// Row r: one weight of 1.0 (the row's max, so the row maps to 180) and the rest at TARGETS[r]
/// in 0..180 units (negative: the sign is kept).
const TARGETS: [f64; 6] = [0.3, 20.0, 45.0, 100.0, -100.0, 170.0];
const N_IN: u32 = 2000;
const TRIALS: u32 = 8;

fn matrix() -> MappedMatrix {
    let mut w = Vec::new();
    for &t in &TARGETS {
        let mut row = vec![(t / 180.0) as f32; N_IN as usize];
        row[0] = 1.0;
        w.extend(row);
    }
    MappedMatrix::new(&w, TARGETS.len() as u32, N_IN, TileShape { max_in: 2048, max_out: 512 }, Scaling { omega: 1.0, columnwise: true })
}

fn cfg(reads: u32) -> RunConfig {
    RunConfig {
        device: DeviceModel::afm(),
        periphery: Periphery::perfect(),
        gdc: Gdc::Off,
        key: aimc::rng::key(2025, 1),
        trials: TRIALS,
        first_trial: 0,
        times: vec![0.0],
        max_chunk: 3,
        layer_noise: Vec::new(),
        reads_per_programming: reads,
    }
}

fn phi(x: f64) -> f64 {
    Normal::new(0.0, 1.0).unwrap().cdf(x)
}

fn distributions(be: &mut dyn Backend) {
    let m = matrix();
    let dev = DeviceModel::afm();
    let (w, _) = run_device_state(be, &m, &cfg(1)).unwrap();
    for (r, &t) in TARGETS.iter().enumerate() {
        // Effective weight = programmed conductance / 180 (the row's scale is 1).
        let sample: Vec<f64> =
            (0..TRIALS as usize).flat_map(|k| (1..N_IN as usize).map(move |c| (k, c))).map(|(k, c)| w[0][k * m.len() + r * N_IN as usize + c] as f64).collect();
        if t.abs() < 0.6 {
            assert!(sample.iter().all(|&v| v == 0.0), "|w|={t} below the zero threshold must program to exactly 0");
            continue;
        }
        let sd = dev.sigma_prog(t.abs()) / 180.0;
        let d = ks_statistic(&sample, |v| phi((v - t / 180.0) / sd));
        let p = ks_p_value(d, sample.len());
        // Fixed seed, so deterministic; a correct sampler gives uniform p-values, so 1e-6 does not
        // fire by chance.
        assert!(p > P_MIN, "afm |w|={t}: KS D={d:.4} over n={}, p={p:.3e}", sample.len());
    }
}

#[test]
fn afm_distribution_cpu_twin() {
    distributions(&mut cpu());
}

#[test]
fn afm_distribution_gpu() {
    let Some(mut g) = gpu(256) else { return };
    distributions(&mut g);
}

/// The test above can fail: σ taken from the wrong cubic (OD above the break) is rejected.
#[test]
fn distribution_test_has_power() {
    let m = matrix();
    let (w, _) = run_device_state(&mut cpu(), &m, &cfg(1)).unwrap();
    let r = 3; // |w| = 100: TD gives 8.42, OD 17.2
    let sample: Vec<f64> =
        (0..TRIALS as usize).flat_map(|k| (1..N_IN as usize).map(move |c| (k, c))).map(|(k, c)| w[0][k * m.len() + r * N_IN as usize + c] as f64).collect();
    let sd = polyval(OD, 100.0) / 180.0;
    let d = ks_statistic(&sample, |v| phi((v - 100.0 / 180.0) / sd));
    assert!(ks_p_value(d, sample.len()) < P_MIN, "σ from the wrong cubic went unnoticed (D={d})");
}

/// Every programmed weight of the f32 twin against the f64 oracle `DeviceModel::program_weight`
/// with the same Philox normal (word 0 of the weight's programming block), on random weights and
/// per-row scales; exactly 0 where the target is below the threshold.
#[test]
fn twin_matches_the_f64_oracle_draw_by_draw() {
    let (n_out, n_in) = (37u32, 700u32);
    let w = aimc::rng::uniform_signed((n_out * n_in) as usize, 5);
    let m = MappedMatrix::new(&w, n_out, n_in, TileShape { max_in: 512, max_out: 512 }, Scaling { omega: 1.0, columnwise: true });
    let c = cfg(3);
    let dev = DeviceModel::afm();
    let (weff, _) = run_device_state(&mut cpu(), &m, &c).unwrap();
    let mut zeros = 0;
    for trial in 0..TRIALS {
        let prog = trial / 3;
        for e in 0..m.len() {
            let n = normal4(philox4x32_10([e as u32, prog, ctr_word2(0, stream::PROG, 0), 0], c.key))[0] as f64;
            // Targets in 0..180: the row's own scale within its 512-input tile.
            let g_t = 180.0 * m.w_norm[e] as f64;
            let want = dev.program_weight(g_t, n) / 180.0;
            let got = weff[0][trial as usize * m.len() + e] as f64;
            let near_edge = (g_t.abs() - 0.6).abs() < 1e-4 || (g_t.abs() - 52.5).abs() < 1e-4;
            if near_edge {
                continue;
            }
            if g_t.abs() < 0.6 {
                assert_eq!(got, 0.0, "trial {trial} weight {e}: target {g_t} below 0.6 must be 0");
                zeros += 1;
            } else {
                assert!((got - want).abs() <= ORACLE_ABS, "trial {trial} weight {e}: twin {got} oracle {want} (target {g_t}, n {n})");
            }
        }
    }
    assert!(zeros > 0, "the random weights should include targets below 0.6");
}

/// `model = "afm"` needs per-row scales; the error names the fields to set, and with them the
/// experiment loads.
#[test]
fn afm_experiment_needs_per_row_scales() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/smoke.toml");
    let text = std::fs::read_to_string(&path).unwrap() + "\n[device]\nmodel = \"afm\"\n";
    let err = aimc::config::Experiment::from_text(&text, &path).unwrap_err().to_string();
    assert!(err.contains("weight_scaling_columnwise = true"), "{err}");
    let ok = text + "\n[periphery]\nweight_scaling_omega = 1.0\nweight_scaling_columnwise = true\n";
    let exp = aimc::config::Experiment::from_text(&ok, &path).unwrap();
    assert_eq!(exp.points[0].device.name, "afm");
}
