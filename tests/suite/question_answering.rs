//! Extractive question answering (`transformer.task = "qa_f1"` / `"qa_exact_match"`) end to end:
//! the `answer_span` stage against its twin, the engine's noiseless answers against the
//! independent f64 reference row by row, the GPU against the CPU twins, the results the CLI
//! writes, and bad input named before any compute with nothing written.

use super::transformer::{bert_state_dict, cli_results, edited, expect_cli_error, load, recorded_run, tmp, write_experiment, IDEAL};
use super::twins::{replay_stages, weights};
use crate::common::*;
use aimc::engine::stages::{Stage, SPAN_SLOT_WORDS};
use aimc::engine::Backend;
use aimc::workload::transformer::{reference, span_f1, span_of, SEGMENT_BIT};
use std::path::PathBuf;

/// The separator of the tiny vocabulary (ids 2..=8 are words, 1 is [CLS], 0 padding).
pub(crate) const SEP: u32 = 9;

/// The tiny BERT of `transformer::bert_state_dict` (d_model 8, 2 heads, 20 positions, two token
/// types) with a question-answering head `qa_outputs` [2, 8] in place of its classifier.
pub(crate) fn qa_state_dict() -> Vec<u8> {
    edited(&bert_state_dict(7), |t| {
        t.retain(|k, _| !k.starts_with("classifier") && !k.contains("pooler"));
        t.insert("qa_outputs.weight".into(), (vec![2, 8], aimc::rng::uniform_signed(16, 93).into_iter().map(|v| v * 2.0).collect()));
        t.insert("qa_outputs.bias".into(), (vec![2], vec![0.1, -0.1]));
    })
}

/// 24 rows of 20 tokens, `[CLS] question [SEP] context [SEP]` then padding, each followed by its
/// answer's start and end token: questions of 2–4 words, contexts of 5–12, answers of 1–3
/// tokens inside the context. With `decoy`, two answers per row: first the whole context (a
/// second annotation that overlaps every answer), then the answer.
pub(crate) fn qa_csv(decoy: bool) -> String {
    (0..24usize)
        .map(|r| {
            let (q, c) = (2 + r % 3, 5 + (r * 3) % 8);
            let word = |i: usize| (2 + (r * 7 + i * 3 + i * i) % 7).to_string();
            let mut toks = vec!["1".to_string()];
            toks.extend((0..q).map(word));
            toks.push(SEP.to_string());
            toks.extend((q..q + c).map(word));
            toks.push(SEP.to_string());
            toks.resize(20, "0".into());
            let start = q + 2 + r % c;
            let end = (start + r % 3).min(q + 1 + c);
            let first = if decoy { format!("{},{},", q + 2, q + 1 + c) } else { String::new() };
            format!("{},{first}{start},{end}\n", toks.join(","))
        })
        .collect()
}

/// A question-answering experiment on [`qa_state_dict`] in its own directory (two answers per
/// row where `extra` sets `answers = 2`).
pub(crate) fn write_qa(name: &str, task: &str, extra: &str) -> PathBuf {
    let transformer = format!("layer_norm_eps = 1e-12\nsegment_sep = {SEP}\ntask = \"{task}\"");
    let rows = qa_csv(extra.contains("answers = 2"));
    write_experiment(&tmp(&format!("qa-{name}")), &qa_state_dict(), ("rows.csv", &rows), &transformer, extra)
}

