//! The kernel workloads of experiment files (kernel-attention spec §2–§4; Büchel, Camposampiero et
//! al., "Kernel approximation using analogue in-memory computing", Nat. Mach. Intell. 2024):
//! `kernel_error` (‖K − ΦΦᵀ‖_F / ‖K‖_F on a point set), `kernel_ridge` (closed-form ridge on the
//! features, test accuracy) and `attention` (softmax attention against linear attention on the
//! features, relative output error). The random projection W (s × d, drawn from its own seed) is
//! programmed through the engine like any layer: device model, tiles, periphery, drift and GDC, a
//! trial being one independent programming, optionally replicated on r crossbars whose outputs are
//! averaged. Everything after the analog projection is digital (`crate::features`). Every point also
//! reports the floating-point metric of the same projection (`fp`).

use super::{Inputs, Metric as MetricName, PointRun, SweepPoint, TimeMetrics, WorkloadKind};
use crate::engine::layout::KernelParams;
use crate::engine::plan::{self, KernelReduction, RunConfig};
use crate::engine::stages::ATTN_BLOCK;
use crate::engine::{Backend, EngineError};
use crate::features::{attention, ridge::Ridge, Kernel, KernelSpec, Projection, SoftmaxFeatures};
use crate::workload::io::{Linear, Matrix};
use serde::{Deserialize, Serialize};

/// `[kernel]`: the feature map and how its projection is put on the crossbars. Every field can
/// also be a sweep axis (`sweep.features = [..]`, `sweep.projection = ["rff", "orf"]`, ...).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelSettings {
    /// rbf, arccos0, arccos1 or softmax.
    #[serde(default = "default_kernel")]
    pub kernel: Kernel,
    /// rff, orf, orf_repo or sorf.
    #[serde(default = "default_projection")]
    pub projection: Projection,
    /// Softmax only: positive (FAVOR+), trig or relu.
    #[serde(default = "default_softmax")]
    pub softmax_features: SoftmaxFeatures,
    /// RBF bandwidth: k(x, y) = exp(−γ‖x − y‖²); a number, or "c/d" (γ = c over the input
    /// dimension d, e.g. "1/d", as papers state it).
    #[serde(default = "default_gamma")]
    pub gamma: Gamma,
    /// s: rows of the projection (the feature count; [cos, sin] and [exp(+), exp(−)] maps give 2s
    /// features).
    pub features: usize,
    /// r: the projection copied on r crossbars, their outputs averaged (noise falls as 1/√r).
    #[serde(default = "default_replicas")]
    pub replicas: u32,
    /// Seed of the projection draw, separate from the device-noise seed (`seed`).
    #[serde(default)]
    pub projection_seed: u64,
    /// Average over P random projections (seeds projection_seed .. projection_seed + P − 1): the
    /// trials split into P consecutive blocks, block p programs projection p, so every trial
    /// redraws the device noise and every block the projection; `fp` is the mean over the P
    /// projections, and the analog mean's interval is Student t over the P projection means.
    #[serde(default = "default_replicas", skip_serializing_if = "is_one")]
    pub projection_seeds: u32,
    /// Clip the programmed projection at ±clip_sigma standard deviations of its entries (the
    /// paper: 2); 0 programs it unclipped. The floating-point metric `fp` uses the unclipped
    /// projection; with clipping on, `fp_clipped` is the floating-point metric of the clipped one
    /// (the analog run minus device noise), so clipping bias and noise can be told apart.
    #[serde(default)]
    pub clip_sigma: f64,
    /// kernel_ridge: the ridge α of (ΦᵀΦ + αI)⁻¹ΦᵀY.
    #[serde(default = "default_alpha")]
    pub ridge_alpha: f64,
    /// kernel_error: the first this many test points form the point set (the paper: 1000).
    #[serde(default = "default_points")]
    pub points: usize,
}

fn default_kernel() -> Kernel {
    Kernel::Rbf
}
fn default_projection() -> Projection {
    Projection::Rff
}
fn default_softmax() -> SoftmaxFeatures {
    SoftmaxFeatures::Positive
}
fn default_gamma() -> Gamma {
    Gamma::Value(0.05)
}

