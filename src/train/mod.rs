//! Reproducible trainers of the shipped digits models (built with the `train` cargo feature, on
//! by default): [`mlp`] (`digits_mlp.safetensors`, `digits_mlp_256.safetensors`), [`cnn`]
//! (`digits_cnn.safetensors`) and [`moe`] (`digits_moe.safetensors`); and of the shipped
//! transformers, [`transformer`] (`listops_transformer_*.safetensors`,
//! `digits_seq_transformer.safetensors`, the causal `cicero_lm.safetensors`) with its sequence
//! data [`listops`] and [`text`]. Every trainer takes hardware-aware training's `[training]`
//! section ([`hwa`]), whose crossbar periphery is [`periphery`].
//!
//! This module owns what the three share: the digits data (parsed into the workloads'
//! [`Dataset`]) and its fixed train/test split, the activations' derivatives, the seeded
//! mini-batch loop, the input-noise augmentation, the SGD step and the state-dict writer (the
//! `safetensors` crate, with the metadata in a fixed order; it refuses non-finite weights, so a
//! diverged training writes no file).
//!
//! Data: the UCI "Optical Recognition of Handwritten Digits" test set (E. Alpaydin, C. Kaynak,
//! 1998; UCI Machine Learning Repository, CC BY 4.0), as shipped in scikit-learn's package data
//! (`sklearn/datasets/data/digits.csv.gz`, BSD-3-Clause). 1797 rows; 64 integer pixels in 0..=16
//! followed by the class 0..=9; no header. See `experiments/data/README.md`.
//!
//! Determinism: training is single-threaded with a fixed visiting order, and all randomness comes
//! from `rand_pcg::Pcg64Mcg` through `next_u64` only (our own uniform draws and Fisher–Yates
//! shuffle), so the weights depend on the PCG algorithm alone and not on `rand`'s sampling code,
//! which may change between `rand` releases. Same seed and config on the same platform give the
//! same weights bit for bit, and the writer gives the same bytes for the same weights.

pub mod cnn;
pub mod hwa;
pub mod injector;
pub mod kvqa;
pub mod listops;
pub mod mlp;
pub mod modifier;
pub mod moe;
pub mod periphery;
mod ranges;
pub mod text;
pub mod transformer;

use std::collections::BTreeMap;
use std::path::Path;

use rand::RngCore;
use rand_pcg::Pcg64Mcg;

pub use crate::workload::io::Dataset;
use crate::workload::Activation;

/// Pixels per digit image (8×8).
pub const DIGITS_FEATURES: usize = 64;
/// Digit classes 0..=9.
pub const DIGITS_CLASSES: usize = 10;
/// Rows in the shipped data file.
pub const DIGITS_ROWS: usize = 1797;
/// The first this many rows are the training split; the remaining 450 are the test split.
pub const DIGITS_TRAIN_ROWS: usize = 1347;
/// Largest raw pixel value; inputs are divided by it so they lie in [0, 1].
pub const DIGITS_PIXEL_MAX: f32 = 16.0;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The message names the 1-based line, as an editor shows it.
    #[error("digits CSV: {0}")]
    Data(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("safetensors: {0}")]
    SafeTensors(#[from] safetensors::SafeTensorError),
    /// A training file (`--training`) or the model it fine-tunes from; the message names the
    /// file and the field.
    #[error("{0}")]
    Training(String),
    /// The model file could not be laid out (a writer bug, not a user error).
    #[error("model file: {0}")]
    Model(String),
}

