//! Experiment files (TOML): raw serde structs with `deny_unknown_fields`, then one validation pass
//! that resolves paths relative to the file, loads the model and data, checks shapes, expands the
//! sweep and tries every sweep value on the device model and periphery, so that every mistake is
//! reported before any compute, naming the field or file and the fix. Only the validated
//! [`Experiment`] reaches the runner (ripgrep's low-level → high-level arguments).

use crate::arch::energy::CostTable;
use crate::crossbar::{Gdc, Periphery, TileShape, MAX_TILE_IN};
use crate::device::{DeviceModel, MODEL_NAMES};
use crate::workload::io::{self, Dataset, Linear, Matrix};
use crate::workload::Activation;
pub use crate::workload::{SweepPoint, WorkloadKind};
use serde::Deserialize;
use sha2::Digest;
use std::path::{Path, PathBuf};

pub mod overrides;
pub mod reference;
pub mod time;

pub use overrides::shard_from_env;
pub use time::{parse_time, time_label, TIME_UNITS};

#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error("{file}: {msg}")]
    Invalid { file: String, msg: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExperiment {
    name: String,
    #[serde(default)]
    description: String,
    workload: WorkloadKind,
    seed: u64,
    trials: u32,
    #[serde(default = "default_confidence")]
    confidence: f64,
    #[serde(default = "default_half_width")]
    ci_half_width: f64,
    #[serde(default = "default_gdc")]
    gdc: Gdc,
    /// Trials that also report effective-weight error (classifier); 0 skips it.
    #[serde(default = "default_we_trials")]
    weight_error_trials: u32,
    /// Trials (classifier) whose every layer's MVM output error, bound-management repeats and
    /// clipped ADC outputs are measured against floating point; 0 skips it.
    #[serde(default = "default_insight_trials")]
    layer_insight_trials: u32,
    /// Every sweep point draws the same random numbers (common random numbers), so differences
    /// between points are paired; false gives each point its own key.
    #[serde(default = "default_crn")]
    common_random_numbers: bool,
    /// Tail risk: report P(metric < tail_below) per point (classifiers: default one point below
    /// floating point).
    #[serde(default)]
    tail_below: Option<f64>,
    #[serde(default)]
    model: Option<RawModel>,
    data: Option<RawData>,
    /// Kernel workloads: the feature map (`crate::workload::kernel::KernelSettings`).
    #[serde(default)]
    kernel: Option<toml::Table>,
    /// The attention workload's Q, K, V.
    #[serde(default)]
    attention: Option<RawAttention>,
    /// The moe workload: the layer (`crate::workload::moe::MoeSettings`), the architecture
    /// (`crate::arch::tiers::Architecture`) and the cost tables.
    #[serde(default)]
    moe: Option<toml::Table>,
    #[serde(default)]
    arch: Option<toml::Table>,
    #[serde(default)]
    cost: Option<RawCost>,
    /// The noise budget: which source costs the metric (`super::budget`).
    #[serde(default)]
    budget: Option<crate::workload::budget::BudgetSettings>,
    #[serde(default)]
    device: toml::Table,
    #[serde(default)]
    periphery: toml::Table,
    #[serde(default)]
    tile: Option<TileShape>,
    sweep: toml::Table,
    #[serde(default)]
    energy: Option<RawEnergy>,
    #[serde(default)]
    mvm: Option<RawMvm>,
    #[serde(default)]
    reference: Option<RawReference>,
}

/// `[reference]`: another simulator's per-repetition counts to compare with (classifier).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReference {
    path: PathBuf,
    #[serde(default)]
    mean_tol_pp: Option<f64>,
    #[serde(default)]
    std_rel_tol: Option<f64>,
}

fn default_confidence() -> f64 {
    0.95
}
fn default_half_width() -> f64 {
    0.001
}
fn default_insight_trials() -> u32 {
    20
}

fn default_gdc() -> Gdc {
    Gdc::Readout
}
fn default_we_trials() -> u32 {
    100
}
fn default_crn() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    path: PathBuf,
    #[serde(default)]
    tensor: Option<String>,
    /// The layers in order: tensor prefixes ("fc1"), or tables naming one and saying how it
    /// runs (`{ name = "0", activation = "relu", padding = 1, pool = "max" }`, see
    /// [`RawLayer`]); empty: every `PREFIX.weight`, ordered by the keys' numeric index.
    #[serde(default)]
    layers: Vec<toml::Value>,
    /// [C, H, W] of one sample (PyTorch's NCHW order): needed when the model has Conv2d layers.
    #[serde(default)]
    input_shape: Option<[usize; 3]>,
    /// Leave tensors that are not a used layer's weight or bias unused instead of refusing.
    #[serde(default)]
    allow_extra: bool,
    #[serde(default = "default_act")]
    activation: Activation,
    /// The activation after each layer, one per layer (default: `activation` between layers,
    /// none after the last).
    #[serde(default)]
    activations: Option<Vec<Activation>>,
    /// Layers (by name, e.g. "0" or "fc2") that stay digital: computed in floating point, no
    /// device or converter noise.
    #[serde(default)]
    digital: Vec<String>,
}

fn default_act() -> Activation {
    Activation::Relu
}

/// One `[model] layers` table: which tensors, the activation after the layer, whether it stays
/// digital, and for a Conv2d its stride, zero padding and the pooling after the activation
/// (PyTorch's `nn.Conv2d` / `nn.MaxPool2d` / `nn.AvgPool2d` arguments).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLayer {
    name: String,
    #[serde(default)]
    activation: Option<Activation>,
    #[serde(default)]
    digital: bool,
    #[serde(default)]
    stride: Option<toml::Value>,
    #[serde(default)]
    padding: Option<toml::Value>,
    #[serde(default)]
    pool: Option<crate::workload::PoolKind>,
    /// Pooling window (default 2).
    #[serde(default)]
    pool_size: Option<usize>,
    /// Pooling stride (default: the window, as PyTorch).
    #[serde(default)]
    pool_stride: Option<usize>,
}

impl RawLayer {
    /// A `layers` entry: a name string, or a table.
    fn parse(i: usize, v: &toml::Value) -> Result<RawLayer, String> {
        match v {
            toml::Value::String(name) => Ok(RawLayer { name: name.clone(), ..RawLayer::default() }),
            toml::Value::Table(_) => RawLayer::deserialize(v.clone()).map_err(|e| format!("model.layers[{i}]: {}", e.message())),
            other => {
                Err(format!("model.layers[{i}] = {other}: give a layer name (\"fc1\") or a table ({{ name = \"0\", activation = \"relu\", padding = 1 }})"))
            }
        }
    }