/// With an ideal device and perfect converters every row's answer (its overlap with the labelled
/// span and its length, the `answer_span` slot of each trial) is the f64 reference's, and the
/// run's exact match and F1 are the reference's floating-point scores.
#[test]
fn the_noiseless_answers_equal_the_reference() {
    for (task, answers) in [("qa_f1", 1usize), ("qa_exact_match", 1), ("qa_f1", 2), ("qa_exact_match", 2)] {
        let extra = if answers == 2 { format!("answers = 2\n{IDEAL}") } else { IDEAL.to_string() };
        let e = load(&write_qa(&format!("ideal_{task}_{answers}"), task, &extra));
        let p = &e.points[0];
        let s = p.transformer.as_ref().unwrap();
        let data = e.data.as_ref().unwrap();
        assert_eq!(data.answers(), answers);
        let (tokens, lengths) = s.tokens(data);
        let (rec, pts) = recorded_run(&e);
        let slots = rec.log.iter().rev().find(|d| d.stage == Stage::AnswerSpan).unwrap().after[4].clone();
        let (n, w) = (data.len(), data.n_features);
        let (mut exact, mut f1) = (0u64, 0.0f64);
        for r in 0..n {
            let raw: Vec<u32> = tokens[r * w..(r + 1) * w].iter().map(|&t| t & !SEGMENT_BIT).collect();
            let gold: Vec<(u32, u32)> = data.spans[r * answers..(r + 1) * answers].iter().map(|&l| span_of(l, w)).collect();
            let want = reference::span_score(s.net(), s, &raw, lengths[r] as usize, &gold);
            for t in 0..2 {
                let at = (t * n + r) * SPAN_SLOT_WORDS as usize;
                let got = span_f1(slots[at], slots[at + 1], slots[at + 2]);
                assert_eq!(got, want.f1, "{task}, {answers} answers: row {r} trial {t}: slot {:?}; the reference's F1 {}", &slots[at..at + 3], want.f1);
            }
            exact += want.exact;
            f1 += want.f1;
        }
        let fp = s.fp_span.unwrap();
        assert_eq!((fp.exact, fp.f1), (exact, f1), "{task}");
        // Some answers right, some wrong: the case tells the two apart.
        assert!(exact > 0 && exact < n as u64 && f1 > exact as f64, "{task}: {exact} exact, F1 sum {f1}");
        assert_eq!(pts[0].correct, vec![exact as u32; 2], "{task}");
        let r = run_ok(&mut cpu(), &e);
        let want = if task == "qa_f1" { f1 / n as f64 } else { exact as f64 / n as f64 };
        assert_eq!(r.points[0].fp, Some(want), "{task}");
        assert!(r.points[0].per_trial.iter().all(|&v| v == want), "{task}: {:?} against {want}", r.points[0].per_trial);
        assert!(r.higher_is_better);
    }
}

/// A second annotation only ever helps: with PCM noise, every trial's F1 and exact match with
/// (decoy, answer) annotations is at least the answer's alone, and the decoy, the whole context,
/// raises the F1 of the trials whose answers miss.
#[test]
fn the_best_of_several_answers_scores() {
    for task in ["qa_f1", "qa_exact_match"] {
        let exact = task == "qa_exact_match";
        let one = run_ok(&mut cpu(), &load(&write_qa(&format!("one_{task}"), task, "[device]\nmodel = \"pcm\"")));
        let two = run_ok(&mut cpu(), &load(&write_qa(&format!("two_{task}"), task, "answers = 2\n[device]\nmodel = \"pcm\"")));
        let mut gained = false;
        for (a, b) in one.points.iter().zip(&two.points) {
            for (x, y) in a.per_trial.iter().zip(&b.per_trial) {
                assert!(y >= x, "{task}: {y} with a second annotation, {x} without");
                gained |= y > x;
            }
        }
        // An exact match needs the whole context predicted: the decoy seldom adds one.
        assert!(gained || exact, "{task}: the decoy never raised a trial: the case does not test the maximum");
    }
}

/// The GPU answers as the CPU twins do: with PCM noise on, each trial's F1 and exact match within
/// `SPAN_GPU_ROWS` rows' worth of the 24 (an answer flips only where two spans' scores lie within
/// an ADC flip of each other).
#[test]
fn the_gpu_answers_as_the_cpu_twin() {
    gpu_answers_as_cpu(write_qa);
}

