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
        Injector { cfg: cfg.clone(), device, t_inf, rng: noise_rng(cfg, seed) }
    }

    /// This injector's configuration and device with the generator `Injector::new(cfg, seed)`
    /// would have: the config is read and the device resolved once for all of a draw's blocks.
    fn reseeded(&self, seed: u64) -> Injector {
        Injector { cfg: self.cfg.clone(), device: self.device.clone(), t_inf: self.t_inf, rng: noise_rng(&self.cfg, seed) }
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
            self.program_weights(w, s, dev);
            return;
        }
        if let Some(relax) = &dev.relax_table {
            self.relax_matrix(w, s, dev, relax.index_of(self.t_inf));
            return;
        }
        if dev.log_relax.is_some() {
            self.single_matrix(w, dev);
            return;
        }
        if dev.pair_factors().len() > 1 || dev.has_stuck() {
            self.program_on_pairs(w, wmax, dev);
            return;
        }
        let (prog, nus) = self.program_pairs(w, s, dev, self.t_inf > 0.0);
        if self.t_inf == 0.0 {
            for (v, p) in w.iter_mut().zip(&prog) {
                *v = *p as f32;
            }
            return;
        }
        let pmax = prog.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let drifted = self.drift_pairs(&prog, &nus, dev.g_max / pmax.max(1e-30), dev);
        // One global factor restores the mean |W| (drift compensation on average).
        let (a, b) = (abs_sum(&prog), abs_sum(&drifted));
        compensate(w, &drifted, a, b);
    }

    /// A relaxation table (ReRAM, aimc's `drift` with `drift_path` 2): the pair programmed with
    /// the first time's σ, and with `weight_noise_time` (table time `k`) each device redrawn about
    /// its target and re-converted with s2 = g_max / max|W_prog|, then compensated on average as
    /// the drifted PCM weights are. Without a time the programmed weights.
    fn relax_matrix(&mut self, w: &mut [f32], s: f64, dev: &DeviceModel, k: Option<usize>) {
        let (prog, _) = self.program_pairs(w, s, dev, false);
        let Some(k) = k.filter(|_| self.t_inf > 0.0) else {
            for (v, p) in w.iter_mut().zip(&prog) {
                *v = *p as f32;
            }
            return;
        };
        let s2 = dev.g_max / prog.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-30);
        let read: Vec<f64> = w
            .iter()
            .map(|&v| {
                let (gp_t, gn_t) = ((s * v as f64).clamp(0.0, dev.g_max), (-s * v as f64).clamp(0.0, dev.g_max));
                (dev.relaxed(k, gp_t, self.normal()) - dev.relaxed(k, gn_t, self.normal())) / s2
            })
            .collect();
        let (a, b) = (abs_sum(&prog), abs_sum(&read));
        compensate(w, &read, a, b);
    }

    /// One device per weight (CMO ReRAM, aimc's `drift` with `drift_path` 3): the matrix's range
    /// [min W, max W] mapped onto [g_min, g_max] and programmed, and with `weight_noise_time` the
    /// programmed weights re-converted with their own range, relaxed and read
    /// ([`DeviceModel::log_relaxed`]), converted back and compensated on average as the drifted
    /// PCM weights are.
    fn single_matrix(&mut self, w: &mut [f32], dev: &DeviceModel) {
        let range = |v: &mut dyn Iterator<Item = f64>| v.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| (lo.min(x), hi.max(x)));
        let (lo, hi) = range(&mut w.iter().map(|&v| v as f64));
        let sc = (dev.g_max - dev.g_min) / (hi - lo).max(1e-30);
        let prog: Vec<f64> = w.iter().map(|&v| lo + (dev.program_single((v as f64 - lo) * sc + dev.g_min, self.normal()) - dev.g_min) / sc).collect();
        if self.t_inf == 0.0 {
            for (v, p) in w.iter_mut().zip(&prog) {
                *v = *p as f32;
            }
            return;
        }
        let (lo2, hi2) = range(&mut prog.iter().copied());
        let sc2 = (dev.g_max - dev.g_min) / (hi2 - lo2).max(1e-30);
        let read: Vec<f64> = prog
            .iter()
            .map(|&p| {
                let n = [self.normal(), self.normal()];
                lo2 + (dev.log_relaxed((p - lo2) * sc2 + dev.g_min, self.t_inf, n) - dev.g_min) / sc2
            })
            .collect();
        let (a, b) = (abs_sum(&prog), abs_sum(&read));
        compensate(w, &read, a, b);
    }

    /// One signed draw per weight (the AFM preset): no pair, no drift; `s` maps weights to µS.
    fn program_weights(&mut self, w: &mut [f32], s: f64, dev: &DeviceModel) {
        for v in w.iter_mut() {
            *v = (dev.program_weight(s * *v as f64, self.normal()) / s) as f32;
        }
    }

    /// The differential pair of aimc's program stage (max|W| maps to g_max at scale `s`): each
    /// weight programmed on G+ and G− ([`DeviceModel::program`]), and `with_nu` (PCM read at a
    /// `weight_noise_time`) the drift exponent of the device that holds it. Returns the programmed weights and the
    /// exponents (empty without drift).
    fn program_pairs(&mut self, w: &[f32], s: f64, dev: &DeviceModel, with_nu: bool) -> (Vec<f64>, Vec<f64>) {
        let mut prog = Vec::with_capacity(w.len());
        let mut nus = Vec::with_capacity(if with_nu { w.len() } else { 0 });
        for &v in w.iter() {
            let (gp_t, gn_t) = ((s * v as f64).clamp(0.0, dev.g_max), (-s * v as f64).clamp(0.0, dev.g_max));
            let gp = dev.program(gp_t, self.normal());
            let gn = dev.program(gn_t, self.normal());
            let wp = (gp - gn) / s;
            prog.push(wp);
            if with_nu {
                // aihwkit's tile path: the device that holds the weight drifts with the exponent of
                // its sign's target.
                let target = if wp >= 0.0 { gp_t } else { gn_t };
                nus.push(dev.nu(target, self.normal()));
            }
        }
        (prog, nus)
    }

    /// The programmed weights re-converted at `s2` = g_max / max|W_prog| (aihwkit's tile path),
    /// drifted to `weight_noise_time` with their exponents and read once.
    fn drift_pairs(&mut self, prog: &[f64], nus: &[f64], s2: f64, dev: &DeviceModel) -> Vec<f64> {
        prog.iter().zip(nus).map(|(&wp, &nu)| wp.signum() * dev.drift_read(wp.abs() * s2, nu, self.t_inf, self.normal()) / s2).collect()
    }

    /// Several conductance pairs per weight (`device.pair_significance`, aimc's `program` and
    /// `drift` with pairs > 1) or stuck devices: max|W| maps to Σ F_k · g_max, every pair's two
    /// devices are programmed ([`DeviceModel::pair_targets`]) or stuck
    /// ([`DeviceModel::stuck_at`], exponent 0), and with `weight_noise_time` the programmed
    /// weights re-converted at Σ F_k g_max / max|W_prog|, each nonzero device drifted with its
    /// own exponent (drawn from its target, on the programmed weight's side) and read, then
    /// compensated on average as one pair's drifted weights are.
    fn program_on_pairs(&mut self, w: &mut [f32], wmax: f64, dev: &DeviceModel) {
        let f = dev.pair_factors();
        let span = dev.pair_span() * dev.g_max;
        let s = span / wmax;
        let mut prog = Vec::with_capacity(w.len());
        let mut nus = Vec::with_capacity(if self.t_inf > 0.0 { w.len() * f.len() } else { 0 });
        for &v in w.iter() {
            let u = s * v as f64;
            let (gp_t, gn_t) = (dev.pair_targets(u.max(0.0)), dev.pair_targets((-u).max(0.0)));
            let mut held = 0.0;
            // Per pair and side: whether the device is stuck (it then does not drift).
            let mut stuck = [[false; 2]; crate::device::MAX_PAIRS];
            for k in 0..f.len() {
                let mut g = [dev.program(gp_t[k], self.normal()), dev.program(gn_t[k], self.normal())];
                if dev.has_stuck() {
                    for side in 0..2 {
                        if let Some(at) = dev.stuck_at(self.uniform()) {
                            (g[side], stuck[k][side]) = (at, true);
                        }
                    }
                }
                held += f[k] * (g[0] - g[1]);
            }
            let wp = held / s;
            prog.push(wp);
            if self.t_inf > 0.0 {
                let (targets, side) = if wp >= 0.0 { (&gp_t, 0) } else { (&gn_t, 1) };
                for (k, &g) in targets.iter().enumerate().take(f.len()) {
                    let nu = dev.nu(g, self.normal());
                    nus.push(if stuck[k][side] { 0.0 } else { nu });
                }
            }
        }
        if self.t_inf == 0.0 {
            for (v, p) in w.iter_mut().zip(&prog) {
                *v = *p as f32;
            }
            return;
        }
        let s2 = span / prog.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-30);
        let drifted: Vec<f64> = prog
            .iter()
            .zip(nus.chunks_exact(f.len()))
            .map(|(&wp, nu)| {
                let g = dev.pair_targets(wp.abs() * s2);
                let held: f64 = (0..f.len()).map(|k| if g[k] > 0.0 { f[k] * dev.drift_read(g[k], nu[k], self.t_inf, self.normal()) } else { 0.0 }).sum();
                wp.signum() * held / s2
            })
            .collect();
        let (a, b) = (abs_sum(&prog), abs_sum(&drifted));
        compensate(w, &drifted, a, b);
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

