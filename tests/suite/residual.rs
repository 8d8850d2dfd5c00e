//! Residual networks (He et al. 2016): shortcuts by `input` and `add`, and BatchNorms kept
//! digital as aihwkit runs them, through the classifier's plan on every backend against
//! PyTorch's forward pass in f64; chunk invariance with kept outputs; the mistakes a model file
//! can make named; He et al.'s zero-padding shortcuts (option A, the CIFAR ResNets') against a
//! hand-built expectation and through the engine.

use crate::common::*;
use aimc::crossbar::{Gdc, Periphery, Scaling, TileShape};
use aimc::device::DeviceModel;
use aimc::engine::plan::{run_outputs, Links, RunConfig};
use aimc::engine::Backend;
use aimc::workload::io::{Linear, Matrix};
use aimc::workload::{self, Activation, Conv2d, ConvSettings, Pool2d, PoolKind};

fn conv(name: &str, out_c: usize, in_c: usize, k: usize, seed: u64) -> Linear {
    let cols = in_c * k * k;
    // Weights of ±0.4 at most keep the activations of nine layers near 1.
    let scaled = |n: usize, s: u64| aimc::rng::uniform_signed(n, s).iter().map(|v| 0.4 * v).collect();
    Linear {
        name: name.into(),
        weight: Matrix { rows: out_c, cols, data: scaled(out_c * cols, seed) },
        bias: scaled(out_c, seed + 1),
        conv: Some(Conv2d { in_c, k_h: k, k_w: k, ..Conv2d::default() }),
        input_range: Vec::new(),
        links: Links::default(),
        batchnorm: None,
    }
}

fn dense(name: &str, rows: usize, cols: usize, seed: u64) -> Linear {
    let w = aimc::rng::uniform_signed(rows * cols, seed).iter().map(|v| 0.4 * v).collect();
    Linear::dense(name, Matrix { rows, cols, data: w }, aimc::rng::uniform_signed(rows, seed + 1))
}

/// Values per sample: 2 x 6 x 6 images.
const PER_SAMPLE: usize = 72;
const CLASSES: usize = 5;

/// A small ResNet as torchvision's BasicBlocks build it: stem conv 3x3 (4 channels, ReLU, then
/// torchvision's stem max pool 3x3, stride 2, padding 1: 4 x 3 x 3) → an identity block (conv,
/// conv + the stem's output, ReLU) → a downsampling block (conv with stride 2, conv, and a 1x1
/// stride-2 shortcut conv reading the first block's output that adds the second conv's, ReLU,
/// average pool 3x3, stride 1, padding 1 without the padding in its divisor) → 6 x 2 x 2 →
/// Linear 24 → 7 (ReLU) → Linear 7 → 7 adding the first (tanh) → Linear 7 → 5. Digital BatchNorms after the identity block's
/// second conv (then the addition), the downsampling conv, the shortcut conv (then the addition
/// and the pool) and the first Linear layer. Tiles smaller than the layers.
fn resnet() -> (Vec<Linear>, Vec<Activation>) {
    let mut layers = vec![
        conv("stem", 4, 2, 3, 1),
        conv("b1.conv1", 4, 4, 3, 3),
        conv("b1.conv2", 4, 4, 3, 5),
        conv("b2.conv1", 6, 4, 3, 7),
        conv("b2.conv2", 6, 6, 3, 9),
        conv("b2.down", 6, 4, 1, 11),
        dense("fc1", 7, 24, 13),
        dense("fc2", 7, 7, 15),
        dense("fc3", CLASSES, 7, 17),
    ];
    layers[2].links = Links { input: None, add: Some(0), add_pad: None };
    layers[5].links = Links { input: Some(2), add: Some(4), add_pad: None };
    layers[7].links = Links { input: None, add: Some(6), add_pad: None };
    for (i, seed) in [(2, 31), (3, 33), (5, 35), (6, 37)] {
        let n = layers[i].weight.rows;
        let scale = aimc::rng::uniform_signed(n, seed).into_iter().map(|v| 1.0 + 0.5 * v);
        layers[i].batchnorm = Some(scale.chain(aimc::rng::uniform_signed(n, seed + 1).into_iter().map(|v| 0.2 * v)).collect());
    }
    let pad = ConvSettings { padding: [1, 1], ..ConvSettings::default() };
    let stem_pool = Pool2d { kind: PoolKind::Max, size: 3, stride: 2, size_w: None, stride_w: None, padding: [1, 1], exclude_pad: false };
    let settings = [
        ConvSettings { pool: Some(stem_pool), ..pad },
        pad,
        pad,
        ConvSettings { stride: [2, 2], ..pad },
        pad,
        ConvSettings {
            stride: [2, 2],
            padding: [0, 0],
            pool: Some(Pool2d { kind: PoolKind::Avg, size: 3, stride: 1, size_w: None, stride_w: None, padding: [1, 1], exclude_pad: true }),
        },
        ConvSettings::default(),
        ConvSettings::default(),
        ConvSettings::default(),
    ];
    workload::set_geometry(&mut layers, Some([2, 6, 6]), &settings).unwrap();
    let (r, t, n) = (Activation::Relu, Activation::Tanh, Activation::None);
    (layers, vec![r, r, r, r, n, r, r, t, n])
}