/// Parses the digits CSV (the workloads' CSV reader with scale 16, then the digits' own rules):
/// 64 pixel values in 0..=16, then the class 0..=9; no header. Pixels are divided by 16 (exact
/// for the integer pixels). Blank lines are skipped; any other malformed line is an error that
/// names its 1-based line number.
pub fn parse_digits_csv(text: &str) -> Result<Dataset, TrainError> {
    let data = crate::workload::io::parse_csv(text, DIGITS_PIXEL_MAX).map_err(TrainError::Data)?;
    // The reader skips blank lines, so data row r sits on the r-th non-blank line.
    let line_of = |r: usize| text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).nth(r).map_or(0, |(i, _)| i + 1);
    if data.n_features != DIGITS_FEATURES {
        return Err(TrainError::Data(format!("line 1: expected {} fields (64 pixels + class), found {}", DIGITS_FEATURES + 1, data.n_features + 1)));
    }
    for r in 0..data.len() {
        if let Some(col) = row(&data, r).iter().position(|v| !(0.0..=1.0).contains(v)) {
            let v = row(&data, r)[col] * DIGITS_PIXEL_MAX;
            return Err(TrainError::Data(format!("line {}: pixel column {}: {v} outside 0..=16", line_of(r), col + 1)));
        }
        if data.labels[r] as usize >= DIGITS_CLASSES {
            return Err(TrainError::Data(format!("line {}: class {} is not an integer in 0..=9", line_of(r), data.labels[r])));
        }
    }
    Ok(data)
}

/// Reads and parses the digits CSV at `path`.
pub fn read_digits_csv(path: &Path) -> Result<Dataset, TrainError> {
    let text = crate::files::read_to_string(path).map_err(|e| TrainError::Data(format!("reading {}: {e}", path.display())))?;
    parse_digits_csv(&text)
}

/// The fixed split: the first 1347 rows are train, the rest (450 for the full file) are test.
/// A file-order split rather than a shuffled one, so that it needs no seed and other tools can
/// reproduce it by slicing. A shorter data set gives all of its rows to train.
pub fn split_digits(data: &Dataset) -> (Dataset, Dataset) {
    let cut = DIGITS_TRAIN_ROWS.min(data.len());
    (data.rows(0, cut), data.rows(cut, data.len()))
}

/// Features of row `i`.
pub fn row(data: &Dataset, i: usize) -> &[f32] {
    &data.x[i * data.n_features..(i + 1) * data.n_features]
}

/// Classes a trainer's output layer gets: 10, or more if the labels need them.
fn classes(train: &Dataset) -> usize {
    train.labels.iter().map(|&c| c as usize + 1).max().unwrap_or(1).max(DIGITS_CLASSES)
}

/// Fraction of rows whose predicted class equals the label (0 for no rows).
fn accuracy_of(data: &Dataset, predict: impl Fn(&[f32]) -> usize) -> f64 {
    let correct = (0..data.len()).filter(|&i| predict(row(data, i)) == data.labels[i] as usize).count();
    correct as f64 / data.len().max(1) as f64
}

/// The activation of pre-activation `v`: the engine's own f32 formula (`activate` in
/// `src/engine/cpu/common.rs`), so a model is trained with the function it is evaluated with.
pub fn activate(act: Activation, v: f32) -> f32 {
    crate::engine::cpu::common::activate(act.code(), v)
}

/// √(2/π) and the cubic coefficient of the tanh-approximated GELU, in f32 as the engine spells them.
const GELU_C: f32 = 0.797_884_6;
const GELU_A: f32 = 0.044715;

/// d activation / dv, from the pre-activation `v` and the activation `h = activate(act, v)`.
/// ReLU's is 0 at v = 0 (where `h <= 0`); exactly zero derivatives let the backward passes skip
/// the unit.
pub fn derivative(act: Activation, v: f32, h: f32) -> f32 {
    match act {
        Activation::None => 1.0,
        Activation::Relu => {
            if h > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Activation::Gelu => {
            // h = v·s(v) with s = (1 + tanh u)/2, u = c·(v + a·v³):
            // h' = s + v·(1 − tanh²u)/2 · c·(1 + 3a·v²).
            let t = (GELU_C * (v + GELU_A * v * v * v)).tanh();
            0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * GELU_C * (1.0 + 3.0 * GELU_A * v * v)
        }
        Activation::Tanh => 1.0 - h * h,
        Activation::GeluExact => {
            // h = v·Φ(v): h' = Φ(v) + v·φ(v).
            let v = v as f64;
            let pdf = (-0.5 * v * v).exp() / (2.0 * std::f64::consts::PI).sqrt();
            (0.5 * (1.0 + statrs::function::erf::erf(v / std::f64::consts::SQRT_2)) + v * pdf) as f32
        }
        Activation::Silu => {
            // h = v·σ(v): h' = σ(v)·(1 + v·(1 − σ(v))).
            let sg = 1.0 / (1.0 + (-v).exp());
            sg * (1.0 + v * (1.0 - sg))
        }
    }
}

/// The activation's name in experiment files and on the command line.
pub fn activation_name(act: Activation) -> &'static str {
    match act {
        Activation::None => "none",
        Activation::Relu => "relu",
        Activation::Gelu => "gelu",
        Activation::Tanh => "tanh",
        Activation::GeluExact => "gelu_exact",
        Activation::Silu => "silu",
    }
}

