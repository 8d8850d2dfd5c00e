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

use super::layout::{ConvParams, DeviceParams, IoParams, KernelParams, LayerParams, StageParams, TileInfo};
use super::stages::{Stage, CHUNK, DAC_SERIAL_COLS, DAC_WG, KV_WG, MVM_BM, MVM_BN, MVM_NARROW_BM, MVM_NARROW_BN, MVM_NARROW_ROWS};
use super::{Backend, Buf, EngineError};
use crate::crossbar::{Gdc, MappedMatrix, Periphery, MAX_TILE_IN};
use crate::device::DeviceModel;

/// Largest workgroup count in one dispatch dimension (WebGPU's guaranteed minimum).
pub const MAX_GROUPS: u32 = 65_535;

/// Device memory one trial chunk of an inference may take, all buffers together: fits any GPU
/// with 4 GB, and lets a small model run all its trials in one chunk.
pub const CHUNK_BUDGET_BYTES: u64 = 2 << 30;

/// Workgroups of `bound`: they stride over the saturated vectors (or all on the full path), so a
/// layer with none costs this many short workgroups instead of one per vector. 1024 workgroups of
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
}

/// One analog layer of a model: mapped weights, digital bias and activation.
#[derive(Clone, Debug)]
pub struct AnalogLayer {
    pub mapped: MappedMatrix,
    pub bias: Vec<f32>,
    /// 0 none, 1 ReLU, 2 GELU, 3 tanh.
    pub activation: u32,
    /// A convolution layer (aihwkit `AnalogConv2d`): its geometry and the digital pooling after
    /// the activation; the plan fills in `samples`. None: a Linear layer.
    pub conv: Option<ConvParams>,
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

/// 32-bit words of programmed state per weight (see shaders/program.wgsl).
fn state_words(dev: &DeviceModel) -> u64 {
    crate::engine::cpu::program::state_words(DeviceParams::from(dev).drift_path) as u64
}

/// Bytes per trial of the largest device-state buffer of a matrix (the programmed state).
fn state_bytes(m: &MappedMatrix, dev: &DeviceModel) -> u64 {
    m.len() as u64 * 4 * state_words(dev)
}

fn max_tile_elems(m: &MappedMatrix) -> u32 {
    m.tiles.iter().map(|t| t.rows * t.cols).max().unwrap_or(0)
}

/// 256-element chunks per tile in `drift` and `weight_error`: the tile's elements row-major, or
/// with per-column GDC each row on its own chunks (so every partial sum covers one row).
fn chunks_per_tile(m: &MappedMatrix, per_column: bool) -> u32 {
    if per_column {
        m.max_rows() * m.tiles.iter().map(|t| t.cols).max().unwrap_or(0).div_ceil(CHUNK)
    } else {
        max_tile_elems(m).div_ceil(CHUNK)
    }
}

/// The `tiles` buffer: every tile, then every tile's rows as one-row tiles (stride `max_rows`),
/// which carry each output column's digital scale and exact GDC reference.
pub fn tile_infos(m: &MappedMatrix) -> Vec<TileInfo> {
    m.tiles.iter().chain(&m.rows).map(TileInfo::from).collect()
}

/// GDC factors per (trial, tile): 1, or one per row slot with per-column GDC.
fn alpha_rows(m: &MappedMatrix, gdc: Gdc) -> u32 {
    if gdc.per_column() {
        m.max_rows()
    } else {
        1
    }
}

#[allow(clippy::too_many_arguments)]
fn params(cfg: &RunConfig, layer: u32, m: &MappedMatrix, trials: u32, offset: u32, batch: u32, t_index: u32, t_inf: f64) -> StageParams {
    let (device, periphery) = cfg.layer_noise.get(layer as usize).and_then(|o| o.as_ref()).map_or((&cfg.device, &cfg.periphery), |(d, p)| (d, p));
    StageParams {
        layer: LayerParams {
            n_in: m.n_in,
            n_out: m.n_out,
            tiles_in: m.tiles_in,
            tiles_out: m.tiles_out,
            trials,
            trial_offset: cfg.first_trial + offset,
            batch,
            layer,
            t_index,
            key0: cfg.key[0],
            key1: cfg.key[1],
            gdc_mode: cfg.gdc.mode(),
            log_t_ratio: device.log_t_ratio(t_inf) as f32,
            read_sqrt_log: device.read_sqrt_log(t_inf) as f32,
            full_path: u32::from(periphery.needs_full_path()),
            x_per_trial: 0,
            activation: 0,
            chunks_per_tile: chunks_per_tile(m, cfg.gdc.per_column()),
            wmax: if m.wmax > 0.0 { m.wmax } else { 1.0 },
            // Every plan drifts time index 0 first after programming a chunk.
            gdc_base: u32::from(t_index == 0),
            max_rows: m.max_rows(),
            alpha_rows: alpha_rows(m, cfg.gdc),
            dac_serial: u32::from(m.tiles.iter().all(|t| t.cols <= DAC_SERIAL_COLS)),
            vector_offset: 0,
        },
        dev: DeviceParams::from(device),
        io: IoParams::from(periphery),
        kern: KernelParams::default(),
        conv: ConvParams::default(),
    }
}

/// Trials per chunk so that no per-trial buffer binding exceeds the adapter's limit.
fn chunk_size(be: &dyn Backend, cfg: &RunConfig, bytes_per_trial: u64, what: &str) -> Result<u32, EngineError> {
    let limit = be.max_binding_bytes();
    if bytes_per_trial > limit {
        return Err(EngineError::TooLarge {
            what: what.into(),
            need: bytes_per_trial,
            limit,
            fix: "the batch (rows of the data set per run) or the layer size".into(),
        });
    }
    let fit = (limit / bytes_per_trial.max(1)).min(MAX_GROUPS as u64) as u32;
    Ok(fit.min(cfg.max_chunk.max(1)).min(cfg.trials).max(1))
}

fn check_indices(m: &MappedMatrix, layer: usize) -> Result<(), EngineError> {
    // Counter fields: element index in 32 bits, output index in 20 bits, tile index in 8 bits.
    if (m.n_in as u64) * (m.n_out as u64) > u32::MAX as u64 || m.n_out >= 1 << 20 || m.tiles_in > 255 || layer > 255 {
        return Err(EngineError::Invalid(format!(
            "layer {layer} ({} x {}) exceeds the RNG counter layout (2^32 weights, 2^20 outputs, 255 input tiles, 256 layers)",
            m.n_out, m.n_in
        )));
    }
    if m.tiles.iter().any(|t| t.cols > MAX_TILE_IN) {
        return Err(EngineError::Invalid(format!("tile inputs above {MAX_TILE_IN} are not supported: set tile.max_in <= {MAX_TILE_IN}")));
    }
    Ok(())
}

/// Device buffers of one mapped matrix for one trial chunk.
struct MatrixBufs {
    w_norm: Buf,
    tiles: Buf,
    /// The programmed state `program` stores and `drift` reads at every time point.
    state: Buf,
    progmax: Buf,
    weff: Buf,
    partials: Buf,
    alpha: Buf,
}

impl MatrixBufs {
    fn new(be: &mut dyn Backend, m: &MappedMatrix, chunk: u32, cfg: &RunConfig) -> Self {
        let dev = &cfg.device;
        let nt = m.n_tiles() as usize;
        let cpt = chunks_per_tile(m, cfg.gdc.per_column()) as usize;
        let w_norm = be.create("w_norm", m.len());
        be.upload(w_norm, bytemuck::cast_slice(&m.w_norm));
        let infos = tile_infos(m);
        let tiles = be.create("tiles", infos.len() * std::mem::size_of::<TileInfo>() / 4);
        be.upload(tiles, bytemuck::cast_slice(&infos));
        MatrixBufs {
            w_norm,
            tiles,
            state: be.create("state", chunk as usize * state_words(dev) as usize * m.len()),
            progmax: be.create("progmax", chunk as usize * nt),
            weff: be.create("weff", chunk as usize * m.len()),
            partials: be.create("partials", chunk as usize * nt * cpt * 2),
            alpha: be.create("alpha", chunk as usize * nt * alpha_rows(m, cfg.gdc) as usize),
        }
    }

