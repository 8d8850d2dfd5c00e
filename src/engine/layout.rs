//! `#[repr(C)]` structs shared with WGSL. Mirrors live in `shaders/common/layout.wgsl`; keep the
//! two in sync field by field (a test compares every size with the size naga computes).
//! All fields are 4-byte scalars, so the uniform-buffer layout rules add no hidden padding.
//! The physics (`device`, `crossbar`) is plain Rust data that knows nothing of these mirrors; the
//! conversions from it live here, below the engine's use and above the physics.

use crate::crossbar::{BoundManagement, NoiseManagement, Periphery, Tile, WeightNoiseType};
use crate::device::{DeviceModel, DriftPath, Fit, Programming, MAX_DRIFT_KNOTS, MAX_PAIRS, MAX_PROG_KNOTS, MAX_READ_KNOTS, MAX_RELAX_TIMES};
use bytemuck::{Pod, Zeroable};

/// One piecewise fit of a device quantity as a function of the normalised conductance gr:
/// kind 0: `clamp(a ln gr + b, lo, hi)` below `brk`, cubic `c0 + c1 gr + c2 gr² + c3 gr³` at and above;
/// kind 1: `min(a / max(gr^p, lo), hi)` (aihwkit PCM read-noise amplitude Q_s).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct Curve {
    pub kind: u32,
    pub brk: f32,
    pub a: f32,
    pub b: f32,
    pub lo: f32,
    pub hi: f32,
    pub p: f32,
    pub c0: f32,
    pub c1: f32,
    pub c2: f32,
    pub c3: f32,
    pub _pad: f32,
}

/// Device model (see `device::DeviceModel`), in the form the stages read.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct DeviceParams {
    pub g_max: f32,
    pub prog_scale: f32,
    pub drift_scale: f32,
    pub read_scale: f32,
    /// g_max / g_ref: scales the programming polynomial (µS at g_ref) to this g_max.
    pub prog_norm: f32,
    /// 0: aihwkit tile path (re-conversion before drift), 1: both devices drift separately,
    /// 2: a relaxation table (`device::RelaxTable`: a fresh draw about the target at each read,
    /// re-converted as path 0), 3: a log-time relaxation of one device per weight
    /// (`device::LogRelaxation`, the programmed weights re-converted onto [g_min, g_max]).
    pub drift_path: u32,
    /// 0: differential pair, 1: one signed draw per weight, 2: one device per weight
    /// (`device::Programming`).
    pub prog_mode: u32,
    /// Per-weight programming: targets with |g_T|/g_max below this are programmed to 0.
    pub zero_below: f32,
    pub prog_c0: f32,
    pub prog_c1: f32,
    pub prog_c2: f32,
    pub prog_c3: f32,
    /// x = g_T/g_max above which `prog_h*` give σ_prog (0: never; one cubic everywhere).
    pub prog_brk: f32,
    pub prog_h0: f32,
    pub prog_h1: f32,
    pub prog_h2: f32,
    pub prog_h3: f32,
    /// Knots of `nu_table` in use (0: ν from the `mu_nu` and `sigma_nu` curves).
    pub nu_knots: u32,
    /// Knots of the programming table in `level_tables` in use (0: σ_prog from the polynomials).
    pub prog_knots: u32,
    /// Knots of the read-noise table in `level_tables` in use (0: Q_s from the `q_s` curve).
    pub read_knots: u32,
    pub mu_nu: Curve,
    pub sigma_nu: Curve,
    pub q_s: Curve,
    /// A measured drift model (`device::DriftTable`): per knot (g/g_max, ν mean, ν std, 0),
    /// ascending in g.
    pub nu_table: [[f32; 4]; MAX_DRIFT_KNOTS],
    /// Measured per-level tables, two knots per entry ((g/g_max, value) of knot 2i, then of knot
    /// 2i + 1, ascending in g): the programming noise σ µS (`device::ProgTable`) from entry
    /// [`PROG_TABLE_AT`], the read-noise Q_s (`device::ReadTable`) from [`READ_TABLE_AT`].
    pub level_tables: [[f32; 4]; (MAX_PROG_KNOTS + MAX_READ_KNOTS) / 2],
    /// A relaxation table's σ quartics (`device::RelaxTable`), two entries per time: (c0, c1, c2,
    /// c3), then (c4, 0, 0, 0); µS in powers of g_T/g_max. Programming reads time 0, a read the
    /// time `LayerParams::relax_at` names. With a log-time relaxation (`drift_path` 3) instead
    /// (mean, std0, std1, read_k), then (g_min, 0, 0, 0).
    pub relax: [[f32; 4]; 2 * MAX_RELAX_TIMES],
    /// Conductance pairs per weight (1: one pair; `device::DeviceModel::pair_significance`).
    pub pairs: u32,
    /// Fractions of devices stuck at g_max (SET) and at 0 µS (RESET) (`device::DeviceModel`).
    pub stuck_set: f32,
    pub stuck_reset: f32,
    pub _pad_pairs: u32,
    /// The pairs' significance factors F_k, least significant first (the first `pairs` in use,
    /// the rest 0).
    pub pair_f: [f32; 4],
}

