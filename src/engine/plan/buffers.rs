//! Sizes and buffers of the plan: words of device state per weight, tiles and GDC slots,
//! per-dispatch params, trial chunk sizes, and the device buffers of a matrix and of the MVM stages.

use super::*;

/// 32-bit words of programmed state per weight (see shaders/program.wgsl): points whose devices
/// differ here keep their device states in buffers laid out apart.
pub fn state_words(dev: &DeviceModel) -> u64 {
    let p = DeviceParams::from(dev);
    crate::engine::cpu::program::state_words(p.drift_path, p.pairs) as u64
}

/// The widest programmed state of a run's devices: its own and every layer's replacement.
fn run_state_words(cfg: &RunConfig) -> u64 {
    cfg.layer_noise.iter().flatten().map(|(d, _)| state_words(d)).fold(state_words(&cfg.device), u64::max)
}

/// Bytes per trial of the largest device-state buffer of a matrix (the programmed state).
pub(super) fn state_bytes(m: &MappedMatrix, dev: &DeviceModel) -> u64 {
    m.len() as u64 * 4 * state_words(dev)
}

pub(super) fn max_tile_elems(m: &MappedMatrix) -> u32 {
    m.tiles.iter().map(|t| t.rows * t.cols).max().unwrap_or(0)
}

/// 256-element chunks per tile in `drift` and `weight_error`: the tile's elements row-major, or
/// with per-column GDC each row on its own chunks (so every partial sum covers one row).
pub(super) fn chunks_per_tile(m: &MappedMatrix, per_column: bool) -> u32 {
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
pub(super) fn alpha_rows(m: &MappedMatrix, gdc: Gdc) -> u32 {
    if gdc.per_column() {
        m.max_rows()
    } else {
        1
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn params(cfg: &RunConfig, layer: u32, m: &MappedMatrix, trials: u32, offset: u32, batch: u32, t_index: u32, t_inf: f64) -> StageParams {
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
            dac_short: u32::from(m.tiles.iter().all(|t| t.cols <= DAC_SHORT_COLS)),
            vector_offset: 0,
            reads_per_prog: cfg.reads_per_programming.max(1),
            bm_pass: 0,
            redo_vectors: 0,
            relax_at: match (&device.relax_table, &device.log_relax) {
                (Some(r), _) => r.index_of(t_inf).unwrap_or(0) as u32,
                (None, Some(_)) => u32::from(t_inf > 0.0),
                (None, None) => 0,
            },
        },
        dev: DeviceParams::from(device),
        io: IoParams::from(periphery),
        kern: KernelParams::default(),
        conv: ConvParams::default(),
        seq: SeqParams::default(),
    }
}

/// Trials per chunk so that no per-trial buffer binding exceeds the adapter's preferred size (at
/// least one trial, whose bindings may reach its ceiling, [`Backend::binding_ceiling`]).
pub(super) fn chunk_size(be: &dyn Backend, cfg: &RunConfig, bytes_per_trial: u64, what: &str) -> Result<u32, EngineError> {
    let limit = be.max_binding_bytes();
    if bytes_per_trial > be.binding_ceiling() {
        return Err(EngineError::TooLarge {
            what: what.into(),
            need: bytes_per_trial,
            limit: be.binding_ceiling(),
            fix: "the batch (rows of the data set per run) or the layer size".into(),
        });
    }
    let fit = (limit / bytes_per_trial.max(1)).min(MAX_GROUPS as u64) as u32;
    Ok(fit.min(cfg.max_chunk.max(1)).min(cfg.trials).max(1))
}

pub(super) fn check_indices(m: &MappedMatrix, layer: usize) -> Result<(), EngineError> {
    // Counter fields: element index in 32 bits, output index in 20 bits, tile index in 8 bits,
    // output tile in 11 (input noise, `rng::ctr_word3_inp`), layer in 12 (`rng::ctr_word2`).
    if (m.n_in as u64) * (m.n_out as u64) > u32::MAX as u64
        || m.n_out >= 1 << 20
        || m.tiles_in > 255
        || m.tiles_out >= crate::rng::MAX_INP_NOISE_TILES_OUT
        || layer >= crate::rng::MAX_LAYERS
    {
        return Err(EngineError::Invalid(format!(
            "layer {layer} ({} x {}) exceeds the RNG counter layout (2^32 weights, 2^20 outputs, 255 input tiles, {} output tiles, {} layers); use larger tiles",
            m.n_out,
            m.n_in,
            crate::rng::MAX_INP_NOISE_TILES_OUT - 1,
            crate::rng::MAX_LAYERS
        )));
    }
    if m.tiles.iter().any(|t| t.cols > MAX_TILE_IN) {
        return Err(EngineError::Invalid(format!("tile inputs above {MAX_TILE_IN} are not supported: set tile.max_in <= {MAX_TILE_IN}")));
    }
    Ok(())
}

/// A run of `layers` analog layers at `times` time points fits the counter layout: past 256
/// layers the time index has 12 bits (`rng::ctr_word2`).
pub(super) fn check_layer_times(layers: usize, times: usize) -> Result<(), EngineError> {
    if layers > 256 && times > crate::rng::WIDE_LAYER_TIMES {
        return Err(EngineError::Invalid(format!(
            "{layers} analog layers at {times} time points: a model of more than 256 matrices runs at most {} time points; split the time sweep",
            crate::rng::WIDE_LAYER_TIMES
        )));
    }
    Ok(())
}

/// Device buffers of one mapped matrix for one trial chunk.
pub(super) struct MatrixBufs {
    pub(super) w_norm: Buf,
    pub(super) tiles: Buf,
    /// The programmed state `program` stores and `drift` reads at every time point.
    pub(super) state: Buf,
    pub(super) progmax: Buf,
    pub(super) weff: Buf,
    pub(super) partials: Buf,
    pub(super) alpha: Buf,
}

impl MatrixBufs {
    pub(super) fn new(be: &mut dyn Backend, m: &MappedMatrix, chunk: u32, cfg: &RunConfig) -> Self {
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
            // Wide enough for every layer's own device (a layer's noise may replace the run's).
            state: be.create("state", chunk as usize * run_state_words(cfg) as usize * m.len()),
            // Two words per (trial, tile): `program`'s range of the programmed weights.
            progmax: be.create("progmax", chunk as usize * nt * 2),
            weff: be.create("weff", chunk as usize * m.len()),
            partials: be.create("partials", chunk as usize * nt * cpt * 2),
            alpha: be.create("alpha", chunk as usize * nt * alpha_rows(m, cfg.gdc) as usize),
        }
    }

    pub(super) fn free(&self, be: &mut dyn Backend) {
        for b in [self.w_norm, self.tiles, self.state, self.progmax, self.weff, self.partials, self.alpha] {
            be.free(b);
        }
    }
}

