//! Agreement with aihwkit's own tile-level Monte Carlo on the open reference case
//! (experiments/reference/aihwkit_breast_cancer/: a 10-32-32-2 breast-cancer MLP whose weights are
//! far below 1, 2000 aihwkit repetitions): PCM drift with and without GDC at six times (aihwkit
//! 1.2.0), ReRAM (ReRamWan2022NoiseModel, aihwkit 1.0.0) at its three times, at aihwkit's noise
//! and at five times it, CMO/HfOx ReRAM (ReRamCMONoiseModel, aihwkit 1.0.0) at four times, and two
//! conductance pairs per weight (DualPairConductanceConverter, aihwkit 1.1.0) at aihwkit's PCM
//! noise and at five times it, input noise after the DAC (forward.inp_noise, aihwkit 1.1.0), and
//! aihwkit's StandardHWATrainingPreset (aihwkit 1.1.0); run
//! at reduced trials through the shipped experiment files with
//! every default, on the CPU backend.

use aimc::config::Experiment;
use aimc::engine::cpu::CpuBackend;
use aimc::run::{run, Quiet};
use std::path::PathBuf;

/// Trials of this test (the shipped experiment runs 2000).
const TRIALS: u32 = 400;

/// Far-tail multiple of the combined Monte Carlo standard error. The seed is fixed, so the test is
/// deterministic; a correct model exceeds 5.5 standard errors with probability 3.8e-8 per
/// comparison, < 5e-6 over the 113 made here (56 rows × mean and std, and one rms), so a change of
/// random streams cannot make it fire by chance, while a systematic error above the pass mark does.
const Z: f64 = 5.5;

#[test]
fn breast_cancer_mlp_matches_aihwkit_at_every_time_with_and_without_gdc() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("experiments/aihwkit_breast_cancer.toml");
    check_against_reference(Experiment::load(&path).unwrap(), 12);
}

/// ReRAM: the shipped case (aihwkit's noise barely moves this model: 94.3 % in floating point,
/// 94.4–94.7 % on ReRAM) and the same at noise_scale 5 (aihwkit_results_reram_x5.json: 91–93 %,
/// twice to three times the spread), where a read with another time's σ misses by 1.4 pp and a
/// third of the std.
#[test]
fn breast_cancer_mlp_matches_aihwkit_on_reram() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let path = root.join("aihwkit_breast_cancer_reram.toml");
    check_against_reference(Experiment::load(&path).unwrap(), 6);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("aihwkit_results_reram.json", "aihwkit_results_reram_x5.json")
        .replace("model = \"reram\"", "model = \"reram\"\nprog_noise_scale = 5.0   # aihwkit's noise_scale = 5\ndrift_scale = 5.0");
    check_against_reference(Experiment::from_text(&text, &path).unwrap(), 6);
    // CMO/HfOx ReRAM (one device per weight, aihwkit's ReRamCMONoiseModel) at 1 s .. 1 y.
    check_against_reference(Experiment::load(&root.join("aihwkit_breast_cancer_reram_cmo.toml")).unwrap(), 8);
}

/// Two conductance pairs per weight (aihwkit's DualPairConductanceConverter, F = 1 and 3; aihwkit
/// 1.1.0): the shipped case, and the same at prog_noise_scale = read_noise_scale = 5
/// (aihwkit_results_pairs_x5.json), where one pair per weight misses aihwkit's pairs at every point
/// (0.5–1.6 pp lower means, 1.2–1.9 times the spread at 2000 trials; 5 of its 24 comparisons miss
/// the widened mark at this test's 400 trials): the test can tell them apart.
#[test]
fn breast_cancer_mlp_matches_aihwkit_on_two_pairs() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("experiments/aihwkit_breast_cancer_pairs.toml");
    check_against_reference(Experiment::load(&path).unwrap(), 12);
    let x5 = std::fs::read_to_string(&path)
        .unwrap()
        .replace("aihwkit_results_pairs.json", "aihwkit_results_pairs_x5.json")
        .replace("model = \"pcm\"", "model = \"pcm\"\nprog_noise_scale = 5.0\nread_noise_scale = 5.0");
    check_against_reference(Experiment::from_text(&x5, &path).unwrap(), 12);
    let one_pair = x5.replace("pair_significance = [1.0, 3.0]", "");
    let misses = misses(Experiment::from_text(&one_pair, &path).unwrap(), 12);
    assert!(!misses.is_empty(), "one pair per weight passed aihwkit's two pairs at every point");
}

