//! aihwkit's weight modifiers as hardware-aware training's weight noise (`[training]
//! weight_noise`, src/train/hwa.rs): the per-mini-batch perturbations of aihwkit's
//! `WeightModifierParameter` (rpucuda `WeightModifier::apply`), each in units of a = max|W| of the
//! matrix (aihwkit's `rel_to_actual_wmax`, the default) or of `weight_noise_wmax` (its
//! `assumed_wmax`), and its drop connect:
//!
//! | `weight_noise` | aihwkit `WeightModifierType` | the matrix's noisy copy |
//! |---|---|---|
//! | `gaussian` | `ADD_NORMAL` | w + std·a·N |
//! | `mult_normal` | `MULT_NORMAL` | w + w·std·a·N |
//! | `poly` | `POLY` | w + a·std·(c₀ + c₁·\|w\|/a + c₂·(\|w\|/a)² + …)·N |
//! | `discretize` | `DISCRETIZE` | a·round(w/a/res)·res |
//! | `discretize_add_normal` | `DISCRETIZE_ADD_NORMAL` | a·round(w/a/res)·res + std·a·N |
//! | `drop_connect` | `DROP_CONNECT` | w, then drop connect |
//!
//! `weight_noise_pdrop` (aihwkit `pdrop`, with any weight noise) then sets each weight to 0 with
//! that probability. std is `weight_noise_std`, res `weight_noise_res`, the cᵢ
//! `weight_noise_coeffs` (aihwkit's default [0.0105392, 0.0768, −0.046925] when empty). Rounding
//! is to the nearest step, halves away from zero (aihwkit's `sto_round = false`).

use super::hwa::TrainingConfig;
use super::injector::Injector;

/// The `weight_noise` names of aihwkit's weight modifiers.
pub const MODIFIERS: [&str; 6] = ["gaussian", "mult_normal", "poly", "discretize", "discretize_add_normal", "drop_connect"];

/// aihwkit's default `POLY` coefficients (`WeightModifierParameter.coeffs`).
pub const POLY_COEFFS: [f64; 3] = [0.0105392, 0.0768, -0.046925];

/// Whether `weight_noise` names one of aihwkit's weight modifiers.
pub fn is_modifier(name: &str) -> bool {
    MODIFIERS.contains(&name)
}

/// Checks the modifier fields of `cfg` whose `weight_noise` is a modifier: each field the chosen
/// modifier reads is set and valid, each it would ignore is refused, naming the field and the fix.
pub fn check(cfg: &TrainingConfig) -> Result<(), String> {
    let kind = cfg.weight_noise.as_str();
    let reads_std = matches!(kind, "gaussian" | "mult_normal" | "poly" | "discretize_add_normal");
    let reads_res = matches!(kind, "discretize" | "discretize_add_normal");
    if cfg.weight_noise_scale != 1.0 {
        return Err(format!(
            "training.weight_noise_scale = {}: it multiplies a device model's noise and does nothing with weight_noise = {kind:?}; set the noise's size with training.weight_noise_std and remove weight_noise_scale",
            cfg.weight_noise_scale
        ));
    }
    if reads_std && kind != "discretize_add_normal" && cfg.weight_noise_std <= 0.0 {
        return Err(format!("training.weight_noise = {kind:?} needs weight_noise_std > 0 (relative to max|W|, e.g. 0.12)"));
    }
    if !reads_std && cfg.weight_noise_std != 0.0 {
        return Err(format!(
            "training.weight_noise_std = {}: weight_noise = {kind:?} draws no Gaussian; remove weight_noise_std or use \"discretize_add_normal\"",
            cfg.weight_noise_std
        ));
    }
    if reads_res && !(cfg.weight_noise_res.is_finite() && cfg.weight_noise_res > 0.0) {
        return Err(format!("training.weight_noise = {kind:?} needs weight_noise_res > 0, the step relative to max|W| (aihwkit's res, e.g. 1/127)"));
    }
    if !reads_res && cfg.weight_noise_res != 0.0 {
        return Err(format!(
            "training.weight_noise_res = {}: only \"discretize\" and \"discretize_add_normal\" discretise; remove weight_noise_res",
            cfg.weight_noise_res
        ));
    }
    if kind != "poly" && !cfg.weight_noise_coeffs.is_empty() {
        return Err(format!("training.weight_noise_coeffs: only weight_noise = \"poly\" reads them (here {kind:?}); remove weight_noise_coeffs"));
    }
    if cfg.weight_noise_coeffs.iter().any(|c| !c.is_finite()) {
        return Err("training.weight_noise_coeffs: every coefficient must be a finite number".into());
    }
    if kind == "drop_connect" && cfg.weight_noise_pdrop <= 0.0 {
        return Err(
            "training.weight_noise = \"drop_connect\" needs weight_noise_pdrop > 0 (the probability of a weight set to 0 per mini-batch, e.g. 0.05)".into()
        );
    }
    Ok(())
}