/// The first entry of `DeviceParams::level_tables` holding the programming table.
pub const PROG_TABLE_AT: usize = 0;
/// The first entry of `DeviceParams::level_tables` holding the read-noise table.
pub const READ_TABLE_AT: usize = MAX_PROG_KNOTS / 2;

/// A measured table's knots (g µS, values) packed two per entry from its first entry on.
fn pack_knots(out: &mut [[f32; 4]], g: &[f64], v: &[f64], g_max: f64) {
    for (k, (&g, &v)) in g.iter().zip(v).enumerate() {
        let e = &mut out[k / 2];
        e[2 * (k % 2)] = (g / g_max) as f32;
        e[2 * (k % 2) + 1] = v as f32;
    }
}

/// Per-MVM periphery (aihwkit `IOParameters`). A step of 0 means no quantisation.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct IoParams {
    pub inp_step: f32,
    pub inp_bound: f32,
    pub out_step: f32,
    pub out_bound: f32,
    pub out_noise: f32,
    pub w_noise: f32,
    pub ir_drop: f32,
    pub ir_g_ratio: f32,
    /// 0: none, 1: abs-max, 2: constant (`nm_thres`).
    pub nm_mode: u32,
    /// 0: none, 1: iterative (halve the input scale and redo while saturated).
    pub bm_mode: u32,
    /// 0: additive constant (std w_noise·‖x'‖₂), 1: PCM read (std w_noise·sqrt(Σ|W| x'²)).
    pub w_noise_type: u32,
    /// The last input reduction iterative bound management tries, a power of two: the stages
    /// redo while the reduction is below it. Computed on the host by
    /// [`crate::crossbar::bm_last_reduction`] from aihwkit's max_bm_factor and max_bm_res (16 at
    /// the defaults with a 7-bit DAC).
    pub bm_max_red: f32,
    /// aihwkit's nm_thres: abs-max's saturation, constant's scale (0: none, resp. 1); see
    /// `shaders/common/device.wgsl` `nm_scale`.
    pub nm_thres: f32,
    /// Input noise after the DAC (aihwkit's inp_noise, in DAC units): std of the normal each
    /// input line of a tile gets per MVM (`inp_normals`); 0 off.
    pub inp_noise: f32,
    pub _pad_io1: u32,
    pub _pad_io2: u32,
}

