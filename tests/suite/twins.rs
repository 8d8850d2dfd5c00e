//! Each GPU stage against its CPU twin on the same inputs, within the named tolerances of
//! `aimc::tolerances`. A whole plan runs on the CPU twins under a recorder; every dispatch is then
//! replayed on the GPU from the recorded inputs and each written buffer compared.

use crate::common;

use crate::common::*;
use aimc::crossbar::{Gdc, MappedMatrix, Periphery, Scaling, TileShape, WeightNoiseType};
use aimc::device::DeviceModel;
use aimc::engine::plan::{self, AnalogLayer, RunConfig};
use aimc::engine::stages::{Mulhi, Stage, REDO_GEMM_SHARE};
use aimc::engine::Backend;
use aimc::tolerances::*;

pub(crate) fn weights(n: usize, seed: u64) -> Vec<f32> {
    aimc::rng::uniform_signed(n, seed)
}

pub(crate) fn cfg(gdc: Gdc, trials: u32, times: Vec<f64>) -> RunConfig {
    RunConfig {
        reads_per_programming: 1,
        device: DeviceModel::pcm(),
        periphery: Periphery::default(),
        gdc,
        key: aimc::rng::key(42, 0),
        trials,
        times,
        max_chunk: 5,
        first_trial: 0,
        layer_noise: Vec::new(),
    }
}

/// How a written binding is compared.
enum Cmp {
    Exact,
    Abs(f32),
    /// Converter outputs (`Grid`): bit-equal, or at most `max_flips` of them exactly one step
    /// apart. The inputs are byte-identical, so a flip needs a pre-ADC (pre-DAC) value within
    /// float error of a rounding boundary; for the ADC that error is bounded on its own
    /// (`MVM_PRE_ADC_ABS`, checked by replaying without the ADC).
    Quantised(Grid),
    Rel(f32),
    /// `drift`'s GDC readout partials: sums of 256 ADC readouts of drifted weights each. Within
    /// `tol` (float error of the sum), except a share `frac` whose readouts flipped: at most one ADC
    /// step of the case further.
    Readout {
        tol: f32,
        frac: f64,
    },
}

/// Which converter's grid a binding lies on; the step is the dispatch's own (`io.out_step`,
/// `io.inp_step`), the exact f32 the quantiser divides by.
#[derive(Clone, Copy)]
enum Grid {
    Adc,
    Dac,
}

fn compare(d: &Dispatch, binding: usize, cpu: &[u32], gpu: &[u32], how: &Cmp) {
    let stage = d.stage;
    assert_eq!(cpu.len(), gpu.len());
    let name = stage.name();
    match how {
        Cmp::Exact => {
            for (i, (c, g)) in cpu.iter().zip(gpu).enumerate() {
                assert_eq!(c, g, "stage {name} binding {} index {i}: cpu {c} gpu {g}", binding + 1);
            }
        }
        Cmp::Abs(tol) | Cmp::Rel(tol) => {
            let rel = matches!(how, Cmp::Rel(_));
            for (i, (c, g)) in f32s(cpu).iter().zip(f32s(gpu)).enumerate() {
                let bound = if rel { tol * c.abs().max(1e-3) } else { *tol };
                assert!((c - g).abs() <= bound, "stage {name} binding {} index {i}: cpu {c} gpu {g} tol {bound}", binding + 1);
            }
        }
        Cmp::Readout { tol, frac } => {
            let (c, g) = (f32s(cpu), f32s(gpu));
            let step = d.params.io.out_step;
            let mut off = 0usize;
            for i in 0..c.len() {
                if (c[i] - g[i]).abs() > *tol {
                    off += 1;
                    assert!(
                        (c[i] - g[i]).abs() <= step + tol,
                        "stage {name} binding {} index {i}: cpu {} gpu {} (one ADC step {step} + {tol})",
                        binding + 1,
                        c[i],
                        g[i]
                    );
                }
            }
            assert!((off as f64) <= frac * c.len() as f64 + 1.0, "stage {name} binding {}: {off} of {} values differ by more than {tol}", binding + 1, c.len());
        }
        Cmp::Quantised(grid) => {
            let step = match grid {
                Grid::Adc => d.params.io.out_step,
                Grid::Dac => d.params.io.inp_step,
            };
            let (c, g) = (f32s(cpu), f32s(gpu));
            let what = format!("stage {name} binding {} (cpu vs gpu)", binding + 1);
            if step == 0.0 {
                // No converter (0 bits, or no ADC bound): the values themselves, pre-ADC.
                compare(d, binding, cpu, gpu, &Cmp::Abs(MVM_PRE_ADC_ABS));
                return;
            }
            let flips = grid_flips(&what, &c, &g, step);
            assert!(flips <= max_flips(c.len()), "{what}: {flips} of {} values one step of {step} apart", c.len());
        }
    }
}

/// The pre-ADC values of a GEMM stage (`mvm`, `mvm_narrow`, `bound`, `program_mvm`): the recorded
/// dispatch replayed without the ADC on the twin and on the GPU, within `MVM_PRE_ADC_ABS`.
fn compare_pre_adc(d: &Dispatch, gpu: &mut dyn Backend) {
    let Some(&(b, _)) = outputs(d.stage).first() else { return };
    if d.params.io.out_step == 0.0 || !matches!(d.stage, Stage::Mvm | Stage::MvmNarrow | Stage::MvmFull | Stage::Bound | Stage::ProgramMvm) {
        return;
    }
    let raw = without_adc(d);
    let (c, g) = (replay(&mut cpu(), &raw), replay(gpu, &raw));
    compare(&raw, b, &c[b], &g[b], &Cmp::Abs(MVM_PRE_ADC_ABS));
}