fn abs_sum(v: &[f64]) -> f64 {
    v.iter().map(|v| v.abs()).sum()
}

/// `w` = the drifted weights times the factor a / b that restores their mean |W| (1 when b is 0).
fn compensate(w: &mut [f32], drifted: &[f64], a: f64, b: f64) {
    let alpha = if b > 0.0 { a / b } else { 1.0 };
    for (v, d) in w.iter_mut().zip(drifted) {
        *v = (alpha * d) as f32;
    }
}

/// The noise generator of a trainer seeded with `seed`: a fixed odd constant keeps this stream
/// apart from the trainer's own (same seed), `noise_seed` moves it.
fn noise_rng(cfg: &TrainingConfig, seed: u64) -> Pcg64Mcg {
    Pcg64Mcg::seed_from_u64(seed ^ 0x9E37_79B9_7F4A_7C15 ^ cfg.noise_seed.wrapping_mul(0xD1B5_4A32_D192_ED03))
}

/// Rows per block of [`perturb_blocked`].
pub const BLOCK_ROWS: usize = 16;

/// The noisy copy [`Injector::perturb_rows`] draws, with the same equations, for one matrix of
/// rows of `cols` values (`cols` = 0: one row), in blocks of [`BLOCK_ROWS`] rows drawn on up to
/// `threads` threads. Each block has its own generator, seeded from `seed` and the block's index,
/// and the matrix-wide quantities (max|W|, the programmed max|W| before drift, the compensation
/// factor's sums) are reduced over the blocks in block order, so the copy is the same for any
/// thread count. `aimc.torch` draws with it once per matrix and training step (a BERT-base
/// matrix of 768 × 3072 weights at a time); the trainers keep one generator for the whole run
/// ([`Injector::perturb`]). The ReRAM models draw the whole matrix from the seed's generator on
/// one thread.
pub fn perturb_blocked(cfg: &TrainingConfig, seed: u64, w: &mut [f32], cols: usize, threads: usize) {
    let cols = if cols == 0 { w.len().max(1) } else { cols };
    let mut base = Injector::new(cfg, seed);
    if base.device.as_ref().is_some_and(|d| d.relax_table.is_some() || d.log_relax.is_some() || d.pair_factors().len() > 1 || d.has_stuck()) {
        // ReRAM's redraw, one-device relaxation, several pairs per weight and stuck devices: the
        // whole matrix from one generator (the per-matrix equations of `perturb_matrix`;
        // independent of the thread count too).
        base.perturb_matrix(w);
        return;
    }
    let mut blocks: Vec<(Injector, &mut [f32])> =
        w.chunks_mut(BLOCK_ROWS * cols).enumerate().map(|(b, chunk)| (base.reseeded(block_seed(seed, b as u64)), chunk)).collect();
    let Some(dev) = blocks.first().and_then(|(inj, _)| inj.device.clone()) else {
        // A weight modifier (or none): elementwise given the matrix's max|W|.
        let wmax = blocks.iter().map(|(_, c)| abs_max(c)).fold(0.0f32, f32::max) as f64;
        if wmax > 0.0 {
            par_blocks(&mut blocks, threads, |inj, c| {
                inj.modify(c, wmax);
                inj.drop_connect(c);
            });
        }
        return;
    };
    if dev.scale_per_row {
        par_blocks(&mut blocks, threads, |inj, c| {
            for row in c.chunks_mut(cols) {
                inj.perturb_matrix(row);
            }
        });
        return;
    }
    let wmax = blocks.iter().map(|(_, c)| abs_max(c)).fold(0.0f32, f32::max) as f64;
    if wmax == 0.0 {
        return;
    }
    let s = dev.g_max / wmax;
    if dev.programming == crate::device::Programming::Weight {
        par_blocks(&mut blocks, threads, |inj, c| {
            inj.program_weights(c, s, &dev);
            inj.drop_connect(c);
        });
        return;
    }
    let drifts = blocks[0].0.t_inf > 0.0;
    let mut pairs = par_blocks(&mut blocks, threads, |inj, c| {
        let p = inj.program_pairs(c, s, &dev, drifts);
        if !drifts {
            for (v, wp) in c.iter_mut().zip(&p.0) {
                *v = *wp as f32;
            }
            inj.drop_connect(c);
        }
        p
    });
    if !drifts {
        return;
    }
    let pmax = pairs.iter().flat_map(|(p, _)| p.iter()).fold(0.0f64, |m, v| m.max(v.abs()));
    let s2 = dev.g_max / pmax.max(1e-30);
    let mut parts: Vec<_> = blocks.iter_mut().zip(pairs.iter_mut()).collect();
    let drifted = par_map(&mut parts, threads, |((inj, _), (prog, nus))| inj.drift_pairs(prog, nus, s2, &dev));
    let a: f64 = pairs.iter().map(|(p, _)| abs_sum(p)).sum();
    let b: f64 = drifted.iter().map(|d| abs_sum(d)).sum();
    let mut parts: Vec<_> = blocks.iter_mut().zip(&drifted).collect();
    par_map(&mut parts, threads, |((inj, c), d)| {
        compensate(c, d, a, b);
        inj.drop_connect(c);
    });
}

