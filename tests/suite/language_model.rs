//! A causal language model (`transformer.task = "next_token"`) end to end: the `token_nll` stage
//! against its twin, the engine's noiseless next-token loss against the independent f64 reference
//! per sequence, sample batches against one batch, the GPU against the CPU twins, the results and
//! report the CLI writes, and bad input named before any compute with nothing written.

use super::transformer::{cli_results, edited, expect_cli_error, load, recorded_run, state_dict, tmp, token_csv, write_experiment, Limited, IDEAL};
use super::twins::{replay_stages, weights};
use crate::common::*;
use aimc::engine::stages::{Stage, NLL_SLOT_WORDS};
use aimc::engine::Backend;
use aimc::tolerances::NEXT_TOKEN_NLL_ABS;
use aimc::workload::transformer::reference;
use std::path::PathBuf;

/// The tiny model of `transformer::state_dict` (d_model 8, 2 heads, vocabulary 10) as a language
/// model: its classifier replaced by `lm_head` [10, 8] with a bias (`head`), or by nothing (`tied`:
/// the head is the embedding table).
fn lm_state_dict(head: &str) -> Vec<u8> {
    edited(&state_dict(None, 7), |t| {
        t.retain(|k, _| !k.starts_with("classifier"));
        if head == "head" {
            let w: Vec<f32> = aimc::rng::uniform_signed(80, 91).into_iter().map(|v| v * 1.5).collect();
            t.insert("lm_head.weight".into(), (vec![10, 8], w));
            t.insert("lm_head.bias".into(), (vec![10], aimc::rng::uniform_signed(10, 92)));
        }
    })
}

/// 24 unlabelled rows of 20 tokens (ids 1..=9, a pattern the position shifts) of lengths 1 to
/// 20 (row 0 has one token and predicts nothing), padded with 0.
fn lm_csv() -> String {
    token_rows(20)
}

/// [`lm_csv`] with rows of `width` tokens, lengths 1 + 7r mod `width`.
fn token_rows(width: usize) -> String {
    (0..24usize)
        .map(|r| {
            let len = 1 + (r * 7) % width;
            let toks: Vec<String> = (0..width).map(|i| if i < len { (1 + (r + 2 * i + i * i / 3) % 9).to_string() } else { "0".into() }).collect();
            toks.join(",") + "\n"
        })
        .collect()
}

/// A next-token experiment on [`lm_state_dict`] in its own directory.
pub(crate) fn write_lm(name: &str, head: &str, settings: &str, extra: &str) -> PathBuf {
    let transformer = format!("task = \"next_token\"\ncausal = true\n{settings}");
    write_experiment(&tmp(&format!("lm-{name}")), &lm_state_dict(head), ("tokens.csv", &lm_csv()), &transformer, extra)
}