/// The written bindings of each stage and how to compare them (index into the binding list).
fn outputs(stage: Stage) -> Vec<(usize, Cmp)> {
    match stage {
        Stage::Program => vec![(2, Cmp::Abs(WEIGHT_ABS)), (3, Cmp::Abs(WEIGHT_ABS))],
        Stage::Drift => vec![(3, Cmp::Abs(WEIGHT_ABS)), (4, Cmp::Readout { tol: 256.0 * WEIGHT_ABS, frac: 0.05 })],
        Stage::Gdc => vec![(4, Cmp::Rel(ALPHA_REL))],
        Stage::Dac => vec![(4, Cmp::Quantised(Grid::Dac)), (5, Cmp::Exact)],
        Stage::Mvm | Stage::MvmNarrow | Stage::MvmFull => vec![(3, Cmp::Quantised(Grid::Adc)), (5, Cmp::Exact), (6, Cmp::Exact)],
        Stage::Bound => vec![(6, Cmp::Quantised(Grid::Adc)), (7, Cmp::Exact)],
        Stage::Combine => vec![(6, Cmp::Abs(COMBINE_ABS))],
        Stage::Accuracy => vec![(2, Cmp::Exact)],
        Stage::RowCorrect => vec![(2, Cmp::Exact)],
        Stage::WeightError => vec![(4, Cmp::Abs(256.0 * WEIGHT_ABS))],
        Stage::ProgramMvm => vec![(3, Cmp::Quantised(Grid::Adc))],
        Stage::Rng => vec![(0, Cmp::Exact), (1, Cmp::Abs(NORMAL_ABS))],
        Stage::PeakPhilox => vec![(0, Cmp::Exact)],
        Stage::PeakFma => vec![(0, Cmp::Rel(1e-4))],
        // Contracting chains: the shader's exp and the twin's differ by a few ulp per step and
        // the contraction keeps the difference from growing.
        Stage::PeakExp => vec![(0, Cmp::Rel(1e-4))],
        Stage::FeatureMap => vec![(2, Cmp::Rel(KERNEL_REL))],
        Stage::KernelError => vec![(2, Cmp::Rel(KERNEL_REL))],
        Stage::AttentionKv => vec![(2, Cmp::Rel(KERNEL_REL))],
        Stage::AttentionOut => vec![(4, Cmp::Rel(KERNEL_REL))],
        // A gather of f32 values: bit for bit.
        Stage::Im2col => vec![(1, Cmp::Exact)],
        Stage::Pool => vec![(1, Cmp::Rel(POOL_REL))],
        Stage::Embed => vec![(3, Cmp::Abs(SEQ_ABS))],
        Stage::Layernorm => vec![(2, Cmp::Abs(SEQ_ABS))],
        Stage::Residual => vec![(1, Cmp::Abs(SEQ_ABS))],
        Stage::AttentionSoftmax => vec![(4, Cmp::Abs(SEQ_ABS))],
        Stage::RowNorms => vec![(1, Cmp::Rel(KERNEL_REL))],
        Stage::LinearKv => vec![(3, Cmp::Rel(KERNEL_REL))],
        Stage::LinearOut => vec![(5, Cmp::Abs(SEQ_ABS))],
        Stage::SeqPool => vec![(2, Cmp::Abs(SEQ_ABS))],
        Stage::MoeGate => vec![(1, Cmp::Abs(SEQ_ABS))],
        Stage::MoeCombine => vec![(2, Cmp::Abs(SEQ_ABS))],
        Stage::TokenNll => vec![(3, Cmp::Rel(NLL_REL)), (4, Cmp::Exact)],
        // Integers from comparisons of the same f32 sums: bit for bit.
        Stage::AnswerSpan => vec![(4, Cmp::Exact), (5, Cmp::Exact)],
        // A copy of f32 values: bit for bit.
        Stage::HeadOut => vec![(1, Cmp::Exact)],
    }
}

/// Either block shape of the noisy GEMM, or its full-periphery form.
fn is_mvm(s: Stage) -> bool {
    matches!(s, Stage::Mvm | Stage::MvmNarrow | Stage::MvmFull)
}

pub(crate) fn replay_all(rec: &Recorder, gpu: &mut dyn Backend) -> Vec<Stage> {
    let mut seen = Vec::new();
    for d in &rec.log {
        let got = replay(gpu, d);
        for (b, how) in outputs(d.stage) {
            compare(d, b, &d.after[b], &got[b], &how);
        }
        compare_pre_adc(d, gpu);
        if !seen.contains(&d.stage) {
            seen.push(d.stage);
        }
    }
    seen
}

#[test]
fn rng_stream_is_bit_exact_on_gpu() {
    let Some(mut g) = gpu(64) else { return };
    // Both mulhi variants. Every Vulkan, Metal and DX12 adapter aimc targets has 64-bit shader
    // integers (lavapipe does), so under REQUIRE_GPU=1 the u64 variant must run there; only wgpu's
    // GL backend, which never offers SHADER_INT64, skips it (reported past the capture).
    for mulhi in Mulhi::ALL {
        if let Err(e) = g.set_mulhi(mulhi) {
            let backend = g.adapter().backend;
            assert!(
                std::env::var("REQUIRE_GPU").as_deref() != Ok("1") || backend == "Gl",
                "REQUIRE_GPU=1 but the {} variant cannot run on this {backend} adapter: {e}",
                mulhi.name()
            );
            use std::io::Write;
            let _ = writeln!(std::io::stderr().lock(), "SKIPPED the {} variant of rng_stream_is_bit_exact_on_gpu on the {backend} adapter: {e}", mulhi.name());
            continue;
        }
        rng_stream_bit_exact(&mut g, mulhi);
    }
}

fn rng_stream_bit_exact(g: &mut aimc::engine::gpu::GpuBackend, mulhi: Mulhi) {
    let mut p = aimc::engine::layout::StageParams::default();
    p.layer.trials = 5000;
    p.layer.trial_offset = 7;
    p.layer.layer = 0x0003_0201;
    p.layer.key0 = 0xDEAD_BEEF;
    p.layer.key1 = 0x1234_5678;
    let words = g.create("w", 20000);
    let normals = g.create("n", 20000);
    g.dispatch(Stage::Rng, &p, &[words, normals], plan::grid(5000, 64));
    let gw = g.download(words).unwrap();
    let gn = f32s(&g.download(normals).unwrap());
    for i in 0..5000u32 {
        let want = aimc::rng::philox4x32_10([i, 7, 0x0003_0201, 0], [0xDEAD_BEEF, 0x1234_5678]);
        assert_eq!(&gw[i as usize * 4..i as usize * 4 + 4], &want, "block {i} ({})", mulhi.name());
        let wn = aimc::rng::normal4(want);
        for k in 0..4 {
            let (a, b) = (gn[i as usize * 4 + k], wn[k]);
            assert!((a - b).abs() <= NORMAL_ABS * b.abs().max(1.0), "normal {i}.{k}: gpu {a} cpu {b}");
        }
    }
    // The all-zero known-answer vector through the GPU as well.
    p.layer = Default::default();
    p.layer.trials = 1;
    g.dispatch(Stage::Rng, &p, &[words, normals], [1, 1, 1]);
    assert_eq!(&g.download(words).unwrap()[..4], &[0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8], "{}", mulhi.name());
}

