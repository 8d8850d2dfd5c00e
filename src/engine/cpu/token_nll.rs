//! CPU twin of shaders/token_nll.wgsl: per (trial, sequence, block of `NLL_BLOCK` positions) the
//! summed next-token negative log-likelihood (m + ln Σ exp(h − m)) − h_next over the block's
//! positions p < len − 1, in slot `([t_index][trial][batch] + sample_offset + sample) · blocks +
//! block` (`NLL_SLOT_WORDS` words: the loss, the block's hits as an f32), and the per-trial count
//! of positions whose first largest logit is the next token, in slot `[t_index][trial]`. The
//! shader reduces each row over a workgroup (or, for a small vocabulary, runs a block per
//! invocation); the twin runs each row in order, its blocks split over threads.

use super::common::par_trials;
use crate::engine::layout::StageParams;
use crate::engine::stages::{NLL_BLOCK, NLL_SLOT_WORDS};

pub fn token_nll(p: &StageParams, h: &[f32], tokens: &[u32], lengths: &[u32], nll: &mut [f32], correct: &mut [u32], threads: usize) {
    let (l, s) = (&p.layer, &p.seq);
    let (seq, vocab, samples, nb) = (s.seq as usize, s.vocab as usize, s.samples as usize, NLL_BLOCK as usize);
    let blocks = seq.div_ceil(nb);
    let trials = l.trials as usize;
    let w = NLL_SLOT_WORDS as usize;
    // Every (trial, sequence, block) of this dispatch: its slot (loss, hits), split over threads.
    let per = samples * blocks * w;
    let mut sums = vec![0f32; trials * per];
    par_trials(threads, trials * samples * blocks, &mut sums, w, |first, n, out| {
        for (k, slot) in out.chunks_mut(w).enumerate().take(n) {
            let i = first + k;
            let (b, ts) = (i % blocks, i / blocks);
            let sample = ts % samples;
            let len = (lengths[sample] as usize).min(seq);
            let (mut total, mut hits) = (0.0f32, 0u32);
            for q in b * nb..len.saturating_sub(1).min((b + 1) * nb) {
                let row = &h[(ts * seq + q) * vocab..(ts * seq + q + 1) * vocab];
                let next = tokens[sample * seq + q + 1] as usize;
                let (mut m, mut best) = (row[0], 0usize);
                for (o, &v) in row.iter().enumerate().skip(1) {
                    if v > m {
                        m = v;
                        best = o;
                    }
                }
                let mut sum = 0.0f32;
                for &v in row {
                    sum += (v - m).exp();
                }
                total += (m + sum.ln()) - row[next];
                hits += u32::from(best == next);
            }
            slot[0] = total;
            slot[1] = hits as f32;
        }
    });
    for trial in 0..trials {
        let slot = l.t_index as usize * trials + trial;
        let at = (slot * l.batch as usize + s.sample_offset as usize) * blocks * w;
        let mine = &sums[trial * per..(trial + 1) * per];
        nll[at..at + per].copy_from_slice(mine);
        correct[slot] += mine.iter().skip(1).step_by(w).map(|&c| c as u32).sum::<u32>();
    }
}