/// Checks the two fields any weight noise may take, `weight_noise_pdrop` (in [0, 1)) and, with a
/// modifier only, `weight_noise_wmax` (≥ 0): a device model maps its own max|W| to g_max.
pub fn check_common(cfg: &TrainingConfig) -> Result<(), String> {
    if !(0.0..1.0).contains(&cfg.weight_noise_pdrop) {
        return Err(format!("training.weight_noise_pdrop = {}: a probability in [0, 1) (aihwkit's pdrop, e.g. 0.05)", cfg.weight_noise_pdrop));
    }
    if !(cfg.weight_noise_wmax.is_finite() && cfg.weight_noise_wmax >= 0.0) {
        return Err(format!("training.weight_noise_wmax = {}: use 0 (relative to each matrix's max|W|) or the assumed max > 0", cfg.weight_noise_wmax));
    }
    if cfg.weight_noise_wmax > 0.0 && !is_modifier(&cfg.weight_noise) {
        return Err(format!(
            "training.weight_noise_wmax = {}: the assumed max|W| (aihwkit's assumed_wmax) belongs to the weight modifiers ({}); weight_noise = {:?} maps each matrix's own max|W|, so remove weight_noise_wmax",
            cfg.weight_noise_wmax,
            MODIFIERS.join(", "),
            cfg.weight_noise
        ));
    }
    Ok(())
}

impl Injector {
    /// One matrix's noisy copy by a weight modifier, in place; `wmax` is the matrix's max|W| (> 0).
    /// `gaussian` draws exactly as it did before the other modifiers existed.
    pub(super) fn modify(&mut self, w: &mut [f32], wmax: f64) {
        let a = if self.cfg.weight_noise_wmax > 0.0 { self.cfg.weight_noise_wmax } else { wmax };
        let std = self.cfg.weight_noise_std;
        let res = self.cfg.weight_noise_res;
        match self.cfg.weight_noise.as_str() {
            "gaussian" => {
                let s = std * a;
                for v in w.iter_mut() {
                    *v = (*v as f64 + s * self.normal()) as f32;
                }
            }
            "mult_normal" => {
                let s = std * a;
                for v in w.iter_mut() {
                    *v = (*v as f64 + *v as f64 * s * self.normal()) as f32;
                }
            }
            "poly" => {
                let coeffs = if self.cfg.weight_noise_coeffs.is_empty() { POLY_COEFFS.to_vec() } else { self.cfg.weight_noise_coeffs.clone() };
                for v in w.iter_mut() {
                    let x = (*v as f64).abs() / a;
                    let sigma = coeffs.iter().rev().fold(0.0, |acc, &c| acc * x + c) * std;
                    *v = (*v as f64 + a * sigma * self.normal()) as f32;
                }
            }
            "discretize" | "discretize_add_normal" => {
                let s = if self.cfg.weight_noise == "discretize" { 0.0 } else { std * a };
                for v in w.iter_mut() {
                    let q = a * (*v as f64 / a / res).round() * res;
                    *v = if s > 0.0 { q + s * self.normal() } else { q } as f32;
                }
            }
            _ => {}
        }
    }