#[test]
fn weight_error_stages_match_twins() {
    let w = weights(70 * 90, 1);
    let m = MappedMatrix::new(&w, 70, 90, TileShape { max_in: 48, max_out: 32 }, 1.0);
    let mut rec = Recorder::new();
    for gdc in [Gdc::Readout, Gdc::ExactReference] {
        plan::run_weight_error(&mut rec, &m, &cfg(gdc, 7, vec![0.0, 3600.0, 3.15e7])).unwrap();
    }
    let mut both = cfg(Gdc::Readout, 3, vec![86400.0]);
    both.device.drift_path = aimc::device::DriftPath::BothDevices;
    plan::run_weight_error(&mut rec, &m, &both).unwrap();
    // Per-column GDC on per-column scales: ragged tiles (24, 23, 23 rows: empty row slots), and
    // rows of 300 inputs that span two 256-element chunks each.
    let cw = MappedMatrix::new(&w, 70, 90, TileShape { max_in: 48, max_out: 32 }, Scaling { omega: 1.0, columnwise: true });
    let wide = MappedMatrix::new(&weights(20 * 600, 8), 20, 600, TileShape { max_in: 512, max_out: 16 }, Scaling { omega: 1.0, columnwise: true });
    for gdc in [Gdc::ReadoutPerColumn, Gdc::ExactReferencePerColumn] {
        plan::run_weight_error(&mut rec, &cw, &cfg(gdc, 4, vec![0.0, 3.15e7])).unwrap();
        plan::run_weight_error(&mut rec, &wide, &cfg(gdc, 3, vec![3600.0])).unwrap();
    }
    // Per-tile device multipliers (3D tiers): every tile its own programming, drift and read scale.
    let mut tiered = m.clone();
    tiered.set_tile_noise(|t| [0.5 + (t.row_start % 3) as f32, 2.0 - (t.col_start % 2) as f32, 1.5]);
    plan::run_weight_error(&mut rec, &tiered, &cfg(Gdc::Readout, 4, vec![86400.0])).unwrap();
    // AFM's per-weight programming (OD/TD cubics, zero threshold) on per-row scales, and two
    // levels of Monte Carlo (3 reads per programming; the programming and GDC-baseline streams
    // keyed by the programming).
    let afm = RunConfig { device: DeviceModel::afm(), periphery: Periphery::perfect(), ..cfg(Gdc::Off, 5, vec![0.0]) };
    plan::run_weight_error(&mut rec, &cw, &afm).unwrap();
    let reads = RunConfig { reads_per_programming: 3, first_trial: 2, ..cfg(Gdc::Readout, 7, vec![0.0, 86400.0]) };
    plan::run_weight_error(&mut rec, &m, &reads).unwrap();
    // Measured tables: σ_prog and Q_s (two knots per uniform entry, the read table after the
    // programming table's entries) and ν read from the uniform's knots.
    let measured = DeviceModel {
        prog_table: Some(aimc::device::ProgTable { g: vec![0.0, 2.0, 7.0, 13.0, 25.0], sigma: vec![0.3, 1.2, 0.7, 1.0, 0.4] }),
        read_table: Some(aimc::device::ReadTable { g: vec![0.0, 5.0, 25.0], q_s: vec![0.1, 0.03, 0.05] }),
        drift_table: Some(aimc::device::DriftTable { g: vec![0.0, 12.0, 25.0], nu_mean: vec![0.08, 0.05, 0.03], nu_std: vec![0.03, 0.02, 0.01] }),
        ..DeviceModel::pcm()
    };
    plan::run_weight_error(&mut rec, &m, &RunConfig { device: measured, ..cfg(Gdc::Readout, 4, vec![0.0, 86400.0]) }).unwrap();
    // A relaxation table (ReRAM): the first time's quartic programs, each read is a fresh draw
    // about the stored target at its table time (`relax_at`), re-converted.
    plan::run_weight_error(&mut rec, &m, &RunConfig { device: DeviceModel::reram(), ..cfg(Gdc::Readout, 4, vec![1.0, 172800.0]) }).unwrap();
    // One device per weight with a log-time relaxation (CMO ReRAM): the signed range of the
    // programmed weights in `progmax`'s two words (order keys), t = 0 as programmed.
    plan::run_weight_error(&mut rec, &m, &RunConfig { device: DeviceModel::reram_cmo(), ..cfg(Gdc::Readout, 4, vec![0.0, 3600.0, 3.15e7]) }).unwrap();
    // Several conductance pairs per weight: two (HERMES, significance 1 and 3) and four (the
    // third and fourth pairs' read noise from the second block, stuck devices), with per-tile
    // multipliers.
    let two = DeviceModel { pair_significance: vec![1.0, 3.0], ..DeviceModel::hermes() };
    plan::run_weight_error(&mut rec, &m, &RunConfig { device: two, ..cfg(Gdc::Readout, 4, vec![0.0, 86400.0]) }).unwrap();
    let four = DeviceModel { pair_significance: vec![1.0, 1.0, 2.0, 4.0], stuck_set: 0.02, stuck_reset: 0.04, ..DeviceModel::pcm() };
    // Stuck devices on one pair: at g_max or 0 µS, exponent 0, from the fault stream.
    let stuck = DeviceModel { stuck_set: 0.03, stuck_reset: 0.05, ..DeviceModel::hermes() };
    plan::run_weight_error(&mut rec, &m, &RunConfig { device: stuck, ..cfg(Gdc::Readout, 4, vec![0.0, 3.15e7]) }).unwrap();
    plan::run_weight_error(&mut rec, &tiered, &RunConfig { device: four, ..cfg(Gdc::ExactReference, 3, vec![3600.0, 3.15e7]) }).unwrap();
    let Some(mut g) = gpu(256) else { return };
    let seen = replay_all(&rec, &mut g);
    assert_eq!(seen, vec![Stage::Program, Stage::Drift, Stage::Gdc, Stage::WeightError]);
}