/// The PyTorch module that computes the same function (as written in a model file's metadata).
pub fn torch_module(act: Activation) -> &'static str {
    match act {
        Activation::None => "nn.Identity()",
        Activation::Relu => "nn.ReLU()",
        Activation::Gelu => "nn.GELU(approximate='tanh')",
        Activation::Tanh => "nn.Tanh()",
        Activation::GeluExact => "nn.GELU()",
        Activation::Silu => "nn.SiLU()",
    }
}

/// One `nn.Linear` layer. The weight is row-major `n_out × n_in`, the layout of PyTorch's
/// `nn.Linear.weight`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    /// `n_out × n_in`.
    pub w: Vec<f32>,
    /// `n_out`.
    pub b: Vec<f32>,
    pub n_in: usize,
    pub n_out: usize,
}

impl Dense {
    /// y = W x + b, each output summed from its bias in input order.
    fn forward(&self, x: &[f32], out: &mut [f32]) {
        for (o, (w, &b)) in self.w.chunks_exact(self.n_in).zip(&self.b).enumerate() {
            let mut s = b;
            for (&wk, &xk) in w.iter().zip(x) {
                s += wk * xk;
            }
            out[o] = s;
        }
    }

    /// All-zero parameters of the same shape (gradient and velocity buffers).
    fn zeros_like(&self) -> Dense {
        Dense { w: vec![0.0; self.w.len()], b: vec![0.0; self.b.len()], n_in: self.n_in, n_out: self.n_out }
    }
}

/// Index of the largest value; the lowest index wins ties (the predicted class of logits).
pub use crate::workload::argmax;