/// The RBF bandwidth γ: a number, or c/d for inputs of dimension d (`gamma = "1/d"`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Gamma {
    Value(f64),
    PerDimension(f64),
}

impl Gamma {
    /// γ for inputs of dimension `d`.
    pub fn value(self, d: usize) -> f64 {
        match self {
            Gamma::Value(g) => g,
            Gamma::PerDimension(c) => c / d.max(1) as f64,
        }
    }

    fn parse(text: &str) -> Result<Gamma, String> {
        let bad = || format!("\"{text}\" is not a number or \"c/d\"; write e.g. gamma = 0.05 or gamma = \"1/d\" (γ = 1 over the input dimension d)");
        let t = text.trim();
        if let Some(c) = t.strip_suffix("/d") {
            let c: f64 = c.trim().parse().map_err(|_| bad())?;
            return Ok(Gamma::PerDimension(c));
        }
        t.parse().map(Gamma::Value).map_err(|_| bad())
    }
}

impl std::fmt::Display for Gamma {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Gamma::Value(g) => write!(f, "{g}"),
            Gamma::PerDimension(c) => write!(f, "{c}/d"),
        }
    }
}

impl Serialize for Gamma {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Gamma::Value(g) => s.serialize_f64(*g),
            Gamma::PerDimension(_) => s.serialize_str(&self.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for Gamma {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        match Raw::deserialize(d) {
            Ok(Raw::Number(g)) => Ok(Gamma::Value(g)),
            Ok(Raw::Text(t)) => Gamma::parse(&t).map_err(serde::de::Error::custom),
            Err(_) => Err(serde::de::Error::custom("expected a number (0.05) or \"c/d\" (\"1/d\": γ = 1 over the input dimension d)")),
        }
    }
}
fn default_replicas() -> u32 {
    1
}
fn is_one(v: &u32) -> bool {
    *v == 1
}
fn default_alpha() -> f64 {
    0.5
}
fn default_points() -> usize {
    1000
}

/// Largest projection the kernel workloads program (rows × replicas).
pub const MAX_PROJECTION_ROWS: usize = 1 << 16;

/// Most projections one point averages over (each is drawn and evaluated in floating point).
pub const MAX_PROJECTION_SEEDS: u32 = 10_000;

/// `projection_seeds` against the trial count: the trials split into P equal blocks, one per
/// projection.
pub fn check_projection_trials(trials: u32, seeds: u32) -> Result<(), String> {
    if seeds > 1 && (!trials.is_multiple_of(seeds) || trials < 2) {
        return Err(format!(
            "trials = {trials} with kernel.projection_seeds = {seeds}: the trials split into one block per projection, so use a multiple of {seeds} (e.g. {})",
            seeds * (trials / seeds).max(1)
        ));
    }
    Ok(())
}

impl KernelSettings {
    /// The feature map's specification for inputs of dimension `d`.
    pub fn spec(&self, d: usize) -> KernelSpec {
        KernelSpec {
            kernel: self.kernel,
            projection: self.projection,
            softmax_features: self.softmax_features,
            gamma: self.gamma.value(d),
            features: self.features,
            d,
        }
    }

    /// Parses `[kernel]`; an error names the offending field (`kernel.projection = "qmc": ...`).
    pub fn from_table(t: &toml::Table) -> Result<Self, String> {
        t.clone().try_into().map_err(|e: toml::de::Error| {
            // Find the field: each alone, beside a valid feature count.
            for (k, v) in t {
                let mut one = toml::Table::new();
                one.insert("features".into(), toml::Value::Integer(1));
                one.insert(k.clone(), v.clone());
                if let Err(e1) = one.try_into::<KernelSettings>() {
                    return format!("kernel.{k} = {v}: {}", e1.message().trim());
                }
            }
            format!("[kernel]: {}", e.message().trim())
        })
    }

