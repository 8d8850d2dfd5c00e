//! Hardware-aware training: the `[training]` section every trainer reads (MLP, CNN, MoE and the
//! transformer) and the noise it injects into the forward pass of a training step.
//!
//! The recipe is the one IBM's analog-inference papers train with (Joshi et al., Nat. Commun. 11,
//! 2473, 2020; Rasch et al., Nat. Commun. 14, 5282, 2023; the LRA transformer of Büchel et al.,
//! kernel-attention spec §4) and that aihwkit's `InferenceRPUConfig` offers for training:
//!
//! - **Weight noise, drawn afresh per mini-batch** on every matrix that the evaluation maps onto
//!   crossbars: additive Gaussian with σ relative to the matrix's max|W| (aihwkit
//!   `WeightModifierType.ADD_NORMAL`), or the device model itself (any `[device] model`, the
//!   same f64 equations the evaluation's stages are checked against, `crate::device`): the
//!   differential pair programmed with the model's programming noise, optionally drifted to a
//!   time with its drift-exponent spread and read noise and then rescaled by one global factor
//!   (a stand-in for the readout's drift compensation). The gradient is taken at the noisy
//!   weights and applied to the clean ones.
//! - **Output noise** per MVM output, σ = `output_noise` · max|x| (aihwkit `out_noise` with
//!   abs-max noise management, the evaluation's own definition; × max|W| / ω with ω > 0).
//! - **DAC**: each input vector quantised to `dac_bits` over its max|x| (abs-max noise
//!   management), with a straight-through gradient (the quantiser's derivative taken as 1).
//! - **ADC**: each output rounded to `adc_bits` over ±`out_bound` and clipped there, both in
//!   units of the input's max|x| (aihwkit `out_res`, `out_bound`): the rounding
//!   straight-through, a clipped output's gradient zero. No bound management by default, as
//!   aihwkit's `StandardHWATrainingPreset` trains; `bound_management = "iterative"` redoes a
//!   saturated tile with its input halved, as the evaluation and aihwkit's default forward do. With `weight_scaling_omega` > 0 output noise and the ADC act in
//!   units of max|x| · max|W| / ω per tile or column, as the evaluation maps the weights.
//! - **Per-read weight noise** (`w_noise`, `w_noise_type`): per tile output, σ = w_noise·‖x̃‖₂
//!   or w_noise·sqrt(Σ|w̃|·x̃²) in the output's unit, as the evaluation's `mvm_full` draws it.
//! - **IR drop** (`ir_drop`): aihwkit's formula per tile output, deterministic, straight-through.
//! - **Weight modifiers**: aihwkit's other weight perturbations and drop connect
//!   (src/train/modifier.rs).
//! - **Tiles**: a layer with more than `max_in` inputs is split as the evaluation splits it
//!   (`[tile] max_in`); each input slice has its own DAC scale, output noise and ADC, and the
//!   slices' outputs add digitally ([`Injector::crossbar`](super::injector::Injector::crossbar)).
//! - **Clipping** of every trained crossbar matrix to ±`clip_sigma`·std(W) after each update
//!   (aihwkit `WeightClipType.LAYER_GAUSSIAN`); a fixed matrix that gets no gradient (the
//!   transformer's kernel feature projection) draws weight noise but is never clipped.
//! - **Fine-tuning**: `init` starts from a trained model file (the floating-point one) instead of
//!   the random initialisation, usually with fewer `epochs` and a smaller `lr`.
//!
//! Determinism: the injected noise comes from its own `Pcg64Mcg` (seeded from the trainer's seed
//! and `noise_seed`) through `next_u64` only, so a trainer without a `[training]` section draws
//! exactly what it drew before, and the same section rebuilds the same bytes. Normal draws are
//! Irwin–Hall(12) − 6 (no libm; tails end at ±6σ, beyond what 10⁵ draws per step reach).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::TrainError;
use crate::device::DeviceModel;

use super::injector::Param;
use super::modifier;
pub use super::periphery::Clipped;

/// The tile's rows and columns unless `max_in` and `max_out` say otherwise: the evaluation's
/// default `[tile]`, 512 × 512 (aihwkit's `max_input_size`).
pub const DEFAULT_MAX_IN: usize = 512;