/// The ResNet on its tiles (default scaling) and `batch` random images drawn with `seed`.
fn mapped_resnet(batch: usize, seed: u64) -> (usize, Vec<f32>, Vec<aimc::engine::plan::AnalogLayer>) {
    let (layers, acts) = resnet();
    (batch, aimc::rng::uniform_signed(batch * PER_SAMPLE, seed), workload::analog_layers(&layers, &acts, SHAPE, Scaling::default()))
}

/// A safetensors file of F32 tensors (name, shape, values).
fn write_f32_tensors(path: &std::path::Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
    use safetensors::tensor::{Dtype, TensorView};
    let bytes: Vec<Vec<u8>> = tensors.iter().map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect()).collect();
    let views: Vec<(String, TensorView)> =
        tensors.iter().zip(&bytes).map(|((n, sh, _), b)| (n.clone(), TensorView::new(Dtype::F32, sh.clone(), b).unwrap())).collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// A fresh directory `prefix-PID` holding the layers' weights and biases as PyTorch shapes them
/// (`NAME.safetensors`) and `x.csv`: `rows` rows of `per_sample` values drawn from seeds `seed`
/// on, labelled round the classes.
fn write_model_and_data(prefix: &str, layers: &[Linear], name: &str, per_sample: usize, rows: u64, seed: u64) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let named: Vec<(String, Vec<usize>, Vec<f32>)> = layers
        .iter()
        .flat_map(|l| {
            let shape = match l.conv {
                Some(c) => vec![l.weight.rows, c.in_c, c.k_h, c.k_w],
                None => vec![l.weight.rows, l.weight.cols],
            };
            [(format!("{}.weight", l.name), shape, l.weight.data.clone()), (format!("{}.bias", l.name), vec![l.bias.len()], l.bias.clone())]
        })
        .collect();
    write_f32_tensors(&dir.join(format!("{name}.safetensors")), &named);
    let mut csv = String::new();
    for s in 0..rows {
        let row: Vec<String> = aimc::rng::uniform_signed(per_sample, seed + s).iter().map(|v| format!("{v}")).collect();
        csv.push_str(&format!("{},{}\n", row.join(","), s % CLASSES as u64));
    }
    std::fs::write(dir.join("x.csv"), csv).unwrap();
    dir
}

fn ideal(trials: u32, max_chunk: u32) -> RunConfig {
    ideal_run(trials, max_chunk)
}

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const SHAPE: TileShape = TileShape { max_in: 8, max_out: 3 };

/// Every trial's outputs against the f64 forward: f32 sums of ≤ 54 products of values near 1
/// through nine layers and three additions stay within 1e-5 relative (measured ≤ 1e-6).
fn check_against_direct(be: &mut dyn Backend, what: &str) {
    let (layers, acts) = resnet();
    let batch = 5;
    let x = aimc::rng::uniform_signed(batch * PER_SAMPLE, 21);
    let analog = workload::analog_layers(&layers, &acts, SHAPE, Scaling { omega: 1.0, columnwise: false });
    // The shortcut conv reads the engine's NHWC images, as every layer after the first.
    assert_eq!(analog[5].conv.map(|c| c.in_nchw), Some(0));
    let y = run_outputs(be, &analog, &x, batch as u32, &ideal(3, 2), &mut |_| {}).unwrap();
    assert_equals_f64_forward(what, &y[0], &layers, &acts, &x, PER_SAMPLE, 3, 1e-5);
}

#[test]
fn an_ideal_resnet_equals_the_f64_forward_on_cpu_twins() {
    check_against_direct(&mut cpu(), "CPU twins");
}

#[test]
fn an_ideal_resnet_equals_the_f64_forward_on_fast_cpu() {
    check_against_direct(&mut aimc::engine::cpu::CpuBackend::fast(2), "fast CPU");
}

#[test]
fn an_ideal_resnet_equals_the_f64_forward_on_gpu() {
    let Some(mut g) = gpu(64) else { return };
    check_against_direct(&mut g, "GPU");
}

