//! The results schema: every type of `results.json`, plain serde data. Nothing here computes; the
//! runner fills these types, the report reads them, and the engine and the 3D-tier model hand their
//! parts over as these plain structs ([`Profile`], [`EnergyBreakdown`]).

use crate::stats::{Histogram, Interval, Summary};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Bumped on any change of [`Results`] or of trials.csv (docs/results.md lists what each version
/// changed).
pub const SCHEMA_VERSION: u32 = 2;

/// The schema versions [`Results::load`] reads: version 1 has the same JSON fields as version 2
/// (which added load-time validation; its trials.csv names a MoE classifier's column
/// `moe_test_accuracy`), so it is read and validated like the current version.
pub const READS: [u64; 2] = [1, 2];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Adapter {
    pub name: String,
    pub backend: String,
    pub driver: String,
    pub device_type: String,
}

/// One sweep axis (besides time) and its values as labels, in sweep order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Axis {
    pub name: String,
    pub values: Vec<String>,
}

/// Exact pooled counts over all trials × test images of a point, with binomial intervals. These
/// treat every (trial, image) as an independent Bernoulli draw: they are neither the trial-to-trial
/// interval (`Point::mean_ci`) nor the test-set sampling interval (`Point::test_set_ci`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pooled {
    pub successes: u64,
    pub trials: u64,
    pub proportion: f64,
    pub wilson: Interval,
    pub clopper_pearson: Interval,
}

/// Floating-point baseline minus the mean noisy metric, with its interval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Drop {
    pub mean: f64,
    pub ci: Interval,
}

/// Effective-weight error of one layer at one point (noise-models §8).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerWeightError {
    pub layer: usize,
    pub trials: u64,
    /// Mean of E = (α W_eff − W)/max|W| over weights and trials.
    pub mean: f64,
    /// Std of E over weights and trials.
    pub std: f64,
    /// Mean and std of the drift-compensation factors α over tiles and trials (per-column GDC:
    /// over every output column of every tile and trial).
    pub alpha_mean: f64,
    pub alpha_std: f64,
}

/// Energy and latency of one inference (one input vector through the whole model).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Energy {
    /// Name of the cost table used and where it came from.
    pub table: String,
    pub analog_mvms: u64,
    pub adc_conversions: u64,
    pub dac_conversions: u64,
    pub digital_ops: u64,
    pub analog_pj: f64,
    pub adc_pj: f64,
    pub dac_pj: f64,
    pub communication_pj: f64,
    pub digital_pj: f64,
    pub total_pj: f64,
    pub latency_ns: f64,
    /// Crossbar cells of the tiles the model occupies (tiles × crossbar rows × columns) and the
    /// cells holding weights: the table charges a tier MVM whatever its fill.
    #[serde(default)]
    pub crossbar_cells: u64,
    #[serde(default)]
    pub used_cells: u64,
}