    fn settings(&self, i: usize) -> Result<crate::workload::ConvSettings, String> {
        let pair = |what: &str, v: &Option<toml::Value>, default: usize| -> Result<[usize; 2], String> {
            match v {
                None => Ok([default; 2]),
                Some(toml::Value::Integer(n)) if *n >= 0 => Ok([*n as usize; 2]),
                Some(toml::Value::Array(a)) if a.len() == 2 && a.iter().all(|x| x.as_integer().is_some_and(|n| n >= 0)) => {
                    Ok([a[0].as_integer().unwrap() as usize, a[1].as_integer().unwrap() as usize])
                }
                Some(other) => Err(format!("model.layers[{i}].{what} = {other}: give a non-negative integer or [height, width]")),
            }
        };
        if self.pool.is_none() && (self.pool_size.is_some() || self.pool_stride.is_some()) {
            return Err(format!("model.layers[{i}]: pool_size and pool_stride need pool = \"max\" or \"avg\""));
        }
        let pool = self.pool.map(|kind| {
            let size = self.pool_size.unwrap_or(2);
            crate::workload::Pool2d { kind, size, stride: self.pool_stride.unwrap_or(size) }
        });
        Ok(crate::workload::ConvSettings { stride: pair("stride", &self.stride, 1)?, padding: pair("padding", &self.padding, 0)?, pool })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawData {
    path: PathBuf,
    #[serde(default = "one")]
    scale: f32,
    #[serde(default)]
    rows: Option<Vec<usize>>,
    /// The first line names the columns (never guessed).
    #[serde(default)]
    header: bool,
    /// With a .npy feature file: the .npy of its integer labels; with a .npz: the name of the
    /// labels array in it (default "y").
    #[serde(default)]
    labels: Option<PathBuf>,
    /// With a .npz: the name of the features array in it (default "x").
    #[serde(default)]
    features: Option<String>,
}

fn one() -> f32 {
    1.0
}

/// `[attention]`: Q, K, V from .npy files (`[heads, n, d]` or `[n, d]`), or generated: Q, K ~
/// N(0, qk_std²) and V ~ N(0, 1) from `data_seed` (`crate::features::attention::synthetic_qkv`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAttention {
    #[serde(default)]
    q: Option<PathBuf>,
    #[serde(default)]
    k: Option<PathBuf>,
    #[serde(default)]
    v: Option<PathBuf>,
    #[serde(default = "one_usize")]
    heads: usize,
    #[serde(default)]
    n: usize,
    #[serde(default)]
    d: usize,
    #[serde(default)]
    causal: bool,
    /// Generated Q and K: the std of their entries (default d^(−1/4), so ‖q‖ ≈ d^(1/4) and the
    /// scaled q·d^(−1/4) has norm about 1, the positive features' working range).
    #[serde(default)]
    qk_std: Option<f64>,
    #[serde(default)]
    data_seed: u64,
}

fn one_usize() -> usize {
    1
}

/// Largest attention problem: heads × n × d values per tensor.
const MAX_ATTENTION_VALUES: usize = 1 << 26;

/// `[cost]`: the 3D cost table and the GPU table of the moe workload (defaults: the shipped
/// experiments/energy/moe_3d.toml and gpu_h100_sxm.toml).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCost {
    #[serde(default)]
    tiers: Option<PathBuf>,
    #[serde(default)]
    gpu: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnergy {
    table: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMvm {
    /// Number of random input vectors per trial.
    inputs: u32,
}

/// One sweep axis: its name, raw values and display labels.
#[derive(Clone, Debug)]
pub struct SweepAxis {
    pub name: String,
    pub values: Vec<toml::Value>,
    pub labels: Vec<String>,
}

/// Adaptive trials: each sweep point runs batches of the experiment's trial count, with the next
/// global trial indices (the same random numbers a larger run would draw), until the half-width of
/// the mean's trial-to-trial interval is at most `half_width` at every time, or `max_trials`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adaptive {
    pub half_width: f64,
    pub max_trials: u32,
}

/// A validated experiment: nothing here can fail at run time for a reason the file controls.
#[derive(Clone, Debug)]
pub struct Experiment {
    pub file: PathBuf,
    pub sha256: String,
    pub name: String,
    pub description: String,
    pub workload: WorkloadKind,
    pub seed: u64,
    /// All sweep points share the RNG key (common random numbers; `common_random_numbers`).
    pub common_random_numbers: bool,
    /// Tail-risk threshold (`tail_below`), if the file sets one.
    pub tail_below: Option<f64>,
    /// Adaptive trials (`aimc run --ci-halfwidth X`): more trials per point until the mean's
    /// interval is narrow enough at every time, or a cap.
    pub adaptive: Option<Adaptive>,
    pub trials: u32,
    pub confidence: f64,
    pub ci_half_width: f64,
    pub weight_error_trials: u32,
    /// Classifier trials whose layers' MVM error and saturation are measured (the first ones).
    pub layer_insight_trials: u32,
    /// Global index of the first trial this run covers (non-zero for a shard).
    pub first_trial: u32,
    pub first_weight_error_trial: u32,
    pub shard: Option<crate::report::results::Shard>,
    pub times: Vec<f64>,
    pub axes: Vec<SweepAxis>,
    pub points: Vec<SweepPoint>,
    pub layers: Vec<Linear>,
    pub activation: Activation,
    /// The activation after each layer (classifier).
    pub activations: Vec<Activation>,
    /// Which layers stay digital (classifier; `model.digital`).
    pub digital: Vec<bool>,
    pub data: Option<Dataset>,
    /// A classifier's floating-point (f64) accuracy on `data`: (correct, samples), computed once
    /// here for every sweep point, chunk and the report.
    pub fp_correct: Option<(u64, u64)>,
    pub mvm_inputs: u32,
    /// Kernel workloads: the point set, data set or Q/K/V.
    pub kernel_data: Option<crate::workload::kernel::KernelData>,
    /// The moe workload's cost tables (3D tiers, GPU).
    pub moe_tables: Option<(crate::arch::cost::TierCostTable, crate::arch::cost::GpuTable)>,
    pub energy: CostTable,
    /// Another simulator's numbers to put beside this run's (`[reference]`).
    pub reference: Option<reference::Reference>,
    /// The resolved configuration, recorded in the results.
    pub resolved: serde_json::Value,
}

/// Axis names that are not device or periphery fields.
const SPECIAL_AXES: [&str; 4] = ["t", "gdc", "tile", "model"];
/// Friendly aliases for periphery fields.
const ALIASES: [(&str, &str); 2] = [("dac_bits", "inp_res_bits"), ("adc_bits", "out_res_bits")];

/// Largest `[mvm] inputs` × matrix inputs: the random inputs are held in memory at once.
const MAX_MVM_INPUT_VALUES: u64 = 1 << 28;

fn set_field<T: serde::Serialize + serde::de::DeserializeOwned>(obj: &mut T, section: &str, field: &str, value: &toml::Value) -> Result<(), String> {
    let mut table = toml::Table::try_from(&*obj).map_err(|e| e.to_string())?;
    if !table.contains_key(field) {
        let known: Vec<_> = table.keys().cloned().collect();
        return Err(format!("{section}.{field}: unknown field; known fields: {}", known.join(", ")));
    }
    table.insert(field.to_string(), value.clone());
    *obj = table.try_into().map_err(|e: toml::de::Error| format!("{section}.{field} = {value}: {}", e.message().trim()))?;
    Ok(())
}

fn value_label(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn parse_tile_str(s: &str) -> Result<TileShape, String> {
    let (a, b) = s.split_once(['x', 'X']).ok_or_else(|| format!("tile {s:?}: expected \"INPUTSxOUTPUTS\", e.g. \"512x512\""))?;
    let (max_in, max_out) = (
        a.trim().parse::<u32>().map_err(|_| format!("tile {s:?}: inputs must be an integer"))?,
        b.trim().parse::<u32>().map_err(|_| format!("tile {s:?}: outputs must be an integer"))?,
    );
    check_tile(TileShape { max_in, max_out })
}

fn check_tile(t: TileShape) -> Result<TileShape, String> {
    if t.max_in == 0 || t.max_out == 0 || t.max_in > MAX_TILE_IN {
        return Err(format!("tile {}x{}: inputs must be 1..={MAX_TILE_IN} and outputs >= 1", t.max_in, t.max_out));
    }
    Ok(t)
}

fn parse_gdc(v: &toml::Value) -> Result<Gdc, String> {
    v.clone()
        .try_into::<Gdc>()
        .map_err(|_| format!("gdc = {v}: use \"off\", \"readout\", \"exact_reference\", \"readout_per_column\" or \"exact_reference_per_column\""))
}

/// A data set from a feature matrix and a label vector (n values, integers >= 0); `xs` names the
/// features and `ys` the labels in errors.
fn labelled(x: io::Matrix, y: io::Matrix, scale: f32, xs: &str, ys: &str) -> Result<Dataset, String> {
    if y.data.len() != x.rows {
        return Err(format!("{ys} holds {} labels but {xs} has {} rows", y.data.len(), x.rows));
    }
    let labels = y
        .data
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            if v >= 0.0 && v.fract() == 0.0 && v < u32::MAX as f32 {
                Ok(v as u32)
            } else {
                Err(format!("{ys}: row {i} has label {v}; labels are integers >= 0"))
            }
        })
        .collect::<Result<Vec<u32>, String>>()?;
    Ok(Dataset { x: x.data.iter().map(|v| v / scale).collect(), labels, n_features: x.cols })
}

