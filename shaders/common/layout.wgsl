// WGSL mirrors of the #[repr(C)] structs in src/engine/layout.rs. Keep both in sync field by
// field; tests/suite/shaders.rs checks every size against the Rust size_of.

struct Curve {
    kind: u32, brk: f32, a: f32, b: f32,
    lo: f32, hi: f32, p: f32, c0: f32,
    c1: f32, c2: f32, c3: f32, _pad: f32,
}

// The most knots of a measured drift table (device::MAX_DRIFT_KNOTS).
const MAX_DRIFT_KNOTS: u32 = 16u;
// The most knots of a measured programming-noise or read-noise table (device::MAX_PROG_KNOTS,
// MAX_READ_KNOTS), two per vec4 of level_tables, from entry PROG_TABLE_AT or READ_TABLE_AT
// (engine::layout).
const MAX_PROG_KNOTS: u32 = 16u;
const MAX_READ_KNOTS: u32 = 16u;
const PROG_TABLE_AT: u32 = 0u;
const READ_TABLE_AT: u32 = 8u;
// The most times of a relaxation table (device::MAX_RELAX_TIMES), two vec4 of relax each.
const MAX_RELAX_TIMES: u32 = 4u;

struct DeviceParams {
    g_max: f32, prog_scale: f32, drift_scale: f32, read_scale: f32,
    prog_norm: f32, drift_path: u32, prog_mode: u32, zero_below: f32,
    prog_c0: f32, prog_c1: f32, prog_c2: f32, prog_c3: f32,
    prog_brk: f32, prog_h0: f32, prog_h1: f32, prog_h2: f32,
    prog_h3: f32, nu_knots: u32, prog_knots: u32, read_knots: u32,
    mu_nu: Curve,
    sigma_nu: Curve,
    q_s: Curve,
    // A measured drift model: per knot (g/g_max, ν mean, ν std, 0), ascending (nu_knots in use).
    nu_table: array<vec4<f32>, MAX_DRIFT_KNOTS>,
    // Measured per-level tables, two knots per entry: (g/g_max, value) of knot 2i, then of knot
    // 2i + 1, ascending; the programming σ (µS, prog_knots in use) from PROG_TABLE_AT, the
    // read-noise Q_s (read_knots in use) from READ_TABLE_AT.
    level_tables: array<vec4<f32>, 16>,
    // A relaxation table (drift_path 2): per time (c0, c1, c2, c3), then (c4, 0, 0, 0), µS in
    // powers of g_T/g_max; programming reads time 0, a read LayerParams.relax_at. A log-time
    // relaxation (drift_path 3): (mean, std0, std1, read_k), then (g_min, 0, 0, 0).
    relax: array<vec4<f32>, 8>,
    // Conductance pairs per weight (1: one pair) and their significance factors F_k, least
    // significant first (pair_f in use: the first `pairs`; device::DeviceModel::pair_significance);
    // the fractions of devices stuck at g_max (SET) and at 0 µS (RESET).
    pairs: u32, stuck_set: f32, stuck_reset: f32, _pad_pairs: u32,
    pair_f: vec4<f32>,
}

struct IoParams {
    inp_step: f32, inp_bound: f32, out_step: f32, out_bound: f32,
    out_noise: f32, w_noise: f32, ir_drop: f32, ir_g_ratio: f32,
    nm_mode: u32, bm_mode: u32, w_noise_type: u32, bm_max_red: f32,
    nm_thres: f32, inp_noise: f32, _pad_io1: u32, _pad_io2: u32,
}

struct LayerParams {
    n_in: u32, n_out: u32, tiles_in: u32, tiles_out: u32,
    trials: u32, trial_offset: u32, batch: u32, layer: u32,
    t_index: u32, key0: u32, key1: u32, gdc_mode: u32,
    log_t_ratio: f32, read_sqrt_log: f32, full_path: u32, x_per_trial: u32,
    activation: u32, chunks_per_tile: u32, wmax: f32, gdc_base: u32,
    max_rows: u32, alpha_rows: u32, dac_short: u32, vector_offset: u32,
    reads_per_prog: u32, bm_pass: u32, redo_vectors: u32, relax_at: u32,
}

