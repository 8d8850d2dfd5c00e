//! The injected noise of one hardware-aware training run (`[training]`, src/train/hwa.rs): the
//! noise generator and resolved device model ([`Injector`]), the per-mini-batch weight noise
//! (aihwkit's `ADD_NORMAL` modifier or the device model's programming, drift and read noise,
//! Joshi et al., Nat. Commun. 11, 2473, 2020), the clipping after each update (aihwkit's
//! `LAYER_GAUSSIAN`), the DAC and the output noise of the forward pass. The crossbar periphery
//! lives in src/train/periphery.rs, the other weight modifiers in src/train/modifier.rs.

use rand::{RngCore, SeedableRng};
use rand_pcg::Pcg64Mcg;

use super::hwa::TrainingConfig;
use crate::device::DeviceModel;

/// A parameter tensor of a trainer's model, by its state-dict name: crossbar matrices carry
/// their (rows, cols) as mapped (a convolution's `[C_out, C_in·k·k]`).
pub struct Param<'a> {
    pub name: String,
    pub data: &'a mut Vec<f32>,
    pub matrix: Option<(usize, usize)>,
    /// A fixed tensor that gets no gradient (the transformer's kernel feature projection): as a
    /// crossbar matrix it still draws weight noise, but it is never clipped ([`Injector::clip`]).
    pub fixed: bool,
}

/// The injected noise of one training run: the configuration, the resolved device model and the
/// noise generator.
pub struct Injector {
    pub cfg: TrainingConfig,
    device: Option<DeviceModel>,
    t_inf: f64,
    rng: Pcg64Mcg,
}

impl Injector {
    /// The injector of `cfg` for a trainer seeded with `seed` (the config is checked).
    pub fn new(cfg: &TrainingConfig, seed: u64) -> Injector {
        // Every reader checks the config (`parse`, `read`), and a checked config resolves.
        let device = cfg.resolved_device().unwrap_or_else(|e| panic!("an unchecked [training] section reached the injector: {e}")).map(|mut d| {
            d.prog_noise_scale *= cfg.weight_noise_scale;
            d.read_noise_scale *= cfg.weight_noise_scale;
            d
        });
        let t_inf = if cfg.weight_noise_time.is_empty() { 0.0 } else { crate::config::time::parse_time(&cfg.weight_noise_time).unwrap_or(0.0) };
        // A fixed odd constant keeps this stream apart from the trainer's own (same seed).
        let rng = Pcg64Mcg::seed_from_u64(seed ^ 0x9E37_79B9_7F4A_7C15 ^ cfg.noise_seed.wrapping_mul(0xD1B5_4A32_D192_ED03));
        Injector { cfg: cfg.clone(), device, t_inf, rng }
    }

    /// An injector that injects nothing.
    pub fn off() -> Injector {
        Injector::new(&TrainingConfig::default(), 0)
    }

    /// Whether the weights are perturbed per mini-batch.
    pub fn perturbs_weights(&self) -> bool {
        self.cfg.weight_noise != "none"
    }

    /// Whether forward passes quantise inputs or outputs, clip outputs or add output noise.
    pub fn touches_forward(&self) -> bool {
        self.cfg.touches_forward()
    }

    /// Approximately standard normal (Irwin–Hall(12) − 6, 53-bit uniforms).
    pub fn normal(&mut self) -> f64 {
        super::normal(&mut self.rng)
    }

    /// Draws this mini-batch's noisy version of every crossbar matrix in `params` in place
    /// (the caller passes a copy of the model).
    pub fn perturb(&mut self, params: Vec<Param<'_>>) {
        if !self.perturbs_weights() {
            return;
        }
        for p in params {
            if let Some((_, cols)) = p.matrix {
                self.perturb_rows(p.data, cols);
            }
        }
    }

