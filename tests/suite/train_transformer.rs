//! The transformer trainer (`src/train/transformer/`) and its data (`src/train/listops.rs`):
//! back-propagation against finite differences for both attentions, the DAC of hardware-aware
//! training, byte-identical rebuilds, the
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

/// Hardware-aware training's DAC: every crossbar input quantised over its own max|x|, the
/// weight gradient taken at the quantised input, the input gradient passed straight through.
/// - At 2 bits every quantised input holds only −max|x|, 0 and max|x|, so with one token and the
///   layer applied once each row of every crossbar matrix's gradient (dy_o · q(x)) holds one
///   magnitude besides zeros, both back-propagated (the backward pass) and as a central
///   difference (the forward pass); without the DAC it holds many.
/// - The last layer's input does not depend on its weights, so its gradient at 3 bits equals the
///   central difference of the quantised loss.
/// - At 24 bits the straight-through gradients equal the unquantised ones to the quantiser's
///   resolution.
#[test]
fn the_transformer_dac_quantises_every_crossbar_input_with_a_straight_through_gradient() {
    use aimc::train::injector::Injector;
    let dac = |bits: u32| Injector::new(&TrainingConfig { dac_bits: bits, ..TrainingConfig::default() }, 0);
    let once = Dims { repeat: 1, ..tiny_dims() };
    let mut rng = Pcg64Mcg::seed_from_u64(3);
    let net: Net<f64> = Net::init(once, Attention::Softmax, &mut rng);
    let matrices = [tf::IN_PROJ, tf::OUT_PROJ_W, tf::LINEAR1_W, tf::LINEAR2_W, tf::CLS0_W, tf::CLS2_W];
    let cols = |k: usize| {
        if k == tf::LINEAR2_W {
            once.d_ff
        } else if k == tf::CLS2_W {
            once.hidden
        } else {
            once.d_model
        }
    };
    // Distinct nonzero magnitudes per row, the largest count over the rows.
    let magnitudes = |g: &[f64], c: usize, rel: f64| {
        g.chunks(c)
            .map(|row| {
                let top = row.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                let mut m: Vec<f64> = row.iter().map(|v| v.abs()).filter(|&v| v > rel * top).collect();
                m.sort_by(f64::total_cmp);
                m.dedup_by(|a, b| (*a - *b).abs() <= rel * b.abs());
                m.len()
            })
            .max()
            .unwrap_or(0)
    };
    let one = [listops::MAX];
    let (_, g2) = net.loss_and_gradient_with(&one, 4, &mut dac(2));
    let (_, g0) = net.loss_and_gradient(&one, 4);
    let h = 1e-6;
    for k in matrices {
        assert_eq!(magnitudes(&g2[k], cols(k), 1e-12), 1, "tensor {k}: the 2-bit gradient rows are not dy_o · q(x)");
        assert!(magnitudes(&g0[k], cols(k), 1e-12) > 2, "tensor {k}: the unquantised gradient is not a check");
        // The forward pass: the loss's own derivative in the layer's weights (within the
        // quantiser's step, so downstream DACs as they act) is dy'_o · q(x) as well.
        let fd: Vec<f64> = (0..net.params[k].len())
            .map(|i| {
                let mut plus = net.clone();
                plus.params[k][i] += h;
                let mut minus = net.clone();
                minus.params[k][i] -= h;
                (plus.loss_and_gradient_with(&one, 4, &mut dac(2)).0 - minus.loss_and_gradient_with(&one, 4, &mut dac(2)).0) / (2.0 * h)
            })
            .collect();
        assert_eq!(magnitudes(&fd, cols(k), 1e-5), 1, "tensor {k}: the 2-bit forward does not multiply q(x)");
    }
    let tokens = [listops::MAX, 3, listops::SM, 5, 8, 10, listops::END, 1, listops::END];
    let (_, g3) = net.loss_and_gradient_with(&tokens, 4, &mut dac(3));
    let (_, gf) = net.loss_and_gradient(&tokens, 4);
    for k in [tf::CLS2_W, tf::CLS2_B] {
        let mut apart = 0.0f64;
        for i in 0..net.params[k].len() {
            let mut plus = net.clone();
            plus.params[k][i] += h;
            let mut minus = net.clone();
            minus.params[k][i] -= h;
            let fd = (plus.loss_and_gradient_with(&tokens, 4, &mut dac(3)).0 - minus.loss_and_gradient_with(&tokens, 4, &mut dac(3)).0) / (2.0 * h);
            assert!((g3[k][i] - fd).abs() < 1e-7 + 1e-5 * fd.abs(), "tensor {k} [{i}]: backprop {}, finite difference {fd}", g3[k][i]);
            apart = apart.max((g3[k][i] - gf[k][i]).abs());
        }
        assert!(apart > 1e-3, "tensor {k}: the 3-bit gradient equals the unquantised one ({apart})");
    }
    let (_, g24) = net.loss_and_gradient_with(&tokens, 4, &mut dac(24));
    for (k, (a, b)) in g24.iter().zip(&gf).enumerate() {
        for (i, (&a, &b)) in a.iter().zip(b).enumerate() {
            assert!((a - b).abs() < 1e-6 + 1e-4 * b.abs(), "tensor {k} [{i}]: 24-bit {a}, unquantised {b}");
        }
    }
}