/// With an ideal device and perfect converters every sequence's summed next-token loss (the
/// `token_nll` slot of each trial) equals the f64 reference's within `NEXT_TOKEN_NLL_ABS` per
/// predicted token, for a separate and a tied head, post- and pre-LN, kernel attention, routed
/// experts and 80-token rows (two blocks of positions per sequence); the run's perplexity and
/// first-best hits follow.
#[test]
fn the_noiseless_language_model_equals_the_reference() {
    let cases = [
        ("post", "head", ""),
        ("long", "head", ""),
        ("tied", "tied", ""),
        ("prenorm", "head", "norm_first = true"),
        ("kernel", "tied", "attention = \"kernel\"\nfeatures = 16\nprojection = \"orf\""),
        ("moe", "head", "experts = 4\ntop_k = 2\ntiers = 2\ntier_noise_slope = 1.0"),
    ];
    for (name, head, settings) in cases {
        let path = write_lm(name, head, settings, IDEAL);
        if name == "long" {
            std::fs::write(path.parent().unwrap().join("tokens.csv"), token_rows(80)).unwrap();
        }
        let e = load(&path);
        let p = &e.points[0];
        let s = p.transformer.as_ref().unwrap();
        let data = e.data.as_ref().unwrap();
        let (tokens, lengths) = s.tokens(data);
        let (rec, pts) = recorded_run(&e);
        let slots = f32s(&rec.log.iter().rev().find(|d| d.stage == Stage::TokenNll).unwrap().after[3]);
        let (n, w) = (data.len(), data.n_features);
        let blocks = w.div_ceil(aimc::engine::stages::NLL_BLOCK as usize);
        let mut worst = 0f64;
        for r in 0..n {
            let want = reference::next_token_score(s.net(), s, &tokens[r * w..(r + 1) * w], lengths[r] as usize);
            assert_eq!(want.tokens, lengths[r].saturating_sub(1) as u64);
            for t in 0..2 {
                let words = NLL_SLOT_WORDS as usize;
                let got: f64 = slots[(t * n + r) * blocks * words..(t * n + r + 1) * blocks * words].iter().step_by(words).map(|&v| v as f64).sum();
                worst = worst.max((got - want.nll).abs() / want.tokens.max(1) as f64);
                assert!((got - want.nll).abs() <= NEXT_TOKEN_NLL_ABS * want.tokens as f64, "{name}: row {r} trial {t}: loss {got}, reference {}", want.nll);
            }
        }
        eprintln!("{name}: largest loss difference per token {worst:.2e}");
        let fp = s.fp_next.unwrap();
        assert_eq!(fp.tokens, lengths.iter().map(|&l| l.saturating_sub(1) as u64).sum::<u64>());
        assert_eq!(pts[0].n_samples as u64, fp.tokens);
        for (t, (&nll, &c)) in pts[0].nll.iter().zip(&pts[0].correct).enumerate() {
            assert!((nll - fp.nll).abs() <= NEXT_TOKEN_NLL_ABS * fp.tokens as f64, "{name}: trial {t}: total loss {nll}, reference {}", fp.nll);
            // A hit flips only on a near-tie of the two largest logits (f32 against f64).
            assert!((c as u64).abs_diff(fp.correct) <= 2, "{name}: trial {t}: {c} first-best hits, the reference {}", fp.correct);
        }
        let r = run_ok(&mut cpu(), &e);
        // The test-set variance of each trial's log perplexity, over the sequences: the reference's
        // per-sequence losses give it within their float differences.
        let rows: Vec<_> = (0..n).map(|r| reference::next_token_score(s.net(), s, &tokens[r * w..(r + 1) * w], lengths[r] as usize)).collect();
        let want_var =
            aimc::stats::ratio_variance(&rows.iter().map(|x| x.nll).collect::<Vec<_>>(), &rows.iter().map(|x| x.tokens).collect::<Vec<_>>()).unwrap();
        for &v in r.points[0].per_trial_test_var.as_ref().unwrap() {
            assert!((v / want_var - 1.0).abs() <= 1e-3, "{name}: test-set variance {v}, the reference's {want_var}");
        }
        let ci = r.points[0].test_set_ci.as_ref().unwrap();
        assert!(ci.lo < r.points[0].summary.mean && r.points[0].summary.mean < ci.hi && ci.method.contains("ratio estimator"), "{name}: {ci:?}");
        let want = (fp.nll / fp.tokens as f64).exp();
        assert_eq!(r.points[0].fp, Some(want));
        assert!(!r.higher_is_better);
        for &ppl in &r.points[0].per_trial {
            assert!((ppl / want - 1.0).abs() <= NEXT_TOKEN_NLL_ABS.exp_m1(), "{name}: perplexity {ppl}, the reference {want}");
        }
        assert!(want > 1.0 && want.is_finite(), "{name}: reference perplexity {want}");
    }
}