/// What one dispatch works on: a layer (or a weight matrix), a trial chunk, a time point.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct LayerParams {
    pub n_in: u32,
    pub n_out: u32,
    pub tiles_in: u32,
    pub tiles_out: u32,
    /// Trials in this chunk.
    pub trials: u32,
    /// Global index of the chunk's first trial (RNG counters use global indices).
    pub trial_offset: u32,
    pub batch: u32,
    pub layer: u32,
    pub t_index: u32,
    pub key0: u32,
    pub key1: u32,
    /// 0: off, 1: noisy readout baseline, 2: exact reference baseline.
    pub gdc_mode: u32,
    /// ln(t / t0) with t = t_inf + t0 (0 at t_inf = 0); computed in f64 on the host.
    pub log_t_ratio: f32,
    /// sqrt(ln((t + t_read) / (2 t_read))); computed in f64 on the host.
    pub read_sqrt_log: f32,
    /// 1: every MVM vector goes through the full-featured `bound` path (IR drop, weight noise).
    pub full_path: u32,
    /// 0: input shared by all trials (`[batch][n_in]`), 1: per trial (`[trial][batch][n_in]`).
    pub x_per_trial: u32,
    /// Activation after the layer: 0 none, 1 ReLU, 2 GELU (tanh form), 3 tanh, 4 GELU (erf form), 5 SiLU.
    pub activation: u32,
    /// Number of 256-element chunks per tile in `drift` (partials per tile).
    pub chunks_per_tile: u32,
    /// max|W| of the whole matrix (normalises weight errors).
    pub wmax: f32,
    /// 1: `drift` also computes the GDC baseline readout (the first time point after `program`;
    /// later time points keep the stored baseline instead of recomputing it).
    pub gdc_base: u32,
    /// Rows of the tallest tile: the stride of the one-row tile entries after the tiles in the
    /// `tiles` buffer (each output column's own digital scale and GDC reference).
    pub max_rows: u32,
    /// GDC factors per tile and trial: 1 (one per tile), or `max_rows` with per-column GDC, whose
    /// `drift` chunks then never straddle two rows (partials per row).
    pub alpha_rows: u32,
    /// 1: `dac` gives `DAC_LANES` invocations a vector (every input slice is at most
    /// `DAC_SHORT_COLS` long), 0: a workgroup per vector.
    pub dac_short: u32,
    /// Global index of this dispatch's first MVM vector: a data set run in sample batches draws
    /// each vector's noise from its global index (sample · MVMs per sample), as one batch would.
    pub vector_offset: u32,
    /// Reads per programming (two-level Monte Carlo): trial `i` reads the state of programming
    /// `i / reads_per_prog`, so the programming streams are keyed by that index and every other
    /// stream by the trial. 1: one programming per trial.
    pub reads_per_prog: u32,
    /// The bound-management level this `dac` + `mvm` pass reads at: 0, the first read of every
    /// vector; 1, the redo of the vectors `mvm` flagged at level 0 (inputs divided by 2 more, noise
    /// from the level-1 counters, only flagged vectors written). `bound` takes the rest from 2.
    pub bm_pass: u32,
    /// The layer's MVM vectors in this chunk (trials · batch · tiles). The level-1 pass runs
    /// through the tiled GEMM only when at least 1 / REDO_GEMM_SHARE of them saturated at level 0
    /// (`engine::cpu::common::redo_in_gemm`); fewer go to `bound` from level 1, whose cost
    /// follows the flagged vectors, not the whole layer.
    pub redo_vectors: u32,
    /// With a relaxation table (`DeviceParams::drift_path` 2), the table's time this read is at
    /// (the host checks that the time is one of the table's); with a log-time relaxation (3), 1
    /// for a read after programming and 0 at t = 0 (the programmed state as it is); 0 otherwise.
    pub relax_at: u32,
}

/// The kernel stages' shape (`feature_map`, `kernel_error`, `attention_kv`, `attention_out`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct KernelParams {
    /// Input rows per trial (points, or the heads' Q rows then their K rows).
    pub rows: u32,
    /// Projection rows s (the layer has s · replicas outputs).
    pub s: u32,
    pub replicas: u32,
    /// Feature columns per row: 2s for [cos, sin] and [exp(+), exp(−)] pairs, s otherwise.
    pub width: u32,
    /// Feature map: 0 RBF [cos, sin], 1 ArcCos0 step, 2 ArcCos1 ReLU, 3 softmax positive
    /// [exp(y − ‖x‖²/2), exp(−y − ‖x‖²/2)]/√2, 4 softmax trig, 5 softmax ReLU.
    pub map: u32,
    pub heads: u32,
    /// Tokens per head.
    pub seq: u32,
    /// V columns per head.
    pub dv: u32,
    /// 0: non-causal linear attention, 1: causal (prefix sums per block of ATTN_BLOCK tokens).
    pub causal: u32,
    /// Blocks of ATTN_BLOCK tokens per head (prefix slots of `attention_kv`; 1 when non-causal).
    pub blocks: u32,
    pub _pad0: u32,
    pub _pad1: u32,
}

