//! Hardware-aware training (`src/train/hwa.rs` and the trainers' `[training]` section) and the
//! comparison it feeds: the default section leaves every trainer's weights untouched bit for bit,
//! a hardware-aware run is reproducible byte for byte, fine-tuning errors name the tensor,
//! clipping leaves the transformer's fixed feature projection as drawn or loaded, the shipped
//! hardware-aware models are what their training files make (by their recorded command and
//! floating-point accuracy), and the `model_path` sweep axis with its "Loss from floating point"
//! report section.

use crate::common;

use aimc::train::hwa::TrainingConfig;
use aimc::train::{cnn, mlp, moe, Dataset};
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn digits() -> (Dataset, Dataset) {
    aimc::train::split_digits(&aimc::train::read_digits_csv(&root().join("experiments/data/digits.csv")).unwrap())
}

fn bits(m: &mlp::Mlp) -> Vec<u32> {
    m.layers.iter().flat_map(|l| l.w.iter().chain(&l.b)).map(|v| v.to_bits()).collect()
}

fn tiny() -> mlp::TrainConfig {
    mlp::TrainConfig { hidden: vec![16], epochs: 2, batch_size: 32, ..mlp::TrainConfig::default() }
}

fn pcm_section() -> TrainingConfig {
    TrainingConfig::parse(
        "[training]\nweight_noise = \"pcm\"\nweight_noise_time = \"10y\"\nweight_noise_scale = 3.0\noutput_noise = 0.12\ndac_bits = 7\nclip_sigma = 2.5\n",
    )
    .unwrap()
}

/// The default `[training]` section is the floating-point trainer: same weights bit for bit.
#[test]
fn the_default_section_changes_nothing() {
    let (train, _) = digits();
    let train = train.rows(0, 200);
    let cfg = tiny();
    assert_eq!(bits(&mlp::train_mlp(&train, &cfg)), bits(&mlp::train_mlp_with(&train, &cfg, &TrainingConfig::default()).unwrap()));
    let c = cnn::CnnTrainConfig { epochs: 1, ..cnn::CnnTrainConfig::default() };
    assert_eq!(cnn::train_cnn(&train, &c), cnn::train_cnn_with(&train, &c, &TrainingConfig::default()).unwrap());
    let m = moe::MoeTrainConfig { epochs: 1, ..moe::MoeTrainConfig::default() };
    assert_eq!(moe::train_moe(&train, &m), moe::train_moe_with(&train, &m, &TrainingConfig::default()).unwrap());
}

