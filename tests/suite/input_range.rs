//! Learned input ranges (aihwkit's `pre_post.input_range`) read from a model file: tensor
//! `PREFIX.input_range`, one value for the layer or one per input tile. With an ideal device and
//! perfect converters the engine's classifier then computes the network with every layer's inputs
//! clipped to ±range (the ranges divide out), which an f64 forward pass written here again checks
//! row by row, on the CPU and, where there is one, the GPU, and the floating-point baseline is that
//! clipped network; a file whose ranges do not fit the tiles, or hold a value ≤ 0, is refused by
//! tensor name.

use crate::common;
use crate::common::{experiment as exp, run_ok};
use aimc::workload::io::{read_state_dict, Linear};
use safetensors::tensor::{Dtype, TensorView};

const BASE: &str = r#"
name = "input_ranges"
workload = "classifier"
seed = 4
trials = 2
weight_error_trials = 0
layer_insight_trials = 0
gdc = "off"
[model]
path = "MODEL"
[data]
path = "data/digits.csv"
scale = 16.0
rows = [1347, 1547]
[device]
model = "ideal"
[periphery]
inp_res_bits = 0
out_res_bits = 0
out_bound = 0.0
out_noise = 0.0
noise_management = "none"
bound_management = "none"
[tile]
max_in = 32
max_out = 512
[sweep]
t = ["1s"]
"#;

fn bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// digits_mlp's layers with `ranges` (prefix, shape, values) added, written to a fresh file.
fn model_with(tag: &str, ranges: &[(&str, Vec<usize>, Vec<f32>)]) -> std::path::PathBuf {
    shipped_with("digits_mlp", tag, ranges)
}

