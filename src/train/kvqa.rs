//! The extractive question-answering data of the shipped span model: a seeded key–value lookup
//! in the shape of SQuAD (Rajpurkar et al., EMNLP 2016) and of the associative-recall probes of
//! sequence models (Ba et al., "Using fast weights to attend to the recent past", NeurIPS 2016):
//! a row is `[CLS] key [SEP] k₁ v… k₂ v… k₃ v… k₄ v… [SEP]`, four records of a distinct key and a
//! value phrase of 1–3 value tokens, and the question's key is one of the four; the answer is the
//! value phrase after that key in the context, a span of 1–3 tokens. Finding it takes attention
//! from the context to the question (which key is asked) and along the context (where the phrase
//! after it ends): the two things a SQuAD reader does, at a size this trainer runs in minutes.
//!
//! Tokens (vocabulary of 27): 0 padding, 1 `[CLS]`, 2 `[SEP]`, 3..=10 the eight keys, 11..=26 the
//! sixteen values. Rows are padded at the end to 20 tokens. The label packs the answer's start
//! and end token as start · width + end (the engine's `transformer::span_of` with the CSV's
//! width: [`span_csv`] writes the two columns).
//!
//! Determinism: every draw is `rand_pcg::Pcg64Mcg::next_u64` (uniform integers by a widening
//! multiply); each split has its own seed.

use rand::{RngCore, SeedableRng};
use rand_pcg::Pcg64Mcg;

use super::listops::{SeqData, PAD};

pub const CLS: u32 = 1;
/// The separator: the context is the tokens after the first one (`transformer.segment_sep`).
pub const SEP: u32 = 2;
pub const FIRST_KEY: u32 = 3;
pub const KEYS: u32 = 8;
pub const FIRST_VALUE: u32 = FIRST_KEY + KEYS;
pub const VALUES: u32 = 16;
pub const KVQA_VOCAB: usize = (FIRST_VALUE + VALUES) as usize;
/// Records per context.
pub const RECORDS: usize = 4;
/// The longest value phrase.
pub const MAX_PHRASE: usize = 3;
/// The padded width: `[CLS] key [SEP]`, the records, `[SEP]`.
pub const KVQA_WIDTH: usize = 3 + RECORDS * (1 + MAX_PHRASE) + 1;
/// Rows of each split and their seeds (validation chooses settings; the test split is shipped).
pub const TRAIN_ROWS: usize = 12_000;
pub const TEST_ROWS: usize = 500;
const SEED: u64 = 20_261_206;

fn below(rng: &mut Pcg64Mcg, n: u32) -> u32 {
    ((rng.next_u64() as u128 * n as u128) >> 64) as u32
}

/// One row: its tokens and the answer's (start, end) token.
fn row(rng: &mut Pcg64Mcg) -> (Vec<u32>, (usize, usize)) {
    let mut keys: Vec<u32> = (0..KEYS).collect();
    for i in 0..RECORDS {
        let j = i + below(rng, KEYS - i as u32) as usize;
        keys.swap(i, j);
    }
    let asked = below(rng, RECORDS as u32) as usize;
    let mut toks = vec![CLS, FIRST_KEY + keys[asked], SEP];
    let mut answer = (0, 0);
    for (r, &k) in keys[..RECORDS].iter().enumerate() {
        toks.push(FIRST_KEY + k);
        let len = 1 + below(rng, MAX_PHRASE as u32) as usize;
        let start = toks.len();
        for _ in 0..len {
            toks.push(FIRST_VALUE + below(rng, VALUES));
        }
        if r == asked {
            answer = (start, toks.len() - 1);
        }
    }
    toks.push(SEP);
    (toks, answer)
}

/// `rows` rows from `seed`, padded to [`KVQA_WIDTH`], labels packed (module header).
pub fn generate(rows: usize, seed: u64) -> SeqData {
    let mut rng = Pcg64Mcg::seed_from_u64(seed);
    let mut d = SeqData { tokens: Vec::with_capacity(rows * KVQA_WIDTH), lens: Vec::new(), labels: Vec::new(), width: KVQA_WIDTH };
    for _ in 0..rows {
        let (mut toks, (s, e)) = row(&mut rng);
        d.lens.push(toks.len());
        toks.resize(KVQA_WIDTH, PAD);
        d.tokens.extend(toks);
        d.labels.push((s * KVQA_WIDTH + e) as u32);
    }
    d
}

