//! The noise budget (`[budget]`): all sources off gives floating point to the last bit, a source
//! on alone draws exactly what a separate run with only that source draws, switching one source
//! off leaves the others' draws bit-identical, the alone costs plus the interaction add up to the
//! full cost, and the paired intervals are tighter than the unpaired ones.
use crate::common;

use aimc::config::Experiment;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const BASE: &str = r#"
name = "b"
workload = "classifier"
seed = 7
trials = 24
weight_error_trials = 0
gdc = "readout"
[model]
path = "models/digits_mlp.safetensors"
[data]
path = "data/digits.csv"
scale = 16.0
rows = [1347, 1497]
[device]
model = "pcm"
[periphery]
out_noise = 0.2
BUDGET
[sweep]
t = ["1d", "10y"]
"#;

fn results(text: &str) -> aimc::results::Results {
    common::run_ok(&mut common::cpu(), &common::experiment(text).unwrap_or_else(|e| panic!("{e}")))
}

fn config<'a>(r: &'a aimc::results::Results, name: &str, t: &str) -> &'a [f64] {
    &r.points
        .iter()
        .find(|p| p.labels.get("budget").map(String::as_str) == Some(name) && p.time_label == t)
        .unwrap_or_else(|| panic!("{name} at {t}"))
        .per_trial
}

#[test]
fn the_budget_is_exact_and_paired() {
    let r = results(&BASE.replace("BUDGET", "[budget]"));
    let fp = r.fp_baseline.unwrap();
    for t in ["1 d", "10 y"] {
        // All sources off: floating point, to the last bit, in every trial.
        assert!(config(&r, "ideal", t).iter().all(|&v| v == fp), "ideal at {t}: {:?} vs fp {fp}", config(&r, "ideal", t));
        // Every layer's noise off is the ideal run; every layer's noise on is the full run.
        assert_eq!(config(&r, "only layer 0", t).len(), 24);
    }
    // Only programming noise, as a separate run: the same draws, so the same per-trial values.
    let only = results(
        &BASE
            .replace("BUDGET", "")
            .replace("out_noise = 0.2", "out_noise = 0.0\ninp_res_bits = 0\nout_res_bits = 0\nout_bound = 0.0")
            .replace("model = \"pcm\"", "model = \"pcm\"\ndrift_scale = 0.0\nread_noise_scale = 0.0"),
    );
    // All but the ADC, as a separate run: the other sources' draws are bit-identical.
    let without = results(&BASE.replace("BUDGET", "").replace("out_noise = 0.2", "out_noise = 0.2\nout_res_bits = 0\nout_bound = 0.0"));
    for (ti, t) in ["1 d", "10 y"].iter().enumerate() {
        assert_eq!(config(&r, "only programming", t), &only.points[ti].per_trial[..], "only programming at {t}");
        assert_eq!(config(&r, "without adc", t), &without.points[ti].per_trial[..], "without adc at {t}");
    }
    assert_eq!(r.budget.len(), 2);
    for b in &r.budget {
        // The alone costs plus the interaction add up to the full cost.
        let sum: f64 = b.sources.iter().map(|s| s.alone).sum();
        assert!((sum + b.interaction - b.cost).abs() < 1e-12, "{} + {} vs {}", sum, b.interaction, b.cost);
        assert!(b.cost > 0.0, "noise costs accuracy at {}", b.time_label);
        // Per layer: both layers of the MLP, each with its own paired share.
        assert_eq!(b.layers.iter().map(|l| l.source.as_str()).collect::<Vec<_>>(), ["layer 0", "layer 1"]);
        assert!(b.layers.iter().all(|l| l.alone_lo <= l.alone && l.alone <= l.alone_hi));
        // The alone cost of a source equals the direct paired measurement ideal − only.
        let direct: f64 = config(&r, "ideal", &b.time_label).iter().zip(config(&r, "only drift", &b.time_label)).map(|(a, o)| a - o).sum::<f64>() / 24.0;
        let drift = b.sources.iter().find(|s| s.source == "drift").unwrap();
        assert!((drift.alone - direct).abs() < 1e-12);
    }
    // Sensitivity: a noise scale at 0 is that source removed, draw for draw.
    let r2 = results(&BASE.replace("BUDGET", "[budget]\nsensitivity = true"));
    for t in ["1 d", "10 y"] {
        assert_eq!(config(&r2, "knob prog_noise_scale x0", t), config(&r2, "without programming", t));
        assert_eq!(config(&r2, "knob out_noise x0", t), config(&r2, "without output_noise", t));
    }
    // The interaction's interval is the paired one of its per-trial values, and holds its mean;
    // the costliest source is named only where its paired interval against the next excludes 0.
    for b in &r.budget {
        let [lo, hi] = b.interaction_ci.expect("the interaction carries its interval");
        assert!(lo <= b.interaction && b.interaction <= hi, "{lo} {} {hi}", b.interaction);
        let t = &b.time_label;
        let mut top: Vec<&aimc::results::BudgetSource> = b.sources.iter().collect();
        top.sort_by(|x, y| y.alone.total_cmp(&x.alone));
        let d: aimc::stats::Moments =
            config(&r, &format!("only {}", top[1].source), t).iter().zip(config(&r, &format!("only {}", top[0].source), t)).map(|(a, b)| a - b).collect();
        let ci = aimc::stats::mean_t(&d, r.confidence).unwrap();
        assert_eq!(b.dominant_resolved, ci.lo > 0.0, "{t}: {} vs {}: {ci:?}", top[0].source, top[1].source);
    }
    // A removal whose paired interval lies below 0 (that noise off is worse than all on) is said
    // in the report's sentence, and only then.
    let doc = |r: &aimc::results::Results| aimc::report::markdown::to_markdown(&aimc::report::sections::document(r, &[]).unwrap());
    assert!(!doc(&r).contains("makes it worse"));
    let mut worse = r.clone();
    let l = &mut worse.budget[1].layers[1];
    (l.removal, l.removal_lo, l.removal_hi) = (-0.07, -0.088, -0.053);
    let text = doc(&worse);
    assert!(text.contains("removing layer 1's noise (-7.00 \\[-8.80, -5.30\\] points) makes it worse, not better"), "{text}");
    let knobs = &r2.budget[0].sensitivity;
    assert!(knobs.iter().any(|k| k.knob == "out_res_bits" && k.rel == 0.25), "ADC +2 bits: a quarter of the step");
    // Paired intervals (common random numbers) against unpaired ones on the same trials.
    let tighter = r.paired.iter().filter(|p| p.axis == "budget" && p.ci.half_width() < p.unpaired_half_width).count();
    assert!(tighter * 2 > r.paired.iter().filter(|p| p.axis == "budget").count(), "paired intervals should mostly be tighter");
}

