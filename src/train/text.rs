//! The character-level language-model data of the shipped causal transformer: Cicero, *De finibus
//! bonorum et malorum*, book I (45 BC, public domain; the Latin text as the `lipsum` crate ships it,
//! `experiments/data/cicero_de_finibus_1.txt`, see experiments/data/README.md), read as one stream
//! of characters and cut into windows, as character-level language models are trained and
//! evaluated (Karpathy's char-rnn; text8 and enwik8 in bits per character).
//!
//! Normalisation: lower case; every run of whitespace one space; the characters of [`ALPHABET`]
//! kept and every other one dropped (the book has three: `*`, `(`, `)`). Tokens: 0 padding (never
//! inside a window), then [`ALPHABET`]'s characters in order from 1, so 36 tokens.
//!
//! Split (fixed, by position, no shuffle): the first 80 % of the characters train, the next 10 %
//! validate (settings are chosen there), the last 10 % test. Training windows of `width`
//! characters start every `width / 2`; validation and test windows are disjoint (a tail shorter
//! than a window is dropped). Every window is a full sequence (no padding), so a model predicts
//! `width − 1` characters per window.

use super::listops::SeqData;
use super::TrainError;

/// The kept characters; token t (from 1) is `ALPHABET[t − 1]`.
pub const ALPHABET: &str = " abcdefghijklmnopqrstuvwxyz.,;:?!-'";
/// Tokens: padding and the alphabet.
pub const TEXT_VOCAB: usize = 1 + ALPHABET.len();
/// Characters per window (the model's positions).
pub const TEXT_WIDTH: usize = 64;

/// The token stream of a text (see the module header).
pub fn tokens(text: &str) -> Vec<u32> {
    let mut out = Vec::with_capacity(text.len());
    let mut space = false;
    for ch in text.chars().flat_map(char::to_lowercase) {
        if ch.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        if let Some(t) = ALPHABET.find(ch) {
            if space {
                out.push(1);
                space = false;
            }
            out.push(t as u32 + 1);
        }
    }
    out
}

/// The characters of a token stream (0, padding, is left out).
pub fn text_of(tokens: &[u32]) -> String {
    tokens.iter().filter(|&&t| t > 0).filter_map(|&t| ALPHABET.chars().nth(t as usize - 1)).collect()
}

/// Windows of `width` tokens starting every `stride` (labels 0: a language model has none).
fn windows(stream: &[u32], width: usize, stride: usize) -> SeqData {
    let starts: Vec<usize> = (0..).map(|k| k * stride).take_while(|&s| s + width <= stream.len()).collect();
    SeqData {
        tokens: starts.iter().flat_map(|&s| stream[s..s + width].iter().copied()).collect(),
        lens: vec![width; starts.len()],
        labels: vec![0; starts.len()],
        width,
    }
}

/// (train, validation, test) windows of the text (see the module header).
pub fn splits(text: &str, width: usize) -> Result<(SeqData, SeqData, SeqData), TrainError> {
    let stream = tokens(text);
    let (a, b) = (stream.len() * 8 / 10, stream.len() * 9 / 10);
    let train = windows(&stream[..a], width, width / 2);
    let (validation, test) = (windows(&stream[a..b], width, width), windows(&stream[b..], width, width));
    if train.is_empty() || validation.is_empty() || test.is_empty() {
        return Err(TrainError::Training(format!(
            "the text has {} characters after normalisation; it needs at least {} for training, validation and test windows of {width}",
            stream.len(),
            10 * width
        )));
    }
    Ok((train, validation, test))
}

/// The test windows as the transformer workload reads a language model's rows: token ids only,
/// one window per line.
pub fn rows_csv(data: &SeqData) -> String {
    (0..data.len()).map(|i| data.seq(i).iter().map(u32::to_string).collect::<Vec<_>>().join(",") + "\n").collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_and_round_trips() {
        let t = tokens("Non eram\n nescius, Brute (*)!");
        assert_eq!(text_of(&t), "non eram nescius, brute !");
        assert!(t.iter().all(|&v| v >= 1 && (v as usize) < TEXT_VOCAB));
    }

    #[test]
    fn splits_by_position() {
        let text: String = (0..2000).map(|i| ALPHABET.chars().nth(1 + i % 26).unwrap()).collect();
        let (train, validation, test) = splits(&text, 64).unwrap();
        assert_eq!(train.len(), (1600 - 64) / 32 + 1);
        assert_eq!((validation.len(), test.len()), (200 / 64, 200 / 64));
        assert_eq!(validation.seq(0), &tokens(&text)[1600..1664]);
        assert_eq!(test.seq(0), &tokens(&text)[1800..1864]);
        assert!(splits("abc", 64).is_err());
    }
}
