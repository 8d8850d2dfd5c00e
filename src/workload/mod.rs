//! Workloads: what a trial computes, on top of the engine's plan. One row of [`TABLE`] and one file
//! per workload, each owning its settings section, its run over a chunk of trials and its metric:
//!
//! | workload | file | metric per trial |
//! |---|---|---|
//! | classifier | [`classifier`] (network in [`model`]) | test accuracy of a noisy network |
//! | weight_error | [`weight_error`] | std of the effective-weight error (noise-models §8) |
//! | mvm_error | [`mvm_error`] | relative error of noisy MVMs on random inputs |
//! | kernel_error, kernel_ridge, attention | [`kernel`] (maths in `crate::features`) | kernel error, ridge accuracy, attention error |
//! | moe | [`moe`] (3D tiers in `crate::arch`) | MoE output error or accuracy, with the cost model |
//! | npu | [`npu`] (edge NPU in `crate::arch::npu`) | latency of the NPU cost model (deterministic) |
//!
//! [`budget`] expands a point into the noise budget's configurations and attributes the metric.
//! A workload whose neighbouring points can share one plan (they differ only in noise, converter
//! or drift-compensation settings) has a [`Grouped`] run beside its own: the classifier, the
//! transformer and mvm_error.
//! A workload's run reads the experiment through [`Inputs`] and one [`SweepPoint`] and returns
//! plain per-time metrics ([`TimeMetrics`]); the statistics are the runner's (`crate::run`), so
//! this module does not depend on the experiment file's types.

pub mod budget;
pub mod classifier;
pub mod io;
pub mod kernel;
pub mod model;
pub mod moe;
pub mod mvm_error;
pub mod npu;
pub mod transformer;
pub mod weight_error;

pub use model::*;
pub use weight_error::{summarize_weight_error, WeightErrorRow};

use crate::arch::cost::{GpuTable, TierCostTable};
use crate::crossbar::{Gdc, Periphery, TileShape};
use crate::device::DeviceModel;
use crate::engine::plan::RunConfig;
use crate::engine::{Backend, EngineError};
use crate::results::{LayerInsight, LayerWeightError, MoeCost};
use io::{Dataset, Linear};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("{path}: {msg}")]
    File { path: String, msg: String },
    #[error("{0}")]
    Shape(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkloadKind {
    /// An MLP or CNN classifier on a labelled data set: per-trial accuracy.
    Classifier,
    /// One weight matrix: per-trial std of the effective-weight error.
    WeightError,
    /// One weight matrix on random inputs: per-trial relative error of the noisy MVM outputs.
    MvmError,
    /// Random-feature kernel approximation on a point set: ‖K − ΦΦᵀ‖_F / ‖K‖_F per trial.
    KernelError,
    /// Kernel ridge classification on random features: per-trial test accuracy.
    KernelRidge,
    /// Softmax attention against linear attention on random features: relative output error.
    Attention,
    /// A mixture-of-experts layer on 3D tiers: noisy output error per trial, plus the schedule,
    /// energy and GPU-roofline cost model.
    Moe,
    /// A transformer classifier on token sequences (softmax or kernel-approximated attention).
    Transformer,
    /// The edge-NPU cost model of a network alone (`[npu]`; MobileBERT).
    Npu,
}

/// One call of a workload's [`GroupRunFn`]: the points, and each one's engine configuration.
pub struct GroupRun<'a> {
    pub be: &'a mut dyn Backend,
    pub inputs: Inputs<'a>,
    pub points: &'a [SweepPoint],
    pub cfgs: Vec<RunConfig>,
    pub chunk: Chunk,
    /// Called with the trial units finished, of all points together.
    pub progress: &'a mut dyn FnMut(u64),
}

/// What a workload's per-trial metric is: the report's wording, the trials.csv column and its
/// direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metric {
    pub text: &'static str,
    pub column: &'static str,
    pub higher_is_better: bool,
}