/// A convolution layer's geometry (`im2col`) and the digital pooling after it (`pool`); all
/// zeros for a Linear layer. Images are NHWC inside the engine: `[trial][sample][h][w][c]`; the
/// data set's rows stay in PyTorch's NCHW order and `im2col` reads them so.
/// The unfolded columns are ordered (c, i, j), as PyTorch's `weight.view(out_c, -1)` (aihwkit's
/// mapping: kernel × in-channels rows of the crossbar, one output channel per column).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct ConvParams {
    /// Samples per trial (the layer's vectors are samples · out_h · out_w).
    pub samples: u32,
    pub in_c: u32,
    pub in_h: u32,
    pub in_w: u32,
    pub k_h: u32,
    pub k_w: u32,
    pub stride_h: u32,
    pub stride_w: u32,
    pub pad_h: u32,
    pub pad_w: u32,
    pub out_h: u32,
    pub out_w: u32,
    /// 0: no pooling, 1: max, 2: average.
    pub pool_kind: u32,
    /// The pooling window's height and its stride down the rows.
    pub pool_size: u32,
    pub pool_stride: u32,
    pub pool_h: u32,
    pub pool_w: u32,
    /// 1: the input is the model's own, PyTorch's NCHW rows `[sample][c][h][w]` (the first
    /// layer reads the data set as given); 0: a previous layer's NHWC output.
    pub in_nchw: u32,
    /// The pooling window's width and its stride across (a Conv1d's map is one row: 1 × k).
    pub pool_kw: u32,
    pub pool_sw: u32,
    /// The pooling's implicit padding down and across (PyTorch's `padding`): max pooling skips
    /// it (−∞), average pooling sums it as zeros.
    pub pool_pad_h: u32,
    pub pool_pad_w: u32,
    /// Average pooling's divisor: 1, the whole window, padding included (PyTorch's
    /// `count_include_pad=True`, its default); 0, the window's elements inside the image.
    pub pool_count_pad: u32,
    /// `residual` into a convolution's maps: the added map's stride (0: the added output has
    /// the layer's own shape and is added element by element; s ≥ 1: He et al. 2016's
    /// zero-padding shortcut, the added map read at every s-th row and column), its channels,
    /// height and width, and the zero channels before its own (the layer's channels past
    /// `add_before + add_c` add zeros too).
    pub add_stride: u32,
    pub add_c: u32,
    pub add_h: u32,
    pub add_w: u32,
    pub add_before: u32,
}

/// The transformer's digital stages (`embed`, `layernorm`, `residual`, `attention_softmax`,
/// `row_norms`, `linear_kv`, `linear_out`, `seq_pool`, `token_nll`, `answer_span`): sequence geometry of one dispatch.
/// Activations are `[trial][sample][token][d_model]`; a head's slice of a token row is columns
/// `head · d_head ..`, so `[token][d_model]` is also `[token][head][d_head]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct SeqParams {
    /// Sequences per trial in this dispatch (a sample batch).
    pub samples: u32,
    /// Tokens per sequence (padded length).
    pub seq: u32,
    pub d_model: u32,
    pub heads: u32,
    pub d_head: u32,
    /// Kernel attention's feature columns per (token, head).
    pub width: u32,
    /// 1: token i attends to tokens j ≤ i.
    pub causal: u32,
    /// Causal blocks of ATTN_BLOCK tokens per sequence (`linear_kv`'s prefix slots; 1 non-causal).
    pub blocks: u32,
    pub vocab: u32,
    /// `seq_pool`: 0 mean over the non-padding tokens, 1 the first token, 2 the last non-padding
    /// token.
    pub pool: u32,
    /// Rows of a row-wise stage (`layernorm`, `row_norms`) over all trials of the dispatch.
    pub rows: u32,
    /// Row width of `layernorm` and `row_norms`.
    pub width_in: u32,
    /// `embed`: the token embeddings' factor; `row_norms`: the factor of ‖x‖².
    pub scale: f32,
    /// LayerNorm's ε.
    pub eps: f32,
    /// Global index of this batch's first sequence (the `lengths` and `tokens` buffers hold
    /// this batch only).
    pub sample_offset: u32,
    /// A routed feed-forward layer: experts E (`moe_gate`, `moe_combine`), experts per token and
    /// the expert `moe_combine` adds.
    pub experts: u32,
    pub top_k: u32,
    pub expert: u32,
    /// `embed`: 0 the token lookup plus positions, 1 the token taps (MobileBERT's trigram input:
    /// the embeddings of tokens t + 1, t, t − 1 side by side, `width_in` values each), 2 positions
    /// added to an input row; `layernorm`: 0 LayerNorm, 1 NoNorm (x·γ + β, MobileBERT).
    pub mode: u32,
    /// `embed` mode 1: the tokens side by side (1, or 3 for the trigram input).
    pub taps: u32,
    /// `answer_span`: the longest answer, in tokens (end − start + 1).
    pub max_answer: u32,
    /// `answer_span`: the separator token id; the context is the second segment's tokens but it.
    pub sep: u32,
    /// `answer_span`: labelled answers per sequence.
    pub answers: u32,
    /// `answer_span`: an answer starts and ends only at its row's `n_best` largest start and end
    /// logits (Hugging Face's `n_best_size`); 0 searches every span.
    pub n_best: u32,
}