    /// Checks every field against inputs of dimension `d` (messages name the field and the fix).
    pub fn validate(&self, d: usize) -> Result<(), String> {
        self.spec(d).validate().map_err(|m| format!("[kernel] {m}"))?;
        if self.replicas == 0 {
            return Err("kernel.replicas = 0: must be >= 1 (1 = one copy of the projection)".into());
        }
        if self.projection_seeds == 0 || self.projection_seeds > MAX_PROJECTION_SEEDS {
            return Err(format!(
                "kernel.projection_seeds = {}: use 1 (one projection, the default) to {MAX_PROJECTION_SEEDS} projections to average over",
                self.projection_seeds
            ));
        }
        if self.features * self.replicas as usize > MAX_PROJECTION_ROWS {
            return Err(format!(
                "kernel.features x kernel.replicas = {} x {}: at most {MAX_PROJECTION_ROWS} programmed rows; use fewer",
                self.features, self.replicas
            ));
        }
        if !(self.clip_sigma >= 0.0 && self.clip_sigma.is_finite()) {
            return Err(format!("kernel.clip_sigma = {}: must be >= 0 (0 = no clipping, the paper used 2)", self.clip_sigma));
        }
        if !(self.ridge_alpha > 0.0 && self.ridge_alpha.is_finite()) {
            return Err(format!("kernel.ridge_alpha = {}: must be > 0 (the paper used 0.5)", self.ridge_alpha));
        }
        if self.points < 2 {
            return Err(format!("kernel.points = {}: the kernel error needs at least 2 points", self.points));
        }
        Ok(())
    }

    /// The projection clipped at ±clip_sigma standard deviations of its entries (as drawn when
    /// clipping is off).
    fn clipped(&self, w: &[f32]) -> Vec<f32> {
        let mut wp = w.to_vec();
        if self.clip_sigma > 0.0 {
            let n = wp.len() as f64;
            let mean = wp.iter().map(|&v| v as f64).sum::<f64>() / n;
            let std = (wp.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
            let c = (self.clip_sigma * std) as f32;
            for v in &mut wp {
                *v = v.clamp(-c, c);
            }
        }
        wp
    }

    /// The projection as programmed: drawn, clipped, replicated `replicas` times (rows stacked).
    fn programmed(&self, w: &[f32], d: usize) -> Linear {
        let wp = self.clipped(w);
        let rows = self.features * self.replicas as usize;
        let data: Vec<f32> = (0..self.replicas).flat_map(|_| wp.iter().copied()).collect();
        Linear::dense("projection", Matrix { rows, cols: d, data }, vec![0.0; rows])
    }
}

/// Which rows of a kernel data set are test points (`[data] test_rows`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestRows {
    /// Row i tests when i % 4 == 0, the others train (the default).
    #[default]
    #[serde(rename = "every_4th")]
    EveryFourth,
    /// Every row is a test point, in file order (kernel_error only: the first `kernel.points`
    /// rows of the file, as published point sets are taken).
    All,
}

/// Which rows give the per-feature mean and standard deviation (`[data] standardise`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Standardise {
    /// The training rows (the default).
    #[default]
    Train,
    /// Every row of the file.
    All,
    /// None: the features as in the file.
    None,
}

/// The kernel workloads' point set: the split, the standardisation and its degrees of freedom
/// (`[data] std_ddof`: 0 divides by n, the default; 1 by n − 1, as numpy's `std(ddof=1)` and
/// pandas do).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PointSet {
    pub test_rows: TestRows,
    pub standardise: Standardise,
    pub ddof: u32,
}

impl PointSet {
    /// In words, for the report: "the first 143 of 143 test rows (every 4th row), standardised
    /// by the training rows (ddof 0)".
    pub fn describe(&self, used: usize, test_rows: usize) -> String {
        let rows = match self.test_rows {
            TestRows::EveryFourth => "test rows (every 4th row of the file)",
            TestRows::All => "rows of the file",
        };
        let by = match self.standardise {
            Standardise::Train => format!("standardised by the training rows' mean and std (ddof {})", self.ddof),
            Standardise::All => format!("standardised by every row's mean and std (ddof {})", self.ddof),
            Standardise::None => "not standardised".into(),
        };
        format!("the first {used} of {test_rows} {rows}, {by}")
    }
}