/// One sweep point at one time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Index of the sweep point (the non-time axes), the RNG key's point.
    pub sweep_index: usize,
    /// Axis name → value label for the non-time axes.
    pub labels: BTreeMap<String, String>,
    /// Label of the non-time axes together, e.g. "gdc=readout" (a series in the plots).
    pub series: String,
    pub t_inf: f64,
    pub time_label: String,
    /// The metric per trial, in trial order (accuracy in [0, 1], or an error).
    pub per_trial: Vec<f64>,
    /// Exact per-trial successes, for classifiers.
    pub per_trial_correct: Option<Vec<u32>>,
    /// Per trial, the test-set sampling variance of the metric's log over the test sequences (a
    /// language model's perplexity or next-token accuracy; `stats::ratio_variance`), from which
    /// `test_set_ci` comes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_trial_test_var: Option<Vec<f64>>,
    /// What `per_trial_test_var` is the variance of: the metric's log (the default) or the
    /// metric itself (a correlation's jackknife over the rows).
    #[serde(default, skip_serializing_if = "TestScale::is_log")]
    pub test_var_scale: TestScale,
    /// Per row of the data set (per question with answer text), the trials that answered it
    /// right (a classifier's `row_counts`, `transformer.row_counts`); counts add over chunks and
    /// shards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_row_correct: Option<Vec<u32>>,
    /// The benchmark's second metric of the same trials (SQuAD's exact match beside its F1, GLUE's
    /// accuracy beside MRPC's F1, a language model's next-token accuracy beside its perplexity),
    /// scored from the same readback: one run gives the pair a paper reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub companion: Option<Companion>,
    pub summary: Summary,
    pub mean_ci: Interval,
    pub pooled: Option<Pooled>,
    pub drop: Option<Drop>,
    /// Trials needed for the requested CI half-width of the mean (in whole programmings or
    /// projections where trials share one: from the spread of their means).
    pub trials_needed: u64,
    pub histogram: Histogram,
    pub weight_error: Vec<LayerWeightError>,
    /// Test-set sampling interval of the mean: for classifiers Wilson over the n test images (how
    /// far the accuracy could lie on another test set of the same size); for a language model's
    /// perplexity or next-token accuracy the ratio estimator's delta-method interval over its
    /// sequences.
    #[serde(default)]
    pub test_set_ci: Option<Interval>,
    /// Distribution-free (order-statistic) interval of the 5th percentile over trials; absent
    /// below `stats::quantile_interval_min_n` trials.
    #[serde(default)]
    pub p5_ci: Option<Interval>,
    /// Tail risk: the fraction of trials whose metric is below a threshold (classifiers: accuracy
    /// below `tail_below`), with a Clopper–Pearson interval over trials.
    #[serde(default)]
    pub tail: Option<Tail>,
    /// The floating-point metric of this point's configuration (the classifier's FP accuracy, or
    /// a kernel workload's metric with the same projection in floating point).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fp: Option<f64>,
    /// MoE workloads: the 3D-tier cost model of this sweep point (on the point of its first time
    /// only: it does not depend on the time since programming).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moe: Option<MoeCost>,
    /// With adaptive trials: where this point stopped and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// Classifiers: what every layer's MVMs did over the first `layer_insight_trials` trials.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layer_insight: Vec<LayerInsight>,
    /// Two-level Monte Carlo (`reads_per_programming` > 1): the metric's variance split into
    /// between-programming and read-to-read components, each with its interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variance_split: Option<crate::stats::VarianceSplit>,
    /// Kernel workloads with `kernel.clip_sigma` > 0: the floating-point metric of the clipped
    /// projection. `fp` − `fp_clipped` is the clipping bias, the analog mean − `fp_clipped` what
    /// the device and periphery noise add.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fp_clipped: Option<f64>,
    /// kernel_error: the points the kernel error was computed on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point_set: Option<PointSetUsed>,
    /// Kernel workloads with `kernel.projection_seeds` > 1: the average over random projections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projection_average: Option<ProjectionAverage>,
}

/// A second metric of a point's trials ([`Point::companion`]): each trial's value, in the
/// point's trial order, its mean with the mean's interval over trials (over programming means
/// where trials share one) and its test-set interval, each as a run with it as the task gives
/// them. The tail and the quantiles are the point's metric's alone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Companion {
    /// Its trials.csv column, e.g. `exact_match`, `accuracy`, `spearman`.
    pub metric: String,
    pub per_trial: Vec<f64>,
    /// A count's items (rows, questions, predicted tokens): what Wilson's interval is over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<u32>,
    /// Per trial, the test-set variance its interval comes from, as `Point::per_trial_test_var`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_trial_test_var: Option<Vec<f64>>,
    #[serde(default, skip_serializing_if = "TestScale::is_log")]
    pub test_var_scale: TestScale,
    pub mean: f64,
    pub std: f64,
    pub mean_ci: Interval,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_set_ci: Option<Interval>,
    /// Its floating-point value, from the same baseline as the point's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fp: Option<f64>,
}

/// A point averaged over P random projections (`kernel.projection_seeds`): trial block p (of
/// `trials_per_seed` consecutive global trials) programs projection seed `projection_seed + p`.
/// `fp` is the mean of the P floating-point metrics; the analog mean's interval is Student t over
/// the P projection means (`mean_ci`), so it counts both the projection and the device noise.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProjectionAverage {
    pub seeds: u32,
    pub trials_per_seed: u32,
    /// The std of the floating-point metric over the P projections, and the interval of its
    /// mean (Student t over projections).
    pub fp_std: f64,
    pub fp_ci: Interval,
    /// The floating-point metric of each projection, in seed order: the drop pairs each with
    /// the analog mean of its own projection's trials (absent in files written before).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fp_per_seed: Vec<f64>,
    /// The analog metric's variance between projections and between device draws of one
    /// projection (two or more draws per projection; none for a shard holding part of a block).
    pub split: Option<crate::stats::VarianceSplit>,
}

