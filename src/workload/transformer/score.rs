//! Each trial's metric from the plan's readback (`ClassifierPoint`): a classifier's accuracy
//! counts, a language model's perplexity or next-token accuracy, question answering's token F1
//! and exact match or SQuAD's official scores (`squad`), GLUE's per-sequence metrics (`glue`),
//! each with its benchmark partner as its companion where it has one;
//! with the test-set variances their intervals come from (Cochran 1977, §6.4; the jackknife).
//! And the span rules the engine's twin, the f64 reference and the trainer share.

use super::{glue, squad, SpanScore, Task, TransformerSettings};
use crate::engine::plan::ClassifierPoint;
use crate::results::TestScale;
use crate::workload::io::Dataset;
use crate::workload::{CompanionMetric, TimeMetrics};

/// Per time, [`scored`]'s metrics, and with `row_counts` each row's (or question's) trials that
/// answer it right (with answer text `squad_metrics` counts them from its own scores).
pub(crate) fn metrics(s: &TransformerSettings, data: &Dataset, lengths: &[u32], pts: Vec<ClassifierPoint>) -> Vec<TimeMetrics> {
    let by_row = s.row_counts && data.text.is_none();
    let rows: Vec<Option<Vec<u32>>> = pts.iter().map(|p| by_row.then(|| row_correct(s, lengths.len(), p))).collect();
    scored(s, data, lengths, pts)
        .into_iter()
        .zip(rows)
        .map(|(mut m, r)| {
            m.row_correct = m.row_correct.or(r);
            m
        })
        .collect()
}

/// Each row's trials that answer it right: a classifier's, as the device counted them
/// (`row_correct`: the first largest of its outputs is its label), or question answering's (the
/// best span is a labelled one, `answer_span`'s exact rule).
fn row_correct(s: &TransformerSettings, rows: usize, p: &ClassifierPoint) -> Vec<u32> {
    if !s.task.qa() {
        let mut out = p.row_correct.clone();
        out.resize(rows, 0);
        return out;
    }
    let mut out = vec![0u32; rows];
    let exact = p.seq_overlap.iter().zip(&p.seq_predicted).zip(&p.seq_labelled).map(|((&o, &pr), &g)| pr > 0 && o == pr && pr == g);
    for (i, e) in exact.enumerate() {
        out[i % rows.max(1)] += u32::from(e);
    }
    out
}

