//! GLUE's per-sequence metrics (`transformer.task = "classify_matthews"`, `"classify_f1"`,
//! `"regress_pearson"`, `"regress_spearman"`) end to end: the `head_out` slots against the
//! independent f64 reference row by row, each trial's metric from those slots, the correct count
//! of `accuracy` against the slots' predictions, the GPU against the CPU twins, the results the
//! CLI writes, and bad input named before any compute with nothing written.

use super::transformer::{cli_results, edited, expect_cli_error, load, recorded_run, state_dict, tmp, write_experiment, IDEAL};
use super::twins::replay_stages;
use crate::common::*;
use aimc::engine::stages::Stage;
use aimc::tolerances::TRANSFORMER_FP_ABS;
use aimc::workload::transformer::{glue, reference, Task};
use std::path::PathBuf;

/// The tiny PyTorch-named model of `transformer::state_dict` with a head of `outputs` outputs
/// (3: the shipped head; 2 a binary classifier; 1 a regression head).
fn model(outputs: usize) -> Vec<u8> {
    edited(&state_dict(None, 7), |t| {
        let w = aimc::rng::uniform_signed(outputs * 6, 31).into_iter().map(|v| v * 0.8).collect();
        t.insert("classifier.2.weight".into(), (vec![outputs, 6], w));
        t.insert("classifier.2.bias".into(), (vec![outputs], vec![0.05; outputs]));
    })
}

/// 24 rows of 20 tokens (ids 1..9, padded with 0 after 6..20 tokens), then the row's label for
/// `outputs` classes, or for a regression head (1) a real target in [0, 5] as STS-B's.
fn rows(outputs: usize) -> String {
    (0..24usize)
        .map(|r| {
            let len = 6 + (r * 5) % 15;
            let toks: Vec<String> = (0..20).map(|i| if i < len { (1 + (r * 7 + i * 3 + i * i) % 9).to_string() } else { "0".into() }).collect();
            let label = if outputs == 1 { format!("{:.3}", 2.5 + 2.5 * (r as f64 * 0.7).sin()) } else { ((r * 5 + r / 4) % outputs).to_string() };
            format!("{},{label}\n", toks.join(","))
        })
        .collect()
}

fn outputs_of(task: &str) -> usize {
    match task {
        "classify_matthews" => 3,
        "classify_f1" => 2,
        _ => 1,
    }
}

/// A `task` experiment in its own directory; `extra` adds sections or fields. Its labels are
/// the f64 reference's predictions, every fourth one moved to the next class (its targets the
/// reference's outputs scaled, plus a smooth disturbance), so the floating-point metric is
/// neither perfect nor chance and noise can move it either way.
pub(crate) fn write_glue(name: &str, task: &str, extra: &str) -> PathBuf {
    let k = outputs_of(task);
    let settings = format!("task = \"{task}\"");
    let probe = load(&write_experiment(&tmp(&format!("glue-probe-{name}")), &model(k), ("rows.csv", &rows(k)), &settings, ""));
    let (s, data) = (probe.points[0].transformer.as_ref().unwrap(), probe.data.as_ref().unwrap());
    let (_, lengths) = s.tokens(data);
    let text: String = rows(k)
        .lines()
        .enumerate()
        .map(|(r, line)| {
            let out = reference::logits(s.net(), s, &reference::row_tokens(data, r), lengths[r] as usize);
            let label = match k {
                1 => format!("{}", 2.5 + 4.0 * out[0] + 0.3 * (r as f64 * 0.7).sin()),
                _ => ((reference::argmax(&out) + usize::from(r % 4 == 3)) % k).to_string(),
            };
            format!("{},{label}\n", line.rsplit_once(',').unwrap().0)
        })
        .collect();
    write_experiment(&tmp(&format!("glue-{name}")), &model(k), ("rows.csv", &text), &settings, extra)
}

const TASKS: [&str; 4] = ["classify_matthews", "classify_f1", "regress_pearson", "regress_spearman"];

