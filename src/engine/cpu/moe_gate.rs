//! CPU twin of shaders/moe_gate.wgsl: top-k gates per token, softmax over the chosen logits.

use super::common::par_trials;
use crate::engine::layout::StageParams;

/// The shader's choice-mask width (`MAX_EXPERTS`).
pub const MAX_EXPERTS: u32 = 32;

pub fn moe_gate(p: &StageParams, logits: &[f32], gates: &mut [f32], threads: usize) {
    let s = &p.seq;
    let e_n = s.experts.min(MAX_EXPERTS) as usize;
    let stride = s.experts as usize;
    par_trials(threads, s.rows as usize, gates, stride, |first, n, out| {
        for r in 0..n {
            let l = &logits[(first + r) * stride..][..stride];
            let mut chosen = 0u32;
            let mut top = 0.0f32;
            for k in 0..(s.top_k as usize).min(e_n) {
                let mut best = e_n;
                let mut bv = 0.0f32;
                for (e, &v) in l[..e_n].iter().enumerate() {
                    if (chosen >> e) & 1 == 0 && (best == e_n || v > bv) {
                        best = e;
                        bv = v;
                    }
                }
                chosen |= 1 << best;
                if k == 0 {
                    top = bv;
                }
            }
            let mut z = 0.0f32;
            for (e, &v) in l[..e_n].iter().enumerate() {
                if (chosen >> e) & 1 != 0 {
                    z += (v - top).exp();
                }
            }
            for (e, &v) in l[..e_n].iter().enumerate() {
                out[r * stride + e] = if (chosen >> e) & 1 != 0 { (v - top).exp() / z } else { 0.0 };
            }
        }
    });
}
