//! The fast CPU kernels: what `--backend cpu` runs for the hot stages (`program`, `drift`,
//! `dac`, `mvm`, `bound`, `combine`, `im2col`) instead of their twins. Same plan, same buffers, same Philox counters and the same
//! equations as the WGSL stages and the twins; what differs is how they are computed:
//! - `mvm`: a packed, cache-blocked SGEMM (`matrixmultiply`, AVX2/FMA picked at run time) per
//!   (trial, tile), then an eight-lane epilogue (output noise from all four words of each Philox
//!   block, ADC, saturation flags);
//! - `program`, `drift`, `dac`, `combine`: loops over eight lanes with branch-free `ln`/`exp`/`sincos`
//!   (`lanes`), compiled for AVX2+FMA where the CPU has it and for the baseline target otherwise;
//! - `im2col` as nested loops copying kernel rows (no division per element);
//! - `kernel_error` and non-causal `attention_kv`/`attention_out` as SGEMMs per trial (and head);
//!   causal `attention_kv`/`attention_out` with cache-ordered loops over the twins' sums
//!   (bit-identical), both split over the threads by (trial, head);
//! - the transformer's `linear_kv`, `linear_out` and many-row `feature_map` with cache-ordered
//!   loops over the twins' sums (bit-identical to the twins), and `attention_softmax` in two
//!   passes per query (scores, then exponentials and the weighted sum);
//! - `bound` on the full path (IR drop, per-read weight noise: every vector) as GEMMs per
//!   (trial, tile), the vectors that saturate there through the twin's per-vector redo; the
//!   vectors `mvm` flagged eight at a time in the lanes of one accumulator, level by level, with
//!   one Philox block per four outputs (bit-identical to the twin).
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
pub mod im2col;
pub mod kernel_error;
pub mod lanes;
pub mod linear_attention;
pub mod mvm;
pub mod mvm_full;
pub mod program;

/// Whether the CPU runs AVX2 and FMA (checked once).
#[inline]
pub fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Defines `$name(args)` that runs `$body_fn(args)` compiled for AVX2+FMA when the CPU has them
/// (the body is `#[inline(always)]`, so it is generated again inside the `target_feature`
/// function) and for the baseline target otherwise. Floating-point results are the same either
/// way: Rust never contracts `a * b + c` into an FMA on its own.
macro_rules! simd_entry {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) => $body_fn:path) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($arg: $ty),*) {
                    $body_fn($($arg),*)
                }
                if $crate::engine::fast::has_avx2() {
                    // SAFETY: the CPU was checked for AVX2 and FMA just above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body_fn($($arg),*)
        }
    };
}
pub(crate) use simd_entry;