#[test]
fn bad_budgets_are_refused() {
    let bad = |text: &str, needle: &str| {
        let e = Experiment::from_text(text, &root().join("experiments/test_budget.toml")).expect_err("should fail").to_string();
        assert!(e.contains(needle), "{e}");
    };
    bad(&BASE.replace("BUDGET", "[budget]\nsources = []"), "budget.sources");
    bad(&BASE.replace("BUDGET", "[budget]\nsources = [\"gravity\"]"), "gravity");
    bad(&BASE.replace("BUDGET", "[budget]").replace("trials = 24", "trials = 24\ncommon_random_numbers = false"), "common_random_numbers");
}

/// Adaptive trials stop each configuration at its own count, which a budget cannot pair.
#[test]
fn adaptive_trials_are_refused_for_a_budget() {
    let mut e = Experiment::from_text(&BASE.replace("BUDGET", "[budget]"), &root().join("experiments/test_budget.toml")).unwrap();
    let err = e.set_adaptive(0.01, 1000).expect_err("a budget pairs configurations trial by trial").to_string();
    assert!(err.contains("--ci-halfwidth with a [budget]") && err.contains("fixed count"), "{err}");
}

#[test]
fn the_shipped_budget_validates() {
    let e = Experiment::load(&root().join("experiments/digits_budget.toml")).unwrap();
    assert!(e.axes.iter().any(|a| a.name == "budget"));
    // full, ideal, each of the six active sources and each of the two layers alone and removed,
    // and 4 settings of each of the 6 knobs.
    assert_eq!(e.points.len(), 2 + 2 * 6 + 2 * 2 + 6 * 4);
}

