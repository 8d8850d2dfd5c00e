//! The periphery against an independent oracle: aihwkit's IOParameters forward pass written here
//! again in f64 from noise-models §7 (abs-max noise management, DAC, IR drop, output and per-read
//! weight noise, input noise after the DAC, ADC with its bound, iterative bound management with
//! aihwkit's stopping rule on
//! max_bm_factor and max_bm_res, written here as its loop), driven with
//! the engine's recorded inputs and the same Philox draws, and compared tile vector by tile vector
//! with the engine's `mvm` (level 0) and `bound` (final level and outputs) on the CPU twins, the
//! fast CPU kernels and the GPU. Inputs hit every branch: vectors that saturate at several levels,
//! values at the rails, all-zero slices, ragged tiles; the full path with a strong IR drop and
//! PCM-read weight noise.
//!
//! Outputs are compared as ADC codes (integers): equal, except where a pre-ADC value lies within
//! the f32 path's rounding error of a code boundary (`FLIP_FRACTION`), and then one code apart.

use crate::common::*;
use aimc::crossbar::{Gdc, MappedMatrix, NoiseManagement, Periphery, TileShape, WeightNoiseType};
use aimc::device::DeviceModel;
use aimc::engine::cpu::common::redo_in_gemm;
use aimc::engine::cpu::CpuBackend;
use aimc::engine::layout::{LayerParams, StageParams};
use aimc::engine::plan::{run_outputs, AnalogLayer, RunConfig};
use aimc::engine::stages::Stage;
use aimc::engine::Backend;
use aimc::rng::{ctr_word2, ctr_word3_inp, ctr_word3_out, normal4_f64, philox4x32_10, stream, W_NOISE_GROUP};

/// A pre-ADC value from f32 arithmetic (at most 64 products per tile here, |w| ≤ 0.6, |x'| ≤ 1)
/// differs from the f64 one by at most 64 · 2⁻²⁴ · Σ|w x'| ≈ 1e-4 (IR drop and weight noise add
/// terms of the same order); a code flips only within that distance of a boundary, a fraction
/// 2 · 1e-4 / Δ_ADC ≈ 0.4 % of outputs; 2.5 times that (none flips on these inputs today), and one
/// vector in a hundred whose saturation test (a flip at the bound) goes the other way.
const FLIP_FRACTION: f64 = 0.01;
const LEVEL_FLIP_FRACTION: f64 = 0.01;

/// The oracle's result for one (trial, sample, tile) vector.
struct Vector {
    /// The slice's input scale in input units, as the engine stores it (`dac`'s nm): aihwkit's
    /// noise-management scale times the tile's input range (when it has one).
    scale: f64,
    /// ADC codes round(y/Δ) clipped to the bound, at level 0 and at the final level.
    codes0: Vec<i64>,
    sat0: bool,
    level: u32,
    codes: Vec<i64>,
}

/// aihwkit's stopping rule (rpucuda `forwardVector`), after the pass at reduction 2^level: stop
/// once the reduction exceeds max_bm_factor or, with the DAC on, max_bm_res / inp_res, where
/// inp_res is the DAC step relative to the input range (aihwkit scales its `inp_res` by 2·inp_bound).
fn bm_stops(io: &Periphery, level: u32) -> bool {
    let red = (1u64 << level) as f64;
    let inp_res = if io.inp_res_bits == 0 { 0.0 } else { aihwkit_res(io.inp_res_bits, io.inp_bound) };
    red > io.max_bm_factor || (inp_res > 0.0 && red > io.max_bm_res / inp_res)
}

/// A converter's absolute resolution as aihwkit holds it: the Python float 1/(2^bits − 2) stored
/// as an f32 (`IOParameters.inp_res`, `out_res`) and scaled by the f32 range 2·bound in f32
/// (rpucuda `checkAndSetRes`).
fn aihwkit_res(bits: u32, bound: f64) -> f64 {
    let relative = (1.0f64 / (2f64.powi(bits as i32) - 2.0)) as f32;
    (relative * (2.0 * bound) as f32) as f64
}

