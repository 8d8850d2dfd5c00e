//! The experiment file as written: serde structs with `deny_unknown_fields` (a misspelt field is
//! an error that names it) and the defaults of every optional field. Only `super` validates them
//! into an [`super::Experiment`].

use crate::crossbar::{Gdc, TileShape};
use crate::workload::Activation;
use crate::workload::WorkloadKind;
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExperiment {
    pub(super) name: String,
    #[serde(default)]
    pub(super) description: String,
    pub(super) workload: WorkloadKind,
    pub(super) seed: u64,
    pub(super) trials: u32,
    /// Two-level Monte Carlo: reads of each programmed state (trials = programmings × reads).
    #[serde(default = "default_reads")]
    pub(super) reads_per_programming: u32,
    #[serde(default = "default_confidence")]
    pub(super) confidence: f64,
    #[serde(default = "default_half_width")]
    pub(super) ci_half_width: f64,
    #[serde(default = "default_gdc")]
    pub(super) gdc: Gdc,
    /// Trials that also report effective-weight error (classifier); 0 skips it.
    #[serde(default = "default_we_trials")]
    pub(super) weight_error_trials: u32,
    /// Trials (classifier) whose every layer's MVM output error, bound-management repeats and
    /// clipped ADC outputs are measured against floating point; 0 skips it.
    #[serde(default = "default_insight_trials")]
    pub(super) layer_insight_trials: u32,
    /// Every sweep point draws the same random numbers (common random numbers), so differences
    /// between points are paired; false gives each point its own key.
    #[serde(default = "default_crn")]
    pub(super) common_random_numbers: bool,
    /// Tail risk: report P(metric < tail_below) per point (classifiers: default one point below
    /// floating point).
    #[serde(default)]
    pub(super) tail_below: Option<f64>,
    /// Tail risk of a metric where lower is better (a language model's perplexity, an error):
    /// report P(metric > tail_above) per point.
    #[serde(default)]
    pub(super) tail_above: Option<f64>,
    /// A classifier's rows: per test row, the trials that classify it right (row_counts.csv).
    #[serde(default)]
    pub(super) row_counts: bool,
    #[serde(default)]
    pub(super) model: Option<RawModel>,
    pub(super) data: Option<RawData>,
    /// Kernel workloads: the feature map (`crate::workload::kernel::KernelSettings`).
    #[serde(default)]
    pub(super) kernel: Option<toml::Table>,
    /// The attention workload's Q, K, V.
    #[serde(default)]
    pub(super) attention: Option<RawAttention>,
    /// The moe workload: the layer (`crate::workload::moe::MoeSettings`), the architecture
    /// (`crate::arch::tiers::Architecture`) and the cost tables.
    #[serde(default)]
    pub(super) moe: Option<toml::Table>,
    #[serde(default)]
    pub(super) arch: Option<toml::Table>,
    /// The transformer workload: how the state dict runs
    /// (`crate::workload::transformer::TransformerSettings`).
    #[serde(default)]
    pub(super) transformer: Option<toml::Table>,
    #[serde(default)]
    pub(super) cost: Option<RawCost>,
    /// The edge-NPU cost model (`crate::workload::npu::NpuSettings`).
    #[serde(default)]
    pub(super) npu: Option<toml::Table>,
    /// The noise budget: which source costs the metric (`super::budget`).
    #[serde(default)]
    pub(super) budget: Option<crate::workload::budget::BudgetSettings>,
    #[serde(default)]
    pub(super) device: toml::Table,
    #[serde(default)]
    pub(super) periphery: toml::Table,
    /// `[tile]` with `max_in` and `max_out`, or the sweep axis's spelling, `tile = "512x512"`.
    #[serde(default, deserialize_with = "tile_shape")]
    pub(super) tile: Option<TileShape>,
    pub(super) sweep: toml::Table,
    #[serde(default)]
    pub(super) energy: Option<RawEnergy>,
    #[serde(default)]
    pub(super) mvm: Option<RawMvm>,
    #[serde(default)]
    pub(super) reference: Option<RawReference>,
}

/// `[reference]`: another simulator's per-repetition counts to compare with (classifier).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReference {
    pub(super) path: PathBuf,
    #[serde(default)]
    pub(super) mean_tol_pp: Option<f64>,
    #[serde(default)]
    pub(super) std_rel_tol: Option<f64>,
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
fn default_reads() -> u32 {
    1
}

