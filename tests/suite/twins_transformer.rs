//! The sequence stages (embedding, norms, attention, pooling, mixture of experts, row counts)
//! against their CPU twins: a small transformer's plans run on the twins under a recorder, then
//! every dispatch is replayed on the GPU from the recorded inputs and each written buffer
//! compared (the helpers and tolerances of `twins`).

use super::twins::{cfg, replay_all, replay_stages, weights};
use crate::common::*;
use aimc::crossbar::{Gdc, MappedMatrix, TileShape};
use aimc::engine::plan::{self, AnalogLayer};
use aimc::engine::stages::Stage;
use aimc::engine::Backend;

/// A small transformer (d_model 8, 2 heads, 70-token sequences so causal attention crosses an
/// ATTN_BLOCK) with padding, post- and pre-LN, softmax and kernel attention, causal and not,
/// sentence pairs (tokens with the segment bit): every transformer stage on the GPU against its
/// twin.
#[test]
fn transformer_stages_match_twins() {
    use aimc::engine::plan::{run_transformer, SeqAttention, SeqBlock, SeqModel};
    let (d, heads, seq, dff, classes, vocab) = (8usize, 2u32, 70usize, 12usize, 3usize, 11usize);
    let layer = |rows: usize, cols: usize, seed: u64, act: u32| AnalogLayer {
        mapped: MappedMatrix::new(&weights(rows * cols, seed), rows as u32, cols as u32, TileShape { max_in: 6, max_out: 8 }, 1.0),
        bias: weights(rows, seed + 100),
        activation: act,
        conv: None,
        links: Default::default(),
        batchnorm: None,
    };
    let norm = |seed: u64| -> Vec<f32> { weights(d, seed).iter().map(|v| 1.0 + 0.2 * v).chain(weights(d, seed + 1).iter().map(|v| 0.1 * v)).collect() };
    let layers = vec![
        layer(d, d, 1, 0),
        layer(d, d, 2, 0),
        layer(d, d, 3, 0),
        layer(d, d, 4, 0),
        layer(dff, d, 5, 4),
        layer(d, dff, 6, 0),
        layer(5, d, 7, 3),
        layer(classes, 5, 8, 0),
        layer(6, 4, 9, 0),
        layer(3, d, 10, 0),
        layer(dff, d, 11, 5), // SiLU (the others: erf GELU, tanh)
        layer(d, dff, 12, 0),
    ];
    let block = SeqBlock { feature_q: Some(8), ..SeqBlock::dense(0, 1, 2, 3, 4, 5, norm(20), norm(22)) };
    let samples = 2usize;
    let tokens: Vec<u32> = (0..samples * seq).map(|i| ((i * 7 + 3) % (vocab - 1)) as u32 + 1).collect();
    // The second sequence is padded after 50 tokens.
    let tokens: Vec<u32> = tokens.iter().enumerate().map(|(i, &t)| if i >= seq + 50 { 0 } else { t }).collect();
    let lengths = vec![seq as u32, 50];
    let labels = vec![1u32, 2];
    let mut rec = Recorder::new();
    let routed = SeqBlock { moe: Some(plan::SeqMoe { router: 9, experts: vec![(4, 5), (10, 11), (4, 5)], top_k: 2 }), ..block.clone() };
    // Sentence pairs: the tokens after index 10 of each sequence carry the segment bit and read
    // the second block of positions.
    let paired: Vec<u32> = tokens.iter().enumerate().map(|(i, &t)| if i % seq > 10 { t | aimc::workload::transformer::SEGMENT_BIT } else { t }).collect();
    for (attention, causal, norm_first, moe, pairs) in [
        (SeqAttention::Softmax, false, false, false, false),
        (SeqAttention::Kernel { map: 3, s: 6, width: 12 }, true, true, false, false),
        (SeqAttention::Kernel { map: 3, s: 6, width: 12 }, false, false, true, false),
        (SeqAttention::Softmax, true, true, true, false),
        (SeqAttention::Softmax, false, false, false, true),
    ] {
        let m = SeqModel {
            layers: layers.clone(),
            d_model: d as u32,
            heads,
            seq: seq as u32,
            vocab: vocab as u32,
            embedding: weights(vocab * d, 30),
            embed_width: d as u32,
            embed_proj: None,
            no_norm: false,
            positions: weights(if pairs { 2 * seq * d } else { seq * d }, 31),
            embed_scale: 2.0,
            embed_norm: Some(norm(32)),
            eps: 1e-5,
            blocks: vec![block.clone(), if moe { routed.clone() } else { block.clone() }],
            norm_first,
            final_norm: if norm_first { Some(norm(34)) } else { None },
            pooling: u32::from(causal),
            head: vec![6, 7],
            attention,
            causal,
            next_token: false,
            head_out: false,
            // Each sequence's right trials, counted on the device (`row_correct`), in two configurations.
            row_counts: moe,
            regression: false,
            span: None,
        };
        let toks = if pairs { &paired } else { &tokens };
        if pairs {
            // Segment bits without the second block of positions are refused, not read past the buffer.
            let single = SeqModel { positions: weights(seq * d, 31), ..m.clone() };
            let e = run_transformer(&mut rec, &single, toks, &lengths, &labels, &cfg(Gdc::Readout, 2, vec![60.0]), &mut |_| {}).unwrap_err();
            assert!(e.to_string().contains("second segment"), "{e}");
        }
        let pts = run_transformer(&mut rec, &m, toks, &lengths, &labels, &cfg(Gdc::Readout, 2, vec![60.0, 1e6]), &mut |_| {}).unwrap();
        assert_eq!(pts.len(), 2);
        assert!(pts.iter().all(|p| p.correct.len() == 2 && p.correct.iter().all(|&c| c <= 2)));
        for p in pts.iter().filter(|_| moe) {
            // Each row's right trials add up to the trials' right rows.
            assert_eq!(p.row_correct.iter().sum::<u32>(), p.correct.iter().sum::<u32>(), "row counts against the trials' counts");
            assert_eq!(p.row_correct.len(), 2);
        }
    }
    // MobileBERT's shape: the trigram input (embed modes 1 and 2), NoNorm, bottlenecks (a shared
    // Q/K one, or Q, K, V on the input bottleneck) and a stacked feed-forward pair; and stacked
    // pairs without a bottleneck.
    let (e, inner) = (3usize, 4usize);
    let mut mlayers = layers.clone();
    let mut add = |rows: usize, cols: usize, act: u32| {
        mlayers.push(layer(rows, cols, 40 + mlayers.len() as u64, act));
        mlayers.len() - 1
    };
    // Past 256 matrices (MobileBERT's 24 layers hold 361): the counter's wide layer ids.
    for _ in layers.len()..260 {
        add(2, 2, 0);
    }
    let (proj, proj1) = (add(d, 3 * e, 0), add(d, e, 0));
    let (b_in, b_sh, b_out) = (add(inner, d, 0), add(inner, d, 0), add(d, inner, 0));
    let (q, k, v, v_inner, o) = (add(inner, inner, 0), add(inner, inner, 0), add(inner, d, 0), add(inner, inner, 0), add(inner, inner, 0));
    let (f1, f2, x1, x2) = (add(dff, inner, 4), add(inner, dff, 0), add(dff, inner, 4), add(inner, dff, 0));
    let wnorm =
        |w: usize, seed: u64| -> Vec<f32> { weights(w, seed).iter().map(|v| 1.0 + 0.2 * v).chain(weights(w, seed + 1).iter().map(|v| 0.1 * v)).collect() };
    let bottleneck = plan::SeqBottleneck {
        input: b_in,
        input_norm: wnorm(inner, 50),
        shared: Some((b_sh, wnorm(inner, 52))),
        inner_attention: false,
        output: b_out,
        output_norm: wnorm(d, 54),
    };
    let mobile = SeqBlock {
        bottleneck: Some(bottleneck.clone()),
        extra_ffns: vec![plan::SeqFfn { ffn1: x1, ffn2: x2, norm: wnorm(inner, 60) }],
        ..SeqBlock::dense(q, k, v, o, f1, f2, wnorm(inner, 56), wnorm(inner, 58))
    };
    let on_inner = SeqBlock { v: v_inner, bottleneck: Some(plan::SeqBottleneck { shared: None, inner_attention: true, ..bottleneck }), ..mobile.clone() };
    let stacked = SeqBlock { extra_ffns: vec![plan::SeqFfn { ffn1: 10, ffn2: 11, norm: norm(62) }], feature_q: None, ..block.clone() };
    for (blocks, no_norm, taps) in [(vec![mobile.clone(), on_inner], true, 3u32), (vec![stacked.clone(), stacked], false, 1)] {
        let m = SeqModel {
            layers: mlayers.clone(),
            d_model: d as u32,
            heads,
            seq: seq as u32,
            vocab: vocab as u32,
            embedding: weights(vocab * e, 30),
            embed_width: e as u32,
            embed_proj: Some((if taps == 3 { proj } else { proj1 }, taps)),
            no_norm,
            positions: weights(seq * d, 31),
            embed_scale: 1.0,
            embed_norm: Some(norm(32)),
            eps: 1e-12,
            blocks,
            norm_first: false,
            final_norm: None,
            pooling: 1,
            head: vec![6, 7],
            attention: SeqAttention::Softmax,
            causal: false,
            next_token: false,
            head_out: false,
            row_counts: false,
            regression: false,
            span: None,
        };
        let pts = run_transformer(&mut rec, &m, &tokens, &lengths, &labels, &cfg(Gdc::Readout, 2, vec![60.0]), &mut |_| {}).unwrap();
        assert!(pts.iter().all(|p| p.correct.len() == 2 && p.correct.iter().all(|&c| c <= 2)));
    }
    let Some(mut g) = gpu(256) else { return };
    let seen = replay_all(&rec, &mut g);
    for s in [
        Stage::Embed,
        Stage::Layernorm,
        Stage::Residual,
        Stage::AttentionSoftmax,
        Stage::RowNorms,
        Stage::FeatureMap,
        Stage::LinearKv,
        Stage::LinearOut,
        Stage::SeqPool,
        Stage::MoeGate,
        Stage::MoeCombine,
        Stage::Accuracy,
        Stage::RowCorrect,
    ] {
        assert!(seen.contains(&s), "stage {} was not exercised", s.name());
    }
}

