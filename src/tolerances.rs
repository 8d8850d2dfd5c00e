//! Named tolerances for comparing the GPU with its CPU twin (statrs `prec` style). Policy:
//! integers (counts, Philox words, atomic maxima of bit patterns) must match exactly; floats get a
//! named bound with its reason. A bound is never loosened to make a test pass.

/// WGSL `log`, `cos`, `sin`, `exp`, `pow` are only required to be accurate to about 2^-11 absolute
/// (or a few ULP), so one normal from Box–Muller may differ by this much between GPU and CPU.
pub const NORMAL_ABS: f32 = 2e-3;

/// A programmed or drifted weight (normalised units, |w| <= ~1.2): the normal's error times a
/// σ_prog/g_max of at most 0.05 plus transcendental error in the drift factor.
pub const WEIGHT_ABS: f32 = 2e-4;

/// A sum of up to 512 products of weights and inputs in [-1, 1]: per-term weight error times the
/// number of terms, plus FMA-contraction differences.
pub const MVM_ABS: f32 = 2e-2;

/// Relative error of a GDC factor: a ratio of two means of ~10^5 terms, each within WEIGHT_ABS.
pub const ALPHA_REL: f32 = 1e-3;

/// Quantised outputs can land one ADC step apart when a pre-ADC value sits within MVM_ABS of a
/// rounding boundary; the fraction of outputs allowed to do so.
pub const ADC_FLIP_FRACTION: f64 = 0.01;

/// The fast CPU kernels against the twins, one value: `fast::lanes` ln/exp/sincos/tanh have a
/// relative error of about 5e-7 against libm, so a normal (|n| < 6) moves by < 5e-6, a weight
/// (normal · σ/g_max < 0.1, drift factor ≤ 1) by < 1e-6, an activation (|v| < 20) by < 1e-5.
pub const FAST_ABS: f32 = 1e-5;

/// Relative agreement of the kernel stages (`feature_map`, `kernel_error`, `attention_kv`,
/// `attention_out`) between the GPU and the CPU twins on the same inputs: f32 sums of up to a few
/// thousand terms in the same order carry ~1e-6 relative error, and WGSL's `cos`/`sin`/`exp` are
/// accurate to a few ulp over the feature maps' arguments (|y| of order 10); 1e-3 leaves a wide
/// margin while still catching any indexing or formula difference (those are O(1)).
pub const KERNEL_REL: f32 = 1e-3;

/// Relative agreement of `pool` between the GPU and its twin: a max is exact, an average is an f32
/// sum in the same window order followed by WGSL's division, which may be 2.5 ulp off
/// (≈ 1.5e-7 relative); 1e-6 still catches any window or index error.
pub const POOL_REL: f32 = 1e-6;