    /// [`Injector::perturb_matrix`] on a matrix of rows of `cols` values: a device model that
    /// scales each output row on its own (`scale_per_row`, the AFM preset) maps each row's max|W|
    /// to g_max; any other takes the whole matrix.
    pub fn perturb_rows(&mut self, w: &mut [f32], cols: usize) {
        if self.device.as_ref().is_some_and(|d| d.scale_per_row) && cols > 0 {
            for row in w.chunks_mut(cols) {
                self.perturb_matrix(row);
            }
        } else {
            self.perturb_matrix(w);
        }
    }

    /// One matrix's noisy copy, in place (see the module header), then drop connect
    /// (`weight_noise_pdrop`). An all-zero matrix stays as it is.
    pub fn perturb_matrix(&mut self, w: &mut [f32]) {
        let wmax = w.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
        if wmax == 0.0 {
            return;
        }
        match self.device.clone() {
            Some(dev) => self.program_matrix(w, wmax, &dev),
            None => self.modify(w, wmax),
        }
        self.drop_connect(w);
    }

    /// Uniform on [0, 1) (53 bits).
    pub fn uniform(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A device model's noisy copy of one matrix (max|W| = `wmax` > 0): programmed, and drifted
    /// with `weight_noise_time`.
    fn program_matrix(&mut self, w: &mut [f32], wmax: f64, dev: &DeviceModel) {
        let s = dev.g_max / wmax;
        if dev.programming == crate::device::Programming::Weight {
            // One signed draw per weight (the AFM preset): no pair, no drift.
            for v in w.iter_mut() {
                *v = (dev.program_weight(s * *v as f64, self.normal()) / s) as f32;
            }
            return;
        }
        // The differential pair of aimc's program stage: max|W| maps to g_max.
        let mut prog = Vec::with_capacity(w.len());
        let mut nus = Vec::with_capacity(w.len());
        for &v in w.iter() {
            let (gp_t, gn_t) = ((s * v as f64).clamp(0.0, dev.g_max), (-s * v as f64).clamp(0.0, dev.g_max));
            let gp = dev.program(gp_t, self.normal());
            let gn = dev.program(gn_t, self.normal());
            let wp = (gp - gn) / s;
            prog.push(wp);
            if self.t_inf > 0.0 {
                // aihwkit's tile path: the device that holds the weight drifts with the exponent of
                // its sign's target.
                let target = if wp >= 0.0 { gp_t } else { gn_t };
                nus.push(dev.nu(target, self.normal()));
            }
        }
        if self.t_inf == 0.0 {
            for (v, p) in w.iter_mut().zip(&prog) {
                *v = *p as f32;
            }
            return;
        }
        let pmax = prog.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-30);
        let s2 = dev.g_max / pmax;
        let drifted: Vec<f64> =
            prog.iter().zip(&nus).map(|(&wp, &nu)| wp.signum() * dev.drift_read(wp.abs() * s2, nu, self.t_inf, self.normal()) / s2).collect();
        // One global factor restores the mean |W| (drift compensation on average).
        let (a, b) = (prog.iter().map(|v| v.abs()).sum::<f64>(), drifted.iter().map(|v| v.abs()).sum::<f64>());
        let alpha = if b > 0.0 { a / b } else { 1.0 };
        for (v, d) in w.iter_mut().zip(&drifted) {
            *v = (alpha * d) as f32;
        }
    }

    /// Clips every trained crossbar matrix of `params` to ±clip_sigma·std(W) (after an update).
    /// This is the one place that decides what is clipped: a fixed matrix (`Param::fixed`, no
    /// gradient) is left as drawn or loaded, since clipping it again at every step would only cut
    /// its largest entries, not keep an update in range (aihwkit's `LAYER_GAUSSIAN` clips the
    /// weights it trains).
    pub fn clip(&self, params: Vec<Param<'_>>) {
        if self.cfg.clip_sigma <= 0.0 {
            return;
        }
        for p in params {
            if p.matrix.is_some() && !p.fixed {
                clip_matrix(p.data, self.cfg.clip_sigma);
            }
        }
    }

