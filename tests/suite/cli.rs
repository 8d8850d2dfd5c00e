//! The `aimc` binary end to end: the smoke experiment on the CPU twin and on the GPU backend
//! (software Vulkan here), a report rebuilt from results equal to the original, and one test per
//! class of bad input, each failing before any compute with a message that names the field or
//! file and writing no results.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

pub(crate) fn aimc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_aimc"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tmp(name: &str) -> PathBuf {
    // Under target/ (cargo's directory for test files), so runs leave nothing in /tmp.
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs the smoke experiment into a directory of its own (`tag` keeps concurrent tests apart).
fn run_smoke(backend: &str, tag: &str) -> PathBuf {
    let out = tmp(&format!("smoke-{backend}-{tag}"));
    let o = aimc().args(["run", root().join("experiments/smoke.toml").to_str().unwrap(), "--backend", backend, "--out"]).arg(&out).output().unwrap();
    assert!(o.status.success(), "aimc run failed:\n{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    for f in ["results.json", "trials.csv", "report.md", "report.html"] {
        assert!(out.join(f).is_file(), "{f} missing in {}", out.display());
    }
    out
}

pub(crate) fn results(dir: &Path) -> aimc::results::Results {
    aimc::results::Results::load(dir).unwrap()
}

#[test]
fn smoke_on_cpu_and_report_rebuild_is_identical() {
    let out = run_smoke("cpu", "rebuild");
    let r = results(&out);
    assert_eq!(r.points.len(), 4, "2 GDC settings x 2 times");
    assert_eq!(r.trials, 8);
    assert!(r.fp_baseline.unwrap() > 0.9);
    for p in &r.points {
        assert_eq!(p.per_trial.len(), 8);
        assert_eq!(p.per_trial_correct.as_ref().unwrap().len(), 8);
        let pooled = p.pooled.as_ref().unwrap();
        assert_eq!(pooled.trials, 800);
        assert!(pooled.clopper_pearson.lo <= pooled.proportion && pooled.proportion <= pooled.clopper_pearson.hi);
    }
    // The CSV has one row per (point, time, trial) plus the header.
    let csv = std::fs::read_to_string(out.join("trials.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 4 * 8);
    // Rebuild the plots and report from results.json: byte-identical.
    let names: Vec<PathBuf> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().path()).filter(|p| p.file_name().unwrap() != "results.json").collect();
    let before: Vec<Vec<u8>> = names.iter().map(|p| std::fs::read(p).unwrap()).collect();
    for p in &names {
        if p.extension().is_some_and(|e| e != "csv") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let o = aimc().arg("report").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for (p, b) in names.iter().zip(&before) {
        let now = std::fs::read(p).unwrap();
        let first = now.iter().zip(b.iter()).position(|(x, y)| x != y);
        assert!(now == *b, "{} differs after `aimc report` (lengths {} vs {}, first difference at byte {first:?})", p.display(), now.len(), b.len());
    }
}

/// The share of (trial, sample) classifications that may differ between the fast CPU kernels and the
/// GPU on the same streams. A class can change only through an ADC output one step apart (at most
/// `ADC_FLIP_FRACTION` of outputs, in practice ~0.03 %: pre-ADC values differ by ~1e-6 against a
/// step of 24/510) whose logit shift of one step crosses the sample's top-two margin; half a percent
/// (4 of the smoke run's 8 × 100 per point) leaves room for that and still fails on any systematic
/// difference, which moves every trial.
const CLASS_FLIP_FRACTION: f64 = 0.005;

#[test]
fn smoke_on_gpu_matches_cpu_counts_closely() {
    if common::gpu(256).is_none() {
        return;
    }
    let cpu = results(&run_smoke("cpu", "vs-gpu"));
    let gpu = results(&run_smoke("gpu", "vs-cpu"));
    assert_ne!(gpu.adapter.backend, "cpu");
    assert_eq!(cpu.points.len(), gpu.points.len(), "sweep points");
    for (a, b) in cpu.points.iter().zip(&gpu.points) {
        let (ca, cb) = (a.per_trial_correct.as_ref().unwrap(), b.per_trial_correct.as_ref().unwrap());
        assert_eq!(ca.len(), cb.len(), "{} {}: trials", a.series, a.time_label);
        assert!(!ca.is_empty());
        // Same RNG streams: counts agree up to rare ADC-rounding flips from transcendental error.
        let diff: u32 = ca.iter().zip(cb).map(|(x, y)| x.abs_diff(*y)).sum();
        // Trials × test samples: the pooled count of classifications.
        let classified = a.pooled.as_ref().expect("classifier points carry pooled counts").trials as f64;
        let allowed = (CLASS_FLIP_FRACTION * classified).ceil() as u32;
        assert!(diff <= allowed, "{} {}: {diff} of {classified} classifications differ (allowed {allowed}): cpu {ca:?} gpu {cb:?}", a.series, a.time_label);
    }
}

/// Writes an experiment next to the shipped data (paths in it are relative to the file).
pub(crate) fn bad_experiment(name: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let text = std::fs::read_to_string(root().join("experiments/smoke.toml")).unwrap();
    let dir = tmp(name);
    let text = edit(text)
        .replace("models/digits_mlp.safetensors", root().join("experiments/models/digits_mlp.safetensors").to_str().unwrap())
        .replace("data/digits.csv", root().join("experiments/data/digits.csv").to_str().unwrap());
    let p = dir.join("exp.toml");
    std::fs::write(&p, text).unwrap();
    p
}

pub(crate) fn expect_error(exp: &Path, needles: &[&str]) {
    for cmd in ["check", "run"] {
        let out = exp.parent().unwrap().join("out");
        let extra = if cmd == "run" { vec!["--backend", "cpu", "--out", out.to_str().unwrap()] } else { vec![] };
        let o = aimc().args([cmd, exp.to_str().unwrap()]).args(extra).output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{cmd} should fail");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.starts_with("Error: "), "{err}");
        for n in needles {
            assert!(err.contains(n), "`aimc {cmd}` error should mention {n:?}: {err}");
        }
        assert!(!err.contains("panicked"), "{err}");
        assert!(!out.exists(), "a failed validation must not write results");
    }
}

#[test]
fn unknown_field_is_named() {
    let p = bad_experiment("unknown", |t| t.replace("trials = 8", "trials = 8\ntrails = 3"));
    expect_error(&p, &["trails", "exp.toml"]);
    let p = bad_experiment("unknown-dev", |t| format!("{t}\n[device]\nmodel = \"pcm\"\ngmax = 20\n"));
    expect_error(&p, &["device.gmax", "unknown field"]);
}

/// A measured drift table (`[device.drift_table]`, aihwkit's `CustomDriftPCMLikeNoiseModel`): with
/// programming, read and output noise off, a table of one ν for every device leaves nothing random
/// (every trial the same), a measured one spreads the trials; two tables sweep as a device field
/// on the same draws; and a bad table is named by its field before any compute.
/// Runs the test experiment with its GDC axis replaced by `axis` (a sweep over two device tables)
/// and `quiet` appended (every other noise source off): exactly the points whose series `still`
/// picks (a table that leaves its source nothing random) have no spread, the other table's
/// spread the trials on the same draws.
fn two_tables_on_the_same_draws(name: &str, axis: &str, quiet: &str, still: impl Fn(&str) -> bool) -> aimc::results::Results {
    let p = bad_experiment(name, |t| t.replace("gdc = [\"off\", \"readout\"]", axis) + "\n" + quiet);
    let out = p.parent().unwrap().join("out");
    let o = aimc().args(["run", p.to_str().unwrap(), "--backend", "cpu", "--out", out.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = results(&out);
    assert_eq!(r.points.len(), 4);
    for pt in &r.points {
        assert_eq!(pt.summary.std == 0.0, still(&pt.series), "{} {}: std {}", pt.series, pt.time_label, pt.summary.std);
    }
    r
}

#[test]
fn a_measured_drift_table_runs_sweeps_and_is_checked() {
    let flat = "{ g = [0.0, 25.0], nu_mean = [0.2, 0.2], nu_std = [0.0, 0.0] }";
    let measured = "{ g = [0.0, 10.0, 25.0], nu_mean = [0.08, 0.05, 0.03], nu_std = [0.03, 0.02, 0.01] }";
    let quiet = "[device]\nprog_noise_scale = 0.0\nread_noise_scale = 0.0\n[periphery]\nout_noise = 0.0\n";
    let r = two_tables_on_the_same_draws("drift-table", &format!("drift_table = [{flat}, {measured}]"), quiet, |series| series.contains("0.2"));
    let at = |flat: bool, label: &str| r.points.iter().find(|p| p.series.contains("0.2") == flat && p.time_label == label).unwrap().summary.mean;
    assert_ne!(at(true, "1 y"), at(false, "1 y"), "the two tables drift differently");
    let bad = |name: &str, table: &str, needles: &[&str]| {
        let p = bad_experiment(name, |t| format!("{t}\n[device.drift_table]\n{table}\n"));
        expect_error(&p, needles);
    };
    bad("dt-short", "g = [0.0, 20.0]\nnu_mean = [0.1, 0.1]\nnu_std = [0.0, 0.0]", &["device.drift_table.g spans [0, 20]", "g_max = 25"]);
    bad("dt-order", "g = [0.0, 25.0, 10.0]\nnu_mean = [0.1, 0.1, 0.1]\nnu_std = [0.0, 0.0, 0.0]", &["device.drift_table.g[2] = 10 follows 25"]);
    bad("dt-len", "g = [0.0, 25.0]\nnu_mean = [0.1]\nnu_std = [0.0, 0.0]", &["device.drift_table.nu_mean has 1 values for 2 conductances"]);
    bad("dt-field", "g = [0.0, 25.0]\nnu_mean = [0.1, 0.1]\nnu_sd = [0.0, 0.0]", &["device.drift_table", "nu_sd"]);
    // A model without drift would ignore the table: refused unless the file sets the drift scale.
    let p = bad_experiment("dt-ideal", |t| {
        format!("{t}\n[device]\nmodel = \"ideal\"\n[device.drift_table]\ng = [0.0, 25.0]\nnu_mean = [0.1, 0.1]\nnu_std = [0.0, 0.0]\n")
    });
    expect_error(&p, &["device.drift_table on device.model = \"ideal\"", "drift_scale = 1.0"]);
}

/// Several conductance pairs per weight (`device.pair_significance`): a sweep over layouts runs,
/// one pair written out (`[1.0]`, or one factor of any size) gives the default's trials bit for
/// bit, the report says the cost table charges one pair, and a layout aimc cannot hold is named
/// before any compute, as are stuck-device fractions it cannot hold.
#[test]
fn conductance_pairs_sweep_and_are_checked() {
    let run = |name: &str, edit: &dyn Fn(String) -> String| {
        let p = bad_experiment(name, edit);
        let out = p.parent().unwrap().join("out");
        let o = aimc().args(["run", p.to_str().unwrap(), "--backend", "cpu", "--out", out.to_str().unwrap()]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        out
    };
    let base = results(&run("pairs-base", &|t| t));
    let out = run("pairs", &|t| t + "pair_significance = [[1.0], [2.0], [1.0, 3.0]]\n");
    let swept = results(&out);
    assert_eq!(swept.points.len(), 12, "2 GDC settings x 3 layouts x 2 times");
    for layout in ["[1.0]", "[2.0]"] {
        let same: Vec<_> = swept.points.iter().filter(|p| p.series.ends_with(&format!("pair_significance={layout}"))).collect();
        assert_eq!(same.len(), base.points.len());
        for (a, b) in same.iter().zip(&base.points) {
            assert_eq!(a.per_trial, b.per_trial, "{layout} at {}: one pair is the default", a.time_label);
        }
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("The cost table charges one conductance pair per weight: with up to 2 pairs per weight"), "{report}");
    for (name, device, needles) in [
        ("pairs-five", "pair_significance = [1.0, 1.0, 1.0, 1.0, 1.0]", &["device.pair_significance", "at most 4 pairs"][..]),
        ("pairs-zero", "pair_significance = [1.0, 0.0]", &["device.pair_significance", "finite number > 0"][..]),
        ("pairs-reram", "model = \"reram\"\npair_significance = [1.0, 1.0]", &["device.pair_significance", "relax_table"][..]),
        ("pairs-text", "pair_significance = \"two\"", &["device.pair_significance"][..]),
        ("pairs-empty", "pair_significance = []", &["device.pair_significance = []", "[1.0] is one pair"][..]),
        ("stuck-big", "stuck_set = 1.5", &["device.stuck_set = 1.5", "in [0, 1]"][..]),
        ("stuck-sum", "stuck_set = 0.6\nstuck_reset = 0.5", &["device.stuck_set = 0.6 and device.stuck_reset = 0.5", "at most 1"][..]),
        ("stuck-cmo", "model = \"reram_cmo\"\nstuck_reset = 0.01", &["device.stuck_set and device.stuck_reset", "one device per weight"][..]),
    ] {
        let p = bad_experiment(name, |t| format!("{t}\n[device]\n{device}\n"));
        expect_error(&p, needles);
    }
}

/// ReRAM (`device.model = "reram"`, aihwkit's ReRamWan2022NoiseModel): runs at its table's
/// times; a table of its own with σ = 0 at one time reads the targets exactly there (no spread
/// with programming noise off) and spreads at the other; a time off the table, a bad table, a
/// table on another model and a field the table leaves unread are each named before any compute.
#[test]
fn reram_reads_at_its_table_times_and_is_checked() {
    // The smoke experiment at times `t` with `extra` appended.
    fn times(t: &str, extra: &str) -> impl Fn(String) -> String {
        let (sweep, extra) = (format!("t = [{t}]\ngdc = [\"off\", \"readout\"]"), extra.to_string());
        move |text: String| text.replace("t = [\"1h\", \"1y\"]\ngdc = [\"off\", \"readout\"]", &sweep) + &extra
    }
    let p = bad_experiment("reram", times("\"1s\", \"2d\"", "\n[device]\nmodel = \"reram\"\n"));
    let out = p.parent().unwrap().join("out");
    let o = aimc().args(["run", p.to_str().unwrap(), "--backend", "cpu", "--out", out.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = results(&out);
    assert_eq!(r.points.len(), 4);
    assert!(r.points.iter().all(|pt| pt.summary.mean > 0.5), "reram keeps the digits MLP far above chance at 1 s and 2 d");
    // The energy is the cost table's, which does not know the device: the report says so.
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("the numbers above are the table's costs for this network, the same for reram as for PCM"), "{report}");
    // An own table: exact reads at 1 s, spread at 1 d (programming noise and the periphery off).
    let own = "\n[device]\nmodel = \"reram\"\nprog_noise_scale = 0.0\n[device.relax_table]\nt = [1.0, 86400.0]\ncoeff = [[0.0, 0.0, 0.0, 0.0, 0.0], [0.5, 1.0, 0.0, 0.0, 0.0]]\n[periphery]\nout_noise = 0.0\ninp_res_bits = 0\nout_res_bits = 0\nout_bound = 0.0\n";
    let p = bad_experiment("reram-own", times("\"1s\", \"1d\"", own));
    let out = p.parent().unwrap().join("out");
    let o = aimc().args(["run", p.to_str().unwrap(), "--backend", "cpu", "--out", out.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for pt in &results(&out).points {
        assert_eq!(pt.summary.std == 0.0, pt.time_label == "1 s", "{} {}: std {}", pt.series, pt.time_label, pt.summary.std);
    }
    let reram = "\n[device]\nmodel = \"reram\"\n";
    expect_error(
        &bad_experiment("reram-time", times("\"1s\", \"1h\"", reram)),
        &["sweep.t = 3600 s after programming", "1 s, 86400 s, 172800 s only", "device.relax_table.t"],
    );
    let table = |t: &str| format!("{reram}[device.relax_table]\n{t}\n");
    expect_error(
        &bad_experiment("reram-order", times("\"1s\"", &table("t = [1.0, 1.0]\ncoeff = [[0.3, 0.0, 0.0, 0.0, 0.0], [0.3, 0.0, 0.0, 0.0, 0.0]]"))),
        &["device.relax_table.t[1] = 1 follows 1"],
    );
    expect_error(&bad_experiment("reram-short", times("\"1s\"", &table("t = [1.0]\ncoeff = [[0.3, 0.0]]"))), &["device.relax_table"]);
    expect_error(
        &bad_experiment("reram-pcm", times("\"1s\"", "\n[device]\nmodel = \"pcm\"\n[device.relax_table]\nt = [1.0]\ncoeff = [[0.3, 0.0, 0.0, 0.0, 0.0]]\n")),
        &["device.relax_table on device.model = \"pcm\"", "model = \"reram\""],
    );
    expect_error(
        &bad_experiment("reram-q", times("\"1s\"", "\n[device]\nmodel = \"reram\"\nread_noise_scale = 1.0\n")),
        &["device.read_noise_scale on device.model = \"reram\""],
    );
    // CMO ReRAM (one device per weight, a log-time relaxation): any time reads; its relaxation
    // belongs to it, the fields it leaves unread and a range it cannot map are named.
    let p = bad_experiment("cmo", times("\"0s\", \"1y\"", "\n[device]\nmodel = \"reram_cmo\"\n"));
    let out = p.parent().unwrap().join("out");
    let o = aimc().args(["run", p.to_str().unwrap(), "--backend", "cpu", "--out", out.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cmo = "\n[device]\nmodel = \"reram_cmo\"\n";
    expect_error(
        &bad_experiment("cmo-pcm", times("\"1s\"", "\n[device]\nmodel = \"pcm\"\n[device.log_relax]\nmean = -0.1\nstd = [0.04, 0.4]\nread_k = 0.03\n")),
        &["device.log_relax on device.model = \"pcm\"", "model = \"reram_cmo\""],
    );
    expect_error(&bad_experiment("cmo-t0", times("\"1s\"", &format!("{cmo}t0 = 30.0\n"))), &["device.t0 on device.model = \"reram_cmo\""]);
    expect_error(&bad_experiment("cmo-gmin", times("\"1s\"", &format!("{cmo}g_min = 100.0\n"))), &["device.g_min = 100", "below g_max"]);
}

/// A table of zeros (its series shows `[0.0, 0.0]`) leaves its source nothing random.
fn zeros(series: &str) -> bool {
    series.contains("[0.0, 0.0]") || series.contains("[0, 0]")
}

/// The test experiment with `extra` appended is refused before any compute, naming `needles`.
fn refused_with(name: &str, extra: &str, needles: &[&str]) {
    let p = bad_experiment(name, |t| format!("{t}\n{extra}\n"));
    expect_error(&p, needles);
}

/// A measured programming-noise table (`[device.prog_table]`): σ = 0 programs exactly, a
/// measured table spreads the trials, the two sweep as a device field; a bad table, one beside
/// the polynomial's own fields and one on a model without programming noise are named.
#[test]
fn a_measured_programming_table_runs_sweeps_and_is_checked() {
    let axis = "prog_table = [{ g = [0.0, 25.0], sigma = [0.0, 0.0] }, { g = [0.0, 5.0, 25.0], sigma = [0.4, 1.6, 0.9] }]";
    two_tables_on_the_same_draws("prog-table", axis, "[device]\ndrift_scale = 0.0\nread_noise_scale = 0.0\n[periphery]\nout_noise = 0.0\n", zeros);
    refused_with("pt-short", "[device.prog_table]\ng = [0.0, 20.0]\nsigma = [0.5, 0.5]", &["device.prog_table.g spans [0, 20]", "g_max = 25"]);
    refused_with("pt-neg", "[device.prog_table]\ng = [0.0, 25.0]\nsigma = [0.5, -0.5]", &["device.prog_table.sigma[1] = -0.5", ">= 0"]);
    refused_with("pt-field", "[device.prog_table]\ng = [0.0, 25.0]\nstd = [0.5, 0.5]", &["device.prog_table", "std"]);
    refused_with(
        "pt-poly",
        "[device]\nprog_coeff = [0.2, 1.0, 0.0, 0.0]\nprog_g_ref = 25.0\n[device.prog_table]\ng = [0.0, 25.0]\nsigma = [0.5, 0.5]",
        &["device.prog_coeff beside device.prog_table", "remove one"],
    );
    refused_with(
        "pt-ideal",
        "[device]\nmodel = \"ideal\"\n[device.prog_table]\ng = [0.0, 25.0]\nsigma = [0.5, 0.5]",
        &["device.prog_table on device.model = \"ideal\"", "prog_noise_scale = 1.0"],
    );
}

/// A measured read-noise table (`[device.read_table]`): Q_s = 0 reads exactly, a measured table
/// spreads the trials, the two sweep as a device field; a bad table, one beside the `q_s` fit and
/// one on a model without read noise are named.
#[test]
fn a_measured_read_noise_table_runs_sweeps_and_is_checked() {
    let axis = "read_table = [{ g = [0.0, 25.0], q_s = [0.0, 0.0] }, { g = [0.0, 5.0, 25.0], q_s = [0.1, 0.05, 0.02] }]";
    two_tables_on_the_same_draws("read-table", axis, "[device]\nprog_noise_scale = 0.0\ndrift_scale = 0.0\n[periphery]\nout_noise = 0.0\n", zeros);
    refused_with(
        "rt-order",
        "[device.read_table]\ng = [0.0, 25.0, 20.0]\nq_s = [0.1, 0.1, 0.1]",
        &["device.read_table.g[2] = 20 follows 25", "one Q_s per level"],
    );
    refused_with(
        "rt-fit",
        "[device]\nq_s = { kind = \"power_clamp\", a = 0.01, p = 0.6, lo = 0.001, hi = 0.2 }\n[device.read_table]\ng = [0.0, 25.0]\nq_s = [0.1, 0.1]",
        &["device.q_s beside device.read_table", "remove one"],
    );
    refused_with(
        "rt-simple",
        "[device]\nmodel = \"simple\"\n[device.read_table]\ng = [0.0, 25.0]\nq_s = [0.1, 0.1]",
        &["device.read_table on device.model = \"simple\"", "read_noise_scale = 1.0"],
    );
}

#[test]
fn wrong_type_is_named() {
    let p = bad_experiment("type", |t| t.replace("trials = 8", "trials = \"eight\""));
    expect_error(&p, &["trials"]);
    let p = bad_experiment("type-sweep", |t| t.replace("gdc = [\"off\", \"readout\"]", "out_res_bits = [\"nine\"]"));
    expect_error(&p, &["out_res_bits"]);
}

#[test]
fn bad_values_are_named_with_the_fix() {
    let p = bad_experiment("negtime", |t| t.replace("t = [\"1h\", \"1y\"]", "t = [\"1h\", -5]"));
    expect_error(&p, &["sweep.t", ">= 0"]);
    let p = bad_experiment("zerotrials", |t| t.replace("trials = 8", "trials = 0"));
    expect_error(&p, &["trials = 0", "at least 2"]);
    // One trial has no interval over trials: refused, not reported as a zero-width one.
    let p = bad_experiment("onetrial", |t| t.replace("trials = 8", "trials = 1"));
    expect_error(&p, &["trials = 1", "at least 2"]);
    let p = bad_experiment("bits", |t| t.replace("gdc = [\"off\", \"readout\"]", "adc_bits = [9, 40]"));
    expect_error(&p, &["out_res_bits = 40", "2..=24"]);
    let p = bad_experiment("model", |t| format!("{t}\n[device]\nmodel = \"rram\"\n"));
    expect_error(&p, &["device.model", "pcm"]);
    // Per-column scales need ω > 0 to rescale anything: refused rather than ignored.
    let p = bad_experiment("columnwise", |t| format!("{t}\n[periphery]\nweight_scaling_columnwise = true\n"));
    expect_error(&p, &["weight_scaling_columnwise", "weight_scaling_omega > 0"]);
    let p = bad_experiment("gdcname", |t| t.replace("gdc = [\"off\", \"readout\"]", "gdc = [\"off\", \"per_column\"]"));
    expect_error(&p, &["per_column", "readout_per_column"]);
}

#[test]
fn missing_file_is_named() {
    let p = bad_experiment("missing", |t| t.replace("data/digits.csv", "data/nope.csv"));
    expect_error(&p, &["data.path", "nope.csv", "check the path"]);
    let o = aimc().args(["check", "/nonexistent/exp.toml"]).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/exp.toml"));
}

#[test]
fn shape_mismatch_is_named() {
    // A model whose first layer takes 65 inputs while the data has 64 features.
    let dir = tmp("shape-model");
    let mut w = vec![0u8; 0];
    let header = r#"{"0.weight":{"dtype":"F32","shape":[10,65],"data_offsets":[0,2600]}}"#;
    let mut h = header.to_string();
    while !h.len().is_multiple_of(8) {
        h.push(' ');
    }
    w.extend_from_slice(&(h.len() as u64).to_le_bytes());
    w.extend_from_slice(h.as_bytes());
    w.extend(std::iter::repeat_n(0u8, 2600));
    let model = dir.join("m.safetensors");
    std::fs::write(&model, w).unwrap();
    let p = bad_experiment("shape", |t| t.replace("models/digits_mlp.safetensors", model.to_str().unwrap()));
    expect_error(&p, &["65 inputs", "64 features"]);
}

/// Shards run separately and merged give the single run's per-trial metrics and statistics
/// (weight-error moments up to rounding): trial k has the same random numbers in every layout.
#[test]
fn shards_merge_into_the_single_run() {
    let exp = root().join("experiments/smoke.toml");
    let single = run_smoke("cpu", "single");
    let mut dirs = Vec::new();
    for k in 0..4 {
        let d = tmp(&format!("shard-{k}"));
        let o = aimc().args(["run", exp.to_str().unwrap(), "--backend", "cpu", "--shard", &format!("{k}/4"), "--out"]).arg(&d).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        dirs.push(d);
    }
    let merged = tmp("merged");
    let o = aimc().args(["merge", "--out"]).arg(&merged).args(dirs.iter().rev()).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Four shard processes and their merge give the single process's trials.csv byte for byte.
    assert_eq!(std::fs::read(single.join("trials.csv")).unwrap(), std::fs::read(merged.join("trials.csv")).unwrap());
    let (a, b) = (results(&single), results(&merged));
    assert_eq!(a.trials, b.trials);
    for (p, q) in a.points.iter().zip(&b.points) {
        assert_eq!(p.per_trial, q.per_trial, "{} {}", p.series, p.time_label);
        assert_eq!(p.per_trial_correct, q.per_trial_correct);
        assert_eq!((&p.summary, &p.mean_ci, &p.pooled, &p.drop, &p.histogram), (&q.summary, &q.mean_ci, &q.pooled, &q.drop, &q.histogram));
        // Shard 0 ran the layer insight's trials, as the single run did.
        assert!(!p.layer_insight.is_empty());
        assert_eq!(p.layer_insight, q.layer_insight);
        for (x, y) in p.weight_error.iter().zip(&q.weight_error) {
            assert_eq!(x.trials, y.trials);
            assert!((x.std - y.std).abs() <= 1e-9 * x.std && (x.alpha_mean - y.alpha_mean).abs() <= 1e-9 * x.alpha_mean, "{x:?} vs {y:?}");
        }
    }
    // A shard's trials.csv numbers its trials as the whole run does (shard 1 of 4 of 8 trials
    // holds trials 2 and 3).
    let csv = std::fs::read_to_string(dirs[1].join("trials.csv")).unwrap();
    let col = csv.lines().next().unwrap().split(',').position(|c| c == "trial").unwrap();
    let trials: Vec<&str> = csv.lines().skip(1).take(2).map(|l| l.split(',').nth(col).unwrap()).collect();
    assert_eq!(trials, ["2", "3"], "{csv}");
    // A missing shard is an error that says which.
    let o = aimc().args(["merge", "--out"]).arg(tmp("merged-bad")).args(&dirs[..3]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("shards 0..4"), "{}", String::from_utf8_lossy(&o.stderr));
    // A shard run with another --trials would leave a duplicated and a missing trial: refused.
    let odd = tmp("shard-odd");
    let o = aimc().args(["run", exp.to_str().unwrap(), "--backend", "cpu", "--trials", "12", "--shard", "3/4", "--out"]).arg(&odd).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = aimc().args(["merge", "--out"]).arg(tmp("merged-odd")).args(&dirs[..3]).arg(&odd).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("same --trials"), "{err}");
    // A shard of one trial runs (its chunk of one trial sizes the next chunk without a panic).
    let one = tmp("shard-one");
    let o = aimc().args(["run", exp.to_str().unwrap(), "--backend", "cpu", "--trials", "2", "--shard", "1/2", "--out"]).arg(&one).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(results(&one).points[0].per_trial.len(), 1);
}

/// Shards with the default output land beside results/NAME (results/NAME.shard-K-of-N), not in it:
/// a plain run into results/NAME afterwards, and the merge of the shards into results/NAME, both
/// succeed (a folder inside results/NAME would block both).
#[test]
fn default_shard_dirs_leave_the_single_run_and_the_merge_free() {
    let cwd = tmp("shard-default-out");
    let exp = root().join("experiments/smoke.toml");
    let run = |extra: &[&str]| {
        let o = aimc().current_dir(&cwd).args(["run", exp.to_str().unwrap(), "--backend", "cpu", "--trials", "4"]).args(extra).output().unwrap();
        assert!(o.status.success(), "aimc run {extra:?}: {}", String::from_utf8_lossy(&o.stderr));
    };
    run(&["--shard", "0/2"]);
    run(&["--shard", "1/2"]);
    let shards: Vec<PathBuf> = (0..2).map(|k| cwd.join(format!("results/smoke.shard-{k}-of-2"))).collect();
    for d in &shards {
        assert!(d.join("results.json").is_file(), "{} missing", d.display());
    }
    assert!(!cwd.join("results/smoke").exists(), "a shard wrote into results/smoke");
    run(&[]);
    let o = aimc().current_dir(&cwd).args(["merge", "--out", "results/smoke"]).args(&shards).output().unwrap();
    assert!(o.status.success(), "aimc merge: {}", String::from_utf8_lossy(&o.stderr));
    let merged = results(&cwd.join("results/smoke"));
    assert_eq!((merged.trials, merged.points[0].per_trial.len()), (4, 4));
}

/// A `--set` of a field a sweep axis also sets would go unused while results.json recorded it:
/// refused before any compute, naming the `--set`, the axis and the fix, whether the axis sets it
/// under an alias, a special name, a kernel field or a variant; a field the axes leave alone, and
/// the axis itself set from the command line, are taken.
#[test]
fn a_set_of_a_swept_field_is_refused() {
    let check = |exp: &str, sets: &[&str]| {
        let mut c = aimc();
        c.args(["check", root().join("experiments").join(exp).to_str().unwrap(), "--backend", "cpu"]);
        for s in sets {
            c.args(["--set", s]);
        }
        c.output().unwrap()
    };
    for (exp, set, axis) in [
        ("mvm_adc_bits.toml", "periphery.out_res_bits=3", "sweep.adc_bits"),
        ("kernel_rbf.toml", "kernel.features=65536", "sweep.features"),
        ("smoke.toml", "gdc=off", "sweep.gdc"),
        ("favor_attention.toml", "device.model=hermes", "sweep.model"),
    ] {
        let o = check(exp, &[set]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{exp} --set {set}: {err}");
        assert!(err.contains(&format!("--set {set}")) && err.contains(axis) && err.contains(&format!("--set '{axis}=[")), "{exp}: {err}");
    }
    // The run is refused too, writing nothing.
    let out = tmp("set-swept");
    let o = aimc()
        .args([
            "run",
            root().join("experiments/mvm_adc_bits.toml").to_str().unwrap(),
            "--backend",
            "cpu",
            "--trials",
            "4",
            "--set",
            "periphery.out_res_bits=3",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success() && !out.join("results.json").exists(), "{}", String::from_utf8_lossy(&o.stderr));
    // A field of a variant.
    let o = check("smoke.toml", &["sweep.variant=[{ name = \"a\", out_res_bits = 6 }, { name = \"b\", out_res_bits = 8 }]", "periphery.out_res_bits=3"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("sweep.variant also sets periphery.out_res_bits"), "{err}");
    // What the axes leave alone, and the axis itself, are taken.
    for sets in [&["periphery.inp_res_bits=6"][..], &["sweep.adc_bits=[3]"], &["sweep.adc_bits=[3]", "periphery.inp_res_bits=6"]] {
        let o = check("mvm_adc_bits.toml", sets);
        assert!(o.status.success(), "{sets:?}: {}", String::from_utf8_lossy(&o.stderr));
    }
}

/// A file that sets a field an axis also sets at every point: the axis wins everywhere, so the
/// file's value would go unused while results.json recorded it. Refused, naming the field, its
/// line, the axis and the fix, for a top-level field, a section's field swept under an alias and a
/// field every variant sets. A field only some variants set keeps the file's value at the others
/// and is taken, as is one its section requires (kernel_rbf.toml's `features`, checked with every
/// shipped file).
#[test]
fn a_file_that_sets_a_swept_field_is_refused() {
    let gdc = "gdc = [\"off\", \"readout\"]";
    let p = bad_experiment("file-swept-gdc", |t| t.replace("trials = 8\n", "trials = 8\ngdc = \"off\"\n"));
    expect_error(&p, &["gdc is set at line 7 and swept by [sweep] gdc", "at every point", "remove one, the gdc setting or the axis"]);
    let p = bad_experiment("file-swept-alias", |t| t.replace(gdc, "adc_bits = [6, 8]") + "\n[periphery]\nout_res_bits = 8\n");
    expect_error(&p, &["periphery.out_res_bits is set at line 22 (in [periphery]) and swept by [sweep] adc_bits", "remove one"]);
    let every = "variant = [{ name = \"a\", out_noise = 0.0 }, { name = \"b\", out_noise = 0.1 }]";
    let p = bad_experiment("file-swept-variant", |t| t.replace(gdc, every) + "\n[periphery]\nout_noise = 0.06\n");
    expect_error(&p, &["periphery.out_noise is set at line 22 (in [periphery]) and by every variant of [sweep] variant", "remove one"]);
    let some = "variant = [{ name = \"a\", out_noise = 0.0 }, { name = \"b\" }]";
    let p = bad_experiment("file-some-variants", |t| t.replace(gdc, some) + "\n[periphery]\nout_noise = 0.06\n");
    let o = aimc().arg("check").arg(&p).args(["--backend", "cpu"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A path that is not a regular file (a device, a directory, a named pipe) would be read without
/// end or waited on: refused before a byte is read, naming the field and the path.
#[test]
fn paths_that_are_not_regular_files_are_refused() {
    let p = bad_experiment("dev-model", |t| t.replace("models/digits_mlp.safetensors", "/dev/zero"));
    expect_error(&p, &["model.path", "/dev/zero is a device, not a regular file"]);
    let dir = root().join("experiments/data");
    let p = bad_experiment("dir-data", |t| t.replace("data/digits.csv", dir.to_str().unwrap()));
    expect_error(&p, &["data.path", &format!("{} is a directory, not a regular file", dir.display())]);
    // A named pipe with no writer: the read would wait for ever.
    let d = tmp("fifo");
    let fifo = d.join("pipe");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let p = bad_experiment("fifo-data", |t| t.replace("data/digits.csv", fifo.to_str().unwrap()));
    expect_error(&p, &["data.path", "is a named pipe (FIFO), not a regular file"]);
    // The experiment file itself.
    for (path, what) in [(&fifo, "a named pipe (FIFO)"), (&d, "a directory")] {
        let o = aimc().arg("check").arg(path).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains("cannot read the experiment file") && err.contains(&format!("{} is {what}, not a regular file", path.display())), "{err}");
    }
}

/// Every shipped experiment file validates.
#[test]
fn shipped_experiments_validate() {
    for e in std::fs::read_dir(root().join("experiments")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let o = aimc().arg("check").arg(&p).output().unwrap();
            assert!(o.status.success(), "{}: {}", p.display(), String::from_utf8_lossy(&o.stderr));
        }
    }
}

#[test]
fn mlp_and_weights_commands_run_through_the_experiment_runner() {
    // `aimc mlp` and `aimc weights` build an experiment from their flags: the same validation,
    // runner, results file and report as `aimc run`.
    let out = tmp("mlp");
    let json = out.join("copy.json");
    let model = root().join("experiments/models/digits_mlp.safetensors");
    let data = root().join("experiments/data/digits.csv");
    let o = aimc()
        .args(["mlp", "--model", model.to_str().unwrap(), "--data", data.to_str().unwrap(), "--scale", "16", "--rows", "1700..1797"])
        .args(["--trials", "6", "--times", "1s,1y", "--backend", "cpu", "--set", "device.drift_scale=0.5", "--out"])
        .arg(&out)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert!(o.status.success(), "aimc mlp failed:\n{}", String::from_utf8_lossy(&o.stderr));
    let r = results(&out);
    assert_eq!((r.workload.as_str(), r.trials, r.points.len()), ("classifier", 6, 2));
    assert_eq!(r.config["device"]["drift_scale"], 0.5);
    assert_eq!(std::fs::read(out.join("results.json")).unwrap(), std::fs::read(&json).unwrap());
    for f in ["report.md", "report.html", "trials.csv"] {
        assert!(out.join(f).exists(), "{f} missing");
    }

    let wout = tmp("weights");
    let o = aimc()
        .args(["weights", model.to_str().unwrap(), "--tensor", "0.weight", "--trials", "4", "--times", "1h", "--backend", "cpu", "--out"])
        .arg(&wout)
        .output()
        .unwrap();
    assert!(o.status.success(), "aimc weights failed:\n{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(results(&wout).workload, "weight_error");
    // A flag left out leaves its field to the engine's default, so a --set axis may sweep it; a
    // flag given and swept is refused, as a file that sets and sweeps a field is.
    for (gdc_flag, ok) in [(None, true), (Some("off"), false)] {
        let sout = tmp(if ok { "weights-gdc-axis" } else { "weights-gdc-both" });
        let mut cmd = aimc();
        cmd.args(["weights", model.to_str().unwrap(), "--tensor", "0.weight", "--trials", "2", "--times", "1h", "--backend", "cpu"]);
        if let Some(g) = gdc_flag {
            cmd.args(["--gdc", g]);
        }
        let o = cmd.args(["--set", "sweep.gdc=[\"off\", \"readout\"]", "--out"]).arg(&sout).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.success(), ok, "--gdc {gdc_flag:?} with a gdc axis:\n{err}");
        if ok {
            assert_eq!(results(&sout).points.len(), 2);
        } else {
            assert!(err.contains("--gdc sets gdc") && err.contains("leave out --gdc"), "{err}");
        }
    }

    // Bad flags fail before any compute, naming the field and writing nothing.
    let bad = tmp("mlp-bad");
    let o = aimc()
        .args(["mlp", "--model", model.to_str().unwrap(), "--data", data.to_str().unwrap(), "--backend", "cpu", "--set", "periphery.out_res_bitz=8", "--out"])
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("out_res_bitz"), "{err}");
    assert!(!bad.join("results.json").exists());
    // So does a --json that cannot be written (a directory, or under a missing one).
    for (json, says) in [(bad.clone(), "is a directory"), (bad.join("no/such/x.json"), "does not exist")] {
        let o = aimc()
            .args(["mlp", "--model", model.to_str().unwrap(), "--data", data.to_str().unwrap(), "--trials", "2", "--backend", "cpu", "--out"])
            .arg(bad.join("r"))
            .arg("--json")
            .arg(&json)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains("--json") && err.contains(says), "{err}");
        assert!(!bad.join("r").exists(), "nothing is computed or written");
    }
}

/// `--trials N` is the count the file is validated with: a two-level run of 6 trials in
/// programmings of 3 reads is taken although the file's own count (8) is not a multiple of 3.
#[test]
fn the_trials_flag_is_the_count_the_file_is_checked_with() {
    let out = tmp("trials-flag");
    let o = aimc()
        .args(["run", root().join("experiments/smoke.toml").to_str().unwrap(), "--backend", "cpu", "--trials", "6", "--set", "reads_per_programming=3"])
        .args(["--set", "layer_insight_trials=0", "--set", "weight_error_trials=0", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(results(&out).trials, 6);
}

#[test]
fn bad_reference_files_are_named() {
    let p = bad_experiment("ref-missing", |t| t + "\n[reference]\npath = \"no_such_counts.json\"\n");
    expect_error(&p, &["reference.path", "no_such_counts.json", "check the path"]);
    let p = bad_experiment("ref-format", |t| t + "\n[reference]\npath = \"counts.json\"\n");
    std::fs::write(p.parent().unwrap().join("counts.json"), r#"{"n_test": 450, "correct": {"sometimes": {"1": [400, 401]}}}"#).unwrap();
    expect_error(&p, &["reference.path", "correct.sometimes", "off, readout or exact_reference"]);
    // The breast-cancer reference (228 test rows) against the smoke data's 100 rows: refused,
    // naming both counts and both files, rather than compared.
    let shipped = root().join("experiments/reference/aihwkit_breast_cancer/aihwkit_results.json");
    let p = bad_experiment("ref-rows", |t| t + &format!("\n[reference]\npath = {:?}\n", shipped.to_str().unwrap()));
    expect_error(&p, &["reference.path", "aihwkit_results.json", "n_test = 228", "digits.csv gives 100", "data.rows"]);
}

#[test]
fn inputs_that_used_to_be_taken_silently_are_refused() {
    // rows with three numbers was read as the first two.
    let p = bad_experiment("rows3", |t| t.replace("rows = [1347, 1447]", "rows = [1347, 1447, 1500]"));
    expect_error(&p, &["data.rows", "two numbers"]);
    // The same field as two sweep axes (alias and name) let one win.
    let p = bad_experiment("twoaxes", |t| t.replace("gdc = [\"off\", \"readout\"]", "adc_bits = [8, 9]\nout_res_bits = [7, 9]"));
    expect_error(&p, &["the same field as another axis", "out_res_bits"]);
    // A value twice on one axis made two identical series; a time twice, two identical columns.
    let (gdc, t) = ("gdc = [\"off\", \"readout\"]", "t = [\"1h\", \"1y\"]");
    for (name, line, twice, needles) in [
        ("twice", gdc, "gdc = [\"off\", \"off\"]", ["sweep.gdc", "off and off are the same value"]),
        ("tile-twice", gdc, "tile = [\"64x64\", \"64X64\"]", ["sweep.tile", "64x64 and 64X64"]),
        ("bits-twice", gdc, "adc_bits = [8, 8.0]", ["sweep.adc_bits", "8 and 8.0"]),
        ("t-twice", t, "t = [\"1h\", \"3600\"]", ["sweep.t", "1h and 3600 are the same time"]),
    ] {
        expect_error(&bad_experiment(name, |text| text.replace(line, twice)), &needles);
    }
    // Own programming coefficients with g_max moved: their reference g_max is said, not guessed
    // (aimc's presets keep their fit's 25 µS, aihwkit would take g_max).
    let own = "\n[device]\nprog_coeff = [0.26348, 1.9650, -1.1731, 0.0]\ng_max = 10.0\n";
    let p = bad_experiment("coeff", |t| format!("{t}{own}"));
    expect_error(&p, &["device.prog_coeff with g_max = 10", "device.prog_g_ref", "prog_coeff_g_max_reference"]);
    let p = bad_experiment("coeff-ok", |t| format!("{t}{own}prog_g_ref = 10.0\n"));
    let o = aimc().args(["check"]).arg(&p).args(["--backend", "cpu"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let p = bad_experiment("coeff-sweep", |t| {
        format!("{}\n[device]\nprog_coeff = [0.26348, 1.9650, -1.1731, 0.0]\n", t.replace("gdc = [\"off\", \"readout\"]", "g_max = [25.0, 10.0]"))
    });
    expect_error(&p, &["g_max = 10", "device.prog_g_ref", "sweep point g_max=10"]);
    // A reference without own coefficients would rescale the preset's fit, which aihwkit ignores.
    let p = bad_experiment("ref-only", |t| format!("{t}\n[device]\nprog_g_ref = 20.0\n"));
    expect_error(&p, &["device.prog_g_ref = 20 without device.prog_coeff", "fitted at 25"]);
    // A tail threshold outside an accuracy's range gave a tail probability of 0 or 1.
    let p = bad_experiment("tail", |t| t.replace("trials = 8", "trials = 8\ntail_below = 2"));
    expect_error(&p, &["tail_below = 2", "(0, 1]"]);
    // A name that is not one path component would write outside results/.
    let p = bad_experiment("escape", |t| t.replace("name = \"smoke\"", "name = \"../../escape\""));
    expect_error(&p, &["name = \"../../escape\"", "results directory"]);
    // A device curve with lo > hi (the CPU and the GPU clamp it differently).
    let p = bad_experiment("curve", |t| format!("{t}\n[device]\nq_s = {{ kind = \"power_clamp\", a = 0.0088, p = 0.65, lo = 0.5, hi = 0.2 }}\n"));
    expect_error(&p, &["device.q_s", "lo <= hi"]);
    // A CSV with a header line needs header = true (a header is never guessed).
    let dir = tmp("header-csv");
    let csv = dir.join("h.csv");
    let mut text = String::from("f0");
    for i in 1..64 {
        text.push_str(&format!(",f{i}"));
    }
    text.push_str(",label\n");
    text.push_str(&std::fs::read_to_string(root().join("experiments/data/digits.csv")).unwrap());
    std::fs::write(&csv, text).unwrap();
    let p = bad_experiment("header", |t| t.replace("data/digits.csv", csv.to_str().unwrap()));
    expect_error(&p, &["line 1, column 1", "header = true"]);
    // And header = true over a first line of numbers dropped a data row.
    let p = bad_experiment("header-numeric", |t| t.replace("rows = [1347, 1447]", "rows = [1347, 1447]\nheader = true"));
    expect_error(&p, &["digits.csv: the first line is numeric, but header = true", "set header = false (data.header)"]);
}

#[test]
fn an_unwritable_output_fails_before_any_compute_and_a_rerun_replaces_the_whole_set() {
    let dir = tmp("out-file");
    let file = dir.join("not-a-dir");
    std::fs::write(&file, b"").unwrap();
    let exp = root().join("experiments/smoke.toml");
    let o = aimc().args(["run", exp.to_str().unwrap(), "--backend", "cpu", "--out"]).arg(&file).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("choose a writable --out") && !err.contains("trials on"), "{err}");
    // A stray plot of an older set (a figure this run does not draw) does not survive a rerun:
    // the set is replaced whole, and no staging directory is left beside it. (Files aimc does not
    // write are never replaced: tests/suite/results_safety.rs.)
    let out = dir.join("run");
    let o = aimc().args(["run", exp.to_str().unwrap(), "--backend", "cpu", "--out"]).arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(out.join("noise_budget.png"), b"old").unwrap();
    let o = aimc().args(["run", exp.to_str().unwrap(), "--backend", "cpu", "--out"]).arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.join("results.json").exists() && !out.join("noise_budget.png").exists());
    let names: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| !n.contains("staging") && !n.contains(".old-")), "{names:?}");
}

/// The shipped Kubernetes manifest and Slurm script hand the scheduler's shard to `--shard env`
/// consistently: completions = AIMC_SHARD_COUNT = the shards merged; and the variables they set
/// reach the run (a shard run from JOB_COMPLETION_INDEX equals the same --shard K/N).
#[test]
fn deploy_manifests_reach_shard_env() {
    let k8s = std::fs::read_to_string(root().join("deploy/k8s-job.yaml")).unwrap();
    let completions: u32 = k8s.lines().find_map(|l| l.trim().strip_prefix("completions:")).unwrap().trim().parse().unwrap();
    let i = k8s.find("name: AIMC_SHARD_COUNT").unwrap();
    let count: u32 = k8s[i..].lines().nth(1).unwrap().trim().trim_start_matches("value:").trim().trim_matches('"').parse().unwrap();
    assert_eq!(completions, count, "completions and AIMC_SHARD_COUNT must agree");
    assert!(k8s.contains("completionMode: Indexed") && k8s.contains("--shard env --out /results/shard-$JOB_COMPLETION_INDEX"));
    let merged = (0..count).map(|k| format!("/results/shard-{k}")).collect::<Vec<_>>().join(" ");
    assert!(k8s.contains(&format!("aimc merge --out /results/merged {merged}")), "the merge Job lists every shard");
    let slurm = std::fs::read_to_string(root().join("deploy/slurm.sh")).unwrap();
    assert!(slurm.contains("--shard env") && slurm.contains("--dependency=afterok") && slurm.contains("--array=0-$((n - 1))"));

    let exp = root().join("experiments/smoke.toml");
    let via_env = tmp("k8s-shard");
    let o = aimc()
        .args(["run", exp.to_str().unwrap(), "--backend", "cpu", "--shard", "env", "--out"])
        .arg(&via_env)
        .env("JOB_COMPLETION_INDEX", "1")
        .env("AIMC_SHARD_COUNT", "3")
        .env_remove("SLURM_ARRAY_TASK_ID")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("shard 1/3 from the Kubernetes Indexed Job"));
    let direct = tmp("k8s-direct");
    let o = aimc().args(["run", exp.to_str().unwrap(), "--backend", "cpu", "--shard", "1/3", "--out"]).arg(&direct).output().unwrap();
    assert!(o.status.success());
    let (a, b) = (results(&via_env), results(&direct));
    assert_eq!(a.shard, b.shard);
    assert_eq!(a.points.iter().map(|p| &p.per_trial_correct).collect::<Vec<_>>(), b.points.iter().map(|p| &p.per_trial_correct).collect::<Vec<_>>());
}

/// Checkpoint and resume: a run killed (SIGKILL) after its first chunk of trials is journaled, then
/// run again, resumes from the journal and gives the uninterrupted run's per-trial results byte
/// for byte; the journal is gone once the results are published.
#[test]
fn a_killed_run_resumes_from_its_journal_with_identical_results() {
    let dir = tmp("resume");
    let exp = dir.join("exp.toml");
    let text = std::fs::read_to_string(root().join("experiments/smoke.toml"))
        .unwrap()
        .replace("models/digits_mlp.safetensors", root().join("experiments/models/digits_mlp.safetensors").to_str().unwrap())
        .replace("data/digits.csv", root().join("experiments/data/digits.csv").to_str().unwrap())
        .replace("gdc = [\"off\", \"readout\"]", "gdc = [\"off\", \"readout\", \"exact_reference\"]");
    std::fs::write(&exp, text).unwrap();
    let run = |out: &Path| {
        aimc()
            .args(["run", exp.to_str().unwrap(), "--backend", "cpu", "--trials", "400", "--out"])
            .arg(out)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let whole = dir.join("whole");
    assert!(run(&whole).wait_with_output().unwrap().status.success());

    let out = dir.join("killed");
    let journal = dir.join("killed.journal.jsonl");
    let mut child = run(&out);
    let start = std::time::Instant::now();
    loop {
        let lines = std::fs::read_to_string(&journal).map(|t| t.matches('\n').count()).unwrap_or(0);
        if lines >= 2 || start.elapsed().as_secs() > 120 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    let killed = child.wait_with_output().unwrap();
    assert!(!killed.status.success(), "the run finished before it could be killed; make it longer");
    assert!(!out.join("results.json").exists(), "a killed run publishes nothing");
    // The journal holds chunks of trials, not whole points: the first is the first trials of
    // sweep point 0, whose three GDC settings run as one plan (one point's first chunk of work,
    // shared out).
    let first: serde_json::Value = serde_json::from_str(std::fs::read_to_string(&journal).unwrap().lines().nth(1).unwrap()).unwrap();
    assert_eq!((first["sweep_index"].as_u64(), first["first_trial"].as_u64()), (Some(0), Some(0)), "{first}");
    assert_eq!(first["trials"].as_u64(), Some(aimc::run::first_checkpoint_chunk(3) as u64));

    // A run of another configuration into the same directory keeps the unfinished work,
    // saying what differs and how to resume or discard it.
    let before = std::fs::read(&journal).unwrap();
    let other = aimc()
        .args(["run", exp.to_str().unwrap(), "--backend", "cpu", "--trials", "400", "--set", "device.drift_scale=0.5", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let msg = String::from_utf8_lossy(&other.stderr);
    assert!(!other.status.success(), "{msg}");
    for part in ["finished chunks of an unfinished run", "device.drift_scale: 1.0 → 0.5", "--overwrite", "to resume it"] {
        assert!(msg.contains(part), "{part:?} missing from: {msg}");
    }
    assert_eq!(std::fs::read(&journal).unwrap(), before, "the other run's journal is kept as it was");

    let o = run(&out).wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("resuming: ") && err.contains(" point-trials (") && err.contains(" over 3 sweep points"), "{err}");
    assert_eq!(std::fs::read(out.join("trials.csv")).unwrap(), std::fs::read(whole.join("trials.csv")).unwrap());
    let (a, b) = (results(&whole), results(&out));
    for (p, q) in a.points.iter().zip(&b.points) {
        assert_eq!((&p.per_trial, &p.summary, &p.mean_ci), (&q.per_trial, &q.summary, &q.mean_ci));
    }
    assert!(!journal.exists(), "the journal is removed after publishing");

    // Killed again and again at ten moments (while computing, between points, while publishing),
    // then run to the end: the same per-trial results, and nothing left beside the directory.
    let out = dir.join("killed-often");
    for ms in [5u64, 40, 80, 150, 250, 400, 600, 900, 1300, 1800] {
        let mut child = run(&out);
        std::thread::sleep(std::time::Duration::from_millis(ms));
        let _ = child.kill();
        let _ = child.wait();
    }
    let o = run(&out).wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(out.join("trials.csv")).unwrap(), std::fs::read(whole.join("trials.csv")).unwrap());
    let names: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| !n.contains("staging") && !n.contains(".old-") && !n.contains("journal")), "{names:?}");
}

#[test]
fn bench_runs_the_cases_asked_for_and_names_a_bad_one() {
    for bad in ["z", "ab", "(n)", "", ","] {
        let o = aimc().args(["bench", "--backend", "cpu", "--size", "small", "--cases", bad]).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains("--cases") && err.contains("a to m"), "--cases {bad}: {err}");
        assert!(o.stdout.is_empty(), "nothing is measured before the check: {}", String::from_utf8_lossy(&o.stdout));
    }
    let o = aimc().args(["bench", "--backend", "cpu", "--size", "small", "--cases", "(B)"]).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows: Vec<&str> = out.lines().filter(|l| l.starts_with('(')).collect();
    assert!(rows.len() == 1 && rows[0].starts_with("(b) single-vector MVM"), "{out}");
    // Repeated runs: the fastest reported, the slowest beside it as a share of it (at most 100 %).
    let o = aimc().args(["bench", "--backend", "cpu", "--size", "small", "--cases", "b", "--runs", "2"]).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && out.contains("slowest of 2"), "{out}");
    let row = out.lines().find(|l| l.starts_with("(b)")).unwrap();
    let share: f64 = row.split_whitespace().last().and_then(|v| v.strip_suffix('%')).and_then(|v| v.parse().ok()).unwrap();
    assert!(share > 0.0 && share <= 100.0, "{row}");
    let o = aimc().args(["bench", "--backend", "cpu", "--size", "small", "--runs", "0"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--runs 0") && o.stdout.is_empty(), "{err}");
}

/// A digits file too short for the fixed split has no test rows: refused before training,
/// instead of a "test accuracy 0.00 %" over no rows.
#[test]
fn a_digits_file_without_test_rows_is_refused() {
    let dir = tmp("train-short");
    let rows: Vec<String> = std::fs::read_to_string(root().join("experiments/data/digits.csv")).unwrap().lines().take(30).map(String::from).collect();
    let csv = dir.join("short.csv");
    std::fs::write(&csv, rows.join("\n")).unwrap();
    let model = dir.join("m.safetensors");
    let o = aimc().args(["train-digits", "--out"]).arg(&model).arg("--data").arg(&csv).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("no test rows") && err.contains("1347"), "{err}");
    assert!(!model.exists());
}