/// The `[data]` set: a CSV (features, then the label; `header` says whether the first line names
/// the columns), a .npy feature matrix [n, features] with `labels` a .npy of n integer labels, or
/// a .npz holding both (arrays `features` and `labels`, default "x" and "y"); features divided by
/// `scale`, then `rows` start..end.
fn read_data(d: &RawData, resolve: &dyn Fn(&Path) -> PathBuf) -> Result<(Dataset, PathBuf), String> {
    let data_path = resolve(&d.path);
    if !(d.scale.is_finite() && d.scale > 0.0) {
        return Err(format!("data.scale = {}: must be > 0", d.scale));
    }
    let ext = data_path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if ext != "npz" && d.features.is_some() {
        return Err("data.features: names an array inside a .npz; remove it for a CSV or .npy".into());
    }
    if d.header && matches!(ext, "npy" | "npz") {
        return Err("data.header: only for CSV files".into());
    }
    // The matrix reader speaks of weights; these are features and labels.
    let as_data = |e: crate::workload::WorkloadError, what: &str| e.to_string().replace("weights must be finite", &format!("{what} must be finite"));
    let mut ds = match (ext, &d.labels) {
        ("npy", None) => return Err(format!("data.path = {}: a .npy holds features only; give data.labels = \"labels.npy\" too", data_path.display())),
        ("npy", Some(l)) => {
            let x = io::read_matrix(&data_path, None).map_err(|e| format!("data.path: {}", as_data(e, "features")))?;
            let lp = resolve(l);
            let y = io::read_matrix(&lp, None).map_err(|e| format!("data.labels: {}", as_data(e, "labels")))?;
            labelled(x, y, d.scale, &data_path.display().to_string(), &format!("data.labels: {}", lp.display()))?
        }
        ("npz", l) => {
            let (xn, yn) = (d.features.clone().unwrap_or_else(|| "x".into()), l.as_ref().map_or("y".into(), |p| p.display().to_string()));
            let x = io::read_npz_array(&data_path, &xn).map_err(|e| format!("data.features: {}", as_data(e, "features")))?;
            let y = io::read_npz_array(&data_path, &yn).map_err(|e| format!("data.labels: {}", as_data(e, "labels")))?;
            labelled(x, y, d.scale, &format!("{} array {xn}", data_path.display()), &format!("data.labels: {} array {yn}", data_path.display()))?
        }
        (_, None) => io::read_csv_with(&data_path, d.scale, d.header).map_err(|e| format!("data.path: {e}"))?,
        (_, Some(_)) => return Err("data.labels: only with a .npy or .npz feature file (a CSV has its labels in the last column)".into()),
    };
    if let Some(r) = &d.rows {
        let &[a, b] = r.as_slice() else {
            return Err(format!("data.rows = {r:?}: give two numbers, [start, end] (rows start..end, end excluded)"));
        };
        if a >= b || b > ds.len() {
            return Err(format!("data.rows = [{a}, {b}]: {} has {} rows; need start < end <= {}", data_path.display(), ds.len(), ds.len()));
        }
        ds = ds.rows(a, b);
    }
    Ok((ds, data_path))
}

/// The workload's name as written in experiment files.
pub fn workload_name(w: WorkloadKind) -> &'static str {
    w.name()
}