fn default_we_trials() -> u32 {
    100
}
fn default_crn() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawModel {
    pub(super) path: PathBuf,
    #[serde(default)]
    pub(super) tensor: Option<String>,
    /// The layers in order: tensor prefixes ("fc1"), or tables naming one and saying how it
    /// runs (`{ name = "0", activation = "relu", padding = 1, pool = "max" }`, see
    /// [`RawLayer`]); empty: every `PREFIX.weight`, ordered by the keys' numeric index.
    #[serde(default)]
    pub(super) layers: Vec<toml::Value>,
    /// [C, H, W] of one sample (PyTorch's NCHW order): needed when the model has Conv2d layers.
    #[serde(default)]
    pub(super) input_shape: Option<[usize; 3]>,
    /// Leave tensors that are not a used layer's weight or bias unused instead of refusing.
    #[serde(default)]
    pub(super) allow_extra: bool,
    #[serde(default = "default_act")]
    pub(super) activation: Activation,
    /// The activation after each layer, one per layer (default: `activation` between layers,
    /// none after the last).
    #[serde(default)]
    pub(super) activations: Option<Vec<Activation>>,
    /// Layers (by name, e.g. "0" or "fc2") that stay digital: computed in floating point, no
    /// device or converter noise.
    #[serde(default)]
    pub(super) digital: Vec<String>,
}

fn default_act() -> Activation {
    Activation::Relu
}

/// One `[model] layers` table: which tensors, the activation after the layer, whether it stays
/// digital, and for a Conv2d its stride, zero padding and the pooling after the activation
/// (PyTorch's `nn.Conv2d` / `nn.MaxPool2d` / `nn.AvgPool2d` arguments).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLayer {
    pub(super) name: String,
    #[serde(default)]
    pub(super) activation: Option<Activation>,
    #[serde(default)]
    pub(super) digital: bool,
    #[serde(default)]
    pub(super) stride: Option<toml::Value>,
    #[serde(default)]
    pub(super) padding: Option<toml::Value>,
    #[serde(default)]
    pub(super) pool: Option<crate::workload::PoolKind>,
    /// Pooling window (default 2): a side, or [height, width] (a Conv1d's map pools 1 × k).
    #[serde(default)]
    pub(super) pool_size: Option<toml::Value>,
    /// Pooling stride (default: the window, as PyTorch): a step, or [down, across].
    #[serde(default)]
    pub(super) pool_stride: Option<toml::Value>,
    /// Pooling's implicit padding (default 0): a side, or [down, across].
    #[serde(default)]
    pub(super) pool_padding: Option<toml::Value>,
    /// Average pooling over the padding counted as zeros (true, PyTorch's default) or left out.
    #[serde(default)]
    pub(super) pool_count_include_pad: Option<bool>,
    /// A residual network's shortcut: the earlier layer whose output this one reads (default:
    /// the layer before it).
    #[serde(default)]
    pub(super) input: Option<String>,
    /// The earlier layer whose output is added to this one's before its activation.
    #[serde(default)]
    pub(super) add: Option<String>,
    /// He et al.'s zero-padding shortcut (option A): the added maps read at every `add_stride`-th
    /// row and column (default 1) ...
    #[serde(default)]
    pub(super) add_stride: Option<toml::Value>,
    /// ... with [before, after] zero channels around their own (default [0, 0]).
    #[serde(default)]
    pub(super) add_pad_channels: Option<toml::Value>,
    /// The prefix of the BatchNorm after this layer, kept digital (PyTorch's `bn1`).
    #[serde(default)]
    pub(super) batchnorm: Option<String>,
    /// That BatchNorm's ε (PyTorch's default 1e-5; the state dict does not hold it).
    #[serde(default)]
    pub(super) batchnorm_eps: Option<f64>,
    /// This layer's own `[periphery]` fields, over the file's and each sweep point's (a head's
    /// 8-bit ADC beside 6-bit ones elsewhere).
    #[serde(default)]
    pub(super) periphery: Option<toml::Table>,
}

impl RawLayer {
    /// This table's own periphery fields (entry `i`), checked on aihwkit's defaults: each a field
    /// of `[periphery]` but the weight mapping (`weight_scaling_*`, the file's for every layer),
    /// on an analog layer.
    pub(super) fn own_periphery(&self, i: usize) -> Result<Option<toml::Table>, String> {
        let Some(t) = self.periphery.as_ref().filter(|t| !t.is_empty()) else { return Ok(None) };
        let at = format!("model.layers[{i}].periphery");
        if self.digital {
            return Err(format!("{at} with digital = true: a digital layer has no converters or periphery noise; remove one of them"));
        }
        let mut p = crate::crossbar::Periphery::default();
        for (field, value) in t {
            if field.starts_with("weight_scaling") {
                return Err(format!("{at}.{field}: the weight mapping is the file's [periphery] {field}, the same for every layer; set it there"));
            }
            super::noise::set_field_with(&mut p, &at, field, value, &super::noise::OPTIONAL_PERIPHERY_FIELDS)?;
        }
        p.validate().map_err(|m| format!("{at}: {m}"))?;
        Ok(Some(t.clone()))
    }

