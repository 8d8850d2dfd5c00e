//! Reproducibility and physics properties of whole plans:
//! - per-trial metrics do not depend on the trial chunk size or the workgroup size (integer
//!   counts exactly; the RNG counters never involve invocation ids);
//! - deterministic drift with perfect IO: global drift compensation restores the pre-drift
//!   weights and outputs (noise-models §6 sanity property).

use crate::common::*;
use aimc::crossbar::{Gdc, MappedMatrix, Periphery, TileShape};
use aimc::device::{DeviceModel, Fit};
use aimc::engine::plan::{
    run_classifier, run_classifier_group, run_classifier_group_batches, run_outputs, run_outputs_group, run_weight_error, AnalogLayer, RunConfig,
};
use aimc::engine::stages::Stage;
use aimc::engine::Backend;

fn weights(n: usize, seed: u64) -> Vec<f32> {
    aimc::rng::uniform_signed(n, seed)
}

fn model() -> (Vec<AnalogLayer>, Vec<f32>, Vec<u32>) {
    let shape = TileShape { max_in: 20, max_out: 16 };
    let layers = vec![
        AnalogLayer {
            mapped: MappedMatrix::new(&weights(30 * 33, 1), 30, 33, shape, 1.0),
            bias: weights(30, 2),
            activation: 1,
            conv: None,
            links: Default::default(),
            batchnorm: None,
        },
        AnalogLayer {
            mapped: MappedMatrix::new(&weights(4 * 30, 3), 4, 30, shape, 1.0),
            bias: weights(4, 4),
            activation: 0,
            conv: None,
            links: Default::default(),
            batchnorm: None,
        },
    ];
    let x: Vec<f32> = weights(50 * 33, 5).iter().map(|v| v * 2.0).collect();
    // Labels from the floating-point model, so accuracy is high and noise matters.
    let labels = fp_predict(&layers, &x, 50);
    (layers, x, labels)
}

fn fp_predict(layers: &[AnalogLayer], x: &[f32], batch: usize) -> Vec<u32> {
    (0..batch)
        .map(|s| {
            let mut h: Vec<f64> = x[s * layers[0].mapped.n_in as usize..(s + 1) * layers[0].mapped.n_in as usize].iter().map(|&v| v as f64).collect();
            for l in layers {
                let m = &l.mapped;
                h = (0..m.n_out as usize)
                    .map(|o| {
                        let v: f64 = (0..m.n_in as usize).map(|k| m.w[o * m.n_in as usize + k] as f64 * h[k]).sum::<f64>() + l.bias[o] as f64;
                        if l.activation == 1 {
                            v.max(0.0)
                        } else {
                            v
                        }
                    })
                    .collect();
            }
            h.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0 as u32
        })
        .collect()
}

fn cfg(chunk: u32) -> RunConfig {
    RunConfig {
        reads_per_programming: 1,
        device: DeviceModel::pcm(),
        periphery: Periphery { out_bound: 3.0, ..Periphery::default() },
        gdc: Gdc::Readout,
        key: aimc::rng::key(7, 1),
        trials: 13,
        times: vec![25.0, 3.15e7],
        max_chunk: chunk,
        first_trial: 0,
        layer_noise: Vec::new(),
    }
}

fn counts(be: &mut dyn Backend, chunk: u32) -> Vec<Vec<u32>> {
    let (layers, x, labels) = model();
    run_classifier(be, &layers, &x, &labels, &cfg(chunk)).unwrap().into_iter().map(|p| p.correct).collect()
}

#[test]
fn counts_invariant_to_chunking_cpu() {
    let want = counts(&mut cpu(), 13);
    for chunk in [1, 4, 5] {
        assert_eq!(counts(&mut cpu(), chunk), want, "chunk {chunk}");
    }
    // And to sharding: trials 0..6 and 6..13 run separately, concatenated.
    let (layers, x, labels) = model();
    let mut a = cfg(13);
    a.trials = 6;
    let mut b = cfg(13);
    b.first_trial = 6;
    b.trials = 7;
    let pa = run_classifier(&mut cpu(), &layers, &x, &labels, &a).unwrap();
    let pb = run_classifier(&mut cpu(), &layers, &x, &labels, &b).unwrap();
    for (ti, w) in want.iter().enumerate() {
        assert_eq!(&[pa[ti].correct.clone(), pb[ti].correct.clone()].concat(), w, "shards at time {ti}");
    }
    // And to the number of CPU threads.
    assert_eq!(counts(&mut aimc::engine::cpu::CpuBackend::new(1, 256), 13), want);
    // Noise must actually be there: not every trial identical.
    assert!(want[1].iter().any(|&c| c != want[1][0]), "{want:?}");
}

