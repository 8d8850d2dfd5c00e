//! The sequence-classification data of the shipped transformers: a seeded ListOps generator (the
//! rules of the Long Range Arena generator, Tay et al., "Long Range Arena", ICLR 2021,
//! `lra_benchmarks/data/listops.py`; the task of Nangia & Bowman, 2018), its evaluator, and the
//! digits as pixel sequences (the shape of LRA's Image task: one token per pixel).
//!
//! ListOps. An expression is a digit 0..=9 or `[OP a1 … ak ]` with k in 2..=`max_args` arguments,
//! each an expression; OP is MIN, MAX, MED (median: the middle value of the sorted arguments, and
//! for an even count the floor of the mean of the two middle ones, which is LRA's
//! `int(np.median(...))` for non-negative integers) or SM (sum mod 10). The label is the
//! expression's value, so there are 10 classes. The tree is drawn as LRA draws it: a node is a
//! digit when a uniform draw exceeds 0.25 (LRA's `VALUE_P`) and always at `max_depth`, else an
//! operator (uniform among the four) with a uniform argument count; digits are uniform. Examples
//! whose token count lies outside `min_len..=max_len` are drawn again.
//!
//! Tokens (vocabulary of 16): 0 padding, 1..=10 the digits 0..=9, 11 `[MIN`, 12 `[MAX`, 13 `[MED`,
//! 14 `[SM`, 15 `]`. LRA writes the same expressions with parentheses that its tokenizer drops.
//! Sequences are padded at the end with 0 to `max_len`.
//!
//! Determinism: every draw is `rand_pcg::Pcg64Mcg::next_u64` (uniform integers by a widening
//! multiply, the digit-or-operator choice by comparing the draw with 2^62), and each split has its
//! own seed, so the test split does not change when the training split's size does.

use rand::{RngCore, SeedableRng};
use rand_pcg::Pcg64Mcg;
use std::path::Path;

use super::TrainError;

/// Padding token (masked as a key, left out of the mean pooling).
pub const PAD: u32 = 0;
/// Token of digit `d` is `d + DIGIT0`.
pub const DIGIT0: u32 = 1;
pub const MIN: u32 = 11;
pub const MAX: u32 = 12;
pub const MED: u32 = 13;
pub const SM: u32 = 14;
pub const END: u32 = 15;
/// Tokens 0..16.
pub const LISTOPS_VOCAB: usize = 16;
/// Values 0..=9.
pub const CLASSES: usize = 10;
/// Digits as pixel sequences: token = pixel value (0..=16) + 1, so 0 stays the (unused) padding id.
pub const DIGITS_VOCAB: usize = 18;

/// The generator's settings. `Default` is the shipped data (`experiments/data/listops_test.csv`
/// and the training split the trainer regenerates).
#[derive(Debug, Clone, PartialEq)]
pub struct ListOpsConfig {
    /// Longest sequence in tokens (the padded width).
    pub max_len: usize,
    /// Shortest sequence kept.
    pub min_len: usize,
    /// Nodes at this depth (the root has depth 1) are digits.
    pub max_depth: usize,
    /// Largest argument count of an operator.
    pub max_args: usize,
    /// Training examples.
    pub train_rows: usize,
    /// Validation examples (for choosing settings; not shipped).
    pub validation_rows: usize,
    /// Test examples (shipped as `listops_test.csv`).
    pub test_rows: usize,
    /// Seed of the training split; validation uses `seed + 1`, test `seed + 2`.
    pub seed: u64,
}

impl Default for ListOpsConfig {
    fn default() -> Self {
        ListOpsConfig { max_len: 64, min_len: 16, max_depth: 4, max_args: 5, train_rows: 6000, validation_rows: 500, test_rows: 1000, seed: 20_261_204 }
    }
}

/// Token sequences padded to one width, with their classes.
#[derive(Debug, Clone, PartialEq)]
pub struct SeqData {
    /// `len() × width`, row-major, padded at the end with [`PAD`].
    pub tokens: Vec<u32>,
    /// Non-padding tokens of each row (padding only ever follows them).
    pub lens: Vec<usize>,
    pub labels: Vec<u32>,
    pub width: usize,
}

impl SeqData {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The non-padding tokens of row `i`.
    pub fn seq(&self, i: usize) -> &[u32] {
        &self.tokens[i * self.width..i * self.width + self.lens[i]]
    }

    /// Rows `a..b`.
    pub fn rows(&self, a: usize, b: usize) -> SeqData {
        SeqData {
            tokens: self.tokens[a * self.width..b * self.width].to_vec(),
            lens: self.lens[a..b].to_vec(),
            labels: self.labels[a..b].to_vec(),
            width: self.width,
        }
    }

