//! SQuAD's official metrics (`data.answer_text`) end to end: a question's contexts cut into
//! overlapping windows (token rows), its answer the best window's by score, scored on its text
//! against the annotated answers' text. The engine's noiseless answers against the f64
//! reference's, question by question; the GPU against the CPU; the CLI's columns; bad input
//! named before any compute.

use super::question_answering::{cli_writes_both, edit, gpu_answers_as_cpu, qa_csv, qa_state_dict, SEP};
use super::transformer::{cli_results, expect_cli_error, load, tmp, write_experiment, IDEAL};
use crate::common::*;
use aimc::workload::transformer::squad::{f1, normalize};
use aimc::workload::transformer::{reference, SEGMENT_BIT};
use std::path::PathBuf;

/// The words of the tiny vocabulary's ids 2..=8 (articles among them, which SQuAD's
/// normalisation drops).
const WORDS: [&str; 7] = ["the", "red", "fox", "a", "jumps", "over", "dog"];

/// [`qa_csv`]'s 24 questions as text: each context its words joined by spaces, each answer the
/// text of its labelled span (every third question has a second annotation, its context's first
/// two words). Every fourth question with a context of 6 or more words is cut into two windows
/// (the context without its last word, then without its first), the others have one. Returns
/// the token rows (CSV, tokens only) and the `data.answer_text` JSON. With `v2` (SQuAD 2.0) every
/// fourth question, from the second, has no answer.
fn squad_rows(v2: bool) -> (String, String) {
    let (mut rows, mut questions, mut windows) = (String::new(), Vec::new(), Vec::new());
    for (r, line) in qa_csv(false).lines().enumerate() {
        let v: Vec<usize> = line.split(',').map(|t| t.parse().unwrap()).collect();
        let (toks, (start, end)) = (&v[..20], (v[20], v[21]));
        let first = toks.iter().position(|&t| t == SEP as usize).unwrap();
        let last = first + 1 + toks[first + 1..].iter().position(|&t| t == SEP as usize).unwrap();
        let (question, context) = (&toks[..=first], &toks[first + 1..last]);
        let mut spans = Vec::new();
        let mut text = String::new();
        for &t in context {
            if !text.is_empty() {
                text.push(' ');
            }
            spans.push((text.len(), text.len() + WORDS[t - 2].len()));
            text.push_str(WORDS[t - 2]);
        }
        let mut answers = vec![text[spans[start - first - 1].0..spans[end - first - 1].1].to_string()];
        if r % 3 == 0 {
            answers.push(text[..spans[1].1].to_string());
        }
        if v2 && r % 4 == 1 {
            answers.clear();
        }
        questions.push(serde_json::json!({"context": text, "answers": answers}));
        let c = context.len();
        let cuts = if r % 4 == 0 && c >= 6 { vec![(0, c - 1), (1, c)] } else { vec![(0, c)] };
        for (a, b) in cuts {
            let mut row: Vec<usize> = question.to_vec();
            let mut offsets = vec![[0, 0]; question.len()];
            row.extend(&context[a..b]);
            offsets.extend(spans[a..b].iter().map(|&(s, e)| [s, e]));
            row.push(SEP as usize);
            offsets.push([0, 0]);
            row.resize(20, 0);
            offsets.resize(20, [0, 0]);
            rows += &(row.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(",") + "\n");
            windows.push(serde_json::json!({"question": r, "offsets": offsets}));
        }
    }
    (rows, serde_json::json!({"version": if v2 { 2 } else { 1 }, "questions": questions, "rows": windows}).to_string())
}

/// A SQuAD experiment on [`qa_state_dict`] in its own directory.
fn write_squad(name: &str, task: &str, extra: &str) -> PathBuf {
    write_text(name, task, extra, false)
}

/// [`write_squad`] with SQuAD 2.0's unanswerable questions.
fn write_squad_v2(name: &str, task: &str, extra: &str) -> PathBuf {
    write_text(&format!("{name}_v2"), task, extra, true)
}