// Bound management's level-1 redo runs as the GEMM's second pass when at least 1 / REDO_GEMM_SHARE
// of the layer's vectors saturated at level 0 (`nsat0`), else in `bound` from level 1 (twin:
// src/engine/cpu/common.rs redo_in_gemm; the constant: engine::stages::REDO_GEMM_SHARE).
const REDO_GEMM_SHARE: u32 = 8u;
fn redo_in_gemm(L: LayerParams, nsat0: u32) -> bool {
    // nsat0 · share ≥ vectors, without the product (no u32 overflow).
    return nsat0 != 0u && nsat0 >= (L.redo_vectors + REDO_GEMM_SHARE - 1u) / REDO_GEMM_SHARE;
}

// The programming that trial `trial` reads (two-level Monte Carlo): the counter of the
// programming streams (src/engine/layout.rs LayerParams::programming).
fn programming_of(L: LayerParams, trial: u32) -> u32 {
    return trial / max(L.reads_per_prog, 1u);
}

struct KernelParams {
    rows: u32, s: u32, replicas: u32, width: u32,
    map: u32, heads: u32, seq: u32, dv: u32,
    causal: u32, blocks: u32, _pad0: u32, _pad1: u32,
}

struct ConvParams {
    samples: u32, in_c: u32, in_h: u32, in_w: u32,
    k_h: u32, k_w: u32, stride_h: u32, stride_w: u32,
    pad_h: u32, pad_w: u32, out_h: u32, out_w: u32,
    pool_kind: u32, pool_size: u32, pool_stride: u32, pool_h: u32,
    pool_w: u32, in_nchw: u32, pool_kw: u32, pool_sw: u32,
    pool_pad_h: u32, pool_pad_w: u32, pool_count_pad: u32, add_stride: u32,
    add_c: u32, add_h: u32, add_w: u32, add_before: u32,
}

struct SeqParams {
    samples: u32, seq: u32, d_model: u32, heads: u32,
    d_head: u32, width: u32, causal: u32, blocks: u32,
    vocab: u32, pool: u32, rows: u32, width_in: u32,
    scale: f32, eps: f32, sample_offset: u32, experts: u32,
    top_k: u32, expert: u32, mode: u32, taps: u32,
    max_answer: u32, sep: u32, answers: u32, n_best: u32,
}

struct StageParams {
    layer: LayerParams,
    dev: DeviceParams,
    io: IoParams,
    kern: KernelParams,
    conv: ConvParams,
    seq: SeqParams,
}

struct TileInfo {
    row_start: u32, rows: u32, col_start: u32, cols: u32,
    scale: f32, wmax_norm: f32, mean_abs_norm: f32,
    prog_mult: f32, drift_mult: f32, read_mult: f32,
    input_range: f32, w_lo: f32, w_hi: f32,
}

// The one-row tile entry of row r of tile `tile` (that output column's own digital scale and GDC
// reference), after the tiles in the `tiles` buffer (src/engine/plan.rs tile_infos).
fn row_entry(L: LayerParams, tile: u32, r: u32) -> u32 {
    return L.tiles_in * L.tiles_out + tile * L.max_rows + r;
}

// The GDC factor of (trial in chunk, tile, row r of the tile).
fn alpha_slot(L: LayerParams, trial_local: u32, tile: u32, r: u32) -> u32 {
    return (trial_local * L.tiles_in * L.tiles_out + tile) * L.alpha_rows + select(0u, r, L.alpha_rows > 1u);
}

// (row, column) within tile t of element `lid` of its 256-element chunk `wx` in `drift` and
// `weight_error`; row >= t.rows for an empty slot. With per-column GDC every row has its own
// chunks_per_tile / max_rows chunks, so each partial sum covers one row.
fn chunk_elem(L: LayerParams, t: TileInfo, wx: u32, lid: u32) -> vec2<u32> {
    if (L.alpha_rows > 1u) {
        let parts = L.chunks_per_tile / L.max_rows;
        let c = (wx % parts) * 256u + lid;
        return vec2<u32>(select(t.rows, wx / parts, c < t.cols), c);
    }
    let e = wx * 256u + lid;
    return vec2<u32>(e / max(t.cols, 1u), e % max(t.cols, 1u));
}
