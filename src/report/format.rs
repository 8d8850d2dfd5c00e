//! Numbers and units, once, for every part of the report (tables, prose, plot labels): rounding,
//! significant digits, percentages, and the unit rule for energies and times. The unit rule: a
//! value is shown in the largest unit of which it is at least one (1 250 ns is 1.25 µs, 999 pJ stays
//! pJ), in the text and on the plot axes alike.

use crate::results::Results;

/// Whether the metric is a classification accuracy in [0, 1], shown in percent.
pub fn is_classifier(results: &Results) -> bool {
    // Accuracy workloads carry exact per-trial correct counts (a MoE classifier too); the names
    // cover a run with no points.
    results.workload == "classifier" || results.workload == "kernel_ridge" || results.points.iter().any(|p| p.per_trial_correct.is_some())
}

/// Factor from stored metric values to displayed ones (100 for accuracies shown in %).
pub fn metric_scale(results: &Results) -> f64 {
    if is_classifier(results) {
        100.0
    } else {
        1.0
    }
}

/// The metric's axis description, with its unit.
pub fn metric_axis_label(results: &Results) -> String {
    if is_classifier(results) {
        format!("{} (%)", results.metric)
    } else {
        results.metric.clone()
    }
}

/// Energies in pJ, and the larger units with their factors.
pub(crate) const ENERGY_UNITS: [(f64, &str); 4] = [(1.0, "pJ"), (1e3, "nJ"), (1e6, "µJ"), (1e9, "mJ")];
/// Times in ns, and the larger units with their factors.
pub(crate) const TIME_UNITS: [(f64, &str); 4] = [(1.0, "ns"), (1e3, "µs"), (1e6, "ms"), (1e9, "s")];

/// The unit rule: the largest of `units` (factor, name; smallest first) of which `v` is at least
/// one, else the smallest.
pub(crate) fn unit_for(v: f64, units: &[(f64, &'static str)]) -> (f64, &'static str) {
    units.iter().rev().find(|(factor, _)| v.abs() >= *factor).copied().unwrap_or(units[0])
}

/// The unit for energies up to `max_pj` (an axis), and the divisor from pJ to it.
pub(crate) fn energy_unit(max_pj: f64) -> (&'static str, f64) {
    let (factor, unit) = unit_for(max_pj, &ENERGY_UNITS);
    (unit, factor)
}

/// The unit for times up to `max_ns` (an axis), and the divisor from ns to it.
pub(crate) fn time_unit(max_ns: f64) -> (&'static str, f64) {
    let (factor, unit) = unit_for(max_ns, &TIME_UNITS);
    (unit, factor)
}

/// How metric values are shown: accuracies in % with two decimals, anything else with four
/// significant digits in its own unit.
pub(crate) struct Fmt {
    pub(crate) classifier: bool,
    pub(crate) scale: f64,
}

impl Fmt {
    pub(crate) fn new(results: &Results) -> Self {
        Fmt { classifier: is_classifier(results), scale: metric_scale(results) }
    }

    /// A metric value for tables (no unit; the table's note gives it).
    pub(crate) fn value(&self, v: f64) -> String {
        if self.classifier {
            fixed(v * self.scale, 2)
        } else {
            significant(v, 4)
        }
    }

    /// A metric value for prose, with its unit.
    pub(crate) fn prose(&self, v: f64) -> String {
        if self.classifier {
            format!("{} %", fixed(v * self.scale, 1))
        } else {
            significant(v, 3)
        }
    }

    pub(crate) fn range(&self, lo: f64, hi: f64) -> String {
        format!("{}–{}", self.value(lo), self.value(hi))
    }

    /// The unit of differences between metric values.
    pub(crate) fn difference_unit(&self) -> &'static str {
        if self.classifier {
            " points"
        } else {
            ""
        }
    }
}

pub(crate) fn fixed(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return non_finite(v);
    }
    let s = format!("{v:.decimals$}");
    // "-0.00" reads as a sign error; rounding to zero shows as zero.
    if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
        s[1..].to_string()
    } else {
        s
    }
}

/// Drops trailing zeros of a fixed-notation number ("0.500" → "0.5") for values that are
/// settings rather than measurements.
pub(crate) fn trimmed(s: String) -> String {
    if s.contains('.') && !s.contains('e') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

pub(crate) fn non_finite(v: f64) -> String {
    if v.is_nan() {
        "n/a".to_string()
    } else if v > 0.0 {
        "∞".to_string()
    } else {
        "−∞".to_string()
    }
}

/// `digits` significant digits, in fixed notation for magnitudes 1e-3..1e6 and scientific
/// otherwise.
pub(crate) fn significant(v: f64, digits: usize) -> String {
    if !v.is_finite() {
        return non_finite(v);
    }
    if v == 0.0 {
        return "0".to_string();
    }
    let magnitude = v.abs().log10().floor() as i32;
    if (-3..6).contains(&magnitude) {
        let decimals = (digits as i32 - 1 - magnitude).max(0) as usize;
        fixed(v, decimals)
    } else {
        format!("{:.*e}", digits - 1, v)
    }
}

/// Decimals that show a ± half-width `hw` to one or two significant digits.
pub(crate) fn decimals_for(hw: f64) -> usize {
    if hw.is_finite() && hw > 0.0 {
        (-hw.log10().floor()).clamp(1.0, 6.0) as usize
    } else {
        1
    }
}

/// 0.95 → "95 %", 0.999 → "99.9 %".
pub(crate) fn percent_label(confidence: f64) -> String {
    let s = format!("{:.3}", confidence * 100.0);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s} %")
}

/// Picojoules in the most readable of pJ, nJ, µJ, mJ.
pub(crate) fn energy_label(pj: f64) -> String {
    scaled_unit(pj, &ENERGY_UNITS)
}

/// Nanoseconds in the most readable of ns, µs, ms, s.
pub(crate) fn latency_label(ns: f64) -> String {
    scaled_unit(ns, &TIME_UNITS)
}

pub(crate) fn scaled_unit(v: f64, units: &[(f64, &'static str)]) -> String {
    let (factor, unit) = unit_for(v, units);
    format!("{} {unit}", significant(v / factor, 3))
}

pub(crate) fn duration_label(seconds: f64) -> String {
    if !seconds.is_finite() {
        return non_finite(seconds);
    }
    if seconds < 120.0 {
        format!("{} s", significant(seconds, 3))
    } else if seconds < 7200.0 {
        format!("{} min", fixed(seconds / 60.0, 1))
    } else {
        format!("{} h", fixed(seconds / 3600.0, 2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_format_for_reading() {
        assert_eq!(fixed(-0.0001, 2), "0.00");
        assert_eq!(fixed(95.216, 1), "95.2");
        assert_eq!(significant(0.020004, 4), "0.02000");
        assert_eq!(significant(7971.2, 4), "7971");
        assert_eq!(significant(1.5e-5, 3), "1.50e-5");
        assert_eq!(significant(f64::NAN, 3), "n/a");
        assert_eq!(trimmed(significant(0.5, 3)), "0.5");
        assert_eq!(percent_label(0.95), "95 %");
        assert_eq!(percent_label(0.999), "99.9 %");
        assert_eq!(energy_label(7970.5), "7.97 nJ");
        assert_eq!(energy_label(12.0), "12.0 pJ");
        assert_eq!(latency_label(1250.0), "1.25 µs");
        assert_eq!(decimals_for(0.1), 1);
        assert_eq!(decimals_for(0.04), 2);
    }
}