    fn free(&self, be: &mut dyn Backend) {
        for b in [self.w_norm, self.tiles, self.state, self.progmax, self.weff, self.partials, self.alpha] {
            be.free(b);
        }
    }
}

fn record_program(be: &mut dyn Backend, p: &StageParams, m: &MappedMatrix, b: &MatrixBufs) {
    be.clear(b.progmax);
    let wg = be.wg();
    be.dispatch(Stage::Program, p, &[b.w_norm, b.tiles, b.state, b.progmax], [max_tile_elems(m).div_ceil(wg), m.n_tiles(), p.layer.trials]);
}

fn record_drift(be: &mut dyn Backend, p: &StageParams, m: &MappedMatrix, b: &MatrixBufs) {
    be.dispatch(Stage::Drift, p, &[b.tiles, b.progmax, b.state, b.weff, b.partials], [p.layer.chunks_per_tile, m.n_tiles(), p.layer.trials]);
    let wg = be.wg();
    be.dispatch(Stage::Gdc, p, &[b.tiles, b.partials, b.alpha], grid(p.layer.trials as u64 * m.n_tiles() as u64 * p.layer.alpha_rows as u64, wg));
}

/// Scratch buffers of the per-MVM stages, sized for the largest layer of a chunk.
struct MvmBufs {
    xq: Buf,
    nm: Buf,
    y: Buf,
    /// Per vector: flagged saturated by `mvm`.
    sat: Buf,
    /// `mvm`'s list of saturated vectors: [0] count, then vector ids.
    satlist: Buf,
    /// Per vector: the bound-management level `bound` ended at (reduction 2^level).
    bm_level: Buf,
}

impl MvmBufs {
    /// Buffers for the largest of `layers`: (vectors per trial, matrix) of each.
    fn new(be: &mut dyn Backend, chunk: u32, layers: &[(u32, &MappedMatrix)]) -> Self {
        let c = chunk as usize;
        let max = |f: &dyn Fn(&MappedMatrix) -> u32| layers.iter().map(|&(v, m)| v as usize * f(m) as usize).max().unwrap_or(1);
        MvmBufs {
            xq: be.create("xq", c * max(&|m| m.n_in)),
            nm: be.create("nm", c * max(&|m| m.tiles_in)),
            y: be.create("y", c * max(&|m| m.tiles_in * m.n_out)),
            sat: be.create("sat", c * max(&|m| m.n_tiles())),
            satlist: be.create("satlist", 1 + c * max(&|m| m.n_tiles())),
            bm_level: be.create("bm_level", c * max(&|m| m.n_tiles())),
        }
    }

