//! Conv2d layers as aihwkit maps them (unfolded kernel × in-channels rows, one output channel
//! per column, one MVM per output pixel), with digital pooling and flatten: an ideal crossbar
//! with perfect converters must compute PyTorch's convolution. The engine (`im2col`, NHWC
//! activations, `pool`, the next Linear's permuted columns) is compared with a direct NCHW
//! convolution in f64 (`workload::forward_f64`) on the CPU twins, the fast CPU kernels and the
//! GPU; then the geometry checks of `[model]`.

use crate::common::*;
use aimc::crossbar::{Gdc, Periphery, Scaling, TileShape};
use aimc::device::DeviceModel;
use aimc::engine::plan::{run_outputs, RunConfig};
use aimc::engine::Backend;
use aimc::workload::io::{Linear, Matrix};
use aimc::workload::{self, Activation, Conv2d, ConvSettings, Pool2d, PoolKind};

fn conv(name: &str, out_c: usize, in_c: usize, kh: usize, kw: usize, seed: u64) -> Linear {
    let cols = in_c * kh * kw;
    Linear {
        name: name.into(),
        weight: Matrix { rows: out_c, cols, data: aimc::rng::uniform_signed(out_c * cols, seed) },
        bias: aimc::rng::uniform_signed(out_c, seed + 1),
        conv: Some(Conv2d { in_c, k_h: kh, k_w: kw, ..Conv2d::default() }),
        input_range: Vec::new(),
        links: Default::default(),
        batchnorm: None,
    }
}

/// 2 x 7 x 6 images → conv 3x2 (stride [2, 1], padding [1, 0]) → 3 x 4 x 5 → avg pool 2 / 1 →
/// 3 x 3 x 4 → conv 2x2 (padding 1) → 4 x 4 x 5 → max pool 2 → 4 x 2 x 2 → Linear 16 → 5.
/// Ragged on purpose: non-square kernels, strides and pools, channels that are not powers of 2,
/// and tiles smaller than the layers (so a convolution spans several tiles).
fn model() -> (Vec<Linear>, Vec<Activation>) {
    let mut layers = vec![
        conv("0", 3, 2, 3, 2, 1),
        conv("3", 4, 3, 2, 2, 3),
        Linear::dense("7", Matrix { rows: 5, cols: 16, data: aimc::rng::uniform_signed(80, 5) }, aimc::rng::uniform_signed(5, 6)),
    ];
    let settings = [
        ConvSettings {
            stride: [2, 1],
            padding: [1, 0],
            pool: Some(Pool2d { kind: PoolKind::Avg, size: 2, stride: 1, size_w: None, stride_w: None, padding: [0, 0], exclude_pad: false }),
        },
        ConvSettings {
            stride: [1, 1],
            padding: [1, 1],
            pool: Some(Pool2d { kind: PoolKind::Max, size: 2, stride: 2, size_w: None, stride_w: None, padding: [0, 0], exclude_pad: false }),
        },
        ConvSettings::default(),
    ];
    workload::set_geometry(&mut layers, Some([2, 7, 6]), &settings).unwrap();
    (layers, vec![Activation::Relu, Activation::Tanh, Activation::None])
}

/// A Conv1d network as the engine maps it (2 channels of 12 samples as 2 x 1 x 12 images): conv
/// 1x3 (padding [0, 1]) → 4 x 1 x 12 → max pool 1x2 → 4 x 1 x 6 → conv 1x2 → 4 x 1 x 5 → average
/// pool 1x3 with stride 1x2 → 4 x 1 x 2 → Linear 8 → 5: rectangular windows and strides.
fn model_1d() -> (Vec<Linear>, Vec<Activation>) {
    let mut layers = vec![
        conv("0", 4, 2, 1, 3, 21),
        conv("2", 4, 4, 1, 2, 23),
        Linear::dense("4", Matrix { rows: 5, cols: 8, data: aimc::rng::uniform_signed(40, 25) }, aimc::rng::uniform_signed(5, 26)),
    ];
    let pool = |kind, w, sw| Some(Pool2d { kind, size: 1, stride: 1, size_w: Some(w), stride_w: Some(sw), padding: [0, 0], exclude_pad: false });
    let settings = [
        ConvSettings { stride: [1, 1], padding: [0, 1], pool: pool(PoolKind::Max, 2, 2) },
        ConvSettings { stride: [1, 1], padding: [0, 0], pool: pool(PoolKind::Avg, 3, 2) },
        ConvSettings::default(),
    ];
    workload::set_geometry(&mut layers, Some([2, 1, 12]), &settings).unwrap();
    (layers, vec![Activation::Relu, Activation::Tanh, Activation::None])
}

