//! The moe workload end to end (tiers-energy spec): an ideal crossbar reproduces the floating-point
//! layer, tier noise and converter noise raise the output error, the GPU agrees with the CPU twins
//! trial by trial, the cost model's energy adds up and fewer tiles with more tiers bring tier
//! conflicts, and bad architecture or cost files fail before any compute naming the field.
use crate::common;

use aimc::config::Experiment;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

use crate::common::{experiment as exp, run_ok as run_on};

const SMALL: &str = r#"
name = "m"
workload = "moe"
seed = 5
trials = 6
[moe]
d_model = 16
d_ff = 24
experts = 4
top_k = 2
tokens = 12
gpu_batches = [1, 16]
[arch]
tiles = 0
tiers = 4
rows = 16
cols = 16
[tile]
max_in = 16
max_out = 16
[periphery]
weight_scaling_omega = 1.0
[sweep]
t = ["1h"]
"#;

#[test]
fn an_ideal_crossbar_reproduces_the_floating_point_layer() {
    // Every expert chosen (top_k = experts), so routing cannot flip on a near tie.
    let text = SMALL
        .replace("top_k = 2", "top_k = 4")
        .replace("[periphery]", "[device]\nmodel = \"ideal\"\n[periphery]\ninp_res_bits = 16\nout_res_bits = 16\nout_noise = 0.0\nout_bound = 0.0");
    let r = run_on(&mut common::cpu(), &exp(&text).unwrap());
    for v in &r.points[0].per_trial {
        assert!(*v < 2e-3, "ideal crossbar: relative error {v}");
    }
}

#[test]
fn noise_raises_the_error_and_the_cost_model_adds_up() {
    let text = SMALL.replace("t = [\"1h\"]", "t = [\"1h\"]\ntier_noise_slope = [0.0, 3.0]");
    let r = run_on(&mut common::cpu(), &exp(&text).unwrap());
    let (flat, steep) = (&r.points[0], &r.points[1]);
    assert!(flat.summary.mean > 0.01, "PCM noise must show: {}", flat.summary.mean);
    assert!(steep.summary.mean > flat.summary.mean, "noisier upper tiers: {} vs {}", steep.summary.mean, flat.summary.mean);
    let m = flat.moe.as_ref().expect("the first time's point carries the cost model");
    let e = &m.energy_per_token;
    let sum = e.mvm_pj + e.communication_pj + e.digital_pj + e.attention_pj + e.dram_pj + e.passive_pj;
    assert!((e.total_pj - sum).abs() <= 1e-9 * sum, "energy breakdown {sum} vs total {}", e.total_pj);
    assert!(m.tiles_used > 0 && m.utilisation > 0.0 && m.utilisation <= 1.0);
    assert_eq!(m.gpu.len(), 2);
    assert_eq!(m.tier_activations.len(), m.tiles as usize);
}

#[test]
fn more_tiers_on_fewer_tiles_bring_tier_conflicts() {
    let text = SMALL.replace("t = [\"1h\"]", "t = [\"1h\"]\ntiers = [1, 8]").replace("[moe]", "[moe]\naccuracy = false");
    let r = run_on(&mut common::cpu(), &exp(&text).unwrap());
    let (one, eight) = (r.points[0].moe.as_ref().unwrap(), r.points[1].moe.as_ref().unwrap());
    assert!(one.tiles > eight.tiles, "auto tiles: {} with 1 tier vs {} with 8", one.tiles, eight.tiles);
    assert_eq!(one.tier_conflicts.max, 0.0, "one tier per tile cannot conflict");
    assert!(eight.tier_conflicts.mean > 0.0);
    assert!(eight.latency_ns.mean > one.latency_ns.mean);
    // Cost-model-only runs report the batch's mean per-token latency per trial.
    assert!((r.points[0].summary.mean - one.latency_ns.mean).abs() < 1e-6 * one.latency_ns.mean);
}

#[test]
fn gpu_matches_the_cpu_twin_for_the_moe_workload() {
    let Some(mut gpu) = common::gpu(256) else {
        return;
    };
    let e = exp(&SMALL.replace("top_k = 2", "top_k = 4")).unwrap();
    let (a, b) = (run_on(&mut common::cpu(), &e), run_on(&mut gpu, &e));
    assert_eq!(a.points[0].per_trial.len(), b.points[0].per_trial.len());
    assert!(!a.points[0].per_trial.is_empty());
    for (x, y) in a.points[0].per_trial.iter().zip(&b.points[0].per_trial) {
        assert!((x - y).abs() <= aimc::tolerances::WORKLOAD_METRIC_REL * x.abs().max(1e-3), "cpu {x} gpu {y}");
    }
}

