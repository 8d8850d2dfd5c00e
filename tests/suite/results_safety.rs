//! Finished work is neither lost nor misread, through the `aimc` binary: a results directory of
//! another configuration is kept unless `--overwrite`, a directory being written is locked
//! against a second process (a dead holder's lock is taken over), `aimc report` and `aimc merge`
//! refuse results that parse but say nothing (no points, no trials, no histogram, no times),
//! `aimc check` catches a kernel feature count too large for one buffer binding, and `--set`
//! takes every top-level field of an experiment file on every command that has it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn aimc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_aimc"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("aimc-safety-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn smoke() -> String {
    root().join("experiments/smoke.toml").display().to_string()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "expected success:\n{}", text(&o));
    text(&o)
}

fn fails(o: Output) -> String {
    assert!(!o.status.success(), "expected a failure:\n{}", text(&o));
    text(&o)
}

fn run_smoke(out: &Path, extra: &[&str]) -> Output {
    aimc().args(["run", &smoke(), "--backend", "cpu", "--out"]).arg(out).args(extra).output().unwrap()
}

#[test]
fn results_of_another_configuration_are_kept_without_overwrite() {
    let dir = tmp("overwrite");
    let out = dir.join("R");
    ok(run_smoke(&out, &[]));
    let first = std::fs::read(out.join("trials.csv")).unwrap();
    // The same configuration again: replaced as before.
    ok(run_smoke(&out, &[]));
    assert_eq!(std::fs::read(out.join("trials.csv")).unwrap(), first, "the same configuration gives the same trials");
    // Another configuration: refused, naming the experiment, when, what differs and the flag;
    // the first results are untouched.
    let msg = fails(run_smoke(&out, &["--set", "device.drift_scale=0.3"]));
    for part in ["holds the results of experiment smoke", "made on ", " UTC", "device.drift_scale: 1.0 → 0.3", "--overwrite"] {
        assert!(msg.contains(part), "{part:?} missing from: {msg}");
    }
    assert_eq!(std::fs::read(out.join("trials.csv")).unwrap(), first);
    // With --overwrite it replaces them.
    ok(run_smoke(&out, &["--set", "device.drift_scale=0.3", "--overwrite"]));
    assert_ne!(std::fs::read(out.join("trials.csv")).unwrap(), first);
    // A directory of other files is never replaced silently, from aimc mlp either.
    let mine = dir.join("mine");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), b"keep me").unwrap();
    let model = root().join("experiments/models/digits_mlp.safetensors");
    let data = root().join("experiments/data/digits.csv");
    let mlp = |extra: &[&str]| {
        aimc()
            .args(["mlp", "--model", model.to_str().unwrap(), "--data", data.to_str().unwrap(), "--scale", "16", "--rows", "1347..1397"])
            .args(["--trials", "2", "--times", "1h", "--backend", "cpu", "--out"])
            .arg(&mine)
            .args(extra)
            .output()
            .unwrap()
    };
    // Files aimc does not write are kept even with --overwrite.
    for extra in [&[][..], &["--overwrite"][..]] {
        let msg = fails(mlp(extra));
        assert!(msg.contains("notes.txt") && msg.contains("kept even with --overwrite") && msg.contains("another --out"), "{msg}");
        assert!(mine.join("notes.txt").exists() && !mine.join("results.json").exists());
    }
    // Plots of a set whose results.json is gone: replaced only with --overwrite.
    std::fs::remove_file(mine.join("notes.txt")).unwrap();
    std::fs::write(mine.join("accuracy_vs_time.svg"), b"<svg/>").unwrap();
    let msg = fails(mlp(&[]));
    assert!(msg.contains("not aimc results") && msg.contains("accuracy_vs_time.svg") && msg.contains("--overwrite"), "{msg}");
    ok(mlp(&["--overwrite"]));
    assert!(mine.join("results.json").exists());
    // `--out .` in a project (its experiment file, inputs and .git beside the results): nothing
    // is deleted, with or without --overwrite.
    let project = dir.join("project");
    std::fs::create_dir_all(project.join(".git")).unwrap();
    std::fs::create_dir_all(project.join("models")).unwrap();
    std::fs::copy(root().join("experiments/models/digits_mlp.safetensors"), project.join("models/digits_mlp.safetensors")).unwrap();
    let exp = project.join("smoke.toml");
    std::fs::write(&exp, std::fs::read_to_string(smoke()).unwrap().replace("data/digits.csv", data.to_str().unwrap())).unwrap();
    for extra in [&[][..], &["--overwrite"][..]] {
        let out = aimc().current_dir(&project).args(["run", "smoke.toml", "--backend", "cpu", "--trials", "2", "--out", "."]).args(extra).output().unwrap();
        let msg = fails(out);
        assert!(msg.contains(".git/") && msg.contains("kept even with --overwrite"), "{msg}");
        assert!(exp.exists() && project.join(".git").is_dir() && project.join("models/digits_mlp.safetensors").exists());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_directory_being_written_is_locked_and_a_dead_holders_lock_taken_over() {
    let dir = tmp("lock");
    let out = dir.join("R");
    let lock = dir.join("R.lock");
    // A live holder (this test process): refused, naming its pid, and nothing written.
    std::fs::write(&lock, format!("pid={}\nstarted=2026-12-04 10:00:00 UTC\ncommand=aimc run other.toml\n", std::process::id())).unwrap();
    let msg = fails(run_smoke(&out, &[]));
    assert!(msg.contains(&format!("pid {}: aimc run other.toml", std::process::id())) && msg.contains("since 2026-12-04 10:00:00 UTC"), "{msg}");
    assert!(!out.join("results.json").exists());
    // A holder that no longer runs (a pid above Linux's largest pid_max): taken over with a line.
    std::fs::write(&lock, "pid=4194305\nstarted=2026-12-04 10:00:00 UTC\n").unwrap();
    let msg = ok(run_smoke(&out, &[]));
    assert!(msg.contains("taking over the lock") && msg.contains("4194305"), "{msg}");
    assert!(out.join("results.json").exists() && !lock.exists(), "the lock is released after publishing");
    // Two runs at once into one directory: one of them is refused, naming the other process.
    let exp = dir.join("long.toml");
    let long = std::fs::read_to_string(smoke())
        .unwrap()
        .replace("models/digits_mlp.safetensors", root().join("experiments/models/digits_mlp.safetensors").to_str().unwrap())
        .replace("data/digits.csv", root().join("experiments/data/digits.csv").to_str().unwrap());
    std::fs::write(&exp, long).unwrap();
    let both = dir.join("both");
    let start = || {
        aimc()
            .args(["run", exp.to_str().unwrap(), "--backend", "cpu", "--trials", "1000", "--out"])
            .arg(&both)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = start();
    let pid = first.id();
    let t0 = std::time::Instant::now();
    while !dir.join("both.lock").exists() && t0.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let second = start().wait_with_output().unwrap();
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success(), "{}", text(&first));
    let msg = fails(second);
    assert!(msg.contains("being written by another aimc process") && msg.contains(&format!("(pid {pid}: ")), "{msg}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Breaks `dir/results.json` in one of the ways that parse but say nothing.
fn break_results(dir: &Path, case: &str) {
    let path = dir.join("results.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let points = v["points"].as_array_mut().unwrap();
    match case {
        "per_trial" => points.iter_mut().for_each(|p| p["per_trial"] = serde_json::json!([])),
        "points" => points.clear(),
        "bins" => points.iter_mut().for_each(|p| p["histogram"]["counts"] = serde_json::json!([])),
        "counts" => points.iter_mut().for_each(|p| {
            let bins = p["histogram"]["counts"].as_array().unwrap().len();
            p["histogram"]["counts"] = serde_json::json!(vec![0; bins]);
            p["histogram"]["underflow"] = 0.into();
            p["histogram"]["overflow"] = 0.into();
        }),
        "times" => v["times"] = serde_json::json!([]),
        _ => unreachable!(),
    }
    std::fs::write(&path, v.to_string()).unwrap();
}

/// Each case: how the file is broken, and the field the refusal names.
const BROKEN: [(&str, &str); 5] = [
    ("per_trial", "points[0].per_trial: empty"),
    ("points", "points: empty"),
    ("bins", "points[0].histogram.counts: no bins"),
    ("counts", "points[0].histogram.counts: count 0 values in all but per_trial has 8"),
    ("times", "times: empty"),
];

#[test]
fn report_and_merge_refuse_results_that_say_nothing() {
    let dir = tmp("broken");
    let good = dir.join("good");
    ok(run_smoke(&good, &[]));
    let shards: Vec<PathBuf> = (0..2).map(|k| dir.join(format!("shard{k}"))).collect();
    for (k, s) in shards.iter().enumerate() {
        ok(run_smoke(s, &["--shard", &format!("{k}/2")]));
    }
    for (case, field) in BROKEN {
        let bad = dir.join(format!("bad-{case}"));
        std::fs::create_dir_all(&bad).unwrap();
        std::fs::copy(good.join("results.json"), bad.join("results.json")).unwrap();
        break_results(&bad, case);
        let msg = fails(aimc().arg("report").arg(&bad).output().unwrap());
        let file = bad.join("results.json").display().to_string();
        assert!(msg.contains(&file) && msg.contains(field) && msg.contains("rerun the experiment or restore the file"), "{case}: {msg}");
        // merge: the same refusal for a broken shard, before anything is written.
        let shard = dir.join(format!("shard1-{case}"));
        std::fs::create_dir_all(&shard).unwrap();
        std::fs::copy(shards[1].join("results.json"), shard.join("results.json")).unwrap();
        break_results(&shard, case);
        let merged = dir.join(format!("merged-{case}"));
        let msg = fails(aimc().args(["merge", "--out"]).arg(&merged).arg(&shards[0]).arg(&shard).output().unwrap());
        let field = field.replace("per_trial has 8", "per_trial has 4");
        assert!(msg.contains(&shard.join("results.json").display().to_string()) && msg.contains(&field), "merge {case}: {msg}");
        assert!(!merged.exists(), "merge {case} wrote {}", merged.display());
    }
    // The intact shards still merge.
    ok(aimc().args(["merge", "--out"]).arg(dir.join("merged")).args(&shards).output().unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_catches_a_feature_count_too_large_for_one_binding() {
    let exp = root().join("experiments/kernel_rbf.toml");
    let check = |features: u32| {
        aimc().args(["check", exp.to_str().unwrap(), "--backend", "cpu", "--set", &format!("sweep.features=[59, {features}]")]).output().unwrap()
    };
    // The CPU backend's binding holds 32 MiB: 143 points × 2·65536 features × 4 bytes do not fit.
    let msg = fails(check(65536));
    assert!(msg.contains("kernel.features = 65536") && msg.contains("74973184 bytes in one buffer binding") && msg.contains("allows 33554432"), "{msg}");
    let at = msg.find("the largest kernel.features").expect("names the largest count that fits");
    let largest: u32 = msg[at..].split(" is ").nth(1).unwrap().split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap();
    // Exactly the boundary the run's plan draws: the largest passes, one more fails.
    ok(check(largest));
    fails(check(largest + 1));
}

/// Every top-level field of the experiment schema with a `--set` for it, and what validation says
/// on the smoke classifier: None (accepted) or the start of its error, which shows the value reached
/// the validator (a section another workload uses, a file that does not exist).
const FIELDS: [(&str, &[&str], Option<&str>); 32] = [
    ("name", &["name=renamed"], None),
    ("description", &["description=set from the command line"], None),
    ("workload", &["workload=classifier"], None),
    ("seed", &["seed=3"], None),
    ("trials", &["trials=4"], None),
    ("reads_per_programming", &["reads_per_programming=2"], None),
    ("confidence", &["confidence=0.9"], None),
    ("ci_half_width", &["ci_half_width=0.01"], None),
    // The smoke file sweeps gdc, which would replace this value at every point: a sweep of times
    // only leaves it in use (a --set of a swept field is refused, tests/suite/cli.rs).
    ("gdc", &["gdc=off", "sweep={ t = [\"1h\"] }"], None),
    ("weight_error_trials", &["weight_error_trials=2"], None),
    ("layer_insight_trials", &["layer_insight_trials=0"], None),
    ("common_random_numbers", &["common_random_numbers=false"], None),
    ("tail_below", &["tail_below=0.5"], None),
    // An accuracy's risk is below a value: refused, naming the field to use.
    ("tail_above", &["tail_above=0.5"], Some("tail_above = 0.5: the metric is an accuracy")),
    ("row_counts", &["row_counts=true"], None),
    ("model", &["model.activation=relu"], None),
    ("data", &["data.scale=16.0"], None),
    ("kernel", &["kernel.features=5"], Some("[kernel] is for")),
    ("attention", &["attention.n=4"], Some("[attention] is for")),
    ("moe", &["moe.experts=2"], Some("[moe], [arch] and [cost] are for")),
    ("arch", &["arch.tiers=2"], Some("[moe], [arch] and [cost] are for")),
    ("transformer", &["transformer.heads=2"], Some("[transformer] is for")),
    ("cost", &["cost.tiers=x.toml"], Some("[moe], [arch] and [cost] are for")),
    ("npu", &["npu.x=1"], Some("[npu] costs a network")),
    ("budget", &["budget.sources=[\"programming\"]"], None),
    ("device", &["device.drift_scale=0.5"], None),
    ("periphery", &["periphery.out_res_bits=8"], None),
    ("tile", &["tile.max_in=256", "tile.max_out=256"], None),
    ("sweep", &["sweep.t=[\"1h\"]"], None),
    ("energy", &["energy.table=no_such_table.toml"], Some("energy.table: cannot read")),
    ("mvm", &["mvm.inputs=3"], Some("[mvm] is for")),
    ("reference", &["reference.path=no_such_reference.csv"], Some("reference.path: cannot read")),
];

#[test]
fn every_top_level_field_is_settable_on_run_and_mlp() {
    // The schema's own list of top-level fields (serde names them all when refusing an unknown one).
    let msg = fails(aimc().args(["check", &smoke(), "--backend", "cpu", "--set", "no_such_field=1"]).output().unwrap());
    let listed = msg.split("expected one of ").nth(1).expect("serde lists the fields");
    let schema: Vec<&str> = listed.split(',').map(|f| f.trim().trim_matches(|c: char| c == '`' || c.is_whitespace())).collect();
    let covered: Vec<&str> = FIELDS.iter().map(|f| f.0).collect();
    assert_eq!(schema, covered, "a top-level field was added or renamed: give it a --set case here");

    let dir = tmp("set");
    let model = root().join("experiments/models/digits_mlp.safetensors");
    let data = root().join("experiments/data/digits.csv");
    for (i, (field, sets, refusal)) in FIELDS.iter().enumerate() {
        let set_args: Vec<&str> = sets.iter().flat_map(|s| ["--set", s]).collect();
        let run_out = dir.join(format!("run-{i}"));
        let mlp_out = dir.join(format!("mlp-{i}"));
        let run = aimc().args(["run", &smoke(), "--backend", "cpu", "--trials", "4", "--out"]).arg(&run_out).args(&set_args).output().unwrap();
        let mlp = aimc()
            .args(["mlp", "--model", model.to_str().unwrap(), "--data", data.to_str().unwrap(), "--scale", "16", "--rows", "1347..1397"])
            .args(["--trials", "4", "--times", "1h", "--backend", "cpu", "--out"])
            .arg(&mlp_out)
            .args(&set_args)
            .output()
            .unwrap();
        for (command, o, out) in [("run", run, &run_out), ("mlp", mlp, &mlp_out)] {
            let msg = text(&o);
            assert!(!msg.contains("SECTION.FIELD") && !msg.contains("unknown field"), "aimc {command} --set for {field}: {msg}");
            match refusal {
                None => {
                    assert!(o.status.success(), "aimc {command} {sets:?}: {msg}");
                    // The value is the run's: recorded in the resolved configuration.
                    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
                    if let (false, Some((_, v))) = (sets[0].contains('.'), sets[0].split_once('=')) {
                        if let Some(recorded) = r["config"].get(*field) {
                            let expected = v.parse::<f64>().map(serde_json::Value::from).unwrap_or_else(|_| match v {
                                "true" | "false" => (v == "true").into(),
                                _ => v.into(),
                            });
                            let same = recorded.as_f64().zip(expected.as_f64()).map_or(*recorded == expected, |(a, b)| a == b);
                            assert!(same, "aimc {command} --set {}: config.{field} is {recorded}", sets[0]);
                        }
                    }
                }
                Some(start) => assert!(!o.status.success() && msg.contains(start), "aimc {command} {sets:?}: {msg}"),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