fn mlp() -> Vec<AnalogLayer> {
    let shape = TileShape { max_in: 16, max_out: 20 };
    let l1 = MappedMatrix::new(&weights(24 * 37, 2), 24, 37, shape, 1.0);
    let l2 = MappedMatrix::new(&weights(5 * 24, 3), 5, 24, shape, 1.0);
    vec![
        AnalogLayer { mapped: l1, bias: weights(24, 4), activation: 1, conv: None, links: Default::default(), batchnorm: None },
        AnalogLayer { mapped: l2, bias: weights(5, 5), activation: 0, conv: None, links: Default::default(), batchnorm: None },
    ]
}

#[test]
fn classifier_stages_match_twins() {
    let layers = mlp();
    let batch = 70;
    // Large inputs make some outputs saturate, so bound management is exercised.
    let x: Vec<f32> = weights(batch * 37, 6).iter().map(|v| v * 3.0).collect();
    let labels: Vec<u32> = (0..batch as u32).map(|i| i % 5).collect();
    let mut rec = Recorder::new();
    let mut c = cfg(Gdc::Readout, 6, vec![1.0, 86400.0]);
    c.periphery.out_bound = 2.0;
    plan::run_classifier(&mut rec, &layers, &x, &labels, &c).unwrap();
    let flagged: u32 = rec.log.iter().filter(|d| is_mvm(d.stage)).map(|d| d.after[4].iter().sum::<u32>()).sum();
    assert!(flagged > 0, "the test input should saturate some ADC outputs");
    // The full path (IR drop and weight noise on).
    let mut c2 = cfg(Gdc::Off, 3, vec![60.0]);
    c2.periphery.ir_drop = 1.0;
    // A strong IR drop, so its term is far above the comparison tolerance (at the default ratio
    // it is ~1e-4 on these small tiles).
    c2.periphery.ir_drop_g_ratio = 200.0;
    c2.periphery.w_noise = 0.0175;
    c2.periphery.w_noise_type = aimc::crossbar::WeightNoiseType::PcmRead;
    plan::run_classifier(&mut rec, &layers, &x, &labels, &c2).unwrap();
    // Per-column GDC and per-column digital scales (per-output factors in `combine`).
    let cw: Vec<AnalogLayer> = layers
        .iter()
        .map(|l| AnalogLayer {
            mapped: MappedMatrix::new(
                &l.mapped.w,
                l.mapped.n_out,
                l.mapped.n_in,
                TileShape { max_in: 16, max_out: 20 },
                Scaling { omega: 1.0, columnwise: true },
            ),
            ..l.clone()
        })
        .collect();
    plan::run_classifier(&mut rec, &cw, &x, &labels, &cfg(Gdc::ReadoutPerColumn, 3, vec![86400.0])).unwrap();
    // Input noise after the DAC (the full path), under GDC whose readouts `gdc` then takes with
    // each row's sum of squares: per tile and per column, the baseline at the first time.
    for (gdc, l) in [(Gdc::Readout, &layers), (Gdc::ReadoutPerColumn, &cw)] {
        let mut c3 = cfg(gdc, 3, vec![60.0, 86400.0]);
        c3.periphery.inp_noise = 0.05;
        plan::run_classifier(&mut rec, l, &x, &labels, &c3).unwrap();
    }
    // Each sample's right trials (`row_counts`).
    plan::run_classifier_group(&mut rec, &layers, &x, &labels, &[cfg(Gdc::Readout, 3, vec![60.0])], true, &mut |_| {}).unwrap();
    let Some(mut g) = gpu(256) else { return };
    let seen = replay_all(&rec, &mut g);
    for s in [
        Stage::Program,
        Stage::Drift,
        Stage::Gdc,
        Stage::Dac,
        Stage::MvmNarrow,
        Stage::MvmFull,
        Stage::Bound,
        Stage::Combine,
        Stage::Accuracy,
        Stage::RowCorrect,
    ] {
        assert!(seen.contains(&s), "stage {} was not exercised", s.name());
    }
}

#[test]
fn program_mvm_matches_twin() {
    let m = MappedMatrix::new(&weights(40 * 300, 7), 40, 300, TileShape { max_in: 512, max_out: 512 }, 1.0);
    let xq: Vec<f32> = weights(300, 8).iter().map(|v| (v * 63.0).round() / 63.0).collect();
    let mut rec = Recorder::new();
    plan::run_program_mvm(&mut rec, &m, &xq, &cfg(Gdc::Off, 9, vec![0.0])).unwrap();
    plan::run_program_mvm(&mut rec, &m, &xq, &RunConfig { reads_per_programming: 4, ..cfg(Gdc::Off, 9, vec![0.0]) }).unwrap();
    let Some(mut g) = gpu(256) else { return };
    replay_all(&rec, &mut g);
}

/// A GPU-side failure (here: a buffer over the adapter's size limit) comes back from the next
/// readback as an `EngineError` naming the adapter, not as a panic.
#[test]
fn gpu_errors_are_engine_errors() {
    let Some(mut g) = gpu(256) else { return };
    let fine = g.create("fine", 16);
    assert!(g.download(fine).is_ok());
    let too_big = (g.max_binding_bytes().max(1 << 30) / 4) as usize * 8;
    let _ = g.create("too big", too_big);
    let err = g.download(fine).expect_err("an oversized buffer must surface as an error");
    assert!(matches!(err, aimc::engine::EngineError::Device { .. }), "{err}");
}

/// Replays the recorded dispatches of `stages` on the GPU and compares every written binding with
/// the twin's (`outputs()`; for `mvm` also its saturation flags, exactly). Returns how many ran.
pub(crate) fn replay_stages(rec: &Recorder, gpu: &mut dyn Backend, stages: &[Stage]) -> usize {
    let mut n = 0;
    for d in rec.log.iter().filter(|d| stages.contains(&d.stage)) {
        let got = replay(gpu, d);
        for (b, how) in outputs(d.stage) {
            compare(d, b, &d.after[b], &got[b], &how);
        }
        compare_pre_adc(d, gpu);
        if is_mvm(d.stage) {
            compare(d, 4, &d.after[4], &got[4], &Cmp::Exact);
        }
        n += 1;
    }
    n
}

