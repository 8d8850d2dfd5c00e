//! Device models as data: PCM (aihwkit `PCMLikeNoiseModel`; Nandakumar et al. 2019, Joshi et al.
//! Nat. Commun. 11, 2473, 2020), HERMES fits (aihwkit `HermesNoiseModel`; Le Gallo et al., Nat.
//! Electron. 2023), the evaluation noise of IBM's Analog Foundation Models (`afm`; Büchel et al.
//! 2025, github.com/IBM/analog-foundation-models `apply_noise_model.py` at commit
//! 93bb6cacfbd6c6ac84f52d90789da0454a9ce9af), ReRAM (aihwkit `ReRamWan2022NoiseModel`; Wan et al.,
//! Nature 608, 504, 2022), CMO/HfOx ReRAM (aihwkit `ReRamCMONoiseModel`, IBM Research Zurich's
//! conductive-metal-oxide devices), `simple` and `ideal`. Each model is a set of
//! numbers (polynomials and piecewise fits);
//! the f64 reference functions here are the oracle for the f32 stages (shaders/common/device.wgsl
//! and its twin src/engine/cpu/common.rs). Units: µS and seconds.

use serde::{Deserialize, Serialize};

mod reram;
mod unit_cell;
pub use reram::*;

/// Lower bound of the normalised conductance inside every ln/pow (aihwkit clamps at 1e-7).
pub const GR_FLOOR: f64 = 1e-7;

/// A piecewise fit of a device quantity as a function of gr = g/g_max.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fit {
    /// `clamp(a ln gr + b, lo, hi)` for gr < brk, else `c0 + c1 gr + c2 gr² + c3 gr³`.
    LogClampPoly { brk: f64, a: f64, b: f64, lo: f64, hi: f64, c: [f64; 4] },
    /// `min(a / max(gr^p, lo), hi)`.
    PowerClamp { a: f64, p: f64, lo: f64, hi: f64 },
}

impl Fit {
    pub fn eval(&self, gr: f64) -> f64 {
        let gr = gr.max(GR_FLOOR);
        match *self {
            Fit::LogClampPoly { brk, a, b, lo, hi, c } => {
                if gr < brk {
                    (a * gr.ln() + b).clamp(lo, hi)
                } else {
                    ((c[3] * gr + c[2]) * gr + c[1]) * gr + c[0]
                }
            }
            Fit::PowerClamp { a, p, lo, hi } => (a / gr.powf(p).max(lo)).min(hi),
        }
    }

    fn log_clamp(a: f64, b: f64, lo: f64, hi: f64) -> Fit {
        Fit::LogClampPoly { brk: f64::INFINITY, a, b, lo, hi, c: [0.0; 4] }
    }
}

/// The most knots a [`DriftTable`] may have (the stages keep them in their uniform).
pub const MAX_DRIFT_KNOTS: usize = 16;

/// A measured drift model (aihwkit `CustomDriftPCMLikeNoiseModel`'s `custom_drift_model`): the
/// mean and standard deviation of the drift exponent ν at conductances `g` (µS, ascending), read
/// between them by linear interpolation and held at the ends beyond them (`numpy.interp` on the
/// target conductance, as aihwkit reads it). It replaces the model's `mu_nu` and `sigma_nu`; ν is
/// then |ν_mean + ν_std·N|·drift_scale as for every model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftTable {
    /// Conductances, µS, strictly ascending; they must span [0, g_max], the range the devices
    /// are programmed over (aihwkit refuses a table that does not).
    pub g: Vec<f64>,
    /// Mean drift exponent at each conductance.
    pub nu_mean: Vec<f64>,
    /// Standard deviation of the drift exponent at each conductance (≥ 0).
    pub nu_std: Vec<f64>,
}

/// `numpy.interp(g, xs, v)`: v's value at g, linear between the two knots around it
/// (slope · (g − x_j) + v_j, numpy's form), the end values beyond the ends; `xs` ascending.
pub fn interp(xs: &[f64], v: &[f64], g: f64) -> f64 {
    let n = xs.len();
    if g <= xs[0] {
        return v[0];
    }
    if g >= xs[n - 1] {
        return v[n - 1];
    }
    let j = xs.partition_point(|&x| x <= g) - 1;
    let slope = (v[j + 1] - v[j]) / (xs[j + 1] - xs[j]);
    slope * (g - xs[j]) + v[j]
}

/// A measured table's knots checked (`device.FIELD`): 2 to `max` conductances `g` rising
/// strictly over [0, g_max], one finite value per conductance in every column (name, values,
/// whether they are standard deviations, which must be ≥ 0). `level` says what one knot holds;
/// `span_note` ends the span error.
fn check_knots(field: &str, g: &[f64], columns: &[(&str, &[f64], bool)], max: usize, g_max: f64, level: &str, span_note: &str) -> Result<(), String> {
    let n = g.len();
    if !(2..=max).contains(&n) {
        return Err(format!("device.{field}.g has {n} conductances: give 2 to {max} (one per measured level)"));
    }
    for (name, v, _) in columns {
        if v.len() != n {
            return Err(format!("device.{field}.{name} has {} values for {n} conductances in g: give one per conductance", v.len()));
        }
    }
    for (name, v, _) in std::iter::once(&("g", g, false)).chain(columns) {
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(format!("device.{field}.{name}[{i}] = {}: every value must be a finite number", v[i]));
        }
    }
    for (name, v, _) in columns.iter().filter(|c| c.2) {
        if let Some(i) = v.iter().position(|&x| x < 0.0) {
            return Err(format!("device.{field}.{name}[{i}] = {}: a standard deviation is >= 0", v[i]));
        }
    }
    if let Some(i) = (1..n).find(|&i| g[i] <= g[i - 1]) {
        return Err(format!("device.{field}.g[{i}] = {} follows {}: the conductances must rise strictly ({level})", g[i], g[i - 1]));
    }
    if g[0] > 0.0 || g[n - 1] < g_max {
        return Err(format!(
            "device.{field}.g spans [{}, {}] µS, but the devices are programmed over [0, g_max = {g_max}] µS: extend the table to cover it (repeat the end values if they hold{span_note})",
            g[0],
            g[n - 1]
        ));
    }
    Ok(())
}