/// Sample batches and trial chunks reproduce the whole run's perplexities bit for bit (each
/// sequence's loss has its own slot; a trial's are added in sequence order), with PCM noise on.
#[test]
fn sample_batches_and_chunks_give_the_whole_run() {
    for (name, settings) in [("batch_softmax", ""), ("batch_kernel", "attention = \"kernel\"\nfeatures = 16\nprojection = \"orf\"")] {
        let e = load(&write_lm(name, "head", settings, "[device]\nmodel = \"pcm\""));
        let whole = run_ok(&mut cpu(), &e);
        // Sample batches; then a preferred size below one sequence's activations and one trial's
        // state (a CPU backend's), with room beneath the ceiling: one sequence and one trial at a time.
        for (limit, ceiling) in [(16 << 10, 16 << 10), (256, 1 << 30)] {
            let mut small = Limited(cpu(), limit, ceiling);
            let parts = run_ok(&mut small, &e);
            for (a, b) in whole.points.iter().zip(&parts.points) {
                assert_eq!(a.per_trial, b.per_trial, "{name} at {} within {limit} bytes", a.time_label);
                assert_eq!((&a.per_trial_test_var, &a.test_set_ci), (&b.per_trial_test_var, &b.test_set_ci), "{name} at {}", a.time_label);
            }
        }
        // Without that room the plan says what does not fit.
        let out = aimc::run::run(&e, &mut Limited(cpu(), 256, 256), &mut aimc::run::Quiet);
        assert!(out.error.as_ref().is_some_and(|m| m.to_string().contains("one sequence's activations")), "{:?}", out.error);
        // The noise moves the perplexity: trials differ from each other and from floating point.
        let p = &whole.points[1];
        assert!(p.per_trial.iter().all(|&v| v != p.fp.unwrap()) && p.per_trial[0] != p.per_trial[1], "{name}: {:?}", p.per_trial);
    }
}

/// Shards merge into the single run: the same perplexities, per-trial test-set variances,
/// test-set interval (the variances of every shard's trials, in trial order) and tail above a
/// perplexity.
#[test]
fn shards_merge_the_test_set_interval() {
    let p = write_lm("shards", "head", "", "[device]\nmodel = \"pcm\"");
    std::fs::write(&p, std::fs::read_to_string(&p).unwrap().replacen("trials = 3\n", "trials = 3\ntail_above = 5.0\n", 1)).unwrap();
    let parts = (0..3u32)
        .map(|k| {
            let mut e = load(&p);
            e.trials = 5;
            e.apply_shard(k, 3).unwrap();
            run_ok(&mut cpu(), &e)
        })
        .collect();
    let mut e = load(&p);
    e.trials = 5;
    let (single, merged) = (run_ok(&mut cpu(), &e).points, aimc::run::merge::merge(parts).unwrap().points);
    for (a, b) in single.iter().zip(&merged) {
        assert_eq!((&a.per_trial, &a.per_trial_test_var, &a.test_set_ci), (&b.per_trial, &b.per_trial_test_var, &b.test_set_ci), "at {}", a.time_label);
        assert!(a.tail.as_ref().is_some_and(|t| t.above) && a.tail == b.tail, "at {}: {:?} {:?}", a.time_label, a.tail, b.tail);
        assert_eq!(a.per_trial_test_var.as_ref().map(Vec::len), Some(5));
    }
    assert!(single[0].test_set_ci.is_some());
}

/// The GPU scores the language model as the CPU twins do: perplexities within
/// `NEXT_TOKEN_GPU_REL`, next-token hits within a few of the ~220 predicted tokens.
#[test]
fn the_gpu_scores_as_the_cpu_twin() {
    let Some(mut g) = gpu(256) else { return };
    for (name, settings, task) in
        [("gpu_softmax", "", "next_token"), ("gpu_kernel", "attention = \"kernel\"\nfeatures = 16\nprojection = \"orf\"", "next_token_accuracy")]
    {
        let p = write_lm(name, "head", settings, "[device]\nmodel = \"pcm\"");
        std::fs::write(&p, std::fs::read_to_string(&p).unwrap().replace("task = \"next_token\"", &format!("task = \"{task}\""))).unwrap();
        let e = load(&p);
        let (a, b) = (run_ok(&mut cpu(), &e), run_ok(&mut g, &e));
        for (x, y) in a.points.iter().zip(&b.points) {
            for (c, d) in x.per_trial.iter().zip(&y.per_trial) {
                assert!((c - d).abs() <= aimc::tolerances::NEXT_TOKEN_GPU_REL * c.abs(), "{name}: cpu {c} gpu {d}");
            }
        }
    }
}