/// `mvm` (128 x 128 blocks, K in steps of 8), `mvm_narrow` (256 x 32 blocks, K in steps of 4,
/// tiles of at most 32 outputs) and `mvm_full` (64 x 64 blocks, both weight-noise types) against
/// their twins on ragged shapes: single elements, sizes off
/// every block and step multiple, several sample blocks, several output blocks, and tiles whose
/// first row and column are not multiples of 4.
#[test]
fn mvm_matches_twin_on_ragged_shapes() {
    let big = TileShape { max_in: 512, max_out: 512 };
    // (n_out, n_in, batch, tile shape, tiles_out, tiles_in)
    let cases = [
        (1, 1, 1, big, 1, 1),
        (3, 5, 7, big, 1, 1),
        (130, 70, 129, TileShape { max_in: 64, max_out: 100 }, 2, 2),
        (10, 64, 450, big, 1, 1),
        (259, 21, 9, TileShape { max_in: 16, max_out: 200 }, 2, 2),
        (100, 20, 400, big, 1, 1),
        (64, 30, 600, big, 1, 1),
        (50, 33, 257, TileShape { max_in: 16, max_out: 40 }, 2, 3),
        (33, 9, 1000, big, 1, 1),
        (8, 72, 700, big, 1, 1),
    ];
    let mut rec = Recorder::new();
    for (i, &(n_out, n_in, batch, shape, to, ti)) in cases.iter().enumerate() {
        let seed = 10 * (i as u64 + 1);
        let m = MappedMatrix::new(&weights(n_out * n_in, seed), n_out as u32, n_in as u32, shape, 1.0);
        assert_eq!((m.tiles_out, m.tiles_in), (to, ti), "case {i}");
        let layer = AnalogLayer { mapped: m, bias: weights(n_out, seed + 1), activation: 0, conv: None, links: Default::default(), batchnorm: None };
        let x = weights(batch * n_in, seed + 2);
        plan::run_outputs(&mut rec, std::slice::from_ref(&layer), &x, batch as u32, &cfg(Gdc::Readout, 2, vec![3600.0]), &mut |_| {}).unwrap();
        // The full periphery path's `mvm_full` (64 x 64 blocks) on the same shapes.
        let mut c = cfg(Gdc::Readout, 2, vec![3600.0]);
        c.periphery.ir_drop = 1.0;
        c.periphery.ir_drop_g_ratio = 200.0;
        c.periphery.w_noise = 0.0175;
        c.periphery.w_noise_type = if i % 2 == 0 { aimc::crossbar::WeightNoiseType::PcmRead } else { aimc::crossbar::WeightNoiseType::AdditiveConstant };
        plan::run_outputs(&mut rec, std::slice::from_ref(&layer), &x, batch as u32, &c, &mut |_| {}).unwrap();
        // Input noise staged with the inputs (every output block of a tile draws the same).
        c.periphery.inp_noise = 0.05;
        plan::run_outputs(&mut rec, &[layer], &x, batch as u32, &c, &mut |_| {}).unwrap();
    }
    // Several output blocks (`mvm`, `mvm_full`; `mvm_narrow` gets one) and several sample blocks.
    for stage in [Stage::Mvm, Stage::MvmNarrow, Stage::MvmFull] {
        let groups: Vec<[u32; 3]> = rec.log.iter().filter(|d| d.stage == stage).map(|d| d.groups).collect();
        assert!((stage == Stage::MvmNarrow || groups.iter().any(|g| g[0] > 1)) && groups.iter().any(|g| g[1] > 2), "{}: {groups:?}", stage.name());
    }
    let Some(mut g) = gpu(256) else { return };
    // Both passes of each case (the level-1 pass with bound management on).
    let passes = rec.log.iter().filter(|d| is_mvm(d.stage)).count();
    assert!(passes >= cases.len());
    assert_eq!(replay_stages(&rec, &mut g, &[Stage::Mvm, Stage::MvmNarrow, Stage::MvmFull]), passes);
}

/// Iterative bound management on vectors that saturate at several levels: positive weights and
/// inputs with 1 to 40 ones make the MVM outputs of a tile span 0.5 to 30 against an ADC bound of
/// 4, so vectors need reduction 1, 2, 4 or 8. `mvm`'s saturation flags, `bound`'s redone outputs
/// and the final reduction factors must match the twin.
#[test]
fn bound_management_levels_match_twin() {
    let (n_out, n_in, batch) = (20usize, 40usize, 80usize);
    let w: Vec<f32> = weights(n_out * n_in, 41).iter().map(|u| 0.75 + 0.25 * u).collect();
    let m = MappedMatrix::new(&w, n_out as u32, n_in as u32, TileShape { max_in: 64, max_out: 16 }, 1.0);
    assert_eq!((m.tiles_out, m.tiles_in), (2, 1));
    let layer = AnalogLayer { mapped: m, bias: vec![0.0; n_out], activation: 0, conv: None, links: Default::default(), batchnorm: None };
    let x: Vec<f32> = (0..batch * n_in).map(|i| if i % n_in <= (i / n_in) % n_in { 1.0 } else { 0.0 }).collect();
    let mut c = cfg(Gdc::Readout, 3, vec![60.0]);
    c.periphery.out_bound = 4.0;
    let mut rec = Recorder::new();
    plan::run_outputs(&mut rec, &[layer], &x, batch as u32, &c, &mut |_| {}).unwrap();
    // `mvm`'s two passes: every vector at level 0, then the flagged ones at level 1.
    let pass = |level: u32| rec.log.iter().filter(move |d| is_mvm(d.stage) && d.params.layer.bm_pass == level);
    assert_eq!((pass(0).count(), pass(1).count()), (1, 1));
    let flags = |level: u32, bit: u32| pass(level).map(|d| d.after[4].iter().filter(|&&f| f & bit != 0).count()).sum::<usize>();
    let (flagged, again) = (flags(0, 1), flags(1, 2));
    // Final reductions 2^level (level 0 for the vectors `bound` did not have to redo).
    let red: Vec<f32> = rec.log.iter().filter(|d| d.stage == Stage::Bound).flat_map(|d| d.after[7].iter().map(|&l| (1u32 << l) as f32)).collect();
    let vectors = 3 * batch * 2;
    assert_eq!(red.len(), vectors);
    let at = |r: f32| red.iter().filter(|&&v| v == r).count();
    let counted = |level: u32| pass(level).map(|d| d.after[5][level as usize] as usize).sum::<usize>();
    assert_eq!((counted(0), counted(1)), (flagged, again), "each pass counts its flagged vectors once");
    assert!(flagged > vectors / 2, "{flagged} of {vectors} vectors saturate at level 0");
    assert_eq!(flagged, vectors - at(1.0));
    assert_eq!(again, vectors - at(1.0) - at(2.0), "`bound` takes exactly the vectors still saturated at level 1");
    for r in [2.0, 4.0] {
        assert!(at(r) > 0, "no vector ended at reduction {r}: {red:?}");
    }
    let Some(mut g) = gpu(256) else { return };
    assert_eq!(replay_stages(&rec, &mut g, &[Stage::Dac, Stage::Mvm, Stage::MvmNarrow, Stage::Bound]), 5);
    // `bound`'s workgroups stride over the list: any grid gives the same result.
    for d in rec.log.iter().filter(|d| d.stage == Stage::Bound) {
        for groups in [[1, 1, 1], [3, 1, 1], [7, 2, 1]] {
            let got = replay(&mut g, &Dispatch { stage: d.stage, params: d.params, groups, before: d.before.clone(), after: vec![] });
            for (b, how) in outputs(Stage::Bound) {
                compare(d, b, &d.after[b], &got[b], &how);
            }
        }
    }
}

