//! Each GPU stage against its CPU twin on the same inputs, within the named tolerances of
//! `aimc::tolerances`. A whole plan runs on the CPU twins under a recorder; every dispatch is then
//! replayed on the GPU from the recorded inputs and each written buffer compared.

mod common;

use aimc::crossbar::{Gdc, MappedMatrix, Periphery, TileShape};
use aimc::device::DeviceModel;
use aimc::engine::plan::{self, AnalogLayer, RunConfig};
use aimc::engine::stages::Stage;
use aimc::engine::Backend;
use aimc::tolerances::*;
use common::*;

fn weights(n: usize, seed: u64) -> Vec<f32> {
    aimc::rng::uniform_signed(n, seed)
}

fn cfg(gdc: Gdc, trials: u32, times: Vec<f64>) -> RunConfig {
    RunConfig { device: DeviceModel::pcm(), periphery: Periphery::default(), gdc, key: aimc::rng::key(42, 0), trials, times, max_chunk: 5, first_trial: 0 }
}

/// How a written binding is compared.
enum Cmp {
    Exact,
    Abs(f32),
    /// ADC/DAC-quantised floats: within `tol`, except a fraction that may sit one step apart.
    Quantised {
        tol: f32,
        frac: f64,
    },
    Rel(f32),
}

fn compare(stage: Stage, binding: usize, cpu: &[u32], gpu: &[u32], how: &Cmp) {
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
        Cmp::Quantised { tol, frac } => {
            let (c, g) = (f32s(cpu), f32s(gpu));
            let mut off = 0usize;
            for i in 0..c.len() {
                if (c[i] - g[i]).abs() > *tol {
                    off += 1;
                    // A flip is at most one ADC step (24/510 with the defaults) plus tolerance.
                    assert!((c[i] - g[i]).abs() <= 0.05 + tol, "stage {name} binding {} index {i}: cpu {} gpu {}", binding + 1, c[i], g[i]);
                }
            }
            assert!((off as f64) <= frac * c.len() as f64 + 1.0, "stage {name} binding {}: {off} of {} values differ by more than {tol}", binding + 1, c.len());
        }
    }
}

/// The written bindings of each stage and how to compare them (index into the binding list).
fn outputs(stage: Stage) -> Vec<(usize, Cmp)> {
    match stage {
        Stage::Program => vec![(2, Cmp::Abs(WEIGHT_ABS)), (3, Cmp::Abs(WEIGHT_ABS))],
        Stage::Drift => vec![(3, Cmp::Abs(WEIGHT_ABS)), (4, Cmp::Quantised { tol: 256.0 * WEIGHT_ABS, frac: 0.05 })],
        Stage::Gdc => vec![(2, Cmp::Rel(ALPHA_REL))],
        Stage::Dac => vec![(2, Cmp::Quantised { tol: 1e-6, frac: ADC_FLIP_FRACTION }), (3, Cmp::Exact)],
        Stage::Mvm => vec![(3, Cmp::Quantised { tol: MVM_ABS, frac: ADC_FLIP_FRACTION })],
        Stage::Bound => vec![(5, Cmp::Quantised { tol: MVM_ABS, frac: ADC_FLIP_FRACTION }), (6, Cmp::Exact)],
        Stage::Combine => vec![(6, Cmp::Abs(MVM_ABS))],
        Stage::Accuracy => vec![(2, Cmp::Exact)],
        Stage::WeightError => vec![(4, Cmp::Abs(256.0 * WEIGHT_ABS))],
        Stage::ProgramMvm => vec![(3, Cmp::Quantised { tol: MVM_ABS, frac: ADC_FLIP_FRACTION })],
        Stage::Rng => vec![(0, Cmp::Exact), (1, Cmp::Abs(NORMAL_ABS))],
        Stage::PeakPhilox => vec![(0, Cmp::Exact)],
        Stage::PeakFma => vec![(0, Cmp::Rel(1e-4))],
    }
}

fn replay_all(rec: &Recorder, gpu: &mut dyn Backend) -> Vec<Stage> {
    let mut seen = Vec::new();
    for d in &rec.log {
        let got = replay(gpu, d);
        for (b, how) in outputs(d.stage) {
            compare(d.stage, b, &d.after[b], &got[b], &how);
        }
        if !seen.contains(&d.stage) {
            seen.push(d.stage);
        }
    }
    seen
}

#[test]
fn rng_stream_is_bit_exact_on_gpu() {
    let Some(mut g) = gpu(64) else { return };
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
        assert_eq!(&gw[i as usize * 4..i as usize * 4 + 4], &want, "block {i}");
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
    assert_eq!(&g.download(words).unwrap()[..4], &[0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
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
    let Some(mut g) = gpu(256) else { return };
    let seen = replay_all(&rec, &mut g);
    assert_eq!(seen, vec![Stage::Program, Stage::Drift, Stage::Gdc, Stage::WeightError]);
}

fn mlp() -> Vec<AnalogLayer> {
    let shape = TileShape { max_in: 16, max_out: 20 };
    let l1 = MappedMatrix::new(&weights(24 * 37, 2), 24, 37, shape, 1.0);
    let l2 = MappedMatrix::new(&weights(5 * 24, 3), 5, 24, shape, 1.0);
    vec![AnalogLayer { mapped: l1, bias: weights(24, 4), activation: 1 }, AnalogLayer { mapped: l2, bias: weights(5, 5), activation: 0 }]
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
    let flagged: u32 = rec.log.iter().filter(|d| d.stage == Stage::Mvm).map(|d| d.after[4].iter().sum::<u32>()).sum();
    assert!(flagged > 0, "the test input should saturate some ADC outputs");
    // The full path (IR drop and weight noise on).
    let mut c2 = cfg(Gdc::Off, 3, vec![60.0]);
    c2.periphery.ir_drop = 1.0;
    c2.periphery.w_noise = 0.0175;
    c2.periphery.w_noise_type = aimc::crossbar::WeightNoiseType::PcmRead;
    plan::run_classifier(&mut rec, &layers, &x, &labels, &c2).unwrap();
    let Some(mut g) = gpu(256) else { return };
    let seen = replay_all(&rec, &mut g);
    for s in [Stage::Program, Stage::Drift, Stage::Gdc, Stage::Dac, Stage::Mvm, Stage::Bound, Stage::Combine, Stage::Accuracy] {
        assert!(seen.contains(&s), "stage {} was not exercised", s.name());
    }
}

#[test]
fn program_mvm_matches_twin() {
    let m = MappedMatrix::new(&weights(40 * 300, 7), 40, 300, TileShape { max_in: 512, max_out: 512 }, 1.0);
    let xq: Vec<f32> = weights(300, 8).iter().map(|v| (v * 63.0).round() / 63.0).collect();
    let mut rec = Recorder::new();
    plan::run_program_mvm(&mut rec, &m, &xq, &cfg(Gdc::Off, 9, vec![0.0])).unwrap();
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