fn split(n: usize, parts: usize, i: usize) -> (usize, usize) {
    (i * (n / parts) + i.min(n % parts), n / parts + usize::from(i < n % parts))
}

/// noise-models §7 for one input slice `x` (raw) and the tile's rows `w` (tile units), in f64;
/// `range` is the tile's input range (0: none), applied as aihwkit's `pre_forward` does: inputs
/// clipped to ±range and divided by it, before noise management.
#[allow(clippy::too_many_arguments)]
fn oracle(io: &Periphery, w: &[Vec<f64>], x: &[f64], range: f64, orow0: u32, s: u32, trial: u32, (to, ti): (u32, u32), key: [u32; 2]) -> Vector {
    let x: Vec<f64> = if range > 0.0 { x.iter().map(|v| v.clamp(-range, range) / range).collect() } else { x.to_vec() };
    // The DAC and ADC steps as aihwkit holds them (f32): a value on the rails such as 0.5 sits
    // exactly on a DAC rounding tie with the exact step, so the f32 step decides it, and with a
    // 9-bit ADC 255 of its steps are 12.000001, past the bound.
    let in_step = aihwkit_res(io.inp_res_bits, io.inp_bound);
    let out_step = aihwkit_res(io.out_res_bits, io.out_bound);
    // rpucuda's computeNoiseManagement.
    let amax = x.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    let thres = io.nm_thres;
    let nm = match io.noise_management {
        NoiseManagement::None => 1.0,
        NoiseManagement::AbsMax if thres > 0.0 => amax.min(thres),
        NoiseManagement::AbsMax => amax,
        NoiseManagement::Constant if thres > 0.0 => thres,
        NoiseManagement::Constant => 1.0,
    };
    // With input noise rpucuda does not short-cut an all-zero slice: its scale stays 1.
    let nm = if io.inp_noise > 0.0 && nm == 0.0 { 1.0 } else { nm };
    let nm_div = if nm == 0.0 { 1.0 } else { nm };
    let full = io.ir_drop > 0.0 || io.w_noise > 0.0 || io.inp_noise > 0.0;
    let normal = |group: u32, level: u32, o: u32| {
        let r = philox4x32_10([s, trial, ctr_word2(0, stream::OUT, 0), ctr_word3_out(group, ti, level)], key);
        normal4_f64(r)[(o & 3) as usize]
    };
    let pass = |level: u32| -> (Vec<i64>, bool) {
        let red = (1u64 << level) as f64;
        let mut xq: Vec<f64> = x.iter().map(|v| ((v / (nm_div * red) / in_step).round_ties_even() * in_step).clamp(-io.inp_bound, io.inp_bound)).collect();
        // rpucuda's prepareInput: the input noise after the DAC's rounding and clipping, a draw
        // per line of this tile (output tile `to` too) and pass.
        if io.inp_noise > 0.0 {
            for (k, v) in xq.iter_mut().enumerate() {
                let r = philox4x32_10([s, trial, ctr_word2(0, stream::INP, 0), ctr_word3_inp(k as u32 >> 2, to, ti, level)], key);
                *v += io.inp_noise * normal4_f64(r)[k & 3];
            }
        }
        let n = xq.len() as f64;
        let mut any = false;
        let codes = w
            .iter()
            .enumerate()
            .map(|(o, row)| {
                let orow = orow0 + o as u32;
                let mut y: f64 = row.iter().zip(&xq).map(|(a, b)| a * b).sum();
                if full && io.ir_drop > 0.0 {
                    let sa: f64 = row.iter().zip(&xq).map(|(a, b)| a.abs() * b.abs()).sum();
                    let sp: f64 = row.iter().zip(&xq).enumerate().map(|(j, (a, b))| a * b * (1.0 - (1.0 - j as f64 / n).powi(2))).sum();
                    let a = n / io.ir_drop_g_ratio * sa;
                    y -= io.ir_drop * a * (a * (0.05 * a - 0.2) + 0.5) * sp;
                }
                if io.out_noise > 0.0 {
                    y += io.out_noise * normal(orow >> 2, level, orow);
                }
                if full && io.w_noise > 0.0 {
                    let q: f64 = match io.w_noise_type {
                        WeightNoiseType::PcmRead => row.iter().zip(&xq).map(|(a, b)| a.abs() * b * b).sum(),
                        WeightNoiseType::AdditiveConstant => xq.iter().map(|b| b * b).sum(),
                    };
                    y += io.w_noise * q.sqrt() * normal((orow >> 2) | W_NOISE_GROUP, level, orow);
                }
                let code = (y / out_step).round_ties_even();
                // aihwkit's saturation test: the rounded value beyond the bound.
                any |= (code * out_step).abs() > io.out_bound;
                // Clipped to ±bound as a value (the engine's output), then read back as a code.
                ((code * out_step).clamp(-io.out_bound, io.out_bound) / out_step).round() as i64
            })
            .collect();
        (codes, any)
    };
    let (codes0, sat0) = pass(0);
    let (mut level, mut codes, mut sat) = (0, codes0.clone(), sat0);
    // Iterative bound management (the cases here use it): redo while saturated and the rule allows.
    while sat && !bm_stops(io, level) {
        level += 1;
        (codes, sat) = pass(level);
    }
    Vector { scale: nm * if range > 0.0 { range } else { 1.0 }, codes0, sat0, level, codes }
}