/// `aimc run` writes the perplexity per trial (the column, lower is better) and a report that
/// reads it; `next_token_accuracy` writes exact hit counts over the predicted tokens.
#[test]
fn the_cli_writes_perplexity_and_next_token_accuracy() {
    for (task, column) in [("next_token", "perplexity"), ("next_token_accuracy", "next_token_accuracy")] {
        let p = write_lm(&format!("cli_{task}"), "tied", "", "[device]\nmodel = \"pcm\"");
        // The perplexity's tail risk is above a value, the accuracy's below one.
        let tail = if task == "next_token" { "tail_above = 5.0" } else { "tail_below = 0.3" };
        let text = std::fs::read_to_string(&p).unwrap().replace("task = \"next_token\"", &format!("task = \"{task}\"")).replacen(
            "trials = 3\n",
            &format!("trials = 3\n{tail}\n"),
            1,
        );
        std::fs::write(&p, text).unwrap();
        let results = cli_results(&p, column);
        assert_eq!(results.higher_is_better, task == "next_token_accuracy");
        let pt = &results.points[0];
        let t = pt.tail.as_ref().unwrap();
        let (threshold, above) = if task == "next_token" { (5.0, true) } else { (0.3, false) };
        let beyond = pt.per_trial.iter().filter(|&&v| if above { v > threshold } else { v < threshold }).count() as u64;
        assert_eq!((t.threshold, t.above, t.below, t.trials), (threshold, above, beyond, 3), "{task}: {t:?}");
        match task {
            "next_token" => assert!(pt.per_trial_correct.is_none() && pt.per_trial.iter().all(|&v| v > 1.0)),
            _ => {
                let tokens: u32 = lm_csv().lines().map(|l| l.split(',').filter(|t| *t != "0").count() as u32 - 1).sum();
                let hits = pt.per_trial_correct.as_ref().unwrap();
                assert!(hits.iter().zip(&pt.per_trial).all(|(&h, &a)| h <= tokens && a == h as f64 / tokens as f64));
            }
        }
        // Both metrics' test-set intervals take the sequences as the units, not the tokens.
        let ci = pt.test_set_ci.as_ref().unwrap();
        assert!(ci.method.contains("ratio estimator") && ci.lo < pt.summary.mean && pt.summary.mean < ci.hi, "{task}: {ci:?}");
        assert_eq!(pt.per_trial_test_var.as_ref().map(Vec::len), Some(pt.per_trial.len()));
    }
}

/// Bad input is named with its fix before any compute, and nothing is written.
#[test]
fn bad_language_model_input_is_named() {
    let edit = |p: &PathBuf, from: &str, to: &str| {
        let text = std::fs::read_to_string(p).unwrap();
        assert!(text.contains(from));
        std::fs::write(p, text.replacen(from, to, 1)).unwrap();
    };
    let p = write_lm("bad_causal", "head", "", "");
    edit(&p, "causal = true", "causal = false");
    expect_cli_error(&p, &["task = \"next_token\"", "causal = true"]);
    // Tails: a perplexity below 1, both tails, an accuracy's risk above a value.
    let p = write_lm("bad_tail", "head", "", "");
    edit(&p, "trials = 3\n", "trials = 3\ntail_above = 0.5\n");
    expect_cli_error(&p, &["tail_above = 0.5", "at least 1"]);
    edit(&p, "tail_above = 0.5\n", "tail_above = 8.0\ntail_below = 0.5\n");
    expect_cli_error(&p, &["tail_below = 0.5 and tail_above = 8", "give one tail"]);
    edit(&p, "tail_below = 0.5\n", "");
    edit(&p, "task = \"next_token\"", "task = \"next_token_accuracy\"");
    expect_cli_error(&p, &["tail_above = 8", "use tail_below"]);
    // The classifier head left in: 3 outputs for 10 tokens.
    let p = write_lm("bad_head", "head", "", "");
    std::fs::write(p.parent().unwrap().join("model.safetensors"), state_dict(None, 7)).unwrap();
    expect_cli_error(&p, &["3 outputs", "10 tokens", "lm_head.weight"]);
    let p = write_lm("bad_pooler", "head", "", "");
    let with_pooler = edited(&lm_state_dict("head"), |t| {
        t.insert("pooler.dense.weight".into(), (vec![8, 8], vec![0.1; 64]));
    });
    std::fs::write(p.parent().unwrap().join("model.safetensors"), with_pooler).unwrap();
    expect_cli_error(&p, &["pooler", "remove the pooler"]);
    let p = write_lm("bad_segments", "head", "segment_sep = 5", "");
    expect_cli_error(&p, &["segment_sep"]);
    let p = write_lm("bad_short", "head", "", "");
    std::fs::write(p.parent().unwrap().join("tokens.csv"), "1,0,0\n2,0,0\n").unwrap();
    expect_cli_error(&p, &["no row has two tokens"]);
    let p = write_lm("bad_labels", "head", "", "");
    edit(&p, "path = \"tokens.csv\"", "path = \"tokens.npy\"\nlabels = \"labels.npy\"");
    expect_cli_error(&p, &["data.labels", "token sequences only"]);
    let p = write_lm("bad_axis", "head", "", "");
    edit(&p, "[sweep]\n", "[sweep]\ntask = [\"next_token\", \"classify\"]\n");
    expect_cli_error(&p, &["sweep.task", "cannot be swept"]);
    let p = write_lm("bad_token", "head", "", "");
    std::fs::write(p.parent().unwrap().join("tokens.csv"), "1,2,10\n").unwrap();
    expect_cli_error(&p, &["row 1", "10", "vocabulary"]);
}

