//! CPU twin of shaders/embed.wgsl, in its three modes: 0 `x = E[token]·scale + pos[segment][token
//! index]`, broadcast to every trial of the chunk (a token's segment is its id's top bit,
//! `SEGMENT_BIT`, set on a sentence pair's second segment, which picks the position block with
//! token-type row 1); 1 the token taps (MobileBERT's trigram input `[E[t + 1], E[t], E[t − 1]]`,
//! zero past either end, or one tap `E[t]`), broadcast likewise; 2 `x = input + pos[segment][token
//! index]` on each trial's own rows. Invocation index i = ((trial_local · samples + sample) · seq
//! + token) · width + value.

use super::common::par_trials;
use crate::engine::layout::StageParams;
use crate::workload::transformer::SEGMENT_BIT;

pub fn embed(p: &StageParams, tokens: &[u32], table: &[f32], pos: &[f32], x: &mut [f32], threads: usize) {
    let s = &p.seq;
    let (d, seq) = (s.d_model as usize, s.seq as usize);
    let (e, taps) = (s.width_in as usize, s.taps as usize);
    let w = if s.mode == 1 { taps * e } else { d };
    let per_trial = s.samples as usize * seq;
    let rows = p.layer.trials as usize * per_trial;
    let id = |raw: u32| (raw & !SEGMENT_BIT).min(s.vocab - 1) as usize;
    par_trials(threads, rows, x, w, |first, n, out| {
        for r in 0..n {
            let row = first + r;
            let tok = row % per_trial;
            let t = tok % seq;
            let out = &mut out[r * w..][..w];
            if s.mode == 1 {
                for (j, o) in out.chunks_mut(e).enumerate() {
                    // Tap j reads token t + 1 − j of three (t of one).
                    let src = t as isize + if taps == 3 { 1 - j as isize } else { 0 };
                    if src < 0 || src >= seq as isize {
                        o.fill(0.0);
                    } else {
                        let at = id(tokens[tok - t + src as usize]) * e;
                        for (c, v) in o.iter_mut().enumerate() {
                            *v = table[at + c] * s.scale;
                        }
                    }
                }
                continue;
            }
            let raw = tokens[tok];
            let pr = ((raw >> 31) as usize * seq + t) * d;
            for c in 0..d {
                out[c] = if s.mode == 2 { table[row * d + c] } else { table[id(raw) * d + c] * s.scale } + pos[pr + c];
            }
        }
    });
}