/// With an ideal device and perfect converters every `head_out` slot is the f64 reference's
/// output within `TRANSFORMER_FP_ABS`; each trial's metric is `glue::score` of its slots, bit for
/// bit; a classifier's `accuracy` count is its slots' correct predictions; and the run's value
/// is the reference's floating-point one: the same predictions, or a correlation within what a
/// shift of `TRANSFORMER_FP_ABS` per output can move it (|Δr| ≤ 2 δ / σ of the outputs, to first
/// order).
#[test]
fn the_noiseless_outputs_equal_the_reference() {
    for task in TASKS {
        let e = load(&write_glue(&format!("ideal_{task}"), task, IDEAL));
        let p = &e.points[0];
        let s = p.transformer.as_ref().unwrap();
        let data = e.data.as_ref().unwrap();
        let (k, n) = (outputs_of(task), data.len());
        let (rec, pts) = recorded_run(&e);
        let slots = f32s(&rec.log.iter().rev().find(|d| d.stage == Stage::HeadOut).unwrap().after[1]);
        let (_, lengths) = s.tokens(data);
        let want: Vec<f64> =
            lengths.iter().enumerate().flat_map(|(r, &len)| reference::logits(s.net(), s, &reference::row_tokens(data, r), len as usize)).collect();
        for t in 0..2 {
            let got = &slots[t * n * k..(t + 1) * n * k];
            for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                assert!((g as f64 - w).abs() < TRANSFORMER_FP_ABS as f64, "{task}: trial {t} row {} output {}: {g} against {w}", i / k, i % k);
            }
            let wide: Vec<f64> = got.iter().map(|&v| v as f64).collect();
            let mine = glue::score(s.task, &wide, k, data);
            assert_eq!(pts[0].seq_out[t * n * k..(t + 1) * n * k], *got, "{task}: the point carries the slots");
            if k > 1 {
                let hits = glue::predictions(&wide, k).iter().zip(&data.labels).filter(|(p, &l)| **p == l as usize).count();
                assert_eq!(pts[0].correct[t] as usize, hits, "{task}: accuracy's count against the slots' predictions");
                assert_eq!(glue::predictions(&wide, k), glue::predictions(&want, k), "{task}: trial {t}");
            }
            let (per_trial, _) = glue::per_trial(s.task, got, k, data);
            assert_eq!(per_trial, vec![mine]);
        }
        let fp = s.fp_score.unwrap();
        assert_eq!(fp, glue::score(s.task, &want, k, data));
        let r = run_ok(&mut cpu(), &e);
        assert_eq!(r.points[0].fp, Some(fp), "{task}");
        let sd = {
            let m = want.iter().sum::<f64>() / want.len() as f64;
            (want.iter().map(|v| (v - m).powi(2)).sum::<f64>() / want.len() as f64).sqrt()
        };
        let bound = if k == 1 { 2.0 * TRANSFORMER_FP_ABS as f64 / sd } else { 0.0 };
        for &v in &r.points[0].per_trial {
            assert!((v - fp).abs() <= bound, "{task}: {v} against the reference's {fp} (bound {bound:.2e})");
        }
        // The case is not degenerate: a perfect or a constant predictor tells nothing.
        assert!(fp.abs() > 0.05 && fp.abs() < 0.999, "{task}: floating-point value {fp}");
        assert!(r.higher_is_better);
    }
}

