//! Named tolerances for comparing the GPU with its CPU twin (statrs `prec` style). Policy:
//! integers (counts, Philox words, atomic maxima of bit patterns) must match exactly; floats get a
//! named bound with its reason. A bound is never loosened to make a test pass.

/// WGSL `log`, `cos`, `sin`, `exp`, `pow` are only required to be accurate to about 2^-11 absolute
/// (or a few ULP), so one normal from Box–Muller may differ by this much between GPU and CPU.
pub const NORMAL_ABS: f32 = 2e-3;

/// A programmed or drifted weight (normalised units, |w| <= ~1.2): the normal's error times a
/// σ_prog/g_max of at most 0.05 plus transcendental error in the drift factor.
pub const WEIGHT_ABS: f32 = 2e-4;

/// The pre-ADC value of a GEMM stage (`mvm`, `mvm_narrow`, `mvm_full`, `bound`, `program_mvm`), GPU against its
/// twin on the same recorded inputs (replayed with the ADC off): both sum the products in the same
/// k order, so what is left is FMA contraction (≤ 1 ulp of each partial sum: ~1e-6 for sums of
/// order 10) and the noise terms' normals (`NORMAL_ABS` times out_noise ≤ 0.06, or times a per-read
/// weight-noise σ ≤ 0.1: ≤ 2e-4). Lavapipe shows ≤ 1e-6. A quarter of the smallest ADC step in the
/// tests (4/510 ≈ 0.0078); a rounding error of the ADC itself is a whole step.
pub const MVM_PRE_ADC_ABS: f32 = 2e-4;

/// The same for the fast CPU kernels against the twins: the GEMM sums in another order (lanes of
/// 8), whose rounding errors are random in sign, ~√n · 2⁻²⁴ · Σ|w x| ≲ 5e-6 for n ≤ 70 terms of
/// Σ|w x| ≤ 30 in tests/suite/fast.rs, and the noise normals within `FAST_ABS` (× out_noise 0.06).
/// Observed ≤ 1e-6.
pub const FAST_PRE_ADC_ABS: f32 = 2e-5;

/// Two outputs on a converter grid one step apart: n·step and (n ± 1)·step each rounded to f32, or
/// one of them clipped to the bound (which sits within 255 half-ulps of step of 255·step): their
/// difference is the step up to a few ulp of the larger magnitude.
pub const GRID_REL: f32 = 4.0 * f32::EPSILON;

/// `combine` on the same inputs, GPU against its twin: a sum over ≤ 3 input tiles of products of 4
/// factors in the same order (a few ulp of values ≤ ~20: ≤ 1e-5), then GELU or tanh through WGSL's
/// exp-based `tanh` (a few ulp). Observed ≤ 5e-7 on lavapipe; any indexing or factor error is
/// at least an ADC step (~1e-2).
pub const COMBINE_ABS: f32 = 1e-4;

/// Relative error of a GDC factor: a ratio of two means of ~10^5 terms, each within WEIGHT_ABS.
pub const ALPHA_REL: f32 = 1e-3;

/// Quantised outputs may land one converter step apart when a pre-ADC value sits within the
/// float error (`MVM_PRE_ADC_ABS`, `FAST_PRE_ADC_ABS`) of a rounding boundary: a share of about
/// 2 · error / step, ≤ 0.03 % at the ~1e-6 observed and the smallest step in the tests (4/510);
/// none of the ~2.8 million replayed outputs of tests/suite/twins.rs and tests/suite/fast.rs flips today. A
/// systematic rounding error (the shader's ADC flooring instead of rounding) moves 6-48 % of them.
pub const ADC_FLIP_FRACTION: f64 = 0.01;

/// The fast CPU kernels against the twins, one value: `fast::lanes` ln/exp/sincos/tanh have a
/// relative error of about 5e-7 against libm, so a normal (|n| < 6) moves by < 5e-6, a weight
/// (normal · σ/g_max < 0.1, drift factor ≤ 1) by < 1e-6, an activation (|v| < 20) by < 1e-5.
pub const FAST_ABS: f32 = 1e-5;

/// The fast CPU `feature_map` against its twin, relative to the feature's scale (its value for
/// the exponential map, the row's amplitude c0 or c0·e^(|x|²/2) for the trigonometric ones):
/// `lanes::exp` is within 5e-7 relative of libm's, `lanes::sincos` within 2e-7 + 2e-11·|y|
/// absolute for |y| ≤ 1e4 (both tested in `fast::lanes`), and the product with the row's constant
/// adds half an ulp (6e-8) on each side. Below e^-87 the fast map gives 0 where libm may give a
/// denormal: an absolute difference under the smallest normal f32. A wrong map, sign or column is
/// O(1).
pub const FAST_FEATURE_REL: f32 = 1e-6;

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