    fn free(&self, be: &mut dyn Backend) {
        for b in [self.xq, self.nm, self.y, self.sat, self.satlist, self.bm_level] {
            be.free(b);
        }
    }
}

/// The GEMM block for tiles of at most `rows` outputs and `batch` vectors: `mvm_narrow` (256
/// vectors x 32 outputs) where it computes at least a quarter less padding than `mvm` (128 x 128),
/// i.e. narrow tiles with many vectors (a convolution's channels over its output pixels, a
/// classifier's head over a test set); `mvm` otherwise, whose reuse per workgroup-memory read is
/// higher. On lavapipe a MoE expert (64 outputs, ~16 tokens) ran 2.5 times slower in the narrow
/// block, where neither block fills its lanes; tiles of more than `MVM_NARROW_ROWS` take `mvm`.
fn mvm_block(rows: u32, batch: u32) -> (Stage, u32, u32) {
    let padded = |bm: u32, bn: u32| rows.div_ceil(bn) as u64 * bn as u64 * batch.div_ceil(bm) as u64 * bm as u64;
    if rows <= MVM_NARROW_ROWS && 4 * padded(MVM_NARROW_BM, MVM_NARROW_BN) < 3 * padded(MVM_BM, MVM_BN) {
        (Stage::MvmNarrow, MVM_NARROW_BM, MVM_NARROW_BN)
    } else {
        (Stage::Mvm, MVM_BM, MVM_BN)
    }
}

/// One layer's noisy MVMs for every trial and sample of the chunk (noise-models §7): DAC with
/// noise management, the tiled GEMM with output noise and ADC, bound management (or the full
/// per-vector path), then the digital combine into `hout`.
#[allow(clippy::too_many_arguments)]
fn record_layer(be: &mut dyn Backend, p: &StageParams, m: &MappedMatrix, b: &MatrixBufs, s: &MvmBufs, input: Buf, bias: Buf, hout: Buf) {
    let (n, batch, wg) = (p.layer.trials, p.layer.batch, be.wg());
    // An input shared by all trials (the first layer) is quantised once, as trial 0.
    let mut pd = *p;
    if p.layer.x_per_trial == 0 {
        pd.layer.trials = 1;
    }
    // One workgroup per (trial, sample, input tile) vector, or one invocation for short ones.
    let dac_vectors = pd.layer.trials as u64 * batch as u64 * m.tiles_in as u64;
    be.dispatch(Stage::Dac, &pd, &[b.tiles, input, s.xq, s.nm], grid(dac_vectors, if p.layer.dac_serial != 0 { DAC_WG } else { 1 }));
    be.clear(s.sat);
    be.clear(s.satlist);
    be.clear(s.bm_level);
    if p.layer.full_path == 0 {
        let rows = m.tiles.iter().map(|t| t.rows).max().unwrap();
        let (stage, bm, bn) = mvm_block(rows, batch);
        be.dispatch(stage, p, &[b.tiles, s.xq, b.weff, s.y, s.sat, s.satlist], [rows.div_ceil(bn), batch.div_ceil(bm), n * m.n_tiles()]);
    }
    // A fixed grid strides over the listed vectors (all of them on the full path).
    let vectors = n as u64 * batch as u64 * m.n_tiles() as u64;
    be.dispatch(Stage::Bound, p, &[b.tiles, input, s.nm, b.weff, s.satlist, s.y, s.bm_level], grid(vectors.min(BOUND_GROUPS as u64), 1));
    be.dispatch(Stage::Combine, p, &[b.tiles, s.y, s.nm, s.bm_level, b.alpha, bias, hout], grid(n as u64 * batch as u64 * m.n_out as u64, wg));
}

/// The device-state plan of one matrix: per trial chunk `program`, then per time `drift` + `gdc`,
/// after which `per_time(backend, buffers, params, time index)` consumes the state. Shared by the
/// weight-error, device-state and timing plans so their chunking and order cannot differ.
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
fn device_state_chunks(
    be: &mut dyn Backend,
    m: &MappedMatrix,
    layer: u32,
    cfg: &RunConfig,
    b: &MatrixBufs,
    chunk: u32,
    per_time: &mut dyn FnMut(&mut dyn Backend, &MatrixBufs, &StageParams, usize) -> Result<(), EngineError>,
    on_chunk: &mut dyn FnMut(u32),
) -> Result<(), EngineError> {
    let mut offset = 0;
    while offset < cfg.trials {
        let n = chunk.min(cfg.trials - offset);
        record_program(be, &params(cfg, layer, m, n, offset, 1, 0, 0.0), m, b);
        for (ti, &t) in cfg.times.iter().enumerate() {
            let p = params(cfg, layer, m, n, offset, 1, ti as u32, t);
            record_drift(be, &p, m, b);
            per_time(be, b, &p, ti)?;
        }
        offset += n;
        on_chunk(n);
    }
    Ok(())
}

/// Weight-error result for one time point: per trial, the sums of E and E² over all weights, and
/// the GDC factor of each tile.
#[derive(Clone, Debug)]
pub struct WeightErrorPoint {
    pub t_inf: f64,
    pub sum_e: Vec<f64>,
    pub sum_e2: Vec<f64>,
    /// [trial][tile], or with per-column GDC [trial][tile][row of the tile]
    pub alpha: Vec<f32>,
    pub n_weights: u64,
    pub n_tiles: u32,
}

/// The GDC factors of `n` trials from the `alpha` buffer, without the empty row slots of tiles
/// shorter than `max_rows`: `[trial][tile]`, or `[trial][tile][row]` with per-column GDC.
fn used_alpha<'a>(m: &'a MappedMatrix, alpha_rows: u32, alpha: &'a [f32], n: u32) -> impl Iterator<Item = f32> + 'a {
    let nt = m.n_tiles() as usize;
    (0..n as usize * nt).flat_map(move |i| {
        let rows = if alpha_rows > 1 { m.tiles[i % nt].rows as usize } else { 1 };
        alpha[i * alpha_rows as usize..][..rows].iter().copied()
    })
}

/// Program one matrix `trials` times and report the effective-weight error at every time.
pub fn run_weight_error(be: &mut dyn Backend, m: &MappedMatrix, cfg: &RunConfig) -> Result<Vec<WeightErrorPoint>, EngineError> {
    run_weight_error_layer(be, m, 0, cfg, &mut |_| {})
}

/// As [`run_weight_error`] for layer `layer` of a model: the same RNG counters as that layer in
/// [`run_classifier`], so the statistics describe exactly the device states the classifier saw.
/// `on_chunk` is told how many trials each finished chunk held.
pub fn run_weight_error_layer(
    be: &mut dyn Backend,
    m: &MappedMatrix,
    layer: u32,
    cfg: &RunConfig,
    on_chunk: &mut dyn FnMut(u32),
) -> Result<Vec<WeightErrorPoint>, EngineError> {
    check_indices(m, layer as usize)?;
    // Effective weights, programmed state and partial sums of a chunk within CHUNK_BUDGET_BYTES.
    let cpt = chunks_per_tile(m, cfg.gdc.per_column());
    let all_bytes = m.len() as u64 * 4 + state_bytes(m, &cfg.device) + m.n_tiles() as u64 * cpt as u64 * 16;
    let chunk = chunk_size(be, cfg, state_bytes(m, &cfg.device), "the programmed state of one trial")?.min((CHUNK_BUDGET_BYTES / all_bytes).max(1) as u32);
    let nt = m.n_tiles();
    let mut out: Vec<WeightErrorPoint> = cfg
        .times
        .iter()
        .map(|&t| WeightErrorPoint { t_inf: t, sum_e: vec![], sum_e2: vec![], alpha: vec![], n_weights: m.len() as u64, n_tiles: nt })
        .collect();
    let b = MatrixBufs::new(be, m, chunk, cfg);
    let errp = be.create("error_partials", chunk as usize * nt as usize * cpt as usize * 2);
    let res = device_state_chunks(
        be,
        m,
        layer,
        cfg,
        &b,
        chunk,
        &mut |be, b, p, ti| {
            let n = p.layer.trials;
            be.dispatch(Stage::WeightError, p, &[b.tiles, b.w_norm, b.weff, b.alpha, errp], [cpt, nt, n]);
            let parts: Vec<f32> = bytemuck::cast_vec(be.download(errp)?);
            let alpha: Vec<f32> = bytemuck::cast_vec(be.download(b.alpha)?);
            let per = (nt * cpt * 2) as usize;
            let pt = &mut out[ti];
            for z in 0..n as usize {
                let (mut s1, mut s2) = (0.0f64, 0.0f64);
                for c in (0..per).step_by(2) {
                    s1 += parts[z * per + c] as f64;
                    s2 += parts[z * per + c + 1] as f64;
                }
                pt.sum_e.push(s1);
                pt.sum_e2.push(s2);
            }
            pt.alpha.extend(used_alpha(m, p.layer.alpha_rows, &alpha, n));
            Ok(())
        },
        on_chunk,
    );
    b.free(be);
    be.free(errp);
    res.map(|_| out)
}

/// Classifier result for one time point: correct predictions per trial (exact integers).
#[derive(Clone, Debug)]
pub struct ClassifierPoint {
    pub t_inf: f64,
    pub correct: Vec<u32>,
    pub n_samples: u32,
}

/// Program an MLP `trials` times and classify the data set at every time.
/// `x` is row-major [batch][n_in of the first layer], `labels` has `batch` entries.
pub fn run_classifier(be: &mut dyn Backend, layers: &[AnalogLayer], x: &[f32], labels: &[u32], cfg: &RunConfig) -> Result<Vec<ClassifierPoint>, EngineError> {
    run_classifier_progress(be, layers, x, labels, cfg, &mut |_| {})
}

/// Samples per batch of a classifier's data set: all of them when one trial's activations take
/// at most 1/16 of a buffer binding (so a chunk holds 16 trials or more) and `mvm` can dispatch
/// its MVMs; else the largest batch that does. A CNN on a real test set (10 000 images of
/// 32 × 32 pixels: 10 M MVMs per trial for its first convolution) runs in batches.
pub fn sample_batch(be: &dyn Backend, layers: &[AnalogLayer], samples: u32) -> u32 {
    let per_sample = layers
        .iter()
        .map(|l| {
            let m = &l.mapped;
            l.vectors_per_sample() as u64 * (m.tiles_in as u64 * m.n_out as u64).max(m.n_in.max(m.n_out) as u64) * 4
        })
        .max()
        .unwrap_or(4);
    let by_bytes = be.max_binding_bytes().min(CHUNK_BUDGET_BYTES) / 16 / per_sample.max(1);
    let by_groups = MAX_GROUPS as u64 * MVM_BM as u64 / layers.iter().map(|l| l.vectors_per_sample() as u64).max().unwrap_or(1);
    samples.min(by_bytes.min(by_groups).min(u32::MAX as u64) as u32).max(1)
}

/// As [`run_classifier`], telling `on_chunk` how many trials each finished chunk held. The data
/// set runs in [`sample_batch`]es where it is large.
pub fn run_classifier_progress(
    be: &mut dyn Backend,
    layers: &[AnalogLayer],
    x: &[f32],
    labels: &[u32],
    cfg: &RunConfig,
    on_chunk: &mut dyn FnMut(u32),
) -> Result<Vec<ClassifierPoint>, EngineError> {
    let per = sample_batch(be, layers, labels.len() as u32);
    run_classifier_batches(be, layers, x, labels, cfg, per, on_chunk)
}

/// As [`run_classifier_progress`] with `per` samples per batch. Each batch of each block of
/// trials programs the same device states (counters are global trial indices) and draws its
/// periphery noise by global vector index, so the counts equal one whole-set run's exactly,
/// whatever `per`; a batch costs one more programming and drift of the weights.
pub fn run_classifier_batches(
    be: &mut dyn Backend,
    layers: &[AnalogLayer],
    x: &[f32],
    labels: &[u32],
    cfg: &RunConfig,
    per: u32,
    on_chunk: &mut dyn FnMut(u32),
) -> Result<Vec<ClassifierPoint>, EngineError> {
    let batch = labels.len() as u32;
    if per >= batch {
        return classify(be, layers, x, labels, 0, cfg, on_chunk);
    }
    let width = layers.first().map_or(0, |l| l.inputs_per_sample()) as usize;
    let mut out: Vec<ClassifierPoint> = cfg.times.iter().map(|&t| ClassifierPoint { t_inf: t, correct: vec![], n_samples: batch }).collect();
    // Blocks of trials, every sample batch of a block, then the next block: progress advances
    // per block and memory stays one batch.
    let block = cfg.max_chunk.clamp(1, 64);
    let mut t0 = 0;
    while t0 < cfg.trials {
        let n = block.min(cfg.trials - t0);
        let sub = RunConfig { trials: n, first_trial: cfg.first_trial + t0, ..cfg.clone() };
        let mut counts = vec![vec![0u32; n as usize]; cfg.times.len()];
        for s0 in (0..batch).step_by(per as usize) {
            let len = per.min(batch - s0) as usize;
            let s0u = s0 as usize;
            let got = classify(be, layers, &x[s0u * width..(s0u + len) * width], &labels[s0u..s0u + len], s0, &sub, &mut |_| {})?;
            for (c, g) in counts.iter_mut().zip(got) {
                for (a, b) in c.iter_mut().zip(g.correct) {
                    *a += b;
                }
            }
        }
        for (pt, c) in out.iter_mut().zip(counts) {
            pt.correct.extend(c);
        }
        on_chunk(n);
        t0 += n;
    }
    Ok(out)
}

/// One sample batch (the first at global sample `sample_offset`) of a classifier run.
fn classify(
    be: &mut dyn Backend,
    layers: &[AnalogLayer],
    x: &[f32],
    labels: &[u32],
    sample_offset: u32,
    cfg: &RunConfig,
    on_chunk: &mut dyn FnMut(u32),
) -> Result<Vec<ClassifierPoint>, EngineError> {
    let batch = labels.len() as u32;
    let lab = be.create("labels", labels.len().max(1));
    be.upload(lab, labels);
    let nt = cfg.times.len();
    let mut out: Vec<ClassifierPoint> = cfg.times.iter().map(|&t| ClassifierPoint { t_inf: t, correct: vec![], n_samples: batch }).collect();
    // Counts of every time point of a chunk, [t_index][trial]: read back once per chunk.
    let correct = std::cell::Cell::new(None::<Buf>);
    let res = forward(
        be,
        layers,
        x,
        batch,
        sample_offset,
        cfg,
        on_chunk,
        &mut |be, h, p, ti| {
            let c = correct.get().unwrap_or_else(|| be.create("correct", nt * p.layer.trials as usize));
            correct.set(Some(c));
            if ti == 0 {
                be.clear(c);
            }
            let wg = be.wg();
            be.dispatch(Stage::Accuracy, p, &[h, lab, c], grid(p.layer.trials as u64 * batch as u64, wg));
            Ok(())
        },
        &mut |be, n| {
            // The shader's slot stride is this chunk's trial count.
            let n = n as usize;
            let got = be.download(correct.get().expect("a chunk dispatched its counts"))?;
            for (ti, pt) in out.iter_mut().enumerate() {
                pt.correct.extend_from_slice(&got[ti * n..ti * n + n]);
            }
            Ok(())
        },
        None,
    );
    be.free(lab);
    if let Some(c) = correct.get() {
        be.free(c);
    }
    res.map(|_| out)
}

/// The last layer's outputs of every trial at every time: `[time][trial][batch][n_out]`
/// (for MVM-error statistics; everything is read back, so keep sizes modest).
pub fn run_outputs(
    be: &mut dyn Backend,
    layers: &[AnalogLayer],
    x: &[f32],
    batch: u32,
    cfg: &RunConfig,
    on_chunk: &mut dyn FnMut(u32),
) -> Result<Vec<Vec<f32>>, EngineError> {
    let mut out = vec![Vec::new(); cfg.times.len()];
    run_outputs_each(be, layers, x, batch, cfg, on_chunk, &mut |ti, _, got| {
        out[ti].extend_from_slice(got);
        Ok(())
    })?;
    Ok(out)
}

/// What [`run_outputs_each`] hands each chunk's outputs to: (time index, trials, outputs).
pub type OutputSink<'a> = dyn FnMut(usize, u32, &[f32]) -> Result<(), EngineError> + 'a;

/// As [`run_outputs`], handing each chunk's outputs to `each(time index, trials, outputs)` as
/// they are read back (`[trial][batch][n_out]` of that chunk, trials in order), so memory stays
/// one chunk whatever the trial count.
pub fn run_outputs_each(
    be: &mut dyn Backend,
    layers: &[AnalogLayer],
    x: &[f32],
    batch: u32,
    cfg: &RunConfig,
    on_chunk: &mut dyn FnMut(u32),
    each: &mut OutputSink,
) -> Result<(), EngineError> {
    let n_out = layers.last().map(|l| l.mapped.n_out).unwrap_or(0) as usize;
    forward(
        be,
        layers,
        x,
        batch,
        0,
        cfg,
        on_chunk,
        &mut |be, h, p, ti| {
            let got: Vec<f32> = bytemuck::cast_vec(be.download(h)?);
            each(ti, p.layer.trials, &got[..p.layer.trials as usize * batch as usize * n_out])
        },
        &mut |_, _| Ok(()),
        None,
    )
}

/// What the kernel plan reduces each trial's random features to.
pub enum KernelReduction<'a> {
    /// Σ_ij (K_ij − φ_i·φ_j)² against the exact kernel matrix K (rows × rows).
    KernelError { kmat: &'a [f32] },
    /// Σ (A − Â)² of linear attention against the exact attention outputs A; `v` and `exact` are
    /// `[head][seq][dv]`.
    Attention { v: &'a [f32], exact: &'a [f32] },
}

/// The kernel workloads on the device (kernel-attention spec): per chunk, program the projection;
/// per time, drift and run every input row through it (the analog projection), then
/// `feature_map` and the reduction stages (`kernel_error`, or `attention_kv` + `attention_out`).
/// Only per-(trial, row) partial sums come back, once per chunk, and are summed per trial in f64:
/// the result is `[time][trial]` sums of squared errors. `x` is `[rows][d]`, `norms` its squared
/// row norms; `kp` gives the map and shapes (its `rows` must be the row count of `x`).
#[allow(clippy::too_many_arguments)]
pub fn run_kernel(
    be: &mut dyn Backend,
    layers: &[AnalogLayer],
    x: &[f32],
    norms: &[f32],
    kp: KernelParams,
    reduction: KernelReduction,
    cfg: &RunConfig,
    on_chunk: &mut dyn FnMut(u32),
) -> Result<Vec<Vec<f64>>, EngineError> {
    let rows = kp.rows as usize;
    let attention = matches!(reduction, KernelReduction::Attention { .. });
    let slots = if attention { (kp.heads * kp.seq) as usize } else { rows };
    let nt = cfg.times.len();
    // Per-trial buffers of these stages: Φ, attention's sums, the partial sums of every time.
    let phi_words = rows * kp.width as usize;
    let kv_words = if attention { (kp.heads * kp.blocks * kp.width * (kp.dv + 1)) as usize } else { 0 };
    let per_trial = (phi_words.max(kv_words).max(nt * slots) * 4) as u64;
    let limit = be.max_binding_bytes().min(CHUNK_BUDGET_BYTES / 4);
    if per_trial > limit {
        return Err(EngineError::TooLarge {
            what: "one trial's random features".into(),
            need: per_trial,
            limit,
            fix: "the feature count, the number of points or the sequence length".into(),
        });
    }
    let mut cfg = cfg.clone();
    cfg.max_chunk = cfg.max_chunk.min((limit / per_trial).max(1) as u32);
    let upload = |be: &mut dyn Backend, label: &str, data: &[f32]| {
        let b = be.create(label, data.len().max(1));
        be.upload(b, bytemuck::cast_slice(data));
        b
    };
    let norms_b = upload(be, "norms", norms);
    let inputs: Vec<Buf> = match &reduction {
        KernelReduction::KernelError { kmat } => vec![upload(be, "kmat", kmat)],
        KernelReduction::Attention { v, exact } => vec![upload(be, "v", v), upload(be, "exact", exact)],
    };
    let bufs = std::cell::Cell::new(None::<(Buf, Buf, Buf, usize)>);
    let mut out: Vec<Vec<f64>> = vec![Vec::with_capacity(cfg.trials as usize); nt];
    let res = forward(
        be,
        layers,
        x,
        kp.rows,
        0,
        &cfg,
        on_chunk,
        &mut |be, h, p, ti| {
            let n = p.layer.trials as usize;
            let (phi, kv, partial, _) = match bufs.get() {
                Some(b) => b,
                None => {
                    let b = (be.create("phi", n * phi_words), be.create("kv", (n * kv_words).max(1)), be.create("partial", nt * n * slots), n);
                    bufs.set(Some(b));
                    b
                }
            };
            let mut sp = *p;
            sp.kern = kp;
            sp.layer.t_index = ti as u32;
            let wg = be.wg();
            be.dispatch(Stage::FeatureMap, &sp, &[h, norms_b, phi], grid((n * rows * kp.s as usize) as u64, wg));
            match &reduction {
                KernelReduction::KernelError { .. } => be.dispatch(Stage::KernelError, &sp, &[phi, inputs[0], partial], grid((n * rows) as u64, 1)),
                KernelReduction::Attention { .. } => {
                    let items = n as u64 * (kp.heads * kp.width * (kp.dv + 1)) as u64;
                    be.dispatch(Stage::AttentionKv, &sp, &[phi, inputs[0], kv], grid(items, KV_WG));
                    be.dispatch(Stage::AttentionOut, &sp, &[phi, kv, inputs[0], inputs[1], partial], grid((n * slots) as u64, 1));
                }
            }
            Ok(())
        },
        &mut |be, n| {
            let (_, _, partial, _) = bufs.get().expect("a chunk dispatched its partial sums");
            let got: Vec<f32> = bytemuck::cast_vec(be.download(partial)?);
            let n = n as usize;
            for (ti, o) in out.iter_mut().enumerate() {
                for t in 0..n {
                    o.push(got[(ti * n + t) * slots..][..slots].iter().map(|&v| v as f64).sum());
                }
            }
            Ok(())
        },
        None,
    );
    if let Some((a, b, c, _)) = bufs.get() {
        for x in [a, b, c] {
            be.free(x);
        }
    }
    for b in std::iter::once(norms_b).chain(inputs) {
        be.free(b);
    }
    res.map(|_| out)
}

/// One layer's buffers right after `combine`, for [`LayerHook`]s.
#[derive(Clone, Copy)]
pub struct LayerBufs {
    pub layer: usize,
    /// The layer's input: `[batch][n_in]` shared by all trials (layer 0), else `[trial][batch][n_in]`.
    pub input: Buf,
    /// Its outputs after the activation, `[trial][batch][n_out]`.
    pub output: Buf,
    /// The ADC outputs of every input tile, `[trial][tile_in][batch][n_out]` (clamped to the bound).
    pub y: Buf,
    /// Per (trial, sample, tile) vector: the bound-management level `bound` ended at.
    pub bm_level: Buf,
}

/// Called after every layer of every time of every chunk (with the layer's params and the time
/// index): inspection plans read the layer's buffers here.
pub type LayerHook<'a> = dyn FnMut(&mut dyn Backend, LayerBufs, &StageParams, usize) -> Result<(), EngineError> + 'a;

/// What one layer's MVMs did in one trial at one time (see [`run_layer_insight`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LayerTrial {
    /// Σ (h − h_ref)² and Σ h_ref² over the batch, where h is the layer's output and h_ref =
    /// act(W x + b) in f64 on the layer's actual (noisy) input x: the error this layer adds.
    pub sq_err: f64,
    pub sq_ref: f64,
    /// (sample, tile) MVMs, and those bound management redid with a reduced input (their ADC
    /// saturated at the full input scale).
    pub vectors: u64,
    pub bm_repeated: u64,
    /// ADC conversions (outputs of every input tile), and those at the rail (clipped) in the
    /// final result.
    pub conversions: u64,
    pub clipped: u64,
}