/// (train, validation, test), each split from its own seed.
pub fn splits() -> (SeqData, SeqData, SeqData) {
    (generate(TRAIN_ROWS, SEED), generate(TEST_ROWS, SEED + 1), generate(TEST_ROWS, SEED + 2))
}

/// The answer span (start, end) a packed label holds.
pub fn span(label: u32) -> (usize, usize) {
    (label as usize / KVQA_WIDTH, label as usize % KVQA_WIDTH)
}

/// A row's context: the positions after its first separator, the separators excluded.
pub fn context(tokens: &[u32]) -> Vec<usize> {
    let first = tokens.iter().position(|&t| t == SEP).unwrap_or(tokens.len());
    (first + 1..tokens.len()).filter(|&p| tokens[p] != SEP && tokens[p] != PAD).collect()
}

/// The data's rows as the engine reads question answering: the tokens, then the answer's start
/// and end token.
pub fn span_csv(d: &SeqData) -> String {
    let mut s = String::new();
    for i in 0..d.len() {
        for t in &d.tokens[i * d.width..(i + 1) * d.width] {
            s.push_str(&t.to_string());
            s.push(',');
        }
        let (a, b) = span(d.labels[i]);
        s.push_str(&format!("{a},{b}\n"));
    }
    s
}

/// The shipped windows of [`squad_text`] (experiments/data/kvqa_windows.csv): 14 tokens, so a
/// context of more than 10 tokens takes two, sharing 4.
pub const SQUAD_WINDOW: usize = 14;
pub const SQUAD_STRIDE: usize = 4;

/// The words the tokens stand for in [`squad_text`]: the keys are names, the values words.
const KEY_WORDS: [&str; KEYS as usize] = ["ada", "ben", "cy", "dee", "eve", "fay", "gus", "hal"];
const VALUE_WORDS: [&str; VALUES as usize] =
    ["red", "blue", "green", "gold", "fox", "owl", "cat", "elk", "sun", "moon", "rain", "snow", "hill", "lake", "tree", "stone"];