/// One chunk of one sweep point: the trials to run and the classifier's extras in it.
#[derive(Clone, Copy, Debug)]
pub struct Chunk {
    pub first_trial: u32,
    pub trials: u32,
    /// Weight-error trials per layer (classifiers; only the first chunk of a point runs them).
    pub weight_error_trials: u32,
    /// Global index of the first weight-error trial.
    pub first_weight_error_trial: u32,
    /// Layer-insight trials (classifiers; the first chunk only).
    pub layer_insight_trials: u32,
}

/// A workload's run: one sweep point over one chunk of trials, per time.
pub type RunFn = fn(&mut PointRun<'_>) -> Result<Vec<TimeMetrics>, EngineError>;

/// A workload's run of several sweep points as one plan: per point (in order), per time, what
/// [`RunFn`] gives for that point alone.
pub type GroupRunFn = fn(&mut GroupRun<'_>) -> Result<Vec<Vec<TimeMetrics>>, EngineError>;

/// How a workload runs neighbouring sweep points together: which points may (`alike`, the
/// points that differ only in noise scales, converter or drift-compensation settings, such as
/// the noise budget's configurations), and the run.
pub struct Grouped {
    pub alike: fn(&SweepPoint, &SweepPoint) -> bool,
    pub run: GroupRunFn,
}

/// One row of the workload table.
pub struct Spec {
    pub kind: WorkloadKind,
    /// As written in experiment files (`workload = "..."`).
    pub name: &'static str,
    /// Whether a point may run in checkpoint chunks: its statistics follow from the per-trial
    /// metric alone. The weight-error summary pools moments over a run's trials and the MoE cost
    /// model summarises a run's schedules: those points are checkpointed whole.
    pub chunkable: bool,
    /// Whether it also runs per-layer weight-error and layer-insight trials (progress counts them).
    pub layer_extras: bool,
    /// Whether its settings are a `[kernel]` section (the random-feature workloads).
    pub kernel_section: bool,
    pub metric: fn(&Inputs<'_>, &SweepPoint) -> Metric,
    pub run: RunFn,
    /// Neighbouring points as one plan (shared buffers, shared device states), where it can.
    pub grouped: Option<Grouped>,
}

/// Every workload, one row each.
pub const TABLE: [Spec; 9] = [
    Spec {
        kind: WorkloadKind::Classifier,
        name: "classifier",
        chunkable: true,
        layer_extras: true,
        kernel_section: false,
        metric: classifier::metric,
        run: classifier::run,
        grouped: Some(Grouped { alike: classifier::alike, run: classifier::run_group }),
    },
    Spec {
        kind: WorkloadKind::WeightError,
        name: "weight_error",
        chunkable: false,
        layer_extras: false,
        kernel_section: false,
        metric: weight_error::metric,
        run: weight_error::run,
        grouped: None,
    },
    Spec {
        kind: WorkloadKind::MvmError,
        name: "mvm_error",
        chunkable: true,
        layer_extras: false,
        kernel_section: false,
        metric: mvm_error::metric,
        run: mvm_error::run,
        grouped: Some(Grouped { alike: mvm_error::alike, run: mvm_error::run_group }),
    },
    Spec {
        kind: WorkloadKind::KernelError,
        name: "kernel_error",
        chunkable: true,
        layer_extras: false,
        kernel_section: true,
        metric: kernel::error_metric,
        run: kernel::run,
        grouped: None,
    },
    Spec {
        kind: WorkloadKind::KernelRidge,
        name: "kernel_ridge",
        chunkable: true,
        layer_extras: false,
        kernel_section: true,
        metric: kernel::ridge_metric,
        run: kernel::run,
        grouped: None,
    },
    Spec {
        kind: WorkloadKind::Attention,
        name: "attention",
        chunkable: true,
        layer_extras: false,
        kernel_section: true,
        metric: kernel::attention_metric,
        run: kernel::run,
        grouped: None,
    },
    Spec {
        kind: WorkloadKind::Moe,
        name: "moe",
        chunkable: false,
        layer_extras: false,
        kernel_section: false,
        metric: moe::metric,
        run: moe::run,
        grouped: None,
    },
    Spec {
        kind: WorkloadKind::Transformer,
        name: "transformer",
        chunkable: true,
        layer_extras: false,
        kernel_section: false,
        metric: transformer::metric,
        run: transformer::run,
        grouped: Some(Grouped { alike: transformer::alike, run: transformer::run_group }),
    },
    Spec {
        kind: WorkloadKind::Npu,
        name: "npu",
        chunkable: true,
        layer_extras: false,
        kernel_section: false,
        metric: npu::metric,
        run: npu::run,
        grouped: None,
    },
];

impl WorkloadKind {
    /// This workload's row of [`TABLE`].
    pub fn spec(self) -> &'static Spec {
        TABLE.iter().find(|s| s.kind == self).expect("every workload has a row in TABLE")
    }

    /// The name as written in experiment files.
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// The kernel workloads (a `[kernel]` section instead of a `[model]`).
    pub fn is_kernel(self) -> bool {
        self.spec().kernel_section
    }
}

/// Everything a sweep point changes, resolved.
#[derive(Clone, Debug)]
pub struct SweepPoint {
    pub index: usize,
    pub labels: Vec<(String, String)>,
    pub device: DeviceModel,
    pub periphery: Periphery,
    pub gdc: Gdc,
    pub tile: TileShape,
    /// Kernel workloads: the feature map at this point.
    pub kernel: Option<kernel::KernelSettings>,
    /// The moe workload: the layer and the architecture at this point.
    pub moe: Option<(moe::MoeSettings, crate::arch::tiers::Architecture)>,
    /// The transformer workload: the network (loaded) and how it runs at this point.
    pub transformer: Option<transformer::TransformerSettings>,
    /// Per-layer device and periphery in place of the point's (the noise budget's layer
    /// configurations); empty: every layer takes the point's.
    pub layer_noise: Vec<Option<(DeviceModel, Periphery)>>,
    /// The classifier: this point's model file in place of `[model] path` (`model_path` axis).
    pub model_path: Option<std::path::PathBuf>,
    /// The classifier: that file's layers (the same names and shapes as `[model]`'s) and its
    /// floating-point accuracy (correct, samples).
    pub classifier: Option<PointClassifier>,
}

/// A `model_path` point's network (the classifier's layers) and its floating-point accuracy
/// (correct, samples), shared by the points that run the same file.
pub type PointClassifier = std::sync::Arc<(Vec<io::Linear>, (u64, u64))>;

impl SweepPoint {
    pub fn series(&self) -> String {
        if self.labels.is_empty() {
            return "all".into();
        }
        self.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
    }

    /// A noise-budget configuration besides the full one: it only feeds the budget's attribution.
    pub fn budget_only(&self) -> bool {
        self.labels.iter().any(|(k, v)| k == "budget" && v != "full")
    }
}

/// What the workloads read of a validated experiment besides the sweep point.
#[derive(Clone, Copy)]
pub struct Inputs<'a> {
    pub workload: WorkloadKind,
    pub seed: u64,
    pub common_random_numbers: bool,
    pub times: &'a [f64],
    pub layers: &'a [Linear],
    /// The activation after each layer (classifier).
    pub activations: &'a [Activation],
    pub data: Option<&'a Dataset>,
    /// A classifier's floating-point accuracy on `data`: (correct, samples).
    pub fp_correct: Option<(u64, u64)>,
    /// `[mvm] inputs` (mvm_error).
    pub mvm_inputs: u32,
    pub kernel_data: Option<&'a kernel::KernelData>,
    /// Trials of the whole run (all shards): `kernel.projection_seeds` splits them into blocks.
    pub total_trials: u32,
    pub moe_tables: Option<&'a (TierCostTable, GpuTable)>,
    /// The `[npu]` cost model, computed at validation.
    pub npu: Option<&'a crate::results::NpuReport>,
    /// A classifier's per-row counts (`row_counts`).
    pub row_counts: bool,
}

/// One call of a workload's [`RunFn`].
pub struct PointRun<'a> {
    pub be: &'a mut dyn Backend,
    pub inputs: Inputs<'a>,
    pub point: &'a SweepPoint,
    /// The engine's configuration of this chunk (key, trials, times, the point's noise).
    pub cfg: RunConfig,
    pub chunk: Chunk,
    /// Called with the trial units finished (the progress bar).
    pub progress: &'a mut dyn FnMut(u64),
}

