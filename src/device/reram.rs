//! ReRAM's device models as data: a relaxation table read at a few measured times (aihwkit
//! `ReRamWan2022NoiseModel`; Wan et al., Nature 608, 504, 2022, Extended Data Fig. 3) and the
//! one-device log-time relaxation of IBM Research Zurich's CMO/HfOx ReRAM (aihwkit
//! `ReRamCMONoiseModel`), with their aihwkit defaults; the presets and f64 equations that use
//! them are `DeviceModel::reram`, `reram_cmo`, `relaxed` and `log_relaxed` (device/mod.rs).

use serde::{Deserialize, Serialize};

/// The most times a [`RelaxTable`] may hold (the stages keep them in their uniform).
pub const MAX_RELAX_TIMES: usize = 4;

/// A conductance-relaxation model measured at a few times after programming, for devices that do
/// not drift as a power law (aihwkit `ReRamWan2022NoiseModel`'s `coeff_dic`): at each time `t`
/// (s) the standard deviation of the conductance about its *target*, σ_t(g_T) = Σ_i c_i x^i µS
/// with x = g_T/g_max (a quartic; aihwkit's fit to Wan et al. 2022, Extended Data Fig. 3, at
/// 1 s, 1 day and 2 days). Programming uses the first time's σ; a read at time t is a fresh draw
/// max(0, g_T + drift_scale·σ_t(g_T)·N) of each device of the pair, independent of the
/// programming draw, converted back through the programmed weights' re-conversion as aihwkit's
/// tile does. Only the table's times can be read (aihwkit refuses others). The values are µS as
/// given, not rescaled to g_max: aihwkit reads them so at any g_max (its rescaling reference is
/// g_max itself unless a custom `coeff_dic` comes with `coeff_g_max_reference`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelaxTable {
    /// Times after programming, s, strictly ascending and > 0.
    pub t: Vec<f64>,
    /// σ_t's coefficients at each time, µS, ascending powers of g_T/g_max (c0 first).
    pub coeff: Vec<[f64; 5]>,
}

/// aihwkit's `ReRamWan2022NoiseModel` default `coeff_dic` (its lists reversed there into c0 first).
pub const RERAM_WAN2022_TIMES: [f64; 3] = [1.0, 86400.0, 172800.0];
pub const RERAM_WAN2022_COEFF: [[f64; 5]; 3] =
    [[0.348, 16.030, -43.853, 45.393, -16.815], [0.701, 22.086, -50.773, 47.095, -16.458], [0.782, 20.274, -43.507, 37.062, -11.934]];

impl RelaxTable {
    /// The index of time `t_inf` (s) in the table, if it is one of its times.
    pub fn index_of(&self, t_inf: f64) -> Option<usize> {
        self.t.iter().position(|&t| t == t_inf)
    }

    /// σ at table time `k` and target `g` (µS) of a device with `g_max`: Horner's form of the
    /// quartic, as the stages evaluate it.
    pub fn sigma(&self, k: usize, g: f64, g_max: f64) -> f64 {
        let c = &self.coeff[k];
        let x = g / g_max;
        (((c[4] * x + c[3]) * x + c[2]) * x + c[1]) * x + c[0]
    }

    /// The times in seconds, as a list to print ("1 s, 86400 s, 172800 s" for aihwkit's).
    pub fn times_text(&self) -> String {
        self.t.iter().map(|t| format!("{t} s")).collect::<Vec<_>>().join(", ")
    }

    /// Every entry usable: the error names the field and the fix.
    pub fn validate(&self) -> Result<(), String> {
        let n = self.t.len();
        if !(1..=MAX_RELAX_TIMES).contains(&n) {
            return Err(format!("device.relax_table.t has {n} times: give 1 to {MAX_RELAX_TIMES} (one per measured time)"));
        }
        if self.coeff.len() != n {
            return Err(format!("device.relax_table.coeff has {} rows for {n} times in t: give one row of 5 coefficients per time", self.coeff.len()));
        }
        if let Some(i) = self.t.iter().position(|t| !(t.is_finite() && *t > 0.0)) {
            return Err(format!("device.relax_table.t[{i}] = {}: a time after programming is a finite number of seconds > 0", self.t[i]));
        }
        if let Some(i) = (1..n).find(|&i| self.t[i] <= self.t[i - 1]) {
            return Err(format!("device.relax_table.t[{i}] = {} follows {}: the times must rise strictly", self.t[i], self.t[i - 1]));
        }
        for (i, row) in self.coeff.iter().enumerate() {
            if let Some(j) = row.iter().position(|c| !c.is_finite()) {
                return Err(format!("device.relax_table.coeff[{i}][{j}] = {}: every coefficient must be a finite number (µS)", row[j]));
            }
        }
        Ok(())
    }
}