/// Inputs of the kernel workloads, resolved by the experiment file.
#[derive(Clone, Debug)]
pub enum KernelData {
    /// A labelled data set, split and standardised by its point set.
    Points { d: usize, classes: usize, train_x: Vec<f32>, train_y: Vec<u32>, test_x: Vec<f32>, test_y: Vec<u32>, set: PointSet },
    /// Q, K, V of `heads` heads, each `[heads][n][d]`.
    Attention { heads: usize, n: usize, d: usize, causal: bool, q: Vec<f32>, k: Vec<f32>, v: Vec<f32> },
}

impl KernelData {
    pub fn d(&self) -> usize {
        match self {
            KernelData::Points { d, .. } | KernelData::Attention { d, .. } => *d,
        }
    }
}

/// The fixed split rule of the kernel data sets: row i is a test row when i % 4 == 0 (a quarter,
/// spread over the file, so data sets sorted by class keep every class in both splits).
pub fn is_test_row(i: usize) -> bool {
    i.is_multiple_of(4)
}

/// Splits and standardises a labelled data set by its point set (per-feature mean and std of the
/// chosen rows; a constant feature is centred only).
pub fn split_standardise(x: &[f32], labels: &[u32], d: usize, set: PointSet) -> KernelData {
    let (mut tx, mut ty, mut sx, mut sy) = (vec![], vec![], vec![], vec![]);
    for (i, (row, &l)) in x.chunks(d).zip(labels).enumerate() {
        if set.test_rows == TestRows::All || is_test_row(i) {
            sx.extend_from_slice(row);
            sy.push(l);
        } else {
            tx.extend_from_slice(row);
            ty.push(l);
        }
    }
    let stats_rows: Vec<f32> = match set.standardise {
        Standardise::Train => tx.clone(),
        Standardise::All => x.to_vec(),
        Standardise::None => vec![],
    };
    let n = (stats_rows.len() / d.max(1)) as f64;
    if n > 0.0 {
        let denom = (n - set.ddof as f64).max(1.0);
        for j in 0..d {
            let mean = stats_rows.chunks(d).map(|r| r[j] as f64).sum::<f64>() / n;
            let std = (stats_rows.chunks(d).map(|r| (r[j] as f64 - mean).powi(2)).sum::<f64>() / denom).sqrt();
            let scale = if std > 0.0 { 1.0 / std } else { 1.0 };
            for r in tx.chunks_mut(d).chain(sx.chunks_mut(d)) {
                r[j] = ((r[j] as f64 - mean) * scale) as f32;
            }
        }
    }
    let classes = labels.iter().copied().max().map_or(1, |m| m as usize + 1);
    KernelData::Points { d, classes, train_x: tx, train_y: ty, test_x: sx, test_y: sy, set }
}

/// Points of the kernel error at a sweep point (the first `kernel.points` test rows), with the
/// point set in words; None for the other workloads.
pub fn points_used(data: &KernelData, ks: &KernelSettings, ridge: bool) -> Option<(usize, String)> {
    match data {
        KernelData::Points { test_y, set, .. } if !ridge => {
            let n = ks.points.min(test_y.len());
            Some((n, set.describe(n, test_y.len())))
        }
        _ => None,
    }
}