impl std::ops::AddAssign for LayerTrial {
    /// Sums over sample batches of one trial.
    fn add_assign(&mut self, o: LayerTrial) {
        self.sq_err += o.sq_err;
        self.sq_ref += o.sq_ref;
        self.vectors += o.vectors;
        self.bm_repeated += o.bm_repeated;
        self.conversions += o.conversions;
        self.clipped += o.clipped;
    }
}

/// Per time, per layer, per trial: [`LayerTrial`]. Every layer's input and output come back to
/// the host, so this is meant for a few trials (a classifier's `layer_insight_trials`); the
/// trials, their device states and noise are those of [`run_classifier`] with the same config.
/// Large data sets run in [`sample_batch`]es, whose sums add up to the whole set's.
pub fn run_layer_insight(
    be: &mut dyn Backend,
    layers: &[AnalogLayer],
    x: &[f32],
    batch: u32,
    cfg: &RunConfig,
) -> Result<Vec<Vec<Vec<LayerTrial>>>, EngineError> {
    let per = sample_batch(be, layers, batch);
    run_layer_insight_batches(be, layers, x, batch, cfg, per)
}

/// As [`run_layer_insight`] with `per` samples per batch.
pub fn run_layer_insight_batches(
    be: &mut dyn Backend,
    layers: &[AnalogLayer],
    x: &[f32],
    batch: u32,
    cfg: &RunConfig,
    per: u32,
) -> Result<Vec<Vec<Vec<LayerTrial>>>, EngineError> {
    if per >= batch {
        return insight_batch(be, layers, x, batch, 0, cfg);
    }
    let width = layers.first().map_or(0, |l| l.inputs_per_sample()) as usize;
    let mut out: Option<Vec<Vec<Vec<LayerTrial>>>> = None;
    for s0 in (0..batch).step_by(per as usize) {
        let len = per.min(batch - s0);
        let got = insight_batch(be, layers, &x[s0 as usize * width..(s0 + len) as usize * width], len, s0, cfg)?;
        match out.as_mut() {
            None => out = Some(got),
            Some(o) => {
                for (a, b) in o.iter_mut().flatten().flatten().zip(got.iter().flatten().flatten()) {
                    *a += *b;
                }
            }
        }
    }
    Ok(out.unwrap_or_default())
}

