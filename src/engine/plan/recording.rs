//! The dispatches of each step of the plan, shared by every workload: `program`, `drift` + `gdc`,
//! one layer's `dac` → `mvm` (`mvm_narrow`, or `mvm_full` on the full periphery path), under
//! bound management both again at level 1, → `bound` → `combine`, and the device-state loop over
//! trial chunks and times.

use super::*;

pub(super) fn record_program(be: &mut dyn Backend, p: &StageParams, m: &MappedMatrix, b: &MatrixBufs) {
    be.clear(b.progmax);
    let wg = be.wg();
    be.dispatch(Stage::Program, p, &[b.w_norm, b.tiles, b.state, b.progmax], [max_tile_elems(m).div_ceil(wg), m.n_tiles(), p.layer.trials]);
}

pub(super) fn record_drift(be: &mut dyn Backend, p: &StageParams, m: &MappedMatrix, b: &MatrixBufs) {
    be.dispatch(Stage::Drift, p, &[b.tiles, b.progmax, b.state, b.weff, b.partials], [p.layer.chunks_per_tile, m.n_tiles(), p.layer.trials]);
    let wg = be.wg();
    be.dispatch(
        Stage::Gdc,
        p,
        &[b.tiles, b.state, b.weff, b.partials, b.alpha],
        grid(p.layer.trials as u64 * m.n_tiles() as u64 * p.layer.alpha_rows as u64, wg),
    );
}

/// The GEMM block for tiles of at most `rows` outputs and `batch` vectors: `mvm_narrow` (256
/// vectors x 32 outputs) where it computes at least a quarter less padding than `mvm` (128 x 128),
/// i.e. narrow tiles with many vectors (a convolution's channels over its output pixels, a
/// classifier's head over a test set); `mvm` otherwise, whose reuse per workgroup-memory read is
/// higher. On lavapipe a MoE expert (64 outputs, ~16 tokens) ran 2.5 times slower in the narrow
/// block, where neither block fills its lanes; tiles of more than `MVM_NARROW_ROWS` take `mvm`.
pub(super) fn mvm_block(rows: u32, batch: u32) -> (Stage, u32, u32) {
    let padded = |bm: u32, bn: u32| rows.div_ceil(bn) as u64 * bn as u64 * batch.div_ceil(bm) as u64 * bm as u64;
    if rows <= MVM_NARROW_ROWS && 4 * padded(MVM_NARROW_BM, MVM_NARROW_BN) < 3 * padded(MVM_BM, MVM_BN) {
        (Stage::MvmNarrow, MVM_NARROW_BM, MVM_NARROW_BN)
    } else {
        (Stage::Mvm, MVM_BM, MVM_BN)
    }
}

/// One layer's noisy MVMs for every trial and sample of the chunk (noise-models §7): DAC with
/// noise management, the tiled GEMM with output noise and ADC (`mvm_full` with the IR-drop and
/// weight-noise sums on the full periphery path), bound management, then the digital combine
/// into `hout`.
#[allow(clippy::too_many_arguments)]
pub(super) fn record_layer(be: &mut dyn Backend, p: &StageParams, m: &MappedMatrix, b: &MatrixBufs, s: &MvmBufs, input: Buf, bias: Buf, hout: Buf) {
    let (n, batch, wg) = (p.layer.trials, p.layer.batch, be.wg());
    // What bound management's level-1 choice compares the flagged vectors with (`redo_in_gemm`).
    let mut p = *p;
    p.layer.redo_vectors = n * batch * m.n_tiles();
    let p = &p;
    // An input shared by all trials (the first layer) is quantised once, as trial 0.
    let mut pd = *p;
    if p.layer.x_per_trial == 0 {
        pd.layer.trials = 1;
    }
    // One workgroup per (trial, sample, input tile) vector, or DAC_LANES invocations for short ones.
    let dac_vectors = pd.layer.trials as u64 * batch as u64 * m.tiles_in as u64;
    be.dispatch(Stage::Dac, &pd, &[b.tiles, input, s.sat, s.nsat, s.xq, s.nm], grid(dac_vectors, if p.layer.dac_short != 0 { DAC_WG / DAC_LANES } else { 1 }));
    be.clear(s.sat);
    be.clear(s.nsat);
    be.clear(s.bm_level);
    let rows = m.tiles.iter().map(|t| t.rows).max().unwrap();
    // The full periphery path (IR drop, per-read weight noise) has its own GEMM with their sums.
    let (stage, bm, bn) = if p.layer.full_path != 0 { (Stage::MvmFull, MVM_FULL_BM, MVM_FULL_BN) } else { mvm_block(rows, batch) };
    let mvm_groups = [rows.div_ceil(bn), batch.div_ceil(bm), n * m.n_tiles()];
    be.dispatch(stage, p, &[b.tiles, s.xq, b.weff, s.y, s.sat, s.nsat, s.bm_level], mvm_groups);
    if p.io.bm_mode == 1 {
        // Bound management's first redo through the same tiled GEMM: the flagged vectors'
        // inputs again at reduction 2, then those vectors (sample blocks with none return at
        // once). In a BERT-sized layer nearly every vector saturates at level 0 and almost all
        // settle at level 1, so this is the bulk of the redo. Both passes return at once when
        // fewer than 1 / REDO_GEMM_SHARE of the vectors were flagged: `bound` then redoes them
        // from level 1 at a cost that follows their number.
        let (mut pd1, mut p1) = (pd, *p);
        pd1.layer.bm_pass = 1;
        p1.layer.bm_pass = 1;
        be.dispatch(
            Stage::Dac,
            &pd1,
            &[b.tiles, input, s.sat, s.nsat, s.xq, s.nm],
            grid(dac_vectors, if p.layer.dac_short != 0 { DAC_WG / DAC_LANES } else { 1 }),
        );
        be.dispatch(stage, &p1, &[b.tiles, s.xq, b.weff, s.y, s.sat, s.nsat, s.bm_level], mvm_groups);
    }
    // A fixed grid strides over the units of the vectors left to redo.
    let units = n as u64 * batch.div_ceil(BOUND_VB) as u64 * m.n_tiles() as u64;
    be.dispatch(Stage::Bound, p, &[b.tiles, input, s.nm, b.weff, s.sat, s.nsat, s.y, s.bm_level], grid(units.min(BOUND_GROUPS as u64), 1));
    be.dispatch(Stage::Combine, p, &[b.tiles, s.y, s.nm, s.bm_level, b.alpha, bias, hout], grid(n as u64 * batch as u64 * m.n_out as u64, wg));
}

/// The device-state plan of one matrix: per trial chunk `program`, then per time `drift` + `gdc`,
/// after which `per_time(backend, buffers, params, time index)` consumes the state. Shared by the
/// weight-error, device-state and timing plans so their chunking and order cannot differ.
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
pub(super) fn device_state_chunks(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn narrow_tiles_with_many_vectors_take_the_narrow_block() {
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