/// A shipped model's layers with `ranges` added, written to a fresh file.
fn shipped_with(model: &str, tag: &str, ranges: &[(&str, Vec<usize>, Vec<f32>)]) -> std::path::PathBuf {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let layers = read_state_dict(&root.join(format!("experiments/models/{model}.safetensors"))).unwrap();
    let mut named: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for l in &layers {
        let shape = match l.conv {
            Some(c) => vec![l.weight.rows, c.in_c, c.k_h, c.k_w],
            None => vec![l.weight.rows, l.weight.cols],
        };
        named.push((format!("{}.weight", l.name), shape, bytes(&l.weight.data)));
        named.push((format!("{}.bias", l.name), vec![l.bias.len()], bytes(&l.bias)));
    }
    for (p, shape, v) in ranges {
        named.push((format!("{p}.input_range"), shape.clone(), bytes(v)));
    }
    let dir = std::env::temp_dir().join(format!("aimc-input-range-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.safetensors");
    let views: Vec<(String, TensorView)> = named.iter().map(|(n, sh, b)| (n.clone(), TensorView::new(Dtype::F32, sh.clone(), b).unwrap())).collect();
    safetensors::serialize_to_file(views, None, &path).unwrap();
    path
}

fn text(path: &std::path::Path) -> String {
    BASE.replace("MODEL", &path.display().to_string())
}

/// The f64 network with each layer's inputs clipped to its range (input tile by input tile of
/// `max_in` columns); the rows it classifies correctly.
fn clipped_correct(layers: &[Linear], data: &aimc::workload::io::Dataset, max_in: usize) -> u32 {
    let mut correct = 0;
    for s in 0..data.len() {
        let mut h: Vec<f64> = data.x[s * data.n_features..(s + 1) * data.n_features].iter().map(|&v| v as f64).collect();
        for (i, l) in layers.iter().enumerate() {
            let (rows, cols) = (l.weight.rows, l.weight.cols);
            let tiles = cols.div_ceil(max_in);
            for (k, v) in h.iter_mut().enumerate() {
                let r = match l.input_range.len() {
                    0 => f64::INFINITY,
                    1 => l.input_range[0] as f64,
                    _ => l.input_range[aimc::crossbar::split_index(cols as u32, tiles as u32, k as u32) as usize] as f64,
                };
                *v = v.clamp(-r, r);
            }
            h = (0..rows).map(|o| (0..cols).map(|k| l.weight.data[o * cols + k] as f64 * h[k]).sum::<f64>() + l.bias[o] as f64).collect();
            if i + 1 < layers.len() {
                h.iter_mut().for_each(|v| *v = v.max(0.0));
            }
        }
        let best = (0..h.len()).fold(0, |b, j| if h[j] > h[b] { j } else { b });
        correct += u32::from(best as u32 == data.labels[s]);
    }
    correct
}

#[test]
fn input_ranges_clip_every_layers_inputs() {
    // Layer 0 (64 inputs on two 32-input tiles) clips pixels (0..1) at 0.25 and 0.5 per tile;
    // layer 2 clips its hidden inputs at 1.5.
    let path = model_with("clip", &[("0", vec![2], vec![0.25, 0.5]), ("2", vec![], vec![1.5])]);
    let e = exp(&text(&path)).unwrap();
    assert_eq!(e.layers[0].input_range, vec![0.25, 0.5]);
    let want = clipped_correct(&e.layers, e.data.as_ref().unwrap(), 32);
    let plain: Vec<Linear> = e.layers.iter().map(|l| Linear { input_range: Vec::new(), ..l.clone() }).collect();
    let unclipped = clipped_correct(&plain, e.data.as_ref().unwrap(), 32);
    assert!(unclipped >= want + 10, "the ranges change the network: {want} correct with them, {unclipped} without");
    let r = run_ok(&mut common::cpu(), &e);
    // The report names the ranges with the layers.
    assert_eq!(r.layer_label(0), "0 (Linear 64→64, inputs clipped to ±0.250/0.500)");
    assert_eq!(r.layer_label(1), "2 (Linear 64→10, inputs clipped to ±1.500)");
    let got = r.points[0].per_trial_correct.clone().unwrap();
    for &c in &got {
        // f32 on the crossbar against f64 here may flip a near tie.
        assert!(c.abs_diff(want) <= 1, "engine {c} correct, clipped f64 network {want}");
    }
    if let Some(mut g) = common::gpu(256) {
        assert_eq!(run_ok(&mut g, &e).points[0].per_trial_correct.clone().unwrap(), got, "GPU and CPU agree trial by trial");
    }
    // The floating-point baseline is the noiseless network as trained: its inputs clipped.
    assert_eq!(e.fp_correct.unwrap().0, want as u64);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn input_ranges_that_do_not_fit_are_refused_by_name() {
    for (tag, ranges, want) in [
        ("count", vec![("0", vec![3], vec![1.0, 1.0, 1.0])], "0.input_range has 3 values, but with 32x512 tiles the layer's 64 inputs lie on 2 input tile(s)"),
        ("sign", vec![("0", vec![2], vec![1.0, -0.5])], "0.input_range[1] = -0.5: an input range must be a finite number > 0"),
        ("shape", vec![("2", vec![1, 1], vec![1.0])], "2.input_range has shape [1, 1]"),
    ] {
        let path = model_with(tag, &ranges);
        let err = exp(&text(&path)).expect_err(tag);
        assert!(err.contains(want), "{tag}: {err}");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
    // A tile swept to another shape is checked at every point.
    let path = model_with("sweep", &[("0", vec![2], vec![0.5, 0.5])]);
    let swept = text(&path).replace("[tile]\nmax_in = 32\nmax_out = 512\n", "").replace("t = [\"1s\"]", "t = [\"1s\"]\ntile = [\"32x512\", \"64x512\"]");
    let err = exp(&swept).expect_err("swept tile");
    assert!(err.contains("with 64x512 tiles the layer's 64 inputs lie on 1 input tile(s)"), "{err}");
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

/// A CNN: the ranges clip the unfolded patches column by column, per input tile of the second
/// convolution (72 patch inputs on three 24-input tiles), as the engine's `dac` clips each tile's
/// slice; the engine with perfect converters and an ideal device classifies as the clipped f64
/// network (the floating-point baseline) does.
#[test]
fn input_ranges_clip_a_convolutions_patches_per_tile() {
    let path = shipped_with("digits_cnn", "cnn", &[("0", vec![1], vec![0.4]), ("3", vec![3], vec![0.3, 1.0, 0.6]), ("7", vec![], vec![2.0])]);
    let text = text(&path).replace("max_in = 32", "max_in = 24").replace(
        "[data]",
        "input_shape = [1, 8, 8]\nlayers = [\n  { name = \"0\", activation = \"relu\", padding = 1, pool = \"max\", pool_size = 2 },\n  { name = \"3\", activation = \"relu\", padding = 1, pool = \"max\", pool_size = 2 },\n  { name = \"7\", activation = \"none\" },\n]\n[data]",
    );
    let e = exp(&text).unwrap();
    let want = e.fp_correct.unwrap().0 as u32;
    let plain: Vec<Linear> = e.layers.iter().map(|l| Linear { input_range: Vec::new(), ..l.clone() }).collect();
    let unclipped = aimc::workload::fp_accuracy(&plain, &e.activations, e.data.as_ref().unwrap()).0 as u32;
    assert!(unclipped >= want + 10, "the ranges change the network: {want} correct with them, {unclipped} without");
    let r = run_ok(&mut common::cpu(), &e);
    for &c in r.points[0].per_trial_correct.as_ref().unwrap() {
        assert!(c.abs_diff(want) <= 1, "engine {c} correct, clipped f64 network {want}");
    }
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

/// A transformer's input ranges (`X.input_range` beside each analog weight `X.weight`; Hugging
/// Face names, as a BERT trained with aimc.torch's `input_range` saves them): Q per input tile
/// (8 inputs on two 4-input tiles), the feed-forward pair's first layer and the head's first
/// layer one each. With an ideal device, perfect converters and abs-max scaling (on the clipped
/// inputs, as aihwkit scales after its range) the engine's logits equal the f64
/// reference forward's, which clips the same inputs (and moves without the ranges); a range
/// beside a LayerNorm, without its weight, or with a count the tiles do not hold is refused.
#[test]
fn a_transformers_input_ranges_clip_its_layers() {
    use crate::transformer::{bert_state_dict, edited, load, tmp, token_csv, write_experiment, IDEAL};
    let p = "bert.encoder.layer.0.";
    let ranged = edited(&bert_state_dict(7), |t| {
        t.insert(format!("{p}attention.self.query.input_range"), (vec![2], vec![0.3, 0.5]));
        t.insert(format!("{p}intermediate.dense.input_range"), (vec![1], vec![0.4]));
        t.insert("classifier.0.input_range".into(), (vec![], vec![0.2]));
    });
    let settings = "segment_sep = 5\npooling = \"cls\"";
    let extra = format!("{IDEAL}[tile]\nmax_in = 4\nmax_out = 512\n");
    let e = load(&write_experiment(&tmp("ranges"), &ranged, ("tokens.csv", &token_csv()), settings, &extra));
    let s = e.points[0].transformer.as_ref().unwrap();
    assert_eq!(s.net().blocks[0].q.input_range, vec![0.3, 0.5]);
    assert_eq!(s.net().head[0].input_range, vec![0.2]);
    let plain = load(&write_experiment(&tmp("ranges_plain"), &bert_state_dict(7), ("tokens.csv", &token_csv()), settings, &extra));
    assert_logits_clip(&e, &plain);
    for (edit, want) in [
        (format!("{p}attention.output.LayerNorm.input_range"), "is no weight matrix of the"),
        ("bert.pooler.dense.input_range".to_string(), "has no weight bert.pooler.dense.weight in the file"),
    ] {
        let bad = edited(&bert_state_dict(7), |t| {
            t.insert(edit.clone(), (vec![1], vec![1.0]));
        });
        let p = write_experiment(&tmp("ranges_bad"), &bad, ("tokens.csv", &token_csv()), settings, &extra);
        let err = aimc::config::Experiment::load(&p).map(|_| ()).unwrap_err().to_string();
        assert!(err.contains(want), "{edit}: {err}");
    }
    let three = edited(&bert_state_dict(7), |t| {
        t.insert(format!("{p}attention.self.query.input_range"), (vec![3], vec![1.0; 3]));
    });
    let p = write_experiment(&tmp("ranges_count"), &three, ("tokens.csv", &token_csv()), settings, &extra);
    let err = aimc::config::Experiment::load(&p).map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("layers.0.q.input_range has 3 values, but with 4x512 tiles the layer's 8 inputs lie on 2 input tile(s)"), "{err}");
}

/// MobileBERT's own crossbar layers take input ranges as BERT's do: the trigram embedding
/// projection (12 inputs on three 4-input tiles, one range each), the input and shared
/// bottlenecks, a stacked feed-forward pair's two layers and the output bottleneck. With an
/// ideal device and perfect converters the engine's logits equal the f64 reference's, which
/// clips the same inputs (and moves without the ranges); a range beside a bottleneck's LayerNorm
/// is refused by name.
#[test]
fn a_mobileberts_input_ranges_clip_its_bottlenecks_and_stacked_pairs() {
    use crate::transformer::{edited, load, mobilebert_state_dict, tmp, token_csv, write_experiment, IDEAL};
    let l = "mobilebert.encoder.layer.0.";
    let ranged = edited(&mobilebert_state_dict(7, "shared"), |t| {
        t.insert("mobilebert.embeddings.embedding_transformation.input_range".into(), (vec![3], vec![0.3, 0.5, 0.4]));
        t.insert(format!("{l}bottleneck.input.dense.input_range"), (vec![2], vec![0.6, 0.5]));
        t.insert(format!("{l}bottleneck.attention.dense.input_range"), (vec![1], vec![0.4]));
        t.insert(format!("{l}ffn.0.intermediate.dense.input_range"), (vec![1], vec![0.3]));
        t.insert(format!("{l}ffn.1.output.dense.input_range"), (vec![2], vec![0.2, 0.25]));
        t.insert(format!("{l}output.bottleneck.dense.input_range"), (vec![], vec![0.5]));
    });
    let settings = "pooling = \"cls\"\nactivation = \"relu\"\nsegment_sep = 5";
    let extra = format!("{IDEAL}[tile]\nmax_in = 4\nmax_out = 512\n");
    let e = load(&write_experiment(&tmp("mb_ranges"), &ranged, ("tokens.csv", &token_csv()), settings, &extra));
    let s = e.points[0].transformer.as_ref().unwrap();
    let net = s.net();
    let b = &net.blocks[0];
    let bn = b.bottleneck.as_ref().unwrap();
    assert_eq!(net.embed_proj.as_ref().unwrap().0.input_range, vec![0.3, 0.5, 0.4]);
    assert_eq!((bn.input.0.input_range.clone(), bn.shared.as_ref().unwrap().0.input_range.clone()), (vec![0.6, 0.5], vec![0.4]));
    assert_eq!((b.extra_ffns[0].0.input_range.clone(), b.extra_ffns[1].1.input_range.clone()), (vec![0.3], vec![0.2, 0.25]));
    assert_eq!(bn.output.0.input_range, vec![0.5]);
    assert!(b.extra_ffns[0].1.input_range.is_empty() && b.extra_ffns[1].0.input_range.is_empty() && b.q.input_range.is_empty());
    let plain = load(&write_experiment(&tmp("mb_ranges_plain"), &mobilebert_state_dict(7, "shared"), ("tokens.csv", &token_csv()), settings, &extra));
    assert_logits_clip(&e, &plain);
    let refused = |tag: &str, bytes: &[u8], want: &str| {
        let p = write_experiment(&tmp(tag), bytes, ("tokens.csv", &token_csv()), settings, &extra);
        let err = aimc::config::Experiment::load(&p).map(|_| ()).unwrap_err().to_string();
        assert!(err.contains(want), "{tag}: {err}");
    };
    let with_range = |name: String, v: f32| {
        edited(&mobilebert_state_dict(7, "shared"), |t| {
            t.insert(name, (vec![1], vec![v]));
        })
    };
    refused("mb_ranges_bad", &with_range(format!("{l}bottleneck.input.LayerNorm.input_range"), 1.0), "is no weight matrix of the");
    // A NaN or a zero range is named with its tensor; a truncated or empty file with its cause.
    refused("mb_ranges_nan", &with_range(format!("{l}bottleneck.attention.dense.input_range"), f32::NAN), "bottleneck.attention.dense.input_range[0] = NaN");
    refused("mb_ranges_zero", &with_range(format!("{l}ffn.1.output.dense.input_range"), 0.0), "must be a finite number > 0");
    let whole = with_range(format!("{l}output.bottleneck.dense.input_range"), 0.5);
    refused("mb_ranges_cut", &whole[..whole.len() - 7], "model.safetensors");
    refused("mb_ranges_empty", &[], "model.safetensors");
}

/// A transformer experiment `e` with input ranges (ideal devices and converters, three classes)
/// against the f64 reference forward: the engine's logits (the last `combine`) equal the
/// reference's, which clips the same inputs, below 1e-4; and the ranges clip, moving the
/// reference by more than 1e-2 from `plain`'s (the same weights without ranges).
fn assert_logits_clip(e: &aimc::config::Experiment, plain: &aimc::config::Experiment) {
    use aimc::engine::stages::Stage;
    use aimc::workload::transformer::reference;
    let (s, ps) = (e.points[0].transformer.as_ref().unwrap(), plain.points[0].transformer.as_ref().unwrap());
    let data = e.data.as_ref().unwrap();
    let (rec, _) = crate::transformer::recorded_run(e);
    let last = rec.log.iter().rev().find(|d| d.stage == Stage::Combine).unwrap();
    let got = common::f32s(&last.after[6]);
    let (_, lengths) = s.tokens(data);
    let (mut worst, mut moved) = (0f64, 0f64);
    for r in 0..data.len() {
        let raw = reference::row_tokens(data, r);
        let want = reference::logits(s.net(), s, &raw, lengths[r] as usize);
        let unclipped = reference::logits(ps.net(), ps, &raw, lengths[r] as usize);
        for (c, w) in want.iter().enumerate() {
            worst = worst.max((got[r * 3 + c] as f64 - w).abs());
            moved = moved.max((w - unclipped[c]).abs());
        }
    }
    assert!(worst < 1e-4, "engine against the clipping reference: {worst}");
    assert!(moved > 1e-2, "the ranges clip: the reference moves by {moved}");
}