/// A workload's per-trial metric at one time, with what comes beside it.
#[derive(Clone, Debug, Default)]
pub struct TimeMetrics {
    pub per_trial: Vec<f64>,
    /// Exact per-trial correct counts out of n samples (classifiers).
    pub correct: Option<(Vec<u32>, u32)>,
    /// Per trial, the test-set sampling variance of the metric's log (a language model's log
    /// perplexity or log next-token accuracy, over its sequences: `stats::ratio_variance`); the
    /// point's test-set interval comes from it (`stats::ratio_exp_interval`), not Wilson.
    pub test_var: Option<Vec<f64>>,
    /// What `test_var` is the variance of: the metric's log, or the metric itself.
    pub test_scale: crate::results::TestScale,
    /// Per row (or question), the trials that answer it right (`row_counts`, `transformer.row_counts`).
    pub row_correct: Option<Vec<u32>>,
    /// The floating-point value of the metric.
    pub fp: Option<f64>,
    /// The benchmark's second metric of the same trials (`results::Companion`).
    pub companion: Option<CompanionMetric>,
    pub weight_error: Vec<LayerWeightError>,
    pub layer_insight: Vec<LayerInsight>,
    /// The MoE cost model (first time only).
    pub moe: Option<MoeCost>,
    /// Kernel workloads with clipping: the floating-point metric of the clipped projection.
    pub fp_clipped: Option<f64>,
    /// kernel_error: the points the kernel error was computed on.
    pub point_set: Option<crate::results::PointSetUsed>,
    /// Kernel workloads with `projection_seeds` > 1: each projection's floating-point metric
    /// (`fp` is their mean), and the trials per projection.
    pub fp_per_seed: Vec<f64>,
    pub trials_per_seed: u32,
}