/// The point set of a kernel_error point: how many points, and which (`[data] test_rows`,
/// `standardise`, `std_ddof`, `kernel.points`) in words.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PointSetUsed {
    pub points: u32,
    pub description: String,
}

/// One layer of a classifier at one time, over its insight trials: how far its outputs stray
/// from floating point on its own (noisy) inputs, and how often its converters saturate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerInsight {
    pub layer: usize,
    pub trials: u64,
    /// Per trial ‖h − act(W x + b)‖ / ‖act(W x + b)‖ over the test set, x the layer's actual input:
    /// the error this layer adds (its device noise, DAC, output noise and ADC).
    pub mvm_error: Summary,
    /// Share of the layer's (sample, tile) MVMs that bound management redid with a reduced input
    /// (their ADC saturated at the full input scale; 0 with bound management off).
    pub bm_repeated: f64,
    /// Share of its ADC conversions at the rail in the final result (clipped outputs).
    pub clipped: f64,
}

/// The 3D-tier cost model of one MoE sweep point (tiers-energy spec; Büchel et al., Nat. Comput.
/// Sci. 2025): the mapping, the event-driven schedule's distributions over trials (each trial one
/// draw of the token routing), the energy breakdown and the GPU roofline at several batch sizes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MoeCost {
    /// Mapping strategy: greedy, experts_separated or co_selection.
    pub strategy: String,
    pub tiles: u32,
    pub tiers: u32,
    /// Tiers holding weights, tiles holding at least one, used tiers / all tiers, and the mean
    /// fraction of a used crossbar's cells holding weights.
    pub tiers_used: u64,
    pub tiles_used: u64,
    pub utilisation: f64,
    pub mean_fill: f64,
    /// Tokens per scheduled batch.
    pub tokens: u32,
    /// Over trials: the batch's mean per-token latency (ns), tier conflicts, tokens/s and energy
    /// per token (pJ).
    pub latency_ns: Summary,
    pub tier_conflicts: Summary,
    pub tokens_per_s: Summary,
    pub energy_per_token_pj: Summary,
    /// Every token's latency, pooled over trials.
    pub latency_hist: Histogram,
    /// Mean energy per token by component, pJ (`total_pj` is the sum of the others).
    pub energy_per_token: EnergyBreakdown,
    /// Mean MVMs per batch on each `[tile][tier]` (a heat map of tier use).
    pub tier_activations: Vec<Vec<f64>>,
    /// Mean busy fraction of each tile over the batch.
    pub tile_utilisation: Vec<f64>,
    /// Tiles × tier footprint, when the cost table gives a tier area.
    pub area_mm2: Option<f64>,
    /// AIMC against the GPU roofline at each batch size.
    pub gpu: Vec<GpuPoint>,
    /// Both sides' assumptions, in words.
    pub assumptions: Vec<String>,
    pub cost_table: String,
    pub gpu_table: String,
    /// Wall time of the schedule simulation for all trials, and tokens scheduled per second.
    pub schedule_seconds: f64,
    pub tokens_scheduled_per_s: f64,
}

/// The noise budget of one (sweep point, time): the cost of the full noise against all sources
/// off, each source's share, and what the shares leave unexplained (`experiment::budget`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BudgetEntry {
    /// The point's other sweep labels.
    pub series: String,
    pub t_inf: f64,
    pub time_label: String,
    /// cost(full): the metric lost to all sources together (paired mean and interval).
    pub cost: f64,
    pub cost_lo: f64,
    pub cost_hi: f64,
    pub sources: Vec<BudgetSource>,
    /// Per layer ("layer k"): its noise alone (every other layer ideal) and the gain of making
    /// it ideal; empty for one-layer models.
    #[serde(default)]
    pub layers: Vec<BudgetSource>,
    /// Sensitivity: the metric with one knob moved from the file's setting (same draws), and its
    /// paired difference from the full configuration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sensitivity: Vec<BudgetKnob>,
    /// cost(full) − Σ cost(only S): how far the sources do not add up.
    pub interaction: f64,
    /// The interaction's paired interval (per trial, or per programming or projection); absent
    /// in files written before it was computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interaction_ci: Option<[f64; 2]>,
    /// The source with the largest alone cost.
    pub dominant: String,
    /// Whether `dominant`'s alone cost exceeds the next largest's with a paired interval that
    /// excludes 0 (one source: true); false when the two are not told apart. Files written
    /// before it was computed read as true.
    #[serde(default = "resolved_by_default")]
    pub dominant_resolved: bool,
    /// The same for the layer whose noise alone costs most (true without layer rows).
    #[serde(default = "resolved_by_default")]
    pub dominant_layer_resolved: bool,
}