/// The `[training]` section of a training file (`--training FILE`). Every field is optional;
/// the default injects nothing (a floating-point trainer).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainingConfig {
    /// `none`, `gaussian` (σ = `weight_noise_std`·max|W|), another of aihwkit's weight
    /// modifiers (`mult_normal`, `poly`, `discretize`, `discretize_add_normal`, `drop_connect`:
    /// src/train/modifier.rs) or a device model name (`pcm`, `hermes`, `hermes1`, `simple`, …):
    /// its programming noise, drawn per mini-batch. `ideal` is refused (it would inject nothing).
    pub weight_noise: String,
    /// σ of the `gaussian` weight noise relative to each matrix's max|W| (IBM's LRA: 0.12);
    /// refused with a device model, which draws its own noise.
    pub weight_noise_std: f64,
    /// `discretize`, `discretize_add_normal`: the step relative to max|W| (aihwkit's `res`).
    pub weight_noise_res: f64,
    /// `poly`: the coefficients of σ(|w|/max|W|) (aihwkit's `coeffs`; empty: its default).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub weight_noise_coeffs: Vec<f64>,
    /// Drop connect: after any weight noise, each crossbar weight set to 0 with this probability
    /// per mini-batch (aihwkit's `pdrop`).
    pub weight_noise_pdrop: f64,
    /// With a weight modifier: the max|W| its noise is relative to (aihwkit's `assumed_wmax`);
    /// 0 (the default) takes each matrix's own (its `rel_to_actual_wmax`).
    pub weight_noise_wmax: f64,
    /// With a device model: multiplies its programming noise and its read noise (not the spread
    /// of its drift exponents), e.g. 1.5 to train against more noise than the evaluation's.
    /// Refused with `gaussian`, whose size is `weight_noise_std`.
    pub weight_noise_scale: f64,
    /// With a device model: also drift to this time after programming (`1d`, `10y`; drift
    /// spread and read noise, then one global compensation factor). Empty: programming only.
    pub weight_noise_time: String,
    /// Output noise σ relative to the input vector's max|x| (the evaluation's `out_noise`).
    pub output_noise: f64,
    /// DAC bits of the inputs of every crossbar MVM (0: none); straight-through gradient.
    pub dac_bits: u32,
    /// ADC bits of every crossbar output (the evaluation's `out_res_bits`; 0: none): a tile's
    /// output, in units of its input slice's max|x|, rounded to steps of
    /// 2·out_bound / (2^bits − 2); straight-through gradient. Needs `out_bound`.
    pub adc_bits: u32,
    /// The ADC's range (the evaluation's `out_bound`): a tile's output clipped to ±out_bound in
    /// units of its input slice's max|x| (0: no clipping).
    pub out_bound: f64,
    /// Per-read weight noise (the evaluation's `periphery.w_noise`, aihwkit's `forward.w_noise`):
    /// each tile output gains N(0, σ²) in its unit, σ = w_noise·‖x̃‖₂ (`additive_constant`) or
    /// w_noise·sqrt(Σ|w̃|·x̃²) (`pcm_read`), x̃ the DAC'd input slice over its max|x|, w̃ the
    /// tile's weights in its unit (÷ max|W|/ω with ω > 0); a constant of the step for the
    /// gradient, as the output noise.
    pub w_noise: f64,
    /// `additive_constant` (the default, as the evaluation's) or `pcm_read`.
    pub w_noise_type: String,
    /// IR drop (the evaluation's `periphery.ir_drop`, aihwkit's `forward.ir_drop`): each tile
    /// output less ir_drop·c(a)·Σ w̃·x̃·(1 − r_k²), aihwkit's formula as the evaluation's
    /// `mvm_full` computes it; deterministic, its gradient passed straight through.
    pub ir_drop: f64,
    /// The evaluation's `periphery.ir_drop_g_ratio` (default 571428.6).
    pub ir_drop_g_ratio: f64,
    /// Iterative bound management (the evaluation's `periphery.bound_management`, aihwkit's
    /// default `ITERATIVE`), `none` or `iterative`: a tile whose outputs saturate the ADC's range is computed again with
    /// its input halved (quantised again by the DAC, fresh output noise) until none saturates or
    /// the reduction reaches its last value ([`crate::crossbar::bm_last_reduction`] of the two
    /// fields below); its outputs are multiplied back digitally. `none` (the default, as aihwkit's
    /// `StandardHWATrainingPreset` trains) leaves saturated outputs clipped. Needs `out_bound`.
    pub bound_management: String,
    /// The evaluation's `periphery.max_bm_factor` (aihwkit default 1000).
    pub max_bm_factor: f64,
    /// The evaluation's `periphery.max_bm_res` (aihwkit default 0.25).
    pub max_bm_res: f64,
    /// Weight scaling ω (the evaluation's `periphery.weight_scaling_omega`): 0 keeps the raw
    /// weights in the tile; ω > 0 rescales each tile (or column) to max|W| = ω, so output noise
    /// and the ADC act in units of max|W| / ω.
    pub weight_scaling_omega: f64,
    /// With ω > 0: each output column of a tile rescaled on its own (the evaluation's
    /// `periphery.weight_scaling_columnwise`).
    pub weight_scaling_columnwise: bool,
    /// Crossbar columns of a tile (the evaluation's `[tile] max_out`): with ω > 0 and one scale
    /// per tile, the outputs sharing a scale.
    pub max_out: usize,
    /// Crossbar rows of a tile (the evaluation's `[tile] max_in`): a layer with more inputs is
    /// split evenly over ⌈n / max_in⌉ tiles, as the engine maps it, each slice with its own DAC
    /// scale, output noise and ADC.
    pub max_in: usize,
    /// Clip every trained crossbar matrix to ±clip_sigma·std(W) after each update (0: none).
    pub clip_sigma: f64,
    /// Learn an input range per input tile of every layer (aihwkit's `pre_post.input_range`; MLP
    /// trainer only): each slice clipped to ±range and divided by it in place of its max|x|; the
    /// model file holds them (`PREFIX.input_range`). src/train/ranges.rs has the rule.
    pub input_range: bool,
    /// aihwkit's `init_value`, `init_from_data`, `init_std_alpha`, `decay` and
    /// `input_min_percentage` (defaults 3, 100, 3, 0.001, 0.95).
    pub input_range_init: f64,
    pub input_range_init_from_data: u32,
    pub input_range_std_alpha: f64,
    pub input_range_decay: f64,
    pub input_range_min_inside: f64,
    /// Fine-tune from this model file (relative to the training file) instead of a random init.
    pub init: Option<PathBuf>,
    /// Override the trainer's epochs.
    pub epochs: Option<usize>,
    /// Override the trainer's (initial or peak) learning rate.
    pub lr: Option<f32>,
    /// Added to the trainer's seed for the injected noise's generator.
    pub noise_seed: u64,
    /// `[training.device]`: fields set on the `weight_noise` device model as an experiment's
    /// `[device]` sets them (`g_max`, `prog_coeff`, a measured `drift_table`, ...), so training
    /// sees the device the evaluation runs. Empty: the model as named.
    #[serde(skip_serializing_if = "toml::Table::is_empty")]
    pub device: toml::Table,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        TrainingConfig {
            weight_noise: "none".into(),
            weight_noise_std: 0.0,
            weight_noise_res: 0.0,
            weight_noise_coeffs: Vec::new(),
            weight_noise_pdrop: 0.0,
            weight_noise_wmax: 0.0,
            weight_noise_scale: 1.0,
            weight_noise_time: String::new(),
            output_noise: 0.0,
            dac_bits: 0,
            adc_bits: 0,
            out_bound: 0.0,
            w_noise: 0.0,
            w_noise_type: "additive_constant".into(),
            ir_drop: 0.0,
            ir_drop_g_ratio: 571_428.6,
            bound_management: "none".into(),
            max_bm_factor: 1000.0,
            max_bm_res: 0.25,
            weight_scaling_omega: 0.0,
            weight_scaling_columnwise: false,
            max_out: DEFAULT_MAX_IN,
            max_in: DEFAULT_MAX_IN,
            clip_sigma: 0.0,
            input_range: false,
            input_range_init: 3.0,
            input_range_init_from_data: 100,
            input_range_std_alpha: 3.0,
            input_range_decay: 0.001,
            input_range_min_inside: 0.95,
            init: None,
            epochs: None,
            lr: None,
            noise_seed: 0,
            device: toml::Table::new(),
        }
    }
}