/// What one point computes from one trial's features.
enum Metric<'a> {
    Error { k: Vec<f64>, n: usize },
    Ridge { model: Ridge, labels: &'a [u32] },
    Attention { heads: usize, n: usize, dv: usize, causal: bool, v: &'a [f32], exact: Vec<f32> },
}

impl Metric<'_> {
    /// The metric of one set of features (rows as the inputs were stacked).
    fn of(&self, spec: &KernelSpec, phi: &[f32]) -> f64 {
        let w = spec.width();
        match self {
            Metric::Error { k, n } => crate::features::kernel_error(k, phi, *n, w),
            Metric::Ridge { model, labels } => model.accuracy(phi, labels),
            Metric::Attention { heads, n, dv, causal, v, exact } => {
                let mut approx = Vec::with_capacity(exact.len());
                for h in 0..*heads {
                    let qf = &phi[h * n * w..(h + 1) * n * w];
                    let kf = &phi[(heads + h) * n * w..(heads + h + 1) * n * w];
                    approx.extend(attention::linear_attention(qf, kf, &v[h * n * dv..(h + 1) * n * dv], *n, w, *dv, *causal));
                }
                attention::rel_error(exact, &approx)
            }
        }
    }
}

/// The `feature_map` stage's code of a map (see shaders/feature_map.wgsl).
pub fn map_code(spec: &KernelSpec) -> u32 {
    match (spec.kernel, spec.softmax_features) {
        (Kernel::Rbf, _) => 0,
        (Kernel::Arccos0, _) => 1,
        (Kernel::Arccos1, _) => 2,
        (Kernel::Softmax, SoftmaxFeatures::Positive) => 3,
        (Kernel::Softmax, SoftmaxFeatures::Trig) => 4,
        (Kernel::Softmax, SoftmaxFeatures::Relu) => 5,
    }
}

/// One kernel sweep point: per time, the metric of every trial; and the floating-point metric.
pub struct KernelPoint {
    pub per_time: Vec<Vec<f64>>,
    /// Correct counts per time and trial (kernel_ridge), out of `n_test`.
    pub correct: Option<(Vec<Vec<u32>>, u32)>,
    pub fp: f64,
    /// The floating-point metric of the clipped projection (when `clip_sigma` > 0).
    pub fp_clipped: Option<f64>,
    /// With `projection_seeds` > 1: the floating-point metric of each projection (`fp` is their
    /// mean).
    pub fp_per_seed: Vec<f64>,
}

pub fn error_metric(_: &Inputs<'_>, _: &SweepPoint) -> MetricName {
    MetricName { text: "relative kernel error ‖K − ΦΦᵀ‖_F/‖K‖_F", column: "kernel_relative_error", higher_is_better: false }
}

pub fn ridge_metric(_: &Inputs<'_>, _: &SweepPoint) -> MetricName {
    MetricName { text: "test accuracy (kernel ridge)", column: "ridge_test_accuracy", higher_is_better: true }
}

pub fn attention_metric(_: &Inputs<'_>, _: &SweepPoint) -> MetricName {
    MetricName { text: "relative attention error ‖A − Â‖_F/‖A‖_F", column: "attention_relative_error", higher_is_better: false }
}

/// The kernel workloads' run (`kernel_error`, `kernel_ridge`, `attention`: the data says which).
pub fn run(r: &mut PointRun<'_>) -> Result<Vec<TimeMetrics>, EngineError> {
    let data = r.inputs.kernel_data.ok_or_else(|| EngineError::Invalid("a kernel workload needs its data".into()))?;
    let kp = run_point(r.be, data, r.inputs.workload == WorkloadKind::KernelRidge, r.inputs.times.len(), r.point, &r.cfg, r.inputs.total_trials, &mut |n| {
        (r.progress)(n as u64)
    })?;
    let fp = Some(kp.fp);
    let used = r.point.kernel.as_ref().and_then(|ks| points_used(data, ks, r.inputs.workload == WorkloadKind::KernelRidge));
    let mut correct = kp.correct.map(|(c, n)| c.into_iter().map(move |v| (v, n)));
    Ok(kp
        .per_time
        .into_iter()
        .map(|per_trial| TimeMetrics {
            per_trial,
            correct: correct.as_mut().and_then(|it| it.next()),
            fp,
            fp_clipped: kp.fp_clipped,
            point_set: used.clone().map(|(n, text)| crate::results::PointSetUsed { points: n as u32, description: text }),
            fp_per_seed: kp.fp_per_seed.clone(),
            trials_per_seed: r.point.kernel.as_ref().map_or(1, |k| (r.inputs.total_trials / k.projection_seeds.max(1)).max(1)),
            ..TimeMetrics::default()
        })
        .collect())
}