/// Input noise after the DAC (aihwkit's forward.inp_noise = 0.1; aihwkit 1.1.0): the shipped case,
/// where the noise widens the spread by a third over aihwkit's default case, so the same file
/// without input noise misses aihwkit's (its std ratios near 0.75).
#[test]
fn breast_cancer_mlp_matches_aihwkit_with_input_noise() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("experiments/aihwkit_breast_cancer_inp_noise.toml");
    check_against_reference(Experiment::load(&path).unwrap(), 12);
    // Without it the spread is aihwkit's default case's: near 0.75 of this reference's at every
    // row. The mean ratio over 12 rows has a standard error near 1 % at 400 trials (and the 2000
    // repetitions' own), so 0.85 is far from both 0.75 and 1.
    let quiet = std::fs::read_to_string(&path).unwrap().replace("inp_noise = 0.1", "inp_noise = 0.0");
    let rows = reference_rows(Experiment::from_text(&quiet, &path).unwrap(), 12);
    let ratio = rows.iter().map(|r| r.std_ratio).sum::<f64>() / rows.len() as f64;
    assert!(ratio < 0.85, "without input noise the std is {ratio:.3} of aihwkit's with it, on average over the 12 rows");
}

/// aihwkit's StandardHWATrainingPreset (aihwkit 1.1.0's tiles, 8-bit converters, constant noise
/// management on input ranges, no bound management, PCM-read weight noise, IR drop, columnwise
/// scaling): the shipped case, and the same with one scale per tile, which misses (1.1 pp at
/// 2000 trials).
#[test]
fn breast_cancer_mlp_matches_aihwkit_on_its_hwa_preset() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("experiments/aihwkit_breast_cancer_hwa_preset.toml");
    check_against_reference(Experiment::load(&path).unwrap(), 12);
    let per_tile = std::fs::read_to_string(&path).unwrap().replace("weight_scaling_columnwise = true", "weight_scaling_columnwise = false");
    let missed = misses(Experiment::from_text(&per_tile, &path).unwrap(), 12);
    assert!(!missed.is_empty(), "one scale per tile passed aihwkit's columnwise preset at every point");
}

/// Runs `exp` at [`TRIALS`] and checks every row of its `[reference]` (`rows` of them) against
/// the pass mark widened by the Monte Carlo error of both sides.
fn check_against_reference(exp: Experiment, rows: usize) {
    let missed = misses(exp, rows);
    assert!(missed.is_empty(), "{}", missed.join("\n"));
}

/// The rows of `exp`'s `[reference]` (`rows` of them, run at [`TRIALS`]) outside the pass mark
/// widened by the Monte Carlo error of both sides, each said in a line.
fn misses(exp: Experiment, rows: usize) -> Vec<String> {
    let c = reference_comparison(exp, rows);
    let mut missed = Vec::new();
    for r in &c.rows {
        let (n, m) = (r.trials as f64, r.ref_reps as f64);
        // The pass mark holds at >= 1000 trials; at fewer, widen it by the far tail of the Monte
        // Carlo error of both sides: of the means (std/sqrt(n), in pp) and of the stds (a std's
        // relative standard error is about 1/sqrt(2n)).
        let mean_tol = c.mean_tol_pp + Z * 100.0 * r.ref_std * (1.0 / n + 1.0 / m).sqrt();
        let std_tol = c.std_rel_tol + Z * (1.0 / (2.0 * n) + 1.0 / (2.0 * m)).sqrt();
        if r.mean_diff_pp.abs() > mean_tol {
            missed.push(format!(
                "{} {}: mean {:.3} % vs aihwkit {:.3} % (difference {:.3} pp, tolerance {mean_tol:.3} pp)",
                r.series,
                r.time_label,
                100.0 * r.mean,
                100.0 * r.ref_mean,
                r.mean_diff_pp
            ));
        }
        if (r.std_ratio - 1.0).abs() > std_tol {
            missed.push(format!(
                "{} {}: std {:.3} % vs aihwkit {:.3} % (ratio {:.3}, tolerance ±{std_tol:.3})",
                r.series,
                r.time_label,
                100.0 * r.std,
                100.0 * r.ref_std,
                r.std_ratio
            ));
        }
    }
    missed
}