impl DriftTable {
    /// `numpy.interp(g, self.g, v)` ([`interp`]).
    pub fn interp(&self, v: &[f64], g: f64) -> f64 {
        interp(&self.g, v, g)
    }

    /// Every knot usable: the error names the field and the fix.
    pub fn validate(&self, g_max: f64) -> Result<(), String> {
        let columns: [(&str, &[f64], bool); 2] = [("nu_mean", &self.nu_mean, false), ("nu_std", &self.nu_std, true)];
        check_knots("drift_table", &self.g, &columns, MAX_DRIFT_KNOTS, g_max, "one mean and std per level", "; aihwkit refuses such a table too")
    }
}

/// The most knots a [`ProgTable`] or a [`ReadTable`] may have (the stages keep them in their
/// uniform).
pub const MAX_PROG_KNOTS: usize = 16;
pub const MAX_READ_KNOTS: usize = 16;

/// A measured programming-noise model: the standard deviation of the programmed conductance
/// about its target, `sigma` (µS), at target conductances `g` (µS, ascending), read as
/// [`DriftTable`] is read (`numpy.interp` on the target conductance, the end values beyond the
/// ends). It replaces the model's σ_prog polynomial (`prog_coeff`, `prog_g_ref`, `prog_break`,
/// `prog_coeff_hi`); the programmed conductance is then max(0, g_T + prog_noise_scale·σ(g_T)·N)
/// as for every model. Its values are µS as measured, not rescaled to another g_max.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgTable {
    /// Target conductances, µS, strictly ascending, spanning [0, g_max].
    pub g: Vec<f64>,
    /// Standard deviation of the programmed conductance at each target, µS (≥ 0).
    pub sigma: Vec<f64>,
}

impl ProgTable {
    /// σ at target conductance `g` (µS), [`interp`].
    pub fn sigma_at(&self, g: f64) -> f64 {
        interp(&self.g, &self.sigma, g)
    }

    /// Every knot usable: the error names the field and the fix.
    pub fn validate(&self, g_max: f64) -> Result<(), String> {
        check_knots("prog_table", &self.g, &[("sigma", &self.sigma, true)], MAX_PROG_KNOTS, g_max, "one σ per level", "")
    }
}

/// A measured 1/f read-noise model: the amplitude Q_s (dimensionless, the model's `q_s` fit's
/// quantity) at conductances `g` (µS, ascending), read as [`DriftTable`] is read at the
/// conductance the fit is read at. It replaces the model's `q_s` fit; a read at time t then adds
/// |g_d|·read_noise_scale·Q_s(g)·sqrt(ln((t + t_read)/(2 t_read)))·N as for every model. A
/// measured relative read-noise std σ_r/g at a known t and t_read divides by that square root.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadTable {
    /// Conductances, µS, strictly ascending, spanning [0, g_max].
    pub g: Vec<f64>,
    /// Q_s at each conductance (≥ 0).
    pub q_s: Vec<f64>,
}

impl ReadTable {
    /// Q_s at conductance `g` (µS), [`interp`].
    pub fn q_s_at(&self, g: f64) -> f64 {
        interp(&self.g, &self.q_s, g)
    }

    /// Every knot usable: the error names the field and the fix.
    pub fn validate(&self, g_max: f64) -> Result<(), String> {
        check_knots("read_table", &self.g, &[("q_s", &self.q_s, true)], MAX_READ_KNOTS, g_max, "one Q_s per level", "")
    }
}

/// How the pair drifts (noise-models §3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftPath {
    /// aihwkit's tile path: re-convert the programmed weight with s' = g_max/max|W_prog|, so one
    /// device holds it; drift that device with the nu of its target device; Q_s at the
    /// programmed conductance. The default, so numbers compare with aihwkit.
    #[default]
    Aihwkit,
    /// Both programmed devices drift separately, each with its own nu and read noise.
    BothDevices,
}

/// What one programming draw acts on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Programming {
    /// A differential pair: G+ and G- are programmed separately, each with σ_prog of its own
    /// target, rectified at 0 (noise-models §2-§3; aihwkit).
    #[default]
    Pair,
    /// One draw per weight on its signed target g_T = s·w: g_T + σ_prog(|g_T|)·N, not rectified,
    /// so the sign may flip; targets with |g_T|/g_max below `zero_below` are exactly 0
    /// (`apply_noise_model.py` of IBM's Analog Foundation Models).
    Weight,
    /// One device per weight (aihwkit's SingleDeviceConductanceConverter): each tile's weights
    /// mapped affinely from [min W, max W] onto [g_min, g_max], g_T + σ_prog(g_T)·N, not
    /// rectified; with a [`LogRelaxation`] only.
    Single,
}