/// A `[training]` section with `dac_bits` trains the transformer (kernel attention: its feature
/// projection's inputs are quantised too) reproducibly, to other weights than without the DAC.
#[test]
fn the_transformer_trains_with_a_dac() {
    let cfg = tiny_config(Attention::Kernel);
    let (train, _) = tf::task_data(&cfg, None, None).unwrap();
    let hwa = TrainingConfig::parse("[training]\nweight_noise = \"pcm\"\ndac_bits = 4\nepochs = 1\n").unwrap();
    let bits = |n: &Net<f32>| n.params.iter().flatten().map(|v| v.to_bits()).collect::<Vec<u32>>();
    let a = tf::train_transformer_hwa(&train, &cfg, &hwa, |_, loss| assert!(loss.is_finite())).unwrap();
    let b = tf::train_transformer_hwa(&train, &cfg, &hwa, |_, _| {}).unwrap();
    let no_dac = tf::train_transformer_hwa(&train, &cfg, &TrainingConfig { dac_bits: 0, ..hwa }, |_, _| {}).unwrap();
    assert_eq!(bits(&a), bits(&b), "the same section gives the same bytes");
    assert_ne!(bits(&a), bits(&no_dac), "the DAC changes the training");
}

/// The ADC and tiles of a `[training]` section reach the transformer: reproducible, other
/// weights than without them; kernel attention refuses tiles shorter than a head, whose slice its
/// feature projection reads as one tile.
#[test]
fn the_transformer_trains_with_an_adc_and_tiles() {
    let cfg = tiny_config(Attention::Kernel);
    let (train, _) = tf::task_data(&cfg, None, None).unwrap();
    let hwa = TrainingConfig::parse("[training]\nweight_noise = \"pcm\"\ndac_bits = 6\nadc_bits = 6\nout_bound = 3.0\nepochs = 1\n").unwrap();
    let hwa = TrainingConfig { max_in: cfg.dims.d_head(), ..hwa };
    let bits = |n: &Net<f32>| n.params.iter().flatten().map(|v| v.to_bits()).collect::<Vec<u32>>();
    let a = tf::train_transformer_hwa(&train, &cfg, &hwa, |_, loss| assert!(loss.is_finite())).unwrap();
    assert_eq!(bits(&a), bits(&tf::train_transformer_hwa(&train, &cfg, &hwa, |_, _| {}).unwrap()));
    let plain = TrainingConfig { adc_bits: 0, out_bound: 0.0, max_in: 512, ..hwa.clone() };
    assert_ne!(bits(&a), bits(&tf::train_transformer_hwa(&train, &cfg, &plain, |_, _| {}).unwrap()), "the ADC and tiles change the training");
    let scaled = TrainingConfig { weight_scaling_omega: 1.0, weight_scaling_columnwise: true, ..hwa.clone() };
    assert_ne!(bits(&a), bits(&tf::train_transformer_hwa(&train, &cfg, &scaled, |_, _| {}).unwrap()), "weight scaling moves the ADC's unit");
    let short = TrainingConfig { max_in: cfg.dims.d_head() - 1, ..hwa };
    let e = tf::train_transformer_hwa(&train, &cfg, &short, |_, _| {}).unwrap_err().to_string();
    assert!(e.contains("training.max_in") && e.contains(&format!("max_in >= {}", cfg.dims.d_head())), "{e}");
}

/// With an ADC range so narrow that every crossbar output clips, the transformer's crossbar
/// matrices take no gradient (the clamp's derivative is zero) and its digital parameters
/// (biases, LayerNorms, the embedding) still do.
#[test]
fn a_clipped_transformer_output_teaches_only_the_digital_parameters() {
    let cfg = tiny_config(Attention::Kernel);
    let (train, _) = tf::task_data(&cfg, None, None).unwrap();
    let clip_all = |lr: f32| TrainingConfig { out_bound: 1e-6, lr: Some(lr), epochs: Some(1), ..TrainingConfig::default() };
    let [a, b] = [1e-3, 2e-3].map(|lr| {
        let mut net = tf::train_transformer_hwa(&train, &cfg, &clip_all(lr), |_, _| {}).unwrap();
        let (mut m, mut r) = (Vec::new(), Vec::new());
        for p in net.params_mut() {
            let into = if p.matrix.is_some() { &mut m } else { &mut r };
            into.extend(p.data.iter().map(|v| v.to_bits()));
        }
        (m, r)
    });
    assert_eq!(a.0, b.0, "the crossbar matrices take no gradient");
    assert_ne!(a.1, b.1, "the digital parameters do");
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