    /// The CSV of the workloads' reader: each row's `width` token ids, then the class; no header.
    pub fn to_csv(&self) -> String {
        let mut s = String::new();
        for i in 0..self.len() {
            for t in &self.tokens[i * self.width..(i + 1) * self.width] {
                s.push_str(&t.to_string());
                s.push(',');
            }
            s.push_str(&self.labels[i].to_string());
            s.push('\n');
        }
        s
    }
}

/// Parses a token CSV written by [`SeqData::to_csv`]: integer token ids below `vocab`, padding
/// only at the end of a row, then the class below 10. Errors name the 1-based line.
pub fn parse_token_csv(text: &str, vocab: usize) -> Result<SeqData, TrainError> {
    let d = crate::workload::io::parse_csv(text, 1.0).map_err(TrainError::Data)?;
    let width = d.n_features;
    let mut data = SeqData { tokens: Vec::with_capacity(d.x.len()), lens: vec![], labels: vec![], width };
    for (r, (row, &label)) in d.x.chunks_exact(width).zip(&d.labels).enumerate() {
        let line = r + 1;
        let mut len = 0;
        for (c, &v) in row.iter().enumerate() {
            if v.fract() != 0.0 || v < 0.0 || v as usize >= vocab {
                return Err(TrainError::Data(format!("row {line}, column {}: token {v} is not an integer in 0..{vocab}", c + 1)));
            }
            let t = v as u32;
            if t != PAD {
                if len != c {
                    return Err(TrainError::Data(format!("row {line}, column {}: a token after padding (padding goes at the end)", c + 1)));
                }
                len += 1;
            }
            data.tokens.push(t);
        }
        if label as usize >= CLASSES {
            return Err(TrainError::Data(format!("row {line}: class {label} is not in 0..=9")));
        }
        data.lens.push(len);
        data.labels.push(label);
    }
    Ok(data)
}

/// Reads [`parse_token_csv`] from a file, naming it on failure.
pub fn read_token_csv(path: &Path, vocab: usize) -> Result<SeqData, TrainError> {
    let text = crate::files::read_to_string(path).map_err(|e| TrainError::Data(format!("reading {}: {e}", path.display())))?;
    parse_token_csv(&text, vocab).map_err(|e| TrainError::Data(format!("{}: {e}", path.display())))
}

/// Uniform integer in `0..n` (widening multiply; bias below n/2^64).
fn below(rng: &mut Pcg64Mcg, n: usize) -> usize {
    ((rng.next_u64() as u128 * n as u128) >> 64) as usize
}

/// Appends one expression's tokens to `out` and returns its value (LRA's `generate_tree`).
fn tree(depth: usize, cfg: &ListOpsConfig, rng: &mut Pcg64Mcg, out: &mut Vec<u32>) -> u32 {
    // LRA: r = random() below max_depth, else 1; a digit when r > VALUE_P = 0.25.
    let digit = depth >= cfg.max_depth || rng.next_u64() >= 1u64 << 62;
    if digit {
        let v = below(rng, 10) as u32;
        out.push(v + DIGIT0);
        return v;
    }
    let k = 2 + below(rng, cfg.max_args - 1);
    // LRA's order of draws: the argument count, the arguments, then the operator (whose token
    // goes first in the sequence).
    let at = out.len();
    out.push(PAD);
    let mut args = Vec::with_capacity(k);
    for _ in 0..k {
        args.push(tree(depth + 1, cfg, rng, out));
    }
    let op = [MIN, MAX, MED, SM][below(rng, 4)];
    out[at] = op;
    out.push(END);
    apply(op, &mut args)
}

/// The value of operator `op` on `args` (sorted in place for the median).
fn apply(op: u32, args: &mut [u32]) -> u32 {
    match op {
        MIN => *args.iter().min().expect("an operator has arguments"),
        MAX => *args.iter().max().expect("an operator has arguments"),
        MED => {
            args.sort_unstable();
            let n = args.len();
            if n % 2 == 1 {
                args[n / 2]
            } else {
                (args[n / 2 - 1] + args[n / 2]) / 2
            }
        }
        _ => args.iter().sum::<u32>() % 10,
    }
}