/// The transformer's digital stages (`embed`, `layernorm`, `residual`, `attention_softmax`,
/// `linear_out`, `seq_pool`), GPU against the twins on the same inputs, absolute, for activations
/// of order 1–10: the same f32 sums in the same order (≤ 512 terms: ≤ 512 · 2⁻²⁴ · 10 ≈ 3e-4 in
/// the worst case, ~√512 · 2⁻²⁴ · 10 ≈ 1.3e-5 typically), FMA contraction (1 ulp), and WGSL's
/// `exp`, `sqrt` and division within a few ulp (the online softmax rescales by exp(m − s) at each
/// new maximum). Observed on lavapipe ≤ 1e-6; any indexing or formula error is O(0.1) or more.
pub const SEQ_ABS: f32 = 1e-4;

/// A workload's per-trial error metric (kernel approximation error, attention error, MoE layer
/// error: an rms over hundreds of outputs), GPU against the twins on the same streams, relative.
/// It moves only through one-step ADC flips in ≤ `ADC_FLIP_FRACTION` of the outputs, each
/// changing a squared error of order (device noise)² ≥ step² by about a step²: ≲ 1 %.
pub const WORKLOAD_METRIC_REL: f64 = 0.02;

/// Kernel ridge accuracy on iris's 38 test rows, GPU against the twins: one row may change class
/// where an ADC flip crosses its decision margin (1/38), never two.
pub const RIDGE_ACCURACY_ABS: f64 = 1.5 / 38.0;

/// Per-layer insight, GPU against the twins: the median MVM error of a layer (relative; a few
/// one-step ADC flips among thousands of outputs move a ~10 % error by far less than 1 % of
/// itself), and the shares of MVMs redone by bound management and of outputs clipped (a vector
/// whose saturation test sits on a flip: ≤ 1 % of vectors, ≤ 0.1 % of outputs).
pub const INSIGHT_MEDIAN_REL: f64 = 0.01;
pub const INSIGHT_REDONE_ABS: f64 = 0.01;
pub const INSIGHT_CLIPPED_ABS: f64 = 0.001;

/// The transformer's logits with an ideal device and perfect converters (the engine in f32)
/// against the independent f64 reference forward: every stage rounds its f32 results (~6e-8
/// relative), sums of ≤ 64 terms add ≤ √64 · 6e-8 ≈ 5e-7 relative, LayerNorm divides by the
/// row's σ (errors relative to the row, not amplified beyond γ/σ · 1e-6 for σ ≳ 0.1), the erf
/// GELU is within 1.5e-7 and attention's exponentials within a few ulp; over ~20 stages on
/// logits of order 1–10 that is ≲ 1e-4. Observed in tests/suite/transformer.rs: ≤ 2e-7. Any
/// formula or indexing difference moves a logit by 1e-2 or more.
pub const TRANSFORMER_FP_ABS: f32 = 2e-4;

/// A language model's next-token loss with an ideal device and perfect converters, per predicted
/// token, against the f64 reference: −ln p = logsumexp(z) − z_target moves by at most
/// max|Δz| through the log-sum-exp (its gradient is the softmax, whose weights sum to one) and by
/// |Δz_target| through the target, so by ≤ 2 · `TRANSFORMER_FP_ABS`.
pub const NEXT_TOKEN_NLL_ABS: f64 = 2.0 * TRANSFORMER_FP_ABS as f64;

/// `token_nll`, GPU against its twin on the same logits, relative on each sequence's summed loss:
/// per token the f32 max is exact, Σ exp(z − m) over the vocabulary adds its terms in a tree of the
/// workgroup's strided partial sums where the twin adds them in order, with WGSL's `exp` within a
/// few ulp (either order's relative error ≲ 1e-6 for ≤ 10⁴ terms of one sign, ≲ 1e-5 for GPT-2's 50
/// 257), WGSL's `log` is within 2⁻²¹ absolute, and the f32 running sum over ≤ 512 positions adds ≲
/// 512 · 6e-8 relative. 1e-4 keeps a margin; a wrong target, row or slot moves a sum by O(1).
pub const NLL_REL: f32 = 1e-4;

/// A language model's per-trial perplexity (or next-token accuracy), GPU against the twins on the
/// same streams, relative. The two differ only where a pre-ADC value lies within float error of
/// a rounding boundary (≤ `ADC_FLIP_FRACTION` of the outputs flip by one step); a flip moves the
/// logits of later layers by about a step, and the perplexity, an exponential of a mean over
/// hundreds of tokens, by far less than the 2 % kept here.
pub const NEXT_TOKEN_GPU_REL: f64 = 0.02;

/// Question answering's per-trial exact match and F1, GPU against the twins on the same streams,
/// in rows: as for `NEXT_TOKEN_GPU_REL` the logits differ only through ADC flips (≤
/// `ADC_FLIP_FRACTION` of the outputs, by one step), and an answer changes only where its best two
/// spans' scores lie within such a difference; over the tests' 24 rows at most one does. A wrong
/// span rule, slot or context moves many rows.
pub const SPAN_GPU_ROWS: f64 = 1.0;