#[test]
fn the_shortcuts_change_the_outputs() {
    // Without its links the same weights compute another network: the additions are not
    // silently dropped anywhere between the file and the outputs.
    let (layers, acts) = resnet();
    let x = aimc::rng::uniform_signed(2 * PER_SAMPLE, 22);
    let with = workload::forward_f64(&layers, &acts, &x[..PER_SAMPLE]);
    let mut plain = layers.clone();
    plain[7].links = Links::default();
    let without = workload::forward_f64(&plain, &acts, &x[..PER_SAMPLE]);
    assert!(with.iter().zip(&without).any(|(a, b)| (a - b).abs() > 1e-3), "{with:?} vs {without:?}");
    let analog = workload::analog_layers(&layers, &acts, SHAPE, Scaling::default());
    assert_eq!(analog[7].links, Links { input: None, add: Some(6), add_pad: None });
    assert_eq!((analog[7].mvm_activation(), analog[7].activation), (0, Activation::Tanh.code()));
}

#[test]
fn noisy_resnet_trials_do_not_depend_on_the_chunking_or_the_backend() {
    // Kept outputs live per chunk: one trial per chunk and three per chunk give the same bits,
    // on the CPU twins; the GPU's residual stage equals the twin's within the flips that
    // tests/suite/conv.rs allows (here compared per output).
    let (batch, x, analog) = mapped_resnet(3, 23);
    let noisy =
        |max_chunk| RunConfig { device: DeviceModel::pcm(), periphery: Periphery::default(), gdc: Gdc::Readout, times: vec![3600.0], ..ideal(3, max_chunk) };
    let one = run_outputs(&mut cpu(), &analog, &x, batch as u32, &noisy(1), &mut |_| {}).unwrap();
    let three = run_outputs(&mut cpu(), &analog, &x, batch as u32, &noisy(3), &mut |_| {}).unwrap();
    assert_eq!(one, three);
    let fast = run_outputs(&mut aimc::engine::cpu::CpuBackend::fast(2), &analog, &x, batch as u32, &noisy(2), &mut |_| {}).unwrap();
    let close = |a: &[f32], b: &[f32]| a.iter().zip(b).filter(|(p, q)| (*p - *q).abs() > aimc::tolerances::COMBINE_ABS).count();
    // 9 rows of 5 outputs: a converter flip moves a row; a wrong stage moves all of them.
    assert!(close(&one[0], &fast[0]) <= 2 * CLASSES, "fast CPU: {:?} vs {:?}", fast[0], one[0]);
    let Some(mut g) = gpu(64) else { return };
    let got = run_outputs(&mut g, &analog, &x, batch as u32, &noisy(2), &mut |_| {}).unwrap();
    assert!(close(&one[0], &got[0]) <= 2 * CLASSES, "GPU: {:?} vs {:?}", got[0], one[0]);
}

#[test]
fn shortcut_mistakes_are_named() {
    let settings = |layers: &[Linear]| -> Vec<ConvSettings> {
        layers.iter().map(|l| if l.conv.is_some() { ConvSettings { padding: [1, 1], ..ConvSettings::default() } } else { ConvSettings::default() }).collect()
    };
    let base = || vec![conv("a", 4, 1, 3, 1), conv("b", 4, 4, 3, 3), conv("c", 3, 4, 3, 5), dense("fc", 10, 3 * 4 * 4, 7)];
    let geometry = |mut layers: Vec<Linear>| {
        let s = settings(&layers);
        workload::set_geometry(&mut layers, Some([1, 4, 4]), &s).map(|_| layers)
    };
    // c (3 channels) cannot add a's output (4 channels).
    let mut l = base();
    l[2].links.add = Some(0);
    let e = geometry(l).unwrap_err();
    assert!(e.contains("layer c adds the output of a (4 x 4 x 4) to its own (3 x 4 x 4)") && e.contains("1x1 convolution"), "{e}");
    // b's output is read by nobody when c reads a instead.
    let mut l = base();
    l[2].links.input = Some(0);
    let e = geometry(l).unwrap_err();
    assert!(e.contains("output of layer b is read by no later layer"), "{e}");
    // An addition across a flatten is refused: a vector and an image.
    let mut l = base();
    l.push(dense("fc2", 4 * 4 * 4, 10, 9));
    l.push(dense("fc3", 2, 64, 11));
    l[4].links.add = Some(1);
    let e = geometry(l).unwrap_err();
    assert!(e.contains("adds the output of b (4 x 4 x 4) to its own (64 values)"), "{e}");
    // The engine refuses a link forward or from the first layer by itself.
    let good = geometry(base()).unwrap();
    let acts = vec![Activation::Relu; 4];
    let mut analog = workload::analog_layers(&good, &acts, SHAPE, Scaling::default());
    analog[1].links.add = Some(2);
    let x = vec![0.5f32; 16];
    let e = run_outputs(&mut cpu(), &analog, &x, 1, &ideal(1, 1), &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("layer 1 adds layer 2's output; a shortcut comes from an earlier layer"), "{e}");
    analog[1].links = Links::default();
    analog[0].links.input = Some(0);
    let e = run_outputs(&mut cpu(), &analog, &x, 1, &ideal(1, 1), &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("layer 0 reads another layer's output"), "{e}");
}

