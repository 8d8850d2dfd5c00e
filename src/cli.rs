//! Command-line definitions (clap derive) only; `main.rs` dispatches them to the library.

use aimc::crossbar::Gdc;
use aimc::run::pipeline::BackendChoice;
use aimc::workload::Activation;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "aimc", version, about = "Monte Carlo noise analyzer for analog in-memory computing (PCM crossbars)")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run an experiment file: every sweep point x trials, then results, plots and a report.
    Run {
        /// Experiment file (TOML), e.g. experiments/digits_pcm_drift.toml.
        experiment: PathBuf,
        /// auto: a hardware GPU if present, else the CPU backend; gpu: any wgpu adapter (software
        /// Vulkan too); cpu: the CPU backend (fast kernels).
        #[arg(long, value_enum, default_value = "auto")]
        backend: BackendArg,
        /// Results directory (default: results/NAME; with --shard K/N, results/NAME.shard-K-of-N).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Override the trial count of the file (quick looks; the report states the count used).
        #[arg(long)]
        trials: Option<u32>,
        /// Run only shard K of N (K in 0..N): a contiguous block of the trials, with the single
        /// run's random numbers; `aimc merge` joins the shards' results. `env` reads K and N from a
        /// Slurm job array (SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT, SLURM_ARRAY_TASK_MIN) or a
        /// Kubernetes Indexed Job (JOB_COMPLETION_INDEX, with AIMC_SHARD_COUNT set to its completions).
        #[arg(long, value_name = "K/N|env")]
        shard: Option<String>,
        /// Time every stage (GPU timestamp queries where the adapter has them) and put the
        /// breakdown in the terminal, results.json and the report. Costs some speed.
        #[arg(long)]
        profile: bool,
        /// Adaptive trials: run batches of the file's trial count per sweep point until the mean's
        /// trial-to-trial interval is at most ±X (metric units: 0.001 is ±0.1 points of accuracy)
        /// at every time, or --max-trials; the report says where each point stopped and why.
        #[arg(long, value_name = "X")]
        ci_halfwidth: Option<f64>,
        /// Cap of adaptive trials per sweep point.
        #[arg(long, default_value_t = 100_000, requires = "ci_halfwidth")]
        max_trials: u32,
        /// Set a field of the file before validation: a top-level one (trials=200,
        /// layer_insight_trials=0) or SECTION.FIELD (device.drift_scale=0.5,
        /// periphery.out_res_bits=8, kernel.features=256); repeatable, the report records the
        /// modified configuration.
        #[arg(long = "set", value_name = "[SECTION.]FIELD=VALUE")]
        set: Vec<String>,
        /// Replace the results of a different configuration (or other files) in the results
        /// directory; without it such a directory is kept and the run refused. Results of the
        /// same configuration are replaced (or resumed) either way.
        #[arg(long)]
        overwrite: bool,
    },
    /// Merge the results of all shards of one run into the single run's results and report.
    Merge {
        /// Output directory for the merged results.
        #[arg(long)]
        out: PathBuf,
        /// The shards' results directories.
        #[arg(required = true)]
        shards: Vec<PathBuf>,
        /// Replace the results of a different run (or other files) in --out; without it such a
        /// directory is kept and the merge refused.
        #[arg(long)]
        overwrite: bool,
    },
    /// Validate an experiment file (fields, values, files, shapes, and that every sweep point's
    /// buffers fit the backend the run would use) without running it.
    Check {
        /// Experiment file (TOML) to validate.
        experiment: PathBuf,
        /// The backend to check the buffer sizes against, as `aimc run --backend` (auto: a
        /// hardware GPU if present, else the CPU backend).
        #[arg(long, value_enum, default_value = "auto")]
        backend: BackendArg,
        /// Set a field before validation, as `aimc run --set` ([SECTION.]FIELD=VALUE, repeatable).
        #[arg(long = "set", value_name = "[SECTION.]FIELD=VALUE")]
        set: Vec<String>,
    },
    /// Rebuild the plots and report of a results directory from its results.json.
    Report {
        /// Results directory (with its results.json) whose plots and report to rebuild.
        dir: PathBuf,
    },
    /// List the GPU adapters and say which one each backend choice would use.
    Devices,
    /// Program a weight matrix N times and report effective-weight error statistics over time.
    Weights {
        /// Weight matrix, .npy or .safetensors (out x in).
        matrix: PathBuf,
        /// Tensor name inside a .safetensors file with several matrices.
        #[arg(long)]
        tensor: Option<String>,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Run an MLP (PyTorch Linear layers, .safetensors state dict) on a labelled CSV data set and
    /// report per-trial accuracy over time.
    Mlp {
        /// Model: a .safetensors state dict (0.weight, 0.bias, 2.weight, ...).
        #[arg(long)]
        model: PathBuf,
        /// Data: CSV with the features and then the integer label on each row.
        #[arg(long)]
        data: PathBuf,
        /// Divide every feature by this (16 for the 0..16 digits pixels).
        #[arg(long, default_value_t = 1.0)]
        scale: f32,
        /// Use rows START..END of the data set only (e.g. 1347..1797, the digits test split).
        #[arg(long)]
        rows: Option<String>,
        /// Activation between layers.
        #[arg(long, value_enum, default_value = "relu")]
        activation: ActivationArg,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Throughput benchmarks against computed floors, printed with the adapter's name.
    Bench {
        /// auto: a hardware GPU if present, else the CPU backend; gpu: any wgpu adapter (software
        /// Vulkan too); cpu: the CPU backend (fast kernels).
        #[arg(long, value_enum, default_value = "auto")]
        backend: BackendArg,
        /// Problem sizes: "full" (the sizes the targets refer to) or "small" (seconds on software Vulkan).
        #[arg(long, default_value = "full")]
        size: String,
        /// Also print each case's per-stage time, share, dispatches and bound bytes.
        #[arg(long)]
        breakdown: bool,
        /// Only these cases, by letter, comma-separated (e.g. `--cases a,e,f`); all by default.
        #[arg(long, value_delimiter = ',')]
        cases: Vec<String>,
        /// Runs of every case: each reports its fastest, with the slowest beside it (default 3
        /// at the small sizes, 1 at the full sizes).
        #[arg(long)]
        runs: Option<u32>,
    },
    /// Train a digits MLP on the train split (reproducible; writes a PyTorch-style .safetensors).
    /// With no options it rebuilds the shipped experiments/models/digits_mlp.safetensors.
    TrainDigits {
        /// Where to write the model (.safetensors).
        #[arg(long, default_value = "experiments/models/digits_mlp.safetensors")]
        out: PathBuf,
        /// The digits CSV (64 pixels 0..16, then the class; rows 0..1347 train, the rest test).
        #[arg(long, default_value = "experiments/data/digits.csv")]
        data: PathBuf,
        /// Hidden layer widths, input side first, comma-separated (default 64).
        #[arg(long, value_delimiter = ',', num_args = 1..)]
        hidden: Option<Vec<usize>>,
        /// Activation after every hidden layer (default relu).
        #[arg(long, value_enum)]
        activation: Option<TrainActivationArg>,
        /// Hardware-aware training: a TOML file with a `[training]` table (weight noise, output
        /// noise, DAC, clipping, fine-tuning; see docs/training.md).
        #[arg(long)]
        training: Option<PathBuf>,
    },
    /// Train the digits mixture-of-experts classifier of experiments/moe_digits.toml on the train
    /// split (reproducible: 4 experts, top-2, d_ff 32, GELU; load-balanced routing). With no options
    /// it rebuilds the shipped experiments/models/digits_moe.safetensors.
    TrainDigitsMoe {
        /// Where to write the model (.safetensors).
        #[arg(long, default_value = "experiments/models/digits_moe.safetensors")]
        out: PathBuf,
        /// The digits CSV (64 pixels 0..16, then the class; rows 0..1347 train, the rest test).
        #[arg(long, default_value = "experiments/data/digits.csv")]
        data: PathBuf,
        /// Hardware-aware training: a TOML file with a `[training]` table (weight noise, output
        /// noise, DAC, clipping, fine-tuning; see docs/training.md).
        #[arg(long)]
        training: Option<PathBuf>,
    },
    /// Train the digits CNN of experiments/digits_cnn.toml on the train split (reproducible:
    /// Conv2d 1→8 and 8→16, 3x3 with padding 1, each followed by ReLU and 2x2 max pooling, then
    /// Linear 64→10). With no options it rebuilds the shipped experiments/models/digits_cnn.safetensors.
    TrainDigitsCnn {
        /// Where to write the model (.safetensors).
        #[arg(long, default_value = "experiments/models/digits_cnn.safetensors")]
        out: PathBuf,
        /// The digits CSV (64 pixels 0..16, then the class; rows 0..1347 train, the rest test).
        #[arg(long, default_value = "experiments/data/digits.csv")]
        data: PathBuf,
        /// Hardware-aware training: a TOML file with a `[training]` table (weight noise, output
        /// noise, DAC, clipping, fine-tuning; see docs/training.md).
        #[arg(long)]
        training: Option<PathBuf>,
    },
    /// Train the transformer of the LRA ListOps configuration (embedding 64, 2 post-LN layers
    /// sharing weights, 2 heads, FFN 128, mean pooling, classifier 128) on generated ListOps or on
    /// the digits as pixel sequences, with softmax or kernel-approximated attention (reproducible).
    /// With no options but --task and --attention it rebuilds the shipped model.
    TrainTransformer {
        /// listops: the generated ListOps task; digits: the digits CSV as 64-token pixel sequences;
        /// cicero: next-character prediction on Cicero's De finibus I (a causal language model);
        /// kvqa: extractive question answering on generated key-value contexts (a span head).
        #[arg(long, value_enum, default_value = "listops")]
        task: TaskArg,
        /// softmax, or kernel (256 positive random features, FAVOR+).
        #[arg(long, value_enum, default_value = "softmax")]
        attention: AttentionArg,
        /// Where to write the model (.safetensors); default experiments/models/listops_transformer_ATTENTION.safetensors,
        /// digits_seq_transformer.safetensors for the digits, cicero_lm_softmax.safetensors for cicero,
        /// kvqa_softmax.safetensors for kvqa.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also write the task's test split as a token CSV here (experiments/data/listops_test.csv;
        /// for cicero its windows, token ids only: experiments/data/cicero_test.csv; for kvqa the
        /// rows with the answer's start and end token: experiments/data/kvqa_test.csv, and beside it
        /// the rows as text in windows for SQuAD's official metrics: kvqa_windows.csv, kvqa_text.json).
        #[arg(long)]
        data_out: Option<PathBuf>,
        /// The digits CSV (task digits; rows 0..1347 train, the rest test).
        #[arg(long, default_value = "experiments/data/digits.csv")]
        data: PathBuf,
        /// The text of task cicero (its first 80 % train, the next 10 % validate, the rest test).
        #[arg(long, default_value = "experiments/data/cicero_de_finibus_1.txt")]
        text: PathBuf,
        /// Override the epochs (the file then records the whole configuration, not the shipped command).
        #[arg(long)]
        epochs: Option<usize>,
        /// Override the peak learning rate.
        #[arg(long)]
        lr: Option<f32>,
        /// Override the number of generated ListOps training rows.
        #[arg(long)]
        train_rows: Option<usize>,
        /// Report the accuracy on the validation split (ListOps, cicero) instead of the test split
        /// (for choosing settings without looking at test).
        #[arg(long)]
        validation: bool,
        /// Hardware-aware training: a TOML file with a `[training]` table (weight noise, output
        /// noise, DAC, clipping, fine-tuning; see docs/training.md).
        #[arg(long)]
        training: Option<PathBuf>,
    },
}

/// `train-transformer --task`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum TaskArg {
    Listops,
    Digits,
    Cicero,
    Kvqa,
}

