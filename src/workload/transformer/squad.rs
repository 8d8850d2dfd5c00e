//! SQuAD's official answer metrics (Rajpurkar et al., EMNLP 2016; the v1.1 evaluation script,
//! which Hugging Face `evaluate`'s "squad" metric and aihwkit's BERT example use) over long
//! contexts cut into overlapping windows (BERT's document stride, Devlin et al. NAACL 2019 §4.2).
//!
//! `data.answer_text` gives, per question, its context and its annotated answers as text, and per
//! token row (window) its question and each token's character span in that context, as a fast
//! tokenizer's offset mapping gives it. A question's answer in one trial is the best of its
//! windows' answers by score (start + end logit; the first window on ties), as Hugging Face's
//! SQuAD post-processing picks it; its text is the context from the span's first token's first
//! character to its last token's end. Each answer is normalised as the script normalises it
//! (lower case, ASCII punctuation removed, the articles a/an/the removed, whitespace split) and
//! scored by exact match and bag-of-words F1, each the best over the annotated answers.
//!
//! SQuAD 2.0 (Rajpurkar, Jia and Liang, ACL 2018; `"version": 2` in the file): a question may
//! have no answer. Its prediction is the empty answer where the null score, position 0's start +
//! end logit (the lowest over its windows), exceeds the best span's score by more than Hugging
//! Face's `null_score_diff_threshold` (`transformer.null_score_diff_threshold`, 0 by default);
//! the v2 script's F1 of an empty prediction or annotation is 1 when both are empty, else 0.

use std::collections::HashMap;

/// One question: its context as characters (offsets count characters, as Python does) and its
/// annotated answers, normalised.
#[derive(Clone, Debug, PartialEq)]
pub struct Question {
    pub context: Vec<char>,
    pub answers: Vec<Vec<String>>,
}

/// `data.answer_text`: the questions, and for every token row its question and its tokens'
/// character spans (start, end) in that question's context.
#[derive(Clone, Debug, PartialEq)]
pub struct AnswerText {
    /// SQuAD 2.0: questions may have no answer (module header).
    pub unanswerable: bool,
    pub questions: Vec<Question>,
    pub row_question: Vec<u32>,
    /// `[row][token]`, `seq` per row.
    pub offsets: Vec<(u32, u32)>,
    pub seq: usize,
}

/// A question's exact match and F1 in one trial (or the floating-point model).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QuestionScore {
    pub exact: bool,
    pub f1: f64,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawText {
    #[serde(default = "version_one")]
    version: u32,
    questions: Vec<RawQuestion>,
    rows: Vec<RawRow>,
}