#[test]
fn counts_invariant_to_chunking_and_workgroup_size_gpu() {
    let Some(mut g) = gpu(256) else { return };
    let want = counts(&mut g, 13);
    assert_eq!(counts(&mut g, 3), want, "chunk 3");
    let mut g64 = gpu(64).unwrap();
    assert_eq!(counts(&mut g64, 13), want, "workgroup size 64");
    assert_eq!(counts(&mut g64, 6), want, "workgroup size 64, chunk 6");
}

/// ν fixed at 0.06, no programming or read noise, perfect IO.
fn deterministic_drift() -> RunConfig {
    let fixed = |v: f64| Fit::LogClampPoly { brk: f64::INFINITY, a: 0.0, b: v, lo: v, hi: v, c: [0.0; 4] };
    let dev = DeviceModel { prog_noise_scale: 0.0, read_noise_scale: 0.0, mu_nu: fixed(0.06), sigma_nu: fixed(0.0), ..DeviceModel::pcm() };
    RunConfig {
        reads_per_programming: 1,
        device: dev,
        periphery: Periphery::perfect(),
        gdc: Gdc::Readout,
        key: [1, 2],
        trials: 3,
        times: vec![0.0, 3600.0, 3.15e8],
        max_chunk: 8,
        first_trial: 0,
        layer_noise: Vec::new(),
    }
}

fn gdc_restores(be: &mut dyn Backend) {
    let m = MappedMatrix::new(&weights(40 * 50, 9), 40, 50, TileShape { max_in: 32, max_out: 32 }, 1.0);
    let mut c = deterministic_drift();
    let pts = run_weight_error(be, &m, &c).unwrap();
    for p in &pts {
        let rms = (p.sum_e2.iter().sum::<f64>() / (p.n_weights as f64 * p.sum_e2.len() as f64)).sqrt();
        // f32 rounding of w·exp(−νL)·α only.
        assert!(rms < 1e-6, "t={} GDC left rms error {rms}", p.t_inf);
    }
    c.gdc = Gdc::Off;
    let off = run_weight_error(be, &m, &c).unwrap();
    let mean_e = off[2].sum_e.iter().sum::<f64>() / (off[2].n_weights as f64 * 3.0);
    assert!(mean_e.abs() > 1e-3 || off[2].sum_e2.iter().sum::<f64>() > 1e-3, "drift had no effect without GDC");
    // Outputs: with GDC at 10 years the classifier predicts exactly what floating point does.
    let (layers, x, labels) = model();
    let mut c = deterministic_drift();
    c.gdc = Gdc::Readout;
    let got = run_classifier(be, &layers, &x, &labels, &c).unwrap();
    for p in &got {
        assert!(p.correct.iter().all(|&k| k == labels.len() as u32), "t={}: {:?} of {}", p.t_inf, p.correct, labels.len());
    }
}

#[test]
fn gdc_restores_pre_drift_outputs_cpu() {
    gdc_restores(&mut cpu());
}

#[test]
fn gdc_restores_pre_drift_outputs_gpu() {
    let Some(mut g) = gpu(256) else { return };
    gdc_restores(&mut g);
}

/// Configurations that differ in noise scales, converter settings, per-layer noise or RNG key,
/// for a run as one plan: the base twice, output noise (the GDC readout reads it, so `drift`
/// differs), DAC bits (everything but the MVMs shared), no programming noise, an ideal second
/// layer (the first layer's state shared), and another key.
fn group_cfgs() -> Vec<RunConfig> {
    let base = RunConfig { times: vec![25.0, 86_400.0, 3.15e7], ..cfg(5) };
    let ideal = DeviceModel { prog_noise_scale: 0.0, read_noise_scale: 0.0, drift_scale: 0.0, ..DeviceModel::pcm() };
    vec![
        base.clone(),
        RunConfig { periphery: Periphery { out_noise: 0.1, ..base.periphery.clone() }, ..base.clone() },
        RunConfig { periphery: Periphery { inp_res_bits: 5, ..base.periphery.clone() }, ..base.clone() },
        RunConfig { device: DeviceModel { prog_noise_scale: 0.0, ..DeviceModel::pcm() }, ..base.clone() },
        RunConfig { layer_noise: vec![None, Some((ideal, base.periphery.clone()))], ..base.clone() },
        base.clone(),
        RunConfig { key: aimc::rng::key(7, 2), ..base.clone() },
    ]
}