/// The training file: a `[training]` table and nothing else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrainingFile {
    training: TrainingConfig,
}

impl TrainingConfig {
    /// Reads `[training]` from `path`; `init` is resolved against the file's folder. Errors name
    /// the file, the field and the fix.
    pub fn read(path: &Path) -> Result<TrainingConfig, TrainError> {
        let text = crate::files::read_to_string(path).map_err(|e| TrainError::Training(format!("reading {}: {e}", path.display())))?;
        let mut cfg = Self::parse(&text).map_err(|e| TrainError::Training(format!("{}: {e}", path.display())))?;
        if let Some(init) = &cfg.init {
            if init.is_relative() {
                cfg.init = Some(path.parent().unwrap_or(Path::new(".")).join(init));
            }
        }
        Ok(cfg)
    }

    /// Parses and checks a training file's text.
    pub fn parse(text: &str) -> Result<TrainingConfig, String> {
        let file: TrainingFile = toml::from_str(text).map_err(|e| e.message().replace('\n', " "))?;
        file.training.check()?;
        Ok(file.training)
    }

    /// Checks every field; the message names it and the fix.
    pub fn check(&self) -> Result<(), String> {
        let finite_nonneg = |name: &str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(format!("training.{name} = {v}: must be a finite number >= 0"))
            }
        };
        finite_nonneg("weight_noise_std", self.weight_noise_std)?;
        modifier::check_common(self)?;
        finite_nonneg("weight_noise_scale", self.weight_noise_scale)?;
        finite_nonneg("output_noise", self.output_noise)?;
        finite_nonneg("out_bound", self.out_bound)?;
        finite_nonneg("w_noise", self.w_noise)?;
        finite_nonneg("ir_drop", self.ir_drop)?;
        if !(self.ir_drop_g_ratio.is_finite() && self.ir_drop_g_ratio > 0.0) {
            return Err(format!(
                "training.ir_drop_g_ratio = {}: must be > 0 (the evaluation's periphery.ir_drop_g_ratio, default 571428.6)",
                self.ir_drop_g_ratio
            ));
        }
        if !matches!(self.w_noise_type.as_str(), "additive_constant" | "pcm_read") {
            return Err(format!(
                "training.w_noise_type = {:?}: expected \"additive_constant\" (the default) or \"pcm_read\", as the evaluation's periphery.w_noise_type",
                self.w_noise_type
            ));
        }
        finite_nonneg("clip_sigma", self.clip_sigma)?;
        // weight_noise_std belongs to "gaussian", weight_noise_scale to a device model: a field the
        // chosen noise would ignore is refused rather than dropped.
        let std_set = self.weight_noise_std != 0.0;
        let scale_set = self.weight_noise_scale != 1.0;
        match self.weight_noise.as_str() {
            "none" => {
                let set = [
                    ("weight_noise_std", std_set),
                    ("weight_noise_scale", scale_set),
                    ("weight_noise_res", self.weight_noise_res != 0.0),
                    ("weight_noise_coeffs", !self.weight_noise_coeffs.is_empty()),
                    ("weight_noise_pdrop", self.weight_noise_pdrop != 0.0),
                    ("weight_noise_wmax", self.weight_noise_wmax != 0.0),
                ];
                if let Some((field, _)) = set.iter().find(|(_, on)| *on) {
                    return Err(format!(
                        "training.{field} without weight noise: set training.weight_noise (\"gaussian\" for weight_noise_std, \"drop_connect\" for weight_noise_pdrop alone, a device model such as \"pcm\" for weight_noise_scale) or remove {field}"
                    ));
                }
            }
            kind if modifier::is_modifier(kind) => modifier::check(self)?,
            "ideal" => {
                return Err("training.weight_noise = \"ideal\": the ideal device injects nothing; leave weight_noise out for a floating-point training".into());
            }
            name => {
                if DeviceModel::by_name(name).is_none() {
                    return Err(format!(
                        "training.weight_noise = {name:?}: expected \"none\", a weight modifier ({}) or a device model ({})",
                        modifier::MODIFIERS.join(", "),
                        crate::device::MODEL_NAMES.iter().filter(|m| **m != "ideal").cloned().collect::<Vec<_>>().join(", ")
                    ));
                }
                if std_set {
                    return Err(format!(
                        "training.weight_noise_std = {}: it is the σ of weight_noise = \"gaussian\" only; the device model {name:?} draws its own noise (scale it with training.weight_noise_scale), so remove weight_noise_std",
                        self.weight_noise_std
                    ));
                }
                if self.weight_noise_res != 0.0 || !self.weight_noise_coeffs.is_empty() {
                    let field =
                        if self.weight_noise_res != 0.0 { format!("weight_noise_res = {}", self.weight_noise_res) } else { "weight_noise_coeffs".into() };
                    return Err(format!(
                        "training.{field}: it belongs to a weight modifier (\"discretize\", \"poly\"); the device model {name:?} draws its own noise, so remove it"
                    ));
                }
            }
        }
        if !self.device.is_empty() {
            if DeviceModel::by_name(&self.weight_noise).is_none() {
                return Err(format!(
                    "training.device sets fields of a device model, and training.weight_noise = {:?} is none: name the model in training.weight_noise (e.g. \"pcm\")",
                    self.weight_noise
                ));
            }
            if self.device.contains_key("model") {
                return Err("training.device.model: the model is training.weight_noise; name it there and remove model".into());
            }
            self.resolved_device()?;
        }
        if !self.weight_noise_time.is_empty() {
            if DeviceModel::by_name(&self.weight_noise).is_none() {
                return Err("training.weight_noise_time needs a device model in training.weight_noise (e.g. \"pcm\")".into());
            }
            let t = crate::config::time::parse_time(&self.weight_noise_time).map_err(|e| format!("training.weight_noise_time: {e}"))?;
            if let Some(d) = self.resolved_device()? {
                d.check_time(t).map_err(|e| format!("training.weight_noise_time: {e}"))?;
            }
        }
        if self.dac_bits == 1 || self.dac_bits > 24 {
            return Err(format!("training.dac_bits = {}: use 0 (no DAC) or 2..=24", self.dac_bits));
        }
        if self.adc_bits == 1 || self.adc_bits > 24 {
            return Err(format!("training.adc_bits = {}: use 0 (no ADC) or 2..=24", self.adc_bits));
        }
        if self.adc_bits > 0 && self.out_bound == 0.0 {
            return Err(format!(
                "training.adc_bits = {} needs the ADC's range: set training.out_bound > 0 (in units of max|x|, the evaluation's periphery.out_bound, e.g. 12)",
                self.adc_bits
            ));
        }
        if !matches!(self.bound_management.as_str(), "none" | "iterative") {
            return Err(format!("training.bound_management = {:?}: expected \"none\" (the default) or \"iterative\"", self.bound_management));
        }
        if self.bound_management == "iterative" && self.out_bound == 0.0 {
            return Err("training.bound_management = \"iterative\" redoes a tile whose outputs saturate the ADC's range, and there is none: set training.out_bound > 0 (the evaluation's periphery.out_bound, e.g. 12) or remove bound_management".into());
        }
        crate::crossbar::check_bm_limits("training", self.max_bm_factor, self.max_bm_res)?;
        finite_nonneg("weight_scaling_omega", self.weight_scaling_omega)?;
        if self.weight_scaling_columnwise && self.weight_scaling_omega == 0.0 {
            return Err("training.weight_scaling_columnwise = true needs training.weight_scaling_omega > 0 (per-column scales rescale each column to max|W| = ω), as the evaluation's periphery: set weight_scaling_omega, e.g. 1.0".into());
        }
        if self.max_out == 0 {
            return Err(format!("training.max_out = 0: give the crossbar columns of a tile, the evaluation's [tile] max_out (default {DEFAULT_MAX_IN})"));
        }
        if self.max_in == 0 {
            return Err(format!("training.max_in = 0: give the crossbar rows of a tile, the evaluation's [tile] max_in (default {DEFAULT_MAX_IN})"));
        }
        self.check_input_range()?;
        if self.epochs == Some(0) {
            return Err("training.epochs = 0: use at least 1".into());
        }
        if let Some(lr) = self.lr {
            if !(lr.is_finite() && lr > 0.0) {
                return Err(format!("training.lr = {lr}: must be > 0"));
            }
        }
        Ok(())
    }

    /// The `weight_noise` device model with `[training.device]` set on it (None for `none` and
    /// `gaussian`); errors name `training.device.FIELD`.
    pub fn resolved_device(&self) -> Result<Option<DeviceModel>, String> {
        if DeviceModel::by_name(&self.weight_noise).is_none() {
            return Ok(None);
        }
        crate::config::noise::device_with_fields(&self.weight_noise, &self.device).map(Some).map_err(|e| e.replace("device.", "training.device."))
    }

    /// Whether anything is injected or clipped (a floating-point trainer otherwise).
    pub fn is_hardware_aware(&self) -> bool {
        self.weight_noise != "none" || self.touches_forward() || self.clip_sigma > 0.0
    }

    /// Whether forward passes quantise inputs or outputs, clip outputs or add output noise.
    pub fn touches_forward(&self) -> bool {
        self.dac_bits > 0
            || self.output_noise > 0.0
            || self.adc_bits > 0
            || self.out_bound > 0.0
            || self.w_noise > 0.0
            || self.ir_drop > 0.0
            || self.input_range
    }

    /// The last input reduction bound management tries: the evaluation's rule
    /// ([`crate::crossbar::bm_last_reduction`]) with the DAC's step over the unit range; 1 (never
    /// redone) without bound management.
    pub fn bm_last_reduction(&self) -> u32 {
        if self.bound_management != "iterative" {
            return 1;
        }
        crate::crossbar::bm_last_reduction(self.max_bm_factor, self.max_bm_res, crate::crossbar::step(self.dac_bits, 1.0))
    }

    /// One line for a model file's metadata and the trainers' messages.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        match self.weight_noise.as_str() {
            "none" => {}
            "gaussian" => parts.push(format!("gaussian weight noise {} of max|W|", self.weight_noise_std)),
            "drop_connect" => {}
            "discretize" => parts.push(format!("weights discretised to {} of max|W|", self.weight_noise_res)),
            "discretize_add_normal" => {
                parts.push(format!("weights discretised to {} of max|W| with gaussian noise {}", self.weight_noise_res, self.weight_noise_std))
            }
            k if modifier::is_modifier(k) => parts.push(format!("{k} weight noise {} of max|W|", self.weight_noise_std)),
            m => {
                let mut s = format!("{m} programming noise");
                if !self.device.is_empty() {
                    s.push_str(&format!(" ({} set)", self.device.keys().cloned().collect::<Vec<_>>().join(", ")));
                }
                if self.weight_noise_scale != 1.0 {
                    s.push_str(&format!(" x{}", self.weight_noise_scale));
                }
                if !self.weight_noise_time.is_empty() {
                    s.push_str(&format!(" drifted to {} (compensated)", self.weight_noise_time));
                }
                parts.push(s);
            }
        }
        if self.weight_noise_wmax > 0.0 {
            parts.push(format!("relative to an assumed max|W| of {}", self.weight_noise_wmax));
        }
        if self.weight_noise_pdrop > 0.0 {
            parts.push(format!("drop connect {}", self.weight_noise_pdrop));
        }
        if self.output_noise > 0.0 {
            parts.push(format!("output noise {}", self.output_noise));
        }
        if self.w_noise > 0.0 {
            parts.push(format!("{} per-read weight noise {}", self.w_noise_type.replace('_', " "), self.w_noise));
        }
        if self.ir_drop > 0.0 {
            parts.push(format!("IR drop {}", self.ir_drop));
        }
        if self.dac_bits > 0 {
            parts.push(format!("{}-bit DAC (straight-through)", self.dac_bits));
        }
        if self.adc_bits > 0 {
            parts.push(format!("{}-bit ADC over +-{} (straight-through)", self.adc_bits, self.out_bound));
        } else if self.out_bound > 0.0 {
            parts.push(format!("outputs clipped at +-{}", self.out_bound));
        }
        if self.bound_management == "iterative" {
            parts.push(format!("iterative bound management up to {}x", self.bm_last_reduction()));
        }
        if self.max_in != DEFAULT_MAX_IN || self.max_out != DEFAULT_MAX_IN {
            parts.push(format!("tiles of {}x{}", self.max_in, self.max_out));
        }
        if self.weight_scaling_omega > 0.0 {
            parts.push(format!("weights scaled to {}{}", self.weight_scaling_omega, if self.weight_scaling_columnwise { " per column" } else { " per tile" }));
        }
        if self.clip_sigma > 0.0 {
            parts.push(format!("clipped at {} sigma", self.clip_sigma));
        }
        if self.input_range {
            parts.push(format!(
                "learned input ranges (from {}, running mean of {} std over {} batches, decay {} above {} inside)",
                self.input_range_init, self.input_range_std_alpha, self.input_range_init_from_data, self.input_range_decay, self.input_range_min_inside
            ));
        }
        if let Some(p) = &self.init {
            parts.push(format!("fine-tuned from {}", p.display()));
        }
        if parts.is_empty() {
            "floating point".into()
        } else {
            parts.join(", ")
        }
    }
}

