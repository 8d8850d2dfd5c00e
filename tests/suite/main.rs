//! The integration tests, one binary: each module below was its own test target. One binary links
//! wgpu and naga once instead of once per file, which keeps the test build small and quick
//! (`cargo test --test suite moe::` runs one module).
mod common;

mod afm;
mod aihwkit;
mod budget;
mod classifier_rows;
mod cli;
mod cli_periphery;
mod columns;
mod companion;
mod constants;
mod conv;
mod data;
mod distributions;
mod fast;
mod fuzz;
mod gdc_readout;
mod glue;
#[cfg(feature = "train")]
mod hwa;
mod input_range;
mod insight;
mod invariance;
mod kernel;
mod language_model;
mod layers;
mod merge;
mod moe;
mod npu;
mod paired;
mod periphery;
mod question_answering;
#[cfg(unix)]
mod readme;
mod reference;
mod residual;
mod results_safety;
mod shader_proofs;
mod shaders;
mod squad;
mod sweep_size;
mod tile_noise;
#[cfg(feature = "train")]
mod train_transformer;
mod transformer;
mod transformer_names;
mod twins;
mod twins_transformer;
mod two_level;
mod wgsl_constants;