/// The seed of block `b` of a [`perturb_blocked`] draw (SplitMix64's finaliser of both).
fn block_seed(seed: u64, b: u64) -> u64 {
    let mut z = seed ^ b.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `f` on every block's injector and values, the blocks split evenly over up to `threads`
/// threads; the results in block order.
fn par_blocks<R: Send>(blocks: &mut [(Injector, &mut [f32])], threads: usize, f: impl Fn(&mut Injector, &mut [f32]) -> R + Sync) -> Vec<R> {
    par_map(blocks, threads, |(inj, c)| f(inj, c))
}

/// `f` on every item, the items split evenly over up to `threads` threads; the results in order.
fn par_map<T: Send, R: Send>(items: &mut [T], threads: usize, f: impl Fn(&mut T) -> R + Sync) -> Vec<R> {
    let per = items.len().div_ceil(threads.max(1)).max(1);
    if items.len() <= per {
        return items.iter_mut().map(&f).collect();
    }
    std::thread::scope(|sc| {
        let handles: Vec<_> = items.chunks_mut(per).map(|part| sc.spawn(|| part.iter_mut().map(&f).collect::<Vec<R>>())).collect();
        handles.into_iter().flat_map(|h| h.join().expect("a block draw panicked")).collect()
    })
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

    /// The mean and std of 20,000 draws of a weight at max|W| (matrices of two such weights,
    /// seed 3).
    fn weight_at_max(cfg: &TrainingConfig) -> (f64, f64) {
        let mut inj = Injector::new(cfg, 3);
        let n = 20_000;
        let mut vals = Vec::with_capacity(n);
        for _ in 0..n / 2 {
            let mut w = vec![1.0f32, 1.0];
            inj.perturb_matrix(&mut w);
            vals.extend(w.iter().map(|&v| v as f64));
        }
        let mean = vals.iter().sum::<f64>() / n as f64;
        (mean, (vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt())
    }

    /// Two pairs of significance 1 and 1: a weight at max|W| fills both pairs at g_max, so its
    /// programming error is the sum of two independent pairs' over twice the range, 1/√2 of one
    /// pair's; at 10 years it drifts, is read and compensated like one pair's.
    #[test]
    fn pcm_noise_on_two_pairs_averages_the_programming_error() {
        let mut device = toml::Table::new();
        device.insert("pair_significance".into(), toml::Value::Array(vec![1.0.into(), 1.0.into()]));
        let cfg = TrainingConfig { weight_noise: "pcm".into(), device, ..TrainingConfig::default() };
        let (_, sd) = weight_at_max(&cfg);
        // Per pair σ_prog(25) = 1.0554 µS on G+ and the folded G− (0.264² · (1/2 − 1/2π)); two
        // pairs over 2 · 25 µS.
        let one_pair = (1.0554f64.powi(2) + 0.26348f64.powi(2) * (0.5 - 0.5 / std::f64::consts::PI)).sqrt();
        let want = (2.0f64).sqrt() * one_pair / 50.0;
        assert!((sd / want - 1.0).abs() < 0.03, "sd {sd}, expected {want}");
        let mut device = cfg.device.clone();
        device.insert("pair_significance".into(), toml::Value::Array(vec![1.0.into(), 3.0.into()]));
        let cfg = TrainingConfig { weight_noise: "pcm".into(), weight_noise_time: "10y".into(), device, ..TrainingConfig::default() };
        let w0: Vec<f32> = (0..4000).map(|i| ((i % 17) as f32 - 8.0) / 8.0).collect();
        let mut w = w0.clone();
        Injector::new(&cfg, 5).perturb_matrix(&mut w);
        let (a, b) = (w0.iter().map(|v| v.abs() as f64).sum::<f64>(), w.iter().map(|v| v.abs() as f64).sum::<f64>());
        // Compensation restores the programmed weights' mean |W|, which the folded G− devices
        // lower by about E[max(0, σ_prog(0) N)] per device (0.105 µS of 100 µS's range here).
        assert!((a - b).abs() < 0.02 * a, "compensated mean |W| {b} against {a}");
        let rms = (w0.iter().zip(&w).map(|(x, y)| ((x - y) as f64).powi(2)).sum::<f64>() / w.len() as f64).sqrt();
        assert!(rms > 0.005 && rms < 0.2, "rms error {rms}");
    }

    /// Stuck devices in training (programming noise off): a weight of 0 on one pair lands at
    /// +max|W| where G+ is stuck at g_max and G− is not (stuck_set · (1 − stuck_set) of them), at
    /// −max|W| the other way round, and at 0 otherwise.
    #[test]
    fn stuck_devices_put_weights_at_the_ends() {
        let mut device = toml::Table::new();
        device.insert("stuck_set".into(), 0.1.into());
        device.insert("stuck_reset".into(), 0.2.into());
        let cfg = TrainingConfig { weight_noise: "pcm".into(), device, weight_noise_scale: 0.0, ..TrainingConfig::default() };
        let n = 40_000;
        let mut w: Vec<f32> = (0..n).map(|i| if i == 0 { 1.0 } else { 0.0 }).collect();
        Injector::new(&cfg, 11).perturb_matrix(&mut w);
        let share = |f: &dyn Fn(f32) -> bool| w[1..].iter().filter(|&&v| f(v)).count() as f64 / (n - 1) as f64;
        let (up, down) = (share(&|v| v == 1.0), share(&|v| v == -1.0));
        let p = 0.1 * (1.0 - 0.1 - 0.2) + 0.1 * 0.2;
        for (got, what) in [(up, "+1"), (down, "-1")] {
            assert!((got - p).abs() < 6.0 * (p * (1.0 - p) / n as f64).sqrt(), "{what}: {got}, expected {p}");
        }
        assert!((share(&|v| v == 0.0) - (1.0 - 2.0 * p)).abs() < 0.01);
    }

    #[test]
    fn pcm_noise_follows_the_device_model() {
        // A weight at max|W| sits at g_max = 25 µS on G+, 0 on G−; σ_prog(25) = 0.26348 + 1.965 − 1.1731
        // = 1.0554 µS and σ_prog(0) = 0.26348 µS (folded at 0), so the programmed weight's std is
        // about √(1.0554² + 0.264²·(1 − 2/π)·…)/25 of max|W|: between 1.0554/25 and 1.09/25.
        let cfg = TrainingConfig { weight_noise: "pcm".into(), ..TrainingConfig::default() };
        let (mean, sd) = weight_at_max(&cfg);
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

    /// ReRAM (a relaxation table): programming with the 1 s σ; at a table time each device is a
    /// fresh draw about its target with that time's σ (2 d: σ(1) = 2.677 µS of 25 at max|W|), then
    /// the mean |W| is restored; a time off the table is refused when the training is read.
    #[test]
    fn reram_noise_redraws_about_the_target_at_its_time() {
        let sd_at = |time: &str| {
            let cfg = TrainingConfig { weight_noise: "reram".into(), weight_noise_time: time.into(), ..TrainingConfig::default() };
            let mut inj = Injector::new(&cfg, 5);
            // 64 weights a matrix, so the compensation's one factor per matrix narrows little.
            let vals: Vec<f64> = (0..250)
                .flat_map(|_| {
                    let mut w = vec![1.0f32; 64];
                    inj.perturb_matrix(&mut w);
                    w.into_iter().map(|v| v as f64)
                })
                .collect();
            let mean = vals.iter().sum::<f64>() / vals.len() as f64;
            (vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vals.len() as f64).sqrt()
        };
        let r = crate::device::DeviceModel::reram().relax_table.unwrap();
        // Programmed only: σ(1) at 1 s, 1.103 µS; the G− device's spread adds a little.
        let (p, d) = (sd_at(""), sd_at("2d"));
        assert!(p > 0.97 * r.sigma(0, 25.0, 25.0) / 25.0 && p < 1.08 * r.sigma(0, 25.0, 25.0) / 25.0, "programmed sd {p}");
        // At 2 d the redraw's σ, rescaled by the programmed maximum and the compensation.
        assert!(d > 0.9 * r.sigma(2, 25.0, 25.0) / 25.0 && d < 1.15 * r.sigma(2, 25.0, 25.0) / 25.0, "2 d sd {d}");
        // `aimc.torch`'s blocked draw takes the same equations for both ReRAM models.
        for model in ["reram", "reram_cmo"] {
            let cfg = TrainingConfig { weight_noise: model.into(), weight_noise_time: "2d".into(), ..TrainingConfig::default() };
            let w0: Vec<f32> = (0..96).map(|i| (i as f32 - 40.0) / 50.0).collect();
            let (mut a, mut b) = (w0.clone(), w0.clone());
            perturb_blocked(&cfg, 9, &mut a, 8, 2);
            Injector::new(&cfg, 9).perturb_matrix(&mut b);
            assert_eq!(a, b, "{model}");
        }
        let e = TrainingConfig::parse("[training]\nweight_noise = \"reram\"\nweight_noise_time = \"1h\"\n").unwrap_err();
        assert!(e.contains("training.weight_noise_time") && e.contains("1 s, 86400 s, 172800 s only"), "{e}");
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

    /// [`perturb_blocked`] draws the same copy on 1, 2, 3 or 8 threads (each block its own
    /// generator, the matrix-wide sums in block order), for the device model with and without
    /// drift, a row-scaled one (AFM) and the Gaussian modifier with drop connect; an all-zero
    /// matrix stays zero. Its noise has the sequential draw's spread: on 256 × 256 weights the
    /// std of (copy − W) of the two agree within 3 % (the std of 65,536 draws has a sampling error
    /// of 0.3 %, so 3 % is 10 of them), and with drift the mean |W| is restored as one factor does.
    #[test]
    fn blocked_draws_are_thread_independent_and_have_the_sequential_spread() {
        let parse = |t: &str| TrainingConfig::parse(&format!("[training]\n{t}\n")).unwrap();
        let (rows, cols) = (256usize, 256usize);
        let w: Vec<f32> = (0..rows * cols).map(|i| (((i * 7919) % 1000) as f32 / 500.0 - 1.0) * if i % 3 == 0 { 0.3 } else { 1.0 }).collect();
        let cases = [
            parse("weight_noise = \"pcm\"\nweight_noise_time = \"10y\""),
            parse("weight_noise = \"pcm\""),
            parse("weight_noise = \"afm\""),
            parse("weight_noise = \"gaussian\"\nweight_noise_std = 0.1\nweight_noise_pdrop = 0.1"),
        ];
        for cfg in &cases {
            let draw = |threads: usize| {
                let mut v = w.clone();
                perturb_blocked(cfg, 11, &mut v, cols, threads);
                v
            };
            let one = draw(1);
            assert_ne!(one, w, "{}", cfg.weight_noise);
            for threads in [2, 3, 8] {
                assert!(draw(threads) == one, "{}: {threads} threads", cfg.weight_noise);
            }
            let mut seq = w.clone();
            Injector::new(cfg, 11).perturb_rows(&mut seq, cols);
            let spread = |v: &[f32]| (v.iter().zip(&w).map(|(a, b)| ((a - b) as f64).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
            let (sb, ss) = (spread(&one), spread(&seq));
            assert!((sb / ss - 1.0).abs() < 0.03, "{}: blocked {sb}, sequential {ss}", cfg.weight_noise);
        }
        let mean_abs = |v: &[f32]| v.iter().map(|x| x.abs() as f64).sum::<f64>() / v.len() as f64;
        let mut drifted = w.clone();
        perturb_blocked(&cases[0], 3, &mut drifted, cols, 2);
        assert!((mean_abs(&drifted) / mean_abs(&w) - 1.0).abs() < 0.02, "{} against {}", mean_abs(&drifted), mean_abs(&w));
        let mut zero = vec![0.0f32; 64];
        perturb_blocked(&cases[0], 3, &mut zero, 8, 2);
        assert!(zero.iter().all(|&v| v == 0.0));
    }
}