/// `attention_softmax` on both of its paths: heads of up to 64 columns staged through workgroup
/// memory (64, and 20, not a multiple of four) and wider ones from global memory (72), with
/// 70-token sequences (two query blocks), padding and the causal mask, two trials.
#[test]
fn attention_softmax_matches_twin_on_both_paths() {
    use aimc::engine::layout::{SeqParams, StageParams};
    use aimc::engine::stages::SOFTMAX_SQ;
    let mut rec = Recorder::new();
    let (seq, samples, heads, trials) = (70u32, 2u32, 2u32, 2u32);
    for (dh, causal) in [(64u32, 0u32), (20, 1), (72, 0), (72, 1)] {
        let d = heads * dh;
        let n = (trials * samples * seq * d) as usize;
        let mut p = StageParams::default();
        p.layer.trials = trials;
        p.seq = SeqParams { samples, seq, d_model: d, heads, d_head: dh, causal, ..SeqParams::default() };
        let bufs: Vec<_> = (0..3u64)
            .map(|i| {
                let b = rec.create("qkv", n);
                rec.upload(b, bytemuck::cast_slice(&weights(n, 40 + i + dh as u64)));
                b
            })
            .collect();
        let len = rec.create("lengths", samples as usize);
        rec.upload(len, &[seq, 33]);
        let out = rec.create("out", n);
        let blocks = (trials * samples * heads * seq.div_ceil(SOFTMAX_SQ)) as u64;
        rec.dispatch(Stage::AttentionSoftmax, &p, &[bufs[0], bufs[1], bufs[2], len, out], plan::grid(blocks, 1));
    }
    let Some(mut g) = gpu(256) else { return };
    assert_eq!(replay_stages(&rec, &mut g, &[Stage::AttentionSoftmax]), 4);
}