/// `train-transformer --attention`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum AttentionArg {
    Softmax,
    Kernel,
}

/// `train-digits --activation`: the hidden activations the MLP trainer offers (not `none`: a
/// network of Linear layers alone is one Linear layer).
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum TrainActivationArg {
    Relu,
    Gelu,
    Tanh,
}

impl From<TrainActivationArg> for Activation {
    fn from(a: TrainActivationArg) -> Activation {
        match a {
            TrainActivationArg::Relu => Activation::Relu,
            TrainActivationArg::Gelu => Activation::Gelu,
            TrainActivationArg::Tanh => Activation::Tanh,
        }
    }
}

#[derive(Args, Debug)]
pub struct CommonArgs {
    /// auto: a hardware GPU if present, else the CPU backend; gpu: any wgpu adapter (software Vulkan too); cpu: the CPU backend (fast kernels).
    #[arg(long, value_enum, default_value = "auto")]
    pub backend: BackendArg,
    /// Device model: pcm (aihwkit PCMLikeNoiseModel; the default), hermes, hermes1, ideal, simple (programming noise 0.067 g_max only), afm (IBM Analog Foundation Models' evaluation noise; with --set periphery.weight_scaling_omega=1 --set periphery.weight_scaling_columnwise=true).
    #[arg(long)]
    pub device: Option<String>,
    /// Set any field an experiment file takes, as `aimc run --set` does: a top-level one (layer_insight_trials=0, weight_error_trials=10) or SECTION.FIELD (device.drift_scale=0.5, periphery.out_res_bits=8, model.input_shape=[1,8,8]); repeatable, applied after the other flags.
    #[arg(long = "set", value_name = "[SECTION.]FIELD=VALUE")]
    pub set: Vec<String>,
    /// Global drift compensation [default: readout].
    #[arg(long, value_enum)]
    pub gdc: Option<GdcArg>,
    /// Crossbar tile, INPUTSxOUTPUTS [default: 512x512].
    #[arg(long)]
    pub tile: Option<String>,
    /// Monte Carlo trials (independently programmed crossbars).
    #[arg(long, default_value_t = 100)]
    pub trials: u32,
    /// Inference times after programming, comma-separated, with units (s, min, h, d, month, y).
    #[arg(long, default_value = "1s,1h,1d,1month,1y,10y", value_delimiter = ',')]
    pub times: Vec<String>,
    /// Seed of the counter-based RNG: the same seed gives the same numbers on any backend.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Results directory (default results/weights or results/mlp).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also copy results.json to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Replace the results of a different configuration (or other files) in the results directory; without it such a directory is kept and the run refused.
    #[arg(long)]
    pub overwrite: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum GdcArg {
    Off,
    Readout,
    ExactReference,
    ReadoutPerColumn,
    ExactReferencePerColumn,
}

impl From<GdcArg> for Gdc {
    fn from(g: GdcArg) -> Gdc {
        match g {
            GdcArg::Off => Gdc::Off,
            GdcArg::Readout => Gdc::Readout,
            GdcArg::ExactReference => Gdc::ExactReference,
            GdcArg::ReadoutPerColumn => Gdc::ReadoutPerColumn,
            GdcArg::ExactReferencePerColumn => Gdc::ExactReferencePerColumn,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// `--help` explains every argument of every command: a newcomer never meets a bare flag.
    #[test]
    fn every_argument_has_help_text() {
        let cli = Cli::command();
        let mut bare = Vec::new();
        for sub in cli.get_subcommands() {
            assert!(sub.get_about().is_some(), "command {} has no description", sub.get_name());
            for arg in sub.get_arguments() {
                let id = arg.get_id().as_str();
                if id != "help" && id != "version" && arg.get_help().is_none() && arg.get_long_help().is_none() {
                    bare.push(format!("{} {id}", sub.get_name()));
                }
            }
        }
        assert!(bare.is_empty(), "arguments without help text: {bare:?}");
    }
}

/// `--backend` (the library's [`BackendChoice`], spelt for the command line).
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum BackendArg {
    /// A hardware GPU if there is one, else the CPU backend.
    Auto,
    /// Any wgpu adapter, software Vulkan (lavapipe) included; an error if there is none.
    Gpu,
    /// The CPU: the fast kernels for the hot stages, the twins for the rest.
    Cpu,
}

impl From<BackendArg> for BackendChoice {
    fn from(b: BackendArg) -> BackendChoice {
        match b {
            BackendArg::Auto => BackendChoice::Auto,
            BackendArg::Gpu => BackendChoice::Gpu,
            BackendArg::Cpu => BackendChoice::Cpu,
        }
    }
}

/// `aimc mlp --activation`: the activation between layers, as an experiment file spells it.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum ActivationArg {
    None,
    Relu,
    Gelu,
    Tanh,
}
