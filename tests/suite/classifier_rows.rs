//! A classifier's rows (top-level `row_counts = true`): per test row, the trials that classify it
//! right, through the whole pipeline. The rows' counts add up to the trials' counts at every
//! point; a resumed run and merged shards count as the single run; row_counts.csv and the
//! report's rows that noise breaks first are written; the CNN counts as the MLP does; and the
//! field on a workload without test rows is refused by name. The stage itself (`row_correct`)
//! against its twin, in sample batches and chunks, is in tests/suite/invariance.rs and twins.rs.

use crate::common::*;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A shipped classifier experiment with `row_counts = true` and `trials` trials, loaded.
fn with_rows(file: &str, trials: u32) -> aimc::config::Experiment {
    let path = root().join("experiments").join(file);
    let text = format!("row_counts = true\n{}", std::fs::read_to_string(&path).unwrap());
    let mut e = aimc::config::Experiment::from_text(&text, &path).unwrap_or_else(|e| panic!("{e}"));
    e.set_trials(trials).unwrap();
    e
}

/// Every point's rows add up to its trials' counts; with `mixed`, some rows are right in some
/// trials only.
fn rows_add_up(r: &aimc::results::Results, rows: usize, mixed_wanted: bool) {
    let mut mixed = false;
    for p in &r.points {
        let by_row = p.per_row_correct.as_ref().unwrap_or_else(|| panic!("{} at {}: no row counts", p.series, p.time_label));
        assert_eq!(by_row.len(), rows, "{}", p.series);
        let by_trial: u64 = p.per_trial_correct.as_ref().unwrap().iter().map(|&c| c as u64).sum();
        assert_eq!(by_row.iter().map(|&c| c as u64).sum::<u64>(), by_trial, "{} at {}", p.series, p.time_label);
        mixed |= by_row.iter().any(|&c| c > 0 && (c as usize) < p.per_trial.len());
    }
    assert!(mixed || !mixed_wanted, "no row is right in some trials only");
}

#[test]
fn a_classifiers_rows_add_up_to_its_trials() {
    let e = with_rows("smoke.toml", 12);
    let r = run_ok(&mut cpu(), &e);
    rows_add_up(&r, 100, true);
    // Without the field, the same trials and no rows.
    let mut plain = e.clone();
    plain.row_counts = false;
    let q = run_ok(&mut cpu(), &plain);
    for (a, b) in r.points.iter().zip(&q.points) {
        assert_eq!(a.per_trial, b.per_trial);
        assert!(b.per_row_correct.is_none());
    }
    // The CNN (convolutions unfolded into MVMs, pooling) counts its rows the same way.
    let cnn = with_rows("digits_cnn.toml", 4);
    rows_add_up(&run_ok(&mut cpu(), &cnn), cnn.data.as_ref().unwrap().len(), false);
}

/// Shards merge into the single run's rows, and a run resumed from a journal cut after its first
/// chunk counts them as the uninterrupted run.
#[test]
fn rows_survive_shards_and_a_resume() {
    let e = with_rows("smoke.toml", 6);
    let single = run_ok(&mut cpu(), &e);
    let parts = (0..3u32)
        .map(|k| {
            let mut s = e.clone();
            s.apply_shard(k, 3).unwrap();
            run_ok(&mut cpu(), &s)
        })
        .collect();
    let merged = aimc::run::merge::merge(parts).unwrap();
    for (a, b) in single.points.iter().zip(&merged.points) {
        assert_eq!((&a.per_row_correct, &a.per_trial), (&b.per_row_correct, &b.per_trial), "{}", a.series);
    }
    let dir = std::env::temp_dir().join(format!("aimc-classifier-rows-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (whole, again) = whole_and_resumed(&with_rows("smoke.toml", 600), &dir);
    for (a, b) in whole.points.iter().zip(&again.points) {
        assert_eq!((&a.per_row_correct, &a.per_trial), (&b.per_row_correct, &b.per_trial), "{}", a.series);
    }
    rows_add_up(&again, 100, true);
}

fn aimc(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_aimc")).args(args).output().unwrap()
}

/// `aimc run --set row_counts=true` writes row_counts.csv (one line per point, time and row) and
/// the report's rows section; on a workload without test rows the field is refused, naming it
/// and the transformer's own.
#[test]
fn the_cli_writes_row_counts_and_refuses_them_elsewhere() {
    let out = std::env::temp_dir().join(format!("aimc-classifier-rows-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let smoke = root().join("experiments/smoke.toml").display().to_string();
    let o = aimc(&["run", &smoke, "--backend", "cpu", "--trials", "8", "--set", "row_counts=true", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(out.join("row_counts.csv")).unwrap();
    assert!(csv.starts_with("sweep_index,series,gdc,t_inf_s,time_label,row,correct_trials,trials,label\n"), "{csv}");
    assert_eq!(csv.lines().count(), 1 + 4 * 100, "4 points × 100 rows");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("## Rows noise breaks first") && report.contains("| class | rows |"), "{report}");
    let json = std::fs::read_to_string(out.join("results.json")).unwrap();
    let r: aimc::results::Results = serde_json::from_str(&json).unwrap();
    assert_eq!(r.config["row_counts"], true);
    // Each row's label is the data set's, and the csv's last column.
    let labels = r.row_labels.as_ref().unwrap();
    let data = aimc::config::Experiment::load(std::path::Path::new(&smoke)).unwrap().data.unwrap();
    assert_eq!(labels, &data.labels);
    assert!(csv.lines().skip(1).take(100).enumerate().all(|(row, l)| l.ends_with(&format!(",{}", labels[row]))));
    // A results.json whose labels do not name every counted row is refused by `aimc report`.
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["row_labels"].as_array_mut().unwrap().pop();
    let bad = out.with_file_name(format!("{}-bad", out.file_name().unwrap().to_str().unwrap()));
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("results.json"), v.to_string()).unwrap();
    let o = aimc(&["report", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("row_labels") && err.contains("99 labels"), "{err}");
    // Labels of rows that no point counts are refused too.
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["points"].as_array_mut().unwrap().iter_mut().for_each(|p| {
        p.as_object_mut().unwrap().remove("per_row_correct");
    });
    std::fs::write(bad.join("results.json"), v.to_string()).unwrap();
    let o = aimc(&["report", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("row_labels: labels of rows no point counts"), "{err}");
    for (file, want) in [("weights_pcm_hermes.toml", "remove it"), ("transformer_lra.toml", "transformer.row_counts = true")] {
        let exp = root().join("experiments").join(file).display().to_string();
        let o = aimc(&["check", &exp, "--backend", "cpu", "--set", "row_counts=true"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains("row_counts = true") && err.contains(want), "{file}: {err}");
    }
}