/// Bound management's level-1 pass on a hidden layer (inputs per trial), in both regimes. With at
/// least 1 / REDO_GEMM_SHARE of the vectors flagged, `dac` quantises again only the input slices
/// that a flagged vector reads (tiles (to, ti) for any output tile `to`) and `mvm` redoes only
/// the flagged vectors; with fewer, both passes leave every buffer as it was and `bound` redoes
/// the flagged vectors from level 1. Two output tiles and two input tiles, inputs that make some
/// vectors of some trials saturate and not others.
#[test]
fn level_one_pass_redoes_only_flagged_vectors() {
    let shape = TileShape { max_in: 16, max_out: 12 };
    let l1 = MappedMatrix::new(&weights(24 * 20, 51), 24, 20, shape, 1.0);
    let w2: Vec<f32> = weights(20 * 24, 52).iter().map(|u| 0.5 + 0.5 * u).collect();
    let l2 = MappedMatrix::new(&w2, 20, 24, shape, 1.0);
    assert_eq!((l2.tiles_out, l2.tiles_in), (2, 2));
    let layers = [
        AnalogLayer { mapped: l1, bias: vec![0.0; 24], activation: 1, conv: None, links: Default::default(), batchnorm: None },
        AnalogLayer { mapped: l2, bias: vec![0.0; 20], activation: 0, conv: None, links: Default::default(), batchnorm: None },
    ];
    let batch = 40;
    // Sample s scales its input by 1 + s / 8: the hidden activations, and with them the second
    // layer's outputs, grow along the batch.
    let x: Vec<f32> = weights(batch * 20, 53).iter().enumerate().map(|(i, &u)| u.abs() * (1.0 + (i / 20) as f32 / 8.0)).collect();
    let mut gpu_backend = gpu(256);
    // ADC bounds that flag a few of the hidden layer's vectors (left to `bound`), then many.
    for (out_bound, dense) in [(3.0, false), (2.2, true)] {
        let mut c = cfg(Gdc::Off, 4, vec![60.0]);
        c.periphery.out_bound = out_bound;
        let mut rec = Recorder::new();
        plan::run_outputs(&mut rec, &layers, &x, batch as u32, &c, &mut |_| {}).unwrap();
        let hidden = |d: &&Dispatch| d.params.layer.x_per_trial != 0;
        let dac1: Vec<&Dispatch> = rec.log.iter().filter(|d| d.stage == Stage::Dac && d.params.layer.bm_pass == 1).filter(hidden).collect();
        assert!(!dac1.is_empty());
        let (mut requantised, mut kept, mut moved) = (0, 0, 0);
        for d in &dac1 {
            let (before, after) = (f32s(&d.before[4]), f32s(&d.after[4]));
            let (tin, n_in) = (d.params.layer.tiles_in as usize, d.params.layer.n_in as usize);
            let (sat, nsat) = (&d.before[2], d.before[3][0] as usize);
            let vectors = d.params.layer.redo_vectors as usize;
            assert!(nsat > 0, "out_bound {out_bound}: no vector of the hidden layer saturated");
            assert_eq!(nsat * REDO_GEMM_SHARE as usize >= vectors, dense, "out_bound {out_bound}: {nsat} of {vectors} flagged");
            for v in 0..d.params.layer.trials as usize * batch {
                for ti in 0..tin {
                    let t = &layers[1].mapped.tiles[ti];
                    let cols = t.col_start as usize..(t.col_start + t.cols) as usize;
                    let changed = cols.clone().any(|k| before[v * n_in + k] != after[v * n_in + k]);
                    let flagged = (0..2).any(|to| sat[v * 2 * tin + to * tin + ti] & 1 != 0);
                    assert!((dense && flagged) || !changed, "vector {v} slice {ti}: requantised (flagged {flagged}, dense {dense})");
                    if flagged {
                        requantised += 1;
                        moved += usize::from(changed);
                    } else {
                        kept += 1;
                    }
                }
            }
        }
        assert!(requantised > 0 && kept > 0, "{requantised} slices read by flagged vectors, {kept} not: the inputs should flag some vectors only");
        assert_eq!(moved > 0, dense, "out_bound {out_bound}: {moved} slices requantised");
        // Left to `bound`, the GEMM's level-1 pass writes nothing and `bound` starts at level 1.
        for d in rec.log.iter().filter(|d| is_mvm(d.stage) && d.params.layer.bm_pass == 1).filter(hidden) {
            assert_eq!(d.before[3] == d.after[3] && d.before[6] == d.after[6], !dense, "out_bound {out_bound}: level-1 pass outputs");
        }
        let levels: Vec<u32> = rec.log.iter().filter(|d| d.stage == Stage::Bound).filter(hidden).flat_map(|d| d.after[7].clone()).collect();
        assert!(levels.contains(&1), "out_bound {out_bound}: no vector ended at level 1");
        let Some(g) = gpu_backend.as_mut() else { continue };
        let n = replay_stages(&rec, g, &[Stage::Dac, Stage::Mvm, Stage::MvmNarrow, Stage::Bound]);
        assert!(n >= 2 * dac1.len());
    }
}