/// `rows` examples drawn from `seed`, each re-drawn until its length is in `min_len..=max_len`.
pub fn generate(cfg: &ListOpsConfig, rows: usize, seed: u64) -> SeqData {
    assert!(cfg.max_args >= 2 && cfg.max_depth >= 2 && cfg.min_len <= cfg.max_len && cfg.max_len >= 4, "bad ListOps configuration {cfg:?}");
    let mut rng = Pcg64Mcg::seed_from_u64(seed);
    let mut data = SeqData { tokens: Vec::with_capacity(rows * cfg.max_len), lens: vec![], labels: vec![], width: cfg.max_len };
    let mut seq = Vec::new();
    while data.len() < rows {
        seq.clear();
        let v = tree(1, cfg, &mut rng, &mut seq);
        if seq.len() < cfg.min_len || seq.len() > cfg.max_len {
            continue;
        }
        data.lens.push(seq.len());
        data.labels.push(v);
        data.tokens.extend_from_slice(&seq);
        data.tokens.resize(data.len() * cfg.max_len, PAD);
    }
    data
}

/// The three splits of `cfg`: (train, validation, test).
pub fn splits(cfg: &ListOpsConfig) -> (SeqData, SeqData, SeqData) {
    (generate(cfg, cfg.train_rows, cfg.seed), generate(cfg, cfg.validation_rows, cfg.seed + 1), generate(cfg, cfg.test_rows, cfg.seed + 2))
}

/// The value of a token sequence (trailing padding ignored); an error names the position of the
/// first token that does not fit the grammar.
pub fn evaluate(tokens: &[u32]) -> Result<u32, String> {
    let n = tokens.iter().rposition(|&t| t != PAD).map_or(0, |p| p + 1);
    let mut pos = 0;
    let v = eval_at(&tokens[..n], &mut pos)?;
    if pos != n {
        return Err(format!("token {pos}: {} left over after a complete expression", tokens[pos]));
    }
    Ok(v)
}

fn eval_at(t: &[u32], pos: &mut usize) -> Result<u32, String> {
    let Some(&tok) = t.get(*pos) else { return Err(format!("token {pos}: the sequence ends inside an expression")) };
    *pos += 1;
    match tok {
        1..=10 => Ok(tok - DIGIT0),
        MIN | MAX | MED | SM => {
            let mut args = Vec::new();
            while t.get(*pos) != Some(&END) {
                args.push(eval_at(t, pos)?);
            }
            *pos += 1;
            if args.len() < 2 {
                return Err(format!("token {}: an operator with {} argument(s); need at least 2", *pos - 1, args.len()));
            }
            Ok(apply(tok, &mut args))
        }
        _ => Err(format!("token {}: {tok} cannot start an expression", *pos - 1)),
    }
}

/// Digits images (pixel / 16 in [`super::Dataset`]) as pixel sequences: token = pixel + 1.
pub fn digits_as_sequences(data: &super::Dataset) -> SeqData {
    let width = data.n_features;
    let tokens = data.x.iter().map(|&p| (p * super::DIGITS_PIXEL_MAX).round() as u32 + 1).collect();
    SeqData { tokens, lens: vec![width; data.len()], labels: data.labels.clone(), width }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_follow_lra() {
        assert_eq!(apply(MED, &mut [3, 1, 2]), 2);
        assert_eq!(apply(MED, &mut [4, 1, 2, 9]), 3, "int(np.median([1, 2, 4, 9])) = int(3.0)");
        assert_eq!(apply(MED, &mut [1, 2]), 1, "int(1.5) = 1");
        assert_eq!(apply(SM, &mut [9, 8, 7]), 4);
        assert_eq!(apply(MIN, &mut [5, 3, 7]), 3);
        assert_eq!(apply(MAX, &mut [5, 3, 7]), 7);
        // [MAX 2 [MIN 4 7 ] 0 ] = 4
        assert_eq!(evaluate(&[MAX, 3, MIN, 5, 8, END, 1, END, 0, 0]), Ok(4));
        assert!(evaluate(&[MAX, 3, END]).is_err());
        assert!(evaluate(&[MAX, 3, 4]).is_err());
        assert!(evaluate(&[3, 4]).is_err());
    }

    #[test]
    fn generated_examples_fit_and_are_labelled_with_their_value() {
        let cfg = ListOpsConfig::default();
        let d = generate(&cfg, 200, 1);
        assert_eq!(d, generate(&cfg, 200, 1));
        for i in 0..d.len() {
            assert!((cfg.min_len..=cfg.max_len).contains(&d.lens[i]));
            assert_eq!(evaluate(&d.tokens[i * d.width..(i + 1) * d.width]), Ok(d.labels[i]));
        }
        let back = parse_token_csv(&d.to_csv(), LISTOPS_VOCAB).unwrap();
        assert_eq!(back, d);
    }
}