/// Counts per configuration of a run as one plan: whole, and in sample batches of 17.
fn group_counts(be: &mut dyn Backend, batches: bool) -> Vec<Vec<Vec<u32>>> {
    let (layers, x, labels) = model();
    let cfgs = group_cfgs();
    let got = if batches {
        run_classifier_group_batches(be, &layers, &x, &labels, &cfgs, 17, false, &mut |_| {})
    } else {
        run_classifier_group(be, &layers, &x, &labels, &cfgs, false, &mut |_| {})
    };
    got.unwrap().into_iter().map(|c| c.into_iter().map(|p| p.correct).collect()).collect()
}

/// A run of several configurations as one plan gives each one the counts of its run alone, bit
/// for bit (three chunks of trials, three times, sample batches), on the twins, the fast kernels
/// and the GPU; and it programs and drifts the states they share once.
#[test]
fn a_group_gives_each_configuration_its_own_counts() {
    let (layers, x, labels) = model();
    let alone = |be: &mut dyn Backend| -> Vec<Vec<Vec<u32>>> {
        group_cfgs().iter().map(|c| run_classifier(be, &layers, &x, &labels, c).unwrap().into_iter().map(|p| p.correct).collect()).collect()
    };
    let want = alone(&mut cpu());
    assert_eq!(want[0], want[5], "the same configuration twice");
    assert!(want.windows(2).take(4).all(|w| w[0] != w[1]), "the configurations differ: {want:?}");
    assert_eq!(group_counts(&mut cpu(), false), want, "twins");
    assert_eq!(group_counts(&mut cpu(), true), want, "twins, sample batches");
    assert_eq!(group_counts(&mut aimc::engine::cpu::CpuBackend::fast(2), false), want, "fast kernels");
    assert_eq!(alone(&mut aimc::engine::cpu::CpuBackend::fast(2)), want, "fast kernels alone");
    // Shared states, per chunk: the first layer programmed 3 times (the base's state serves 5
    // configurations: the base twice, output noise, DAC bits and the ideal second layer; then no
    // programming noise and the other key), the second 4 times (the ideal one besides). Drift per
    // time and layer 5 times: the base's drift serves the base and the DAC setting.
    let mut rec = Recorder::new();
    group_counts(&mut rec, false);
    let count = |rec: &Recorder, s: Stage| rec.log.iter().filter(|d| d.stage == s).count();
    let (programs, drifts) = (count(&rec, Stage::Program), count(&rec, Stage::Drift));
    let mut rec_alone = Recorder::new();
    alone(&mut rec_alone);
    let (programs_alone, drifts_alone) = (count(&rec_alone, Stage::Program), count(&rec_alone, Stage::Drift));
    assert_eq!((programs, programs_alone), ((3 + 4) * 3, 7 * 3 * 2), "programs: grouped, alone");
    assert_eq!((drifts, drifts_alone), (5 * 3 * 2 * 3, 7 * 3 * 2 * 3), "drifts: grouped, alone");
    // The base's second copy is not run again: its counts are the first's.
    let (layer_runs, layer_runs_alone) = (count(&rec, Stage::Combine), count(&rec_alone, Stage::Combine));
    assert_eq!((layer_runs, layer_runs_alone), (6 * 3 * 3 * 2, 7 * 3 * 3 * 2), "layers run: grouped, alone");
    // The raw outputs of one layer (mvm_error's plan), bit for bit.
    let outs = |be: &mut dyn Backend| run_outputs_group(be, &layers[..1], &x, 50, &group_cfgs(), &mut |_| {}).unwrap();
    let outs_alone = |be: &mut dyn Backend| group_cfgs().iter().map(|c| run_outputs(be, &layers[..1], &x, 50, c, &mut |_| {}).unwrap()).collect::<Vec<_>>();
    let want_outs = outs_alone(&mut cpu());
    assert_eq!(outs(&mut cpu()), want_outs, "outputs, twins");
    assert_eq!(outs(&mut aimc::engine::cpu::CpuBackend::fast(2)), outs_alone(&mut aimc::engine::cpu::CpuBackend::fast(2)), "outputs, fast kernels");
    // Drift compensation off, by readout and by the exact reference in one plan (the default
    // experiment's two points run so): one programmed state, three drifted ones.
    let gdcs: Vec<RunConfig> = [Gdc::Readout, Gdc::Off, Gdc::ExactReference].into_iter().map(|gdc| RunConfig { gdc, ..group_cfgs()[0].clone() }).collect();
    let by_gdc = |be: &mut dyn Backend| -> Vec<Vec<Vec<u32>>> {
        run_classifier_group(be, &layers, &x, &labels, &gdcs, false, &mut |_| {})
            .unwrap()
            .into_iter()
            .map(|c| c.into_iter().map(|p| p.correct).collect())
            .collect()
    };
    let by_gdc_alone = |be: &mut dyn Backend| -> Vec<Vec<Vec<u32>>> {
        gdcs.iter().map(|c| run_classifier(be, &layers, &x, &labels, c).unwrap().into_iter().map(|p| p.correct).collect()).collect()
    };
    let want_gdc = by_gdc_alone(&mut cpu());
    assert_ne!(want_gdc[0], want_gdc[1], "compensation changes the counts");
    assert_eq!(by_gdc(&mut cpu()), want_gdc, "gdc settings, twins");
    assert_eq!(by_gdc(&mut aimc::engine::cpu::CpuBackend::fast(2)), by_gdc_alone(&mut aimc::engine::cpu::CpuBackend::fast(2)), "gdc settings, fast kernels");
    let Some(mut g) = gpu(64) else { return };
    assert_eq!(by_gdc(&mut g), by_gdc_alone(&mut g), "gdc settings, gpu");
    assert_eq!(group_counts(&mut g, false), want, "gpu");
    assert_eq!(group_counts(&mut g, true), want, "gpu, sample batches");
    assert_eq!(outs(&mut g), outs_alone(&mut g), "outputs, gpu");
}