fn codes(v: &[u32], step: f64) -> Vec<i64> {
    f32s(v).iter().map(|&y| (y as f64 / step).round() as i64).collect()
}

/// Compares one backend's `mvm` and `bound` outputs (replayed from the twin's recorded inputs)
/// with the oracle. Returns (outputs, flipped outputs, vectors, vectors at another level).
fn check(be: &mut dyn Backend, rec: &Recorder, layer: &AnalogLayer, x: &[f32], batch: usize, io: &Periphery, key: [u32; 2]) -> (usize, usize, usize, usize) {
    let m = &layer.mapped;
    let (n_in, n_out) = (m.n_in as usize, m.n_out as usize);
    let (tin, tout) = (m.tiles_in as usize, m.tiles_out as usize);
    let out_step = aihwkit_res(io.out_res_bits, io.out_bound);
    let (mut outs, mut flips, mut vectors, mut level_flips) = (0, 0, 0, 0);
    let gemm = |s: Stage| matches!(s, Stage::Mvm | Stage::MvmNarrow | Stage::MvmFull);
    for d in rec.log.iter().filter(|d| d.stage == Stage::Bound) {
        // Level 0 of every vector (`mvm`, or `mvm_full` on the full path), level 1 of the vectors
        // it flagged (its second pass), `bound` from level 2: each replayed on `be` from the
        // twin's recorded inputs.
        let mut pass = |level: u32| {
            let want = StageParams { layer: LayerParams { bm_pass: level, ..d.params.layer }, ..d.params };
            rec.log.iter().rev().find(|e| gemm(e.stage) && e.params == want).map(|e| replay(be, e))
        };
        let mo0 = pass(0).expect("a GEMM pass at level 0 before `bound`");
        // Without bound management there is no level-1 pass (and nothing is flagged).
        let mo1 = pass(1).unwrap_or_else(|| mo0.clone());
        let in_gemm = redo_in_gemm(&d.params.layer, &mo0[5]);
        let trials = d.params.layer.trials as usize;
        let bound_out = replay(be, d);
        let dac =
            rec.log.iter().rev().find(|e| e.stage == Stage::Dac && e.params.layer.bm_pass == 0 && e.params.layer.trial_offset == d.params.layer.trial_offset);
        let nm = replay(be, dac.expect("a `dac` pass before `bound`"))[5].clone();
        let ycodes = [codes(&mo0[3], out_step), codes(&mo1[3], out_step), codes(&bound_out[6], out_step)];
        for z in 0..trials {
            let trial = d.params.layer.trial_offset + z as u32;
            for s in 0..batch {
                for to in 0..tout {
                    for ti in 0..tin {
                        let tile = to * tin + ti;
                        let (r0, nr) = split(n_out, tout, to);
                        let (c0, nc) = split(n_in, tin, ti);
                        let w: Vec<Vec<f64>> = (r0..r0 + nr).map(|o| (c0..c0 + nc).map(|k| m.w_norm[o * n_in + k] as f64).collect()).collect();
                        let xs: Vec<f64> = (c0..c0 + nc).map(|k| x[s * n_in + k] as f64).collect();
                        let v = oracle(io, &w, &xs, m.tiles[tile].input_range as f64, r0 as u32, s as u32, trial, (to as u32, ti as u32), key);
                        let vi = (z * batch + s) * tin * tout + tile;
                        vectors += 1;
                        // `dac`'s scale of the slice (the first layer's input is shared: stored
                        // once, as trial 0's).
                        let got = f32s(&nm)[s * tin + ti] as f64;
                        assert!((got - v.scale).abs() <= 1e-6 * v.scale, "vector {vi}: input scale {got}, oracle {}", v.scale);
                        let base = (z * tin + ti) * batch * n_out + s * n_out + r0;
                        let mut compare = |got: &[i64], want: &[i64]| {
                            for (g, w) in got.iter().zip(want) {
                                outs += 1;
                                if g != w {
                                    flips += 1;
                                    assert!((g - w).abs() <= 1, "vector {vi}: code {g}, oracle {w}");
                                }
                            }
                        };
                        // Level 0 of every vector, and its saturation flag.
                        compare(&ycodes[0][base..base + nr], &v.codes0);
                        // Flagged for a redo: saturated, and a reduction of 2 is allowed.
                        let flagged = mo0[4][vi] & 1 != 0;
                        if flagged != (v.sat0 && !bm_stops(io, 0)) {
                            level_flips += 1;
                        }
                        // The level the backend's passes end this vector at: the GEMM's second
                        // pass redoes level 1 when enough vectors were flagged, else `bound`
                        // redoes them from level 1.
                        let level = if !flagged {
                            0
                        } else if in_gemm && mo1[4][vi] & 2 == 0 {
                            1
                        } else {
                            bound_out[7][vi]
                        };
                        if level != v.level {
                            level_flips += 1;
                            continue;
                        }
                        if level > 0 {
                            let from = if in_gemm { level.min(2) as usize } else { 2 };
                            compare(&ycodes[from][base..base + nr], &v.codes);
                        }
                    }
                }
            }
        }
    }
    (outs, flips, vectors, level_flips)
}

