//! `aimc bench`: three throughput cases, each printed beside the floor computed for the adapter
//! that ran it, and their ratio (speed is measured, never asserted in tests).
//!
//! Floors. The adapter's own ceilings are measured first with two microkernels: Philox4x32-10
//! blocks/s (`peak_philox`) and FP32 FMA FLOP/s (`peak_fma`). A case's floor is the time its
//! unavoidable work takes at those ceilings; the rate at the floor is what "100 %" means.
//! - (a) device state, full PCM model, one time point: per device sample 5 Philox blocks
//!   (programming pair and drift exponents; the same block again in `drift`, which regenerates
//!   rather than stores; read noise; GDC readout; GDC baseline, computed at the first time point
//!   only), plus 8 bytes of traffic (read W, write W_eff).
//! - (b) single-vector MVM, programming noise only, weights regenerated in registers: 1 Philox
//!   block and 2 FLOPs per MAC; no weight traffic.
//! - (c) batched inference: 2·B·in·out FLOPs per trial and one Philox block per output and input
//!   tile (output noise).
//!
//! The Box–Muller transcendental and model arithmetic are not counted, so the floors are
//! optimistic and a ratio near 1 is out of reach by construction.

use crate::crossbar::{Gdc, MappedMatrix, Periphery, TileShape};
use crate::device::DeviceModel;
use crate::engine::plan::{self, AnalogLayer, RunConfig};
use crate::engine::stages::Stage;
use crate::engine::{Backend, BackendChoice, EngineError};

struct Case {
    name: &'static str,
    size: String,
    rate: f64,
    floor: f64,
    unit: &'static str,
}

fn weights(n: usize) -> Vec<f32> {
    crate::rng::uniform_signed(n, 0xBE_4C4)
}

/// Bell-shaped values (sum of four uniforms), like trained weights and activations: after
/// max-normalisation most are small, so the ADC rarely saturates (uniform values would make most
/// outputs saturate and measure bound management instead of the GEMM).
fn bell(n: usize) -> Vec<f32> {
    let u = weights(4 * n);
    (0..n).map(|i| (u[4 * i] + u[4 * i + 1] + u[4 * i + 2] + u[4 * i + 3]) / 4.0).collect()
}

fn cfg(trials: u32, dev: DeviceModel, gdc: Gdc) -> RunConfig {
    RunConfig {
        device: dev,
        periphery: Periphery::default(),
        gdc,
        key: crate::rng::key(1, 0),
        trials,
        times: vec![3600.0],
        max_chunk: u32::MAX,
        first_trial: 0,
    }
}

/// Peak Philox blocks/s and FMA FLOP/s of the backend.
pub fn peaks(be: &mut dyn Backend, small: bool) -> Result<(f64, f64), EngineError> {
    let items = if small { 1 << 14 } else { 1 << 20 };
    let iters = if small { 64 } else { 256 };
    plan::time_peak(be, Stage::PeakPhilox, 256, 4)?; // warm-up: pipeline creation
    let tp = plan::time_peak(be, Stage::PeakPhilox, items, iters)?;
    plan::time_peak(be, Stage::PeakFma, 256, 4)?;
    let fma_iters = iters * 16;
    let tf = plan::time_peak(be, Stage::PeakFma, items, fma_iters)?;
    Ok((items as f64 * iters as f64 / tp, items as f64 * fma_iters as f64 * 16.0 / tf))
}