fn version_one() -> u32 {
    1
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuestion {
    context: String,
    answers: Vec<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRow {
    question: usize,
    offsets: Vec<(u32, u32)>,
}

/// The script's `normalize_answer`, as words: lower case, ASCII punctuation removed, every
/// maximal run of word characters that is "a", "an" or "the" replaced by a space (its
/// `\b(a|an|the)\b`), then split on whitespace.
pub fn normalize(text: &str) -> Vec<String> {
    let kept: String = text.to_lowercase().chars().filter(|c| !c.is_ascii_punctuation()).collect();
    let mut out = String::with_capacity(kept.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if matches!(word.as_str(), "a" | "an" | "the") {
            out.push(' ');
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in kept.chars() {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out.split_whitespace().map(str::to_string).collect()
}

/// The script's `f1_score` of normalised words: 2 · p · r / (p + r) over the words both share
/// (counted with multiplicity); 0 when they share none. The v2 script (`unanswerable`) first
/// gives 1 when both are empty and 0 when one is.
pub fn f1(pred: &[String], gold: &[String], unanswerable: bool) -> f64 {
    if unanswerable && (pred.is_empty() || gold.is_empty()) {
        return f64::from(u8::from(pred == gold));
    }
    let mut counts: HashMap<&str, i64> = HashMap::new();
    for w in gold {
        *counts.entry(w).or_default() += 1;
    }
    let mut same = 0usize;
    for w in pred {
        if let Some(c) = counts.get_mut(w.as_str()).filter(|c| **c > 0) {
            *c -= 1;
            same += 1;
        }
    }
    if same == 0 {
        return 0.0;
    }
    let (p, r) = (same as f64 / pred.len() as f64, same as f64 / gold.len() as f64);
    2.0 * p * r / (p + r)
}

impl AnswerText {
    /// Reads and checks `data.answer_text` for `rows` token rows of `seq` tokens; errors name
    /// the question or row and the fix.
    pub fn from_json(text: &str, rows: usize, seq: usize) -> Result<AnswerText, String> {
        let raw: RawText = serde_json::from_str(text).map_err(|e| {
            format!("{e}; it holds {{\"questions\": [{{\"context\": text, \"answers\": [text, ...]}}, ...], \"rows\": [{{\"question\": index, \"offsets\": [[start, end], ...]}}, ...]}} (aimc.squad_windows writes it)")
        })?;
        let unanswerable = match raw.version {
            1 => false,
            2 => true,
            v => return Err(format!("version = {v}: 1 (SQuAD v1.1, every question answered) or 2 (SQuAD 2.0, questions without an answer)")),
        };
        if raw.rows.len() != rows {
            return Err(format!("{} rows but the token file has {rows}: one row (window) per token row, in the same order", raw.rows.len()));
        }
        let mut has_row = vec![false; raw.questions.len()];
        let mut offsets = Vec::with_capacity(rows * seq);
        let mut row_question = Vec::with_capacity(rows);
        for (r, row) in raw.rows.iter().enumerate() {
            let Some(q) = raw.questions.get(row.question) else {
                return Err(format!("rows[{r}].question = {}: there are {} questions (indices from 0)", row.question, raw.questions.len()));
            };
            if row.offsets.len() != seq {
                return Err(format!(
                    "rows[{r}].offsets: {} (start, end) pairs for the row's {seq} tokens; give one per token ([0, 0] outside the context)",
                    row.offsets.len()
                ));
            }
            let chars = q.context.chars().count() as u32;
            if let Some((t, &(a, b))) = row.offsets.iter().enumerate().find(|(_, &(a, b))| a > b || b > chars) {
                return Err(format!("rows[{r}].offsets[{t}] = [{a}, {b}]: not start <= end <= {chars}, the characters of question {}'s context", row.question));
            }
            has_row[row.question] = true;
            row_question.push(row.question as u32);
            offsets.extend_from_slice(&row.offsets);
        }
        if let Some(q) = has_row.iter().position(|&h| !h) {
            return Err(format!("question {q} has no row: every question needs at least one token row (window) scoring it"));
        }
        let questions = raw
            .questions
            .into_iter()
            .enumerate()
            .map(|(i, q)| {
                if q.answers.is_empty() && !unanswerable {
                    return Err(format!(
                        "questions[{i}].answers is empty: each question needs at least one annotated answer in SQuAD v1.1; for SQuAD 2.0's unanswerable questions set \"version\": 2"
                    ));
                }
                // The v2 script scores a question without answers against the empty answer.
                let answers = if q.answers.is_empty() { vec![vec![]] } else { q.answers.iter().map(|a| normalize(a)).collect() };
                Ok(Question { context: q.context.chars().collect(), answers })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(AnswerText { unanswerable, questions, row_question, offsets, seq })
    }

    /// The text a row's span (first token `start`, last token `end`) covers in its context.
    pub fn span_text(&self, row: usize, start: usize, end: usize) -> String {
        let q = &self.questions[self.row_question[row] as usize];
        let (a, b) = (self.offsets[row * self.seq + start].0 as usize, self.offsets[row * self.seq + end].1 as usize);
        q.context.get(a..b).map_or_else(String::new, |c| c.iter().collect())
    }

    /// Every question's score given each row's answer (first token, last token, score) or None,
    /// and its null score: the question's answer is its rows' best by score, the first row on
    /// ties; a question without any answer, or (SQuAD 2.0) whose lowest null score exceeds that
    /// best score by more than `threshold` (Hugging Face's `null_score_diff_threshold`, 0 by
    /// default), scores as the empty answer.
    pub fn score<V: PartialOrd + Copy + Into<f64>>(&self, threshold: f64, answer: impl Fn(usize) -> (Option<(usize, usize, V)>, V)) -> Vec<QuestionScore> {
        let mut best: Vec<Option<(usize, usize, usize, V)>> = vec![None; self.questions.len()];
        let mut null: Vec<Option<V>> = vec![None; self.questions.len()];
        for (row, &q) in self.row_question.iter().enumerate() {
            let (a, n) = answer(row);
            if let Some((s, e, v)) = a {
                let b = &mut best[q as usize];
                if b.is_none_or(|(_, _, _, w)| v > w) {
                    *b = Some((row, s, e, v));
                }
            }
            let m = &mut null[q as usize];
            if m.is_none_or(|w| n < w) {
                *m = Some(n);
            }
        }
        best.iter()
            .zip(&null)
            .zip(&self.questions)
            .map(|((b, n), q)| {
                // The difference in f64: exact in sign, so threshold 0 is `null > best` itself.
                let b = b.filter(|&(_, _, _, v)| !(self.unanswerable && n.is_some_and(|n| n.into() - v.into() > threshold)));
                let pred = b.map_or_else(Vec::new, |(row, s, e, _)| normalize(&self.span_text(row, s, e)));
                let f1 = q.answers.iter().map(|g| f1(&pred, g, self.unanswerable)).fold(0.0, f64::max);
                QuestionScore { exact: q.answers.contains(&pred), f1 }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &[&str]) -> Vec<String> {
        s.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn normalize_follows_the_evaluation_script() {
        assert_eq!(normalize("The Denver Broncos!"), words(&["denver", "broncos"]));
        assert_eq!(normalize("  a cat, an  apple the end "), words(&["cat", "apple", "end"]));
        // Punctuation goes before the articles: "apple;the" is one word.
        assert_eq!(normalize("apple;the"), words(&["applethe"]));
        // Articles only as whole words; punctuation goes first, so "the-end" becomes "theend".
        assert_eq!(normalize("theatre and the-end"), words(&["theatre", "and", "theend"]));
        // A non-ASCII symbol is no word character and stays: "the–end" keeps "–end".
        assert_eq!(normalize("the–end"), words(&["–end"]));
        assert_eq!(normalize("Ärger über Öl"), words(&["ärger", "über", "öl"]));
        assert!(normalize("the").is_empty());
    }

    #[test]
    fn f1_counts_shared_words_with_multiplicity() {
        for v2 in [false, true] {
            assert_eq!(f1(&words(&["a", "b"]), &words(&["a", "b"]), v2), 1.0);
            // Shared {x}: p = 1/2, r = 1/3.
            let got = f1(&words(&["x", "x"]), &words(&["x", "y", "z"]), v2);
            assert!((got - 2.0 * 0.5 / 3.0 / (0.5 + 1.0 / 3.0)).abs() < 1e-15);
            assert_eq!(f1(&[], &words(&["a"]), v2), 0.0);
        }
        // Both empty: 0 in v1.1's script, 1 in 2.0's.
        assert_eq!((f1(&[], &[], false), f1(&[], &[], true)), (0.0, 1.0));
    }

    #[test]
    fn a_question_takes_its_best_window() {
        let json = r#"{"questions": [{"context": "Paris is the capital of France.", "answers": ["Paris", "paris city"]}],
            "rows": [{"question": 0, "offsets": [[0, 0], [0, 5], [6, 8], [9, 12]]},
                     {"question": 0, "offsets": [[0, 0], [13, 20], [21, 23], [24, 31]]}]}"#;
        let t = AnswerText::from_json(json, 2, 4).unwrap();
        assert_eq!(t.span_text(1, 3, 3), "France.");
        // Row 1's span scores higher: "capital of" against "Paris".
        let s = t.score(0.0, |r| (Some(if r == 0 { (1, 1, 1.0) } else { (1, 2, 2.0) }), 9.0));
        assert_eq!(s, vec![QuestionScore { exact: false, f1: 0.0 }]);
        // Ties go to the first row: "Paris" matches exactly.
        let s = t.score(0.0, |r| (Some(if r == 0 { (1, 1, 2.0) } else { (1, 2, 2.0) }), 9.0));
        assert_eq!(s, vec![QuestionScore { exact: true, f1: 1.0 }]);
        // "Paris is": against "Paris" p = 1/2, r = 1 (F1 2/3); against "paris city" 1/2.
        let s = t.score(0.0, |_| (Some((1, 2, 0.0)), 0.0));
        assert_eq!(s, vec![QuestionScore { exact: false, f1: 2.0 * 0.5 / 1.5 }]);
        assert_eq!(t.score(0.0, |_| (None::<(usize, usize, f32)>, 0.0)), vec![QuestionScore::default()]);
    }

    /// SQuAD 2.0: the null answer wins where the lowest null score over the windows exceeds the
    /// best span's; an unanswerable question scores 1 for the empty answer, 0 for any other.
    #[test]
    fn version_two_answers_nothing_where_the_null_score_wins() {
        let json = r#"{"version": 2, "questions": [{"context": "Paris is nice.", "answers": []}, {"context": "Rome.", "answers": ["Rome"]}],
            "rows": [{"question": 0, "offsets": [[0, 0], [0, 5], [6, 8]]}, {"question": 0, "offsets": [[0, 0], [9, 14], [0, 0]]},
                     {"question": 1, "offsets": [[0, 0], [0, 5], [0, 0]]}]}"#;
        let t = AnswerText::from_json(json, 3, 3).unwrap();
        let right = QuestionScore { exact: true, f1: 1.0 };
        let wrong = QuestionScore { exact: false, f1: 0.0 };
        // Row 0's null score 5 is the question's lowest and exceeds its best span's 4: no answer.
        let null = [5.0, 7.0, 1.0];
        let s = t.score(0.0, |r| (Some((1, 1, if r == 2 { 2.0 } else { 4.0 })), null[r]));
        assert_eq!(s, vec![right, right]);
        // A span above the lowest null score answers: "Paris" against no answer scores 0.
        let s = t.score(0.0, |r| (Some((1, 1, 6.0)), null[r]));
        assert_eq!(s, vec![wrong, right]);
        // Question 1's null score beats its span: the empty answer against "Rome".
        let s = t.score(0.0, |r| (Some((1, 1, 0.5)), null[r]));
        assert_eq!(s[1], wrong);
        // A threshold moves the boundary: question 0's null score exceeds its span's by 1, so
        // the span answers once the threshold is 1 (not above it) and the null again below.
        let spans = |r: usize| (Some((1, 1, if r == 2 { 2.0 } else { 4.0 })), null[r]);
        assert_eq!(t.score(1.0, spans)[0], wrong);
        assert_eq!(t.score(0.999, spans)[0], right);
        // Question 1's null (1) is below its span (2) by 1: only a threshold under −1 leaves it empty.
        assert_eq!((t.score(-1.0, spans)[1], t.score(-1.001, spans)[1]), (right, wrong));
        let e = AnswerText::from_json(&json.replace(r#""version": 2, "#, ""), 3, 3).unwrap_err();
        assert!(e.contains("set \"version\": 2"), "{e}");
        assert!(AnswerText::from_json(&json.replace(r#""version": 2"#, r#""version": 3"#), 3, 3).unwrap_err().contains("version = 3"));
    }

    #[test]
    fn bad_text_is_named() {
        let q = r#"{"context": "abc", "answers": ["a"]}"#;
        let bad = [
            (format!(r#"{{"questions": [{q}], "rows": [{{"question": 1, "offsets": [[0, 0]]}}]}}"#), "rows[0].question = 1"),
            (format!(r#"{{"questions": [{q}], "rows": [{{"question": 0, "offsets": [[0, 4]]}}]}}"#), "rows[0].offsets[0] = [0, 4]"),
            (format!(r#"{{"questions": [{q}], "rows": [{{"question": 0, "offsets": [[2, 1]]}}]}}"#), "not start <= end"),
            (format!(r#"{{"questions": [{q}], "rows": [{{"question": 0, "offsets": [[0, 0], [0, 1]]}}]}}"#), "2 (start, end) pairs"),
            (format!(r#"{{"questions": [{q}, {q}], "rows": [{{"question": 0, "offsets": [[0, 1]]}}]}}"#), "question 1 has no row"),
            (r#"{"questions": [{"context": "abc", "answers": []}], "rows": [{"question": 0, "offsets": [[0, 1]]}]}"#.to_string(), "answers is empty"),
            (format!(r#"{{"questions": [{q}], "rows": []}}"#), "0 rows but the token file has 1"),
            (r#"{"questions": [], "rowz": []}"#.to_string(), "unknown field"),
        ];
        for (json, want) in bad {
            let e = AnswerText::from_json(&json, 1, 1).unwrap_err();
            assert!(e.contains(want), "{json}: {e}");
        }
    }
}