/// The data's rows as SQuAD's official metrics read them (`data.answer_text`): each context
/// written as text, `ada: red fox; ben: owl; ...`, its answer the asked value phrase's text, and
/// the context cut into windows of `window` tokens, `[CLS] key [SEP]`, part of the context,
/// `[SEP]`, consecutive windows sharing `stride` context tokens (a fast tokenizer's
/// `return_overflowing_tokens` with `stride`). Returns the windows' token rows (CSV, padded to
/// `window`) and the JSON of the questions' text and the windows' offsets.
pub fn squad_text(d: &SeqData, window: usize, stride: usize) -> (String, String) {
    let room = window - 4;
    assert!(stride < room, "the windows must advance");
    let (mut csv, mut questions, mut rows) = (String::new(), Vec::new(), Vec::new());
    for i in 0..d.len() {
        let t = &d.seq(i)[..d.lens[i]];
        let ctx = &t[3..t.len() - 1];
        let (mut text, mut offsets) = (String::new(), Vec::new());
        for &tok in ctx {
            if tok < FIRST_VALUE {
                if !text.is_empty() {
                    text.push_str("; ");
                }
                offsets.push([text.len(), text.len() + KEY_WORDS[(tok - FIRST_KEY) as usize].len()]);
                text.push_str(KEY_WORDS[(tok - FIRST_KEY) as usize]);
                text.push(':');
            } else {
                text.push(' ');
                offsets.push([text.len(), text.len() + VALUE_WORDS[(tok - FIRST_VALUE) as usize].len()]);
                text.push_str(VALUE_WORDS[(tok - FIRST_VALUE) as usize]);
            }
        }
        let (s, e) = span(d.labels[i]);
        questions.push(serde_json::json!({"context": text, "answers": [&text[offsets[s - 3][0]..offsets[e - 3][1]]]}));
        let mut first = 0;
        loop {
            let last = (first + room).min(ctx.len());
            let mut toks = t[..3].to_vec();
            toks.extend_from_slice(&ctx[first..last]);
            toks.push(SEP);
            let mut offs = vec![[0, 0]; 3];
            offs.extend_from_slice(&offsets[first..last]);
            offs.resize(window, [0, 0]);
            toks.resize(window, PAD);
            csv += &(toks.iter().map(u32::to_string).collect::<Vec<_>>().join(",") + "\n");
            rows.push(serde_json::json!({"question": i, "offsets": offs}));
            if last == ctx.len() {
                break;
            }
            first = last - stride;
        }
    }
    (csv, serde_json::json!({"questions": questions, "rows": rows}).to_string() + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_hold_four_records_and_the_answer_follows_the_asked_key() {
        let d = generate(200, 7);
        for i in 0..d.len() {
            let t = d.seq(i);
            let (s, e) = span(d.labels[i]);
            assert_eq!((t[0], t[2], *t.last().unwrap()), (CLS, SEP, SEP));
            assert_eq!(t[s - 1], t[1], "row {i}: the answer follows the asked key");
            assert!(e >= s && e - s < MAX_PHRASE && t[s..=e].iter().all(|&v| v >= FIRST_VALUE));
            assert!(t.get(e + 1).is_some_and(|&n| n < FIRST_VALUE), "row {i}: the phrase ends at the next key or [SEP]");
            let keys: Vec<u32> = t[3..].iter().copied().filter(|&v| (FIRST_KEY..FIRST_VALUE).contains(&v)).collect();
            assert_eq!(keys.len(), RECORDS);
            assert!(keys.iter().all(|k| keys.iter().filter(|&j| j == k).count() == 1));
            assert!(context(t).contains(&s) && context(t).contains(&e) && t.len() <= KVQA_WIDTH);
        }
        assert_eq!(generate(50, 7), generate(50, 7));
    }

    /// The windows cover every context token, consecutive ones sharing the stride, each token's
    /// offsets spell its word; and the shipped files are the test split's.
    #[test]
    fn windows_spell_their_tokens_and_are_shipped() {
        let d = generate(40, 9);
        let (csv, json) = squad_text(&d, SQUAD_WINDOW, SQUAD_STRIDE);
        let text: serde_json::Value = serde_json::from_str(&json).unwrap();
        let rows: Vec<Vec<u32>> = csv.lines().map(|l| l.split(',').map(|t| t.parse().unwrap()).collect()).collect();
        let mut covered = vec![0usize; d.len()];
        for (r, row) in rows.iter().enumerate() {
            let q = text["rows"][r]["question"].as_u64().unwrap() as usize;
            let context = text["questions"][q]["context"].as_str().unwrap();
            assert_eq!((row.len(), &row[..3]), (SQUAD_WINDOW, &d.seq(q)[..3]));
            for (t, &tok) in row.iter().enumerate().skip(3).filter(|&(_, &tok)| tok != SEP && tok != PAD) {
                let o = &text["rows"][r]["offsets"][t];
                let word = &context[o[0].as_u64().unwrap() as usize..o[1].as_u64().unwrap() as usize];
                let want = if tok < FIRST_VALUE { KEY_WORDS[(tok - FIRST_KEY) as usize] } else { VALUE_WORDS[(tok - FIRST_VALUE) as usize] };
                assert_eq!(word, want, "window {r} token {t}");
            }
            let n = row.iter().skip(3).filter(|&&t| t != SEP && t != PAD).count();
            covered[q] = if covered[q] == 0 { n } else { covered[q] + n - SQUAD_STRIDE };
        }
        for (q, &c) in covered.iter().enumerate() {
            assert_eq!(c, d.lens[q] - 4, "question {q}: its windows cover its context once, less the shared tokens");
        }
        let (csv, json) = squad_text(&splits().2, SQUAD_WINDOW, SQUAD_STRIDE);
        let shipped = |f: &str| std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/data/").to_string() + f).unwrap();
        assert!(shipped("kvqa_windows.csv") == csv && shipped("kvqa_text.json") == json, "regenerate with train-transformer --task kvqa --data-out");
    }
}