/// A statistical PCM model: programming noise, drift exponent and 1/f read noise (noise-models §3-§5).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceModel {
    pub name: String,
    /// Largest programmable conductance, µS.
    pub g_max: f64,
    /// Time of programming completion that drift is referenced to, s.
    pub t0: f64,
    /// Duration of one read, s (sets the 1/f noise bandwidth).
    pub t_read: f64,
    pub prog_noise_scale: f64,
    pub drift_scale: f64,
    pub read_noise_scale: f64,
    /// Programming std polynomial in x = g_T/g_max, µS at `prog_g_ref`.
    pub prog_coeff: [f64; 4],
    pub prog_g_ref: f64,
    pub mu_nu: Fit,
    pub sigma_nu: Fit,
    pub q_s: Fit,
    /// A measured drift model in place of `mu_nu` and `sigma_nu` (aihwkit's
    /// `CustomDriftPCMLikeNoiseModel`); None: the fits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_table: Option<DriftTable>,
    /// A measured programming-noise model in place of the σ_prog polynomial; None: the polynomial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prog_table: Option<ProgTable>,
    /// A measured read-noise model in place of the `q_s` fit; None: the fit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_table: Option<ReadTable>,
    /// A relaxation model measured at a few times (ReRAM) in place of programming polynomial,
    /// drift and read noise; None: those.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relax_table: Option<RelaxTable>,
    /// Log-time relaxation of one device per weight (CMO/HfOx ReRAM) in place of drift and read
    /// noise; None: those.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_relax: Option<LogRelaxation>,
    /// Smallest conductance of a one-device mapping (`programming = "single"`), µS.
    #[serde(default)]
    pub g_min: f64,
    #[serde(default)]
    pub drift_path: DriftPath,
    /// Pair (default) or one signed draw per weight.
    #[serde(default)]
    pub programming: Programming,
    /// Normalised target x = g_T/g_max above which `prog_coeff_hi` gives σ_prog instead of
    /// `prog_coeff` (0: no break, one polynomial everywhere).
    #[serde(default)]
    pub prog_break: f64,
    /// Programming std polynomial above `prog_break`, in the units of `prog_coeff`.
    #[serde(default)]
    pub prog_coeff_hi: [f64; 4],
    /// `programming = "weight"`: targets with |g_T|/g_max below this are programmed to exactly 0.
    #[serde(default)]
    pub zero_below: f64,
    /// The model's σ assumes each output row of each tile is scaled on its own, its max|W| mapped
    /// to g_max (AFM); the experiment then needs per-row scales (`periphery.weight_scaling_columnwise`).
    #[serde(default)]
    pub scale_per_row: bool,
    /// Significance factors F of the conductance pairs that hold one weight, least significant
    /// first (aihwkit's `NPairConductanceConverter` f_lst; `DualPairConductanceConverter` with
    /// two): pair k takes the part of |s·W| above the range of the pairs before it, divided by
    /// F_k, so a higher pair is used only once the lower ones are full. Empty or `[1.0]`: one pair
    /// (aihwkit's `SinglePairConductanceConverter`, the default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pair_significance: Vec<f64>,
    /// Fraction of devices stuck in the SET state: whatever its target, such a device sits at
    /// g_max from programming on and does not drift (a programming failure; drawn per device and
    /// trial, NeuroSim's stuck-at-1). 0: none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub stuck_set: f64,
    /// Fraction of devices stuck in the RESET state: at 0 µS whatever their target (stuck-at-0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub stuck_reset: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// Most conductance pairs one weight may take (`DeviceModel::pair_significance`): the stages keep
/// the pairs' factors in four words and draw each time's read noise from at most two blocks.
pub const MAX_PAIRS: usize = 4;

/// Programming-noise polynomial of the PCM model, µS at g_max = 25 µS
/// (Nandakumar et al. 2019; aihwkit PCMLikeNoiseModel).
pub const PCM_PROG_COEFF: [f64; 4] = [0.26348, 1.9650, -1.1731, 0.0];

/// HERMES 2-device programming fit (aihwkit HermesNoiseModel, g_ref = 20.7 µS).
pub const HERMES2_PROG_COEFF: [f64; 4] = [0.16603222, 4.71806468, -8.48101252, 4.68961419];
/// HERMES 1-device programming fit (g_ref = 10.35 µS).
pub const HERMES1_PROG_COEFF: [f64; 4] = [0.15781817, 2.32443916, -2.16310839, 0.68841818];

/// The AFM programming-noise cubics, coefficients highest degree first (numpy `polyval` order)
/// in the tile's 0..180 units: σ(|w|) for |w| ≤ 52.5 ("OD") and above it ("TD")
/// (`apply_noise_model.py`, `WEIGHT_NOISE_MODEL_OD`, `WEIGHT_NOISE_MODEL_TD`).
pub const AFM_OD: [f64; 4] = [2.939751381126213e-05, -0.00371581208142707, 0.22419685954327148, 2.5797410660159494];
pub const AFM_TD: [f64; 4] = [1.2329755395573392e-05, -0.003054993405157235, 0.2453487119885723, 2.110295720240385];
/// AFM: every row (of each 512-input tile) is scaled to max|w| = 180 (`GMAX`).
pub const AFM_GMAX: f64 = 180.0;
/// AFM: |w| above this uses the TD cubic (`OD_TD_DIVERGENCE`, strict `>` in the file).
pub const AFM_BREAK: f64 = 52.5;
/// AFM: targets with |w| < 0.6 are set to 0 (`noisy_weights[torch.abs(weights) < 0.6] = 0`).
pub const AFM_ZERO: f64 = 0.6;

/// A cubic in |w| (0..g_max units, highest degree first) as ascending coefficients in
/// x = |w|/g_max, so the shared polynomial in x evaluates it: `c_x[i] = c_w[3 − i]·g_maxⁱ`.
pub fn cubic_in_x(c_w: [f64; 4], g_max: f64) -> [f64; 4] {
    [c_w[3], c_w[2] * g_max, c_w[1] * g_max * g_max, c_w[0] * g_max * g_max * g_max]
}

/// Programming-noise std of the `simple` model, in units of g_max.
pub const SIMPLE_PROG_SIGMA: f64 = 0.067;

/// Names accepted by [`DeviceModel::by_name`].
pub const MODEL_NAMES: [&str; 8] = ["pcm", "hermes", "hermes1", "reram", "reram_cmo", "ideal", "simple", "afm"];