/// Both tasks of the 24-question case `write(name, task, extra)` writes, with PCM noise, on the
/// CPU and the GPU: each trial's score within `SPAN_GPU_ROWS` questions' worth.
pub(crate) fn gpu_answers_as_cpu(write: fn(&str, &str, &str) -> PathBuf) {
    let Some(mut g) = gpu(256) else { return };
    for task in ["qa_f1", "qa_exact_match"] {
        let e = load(&write(&format!("gpu_{task}"), task, "[device]\nmodel = \"pcm\""));
        let (a, b) = (run_ok(&mut cpu(), &e), run_ok(&mut g, &e));
        for (x, y) in a.points.iter().zip(&b.points) {
            for (c, d) in x.per_trial.iter().zip(&y.per_trial) {
                assert!((c - d).abs() <= aimc::tolerances::SPAN_GPU_ROWS / 24.0 + 1e-12, "{task}: cpu {c} gpu {d}");
            }
        }
    }
}

/// `aimc run` writes the F1 per trial with its test-set interval over the questions (the ratio
/// estimator, capped at 1), and the exact match with its exact counts and Wilson interval.
#[test]
fn the_cli_writes_f1_and_exact_match() {
    cli_writes_both(write_qa);
}

/// Both tasks of the 24-question case `write` writes, through `aimc run` with PCM noise: the F1
/// with the ratio estimator's test-set interval over the questions (capped at 1), the exact match
/// with its exact counts and Wilson's. Returns the results, F1 first.
pub(crate) fn cli_writes_both(write: fn(&str, &str, &str) -> PathBuf) -> Vec<aimc::results::Results> {
    let mut all = Vec::new();
    for (task, column) in [("qa_f1", "f1"), ("qa_exact_match", "exact_match")] {
        let results = cli_results(&write(&format!("cli_{task}"), task, "[device]\nmodel = \"pcm\""), column);
        let pt = &results.points[0];
        // The answer rule is recorded at its default too (Hugging Face's n_best_size).
        assert_eq!(results.config["transformer"]["n_best"], serde_json::json!(20), "{task}");
        let ci = pt.test_set_ci.as_ref().unwrap();
        assert!(ci.lo < pt.summary.mean && pt.summary.mean <= ci.hi && ci.hi <= 1.0, "{task}: {ci:?}");
        match task {
            "qa_f1" => {
                assert!(ci.method.contains("ratio estimator") && pt.per_trial_correct.is_none(), "{task}: {ci:?}");
                assert_eq!(pt.per_trial_test_var.as_ref().map(Vec::len), Some(3));
            }
            _ => {
                assert!(ci.method.contains("wilson"), "{task}: {ci:?}");
                let hits = pt.per_trial_correct.as_ref().unwrap();
                assert!(hits.iter().zip(&pt.per_trial).all(|(&h, &a)| a == h as f64 / 24.0));
            }
        }
        all.push(results);
    }
    all
}

