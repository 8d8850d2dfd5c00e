//! Shared test helpers: the GPU backend (or a skip, or a failure under REQUIRE_GPU=1), and a
//! recording backend that captures every dispatch of a plan run on the CPU twins so each stage
//! can be replayed on the GPU with exactly the same inputs.
#![allow(dead_code)]

use aimc::engine::cpu::CpuBackend;
use aimc::engine::gpu::{AdapterPick, GpuBackend};
use aimc::engine::layout::StageParams;
use aimc::engine::stages::Stage;
use aimc::engine::{AdapterInfo, Backend, Buf, EngineError};

/// The GPU backend on whatever adapter exists (lavapipe included). Without one the test is
/// skipped, unless REQUIRE_GPU=1, when it fails.
pub fn gpu(wg: u32) -> Option<GpuBackend> {
    match GpuBackend::new(AdapterPick::Any, wg) {
        Ok(g) => Some(g),
        Err(e) => {
            if std::env::var("REQUIRE_GPU").as_deref() == Ok("1") {
                panic!("REQUIRE_GPU=1 but no GPU backend: {e}");
            }
            // Straight to the process's stderr, past the test harness's capture, so a skip shows in
            // the output of a passing run too.
            use std::io::Write;
            let name = std::thread::current().name().unwrap_or("a test").to_string();
            let _ = writeln!(std::io::stderr().lock(), "SKIPPED the GPU part of {name}: {e} (REQUIRE_GPU=1 makes this a failure)");
            None
        }
    }
}

pub fn cpu() -> CpuBackend {
    CpuBackend::new(2, 256)
}

/// One dispatch as the CPU twin saw it: every bound buffer before and after.
pub struct Dispatch {
    pub stage: Stage,
    pub params: StageParams,
    pub groups: [u32; 3],
    pub before: Vec<Vec<u32>>,
    pub after: Vec<Vec<u32>>,
}

pub struct Recorder {
    pub inner: CpuBackend,
    pub log: Vec<Dispatch>,
}

impl Recorder {
    pub fn new() -> Self {
        Recorder { inner: cpu(), log: Vec::new() }
    }
}

impl Backend for Recorder {
    fn adapter(&self) -> AdapterInfo {
        self.inner.adapter()
    }
    fn create(&mut self, label: &str, words: usize) -> Buf {
        self.inner.create(label, words)
    }
    fn upload(&mut self, buf: Buf, data: &[u32]) {
        self.inner.upload(buf, data)
    }
    fn clear(&mut self, buf: Buf) {
        self.inner.clear(buf)
    }
    fn download(&mut self, buf: Buf) -> Result<Vec<u32>, EngineError> {
        self.inner.download(buf)
    }
    fn free(&mut self, buf: Buf) {
        self.inner.free(buf)
    }
    fn dispatch(&mut self, stage: Stage, params: &StageParams, bindings: &[Buf], groups: [u32; 3]) {
        let before = bindings.iter().map(|b| self.inner.download(*b).unwrap()).collect();
        self.inner.dispatch(stage, params, bindings, groups);
        let after = bindings.iter().map(|b| self.inner.download(*b).unwrap()).collect();
        self.log.push(Dispatch { stage, params: *params, groups, before, after });
    }
    fn finish(&mut self) -> Result<(), EngineError> {
        Ok(())
    }
    fn max_binding_bytes(&self) -> u64 {
        self.inner.max_binding_bytes()
    }
    fn wg(&self) -> u32 {
        self.inner.wg()
    }
    fn set_profiling(&mut self, on: bool) {
        self.inner.set_profiling(on)
    }
    fn take_profile(&mut self) -> Result<Option<aimc::engine::profile::Profile>, EngineError> {
        self.inner.take_profile()
    }
}

/// Runs one recorded dispatch on `be` from the recorded inputs; returns every binding after.
pub fn replay(be: &mut dyn Backend, d: &Dispatch) -> Vec<Vec<u32>> {
    let bufs: Vec<Buf> = d
        .before
        .iter()
        .map(|data| {
            let b = be.create("replay", data.len());
            be.upload(b, data);
            b
        })
        .collect();
    be.dispatch(d.stage, &d.params, &bufs, d.groups);
    let out = bufs.iter().map(|b| be.download(*b).unwrap()).collect();
    for b in bufs {
        be.free(b);
    }
    out
}

pub fn f32s(v: &[u32]) -> Vec<f32> {
    v.iter().map(|&x| f32::from_bits(x)).collect()
}

/// An experiment document placed in experiments/, so its relative paths reach the shipped models
/// and data; errors as the CLI prints them.
pub fn experiment(text: &str) -> Result<aimc::config::Experiment, String> {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("experiments/test.toml");
    aimc::config::Experiment::from_text(text, &path).map_err(|e| e.to_string())
}

/// Runs `e` on `be`; an error fails the test.
pub fn run_ok(be: &mut dyn Backend, e: &aimc::config::Experiment) -> aimc::results::Results {
    let out = aimc::run::run(e, be, &mut aimc::run::Quiet);
    assert!(out.error.is_none(), "{:?}", out.error);
    out.results
}