impl DeviceModel {
    /// aihwkit `PCMLikeNoiseModel` defaults.
    pub fn pcm() -> Self {
        DeviceModel {
            name: "pcm".into(),
            g_max: 25.0,
            t0: 20.0,
            t_read: 250e-9,
            prog_noise_scale: 1.0,
            drift_scale: 1.0,
            read_noise_scale: 1.0,
            prog_coeff: PCM_PROG_COEFF,
            prog_g_ref: 25.0,
            mu_nu: Fit::log_clamp(-0.0155, 0.0244, 0.049, 0.1),
            sigma_nu: Fit::log_clamp(-0.0125, -0.0059, 0.008, 0.045),
            q_s: Fit::PowerClamp { a: 0.0088, p: 0.65, lo: 1e-3, hi: 0.2 },
            drift_table: None,
            prog_table: None,
            read_table: None,
            relax_table: None,
            log_relax: None,
            g_min: 0.0,
            drift_path: DriftPath::Aihwkit,
            programming: Programming::Pair,
            prog_break: 0.0,
            prog_coeff_hi: [0.0; 4],
            zero_below: 0.0,
            scale_per_row: false,
            pair_significance: Vec::new(),
            stuck_set: 0.0,
            stuck_reset: 0.0,
        }
    }

    /// aihwkit `HermesNoiseModel`, 2 devices per weight (its default).
    pub fn hermes() -> Self {
        DeviceModel {
            name: "hermes".into(),
            g_max: 20.7,
            t0: 300.0,
            t_read: 512e-9,
            prog_noise_scale: 1.0,
            drift_scale: 1.0,
            read_noise_scale: 1.0,
            prog_coeff: HERMES2_PROG_COEFF,
            prog_g_ref: 20.7,
            mu_nu: Fit::LogClampPoly { brk: 0.0945, a: -0.0387, b: -0.0182, lo: 0.072, hi: 0.13, c: [0.0736, -0.0126, -0.0436, 0.0] },
            sigma_nu: Fit::LogClampPoly { brk: 0.3055, a: -0.0117, b: -0.0057, lo: 0.0091, hi: 0.04, c: [0.0073, 0.0093, -0.0118, 0.0] },
            q_s: Fit::LogClampPoly { brk: 0.16, a: -0.0117, b: -0.0069, lo: 0.015, hi: 0.04, c: [0.0123, 0.0211, -0.0280, 0.0069] },
            ..Self::pcm()
        }
    }

    /// HERMES fit for one device per weight.
    pub fn hermes1() -> Self {
        DeviceModel {
            name: "hermes1".into(),
            g_max: 10.35,
            t0: 200.0,
            prog_coeff: HERMES1_PROG_COEFF,
            prog_g_ref: 10.35,
            sigma_nu: Fit::LogClampPoly { brk: 0.3039, a: -0.0120, b: -0.0023, lo: 0.0124, hi: 0.04, c: [0.0104, 0.0116, -0.0165, 0.0] },
            q_s: Fit::LogClampPoly { brk: 0.1591, a: -0.0078, b: 0.0038, lo: 0.0179, hi: 0.04, c: [0.0088, 0.0768, -0.1352, 0.0664] },
            ..Self::hermes()
        }
    }

    /// aihwkit `ReRamWan2022NoiseModel` at its defaults (g_max 25 µS, the converter's default;
    /// noise_scale 1): ReRAM of Wan et al. (Nature 2022), programmed with the 1 s σ and read at
    /// 1 s, 1 day or 2 days as a fresh draw about the target ([`RelaxTable`]); no power-law
    /// drift and no separate 1/f read noise (aihwkit suggests `forward.w_noise` ≈ 0.01 for the
    /// short-term read noise: `periphery.w_noise`). `prog_noise_scale` scales the programming
    /// draw, `drift_scale` the draw at the read time (aihwkit's one `noise_scale` is both).
    pub fn reram() -> Self {
        DeviceModel {
            name: "reram".into(),
            g_max: 25.0,
            read_noise_scale: 0.0,
            relax_table: Some(RelaxTable { t: RERAM_WAN2022_TIMES.to_vec(), coeff: RERAM_WAN2022_COEFF.to_vec() }),
            ..Self::pcm()
        }
    }

    /// aihwkit `ReRamCMONoiseModel` at its defaults: one device per weight on [9, 88.2] µS
    /// (its SingleDeviceConductanceConverter), programmed with the 0.2 % acceptance range's
    /// σ = c0 + c1·g, then the log-time relaxation and read noise of [`LogRelaxation`]
    /// (t_read 1 µs). Any time can be read.
    pub fn reram_cmo() -> Self {
        DeviceModel {
            name: "reram_cmo".into(),
            g_max: CMO_G_MAX,
            g_min: CMO_G_MIN,
            t_read: CMO_T_READ,
            // σ = c0 + c1·g as the shared polynomial in x = g/g_max, at its own g_max.
            prog_coeff: [CMO_PROG[0], CMO_PROG[1] * CMO_G_MAX, 0.0, 0.0],
            prog_g_ref: CMO_G_MAX,
            programming: Programming::Single,
            log_relax: Some(CMO_RELAXATION),
            ..Self::pcm()
        }
    }

    /// No device noise: the PCM structure with every noise scale at 0 (periphery effects only).
    pub fn ideal() -> Self {
        DeviceModel { name: "ideal".into(), prog_noise_scale: 0.0, drift_scale: 0.0, read_noise_scale: 0.0, ..Self::pcm() }
    }

    /// The simple noise setting of the kernel-approximation study (Büchel, Camposampiero et al.,
    /// Nat. Mach. Intell. 2024; kernel-attention spec §4): programming noise g_T + 0.067·N in
    /// normalised units, one signed draw per weight (σ_prog = 0.067·g_max at every conductance,
    /// not a rectified pair, so no shrink towards 0), no drift and no read noise.
    /// Its periphery (8-bit inputs, output noise 0.1) and the 2σ weight clipping are set in the
    /// experiment file (`[periphery]`, `kernel.clip_sigma`).
    pub fn simple() -> Self {
        DeviceModel {
            name: "simple".into(),
            prog_coeff: [SIMPLE_PROG_SIGMA * 25.0, 0.0, 0.0, 0.0],
            prog_g_ref: 25.0,
            programming: Programming::Weight,
            drift_scale: 0.0,
            read_noise_scale: 0.0,
            ..Self::pcm()
        }
    }

