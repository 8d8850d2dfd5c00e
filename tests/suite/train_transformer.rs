//! The transformer trainer (`src/train/transformer/`) and its data (`src/train/listops.rs`):
//! back-propagation against finite differences for both attentions, byte-identical rebuilds, the
//! shipped ListOps test split, and the shipped models against their trainer.

use aimc::train::hwa::TrainingConfig;
use aimc::train::listops::{self, SeqData};
use aimc::train::transformer::{self as tf, Attention, Dims, Net, Task, TransformerTrainConfig};
use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A small network of every part: 2 heads, the layer applied twice, 6 random features.
fn tiny_dims() -> Dims {
    Dims { vocab: listops::LISTOPS_VOCAB, max_len: 12, d_model: 8, heads: 2, d_ff: 6, hidden: 5, classes: 10, features: 6, repeat: 2, lm: false, span: false }
}

/// Every parameter's back-propagated gradient (in f64) against the central difference of the
/// loss, for softmax and for kernel attention.
#[test]
fn backprop_matches_finite_differences() {
    // The causal language model: the causal mask (kernel attention: prefix sums), the head on
    // every token and the mean next-token loss.
    let lm = Dims { classes: listops::LISTOPS_VOCAB, lm: true, ..tiny_dims() };
    // The span head: two outputs per token, the start and end cross-entropies over the positions.
    let span = Dims { classes: 2, span: true, ..tiny_dims() };
    let cases =
        [(Attention::Softmax, tiny_dims()), (Attention::Kernel, tiny_dims()), (Attention::Softmax, lm), (Attention::Kernel, lm), (Attention::Softmax, span)];
    for (attention, dims) in cases {
        let mut rng = Pcg64Mcg::seed_from_u64(11);
        let mut net: Net<f64> = Net::init(dims, attention, &mut rng);
        // Non-trivial LayerNorm gains and biases, so their gradients are exercised off (1, 0).
        for k in [tf::EMBED_NORM_W, tf::EMBED_NORM_B, tf::NORM1_W, tf::NORM1_B, tf::NORM2_W, tf::NORM2_B, tf::OUT_PROJ_B] {
            for (i, v) in net.params[k].iter_mut().enumerate() {
                *v += 0.1 * ((i * 7 + k) % 5) as f64 - 0.2;
            }
        }
        let tokens = [listops::MAX, 3, listops::SM, 5, 8, 10, listops::END, 1, listops::END];
        // A span head's label packs the answer [3, 5] as start · max_len + end.
        let label = if dims.span { 3 * dims.max_len + 5 } else { 4 };
        let (loss, g) = net.loss_and_gradient(&tokens, label);
        if dims.span {
            let z = net.logits(&tokens);
            let ce = |col: usize, target: usize| (0..tokens.len()).map(|r| z[2 * r + col].exp()).sum::<f64>().ln() - z[2 * target + col];
            let want = 0.5 * (ce(0, 3) + ce(1, 5));
            assert!((loss - want).abs() < 1e-12, "span loss {loss}, recomputed {want}");
        }
        if dims.lm {
            // The loss is the mean cross-entropy of positions 0..8 against the next tokens.
            let z = net.logits(&tokens);
            let c = dims.classes;
            let want: f64 = (0..tokens.len() - 1)
                .map(|i| {
                    let row = &z[i * c..(i + 1) * c];
                    row.iter().map(|v| v.exp()).sum::<f64>().ln() - row[tokens[i + 1] as usize]
                })
                .sum::<f64>()
                / (tokens.len() - 1) as f64;
            assert!((loss - want).abs() < 1e-12, "language-model loss {loss}, recomputed {want}");
            // Causal: the logits of position 3 do not depend on the tokens after it.
            let mut later = tokens;
            later[6] = 2;
            assert_eq!(net.logits(&later)[..4 * c], z[..4 * c]);
        }
        let h = 1e-6;
        let mut checked = 0;
        for (k, gk) in g.iter().enumerate().take(tf::N_PARAMS) {
            for (i, &an) in gk.iter().enumerate().take(net.params[k].len()) {
                let mut plus = net.clone();
                plus.params[k][i] += h;
                let mut minus = net.clone();
                minus.params[k][i] -= h;
                let fd = (plus.loss_and_gradient(&tokens, label).0 - minus.loss_and_gradient(&tokens, label).0) / (2.0 * h);
                // Central differences in f64: truncation ~h² and rounding ~1e-16/h.
                assert!((an - fd).abs() < 1e-7 + 1e-5 * fd.abs(), "{attention:?} tensor {k} [{i}]: backprop {an}, finite difference {fd}");
                checked += 1;
            }
        }
        assert_eq!(checked, net.params.iter().map(Vec::len).sum::<usize>());
        // The projection is fixed: it is not a parameter, and kernel attention has one.
        assert_eq!(net.projection.len(), if attention == Attention::Kernel { 3 * 4 } else { 0 });
    }
}