/// [`write_squad`] with SQuAD 2.0's unanswerable questions where `v2`.
pub(crate) fn write_text(name: &str, task: &str, extra: &str, v2: bool) -> PathBuf {
    let (rows, text) = squad_rows(v2);
    let transformer = format!("layer_norm_eps = 1e-12\nsegment_sep = {SEP}\ntask = \"{task}\"");
    let p = write_experiment(&tmp(&format!("squad-{name}")), &qa_state_dict(), ("rows.csv", &rows), &transformer, extra);
    std::fs::write(p.parent().unwrap().join("text.json"), text).unwrap();
    let toml = std::fs::read_to_string(&p).unwrap().replacen("path = \"rows.csv\"", "path = \"rows.csv\"\nanswer_text = \"text.json\"", 1);
    std::fs::write(&p, toml).unwrap();
    p
}

/// With an ideal device and perfect converters each trial scores as the f64 reference: every
/// window's answer from the reference, each question's the best window's by score (the first on
/// ties), its text from the offsets, scored by exact match and F1 over its answers; in SQuAD 2.0
/// no answer where the lowest null score of a question's windows beats that score.
#[test]
fn the_noiseless_answers_equal_the_reference() {
    for (task, v2) in [("qa_f1", false), ("qa_exact_match", false), ("qa_f1", true), ("qa_exact_match", true)] {
        let e = load(&write_text(&format!("ideal_{task}_{v2}"), task, IDEAL, v2));
        let s = e.points[0].transformer.as_ref().unwrap();
        let data = e.data.as_ref().unwrap();
        let text = data.text.as_ref().unwrap();
        assert_eq!((data.len(), text.questions.len(), text.unanswerable), (27, 24, v2), "three questions have two windows");
        let (tokens, lengths) = s.tokens(data);
        let w = data.n_features;
        let mut best: Vec<Option<(usize, usize, usize, f64)>> = vec![None; 24];
        let mut null = [f64::INFINITY; 24];
        for r in 0..data.len() {
            let raw: Vec<u32> = tokens[r * w..(r + 1) * w].iter().map(|&t| t & !SEGMENT_BIT).collect();
            let q = text.row_question[r] as usize;
            let (answer, n) = reference::span_answer(s.net(), s, &raw, lengths[r] as usize);
            if let Some((a, b, v)) = answer {
                if best[q].is_none_or(|x| v > x.3) {
                    best[q] = Some((r, a, b, v));
                }
            }
            null[q] = null[q].min(n);
        }
        let (mut exact, mut sum, mut none) = (0u32, 0.0, 0);
        let mut second_window = false;
        for (q, b) in best.iter().enumerate() {
            let (r, a, e, v) = b.unwrap();
            second_window |= r + 1 < data.len() && text.row_question[r + 1] as usize != q && r > 0 && text.row_question[r - 1] as usize == q;
            let pred = if v2 && null[q] > v { vec![] } else { normalize(&text.span_text(r, a, e)) };
            none += usize::from(pred.is_empty());
            let gold = &text.questions[q].answers;
            exact += u32::from(gold.contains(&pred));
            sum += gold.iter().map(|g| f1(&pred, g, v2)).fold(0.0, f64::max);
        }
        assert!(second_window, "no question took its second window: the case does not test the choice");
        assert!(exact > 0 && exact < 24 && sum > exact as f64 - 1e-9, "{exact} exact, F1 sum {sum}");
        if v2 {
            assert!(none > 0 && none < 24, "{none} of 24 questions answered nothing: the case does not test the null score");
        }
        let want = if task == "qa_f1" { sum / 24.0 } else { exact as f64 / 24.0 };
        let r = run_ok(&mut cpu(), &e);
        assert_eq!(r.points[0].fp, Some(want), "{task} {v2}");
        assert!(r.points[0].per_trial.iter().all(|&v| v == want), "{task} {v2}: {:?} against {want}", r.points[0].per_trial);
    }
}

/// The GPU answers as the CPU twins do: with PCM noise on, each trial's F1 and exact match
/// within `SPAN_GPU_ROWS` questions' worth of the 24, in SQuAD v1.1 and 2.0.
#[test]
fn the_gpu_answers_as_the_cpu_twin() {
    gpu_answers_as_cpu(write_squad);
    gpu_answers_as_cpu(write_squad_v2);
}