    /// The evaluation noise of IBM's Analog Foundation Models (`apply_noise_model.py`,
    /// `add_PCM_noise`): each output row of each 512-input tile scaled to max|w| = 180, one draw
    /// per weight w + σ(|w|)·N with σ the OD cubic for |w| ≤ 52.5 and the TD cubic above (both in
    /// the 0..180 units), weights with |w| < 0.6 set to 0, no drift and no read noise. Here
    /// g_max = 180 and g_ref = 180, so the cubics are used in the file's own units. Its mapping needs
    /// `periphery.weight_scaling_omega > 0` and `weight_scaling_columnwise = true` (per-row
    /// scales); `[tile] max_in = 512` (the default) is the file's `max_inp_size = 512` with the
    /// same balanced splits, a `max_in` at least the layer's inputs its per-whole-row variant.
    /// The periphery is set in the experiment file (`Periphery::perfect()` for weight noise alone).
    /// Not reproduced: the file evaluates σ in float16 (relative rounding ≤ 2⁻¹¹) and adds
    /// float16's smallest normal (6.1e-5) to each row's max|w| (a relative change of ≤ 6.1e-5 for
    /// weights of order 1).
    pub fn afm() -> Self {
        DeviceModel {
            name: "afm".into(),
            g_max: AFM_GMAX,
            prog_coeff: cubic_in_x(AFM_OD, AFM_GMAX),
            prog_g_ref: AFM_GMAX,
            drift_scale: 0.0,
            read_noise_scale: 0.0,
            programming: Programming::Weight,
            prog_break: AFM_BREAK / AFM_GMAX,
            prog_coeff_hi: cubic_in_x(AFM_TD, AFM_GMAX),
            zero_below: AFM_ZERO / AFM_GMAX,
            scale_per_row: true,
            ..Self::pcm()
        }
    }

    pub fn by_name(name: &str) -> Option<Self> {
        match name {
            "pcm" => Some(Self::pcm()),
            "hermes" | "hermes2" => Some(Self::hermes()),
            "hermes1" => Some(Self::hermes1()),
            "ideal" => Some(Self::ideal()),
            "simple" => Some(Self::simple()),
            "afm" => Some(Self::afm()),
            "reram" => Some(Self::reram()),
            "reram_cmo" => Some(Self::reram_cmo()),
            _ => None,
        }
    }

    /// Programming noise std σ_prog(g_T), µS (before `prog_noise_scale`): the measured table's
    /// where there is one.
    pub fn sigma_prog(&self, g_target: f64) -> f64 {
        if let Some(t) = &self.relax_table {
            return t.sigma(0, g_target, self.g_max);
        }
        if let Some(t) = &self.prog_table {
            return t.sigma_at(g_target);
        }
        let x = g_target / self.g_max;
        let c = if self.prog_break > 0.0 && x > self.prog_break { &self.prog_coeff_hi } else { &self.prog_coeff };
        (((c[3] * x + c[2]) * x + c[1]) * x + c[0]) * self.g_max / self.prog_g_ref
    }

    /// Mean drift exponent at the target conductance: the drift table's where there is one.
    pub fn mu_nu(&self, g_target: f64) -> f64 {
        match &self.drift_table {
            Some(t) => t.interp(&t.nu_mean, g_target),
            None => self.mu_nu.eval(g_target / self.g_max),
        }
    }

    /// Standard deviation of the drift exponent at the target conductance.
    pub fn sigma_nu(&self, g_target: f64) -> f64 {
        match &self.drift_table {
            Some(t) => t.interp(&t.nu_std, g_target),
            None => self.sigma_nu.eval(g_target / self.g_max),
        }
    }

    /// 1/f read-noise amplitude Q_s at conductance g: the measured table's where there is one.
    pub fn q_s(&self, g: f64) -> f64 {
        match &self.read_table {
            Some(t) => t.q_s_at(g.abs()),
            None => self.q_s.eval(g.abs() / self.g_max),
        }
    }

    /// ln(t/t0) with t = t_inf + t0 (0 when t ≤ t0); with a log-time relaxation ln t_inf (0 at
    /// t_inf = 0), the quantity its shift and spread are linear in.
    pub fn log_t_ratio(&self, t_inf: f64) -> f64 {
        if self.log_relax.is_some() {
            return if t_inf > 0.0 { t_inf.ln() } else { 0.0 };
        }
        let t = t_inf + self.t0;
        if t > self.t0 {
            (t / self.t0).ln()
        } else {
            0.0
        }
    }

    /// sqrt(ln((t + t_read) / (2 t_read))), t = t_inf + t0 (t = t_inf with a log-time
    /// relaxation, as aihwkit's ReRamCMONoiseModel reads it).
    pub fn read_sqrt_log(&self, t_inf: f64) -> f64 {
        let t = if self.log_relax.is_some() { t_inf } else { t_inf + self.t0 };
        ((t + self.t_read) / (2.0 * self.t_read)).ln().max(0.0).sqrt()
    }

    /// Programmed conductance from target and a standard normal draw.
    pub fn program(&self, g_target: f64, n: f64) -> f64 {
        (g_target + self.prog_noise_scale * self.sigma_prog(g_target) * n).max(0.0)
    }

    /// `programming = "weight"`: the programmed signed conductance from a signed target
    /// g_T = s·w and one standard normal draw (not rectified; 0 below `zero_below`).
    pub fn program_weight(&self, g_target: f64, n: f64) -> f64 {
        if g_target.abs() / self.g_max < self.zero_below {
            return 0.0;
        }
        g_target + self.prog_noise_scale * self.sigma_prog(g_target.abs()) * n
    }