/// The fixed feature projection: blocks of orthogonal rows, each of norm √d_h.
#[test]
fn orthogonal_projection_has_orthogonal_blocks_of_norm_sqrt_dh() {
    let mut rng = Pcg64Mcg::seed_from_u64(5);
    let w = tf::orthogonal_projection(128, 32, &mut rng);
    assert_eq!(w.len(), 128 * 32);
    for b in 0..4 {
        for r in 0..32 {
            for s in 0..32 {
                let dot: f64 = (0..32).map(|c| w[(b * 32 + r) * 32 + c] * w[(b * 32 + s) * 32 + c]).sum();
                let want = if r == s { 32.0 } else { 0.0 };
                assert!((dot - want).abs() < 1e-9, "block {b} rows {r}, {s}: {dot}");
            }
        }
    }
}

fn tiny_config(attention: Attention) -> TransformerTrainConfig {
    let mut cfg = TransformerTrainConfig::shipped(Task::ListOps, attention);
    cfg.dims = Dims { d_model: 16, d_ff: 16, hidden: 16, features: 16, ..cfg.dims };
    cfg.epochs = 2;
    cfg.warmup = 4;
    cfg.listops.train_rows = 64;
    cfg
}

/// The same configuration trained twice gives the same bytes; another seed gives others.
#[test]
fn training_twice_gives_the_same_bytes() {
    for attention in [Attention::Softmax, Attention::Kernel] {
        let cfg = tiny_config(attention);
        let (train, _) = tf::task_data(&cfg, None, None).unwrap();
        let bytes =
            |cfg: &TransformerTrainConfig| tf::safetensors_bytes(&tf::train_transformer(&train, cfg), Task::ListOps, &tf::training_command(cfg)).unwrap();
        let a = bytes(&cfg);
        assert_eq!(a, bytes(&cfg), "{attention:?}");
        assert_ne!(a, bytes(&TransformerTrainConfig { seed: 1, ..cfg.clone() }), "the seed must matter");
        let st = safetensors::SafeTensors::deserialize(&a).unwrap();
        let mut names = st.names();
        names.sort();
        let mut want: Vec<&str> = tf::param_names(&cfg.dims).into_iter().map(|(n, _)| n).collect();
        if attention == Attention::Kernel {
            want.push(tf::FEATURE_PROJECTION);
            assert_eq!(st.tensor(tf::FEATURE_PROJECTION).unwrap().shape(), [8, 8]);
        }
        want.sort();
        assert_eq!(names, want);
        assert_eq!(st.tensor("encoder.layers.0.self_attn.in_proj_weight").unwrap().shape(), [48, 16]);
        let (_, meta) = safetensors::SafeTensors::read_metadata(&a).unwrap();
        let meta = meta.metadata().clone().unwrap();
        assert_eq!(meta["format"], "pt");
        assert!(meta["model"].contains("2 post-LN layers sharing weights"), "{}", meta["model"]);
        assert!(meta["training"].contains("epochs: 2"), "{}", meta["training"]);
    }
}

/// The transformer trainer does not model the DAC: a `[training]` section with `dac_bits` is
/// refused before any step, naming the field, rather than trained without it.
#[test]
fn the_transformer_trainer_refuses_a_dac() {
    let cfg = tiny_config(Attention::Kernel);
    let (train, _) = tf::task_data(&cfg, None, None).unwrap();
    let hwa = TrainingConfig::parse("[training]\nweight_noise = \"pcm\"\ndac_bits = 7\n").unwrap();
    let mut epochs = 0;
    let e = tf::train_transformer_hwa(&train, &cfg, &hwa, |_, _| epochs += 1).unwrap_err().to_string();
    assert!(e.contains("training.dac_bits = 7") && e.contains("does not model the DAC") && e.contains("weight noise"), "{e}");
    assert_eq!(epochs, 0, "refused before training");
    let no_dac = TrainingConfig { dac_bits: 0, epochs: Some(1), ..hwa };
    tf::train_transformer_hwa(&train, &cfg, &no_dac, |_, _| {}).unwrap();
}

/// A training that diverges (here a learning rate of 1e30) is an error naming the loss and the
/// learning rate, not a model of NaN.
#[test]
fn a_diverged_transformer_training_is_an_error() {
    let cfg = tiny_config(Attention::Softmax);
    let (train, _) = tf::task_data(&cfg, None, None).unwrap();
    let hwa = TrainingConfig { lr: Some(1e30), epochs: Some(1), ..TrainingConfig::default() };
    let e = tf::train_transformer_hwa(&train, &cfg, &hwa, |_, _| {}).unwrap_err().to_string();
    assert!(e.contains("training diverged") && e.contains("epoch 1") && e.contains("smaller learning rate"), "{e}");
}