pub fn run(choice: BackendChoice, size: &str, breakdown: bool) -> Result<(), EngineError> {
    let _ = breakdown;
    let small = match size {
        "small" => true,
        "full" => false,
        other => return Err(EngineError::Invalid(format!("--size {other}: use full or small"))),
    };
    let mut be = crate::engine::open(choice)?;
    let ad = be.adapter();
    println!("adapter: {} ({}, {}, driver {})", ad.name, ad.backend, ad.device_type, ad.driver);
    let (philox, flops) = peaks(be.as_mut(), small)?;
    println!("measured ceilings: {:.3} G Philox4x32-10 blocks/s, {:.3} TFLOP/s FP32 FMA", philox / 1e9, flops / 1e12);
    let mut cases = Vec::new();

    // (a) Device state, full PCM model, 512 x 512 tile.
    let trials_a = if small { 16 } else { 4096 };
    let m = MappedMatrix::new(&weights(512 * 512), 512, 512, TileShape::default(), 1.0);
    let c = cfg(trials_a, DeviceModel::pcm(), Gdc::Readout);
    plan::time_device_state(be.as_mut(), &m, &cfg(2, DeviceModel::pcm(), Gdc::Readout))?;
    let t = plan::time_device_state(be.as_mut(), &m, &c)?;
    let samples = trials_a as f64 * m.len() as f64;
    cases.push(Case { name: "(a) device state", size: format!("512x512, {trials_a} trials"), rate: samples / t, floor: philox / 5.0, unit: "samples/s" });

    // (b) Single-vector MVMs, programming noise only, weights regenerated in registers.
    let trials_b = if small { 16 } else { 8192 };
    let xq: Vec<f32> = weights(512).iter().map(|v| (v * 63.0).round() / 63.0).collect();
    let dev_b = DeviceModel { drift_scale: 0.0, read_noise_scale: 0.0, ..DeviceModel::pcm() };
    plan::run_program_mvm(be.as_mut(), &m, &xq, &cfg(2, dev_b.clone(), Gdc::Off))?;
    let start = std::time::Instant::now();
    plan::run_program_mvm(be.as_mut(), &m, &xq, &cfg(trials_b, dev_b, Gdc::Off))?;
    let t = start.elapsed().as_secs_f64();
    let macs = trials_b as f64 * m.len() as f64;
    let floor_b = 1.0 / (1.0 / philox + 2.0 / flops);
    cases.push(Case { name: "(b) single-vector MVM", size: format!("512x512, {trials_b} trials"), rate: macs / t, floor: floor_b, unit: "MAC/s" });

    // (c) Batched inference, 1024 x 1024 layer.
    let (trials_c, batch) = if small { (2u32, 64u32) } else { (256, 256) };
    let layer = AnalogLayer { mapped: MappedMatrix::new(&bell(1024 * 1024), 1024, 1024, TileShape::default(), 1.0), bias: vec![0.0; 1024], activation: 1 };
    let x: Vec<f32> = bell(batch as usize * 1024);
    let reps = if small { 1 } else { 5 };
    plan::time_inference(be.as_mut(), &layer, &x, batch, &cfg(1, DeviceModel::pcm(), Gdc::Readout), 1)?;
    let t = plan::time_inference(be.as_mut(), &layer, &x, batch, &cfg(trials_c, DeviceModel::pcm(), Gdc::Readout), reps)?;
    let flop = 2.0 * batch as f64 * 1024.0 * 1024.0 * trials_c as f64 * reps as f64;
    let blocks = batch as f64 * 1024.0 * 2.0 * trials_c as f64 * reps as f64;
    let floor_t = flop / flops + blocks / philox;
    cases.push(Case {
        name: "(c) batched inference",
        size: format!("1024x1024, batch {batch}, {trials_c} trials"),
        rate: flop / t,
        floor: flop / floor_t,
        unit: "FLOP/s",
    });

    println!("{:<24} {:<32} {:>14} {:>14} {:>8}", "case", "size", "measured", "floor", "ratio");
    for c in &cases {
        println!("{:<24} {:<32} {:>14} {:>14} {:>7.1}%", c.name, c.size, si(c.rate, c.unit), si(c.floor, c.unit), 100.0 * c.rate / c.floor);
    }
    Ok(())
}

fn si(v: f64, unit: &str) -> String {
    let (d, p) = if v >= 1e12 {
        (1e12, "T")
    } else if v >= 1e9 {
        (1e9, "G")
    } else if v >= 1e6 {
        (1e6, "M")
    } else {
        (1e3, "k")
    };
    format!("{:.3} {p}{unit}", v / d)
}
