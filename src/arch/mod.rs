//! 3D analog in-memory computing for mixture-of-experts layers (tiers-energy.md; Büchel et al.,
//! "Efficient scaling of large language models with mixture of experts and 3D analog in-memory
//! computing", Nat. Comput. Sci. 5, 13–26 (2025); simulator IBM/3D-CiM-LLM-Inference-Simulator).
//!
//! - [`tiers`]: tiles × tiers × crossbar, per-tier noise multipliers, the MoE layer and its matrices
//! - [`mapping`]: chunks of every matrix onto (tile, tier): greedy, experts-separated, co-selection-aware
//! - [`routing`]: per-token top-k expert draws (uniform, Zipf, histogram, co-selection) on Philox
//! - [`cost`]: the editable cost tables (3D AIMC and GPU), `{ value, source }` pairs in TOML
//! - [`schedule`]: the event-driven schedule of a batch: latency, tier conflicts, utilisation, energy
//! - [`energy`]: the per-inference energy and latency table of the classifier's tiles
//! - [`roofline`]: the GPU roofline of the same layer and the AIMC / GPU ratios
//! - [`npu`]: the heterogeneous edge NPU (HERMES-style PCM cores, digital nodes, SRAM) and its cost
//!   model of a network's op list; [`npu_models`]: MobileBERT and plain encoders as op lists

pub mod cost;
pub mod energy;
pub mod mapping;
pub mod npu;
pub mod npu_models;
pub mod roofline;
pub mod routing;
pub mod schedule;
pub mod tiers;