fn resolved_by_default() -> bool {
    true
}

/// The metric at one knob setting: `rel` is the relative noise level (the factor of a noise
/// scale, or the quantisation step against the file's for a resolution, 2^(−Δbits)).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BudgetKnob {
    pub knob: String,
    pub setting: String,
    pub rel: f64,
    pub median: f64,
    pub p05: f64,
    pub p95: f64,
    /// Paired mean difference from the full configuration, and its interval.
    pub diff: f64,
    pub diff_lo: f64,
    pub diff_hi: f64,
}

/// One source's share: its cost alone (all others off) and the gain of removing it from the full
/// noise, each a paired mean with its interval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BudgetSource {
    pub source: String,
    pub alone: f64,
    pub alone_lo: f64,
    pub alone_hi: f64,
    pub removal: f64,
    pub removal_lo: f64,
    pub removal_hi: f64,
}

/// AIMC and the GPU at one batch size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GpuPoint {
    pub batch: u32,
    pub aimc_tokens_per_s: f64,
    pub aimc_energy_per_token_pj: f64,
    pub gpu_tokens_per_s: f64,
    pub gpu_energy_per_token_pj: f64,
    pub gpu_memory_bound: bool,
    /// AIMC tokens/s ÷ GPU tokens/s, and GPU energy per token ÷ AIMC energy per token.
    pub throughput_ratio: f64,
    pub energy_efficiency_ratio: f64,
}

/// P(metric < threshold) over trials, or P(metric > threshold) with `above` (`tail_above`: a
/// metric where lower is better).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tail {
    pub threshold: f64,
    /// The trials in the tail: below the threshold, or above it with `above`.
    pub below: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub above: bool,
    pub trials: u64,
    pub probability: f64,
    pub ci: Interval,
}

/// Which part of a larger run a results file holds (`aimc run --shard K/N`); `aimc merge`
/// concatenates the shards' per-trial metrics into the single run's results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
    /// Global index of the shard's first trial, and its trial count.
    pub first_trial: u32,
    pub trials: u32,
    /// The same for the weight-error trials (classifier workload).
    pub first_weight_error_trial: u32,
    pub weight_error_trials: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub schema_version: u32,
    /// "aimc 0.1.0".
    pub tool: String,
    pub git_commit: String,
    pub adapter: Adapter,
    pub seed: u64,
    pub experiment_file: String,
    pub experiment_sha256: String,
    pub name: String,
    pub description: String,
    /// The workload, as experiment files name it ("classifier", "weight_error", ...).
    pub workload: String,
    /// What `per_trial` holds, with its unit, e.g. "test accuracy" or "std of weight error".
    pub metric: String,
    /// The trials.csv column of `per_trial`, named for what it holds (the workload table's).
    /// Absent in version-1 files: filled in on load from the workload and metric.
    #[serde(default)]
    pub metric_column: String,
    /// Whether larger metric values are better (accuracy) or worse (errors).
    pub higher_is_better: bool,
    /// The requested CI half-width and confidence.
    pub ci_half_width: f64,
    pub confidence: f64,
    /// The full resolved configuration (device model, periphery, sweep, paths).
    pub config: serde_json::Value,
    pub axes: Vec<Axis>,
    pub times: Vec<f64>,
    /// Floating-point metric of the unmodified model (classifier accuracy), if any.
    pub fp_baseline: Option<f64>,
    pub points: Vec<Point>,
    pub energy: Option<Energy>,
    pub trials: u32,
    pub run_seconds: f64,
    pub trials_per_second: f64,
    /// Set when this file holds one shard of a run.
    #[serde(default)]
    pub shard: Option<Shard>,
    /// Per-stage time of a run made with `aimc run --profile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
    /// Differences between sweep points, paired by trial (experiment::paired).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paired: Vec<PairedDifference>,
    /// The noise budget, when the experiment has a `[budget]` section.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub budget: Vec<BudgetEntry>,
    /// Another simulator's numbers beside these (`[reference]` of the experiment file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<ReferenceComparison>,
    /// The edge-NPU cost model, when the experiment has an `[npu]` section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub npu: Option<NpuReport>,
    /// With row counts of a classifier (`row_counts`, or a transformer classifier's
    /// `transformer.row_counts`): each data row's label, in the order of `per_row_correct`, so
    /// the report and row_counts.csv can say which classes the noise breaks first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_labels: Option<Vec<u32>>,
}