/// A small budget (6 trials of 50 rows at one time) for the backend comparison.
fn small(budget: &str) -> String {
    BASE.replace("BUDGET", budget)
        .replace("trials = 24", "trials = 6")
        .replace("rows = [1347, 1497]", "rows = [1347, 1397]")
        .replace("t = [\"1d\", \"10y\"]", "t = [\"1d\"]")
}

/// Every configuration of a budget has exactly the per-trial numbers of the same settings run as
/// a plain sweep point, on the CPU and on the GPU (lavapipe included), and the two backends agree
/// trial by trial on every configuration. Any reuse of device state or periphery work between the
/// configurations of a budget must keep this: it is the common-random-numbers contract.
#[test]
fn each_configuration_is_its_plain_run_on_both_backends() {
    let budget = common::experiment(&small("[budget]")).unwrap_or_else(|e| panic!("{e}"));
    // Only read noise on: programming noise, drift and the periphery's sources off.
    let only_read = small("")
        .replace("out_noise = 0.2", "out_noise = 0.0\ninp_res_bits = 0\nout_res_bits = 0\nout_bound = 0.0")
        .replace("model = \"pcm\"", "model = \"pcm\"\nprog_noise_scale = 0.0\ndrift_scale = 0.0");
    // All but the output noise: the device state of `full`, a different periphery.
    let without_out = small("").replace("out_noise = 0.2", "out_noise = 0.0");
    let plain: Vec<(&str, aimc::config::Experiment)> = vec![
        ("full", common::experiment(&small("")).unwrap()),
        ("only read", common::experiment(&only_read).unwrap()),
        ("without output_noise", common::experiment(&without_out).unwrap()),
    ];
    let cpu_budget = common::run_ok(&mut common::cpu(), &budget);
    for (name, e) in &plain {
        let r = common::run_ok(&mut common::cpu(), e);
        assert_eq!(config(&cpu_budget, name, "1 d"), &r.points[0].per_trial[..], "cpu: {name} in the budget vs alone");
    }
    let Some(mut gpu) = common::gpu(256) else { return };
    let gpu_budget = common::run_ok(&mut gpu, &budget);
    for (name, e) in &plain {
        let r = common::run_ok(&mut gpu, e);
        assert_eq!(config(&gpu_budget, name, "1 d"), &r.points[0].per_trial[..], "gpu: {name} in the budget vs alone");
    }
    assert_eq!(cpu_budget.points.len(), gpu_budget.points.len());
    for (c, g) in cpu_budget.points.iter().zip(&gpu_budget.points) {
        assert_eq!(c.per_trial_correct, g.per_trial_correct, "{} at {}: cpu vs gpu", c.series, c.time_label);
    }
}

/// Stuck devices as a budget source (`stuck`): "without stuck" is the same file without them,
/// draw for draw (the fault stream is apart from every other), and "only stuck" is a run with
/// only stuck devices, on the CPU and on the GPU.
#[test]
fn stuck_devices_are_a_source_of_their_own() {
    source_of_its_own("stuck", &|text| text.replace("model = \"pcm\"", "model = \"pcm\"\nstuck_set = 0.01\nstuck_reset = 0.03"));
}

/// Input noise after the DAC as a budget source (`input_noise`): the same, its stream apart from
/// every other, and "only input_noise" with GDC's readout taken through it.
#[test]
fn input_noise_is_a_source_of_its_own() {
    source_of_its_own("input_noise", &|text| text.replace("out_noise = 0.2", "out_noise = 0.2\ninp_noise = 0.3"));
}