fn expect_err(text: &str, needles: &[&str]) {
    let e = exp(text).err().unwrap_or_else(|| panic!("should fail: {text}"));
    for n in needles {
        assert!(e.contains(n), "error should mention {n:?}: {e}");
    }
}

#[test]
fn bad_architectures_and_cost_files_are_named() {
    expect_err(&SMALL.replace("tiers = 4", "tiers = 0"), &["tiers"]);
    expect_err(&SMALL.replace("tiles = 0", "tiles = 1"), &["tier-chunks", "raise tiles or tiers"]);
    expect_err(&SMALL.replace("top_k = 2", "top_k = 5"), &["top_k"]);
    expect_err(&SMALL.replace("[moe]", "[moe]\ngpu_batches = [0]").replace("gpu_batches = [1, 16]\n", ""), &["gpu_batches"]);
    expect_err(&SMALL.replace("t = [\"1h\"]", "t = [\"1h\"]\naccuracy = [true, false]"), &["accuracy"]);
    expect_err(&SMALL.replace("[arch]", "[arch]\ntier_noise = [{ prog = 1.0, drift = 1.0, read = 1.0 }]"), &["tier_noise"]);
    expect_err(&SMALL.replace("workload = \"moe\"", "workload = \"weight_error\""), &["[moe]"]);
    let dir = std::env::temp_dir().join(format!("aimc-moe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let table = aimc::arch::cost::MOE_3D_TABLE.replacen("value = 100.0", "value = -100.0", 1);
    let p = dir.join("bad.toml");
    std::fs::write(&p, table).unwrap();
    expect_err(&format!("{SMALL}\n[cost]\ntiers = {:?}\n", p.display().to_string()), &["cost.tiers", "must be"]);
    expect_err(&format!("{SMALL}\n[cost]\ngpu = \"missing.toml\"\n"), &["cost.gpu", "missing.toml"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn shipped_moe_experiments_validate() {
    for f in ["moe_3d.toml", "moe_3d_full.toml"] {
        let e = Experiment::load(&root().join("experiments").join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(e.points.len() >= 4, "{f}: a sweep over tiers");
    }
}

/// Weights from a .safetensors state dict: the recipe's own weights written to a file give the
/// recipe's results trial for trial; a tensor of the wrong shape is named.
#[test]
fn moe_weights_from_a_state_dict() {
    use safetensors::tensor::{Dtype, TensorView};
    let e = exp(SMALL).unwrap();
    let (s, _) = e.points[0].moe.clone().unwrap();
    let w = aimc::workload::moe::weights(&s);
    let mut named: Vec<(String, Vec<usize>, Vec<u8>)> =
        vec![("router.weight".into(), vec![w.router.weight.rows, w.router.weight.cols], bytes(&w.router.weight.data))];
    for (i, (a, b)) in w.experts.iter().enumerate() {
        named.push((format!("experts.{i}.w1.weight"), vec![a.weight.rows, a.weight.cols], bytes(&a.weight.data)));
        named.push((format!("experts.{i}.w2.weight"), vec![b.weight.rows, b.weight.cols], bytes(&b.weight.data)));
    }
    let dir = std::env::temp_dir().join(format!("aimc-moe-st-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("moe.safetensors");
    let views: Vec<(String, TensorView)> = named.iter().map(|(n, sh, b)| (n.clone(), TensorView::new(Dtype::F32, sh.clone(), b).unwrap())).collect();
    safetensors::serialize_to_file(views, None, &path).unwrap();
    let with = exp(&SMALL.replace("[moe]", &format!("[moe]\nmodel = {:?}", path.display().to_string()))).unwrap();
    let (a, b) = (run_on(&mut common::cpu(), &e), run_on(&mut common::cpu(), &with));
    assert_eq!(a.points[0].per_trial, b.points[0].per_trial);
    let wrong = SMALL.replace("[moe]", &format!("[moe]\nmodel = {:?}", path.display().to_string())).replace("d_ff = 24", "d_ff = 32");
    let err = exp(&wrong).expect_err("shape mismatch");
    assert!(err.contains("experts.0.w1.weight") && err.contains("d_ff"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The shipped digits MoE classifier (`experiments/moe_digits.toml`), cut to a few trials and one
/// sweep point. The test images are the tokens; each trial counts its correct predictions.
fn digits_moe(trials: u32, extra: &str) -> Experiment {
    let text = std::fs::read_to_string(root().join("experiments/moe_digits.toml"))
        .unwrap()
        .replace("trials = 200", &format!("trials = {trials}"))
        .replace("t = [\"1s\", \"1d\", \"1y\", \"10y\"]", "t = [\"1d\"]")
        .replace("tier_noise_slope = [0.0, 1.0, 3.0]", "")
        + extra;
    exp(&text).unwrap()
}

#[test]
fn the_digits_moe_classifier_reports_an_accuracy_distribution() {
    let r = run_on(&mut common::cpu(), &digits_moe(8, ""));
    assert_eq!(r.metric, "test accuracy (MoE classifier)");
    assert_eq!(r.metric_column, "moe_test_accuracy", "trials.csv names the column for what it holds");
    assert!(r.higher_is_better);
    // The floating-point accuracy of the shipped model, as `train-digits-moe` reports it.
    let fp = r.fp_baseline.expect("a classifier has a floating-point baseline");
    assert!((fp - 428.0 / 450.0).abs() < 1e-12, "floating-point accuracy {fp}");
    let p = &r.points[0];
    let correct = p.per_trial_correct.as_ref().expect("per-trial correct counts");
    assert_eq!(correct.len(), 8);
    for (c, a) in correct.iter().zip(&p.per_trial) {
        assert_eq!(*a, *c as f64 / 450.0);
    }
    assert!(p.summary.mean < fp && p.summary.mean > fp - 0.05, "PCM noise after a day costs a little: {} vs {fp}", p.summary.mean);
    assert!(p.test_set_ci.is_some() && p.tail.is_some(), "classifier statistics: test-set interval and tail risk");
    assert!(p.moe.as_ref().is_some_and(|m| m.tokens == 450), "the schedule runs the test images as one batch");
}

#[test]
fn an_ideal_crossbar_classifies_as_the_floating_point_moe() {
    let ideal = "\n[periphery]\ninp_res_bits = 0\nout_res_bits = 0\nout_noise = 0.0\nout_bound = 0.0\n";
    let text = std::fs::read_to_string(root().join("experiments/moe_digits.toml")).unwrap().replace("model = \"pcm\"", "model = \"ideal\"");
    assert!(text.contains("model = \"ideal\""));
    let r = run_on(&mut common::cpu(), &exp(&(text.replace("trials = 200", "trials = 3").replace("tier_noise_slope = [0.0, 1.0, 3.0]", "") + ideal)).unwrap());
    let fp = r.fp_baseline.unwrap();
    for c in r.points[0].per_trial_correct.as_ref().unwrap() {
        // f32 sums in another order may flip a near-tie of the router or of two class logits.
        assert!((*c as f64 - fp * 450.0).abs() <= 2.0, "ideal crossbar: {c} correct, floating point {}", fp * 450.0);
    }
}

#[test]
fn the_gpu_classifies_as_the_cpu_twin() {
    let Some(mut gpu) = common::gpu(256) else {
        return;
    };
    let e = digits_moe(4, "");
    let (a, b) = (run_on(&mut common::cpu(), &e), run_on(&mut gpu, &e));
    for (x, y) in a.points[0].per_trial_correct.as_ref().unwrap().iter().zip(b.points[0].per_trial_correct.as_ref().unwrap()) {
        // An ADC step flip can change a near-tie: a few images of 450.
        assert!(x.abs_diff(*y) <= 4, "cpu {x} gpu {y} correct");
    }
}

#[test]
fn a_moe_classifier_with_mismatched_data_is_named() {
    let base = std::fs::read_to_string(root().join("experiments/moe_digits.toml")).unwrap();
    expect_err(&base.replace("d_out = 10", "d_out = 8"), &["label 9", "moe.d_out"]);
    expect_err(&base.replace("d_model = 64", "d_model = 32"), &["64 features", "moe.d_model = 32"]);
    expect_err(&base.replace("[moe]", "[moe]\naccuracy = false"), &["[data]", "moe.accuracy = true"]);
}

/// `cargo run --release -- train-digits-moe` rebuilds the shipped model byte for byte.
#[test]
#[cfg(feature = "train")]
fn the_shipped_moe_model_is_rebuilt_by_its_command() {
    let text = std::fs::read_to_string(root().join("experiments/data/digits.csv")).unwrap();
    let (train, _) = aimc::train::split_digits(&aimc::train::parse_digits_csv(&text).unwrap());
    let net = aimc::train::moe::train_moe(&train, &aimc::train::moe::MoeTrainConfig::default());
    let bytes = aimc::train::moe::safetensors_bytes(&net, aimc::train::moe::TRAINING_COMMAND).unwrap();
    assert!(bytes == std::fs::read(root().join("experiments/models/digits_moe.safetensors")).unwrap(), "retrained bytes differ from the shipped file");
}