fn ideal(trials: u32) -> RunConfig {
    ideal_run(trials, 2)
}

/// Every trial's outputs against PyTorch's forward pass in f64: f32 sums of ≤ 16 products of
/// values ≤ 1 through three layers stay within 1e-5 relative; both networks, the 2-D one and the
/// Conv1d one with rectangular pooling.
fn check_against_direct(be: &mut dyn Backend, what: &str) {
    check_model(be, what, model(), 84);
    check_model(be, &format!("{what}, Conv1d"), model_1d(), 24);
}

fn check_model(be: &mut dyn Backend, what: &str, (layers, acts): (Vec<Linear>, Vec<Activation>), per_sample: usize) {
    let batch = 6;
    let x = aimc::rng::uniform_signed(batch * per_sample, 11);
    let analog = workload::analog_layers(&layers, &acts, TileShape { max_in: 8, max_out: 3 }, Scaling { omega: 1.0, columnwise: false });
    assert!(analog[0].mapped.n_tiles() > 1 && analog[1].mapped.n_tiles() > 1, "the convolutions should span several tiles");
    // The first convolution reads the data set's NCHW rows (2 channels here), the second the
    // engine's NHWC images.
    assert_eq!(analog.iter().map(|l| l.conv.map(|c| c.in_nchw)).collect::<Vec<_>>(), [Some(1), Some(0), None]);
    let y = run_outputs(be, &analog, &x, batch as u32, &ideal(3), &mut |_| {}).unwrap();
    assert_equals_f64_forward(what, &y[0], &layers, &acts, &x, per_sample, 3, 1e-5);
}

#[test]
fn ideal_conv_layers_equal_direct_convolution_on_cpu_twins() {
    check_against_direct(&mut cpu(), "CPU twins");
}

#[test]
fn ideal_conv_layers_equal_direct_convolution_on_fast_cpu() {
    check_against_direct(&mut aimc::engine::cpu::CpuBackend::fast(2), "fast CPU");
}

#[test]
fn ideal_conv_layers_equal_direct_convolution_on_gpu() {
    let Some(mut g) = gpu(64) else { return };
    check_against_direct(&mut g, "GPU");
}

#[test]
fn noisy_conv_runs_agree_between_cpu_and_gpu() {
    // With PCM noise, the same counters give the same trials on both backends.
    let (layers, acts) = model();
    let batch = 4;
    let x = aimc::rng::uniform_signed(batch * 84, 12);
    let analog = workload::analog_layers(&layers, &acts, TileShape { max_in: 8, max_out: 3 }, Scaling::default());
    let mut c = ideal(2);
    c.device = DeviceModel::pcm();
    c.periphery = Periphery::default();
    c.gdc = Gdc::Readout;
    c.times = vec![3600.0];
    let xe = x.clone();
    let want = run_outputs(&mut cpu(), &analog, &xe, batch as u32, &c, &mut |_| {}).unwrap();
    let Some(mut g) = gpu(64) else { return };
    let got = run_outputs(&mut g, &analog, &xe, batch as u32, &c, &mut |_| {}).unwrap();
    assert_eq!(want[0].len(), got[0].len());
    // Per (trial, sample) row of 5 outputs: equal to the twins' within `COMBINE_ABS` (the last
    // `combine`'s float differences; every ADC code upstream equal), or downstream of a one-step
    // ADC/DAC flip somewhere in the row's ~290 converter outputs.
    let rows: Vec<(usize, f32)> = want[0]
        .chunks(5)
        .zip(got[0].chunks(5))
        .enumerate()
        .map(|(r, (a, b))| (r, a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max)))
        .collect();
    let flipped: Vec<_> = rows.iter().filter(|(_, d)| *d > aimc::tolerances::COMBINE_ABS).collect();
    assert!(flipped.len() <= MAX_FLIPPED_ROWS, "{} of {} rows differ between CPU and GPU (row, largest difference): {flipped:?}", flipped.len(), rows.len());
}