/// Log-time relaxation of one device per weight (aihwkit `ReRamCMONoiseModel`, IBM Research
/// Zurich's CMO/HfOx ReRAM): at a read t s after programming the programmed conductance g (the
/// programmed weights re-converted, as aihwkit's tile does) moves to
///   `g_d = g + drift_scale·(mean·ln t + (std[0]·ln t + std[1])·N₁)`,
///   g_f = clamp(g_d + read_noise_scale·read_k·log10(g_d)·sqrt(ln((t + t_read)/(2 t_read)))·N₂, g_min, g_max),
/// the same shift for every conductance level; at t = 0 the programmed state as it is. µS and s.
/// A device with g_d ≤ 0 gets no read noise and ends at g_min (aihwkit's log10 gives NaN there,
/// which its clamp passes on as a NaN weight).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogRelaxation {
    /// Mean conductance change per unit of ln t, µS (aihwkit `decay_dict["mean"][0]`).
    pub mean: f64,
    /// The spread `std[0]·ln t + std[1]`, µS (`decay_dict["std"]`).
    pub std: [f64; 2],
    /// Read-noise amplitude K, µS per decade of g (`read_dict["K"]`; its t_read is `t_read`).
    pub read_k: f64,
}

/// aihwkit `ReRamCMONoiseModel`'s defaults: `decay_dict`, `read_dict` and its
/// SingleDeviceConductanceConverter's range.
pub const CMO_RELAXATION: LogRelaxation = LogRelaxation { mean: -0.08900206, std: [0.04201137, 0.41183342], read_k: 0.0277316483 };
pub const CMO_G_MAX: f64 = 88.199997;
pub const CMO_G_MIN: f64 = 9.0;
pub const CMO_T_READ: f64 = 1e-6;
/// Its programming σ = c0 + c1·g (µS, g in µS) of the 0.2 % acceptance range, the one its
/// constructor picks at its default `acceptance_range` (2e-2 is not a key, so the smallest, 0.2).
pub const CMO_PROG: [f64; 2] = [0.00081107, 0.00106879];

#[cfg(test)]
mod tests {
    use super::super::*;

    /// aihwkit's ReRamWan2022NoiseModel: its `_apply_poly` (Σ c_i x^i by powers, µS at any g_max)
    /// at hand-worked points; the programming σ is the first time's; only the table's times read;
    /// refusals name the field.
    #[test]
    fn reram_relaxation_table_is_aihwkits() {
        let m = DeviceModel::reram();
        m.validate().unwrap();
        let r = m.relax_table.clone().unwrap();
        // x = 0.4 (10 µS of 25): 0.348 + 16.030·0.4 − 43.853·0.16 + 45.393·0.064 − 16.815·0.0256.
        assert!((r.sigma(0, 10.0, 25.0) - 2.2182).abs() < 1e-4, "{}", r.sigma(0, 10.0, 25.0));
        assert!((m.sigma_prog(10.0) - r.sigma(0, 10.0, 25.0)).abs() < 1e-15);
        // At x = 1 each row sums; at 0 it is c0.
        for (k, c) in RERAM_WAN2022_COEFF.iter().enumerate() {
            assert!((r.sigma(k, 25.0, 25.0) - c.iter().sum::<f64>()).abs() < 1e-12 && r.sigma(k, 0.0, 25.0) == c[0]);
        }
        assert_eq!(r.index_of(86400.0), Some(1));
        assert!(m.check_time(172800.0).is_ok() && DeviceModel::pcm().check_time(3600.0).is_ok());
        let e = m.check_time(3600.0).unwrap_err();
        assert!(e.contains("t = 3600 s") && e.contains("1 s, 86400 s, 172800 s only"), "{e}");
        // A read is a fresh draw about the target, rectified; drift_scale scales it.
        assert!((m.relaxed(2, 10.0, 1.5) - (10.0 + 1.5 * r.sigma(2, 10.0, 25.0))).abs() < 1e-12 && m.relaxed(0, 0.0, -2.0) == 0.0);
        let bad = |f: &dyn Fn(&mut DeviceModel), want: &str| {
            let mut b = m.clone();
            f(&mut b);
            let e = b.validate().unwrap_err();
            assert!(e.contains(want), "{e}");
        };
        bad(&|b| b.relax_table.as_mut().unwrap().t[1] = 0.5, "device.relax_table.t[1] = 0.5 follows 1");
        bad(&|b| b.relax_table.as_mut().unwrap().coeff.pop().map(drop).unwrap_or(()), "coeff has 2 rows for 3 times");
        bad(&|b| b.relax_table.as_mut().unwrap().coeff[1][4] = f64::NAN, "coeff[1][4] = NaN");
        bad(&|b| b.relax_table.as_mut().unwrap().t[0] = 0.0, "t[0] = 0");
        bad(&|b| b.relax_table.as_mut().unwrap().t = vec![1.0; 5], "has 5 times: give 1 to 4");
        bad(&|b| b.read_table = Some(ReadTable { g: vec![0.0, 25.0], q_s: vec![0.1, 0.1] }), "device.read_table beside device.relax_table");
        bad(&|b| b.drift_path = DriftPath::BothDevices, "leave drift_path and programming");
    }

