//! Timed plans for `aimc bench`: device-state and inference stages, dispatch overhead and peaks.

use super::*;

/// Seconds for the device-state stages (`program`, then `drift` + `gdc` at each time) over all
/// trials, with nothing read back but the last GDC factors (which waits for the work).
pub fn time_device_state(be: &mut dyn Backend, m: &MappedMatrix, cfg: &RunConfig) -> Result<f64, EngineError> {
    check_indices(m, 0)?;
    let chunk = chunk_size(be, cfg, state_bytes(m, &cfg.device), "the programmed state of one trial")?;
    let b = MatrixBufs::new(be, m, chunk, cfg);
    be.finish()?;
    let start = std::time::Instant::now();
    let res = device_state_chunks(be, m, 0, cfg, &b, chunk, &mut |_, _, _, _| Ok(()), &mut |_| {}).and_then(|_| be.download(b.alpha));
    let secs = start.elapsed().as_secs_f64();
    b.free(be);
    res.map(|_| secs)
}

/// Seconds for `reps` whole batched inferences of one layer at one time point over all trials of
/// one chunk: device state (`program`, `drift`, `gdc`), then `dac`, `mvm`, `bound`, `combine`.
/// One untimed pass first builds the pipelines.
pub fn time_inference(be: &mut dyn Backend, layer: &AnalogLayer, x: &[f32], batch: u32, cfg: &RunConfig, reps: u32) -> Result<f64, EngineError> {
    let m = &layer.mapped;
    check_indices(m, 0)?;
    let n = cfg.trials;
    let per_trial = (m.tiles_in as u64 * batch as u64 * m.n_out as u64 * 4).max(state_bytes(m, &cfg.device));
    if chunk_size(be, cfg, per_trial, "one trial's weights or outputs")? < n {
        return Err(EngineError::TooLarge {
            what: format!("{n} trials of a {} x {} layer with batch {batch}", m.n_out, m.n_in),
            need: per_trial * n as u64,
            limit: be.max_binding_bytes(),
            fix: "the trial count of the benchmark".into(),
        });
    }
    let b = MatrixBufs::new(be, m, n, cfg);
    let x0 = be.create("x", x.len());
    be.upload(x0, bytemuck::cast_slice(x));
    let scratch = MvmBufs::new(be, n, &[(batch, m)]);
    let h = be.create("h", n as usize * batch as usize * m.n_out as usize);
    let bias = be.create("bias", m.n_out as usize);
    be.upload(bias, bytemuck::cast_slice(&layer.bias));
    let mut p = params(cfg, 0, m, n, 0, batch, 0, cfg.times[0]);
    p.layer.activation = layer.activation;
    let pass = |be: &mut dyn Backend| {
        record_program(be, &p, m, &b);
        record_drift(be, &p, m, &b);
        record_layer(be, &p, m, &b, &scratch, x0, bias, h);
    };
    pass(be);
    be.download(bias)?;
    let start = std::time::Instant::now();
    for _ in 0..reps {
        pass(be);
    }
    be.download(bias)?;
    let secs = start.elapsed().as_secs_f64();
    b.free(be);
    scratch.free(be);
    for bb in [x0, h, bias] {
        be.free(bb);
    }
    Ok(secs)
}

/// Seconds per dispatch of `n` back-to-back one-invocation dispatches (two alternating buffers,
/// one readback at the end): the fixed cost a plan pays per dispatch, host recording included.
pub fn time_dispatch_overhead(be: &mut dyn Backend, n: u32) -> Result<f64, EngineError> {
    let mut p = StageParams::default();
    p.layer.trials = 1;
    p.layer.batch = 1;
    let sinks = [be.create("sink", 1), be.create("sink", 1)];
    be.dispatch(Stage::PeakPhilox, &p, &[sinks[0]], [1, 1, 1]);
    be.download(sinks[0])?;
    let start = std::time::Instant::now();
    for i in 0..n {
        be.dispatch(Stage::PeakPhilox, &p, &[sinks[i as usize % 2]], [1, 1, 1]);
    }
    be.download(sinks[0])?;
    let secs = start.elapsed().as_secs_f64() / n.max(1) as f64;
    for s in sinks {
        be.free(s);
    }
    Ok(secs)
}

/// Seconds for a peak-throughput stage (`PeakPhilox` or `PeakFma`): `items` invocations of
/// `iters` iterations each.
pub fn time_peak(be: &mut dyn Backend, stage: Stage, items: u32, iters: u32) -> Result<f64, EngineError> {
    let mut p = StageParams::default();
    p.layer.trials = items;
    p.layer.batch = iters;
    p.layer.key0 = 0x1234_5678;
    p.io.out_noise = 1e-3;
    let sink = be.create("sink", items as usize);
    let wg = be.wg();
    be.download(sink)?;
    let start = std::time::Instant::now();
    be.dispatch(stage, &p, &[sink], grid(items as u64, wg));
    be.download(sink)?;
    let secs = start.elapsed().as_secs_f64();
    be.free(sink);
    Ok(secs)
}