fn run_case(name: &str, io: Periphery, min_levels: usize) {
    run_case_with_ranges(name, io, min_levels, &[]);
}

/// As `run_case`, with the layer's input ranges (one, or one per input tile; none when empty).
fn run_case_with_ranges(name: &str, io: Periphery, min_levels: usize, ranges: &[f32]) {
    let (n_out, n_in, batch) = (37usize, 70usize, 24usize);
    // Raw weights in the tile (aihwkit's mapping), ragged 2 x 2 tiles of 35 inputs. Rows 0..8
    // are all positive (0.6..1), so inputs of ones drive them to about 28 against the ADC bound 12:
    // saturated at levels 0 and 1, resolved at level 2; half ones, resolved at level 1.
    let u = aimc::rng::uniform_signed(n_out * n_in, 71);
    let w: Vec<f32> = (0..n_out * n_in).map(|i| if i / n_in < 8 { 0.8 + 0.2 * u[i] } else { 0.6 * u[i] }).collect();
    let mut mapped = MappedMatrix::new(&w, n_out as u32, n_in as u32, TileShape { max_in: 40, max_out: 20 }, 0.0);
    if !ranges.is_empty() {
        mapped.set_input_ranges(ranges, "input_range").unwrap();
    }
    let layer = AnalogLayer { mapped, bias: vec![0.0; n_out], activation: 0, conv: None, links: Default::default(), batchnorm: None };
    // Samples: s % 4 == 3 all ones; s % 4 == 2 ones on even inputs; sample 1 at the DAC rails and
    // on rounding ties of the exact step (±1, 0.5); sample 5 all zero; sample 9 zero on the first
    // input tile only; the rest random.
    let u = aimc::rng::uniform_signed(batch * n_in, 72);
    let x: Vec<f32> = (0..batch * n_in)
        .map(|i| {
            let (s, k) = (i / n_in, i % n_in);
            match (s, s % 4) {
                (1, _) => [1.0, -1.0, 0.5][k % 3],
                (5, _) => 0.0,
                (9, _) if k < 35 => 0.0,
                (_, 3) => 1.0,
                (_, 2) if k % 2 == 0 => 1.0,
                _ => u[i],
            }
        })
        .collect();
    let key = aimc::rng::key(5, 0);
    let cfg = RunConfig {
        reads_per_programming: 1,
        device: DeviceModel::ideal(),
        periphery: io.clone(),
        gdc: Gdc::Off,
        key,
        trials: 3,
        first_trial: 2,
        times: vec![1.0],
        max_chunk: 8,
        layer_noise: Vec::new(),
    };
    let mut rec = Recorder::new();
    run_outputs(&mut rec, std::slice::from_ref(&layer), &x, batch as u32, &cfg, &mut |_| {}).unwrap();
    let mut backends: Vec<(&str, Box<dyn Backend>)> = vec![("twin", Box::new(CpuBackend::new(2, 64))), ("fast CPU", Box::new(CpuBackend::fast(2)))];
    if let Some(g) = gpu(64) {
        backends.push(("GPU", Box::new(g)));
    }
    for (bname, mut be) in backends {
        let (outs, flips, vectors, level_flips) = check(be.as_mut(), &rec, &layer, &x, batch, &io, key);
        eprintln!("{name} {bname}: {flips} of {outs} codes, {level_flips} of {vectors} levels off");
        assert!(outs > 1000 && vectors == 3 * batch * 4, "{name} {bname}: {outs} outputs, {vectors} vectors compared");
        assert!(flips as f64 <= FLIP_FRACTION * outs as f64, "{name} {bname}: {flips} of {outs} ADC codes differ from the oracle");
        assert!(
            level_flips as f64 <= LEVEL_FLIP_FRACTION * vectors as f64 + 1.0,
            "{name} {bname}: {level_flips} of {vectors} vectors at another bound-management level"
        );
    }
    // The inputs reach several bound-management levels.
    let levels: std::collections::BTreeSet<u32> = rec.log.iter().filter(|d| d.stage == Stage::Bound).flat_map(|d| d.after[7].clone()).collect();
    assert!(levels.len() >= min_levels, "{name}: levels reached {levels:?}");
}