/// `bound` on large tiles (300 x 300: more outputs and inputs than its workgroup has invocations),
/// with vectors redone at up to five levels (reduction 1 to 16) and many vectors per (trial,
/// tile), plain and on the full path, against the twin.
#[test]
fn bound_matches_twin_on_large_tiles() {
    let (n_out, n_in, batch) = (300usize, 600usize, 70usize);
    let w: Vec<f32> = weights(n_out * n_in, 43).iter().map(|u| 0.75 + 0.25 * u).collect();
    let m = MappedMatrix::new(&w, n_out as u32, n_in as u32, TileShape { max_in: 300, max_out: 512 }, 1.0);
    assert_eq!((m.tiles_out, m.tiles_in), (1, 2));
    let layer = AnalogLayer { mapped: m, bias: vec![0.0; n_out], activation: 0, conv: None, links: Default::default(), batchnorm: None };
    // Sample s has 1 + 4 (s mod 75) ones in each input tile: outputs from ~1 to ~300.
    let x: Vec<f32> = (0..batch * n_in).map(|i| if (i % n_in) % 300 <= 4 * ((i / n_in) % 75) { 1.0 } else { 0.0 }).collect();
    for full in [false, true] {
        let mut c = cfg(Gdc::Off, 2, vec![60.0]);
        c.periphery.out_bound = 4.0;
        if full {
            c.periphery.ir_drop = 1.0;
            c.periphery.ir_drop_g_ratio = 200.0;
            c.periphery.w_noise = 0.0175;
            c.periphery.w_noise_type = aimc::crossbar::WeightNoiseType::PcmRead;
        }
        let mut rec = Recorder::new();
        plan::run_outputs(&mut rec, std::slice::from_ref(&layer), &x, batch as u32, &c, &mut |_| {}).unwrap();
        let levels: Vec<u32> = rec.log.iter().filter(|d| d.stage == Stage::Bound).flat_map(|d| d.after[7].clone()).collect();
        let redone = levels.iter().filter(|&&l| l > 0).count();
        assert!(redone > 2 * 8, "full path {full}: only {redone} vectors redone");
        assert!(levels.iter().any(|&l| l >= 3), "full path {full}: no vector reached level 3");
        let Some(mut g) = gpu(256) else { return };
        // Both passes of `dac` and of `mvm` (three output blocks of 128) or `mvm_full` (five of
        // 64), then `bound` from level 2.
        assert_eq!(replay_stages(&rec, &mut g, &[Stage::Dac, Stage::Mvm, Stage::MvmFull, Stage::Bound]), 5, "full path {full}");
    }
}

/// The kernel stages against their twins: a kernel-error plan and causal and non-causal
/// attention plans recorded on the twins (ragged shapes: 37 rows, 5, 70 and 150 tokens, s = 13 and
/// 41, dv = 6 and 70, two or three heads, three trials in chunks; the larger ones span several
/// feature, column and token tiles of the tiled stages, none a multiple of a tile), every
/// dispatch replayed on the GPU with the same inputs.
#[test]
fn kernel_stages_match_twins() {
    use aimc::engine::layout::KernelParams;
    use aimc::engine::plan::{run_kernel, KernelReduction};
    // The recorder's workgroup size, so the recorded grids cover the same items on the GPU.
    let Some(mut gpu) = common::gpu(256) else {
        return;
    };
    let c = cfg(Gdc::Readout, 3, vec![3600.0, 1e7]);
    let cases = [
        (0u32, false, false, 0usize, 13usize, 6usize, 2usize),
        (3, true, false, 5, 13, 6, 2),
        (3, true, true, 70, 13, 6, 2),
        (4, true, true, 5, 13, 6, 2),
        (3, true, false, 150, 41, 70, 3),
        (3, true, true, 150, 41, 70, 3),
    ];
    for (map, attention, causal, seq, s, d, heads) in cases {
        let r = 2usize;
        let rows = if attention { 2 * heads * seq } else { 37 };
        let x = weights(rows * d, 11);
        let w: Vec<f32> = weights(s * d, 12).iter().cycle().take(s * r * d).copied().collect();
        let layer = AnalogLayer {
            mapped: MappedMatrix::new(&w, (s * r) as u32, d as u32, TileShape { max_in: 4, max_out: 16 }, 1.0),
            bias: vec![0.0; s * r],
            activation: 0,
            conv: None,
            links: Default::default(),
            batchnorm: None,
        };
        let norms: Vec<f32> = x.chunks(d).map(|r| r.iter().map(|v| v * v).sum()).collect();
        let width = if map == 0 || map == 3 || map == 4 { 2 * s } else { s };
        let kp = KernelParams {
            rows: rows as u32,
            s: s as u32,
            replicas: r as u32,
            width: width as u32,
            map,
            heads: heads as u32,
            seq: seq as u32,
            dv: d as u32,
            causal: causal as u32,
            blocks: if causal { seq.div_ceil(64) as u32 } else { 1 },
            ..Default::default()
        };
        let kmat = weights(rows * rows, 13);
        let (v, exact) = (weights(heads * seq.max(1) * d, 14), weights(heads * seq.max(1) * d, 15));
        let red = if attention { KernelReduction::Attention { v: &v, exact: &exact } } else { KernelReduction::KernelError { kmat: &kmat } };
        let mut rec = Recorder::new();
        let sums = run_kernel(&mut rec, &[layer], &x, &norms, kp, red, &c, &mut |_| {}).unwrap();
        assert_eq!(sums.len(), 2);
        assert!(sums.iter().flatten().all(|v| v.is_finite() && *v > 0.0));
        let seen = replay_all(&rec, &mut gpu);
        let want: &[Stage] = if attention { &[Stage::FeatureMap, Stage::AttentionKv, Stage::AttentionOut] } else { &[Stage::FeatureMap, Stage::KernelError] };
        for st in want {
            assert!(seen.contains(st), "{} not dispatched", st.name());
        }
    }
}

