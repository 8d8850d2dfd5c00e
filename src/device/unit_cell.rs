//! How a weight sits on devices beyond one differential pair: several conductance pairs of given
//! significance (aihwkit's `NPairConductanceConverter` / `DualPairConductanceConverter`,
//! inference/converter/conductance.py; noise-models §2 with significance factors F_k) and devices
//! stuck at g_max or 0 µS (a programming failure, NeuroSim's stuck-at-1 and stuck-at-0). The f64
//! reference the `program` and `drift` stages and training's injector are checked against.

use super::{DeviceModel, DriftPath, Programming, MAX_PAIRS};

impl DeviceModel {
    /// The conductance pairs' significance factors F_k, least significant first: `[1.0]` for one
    /// pair.
    pub fn pair_factors(&self) -> Vec<f64> {
        if self.pair_significance.is_empty() {
            vec![1.0]
        } else {
            self.pair_significance.clone()
        }
    }

    /// The weight range of the pairs in units of g_max, Σ F_k (1 for one pair): a tile's max|W|
    /// maps to Σ F_k · g_max µS (aihwkit's `NPairConductanceConverter`: s = Σ F_k (g_max − g_min)
    /// / max|W|, g_min = 0).
    pub fn pair_span(&self) -> f64 {
        self.pair_factors().iter().sum()
    }

    /// The targets of a weight's pairs on the side of its sign, for u = |s·W| µS: pair k holds
    /// clamp((u − g_max Σ_{j<k} F_j) / F_k, 0, g_max), the part of u above the lower pairs' range
    /// (aihwkit's `NPairConductanceConverter.convert_to_conductances`; the other side's devices
    /// are at 0 µS). One pair: clamp(u, 0, g_max). Entries past the pairs are 0 (no allocation:
    /// training calls it per weight).
    pub fn pair_targets(&self, u: f64) -> [f64; MAX_PAIRS] {
        let (mut out, mut lower) = ([0.0; MAX_PAIRS], 0.0);
        let one = [1.0];
        let factors = if self.pair_significance.is_empty() { &one[..] } else { &self.pair_significance[..] };
        for (g, &f) in out.iter_mut().zip(factors) {
            *g = ((u - lower) / f).clamp(0.0, self.g_max);
            lower += f * self.g_max;
        }
        out
    }

    /// Whether any device is stuck (`stuck_set` or `stuck_reset` above 0).
    pub fn has_stuck(&self) -> bool {
        self.stuck_set > 0.0 || self.stuck_reset > 0.0
    }

    /// The conductance a device with the uniform draw u ∈ [0, 1) is stuck at: 0 µS where
    /// u < `stuck_reset`, g_max where u < `stuck_reset` + `stuck_set`, none otherwise (it is
    /// programmed).
    pub fn stuck_at(&self, u: f64) -> Option<f64> {
        if u < self.stuck_reset {
            Some(0.0)
        } else if u < self.stuck_reset + self.stuck_set {
            Some(self.g_max)
        } else {
            None
        }
    }