/// Rows of `noisy_conv_runs_agree_between_cpu_and_gpu` (8) that may differ beyond float error. A
/// wrong stage moves every row; a flip only the row it happens in. At the pre-ADC differences
/// measured by tests/suite/twins.rs (~1e-6 against a step of 24/510) each of a row's ~290 converter
/// outputs flips with probability ~4e-5, a row with ~1 %; more than 4 of 8 rows: < 1e-8.
const MAX_FLIPPED_ROWS: usize = 4;

#[test]
fn geometry_mistakes_are_named() {
    let base = || vec![conv("0", 4, 1, 3, 3, 1), Linear::dense("2", Matrix { rows: 10, cols: 64, data: vec![0.1; 640] }, vec![0.0; 10])];
    let pool = Some(Pool2d { kind: PoolKind::Max, size: 2, stride: 2, size_w: None, stride_w: None, padding: [0, 0], exclude_pad: false });
    let s = |padding: usize, pool| vec![ConvSettings { stride: [1, 1], padding: [padding, padding], pool }, ConvSettings::default()];
    // 1 x 8 x 8, padding 1, max pool 2: 4 x 4 x 4 = 64 values into the Linear layer.
    workload::set_geometry(&mut base(), Some([1, 8, 8]), &s(1, pool)).unwrap();
    let e = |input, set: Vec<ConvSettings>| workload::set_geometry(&mut base(), input, &set).unwrap_err();
    assert!(e(None, s(1, pool)).contains("input_shape"), "{}", e(None, s(1, pool)));
    assert!(e(Some([3, 8, 8]), s(1, pool)).contains("3 channels"));
    assert!(e(Some([1, 8, 8]), s(0, pool)).contains("4 x 3 x 3 = 36"), "{}", e(Some([1, 8, 8]), s(0, pool)));
    assert!(e(Some([1, 2, 2]), s(0, None)).contains("larger than"));
    let big = Some(Pool2d { kind: PoolKind::Avg, size: 9, stride: 9, size_w: None, stride_w: None, padding: [0, 0], exclude_pad: false });
    assert!(e(Some([1, 8, 8]), s(1, big)).contains("does not fit"));
    let mut lin_stride = s(1, pool);
    lin_stride[1].stride = [2, 2];
    assert!(e(Some([1, 8, 8]), lin_stride).contains("Conv2d layers only"));
    let mut ends_in_conv = vec![conv("0", 4, 1, 3, 3, 1)];
    assert!(workload::set_geometry(&mut ends_in_conv, Some([1, 8, 8]), &[]).unwrap_err().contains("Flatten and a Linear"));
}

#[test]
fn fast_im2col_and_pool_equal_their_twins_bit_for_bit() {
    // Both are gathers (and a max or an average in the same order): nothing may differ.
    let (layers, acts) = model();
    let batch = 5;
    let x = aimc::rng::uniform_signed(batch * 84, 13);
    let analog = workload::analog_layers(&layers, &acts, TileShape { max_in: 8, max_out: 3 }, Scaling::default());
    let mut rec = Recorder::new();
    let mut c = ideal(3);
    c.device = DeviceModel::pcm();
    run_outputs(&mut rec, &analog, &x, batch as u32, &c, &mut |_| {}).unwrap();
    let mut fast = aimc::engine::cpu::CpuBackend::fast(3);
    let mut seen = 0;
    for d in rec.log.iter().filter(|d| matches!(d.stage, aimc::engine::stages::Stage::Im2col | aimc::engine::stages::Stage::Pool)) {
        let got = replay(&mut fast, d);
        assert_eq!(got[1], d.after[1], "stage {} (trials {}): the fast kernel differs from its twin", d.stage.name(), d.params.layer.trials);
        seen += 1;
    }
    assert!(seen >= 4, "{seen} im2col/pool dispatches recorded");
}