/// One sweep value against its axis's first value at the same other settings and time: the mean
/// per-trial difference of the metric with its paired (Student t over trials) interval, and the
/// half-width an unpaired comparison would have had.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairedDifference {
    pub axis: String,
    pub value: String,
    pub baseline: String,
    /// The other axes' labels, e.g. "model=pcm" (empty with one axis).
    pub others: String,
    pub t_inf: f64,
    pub time_label: String,
    pub mean: f64,
    pub ci: Interval,
    pub unpaired_half_width: f64,
    /// Whether the two points drew the same random numbers.
    pub common_random_numbers: bool,
}

/// A run's points beside a reference simulator's (experiment::reference).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReferenceComparison {
    /// e.g. "aihwkit 1.2.0".
    pub source: String,
    pub file: String,
    /// Pass mark: |mean difference| ≤ mean_tol_pp percentage points and |std ratio − 1| ≤ std_rel_tol.
    pub mean_tol_pp: f64,
    pub std_rel_tol: f64,
    pub rows: Vec<ReferenceRow>,
    /// Every row passes.
    pub passed: bool,
}

/// One point beside the reference: accuracies as fractions; stds are population stds over trials.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReferenceRow {
    pub series: String,
    pub t_inf: f64,
    pub time_label: String,
    pub trials: u32,
    pub mean: f64,
    pub std: f64,
    pub p5: f64,
    pub ref_reps: u32,
    pub ref_mean: f64,
    pub ref_std: f64,
    pub ref_p5: f64,
    pub mean_diff_pp: f64,
    pub std_ratio: f64,
    pub pass: bool,
}

/// Energy of a batch by component, pJ; `total_pj` is the sum of the others. The 3D-tier schedule
/// (`tiers::schedule`) computes it; a MoE point stores the mean per token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EnergyBreakdown {
    /// Tier MVMs.
    pub mvm_pj: f64,
    /// Communication after each MVM.
    pub communication_pj: f64,
    /// Digital units (partial sums, activation, gate-weighted sum).
    pub digital_pj: f64,
    /// Attention units.
    pub attention_pj: f64,
    /// DRAM: active power × read time + inactive power × the rest of the makespan.
    pub dram_pj: f64,
    /// Passive power × makespan.
    pub passive_pj: f64,
    /// Sum of the above.
    pub total_pj: f64,
}

/// One stage's share of a profiled run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageTime {
    pub stage: String,
    pub seconds: f64,
    pub dispatches: u64,
    /// Sum over dispatches of the bytes of the buffers bound (an upper bound on memory traffic).
    pub bound_bytes: u64,
}

/// A profiled run's breakdown (`aimc run --profile`). The engine fills it (`engine::profile` adds
/// the accumulating methods and the terminal table).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// How stage times were taken: "timestamp queries", "wall clock (one dispatch per submit)"
    /// or "wall clock".
    pub timer: String,
    pub stages: Vec<StageTime>,
    pub uploads: u64,
    pub upload_bytes: u64,
    pub readbacks: u64,
    pub readback_bytes: u64,
    /// Host wall time outside the stages, by activity (GPU backend): creating and freeing
    /// buffers, recording dispatches (params, bind groups), waiting for results to come back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host: Vec<(String, f64)>,
    /// Wall time of the whole run (every point, its statistics and the checkpoint journal), which
    /// the stages and the host activities break down; what they leave is "everything else".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_seconds: Option<f64>,
}