/// Noise moves the per-sequence metrics, and each carries a test-set interval over the rows:
/// the F1 the ratio estimator's (log scale), Matthews' coefficient and the correlations the
/// jackknife's (linear, within [−1, 1]). A correlation's jackknife spread is of the size normal
/// theory gives, (1 − r²) / √(n − 3) (within a factor of 3 on these 24 rows), and its interval
/// holds the mean.
#[test]
fn noise_moves_the_metrics_and_each_has_a_test_set_interval() {
    use aimc::results::TestScale;
    for task in TASKS {
        let r = run_ok(&mut cpu(), &load(&write_glue(&format!("pcm_{task}"), task, "[device]\nmodel = \"pcm\"")));
        let fp = r.points[0].fp.unwrap();
        let last = r.points.last().unwrap();
        assert!(last.per_trial.iter().any(|&v| v != fp), "{task}: a year of drift left every trial at {fp}");
        assert!(last.per_trial.iter().all(|v| (-1.0..=1.0).contains(v)), "{task}: {:?}", last.per_trial);
        assert!(last.per_trial_correct.is_none(), "{task}: the correct count is accuracy's, not this metric's");
        for p in &r.points {
            let ci = p.test_set_ci.as_ref().unwrap_or_else(|| panic!("{task}: no test-set interval"));
            let m = p.summary.mean;
            assert!(ci.lo <= m && m <= ci.hi && ci.lo >= -1.0 && ci.hi <= 1.0, "{task}: {ci:?} around {m}");
            let linear = task != "classify_f1";
            assert_eq!(p.test_var_scale, if linear { TestScale::Linear } else { TestScale::Log }, "{task}");
            assert_eq!(ci.method.contains("jackknife"), linear, "{task}: {}", ci.method);
            if task == "regress_pearson" {
                let v = p.per_trial_test_var.as_ref().unwrap();
                let (sd, normal) = ((v.iter().sum::<f64>() / v.len() as f64).sqrt(), (1.0 - m * m) / (24.0f64 - 3.0).sqrt());
                assert!(sd > normal / 3.0 && sd < normal * 3.0, "jackknife σ {sd} against normal theory's {normal}");
            }
        }
    }
}

/// The GPU's `head_out` copies what its twin copies, bit for bit, and a run on the GPU with an
/// ideal device gives the CPU's metric (the same predictions; a correlation within the f32
/// error of the outputs, `TRANSFORMER_FP_ABS`).
#[test]
fn the_gpu_scores_as_the_cpu_twin() {
    // The recorded dispatches' grids are for the CPU's workgroup of 256.
    let Some(mut g) = gpu(256) else { return };
    for task in TASKS {
        let e = load(&write_glue(&format!("gpu_{task}"), task, "[device]\nmodel = \"pcm\""));
        let (rec, _) = recorded_run(&e);
        assert_eq!(replay_stages(&rec, &mut g, &[Stage::HeadOut]), 1, "{task}");
        let e = load(&write_glue(&format!("gpu_ideal_{task}"), task, IDEAL));
        let (a, b) = (run_ok(&mut cpu(), &e), run_ok(&mut g, &e));
        for (x, y) in a.points.iter().zip(&b.points) {
            for (c, d) in x.per_trial.iter().zip(&y.per_trial) {
                let tol = if outputs_of(task) == 1 { 1e-3 } else { 0.0 };
                assert!((c - d).abs() <= tol, "{task}: cpu {c} gpu {d}");
            }
        }
    }
}

/// `aimc run` names each metric's column; the tasks are named in the experiment file.
#[test]
fn the_cli_names_each_metric() {
    for (task, column) in
        [("classify_matthews", "matthews_correlation"), ("classify_f1", "f1"), ("regress_pearson", "pearson"), ("regress_spearman", "spearman")]
    {
        let r = cli_results(&write_glue(&format!("cli_{task}"), task, "[device]\nmodel = \"pcm\""), column);
        assert!(r.metric.contains(if task.starts_with("regress") { "STS-B" } else { "GLUE" }), "{}", r.metric);
    }
    for t in [Task::Classify, Task::ClassifyMatthews, Task::ClassifyF1, Task::RegressPearson, Task::RegressSpearman, Task::QaF1, Task::NextToken] {
        assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{}\"", t.name()));
    }
}

/// A head of the wrong width, a target that is not a number and a row without a target are named
/// before any compute, with nothing written.
#[test]
fn bad_input_is_named() {
    let three = |name: &str, task: &str| {
        let dir = tmp(&format!("glue-bad-{name}"));
        write_experiment(&dir, &model(3), ("rows.csv", &rows(3)), &format!("task = \"{task}\""), "")
    };
    expect_cli_error(&three("f1", "classify_f1"), &["classify_f1", "3 outputs", "classify_matthews"]);
    expect_cli_error(&three("reg", "regress_pearson"), &["regress_pearson", "gives 3", "classify"]);
    let one = |name: &str, task: &str, data: &str| {
        let dir = tmp(&format!("glue-bad-{name}"));
        write_experiment(&dir, &model(1), ("rows.csv", data), &format!("task = \"{task}\""), "")
    };
    expect_cli_error(&one("mcc1", "classify_matthews", &rows(2)), &["classify_matthews", "1 output", "regress_pearson"]);
    let nan = rows(1)
        .lines()
        .enumerate()
        .map(|(i, l)| if i == 4 { format!("{},nan\n", l.rsplit_once(',').unwrap().0) } else { format!("{l}\n") })
        .collect::<String>();
    expect_cli_error(&one("nan", "regress_spearman", &nan), &["line 5", "not a finite number"]);
    expect_cli_error(&one("cols", "regress_pearson", "3\n4\n"), &["regression row", "1 column"]);
}