/// Per time, the accuracy of each trial's counts, beside the floating-point accuracy; a language
/// model's perplexity exp(Σ −ln p / predicted tokens) per trial, or its next-token accuracy, each
/// with the test-set variance of its log over the sequences (`stats::ratio_variance`: each
/// sequence's loss, or hits, over its len − 1 predicted tokens; for the accuracy a, Var(ln a) =
/// Var(a) / a²). Where the task has a benchmark partner (`glue::partner`; exact match and F1;
/// perplexity and next-token accuracy) its companion comes from the same readback, each value
/// and variance as the partner task's own run forms it.
fn scored(s: &TransformerSettings, data: &Dataset, lengths: &[u32], pts: Vec<ClassifierPoint>) -> Vec<TimeMetrics> {
    // Questions are the units: rows, or with answer text its questions.
    let n = data.text.as_ref().map_or(data.len(), |t| t.questions.len()) as f64;
    let fp = s.fp_engine.or(match (s.task, s.fp_next) {
        (Task::Classify, _) => s.fp_correct.map(|c| c as f64 / n),
        (Task::NextToken, f) => f.map(|f| (f.nll / f.tokens as f64).exp()),
        (Task::NextTokenAccuracy, f) => f.map(|f| f.correct as f64 / f.tokens as f64),
        (Task::QaExactMatch, _) => s.fp_span.map(|f| f.exact as f64 / n),
        (Task::QaF1, _) => s.fp_span.map(|f| f.f1 / n),
        (_, _) => s.fp_score,
    });
    // The companion's floating-point value, from the same baseline as the metric's.
    let companion_fp = match (s.fp_engine, s.task) {
        (Some(_), _) => s.fp_engine_companion,
        (None, Task::QaExactMatch) => s.fp_span.map(|f| f.f1 / n),
        (None, Task::QaF1) => s.fp_span.map(|f| f.exact as f64 / n),
        (None, Task::NextToken) => s.fp_next.map(|f| f.correct as f64 / f.tokens as f64),
        (None, Task::NextTokenAccuracy) => s.fp_next.map(|f| (f.nll / f.tokens as f64).exp()),
        (None, _) => s.fp_score_companion,
    };
    // A companion with what its test-set interval comes from, as its partner task's run has it:
    // the items its counts are out of, or the per-trial variances and their scale.
    let also = |metric: &str, per_trial: Vec<f64>, items: Option<u32>, test_var: Option<Vec<f64>>, test_scale: TestScale| {
        Some(CompanionMetric { metric: metric.to_string(), per_trial, items, test_var, test_scale, fp: companion_fp })
    };
    // The F1, a ratio, on the log scale; Matthews' coefficient and the correlations linear.
    let scale_of = |t: Task| if t == Task::ClassifyF1 { TestScale::Log } else { TestScale::Linear };
    let fractions = |p: &ClassifierPoint| -> Vec<f64> { p.correct.iter().map(|&c| c as f64 / p.n_samples as f64).collect() };
    let per_seq = lengths.len().max(1);
    if s.task.per_sequence() {
        let classes = s.net().classes();
        return pts
            .into_iter()
            .map(|p| {
                let (per_trial, test_var) = glue::per_trial(s.task, &p.seq_out, classes, data);
                let companion = glue::partner(s.task).and_then(|(name, partner)| match partner {
                    // A classifier's accuracy from the `accuracy` stage's counts, Wilson over the rows.
                    Task::Classify => also(name, fractions(&p), Some(p.n_samples), None, TestScale::Log),
                    _ => {
                        let (v, var) = glue::per_trial(partner, &p.seq_out, classes, data);
                        also(name, v, None, var, scale_of(partner))
                    }
                });
                TimeMetrics { per_trial, test_var, test_scale: scale_of(s.task), fp, companion, ..TimeMetrics::default() }
            })
            .collect();
    }
    if let Some(text) = &data.text {
        return pts.into_iter().map(|p| squad_metrics(s, text, per_seq, &p.seq_answer, &p.seq_null, fp, companion_fp)).collect();
    }
    // Question answering's two metrics from the same slots: each sequence's F1 from its overlap
    // and lengths, in f64, the trial's F1 their mean; the exact matches `answer_span`'s counts.
    let span_f1s = |p: &ClassifierPoint| -> Vec<f64> {
        p.seq_overlap.iter().zip(&p.seq_predicted).zip(&p.seq_labelled).map(|((&o, &pr), &g)| span_f1(o, pr, g)).collect()
    };
    let mean_f1 = |f1: &[f64]| -> Vec<f64> { f1.chunks(per_seq).map(|seq| seq.iter().sum::<f64>() / n).collect() };
    if s.task == Task::QaF1 {
        // The F1's log's variance over the sequences is a ratio's over unit counts.
        return pts
            .into_iter()
            .map(|p| {
                let f1 = span_f1s(&p);
                let per_trial = mean_f1(&f1);
                let test_var = log_score_variances(&f1, &vec![1; per_seq], &per_trial);
                let companion = also("exact_match", fractions(&p), Some(p.n_samples), None, TestScale::Log);
                TimeMetrics { per_trial, test_var, fp, companion, ..TimeMetrics::default() }
            })
            .collect();
    }
    let counts: Vec<u64> = lengths.iter().map(|&l| l.saturating_sub(1) as u64).collect();
    // A language model's two metrics, each with its test-set variance over the sequences: the
    // perplexity's loss over predicted tokens, the hits' log over them.
    let perplexities = |p: &ClassifierPoint| -> (Vec<f64>, Option<Vec<f64>>) {
        let v = p.nll.iter().map(|&l| (l / p.n_samples as f64).exp()).collect();
        (v, p.seq_nll.chunks(per_seq).map(|seq| crate::stats::ratio_variance(seq, &counts)).collect())
    };
    let hit_variances =
        |p: &ClassifierPoint, per_trial: &[f64]| log_score_variances(&p.seq_correct.iter().map(|&h| h as f64).collect::<Vec<_>>(), &counts, per_trial);
    if s.task == Task::NextToken {
        return pts
            .into_iter()
            .map(|p| {
                let (per_trial, test_var) = perplexities(&p);
                let hits = fractions(&p);
                let hits_var = hit_variances(&p, &hits);
                let companion = also("next_token_accuracy", hits, Some(p.n_samples), hits_var, TestScale::Log);
                TimeMetrics { per_trial, test_var, fp, companion, ..TimeMetrics::default() }
            })
            .collect();
    }
    pts.into_iter()
        .map(|p| {
            let per_trial = fractions(&p);
            // A language model's hits: the sequences are the units (a classifier's rows are, and
            // Wilson over them needs no variance).
            let test_var = (s.task == Task::NextTokenAccuracy).then(|| hit_variances(&p, &per_trial)).flatten();
            let companion = match s.task {
                Task::NextTokenAccuracy => {
                    let (v, var) = perplexities(&p);
                    also("perplexity", v, None, var, TestScale::Log)
                }
                Task::QaExactMatch => {
                    let f1 = span_f1s(&p);
                    let mean = mean_f1(&f1);
                    let var = log_score_variances(&f1, &vec![1; per_seq], &mean);
                    also("f1", mean, None, var, TestScale::Log)
                }
                _ => None,
            };
            TimeMetrics { per_trial, correct: Some((p.correct, p.n_samples)), test_var, fp, companion, ..TimeMetrics::default() }
        })
        .collect()
}

