//! The plan: the one sequence of uploads, dispatches and downloads for each workload, run by
//! either executor (`Backend`). Sizes, dispatch shapes, order and trial chunking are decided here
//! only, so the GPU and the CPU twin cannot drift apart.
//!
//! Monte Carlo structure (noise-models §1): per trial chunk, `program` once (programming noise and
//! drift exponents are per trial); per inference time, `drift` + `gdc` (fresh read noise per t);
//! per MVM, `dac` → `mvm` → `bound` → `combine` (fresh periphery noise per MVM). A convolution
//! adds `im2col` before its MVMs (one per output pixel) and `pool` after its activation.
//!
//! Counters: device noise is keyed by (global trial, weight), periphery noise by (global trial,
//! global MVM vector, output group), so trial chunks, shards and sample batches of a large data
//! set all reproduce one whole run's numbers.
//!
//! Several configurations of one network (sweep points that differ only in noise scales and
//! converter settings) run as one inference plan (`forward`): one set of buffers, and `program`
//! and `drift` dispatched only where the state they would write is not the one already held.
//!
//! Split by concern: `buffers` (sizes and buffers), `recording` (each step's dispatches),
//! `forward` (inference, classifier, outputs), `device_state` (weight error, device state,
//! `program_mvm`), `kernel`, `insight` and `timing`; everything is reachable as `plan::NAME`.

mod buffers;
mod device_state;
mod forward;
mod insight;
mod kernel;
mod recording;
mod seq_model;
mod sharing;
mod timing;
mod transformer;

pub use buffers::*;
pub use device_state::*;
pub use forward::*;
pub use insight::*;
pub use kernel::*;
use recording::*;
pub use seq_model::*;
use sharing::*;
pub use timing::*;
pub use transformer::*;

use super::layout::{ConvParams, DeviceParams, IoParams, KernelParams, LayerParams, SeqParams, StageParams, TileInfo};
use super::stages::{
    Stage, ATTN_BLOCK, BOUND_VB, CHUNK, DAC_LANES, DAC_SHORT_COLS, DAC_WG, KV_BC, KV_BF, MVM_BM, MVM_BN, MVM_FULL_BM, MVM_FULL_BN, MVM_MIN_BM, MVM_NARROW_BM,
    MVM_NARROW_BN, MVM_NARROW_ROWS,
};
use super::{Backend, Buf, EngineError};
use crate::crossbar::{Gdc, MappedMatrix, Periphery, MAX_TILE_IN};
use crate::device::DeviceModel;

/// Largest workgroup count in one dispatch dimension (WebGPU's guaranteed minimum).
pub const MAX_GROUPS: u32 = 65_535;

/// Device memory one trial chunk of an inference may take, all buffers together: fits any GPU
/// with 4 GB, and lets a small model run all its trials in one chunk.
pub const CHUNK_BUDGET_BYTES: u64 = 2 << 30;

/// Workgroups of `bound`: they stride over its units (BOUND_VB samples of one trial and tile), and
/// when nothing saturated (and not on the full path) each returns after one read. 1024 workgroups of
/// 64 invocations about fill a 132-SM GPU (16 resident per SM would be 2112) when many vectors
/// need the redo, and cost ~3 ms of launch overhead per dispatch on a 2-core software Vulkan.
pub const BOUND_GROUPS: u32 = 1024;

/// What every run shares: the device model, the periphery, the drift compensation and the RNG key.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub device: DeviceModel,
    pub periphery: Periphery,
    pub gdc: Gdc,
    pub key: [u32; 2],
    pub trials: u32,
    /// Global index of the first trial (a shard of a larger run starts past 0; counters use
    /// global indices, so shards reproduce the single run's trials exactly).
    pub first_trial: u32,
    /// Inference times after programming, s.
    pub times: Vec<f64>,
    /// Upper bound on trials per chunk (the plan may pick fewer to fit buffer limits).
    pub max_chunk: u32,
    /// Per-layer device and periphery in place of `device` and `periphery` (None, or a missing
    /// entry: the run's); the noise budget switches noise off layer by layer with it. Only noise
    /// scales and converter settings may differ: the programmed-state layout follows `device`.
    pub layer_noise: Vec<Option<(DeviceModel, Periphery)>>,
    /// Reads per programming (two-level Monte Carlo): trials `k·R .. (k+1)·R` read one programmed
    /// state (programming noise, drift exponents, GDC baseline keyed by programming k) and each
    /// redraws its read and output noise (keyed by the trial). 1: every trial programs anew.
    pub reads_per_programming: u32,
}