    /// The DAC: `x` quantised in place to `dac_bits` over its max|x| (aihwkit's abs-max noise
    /// management and input step 2/(2^bits − 2) of the unit range). Identity without a DAC.
    pub fn dac(&self, x: &mut [f32]) {
        if self.cfg.dac_bits == 0 {
            return;
        }
        let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        if amax == 0.0 {
            return;
        }
        let step = crate::crossbar::step(self.cfg.dac_bits, 1.0) as f32;
        for v in x.iter_mut() {
            *v = ((*v / amax / step).round() * step).clamp(-1.0, 1.0) * amax;
        }
    }

    /// Adds output noise to the outputs `y` of an MVM whose input had max|x| = `xmax`.
    pub fn output_noise(&mut self, y: &mut [f32], xmax: f32) {
        if self.cfg.output_noise <= 0.0 || xmax == 0.0 {
            return;
        }
        let s = self.cfg.output_noise * xmax as f64;
        for v in y.iter_mut() {
            *v = (*v as f64 + s * self.normal()) as f32;
        }
    }
}

/// ±k·std(W) clipping of one matrix (population std about the mean).
pub fn clip_matrix(w: &mut [f32], k: f64) {
    let n = w.len().max(1) as f64;
    let mean = w.iter().map(|&v| v as f64).sum::<f64>() / n;
    let std = (w.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
    let bound = (k * std) as f32;
    if bound > 0.0 {
        for v in w.iter_mut() {
            *v = v.clamp(-bound, bound);
        }
    }
}

/// max|x| of a vector.
pub fn abs_max(x: &[f32]) -> f32 {
    x.iter().fold(0.0f32, |m, v| m.max(v.abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_noise_has_the_relative_std_and_is_reproducible() {
        let cfg = TrainingConfig { weight_noise: "gaussian".into(), weight_noise_std: 0.1, ..TrainingConfig::default() };
        let w0: Vec<f32> = (0..20_000).map(|i| if i == 0 { 2.0 } else { 0.5 }).collect();
        let (mut a, mut b) = (w0.clone(), w0.clone());
        Injector::new(&cfg, 1).perturb_matrix(&mut a);
        Injector::new(&cfg, 1).perturb_matrix(&mut b);
        assert_eq!(a, b);
        let d: Vec<f64> = a.iter().zip(&w0).skip(1).map(|(x, y)| (x - y) as f64).collect();
        let mean = d.iter().sum::<f64>() / d.len() as f64;
        let sd = (d.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d.len() as f64).sqrt();
        // σ = 0.1 · max|W| = 0.2; the std of 2·10⁴ draws is within 3 % of it (about 6 standard errors).
        assert!((sd - 0.2).abs() < 0.006 && mean.abs() < 0.01, "sd {sd}, mean {mean}");
    }

    #[test]
    fn pcm_noise_follows_the_device_model() {
        // A weight at max|W| sits at g_max = 25 µS on G+, 0 on G−; σ_prog(25) = 0.26348 + 1.965 − 1.1731
        // = 1.0554 µS and σ_prog(0) = 0.26348 µS (folded at 0), so the programmed weight's std is
        // about √(1.0554² + 0.264²·(1 − 2/π)·…)/25 of max|W|: between 1.0554/25 and 1.09/25.
        let cfg = TrainingConfig { weight_noise: "pcm".into(), ..TrainingConfig::default() };
        let mut inj = Injector::new(&cfg, 3);
        let n = 20_000;
        let mut vals = Vec::with_capacity(n);
        for _ in 0..n / 2 {
            let mut w = vec![1.0f32, 1.0];
            inj.perturb_matrix(&mut w);
            vals.extend(w.iter().map(|&v| v as f64));
        }
        let mean = vals.iter().sum::<f64>() / n as f64;
        let sd = (vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
        assert!(sd > 0.97 * 1.0554 / 25.0 && sd < 1.03 * 1.09 / 25.0, "sd {sd}");
        // The G− device programmed from 0 is clamped at 0: it lowers the mean by E[max(0, 0.26 N)] / 25.
        let expect = 1.0 - 0.26348 / (2.0 * std::f64::consts::PI).sqrt() / 25.0;
        assert!((mean - expect).abs() < 0.002, "mean {mean}, expected {expect}");
        // Drifted to 10 years and compensated: the mean |W| is restored, the spread grows.
        let cfg = TrainingConfig { weight_noise: "pcm".into(), weight_noise_time: "10y".into(), ..TrainingConfig::default() };
        let mut inj = Injector::new(&cfg, 3);
        // The AFM preset: rows scaled on their own to 180; |w| below 0.6 of 180 becomes 0.
        let afm = TrainingConfig { weight_noise: "afm".into(), ..TrainingConfig::default() };
        let mut a = vec![1.0f32, 0.001, 0.5, 0.0, 100.0, 0.1, 50.0, 0.0];
        Injector::new(&afm, 1).perturb_rows(&mut a, 4);
        assert_eq!((a[1], a[3], a[5], a[7]), (0.0, 0.0, 0.0, 0.0), "{a:?}");
        assert!((a[0] - 1.0).abs() < 0.2 && (a[4] - 100.0).abs() < 20.0, "{a:?}");
        let mut w: Vec<f32> = (0..4000).map(|i| ((i % 9) as f32 - 4.0) / 4.0).collect();
        let before: f64 = w.iter().map(|v| v.abs() as f64).sum();
        inj.perturb_matrix(&mut w);
        let after: f64 = w.iter().map(|v| v.abs() as f64).sum();
        assert!((after / before - 1.0).abs() < 0.05, "{after} vs {before}");
    }

    #[test]
    fn a_fixed_matrix_draws_noise_but_is_not_clipped() {
        let cfg = TrainingConfig { weight_noise: "pcm".into(), clip_sigma: 1.0, ..TrainingConfig::default() };
        let w0 = vec![0.0f32, 0.0, 0.0, 10.0];
        let (mut trained, mut fixed) = (w0.clone(), w0.clone());
        // A trained matrix and a fixed one (no gradient, as the kernel feature projection).
        let both = |t: &mut Vec<f32>, f: &mut Vec<f32>, inj: &mut Injector, clip: bool| {
            let ps = vec![
                Param { name: "w".into(), data: t, matrix: Some((2, 2)), fixed: false },
                Param { name: "p".into(), data: f, matrix: Some((2, 2)), fixed: true },
            ];
            if clip {
                inj.clip(ps)
            } else {
                inj.perturb(ps)
            }
        };
        let mut inj = Injector::new(&cfg, 0);
        both(&mut trained, &mut fixed, &mut inj, true);
        assert!((trained[3] - 4.330_127).abs() < 1e-5, "the trained matrix is clipped: {trained:?}");
        assert_eq!(fixed, w0, "the fixed matrix is not clipped");
        both(&mut trained, &mut fixed, &mut inj, false);
        assert_ne!(fixed, w0, "the fixed matrix draws weight noise");
    }

    #[test]
    fn dac_clip_and_output_noise() {
        let inj = Injector::new(&TrainingConfig { dac_bits: 3, ..TrainingConfig::default() }, 0);
        // 3 bits: step 2/6 of the unit range; max|x| = 3 maps to 1.
        let mut x = vec![3.0f32, 0.4, -1.6, 0.0];
        inj.dac(&mut x);
        let step = 3.0 / 3.0;
        assert_eq!(x, vec![3.0, 0.0, -2.0 * step, 0.0]);
        let mut w = vec![0.0f32, 0.0, 0.0, 10.0];
        clip_matrix(&mut w, 1.0);
        // mean 2.5, std √18.75 = 4.33.
        assert!((w[3] - 4.330_127).abs() < 1e-5, "{w:?}");
        let mut inj = Injector::new(&TrainingConfig { output_noise: 0.1, ..TrainingConfig::default() }, 0);
        let mut y = vec![0.0f32; 20_000];
        inj.output_noise(&mut y, 2.0);
        let sd = (y.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / y.len() as f64).sqrt();
        assert!((sd - 0.2).abs() < 0.006, "{sd}");
        let mut z = vec![1.0f32; 4];
        Injector::off().output_noise(&mut z, 2.0);
        assert_eq!(z, vec![1.0; 4]);
    }
}