/// Runs one sweep point of a kernel workload over `times` inference times: on
/// [`KernelData::Points`] the ridge accuracy when `ridge`, else the kernel error; on
/// [`KernelData::Attention`] the attention error. With `projection_seeds` = P > 1 the run's
/// `total_trials` split into P blocks, block p on projection seed `projection_seed + p`: the
/// chunk's trials run block by block (the same global trials, so the same device draws, as any
/// other chunking), and `fp` is the mean over all P projections.
#[allow(clippy::too_many_arguments)]
pub fn run_point(
    be: &mut dyn Backend,
    data: &KernelData,
    ridge: bool,
    times: usize,
    sp: &SweepPoint,
    cfg: &RunConfig,
    total_trials: u32,
    on_chunk: &mut dyn FnMut(u32),
) -> Result<KernelPoint, EngineError> {
    let ks = sp.kernel.as_ref().ok_or_else(|| EngineError::Invalid("a kernel workload needs a [kernel] section".into()))?;
    let seeds = ks.projection_seeds.max(1);
    let block = if seeds > 1 { (total_trials / seeds).max(1) } else { u32::MAX };
    let (first, end) = (cfg.first_trial, cfg.first_trial + cfg.trials);
    let mut out = KernelPoint { per_time: vec![Vec::with_capacity(cfg.trials as usize); times], correct: None, fp: 0.0, fp_clipped: None, fp_per_seed: vec![] };
    let mut clipped = Vec::new();
    for p in 0..seeds {
        // This projection's trials within the chunk (all of them with one projection).
        let (lo, hi) = if seeds > 1 { (first.max(p * block), end.min(if p + 1 == seeds { u32::MAX } else { (p + 1) * block })) } else { (first, end) };
        let mut c = cfg.clone();
        (c.first_trial, c.trials) = (lo, hi.saturating_sub(lo));
        let part = run_projection(be, data, ridge, times, sp, ks, ks.projection_seed.wrapping_add(p as u64), &c, on_chunk)?;
        for (o, t) in out.per_time.iter_mut().zip(part.per_time) {
            o.extend(t);
        }
        if let Some((c, n)) = part.correct {
            let acc = out.correct.get_or_insert_with(|| (vec![Vec::new(); times], n));
            for (o, t) in acc.0.iter_mut().zip(c) {
                o.extend(t);
            }
        }
        out.fp_per_seed.push(part.fp);
        clipped.extend(part.fp_clipped);
    }
    out.fp = if seeds > 1 { out.fp_per_seed.iter().sum::<f64>() / seeds as f64 } else { out.fp_per_seed[0] };
    out.fp_clipped = (!clipped.is_empty()).then(|| clipped.iter().sum::<f64>() / clipped.len() as f64);
    if seeds == 1 {
        out.fp_per_seed.clear();
    }
    Ok(out)
}