/// Uniform in [0, 1) from the top 24 bits of one `next_u64`.
pub(crate) fn unit_f32(rng: &mut Pcg64Mcg) -> f32 {
    (rng.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
}

/// One heavy-ball momentum step with L2 weight decay: v = μ v + g + λ p, p −= lr v.
pub(crate) fn sgd_update(p: &mut [f32], g: &[f32], v: &mut [f32], lr: f32, momentum: f32, weight_decay: f32) {
    for ((p, &gr), v) in p.iter_mut().zip(g).zip(v.iter_mut()) {
        *v = momentum * *v + gr + weight_decay * *p;
        *p -= lr * *v;
    }
}

/// `out = x + std · n` with n of zero mean and unit variance: Irwin–Hall(3) − 1.5 has variance
/// 1/4, so doubling it gives unit variance from three uniforms, with no transcendental function
/// to differ by libm.
pub(crate) fn add_input_noise(out: &mut [f32], x: &[f32], std: f32, rng: &mut Pcg64Mcg) {
    for (o, &v) in out.iter_mut().zip(x) {
        let u = unit_f32(rng) + unit_f32(rng) + unit_f32(rng) - 1.5;
        *o = v + 2.0 * std * u;
    }
}

/// Approximately standard normal: Irwin–Hall(12) − 6 from 53-bit uniforms (no libm; tails end at
/// ±6σ). The transformer's init and hardware-aware training's noise draw from it.
pub(crate) fn normal(rng: &mut Pcg64Mcg) -> f64 {
    (0..12).map(|_| (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)).sum::<f64>() - 6.0
}

/// Fisher–Yates with a widening-multiply index (bias below n/2^64, irrelevant here).
fn shuffle(order: &mut [usize], rng: &mut Pcg64Mcg) {
    for i in (1..order.len()).rev() {
        let j = ((rng.next_u64() as u128 * (i as u128 + 1)) >> 64) as usize;
        order.swap(i, j);
    }
}

/// The shipped digits data (`experiments/data/digits.csv`), for the trainers' tests.
#[cfg(test)]
pub(crate) fn shipped_digits() -> Dataset {
    read_digits_csv(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/data/digits.csv"))).unwrap()
}

/// The mini-batch loop every trainer shares: per epoch a fresh shuffle of the rows (from `rng`),
/// then `step(batch, lr, rng)` per batch, with the learning rate decayed linearly from `lr` to 0
/// over all steps; the last batch of an epoch may be smaller than `batch_size`. The trainers
/// draw their input noise from the same `rng` inside `step`, so the draw order is fixed.
pub(crate) fn minibatch_epochs(n: usize, epochs: usize, batch_size: usize, lr: f32, rng: &mut Pcg64Mcg, mut step: impl FnMut(&[usize], f32, &mut Pcg64Mcg)) {
    let mut order: Vec<usize> = (0..n).collect();
    let steps = (epochs * n.div_ceil(batch_size)).max(1);
    let mut k = 0usize;
    for _ in 0..epochs {
        shuffle(&mut order, rng);
        for batch in order.chunks(batch_size) {
            step(batch, lr * (1.0 - k as f32 / steps as f32), rng);
            k += 1;
        }
    }
}

/// Row `i` of `train` with fresh input noise of std `std` in `noisy` (none when `std` is 0).
pub(crate) fn noisy_row<'a>(noisy: &'a mut [f32], train: &'a Dataset, i: usize, std: f32, rng: &mut Pcg64Mcg) -> &'a [f32] {
    if std > 0.0 {
        add_input_noise(noisy, row(train, i), std, rng);
        noisy
    } else {
        row(train, i)
    }
}

/// One F32 tensor of a state dict: name, torch shape, row-major values.
pub(crate) type NamedTensor<'a> = (String, Vec<usize>, &'a [f32]);

/// Refuses tensors that hold a NaN or an infinity (training diverged), naming the first such
/// tensor and value.
pub(crate) fn check_finite(tensors: &[NamedTensor]) -> Result<(), TrainError> {
    for (name, _, v) in tensors {
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            let bad = v.iter().filter(|x| !x.is_finite()).count();
            return Err(TrainError::Training(format!(
                "training diverged: tensor {name:?} holds {bad} non-finite values of {} (the first, {}, at index {i}); nothing written; train with a smaller learning rate (training.lr, or --lr for train-transformer)",
                v.len(),
                v[i]
            )));
        }
    }
    Ok(())
}

/// The safetensors bytes of F32 tensors and string metadata, as
/// `safetensors.torch.save_file(state_dict, metadata=…)` lays them out: the header lists
/// `__metadata__` first, then the tensors in name order ("10.bias" before "2.bias", as strings
/// sort), whose data follow in the same order; the header is padded with spaces to a multiple of 8.
///
/// The `safetensors` crate writes the tensors, their offsets and the padding. It takes the
/// metadata as a `HashMap`, whose iteration order (and so the header's bytes) changes from run
/// to run, so the metadata object is written here in key order and put first in the crate's
/// header: the same tensors and metadata always give the same bytes.
///
/// Every value must be finite: a trainer whose weights diverged (NaN or ±inf, from too large a
/// learning rate) gets an error that names the tensor, and no file.
pub(crate) fn state_dict_bytes(tensors: &[NamedTensor], metadata: &BTreeMap<&str, String>) -> Result<Vec<u8>, TrainError> {
    check_finite(tensors)?;
    let bytes: Vec<Vec<u8>> = tensors.iter().map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect()).collect();
    let mut views = Vec::with_capacity(tensors.len());
    for ((name, shape, _), data) in tensors.iter().zip(&bytes) {
        views.push((name.as_str(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)?));
    }
    let plain = safetensors::serialize(views, None)?;
    // The crate's layout: 8-byte little-endian header length, the JSON header `{…}` padded with
    // spaces, then the data.
    let n = u64::from_le_bytes(plain[..8].try_into().expect("8 bytes")) as usize;
    let tensors_json =
        std::str::from_utf8(&plain[8..8 + n]).map_err(|e| TrainError::Model(format!("safetensors header is not UTF-8: {e}")))?.trim_end_matches(' ');
    let meta_json = serde_json::to_string(metadata).map_err(|e| TrainError::Model(format!("metadata: {e}")))?;
    let mut header = format!("{{\"__metadata__\":{meta_json}");
    match tensors_json.strip_prefix('{').filter(|rest| *rest != "}") {
        Some(rest) => {
            header.push(',');
            header.push_str(rest);
        }
        None => header.push('}'),
    }
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut out = Vec::with_capacity(8 + header.len() + plain.len() - 8 - n);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&plain[8 + n..]);
    Ok(out)
}

