//! The transformer workload end to end: the engine's floating-point path against the independent
//! f64 reference forward, the GPU against the CPU twins, sample batches against one batch, and
//! bad input named before any compute with no results written.

use crate::common::*;
use aimc::engine::plan::{self, RunConfig};
use aimc::engine::stages::Stage;
use aimc::engine::{AdapterInfo, Backend, Buf, EngineError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A tiny PyTorch-named state dict: 2-token-embedding-width models of `d` = 8, 2 heads, 1 layer,
/// FFN 12, a 2-layer head to 3 classes, vocabulary 10 (0 is padding); optionally a kernel
/// feature projection `[rows, d_head]`.
pub(crate) fn state_dict(feature_rows: Option<usize>, seed: u64) -> Vec<u8> {
    let (d, dff, vocab, classes) = (8usize, 12usize, 10usize, 3usize);
    let mut t: BTreeMap<String, (Vec<usize>, Vec<f32>)> = BTreeMap::new();
    let mut s = seed;
    let mut w = |shape: Vec<usize>, scale: f32| {
        s += 1;
        let n: usize = shape.iter().product();
        let v: Vec<f32> = aimc::rng::uniform_signed(n, s).into_iter().map(|x| x * scale).collect();
        (shape, v)
    };
    let inv = 1.0 / (d as f32).sqrt();
    t.insert("embedding.weight".into(), w(vec![vocab, d], 1.0));
    t.insert("embed_norm.weight".into(), (vec![d], vec![1.0; d]));
    t.insert("embed_norm.bias".into(), (vec![d], vec![0.0; d]));
    let p = "encoder.layers.0.";
    t.insert(format!("{p}self_attn.in_proj_weight"), w(vec![3 * d, d], 2.0 * inv));
    t.insert(format!("{p}self_attn.out_proj.weight"), w(vec![d, d], inv));
    t.insert(format!("{p}self_attn.out_proj.bias"), w(vec![d], 0.1));
    t.insert(format!("{p}linear1.weight"), w(vec![dff, d], inv));
    t.insert(format!("{p}linear1.bias"), w(vec![dff], 0.1));
    t.insert(format!("{p}linear2.weight"), w(vec![d, dff], 1.0 / (dff as f32).sqrt()));
    t.insert(format!("{p}linear2.bias"), w(vec![d], 0.1));
    for n in ["norm1", "norm2"] {
        let g = w(vec![d], 0.2);
        t.insert(format!("{p}{n}.weight"), (g.0, g.1.iter().map(|v| 1.0 + v).collect()));
        t.insert(format!("{p}{n}.bias"), w(vec![d], 0.1));
    }
    if let Some(rows) = feature_rows {
        t.insert(format!("{p}self_attn.feature_projection.weight"), w(vec![rows, d / 2], 1.0));
    }
    t.insert("classifier.0.weight".into(), w(vec![6, d], inv));
    t.insert("classifier.0.bias".into(), w(vec![6], 0.1));
    t.insert("classifier.2.weight".into(), w(vec![classes, 6], 0.5));
    t.insert("classifier.2.bias".into(), w(vec![classes], 0.1));
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = t.into_iter().map(|(k, (shape, v))| (k, v.iter().flat_map(|x| x.to_le_bytes()).collect(), shape)).collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> =
        bytes.iter().map(|(k, b, s)| (k.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap())).collect();
    safetensors::serialize(views, None).unwrap()
}

/// [`state_dict`] under Hugging Face BERT's names, with learned positions and a two-row
/// token-type table (`segment_sep` reads row 1): the same layer, head and embeddings.
pub(crate) fn bert_state_dict(seed: u64) -> Vec<u8> {
    let (d, seq) = (8usize, 20usize);
    let bytes = state_dict(None, seed);
    let torch = safetensors::SafeTensors::deserialize(&bytes).unwrap().tensors();
    let rename = |k: &str| -> String {
        let p = "bert.encoder.layer.0.";
        match k {
            "embedding.weight" => "bert.embeddings.word_embeddings.weight".into(),
            "embed_norm.weight" => "bert.embeddings.LayerNorm.weight".into(),
            "embed_norm.bias" => "bert.embeddings.LayerNorm.bias".into(),
            _ if k.starts_with("classifier") => k.into(),
            _ => {
                let k = k.strip_prefix("encoder.layers.0.").unwrap();
                let map = [
                    ("self_attn.out_proj", "attention.output.dense"),
                    ("linear1", "intermediate.dense"),
                    ("linear2", "output.dense"),
                    ("norm1", "attention.output.LayerNorm"),
                    ("norm2", "output.LayerNorm"),
                ];
                let (m, rest) = k.rsplit_once('.').unwrap();
                let to = map.iter().find(|(a, _)| *a == m).map(|(_, b)| *b).unwrap_or(m);
                format!("{p}{to}.{rest}")
            }
        }
    };
    let mut t: BTreeMap<String, (Vec<usize>, Vec<f32>)> = BTreeMap::new();
    for (k, v) in &torch {
        let vals: Vec<f32> = v.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        if k.ends_with("in_proj_weight") {
            for (i, part) in ["query", "key", "value"].iter().enumerate() {
                t.insert(format!("bert.encoder.layer.0.attention.self.{part}.weight"), (vec![d, d], vals[i * d * d..(i + 1) * d * d].to_vec()));
            }
        } else {
            t.insert(rename(k), (v.shape().to_vec(), vals));
        }
    }
    let mut s = seed + 100;
    let mut w = |n: usize| {
        s += 1;
        aimc::rng::uniform_signed(n, s)
    };
    t.insert("bert.embeddings.position_embeddings.weight".into(), (vec![seq, d], w(seq * d)));
    // Row 1 far from row 0, so a token read with the wrong row moves its logits.
    t.insert(
        "bert.embeddings.token_type_embeddings.weight".into(),
        (vec![2, d], w(2 * d).iter().enumerate().map(|(i, v)| v * if i < d { 0.2 } else { 2.0 }).collect()),
    );
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = t.into_iter().map(|(k, (shape, v))| (k, v.iter().flat_map(|x| x.to_le_bytes()).collect(), shape)).collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> =
        bytes.iter().map(|(k, b, s)| (k.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap())).collect();
    safetensors::serialize(views, None).unwrap()
}

/// A tiny Hugging Face MobileBERT state dict (`mobilebert.` names): vocabulary 10, embedding 4
/// read as the trigram input (12 → d_model 8), one layer with a bottleneck of 4 (2 heads of 2),
/// two stacked feed-forward pairs and the main one (d_ff 6), 20 positions, 2 token types, 3
/// classes. `variant`: "shared" (a shared Q/K bottleneck, the tanh pooler), "inner" (Q, K and V
/// on the input bottleneck, no pooler).
pub(crate) fn mobilebert_state_dict(seed: u64, variant: &str) -> Vec<u8> {
    let (d, e, inner, dff, vocab, seq, classes) = (8usize, 4usize, 4usize, 6usize, 10usize, 20usize, 3usize);
    let mut t: BTreeMap<String, (Vec<usize>, Vec<f32>)> = BTreeMap::new();
    let mut s = seed;
    let mut w = |shape: Vec<usize>, scale: f32| {
        s += 1;
        let n: usize = shape.iter().product();
        (shape.clone(), aimc::rng::uniform_signed(n, s).into_iter().map(|x| x * scale).collect::<Vec<f32>>())
    };
    let mut lin = |t: &mut BTreeMap<String, (Vec<usize>, Vec<f32>)>, name: &str, rows: usize, cols: usize| {
        t.insert(format!("{name}.weight"), w(vec![rows, cols], 1.5 / (cols as f32).sqrt()));
        t.insert(format!("{name}.bias"), w(vec![rows], 0.2));
    };
    let norm = |t: &mut BTreeMap<String, (Vec<usize>, Vec<f32>)>, name: &str, width: usize, salt: u64| {
        let g = aimc::rng::uniform_signed(width, seed + 1000 + salt);
        t.insert(format!("{name}.weight"), (vec![width], g.iter().map(|v| 1.0 + 0.3 * v).collect()));
        t.insert(format!("{name}.bias"), (vec![width], aimc::rng::uniform_signed(width, seed + 2000 + salt).iter().map(|v| 0.2 * v).collect()));
    };
    let p = "mobilebert.";
    lin(&mut t, &format!("{p}embeddings.embedding_transformation"), d, 3 * e);
    let l = format!("{p}encoder.layer.0.");
    lin(&mut t, &format!("{l}bottleneck.input.dense"), inner, d);
    norm(&mut t, &format!("{l}bottleneck.input.LayerNorm"), inner, 1);
    if variant == "shared" {
        lin(&mut t, &format!("{l}bottleneck.attention.dense"), inner, d);
        norm(&mut t, &format!("{l}bottleneck.attention.LayerNorm"), inner, 2);
    }
    for part in ["query", "key"] {
        lin(&mut t, &format!("{l}attention.self.{part}"), inner, inner);
    }
    lin(&mut t, &format!("{l}attention.self.value"), inner, if variant == "inner" { inner } else { d });
    lin(&mut t, &format!("{l}attention.output.dense"), inner, inner);
    norm(&mut t, &format!("{l}attention.output.LayerNorm"), inner, 3);
    for j in 0..2 {
        lin(&mut t, &format!("{l}ffn.{j}.intermediate.dense"), dff, inner);
        lin(&mut t, &format!("{l}ffn.{j}.output.dense"), inner, dff);
        norm(&mut t, &format!("{l}ffn.{j}.output.LayerNorm"), inner, 4 + j as u64);
    }
    lin(&mut t, &format!("{l}intermediate.dense"), dff, inner);
    lin(&mut t, &format!("{l}output.dense"), inner, dff);
    norm(&mut t, &format!("{l}output.LayerNorm"), inner, 6);
    lin(&mut t, &format!("{l}output.bottleneck.dense"), d, inner);
    norm(&mut t, &format!("{l}output.bottleneck.LayerNorm"), d, 7);
    if variant == "shared" {
        lin(&mut t, &format!("{p}pooler.dense"), d, d);
    }
    lin(&mut t, "classifier", classes, d);
    let w2 = |shape: Vec<usize>, salt: u64| {
        let n: usize = shape.iter().product();
        (shape, aimc::rng::uniform_signed(n, seed + 3000 + salt))
    };
    t.insert(format!("{p}embeddings.word_embeddings.weight"), w2(vec![vocab, e], 1));
    t.insert(format!("{p}embeddings.position_embeddings.weight"), w2(vec![seq, d], 2));
    t.insert(format!("{p}embeddings.token_type_embeddings.weight"), w2(vec![2, d], 3));
    norm(&mut t, &format!("{p}embeddings.LayerNorm"), d, 8);
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = t.into_iter().map(|(k, (shape, v))| (k, v.iter().flat_map(|x| x.to_le_bytes()).collect(), shape)).collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> =
        bytes.iter().map(|(k, b, s)| (k.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap())).collect();
    safetensors::serialize(views, None).unwrap()
}

/// 24 sequences of 20 tokens (ids 1..9, padded with 0 after 6..20 tokens) and labels 0..2.
pub(crate) fn token_csv() -> String {
    let mut out = String::new();
    for r in 0..24usize {
        let len = 6 + (r * 5) % 15;
        let toks: Vec<String> = (0..20).map(|i| if i < len { (1 + (r * 7 + i * 3 + i * i) % 9).to_string() } else { "0".into() }).collect();
        out.push_str(&format!("{},{}\n", toks.join(","), r % 3));
    }
    out
}

pub(crate) fn tmp(name: &str) -> PathBuf {
    // Under target/ (cargo's directory for test files), so runs leave nothing in /tmp.
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("transformer-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub(crate) const IDEAL: &str = "[device]\nmodel = \"ideal\"\n[periphery]\ninp_res_bits = 0\nout_res_bits = 0\nout_noise = 0.0\nout_bound = 0.0\n";

/// The tiny model a case runs, by its name: BERT names for `*segments`, MobileBERT's for
/// `*mobilebert*` (Q, K and V on the input bottleneck for `*mobilebert_inner`), else PyTorch's.
fn model_of(name: &str, feature_rows: Option<usize>) -> Vec<u8> {
    if name.ends_with("segments") {
        bert_state_dict(7)
    } else if name.ends_with("mobilebert_inner") {
        mobilebert_state_dict(7, "inner")
    } else if name.contains("mobilebert") {
        mobilebert_state_dict(7, "shared")
    } else {
        state_dict(feature_rows, 7)
    }
}

/// An experiment on the tiny model of [`model_of`] in its own directory; `extra` adds sections
/// or fields.
fn write_case(name: &str, transformer: &str, extra: &str, feature_rows: Option<usize>) -> PathBuf {
    write_experiment(&tmp(name), &model_of(name, feature_rows), ("tokens.csv", &token_csv()), transformer, extra)
}

/// A transformer experiment in `dir` (3 trials at 1 h and 1 y, seed 5): `model` as
/// model.safetensors, the data file (name, rows), `[transformer]` with heads = 2, pad_id = 0 and
/// the lines of `transformer`, then `extra` (sections or fields).
pub(crate) fn write_experiment(dir: &Path, model: &[u8], data: (&str, &str), transformer: &str, extra: &str) -> PathBuf {
    std::fs::write(dir.join("model.safetensors"), model).unwrap();
    std::fs::write(dir.join(data.0), data.1).unwrap();
    let text = format!(
        "name = \"t\"\nworkload = \"transformer\"\nseed = 5\ntrials = 3\n[model]\npath = \"model.safetensors\"\n[data]\npath = \"{}\"\n[transformer]\nheads = 2\npad_id = 0\n{transformer}\n{extra}\n[sweep]\nt = [\"1h\", \"1y\"]\n",
        data.0
    );
    let p = dir.join("exp.toml");
    std::fs::write(&p, text).unwrap();
    p
}

pub(crate) fn load(p: &Path) -> aimc::config::Experiment {
    aimc::config::Experiment::load(p).unwrap_or_else(|e| panic!("{e}"))
}

/// The first point's plan for two trials at the first time, recorded: every dispatch with its
/// buffers, and the points it gives.
pub(crate) fn recorded_run(e: &aimc::config::Experiment) -> (Recorder, Vec<plan::ClassifierPoint>) {
    let p = &e.points[0];
    let s = p.transformer.as_ref().unwrap();
    let data = e.data.as_ref().unwrap();
    let m = s.seq_model(p, data.n_features);
    let (tokens, lengths) = s.tokens(data);
    let cfg = RunConfig {
        reads_per_programming: 1,
        device: p.device.clone(),
        periphery: p.periphery.clone(),
        gdc: p.gdc,
        key: aimc::rng::key(e.seed, 0),
        trials: 2,
        first_trial: 0,
        times: vec![e.times[0]],
        max_chunk: 64,
        layer_noise: p.layer_noise.clone(),
    };
    let mut rec = Recorder::new();
    // Question answering's sequences are scored against their answers.
    let labels = if data.spans.is_empty() { &data.labels } else { &data.spans };
    let pts = plan::run_transformer(&mut rec, &m, &tokens, &lengths, labels, &cfg, &mut |_| {}).unwrap();
    (rec, pts)
}

/// The head's logits of every trial, `[trial][sample][class]`, at the first time: the last
/// `combine` of the recorded plan.
fn engine_logits(e: &aimc::config::Experiment) -> Vec<f32> {
    let data = e.data.as_ref().unwrap();
    let (rec, _) = recorded_run(e);
    let last = rec.log.iter().rev().find(|d| d.stage == Stage::Combine).unwrap();
    f32s(&last.after[6])[..2 * data.len() * 3].to_vec()
}

/// With an ideal device and perfect converters the engine computes the network in f32: its
/// logits equal the f64 reference forward's within the f32 error of the whole stack (one layer,
/// ≤ 20 tokens, sums of ≤ 12 terms: ~1e-6 relative per stage over ~15 stages, on logits of order
/// 1, observed ~1e-6), for softmax and kernel attention, post- and pre-LN, causal or not.
#[test]
fn the_floating_point_path_equals_the_reference_forward() {
    let cases = [
        ("softmax", "", None),
        ("prenorm", "norm_first = true\ncausal = true\npooling = \"cls\"", None),
        // GPT-2's sequence classifier: causal, the last non-padding token into the head.
        ("last", "norm_first = true\ncausal = true\npooling = \"last\"", None),
        ("kernel", "attention = \"kernel\"\nfeatures = 16", Some(8)),
        ("kernel_causal", "attention = \"kernel\"\nfeatures = 16\ncausal = true\nrepeat_layers = 2", Some(8)),
        ("kernel_drawn", "attention = \"kernel\"\nfeatures = 64\nprojection = \"sorf\"\nfeature_map = \"trig\"", None),
        // Upcycled experts: in exact arithmetic the routed layer is the dense pair (the gates
        // sum to one over identical experts), so the reference's dense pair is its reference.
        ("moe", "experts = 4\ntop_k = 2\ntiers = 2\ntier_noise_slope = 1.0", None),
        // Sentence pairs on BERT names: tokens after the first 5 read token-type row 1.
        ("segments", "segment_sep = 5\npooling = \"cls\"", None),
        // MobileBERT: the trigram input, bottlenecks, stacked pairs, NoNorm (its default) or
        // LayerNorm, sentence pairs.
        ("mobilebert", "pooling = \"cls\"\nactivation = \"relu\"\nsegment_sep = 5", None),
        ("mobilebert_inner", "pooling = \"cls\"\nactivation = \"relu\"\nnorm = \"layer_norm\"\nlayer_norm_eps = 1e-12", None),
    ];
    for (name, settings, rows) in cases {
        let p = write_case(name, settings, IDEAL, rows);
        let e = load(&p);
        let p = &e.points[0];
        let s = p.transformer.as_ref().unwrap();
        let data = e.data.as_ref().unwrap();
        let got = engine_logits(&e);
        let (tokens, lengths) = s.tokens(data);
        let seq = data.n_features;
        let mut worst = 0f64;
        for r in 0..data.len() {
            // The reference reads the ids as the data set holds them (the engine's carry the segment bit).
            let raw = aimc::workload::transformer::reference::row_tokens(data, r);
            let want = aimc::workload::transformer::reference::logits(s.net(), s, &raw, lengths[r] as usize);
            assert!(name == "segments" || name == "mobilebert" || tokens[r * seq..(r + 1) * seq] == raw[..]);
            for t in 0..2 {
                for (c, w) in want.iter().enumerate() {
                    worst = worst.max((got[(t * data.len() + r) * 3 + c] as f64 - w).abs());
                }
            }
        }
        if name == "segments" || name == "mobilebert" {
            // The second segment's row matters: without it the reference moves.
            let mut single = s.clone();
            single.segment_sep = None;
            let moved = (0..data.len()).any(|r| {
                let raw = aimc::workload::transformer::reference::row_tokens(data, r);
                let (a, b) = (
                    aimc::workload::transformer::reference::logits(s.net(), s, &raw, lengths[r] as usize),
                    aimc::workload::transformer::reference::logits(s.net(), &single, &raw, lengths[r] as usize),
                );
                a.iter().zip(&b).any(|(x, y)| (x - y).abs() > 1e-2)
            });
            assert!(moved, "segment_sep changes no logit");
        }
        eprintln!("{name}: largest logit difference {worst:.2e}");
        assert!(worst < aimc::tolerances::TRANSFORMER_FP_ABS as f64, "{name}: engine logits differ from the f64 reference by {worst}");
        let fp = s.fp_correct.unwrap();
        let r = run_ok(&mut cpu(), &e);
        for c in r.points[0].per_trial_correct.as_ref().unwrap() {
            assert!(c.abs_diff(fp as u32) <= 1, "{name}: ideal crossbars classify {c} of {} right, the reference {fp}", data.len());
        }
    }
}

/// A backend that reports a small binding limit, so the plan splits the data set into sample
/// batches.
/// The third field is the binding ceiling (the most one binding may hold when a trial or a
/// sequence needs more than the preferred size).
pub(crate) struct Limited(pub(crate) aimc::engine::cpu::CpuBackend, pub(crate) u64, pub(crate) u64);

impl Backend for Limited {
    fn adapter(&self) -> AdapterInfo {
        self.0.adapter()
    }
    fn create(&mut self, label: &str, words: usize) -> Buf {
        self.0.create(label, words)
    }
    fn upload(&mut self, buf: Buf, data: &[u32]) {
        self.0.upload(buf, data)
    }
    fn clear(&mut self, buf: Buf) {
        self.0.clear(buf)
    }
    fn download(&mut self, buf: Buf) -> Result<Vec<u32>, EngineError> {
        self.0.download(buf)
    }
    fn free(&mut self, buf: Buf) {
        self.0.free(buf)
    }
    fn dispatch(&mut self, stage: Stage, p: &aimc::engine::layout::StageParams, b: &[Buf], g: [u32; 3]) {
        self.0.dispatch(stage, p, b, g)
    }
    fn finish(&mut self) -> Result<(), EngineError> {
        self.0.finish()
    }
    fn max_binding_bytes(&self) -> u64 {
        self.1
    }
    fn binding_ceiling(&self) -> u64 {
        self.2
    }
    fn wg(&self) -> u32 {
        self.0.wg()
    }
    fn set_profiling(&mut self, on: bool) {
        self.0.set_profiling(on)
    }
    fn take_profile(&mut self) -> Result<Option<aimc::engine::profile::Profile>, EngineError> {
        self.0.take_profile()
    }
}

/// Sample batches and trial chunks reproduce one whole run's counts exactly (periphery noise is
/// keyed by global vector index), with PCM noise on, for both attention kinds.
#[test]
fn sample_batches_and_chunks_give_the_whole_run() {
    for (name, settings, rows) in [
        ("batch_softmax", "", None),
        ("batch_kernel", "attention = \"kernel\"\nfeatures = 16\ncausal = true", Some(8)),
        ("batch_moe", "experts = 4\ntop_k = 2\ntiers = 2\ntier_noise_slope = 2.0", None),
        ("batch_mobilebert", "pooling = \"cls\"\nactivation = \"relu\"", None),
    ] {
        let e = load(&write_case(name, settings, "[device]\nmodel = \"pcm\"", rows));
        let whole = run_ok(&mut cpu(), &e);
        // 16 KiB: one sequence's largest buffer (a 20-token kernel attention's features: 20 · 2
        // heads · 16 · 4 bytes = 2.5 KiB) fits a few times, so 24 sequences run in batches.
        let mut small = Limited(cpu(), 16 << 10, 16 << 10);
        let parts = run_ok(&mut small, &e);
        for (a, b) in whole.points.iter().zip(&parts.points) {
            assert_eq!(a.per_trial_correct, b.per_trial_correct, "{name} at {}", a.time_label);
        }
    }
}

/// The GPU runs the shipped-style experiment as the CPU twins do: counts within a few sequences
/// (an ADC step flipped on a near-tie changes a prediction).
#[test]
fn the_gpu_classifies_as_the_cpu_twin() {
    let Some(mut g) = gpu(256) else { return };
    for (name, settings, rows) in [
        ("gpu_softmax", "", None),
        ("gpu_kernel", "attention = \"kernel\"\nfeatures = 16", Some(8)),
        ("gpu_segments", "segment_sep = 5\npooling = \"cls\"", None),
        ("gpu_last", "causal = true\npooling = \"last\"", None),
        ("gpu_mobilebert", "segment_sep = 5\npooling = \"cls\"\nactivation = \"relu\"", None),
    ] {
        let p = write_case(name, settings, "[device]\nmodel = \"pcm\"", rows);
        let e = load(&p);
        let (a, b) = (run_ok(&mut cpu(), &e), run_ok(&mut g, &e));
        for (x, y) in a.points.iter().zip(&b.points) {
            for (c, d) in x.per_trial_correct.as_ref().unwrap().iter().zip(y.per_trial_correct.as_ref().unwrap()) {
                assert!(c.abs_diff(*d) <= 2, "{name}: cpu {c} gpu {d} of 24");
            }
        }
    }
}

pub(crate) fn aimc_cli() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_aimc"))
}

/// `aimc run` of `exp` on the CPU into `out` beside it: it succeeds, trials.csv names the metric
/// `column`, and the results.json it wrote.
pub(crate) fn cli_results(exp: &Path, column: &str) -> aimc::results::Results {
    let out = exp.parent().unwrap().join("out");
    let o = aimc_cli().args(["run", exp.to_str().unwrap(), "--backend", "cpu", "--out", out.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(out.join("trials.csv")).unwrap();
    assert!(csv.lines().next().unwrap().contains(column), "{}: {}", exp.display(), csv.lines().next().unwrap());
    assert!(out.join("report.html").exists() || out.join("report.md").exists());
    serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap()
}

/// Bad input is named (the field or tensor and the fix) by `check` and `run`, before any compute,
/// and no results directory is left behind.
#[test]
fn bad_input_is_named_and_nothing_is_written() {
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        ("heads", "heads = 2".replace("2", "3"), vec!["heads = 3", "d_model = 8"]),
        ("odd", "attention = \"kernel\"\nfeatures = 15\nprojection = \"orf\"".into(), vec!["features = 15", "even"]),
        ("padid", "pad_id = 12".into(), vec!["pad_id = 12", "vocabulary"]),
        // A shared stack run without bound would hang validation's floating-point pass.
        ("repeat", "repeat_layers = 100000".into(), vec!["repeat_layers = 100000", "1..=256"]),
    ];
    for (name, settings, needles) in cases {
        let p = write_case(name, "", "", None);
        let text = std::fs::read_to_string(&p).unwrap();
        let text = if name == "heads" {
            text.replace("heads = 2", &settings)
        } else if name == "padid" {
            text.replace("pad_id = 0", &settings)
        } else {
            text.replace("pad_id = 0", &format!("pad_id = 0\n{settings}"))
        };
        std::fs::write(&p, text).unwrap();
        expect_cli_error(&p, &needles);
    }
    // A token outside the vocabulary, and padding followed by a token.
    let p = write_case("vocab", "", "", None);
    let dir = p.parent().unwrap();
    std::fs::write(dir.join("tokens.csv"), token_csv().replacen("\n", ",\n", 0).replacen(",0,", ",10,", 1)).unwrap();
    expect_cli_error(&p, &["token", "10", "vocabulary"]);
    std::fs::write(dir.join("tokens.csv"), "1,2,0,3,0\n").unwrap();
    expect_cli_error(&p, &["row 1", "padding"]);
    // A row of padding alone has nothing to pool over.
    std::fs::write(dir.join("tokens.csv"), "1,2,0,0,1\n0,0,0,0,1\n").unwrap();
    expect_cli_error(&p, &["row 2", "all padding"]);
    // Padding first, then a token: said as such, not as all padding.
    std::fs::write(dir.join("tokens.csv"), "1,2,0,0,1\n0,3,0,0,1\n").unwrap();
    expect_cli_error(&p, &["row 2", "starts with padding", "token 1 is not padding"]);
    // NaN in a tensor.
    let p = write_case("nan", "", "", None);
    let mut bytes = std::fs::read(p.parent().unwrap().join("model.safetensors")).unwrap();
    let n = bytes.len();
    bytes[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(p.parent().unwrap().join("model.safetensors"), bytes).unwrap();
    expect_cli_error(&p, &["NaN"]);
}

/// A field only kernel attention or routed layers read, set while its switch (`attention`,
/// `experts`) is left at its default: the value would go unused and the feature would not run.
/// Refused, naming the field, its line, the switch and the fix, whether the file, a `--set` or an
/// axis sets it. With the switch written anywhere (the file, `--set`, an axis, a variant) it is
/// taken, softmax written out included: a comparison that turns the feature off.
#[test]
fn a_switched_field_without_its_switch_is_refused() {
    let kernel =
        ["transformer.features is set at line 12 but transformer.attention is left at its default", "set attention = \"kernel\"", "or remove features"];
    let p = write_case("switch-features", "features = 16", "", None);
    expect_cli_error(&p, &kernel);
    let p = write_case("switch-top-k", "top_k = 1", "", None);
    expect_cli_error(&p, &["transformer.top_k is set at line 12 but transformer.experts is left at its default, 0", "set experts >= 1", "or remove top_k"]);
    let p = write_case("switch-axis", "", "", None);
    let text = std::fs::read_to_string(&p).unwrap().replace("t = [\"1h\", \"1y\"]", "t = [\"1h\"]\nfeature_map = [\"positive\", \"trig\"]");
    std::fs::write(&p, text).unwrap();
    expect_cli_error(&p, &["transformer.feature_map is swept by [sweep] feature_map but transformer.attention is left at its default"]);
    let p = write_case("switch-set", "", "", None);
    let o = aimc_cli().args(["check", p.to_str().unwrap(), "--set", "transformer.router_seed=3"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.code() == Some(1) && err.contains("transformer.router_seed is set but transformer.experts is left at its default"), "{err}");
    // The switch written anywhere: taken.
    let ok = |p: &Path, sets: &[&str]| {
        let o = aimc_cli().arg("check").arg(p).args(sets.iter().flat_map(|s| ["--set", s])).output().unwrap();
        assert!(o.status.success(), "{sets:?}: {}", String::from_utf8_lossy(&o.stderr));
    };
    let p = write_case("switch-features-set", "features = 16\nprojection = \"orf\"", "", None);
    ok(&p, &["transformer.attention=\"kernel\""]);
    ok(&p, &["transformer.attention=\"softmax\""]);
    ok(&p, &["sweep.attention=[\"softmax\", \"kernel\"]"]);
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("t = [\"1h\", \"1y\"]", "t = [\"1h\"]\nvariant = [{ name = \"exact\" }, { name = \"kernel\", attention = \"kernel\" }]");
    std::fs::write(&p, text).unwrap();
    ok(&p, &[]);
}

pub(crate) fn expect_cli_error(exp: &Path, needles: &[&str]) {
    for cmd in ["check", "run"] {
        let out = exp.parent().unwrap().join("out");
        let extra = if cmd == "run" { vec!["--backend", "cpu", "--out", out.to_str().unwrap()] } else { vec![] };
        let o = aimc_cli().args([cmd, exp.to_str().unwrap()]).args(extra).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{cmd} should fail: {err}");
        for n in needles {
            assert!(err.contains(n), "`aimc {cmd}` error should mention {n:?}: {err}");
        }
        assert!(!err.contains("panicked"), "{err}");
        assert!(!out.exists(), "a failed validation must not write results");
    }
}

/// `[budget]` on a transformer: its layer configurations are the kinds of matrices, and switching
/// every source off in a kind's matrices is a configuration like any other (paired draws).
#[test]
fn the_noise_budget_names_each_kind_of_matrix() {
    let p = write_case(
        "budget",
        "attention = \"kernel\"\nfeatures = 16\nexperts = 2\ntop_k = 1\ntiers = 2",
        "[device]\nmodel = \"pcm\"\n[budget]\nsources = [\"programming\", \"drift\"]",
        Some(8),
    );
    // With GDC on, so the drifted state depends on the readout's converter settings too.
    let text = std::fs::read_to_string(&p).unwrap().replace("trials = 3\n", "trials = 3\ngdc = \"readout\"\n");
    std::fs::write(&p, &text).unwrap();
    let e = load(&p);
    let axis = e.axes.iter().find(|a| a.name == "budget").expect("a budget axis");
    for kind in ["q", "k", "v", "o", "router", "experts", "feature", "head"] {
        assert!(axis.labels.contains(&format!("only layer {kind}")), "no configuration for {kind}: {:?}", axis.labels);
    }
    let r = run_ok(&mut cpu(), &e);
    assert!(!r.budget.is_empty(), "the budget attributes the accuracy drop");
    // The configurations run as one plan (matrices of one kind noisy, the others ideal: each
    // matrix's state shared with the configurations that program it alike); each has the
    // per-trial counts of its settings run alone, on the CPU and on the GPU.
    let plain = |device: &str| {
        std::fs::write(&p, text.replace("[budget]\nsources = [\"programming\", \"drift\"]", "").replace("model = \"pcm\"", device)).unwrap();
        load(&p)
    };
    let alone = [("full", plain("model = \"pcm\"")), ("only programming", plain("model = \"pcm\"\ndrift_scale = 0.0"))];
    let check = |be: &mut dyn aimc::engine::Backend, budget: &aimc::results::Results, what: &str| {
        for (name, e) in &alone {
            let a = run_ok(be, e);
            for q in &a.points {
                let b = budget.points.iter().find(|b| b.labels.get("budget").map(String::as_str) == Some(name) && b.time_label == q.time_label).unwrap();
                assert_eq!(b.per_trial_correct, q.per_trial_correct, "{what}: {name} at {} in the budget vs alone", q.time_label);
            }
        }
    };
    check(&mut cpu(), &r, "cpu");
    let Some(mut g) = gpu(64) else { return };
    let rg = run_ok(&mut g, &e);
    check(&mut g, &rg, "gpu");
}

/// `bytes` (a safetensors file of F32 tensors) with `edit` applied to its tensors.
pub(crate) fn edited(bytes: &[u8], edit: impl FnOnce(&mut BTreeMap<String, (Vec<usize>, Vec<f32>)>)) -> Vec<u8> {
    let st = safetensors::SafeTensors::deserialize(bytes).unwrap();
    let mut t: BTreeMap<String, (Vec<usize>, Vec<f32>)> = st
        .tensors()
        .into_iter()
        .map(|(k, v)| (k, (v.shape().to_vec(), v.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())))
        .collect();
    edit(&mut t);
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = t.into_iter().map(|(k, (shape, v))| (k, v.iter().flat_map(|x| x.to_le_bytes()).collect(), shape)).collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> =
        bytes.iter().map(|(k, b, s)| (k.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap())).collect();
    safetensors::serialize(views, None).unwrap()
}

/// Malformed MobileBERT files are refused before any compute, each naming the tensor and what it
/// needs: a stacked pair's missing weight (never another pair's in its place), a pooler bias
/// without its weight, a gap in the stacked pairs, a bottleneck of the wrong width, V on the input
/// bottleneck beside a shared one, a projection of neither 3E nor E inputs, an output bottleneck
/// without its input one.
#[test]
fn malformed_mobilebert_files_are_named() {
    type Tensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;
    type Edit = Box<dyn Fn(&mut Tensors)>;
    let l = "mobilebert.encoder.layer.0.";
    let cases: Vec<(&str, Edit, Vec<String>)> = vec![
        (
            "pair_weight",
            Box::new(move |t: &mut Tensors| {
                t.remove(&format!("{l}ffn.1.intermediate.dense.weight"));
            }),
            vec![format!("missing tensor {l}ffn.1.intermediate.dense.weight")],
        ),
        (
            "pooler_bias",
            Box::new(|t: &mut Tensors| {
                t.remove("mobilebert.pooler.dense.weight");
            }),
            vec!["mobilebert.pooler.dense.bias has no weight".into()],
        ),
        (
            "pair_gap",
            Box::new(move |t: &mut Tensors| {
                for k in t.keys().filter(|k| k.contains(".ffn.0.")).cloned().collect::<Vec<_>>() {
                    let v = t.remove(&k).unwrap();
                    t.insert(k.replace(".ffn.0.", ".ffn.3."), v);
                }
            }),
            vec!["ffn.0 is missing".into(), "without gaps".into()],
        ),
        (
            "bottleneck_width",
            Box::new(move |t: &mut Tensors| {
                t.insert(format!("{l}bottleneck.attention.dense.weight"), (vec![5, 8], vec![0.1; 40]));
            }),
            vec![format!("{l}bottleneck.attention.dense.weight has shape [5, 8] but needs [4, 8]")],
        ),
        (
            "inner_and_shared",
            Box::new(move |t: &mut Tensors| {
                t.insert(format!("{l}attention.self.value.weight"), (vec![4, 4], vec![0.1; 16]));
            }),
            vec!["use_bottleneck_attention".into(), "shared Q/K bottleneck".into()],
        ),
        (
            "projection_inputs",
            Box::new(|t: &mut Tensors| {
                t.insert("mobilebert.embeddings.embedding_transformation.weight".into(), (vec![8, 10], vec![0.1; 80]));
            }),
            vec!["has 10 inputs".into(), "3 x E = 12".into()],
        ),
        (
            "output_without_input",
            Box::new(move |t: &mut Tensors| {
                t.retain(|k, _| !k.contains("bottleneck.input."));
            }),
            vec![format!("needs layer 0's input bottleneck {l}bottleneck.input.dense.weight")],
        ),
    ];
    for (name, edit, needles) in cases {
        let p = write_case(&format!("mobilebert_bad_{name}"), "pooling = \"cls\"\nactivation = \"relu\"", "", None);
        std::fs::write(p.parent().unwrap().join("model.safetensors"), edited(&mobilebert_state_dict(7, "shared"), edit)).unwrap();
        let e = aimc::config::Experiment::load(&p).err().unwrap_or_else(|| panic!("{name}: accepted")).to_string();
        for n in &needles {
            assert!(e.contains(n.as_str()), "{name}: {e}");
        }
    }
}

/// MobileBERT's matrices in the budget by kind (its bottlenecks by part, its stacked pairs with
/// the main pair's kinds), and `norm` as a sweep axis over one cached file: each point runs its
/// own norm (the reference's logits differ between the points).
#[test]
fn mobilebert_kinds_in_the_budget_and_norm_per_point() {
    let p =
        write_case("mobilebert_budget", "pooling = \"cls\"\nactivation = \"relu\"", "[device]\nmodel = \"pcm\"\n[budget]\nsources = [\"programming\"]", None);
    let e = load(&p);
    let axis = e.axes.iter().find(|a| a.name == "budget").expect("a budget axis");
    for kind in ["embedding", "bottleneck.input", "bottleneck.attention", "bottleneck.output", "q", "v", "ffn1", "ffn2", "pooler", "head"] {
        assert!(axis.labels.contains(&format!("only layer {kind}")), "no configuration for {kind}: {:?}", axis.labels);
    }
    assert!(!axis.labels.iter().any(|l| l == "only layer layers"), "{:?}", axis.labels);
    let text = std::fs::read_to_string(&p).unwrap().replace("[budget]\nsources = [\"programming\"]", "").replace(
        "t = [\"1h\", \"1y\"]",
        "t = [\"1h\"]\nvariant = [{ name = \"no_norm\" }, { name = \"layer_norm\", norm = \"layer_norm\", layer_norm_eps = 1e-5 }]",
    );
    std::fs::write(&p, text).unwrap();
    let e = load(&p);
    assert_eq!(e.points.len(), 2);
    let data = e.data.as_ref().unwrap();
    let raw = aimc::workload::transformer::reference::row_tokens(data, 0);
    let len = aimc::workload::transformer::reference::seq_len(&raw, Some(0));
    let logits: Vec<Vec<f64>> = e
        .points
        .iter()
        .map(|pt| {
            let s = pt.transformer.as_ref().unwrap();
            assert_eq!(s.no_norm(), s.norm.is_none(), "{:?}", s.norm);
            assert_eq!(s.seq_model(pt, data.n_features).no_norm, s.no_norm());
            aimc::workload::transformer::reference::logits(s.net(), s, &raw, len)
        })
        .collect();
    assert!(logits[0].iter().zip(&logits[1]).any(|(a, b)| (a - b).abs() > 1e-3), "norm changes no logit: {logits:?}");
}

/// A `variant` axis sets several fields per value and labels points by name; a variant without a
/// name, two with one name, or one that sets a field another axis sweeps are refused.
#[test]
fn a_variant_axis_sets_fields_together() {
    let p = write_case("variant", "", "[device]\nmodel = \"pcm\"", Some(8));
    let text = std::fs::read_to_string(&p).unwrap();
    let with = |axis: &str| {
        std::fs::write(&p, text.replace("[sweep]\n", &format!("[sweep]\n{axis}\n"))).unwrap();
        aimc::config::Experiment::load(&p).map_err(|e| e.to_string())
    };
    let e = with("variant = [{ name = \"soft\" }, { name = \"kern\", attention = \"kernel\", features = 16, drift_scale = 0.5 }]").unwrap();
    assert_eq!(e.axes[0].labels, ["soft", "kern"]);
    let (a, b) = (e.points[0].transformer.as_ref().unwrap(), e.points[1].transformer.as_ref().unwrap());
    assert_eq!(a.attention, aimc::workload::transformer::AttentionKind::Softmax);
    assert_eq!((b.attention, b.features), (aimc::workload::transformer::AttentionKind::Kernel, 16));
    assert_eq!((e.points[0].device.drift_scale, e.points[1].device.drift_scale), (1.0, 0.5));
    for (axis, needle) in [
        ("variant = [{ attention = \"kernel\" }]", "name"),
        ("variant = [{ name = \"a\" }, { name = \"a\" }]", "two variants are named \"a\""),
        ("variant = [{ name = \"a\", features = 16 }]\nfeatures = [16, 32]", "also an axis"),
        ("variant = [{ name = \"a\", heads = 3 }]", "heads = 3"),
    ] {
        let err = with(axis).unwrap_err();
        assert!(err.contains(needle), "{axis}: {err}");
    }
}