/// `row_correct` (top-level `row_counts`): per sample, the trials that classify it right. They
/// add up to the trials' counts, which stay those of a run without them; and they are the same
/// in one plan, in sample batches of 17, over three chunks of trials, on the twins, the fast
/// kernels and the GPU (integer counts of the same argmax: bit for bit).
#[test]
fn row_counts_are_the_trials_counts_by_row() {
    let (layers, x, labels) = model();
    let cfgs = group_cfgs();
    type Rows = Vec<Vec<(Vec<u32>, Vec<u32>)>>;
    let run = |be: &mut dyn Backend, per: Option<u32>| -> Rows {
        let got = match per {
            Some(p) => run_classifier_group_batches(be, &layers, &x, &labels, &cfgs, p, true, &mut |_| {}),
            None => run_classifier_group(be, &layers, &x, &labels, &cfgs, true, &mut |_| {}),
        };
        got.unwrap().into_iter().map(|c| c.into_iter().map(|p| (p.correct, p.row_correct)).collect()).collect()
    };
    let want = run(&mut cpu(), None);
    for (ci, c) in want.iter().enumerate() {
        for (correct, rows) in c {
            assert_eq!(rows.len(), labels.len(), "configuration {ci}");
            let (by_row, by_trial) = (rows.iter().map(|&v| v as u64).sum::<u64>(), correct.iter().map(|&v| v as u64).sum::<u64>());
            assert_eq!(by_row, by_trial, "configuration {ci}: rows and trials count the same predictions");
            assert!(rows.iter().all(|&r| r as usize <= correct.len()));
        }
    }
    assert!(want.iter().flatten().any(|(c, r)| r.iter().any(|&v| v > 0 && (v as usize) < c.len())), "some row is right in some trials only");
    let counts: Vec<Vec<Vec<u32>>> = want.iter().map(|c| c.iter().map(|p| p.0.clone()).collect()).collect();
    assert_eq!(counts, group_counts(&mut cpu(), false), "the counts with rows are the counts without");
    assert_eq!(run(&mut cpu(), Some(17)), want, "twins, sample batches");
    assert_eq!(run(&mut aimc::engine::cpu::CpuBackend::fast(2), None), want, "fast kernels");
    let Some(mut g) = gpu(64) else { return };
    assert_eq!(run(&mut g, None), want, "gpu");
    assert_eq!(run(&mut g, Some(17)), want, "gpu, sample batches");
}
