//! Plans that read the device state itself: effective-weight error per time, the device state
//! (effective weights and GDC factors) and single-vector `program_mvm`.

use super::*;

/// Weight-error result for one time point: per trial, the sums of E and E² over all weights, and
/// the GDC factor of each tile.
#[derive(Clone, Debug)]
pub struct WeightErrorPoint {
    pub t_inf: f64,
    pub sum_e: Vec<f64>,
    pub sum_e2: Vec<f64>,
    /// `[trial][tile]`, or with per-column GDC `[trial][tile][row of the tile]`
    pub alpha: Vec<f32>,
    pub n_weights: u64,
    pub n_tiles: u32,
}

/// The GDC factors of `n` trials from the `alpha` buffer, without the empty row slots of tiles
/// shorter than `max_rows`: `[trial][tile]`, or `[trial][tile][row]` with per-column GDC.
pub(super) fn used_alpha<'a>(m: &'a MappedMatrix, alpha_rows: u32, alpha: &'a [f32], n: u32) -> impl Iterator<Item = f32> + 'a {
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

/// Single-vector MVMs with programming noise only, weights regenerated in registers: y per trial
/// (normalised units, before the digital scale). `xq` is the already quantised input.
pub fn run_program_mvm(be: &mut dyn Backend, m: &MappedMatrix, xq: &[f32], cfg: &RunConfig) -> Result<Vec<f32>, EngineError> {
    check_indices(m, 0)?;
    if m.n_tiles() != 1 {
        return Err(EngineError::Invalid("program_mvm runs single-tile matrices: set tile.max_in/max_out >= the matrix size".into()));
    }
    if cfg.device.pair_factors().len() > 1 {
        return Err(EngineError::Invalid("program_mvm regenerates one conductance pair per weight: leave device.pair_significance out".into()));
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
