//! Experiment files (TOML) to a validated [`Experiment`]: the raw serde structs ([`raw`]), then
//! one check per section, so that every mistake is reported before any compute, naming the field
//! or file and the fix. Only the validated `Experiment` reaches the runner (ripgrep's low-level →
//! high-level arguments). The sections: [`noise`] (device, periphery, tile, gdc, kernel, moe),
//! [`sweep`] (times, axes, points, budget), [`model`] and [`data`] (what each workload loads),
//! [`tables`] (energy and cost tables), [`reference`](mod@reference) (another simulator's numbers), [`resolved`]
//! (the record of it all); [`overrides`] changes a validated experiment from flags.

pub mod data;
pub mod model;
pub mod noise;
pub mod overrides;
pub mod raw;
pub mod reference;
pub mod resolved;
pub mod sweep;
pub mod tables;
pub mod time;

pub use crate::workload::{SweepPoint, WorkloadKind};
pub use overrides::shard_from_env;
pub use sweep::SweepAxis;
pub use time::{parse_time, time_label, TIME_UNITS};

use crate::arch::energy::CostTable;
use crate::crossbar::Periphery;
use crate::device::DeviceModel;
use crate::workload::io::{Dataset, Linear};
use crate::workload::Activation;
use raw::{RawExperiment, RawModel};
use sha2::Digest;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// The file (or the document built from flags) breaks a rule; `msg` names the field and the fix.
    #[error("{file}: {msg}")]
    Invalid { file: String, msg: String },
    /// An override from the command line or the Python package (`--set`, `--trials`,
    /// `--ci-halfwidth`, `--shard`): the message names the flag and the fix.
    #[error("{0}")]
    Override(String),
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
    /// Tail-risk threshold of a lower-is-better metric (`tail_above`), if the file sets one.
    pub tail_above: Option<f64>,
    /// Adaptive trials (`aimc run --ci-halfwidth X`): more trials per point until the mean's
    /// interval is narrow enough at every time, or a cap.
    pub adaptive: Option<Adaptive>,
    pub trials: u32,
    /// Trials of the whole run, whatever shard this is (`kernel.projection_seeds` splits them
    /// into one block per projection).
    pub total_trials: u32,
    /// Reads per programming (two-level Monte Carlo; 1: every trial programs anew). Trials are
    /// programmings × reads, so `trials` is a multiple of it.
    pub reads_per_programming: u32,
    pub confidence: f64,
    pub ci_half_width: f64,
    pub weight_error_trials: u32,
    /// Classifier trials whose layers' MVM error and saturation are measured (the first ones).
    pub layer_insight_trials: u32,
    /// A classifier's rows: per test row, the trials that classify it right (`row_counts`).
    pub row_counts: bool,
    /// Global index of the first trial this run covers (non-zero for a shard).
    pub first_trial: u32,
    pub first_weight_error_trial: u32,
    pub shard: Option<crate::results::Shard>,
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
    /// The `[npu]` cost model (deterministic: computed here, recorded in the results).
    pub npu: Option<crate::results::NpuReport>,
    pub energy: CostTable,
    /// Another simulator's numbers to put beside this run's (`[reference]`).
    pub reference: Option<reference::Reference>,
    /// The resolved configuration, recorded in the results.
    pub resolved: serde_json::Value,
}

/// The document's own settings every sweep point starts from.
fn base_of(raw: &RawExperiment) -> Result<sweep::Base<'_>, String> {
    Ok(sweep::Base {
        device: noise::device(raw)?,
        device_fields: &raw.device,
        periphery: noise::periphery(raw)?,
        gdc: raw.gdc,
        tile: noise::check_tile(raw.tile.unwrap_or_default())?,
        kernel: noise::kernel_section(raw)?,
        moe: noise::moe_section(raw)?,
        transformer: noise::transformer_section(raw)?,
    })
}