/// Bad input is named with its fix before any compute, and nothing is written.
#[test]
fn bad_question_answering_input_is_named() {
    let p = write_qa("bad_sep", "qa_f1", "");
    edit(&p, &format!("segment_sep = {SEP}\n"), "");
    expect_cli_error(&p, &["qa_f1", "segment_sep"]);
    let p = write_qa("bad_causal", "qa_f1", "causal = true");
    expect_cli_error(&p, &["qa_f1", "causal"]);
    let p = write_qa("bad_long", "qa_exact_match", "max_answer_tokens = 2");
    expect_cli_error(&p, &["3 tokens", "max_answer_tokens = 2"]);
    let p = write_qa("bad_unused", "classify", "max_answer_tokens = 20");
    expect_cli_error(&p, &["max_answer_tokens = 20", "does not use it"]);
    let p = write_qa("bad_unused_n_best", "classify", "n_best = 5");
    expect_cli_error(&p, &["transformer.n_best = 5", "does not use it"]);
    // A value of the wrong type is named by its field (serde's message names only the type).
    let p = write_qa("bad_n_best", "qa_f1", "n_best = -1");
    expect_cli_error(&p, &["transformer.n_best = -1", "expected u32"]);
    // Three answers declared, one given: the columns read as spans are not spans.
    let p = write_qa("bad_answers", "qa_f1", "answers = 3");
    expect_cli_error(&p, &["the last 6 columns", "start <= end"]);
    // The classifier head left in: 3 outputs, not 2.
    let p = write_qa("bad_head", "qa_f1", "");
    std::fs::write(p.parent().unwrap().join("model.safetensors"), bert_state_dict(7)).unwrap();
    expect_cli_error(&p, &["outputs per token", "qa_outputs.weight"]);
    // An answer on the question, past the padding, or not start <= end.
    let rows = |p: &PathBuf, f: &dyn Fn(&str) -> String| {
        let csv: String = qa_csv(false).lines().map(|l| f(l) + "\n").collect();
        std::fs::write(p.parent().unwrap().join("rows.csv"), csv).unwrap();
    };
    let with_span = |l: &str, s: &str| {
        let cols: Vec<&str> = l.split(',').collect();
        format!("{},{s}", cols[..cols.len() - 2].join(","))
    };
    let p = write_qa("bad_question", "qa_f1", "");
    rows(&p, &|l| with_span(l, "1,1"));
    expect_cli_error(&p, &["row 1", "[1, 1]", "not inside the context"]);
    let p = write_qa("bad_order", "qa_f1", "");
    rows(&p, &|l| with_span(l, "6,5"));
    expect_cli_error(&p, &["row 1", "start <= end"]);
    let p = write_qa("bad_width", "qa_f1", "");
    rows(&p, &|l| with_span(l, "20,21"));
    expect_cli_error(&p, &["row 1", "20 tokens"]);
    let p = write_qa("bad_nosep", "qa_f1", "");
    rows(&p, &|l| l.replace(",9,", ",8,"));
    expect_cli_error(&p, &["row 1", "no separator"]);
    let p = write_qa("bad_labels", "qa_f1", "");
    edit(&p, "path = \"rows.csv\"", "path = \"rows.csv\"\nlabels = \"spans.npy\"");
    expect_cli_error(&p, &["data.labels", "last 2 columns"]);
    // A .npy of token rows with a NaN among the spans: named as answer spans, not weights.
    let p = write_qa("bad_nan", "qa_f1", "");
    let dir = p.parent().unwrap();
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for line in qa_csv(false).lines() {
        let v: Vec<f32> = line.split(',').map(|t| t.parse().unwrap()).collect();
        x.extend_from_slice(&v[..v.len() - 2]);
        y.extend_from_slice(&v[v.len() - 2..]);
    }
    y[3] = f32::NAN;
    let m = |cols: usize, data: Vec<f32>| aimc::workload::io::npy_bytes(&aimc::workload::io::Matrix { rows: 24, cols, data });
    std::fs::write(dir.join("x.npy"), m(20, x)).unwrap();
    std::fs::write(dir.join("y.npy"), m(2, y)).unwrap();
    edit(&p, "path = \"rows.csv\"", "path = \"x.npy\"\nlabels = \"y.npy\"");
    expect_cli_error(&p, &["data.labels", "[1, 1] = NaN", "answer spans must be finite"]);
}

/// Replaces the first `from` in the file `p` by `to` (it must be there).
pub(crate) fn edit(p: &PathBuf, from: &str, to: &str) {
    let text = std::fs::read_to_string(p).unwrap();
    assert!(text.contains(from), "{from}");
    std::fs::write(p, text.replacen(from, to, 1)).unwrap();
}