/// Everything a stage reads as its uniform (binding 0 of every stage).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct StageParams {
    pub layer: LayerParams,
    pub dev: DeviceParams,
    pub io: IoParams,
    pub kern: KernelParams,
    pub conv: ConvParams,
    pub seq: SeqParams,
}

/// One crossbar tile of a layer: a block of `rows` outputs x `cols` inputs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct TileInfo {
    pub row_start: u32,
    pub rows: u32,
    pub col_start: u32,
    pub cols: u32,
    /// Digital output scale: the tile's max|W| / ω.
    pub scale: f32,
    /// max |W_norm| over the tile (ω, or 0 for an all-zero tile).
    pub wmax_norm: f32,
    /// mean |W_norm| over the tile: the exact-reference GDC baseline.
    pub mean_abs_norm: f32,
    /// This tile's multipliers of the device's programming noise, drift exponent and read noise
    /// (1: the device model's; 3D tiers give each tier its own).
    pub prog_mult: f32,
    pub drift_mult: f32,
    pub read_mult: f32,
    /// The tile's input range (`crossbar::Tile::input_range`; 0: none).
    pub input_range: f32,
    /// min and max of W_norm over the tile (`crossbar::Tile::w_lo`, `w_hi`).
    pub w_lo: f32,
    pub w_hi: f32,
}

impl LayerParams {
    /// shaders/common/layout.wgsl `programming_of`: the programming trial `trial` reads.
    pub fn programming(&self, trial: u32) -> u32 {
        trial / self.reads_per_prog.max(1)
    }
}

impl From<&Fit> for Curve {
    fn from(f: &Fit) -> Curve {
        match *f {
            Fit::LogClampPoly { brk, a, b, lo, hi, c } => Curve {
                kind: 0,
                brk: if brk.is_finite() { brk as f32 } else { f32::MAX },
                a: a as f32,
                b: b as f32,
                lo: lo as f32,
                hi: hi as f32,
                c0: c[0] as f32,
                c1: c[1] as f32,
                c2: c[2] as f32,
                c3: c[3] as f32,
                ..Curve::default()
            },
            Fit::PowerClamp { a, p, lo, hi } => Curve { kind: 1, a: a as f32, p: p as f32, lo: lo as f32, hi: hi as f32, ..Curve::default() },
        }
    }
}