/// Top-level fields: trials, name, confidence, tail and interval settings.
fn check_header(raw: &RawExperiment) -> Result<(), String> {
    if raw.trials < 2 {
        return Err(format!("trials = {}: an interval over trials needs at least 2 (1000 or more for tight intervals)", raw.trials));
    }
    if raw.trials > MAX_TRIALS {
        return Err(format!(
            "trials = {}: at most {MAX_TRIALS} (every trial's metric is kept in memory and in results.json); for a target precision use --ci-halfwidth",
            raw.trials
        ));
    }
    // The name becomes a directory under results/: one plain path component.
    if raw.name.is_empty() || raw.name.starts_with('.') || !raw.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
        return Err(format!("name = {:?}: use letters, digits, '_', '-' and '.' (not first); it names the results directory", raw.name));
    }
    check_reads(raw.trials, raw.reads_per_programming).map_err(|m| m.replace("--trials", "trials"))?;
    if !(raw.confidence > 0.0 && raw.confidence < 1.0) {
        return Err(format!("confidence = {}: must be in (0, 1), e.g. 0.95", raw.confidence));
    }
    if let Some(t) = raw.tail_below.filter(|t| !t.is_finite()) {
        return Err(format!("tail_below = {t}: must be a finite metric value, e.g. 0.9 for 90 % accuracy"));
    }
    if let Some(t) = raw.tail_above.filter(|t| !t.is_finite()) {
        return Err(format!("tail_above = {t}: must be a finite metric value, e.g. 12.0 for a perplexity of 12"));
    }
    if let (Some(b), Some(a)) = (raw.tail_below, raw.tail_above) {
        return Err(format!("tail_below = {b} and tail_above = {a}: give one tail, below for a metric where higher is better (an accuracy), above where lower is (a perplexity, an error)"));
    }
    if raw.row_counts && raw.workload != WorkloadKind::Classifier {
        let fix = if raw.workload == WorkloadKind::Transformer { "a transformer's is transformer.row_counts = true" } else { "remove it" };
        return Err(format!("row_counts = true counts a classifier's test rows (workload = \"classifier\"); this is {}: {fix}", raw.workload.name()));
    }
    if raw.mvm.is_some() && raw.workload != WorkloadKind::MvmError {
        return Err(format!("[mvm] is for workload = \"mvm_error\"; remove it or change workload (this is {})", raw.workload.name()));
    }
    // An accuracy lies in [0, 1]: a threshold outside (0, 1] gives a tail probability of 0 or 1
    // whatever the run.
    // A language model's perplexity is the one transformer metric that is not an accuracy.
    let perplexity =
        raw.workload == WorkloadKind::Transformer && raw.transformer.as_ref().and_then(|t| t.get("task")).and_then(|v| v.as_str()) == Some("next_token");
    let accuracy = matches!(raw.workload, WorkloadKind::Classifier | WorkloadKind::KernelRidge | WorkloadKind::Transformer) && !perplexity;
    if let Some(t) = raw.tail_below.filter(|t| accuracy && !(*t > 0.0 && *t <= 1.0)) {
        return Err(format!("tail_below = {t}: the metric is an accuracy in 0..1, so the threshold must be in (0, 1], e.g. 0.9 for 90 %"));
    }
    if let Some(t) = raw.tail_above.filter(|_| accuracy) {
        return Err(format!("tail_above = {t}: the metric is an accuracy, where the risk is falling below a value: use tail_below (e.g. 0.9 for 90 %)"));
    }
    if let Some(t) = raw.tail_above.filter(|t| perplexity && *t < 1.0) {
        return Err(format!("tail_above = {t}: a perplexity is at least 1, so every trial would be above it; give a perplexity, e.g. 12.0"));
    }
    if !(raw.ci_half_width > 0.0 && raw.ci_half_width.is_finite()) {
        return Err(format!("ci_half_width = {}: must be > 0 (e.g. 0.001 for ±0.1 points of accuracy)", raw.ci_half_width));
    }
    Ok(())
}

/// `reads_per_programming` against the trial count: trials are whole programmings of R reads,
/// and the variance split needs at least 2 programmings.
pub(crate) fn check_reads(trials: u32, reads: u32) -> Result<(), String> {
    if reads == 0 {
        return Err("reads_per_programming = 0: use 1 (every trial programs anew) or more reads of each programmed state".into());
    }
    if reads > 1 && (!trials.is_multiple_of(reads) || trials / reads < 2) {
        return Err(format!(
            "--trials {trials} with reads_per_programming = {reads}: trials are programmings × reads, so use a multiple of {reads} with at least 2 programmings (e.g. {})",
            reads * (trials / reads).max(2)
        ));
    }
    Ok(())
}

/// `[reference]` (classifier only): the other simulator's file and pass marks.
fn reference_section(raw: &RawExperiment, resolve: &dyn Fn(&Path) -> PathBuf) -> Result<Option<reference::Reference>, String> {
    let Some(r) = &raw.reference else {
        return Ok(None);
    };
    if raw.workload != WorkloadKind::Classifier {
        return Err("[reference] compares classifier accuracies; remove it or use workload = \"classifier\"".into());
    }
    let (m, sd) = (r.mean_tol_pp.unwrap_or(reference::DEFAULT_MEAN_TOL_PP), r.std_rel_tol.unwrap_or(reference::DEFAULT_STD_REL_TOL));
    if !(m > 0.0 && sd > 0.0) {
        return Err(format!("[reference] mean_tol_pp = {m}, std_rel_tol = {sd}: both must be > 0"));
    }
    Ok(Some(reference::Reference::load(&resolve(&r.path), m, sd).map_err(|e| format!("reference.path: {e}"))?))
}