/// One analog layer of a model: mapped weights, digital bias and activation.
#[derive(Clone, Debug)]
pub struct AnalogLayer {
    pub mapped: MappedMatrix,
    pub bias: Vec<f32>,
    /// 0 none, 1 ReLU, 2 GELU (tanh form), 3 tanh, 4 GELU (erf form), 5 SiLU.
    pub activation: u32,
    /// A convolution layer (aihwkit `AnalogConv2d`): its geometry and the digital pooling after
    /// the activation; the plan fills in `samples`. None: a Linear layer.
    pub conv: Option<ConvParams>,
    /// A residual network's shortcuts: the earlier layer it reads, and the one it adds.
    pub links: Links,
    /// An inference BatchNorm kept digital after the MVM, as aihwkit runs one (its analog tiles
    /// hold the convolution's own weights): per output channel the scale γ/√(σ² + ε), then the
    /// shift β − scale·μ (2 · n_out values), before the addition and the activation.
    pub batchnorm: Option<Vec<f32>>,
}

/// Where a layer's input comes from and what it adds before its activation (He et al. 2016's
/// residual connections: `relu(F(x) + x)`, or `relu(F(x) + W_s x)` with a 1x1 shortcut conv).
/// Indices of earlier layers; a layer's output is taken after its own addition, activation and
/// pooling. None, None: a plain chain (each layer reads the one before it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Links {
    /// Reads this layer's output instead of the previous layer's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<usize>,
    /// Adds this layer's output to its own MVM + bias, element by element, before its activation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub add: Option<usize>,
    /// How a convolution's added maps are shaped to its own: None, as they are (the same
    /// channels and image); Some, He et al.'s zero-padding shortcut.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub add_pad: Option<ZeroPad>,
}

/// He et al. 2016's zero-padding shortcut (their option A, the CIFAR ResNets' `LambdaLayer`):
/// the added maps read at every `stride`-th row and column, `before` zero channels put before
/// their own and `after` after, `F.pad(x[:, :, ::stride, ::stride], (0, 0, 0, 0, before,
/// after))`. It adds no weights: the shortcut stays digital.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ZeroPad {
    pub stride: usize,
    pub before: usize,
    pub after: usize,
}

impl ZeroPad {
    /// The shape `[C, H, W]` a shortcut of this kind makes of maps `[c, h, w]`.
    pub fn shape(&self, [c, h, w]: [usize; 3]) -> [usize; 3] {
        [self.before + c + self.after, h.div_ceil(self.stride), w.div_ceil(self.stride)]
    }
}

impl AnalogLayer {
    /// MVMs per sample: a convolution's output pixels, 1 for a Linear layer.
    pub fn vectors_per_sample(&self) -> u32 {
        self.conv.map_or(1, |c| c.out_h * c.out_w)
    }

    /// Values per sample the layer reads: an image (in_c · in_h · in_w) or a vector (n_in).
    pub fn inputs_per_sample(&self) -> u32 {
        self.conv.map_or(self.mapped.n_in, |c| c.in_c * c.in_h * c.in_w)
    }

    /// The activation its MVM's epilogue applies: none where a digital BatchNorm or an addition
    /// comes first (the `layernorm` or the `residual` stage then applies the layer's activation).
    pub fn mvm_activation(&self) -> u32 {
        if self.links.add.is_some() || self.batchnorm.is_some() {
            0
        } else {
            self.activation
        }
    }

    /// The maps it hands on, `[C, H, W]` after pooling; None for a Linear layer.
    pub fn output_maps(&self) -> Option<[usize; 3]> {
        self.conv.map(|c| {
            let (h, w) = if c.pool_kind != 0 { (c.pool_h, c.pool_w) } else { (c.out_h, c.out_w) };
            [self.mapped.n_out as usize, h as usize, w as usize]
        })
    }

    /// Values per sample before pooling: what an addition into it must hold.
    pub fn unpooled_per_sample(&self) -> u32 {
        self.vectors_per_sample() * self.mapped.n_out
    }

    /// Values per sample it hands on, after pooling (NHWC for a convolution).
    pub fn outputs_per_sample(&self) -> u32 {
        match self.conv {
            None => self.mapped.n_out,
            Some(c) if c.pool_kind != 0 => c.pool_h * c.pool_w * self.mapped.n_out,
            Some(c) => c.out_h * c.out_w * self.mapped.n_out,
        }
    }
}

/// A 1-D dispatch of `n` invocations in workgroups of `wg`, split over x and y.
pub fn grid(n: u64, wg: u32) -> [u32; 3] {
    let groups = n.div_ceil(wg as u64).max(1);
    if groups <= MAX_GROUPS as u64 {
        [groups as u32, 1, 1]
    } else {
        [MAX_GROUPS, groups.div_ceil(MAX_GROUPS as u64) as u32, 1]
    }
}