/// `answer_span` on logits of 3 trials × 2 sequences of 24 tokens, two batches at two times: a
/// context whose two best spans tie (the first must win), answers the length limit cuts, a
/// sequence without context (no answer), and a separator inside the context (never an answer).
#[test]
fn answer_span_matches_twin() {
    use aimc::engine::layout::{SeqParams, StageParams};
    let mut rec = Recorder::new();
    let (seq, samples, trials, total) = (24u32, 2u32, 3u32, 4u32);
    let spans = rec.create("spans", (2 * trials * total * SPAN_SLOT_WORDS) as usize);
    let correct = rec.create("correct", (2 * trials) as usize);
    for (s0, lens, ti) in [(0u32, [24u32, 9], 0u32), (2, [15, 20], 1)] {
        let mut p = StageParams::default();
        p.layer.trials = trials;
        p.layer.batch = total;
        p.layer.t_index = ti;
        p.seq = SeqParams { samples, seq, sample_offset: s0, max_answer: 4, sep: SEP, answers: 2, ..SeqParams::default() };
        let n = (trials * samples * seq * 2) as usize;
        let mut z: Vec<f32> = weights(n, 80 + s0 as u64).iter().map(|v| 3.0 * v).collect();
        // Trial 0 of the first sequence: two spans tie at the top, [5, 6] and [10, 11].
        if s0 == 0 {
            for (st, e) in [(5usize, 6usize), (10, 11)] {
                z[2 * st] = 10.0;
                z[2 * e + 1] = 10.0;
            }
        }
        let tokens: Vec<u32> = (0..samples * seq)
            .map(|i| {
                let (sample, pos) = (i / seq, i % seq);
                let id = if pos == 13 { SEP } else { 2 + i % 7 };
                // The second sequence of the second batch has no context; elsewhere it starts at 4.
                if pos >= 4 && !(s0 == 2 && sample == 1) {
                    id | SEGMENT_BIT
                } else {
                    id
                }
            })
            .collect();
        // Two answers per sequence: a decoy first, then the tie's first span (an exact match) for
        // the first sequence; two overlapping spans for the second.
        let labels: Vec<u32> = [(20u32, 20u32), (5, 6), (4, 5), (4, 4)].iter().map(|&(a, b)| a * seq + b).collect();
        let h = rec.create("logits", n);
        rec.upload(h, bytemuck::cast_slice(&z));
        let tok = rec.create("tokens", (samples * seq) as usize);
        rec.upload(tok, &tokens);
        let len = rec.create("lengths", samples as usize);
        rec.upload(len, &lens);
        let lab = rec.create("labels", 2 * samples as usize);
        rec.upload(lab, &labels);
        rec.dispatch(Stage::AnswerSpan, &p, &[h, tok, len, lab, spans, correct], aimc::engine::plan::grid((trials * samples) as u64, 64));
    }
    let last = rec.log.last().unwrap();
    let slots: Vec<(u32, u32, u32)> = last.after[4].chunks(SPAN_SLOT_WORDS as usize).map(|s| (s[0], s[1], s[2])).collect();
    // Slots [t_index][trial][sequence]: the tie's first span is the second answer, an exact match.
    assert_eq!(slots[0], (2, 2, 2), "{slots:?}");
    for (i, &(overlap, predicted, labelled)) in slots.iter().enumerate() {
        let (ti, sample) = (i / (trials * total) as usize, i % total as usize);
        let dispatched = (ti == 0 && sample < 2) || (ti == 1 && sample >= 2);
        if !dispatched {
            assert_eq!((overlap, predicted, labelled), (0, 0, 0), "slot {i}: not dispatched");
        } else if (ti, sample) == (1, 3) {
            assert_eq!((overlap, predicted), (0, 0), "slot {i}: a sequence without context has no answer");
        } else {
            assert!((1..=4).contains(&predicted) && overlap <= predicted.min(labelled), "slot {i}: {overlap} of {predicted} and {labelled}");
        }
    }
    assert!(last.after[5][0] >= 1, "the tie's exact match is counted");
    let Some(mut g) = gpu(64) else { return };
    assert_eq!(replay_stages(&rec, &mut g, &[Stage::AnswerSpan]), 2);
}