    /// A `layers` entry: a name string, or a table.
    pub(super) fn parse(i: usize, v: &toml::Value) -> Result<RawLayer, String> {
        match v {
            toml::Value::String(name) => Ok(RawLayer { name: name.clone(), ..RawLayer::default() }),
            toml::Value::Table(t) => {
                if let Some(p) = t.get("periphery").filter(|p| !p.is_table()) {
                    return Err(format!("model.layers[{i}].periphery = {p}: give a table of [periphery] fields, e.g. {{ out_res_bits = 8 }}"));
                }
                RawLayer::deserialize(v.clone()).map_err(|e| format!("model.layers[{i}]: {}", e.message()))
            }
            other => {
                Err(format!("model.layers[{i}] = {other}: give a layer name (\"fc1\") or a table ({{ name = \"0\", activation = \"relu\", padding = 1 }})"))
            }
        }
    }

    pub(super) fn settings(&self, i: usize) -> Result<crate::workload::ConvSettings, String> {
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
        if self.pool.is_none()
            && (self.pool_size.is_some() || self.pool_stride.is_some() || self.pool_padding.is_some() || self.pool_count_include_pad.is_some())
        {
            return Err(format!("model.layers[{i}]: pool_size, pool_stride, pool_padding and pool_count_include_pad need pool = \"max\" or \"avg\""));
        }
        if self.pool == Some(crate::workload::PoolKind::Max) && self.pool_count_include_pad.is_some() {
            return Err(format!("model.layers[{i}].pool_count_include_pad is average pooling's; max pooling skips its padding"));
        }
        let pool = match self.pool {
            None => None,
            Some(kind) => {
                let size = pair("pool_size", &self.pool_size, 2)?;
                let stride = if self.pool_stride.is_some() { pair("pool_stride", &self.pool_stride, 0)? } else { size };
                // A square window and stride keep their one-number form (and results.json's).
                let wide = |a: [usize; 2]| (a[0] != a[1]).then_some(a[1]);
                let padding = pair("pool_padding", &self.pool_padding, 0)?;
                let exclude_pad = self.pool_count_include_pad == Some(false);
                Some(crate::workload::Pool2d { kind, size: size[0], stride: stride[0], size_w: wide(size), stride_w: wide(stride), padding, exclude_pad })
            }
        };
        Ok(crate::workload::ConvSettings { stride: pair("stride", &self.stride, 1)?, padding: pair("padding", &self.padding, 0)?, pool })
    }

    /// Layer i's digital BatchNorm: its tensors' prefix and ε.
    pub(super) fn batchnorm(&self, i: usize) -> Result<Option<(String, f64)>, String> {
        let eps = self.batchnorm_eps.unwrap_or(1e-5);
        match &self.batchnorm {
            None if self.batchnorm_eps.is_some() => Err(format!("model.layers[{i}].batchnorm_eps needs batchnorm = \"PREFIX\" (the BatchNorm's tensors)")),
            None => Ok(None),
            Some(_) if !(eps.is_finite() && eps > 0.0) => Err(format!("model.layers[{i}].batchnorm_eps = {eps}: give ε > 0 (PyTorch's default 1e-5)")),
            Some(bn) => Ok(Some((bn.clone(), eps))),
        }
    }