/// SQuAD's official metrics per trial (`squad`): each question's answer the best of its rows'
/// (`answers` and `nulls`, `[trial][row]`; SQuAD 2.0 at the settings' null threshold), scored
/// against its answers' text; the exact matches as counts over the questions (Wilson), the F1 as
/// their mean with its log's test-set variance; with `row_counts`, each question's exact matches.
fn squad_metrics(
    s: &TransformerSettings,
    text: &squad::AnswerText,
    rows: usize,
    answers: &[Option<(u32, u32, f32)>],
    nulls: &[f32],
    fp: Option<f64>,
    companion_fp: Option<f64>,
) -> TimeMetrics {
    let n = text.questions.len();
    let scores: Vec<squad::QuestionScore> = answers
        .chunks(rows)
        .zip(nulls.chunks(rows))
        .flat_map(|(trial, null)| text.score(s.null_score_diff_threshold, |r| (trial[r].map(|(s, e, v)| (s as usize, e as usize, v)), null[r])))
        .collect();
    // `row_counts`: each question's exact matches over the trials, from the same scores.
    let row_correct = s.row_counts.then(|| {
        let mut out = vec![0u32; n];
        for t in scores.chunks(n) {
            out.iter_mut().zip(t).for_each(|(o, q)| *o += u32::from(q.exact));
        }
        out
    });
    // Both metrics from the same scores: the exact matches as counts over the questions, the F1
    // as their mean; each the other's companion.
    let correct: Vec<u32> = scores.chunks(n).map(|t| t.iter().filter(|q| q.exact).count() as u32).collect();
    let exact: Vec<f64> = correct.iter().map(|&c| c as f64 / n as f64).collect();
    let f1: Vec<f64> = scores.iter().map(|q| q.f1).collect();
    let mean_f1: Vec<f64> = f1.chunks(n).map(|t| t.iter().sum::<f64>() / n as f64).collect();
    let f1_var = log_score_variances(&f1, &vec![1; n], &mean_f1);
    let companion = |metric: &str, per_trial: Vec<f64>, items: Option<u32>, test_var: Option<Vec<f64>>| {
        Some(CompanionMetric { metric: metric.to_string(), per_trial, items, test_var, test_scale: TestScale::Log, fp: companion_fp })
    };
    if s.task == Task::QaExactMatch {
        let companion = companion("f1", mean_f1, None, f1_var);
        return TimeMetrics { per_trial: exact, correct: Some((correct, n as u32)), fp, row_correct, companion, ..TimeMetrics::default() };
    }
    let companion = companion("exact_match", exact, Some(n as u32), None);
    TimeMetrics { per_trial: mean_f1, test_var: f1_var, fp, row_correct, companion, ..TimeMetrics::default() }
}

