//! The GDC readout through the full forward path (noise-models §6, §7; `gdc_readout` in
//! shaders/common/device.wgsl and its twin): the `drift` stage's readout sums at time t against an
//! independent f64 oracle written here. For the one-hot input on input line j of a tile with n
//! input lines, row i reads W_ij shifted by aihwkit's IR drop (a = n/g·|W_ij|,
//! c = a(a(0.05a − 0.2) + 0.5), shift −ir_drop·c·W_ij(1 − (1 − j/n)²)), plus Gaussian output
//! noise and per-read weight noise (std w_noise, or w_noise·sqrt(|W_ij|) for PCM read), through
//! the ADC (round half to even, clipped to ±out_bound). The oracle sums E|ADC(y)| and its variance
//! over the ADC codes with the normal CDF, from the recorded effective weights, and compares the
//! total with the stage's sum of |readout| over every weight and trial (α's denominator).
//!
//! Fixed seeds, so deterministic. The threshold is far in the tail: a correct readout gives a
//! z-score that is standard normal, so p > 1e-6 does not fire by chance; and each case checks
//! that the readout without weight noise and IR drop would be rejected by a wide margin, so the
//! test can tell the two apart. Without weight noise and IR drop the element is the expression used
//! before, bit for bit.

use crate::common::*;
use aimc::crossbar::{Gdc, MappedMatrix, Periphery, Scaling, TileShape, WeightNoiseType};
use aimc::device::DeviceModel;
use aimc::engine::plan::{run_weight_error, RunConfig};
use aimc::engine::stages::Stage;
use statrs::distribution::{ContinuousCDF, Normal};

const P_MIN: f64 = 1e-6;

/// E|q| and E[q²] of q = clamp(round_half_even((w + s·N)/Δ)·Δ, ±bound), N standard normal, by
/// summing over the codes within 9 s of w.
fn adc_moments(w: f64, s: f64, step: f64, bound: f64) -> (f64, f64) {
    let phi = |x: f64| Normal::new(0.0, 1.0).unwrap().cdf(x);
    let kmax = (bound / step).round() as i64;
    let lo = (((w - 9.0 * s) / step).floor() as i64).max(-kmax - 1);
    let hi = (((w + 9.0 * s) / step).ceil() as i64).min(kmax + 1);
    let (mut m1, mut m2) = (0.0, 0.0);
    for k in lo..=hi {
        // Code k covers ((k − ½)Δ, (k + ½)Δ) (ties have probability 0); the end codes take the
        // tails beyond, which are clipped to the bound or have probability < 1e-18.
        let upper = if k == hi { 1.0 } else { phi(((k as f64 + 0.5) * step - w) / s) };
        let lower = if k == lo { 0.0 } else { phi(((k as f64 - 0.5) * step - w) / s) };
        let q = (k as f64 * step).clamp(-bound, bound);
        m1 += (upper - lower) * q.abs();
        m2 += (upper - lower) * q * q;
    }
    (m1, m2)
}

/// One element's readout mean |·| and variance under `io`, from the weight w on input line j of n.
fn element(io: &Periphery, w: f64, j: usize, n: usize) -> (f64, f64) {
    let mut y = w;
    if io.ir_drop > 0.0 {
        let a = n as f64 / io.ir_drop_g_ratio * w.abs();
        let c = a * (a * (0.05 * a - 0.2) + 0.5);
        let r = 1.0 - j as f64 / n as f64;
        y -= io.ir_drop * c * w * (1.0 - r * r);
    }
    let sw = match io.w_noise_type {
        WeightNoiseType::AdditiveConstant => io.w_noise,
        WeightNoiseType::PcmRead => io.w_noise * w.abs().sqrt(),
    };
    let s = (io.out_noise * io.out_noise + sw * sw).sqrt();
    let step = 2.0 * io.out_bound / ((1u64 << io.out_res_bits) as f64 - 2.0);
    let (m1, m2) = adc_moments(y, s, step, io.out_bound);
    (m1, m2 - m1 * m1)
}