    /// Drift exponent, drawn from the target conductance (folded normal).
    pub fn nu(&self, g_target: f64, n: f64) -> f64 {
        self.drift_scale * (self.mu_nu(g_target) + self.sigma_nu(g_target) * n).abs()
    }

    /// Drift and accumulated read noise at t_inf applied to programmed conductance g.
    pub fn drift_read(&self, g: f64, nu: f64, t_inf: f64, n: f64) -> f64 {
        let gd = g * (-nu * self.log_t_ratio(t_inf)).exp();
        let sig = self.q_s(g) * self.read_sqrt_log(t_inf);
        (gd + gd.abs() * self.read_noise_scale * sig * n).max(0.0)
    }

    /// A relaxation model's conductance at table time `k` ([`RelaxTable`]): a fresh draw about
    /// the target, rectified at 0.
    pub fn relaxed(&self, k: usize, g_target: f64, n: f64) -> f64 {
        let t = self.relax_table.as_ref().expect("relaxed() needs a relax_table");
        (g_target + self.drift_scale * t.sigma(k, g_target, self.g_max) * n).max(0.0)
    }

    /// One device per weight (`programming = "single"`): the programmed conductance from the
    /// target g_T (µS) and a standard normal draw, not rectified.
    pub fn program_single(&self, g_target: f64, n: f64) -> f64 {
        g_target + self.prog_noise_scale * self.sigma_prog(g_target) * n
    }

    /// A log-time relaxation's read at `t_inf` of a device at conductance g (µS, the re-converted
    /// programmed state), from two standard normal draws ([`LogRelaxation`]).
    pub fn log_relaxed(&self, g: f64, t_inf: f64, n: [f64; 2]) -> f64 {
        let r = self.log_relax.as_ref().expect("log_relaxed() needs a log_relax");
        if t_inf == 0.0 {
            return g;
        }
        let lt = t_inf.ln();
        let g_d = g + self.drift_scale * (r.mean * lt + (r.std[0] * lt + r.std[1]) * n[0]);
        // A device already below 0 µS ends at g_min whatever its read: no read noise there
        // (aihwkit's log10 gives NaN, which its clamp keeps).
        let sig = if g_d > 0.0 { r.read_k * g_d.log10() * self.read_sqrt_log(t_inf) } else { 0.0 };
        (g_d + self.read_noise_scale * sig * n[1]).clamp(self.g_min, self.g_max)
    }

    /// Whether a read at `t_inf` (s) is one this model can give: any time, or with a relaxation
    /// table one of its times. The error names the times to use.
    pub fn check_time(&self, t_inf: f64) -> Result<(), String> {
        match &self.relax_table {
            Some(r) if r.index_of(t_inf).is_none() => Err(format!(
                "t = {t_inf} s after programming: device.model = {:?} is measured at {} only (device.relax_table.t; aihwkit refuses other times too); read at those times (\"1s\", \"1d\", \"2d\" for aihwkit's table)",
                self.name,
                r.times_text()
            )),
            _ => Ok(()),
        }
    }