/// `aimc run` writes the official F1 with its test-set interval over the questions, and the exact
/// match with exact counts over the questions (24, not the 27 windows), each named as SQuAD's.
#[test]
fn the_cli_writes_official_scores_over_questions() {
    for results in cli_writes_both(write_squad) {
        assert!(results.metric.contains("official SQuAD"), "{}", results.metric);
    }
}

/// Bad input is named with its fix before any compute, and nothing is written.
#[test]
fn bad_answer_text_is_named() {
    let p = write_squad("bad_task", "classify", "");
    expect_cli_error(&p, &["data.answer_text", "question answering"]);
    let p = write_squad("bad_labels", "qa_f1", "");
    edit(&p, "answer_text = \"text.json\"", "answer_text = \"text.json\"\nlabels = \"y.npy\"");
    expect_cli_error(&p, &["data.labels", "remove data.labels"]);
    let p = write_squad("bad_rows", "qa_f1", "");
    edit(&p, "answer_text = \"text.json\"", "answer_text = \"text.json\"\nrows = [0, 4]");
    expect_cli_error(&p, &["data.rows", "window of one of its questions"]);
    let p = write_squad("bad_answers", "qa_f1", "answers = 2");
    expect_cli_error(&p, &["transformer.answers = 2", "remove transformer.answers"]);
    let p = write_squad("bad_missing", "qa_f1", "");
    std::fs::remove_file(p.parent().unwrap().join("text.json")).unwrap();
    expect_cli_error(&p, &["data.answer_text", "text.json"]);
    // One window too few: the file and the count named.
    let p = write_squad("bad_count", "qa_f1", "");
    let rows = p.parent().unwrap().join("rows.csv");
    let csv = std::fs::read_to_string(&rows).unwrap();
    std::fs::write(&rows, csv.lines().skip(1).map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    expect_cli_error(&p, &["text.json", "27 rows but the token file has 26"]);
    let p = write_squad("bad_offsets", "qa_f1", "");
    let json = p.parent().unwrap().join("text.json");
    let t = std::fs::read_to_string(&json).unwrap().replacen("[0,0]", "[0,999]", 1);
    std::fs::write(&json, t).unwrap();
    expect_cli_error(&p, &["text.json", "rows[0].offsets[0] = [0, 999]"]);
}

/// SQuAD 2.0's `null_score_diff_threshold`: one below every null − best difference leaves every
/// question empty (an exact match where the empty answer is one: the 6 unanswerable questions
/// and any whose answer normalises away), one above every difference answers each, each moves
/// the score from threshold 0's, and at each the noiseless engine scores as the reference; on
/// SQuAD v1.1 data, or not finite, it is refused by name.
#[test]
fn the_null_threshold_moves_the_balance() {
    let run = |thr: &str| {
        let e = load(&write_squad_v2(&format!("thr_{}", thr.replace('-', "m")), "qa_exact_match", &format!("null_score_diff_threshold = {thr}\n{IDEAL}")));
        let r = run_ok(&mut cpu(), &e);
        let fp = r.points[0].fp.unwrap();
        assert!(r.points[0].per_trial.iter().all(|&v| v == fp), "{thr}: {:?} against {fp}", r.points[0].per_trial);
        // The questions the empty answer matches: the unanswerable ones, and those whose answer
        // normalises to nothing (an article alone).
        let empty = e.data.as_ref().unwrap().text.as_ref().unwrap().questions.iter().filter(|q| q.answers.contains(&vec![])).count();
        (fp, empty as f64 / 24.0)
    };
    let ((never, empty), (always, _), (zero, _)) = (run("-1e6"), run("1e6"), run("0.0"));
    assert_eq!(never, empty);
    assert!(empty >= 6.0 / 24.0 && always != zero && never != zero, "{never} {zero} {always}");
    expect_cli_error(&write_squad("thr_v1", "qa_f1", "null_score_diff_threshold = 1.5"), &["null_score_diff_threshold = 1.5", "SQuAD 2.0", "remove it"]);
    expect_cli_error(&write_squad_v2("thr_inf", "qa_f1", "null_score_diff_threshold = inf"), &["null_score_diff_threshold = inf", "finite"]);
}

/// A run resumed from its checkpoint keeps the engine baseline its finished chunks recorded (a
/// resume on another backend could compute a value one answer apart): the first attempt's
/// chunk carries a value no pass gives, and after the resume every point reports it.
#[test]
fn a_resumed_run_keeps_its_chunks_engine_baseline() {
    use aimc::run::journal::{path_for, Journal};
    let p = write_squad("baseline_resume", "qa_f1", "baseline = \"engine\"\n[device]\nmodel = \"pcm\"");
    std::fs::write(&p, std::fs::read_to_string(&p).unwrap().replace("trials = 3\n", "trials = 600\n")).unwrap();
    let mut e = load(&p);
    const MARK: f64 = 0.123;
    e.points[0].transformer.as_mut().unwrap().fp_engine = Some(MARK);
    let dir = p.parent().unwrap().join("out");
    let mut j = Journal::open(&dir, &e.resolved).unwrap();
    let o = aimc::run::run_journaled(&e, &mut cpu(), &mut aimc::run::Quiet, Some(&mut j));
    assert!(o.error.is_none(), "{:?}", o.error);
    drop(j);
    // The header and the first chunk (256 trials) only: the rest is computed on resuming.
    let lines: Vec<String> = std::fs::read_to_string(path_for(&dir)).unwrap().lines().map(str::to_string).collect();
    assert!(lines.len() >= 3, "{} journal lines: the run needs two chunks", lines.len());
    std::fs::write(path_for(&dir), lines[..2].join("\n") + "\n").unwrap();
    let out = super::transformer::aimc_cli().args(["run", p.to_str().unwrap(), "--backend", "cpu", "--out", dir.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("resuming") && err.contains("0 noiseless passes") && err.contains("the resumed chunks' values kept"), "{err}");
    let r: aimc::results::Results = serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert!(r.points.iter().all(|q| q.fp == Some(MARK) && q.per_trial.len() == 600), "{:?}", r.points.iter().map(|q| q.fp).collect::<Vec<_>>());
}

/// `baseline = "engine"`: the floating-point value (and its companion's) comes from one noiseless
/// pass of the run's backend instead of the f64 reference, and equals it (no answer lies within rounding of
/// another here); the noisy trials are the same numbers, and validation alone runs no forward.
#[test]
fn the_engine_baseline_equals_the_reference() {
    for task in ["qa_f1", "qa_exact_match"] {
        let reference = cli_results(&write_squad(&format!("baseline_ref_{task}"), task, "[device]\nmodel = \"pcm\""), "");
        let p = write_squad(&format!("baseline_engine_{task}"), task, "baseline = \"engine\"\n[device]\nmodel = \"pcm\"");
        let s = load(&p).points[0].transformer.clone().unwrap();
        assert!(s.fp_span.is_none() && s.fp_engine.is_none(), "validation computed a baseline");
        let engine = cli_results(&p, "");
        assert!(reference.fp_baseline.is_some(), "{task}");
        assert_eq!(engine.fp_baseline, reference.fp_baseline, "{task}");
        for (a, b) in engine.points.iter().zip(&reference.points) {
            assert_eq!((a.fp, &a.per_trial), (b.fp, &b.per_trial), "{task}");
            // The companion's value comes from the same pass.
            let (x, y) = (a.companion.as_ref().unwrap(), b.companion.as_ref().unwrap());
            assert!(y.fp.is_some(), "{task}");
            assert_eq!((x.fp, &x.per_trial), (y.fp, &y.per_trial), "{task}: the companion");
        }
    }
}

/// `row_counts` with answer text counts per question (SQuAD's official exact match): the
/// questions' right trials add up to the trials' exact matches, 24 questions over 27 windows.
#[test]
fn row_counts_count_questions() {
    let p = write_squad_v2("rows", "qa_exact_match", "row_counts = true\n[device]\nmodel = \"pcm\"");
    std::fs::write(&p, std::fs::read_to_string(&p).unwrap().replace("trials = 3\n", "trials = 12\n")).unwrap();
    let r = run_ok(&mut cpu(), &load(&p));
    for q in &r.points {
        let rows = q.per_row_correct.as_ref().unwrap();
        assert_eq!(rows.len(), 24, "one count per question");
        let trials: u64 = q.per_trial_correct.as_ref().unwrap().iter().map(|&c| c as u64).sum();
        assert_eq!(rows.iter().map(|&c| c as u64).sum::<u64>(), trials, "{}", q.series);
    }
}