/// [`run_layer_insight`] on one sample batch (the first at global sample `sample_offset`).
fn insight_batch(
    be: &mut dyn Backend,
    layers: &[AnalogLayer],
    x: &[f32],
    batch: u32,
    sample_offset: u32,
    cfg: &RunConfig,
) -> Result<Vec<Vec<Vec<LayerTrial>>>, EngineError> {
    let nt = cfg.times.len();
    let mut out = vec![vec![Vec::with_capacity(cfg.trials as usize); layers.len()]; nt];
    // act(W x + b) of the first layer, whose input is the same for every trial and time.
    let mut first_ref: Option<Vec<f64>> = None;
    let mut hook = |be: &mut dyn Backend, b: LayerBufs, p: &StageParams, ti: usize| -> Result<(), EngineError> {
        let l = &layers[b.layer];
        let m = &l.mapped;
        // Vectors per trial: samples, times output pixels for a convolution (whose input is
        // the unfolded one and whose output is before pooling).
        let (n, bt, ni, no) = (p.layer.trials as usize, p.layer.batch as usize, m.n_in as usize, m.n_out as usize);
        let (ntiles, tin) = (m.n_tiles() as usize, m.tiles_in as usize);
        let shared = p.layer.x_per_trial == 0;
        let input: Vec<f32> = if shared && first_ref.is_some() { Vec::new() } else { bytemuck::cast_vec(be.download(b.input)?) };
        let h: Vec<f32> = bytemuck::cast_vec(be.download(b.output)?);
        let y: Vec<f32> = bytemuck::cast_vec(be.download(b.y)?);
        let level: Vec<u32> = bytemuck::cast_vec(be.download(b.bm_level)?);
        let bound = p.io.out_bound;
        let reference = |xin: &[f32]| -> Vec<f64> {
            (0..no)
                .map(|o| {
                    let pre = l.bias[o] as f64 + m.w[o * ni..][..ni].iter().zip(xin).map(|(&w, &v)| w as f64 * v as f64).sum::<f64>();
                    super::cpu::common::activate(l.activation, pre as f32) as f64
                })
                .collect()
        };
        if shared && first_ref.is_none() {
            first_ref = Some((0..bt).flat_map(|s| reference(&input[s * ni..][..ni])).collect());
        }
        for z in 0..n {
            let mut r = LayerTrial { vectors: (bt * ntiles) as u64, conversions: (tin * bt * no) as u64, ..LayerTrial::default() };
            for s in 0..bt {
                let own;
                let want: &[f64] = if shared {
                    &first_ref.as_ref().expect("computed above")[s * no..][..no]
                } else {
                    own = reference(&input[(z * bt + s) * ni..][..ni]);
                    &own
                };
                for (o, &w) in want.iter().enumerate() {
                    r.sq_err += (h[(z * bt + s) * no + o] as f64 - w).powi(2);
                    r.sq_ref += w * w;
                }
                r.bm_repeated += level[(z * bt + s) * ntiles..][..ntiles].iter().filter(|&&v| v > 0).count() as u64;
            }
            if bound > 0.0 {
                r.clipped = y[z * tin * bt * no..][..tin * bt * no].iter().filter(|v| v.abs() >= bound).count() as u64;
            }
            out[ti][b.layer].push(r);
        }
        Ok(())
    };
    forward(be, layers, x, batch, sample_offset, cfg, &mut |_| {}, &mut |_, _, _, _| Ok(()), &mut |_, _| Ok(()), Some(&mut hook))?;
    Ok(out)
}