/// Every row of the shipped test split is a well-formed expression labelled with its value,
/// with tokens in 0..16, padded at the end, and the file is the generator's output.
#[test]
fn the_shipped_listops_test_split_is_labelled_with_its_values() {
    let path = root().join("experiments/data/listops_test.csv");
    let data: SeqData = listops::read_token_csv(&path, listops::LISTOPS_VOCAB).unwrap();
    let cfg = listops::ListOpsConfig::default();
    assert_eq!((data.len(), data.width), (cfg.test_rows, cfg.max_len));
    for i in 0..data.len() {
        let row = &data.tokens[i * data.width..(i + 1) * data.width];
        assert!(row.iter().all(|&t| (t as usize) < listops::LISTOPS_VOCAB));
        assert_eq!(listops::evaluate(row), Ok(data.labels[i]), "row {}", i + 1);
        assert!(data.lens[i] >= cfg.min_len);
    }
    let (_, _, test) = listops::splits(&listops::ListOpsConfig { train_rows: 0, validation_rows: 0, ..cfg });
    assert_eq!(test, data, "the file is the generator's test split");
    // Every class occurs.
    for c in 0..10 {
        assert!(data.labels.contains(&c), "class {c}");
    }
}

/// The shipped models: the names, shapes and metadata the trainer writes, the command that
/// rebuilds them, and the floating-point test accuracy the README reports, computed here by the
/// trainer's own forward pass on the shipped weights. (Retraining them takes minutes even in a
/// release build, too long for `cargo test`; the byte-for-byte rebuild is checked by running the
/// recorded command and comparing the SHA-256 in experiments/models/README.md.)
#[test]
fn the_shipped_transformers_are_the_trainers_and_score_as_documented() {
    let listops_test = listops::read_token_csv(&root().join("experiments/data/listops_test.csv"), listops::LISTOPS_VOCAB).unwrap();
    let digits = aimc::train::read_digits_csv(&root().join("experiments/data/digits.csv")).unwrap();
    let cicero = std::fs::read_to_string(root().join("experiments/data/cicero_de_finibus_1.txt")).unwrap();
    // (task, attention, file, correct test rows)
    let shipped = [
        (Task::ListOps, Attention::Softmax, "listops_transformer_softmax.safetensors", 380),
        (Task::ListOps, Attention::Kernel, "listops_transformer_kernel.safetensors", 380),
        (Task::Digits, Attention::Softmax, "digits_seq_transformer.safetensors", 350),
        // The language models: first-best next characters of the 76 × 63 predicted.
        (Task::Cicero, Attention::Softmax, "cicero_lm_softmax.safetensors", 2076),
        (Task::Cicero, Attention::Kernel, "cicero_lm_kernel.safetensors", 1984),
        // The question-answering readers: exact answers of the 500 test rows.
        (Task::Kvqa, Attention::Softmax, "kvqa_softmax.safetensors", 500),
        (Task::Kvqa, Attention::Kernel, "kvqa_kernel.safetensors", 500),
    ];
    for (task, attention, file, correct) in shipped {
        let cfg = TransformerTrainConfig::shipped(task, attention);
        assert_eq!(tf::default_out(task, attention), format!("experiments/models/{file}"));
        let bytes = std::fs::read(root().join("experiments/models").join(file)).unwrap();
        let net = tf::from_safetensors(&bytes, cfg.dims).unwrap();
        assert_eq!(net.attention, attention, "{file}");
        // The file is exactly what the writer makes of these weights and the recorded command.
        assert!(tf::safetensors_bytes(&net, task, &tf::training_command(&cfg)).unwrap() == bytes, "{file}: not the writer's bytes");
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let training = &meta.metadata().as_ref().unwrap()["training"];
        assert_eq!(
            *training,
            format!("cargo run --release -- train-transformer --task {} --attention {} --out experiments/models/{file}", task.name(), attention.name())
        );
        let test = match task {
            Task::ListOps => listops_test.clone(),
            Task::Digits => tf::task_data(&cfg, Some(&digits), None).unwrap().1,
            Task::Cicero => tf::task_data(&cfg, None, Some(&cicero)).unwrap().1,
            Task::Kvqa => {
                // The shipped test rows are this split, with the answers' two columns.
                let test = tf::task_data(&cfg, None, None).unwrap().1;
                let rows = std::fs::read_to_string(root().join("experiments/data/kvqa_test.csv")).unwrap();
                assert_eq!(rows, aimc::train::kvqa::span_csv(&test));
                test
            }
        };
        let acc = net.accuracy(&test);
        let scored = if cfg.dims.lm { test.len() * (test.width - 1) } else { test.len() };
        assert_eq!((acc * scored as f64).round() as usize, correct, "{file}: test accuracy {acc}");
        if cfg.dims.lm {
            // The shipped test rows are these windows, and the perplexity is the README's.
            let rows = std::fs::read_to_string(root().join("experiments/data/cicero_test.csv")).unwrap();
            assert_eq!(rows, aimc::train::text::rows_csv(&test));
            let (nll, _, n) = net.next_token(&test);
            let want = if attention == Attention::Kernel { "6.186" } else { "6.059" };
            assert_eq!(format!("{:.3}", (nll / n as f64).exp()), want, "{file}");
        }
        if attention == Attention::Kernel {
            // The projection is the one drawn from the seed after the other weights.
            let mut rng = Pcg64Mcg::seed_from_u64(cfg.seed);
            let fresh: Net<f32> = Net::init(cfg.dims, attention, &mut rng);
            assert_eq!(fresh.projection, net.projection, "the feature projection is not trained");
        }
    }
}