/// Budget source `source`, switched on in the small file by `with`: "without SOURCE" is the file
/// without it and "only SOURCE" a run with it alone, trial by trial, on the CPU and on the GPU,
/// and it costs accuracy alone.
fn source_of_its_own(source: &str, with: &dyn Fn(String) -> String) {
    let budget = common::experiment(&with(small("[budget]"))).unwrap_or_else(|e| panic!("{e}"));
    let without = common::experiment(&small("")).unwrap();
    // Everything else off: the converters, the output noise and the device's noise.
    let only = common::experiment(
        &with(small(""))
            .replace("out_noise = 0.2", "out_noise = 0.0\ninp_res_bits = 0\nout_res_bits = 0\nout_bound = 0.0")
            .replace("model = \"pcm\"", "model = \"pcm\"\nprog_noise_scale = 0.0\ndrift_scale = 0.0\nread_noise_scale = 0.0"),
    )
    .unwrap();
    let mut backends: Vec<Box<dyn aimc::engine::Backend>> = vec![Box::new(common::cpu())];
    if let Some(g) = common::gpu(256) {
        backends.push(Box::new(g));
    }
    let (without_name, only_name) = (format!("without {source}"), format!("only {source}"));
    for be in &mut backends {
        let r = common::run_ok(&mut **be, &budget);
        assert!(r.budget[0].sources.iter().any(|s| s.source == source), "{source} is listed");
        for (name, e) in [(&without_name, &without), (&only_name, &only)] {
            let plain = common::run_ok(&mut **be, e);
            assert_eq!(config(&r, name, "1 d"), &plain.points[0].per_trial[..], "{}: {name} in the budget vs alone", be.adapter().name);
        }
        assert!(config(&r, &only_name, "1 d").iter().any(|&v| v < r.fp_baseline.unwrap()), "{source} alone costs accuracy");
    }
}

/// A budget's configurations run as one plan in checkpoint chunks, recorded point by point; a
/// journal cut anywhere (after a few configurations' first chunks, part-way through the second
/// chunks) resumes to the uninterrupted run's per-trial results exactly, and the configurations
/// left behind catch up as one plan.
#[test]
fn a_grouped_budget_resumes_from_any_cut_of_its_journal() {
    use aimc::run::journal::{path_for, Journal};
    let text = BASE
        .replace("BUDGET", "[budget]\nsources = [\"programming\", \"output_noise\"]")
        .replace("trials = 24", "trials = 300")
        .replace("rows = [1347, 1497]", "rows = [1347, 1377]");
    let e = common::experiment(&text).unwrap_or_else(|e| panic!("{e}"));
    let configs = e.points.len();
    assert_eq!(configs, 2 + 2 * 2 + 2 * 2, "full, ideal, two sources and two layers alone and removed");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("budget-resume").join("out");
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    let run = || {
        let mut j = Journal::open(&dir, &e.resolved).unwrap();
        let o = aimc::run::run_journaled(&e, &mut aimc::engine::cpu::CpuBackend::fast(2), &mut aimc::run::Quiet, Some(&mut j));
        assert!(o.error.is_none(), "{:?}", o.error);
        o.results
    };
    let whole = run();
    // The header, then every configuration's first chunk (one point's first chunk of work shared
    // out), then every configuration's later chunks.
    let lines: Vec<String> = std::fs::read_to_string(path_for(&dir)).unwrap().lines().map(str::to_string).collect();
    assert!(lines.len() > 2 * configs && (lines.len() - 1).is_multiple_of(configs), "{} lines", lines.len());
    assert_eq!(aimc::run::first_checkpoint_chunk(configs), aimc::run::FIRST_CHECKPOINT_CHUNK / configs as u32);
    assert!(lines[1].contains(&format!("\"trials\":{}", aimc::run::first_checkpoint_chunk(configs))), "{}", &lines[1][..80]);
    for cut in [1 + 3, 1 + configs + 4] {
        std::fs::write(path_for(&dir), lines[..cut].join("\n") + "\n").unwrap();
        let again = run();
        assert_eq!(again.points.len(), whole.points.len());
        for (p, q) in whole.points.iter().zip(&again.points) {
            assert_eq!((&p.series, &p.per_trial_correct, &p.summary), (&q.series, &q.per_trial_correct, &q.summary), "cut after {cut} lines");
        }
    }
}