/// `answer_span` with Hugging Face's `n_best` cut (1, 3, 7 and 0, every span) on random logits
/// of 3 trials × 2 sequences of 24 tokens, the question (positions 1..4) holding large start and
/// end logits: every predicted span is the best of the spans whose start and end rank among the
/// n largest of the sequence's logits, found by sorting, and the GPU gives the twin's slots.
#[test]
fn answer_span_n_best_matches_sorting_and_twin() {
    use aimc::engine::layout::{SeqParams, StageParams};
    let mut rec = Recorder::new();
    let (seq, samples, trials, max_answer) = (24u32, 2u32, 3u32, 6u32);
    let lens = [24u32, 17];
    let tokens: Vec<u32> = (0..samples * seq).map(|i| if i % seq >= 5 { (2 + i % 7) | SEGMENT_BIT } else { 2 + i % 7 }).collect();
    let cases = [1u32, 3, 7, 0];
    let spans = rec.create("spans", (cases.len() as u32 * trials * samples * SPAN_SLOT_WORDS) as usize);
    let correct = rec.create("correct", cases.len() * trials as usize);
    let n = (trials * samples * seq * 2) as usize;
    let mut z: Vec<f32> = weights(n, 61).iter().map(|v| 4.0 * v).collect();
    for (i, v) in z.iter_mut().enumerate() {
        if (1..5).contains(&(i / 2 % seq as usize)) {
            *v += 3.0;
        }
    }
    let h = rec.create("logits", n);
    rec.upload(h, bytemuck::cast_slice(&z));
    let tok = rec.create("tokens", tokens.len());
    rec.upload(tok, &tokens);
    let len = rec.create("lengths", samples as usize);
    rec.upload(len, &lens);
    let lab = rec.create("labels", samples as usize);
    rec.upload(lab, &[5 * seq + 6, 6 * seq + 6]);
    for (ti, &n_best) in cases.iter().enumerate() {
        let mut p = StageParams::default();
        (p.layer.trials, p.layer.batch, p.layer.t_index) = (trials, samples, ti as u32);
        p.seq = SeqParams { samples, seq, max_answer, sep: SEP, answers: 1, n_best, ..SeqParams::default() };
        rec.dispatch(Stage::AnswerSpan, &p, &[h, tok, len, lab, spans, correct], aimc::engine::plan::grid((trials * samples) as u64, 64));
    }
    let slots = &rec.log.last().unwrap().after[4];
    let mut cut_any = false;
    for (ti, &n_best) in cases.iter().enumerate() {
        for i in 0..(trials * samples) as usize {
            let (sample, len) = (i % samples as usize, lens[i % samples as usize] as usize);
            let row = &z[i * 2 * seq as usize..][..2 * len];
            // The n largest by sorting (larger first, then the lower position).
            let top = |which: usize| -> Vec<usize> {
                let mut p: Vec<usize> = (0..len).collect();
                p.sort_by(|&a, &b| row[2 * b + which].partial_cmp(&row[2 * a + which]).unwrap().then(a.cmp(&b)));
                p.truncate(if n_best == 0 { len } else { n_best as usize });
                p
            };
            let (starts, ends) = (top(0), top(1));
            let mut want: Option<(usize, usize, f32)> = None;
            for s in 5..len {
                for e in s..len.min(s + max_answer as usize) {
                    let v = row[2 * s] + row[2 * e + 1];
                    if starts.contains(&s) && ends.contains(&e) && want.is_none_or(|(_, _, b)| v > b) {
                        want = Some((s, e, v));
                    }
                }
            }
            let got = predicted(slots, ti, i, trials * samples);
            assert_eq!(got, want.map(|(s, e, _)| (s, e)), "n_best {n_best}, trial {}, sequence {sample}", i / samples as usize);
            cut_any |= n_best > 0 && got != predicted(slots, cases.len() - 1, i, trials * samples);
        }
    }
    assert!(cut_any, "some cut changes an answer");
    let Some(mut g) = gpu(64) else { return };
    assert_eq!(replay_stages(&rec, &mut g, &[Stage::AnswerSpan]), cases.len());
}

/// The predicted span of (trial, sequence) `i` in the slots of time index `ti`.
fn predicted(slots: &[u32], ti: usize, i: usize, per: u32) -> Option<(usize, usize)> {
    let slot = &slots[(ti * per as usize + i) * SPAN_SLOT_WORDS as usize..][..SPAN_SLOT_WORDS as usize];
    (slot[1] > 0).then(|| (slot[3] as usize, slot[4] as usize))
}