    /// Checks that every parameter is usable; the error names the field and the fix.
    pub fn validate(&self) -> Result<(), String> {
        let pos = [("g_max", self.g_max), ("t0", self.t0), ("t_read", self.t_read)];
        for (name, v) in pos {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("device.{name} = {v}: must be a finite number > 0"));
            }
        }
        for (name, f) in [("mu_nu", &self.mu_nu), ("sigma_nu", &self.sigma_nu), ("q_s", &self.q_s)] {
            let (vals, lo, hi): (Vec<f64>, f64, f64) = match *f {
                Fit::LogClampPoly { brk, a, b, lo, hi, c } => {
                    ([vec![a, b, lo, hi], c.to_vec(), vec![if brk.is_infinite() { 0.0 } else { brk }]].concat(), lo, hi)
                }
                Fit::PowerClamp { a, p, lo, hi } => (vec![a, p, lo, hi], lo, hi),
            };
            if vals.iter().any(|v| !v.is_finite()) || lo > hi {
                return Err(format!("device.{name} = {f:?}: every coefficient must be finite and lo <= hi"));
            }
            if matches!(f, Fit::PowerClamp { .. }) && lo <= 0.0 {
                return Err(format!("device.{name}: lo = {lo} must be > 0 (it bounds the denominator of a / max(gr^p, lo))"));
            }
        }
        if let Some(t) = &self.drift_table {
            t.validate(self.g_max)?;
        }
        if let Some(t) = &self.prog_table {
            t.validate(self.g_max)?;
        }
        if let Some(t) = &self.read_table {
            t.validate(self.g_max)?;
        }
        if let Some(t) = &self.relax_table {
            t.validate()?;
            let beside = [("drift_table", self.drift_table.is_some()), ("prog_table", self.prog_table.is_some()), ("read_table", self.read_table.is_some())];
            if let Some((name, _)) = beside.iter().find(|b| b.1) {
                return Err(format!("device.{name} beside device.relax_table: the relaxation table gives the programming and every read itself, so {name} would go unread; remove one of the two"));
            }
            if self.drift_path != DriftPath::Aihwkit || self.programming != Programming::Pair {
                return Err("device.relax_table reads the differential pair as aihwkit's tile does: leave drift_path and programming at their defaults (\"aihwkit\", \"pair\")".into());
            }
        }
        if let Some(r) = &self.log_relax {
            if ![r.mean, r.std[0], r.std[1], r.read_k].iter().all(|v| v.is_finite()) {
                return Err(format!("device.log_relax = {r:?}: every coefficient must be a finite number (µS)"));
            }
            if self.programming != Programming::Single || self.drift_path != DriftPath::Aihwkit || self.relax_table.is_some() {
                return Err(
                    "device.log_relax relaxes one device per weight: set programming = \"single\", leave drift_path at \"aihwkit\" and give no relax_table"
                        .into(),
                );
            }
            let beside = [("drift_table", self.drift_table.is_some()), ("read_table", self.read_table.is_some()), ("prog_table", self.prog_table.is_some())];
            if let Some((name, _)) = beside.iter().find(|b| b.1) {
                return Err(format!("device.{name} beside device.log_relax: the one-device model reads its own programming polynomial, relaxation and read noise, so {name} would go unread; remove it"));
            }
        }
        if self.programming == Programming::Single {
            if self.log_relax.is_none() {
                return Err("device.programming = \"single\" maps one device per weight for a log-time relaxation: give device.log_relax (device.model = \"reram_cmo\"), or use \"pair\"".into());
            }
            if !(self.g_min.is_finite() && self.g_min >= 0.0 && self.g_min < self.g_max) {
                return Err(format!("device.g_min = {}: must be >= 0 and below g_max = {} (the one device's range)", self.g_min, self.g_max));
            }
        } else if self.g_min != 0.0 {
            return Err(format!("device.g_min = {}: only programming = \"single\" maps onto a range from g_min; set it to 0", self.g_min));
        }
        if self.prog_coeff.iter().any(|v| !v.is_finite()) || !(self.prog_g_ref.is_finite() && self.prog_g_ref > 0.0) {
            return Err(format!("device.prog_coeff = {:?}, prog_g_ref = {}: must be finite (g_ref > 0)", self.prog_coeff, self.prog_g_ref));
        }
        if self.prog_coeff_hi.iter().any(|v| !v.is_finite()) || !(self.prog_break.is_finite() && (0.0..1.0).contains(&self.prog_break)) {
            return Err(format!(
                "device.prog_break = {}, prog_coeff_hi = {:?}: must be finite, the break in [0, 1) (a fraction of g_max; 0 = one polynomial everywhere)",
                self.prog_break, self.prog_coeff_hi
            ));
        }
        if !(self.zero_below.is_finite() && (0.0..1.0).contains(&self.zero_below)) {
            return Err(format!("device.zero_below = {}: must be in [0, 1) (a fraction of g_max; 0 = off)", self.zero_below));
        }
        if self.zero_below > 0.0 && self.programming != Programming::Weight {
            return Err(format!("device.zero_below = {}: only programming = \"weight\" zeroes small targets; set it, or zero_below = 0", self.zero_below));
        }
        self.validate_pairs()?;
        let scales = [("prog_noise_scale", self.prog_noise_scale), ("drift_scale", self.drift_scale), ("read_noise_scale", self.read_noise_scale)];
        for (name, v) in scales {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("device.{name} = {v}: must be a finite number >= 0 (1 = the published model, 0 = off)"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference table of noise-models.md §3 is printed to 3-4 significant digits.
    const TABLE_REL_TOL: f64 = 2e-3;
    const TABLE_ABS_TOL: f64 = 5e-5;

    #[test]
    fn pcm_matches_reference_table() {
        let m = DeviceModel::pcm();
        let gr = [1e-3, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0];
        let mu = [0.100, 0.0958, 0.0708, 0.0601, 0.0493, 0.049, 0.049];
        let sn = [0.045, 0.045, 0.0315, 0.0229, 0.0142, 0.008, 0.008];
        let qs = [0.200, 0.1756, 0.0617, 0.0393, 0.0251, 0.0138, 0.0088];
        let sp = [0.0106, 0.0113, 0.0144, 0.0179, 0.0244, 0.0381, 0.0422];
        for i in 0..gr.len() {
            let g = gr[i] * m.g_max;
            let got = [m.mu_nu(g), m.sigma_nu(g), m.q_s(g), m.sigma_prog(g) / m.g_max];
            let want = [mu[i], sn[i], qs[i], sp[i]];
            for k in 0..4 {
                assert!(
                    (got[k] - want[k]).abs() <= TABLE_REL_TOL * want[k].abs() + TABLE_ABS_TOL,
                    "gr={} quantity {k}: got {} want {}",
                    gr[i],
                    got[k],
                    want[k]
                );
            }
        }
        let t = [0.0, 1.0, 3600.0, 86400.0, 3.15e7];
        let rs = [4.1838, 4.1897, 4.7648, 5.0868, 5.6369];
        let dr = [1.0, 0.9976, 0.7751, 0.6635, 0.4970];
        for i in 0..t.len() {
            assert!((m.read_sqrt_log(t[i]) - rs[i]).abs() < 1e-3, "t={} read {}", t[i], m.read_sqrt_log(t[i]));
            let d = (-0.049 * m.log_t_ratio(t[i])).exp();
            assert!((d - dr[i]).abs() < 1e-3, "t={} drift {d}", t[i]);
        }
    }

    /// aihwkit's example `custom_drift_model` (g_lst [0, 10, 25] µS): `numpy.interp`'s values,
    /// worked by hand, between, on and beyond the knots.
    #[test]
    fn drift_table_interpolates_as_numpy() {
        let t = DriftTable { g: vec![0.0, 10.0, 25.0], nu_mean: vec![0.08, 0.05, 0.03], nu_std: vec![0.03, 0.02, 0.01] };
        let m = DeviceModel { drift_table: Some(t.clone()), ..DeviceModel::pcm() };
        m.validate().unwrap();
        for (g, mean, std) in [(0.0, 0.08, 0.03), (5.0, 0.065, 0.025), (10.0, 0.05, 0.02), (17.5, 0.04, 0.015), (25.0, 0.03, 0.01), (40.0, 0.03, 0.01)] {
            assert!((m.mu_nu(g) - mean).abs() < 1e-15 && (m.sigma_nu(g) - std).abs() < 1e-15, "g = {g}: {} {}", m.mu_nu(g), m.sigma_nu(g));
        }
        // ν = |mean + std·n|·drift_scale, as for the fits.
        assert!((m.nu(5.0, -4.0) - 0.035).abs() < 1e-15);
        let bad = |f: &dyn Fn(&mut DriftTable), want: &str| {
            let mut b = t.clone();
            f(&mut b);
            let e = DeviceModel { drift_table: Some(b), ..DeviceModel::pcm() }.validate().unwrap_err();
            assert!(e.contains(want), "{e}");
        };
        bad(&|b| b.g = vec![0.0, 25.0, 10.0], "device.drift_table.g[2] = 10 follows 25");
        bad(&|b| b.nu_std.pop().map(drop).unwrap_or(()), "nu_std has 2 values for 3 conductances");
        bad(&|b| b.nu_std[1] = -0.01, "nu_std[1] = -0.01");
        bad(&|b| b.nu_mean[0] = f64::NAN, "nu_mean[0] = NaN");
        bad(&|b| b.g[2] = 20.0, "spans [0, 20] µS");
        bad(&|b| *b = DriftTable { g: vec![0.0], nu_mean: vec![0.1], nu_std: vec![0.0] }, "has 1 conductances");
    }

    /// A measured programming table: σ read as numpy.interp, in µS as given (no g_max rescaling,
    /// the polynomial and its break unused), scaled by prog_noise_scale; every refusal names its
    /// field.
    #[test]
    fn prog_table_interpolates_as_numpy_and_replaces_the_polynomial() {
        let t = ProgTable { g: vec![0.0, 5.0, 25.0], sigma: vec![0.4, 1.2, 0.6] };
        let m = DeviceModel { prog_table: Some(t.clone()), prog_break: 0.5, prog_coeff_hi: [9.0; 4], ..DeviceModel::pcm() };
        m.validate().unwrap();
        for (g, sigma) in [(0.0, 0.4), (2.5, 0.8), (5.0, 1.2), (15.0, 0.9), (25.0, 0.6), (30.0, 0.6)] {
            assert!((m.sigma_prog(g) - sigma).abs() < 1e-15, "g = {g}: {}", m.sigma_prog(g));
        }
        let half = DeviceModel { prog_noise_scale: 0.5, ..m.clone() };
        assert!((half.program(15.0, 2.0) - 15.9).abs() < 1e-12 && half.program(0.0, -3.0) == 0.0);
        let bad = |f: &dyn Fn(&mut ProgTable), want: &str| {
            let mut b = t.clone();
            f(&mut b);
            let e = DeviceModel { prog_table: Some(b), ..DeviceModel::pcm() }.validate().unwrap_err();
            assert!(e.contains(want), "{e}");
        };
        bad(&|b| b.g = vec![0.0, 25.0, 5.0], "device.prog_table.g[2] = 5 follows 25: the conductances must rise strictly (one σ per level)");
        bad(&|b| b.sigma.truncate(2), "device.prog_table.sigma has 2 values for 3 conductances");
        bad(&|b| b.sigma[1] = -0.1, "device.prog_table.sigma[1] = -0.1: a standard deviation is >= 0");
        bad(&|b| b.g[1] = f64::INFINITY, "device.prog_table.g[1] = inf");
        bad(&|b| b.g[0] = 1.0, "device.prog_table.g spans [1, 25] µS");
        bad(&|b| *b = ProgTable { g: (0..17).map(|i| i as f64 * 2.0).collect(), sigma: vec![0.5; 17] }, "has 17 conductances: give 2 to 16");
    }

    /// A measured read-noise table: Q_s read as numpy.interp at |g| (µS), in place of the fit,
    /// into the read noise of `drift_read`; refusals name the field.
    #[test]
    fn read_table_interpolates_as_numpy_and_replaces_the_fit() {
        let t = ReadTable { g: vec![0.0, 10.0, 25.0], q_s: vec![0.2, 0.04, 0.01] };
        let m = DeviceModel { read_table: Some(t.clone()), ..DeviceModel::pcm() };
        m.validate().unwrap();
        for (g, q) in [(0.0, 0.2), (5.0, 0.12), (-5.0, 0.12), (10.0, 0.04), (20.0, 0.02), (40.0, 0.01)] {
            assert!((m.q_s(g) - q).abs() < 1e-15, "g = {g}: {}", m.q_s(g));
        }
        // No drift (ν = 0): the read noise alone, g·(1 + Q_s·sqrt(ln(...))·n).
        let want = 5.0 * (1.0 + 0.12 * m.read_sqrt_log(3600.0) * 1.5);
        assert!((m.drift_read(5.0, 0.0, 3600.0, 1.5) - want).abs() < 1e-12);
        let e = DeviceModel { read_table: Some(ReadTable { g: vec![0.0, 25.0], q_s: vec![0.1, -0.1] }), ..DeviceModel::pcm() }.validate().unwrap_err();
        assert!(e.contains("device.read_table.q_s[1] = -0.1: a standard deviation is >= 0"), "{e}");
        let e = DeviceModel { read_table: Some(ReadTable { g: vec![0.0, 20.0], q_s: vec![0.1, 0.1] }), ..DeviceModel::pcm() }.validate().unwrap_err();
        assert!(e.contains("device.read_table.g spans [0, 20] µS"), "{e}");
    }

    #[test]
    fn hermes_branches_are_continuous_enough() {
        for m in [DeviceModel::hermes(), DeviceModel::hermes1()] {
            for fit in [&m.mu_nu, &m.sigma_nu, &m.q_s] {
                if let Fit::LogClampPoly { brk, .. } = fit {
                    let below = fit.eval(brk * (1.0 - 1e-9));
                    let above = fit.eval(*brk);
                    // The published fits meet within a few percent at their break points.
                    assert!((below - above).abs() < 0.15 * above.abs(), "{}: {below} vs {above} at {brk}", m.name);
                }
            }
        }
    }
}