/// `cargo run --release -- train-digits-cnn` rebuilds the shipped CNN byte for byte, and the
/// experiment reading it through `[model] layers` and `input_shape` computes the trainer's own
/// floating-point test accuracy (two forward passes written apart: the trainer's and PyTorch's
/// conventions in `workload::forward_f64`).
#[test]
#[cfg(feature = "train")]
fn the_shipped_digits_cnn_is_rebuilt_and_read_as_trained() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("experiments/data/digits.csv")).unwrap();
    let (train, test) = aimc::train::split_digits(&aimc::train::parse_digits_csv(&text).unwrap());
    let net = aimc::train::cnn::train_cnn(&train, &aimc::train::cnn::CnnTrainConfig::default());
    let bytes = aimc::train::cnn::safetensors_bytes(&net, aimc::train::cnn::TRAINING_COMMAND).unwrap();
    assert!(bytes == std::fs::read(root.join("experiments/models/digits_cnn.safetensors")).unwrap(), "retrained bytes differ from the shipped file");
    let exp = aimc::config::Experiment::load(&root.join("experiments/digits_cnn.toml")).unwrap();
    assert_eq!(exp.layers.iter().map(|l| l.conv.is_some()).collect::<Vec<_>>(), [true, true, false]);
    let (c, n) = workload::fp_accuracy(&exp.layers, &exp.activations, exp.data.as_ref().unwrap());
    let trained = aimc::train::cnn::accuracy(&net, &test);
    assert_eq!(n, 450);
    assert!((c as f64 / n as f64 - trained).abs() < 1e-12, "experiment FP accuracy {c}/{n}, trainer {trained}");
    assert!(trained >= 0.96, "{trained}");
}

/// A data set run in sample batches (as a large one is: `plan::sample_batch`) gives the counts
/// of one whole-set run exactly, on the CPU twins and on the GPU: every batch programs the same
/// device states and draws each MVM's noise by its global vector index. The layer insight's sums
/// add up to the whole set's.
#[test]
fn sample_batches_reproduce_the_whole_set() {
    use aimc::engine::plan::{run_classifier, run_classifier_batches, run_layer_insight, run_layer_insight_batches};
    let (layers, acts) = model();
    let batch = 11;
    let x = aimc::rng::uniform_signed(batch * 84, 21);
    let labels: Vec<u32> = (0..batch as u32).map(|i| i % 5).collect();
    let analog = workload::analog_layers(&layers, &acts, TileShape { max_in: 8, max_out: 3 }, Scaling::default());
    let xe = x.clone();
    let mut c = ideal(5);
    c.device = DeviceModel::pcm();
    c.periphery = Periphery::default();
    c.gdc = Gdc::Readout;
    c.times = vec![60.0, 3.15e7];
    let check = |be: &mut dyn Backend, what: &str| {
        let whole = run_classifier(be, &analog, &xe, &labels, &c).unwrap();
        for per in [1, 4, 10] {
            let parts = run_classifier_batches(be, &analog, &xe, &labels, &c, per, &mut |_| {}).unwrap();
            for (w, p) in whole.iter().zip(&parts) {
                assert_eq!(w.correct, p.correct, "{what}: {per} samples per batch");
            }
        }
        let whole = run_layer_insight(be, &analog, &xe, batch as u32, &c).unwrap();
        let parts = run_layer_insight_batches(be, &analog, &xe, batch as u32, &c, 3).unwrap();
        for (w, p) in whole.iter().flatten().flatten().zip(parts.iter().flatten().flatten()) {
            assert_eq!((w.vectors, w.bm_repeated, w.conversions, w.clipped), (p.vectors, p.bm_repeated, p.conversions, p.clipped), "{what}");
            assert!((w.sq_err - p.sq_err).abs() <= 1e-9 * w.sq_err && (w.sq_ref - p.sq_ref).abs() <= 1e-9 * w.sq_ref, "{what}: {w:?} vs {p:?}");
        }
        whole.len()
    };
    check(&mut cpu(), "CPU twins");
    check(&mut aimc::engine::cpu::CpuBackend::fast(2), "fast CPU");
    let Some(mut g) = gpu(64) else { return };
    check(&mut g, "GPU");
}

#[test]
fn a_conv_kernel_is_read_as_its_crossbar_matrix() {
    // `aimc weights --tensor 3.weight` of a CNN: the [16, 8, 3, 3] kernel as the 16 x 72 matrix
    // the crossbar holds; without --tensor a file with several matrices is refused by name.
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("experiments/models/digits_cnn.safetensors");
    let m = aimc::workload::io::read_safetensors_matrix(&path, Some("3.weight")).unwrap();
    assert_eq!((m.rows, m.cols), (16, 72));
    let exp = aimc::config::Experiment::load(&path.parent().unwrap().parent().unwrap().join("digits_cnn.toml")).unwrap();
    assert_eq!(m.data, exp.layers[1].weight.data);
    let e = aimc::workload::io::read_safetensors_matrix(&path, None).unwrap_err().to_string();
    assert!(e.contains("0.weight, 3.weight, 7.weight") && e.contains("--tensor"), "{e}");
}