impl From<&DeviceModel> for DeviceParams {
    fn from(d: &DeviceModel) -> DeviceParams {
        DeviceParams {
            g_max: d.g_max as f32,
            prog_scale: d.prog_noise_scale as f32,
            drift_scale: d.drift_scale as f32,
            read_scale: d.read_noise_scale as f32,
            prog_norm: (d.g_max / d.prog_g_ref) as f32,
            prog_c0: d.prog_coeff[0] as f32,
            prog_c1: d.prog_coeff[1] as f32,
            prog_c2: d.prog_coeff[2] as f32,
            prog_c3: d.prog_coeff[3] as f32,
            prog_mode: match d.programming {
                Programming::Pair => 0,
                Programming::Weight => 1,
                Programming::Single => 2,
            },
            zero_below: d.zero_below as f32,
            prog_brk: d.prog_break as f32,
            prog_h0: d.prog_coeff_hi[0] as f32,
            prog_h1: d.prog_coeff_hi[1] as f32,
            prog_h2: d.prog_coeff_hi[2] as f32,
            prog_h3: d.prog_coeff_hi[3] as f32,
            mu_nu: Curve::from(&d.mu_nu),
            sigma_nu: Curve::from(&d.sigma_nu),
            q_s: Curve::from(&d.q_s),
            drift_path: match (d.drift_path, &d.relax_table, &d.log_relax) {
                (_, _, Some(_)) => 3,
                (_, Some(_), None) => 2,
                (DriftPath::Aihwkit, None, None) => 0,
                (DriftPath::BothDevices, None, None) => 1,
            },
            relax: {
                let mut e = [[0.0; 4]; 2 * MAX_RELAX_TIMES];
                if let Some(r) = &d.log_relax {
                    e[0] = [r.mean as f32, r.std[0] as f32, r.std[1] as f32, r.read_k as f32];
                    e[1] = [d.g_min as f32, 0.0, 0.0, 0.0];
                }
                if let Some(t) = &d.relax_table {
                    for (k, c) in t.coeff.iter().take(MAX_RELAX_TIMES).enumerate() {
                        e[2 * k] = [c[0] as f32, c[1] as f32, c[2] as f32, c[3] as f32];
                        e[2 * k + 1] = [c[4] as f32, 0.0, 0.0, 0.0];
                    }
                }
                e
            },
            // One pair (factor 1) where the model lists none; no allocation per dispatch.
            pairs: d.pair_significance.len().clamp(1, MAX_PAIRS) as u32,
            pair_f: std::array::from_fn(|k| d.pair_significance.get(k).map_or(if k == 0 { 1.0 } else { 0.0 }, |&f| f as f32)),
            stuck_set: d.stuck_set as f32,
            stuck_reset: d.stuck_reset as f32,
            _pad_pairs: 0,
            nu_knots: d.drift_table.as_ref().map_or(0, |t| t.g.len().min(MAX_DRIFT_KNOTS) as u32),
            nu_table: std::array::from_fn(|i| match &d.drift_table {
                Some(t) if i < t.g.len() => [(t.g[i] / d.g_max) as f32, t.nu_mean[i] as f32, t.nu_std[i] as f32, 0.0],
                _ => [0.0; 4],
            }),
            prog_knots: d.prog_table.as_ref().map_or(0, |t| t.g.len().min(MAX_PROG_KNOTS) as u32),
            read_knots: d.read_table.as_ref().map_or(0, |t| t.g.len().min(MAX_READ_KNOTS) as u32),
            level_tables: {
                let mut e = [[0.0; 4]; (MAX_PROG_KNOTS + MAX_READ_KNOTS) / 2];
                if let Some(t) = &d.prog_table {
                    let n = t.g.len().min(MAX_PROG_KNOTS);
                    pack_knots(&mut e[PROG_TABLE_AT..READ_TABLE_AT], &t.g[..n], &t.sigma[..n], d.g_max);
                }
                if let Some(t) = &d.read_table {
                    let n = t.g.len().min(MAX_READ_KNOTS);
                    pack_knots(&mut e[READ_TABLE_AT..], &t.g[..n], &t.q_s[..n], d.g_max);
                }
                e
            },
        }
    }
}

impl From<&Periphery> for IoParams {
    fn from(p: &Periphery) -> IoParams {
        let step = crate::crossbar::step;
        IoParams {
            inp_step: step(p.inp_res_bits, p.inp_bound) as f32,
            inp_bound: p.inp_bound as f32,
            out_step: if p.out_bound > 0.0 { step(p.out_res_bits, p.out_bound) as f32 } else { 0.0 },
            // out_bound 0 means no clipping.
            out_bound: if p.out_bound > 0.0 { p.out_bound as f32 } else { f32::MAX },
            out_noise: p.out_noise as f32,
            w_noise: p.w_noise as f32,
            ir_drop: p.ir_drop as f32,
            ir_g_ratio: p.ir_drop_g_ratio as f32,
            nm_mode: match p.noise_management {
                NoiseManagement::None => 0,
                NoiseManagement::AbsMax => 1,
                NoiseManagement::Constant => 2,
            },
            bm_mode: match p.bound_management {
                BoundManagement::None => 0,
                BoundManagement::Iterative => 1,
            },
            w_noise_type: match p.w_noise_type {
                WeightNoiseType::AdditiveConstant => 0,
                WeightNoiseType::PcmRead => 1,
            },
            bm_max_red: crate::crossbar::bm_last_reduction(p.max_bm_factor, p.max_bm_res, step(p.inp_res_bits, p.inp_bound)) as f32,
            nm_thres: p.nm_thres as f32,
            inp_noise: p.inp_noise as f32,
            ..IoParams::default()
        }
    }
}

impl From<&Tile> for TileInfo {
    fn from(t: &Tile) -> TileInfo {
        TileInfo {
            row_start: t.row_start,
            rows: t.rows,
            col_start: t.col_start,
            cols: t.cols,
            scale: t.scale,
            wmax_norm: t.wmax_norm,
            mean_abs_norm: t.mean_abs_norm,
            prog_mult: t.noise[0],
            drift_mult: t.noise[1],
            read_mult: t.noise[2],
            input_range: t.input_range,
            w_lo: t.w_lo,
            w_hi: t.w_hi,
        }
    }
}