/// One projection (seed `seed`) over the trials of `cfg` (none: its floating-point metric only).
#[allow(clippy::too_many_arguments)]
fn run_projection(
    be: &mut dyn Backend,
    data: &KernelData,
    ridge: bool,
    times: usize,
    sp: &SweepPoint,
    ks: &KernelSettings,
    seed: u64,
    cfg: &RunConfig,
    on_chunk: &mut dyn FnMut(u32),
) -> Result<KernelPoint, EngineError> {
    let d = data.d();
    let spec = ks.spec(d);
    let s = ks.features;
    let w = spec.projection(seed);
    // The digital inputs of the projection (rows) and what the metric needs.
    let (x, metric): (Vec<f32>, Metric) = match data {
        KernelData::Points { train_x, train_y, test_x, test_y, classes, .. } => match ridge {
            false => {
                let n = ks.points.min(test_y.len());
                let x = test_x[..n * d].to_vec();
                (x.clone(), Metric::Error { k: spec.exact(&x, &x), n })
            }
            true => {
                let ntr = train_y.len();
                let phi_tr = spec.features(&crate::features::project(train_x, &w, d), &crate::features::sq_norms(train_x, d), ntr);
                let model =
                    Ridge::fit(&phi_tr, train_y, spec.width(), *classes, ks.ridge_alpha).map_err(|m| EngineError::Invalid(format!("kernel ridge: {m}")))?;
                (test_x.clone(), Metric::Ridge { model, labels: test_y })
            }
        },
        KernelData::Attention { heads, n, d, causal, q, k, v } => {
            // Q and K scaled by d^(−1/4), so φ(q)·φ(k) estimates exp(qᵀk/√d); rows: all heads' Q, then all heads' K.
            let sc = (*d as f32).powf(-0.25);
            let x: Vec<f32> = q.iter().chain(k.iter()).map(|&a| a * sc).collect();
            let mut exact = Vec::with_capacity(heads * n * d);
            for h in 0..*heads {
                let r = h * n * d..(h + 1) * n * d;
                exact.extend(attention::exact_attention(&q[r.clone()], &k[r.clone()], &v[r], *n, *d, *d, *causal));
            }
            (x, Metric::Attention { heads: *heads, n: *n, dv: *d, causal: *causal, v, exact })
        }
    };
    let n = x.len() / d;
    let norms = crate::features::sq_norms(&x, d);
    let fp = metric.of(&spec, &spec.features(&crate::features::project(&x, &w, d), &norms, n));
    // The clipped projection in floating point: what the analog run computes without device or
    // periphery noise (the ridge model stays fitted on the unclipped features, as the analog one).
    let fp_clipped = (ks.clip_sigma > 0.0).then(|| metric.of(&spec, &spec.features(&crate::features::project(&x, &ks.clipped(&w), d), &norms, n)));

    if cfg.trials == 0 {
        return Ok(KernelPoint { per_time: vec![Vec::new(); times], correct: None, fp, fp_clipped, fp_per_seed: vec![] });
    }
    // The analog projection: every trial an independent programming of the (replicated) W.
    let layer = ks.programmed(&w, d);
    let layers = crate::workload::analog_layers(&[layer], &[crate::workload::Activation::None], sp.tile, (&sp.periphery).into());
    let r = ks.replicas as usize;
    let nt = times;
    let mut per_time = vec![Vec::with_capacity(cfg.trials as usize); nt];
    let mut kp = KernelParams { rows: n as u32, s: s as u32, replicas: r as u32, width: spec.width() as u32, map: map_code(&spec), ..Default::default() };
    match &metric {
        // The feature map and the reduction run as stages of the plan (GPU or CPU twins); only
        // per-row sums of squares come back.
        Metric::Error { k, .. } => {
            let kmat: Vec<f32> = k.iter().map(|&v| v as f32).collect();
            let norm2: f64 = k.iter().map(|v| v * v).sum();
            let sums = plan::run_kernel(be, &layers, &x, &norms, kp, KernelReduction::KernelError { kmat: &kmat }, cfg, on_chunk)?;
            for (o, t) in per_time.iter_mut().zip(sums) {
                o.extend(t.into_iter().map(|e| crate::features::ratio_of(e, norm2)));
            }
        }
        Metric::Attention { heads, n: seq, dv, causal, v, exact } => {
            kp.heads = *heads as u32;
            kp.seq = *seq as u32;
            kp.dv = *dv as u32;
            kp.causal = u32::from(*causal);
            kp.blocks = if *causal { seq.div_ceil(ATTN_BLOCK) as u32 } else { 1 };
            let norm2: f64 = exact.iter().map(|&a| a as f64 * a as f64).sum();
            let sums = plan::run_kernel(be, &layers, &x, &norms, kp, KernelReduction::Attention { v, exact }, cfg, on_chunk)?;
            for (o, t) in per_time.iter_mut().zip(sums) {
                o.extend(t.into_iter().map(|e| crate::features::ratio_of(e, norm2)));
            }
        }
        // Ridge: each trial's test features are classified on the host.
        Metric::Ridge { .. } => {
            let threads = std::thread::available_parallelism().map_or(1, |p| p.get());
            plan::run_outputs_each(be, &layers, &x, n as u32, cfg, on_chunk, &mut |ti, trials, out| {
                let per = n * s * r;
                let mut vals = vec![0.0; trials as usize];
                let jobs = threads.min(trials as usize).max(1);
                std::thread::scope(|scope| {
                    for (j, slot) in vals.chunks_mut((trials as usize).div_ceil(jobs)).enumerate() {
                        let (spec, metric, norms) = (&spec, &metric, &norms);
                        let first = j * (trials as usize).div_ceil(jobs);
                        scope.spawn(move || {
                            for (i, v) in slot.iter_mut().enumerate() {
                                let y = &out[(first + i) * per..(first + i + 1) * per];
                                // Average the replicas: output row o of copy c sits at column c·s + o.
                                let ya: Vec<f32> = (0..n * s).map(|e| (0..r).map(|c| y[(e / s) * s * r + c * s + e % s]).sum::<f32>() / r as f32).collect();
                                *v = metric.of(spec, &spec.features(&ya, norms, n));
                            }
                        });
                    }
                });
                per_time[ti].extend(vals);
                Ok(())
            })?;
        }
    }
    let correct = match &metric {
        Metric::Ridge { labels, .. } => {
            let nl = labels.len() as f64;
            Some((per_time.iter().map(|v| v.iter().map(|a| (a * nl).round() as u32).collect()).collect(), labels.len() as u32))
        }
        _ => None,
    };
    Ok(KernelPoint { per_time, correct, fp, fp_clipped, fp_per_seed: vec![] })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Standardisation by every row with ddof 1 (numpy's std(ddof=1)) against hand values, and
    /// the default split (every 4th row tests, the training rows' statistics, ddof 0).
    #[test]
    fn split_standardise_follows_the_point_set() {
        // One feature: 1, 2, 3, 4, 5 (mean 3, sample std √2.5).
        let x = [1.0f32, 2.0, 3.0, 4.0, 5.0];
        let y = [0u32; 5];
        let all = PointSet { test_rows: TestRows::All, standardise: Standardise::All, ddof: 1 };
        let KernelData::Points { test_x, train_x, .. } = split_standardise(&x, &y, 1, all) else { panic!() };
        assert!(train_x.is_empty());
        let s = 2.5f64.sqrt();
        for (v, raw) in test_x.iter().zip(x) {
            assert_eq!(*v, ((raw as f64 - 3.0) / s) as f32);
        }
        // Default: rows 0 and 4 test; the training rows 2, 3, 4 give mean 3, std √(2/3).
        let KernelData::Points { test_x, train_x, .. } = split_standardise(&x, &y, 1, PointSet::default()) else { panic!() };
        assert_eq!(train_x.len(), 3);
        let s = (2.0f64 / 3.0).sqrt();
        assert_eq!(test_x, vec![((1.0 - 3.0) / s) as f32, ((5.0 - 3.0) / s) as f32]);
        // None: as in the file.
        let none = PointSet { test_rows: TestRows::All, standardise: Standardise::None, ddof: 0 };
        let KernelData::Points { test_x, .. } = split_standardise(&x, &y, 1, none) else { panic!() };
        assert_eq!(test_x, x.to_vec());
    }

    #[test]
    fn gamma_parses_numbers_and_per_dimension_forms() {
        assert_eq!(Gamma::parse("0.05"), Ok(Gamma::Value(0.05)));
        assert_eq!(Gamma::parse("1/d").map(|g| g.value(30)), Ok(1.0 / 30.0));
        assert_eq!(Gamma::parse(" 0.5 /d").map(|g| g.value(2)), Ok(0.25));
        assert!(Gamma::parse("1/n").unwrap_err().contains("1/d"));
        assert_eq!(Gamma::PerDimension(1.0).to_string(), "1/d");
    }
}