/// Scratch buffers of the per-MVM stages, sized for the largest layer of a chunk.
pub(super) struct MvmBufs {
    pub(super) xq: Buf,
    pub(super) nm: Buf,
    pub(super) y: Buf,
    /// Per vector: bit 1, saturated in `mvm`'s first pass; bit 2, again in its level-1 pass.
    pub(super) sat: Buf,
    /// How many vectors each `mvm` pass flagged: [0] at level 0, [1] at level 1.
    pub(super) nsat: Buf,
    /// Per vector: the bound-management level the vector ended at (reduction 2^level).
    pub(super) bm_level: Buf,
}

impl MvmBufs {
    /// Buffers for the largest of `layers`: (vectors per trial, matrix) of each.
    pub(super) fn new(be: &mut dyn Backend, chunk: u32, layers: &[(u32, &MappedMatrix)]) -> Self {
        let c = chunk as usize;
        let max = |f: &dyn Fn(&MappedMatrix) -> u32| layers.iter().map(|&(v, m)| v as usize * f(m) as usize).max().unwrap_or(1);
        MvmBufs {
            xq: be.create("xq", c * max(&|m| m.n_in)),
            nm: be.create("nm", c * max(&|m| m.tiles_in)),
            y: be.create("y", c * max(&|m| m.tiles_in * m.n_out)),
            sat: be.create("sat", c * max(&|m| m.n_tiles())),
            nsat: be.create("nsat", 2),
            bm_level: be.create("bm_level", c * max(&|m| m.n_tiles())),
        }
    }

    pub(super) fn free(&self, be: &mut dyn Backend) {
        for b in [self.xq, self.nm, self.y, self.sat, self.nsat, self.bm_level] {
            be.free(b);
        }
    }
}
