//! CPU twin of shaders/answer_span.wgsl: per (trial, sequence) the context span start ≤ end <
//! start + `max_answer` with the largest start + end logit (the first on ties, by start then end),
//! its start and end among the sequence's `n_best` largest start and end logits (Hugging Face's
//! `n_best_size`; 0: every span),
//! its overlap with the labelled answer of the best F1 (`answers` per sequence, each packed as
//! start · seq + end), its length and that answer's in slot `([t_index][trial][batch] +
//! sample_offset + sample)` (`SPAN_SLOT_WORDS` words: those three, then the span's start, end and
//! score's f32 bits, 0 without a context, and the null score, position 0's start + end logit),
//! and the per-trial count of exact
//! matches in slot `[t_index][trial]` (SQuAD's exact match and token-level F1, the best over the
//! answers; Rajpurkar et al. EMNLP 2016).

use super::common::par_trials;
use crate::engine::layout::StageParams;
use crate::engine::stages::SPAN_SLOT_WORDS;
use crate::workload::transformer::SEGMENT_BIT;

/// The best span of one sequence's `[token][2]` logits and its score (`transformer::best_span`
/// over its context tokens among the `n_best` largest logits, in f32 as the shader adds), or
/// None when it has no candidate.
pub fn best_span(h: &[f32], tokens: &[u32], len: usize, max_answer: usize, n_best: usize, sep: u32) -> Option<(usize, usize, f32)> {
    use crate::workload::transformer as tf;
    let context: Vec<usize> = (0..len).filter(|&p| tokens[p] & SEGMENT_BIT != 0 && tokens[p] & !SEGMENT_BIT != sep).collect();
    let (starts, ends) = tf::span_candidates(&context, len, n_best, |p| h[2 * p], |p| h[2 * p + 1]);
    tf::best_span(&starts, &ends, max_answer, |s, e| h[2 * s] + h[2 * e + 1])
}

/// (overlap, predicted length, labelled length) of a predicted span against the labelled answer
/// of the best token-level F1 (the first such; compared exactly as o_j · (p + g_best) >
/// o_best · (p + g_j)), each answer packed as start · seq + end.
pub fn span_counts(pred: Option<(usize, usize)>, answers: &[u32], seq: u32) -> (u32, u32, u32) {
    let predicted = pred.map_or(0, |(s, e)| (e - s + 1) as u32);
    let (mut overlap, mut labelled) = (0u32, 0u32);
    for (j, &label) in answers.iter().enumerate() {
        let (gs, ge) = ((label / seq) as usize, (label % seq) as usize);
        let g = (ge - gs + 1) as u32;
        let o = pred.map_or(0, |(s, e)| (e.min(ge) + 1).saturating_sub(s.max(gs)) as u32);
        if j == 0 || o * (predicted + labelled) > overlap * (predicted + g) {
            (overlap, labelled) = (o, g);
        }
    }
    (overlap, predicted, labelled)
}

#[allow(clippy::too_many_arguments)]
pub fn answer_span(p: &StageParams, h: &[f32], tokens: &[u32], lengths: &[u32], labels: &[u32], spans: &mut [u32], correct: &mut [u32], threads: usize) {
    let (l, s) = (&p.layer, &p.seq);
    let (seq, samples, trials) = (s.seq as usize, s.samples as usize, l.trials as usize);
    let w = SPAN_SLOT_WORDS as usize;
    // Every (trial, sequence) of this dispatch: its slot and whether it matched, over threads.
    let mut slots = vec![0u32; trials * samples * (w + 1)];
    par_trials(threads, trials * samples, &mut slots, w + 1, |first, n, out| {
        for (j, slot) in out.chunks_mut(w + 1).enumerate().take(n) {
            let i = first + j;
            let sample = i % samples;
            let len = (lengths[sample] as usize).min(seq);
            let toks = &tokens[sample * seq..(sample + 1) * seq];
            let best = best_span(&h[i * seq * 2..(i + 1) * seq * 2], toks, len, s.max_answer as usize, s.n_best as usize, s.sep);
            let pred = best.map(|(s, e, _)| (s, e));
            let a = s.answers as usize;
            let (overlap, predicted, labelled) = span_counts(pred, &labels[sample * a..(sample + 1) * a], s.seq);
            let (bs, be, score) = best.map_or((0, 0, 0), |(s, e, v)| (s as u32, e as u32, v.to_bits()));
            let null = h[i * seq * 2] + h[i * seq * 2 + 1];
            slot[..w].copy_from_slice(&[overlap, predicted, labelled, bs, be, score, null.to_bits()]);
            slot[w] = u32::from(pred.is_some() && overlap == predicted && predicted == labelled);
        }
    });
    for (i, slot) in slots.chunks(w + 1).enumerate() {
        let (trial, sample) = (i / samples, i % samples);
        let t = l.t_index as usize * trials + trial;
        let at = (t * l.batch as usize + s.sample_offset as usize + sample) * w;
        spans[at..at + w].copy_from_slice(&slot[..w]);
        correct[t] += slot[w];
    }
}