/// A small kernel-error experiment on iris (tests/suite/kernel.rs, tests/suite/merge.rs).
pub const IRIS_ERROR: &str = r#"
name = "k"
workload = "kernel_error"
seed = 3
trials = 6
gdc = "off"
[kernel]
kernel = "rbf"
gamma = 0.2
projection = "orf"
features = 32
projection_seed = 1
points = 30
[data]
path = "data/iris.csv"
header = true
[periphery]
weight_scaling_omega = 1.0
[sweep]
t = ["1h"]
"#;

/// The dispatch `d` with its ADC switched off (`io.out_step` = 0: no rounding, the bound's clip
/// kept): replayed on two backends it shows their pre-ADC values, which the quantised outputs
/// hide.
pub fn without_adc(d: &Dispatch) -> Dispatch {
    let mut params = d.params;
    params.io.out_step = 0.0;
    Dispatch { stage: d.stage, params, groups: d.groups, before: d.before.clone(), after: Vec::new() }
}

/// Two backends' converter outputs on the grid of `step` (the f32 step the quantiser divides by,
/// `io.out_step` or `io.inp_step` of the dispatch): each pair is bit-equal or exactly one step
/// apart (up to `aimc::tolerances::GRID_REL` of the larger value, the rounding of n·step and of
/// the clip); returns how many are one step apart. `what` names the comparison in a failure.
pub fn grid_flips(what: &str, want: &[f32], have: &[f32], step: f32) -> usize {
    assert_eq!(want.len(), have.len(), "{what}: {} values against {}", want.len(), have.len());
    assert!(step > 0.0, "{what}: no converter grid (step {step})");
    let mut flips = 0;
    for (i, (&a, &b)) in want.iter().zip(have).enumerate() {
        if a.to_bits() == b.to_bits() {
            continue;
        }
        let d = (a - b).abs();
        let slack = aimc::tolerances::GRID_REL * a.abs().max(b.abs()).max(step);
        assert!(
            (d - step).abs() <= slack,
            "{what} index {i}: {a} vs {b} differ by {d} = {:.4} steps of {step}; a replay on the same inputs may differ by 0 or exactly 1 step",
            d / step
        );
        flips += 1;
    }
    flips
}

/// The share of one-step flips allowed in `n` outputs: `aimc::tolerances::ADC_FLIP_FRACTION`, and
/// at least one (a handful of outputs may hold one flip).
pub fn max_flips(n: usize) -> usize {
    (aimc::tolerances::ADC_FLIP_FRACTION * n as f64).floor() as usize + 1
}

/// `e` run on the CPU through a checkpoint journal in `dir`, then again from that journal cut
/// after its first chunk (as a kill there leaves it): the uninterrupted run's results and the
/// resumed one's. `e` needs two chunks or more (600 trials of a small model do).
pub fn whole_and_resumed(e: &aimc::config::Experiment, dir: &std::path::Path) -> (aimc::results::Results, aimc::results::Results) {
    use aimc::run::journal::{path_for, Journal};
    let run = || {
        let mut j = Journal::open(dir, &e.resolved).unwrap();
        let o = aimc::run::run_journaled(e, &mut cpu(), &mut aimc::run::Quiet, Some(&mut j));
        assert!(o.error.is_none(), "{:?}", o.error);
        o.results
    };
    let whole = run();
    let lines: Vec<String> = std::fs::read_to_string(path_for(dir)).unwrap().lines().map(str::to_string).collect();
    assert!(lines.len() >= 3, "{} journal lines: the run needs two chunks", lines.len());
    std::fs::write(path_for(dir), lines[..2].join("\n") + "\n").unwrap();
    (whole, run())
}

/// A run with an ideal device and a perfect periphery (the f64 forward's network): `trials`
/// trials in chunks of at most `max_chunk`, at t = 0, GDC off.
pub fn ideal_run(trials: u32, max_chunk: u32) -> aimc::engine::plan::RunConfig {
    aimc::engine::plan::RunConfig {
        reads_per_programming: 1,
        device: aimc::device::DeviceModel::ideal(),
        periphery: aimc::crossbar::Periphery::perfect(),
        gdc: aimc::crossbar::Gdc::Off,
        key: aimc::rng::key(7, 0),
        trials,
        first_trial: 0,
        times: vec![0.0],
        max_chunk,
        layer_noise: Vec::new(),
    }
}

/// Every trial's outputs `y` (one time point, `[trial][sample][n_out]`) against the f64 forward
/// pass of `layers` on each sample of `x` (`per_sample` values each): within `rel` · (1 + |want|).
#[allow(clippy::too_many_arguments)]
pub fn assert_equals_f64_forward(
    what: &str,
    y: &[f32],
    layers: &[aimc::workload::io::Linear],
    acts: &[aimc::workload::Activation],
    x: &[f32],
    per_sample: usize,
    trials: usize,
    rel: f64,
) {
    let batch = x.len() / per_sample;
    for s in 0..batch {
        let want = aimc::workload::forward_f64(layers, acts, &x[s * per_sample..(s + 1) * per_sample]);
        assert_eq!(y.len(), trials * batch * want.len(), "{what}: outputs per trial and sample");
        for trial in 0..trials {
            for (o, w) in want.iter().enumerate() {
                let got = y[(trial * batch + s) * want.len() + o] as f64;
                assert!((got - w).abs() <= rel * (1.0 + w.abs()), "{what}: trial {trial} sample {s} output {o}: engine {got}, f64 forward {w}");
            }
        }
    }
}
