//! Two levels of Monte Carlo (`reads_per_programming`): trials are programmings × reads. The
//! programming streams (programming noise, drift exponents, GDC baseline) are keyed by the
//! programming index trial / R and every other stream by the trial, so a programming's reads share
//! one programmed state, and results do not depend on chunking, shards or the backend. Then the
//! variance split through the whole pipeline.

use crate::common::*;
use aimc::crossbar::{Gdc, MappedMatrix, Periphery, TileShape};
use aimc::device::DeviceModel;
use aimc::engine::plan::{run_device_state, RunConfig};
use aimc::engine::Backend;
use aimc::tolerances::WEIGHT_ABS;

fn matrix() -> MappedMatrix {
    let w = aimc::rng::uniform_signed(30 * 50, 3);
    MappedMatrix::new(&w, 30, 50, TileShape { max_in: 32, max_out: 16 }, 1.0)
}

fn cfg(device: DeviceModel, reads: u32, trials: u32, first_trial: u32, max_chunk: u32) -> RunConfig {
    RunConfig {
        device,
        periphery: Periphery::default(),
        gdc: Gdc::Readout,
        key: aimc::rng::key(11, 0),
        trials,
        first_trial,
        times: vec![0.0, 86400.0],
        max_chunk,
        layer_noise: Vec::new(),
        reads_per_programming: reads,
    }
}

fn weff(be: &mut dyn Backend, c: &RunConfig) -> Vec<Vec<f32>> {
    run_device_state(be, &matrix(), c).unwrap().0
}

#[test]
fn reads_share_their_programming() {
    let n = matrix().len();
    // Programming noise only: the reads of one programming are identical, the next differs.
    let prog_only = DeviceModel { drift_scale: 0.0, read_noise_scale: 0.0, ..DeviceModel::pcm() };
    let w3 = weff(&mut cpu(), &cfg(prog_only.clone(), 3, 9, 0, 16));
    let trial = |w: &Vec<f32>, k: usize| w[k * n..(k + 1) * n].to_vec();
    assert_eq!(trial(&w3[0], 0), trial(&w3[0], 2));
    assert_ne!(trial(&w3[0], 2), trial(&w3[0], 3));
    // Programming k of R = 3 is the state trial k of a one-level run programs.
    let w1 = weff(&mut cpu(), &cfg(prog_only, 1, 3, 0, 16));
    assert_eq!(trial(&w3[0], 3), trial(&w1[0], 1));
    // With read noise, each read redraws it on the shared state.
    let w = weff(&mut cpu(), &cfg(DeviceModel::pcm(), 3, 6, 0, 16));
    assert_ne!(trial(&w[1], 0), trial(&w[1], 1));
}

#[test]
fn two_levels_do_not_depend_on_chunks_or_shards_cpu() {
    let whole = weff(&mut cpu(), &cfg(DeviceModel::pcm(), 4, 12, 0, 12));
    for chunk in [1, 5, 7] {
        assert_eq!(weff(&mut cpu(), &cfg(DeviceModel::pcm(), 4, 12, 0, chunk)), whole, "chunk {chunk}");
    }
    // A shard starting inside a programming (trials 6..12) draws what the whole run drew there.
    let n = matrix().len();
    let shard = weff(&mut cpu(), &cfg(DeviceModel::pcm(), 4, 6, 6, 5));
    for t in 0..2 {
        assert_eq!(shard[t], whole[t][6 * n..], "time {t}");
    }
    // The fast CPU backend (what --backend cpu runs) draws the same states.
    let fast = weff(&mut aimc::engine::cpu::CpuBackend::fast(2), &cfg(DeviceModel::pcm(), 4, 12, 0, 5));
    for t in 0..2 {
        let worst = fast[t].iter().zip(&whole[t]).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst <= WEIGHT_ABS, "fast vs twin at time {t}: {worst}");
    }
}

#[test]
fn two_levels_gpu_match_the_twin_and_ignore_chunks() {
    let Some(mut g) = gpu(256) else { return };
    let twin = weff(&mut cpu(), &cfg(DeviceModel::pcm(), 4, 12, 0, 12));
    let a = weff(&mut g, &cfg(DeviceModel::pcm(), 4, 12, 0, 12));
    let b = weff(&mut g, &cfg(DeviceModel::pcm(), 4, 12, 0, 5));
    assert_eq!(a, b, "GPU results depend on the chunk size");
    for t in 0..2 {
        let worst = a[t].iter().zip(&twin[t]).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(worst <= WEIGHT_ABS, "GPU vs twin at time {t}: {worst} > WEIGHT_ABS");
    }
}

fn smoke(extra_top: &str) -> Result<aimc::config::Experiment, String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/smoke.toml");
    let text = format!("{extra_top}\n{}", std::fs::read_to_string(&path).unwrap());
    aimc::config::Experiment::from_text(&text, &path).map_err(|e| e.to_string())
}

#[test]
fn variance_split_through_the_pipeline() {
    let err = smoke("reads_per_programming = 3").unwrap_err();
    assert!(err.contains("reads_per_programming = 3") && err.contains("multiple of 3"), "{err}");
    let mut exp = smoke("reads_per_programming = 4").unwrap();
    exp.set_trials(12).unwrap();
    assert!(exp.set_trials(10).is_err(), "10 trials are not whole programmings of 4 reads");
    let out = aimc::run::run(&exp, &mut cpu(), &mut aimc::run::Quiet);
    assert!(out.error.is_none(), "{:?}", out.error.map(|e| e.to_string()));
    let r = out.results;
    assert_eq!(r.config["reads_per_programming"], 4);
    for p in &r.points {
        let v = p.variance_split.as_ref().unwrap_or_else(|| panic!("{} {}: no variance split", p.series, p.time_label));
        assert_eq!((v.programmings, v.reads), (3, 4));
        assert!((v.mean - p.summary.mean).abs() < 1e-12);
        // The mean's interval is over the 3 programming means: t(2) · sqrt(MSB / (P R)).
        assert!(p.mean_ci.method.contains("over programming means"), "{}", p.mean_ci.method);
        let t2 = 4.302652729911275; // Student t, 2 df, 97.5 %
        let want = t2 * (v.ms_between / 12.0).sqrt();
        assert!((p.mean_ci.half_width() - want).abs() <= 1e-9 * want.max(1e-9), "{} vs {want}", p.mean_ci.half_width());
        assert!(
            v.between_ci.lo <= v.between && v.between <= v.between_ci.hi && v.within_ci.lo <= v.within && v.within <= v.within_ci.hi,
            "{} {}: {v:?}",
            p.series,
            p.time_label
        );
    }
    let s = aimc::report::console::console_summary(&r);
    assert!(s.contains("two-level Monte Carlo") && s.contains("variance of the mean"), "{s}");
    // One-level runs record nothing new.
    let one = smoke("").unwrap();
    assert!(one.resolved.get("reads_per_programming").is_none());
}