#[test]
fn mvm_and_bound_match_the_f64_periphery_oracle() {
    run_case("defaults", Periphery::default(), 3);
}

#[test]
fn full_periphery_path_matches_the_oracle() {
    let io = Periphery { ir_drop: 1.0, ir_drop_g_ratio: 200.0, w_noise: 0.0175, w_noise_type: WeightNoiseType::PcmRead, ..Periphery::default() };
    // The strong IR drop pulls the largest outputs down: fewer levels are needed.
    run_case("IR drop + PCM-read weight noise", io.clone(), 2);
    run_case("additive weight noise", Periphery { w_noise_type: WeightNoiseType::AdditiveConstant, ..io }, 2);
}

/// With max_bm_factor = 0 nothing is redone (aihwkit stops once the reduction exceeds the factor,
/// and 1 > 0 after the first pass): saturated outputs stay clipped at level 0, on both paths. A
/// small max_bm_res does the same through the DAC's limit (0.01 / (2/126) = 0.63 < 1), as a 3-bit
/// DAC does at the default 0.25 (not run here: sample 1's DAC ties at 3 bits fall the other way in
/// f32 than in the oracle's f64; `crossbar::bm_last_reduction` is tested for it).
#[test]
fn no_redo_when_the_first_reduction_exceeds_the_limits() {
    let plain = Periphery { max_bm_factor: 0.0, ..Periphery::default() };
    run_case("max_bm_factor 0", plain.clone(), 1);
    run_case("max_bm_factor 0, full path", Periphery { w_noise: 0.0175, w_noise_type: WeightNoiseType::PcmRead, ..plain }, 1);
    run_case("max_bm_res 0.01", Periphery { max_bm_res: 0.01, ..Periphery::default() }, 1);
}