/// A reference's counts are out of its `n_test` rows: another test set (another data set, other
/// `data.rows`) would compare accuracies of different things.
fn check_reference_rows(r: &reference::Reference, rows: usize, data: Option<PathBuf>) -> Result<(), String> {
    if r.n_test as usize == rows {
        return Ok(());
    }
    let data = data.map_or("the data".to_string(), |p| p.display().to_string());
    Err(format!(
        "reference.path: {} was made on n_test = {} test rows, but {data} gives {rows} (with data.rows); use the reference made for this data set, or the data and rows it was made on",
        r.file, r.n_test
    ))
}

/// The kernel settings of every point against the data they will see.
fn check_kernel_points(wl: WorkloadKind, points: &[SweepPoint], kd: &crate::workload::kernel::KernelData, trials: u32, reads: u32) -> Result<(), String> {
    for p in points {
        let k = p.kernel.as_ref().expect("kernel workloads have kernel settings");
        let at = if p.labels.is_empty() { String::new() } else { format!("sweep point {}: ", p.series()) };
        k.validate(kd.d()).map_err(|m| format!("{at}{m}"))?;
        crate::workload::kernel::check_projection_trials(trials, k.projection_seeds).map_err(|m| format!("{at}{m}"))?;
        if k.projection_seeds > 1 && reads > 1 {
            return Err(format!(
                "{at}kernel.projection_seeds = {} with reads_per_programming = {reads}: the interval is over projections or over programmings, not both; use one",
                k.projection_seeds
            ));
        }
        if wl == WorkloadKind::Attention && k.kernel != crate::features::Kernel::Softmax {
            return Err(format!("{at}kernel.kernel = {:?}: attention approximates softmax(QKᵀ/√d); use kernel = \"softmax\"", k.kernel));
        }
    }
    Ok(())
}

/// Layers with periphery fields of their own (`[model] layers` tables): at every point that
/// layer runs on the point's device and the point's periphery with its own fields laid over it
/// (an axis over `adc_bits` leaves a layer that sets `out_res_bits` at its own), checked there.
/// The noise budget switches sources off in the file's periphery, which a layer's own fields
/// would switch on again: the two are refused together.
fn layer_peripheries(points: &mut [SweepPoint], own: &[Option<toml::Table>], budget: bool) -> Result<(), String> {
    let Some(first) = own.iter().position(Option::is_some) else { return Ok(()) };
    if budget {
        return Err(format!(
            "model.layers[{first}].periphery with [budget]: the budget switches noise sources off in the file's [periphery], which a layer's own fields would switch on again; run the budget without per-layer periphery"
        ));
    }
    for p in points.iter_mut() {
        p.layer_noise.resize(own.len(), None);
        for (k, t) in own.iter().enumerate() {
            let Some(t) = t else { continue };
            let at = format!("model.layers[{k}].periphery");
            let mut per = p.periphery.clone();
            for (field, value) in t {
                noise::set_field_with(&mut per, &at, field, value, &noise::OPTIONAL_PERIPHERY_FIELDS)?;
            }
            let point = if p.labels.is_empty() { String::new() } else { format!(" (sweep point {})", p.series()) };
            per.validate().map_err(|m| format!("{at} over the file's [periphery]: {m}{point}"))?;
            sweep::input_noise_readout(&per, p.gdc, &point).map_err(|m| format!("{at}: {m}"))?;
            p.layer_noise[k] = Some((p.device.clone(), per));
        }
    }
    Ok(())
}

/// Digital layers: floating point in every configuration (an ideal device and perfect
/// converters for that layer), the budget's included.
fn mark_digital(points: &mut [SweepPoint], layers: &[Linear], digital_names: &[String]) {
    if digital_names.is_empty() {
        return;
    }
    for p in points {
        p.layer_noise.resize(layers.len(), None);
        for (k, l) in layers.iter().enumerate() {
            if digital_names.contains(&l.name) {
                p.layer_noise[k] = Some((DeviceModel::ideal(), Periphery::perfect()));
            }
        }
    }
}

/// The `[model]` of workloads that have none: recorded as an empty path.
fn no_model() -> RawModel {
    RawModel {
        path: PathBuf::new(),
        tensor: None,
        layers: vec![],
        input_shape: None,
        allow_extra: false,
        activation: Activation::None,
        activations: None,
        digital: vec![],
    }
}