/// `token_nll` on logits of a 40-token vocabulary (under one workgroup's width: an invocation per
/// block) and a 600-token one (over two: a workgroup per block): 70-token sequences (two blocks of positions, the second partial), two sample
/// batches of two sequences (one shorter than the padded length, one of a single token that
/// predicts nothing), slots of two times, three trials. Every third row holds its largest logit
/// twice, at the next token and half the vocabulary on, so the first largest decides the hit.
#[test]
fn token_nll_matches_twin() {
    use aimc::engine::layout::{SeqParams, StageParams};
    let mut rec = Recorder::new();
    let (seq, samples, trials, total, blocks) = (70u32, 2u32, 3u32, 4u32, 2u32);
    for vocab in [40u32, 600] {
        let nll = rec.create("nll", (2 * trials * total * blocks * NLL_SLOT_WORDS) as usize);
        let correct = rec.create("correct", (2 * trials) as usize);
        for (s0, lens, ti) in [(0u32, [70u32, 5], 0u32), (2, [1, 67], 1)] {
            let mut p = StageParams::default();
            p.layer.trials = trials;
            p.layer.batch = total;
            p.layer.t_index = ti;
            p.seq = SeqParams { samples, seq, vocab, sample_offset: s0, ..SeqParams::default() };
            let n = (trials * samples * seq * vocab) as usize;
            let h = rec.create("logits", n);
            let tokens: Vec<u32> = (0..samples * seq).map(|i| (i * 7 + s0) % vocab).collect();
            // Logits of order 1–10, and a peaked row now and then so some predictions are right.
            let mut z: Vec<f32> = weights(n, 70 + s0 as u64).iter().enumerate().map(|(i, v)| 4.0 * v + if i % 7 == 0 { 8.0 } else { 0.0 }).collect();
            for r in (0..(trials * samples * seq) as usize).step_by(3) {
                let (sample, pos) = ((r / seq as usize) % samples as usize, r % seq as usize);
                let next = tokens[(sample * seq as usize + pos + 1).min((samples * seq) as usize - 1)] as usize;
                for o in [next, (next + vocab as usize / 2) % vocab as usize] {
                    z[r * vocab as usize + o] = 20.0;
                }
            }
            rec.upload(h, bytemuck::cast_slice(&z));
            let tok = rec.create("tokens", (samples * seq) as usize);
            rec.upload(tok, &tokens);
            let len = rec.create("lengths", samples as usize);
            rec.upload(len, &lens);
            let groups = aimc::engine::stages::token_nll_groups((trials * samples * blocks) as u64, vocab);
            rec.dispatch(Stage::TokenNll, &p, &[h, tok, len, nll, correct], aimc::engine::plan::grid(groups, 1));
        }
        let last = rec.log.last().unwrap();
        let slots = f32s(&last.after[3]);
        let (sums, block_hits): (Vec<f32>, Vec<f32>) = slots.chunks(NLL_SLOT_WORDS as usize).map(|s| (s[0], s[1])).unzip();
        // Per trial: 2 + 1 blocks with positions in the first batch, 0 + 2 in the second.
        assert_eq!(sums.iter().filter(|&&v| v > 0.0).count(), 15, "vocabulary {vocab}: every slot with a predicted token is written once: {sums:?}");
        let hits: u32 = last.after[4].iter().sum();
        // The slots' hits add up to the trials' counts.
        assert_eq!(block_hits.iter().sum::<f32>(), hits as f32, "vocabulary {vocab}");
        // 3 · (70 + 5 + 67 − 3) predicted positions, a third of them tied.
        assert!(hits > 0 && hits < 3 * 139 / 2, "vocabulary {vocab}: {hits} first-best hits");
    }
    let Some(mut g) = gpu(64) else { return };
    assert_eq!(replay_stages(&rec, &mut g, &[Stage::TokenNll]), 4);
}