/// With max_bm_factor = 1 aihwkit still redoes once (1 is not above 1; 2 is): saturated vectors end
/// at level 1, never beyond.
#[test]
fn one_redo_at_max_bm_factor_one() {
    run_case("max_bm_factor 1", Periphery { max_bm_factor: 1.0, ..Periphery::default() }, 2);
}

/// aihwkit's learned input ranges (`pre_post.input_range`, one per tile) with each noise
/// management: inputs clipped to ±r and divided by r before it, on both input tiles with their own
/// range (0.8 clips the rails sample and the ones; 3 clips nothing), and the `constant` scale and
/// abs-max's saturation at `nm_thres` (StandardHWATrainingPreset's `CONSTANT`, nm_thres 1).
#[test]
fn input_ranges_and_noise_management_match_the_oracle() {
    let none = Periphery { noise_management: NoiseManagement::None, ..Periphery::default() };
    run_case_with_ranges("input ranges, no noise management", none.clone(), 2, &[0.8, 3.0]);
    run_case_with_ranges("one input range, abs-max", Periphery::default(), 2, &[0.8]);
    let constant = Periphery { noise_management: NoiseManagement::Constant, nm_thres: 1.0, ..none.clone() };
    run_case_with_ranges("input ranges, constant 1", constant.clone(), 2, &[0.8, 3.0]);
    run_case_with_ranges(
        "input ranges, constant 2, full path",
        Periphery { nm_thres: 2.0, w_noise: 0.0175, w_noise_type: WeightNoiseType::PcmRead, ..constant },
        1,
        &[0.8, 3.0],
    );
    run_case_with_ranges("abs-max saturated at 0.5", Periphery { nm_thres: 0.5, ..Periphery::default() }, 2, &[0.8, 3.0]);
    run_case("abs-max saturated at 0.5, no ranges", Periphery { nm_thres: 0.5, ..Periphery::default() }, 2);
}

/// aihwkit's `inp_noise` (rpucuda `prepareInput`): a normal per input line of each tile (each
/// output tile its own) and pass, after the DAC's rounding and clipping, before the MVM and its
/// IR-drop and weight-noise sums; the all-zero slices (samples 5 and 9) keep the scale 1 and pass
/// their noise on. Alone, with the full path's other terms, and with input ranges.
#[test]
fn input_noise_matches_the_oracle() {
    let io = Periphery { inp_noise: 0.05, ..Periphery::default() };
    run_case("input noise", io.clone(), 3);
    run_case(
        "input noise, IR drop + PCM-read weight noise",
        Periphery { ir_drop: 1.0, ir_drop_g_ratio: 200.0, w_noise: 0.0175, w_noise_type: WeightNoiseType::PcmRead, ..io.clone() },
        2,
    );
    run_case_with_ranges("input noise, input ranges", io, 2, &[0.8, 3.0]);
}