/// Runs `io` with per-tile or per-column GDC and compares the readout sums with the oracle; returns
/// (z, z of the oracle without weight noise and IR drop).
fn case(name: &str, io: Periphery, per_column: bool) -> (f64, f64) {
    let (n_out, n_in) = (40u32, 90u32);
    let w = aimc::rng::uniform_signed((n_out * n_in) as usize, 11);
    let scaling = if per_column { Scaling { omega: 1.0, columnwise: true } } else { Scaling { omega: 1.0, columnwise: false } };
    let m = MappedMatrix::new(&w, n_out, n_in, TileShape { max_in: 48, max_out: 32 }, scaling);
    let cfg = RunConfig {
        reads_per_programming: 1,
        device: DeviceModel::pcm(),
        periphery: io.clone(),
        gdc: if per_column { Gdc::ReadoutPerColumn } else { Gdc::Readout },
        key: aimc::rng::key(17, 0),
        trials: 60,
        times: vec![86400.0],
        max_chunk: 20,
        first_trial: 0,
        layer_noise: Vec::new(),
    };
    let mut rec = Recorder::new();
    run_weight_error(&mut rec, &m, &cfg).unwrap();
    let plain = Periphery { w_noise: 0.0, ir_drop: 0.0, ..io.clone() };
    let (mut got, mut mean, mut var, mut mean_plain, mut var_plain, mut dispatches) = (0.0f64, 0.0, 0.0, 0.0, 0.0, 0);
    for d in rec.log.iter().filter(|d| d.stage == Stage::Drift) {
        dispatches += 1;
        let l = &d.params.layer;
        let (weff, partials) = (f32s(&d.after[3]), f32s(&d.after[4]));
        let used = (l.trials * l.tiles_in * l.tiles_out * l.chunks_per_tile * 2) as usize;
        got += partials[..used].iter().step_by(2).map(|&v| v as f64).sum::<f64>();
        for z in 0..l.trials as usize {
            for t in &m.tiles {
                for r in t.row_start..t.row_start + t.rows {
                    for j in 0..t.cols as usize {
                        let we = weff[z * (n_out * n_in) as usize + (r * n_in + t.col_start) as usize + j] as f64;
                        let (m1, v1) = element(&io, we, j, t.cols as usize);
                        let (m0, v0) = element(&plain, we, j, t.cols as usize);
                        (mean, var, mean_plain, var_plain) = (mean + m1, var + v1, mean_plain + m0, var_plain + v0);
                    }
                }
            }
        }
    }
    assert_eq!(dispatches, 3, "{name}: one drift dispatch per chunk of 20 trials");
    let z = (got - mean) / var.sqrt();
    let z_plain = (got - mean_plain) / var_plain.sqrt();
    eprintln!(
        "{name}: readout sum {got:.3}, oracle {mean:.3} ± {:.3} (z = {z:.2}); without w_noise and IR drop {mean_plain:.3} (z = {z_plain:.1})",
        var.sqrt()
    );
    (z, z_plain)
}

fn p_two_sided(z: f64) -> f64 {
    2.0 * (1.0 - Normal::new(0.0, 1.0).unwrap().cdf(z.abs()))
}

#[test]
fn gdc_readout_with_weight_noise_and_ir_drop_matches_the_f64_oracle() {
    let base = Periphery { weight_scaling_omega: 1.0, ..Periphery::default() };
    let cases = [
        ("additive w_noise 0.1", Periphery { w_noise: 0.1, w_noise_type: WeightNoiseType::AdditiveConstant, ..base.clone() }, false),
        ("PCM-read w_noise 0.3", Periphery { w_noise: 0.3, w_noise_type: WeightNoiseType::PcmRead, ..base.clone() }, false),
        (
            "IR drop, PCM-read w_noise, per column",
            Periphery { w_noise: 0.1, w_noise_type: WeightNoiseType::PcmRead, ir_drop: 1.0, ir_drop_g_ratio: 200.0, ..base.clone() },
            true,
        ),
    ];
    for (name, io, per_column) in cases {
        let (z, z_plain) = case(name, io, per_column);
        let p = p_two_sided(z);
        assert!(p > P_MIN, "{name}: readout sum z = {z:.2} against the f64 oracle, p = {p:.3e}");
        // The readout without the full path would fail by far: the test has the power to see it.
        assert!(p_two_sided(z_plain) < 1e-12, "{name}: the oracle without weight noise and IR drop fits too (z = {z_plain:.2})");
    }
}

/// Without per-read weight noise and IR drop the readout element is the expression `drift` used
/// before the full path reached it, bit for bit (so such runs give the same numbers as before).
#[test]
fn gdc_readout_without_weight_noise_or_ir_drop_is_unchanged() {
    use aimc::engine::cpu::common::{adc, gdc_readout};
    use aimc::engine::layout::IoParams;
    let io = IoParams::from(&Periphery::default());
    let (w, z) = (aimc::rng::uniform_signed(4096, 5), aimc::rng::uniform_signed(4096, 6));
    for (i, (&w, &z)) in w.iter().zip(&z).enumerate() {
        let (w, z) = (1.5 * w, 4.0 * z);
        let (got, want) = (gdc_readout(&io, w, i as u32 % 48, 48, z), adc(&io, w + io.out_noise * z));
        assert_eq!(got.to_bits(), want.to_bits(), "w = {w}, z = {z}: {got} against {want}");
    }
}
