//! CPU twin of shaders/token_nll.wgsl: per (trial, sequence, block of `NLL_BLOCK` positions) the
//! summed next-token negative log-likelihood (m + ln Σ exp(h − m)) − h_next over the block's
//! positions p < len − 1, in slot `([t_index][trial][batch] + sample_offset + sample) · blocks +
//! block`, and the per-trial count of positions whose first largest logit is the next token, in
//! slot `[t_index][trial]`. The shader reduces each row over a workgroup; the twin runs the row in
//! order, its trials split over threads.

use super::common::par_trials2;
use crate::engine::layout::StageParams;
use crate::engine::stages::NLL_BLOCK;

pub fn token_nll(p: &StageParams, h: &[f32], tokens: &[u32], lengths: &[u32], nll: &mut [f32], correct: &mut [u32], threads: usize) {
    let (l, s) = (&p.layer, &p.seq);
    let (seq, vocab, samples, nb) = (s.seq as usize, s.vocab as usize, s.samples as usize, NLL_BLOCK as usize);
    let blocks = seq.div_ceil(nb);
    let trials = l.trials as usize;
    // Per trial: this dispatch's sequences' block sums, then its hits.
    let (mut sums, mut hits) = (vec![0f32; trials * samples * blocks], vec![0u32; trials]);
    par_trials2(threads, trials, &mut sums, samples * blocks, &mut hits, 1, |first, n, sums, hits| {
        for (i, slot) in sums.iter_mut().enumerate().take(n * samples * blocks) {
            let (b, tsl) = (i % blocks, i / blocks);
            let (tl, sample) = (tsl / samples, tsl % samples);
            let ts = (first + tl) * samples + sample;
            let len = (lengths[sample] as usize).min(seq);
            let mut total = 0.0f32;
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
                hits[tl] += u32::from(best == next);
            }
            *slot = total;
        }
    });
    for trial in 0..trials {
        let slot = l.t_index as usize * trials + trial;
        let at = (slot * l.batch as usize + s.sample_offset as usize) * blocks;
        nll[at..at + samples * blocks].copy_from_slice(&sums[trial * samples * blocks..(trial + 1) * samples * blocks]);
        correct[slot] += hits[trial];
    }
}