/// A residual model file and an experiment naming its shortcuts: `input` and `add` resolve by
/// name to earlier tables, and every other name is refused with the layers it could be.
#[test]
fn experiment_files_name_their_shortcuts() {
    let (layers, _) = resnet();
    let dir = write_model_and_data("aimc-residual", &layers, "resnet", PER_SAMPLE, 12, 100);
    let text = r#"name = "resnet"
workload = "classifier"
seed = 1
trials = 4
[model]
path = "resnet.safetensors"
input_shape = [2, 6, 6]
layers = [
  { name = "stem", activation = "relu", padding = 1, pool = "max", pool_size = 3, pool_stride = 2, pool_padding = 1 },
  { name = "b1.conv1", activation = "relu", padding = 1 },
  { name = "b1.conv2", activation = "relu", padding = 1, add = "stem" },
  { name = "b2.conv1", activation = "relu", padding = 1, stride = 2 },
  { name = "b2.conv2", activation = "none", padding = 1 },
  { name = "b2.down", activation = "relu", stride = 2, input = "b1.conv2", add = "b2.conv2", pool = "avg", pool_size = 3, pool_stride = 1, pool_padding = 1, pool_count_include_pad = false },
  { name = "fc1", activation = "relu" },
  { name = "fc2", activation = "tanh", add = "fc1" },
  "fc3",
]
[data]
path = "x.csv"
[sweep]
t = ["1s"]
"#;
    let path = dir.join("resnet.toml");
    let exp = aimc::config::Experiment::from_text(text, &path).unwrap_or_else(|e| panic!("{e}"));
    let (want, acts) = resnet();
    assert_eq!(exp.layers.iter().map(|l| l.links).collect::<Vec<_>>(), want.iter().map(|l| l.links).collect::<Vec<_>>());
    assert_eq!(exp.activations, acts);
    let refused = |from: &str, to: &str| aimc::config::Experiment::from_text(&text.replace(from, to), &path).unwrap_err().to_string();
    let e = refused(r#"add = "fc1""#, r#"add = "fc3""#);
    assert!(e.contains(r#"model.layers[7].add = "fc3": "fc3" is not listed before it"#), "{e}");
    let e = refused(r#"input = "b1.conv2""#, r#"input = "b1.conv9""#);
    assert!(e.contains(r#"model.layers[5].input = "b1.conv9": no layer is named "b1.conv9"; a shortcut names an earlier layer (stem, b1.conv1"#), "{e}");
    let e = refused(r#"{ name = "stem", activation = "relu","#, r#"{ name = "stem", activation = "relu", add = "fc1","#);
    assert!(e.contains("model.layers[0].add"), "{e}");
    let e = refused(r#"add = "b2.conv2", pool"#, "pool");
    assert!(e.contains("output of layer b2.conv2 is read by no later layer"), "{e}");
    let e = refused("pool_padding = 1 }", "pool_padding = 2 }");
    assert!(e.contains("layer stem: pooling padding 2x2 is more than half its 3x3 window"), "{e}");
    let e = refused(r#"pool = "max", pool_size = 3"#, r#"pool = "max", pool_count_include_pad = true, pool_size = 3"#);
    assert!(e.contains("pool_count_include_pad is average pooling's"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

/// The shipped ResNets as PyTorch trained them, with their BatchNorms digital
/// (experiments/digits_resnet.toml; digits_resnet8.toml, the CIFAR ResNet with zero-padding
/// shortcuts, and its hardware-aware fine-tuning, hwa_digits_resnet8.toml's variant) and folded (digits_resnet_folded.toml): each experiment's f64 forward scores what
/// the training script measured in PyTorch (its file's metadata), and the engine on an ideal
/// device classifies every test image as that forward does.
#[test]
fn the_shipped_resnet_is_read_as_trained() {
    for (toml, model, norms) in [
        ("digits_resnet", "digits_resnet", 6),
        ("digits_resnet_folded", "digits_resnet_folded", 0),
        ("digits_resnet8", "digits_resnet8", 7),
        ("digits_resnet8", "digits_resnet8_hwa", 7),
    ] {
        // hwa_digits_resnet8.toml's variant: digits_resnet8.toml's layers on the fine-tuned file.
        let path = root().join(format!("experiments/{toml}.toml"));
        let text = std::fs::read_to_string(&path).unwrap().replace(&format!("\"models/{toml}.safetensors\""), &format!("\"models/{model}.safetensors\""));
        let exp = aimc::config::Experiment::from_text(&text, &path).unwrap();
        assert_eq!(exp.layers.iter().filter(|l| l.batchnorm.is_some()).count(), norms, "{toml}");
        let data = exp.data.as_ref().unwrap();
        let (c, n) = workload::fp_accuracy(&exp.layers, &exp.activations, data);
        let bytes = std::fs::read(root().join(format!("experiments/models/{model}.safetensors"))).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let training = meta.metadata().as_ref().and_then(|m| m.get("training")).cloned().unwrap_or_default();
        assert!(training.ends_with(&format!("test accuracy {:.4}", c as f64 / n as f64)), "{toml}: {c}/{n} against the trainer's {training:?}");
        let analog = workload::analog_layers(&exp.layers, &exp.activations, TileShape::default(), Scaling::default());
        let got = aimc::engine::plan::run_classifier(&mut aimc::engine::cpu::CpuBackend::fast(2), &analog, &data.x, &data.labels, &ideal(1, 1)).unwrap();
        assert_eq!(got[0].correct, [c as u32], "{toml}");
    }
}

/// A model file with PyTorch's BatchNorm tensors and an experiment naming them: the scale and
/// shift are γ/√(σ² + ε) and β − scale·μ in f64, `num_batches_tracked` is used, and a missing,
/// misshapen or negative statistic is refused by name.
#[test]
fn batchnorm_tensors_are_read_as_pytorch_defines_them() {
    let dir = std::env::temp_dir().join(format!("aimc-batchnorm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (gamma, beta, mean, var) = ([1.5f32, 0.5, 2.0], [0.1f32, -0.2, 0.3], [0.25f32, -1.0, 0.5], [4.0f32, 0.25, 1.0]);
    let write = |parts: &[(&str, Vec<usize>, Vec<f32>)]| {
        let owned: Vec<(String, Vec<usize>, Vec<f32>)> = parts.iter().map(|(n, sh, v)| (n.to_string(), sh.clone(), v.clone())).collect();
        write_f32_tensors(&dir.join("bn.safetensors"), &owned);
    };
    let base = |var: Vec<f32>| {
        vec![
            ("conv1.weight", vec![3, 1, 2, 2], aimc::rng::uniform_signed(12, 1)),
            ("bn1.weight", vec![3], gamma.to_vec()),
            ("bn1.bias", vec![3], beta.to_vec()),
            ("bn1.running_mean", vec![3], mean.to_vec()),
            ("bn1.running_var", vec![3], var),
            ("bn1.num_batches_tracked", vec![1], vec![0.0]),
            ("fc.weight", vec![2, 12], aimc::rng::uniform_signed(24, 2)),
            ("fc.bias", vec![2], vec![0.0; 2]),
        ]
    };
    std::fs::write(dir.join("x.csv"), "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1\n0.5,0.4,0.3,0.2,0.1,0,0.1,0.2,0.3,1\n").unwrap();
    let text = r#"name = "bn"
workload = "classifier"
seed = 1
trials = 2
[model]
path = "bn.safetensors"
input_shape = [1, 3, 3]
layers = [{ name = "conv1", activation = "relu", batchnorm = "bn1", batchnorm_eps = 0.001 }, "fc"]
[data]
path = "x.csv"
[sweep]
t = ["1s"]
"#;
    let path = dir.join("bn.toml");
    let load = |text: &str| aimc::config::Experiment::from_text(text, &path).map_err(|e| e.to_string());
    write(&base(var.to_vec()));
    let exp = load(text).unwrap();
    let bn = exp.layers[0].batchnorm.clone().unwrap();
    for c in 0..3 {
        let s = gamma[c] as f64 / (var[c] as f64 + 1e-3).sqrt();
        assert_eq!((bn[c], bn[3 + c]), (s as f32, (beta[c] as f64 - s * mean[c] as f64) as f32));
    }
    assert_eq!(exp.layers[1].batchnorm, None);
    // The f64 forward applies it (an ideal engine run is checked on the ResNet above).
    let mut plain = exp.layers.clone();
    plain[0].batchnorm = None;
    let x = &exp.data.as_ref().unwrap().x[..9];
    assert_ne!(workload::forward_f64(&exp.layers, &exp.activations, x), workload::forward_f64(&plain, &exp.activations, x));
    let e = load(&text.replace(", batchnorm_eps = 0.001", ", batchnorm_eps = 0.0")).unwrap_err();
    assert!(e.contains("batchnorm_eps = 0: give ε > 0"), "{e}");
    let e = load(&text.replace(r#"batchnorm = "bn1""#, r#"batchnorm = "bn2""#)).unwrap_err();
    assert!(e.contains(r#"batchnorm = "bn2" but the file has no bn2.running_mean"#), "{e}");
    write(&base(vec![4.0, -0.25, 1.0]));
    let e = load(text).unwrap_err();
    assert!(e.contains("bn1.running_var[1] = -0.25: a variance cannot be negative"), "{e}");
    let mut short = base(var.to_vec());
    short[3] = ("bn1.running_mean", vec![2], vec![0.0; 2]);
    write(&short);
    let e = load(text).unwrap_err();
    assert!(e.contains("bn1.running_mean has shape [2], but layer conv1 has 3 output channels"), "{e}");
    let mut no_beta = base(var.to_vec());
    no_beta.remove(2);
    write(&no_beta);
    let e = load(text).unwrap_err();
    assert!(e.contains("no bn1.bias"), "{e}");
    // Without `batchnorm` the BatchNorm's tensors are not the model's.
    write(&base(var.to_vec()));
    let e = load(&text.replace(r#", batchnorm = "bn1", batchnorm_eps = 0.001"#, "")).unwrap_err();
    assert!(e.contains("bn1.bias") && e.contains("allow_extra"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

/// The fast CPU `pool` with padding (the stem's max pool, the shortcut's average pool that leaves
/// its padding out of the divisor) equals its twin bit for bit, replayed on the twin's inputs.
#[test]
fn fast_padded_pooling_equals_its_twin_bit_for_bit() {
    let (batch, x, analog) = mapped_resnet(3, 24);
    let mut rec = Recorder::new();
    let c = RunConfig { device: DeviceModel::pcm(), ..ideal(2, 2) };
    run_outputs(&mut rec, &analog, &x, batch as u32, &c, &mut |_| {}).unwrap();
    let mut fast = aimc::engine::cpu::CpuBackend::fast(2);
    let pools: Vec<_> = rec.log.iter().filter(|d| d.stage == aimc::engine::stages::Stage::Pool).collect();
    assert_eq!(pools.iter().map(|d| (d.params.conv.pool_pad_h, d.params.conv.pool_count_pad)).collect::<Vec<_>>(), [(1, 1), (1, 0)]);
    for d in pools {
        assert_eq!(replay(&mut fast, d)[1], d.after[1], "pool (padding {}): the fast kernel differs from its twin", d.params.conv.pool_pad_h);
    }
}

/// Values per sample of the zero-padding network: 2 x 5 x 5 images.
const A_PER_SAMPLE: usize = 50;

/// A CIFAR-style ResNet with zero-padding shortcuts (He et al.'s option A): stem conv 3x3 (4
/// channels, ReLU: 4 x 5 x 5) → a downsampling block (conv stride 2 to 8 channels, conv, and
/// the stem's output added at every second row and column, channels padded 2 + 2: 8 x 3 x 3,
/// ReLU) → a widening block (conv to 12 channels, conv, the block's input added with 1 + 3
/// zero channels, stride 1, ReLU) → Linear 108 → 5. A 5 x 5 map read at stride 2 is 3 x 3,
/// as `x[:, :, ::2, ::2]` is.
fn resnet_a() -> (Vec<Linear>, Vec<Activation>) {
    use aimc::engine::plan::ZeroPad;
    let mut layers = vec![
        conv("stem", 4, 2, 3, 41),
        conv("b1.conv1", 8, 4, 3, 43),
        conv("b1.conv2", 8, 8, 3, 45),
        conv("b2.conv1", 12, 8, 3, 47),
        conv("b2.conv2", 12, 12, 3, 49),
        dense("fc", CLASSES, 108, 51),
    ];
    layers[2].links = Links { input: None, add: Some(0), add_pad: Some(ZeroPad { stride: 2, before: 2, after: 2 }) };
    layers[4].links = Links { input: None, add: Some(2), add_pad: Some(ZeroPad { stride: 1, before: 1, after: 3 }) };
    let pad = ConvSettings { padding: [1, 1], ..ConvSettings::default() };
    let settings = [pad, ConvSettings { stride: [2, 2], ..pad }, pad, pad, pad, ConvSettings::default()];
    workload::set_geometry(&mut layers, Some([2, 5, 5]), &settings).unwrap();
    let r = Activation::Relu;
    (layers, vec![r, r, r, r, r, Activation::None])
}

#[test]
fn a_zero_padding_shortcut_adds_the_subsampled_maps_between_zero_channels() {
    // With the block's convolutions zero, its output is the shortcut alone: channel c, pixel
    // (y, x) holds the stem's channel c - 2 at (2y, 2x), channels 0, 1, 6 and 7 zero. The last
    // Linear is the identity on the 8 x 3 x 3 maps (CHW, as PyTorch flattens them).
    let (mut layers, mut acts) = resnet_a();
    layers.truncate(3);
    for l in &mut layers[1..3] {
        l.weight.data.iter_mut().for_each(|w| *w = 0.0);
        l.bias.iter_mut().for_each(|b| *b = 0.0);
    }
    let identity = (0..72 * 72).map(|k| if k / 72 == k % 72 { 1.0 } else { 0.0 }).collect();
    layers.push(Linear::dense("id", Matrix { rows: 72, cols: 72, data: identity }, vec![0.0; 72]));
    acts.truncate(3);
    acts.push(Activation::None);
    let x = aimc::rng::uniform_signed(A_PER_SAMPLE, 52);
    let stem = workload::forward_f64(&layers[..1], &acts[..1], &x);
    let got = workload::forward_f64(&layers, &acts, &x);
    for c in 0..8 {
        for (y, xx) in (0..3).flat_map(|y| (0..3).map(move |xx| (y, xx))) {
            let want = if (2..6).contains(&c) { stem[((c - 2) * 5 + 2 * y) * 5 + 2 * xx] } else { 0.0 };
            assert_eq!(got[(c * 3 + y) * 3 + xx], want, "channel {c}, pixel ({y}, {xx})");
        }
    }
    assert!(stem.iter().any(|&v| v > 0.1), "the stem passes something on");
    // The engine computes the same on an ideal device (twins, fast CPU, GPU).
    let analog = workload::analog_layers(&layers, &acts, SHAPE, Scaling { omega: 1.0, columnwise: false });
    let y = run_outputs(&mut cpu(), &analog, &x, 1, &ideal(1, 1), &mut |_| {}).unwrap();
    assert_equals_f64_forward("CPU twins", &y[0], &layers, &acts, &x, A_PER_SAMPLE, 1, 1e-5);
    // The plan refuses a zero-padding shortcut that shapes nothing.
    let mut bad = analog.clone();
    bad[2].links.add = None;
    let e = run_outputs(&mut cpu(), &bad, &x, 1, &ideal(1, 1), &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("layer 2 has a zero-padding shortcut but adds nothing"), "{e}");
}

fn check_zero_padding_against_direct(be: &mut dyn Backend, what: &str) {
    let (layers, acts) = resnet_a();
    let batch = 4;
    let x = aimc::rng::uniform_signed(batch * A_PER_SAMPLE, 53);
    let analog = workload::analog_layers(&layers, &acts, SHAPE, Scaling { omega: 1.0, columnwise: false });
    let y = run_outputs(be, &analog, &x, batch as u32, &ideal(3, 2), &mut |_| {}).unwrap();
    assert_equals_f64_forward(what, &y[0], &layers, &acts, &x, A_PER_SAMPLE, 3, 1e-5);
}

#[test]
fn an_ideal_zero_padding_resnet_equals_the_f64_forward_on_every_backend() {
    check_zero_padding_against_direct(&mut cpu(), "CPU twins");
    check_zero_padding_against_direct(&mut aimc::engine::cpu::CpuBackend::fast(2), "fast CPU");
    let Some(mut g) = gpu(64) else { return };
    check_zero_padding_against_direct(&mut g, "GPU");
}

#[test]
fn noisy_zero_padding_trials_agree_across_chunkings_and_backends() {
    let (layers, acts) = resnet_a();
    let batch = 3;
    let x = aimc::rng::uniform_signed(batch * A_PER_SAMPLE, 54);
    let analog = workload::analog_layers(&layers, &acts, SHAPE, Scaling::default());
    let noisy =
        |max_chunk| RunConfig { device: DeviceModel::pcm(), periphery: Periphery::default(), gdc: Gdc::Readout, times: vec![3600.0], ..ideal(3, max_chunk) };
    let one = run_outputs(&mut cpu(), &analog, &x, batch as u32, &noisy(1), &mut |_| {}).unwrap();
    let three = run_outputs(&mut cpu(), &analog, &x, batch as u32, &noisy(3), &mut |_| {}).unwrap();
    assert_eq!(one, three);
    // 9 rows of 5 outputs: a converter flip moves a row; a wrong stage moves all of them.
    let close = |a: &[f32], b: &[f32]| a.iter().zip(b).filter(|(p, q)| (*p - *q).abs() > aimc::tolerances::COMBINE_ABS).count();
    let fast = run_outputs(&mut aimc::engine::cpu::CpuBackend::fast(2), &analog, &x, batch as u32, &noisy(2), &mut |_| {}).unwrap();
    assert!(close(&one[0], &fast[0]) <= 2 * CLASSES, "fast CPU: {:?} vs {:?}", fast[0], one[0]);
    let Some(mut g) = gpu(64) else { return };
    let got = run_outputs(&mut g, &analog, &x, batch as u32, &noisy(2), &mut |_| {}).unwrap();
    assert!(close(&one[0], &got[0]) <= 2 * CLASSES, "GPU: {:?} vs {:?}", got[0], one[0]);
}

/// `add_stride` and `add_pad_channels` in an experiment's layer tables: read into the links,
/// recorded in results.json's configuration, and every mistake named with its fix.
#[test]
fn experiment_files_name_their_zero_padding_shortcuts() {
    let (layers, _) = resnet_a();
    let dir = write_model_and_data("aimc-residual-a", &layers, "resnet_a", A_PER_SAMPLE, 6, 200);
    let text = r#"name = "resnet_a"
workload = "classifier"
seed = 1
trials = 2
[model]
path = "resnet_a.safetensors"
input_shape = [2, 5, 5]
layers = [
  { name = "stem", activation = "relu", padding = 1 },
  { name = "b1.conv1", activation = "relu", padding = 1, stride = 2 },
  { name = "b1.conv2", activation = "relu", padding = 1, add = "stem", add_stride = 2, add_pad_channels = [2, 2] },
  { name = "b2.conv1", activation = "relu", padding = 1 },
  { name = "b2.conv2", activation = "relu", padding = 1, add = "b1.conv2", add_pad_channels = [1, 3] },
  "fc",
]
[data]
path = "x.csv"
[sweep]
t = ["1s"]
"#;
    let path = dir.join("resnet_a.toml");
    let exp = aimc::config::Experiment::from_text(text, &path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(exp.layers.iter().map(|l| l.links).collect::<Vec<_>>(), layers.iter().map(|l| l.links).collect::<Vec<_>>());
    let refused = |from: &str, to: &str| aimc::config::Experiment::from_text(&text.replace(from, to), &path).unwrap_err().to_string();
    let e = refused("add_stride = 2", "add_stride = 0");
    assert!(e.contains("model.layers[2].add_stride = 0: give 1 or more"), "{e}");
    let e = refused(r#"add = "b1.conv2", add_pad_channels"#, "add_pad_channels");
    assert!(e.contains("model.layers[4]: add_stride and add_pad_channels shape the maps a shortcut adds; they need add"), "{e}");
    let e = refused("add_pad_channels = [2, 2]", "add_pad_channels = [2, 1]");
    assert!(
        e.contains("layer b1.conv2 adds the output of stem (4 x 5 x 5) to its own (8 x 3 x 3); its zero-padding shortcut (stride 2, channels padded 2 + 1) makes 7 x 3 x 3 of them"),
        "{e}"
    );
    let e = refused(", add_stride = 2", "");
    assert!(e.contains("makes 8 x 5 x 5 of them; give add_stride and add_pad_channels that give 8 x 3 x 3"), "{e}");
    let e = refused("add_pad_channels = [2, 2]", "add_pad_channels = [2, -2]");
    assert!(e.contains("model.layers[2].add_pad_channels = [2, -2]: give [before, after], the zero channels"), "{e}");
    let e = refused("add_stride = 2", "add_stride = 1.5");
    assert!(e.contains("model.layers[2].add_stride = 1.5: give 1 or more"), "{e}");
    // The run records them in results.json, and the report names the shortcut.
    let out = dir.join("out");
    std::fs::write(&path, text).unwrap();
    let o =
        std::process::Command::new(env!("CARGO_BIN_EXE_aimc")).args(["run", path.to_str().unwrap(), "--backend", "cpu", "--out"]).arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let results: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let l2 = &results["config"]["model"]["layers"][2];
    assert_eq!((l2["add"].as_str(), l2["add_stride"].as_u64(), l2["add_pad_channels"].clone()), (Some("stem"), Some(2), serde_json::json!([2, 2])));
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("adds stem through a zero-padding shortcut (stride 2, channels padded 2 + 2)"), "{report}");
    std::fs::remove_dir_all(&dir).ok();
}