/// Per trial, the test-set variance of the log of a score a = Σ_s v_s / Σ_s n_s over the
/// sequences (a next-token accuracy's hits over predicted tokens, a mean F1 over unit counts):
/// Var(ln a) = Var(a) / a² from `stats::ratio_variance`; `values` is `[trial][sequence]`. None
/// where a trial scores 0 or has fewer than two sequences.
fn log_score_variances(values: &[f64], counts: &[u64], per_trial: &[f64]) -> Option<Vec<f64>> {
    values
        .chunks(counts.len().max(1))
        .zip(per_trial)
        .map(|(seq, &a)| crate::stats::ratio_variance(seq, counts).filter(|_| a > 0.0).map(|v| v / (a * a)))
        .collect()
}

/// The labelled answer span (start, end) of a question-answering row of `seq` tokens, as the
/// data set packs it (start · seq + end).
pub fn span_of(label: u32, seq: usize) -> (u32, u32) {
    (label / seq.max(1) as u32, label % seq.max(1) as u32)
}

/// The answer a span head gives (the engine's CPU twin, the f64 reference, the trainer): the
/// span start ≤ end < start + `max_answer` with start in `starts` and end in `ends` (each
/// ascending: the context positions, cut to the `n_best` largest logits by [`top_n_cut`]) with
/// the largest `score(start, end)`, the first by start then end on ties (`answer_span`'s rule),
/// and that score; None without a candidate.
pub fn best_span<V: PartialOrd + Copy>(starts: &[usize], ends: &[usize], max_answer: usize, score: impl Fn(usize, usize) -> V) -> Option<(usize, usize, V)> {
    let mut best: Option<(usize, usize, V)> = None;
    for &s in starts {
        let from = ends.partition_point(|&e| e < s);
        for &e in ends[from..].iter().take_while(|&&e| e < s + max_answer) {
            let v = score(s, e);
            if best.is_none_or(|(_, _, b)| v > b) {
                best = Some((s, e, v));
            }
        }
    }
    best
}

/// Hugging Face's `n_best_size` cut of SQuAD post-processing (`postprocess_qa_predictions`):
/// only the `n` largest start logits and the `n` largest end logits of a sequence's `len`
/// positions may begin or end an answer. Returns the n-th of the positions ordered by value,
/// larger first, then by position, lower first (value, position): position p is among the n
/// best when `value(p) > value` or `value(p) == value` and p ≤ position ([`in_top_n`]). None
/// keeps every position (`n` = 0, every span as the exact maximum, or `n` ≥ `len`). Found as
/// `answer_span.wgsl` finds it, n passes each taking the first position after the last one
/// taken, so a NaN is never taken and every backend cuts alike.
pub fn top_n_cut<V: PartialOrd + Copy>(len: usize, n: usize, value: impl Fn(usize) -> V) -> Option<(V, usize)> {
    if n == 0 || n >= len {
        return None;
    }
    let mut cut: Option<(V, usize)> = None;
    for _ in 0..n {
        let mut next: Option<(V, usize)> = None;
        for p in 0..len {
            let v = value(p);
            let after_cut = cut.is_none_or(|(cv, cp)| v < cv || (v == cv && p > cp));
            // Positions rise, so on a tie the one already held comes first; a NaN (the only
            // value without an order against itself) is never taken.
            if after_cut && next.is_none_or(|(nv, _)| v > nv) && v.partial_cmp(&v).is_some() {
                next = Some((v, p));
            }
        }
        match next {
            Some(x) => cut = Some(x),
            None => break,
        }
    }
    cut
}

/// Whether position `p` with `value` is among the n best a [`top_n_cut`] keeps.
pub fn in_top_n<V: PartialOrd + Copy>(cut: Option<(V, usize)>, p: usize, value: V) -> bool {
    cut.is_none_or(|(cv, cp)| value > cv || (value == cv && p <= cp))
}

