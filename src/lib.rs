//! aimc: a Monte Carlo noise analyzer for analog in-memory computing (AIMC).
//!
//! Thousands of noisy crossbar trials run at once in WGSL compute shaders (wgpu), each with a CPU
//! twin of the same name that is the test oracle; without a GPU the same plan runs on fast,
//! vectorised CPU kernels. Module map:
//!
//! - [`rng`]: Philox4x32-10 counter-based random numbers (Rust twin of shaders/common/philox.wgsl)
//! - [`device`]: PCM / HERMES / ideal device models as data, f64 reference equations
//! - [`crossbar`]: weights to tiles and conductances, periphery (DAC/ADC, noise and bound management), GDC
//! - [`engine`]: the stage table, the plan, the GPU and CPU executors (twins and fast kernels),
//!   per-stage profiling
//! - [`config`]: experiment files validated per section, sweeps, overrides from flags
//! - [`workload`]: the workload table and one module per workload (what a trial computes and its
//!   metric), the noise budget, model and data loading
//! - [`run`]: the sweep runner (chunks, checkpoints, adaptive trials, statistics), the journal,
//!   shard merging, paired differences, and the one pipeline behind the CLI and the Python package
//! - [`features`]: random-feature kernel approximation (RFF/ORF/SORF projections, FAVOR+), exact kernels,
//!   kernel approximation error, kernel ridge classification, exact and linear attention
//! - [`arch`]: 3D AIMC tiles for mixture-of-experts layers (mapping, routing, scheduling, cost
//!   tables, GPU roofline) and the classifier's energy table
//! - [`results`]: the results schema (results.json, trials.csv), its load-time validation; imports
//!   neither the engine nor the tiers, which hand it plain data
//! - [`report`]: plots, the markdown/HTML report, crash-safe publishing
//! - [`stats`]: mergeable moments, quantiles, confidence intervals (t, Wilson, Clopper–Pearson, order statistics), histograms
//! - [`bench`](mod@bench): throughput benchmarks against computed floors
//! - [`files`]: reading a file the user named (regular files only: never a device, pipe or directory)
//! - [`tolerances`]: named tolerances (GPU and fast kernels against the twins)
//! - [`train`] (cargo feature `train`, on by default): the reproducible trainers of the shipped
//!   digits models (MLP, CNN, MoE)
//!
//! `docs/architecture.md` shows the data flow and where each piece lives.

pub mod arch;
pub mod bench;
pub mod config;
pub mod crossbar;
pub mod device;
pub mod engine;
pub mod features;
pub mod files;
pub mod report;
pub mod results;
pub mod rng;
pub mod run;
pub mod stats;
pub mod tolerances;
#[cfg(feature = "train")]
pub mod train;
pub mod workload;