/// The inference plan shared by the classifier and output workloads: per chunk, program every
/// layer; per time, drift every layer and run the batch through all layers; then `finish` gets
/// the final activations buffer, the last layer's params and the time index; after the last time
/// `chunk_end` gets the chunk's trial count (one readback per chunk).
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
fn forward(
    be: &mut dyn Backend,
    layers: &[AnalogLayer],
    x: &[f32],
    batch: u32,
    sample_offset: u32,
    cfg: &RunConfig,
    on_chunk: &mut dyn FnMut(u32),
    finish: &mut dyn FnMut(&mut dyn Backend, Buf, &StageParams, usize) -> Result<(), EngineError>,
    chunk_end: &mut dyn FnMut(&mut dyn Backend, u32) -> Result<(), EngineError>,
    mut after_layer: Option<&mut LayerHook>,
) -> Result<(), EngineError> {
    if layers.is_empty() || batch == 0 {
        return Err(EngineError::Invalid("the model needs at least one layer and the data set at least one row".into()));
    }
    for (i, l) in layers.iter().enumerate() {
        check_indices(&l.mapped, i)?;
        if let Some(c) = l.conv {
            if c.in_c * c.k_h * c.k_w != l.mapped.n_in || c.out_h == 0 || c.out_w == 0 {
                return Err(EngineError::Invalid(format!("layer {i}: a convolution's crossbar rows must be in_c · k_h · k_w and its output non-empty")));
            }
        }
        if i > 0 && layers[i - 1].outputs_per_sample() != l.inputs_per_sample() {
            return Err(EngineError::Invalid(format!(
                "layer {} hands on {} values per sample but layer {i} reads {}",
                i - 1,
                layers[i - 1].outputs_per_sample(),
                l.inputs_per_sample()
            )));
        }
    }
    if layers.last().is_some_and(|l| l.conv.is_some()) {
        return Err(EngineError::Invalid("the last layer must be a Linear layer (flatten, then Linear): its outputs are the per-sample results".into()));
    }
    if x.len() != batch as usize * layers[0].inputs_per_sample() as usize {
        return Err(EngineError::Invalid(format!("the input holds {} values, not {batch} samples of {}", x.len(), layers[0].inputs_per_sample())));
    }
    // MVMs per trial of each layer: samples, times output pixels for a convolution. `mvm`
    // dispatches blocks of MVM_BM of them along y.
    let vectors: Vec<u32> = layers.iter().map(|l| batch.saturating_mul(l.vectors_per_sample())).collect();
    if let Some(&v) = vectors.iter().max().filter(|&&v| v.div_ceil(MVM_BM) > MAX_GROUPS) {
        return Err(EngineError::Invalid(format!(
            "a layer runs {v} MVMs per trial (samples x output pixels), more than one dispatch holds ({}); use fewer rows of the data set per run ([data] rows)",
            MAX_GROUPS as u64 * MVM_BM as u64
        )));
    }
    let per_trial_bytes = layers
        .iter()
        .zip(&vectors)
        .map(|(l, &v)| {
            let m = &l.mapped;
            let acts = [m.tiles_in as u64 * v as u64 * m.n_out as u64, v as u64 * m.n_in.max(m.n_out) as u64].into_iter().max().unwrap() * 4;
            acts.max(state_bytes(m, &cfg.device))
        })
        .max()
        .unwrap();
    // `mvm` dispatches trials x tiles workgroups along z.
    let max_tiles = layers.iter().map(|l| l.mapped.n_tiles()).max().unwrap();
    // Every per-trial buffer of the chunk together stays within CHUNK_BUDGET_BYTES: chunks as
    // large as memory allows (few dispatches for a small model on a big GPU), on any GPU.
    let all_bytes: u64 = layers
        .iter()
        .map(|l| {
            let m = &l.mapped;
            m.len() as u64 * 4 + state_bytes(m, &cfg.device) + 8 * m.n_tiles() as u64 * 4 * 4
        })
        .sum::<u64>()
        + 5 * per_trial_bytes;
    let budget = (CHUNK_BUDGET_BYTES / all_bytes.max(1)).max(1) as u32;
    let chunk = chunk_size(be, cfg, per_trial_bytes, "one trial's weights or activations")?.min((MAX_GROUPS / max_tiles).max(1)).min(budget);
    let mats: Vec<MatrixBufs> = layers.iter().map(|l| MatrixBufs::new(be, &l.mapped, chunk, cfg)).collect();
    let x0 = be.create("x", x.len());
    be.upload(x0, bytemuck::cast_slice(x));
    let scratch = MvmBufs::new(be, chunk, &layers.iter().zip(&vectors).map(|(l, &v)| (v, &l.mapped)).collect::<Vec<_>>());
    let words = |f: &dyn Fn(&AnalogLayer, u32) -> u32| chunk as usize * layers.iter().zip(&vectors).map(|(l, &v)| f(l, v) as usize).max().unwrap();
    let hlen = words(&|l, v| v * l.mapped.n_out);
    let h = [be.create("h0", hlen), be.create("h1", hlen)];
    // A convolution's unfolded input, and its pooled output (the next layer's input).
    let convs = layers.iter().any(|l| l.conv.is_some());
    let cols = be.create("cols", if convs { words(&|l, v| if l.conv.is_some() { v * l.mapped.n_in } else { 0 }) } else { 1 });
    let pooled = be.create("pooled", if convs { words(&|l, _| if l.conv.is_some() { batch * l.outputs_per_sample() } else { 0 }) } else { 1 });
    let biases: Vec<Buf> = layers
        .iter()
        .map(|l| {
            let bb = be.create("bias", l.bias.len());
            be.upload(bb, bytemuck::cast_slice(&l.bias));
            bb
        })
        .collect();
    let wg = be.wg();
    let mut offset = 0;
    while offset < cfg.trials {
        let n = chunk.min(cfg.trials - offset);
        for (li, l) in layers.iter().enumerate() {
            let p = params(cfg, li as u32, &l.mapped, n, offset, vectors[li], 0, 0.0);
            record_program(be, &p, &l.mapped, &mats[li]);
        }
        for (ti, &t) in cfg.times.iter().enumerate() {
            let mut input = x0;
            let mut last = None;
            for (li, l) in layers.iter().enumerate() {
                let m = &l.mapped;
                let b = &mats[li];
                let mut p = params(cfg, li as u32, m, n, offset, vectors[li], ti as u32, t);
                p.layer.x_per_trial = u32::from(li > 0);
                p.layer.activation = l.activation;
                p.layer.vector_offset = sample_offset * l.vectors_per_sample();
                if let Some(c) = l.conv {
                    p.conv = ConvParams { samples: batch, ..c };
                }
                record_drift(be, &p, m, b);
                // A convolution multiplies its unfolded input (once for a shared first input).
                let mvm_in = if l.conv.is_some() {
                    let mut pc = p;
                    if li == 0 {
                        pc.layer.trials = 1;
                    }
                    be.dispatch(Stage::Im2col, &pc, &[input, cols], grid(pc.layer.trials as u64 * vectors[li] as u64 * m.n_in as u64, wg));
                    cols
                } else {
                    input
                };
                let hout = h[li % 2];
                record_layer(be, &p, m, b, &scratch, mvm_in, biases[li], hout);
                if let Some(hook) = after_layer.as_mut() {
                    hook(be, LayerBufs { layer: li, input: mvm_in, output: hout, y: scratch.y, bm_level: scratch.bm_level }, &p, ti)?;
                }
                input = hout;
                if p.conv.pool_kind != 0 {
                    let items = n as u64 * batch as u64 * (p.conv.pool_h * p.conv.pool_w * m.n_out) as u64;
                    be.dispatch(Stage::Pool, &p, &[hout, pooled], grid(items, wg));
                    input = pooled;
                }
                last = Some(p);
            }
            finish(be, input, &last.unwrap(), ti)?;
        }
        chunk_end(be, n)?;
        offset += n;
        on_chunk(n);
    }
    for m in &mats {
        m.free(be);
    }
    scratch.free(be);
    for bb in [x0, h[0], h[1], cols, pooled].into_iter().chain(biases) {
        be.free(bb);
    }
    Ok(())
}

