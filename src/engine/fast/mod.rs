//! The fast CPU kernels: what `--backend cpu` runs for the hot stages (`program`, `drift`,
//! `dac`, `mvm`, `bound`, `combine`, `im2col`, `pool`) instead of their twins. Same plan, same buffers, same Philox counters and the same
//! equations as the WGSL stages and the twins; what differs is how they are computed:
//! - `mvm`: a register-blocked SGEMM per (trial, tile) (`gemm`: AVX2/FMA, one operand copied
//!   into panels, `matrixmultiply`'s sums bit for bit; `matrixmultiply` itself without AVX2),
//!   then an eight-lane epilogue (output noise from all four words of each Philox block, ADC,
//!   saturation flags);
//! - `program`, `drift`, `dac`, `combine`: loops over eight lanes with branch-free `ln`/`exp`/`sincos`
//!   (`lanes`), compiled for AVX2+FMA where the CPU has it and for the baseline target otherwise;
//! - `im2col` as nested loops copying kernel rows, `pool` over whole channel rows (no division
//!   per element; both bit-identical to the twins);
//! - `kernel_error` and non-causal `attention_kv`/`attention_out` as SGEMMs per trial (and head);
//!   causal `attention_kv`/`attention_out` with cache-ordered loops over the twins' sums
//!   (bit-identical), both split over the threads by (trial, head);
//! - the transformer's `linear_kv` and `linear_out` with cache-ordered loops over the twins' sums
//!   (bit-identical to the twins), `attention_softmax` in two passes per query (scores, then
//!   exponentials and the weighted sum);
//! - `feature_map` row by row, the exponential and trigonometric maps through `lanes::exp` and
//!   `lanes::sincos` on eight lanes (the others bit-identical to the twin);
//! - `mvm_full` (the full periphery path: IR drop, per-read weight noise) as GEMMs per
//!   (trial, tile) for the MVM and each of its sums, then the twin's epilogue;
//! - bound management's redo (`mvm`'s level-1 pass and `bound`) eight flagged vectors at a time
//!   in the lanes of one accumulator, level by level, with one Philox block per four outputs
//!   (bit-identical to the twin); on the full path the twin's per-vector redo;
//! - `mvm` and `bound` split over the threads by trial, or, with fewer trials than threads, by
//!   ranges of each trial's vectors (`cpu::common::par_vectors`); `program` and `drift` with
//!   fewer trials than threads by tile, each tile into a buffer of its own copied into place;
//!   `dac` and `combine` by vector: the same bits however the work is split.
//!
//! Results agree with the twins within the named tolerances of `tolerances.rs` (the GEMM sums in
//! another order; `ln`/`cos` are polynomials accurate to ~1e-7), not bit for bit, exactly like
//! the GPU; integer metrics can differ where a value sits on an ADC rounding boundary.
//! The twins stay the oracle of every test.

pub mod attention;
pub mod attention_softmax;
pub mod bound;
pub mod combine;
pub mod dac;
pub mod drift;
pub mod gemm;
pub mod im2col;
pub mod kernel_error;
pub mod lanes;
pub mod linear_attention;
pub mod mvm;
pub mod mvm_full;
pub mod pool;
pub mod program;

/// The CPU-feature dispatch of the fast kernels (it lives in `rng`, beside the eight-lane Philox,
/// so the statistics below the engine use it too).
pub use crate::rng::simd::has_avx2;
pub(crate) use crate::rng::simd::simd_entry;
