//! The companion metric (`Point::companion`): a task's benchmark partner scored from the same
//! trials and readback — GLUE's accuracy beside MRPC's F1 and each STS-B correlation beside the
//! other, SQuAD's exact match and F1 each beside the other (token spans and answer text), a
//! language model's next-token accuracy and perplexity each beside the other. Each companion is
//! its partner task run alone, bit for bit, with that run's floating-point value, mean interval
//! (over programming means in a two-level run) and test-set interval; it survives shards, sample batches and
//! the CLI's trials.csv; a task without a partner has none; a results file with a bad companion
//! is refused by name.

use super::glue::write_glue;
use super::language_model::write_lm;
use super::question_answering::write_qa;
use super::squad::write_text;
use super::transformer::{cli_results, load};
use crate::common::*;
use std::path::{Path, PathBuf};

/// `p`'s experiment with `task = "{from}"` set to `to`, in a file beside it.
fn partner(p: &Path, from: &str, to: &str) -> PathBuf {
    let text = std::fs::read_to_string(p).unwrap();
    let (was, now) = (format!("task = \"{from}\""), format!("task = \"{to}\""));
    assert!(text.contains(&was), "{}: no {was}", p.display());
    let q = p.with_file_name(format!("partner_{to}.toml"));
    std::fs::write(&q, text.replacen(&was, &now, 1)).unwrap();
    q
}

/// The run of `p` (task `task`) has the companion `name` at every point, equal to the run of
/// `partner_task` (whose trials.csv column is `column`): per trial, mean, both intervals and
/// floating-point value.
fn companion_is_partner(p: &Path, task: &str, partner_task: &str, column: &str, name: &str) {
    let (a, b) = (run_ok(&mut cpu(), &load(p)), run_ok(&mut cpu(), &load(&partner(p, task, partner_task))));
    assert_eq!(b.metric_column, column, "{task}");
    for (x, y) in a.points.iter().zip(&b.points) {
        let c = x.companion.as_ref().unwrap_or_else(|| panic!("{task}: no companion at {}", x.time_label));
        assert_eq!(c.metric, name, "{task}");
        assert_eq!(c.per_trial, y.per_trial, "{task} at {}: the companion is not {partner_task}'s run", x.time_label);
        assert_eq!((c.mean, c.std, &c.mean_ci), (y.summary.mean, y.summary.std, &y.mean_ci), "{task}");
        assert!(y.test_set_ci.is_some(), "{partner_task}: no test-set interval");
        assert_eq!((&c.test_set_ci, &c.per_trial_test_var, c.test_var_scale), (&y.test_set_ci, &y.per_trial_test_var, y.test_var_scale), "{task}");
        assert!(y.fp.is_some(), "{partner_task}: no floating-point value");
        assert_eq!(c.fp, y.fp, "{task}: the companion's floating-point value");
    }
}

#[test]
fn each_companion_is_its_partner_task_run_alone() {
    let pcm = "[device]\nmodel = \"pcm\"";
    // GLUE names MRPC's second number accuracy; a `classify` run's column is test_accuracy.
    for (task, partner_task, column, name) in [
        ("classify_f1", "classify", "test_accuracy", "accuracy"),
        ("regress_pearson", "regress_spearman", "spearman", "spearman"),
        ("regress_spearman", "regress_pearson", "pearson", "pearson"),
    ] {
        companion_is_partner(&write_glue(&format!("companion_{task}"), task, pcm), task, partner_task, column, name);
    }
    for (task, partner_task, column) in [("qa_f1", "qa_exact_match", "exact_match"), ("qa_exact_match", "qa_f1", "f1")] {
        companion_is_partner(&write_qa(&format!("companion_{task}"), task, pcm), task, partner_task, column, column);
        companion_is_partner(&write_text(&format!("companion_{task}"), task, pcm, true), task, partner_task, column, column);
    }
    for (task, partner_task, column) in [("next_token", "next_token_accuracy", "next_token_accuracy"), ("next_token_accuracy", "next_token", "perplexity")] {
        let p = write_lm(&format!("companion_{task}"), "head", "", pcm);
        let p = if task == "next_token" { p } else { partner(&p, "next_token", task) };
        companion_is_partner(&p, task, partner_task, column, column);
    }
    // Matthews' coefficient and a plain accuracy stand alone.
    for task in ["classify_matthews", "classify"] {
        let p = write_glue(&format!("companion_none_{task}"), "classify_matthews", pcm);
        let r = run_ok(&mut cpu(), &load(&partner(&p, "classify_matthews", task)));
        assert!(r.points.iter().all(|q| q.companion.is_none()), "{task}");
    }
}