/// `exp`'s comparison with its `[reference]` (`rows` rows), run at [`TRIALS`] on the fast CPU.
fn reference_comparison(mut exp: Experiment, rows: usize) -> aimc::results::ReferenceComparison {
    exp.trials = TRIALS;
    let out = run(&exp, &mut CpuBackend::fast(2), &mut Quiet);
    assert!(out.error.is_none(), "{:?}", out.error);
    let c = out.results.reference.expect("the experiment has a [reference]");
    assert_eq!(c.rows.len(), rows, "2 GDC settings x the times");
    c
}

/// The rows of `exp`'s comparison with its `[reference]`.
fn reference_rows(exp: Experiment, rows: usize) -> Vec<aimc::results::ReferenceRow> {
    reference_comparison(exp, rows).rows
}

/// aihwkit's default mapping keeps the raw weights in the tile (`weight_scaling_omega = 0`): on a
/// matrix with max|W| = 0.3 the output noise and ADC act on W x as it is, so the output error of an
/// ideal device is sqrt(out_noise² + Δ_ADC²/12) in the layer's own units, whatever max|W|. (A tile
/// normalised to max|W| = 1 would show 0.3 times that.) Inputs sit on the DAC grid with nm = 1, so
/// the DAC adds no error.
#[test]
fn periphery_acts_on_raw_weights_of_a_small_matrix() {
    use aimc::crossbar::{Gdc, MappedMatrix, Periphery, TileShape};
    use aimc::device::DeviceModel;
    use aimc::engine::plan::{run_outputs, AnalogLayer, RunConfig};
    let (n_out, n_in, batch) = (8usize, 16usize, 10usize);
    let w: Vec<f32> = aimc::rng::uniform_signed(n_out * n_in, 5).iter().map(|v| 0.3 * v).collect();
    let wmax = w.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    assert!((0.25..=0.3).contains(&wmax));
    let periphery = Periphery::default();
    assert_eq!(periphery.weight_scaling_omega, 0.0, "aihwkit's default mapping");
    let layer = AnalogLayer {
        mapped: MappedMatrix::new(&w, n_out as u32, n_in as u32, TileShape::default(), 0.0),
        bias: vec![0.0; n_out],
        activation: 0,
        conv: None,
        links: Default::default(),
        batchnorm: None,
    };
    // Multiples of the DAC step 1/63 with max |x| = 1 in every sample.
    let x: Vec<f32> = (0..batch * n_in).map(|i| if i % n_in == 0 { 1.0 } else { ((i * 37) % 127) as f32 / 63.0 - 1.0 }).collect();
    let trials = 400u32;
    let cfg = RunConfig {
        reads_per_programming: 1,
        device: DeviceModel::ideal(),
        periphery: periphery.clone(),
        gdc: Gdc::Off,
        key: aimc::rng::key(3, 0),
        trials,
        first_trial: 0,
        times: vec![1.0],
        max_chunk: 256,
        layer_noise: Vec::new(),
    };
    let y = &run_outputs(&mut aimc::engine::cpu::CpuBackend::new(2, 64), &[layer], &x, batch as u32, &cfg, &mut |_| {}).unwrap()[0];
    let mut sum2 = 0.0f64;
    for (i, &v) in y.iter().enumerate() {
        let (s, o) = ((i / n_out) % batch, i % n_out);
        let exact: f64 = (0..n_in).map(|k| w[o * n_in + k] as f64 * x[s * n_in + k] as f64).sum();
        sum2 += (v as f64 - exact).powi(2);
    }
    let n = y.len() as f64;
    let got = (sum2 / n).sqrt();
    let step = 2.0 * periphery.out_bound / ((1u64 << periphery.out_res_bits) as f64 - 2.0);
    let want = (periphery.out_noise.powi(2) + step * step / 12.0).sqrt();
    // The rms of n values has relative standard error ~1/sqrt(2n); Z of those is the far tail.
    let tol = Z * want / (2.0 * n).sqrt();
    assert!(
        (got - want).abs() <= tol,
        "output error rms {got:.5}, expected {want:.5} ± {tol:.5} (max|W| = {wmax:.3}; a normalised tile gives ~{:.5})",
        want * wmax as f64
    );
}