/// The experiment `p` run as `n` shards on the CPU, merged.
fn merged_shards(p: &std::path::Path, n: u32) -> aimc::results::Results {
    let parts: Vec<_> = (0..n)
        .map(|k| {
            let mut e = load(p);
            e.apply_shard(k, n).unwrap();
            run_ok(&mut cpu(), &e)
        })
        .collect();
    aimc::run::merge::merge(parts).unwrap()
}

/// Shards of a run merge into the single run's points, test-set intervals included (the
/// jackknife's on the linear scale, the F1's on the log scale).
#[test]
fn shards_merge_into_the_single_run() {
    for task in ["classify_matthews", "classify_f1", "regress_spearman"] {
        let p = write_glue(&format!("shards_{task}"), task, "[device]\nmodel = \"pcm\"");
        let text = std::fs::read_to_string(&p).unwrap().replace("trials = 3\n", "trials = 6\n");
        std::fs::write(&p, text).unwrap();
        let single = run_ok(&mut cpu(), &load(&p));
        let merged = merged_shards(&p, 3);
        for (a, b) in single.points.iter().zip(&merged.points) {
            assert_eq!((&a.per_trial, &a.per_trial_test_var, a.test_var_scale), (&b.per_trial, &b.per_trial_test_var, b.test_var_scale), "{task}");
            assert_eq!(a.test_set_ci, b.test_set_ci, "{task}");
        }
    }
}

/// A regression's rows (tokens, then a real target) through the whole validation: mutations are
/// refused with a message or load with a finite target per row; nothing panics.
#[test]
fn regression_rows_never_panic() {
    let p = write_glue("fuzz_rows", "regress_pearson", "");
    let dir = p.parent().unwrap();
    let rows = std::fs::read_to_string(dir.join("rows.csv")).unwrap();
    super::fuzz::fuzz_experiment_file("regression rows", rows.as_bytes(), &dir.join("rows.csv"), &p, |e| {
        let d = e.data.as_ref().unwrap();
        d.targets.len() == d.len() && d.targets.iter().all(|t| t.is_finite())
    });
}