/// The rebuild command of a model trained with a training file: the trainer's own command with
/// `--training FILE` before its `--out`, and `--out` set to where the model was written.
pub fn command_with_training(command: &str, training: &Path, out: &Path) -> String {
    let base = command.rfind(" --out ").map_or(command, |i| &command[..i]);
    format!("{base} --training {} --out {}", training.display(), out.display())
}

/// Loads a trained model file into `params` by state-dict name (fine-tuning): every parameter
/// must be present with its element count. Errors name the file, the tensor and the fix.
pub fn load_params(path: &Path, params: Vec<Param<'_>>) -> Result<(), TrainError> {
    let bytes = crate::files::read(path).map_err(|e| TrainError::Training(format!("training.init: reading {}: {e}", path.display())))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| TrainError::Training(format!("training.init: {}: {e}", path.display())))?;
    for p in params {
        let t = st.tensor(&p.name).map_err(|_| {
            TrainError::Training(format!(
                "training.init: {} has no tensor {:?}; give the model file this trainer writes (same architecture)",
                path.display(),
                p.name
            ))
        })?;
        if t.dtype() != safetensors::Dtype::F32 {
            return Err(TrainError::Training(format!("training.init: {}: tensor {:?} is {:?}; only F32 is read", path.display(), p.name, t.dtype())));
        }
        let vals: Vec<f32> = t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        if vals.len() != p.data.len() {
            return Err(TrainError::Training(format!(
                "training.init: {}: tensor {:?} has {} values, this model needs {}; train with the same architecture",
                path.display(),
                p.name,
                vals.len(),
                p.data.len()
            )));
        }
        if let Some(i) = vals.iter().position(|v| !v.is_finite()) {
            return Err(TrainError::Training(format!("training.init: {}: tensor {:?} holds a non-finite value at {i}", path.display(), p.name)));
        }
        *p.data = vals;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::injector::Injector;

    /// `[training.device]` sets fields on the named model as an experiment's `[device]` does (a
    /// measured drift or programming table too); the injector draws from that device; bad fields are named under
    /// training.device.
    #[test]
    fn training_device_fields_set_the_model() {
        let text = "[training]\nweight_noise = \"pcm\"\nweight_noise_time = \"10y\"\n[training.device]\ng_max = 20.0\n[training.device.drift_table]\ng = [0.0, 20.0]\nnu_mean = [0.2, 0.2]\nnu_std = [0.0, 0.0]\n";
        let c = TrainingConfig::parse(text).unwrap();
        let d = c.resolved_device().unwrap().unwrap();
        assert_eq!((d.g_max, d.drift_table.as_ref().map(|t| t.nu_mean.clone())), (20.0, Some(vec![0.2, 0.2])));
        assert!(c.summary().contains("(drift_table, g_max set)"), "{}", c.summary());
        // ν = 0.2 for every device against pcm's spread: the drifted draws differ.
        let plain = TrainingConfig::parse("[training]\nweight_noise = \"pcm\"\nweight_noise_time = \"10y\"\n").unwrap();
        let w: Vec<f32> = (0..64).map(|i| (i as f32 - 31.5) / 32.0).collect();
        let (mut a, mut b) = (w.clone(), w.clone());
        Injector::new(&c, 1).perturb_rows(&mut a, 8);
        Injector::new(&plain, 1).perturb_rows(&mut b, 8);
        assert_ne!(a, b);
        // A measured programming table of σ = 0: programming is exact, so without drift the noisy
        // copy is the weights themselves (max|W| maps to g_max and back).
        let exact = TrainingConfig::parse("[training]\nweight_noise = \"pcm\"\n[training.device.prog_table]\ng = [0.0, 25.0]\nsigma = [0.0, 0.0]\n").unwrap();
        let mut e = w.clone();
        Injector::new(&exact, 1).perturb_rows(&mut e, 8);
        assert!(e.iter().zip(&w).all(|(a, b)| (a - b).abs() < 1e-6), "{e:?}");
        let mut p = w.clone();
        Injector::new(&TrainingConfig::parse("[training]\nweight_noise = \"pcm\"\n").unwrap(), 1).perturb_rows(&mut p, 8);
        assert!(p.iter().zip(&w).any(|(a, b)| (a - b).abs() > 1e-3));
        for (text, want) in [
            ("[training]\nweight_noise = \"pcm\"\n[training.device]\ngmax = 20.0", "training.device.gmax: unknown field"),
            ("[training]\nweight_noise = \"pcm\"\n[training.device]\nmodel = \"hermes\"", "training.device.model: the model is training.weight_noise"),
            (
                "[training]\nweight_noise = \"gaussian\"\nweight_noise_std = 0.1\n[training.device]\ng_max = 20.0",
                "training.device sets fields of a device model",
            ),
            (
                "[training]\nweight_noise = \"pcm\"\n[training.device.drift_table]\ng = [0.0, 10.0]\nnu_mean = [0.1, 0.1]\nnu_std = [0.0, 0.0]",
                "training.device.drift_table.g spans [0, 10]",
            ),
            (
                "[training]\nweight_noise = \"pcm\"\n[training.device.prog_table]\ng = [0.0, 25.0]\nsigma = [0.1]",
                "training.device.prog_table.sigma has 1 values for 2 conductances",
            ),
        ] {
            let e = TrainingConfig::parse(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn parse_and_errors_name_the_field() {
        let c = TrainingConfig::parse("[training]\nweight_noise = \"pcm\"\noutput_noise = 0.06\ndac_bits = 7\nclip_sigma = 2.5\n").unwrap();
        assert!(c.is_hardware_aware());
        assert!(c.summary().contains("pcm programming noise"), "{}", c.summary());
        assert!(!TrainingConfig::default().is_hardware_aware());
        for (text, want) in [
            ("[training]\nweight_noise = \"pcn\"", "training.weight_noise"),
            ("[training]\nweight_noise = \"gaussian\"", "weight_noise_std > 0"),
            ("[training]\noutput_noise = -1.0", "training.output_noise"),
            ("[training]\ndac_bits = 1", "training.dac_bits"),
            ("[training]\nweight_noise_time = \"10y\"", "needs a device model"),
            ("[training]\nweight_noise = \"pcm\"\nweight_noise_time = \"10 parsecs\"", "weight_noise_time"),
            ("[training]\nepochs = 0", "training.epochs"),
            // Fields the chosen weight noise would ignore, and a device that injects nothing.
            (
                "[training]\nweight_noise = \"pcm\"\nweight_noise_std = 0.12",
                "training.weight_noise_std = 0.12: it is the σ of weight_noise = \"gaussian\" only",
            ),
            (
                "[training]\nweight_noise = \"gaussian\"\nweight_noise_std = 0.1\nweight_noise_scale = 3.0",
                "training.weight_noise_scale = 3: it multiplies a device model's noise",
            ),
            ("[training]\nweight_noise_std = 0.1", "training.weight_noise_std without weight noise"),
            ("[training]\nweight_noise_scale = 2.0", "training.weight_noise_scale without weight noise"),
            ("[training]\nweight_noise = \"ideal\"", "leave weight_noise out for a floating-point training"),
            ("[training]\nout_noise = 0.1", "unknown field"),
            ("[trainin]\nout_noise = 0.1", "training"),
        ] {
            let e = TrainingConfig::parse(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
        // Each field with the noise it belongs to is accepted.
        TrainingConfig::parse("[training]\nweight_noise = \"pcm\"\nweight_noise_scale = 3.0").unwrap();
        TrainingConfig::parse("[training]\nweight_noise = \"gaussian\"\nweight_noise_std = 0.12").unwrap();
        let e = TrainingConfig::parse("[training]\nweight_noise = \"pcn\"").unwrap_err();
        assert!(!e.contains("ideal"), "{e}");
    }
}