/// A second metric of the same trials ([`TimeMetrics::companion`]): its trials.csv column, its
/// value per trial, what its test-set interval comes from (as [`TimeMetrics`]' own: the items a
/// count is out of, the per-trial variances and their scale) and its floating-point value.
#[derive(Clone, Debug, Default)]
pub struct CompanionMetric {
    pub metric: String,
    pub per_trial: Vec<f64>,
    pub items: Option<u32>,
    pub test_var: Option<Vec<f64>>,
    pub test_scale: crate::results::TestScale,
    pub fp: Option<f64>,
}

/// Per time, the metric alone.
pub(crate) fn plain(per_time: impl IntoIterator<Item = Vec<f64>>, fp: Option<f64>) -> Vec<TimeMetrics> {
    per_time.into_iter().map(|per_trial| TimeMetrics { per_trial, fp, ..TimeMetrics::default() }).collect()
}

/// Index of the largest value; the lowest index wins ties (the predicted class of logits).
pub fn argmax(z: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in z.iter().enumerate() {
        if v > z[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_workload_has_one_row_named_as_in_files() {
        for s in &TABLE {
            assert_eq!(TABLE.iter().filter(|t| t.kind == s.kind).count(), 1, "{}", s.name);
            assert_eq!(serde_json::to_value(s.kind).unwrap(), s.name, "the row's name is the file's spelling");
        }
    }
}