/// The edge-NPU cost model of a run (`[npu]`; src/arch/npu.rs, docs/npu.md): one row per
/// (network, sequence length, analog/digital split, read mode), the table's constants with their
/// sources and every assumption in words. Deterministic: it does not depend on the trials.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NpuReport {
    /// The cost table's name.
    pub table: String,
    /// Every constant of the table: (field, value, source); `assumption` when the source says so.
    pub constants: Vec<NpuConstant>,
    /// Derived per-core figures, in words (MVM time and energy per read mode).
    pub derived: Vec<String>,
    /// The schedule and counting rules, in words.
    pub assumptions: Vec<String>,
    pub rows: Vec<NpuRow>,
    /// A published latency of the same network on another device, when one is sourced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<NpuReference>,
    /// Networks or points that were not costed, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// One constant of the NPU cost table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NpuConstant {
    pub field: String,
    pub value: f64,
    pub source: String,
    pub assumption: bool,
}

/// A published latency of the costed network on another device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NpuReference {
    pub device: String,
    pub seq_len: u32,
    pub latency_ms: f64,
    pub source: String,
}

/// Time (ns) or energy (pJ) on the three kinds of node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NpuSplit {
    pub analog: f64,
    pub digital: f64,
    pub sram: f64,
}

impl NpuSplit {
    pub fn total(&self) -> f64 {
        self.analog + self.digital + self.sram
    }
}

/// One class of ops (the op names with the layer index taken out, e.g. `softmax`, `ffn.*.up`):
/// where its time and energy went.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NpuClass {
    pub class: String,
    /// What runs it: "analog tiles", "digital nodes (softmax)", ...
    pub runs_on: String,
    pub count: u32,
    pub time_ns: NpuSplit,
    pub energy_pj: NpuSplit,
}

/// The cost of one inference of one network at one sequence length, split and read mode.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NpuRow {
    /// The network ("MobileBERT", or the transformer sweep point's series).
    pub network: String,
    pub seq_len: u32,
    /// The split's name and the matrices it runs on digital nodes.
    pub split: String,
    pub digital_matrices: Vec<String>,
    /// "one_phase" or "four_phase".
    pub read: String,
    /// Analog cores holding the weights (each programmed matrix once), and HERMES-size chips.
    pub cores: u64,
    pub chips: f64,
    /// Multiply-accumulates of one inference: all, on analog cores, on digital nodes.
    pub macs: u64,
    pub analog_macs: u64,
    pub digital_macs: u64,
    /// Element-wise digital operations (adds, norms, activations, softmax elements).
    pub elementwise_ops: u64,
    pub sram_bytes: u64,
    /// The largest single op's working set (its inputs and outputs), bytes, and whether it fits.
    pub largest_working_set_bytes: u64,
    pub fits_sram: bool,
    pub latency_ns: f64,
    pub energy_pj: f64,
    /// 1 / latency (one inference at a time).
    pub inferences_per_s: f64,
    /// Layers pipelined over successive inferences: 1 / the busiest resource's time.
    pub pipelined_inferences_per_s: f64,
    /// What bounds the pipelined rate: one matrix's analog cores (every op that reads them), or the digital nodes or SRAM as a whole.
    pub pipeline_bound: String,
    /// 2 × MACs / energy.
    pub tops_per_w: f64,
    pub time_ns: NpuSplit,
    pub energy_pj_split: NpuSplit,
    /// Op classes, largest time first.
    pub classes: Vec<NpuClass>,
    /// The single op instance that takes longest, and its time.
    pub slowest_op: String,
    pub slowest_op_ns: f64,
}

/// The scale of a point's per-trial test-set variances (`Point::per_trial_test_var`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestScale {
    /// The metric's log (a ratio estimator over the sequences or rows: a perplexity, a
    /// next-token accuracy, an F1): the interval is the mean scaled by exp(∓ z σ).
    #[default]
    Log,
    /// The metric itself (a correlation coefficient's jackknife over the rows): the interval is
    /// the mean ± z σ, within [−1, 1].
    Linear,
}

impl TestScale {
    pub fn is_log(&self) -> bool {
        *self == TestScale::Log
    }
}
