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
//! - [`workload`]: what a trial computes (weight error, MVM, MLP classifier) and model/data loading
//! - [`experiment`]: experiment files, the sweep runner, checkpoints, paired differences,
//!   reference comparisons, shard merging, the energy table
//! - [`kernel`]: random-feature kernel approximation (RFF/ORF/SORF projections, FAVOR+), exact kernels,
//!   kernel approximation error, kernel ridge classification, exact and linear attention
//! - [`tiers`]: 3D AIMC tiles for mixture-of-experts layers: mapping, routing, scheduling, energy, GPU roofline
//! - [`report`]: the results schema, plots, the markdown/HTML report, crash-safe publishing
//! - [`stats`]: mergeable moments, quantiles, confidence and bootstrap intervals, histograms
//! - [`pipeline`]: the one run-to-directory pipeline behind the CLI and the Python package
//! - [`bench`]: throughput benchmarks against computed floors
//! - [`tolerances`]: named tolerances (GPU and fast kernels against the twins)
//! - [`train`] (cargo feature `train`, on by default): the reproducible trainers of the shipped
//!   digits models (MLP, CNN, MoE)

pub mod bench;
pub mod crossbar;
pub mod device;
pub mod engine;
pub mod experiment;
pub mod kernel;
pub mod pipeline;
pub mod report;
pub mod rng;
pub mod stats;
pub mod tiers;
pub mod tolerances;
#[cfg(feature = "train")]
pub mod train;
pub mod workload;