/// The metadata every model file carries: `format = "pt"`, `model` (the PyTorch module and what
/// its input and output mean) and `training` (the command that rebuilds the file).
fn model_metadata(model: String, training: &str) -> BTreeMap<&'static str, String> {
    [("format", "pt".to_string()), ("model", model), ("training", training.to_string())].into_iter().collect()
}

/// Writes `bytes` to `path`, naming the file on failure.
fn write_model(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    std::fs::write(path, bytes).map_err(|e| TrainError::Io(std::io::Error::new(e.kind(), format!("writing {}: {e}", path.display()))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn shipped_csv_parses_and_splits() {
        let d = shipped_digits();
        assert_eq!((d.len(), d.n_features), (DIGITS_ROWS, DIGITS_FEATURES));
        assert!(d.x.iter().all(|&v| (0.0..=1.0).contains(&v)));
        assert!(d.labels.iter().all(|&c| c < 10));
        let (tr, te) = split_digits(&d);
        assert_eq!((tr.len(), te.len()), (1347, 450));
        assert_eq!(row(&tr, 0), row(&d, 0));
        assert_eq!(row(&te, 0), row(&d, 1347));
        assert_eq!(te.labels[449], d.labels[1796]);
        let (tr, te) = split_digits(&d.rows(0, 10));
        assert_eq!((tr.len(), te.len()), (10, 0));
    }

    #[test]
    fn parse_errors_name_the_line() {
        let good = vec!["0"; 64].join(",") + ",3";
        let short = vec!["0"; 63].join(",") + ",3";
        let bad_pixel = vec!["0"; 63].join(",") + ",x,3";
        let big_pixel = vec!["0"; 63].join(",") + ",17,3";
        let bad_class = vec!["0"; 64].join(",") + ",10";
        for (bad, what) in [(short, "fields"), (bad_pixel, "not a number"), (big_pixel, "outside"), (bad_class, "class")] {
            let text = format!("{good}\n\n{bad}\n");
            let msg = parse_digits_csv(&text).unwrap_err().to_string();
            assert!(msg.contains("line 3") && msg.contains(what), "{msg}");
        }
        let msg = parse_digits_csv(&(["0"; 10].join(",") + ",3")).unwrap_err().to_string();
        assert!(msg.contains("expected 65 fields"), "{msg}");
        assert!(parse_digits_csv("\n\n").unwrap_err().to_string().contains("no data rows"));
        let ok = parse_digits_csv(&format!("{good}\n{good}")).unwrap();
        assert_eq!((ok.len(), ok.labels[1]), (2, 3));
    }

    #[test]
    fn activations_match_the_engine_and_their_derivatives() {
        for act in [Activation::None, Activation::Relu, Activation::Gelu, Activation::Tanh] {
            for i in (-400..=400).filter(|i| i % 50 != 0) {
                let v = i as f32 * 0.01;
                // The engine's f32 formula against the workload's f64 one: a few f32 roundings apart.
                let (a, want) = (activate(act, v) as f64, act.apply(v as f64));
                assert!((a - want).abs() <= 1e-6 * (1.0 + want.abs()), "{act:?}({v}) = {a}, f64 formula {want}");
                let h = 1e-2f32;
                let fd = (activate(act, v + h) as f64 - activate(act, v - h) as f64) / (2.0 * h as f64);
                let d = derivative(act, v, activate(act, v)) as f64;
                assert!((d - fd).abs() < 2e-4, "{act:?}'({v}) = {d}, finite difference {fd}");
            }
        }
    }

    #[test]
    fn the_writer_is_reproducible_and_the_crate_reads_it() {
        let a = [1.0f32, -2.0, 3.5, 0.25, 5.0, 6.0];
        let tensors: Vec<NamedTensor> =
            vec![("2.weight".into(), vec![1, 2], &a[..2]), ("0.weight".into(), vec![2, 2], &a[2..]), ("10.bias".into(), vec![0], &a[..0])];
        let meta = model_metadata("net \"quoted\"".into(), "cmd");
        let bytes = state_dict_bytes(&tensors, &meta).unwrap();
        assert_eq!(bytes, state_dict_bytes(&tensors, &meta).unwrap());
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert_eq!(n % 8, 0);
        let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
        assert!(
            header.starts_with(r#"{"__metadata__":{"format":"pt","model":"net \"quoted\"","training":"cmd"},"0.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"10.bias""#),
            "{header}"
        );
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(st.tensor("2.weight").unwrap().data(), [1.0f32, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>());
        let (_, m) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!(m.metadata().as_ref().unwrap()["model"], "net \"quoted\"");
        // No tensors: the metadata object alone.
        let empty = state_dict_bytes(&[], &meta).unwrap();
        assert_eq!(std::str::from_utf8(&empty[8..]).unwrap().trim_end(), r#"{"__metadata__":{"format":"pt","model":"net \"quoted\"","training":"cmd"}}"#);
    }

    #[test]
    fn the_writer_refuses_non_finite_weights() {
        let a = [1.0f32, 2.0];
        let b = [0.5f32, f32::NAN, f32::INFINITY];
        let tensors: Vec<NamedTensor> = vec![("0.weight".into(), vec![2], &a), ("2.weight".into(), vec![3], &b)];
        let e = state_dict_bytes(&tensors, &model_metadata("net".into(), "cmd")).unwrap_err().to_string();
        assert!(e.contains("\"2.weight\"") && e.contains("2 non-finite values of 3") && e.contains("index 1") && e.contains("smaller learning rate"), "{e}");
        // The model writers go through it: a diverged MLP is refused and no file appears.
        let data = shipped_digits().rows(0, 64);
        let cfg = mlp::TrainConfig { hidden: vec![8], epochs: 1, ..mlp::TrainConfig::default() };
        let hwa = hwa::TrainingConfig { lr: Some(1e30), ..hwa::TrainingConfig::default() };
        let m = mlp::train_mlp_with(&data, &cfg, &hwa).unwrap();
        assert!(m.layers.iter().any(|l| l.w.iter().any(|v| !v.is_finite())), "lr 1e30 must diverge");
        let path = std::env::temp_dir().join(format!("aimc-diverged-{}.safetensors", std::process::id()));
        let e = mlp::save_safetensors(&m, "cmd", &path).unwrap_err().to_string();
        assert!(e.contains("training diverged: tensor \"") && e.contains("training.lr"), "{e}");
        assert!(!path.exists(), "nothing may be written");
    }

    #[test]
    fn the_shuffle_is_a_permutation() {
        let mut rng = Pcg64Mcg::seed_from_u64(1);
        let mut order: Vec<usize> = (0..100).collect();
        shuffle(&mut order, &mut rng);
        assert_ne!(order, (0..100).collect::<Vec<_>>());
        order.sort();
        assert_eq!(order, (0..100).collect::<Vec<_>>());
    }
}