/// A GPT-2 state dict as `save_pretrained` writes it (Conv1D weights [in, out], `transformer.`
/// prefix, the mask buffers, the tied head left out) runs through the CLI exactly as the same
/// weights under PyTorch's names: the same perplexity per trial, bit for bit. Refused: a GPT-2
/// file without `norm_first`, a tensor GPT-2's forward does not read, a NaN.
#[test]
fn a_gpt2_state_dict_runs_as_its_torch_names() {
    // The torch-named model, made GPT-2-shaped: no embedding norm, pre-LN, a final norm, the tied head.
    let torch = edited(&lm_state_dict("tied"), |t| {
        t.retain(|k, _| !k.starts_with("embed_norm"));
        t.insert("encoder.norm.weight".into(), (vec![8], aimc::rng::uniform_signed(8, 93).iter().map(|v| 1.0 + 0.2 * v).collect()));
        t.insert("encoder.norm.bias".into(), (vec![8], aimc::rng::uniform_signed(8, 94)));
    });
    let transpose = |(shape, v): &(Vec<usize>, Vec<f32>)| -> (Vec<usize>, Vec<f32>) {
        let (r, c) = (shape[0], shape[1]);
        (vec![c, r], (0..r * c).map(|k| v[(k % r) * c + k / r]).collect())
    };
    let gpt2 = edited(&torch, |t| {
        let old = std::mem::take(t);
        for (k, v) in &old {
            let p = "encoder.layers.0.";
            let (name, value) = match k.as_str() {
                "embedding.weight" => ("transformer.wte.weight".to_string(), v.clone()),
                "encoder.norm.weight" => ("transformer.ln_f.weight".into(), v.clone()),
                "encoder.norm.bias" => ("transformer.ln_f.bias".into(), v.clone()),
                _ => {
                    let rest = k.strip_prefix(p).unwrap();
                    let (module, conv) = match rest.rsplit_once('.').unwrap() {
                        ("norm1", w) => (format!("ln_1.{w}"), false),
                        ("norm2", w) => (format!("ln_2.{w}"), false),
                        ("self_attn", "in_proj_weight") => ("attn.c_attn.weight".into(), true),
                        ("self_attn", "in_proj_bias") => ("attn.c_attn.bias".into(), false),
                        ("self_attn.out_proj", w) => (format!("attn.c_proj.{w}"), w == "weight"),
                        ("linear1", w) => (format!("mlp.c_fc.{w}"), w == "weight"),
                        ("linear2", w) => (format!("mlp.c_proj.{w}"), w == "weight"),
                        other => panic!("unexpected {other:?}"),
                    };
                    (format!("transformer.h.0.{module}"), if conv { transpose(v) } else { v.clone() })
                }
            };
            t.insert(name, value);
        }
        t.insert("transformer.h.0.attn.bias".into(), (vec![1, 1, 20, 20], vec![1.0; 400]));
    });
    let run = |name: &str, bytes: &[u8]| {
        let p = write_lm(name, "head", "norm_first = true", "[device]\nmodel = \"pcm\"");
        std::fs::write(p.parent().unwrap().join("model.safetensors"), bytes).unwrap();
        run_ok(&mut cpu(), &load(&p))
    };
    let (a, b) = (run("gpt2_torch_names", &torch), run("gpt2_names", &gpt2));
    for (x, y) in a.points.iter().zip(&b.points) {
        assert_eq!((x.fp, &x.per_trial), (y.fp, &y.per_trial), "at {}", x.time_label);
    }
    // Learned input ranges (aimc.torch's): of the stacked Q/K/V, the MLP's output layer and the
    // tied head, under either naming; they change the network.
    let ranged_torch = edited(&torch, |t| {
        t.insert("encoder.layers.0.self_attn.in_proj.input_range".into(), (vec![1], vec![0.5]));
        t.insert("encoder.layers.0.linear2.input_range".into(), (vec![1], vec![0.3]));
        t.insert("lm_head.input_range".into(), (vec![1], vec![0.4]));
    });
    let ranged_gpt2 = edited(&gpt2, |t| {
        t.insert("transformer.h.0.attn.c_attn.input_range".into(), (vec![1], vec![0.5]));
        t.insert("transformer.h.0.mlp.c_proj.input_range".into(), (vec![1], vec![0.3]));
        t.insert("lm_head.input_range".into(), (vec![1], vec![0.4]));
    });
    let (ra, rb) = (run("gpt2_torch_ranges", &ranged_torch), run("gpt2_ranges", &ranged_gpt2));
    for (x, y) in ra.points.iter().zip(&rb.points) {
        assert_eq!((x.fp, &x.per_trial), (y.fp, &y.per_trial), "ranged, at {}", x.time_label);
    }
    assert_ne!(ra.points[0].fp, a.points[0].fp, "the ranges clip");
    let p = write_lm("gpt2_post_ln", "head", "", "");
    std::fs::write(p.parent().unwrap().join("model.safetensors"), &gpt2).unwrap();
    expect_cli_error(&p, &["GPT-2", "norm_first = true"]);
    let extra = edited(&gpt2, |t| {
        t.insert("transformer.h.0.attn.rotary.weight".into(), (vec![2], vec![0.0; 2]));
    });
    let p = write_lm("gpt2_extra", "head", "norm_first = true", "");
    std::fs::write(p.parent().unwrap().join("model.safetensors"), extra).unwrap();
    expect_cli_error(&p, &["transformer.h.0.attn.rotary.weight", "GPT-2"]);
    // A NaN is named by GPT-2's own tensor name, not the name it is read as.
    let nan = edited(&gpt2, |t| t.get_mut("transformer.h.0.mlp.c_fc.weight").unwrap().1[3] = f32::NAN);
    std::fs::write(p.parent().unwrap().join("model.safetensors"), nan).unwrap();
    expect_cli_error(&p, &["transformer.h.0.mlp.c_fc.weight", "NaN"]);

    // GPT2ForSequenceClassification: `score` [3, d_model] without bias on the last non-padding
    // token, against the torch names' `head` with the same pooling; refused without it.
    let score = (vec![3, 8], aimc::rng::uniform_signed(24, 95).into_iter().map(|v| 2.0 * v).collect::<Vec<f32>>());
    let classify = |name: &str, bytes: &[u8], pooling: &str| {
        let dir = tmp(&format!("gpt2-{name}"));
        std::fs::write(dir.join("model.safetensors"), bytes).unwrap();
        std::fs::write(dir.join("tokens.csv"), token_csv()).unwrap();
        let text = format!(
            "name = \"c\"\nworkload = \"transformer\"\nseed = 5\ntrials = 3\n[model]\npath = \"model.safetensors\"\n[data]\npath = \"tokens.csv\"\n[transformer]\nheads = 2\npad_id = 0\ncausal = true\nnorm_first = true\npooling = \"{pooling}\"\n[device]\nmodel = \"pcm\"\n[sweep]\nt = [\"1h\", \"1y\"]\n"
        );
        let p = dir.join("exp.toml");
        std::fs::write(&p, text).unwrap();
        p
    };
    let torch_cls = edited(&torch, |t| {
        t.insert("classifier.weight".into(), score.clone());
    });
    let gpt2_cls = edited(&gpt2, |t| {
        t.insert("score.weight".into(), score.clone());
    });
    let (a, b) = (run_ok(&mut cpu(), &load(&classify("torch", &torch_cls, "last"))), run_ok(&mut cpu(), &load(&classify("score", &gpt2_cls, "last"))));
    for (x, y) in a.points.iter().zip(&b.points) {
        assert_eq!((x.fp, &x.per_trial_correct), (y.fp, &y.per_trial_correct), "at {}", x.time_label);
    }
    assert!(a.points[0].fp.is_some_and(|f| f > 0.0 && f < 1.0));
    expect_cli_error(&classify("score_mean", &gpt2_cls, "mean"), &["score.weight", "pooling = \"last\""]);
}