/// Single-vector MVMs with programming noise only, weights regenerated in registers: y per trial
/// (normalised units, before the digital scale). `xq` is the already quantised input.
pub fn run_program_mvm(be: &mut dyn Backend, m: &MappedMatrix, xq: &[f32], cfg: &RunConfig) -> Result<Vec<f32>, EngineError> {
    check_indices(m, 0)?;
    if m.n_tiles() != 1 {
        return Err(EngineError::Invalid("program_mvm runs single-tile matrices: set tile.max_in/max_out >= the matrix size".into()));
    }
    let chunk = chunk_size(be, cfg, m.n_out as u64 * 4 * 64, "the outputs of one trial")?;
    let b = MatrixBufs::new(be, m, 1, cfg);
    let xb = be.create("xq", xq.len());
    be.upload(xb, bytemuck::cast_slice(xq));
    let yb = be.create("y", chunk as usize * m.n_out as usize);
    let wg = be.wg();
    let mut out = Vec::with_capacity(cfg.trials as usize * m.n_out as usize);
    let mut offset = 0;
    while offset < cfg.trials {
        let n = chunk.min(cfg.trials - offset);
        let p = params(cfg, 0, m, n, offset, 1, 0, 0.0);
        be.dispatch(Stage::ProgramMvm, &p, &[b.w_norm, b.tiles, xb, yb], grid(n as u64 * m.n_out as u64, wg));
        let got: Vec<f32> = bytemuck::cast_vec(be.download(yb)?);
        out.extend_from_slice(&got[..(n * m.n_out) as usize]);
        offset += n;
    }
    b.free(be);
    be.free(xb);
    be.free(yb);
    Ok(out)
}