/// A hardware-aware run is reproducible byte for byte, its noise moves the weights, and the
/// clipping holds after the last step.
#[test]
fn hardware_aware_training_is_deterministic_and_clipped() {
    let (train, _) = digits();
    let train = train.rows(0, 200);
    let cfg = tiny();
    let hwa = pcm_section();
    let a = mlp::train_mlp_with(&train, &cfg, &hwa).unwrap();
    let b = mlp::train_mlp_with(&train, &cfg, &hwa).unwrap();
    assert_eq!(bits(&a), bits(&b));
    assert_eq!(mlp::safetensors_bytes(&a, "cmd").unwrap(), mlp::safetensors_bytes(&b, "cmd").unwrap());
    assert_ne!(bits(&a), bits(&mlp::train_mlp(&train, &cfg)), "the injected noise must change the weights");
    let other = TrainingConfig { noise_seed: 1, ..hwa.clone() };
    assert_ne!(bits(&a), bits(&mlp::train_mlp_with(&train, &cfg, &other).unwrap()), "noise_seed must matter");
    for l in &a.layers {
        let n = l.w.len() as f64;
        let mean = l.w.iter().map(|&v| v as f64).sum::<f64>() / n;
        let std = (l.w.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
        let max = l.w.iter().fold(0.0f64, |m, &v| m.max(v.abs() as f64));
        // Clipped at 2.5·std of the pre-clip weights, which is a little above the post-clip std.
        assert!(max <= 2.5 * std * 1.05, "max|W| {max} against 2.5 std {}", 2.5 * std);
    }
    // The transformer and the CNN and MoE trainers take the same section.
    let c = cnn::CnnTrainConfig { epochs: 1, ..cnn::CnnTrainConfig::default() };
    assert_eq!(cnn::train_cnn_with(&train, &c, &hwa).unwrap(), cnn::train_cnn_with(&train, &c, &hwa).unwrap());
    let m = moe::MoeTrainConfig { epochs: 1, ..moe::MoeTrainConfig::default() };
    assert_eq!(moe::train_moe_with(&train, &m, &hwa).unwrap(), moe::train_moe_with(&train, &m, &hwa).unwrap());
}

/// The ADC, the tile split and weight scaling reach every trainer: a section with them trains
/// reproducibly to other weights than without them; the CNN splits a convolution's patches over
/// tiles as the evaluation does.
#[test]
fn every_trainer_takes_the_adc_and_the_tiles() {
    let (train, _) = digits();
    let train = train.rows(0, 200);
    let base = TrainingConfig::parse("[training]\noutput_noise = 0.06\ndac_bits = 7\n").unwrap();
    let adc = TrainingConfig { adc_bits: 5, out_bound: 2.0, max_in: 40, ..base.clone() };
    let cfg = tiny();
    let a = mlp::train_mlp_with(&train, &cfg, &adc).unwrap();
    assert_eq!(bits(&a), bits(&mlp::train_mlp_with(&train, &cfg, &adc).unwrap()));
    assert_ne!(bits(&a), bits(&mlp::train_mlp_with(&train, &cfg, &base).unwrap()), "the ADC and tiles change the training");
    let scaled = TrainingConfig { weight_scaling_omega: 1.0, weight_scaling_columnwise: true, ..adc.clone() };
    assert_ne!(bits(&a), bits(&mlp::train_mlp_with(&train, &cfg, &scaled).unwrap()), "weight scaling moves the ADC's unit");
    let tiles_only = TrainingConfig { max_in: 40, ..base.clone() };
    assert_ne!(
        bits(&mlp::train_mlp_with(&train, &cfg, &tiles_only).unwrap()),
        bits(&mlp::train_mlp_with(&train, &cfg, &base).unwrap()),
        "64 inputs in tiles of 40"
    );
    let c = cnn::CnnTrainConfig { epochs: 1, ..cnn::CnnTrainConfig::default() };
    let ca = cnn::train_cnn_with(&train, &c, &TrainingConfig { max_in: 512, ..adc.clone() }).unwrap();
    assert_eq!(ca, cnn::train_cnn_with(&train, &c, &TrainingConfig { max_in: 512, ..adc.clone() }).unwrap());
    assert_ne!(ca, cnn::train_cnn_with(&train, &c, &base).unwrap());
    // The second convolution's 72-row patches on tiles of 40 rows: two slices, each its own scale.
    let ct = cnn::train_cnn_with(&train, &c, &TrainingConfig { max_in: 40, ..adc.clone() }).unwrap();
    assert_ne!(ca, ct, "CNN: the patches split over tiles");
    let m = moe::MoeTrainConfig { epochs: 1, ..moe::MoeTrainConfig::default() };
    let ma = moe::train_moe_with(&train, &m, &adc).unwrap();
    assert_eq!(ma, moe::train_moe_with(&train, &m, &adc).unwrap());
    assert_ne!(ma, moe::train_moe_with(&train, &m, &base).unwrap());
    let cs = cnn::train_cnn_with(&train, &c, &TrainingConfig { max_in: 512, ..scaled.clone() }).unwrap();
    assert_ne!(ca, cs, "CNN: weight scaling moves the ADC's unit");
}

/// Split the parameters of a trained model into its crossbar matrices and the rest (biases),
/// as bits.
fn matrices_and_rest(params: Vec<aimc::train::injector::Param<'_>>) -> (Vec<u32>, Vec<u32>) {
    let (mut m, mut r) = (Vec::new(), Vec::new());
    for p in params {
        let into = if p.matrix.is_some() { &mut m } else { &mut r };
        into.extend(p.data.iter().map(|v| v.to_bits()));
    }
    (m, r)
}

/// A clipped output's gradient is the clamp's, zero: with an ADC range so narrow that every
/// output clips, no crossbar matrix of any trainer moves (whatever the learning rate), while the
/// digital biases, added after the ADC, still learn.
#[test]
fn a_clipped_output_teaches_only_its_digital_bias() {
    let (train, _) = digits();
    let train = train.rows(0, 100);
    let clip_all = |lr: f32| TrainingConfig { out_bound: 1e-6, lr: Some(lr), epochs: Some(1), ..TrainingConfig::default() };
    let cfg = mlp::TrainConfig { weight_decay: 0.0, ..tiny() };
    let [a, b] = [0.01, 0.02].map(|lr| matrices_and_rest(mlp::train_mlp_with(&train, &cfg, &clip_all(lr)).unwrap().params_mut()));
    assert_eq!(a.0, b.0, "MLP: the matrices take no gradient");
    assert_ne!(a.1, b.1, "MLP: the biases do");
    let c = cnn::CnnTrainConfig { epochs: 1, weight_decay: 0.0, ..cnn::CnnTrainConfig::default() };
    let [a, b] = [0.01, 0.02].map(|lr| matrices_and_rest(cnn::train_cnn_with(&train, &c, &clip_all(lr)).unwrap().params_mut()));
    assert_eq!(a.0, b.0, "CNN: the matrices take no gradient");
    assert_ne!(a.1, b.1, "CNN: the biases do");
    let m = moe::MoeTrainConfig { epochs: 1, weight_decay: 0.0, ..moe::MoeTrainConfig::default() };
    let [a, b] = [0.01, 0.02].map(|lr| matrices_and_rest(moe::train_moe_with(&train, &m, &clip_all(lr)).unwrap().params_mut()));
    assert_eq!(a.0, b.0, "MoE: the matrices take no gradient");
    assert_ne!(a.1, b.1, "MoE: the biases do");
}

/// Fine-tuning reads the model by state-dict name; a file of another architecture is refused with
/// the tensor named, a missing file with its path.
#[test]
fn fine_tuning_errors_name_the_tensor() {
    let (train, _) = digits();
    let train = train.rows(0, 64);
    let start = |path: &str| TrainingConfig { init: Some(root().join(path)), epochs: Some(1), ..TrainingConfig::default() };
    // The shipped 64-64-10 MLP fine-tunes a 64-64-10 configuration.
    let cfg = mlp::TrainConfig { epochs: 1, ..mlp::TrainConfig::default() };
    mlp::train_mlp_with(&train, &cfg, &start("experiments/models/digits_mlp.safetensors")).unwrap();
    // The 256-wide model does not fit.
    let e = mlp::train_mlp_with(&train, &cfg, &start("experiments/models/digits_mlp_256.safetensors")).unwrap_err().to_string();
    assert!(e.contains("training.init") && e.contains("0.weight") && e.contains("same architecture"), "{e}");
    let e = mlp::train_mlp_with(&train, &cfg, &start("experiments/models/nope.safetensors")).unwrap_err().to_string();
    assert!(e.contains("training.init") && e.contains("nope.safetensors"), "{e}");
    // A CNN file for the MoE trainer: the router is missing.
    let e = moe::train_moe_with(&train, &moe::MoeTrainConfig::default(), &start("experiments/models/digits_cnn.safetensors")).unwrap_err().to_string();
    assert!(e.contains("router.weight"), "{e}");
    // The training file's own errors name the file and the field.
    let dir = std::env::temp_dir().join(format!("aimc-hwa-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad.toml");
    std::fs::write(&f, "[training]\nweight_noise = \"pcm\"\nclip_sigma = -1\n").unwrap();
    let e = TrainingConfig::read(&f).unwrap_err().to_string();
    assert!(e.contains("bad.toml") && e.contains("training.clip_sigma"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

/// The shipped hardware-aware models: the training file each records as its rebuild command
/// exists and names its starting model, and the floating-point test accuracy is the one
/// experiments/models/README.md reports. (The byte-for-byte rebuild is the recorded command; it
/// is compared by SHA-256 in that README.)
#[test]
fn the_shipped_hardware_aware_models_are_documented() {
    let (train, test) = digits();
    let meta = |file: &str| -> String {
        let bytes = std::fs::read(root().join("experiments/models").join(file)).unwrap();
        let (_, m) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        m.metadata().as_ref().unwrap()["training"].clone()
    };
    for (file, trainer, fp_model) in [
        ("digits_mlp_hwa.safetensors", "train-digits", "digits_mlp.safetensors"),
        ("digits_mlp_hwa_adc.safetensors", "train-digits", "digits_mlp.safetensors"),
        ("digits_mlp_hwa_adc_bm.safetensors", "train-digits", "digits_mlp.safetensors"),
        ("digits_mlp_hwa_ranges.safetensors", "train-digits", "digits_mlp.safetensors"),
        ("digits_cnn_hwa.safetensors", "train-digits-cnn", "digits_cnn.safetensors"),
        ("digits_moe_hwa.safetensors", "train-digits-moe", "digits_moe.safetensors"),
        ("listops_transformer_kernel_hwa.safetensors", "train-transformer --task listops --attention kernel", "listops_transformer_kernel.safetensors"),
        ("cicero_lm_hwa.safetensors", "train-transformer --task cicero --attention softmax", "cicero_lm_softmax.safetensors"),
        ("cicero_lm_kernel_hwa.safetensors", "train-transformer --task cicero --attention kernel", "cicero_lm_kernel.safetensors"),
        ("kvqa_hwa.safetensors", "train-transformer --task kvqa --attention softmax", "kvqa_softmax.safetensors"),
    ] {
        let stem = file.trim_end_matches(".safetensors");
        let want = format!("cargo run --release -- {trainer} --training experiments/training/{stem}.toml --out experiments/models/{file}");
        assert_eq!(meta(file), want);
        let t = TrainingConfig::read(&root().join(format!("experiments/training/{stem}.toml"))).unwrap();
        assert!(t.is_hardware_aware());
        assert!(t.init.as_ref().unwrap().ends_with(fp_model), "{:?}", t.init);
    }
    let read = |f: &str| aimc::workload::io::read_state_dict(&root().join("experiments/models").join(f)).unwrap();
    let as_mlp = |layers: Vec<aimc::workload::io::Linear>| mlp::Mlp {
        ranges: layers.iter().map(|l| l.input_range.clone()).collect(),
        layers: layers.into_iter().map(|l| aimc::train::Dense { n_in: l.weight.cols, n_out: l.weight.rows, w: l.weight.data, b: l.bias }).collect(),
        activation: aimc::workload::Activation::Relu,
    };
    let m = as_mlp(read("digits_mlp_hwa.safetensors"));
    assert_eq!(((mlp::accuracy(&m, &test) * 450.0).round() as usize, (mlp::accuracy(&m, &train) * 1347.0).round() as usize), (431, 1347));
    let m = as_mlp(read("digits_mlp_hwa_adc.safetensors"));
    assert_eq!(((mlp::accuracy(&m, &test) * 450.0).round() as usize, (mlp::accuracy(&m, &train) * 1347.0).round() as usize), (429, 1346));
    let t = TrainingConfig::read(&root().join("experiments/training/digits_mlp_hwa_adc.toml")).unwrap();
    assert_eq!((t.adc_bits, t.out_bound, t.max_in), (6, 2.0, 512), "the ADC of experiments/hwa_digits_adc.toml");
    let m = as_mlp(read("digits_mlp_hwa_adc_bm.safetensors"));
    assert_eq!(((mlp::accuracy(&m, &test) * 450.0).round() as usize, (mlp::accuracy(&m, &train) * 1347.0).round() as usize), (432, 1346));
    let t = TrainingConfig::read(&root().join("experiments/training/digits_mlp_hwa_adc_bm.toml")).unwrap();
    assert_eq!((t.adc_bits, t.out_bound, t.bm_last_reduction()), (6, 2.0, 16), "the ADC and bound management of experiments/hwa_digits_adc.toml");
    // The ranged model's accuracy is its clipped network's, which the evaluation's floating-point
    // baseline computes too; one range per layer (64 inputs on one 512-row tile).
    let layers = read("digits_mlp_hwa_ranges.safetensors");
    assert_eq!(layers.iter().map(|l| l.input_range.len()).collect::<Vec<_>>(), vec![1, 1]);
    let fp = aimc::workload::fp_accuracy(&layers, &[aimc::workload::Activation::Relu, aimc::workload::Activation::None], &test).0;
    let m = as_mlp(layers);
    assert_eq!(((mlp::accuracy(&m, &test) * 450.0).round() as usize, (mlp::accuracy(&m, &train) * 1347.0).round() as usize), (431, 1346));
    assert_eq!(fp, 431);
    assert!(TrainingConfig::read(&root().join("experiments/training/digits_mlp_hwa_ranges.toml")).unwrap().input_range);
}

/// The shipped kernel-attention HWA transformer: the file is exactly the writer's bytes for its
/// weights and its recorded command, and its fixed feature projection is the floating-point
/// model's bit for bit (fine-tuning loads it, draws noise on it and never clips it), which is the
/// seed's as drawn; both files describe the same architecture, with no clipped projection.
#[test]
fn the_shipped_kernel_hwa_transformer_keeps_the_projection_as_drawn() {
    use aimc::train::transformer::{self as tf, Attention, Net, Task, TransformerTrainConfig};
    use rand::SeedableRng;
    let cfg = TransformerTrainConfig::shipped(Task::ListOps, Attention::Kernel);
    let read = |file: &str| std::fs::read(root().join("experiments/models").join(file)).unwrap();
    let model_meta = |bytes: &[u8]| -> (String, String) {
        let (_, m) = safetensors::SafeTensors::read_metadata(bytes).unwrap();
        let m = m.metadata().clone().unwrap();
        (m["model"].clone(), m["training"].clone())
    };
    let bytes = read("listops_transformer_kernel_hwa.safetensors");
    let net = tf::from_safetensors(&bytes, cfg.dims).unwrap();
    let (model, training) = model_meta(&bytes);
    assert!(tf::safetensors_bytes(&net, Task::ListOps, &training).unwrap() == bytes, "not the writer's bytes");
    let fp_bytes = read("listops_transformer_kernel.safetensors");
    let fp = tf::from_safetensors(&fp_bytes, cfg.dims).unwrap();
    let (fp_model, _) = model_meta(&fp_bytes);
    assert_eq!(model, fp_model);
    assert!(model.contains("rows of norm sqrt(32), shared by Q and K") && !model.contains("clipped"), "{model}");
    let bits = |w: &[f32]| w.iter().map(|v| v.to_bits()).collect::<Vec<u32>>();
    assert_eq!(net.projection.len(), 4096);
    assert_eq!(bits(&net.projection), bits(&fp.projection), "the HWA model's projection is the FP model's");
    let fresh: Net<f32> = Net::init(cfg.dims, Attention::Kernel, &mut rand_pcg::Pcg64Mcg::seed_from_u64(cfg.seed));
    assert_eq!(bits(&net.projection), bits(&fresh.projection), "the projection is the seed's");
    // The trained matrices did move: it is a fine-tuned model, not a copy.
    assert_ne!(net.params, fp.params);
}

/// Clipping reaches the trained crossbar matrices only: after hardware-aware steps with
/// `clip_sigma`, the fixed kernel feature projection is bit for bit the one drawn from the seed
/// (training from scratch) or the one loaded (fine-tuning, here a projection of another seed),
/// although clipping at the same k would cut it, while every trained matrix ends clipped (its
/// entries beyond the bound all sit exactly at ±bound).
#[test]
fn clipping_leaves_the_fixed_feature_projection_as_drawn_or_loaded() {
    use aimc::train::injector::clip_matrix;
    use aimc::train::transformer::{self as tf, Attention, Dims, Net, Task, TransformerTrainConfig};
    use rand::SeedableRng;
    let mut cfg = TransformerTrainConfig::shipped(Task::ListOps, Attention::Kernel);
    cfg.dims = Dims { d_model: 16, d_ff: 16, hidden: 16, features: 16, ..cfg.dims };
    cfg.epochs = 1;
    cfg.warmup = 4;
    cfg.listops.train_rows = 64;
    let (train, _) = tf::task_data(&cfg, None, None).unwrap();
    let k = 1.0;
    let hwa = TrainingConfig::parse("[training]\nweight_noise = \"pcm\"\nweight_noise_time = \"10y\"\noutput_noise = 0.12\nclip_sigma = 1.0\n").unwrap();
    let bits = |w: &[f32]| w.iter().map(|v| v.to_bits()).collect::<Vec<u32>>();
    let draw = |seed: u64| -> Net<f32> { Net::init(cfg.dims, Attention::Kernel, &mut rand_pcg::Pcg64Mcg::seed_from_u64(seed)) };
    let trained_clipped = |net: &mut Net<f32>, what: &str| {
        let mut n_matrices = 0;
        for p in net.params_mut() {
            if p.matrix.is_none() || p.fixed {
                continue;
            }
            n_matrices += 1;
            let max = p.data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let at_bound = p.data.iter().filter(|v| v.abs() == max).count();
            assert!(at_bound >= 2, "{what}: {} not clipped (max|W| {max} reached by {at_bound} entries)", p.name);
        }
        assert_eq!(n_matrices, 6, "{what}: Q/K/V, O, the FFN pair and the classifier pair");
    };
    // From scratch: the projection stays the seed's.
    let mut net = tf::train_transformer_hwa(&train, &cfg, &hwa, |_, _| {}).unwrap();
    let fresh = draw(cfg.seed);
    assert_eq!(bits(&net.projection), bits(&fresh.projection), "from scratch: the projection as drawn");
    let mut cut = fresh.projection.clone();
    clip_matrix(&mut cut, k);
    assert_ne!(bits(&cut), bits(&fresh.projection), "clipping at k = {k} would cut this projection");
    trained_clipped(&mut net, "from scratch");
    // Fine-tuned from a file whose projection is another seed's: the loaded one stays.
    let mut start = tf::train_transformer(&train, &TransformerTrainConfig { epochs: 1, ..cfg.clone() });
    start.projection = draw(7).projection;
    let dir = std::env::temp_dir().join(format!("aimc-hwa-projection-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("start.safetensors");
    tf::save_safetensors(&start, Task::ListOps, "start", &file).unwrap();
    let mut net = tf::train_transformer_hwa(&train, &cfg, &TrainingConfig { init: Some(file), ..hwa.clone() }, |_, _| {}).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(bits(&net.projection), bits(&start.projection), "fine-tuned: the projection as loaded");
    assert_ne!(bits(&start.projection), bits(&fresh.projection));
    assert_ne!(net.params, start.params, "fine-tuning moved the trained weights");
    trained_clipped(&mut net, "fine-tuned");
}

const HWA_DIGITS: &str = r#"
name = "hwa"
workload = "classifier"
seed = 5
trials = 24
gdc = "readout"
weight_error_trials = 0
layer_insight_trials = 0
[model]
path = "models/digits_mlp.safetensors"
activation = "relu"
[data]
path = "data/digits.csv"
scale = 16.0
rows = [1347, 1797]
[device]
model = "pcm"
[sweep]
t = ["1s", "10y"]
variant = [
    { name = "fp", model_path = "models/digits_mlp.safetensors" },
    { name = "hwa", model_path = "models/digits_mlp_hwa.safetensors" },
]
"#;

/// The `model_path` axis runs each point's own model with its own floating-point baseline, on
/// the same draws as the other points; the report's loss section compares the two losses.
#[test]
fn model_path_points_run_their_own_model_and_the_report_compares_losses() {
    let e = common::experiment(HWA_DIGITS).unwrap();
    let r = common::run_ok(&mut common::cpu(), &e);
    let fps: Vec<f64> = r.points.iter().map(|p| p.fp.unwrap()).collect();
    assert_eq!(fps, [429.0 / 450.0, 429.0 / 450.0, 431.0 / 450.0, 431.0 / 450.0]);
    assert!(r.fp_baseline.is_none(), "two models: no single baseline");
    // The fp point equals a plain run of the shipped model (same seed, same draws).
    let single = HWA_DIGITS.split("variant = [").next().unwrap().to_string();
    let r1 = common::run_ok(&mut common::cpu(), &common::experiment(&single).unwrap());
    assert_eq!(r1.points[1].per_trial, r.points[1].per_trial, "the first variant is the plain model on the same draws");
    let doc = aimc::report::markdown::to_markdown(&aimc::report::sections::document(&r, &[]).unwrap());
    assert!(doc.contains("## Loss from floating point") && doc.contains("loss − ½ baseline"), "{doc}");
    let console = aimc::report::console::console_summary(&r);
    assert!(console.contains("FP") && console.contains("95.78"), "{console}");
}

/// Bad `model_path` values: a missing file, another architecture, a workload without a network.
#[test]
fn model_path_errors_name_the_point_and_the_fix() {
    let missing = HWA_DIGITS.replace("models/digits_mlp_hwa.safetensors", "models/nope.safetensors");
    let e = common::experiment(&missing).unwrap_err();
    assert!(e.contains("sweep point variant=hwa") && e.contains("nope.safetensors"), "{e}");
    let wide = HWA_DIGITS.replace("models/digits_mlp_hwa.safetensors", "models/digits_mlp_256.safetensors");
    let e = common::experiment(&wide).unwrap_err();
    assert!(e.contains("model_path") && (e.contains("same architecture") || e.contains("layer")), "{e}");
    let kernel = common::IRIS_ERROR.replace("t = [\"1h\"]", "t = [\"1h\"]\nmodel_path = [\"models/digits_mlp.safetensors\"]");
    let e = common::experiment(&kernel).unwrap_err();
    assert!(e.contains("model_path"), "{e}");
    // A transformer's [model] path is its state dict only where a point sets none: with every
    // variant setting one, it would go unused while results.json recorded it.
    let lra = include_str!("../../experiments/hwa_transformer_lra.toml")
        .replace("[data]", "[model]\npath = \"models/listops_transformer_kernel.safetensors\"\n\n[data]");
    let e = common::experiment(&lra).unwrap_err();
    assert!(
        e.contains("model.path is set at line") && e.contains("by every variant of [sweep] variant") && e.contains("remove one, the [model] section"),
        "{e}"
    );
}