    /// Layer i's `input` and `add` as indices into `layers` (the tables before it).
    pub(super) fn links(&self, i: usize, layers: &[RawLayer]) -> Result<crate::engine::plan::Links, String> {
        let earlier = |what: &str, name: &Option<String>| -> Result<Option<usize>, String> {
            let Some(name) = name else { return Ok(None) };
            if let Some(j) = layers[..i].iter().position(|l| &l.name == name) {
                return Ok(Some(j));
            }
            let listed = layers[..i].iter().map(|l| l.name.as_str()).collect::<Vec<_>>().join(", ");
            let why = if i == 0 {
                "the first layer reads the data set and adds nothing".to_string()
            } else if layers[i..].iter().any(|l| &l.name == name) {
                format!("{name:?} is not listed before it; a shortcut names an earlier layer ({listed})")
            } else {
                format!("no layer is named {name:?}; a shortcut names an earlier layer ({listed})")
            };
            Err(format!("model.layers[{i}].{what} = {name:?}: {why}"))
        };
        let count = |v: &toml::Value| v.as_integer().and_then(|n| usize::try_from(n).ok());
        let add_pad = match (&self.add_stride, &self.add_pad_channels) {
            (None, None) => None,
            _ if self.add.is_none() => {
                return Err(format!("model.layers[{i}]: add_stride and add_pad_channels shape the maps a shortcut adds; they need add = \"NAME\" (the layer whose output is added)"));
            }
            (stride, pad) => {
                let stride = match stride {
                    None => 1,
                    Some(v) => match count(v) {
                        Some(s) if s >= 1 => s,
                        _ => return Err(format!("model.layers[{i}].add_stride = {v}: give 1 or more (2 halves the added maps, as x[:, :, ::2, ::2])")),
                    },
                };
                let [before, after] = match pad {
                    None => [0, 0],
                    Some(v) => match v.as_array().map(|a| a.iter().map(count).collect::<Option<Vec<usize>>>()) {
                        Some(Some(p)) if p.len() == 2 => [p[0], p[1]],
                        _ => {
                            return Err(format!(
                                "model.layers[{i}].add_pad_channels = {v}: give [before, after], the zero channels put around the added maps (F.pad's (0, 0, 0, 0, before, after))"
                            ))
                        }
                    },
                };
                Some(crate::engine::plan::ZeroPad { stride, before, after })
            }
        };
        Ok(crate::engine::plan::Links { input: earlier("input", &self.input)?, add: earlier("add", &self.add)?, add_pad })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawData {
    pub(super) path: PathBuf,
    #[serde(default = "one")]
    pub(super) scale: f32,
    #[serde(default)]
    pub(super) rows: Option<Vec<usize>>,
    /// The first line names the columns (never guessed).
    #[serde(default)]
    pub(super) header: bool,
    /// With a .npy feature file: the .npy of its integer labels; with a .npz: the name of the
    /// labels array in it (default "y").
    #[serde(default)]
    pub(super) labels: Option<PathBuf>,
    /// With a .npz: the name of the features array in it (default "x").
    #[serde(default)]
    pub(super) features: Option<String>,
    /// Question answering scored by SQuAD's official metrics: a JSON of the questions' contexts
    /// and answers as text and each row's question and token offsets (aimc.squad_windows).
    #[serde(default)]
    pub(super) answer_text: Option<PathBuf>,
    /// Kernel workloads: which rows are test points ("every_4th", the default, or "all").
    #[serde(default)]
    pub(super) test_rows: Option<crate::workload::kernel::TestRows>,
    /// Kernel workloads: the rows whose mean and std standardise the features ("train", the
    /// default, "all" or "none").
    #[serde(default)]
    pub(super) standardise: Option<crate::workload::kernel::Standardise>,
    /// Kernel workloads: the std's delta degrees of freedom (0, the default, or 1).
    #[serde(default)]
    pub(super) std_ddof: Option<u32>,
}

/// The crossbar shape as a table or as the `"INPUTSxOUTPUTS"` string a `tile` axis takes.
fn tile_shape<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<TileShape>, D::Error> {
    use serde::de::Error;
    match toml::Value::deserialize(d)? {
        toml::Value::String(s) => super::noise::parse_tile_str(&s).map(Some).map_err(D::Error::custom),
        toml::Value::Table(t) => t
            .try_into::<TileShape>()
            .map(Some)
            .map_err(|e| D::Error::custom(format!("{}; write [tile] with max_in and max_out, or tile = \"512x512\"", e.to_string().trim()))),
        // An array would read as [max_in, max_out] by position: not a spelling to guess at.
        other => Err(D::Error::custom(format!("tile = {other}: write [tile] with max_in and max_out, or tile = \"512x512\""))),
    }
}

fn one() -> f32 {
    1.0
}

/// `[attention]`: Q, K, V from .npy files (`[heads, n, d]` or `[n, d]`), or generated: Q, K ~
/// N(0, qk_std²) and V ~ N(0, 1) from `data_seed` (`crate::features::attention::synthetic_qkv`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAttention {
    #[serde(default)]
    pub(super) q: Option<PathBuf>,
    #[serde(default)]
    pub(super) k: Option<PathBuf>,
    #[serde(default)]
    pub(super) v: Option<PathBuf>,
    #[serde(default = "one_usize")]
    pub(super) heads: usize,
    #[serde(default)]
    pub(super) n: usize,
    #[serde(default)]
    pub(super) d: usize,
    #[serde(default)]
    pub(super) causal: bool,
    /// Generated Q and K: the std of their entries (default d^(−1/4), so ‖q‖ ≈ d^(1/4) and the
    /// scaled q·d^(−1/4) has norm about 1, the positive features' working range).
    #[serde(default)]
    pub(super) qk_std: Option<f64>,
    #[serde(default)]
    pub(super) data_seed: u64,
}

fn one_usize() -> usize {
    1
}

/// Largest attention problem: heads × n × d values per tensor.
pub(super) const MAX_ATTENTION_VALUES: usize = 1 << 26;

/// `[cost]`: the 3D cost table and the GPU table of the moe workload (defaults: the shipped
/// experiments/energy/moe_3d.toml and gpu_h100_sxm.toml).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCost {
    #[serde(default)]
    pub(super) tiers: Option<PathBuf>,
    #[serde(default)]
    pub(super) gpu: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEnergy {
    pub(super) table: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMvm {
    /// Number of random input vectors per trial.
    pub(super) inputs: u32,
}