/// Largest trial count of a run (and of `--max-trials`): every trial's metric is kept per point
/// and time, in memory and in results.json. 10⁸ trials put the standard error of an accuracy
/// below 0.005 points, far past what any noise study resolves.
pub const MAX_TRIALS: u32 = 100_000_000;

/// The sha256 of an experiment document's text, as results record it.
pub(crate) fn text_sha256(text: &str) -> String {
    format!("{:x}", sha2::Sha256::digest(text.as_bytes()))
}

/// A TOML or schema error of an experiment file on one line; a missing top-level field says what
/// every file sets (a truncated or empty file lacks them all).
fn toml_error(e: &toml::de::Error) -> String {
    let text = e.to_string().trim().replace('\n', " ");
    match e.message().strip_prefix("missing field `").and_then(|m| m.strip_suffix('`')) {
        Some(field) if ["name", "workload", "seed", "trials", "sweep"].contains(&field) => format!(
            "{text}; every experiment file sets name, workload, seed, trials and a [sweep] with t = [...] (experiments/smoke.toml is a complete small one; README, \"Experiment files\")"
        ),
        _ => text,
    }
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
            total_trials: self.total_trials,
            moe_tables: self.moe_tables.as_ref(),
            npu: self.npu.as_ref(),
            row_counts: self.row_counts,
        }
    }

    /// The workload's per-trial metric: wording, trials.csv column, direction.
    /// Whether any analog layer of the model holds learned input ranges (a classifier's
    /// `PREFIX.input_range`, or a transformer point's).
    pub fn holds_input_ranges(&self) -> bool {
        self.layers.iter().any(|l| !l.input_range.is_empty())
            || self.points.iter().filter_map(|p| p.transformer.as_ref()).any(|s| s.net().linears().iter().any(|l| !l.input_range.is_empty()))
    }

    pub fn metric(&self) -> crate::workload::Metric {
        (self.workload.spec().metric)(&self.inputs(), &self.points[0])
    }

    /// Reads and validates an experiment file.
    pub fn load(path: &Path) -> Result<Experiment, ExperimentError> {
        Self::from_text(&Self::read_text(path)?, path)
    }

    /// An experiment file's text, the error naming the file.
    pub(crate) fn read_text(path: &Path) -> Result<String, ExperimentError> {
        let bad = |msg: String| ExperimentError::Invalid { file: path.display().to_string(), msg };
        let bytes = crate::files::read(path).map_err(|e| bad(format!("cannot read the experiment file ({e}); check the path")))?;
        String::from_utf8(bytes).map_err(|_| bad("the experiment file is not UTF-8 text".into()))
    }

    /// Validates an experiment document; `path` names it in errors and results, and relative
    /// paths inside it are resolved from its directory (the working directory for a bare name).
    /// `aimc weights` and `aimc mlp` build their documents from flags and come through here too.
    pub fn from_text(text: &str, path: &Path) -> Result<Experiment, ExperimentError> {
        Self::validate(text, text, path, &[])
    }

    /// The fields the `[sweep]` axes of the document `text` set, as a file writes them
    /// (`periphery.out_res_bits`, a top-level `gdc`, `tile`): first those set at every point (an
    /// axis replaces the field's value everywhere), then those set at some point (a variant that
    /// sets a field the others leave). [`overrides::with_base`] leaves the first to the axes.
    pub fn swept_fields(text: &str, path: &Path) -> Result<(Vec<String>, Vec<String>), ExperimentError> {
        let bad = |msg: String| ExperimentError::Invalid { file: path.display().to_string(), msg };
        let raw: RawExperiment = toml::from_str(text).map_err(|e| bad(toml_error(&e)))?;
        let base = base_of(&raw).map_err(&bad)?;
        let name = |(s, f, _): (Option<&'static str>, String, String)| s.map_or(f.clone(), |s| format!("{s}.{f}"));
        Ok((sweep::swept_everywhere(&raw.sweep, &base).into_iter().map(name).collect(), sweep::swept_fields(&raw.sweep, &base).into_iter().map(name).collect()))
    }

    /// [`Self::from_text`] of a document that has the `--set` overrides `sets` applied: each is
    /// also checked against the sweep (an axis would replace its value at every point), as is
    /// every field of the document. `source` is the file's own text (the lines errors name).
    fn validate(text: &str, source: &str, path: &Path, sets: &[String]) -> Result<Experiment, ExperimentError> {
        let file = path.display().to_string();
        let bad = |msg: String| ExperimentError::Invalid { file: file.clone(), msg };
        let raw: RawExperiment = toml::from_str(text).map_err(|e| bad(toml_error(&e)))?;
        let base_dir = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { base_dir.join(p) };

        check_header(&raw).map_err(&bad)?;
        let base = base_of(&raw).map_err(&bad)?;
        let (times, mut axes) = sweep::axes(&raw).map_err(&bad)?;
        overrides::check_sets_not_swept(sets, &raw.sweep, &base)?;
        let doc: toml::Table = toml::from_str(text).map_err(|e| bad(format!("{}", e).trim().replace('\n', " ")))?;
        sweep::check_file_not_swept(&doc, source, &raw.sweep, &base).map_err(&bad)?;
        sweep::check_switched_fields(&doc, source, &raw.sweep, &base).map_err(&bad)?;
        let mut points = sweep::points(&axes, &base).map_err(&bad)?;
        let reference = reference_section(&raw, &resolve).map_err(&bad)?;
        let no_model = no_model();
        let model = model::model_section(&raw).map_err(&bad)?;
        let loaded = model::load(&raw, model, &mut points, &resolve).map_err(&bad)?;
        let model = model.unwrap_or(&no_model);
        if let (Some(r), Some(d)) = (&reference, &loaded.data) {
            check_reference_rows(r, d.len(), raw.data.as_ref().map(|d| resolve(&d.path))).map_err(&bad)?;
        }
        if let Some(kd) = &loaded.kernel_data {
            check_kernel_points(raw.workload, &points, kd, raw.trials, raw.reads_per_programming).map_err(&bad)?;
        }
        for p in &points {
            crate::workload::check_input_ranges(&loaded.layers, p.tile).map_err(&bad)?;
            // A device measured at a few times (a relaxation table) reads at those only.
            for &t in &times {
                p.device.check_time(t).map_err(|m| bad(format!("sweep.{m}")))?;
            }
        }
        let layer_names: Vec<String> = loaded.layers.iter().map(|l| l.name.clone()).collect();
        layer_peripheries(&mut points, &loaded.layer_periphery, raw.budget.is_some()).map_err(&bad)?;
        let mut points = sweep::budget_axis(&raw, &mut axes, points, &layer_names).map_err(&bad)?;
        let digital_names: Vec<String> = model.digital.iter().chain(&loaded.layer_digital).cloned().collect();
        mark_digital(&mut points, &loaded.layers, &digital_names);
        let moe_tables = tables::moe_tables(&raw, &resolve).map_err(&bad)?;
        let energy = tables::energy(&raw, &resolve).map_err(&bad)?;
        let npu = tables::npu(&raw, &axes, &times, &points, loaded.data.as_ref(), &resolve).map_err(&bad)?;

        let layers = loaded.layers;
        let activations =
            loaded.layer_activations.clone().or_else(|| model.activations.clone()).unwrap_or_else(|| crate::workload::between(layers.len(), model.activation));
        let fp_correct = match (&loaded.data, raw.workload) {
            (Some(d), WorkloadKind::Classifier) => Some(crate::workload::fp_accuracy(&layers, &activations, d)),
            _ => None,
        };
        let mut exp = Experiment {
            fp_correct,
            file: path.to_path_buf(),
            sha256: text_sha256(text),
            name: raw.name.clone(),
            description: raw.description.clone(),
            workload: raw.workload,
            seed: raw.seed,
            common_random_numbers: raw.common_random_numbers,
            tail_below: raw.tail_below,
            tail_above: raw.tail_above,
            adaptive: None,
            trials: raw.trials,
            total_trials: raw.trials,
            reads_per_programming: raw.reads_per_programming,
            confidence: raw.confidence,
            ci_half_width: raw.ci_half_width,
            weight_error_trials: raw.weight_error_trials.min(raw.trials),
            layer_insight_trials: raw.layer_insight_trials.min(raw.trials),
            row_counts: raw.row_counts,
            first_trial: 0,
            first_weight_error_trial: 0,
            shard: None,
            times,
            axes: vec![],
            points,
            activations,
            digital: layers.iter().map(|l| digital_names.contains(&l.name)).collect(),
            layers,
            activation: model.activation,
            kernel_data: loaded.kernel_data,
            moe_tables,
            npu,
            data: loaded.data,
            mvm_inputs: loaded.mvm_inputs,
            energy,
            resolved: serde_json::Value::Null,
            reference,
        };
        let parts = resolved::Parts {
            exp: &exp,
            model,
            model_path: &resolve(&model.path),
            layer_activations: loaded.layer_activations.as_deref(),
            digital_names: &digital_names,
            axes: &axes,
            base: &base,
        };
        exp.resolved = resolved::resolved(&raw, &resolve, parts);
        exp.axes = axes;
        Ok(exp)
    }
}