/// Per time, a flat vector over trials (see [`run_device_state`]).
pub type PerTime = Vec<Vec<f32>>;

/// The device state itself: effective weights (normalised tile units) of every trial at every
/// time, `[time][trial * n_weights + weight]`, and the GDC factors `[time][trial * n_tiles + tile]`
/// (with per-column GDC `[time][trial][tile][row of the tile]`).
/// Meant for small matrices (tests, inspection): everything is read back.
pub fn run_device_state(be: &mut dyn Backend, m: &MappedMatrix, cfg: &RunConfig) -> Result<(PerTime, PerTime), EngineError> {
    check_indices(m, 0)?;
    let chunk = chunk_size(be, cfg, state_bytes(m, &cfg.device), "the programmed state of one trial")?;
    let b = MatrixBufs::new(be, m, chunk, cfg);
    let mut weff = vec![Vec::new(); cfg.times.len()];
    let mut alpha = vec![Vec::new(); cfg.times.len()];
    let res = device_state_chunks(
        be,
        m,
        0,
        cfg,
        &b,
        chunk,
        &mut |be, b, p, ti| {
            let n = p.layer.trials as usize;
            let w: Vec<f32> = bytemuck::cast_vec(be.download(b.weff)?);
            weff[ti].extend_from_slice(&w[..n * m.len()]);
            let a: Vec<f32> = bytemuck::cast_vec(be.download(b.alpha)?);
            alpha[ti].extend(used_alpha(m, p.layer.alpha_rows, &a, n as u32));
            Ok(())
        },
        &mut |_| {},
    );
    b.free(be);
    res.map(|_| (weff, alpha))
}

/// Seconds for the device-state stages (`program`, then `drift` + `gdc` at each time) over all
/// trials, with nothing read back but the last GDC factors (which waits for the work).
pub fn time_device_state(be: &mut dyn Backend, m: &MappedMatrix, cfg: &RunConfig) -> Result<f64, EngineError> {
    check_indices(m, 0)?;
    let chunk = chunk_size(be, cfg, state_bytes(m, &cfg.device), "the programmed state of one trial")?;
    let b = MatrixBufs::new(be, m, chunk, cfg);
    be.finish()?;
    let start = std::time::Instant::now();
    let res = device_state_chunks(be, m, 0, cfg, &b, chunk, &mut |_, _, _, _| Ok(()), &mut |_| {}).and_then(|_| be.download(b.alpha));
    let secs = start.elapsed().as_secs_f64();
    b.free(be);
    res.map(|_| secs)
}

/// Seconds for `reps` whole batched inferences of one layer at one time point over all trials of
/// one chunk: device state (`program`, `drift`, `gdc`), then `dac`, `mvm`, `bound`, `combine`.
/// One untimed pass first builds the pipelines.
pub fn time_inference(be: &mut dyn Backend, layer: &AnalogLayer, x: &[f32], batch: u32, cfg: &RunConfig, reps: u32) -> Result<f64, EngineError> {
    let m = &layer.mapped;
    check_indices(m, 0)?;
    let n = cfg.trials;
    let per_trial = (m.tiles_in as u64 * batch as u64 * m.n_out as u64 * 4).max(state_bytes(m, &cfg.device));
    if chunk_size(be, cfg, per_trial, "one trial's weights or outputs")? < n {
        return Err(EngineError::TooLarge {
            what: format!("{n} trials of a {} x {} layer with batch {batch}", m.n_out, m.n_in),
            need: per_trial * n as u64,
            limit: be.max_binding_bytes(),
            fix: "the trial count of the benchmark".into(),
        });
    }
    let b = MatrixBufs::new(be, m, n, cfg);
    let x0 = be.create("x", x.len());
    be.upload(x0, bytemuck::cast_slice(x));
    let scratch = MvmBufs::new(be, n, &[(batch, m)]);
    let h = be.create("h", n as usize * batch as usize * m.n_out as usize);
    let bias = be.create("bias", m.n_out as usize);
    be.upload(bias, bytemuck::cast_slice(&layer.bias));
    let mut p = params(cfg, 0, m, n, 0, batch, 0, cfg.times[0]);
    p.layer.activation = layer.activation;
    let pass = |be: &mut dyn Backend| {
        record_program(be, &p, m, &b);
        record_drift(be, &p, m, &b);
        record_layer(be, &p, m, &b, &scratch, x0, bias, h);
    };
    pass(be);
    be.download(bias)?;
    let start = std::time::Instant::now();
    for _ in 0..reps {
        pass(be);
    }
    be.download(bias)?;
    let secs = start.elapsed().as_secs_f64();
    b.free(be);
    scratch.free(be);
    for bb in [x0, h, bias] {
        be.free(bb);
    }
    Ok(secs)
}

/// Seconds for a peak-throughput stage (`PeakPhilox` or `PeakFma`): `items` invocations of
/// `iters` iterations each.
/// Seconds per dispatch of `n` back-to-back one-invocation dispatches (two alternating buffers,
/// one readback at the end): the fixed cost a plan pays per dispatch, host recording included.
pub fn time_dispatch_overhead(be: &mut dyn Backend, n: u32) -> Result<f64, EngineError> {
    let mut p = StageParams::default();
    p.layer.trials = 1;
    p.layer.batch = 1;
    let sinks = [be.create("sink", 1), be.create("sink", 1)];
    be.dispatch(Stage::PeakPhilox, &p, &[sinks[0]], [1, 1, 1]);
    be.download(sinks[0])?;
    let start = std::time::Instant::now();
    for i in 0..n {
        be.dispatch(Stage::PeakPhilox, &p, &[sinks[i as usize % 2]], [1, 1, 1]);
    }
    be.download(sinks[0])?;
    let secs = start.elapsed().as_secs_f64() / n.max(1) as f64;
    for s in sinks {
        be.free(s);
    }
    Ok(secs)
}

pub fn time_peak(be: &mut dyn Backend, stage: Stage, items: u32, iters: u32) -> Result<f64, EngineError> {
    let mut p = StageParams::default();
    p.layer.trials = items;
    p.layer.batch = iters;
    p.layer.key0 = 0x1234_5678;
    p.io.out_noise = 1e-3;
    let sink = be.create("sink", items as usize);
    let wg = be.wg();
    be.download(sink)?;
    let start = std::time::Instant::now();
    be.dispatch(stage, &p, &[sink], grid(items as u64, wg));
    be.download(sink)?;
    let secs = start.elapsed().as_secs_f64();
    be.free(sink);
    Ok(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrow_tiles_with_many_vectors_take_the_narrow_block() {
        // The digits CNN's first convolution (8 channels over 450 x 64 pixels), a classifier's
        // head (10 outputs over 450 samples): narrow. Tiles of more than 32 outputs (a MoE expert's
        // 64 over 16 tokens, any wide layer): the 128 x 128 block.
        assert_eq!(mvm_block(8, 28_800).0, Stage::MvmNarrow);
        assert_eq!(mvm_block(10, 450).0, Stage::MvmNarrow);
        assert_eq!(mvm_block(64, 16).0, Stage::Mvm);
        assert_eq!(mvm_block(33, 100_000).0, Stage::Mvm);
        assert_eq!(mvm_block(512, 450), (Stage::Mvm, MVM_BM, MVM_BN));
    }
}