/// Reads or generates the attention workload's Q, K, V (each `[heads][n][d]`).
fn attention_data(a: &RawAttention, resolve: &dyn Fn(&Path) -> PathBuf) -> Result<crate::workload::kernel::KernelData, String> {
    if a.heads == 0 {
        return Err("attention.heads = 0: must be >= 1".into());
    }
    let (q, k, v, n, d) = match (&a.q, &a.k, &a.v) {
        (None, None, None) => {
            if a.n == 0 || a.d == 0 {
                return Err(format!("attention.n = {}, attention.d = {}: give both (>= 1) to generate Q, K, V, or q, k, v = \"....npy\"", a.n, a.d));
            }
            if a.heads * a.n * a.d > MAX_ATTENTION_VALUES {
                return Err(format!("attention: heads x n x d = {} values per tensor; at most {MAX_ATTENTION_VALUES}", a.heads * a.n * a.d));
            }
            let std = a.qk_std.unwrap_or((a.d as f64).powf(-0.25));
            if !(std > 0.0 && std.is_finite()) {
                return Err(format!("attention.qk_std = {std}: must be > 0"));
            }
            let (q, k, v) = crate::features::attention::synthetic_qkv(a.heads, a.n, a.d, std, a.data_seed);
            (q, k, v, a.n, a.d)
        }
        (Some(qp), Some(kp), Some(vp)) => {
            if a.qk_std.is_some() {
                return Err("attention.qk_std: only for generated Q/K/V; remove it (the .npy files are used as they are)".into());
            }
            let load = |name: &str, p: &Path| -> Result<Matrix, String> {
                let path = resolve(p);
                let m = io::read_matrix(&path, None).map_err(|e| format!("attention.{name}: {e}"))?;
                if m.rows % a.heads != 0 {
                    return Err(format!(
                        "attention.{name}: {} has {} rows, not a multiple of heads = {} (rows are heads x n, head-major)",
                        path.display(),
                        m.rows,
                        a.heads
                    ));
                }
                Ok(m)
            };
            let (q, k, v) = (load("q", qp)?, load("k", kp)?, load("v", vp)?);
            if q.cols != k.cols {
                return Err(format!("attention.q and attention.k: d differs ({} vs {} columns); Q and K need the same d", q.cols, k.cols));
            }
            if q.rows != k.rows || q.rows != v.rows {
                return Err(format!("attention: q, k, v have {}, {} and {} rows; they need the same heads x n", q.rows, k.rows, v.rows));
            }
            if v.cols != q.cols {
                return Err(format!("attention.v: {} columns; this workload needs V of the same d as Q and K ({})", v.cols, q.cols));
            }
            if (a.n != 0 && a.n * a.heads != q.rows) || (a.d != 0 && a.d != q.cols) {
                return Err(format!("attention.n = {}, d = {}: the files hold n = {}, d = {}; remove n and d or fix them", a.n, a.d, q.rows / a.heads, q.cols));
            }
            let n = q.rows / a.heads;
            (q.data, k.data, v.data, n, q.cols)
        }
        _ => return Err("attention: give all of q, k, v (.npy, [heads x n, d] each) or none (generated)".into()),
    };
    Ok(crate::workload::kernel::KernelData::Attention { heads: a.heads, n, d, causal: a.causal, q, k, v })
}