    /// `pair_significance`: at most [`MAX_PAIRS`] finite factors > 0; `stuck_set` and
    /// `stuck_reset`: fractions that sum to at most 1; several pairs and stuck devices only where
    /// a weight is a differential pair read on aihwkit's tile path.
    pub(super) fn validate_pairs(&self) -> Result<(), String> {
        let f = &self.pair_significance;
        if f.len() > MAX_PAIRS {
            return Err(format!("device.pair_significance = {f:?}: at most {MAX_PAIRS} pairs per weight; give {MAX_PAIRS} factors or fewer"));
        }
        if let Some(v) = f.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
            return Err(format!(
                "device.pair_significance = {f:?}: {v} is not a factor; every pair's significance must be a finite number > 0 (least significant first, e.g. [1.0, 3.0])"
            ));
        }
        let stuck = [("stuck_set", self.stuck_set), ("stuck_reset", self.stuck_reset)];
        if let Some((name, v)) = stuck.iter().find(|(_, v)| !(v.is_finite() && (0.0..=1.0).contains(v))) {
            return Err(format!("device.{name} = {v}: a fraction of devices, in [0, 1] (0 = none)"));
        }
        if self.stuck_set + self.stuck_reset > 1.0 {
            return Err(format!(
                "device.stuck_set = {} and device.stuck_reset = {}: together more than every device; their sum must be at most 1",
                self.stuck_set, self.stuck_reset
            ));
        }
        let several = f.len() > 1;
        if several || self.has_stuck() {
            let what = if several { format!("device.pair_significance = {f:?}") } else { "device.stuck_set and device.stuck_reset".to_string() };
            let why = if self.relax_table.is_some() {
                Some("its relaxation table (device.relax_table) redraws one pair")
            } else if self.log_relax.is_some() || self.programming == Programming::Single {
                Some("it maps one device per weight (programming = \"single\")")
            } else if self.programming == Programming::Weight {
                Some("it programs one signed draw per weight (programming = \"weight\")")
            } else if self.drift_path == DriftPath::BothDevices {
                Some("drift_path = \"both_devices\" keeps one pair's two devices")
            } else {
                None
            };
            if let Some(why) = why {
                let fix = if several { "or one pair" } else { "or no stuck devices" };
                return Err(format!(
                    "{what} on device.model = {:?}: several pairs per weight and stuck devices need a differential pair read as aihwkit's tile reads it, and {why}; use the pcm, hermes or simple model with programming = \"pair\" and drift_path = \"aihwkit\", {fix}",
                    self.name
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// aihwkit's NPairConductanceConverter: the lower pairs fill first, each pair's part over its
    /// significance; one pair is clamp(u, 0, g_max).
    #[test]
    fn pair_targets_fill_the_lower_pairs_first() {
        let d = DeviceModel { pair_significance: vec![1.0, 2.0, 4.0], ..DeviceModel::pcm() };
        assert_eq!(d.pair_span(), 7.0);
        assert_eq!(d.pair_targets(10.0), [10.0, 0.0, 0.0, 0.0]);
        assert_eq!(d.pair_targets(45.0), [25.0, 10.0, 0.0, 0.0]);
        assert_eq!(d.pair_targets(175.0), [25.0, 25.0, 25.0, 0.0]);
        assert_eq!(d.pair_targets(95.0), [25.0, 25.0, 5.0, 0.0]);
        assert_eq!(DeviceModel::pcm().pair_targets(30.0), [25.0, 0.0, 0.0, 0.0]);
        assert_eq!(DeviceModel::pcm().pair_span(), 1.0);
    }

    /// Every misuse of pair_significance is refused with its field and the fix.
    #[test]
    fn pair_significance_is_checked() {
        let with = |f: Vec<f64>, d: DeviceModel| DeviceModel { pair_significance: f, ..d }.validate();
        assert!(with(vec![1.0, 3.0], DeviceModel::hermes()).is_ok());
        assert!(with(vec![2.0], DeviceModel::pcm()).is_ok());
        let e = with(vec![1.0; 5], DeviceModel::pcm()).unwrap_err();
        assert!(e.contains("at most 4 pairs"), "{e}");
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let e = with(vec![1.0, bad], DeviceModel::pcm()).unwrap_err();
            assert!(e.contains("finite number > 0"), "{e}");
        }
        for (dev, why) in [
            (DeviceModel::reram(), "relax_table"),
            (DeviceModel::reram_cmo(), "one device per weight"),
            (DeviceModel::afm(), "one signed draw"),
            (DeviceModel { drift_path: DriftPath::BothDevices, ..DeviceModel::pcm() }, "both_devices"),
        ] {
            let e = with(vec![1.0, 1.0], dev).unwrap_err();
            assert!(e.contains("device.pair_significance") && e.contains(why), "{e}");
        }
    }

    /// Stuck devices: the fate from a uniform draw, and every misuse refused with its fix.
    #[test]
    fn stuck_devices_are_drawn_and_checked() {
        let d = DeviceModel { stuck_set: 0.1, stuck_reset: 0.2, ..DeviceModel::pcm() };
        assert!(d.validate().is_ok() && d.has_stuck() && !DeviceModel::pcm().has_stuck());
        assert_eq!(
            [d.stuck_at(0.0), d.stuck_at(0.19), d.stuck_at(0.2), d.stuck_at(0.29), d.stuck_at(0.31)],
            [Some(0.0), Some(0.0), Some(25.0), Some(25.0), None]
        );
        let with = |set: f64, reset: f64, dev: DeviceModel| DeviceModel { stuck_set: set, stuck_reset: reset, ..dev }.validate();
        for bad in [-0.1, 1.5, f64::NAN] {
            let e = with(bad, 0.0, DeviceModel::pcm()).unwrap_err();
            assert!(e.contains("device.stuck_set") && e.contains("in [0, 1]"), "{e}");
        }
        let e = with(0.6, 0.5, DeviceModel::pcm()).unwrap_err();
        assert!(e.contains("at most 1"), "{e}");
        for dev in
            [DeviceModel::reram(), DeviceModel::reram_cmo(), DeviceModel::afm(), DeviceModel { drift_path: DriftPath::BothDevices, ..DeviceModel::pcm() }]
        {
            let e = with(0.01, 0.0, dev).unwrap_err();
            assert!(e.contains("device.stuck_set and device.stuck_reset") && e.contains("or no stuck devices"), "{e}");
        }
    }
}