    /// Drop connect (aihwkit's `pdrop`): each weight set to 0 with probability
    /// `weight_noise_pdrop`, one uniform draw per weight; nothing (and no draw) at 0.
    pub(super) fn drop_connect(&mut self, w: &mut [f32]) {
        let p = self.cfg.weight_noise_pdrop;
        if p <= 0.0 {
            return;
        }
        for v in w.iter_mut() {
            if self.uniform() < p {
                *v = 0.0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> TrainingConfig {
        TrainingConfig::parse(&format!("[training]\n{text}\n")).unwrap()
    }

    /// Each modifier's noisy copy has aihwkit's moments on a 200 × 200 matrix (40,000 draws, so a
    /// relative std is within 2 % at 5 σ of its sampling error, √(2/40000) = 0.7 %): additive
    /// σ = std·a, multiplicative σ = |w|·std·a, the polynomial's σ(|w|/a)·std·a; the discretised
    /// weights lie on the grid a·res·k and within half a step of the weight; drop connect zeroes
    /// a fraction within 5 σ of pdrop; an assumed max replaces max|W|.
    #[test]
    fn modifiers_have_aihwkits_moments() {
        let n = 200 * 200;
        // Weights 0.5 and −1 alternating: max|W| = 1.
        let w0: Vec<f32> = (0..n).map(|i| if i % 2 == 0 { 0.5 } else { -1.0 }).collect();
        let draw = |c: &TrainingConfig| {
            let mut w = w0.clone();
            Injector::new(c, 7).perturb_matrix(&mut w);
            w
        };
        // The relative std of the deviations at the weights equal to `at`.
        let std_at = |w: &[f32], at: f32| {
            let d: Vec<f64> = w.iter().zip(&w0).filter(|(_, &o)| o == at).map(|(&v, &o)| (v - o) as f64).collect();
            (d.iter().map(|x| x * x).sum::<f64>() / d.len() as f64).sqrt()
        };
        let near = |got: f64, want: f64| (got / want - 1.0).abs() < 0.02;
        let w = draw(&cfg("weight_noise = \"gaussian\"\nweight_noise_std = 0.1"));
        assert!(near(std_at(&w, 0.5), 0.1) && near(std_at(&w, -1.0), 0.1));
        let w = draw(&cfg("weight_noise = \"gaussian\"\nweight_noise_std = 0.1\nweight_noise_wmax = 2.0"));
        assert!(near(std_at(&w, 0.5), 0.2), "an assumed max of 2 doubles σ");
        let w = draw(&cfg("weight_noise = \"mult_normal\"\nweight_noise_std = 0.1"));
        assert!(near(std_at(&w, 0.5), 0.05) && near(std_at(&w, -1.0), 0.1));
        let w = draw(&cfg("weight_noise = \"poly\"\nweight_noise_std = 2.0"));
        let poly = |x: f64| POLY_COEFFS[0] + POLY_COEFFS[1] * x + POLY_COEFFS[2] * x * x;
        assert!(near(std_at(&w, 0.5), 2.0 * poly(0.5)) && near(std_at(&w, -1.0), 2.0 * poly(1.0)));
        let w = draw(&cfg("weight_noise = \"poly\"\nweight_noise_std = 1.0\nweight_noise_coeffs = [0.0, 0.2]"));
        assert!(near(std_at(&w, 0.5), 0.1) && near(std_at(&w, -1.0), 0.2));
        // A grid of 0.3: 0.5 → 0.6, −1 → −0.9; with noise, the same grid plus σ.
        let w = draw(&cfg("weight_noise = \"discretize\"\nweight_noise_res = 0.3"));
        assert!(w.iter().zip(&w0).all(|(&v, &o)| (v - if o > 0.0 { 0.6 } else { -0.9 }).abs() < 1e-6));
        let w = draw(&cfg("weight_noise = \"discretize_add_normal\"\nweight_noise_res = 0.3\nweight_noise_std = 0.05"));
        let grid: Vec<f32> = w0.iter().map(|&o| if o > 0.0 { 0.6 } else { -0.9 }).collect();
        let dev = (w.iter().zip(&grid).map(|(&v, &g)| ((v - g) as f64).powi(2)).sum::<f64>() / n as f64).sqrt();
        assert!(near(dev, 0.05), "{dev}");
        // Drop connect alone and after a Gaussian: the fraction of zeros within 5 σ of 0.1.
        for text in
            ["weight_noise = \"drop_connect\"\nweight_noise_pdrop = 0.1", "weight_noise = \"gaussian\"\nweight_noise_std = 0.01\nweight_noise_pdrop = 0.1"]
        {
            let zeros = draw(&cfg(text)).iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
            assert!((zeros - 0.1).abs() < 5.0 * (0.1f64 * 0.9 / n as f64).sqrt(), "{text}: {zeros}");
        }
        let w = draw(&cfg("weight_noise = \"drop_connect\"\nweight_noise_pdrop = 0.1"));
        assert!(w.iter().zip(&w0).all(|(&v, &o)| v == 0.0 || v == o), "drop connect leaves the other weights as they are");
    }

    /// Every modifier field refused where the chosen noise would ignore it, naming it and the fix.
    #[test]
    fn modifier_fields_are_checked() {
        for (text, message) in [
            ("weight_noise = \"mult_normal\"", "needs weight_noise_std > 0"),
            ("weight_noise = \"discretize\"", "needs weight_noise_res > 0"),
            (
                "weight_noise = \"discretize\"\nweight_noise_res = 0.1\nweight_noise_std = 0.1",
                "training.weight_noise_std = 0.1: weight_noise = \"discretize\" draws no Gaussian",
            ),
            ("weight_noise = \"gaussian\"\nweight_noise_std = 0.1\nweight_noise_res = 0.1", "training.weight_noise_res = 0.1: only"),
            ("weight_noise = \"gaussian\"\nweight_noise_std = 0.1\nweight_noise_coeffs = [1.0]", "training.weight_noise_coeffs: only weight_noise = \"poly\""),
            ("weight_noise = \"drop_connect\"", "needs weight_noise_pdrop > 0"),
            ("weight_noise = \"gaussian\"\nweight_noise_std = 0.1\nweight_noise_pdrop = 1.0", "training.weight_noise_pdrop = 1"),
            ("weight_noise = \"pcm\"\nweight_noise_wmax = 1.0", "training.weight_noise_wmax = 1: the assumed max|W|"),
            ("weight_noise = \"pcm\"\nweight_noise_res = 0.1", "training.weight_noise_res = 0.1"),
            ("weight_noise_pdrop = 0.1", "training.weight_noise_pdrop without weight noise"),
            (
                "weight_noise = \"poly\"\nweight_noise_std = 1.0\nweight_noise_scale = 2.0",
                "training.weight_noise_scale = 2: it multiplies a device model's noise",
            ),
        ] {
            let e = TrainingConfig::parse(&format!("[training]\n{text}\n")).unwrap_err();
            assert!(e.contains(message), "{text}: {e}");
        }
        // Drop connect goes with a device model too.
        assert!(cfg("weight_noise = \"pcm\"\nweight_noise_pdrop = 0.05").summary().contains("drop connect 0.05"));
        assert!(cfg("weight_noise = \"poly\"\nweight_noise_std = 1.0").summary().contains("poly weight noise"));
    }
}