impl Experiment {
    /// What the workloads read of this experiment besides the sweep point.
    pub fn inputs(&self) -> crate::workload::Inputs<'_> {
        crate::workload::Inputs {
            workload: self.workload,
            seed: self.seed,
            common_random_numbers: self.common_random_numbers,
            times: &self.times,
            layers: &self.layers,
            activations: &self.activations,
            data: self.data.as_ref(),
            fp_correct: self.fp_correct,
            mvm_inputs: self.mvm_inputs,
            kernel_data: self.kernel_data.as_ref(),
            moe_tables: self.moe_tables.as_ref(),
        }
    }

    /// The workload's per-trial metric: wording, trials.csv column, direction.
    pub fn metric(&self) -> crate::workload::Metric {
        (self.workload.spec().metric)(&self.inputs(), &self.points[0])
    }

    /// Restricts the run to shard `index` of `count`: balanced contiguous trial ranges, the same
    /// global trial indices (so the same random numbers) as the single run.
    pub fn apply_shard(&mut self, index: u32, count: u32) -> Result<(), String> {
        if count == 0 || index >= count {
            return Err(format!("--shard {index}/{count}: need 0 <= K < N, e.g. --shard 0/4 .. --shard 3/4"));
        }
        if count > self.trials {
            return Err(format!("--shard {index}/{count}: more shards than the {} trials", self.trials));
        }
        use crate::crossbar::{split_len, split_start};
        let (t, w) = (self.trials, self.weight_error_trials);
        let shard = crate::report::results::Shard {
            index,
            count,
            first_trial: split_start(t, count, index),
            trials: split_len(t, count, index),
            first_weight_error_trial: if w > 0 { split_start(w, count, index) } else { 0 },
            weight_error_trials: if w > 0 { split_len(w, count, index) } else { 0 },
        };
        self.first_trial = shard.first_trial;
        self.trials = shard.trials;
        self.first_weight_error_trial = shard.first_weight_error_trial;
        self.weight_error_trials = shard.weight_error_trials;
        // The layer insight runs the first trials, once: in shard 0.
        if index != 0 {
            self.layer_insight_trials = 0;
        }
        self.resolved["shard"] = serde_json::to_value(&shard).unwrap();
        self.shard = Some(shard);
        Ok(())
    }

    /// Reads and validates an experiment file.
    pub fn load(path: &Path) -> Result<Experiment, ExperimentError> {
        let bad = |msg: String| ExperimentError::Invalid { file: path.display().to_string(), msg };
        let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read the experiment file ({e}); check the path")))?;
        let text = String::from_utf8(bytes).map_err(|_| bad("the experiment file is not UTF-8 text".into()))?;
        Self::from_text(&text, path)
    }

    /// Validates an experiment document; `path` names it in errors and results, and relative
    /// paths inside it are resolved from its directory (the working directory for a bare name).
    /// `aimc weights` and `aimc mlp` build their documents from flags and come through here too.
    pub fn from_text(text: &str, path: &Path) -> Result<Experiment, ExperimentError> {
        let file = path.display().to_string();
        let bad = |msg: String| ExperimentError::Invalid { file: file.clone(), msg };
        let bytes = text.as_bytes();
        let raw: RawExperiment = toml::from_str(text).map_err(|e| bad(format!("{}", e).trim().replace('\n', " ")))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };

        if raw.trials < 2 {
            return Err(bad(format!("trials = {}: an interval over trials needs at least 2 (1000 or more for tight intervals)", raw.trials)));
        }
        // The name becomes a directory under results/: one plain path component.
        if raw.name.is_empty() || raw.name.starts_with('.') || !raw.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
            return Err(bad(format!("name = {:?}: use letters, digits, '_', '-' and '.' (not first); it names the results directory", raw.name)));
        }
        if !(raw.confidence > 0.0 && raw.confidence < 1.0) {
            return Err(bad(format!("confidence = {}: must be in (0, 1), e.g. 0.95", raw.confidence)));
        }
        if let Some(t) = raw.tail_below.filter(|t| !t.is_finite()) {
            return Err(bad(format!("tail_below = {t}: must be a finite metric value, e.g. 0.9 for 90 % accuracy")));
        }
        if !(raw.ci_half_width > 0.0 && raw.ci_half_width.is_finite()) {
            return Err(bad(format!("ci_half_width = {}: must be > 0 (e.g. 0.001 for ±0.1 points of accuracy)", raw.ci_half_width)));
        }

        // Device: a model by name, then any field overridden.
        let mut device_t = raw.device.clone();
        let name = match device_t.remove("model") {
            None => "pcm".to_string(),
            Some(toml::Value::String(s)) => s,
            Some(v) => return Err(bad(format!("device.model = {v}: must be a string, one of {}", MODEL_NAMES.join(", ")))),
        };
        let mut device =
            DeviceModel::by_name(&name).ok_or_else(|| bad(format!("device.model = {name:?}: unknown model; use one of {}", MODEL_NAMES.join(", "))))?;
        for (k, v) in &device_t {
            set_field(&mut device, "device", k, v).map_err(&bad)?;
        }
        device.validate().map_err(&bad)?;
        let periphery: Periphery = raw.periphery.clone().try_into().map_err(|e: toml::de::Error| bad(format!("[periphery]: {}", e.message().trim())))?;
        periphery.validate().map_err(&bad)?;
        let tile = check_tile(raw.tile.unwrap_or_default()).map_err(&bad)?;

        // Kernel workloads: the feature map (each field also a sweep axis).
        let wl = raw.workload;
        let kernel_base: Option<crate::workload::kernel::KernelSettings> = if wl.is_kernel() {
            let t = raw.kernel.clone().ok_or_else(|| {
                bad(format!("the {} workload needs a [kernel] section, e.g. kernel = \"rbf\", projection = \"rff\", features = 128", workload_name(wl)))
            })?;
            Some(crate::workload::kernel::KernelSettings::from_table(&t).map_err(&bad)?)
        } else if raw.kernel.is_some() {
            return Err(bad("[kernel] is for the kernel_error, kernel_ridge and attention workloads; remove it or change workload".into()));
        } else {
            None
        };
        if raw.attention.is_some() && wl != WorkloadKind::Attention {
            return Err(bad("[attention] is for workload = \"attention\"; remove it or change workload".into()));
        }
        let kernel_fields = kernel_base.as_ref().map(|k| toml::Table::try_from(k).unwrap()).unwrap_or_default();
        let moe_base: Option<(crate::workload::moe::MoeSettings, crate::arch::tiers::Architecture)> = if wl == WorkloadKind::Moe {
            let m = raw
                .moe
                .clone()
                .ok_or_else(|| bad("the moe workload needs a [moe] section: d_model, d_ff, experts, top_k (and tokens, routing, mapping, ...)".into()))?;
            let a = raw.arch.clone().ok_or_else(|| bad("the moe workload needs an [arch] section: tiles, tiers, rows, cols (e.g. 16, 8, 512, 512)".into()))?;
            let m: crate::workload::moe::MoeSettings = m.try_into().map_err(|e: toml::de::Error| bad(format!("[moe]: {}", e.message().trim())))?;
            let a: crate::arch::tiers::Architecture = a.try_into().map_err(|e: toml::de::Error| bad(format!("[arch]: {}", e.message().trim())))?;
            Some((m, a))
        } else {
            if raw.moe.is_some() || raw.arch.is_some() || raw.cost.is_some() {
                return Err(bad("[moe], [arch] and [cost] are for workload = \"moe\"; remove them or change workload".into()));
            }
            None
        };
        let (moe_fields, arch_fields) = match &moe_base {
            Some((m, a)) => (toml::Table::try_from(m).unwrap(), toml::Table::try_from(a).unwrap()),
            None => (toml::Table::new(), toml::Table::new()),
        };

        // Sweep: time is inside every run; the other axes form the cartesian product.
        let mut times = vec![];
        let mut axes = vec![];
        for (k, v) in &raw.sweep {
            let arr = v.as_array().ok_or_else(|| bad(format!("sweep.{k} = {v}: must be an array of values, e.g. {k} = [..]")))?;
            if arr.is_empty() {
                return Err(bad(format!("sweep.{k}: the list is empty; give at least one value or remove the axis")));
            }
            if k == "t" {
                for x in arr {
                    let secs = match x {
                        toml::Value::String(s) => parse_time(s),
                        toml::Value::Integer(i) => parse_time(&i.to_string()),
                        toml::Value::Float(f) => parse_time(&f.to_string()),
                        other => Err(format!("{other} is not a time")),
                    }
                    .map_err(|m| bad(format!("sweep.t: {m}")))?;
                    times.push(secs);
                }
                continue;
            }
            let name = ALIASES.iter().find(|(a, _)| a == k).map(|(_, f)| f.to_string()).unwrap_or(k.clone());
            if axes.iter().any(|a: &SweepAxis| a.name == name) {
                return Err(bad(format!("sweep.{k}: the same field as another axis ({name}; dac_bits = inp_res_bits, adc_bits = out_res_bits); keep one")));
            }
            axes.push(SweepAxis { name, values: arr.clone(), labels: arr.iter().map(value_label).collect() });
        }
        if times.is_empty() {
            return Err(bad("sweep.t is missing: give the inference times, e.g. t = [\"1s\", \"1h\", \"1d\", \"1y\"]".into()));
        }
        if times.len() > 65_535 {
            return Err(bad("sweep.t: at most 65535 times".into()));
        }
        let n_points: usize = axes.iter().map(|a| a.values.len()).product();
        if n_points > 10_000 {
            return Err(bad(format!("the sweep has {n_points} points; at most 10000 (split it into several files)")));
        }
        let dev_fields = toml::Table::try_from(&device).unwrap();
        let io_fields = toml::Table::try_from(&periphery).unwrap();
        let mut points = Vec::with_capacity(n_points);
        for index in 0..n_points {
            let mut p = SweepPoint {
                index,
                labels: vec![],
                device: device.clone(),
                periphery: periphery.clone(),
                gdc: raw.gdc,
                tile,
                kernel: kernel_base.clone(),
                moe: moe_base.clone(),
                layer_noise: vec![],
            };
            let mut rem = index;
            // Last axis varies fastest.
            let mut choice = vec![0; axes.len()];
            for (ai, a) in axes.iter().enumerate().rev() {
                choice[ai] = rem % a.values.len();
                rem /= a.values.len();
            }
            for (ai, a) in axes.iter().enumerate() {
                let v = &a.values[choice[ai]];
                let key = format!("sweep.{}", a.name);
                if a.name == "model" {
                    let s = v.as_str().ok_or_else(|| bad(format!("{key}: {v} must be a model name string")))?;
                    let mut d = DeviceModel::by_name(s).ok_or_else(|| bad(format!("{key}: unknown model {s:?}; use one of {}", MODEL_NAMES.join(", "))))?;
                    for (k, v) in &device_t {
                        set_field(&mut d, "device", k, v).map_err(&bad)?;
                    }
                    p.device = d;
                } else if a.name == "name" {
                    return Err(bad(format!("{key}: to compare device models sweep `model`, e.g. model = [\"pcm\", \"hermes\"]")));
                } else if a.name == "gdc" {
                    p.gdc = parse_gdc(v).map_err(|m| bad(format!("{key}: {m}")))?;
                } else if a.name == "tile" {
                    let s = v.as_str().ok_or_else(|| bad(format!("{key}: {v} must be a string like \"512x512\"")))?;
                    p.tile = parse_tile_str(s).map_err(|m| bad(format!("{key}: {m}")))?;
                } else if let (true, Some(k)) = (kernel_fields.contains_key(&a.name), p.kernel.as_mut()) {
                    set_field(k, "sweep", &a.name, v).map_err(&bad)?;
                } else if a.name == "accuracy" && p.moe.is_some() {
                    return Err(bad(format!("{key}: moe.accuracy sets what the metric is; it cannot be swept (use two files)")));
                } else if let (true, Some((m, _))) = (moe_fields.contains_key(&a.name), p.moe.as_mut()) {
                    set_field(m, "sweep", &a.name, v).map_err(&bad)?;
                } else if let (true, Some((_, ar))) = (arch_fields.contains_key(&a.name), p.moe.as_mut()) {
                    set_field(ar, "sweep", &a.name, v).map_err(&bad)?;
                } else if dev_fields.contains_key(&a.name) {
                    set_field(&mut p.device, "sweep", &a.name, v).map_err(&bad)?;
                    p.device.validate().map_err(|m| bad(format!("{key}: {m}")))?;
                } else if io_fields.contains_key(&a.name) {
                    set_field(&mut p.periphery, "sweep", &a.name, v).map_err(&bad)?;
                    p.periphery.validate().map_err(|m| bad(format!("{key}: {m}")))?;
                } else {
                    let mut kf = if kernel_fields.is_empty() {
                        String::new()
                    } else {
                        format!(", a kernel field ({})", kernel_fields.keys().cloned().collect::<Vec<_>>().join(", "))
                    };
                    if !moe_fields.is_empty() {
                        let names: Vec<String> = moe_fields.keys().chain(arch_fields.keys()).cloned().collect();
                        kf.push_str(&format!(", a moe or arch field ({})", names.join(", ")));
                    }
                    return Err(bad(format!(
                        "{key}: unknown sweep axis; use t, {}{kf}, a device field ({}) or a periphery field ({}; aliases dac_bits, adc_bits)",
                        SPECIAL_AXES[1..].join(", "),
                        dev_fields.keys().filter(|k| *k != "name").cloned().collect::<Vec<_>>().join(", "),
                        io_fields.keys().cloned().collect::<Vec<_>>().join(", ")
                    )));
                }
                p.labels.push((a.name.clone(), a.labels[choice[ai]].clone()));
            }
            points.push(p);
        }

        // Model and data.
        let reference = match &raw.reference {
            None => None,
            Some(r) => {
                if raw.workload != WorkloadKind::Classifier {
                    return Err(bad("[reference] compares classifier accuracies; remove it or use workload = \"classifier\"".into()));
                }
                let (m, sd) = (r.mean_tol_pp.unwrap_or(reference::DEFAULT_MEAN_TOL_PP), r.std_rel_tol.unwrap_or(reference::DEFAULT_STD_REL_TOL));
                if !(m > 0.0 && sd > 0.0) {
                    return Err(bad(format!("[reference] mean_tol_pp = {m}, std_rel_tol = {sd}: both must be > 0")));
                }
                Some(reference::Reference::load(&resolve(&r.path), m, sd).map_err(|e| bad(format!("reference.path: {e}")))?)
            }
        };
        let no_model = RawModel {
            path: PathBuf::new(),
            tensor: None,
            layers: vec![],
            input_shape: None,
            allow_extra: false,
            activation: Activation::None,
            activations: None,
            digital: vec![],
        };
        let model = match (&raw.model, wl.is_kernel() || wl == WorkloadKind::Moe) {
            (Some(m), false) => m,
            (None, false) => return Err(bad(format!("the {} workload needs a [model] section with path = \"...\"", workload_name(wl)))),
            (Some(_), true) => return Err(bad(format!("the {} workload programs a random projection ([kernel]); remove [model]", workload_name(wl)))),
            (None, true) => &no_model,
        };
        let model_path = resolve(&model.path);
        let mut kernel_data = None;
        // Set by `[model] layers` tables (classifier).
        let mut layer_activations: Option<Vec<Activation>> = None;
        let mut layer_digital: Vec<String> = Vec::new();
        let (layers, data, mvm_inputs) = match raw.workload {
            WorkloadKind::KernelError | WorkloadKind::KernelRidge => {
                let d = raw.data.as_ref().ok_or_else(|| {
                    bad(format!("the {} workload needs a [data] section: a labelled CSV (features, then the integer label)", workload_name(wl)))
                })?;
                let (ds, data_path) = read_data(d, &resolve).map_err(&bad)?;
                if ds.len() < 8 {
                    return Err(bad(format!(
                        "data.path: {} has {} rows; the train/test split (every 4th row tests) needs at least 8",
                        data_path.display(),
                        ds.len()
                    )));
                }
                kernel_data = Some(crate::workload::kernel::split_standardise(&ds.x, &ds.labels, ds.n_features));
                (vec![], None, 0)
            }
            WorkloadKind::Moe => {
                // A labelled data set makes the layer a classifier: its rows are the tokens and
                // the experts' outputs the class logits.
                let data = match &raw.data {
                    Some(d) => Some(read_data(d, &resolve).map_err(&bad)?.0),
                    None => None,
                };
                let inputs: Option<std::sync::Arc<[f32]>> = data.as_ref().map(|ds| ds.x.clone().into());
                for p in &mut points {
                    let at = if p.labels.is_empty() { String::new() } else { format!("sweep point {}: ", p.series()) };
                    let (m, a) = p.moe.as_mut().expect("moe points carry their settings");
                    if let Some(ds) = &data {
                        if ds.n_features != m.d_model as usize {
                            return Err(bad(format!(
                                "{at}the data set has {} features per row but moe.d_model = {}; they must match",
                                ds.n_features, m.d_model
                            )));
                        }
                        if let Some(&l) = ds.labels.iter().find(|&&l| l >= m.out()) {
                            return Err(bad(format!(
                                "{at}the data set has label {l} but the experts have {} outputs; set moe.d_out to the class count",
                                m.out()
                            )));
                        }
                        if !m.accuracy {
                            return Err(bad(format!("{at}[data] makes the moe layer a classifier, which needs moe.accuracy = true")));
                        }
                        m.tokens = ds.labels.len() as u32;
                        m.inputs = inputs.clone();
                    }
                    *a = m.resolve(a).map_err(|e| bad(format!("{at}{e}")))?;
                    if let Some(path) = &m.model {
                        m.model = Some(resolve(path));
                        if m.accuracy {
                            crate::workload::moe::load_weights(m).map_err(|e| bad(format!("{at}{e}")))?;
                        }
                    }
                }
                (vec![], data, 0)
            }
            WorkloadKind::Attention => {
                let a = raw
                    .attention
                    .as_ref()
                    .ok_or_else(|| bad("the attention workload needs an [attention] section: heads, n, d (generated Q/K/V) or q, k, v = \"....npy\"".into()))?;
                kernel_data = Some(attention_data(a, &resolve).map_err(&bad)?);
                (vec![], None, 0)
            }
            WorkloadKind::Classifier => {
                let raw_model = model;
                let specs: Vec<RawLayer> = raw_model.layers.iter().enumerate().map(|(i, v)| RawLayer::parse(i, v)).collect::<Result<_, _>>().map_err(&bad)?;
                let opt = io::StateDictOptions { layers: specs.iter().map(|l| l.name.clone()).collect(), allow_extra: raw_model.allow_extra };
                let mut layers = io::read_state_dict_with(&model_path, &opt).map_err(|e| bad(format!("model.path: {e}")))?;
                let settings: Vec<crate::workload::ConvSettings> =
                    specs.iter().enumerate().map(|(i, l)| l.settings(i)).collect::<Result<_, _>>().map_err(&bad)?;
                crate::workload::set_geometry(&mut layers, raw_model.input_shape, &settings).map_err(|e| bad(format!("model: {e}")))?;
                if specs.iter().any(|l| l.activation.is_some()) {
                    if raw_model.activations.is_some() {
                        return Err(bad("model.activations and activations in model.layers tables: give them in one place".into()));
                    }
                    let mut acts = crate::workload::between(layers.len(), raw_model.activation);
                    for (a, l) in acts.iter_mut().zip(&specs) {
                        *a = l.activation.unwrap_or(*a);
                    }
                    layer_activations = Some(acts);
                }
                layer_digital = specs.iter().filter(|l| l.digital).map(|l| l.name.clone()).collect();
                let d = raw.data.as_ref().ok_or_else(|| bad("the classifier workload needs a [data] section with path = \"...csv\"".into()))?;
                let (ds, _) = read_data(d, &resolve).map_err(&bad)?;
                crate::workload::check_shapes(&layers, &ds).map_err(|e| bad(format!("model/data mismatch: {e}")))?;
                if let Some(a) = &raw_model.activations {
                    if a.len() != layers.len() {
                        let names: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
                        return Err(bad(format!(
                            "model.activations has {} entries but the model has {} layers ({}); give one per layer",
                            a.len(),
                            layers.len(),
                            names.join(", ")
                        )));
                    }
                }
                for d in &raw_model.digital {
                    if !layers.iter().any(|l| &l.name == d) {
                        let names: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
                        return Err(bad(format!("model.digital: {d:?} is not a layer of the model; its layers are {}", names.join(", "))));
                    }
                }
                (layers, Some(ds), 0)
            }
            WorkloadKind::WeightError | WorkloadKind::MvmError => {
                let m: Matrix = io::read_matrix(&model_path, model.tensor.as_deref()).map_err(|e| bad(format!("model.path: {e}")))?;
                let inputs = match (raw.workload, &raw.mvm) {
                    (WorkloadKind::MvmError, Some(mv)) if mv.inputs > 0 && (mv.inputs as u64) * (m.cols as u64) <= MAX_MVM_INPUT_VALUES => mv.inputs,
                    (WorkloadKind::MvmError, Some(mv)) if mv.inputs > 0 => {
                        return Err(bad(format!(
                            "mvm.inputs = {}: {} inputs of {} values exceed {MAX_MVM_INPUT_VALUES} values; use fewer inputs",
                            mv.inputs, mv.inputs, m.cols
                        )))
                    }
                    (WorkloadKind::MvmError, _) => return Err(bad("the mvm_error workload needs [mvm] inputs = N (N >= 1 random input vectors)".into())),
                    _ => 0,
                };
                let rows = m.rows;
                let l = Linear::dense(model.tensor.clone().unwrap_or_else(|| "weight".into()), m, vec![0.0; rows]);
                (vec![l], None, inputs)
            }
        };
        if let Some(kd) = &kernel_data {
            for p in &points {
                let k = p.kernel.as_ref().expect("kernel workloads have kernel settings");
                let at = if p.labels.is_empty() { String::new() } else { format!("sweep point {}: ", p.series()) };
                k.validate(kd.d()).map_err(|m| bad(format!("{at}{m}")))?;
                if wl == WorkloadKind::Attention && k.kernel != crate::features::Kernel::Softmax {
                    return Err(bad(format!("{at}kernel.kernel = {:?}: attention approximates softmax(QKᵀ/√d); use kernel = \"softmax\"", k.kernel)));
                }
            }
        }
        // The noise budget: every point expanded into its configurations along a `budget` axis.
        if let Some(b) = &raw.budget {
            if !matches!(wl, WorkloadKind::Classifier | WorkloadKind::MvmError) {
                return Err(bad(format!("[budget] is for the classifier and mvm_error workloads, not {}", workload_name(wl))));
            }
            if !raw.common_random_numbers {
                return Err(bad("[budget] needs common_random_numbers = true: the attribution pairs every configuration trial by trial".into()));
            }
            if axes.iter().any(|a| a.name == "budget") {
                return Err(bad("sweep.budget: the budget axis is made by [budget]; remove it from [sweep]".into()));
            }
            let first = &points[0];
            let sources: Vec<crate::workload::budget::Source> = match &b.sources {
                Some(s) if s.is_empty() => return Err(bad("budget.sources = []: list at least one source, or remove it for every active one".into())),
                Some(s) => s.clone(),
                None => crate::workload::budget::ALL.iter().copied().filter(|s| s.active(&first.device, &first.periphery)).collect(),
            };
            if sources.is_empty() {
                return Err(bad("[budget]: no noise source is on in this configuration; nothing to attribute".into()));
            }
            let n_layers = if layers.len() > 1 { layers.len() } else { 0 };
            let knobs = if b.sensitivity { crate::workload::budget::knobs(&points[0].device, &points[0].periphery) } else { vec![] };
            let names = crate::workload::budget::labels(&sources, n_layers, &knobs);
            points = crate::workload::budget::expand(points, &sources, n_layers, &knobs);
            axes.push(SweepAxis { name: "budget".into(), values: names.iter().map(|n| toml::Value::String(n.clone())).collect(), labels: names });
        }
        // Digital layers: floating point in every configuration (an ideal device and perfect
        // converters for that layer), the budget's included.
        let digital_names: Vec<String> = model.digital.iter().chain(&layer_digital).cloned().collect();
        if !digital_names.is_empty() {
            for p in &mut points {
                p.layer_noise.resize(layers.len(), None);
                for (k, l) in layers.iter().enumerate() {
                    if digital_names.contains(&l.name) {
                        p.layer_noise[k] = Some((DeviceModel::ideal(), Periphery::perfect()));
                    }
                }
            }
        }

        let moe_tables = match (&moe_base, &raw.cost) {
            (None, _) => None,
            (Some(_), c) => {
                let read = |field: &str, p: &Option<PathBuf>| -> Result<Option<String>, ExperimentError> {
                    match p {
                        None => Ok(None),
                        Some(p) => {
                            let p = resolve(p);
                            std::fs::read_to_string(&p).map(Some).map_err(|e| bad(format!("cost.{field}: cannot read {} ({e})", p.display())))
                        }
                    }
                };
                let (t, g) = (read("tiers", &c.as_ref().and_then(|c| c.tiers.clone()))?, read("gpu", &c.as_ref().and_then(|c| c.gpu.clone()))?);
                let tiers = match t {
                    None => crate::arch::cost::TierCostTable::default_table(),
                    Some(text) => crate::arch::cost::TierCostTable::parse(&text).map_err(|m| bad(format!("cost.tiers: {m}")))?,
                };
                let gpu = match g {
                    None => crate::arch::cost::GpuTable::h100_sxm(),
                    Some(text) => crate::arch::cost::GpuTable::parse(&text).map_err(|m| bad(format!("cost.gpu: {m}")))?,
                };
                Some((tiers, gpu))
            }
        };
        let energy = match &raw.energy {
            None => CostTable::default_table(),
            Some(e) => {
                let p = resolve(&e.table);
                let text = std::fs::read_to_string(&p).map_err(|er| bad(format!("energy.table: cannot read {} ({er})", p.display())))?;
                CostTable::parse(&text).map_err(|m| bad(format!("energy.table {}: {m}", p.display())))?
            }
        };
        let sha256 = format!("{:x}", sha2::Sha256::digest(bytes));
        let resolved = serde_json::json!({
            "name": raw.name,
            "workload": raw.workload,
            "seed": raw.seed,
            "trials": raw.trials,
            "confidence": raw.confidence,
            "ci_half_width": raw.ci_half_width,
            "gdc": raw.gdc,
            "weight_error_trials": raw.weight_error_trials,
            "layer_insight_trials": raw.layer_insight_trials,
            "common_random_numbers": raw.common_random_numbers,
            "tail_below": raw.tail_below,
            "kernel": kernel_base,
            "moe": moe_base.as_ref().map(|(m, _)| m),
            "arch": moe_base.as_ref().map(|(_, a)| a),
            "cost_tables": moe_tables.as_ref().map(|(t, g)| serde_json::json!({"tiers": t.name, "gpu": g.name})),
            "attention": raw.attention.as_ref().map(|a| serde_json::json!({"heads": a.heads, "n": a.n, "d": a.d, "causal": a.causal, "qk_std": a.qk_std, "data_seed": a.data_seed,
                "q": a.q.as_ref().map(|p| resolve(p).display().to_string()), "k": a.k.as_ref().map(|p| resolve(p).display().to_string()), "v": a.v.as_ref().map(|p| resolve(p).display().to_string())})),
            "model": { "path": model_path.display().to_string(), "tensor": model.tensor, "activation": model.activation,
                       "activations": layer_activations.as_ref().or(model.activations.as_ref()), "digital": digital_names, "input_shape": model.input_shape,
                       "layers": layers.iter().map(|l| serde_json::json!({"name": l.name, "out": l.weight.rows, "in": l.weight.cols, "conv": l.conv,
                           "mvms_per_sample": l.conv.map_or(1, |c| c.out_hw().0 * c.out_hw().1)})).collect::<Vec<_>>() },
            "data": raw.data.as_ref().map(|d| serde_json::json!({ "path": resolve(&d.path).display().to_string(), "labels": d.labels.as_ref().map(|l| if d.path.extension().is_some_and(|e| e == "npz") { l.display().to_string() } else { resolve(l).display().to_string() }), "features": d.features, "scale": d.scale, "rows": d.rows })),
            "device": device,
            "periphery": periphery,
            "tile": tile,
            "times_s": times,
            "time_labels": times.iter().map(|&t| time_label(t)).collect::<Vec<_>>(),
            "sweep_axes": axes.iter().map(|a| serde_json::json!({"name": a.name, "values": a.labels})).collect::<Vec<_>>(),
            "mvm_inputs": mvm_inputs,
            "reference": reference.as_ref().map(|r| r.file.clone()),
            "energy_table": energy,
        });
        let activations = layer_activations.or_else(|| model.activations.clone()).unwrap_or_else(|| crate::workload::between(layers.len(), model.activation));
        let fp_correct = match (&data, wl) {
            (Some(d), WorkloadKind::Classifier) => Some(crate::workload::fp_accuracy(&layers, &activations, d)),
            _ => None,
        };
        Ok(Experiment {
            fp_correct,
            file: path.to_path_buf(),
            sha256,
            name: raw.name,
            description: raw.description,
            workload: raw.workload,
            seed: raw.seed,
            common_random_numbers: raw.common_random_numbers,
            tail_below: raw.tail_below,
            adaptive: None,
            trials: raw.trials,
            confidence: raw.confidence,
            ci_half_width: raw.ci_half_width,
            weight_error_trials: raw.weight_error_trials.min(raw.trials),
            layer_insight_trials: raw.layer_insight_trials.min(raw.trials),
            first_trial: 0,
            first_weight_error_trial: 0,
            shard: None,
            times,
            axes,
            points,
            activations,
            digital: layers.iter().map(|l| digital_names.contains(&l.name)).collect(),
            layers,
            activation: model.activation,
            kernel_data,
            moe_tables,
            data,
            mvm_inputs,
            energy,
            resolved,
            reference,
        })
    }
}