/// The start and end candidates of a span head's answer: the context positions (ascending)
/// among the `n_best` largest start logits, and those among the `n_best` largest end logits,
/// ranked over all `len` positions of the sequence (the question, the separators, `[CLS]` too,
/// as Hugging Face ranks them before it drops the positions outside the context).
pub fn span_candidates<V: PartialOrd + Copy>(
    context: &[usize],
    len: usize,
    n_best: usize,
    start: impl Fn(usize) -> V,
    end: impl Fn(usize) -> V,
) -> (Vec<usize>, Vec<usize>) {
    let (cs, ce) = (top_n_cut(len, n_best, &start), top_n_cut(len, n_best, &end));
    (context.iter().copied().filter(|&p| in_top_n(cs, p, start(p))).collect(), context.iter().copied().filter(|&p| in_top_n(ce, p, end(p))).collect())
}

/// A predicted answer's exact match and token-level F1 against the labelled answers (start,
/// end), the best of them as SQuAD's metrics take it; 0 without an answer.
pub fn score_answer(pred: Option<(usize, usize)>, answers: &[(u32, u32)]) -> SpanScore {
    let Some((s, e)) = pred else { return SpanScore::default() };
    answers.iter().fold(SpanScore::default(), |acc, &(gs, ge)| {
        let (gs, ge) = (gs as usize, ge as usize);
        let overlap = (e.min(ge) + 1).saturating_sub(s.max(gs));
        let f1 = span_f1(overlap as u32, (e - s + 1) as u32, (ge - gs + 1) as u32);
        SpanScore { exact: acc.exact.max(u64::from((s, e) == (gs, ge))), f1: acc.f1.max(f1) }
    })
}

/// SQuAD's F1 of one answer at the token level: 2 · overlap / (predicted + labelled length)
/// (precision overlap / predicted, recall overlap / labelled); 0 without an answer.
pub fn span_f1(overlap: u32, predicted: u32, labelled: u32) -> f64 {
    if overlap == 0 {
        0.0
    } else {
        2.0 * overlap as f64 / (predicted + labelled) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The n best by sorting (value, larger first; position, lower first), the oracle.
    fn sorted_top(v: &[f32], n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..v.len()).filter(|&i| !v[i].is_nan()).collect();
        p.sort_by(|&a, &b| v[b].partial_cmp(&v[a]).unwrap().then(a.cmp(&b)));
        p.truncate(if n == 0 { v.len() } else { n });
        p.sort();
        p
    }

    #[test]
    fn top_n_cut_keeps_the_n_largest_ties_by_position() {
        // Ties at 2.0 (positions 1, 4, 6) straddle the cut for n = 2..4; a NaN is never kept.
        let v = [0.5f32, 2.0, -1.0, 3.0, 2.0, f32::NAN, 2.0, 0.5, -3.0];
        for n in 0..=v.len() + 1 {
            let cut = top_n_cut(v.len(), n, |p| v[p]);
            let kept: Vec<usize> = (0..v.len()).filter(|&p| in_top_n(cut, p, v[p])).collect();
            let want = if n == 0 || n >= v.len() { (0..v.len()).collect() } else { sorted_top(&v, n) };
            assert_eq!(kept, want, "n = {n}");
        }
    }

    #[test]
    fn n_best_drops_spans_outside_the_largest_logits() {
        // Positions 0..2 are the question, 3..8 the context, answers of up to 5 tokens. The
        // question holds the two largest start logits. Over every span the best is [4, 8]
        // (2 + 5); with n = 2 no start is left (Hugging Face's empty answer); with n = 3 the
        // starts are 0, 1 and 3, and [3, 8] is too long, so [3, 5] (3 + 1).
        let start = [9.0f64, 8.0, -5.0, 3.0, 2.0, -1.0, -1.0, -1.0, -2.0];
        let end = [0.0f64, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 5.0];
        let context: Vec<usize> = (3..9).collect();
        let best = |n| {
            let (s, e) = span_candidates(&context, 9, n, |p| start[p], |p| end[p]);
            best_span(&s, &e, 5, |a, b| start[a] + end[b]).map(|(a, b, _)| (a, b))
        };
        assert_eq!(best(0), Some((4, 8)));
        assert_eq!(best(2), None);
        assert_eq!(best(3), Some((3, 5)));
        assert_eq!(best(4), Some((4, 8)));
    }
}