/// `row_counts`: each row's right trials add up to the trials' right rows, the `accuracy`
/// stage's counts for a classifier and `answer_span`'s exact matches for a reader (two
/// independent paths to the same total); the counts add over chunks and shards; row_counts.csv lists
/// every row at every point, a rerun into the same directory replaces it, and the report names
/// the rows noise breaks first. Tasks without a right answer per row refuse it.
#[test]
fn row_counts_add_up_to_the_trials_counts() {
    use super::question_answering::write_qa;
    let classify = {
        let k = 3;
        write_experiment(&tmp("glue-rows-classify"), &model(k), ("rows.csv", &rows(k)), "task = \"classify\"\nrow_counts = true", "[device]\nmodel = \"pcm\"")
    };
    let reader = write_qa("rows_exact", "qa_exact_match", "row_counts = true\n[device]\nmodel = \"pcm\"");
    for (p, classes) in [(classify, true), (reader, false)] {
        edit_line(&p, "trials = 3\n", "trials = 12\n");
        let e = load(&p);
        let r = run_ok(&mut cpu(), &e);
        // A classifier's rows carry their labels; a reader's spans are not classes.
        assert_eq!(r.row_labels.as_ref(), classes.then(|| &e.data.as_ref().unwrap().labels), "{}", p.display());
        let mut mixed = false;
        for q in &r.points {
            let rows: u64 = q.per_row_correct.as_ref().unwrap().iter().map(|&c| c as u64).sum();
            let trials: u64 = q.per_trial_correct.as_ref().unwrap().iter().map(|&c| c as u64).sum();
            assert_eq!(rows, trials, "{}: {}", p.display(), q.series);
            mixed |= q.per_row_correct.as_ref().unwrap().iter().any(|&c| c > 0 && (c as usize) < q.per_trial.len());
        }
        assert!(mixed, "{}: no row is right in some trials only: the case does not test the counts", p.display());
        // Shards of the run merge into its counts.
        let merged = merged_shards(&p, 3);
        for (a, b) in r.points.iter().zip(&merged.points) {
            assert_eq!(a.per_row_correct, b.per_row_correct, "{}", p.display());
        }
        // The CLI writes row_counts.csv, a line per row and point, and reruns into the same directory.
        let out = p.parent().unwrap().join("out");
        for _ in 0..2 {
            let o = super::transformer::aimc_cli()
                .args(["run", p.to_str().unwrap(), "--backend", "cpu", "--out", out.to_str().unwrap(), "--overwrite"])
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        let csv = std::fs::read_to_string(out.join("row_counts.csv")).unwrap();
        assert_eq!(csv.lines().count(), 1 + 24 * r.points.len(), "{}", p.display());
        let header = if classes { "correct_trials,trials,label\n" } else { "correct_trials,trials\n" };
        assert!(csv.starts_with(&format!("sweep_index,series,t_inf_s,time_label,row,{header}")), "{}", &csv[..80]);
        let report = std::fs::read_to_string(out.join("report.md")).unwrap();
        assert!(report.contains("## Rows noise breaks first") && report.contains("| class | rows |") == classes);
    }
    let lm = write_glue("rows_reg", "regress_pearson", "");
    edit_line(&lm, "task = \"regress_pearson\"", "task = \"regress_pearson\"\nrow_counts = true");
    expect_cli_error(&lm, &["transformer.row_counts", "regress_pearson", "remove row_counts"]);
}

fn edit_line(p: &std::path::Path, from: &str, to: &str) {
    std::fs::write(p, std::fs::read_to_string(p).unwrap().replacen(from, to, 1)).unwrap();
}

/// A run resumed from a journal cut after its first chunk counts each row's right trials as the
/// uninterrupted run does (the counts of the journaled chunk and of the rest add up).
#[test]
fn row_counts_survive_a_resume() {
    let p = write_glue("rows_resume", "classify_matthews", "row_counts = true\n[device]\nmodel = \"pcm\"");
    edit_line(&p, "trials = 3\n", "trials = 600\n");
    let (whole, again) = whole_and_resumed(&load(&p), &p.parent().unwrap().join("out"));
    for (a, b) in whole.points.iter().zip(&again.points) {
        assert!(a.per_row_correct.is_some());
        assert_eq!((&a.per_row_correct, &a.per_trial), (&b.per_row_correct, &b.per_trial), "{}", a.series);
    }
}

/// Sample batches reproduce one whole run: `head_out` places each batch's sequences at their
/// global slots (`sample_offset`), so every trial's metric, test-set variance and row count is
/// the same bit for bit.
#[test]
fn sample_batches_give_the_whole_run() {
    use super::transformer::Limited;
    for task in ["classify_matthews", "regress_spearman"] {
        let p = write_glue(&format!("batches_{task}"), task, "row_counts = true\n[device]\nmodel = \"pcm\"");
        if task.starts_with("regress") {
            edit_line(&p, "row_counts = true\n", "");
        }
        let e = load(&p);
        let whole = run_ok(&mut cpu(), &e);
        // 16 KiB holds a few of the 24 sequences' largest buffers: the data set runs in batches.
        let parts = run_ok(&mut Limited(cpu(), 16 << 10, 16 << 10), &e);
        for (a, b) in whole.points.iter().zip(&parts.points) {
            assert_eq!((&a.per_trial, &a.per_trial_test_var, &a.per_row_correct), (&b.per_trial, &b.per_trial_test_var, &b.per_row_correct), "{task}");
        }
    }
}