/// With two levels (`reads_per_programming`) the companion's interval is over programming
/// means, as its partner's own.
#[test]
fn a_two_level_companion_is_over_programming_means() {
    let p = write_glue("companion_two_level", "regress_pearson", "[device]\nmodel = \"pcm\"");
    let text = std::fs::read_to_string(&p).unwrap().replacen("trials = 3\n", "trials = 6\nreads_per_programming = 2\n", 1);
    std::fs::write(&p, text).unwrap();
    companion_is_partner(&p, "regress_pearson", "regress_spearman", "spearman", "spearman");
    let r = run_ok(&mut cpu(), &load(&p));
    assert!(r.points[0].companion.as_ref().unwrap().mean_ci.method.contains("over programming means"));
}

/// Shards merge the companion into the single run's, and sample batches reproduce it.
#[test]
fn the_companion_survives_shards_and_sample_batches() {
    use super::transformer::Limited;
    let p = write_text("companion_shards", "qa_f1", "[device]\nmodel = \"pcm\"", false);
    std::fs::write(&p, std::fs::read_to_string(&p).unwrap().replace("trials = 3\n", "trials = 6\n")).unwrap();
    let e = load(&p);
    let single = run_ok(&mut cpu(), &e);
    let parts = (0..3u32)
        .map(|k| {
            let mut e = load(&p);
            e.apply_shard(k, 3).unwrap();
            run_ok(&mut cpu(), &e)
        })
        .collect();
    let merged = aimc::run::merge::merge(parts).unwrap();
    let batched = run_ok(&mut Limited(cpu(), 16 << 10, 16 << 10), &e);
    for ((a, b), c) in single.points.iter().zip(&merged.points).zip(&batched.points) {
        assert!(a.companion.is_some());
        assert_eq!(a.companion, b.companion, "merged shards at {}", a.time_label);
        assert_eq!(a.companion, c.companion, "sample batches at {}", a.time_label);
    }
}

/// `aimc run` writes the companion in a trials.csv column of its own, after the counts, the
/// report's "Also scored" section, its summary clause and its plot; a results.json whose companion is short, or named as another
/// column, is refused by `aimc report` with the field.
#[test]
fn the_cli_writes_the_companion_column_and_refuses_a_bad_one() {
    let p = write_lm("companion_cli", "head", "", "[device]\nmodel = \"pcm\"");
    let r = cli_results(&p, "perplexity");
    let dir = p.parent().unwrap().join("out");
    let csv = std::fs::read_to_string(dir.join("trials.csv")).unwrap();
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().ends_with(",perplexity,correct,n_samples,next_token_accuracy"), "{csv}");
    let values: Vec<f64> = lines.map(|l| l.rsplit(',').next().unwrap().parse().unwrap()).collect();
    let want: Vec<f64> = r.points.iter().flat_map(|q| q.companion.as_ref().unwrap().per_trial.clone()).collect();
    assert_eq!(values, want);
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(report.contains("## Also scored") && report.contains("accuracy (the same trials) has mean"), "{report}");
    assert!(report.contains("(companion_vs_time.png)") && dir.join("companion_vs_time.svg").exists());
    let json = std::fs::read_to_string(dir.join("results.json")).unwrap();
    for (k, (edit, field)) in
        [(r#""metric": "next_token_accuracy""#, r#""metric": "perplexity""#), (r#""metric": "next_token_accuracy""#, r#""metric": "next,token""#)]
            .into_iter()
            .enumerate()
    {
        assert!(json.contains(edit));
        let bad = dir.with_file_name(format!("bad_{k}"));
        std::fs::create_dir_all(&bad).unwrap();
        std::fs::write(bad.join("results.json"), json.replacen(edit, field, 1)).unwrap();
        let out = super::transformer::aimc_cli().args(["report", bad.to_str().unwrap()]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("points[0].companion.metric"), "{err}");
    }
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["points"][1]["companion"]["per_trial"].as_array_mut().unwrap().pop();
    let bad = dir.with_file_name("bad_short");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("results.json"), v.to_string()).unwrap();
    let out = super::transformer::aimc_cli().args(["report", bad.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("points[1].companion.per_trial") && err.contains("entries"), "{err}");
}