#[test]
fn conv_stages_match_twins() {
    use aimc::workload::io::{Linear, Matrix};
    use aimc::workload::{self, Activation, Conv2d, ConvSettings, Pool2d, PoolKind};
    let conv = |name: &str, out_c: usize, in_c: usize, seed: u64| Linear {
        name: name.into(),
        weight: Matrix { rows: out_c, cols: in_c * 9, data: weights(out_c * in_c * 9, seed) },
        bias: weights(out_c, seed + 1),
        conv: Some(Conv2d { in_c, k_h: 3, k_w: 3, ..Conv2d::default() }),
        input_range: Vec::new(),
        links: Default::default(),
        batchnorm: None,
    };
    // 3 x 9 x 7 → conv (padding 1) → 5 x 9 x 7 → max pool 2 → 5 x 4 x 3 → conv (stride 2) →
    // 4 x 1 x 1 → Linear 4 → 3: a shared first input, a per-trial second.
    let mut layers = vec![conv("0", 5, 3, 1), conv("1", 4, 5, 3), Linear::dense("2", Matrix { rows: 3, cols: 4, data: weights(12, 5) }, weights(3, 6))];
    let set = [
        ConvSettings {
            stride: [1, 1],
            padding: [1, 1],
            pool: Some(Pool2d { kind: PoolKind::Max, size: 2, stride: 2, size_w: None, stride_w: None, padding: [0, 0], exclude_pad: false }),
        },
        ConvSettings { stride: [2, 2], padding: [0, 0], pool: None },
        ConvSettings::default(),
    ];
    workload::set_geometry(&mut layers, Some([3, 9, 7]), &set).unwrap();
    let acts = [Activation::Gelu, Activation::Relu, Activation::None];
    let analog = workload::analog_layers(&layers, &acts, TileShape { max_in: 20, max_out: 4 }, Scaling::default());
    let batch = 3;
    let x = weights(batch * 3 * 9 * 7, 8);
    let mut rec = Recorder::new();
    plan::run_outputs(&mut rec, &analog, &x, batch as u32, &cfg(Gdc::Readout, 3, vec![60.0]), &mut |_| {}).unwrap();
    // Average pooling too, on its own layer, over a rectangular 2 x 3 window.
    let mut avg = layers.clone();
    let mut set_avg = set;
    set_avg[0].pool = Some(Pool2d { kind: PoolKind::Avg, size: 2, stride: 2, size_w: Some(3), stride_w: None, padding: [0, 0], exclude_pad: false });
    avg[0].conv = Some(Conv2d { in_c: 3, k_h: 3, k_w: 3, ..Conv2d::default() });
    workload::set_geometry(&mut avg, Some([3, 9, 7]), &set_avg).unwrap();
    let analog = workload::analog_layers(&avg, &acts, TileShape { max_in: 20, max_out: 4 }, Scaling::default());
    plan::run_outputs(&mut rec, &analog, &x, batch as u32, &cfg(Gdc::Off, 2, vec![0.0]), &mut |_| {}).unwrap();
    let Some(mut g) = gpu(256) else { return };
    let seen = replay_all(&rec, &mut g);
    for s in [Stage::Im2col, Stage::Pool, Stage::Dac, Stage::MvmNarrow, Stage::Combine] {
        assert!(seen.contains(&s), "stage {} was not exercised", s.name());
    }
}

/// `dac` in both shapes: a workgroup per vector (slices longer than DAC_SHORT_COLS) and
/// DAC_LANES invocations per vector (shorter ones), at the threshold, for a shared and a per-trial
/// input; 70 samples leave the last workgroup of the short shape part empty.
#[test]
fn dac_matches_twin_in_both_shapes() {
    use aimc::engine::stages::DAC_SHORT_COLS;
    let n = DAC_SHORT_COLS as usize;
    let shape = TileShape { max_in: 512, max_out: 512 };
    let layer = |n_out: usize, n_in: usize, seed: u64| AnalogLayer {
        mapped: MappedMatrix::new(&weights(n_out * n_in, seed), n_out as u32, n_in as u32, shape, 1.0),
        bias: weights(n_out, seed + 1),
        activation: 1,
        conv: None,
        links: Default::default(),
        batchnorm: None,
    };
    let mut rec = Recorder::new();
    for (a, b) in [(n + 1, n), (n, n + 1)] {
        let layers = [layer(b, a, 3), layer(4, b, 5)];
        plan::run_outputs(&mut rec, &layers, &weights(70 * a, 9), 70, &cfg(Gdc::Readout, 3, vec![60.0]), &mut |_| {}).unwrap();
    }
    let modes: Vec<(u32, u32)> = rec.log.iter().filter(|d| d.stage == Stage::Dac).map(|d| (d.params.layer.dac_short, d.params.layer.x_per_trial)).collect();
    for want in [(0, 0), (0, 1), (1, 0), (1, 1)] {
        assert!(modes.contains(&want), "dac (short, per-trial input) = {want:?} not exercised: {modes:?}");
    }
    let Some(mut g) = gpu(256) else { return };
    assert_eq!(replay_stages(&rec, &mut g, &[Stage::Dac]), modes.len());
}

/// The throughput probes of `aimc bench` against their twins: the same Philox blocks bit for bit,
/// the FMA and exponential chains within float error (items not a multiple of the workgroup).
#[test]
fn peak_stages_match_twins() {
    let stages = [Stage::PeakPhilox, Stage::PeakFma, Stage::PeakExp];
    let mut rec = Recorder::new();
    for s in stages {
        plan::time_peak(&mut rec, s, 300, 8).unwrap();
    }
    let Some(mut g) = gpu(256) else { return };
    assert_eq!(replay_stages(&rec, &mut g, &stages), 3);
}

/// `drift`'s GDC readout through the full forward path (`gdc_readout`: a strong IR drop and
/// per-read weight noise of both types, in the readout at t and the baseline), per tile and per
/// column, against the twin.
#[test]
fn gdc_readout_on_the_full_path_matches_twin() {
    let w = weights(70 * 90, 3);
    let m = MappedMatrix::new(&w, 70, 90, TileShape { max_in: 48, max_out: 32 }, 1.0);
    let cw = MappedMatrix::new(&w, 70, 90, TileShape { max_in: 48, max_out: 32 }, Scaling { omega: 1.0, columnwise: true });
    let mut rec = Recorder::new();
    for w_noise_type in [WeightNoiseType::AdditiveConstant, WeightNoiseType::PcmRead] {
        // The default IR-drop ratio makes the shift ~1e-4 here; 200 makes it ~10 % of a weight.
        let periphery = Periphery { w_noise: 0.05, w_noise_type, ir_drop: 1.0, ir_drop_g_ratio: 200.0, ..Periphery::default() };
        let c = RunConfig { periphery, ..cfg(Gdc::Readout, 4, vec![0.0, 3.15e7]) };
        plan::run_weight_error(&mut rec, &m, &c).unwrap();
        plan::run_weight_error(&mut rec, &cw, &RunConfig { gdc: Gdc::ReadoutPerColumn, ..c }).unwrap();
    }
    let Some(mut g) = gpu(256) else { return };
    let seen = replay_all(&rec, &mut g);
    assert_eq!(seen, vec![Stage::Program, Stage::Drift, Stage::Gdc, Stage::WeightError]);
}
