//! CPU twin of shaders/token_nll.wgsl: per (trial, sequence, block of `NLL_BLOCK` positions) the
//! summed next-token negative log-likelihood (m + ln Σ exp(h − m)) − h_next over the block's
//! positions p < len − 1, in slot `([t_index][trial][batch] + sample_offset + sample) · blocks +
//! block`, and the per-trial count of positions whose first largest logit is the next token, in
//! slot `[t_index][trial]`.

use crate::engine::layout::StageParams;
use crate::engine::stages::NLL_BLOCK;

pub fn token_nll(p: &StageParams, h: &[f32], tokens: &[u32], lengths: &[u32], nll: &mut [f32], correct: &mut [u32]) {
    let (l, s) = (&p.layer, &p.seq);
    let (seq, vocab, samples, nb) = (s.seq as usize, s.vocab as usize, s.samples as usize, NLL_BLOCK as usize);
    let blocks = seq.div_ceil(nb);
    for i in 0..l.trials as usize * samples * blocks {
        let (b, ts) = (i % blocks, i / blocks);
        let (trial, sample) = (ts / samples, ts % samples);
        let len = (lengths[sample] as usize).min(seq);
        let mut total = 0.0f32;
        let mut hits = 0u32;
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
        let slot = l.t_index as usize * l.trials as usize + trial;
        nll[(slot * l.batch as usize + s.sample_offset as usize + sample) * blocks + b] = total;
        correct[slot] += hits;
    }
}