    /// aihwkit's ReRamCMONoiseModel: σ_prog = c0 + c1·g in µS (g not normalised), a read's shift
    /// mean·ln t and spread std0·ln t + std1, read noise K·log10(g)·sqrt(ln((t + t_read)/(2 t_read))),
    /// clamped to [g_min, g_max]; the programmed state as it is at t = 0; refusals name the field.
    #[test]
    fn reram_cmo_is_aihwkits() {
        let m = DeviceModel::reram_cmo();
        m.validate().unwrap();
        assert!((m.sigma_prog(50.0) - (0.00081107 + 0.00106879 * 50.0)).abs() < 1e-15);
        assert!((m.program_single(50.0, 2.0) - (50.0 + 2.0 * m.sigma_prog(50.0))).abs() < 1e-12);
        let t = 86400.0f64;
        let (lt, rs) = (t.ln(), ((t + 1e-6) / 2e-6).ln().sqrt());
        assert!((m.log_t_ratio(t) - lt).abs() < 1e-12 && (m.read_sqrt_log(t) - rs).abs() < 1e-12 && m.log_t_ratio(0.0) == 0.0);
        let g_d = 50.0 - 0.08900206 * lt + (0.04201137 * lt + 0.41183342) * 1.5;
        let want = g_d + 0.0277316483 * g_d.log10() * rs * (-0.5);
        assert!((m.log_relaxed(50.0, t, [1.5, -0.5]) - want).abs() < 1e-12);
        // Clamped to the device's range; at t = 0 as programmed.
        assert_eq!(m.log_relaxed(9.2, t, [-4.0, 0.0]), 9.0);
        assert_eq!(m.log_relaxed(88.0, t, [6.0, 0.0]), CMO_G_MAX);
        assert_eq!(m.log_relaxed(50.0, 0.0, [3.0, 3.0]), 50.0);
        assert!(m.check_time(3600.0).is_ok(), "any time reads");
        let bad = |f: &dyn Fn(&mut DeviceModel), want: &str| {
            let mut b = m.clone();
            f(&mut b);
            let e = b.validate().unwrap_err();
            assert!(e.contains(want), "{e}");
        };
        bad(&|b| b.g_min = 90.0, "device.g_min = 90");
        bad(&|b| b.programming = Programming::Pair, "set programming = \"single\"");
        bad(&|b| b.log_relax.as_mut().unwrap().std[1] = f64::NAN, "device.log_relax");
        bad(
            &|b| b.drift_table = Some(DriftTable { g: vec![0.0, 90.0], nu_mean: vec![0.1; 2], nu_std: vec![0.0; 2] }),
            "device.drift_table beside device.log_relax",
        );
        let e = DeviceModel { programming: Programming::Single, ..DeviceModel::pcm() }.validate().unwrap_err();
        assert!(e.contains("give device.log_relax"), "{e}");
        let e = DeviceModel { g_min: 1.0, ..DeviceModel::pcm() }.validate().unwrap_err();
        assert!(e.contains("only programming = \"single\""), "{e}");
    }
}
