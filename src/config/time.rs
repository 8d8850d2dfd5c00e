//! Inference times: values with units in experiment files and flags (`1h`, `10y`, `3.15e7`) and
//! the short labels the report and the terminal print.

/// Seconds in the units accepted for inference times.
pub const TIME_UNITS: [(&str, f64); 9] = [
    ("s", 1.0),
    ("min", 60.0),
    ("h", 3600.0),
    ("d", 86_400.0),
    ("w", 604_800.0),
    ("month", 2_629_800.0), // 1/12 of a Julian year
    ("y", 31_557_600.0),    // Julian year
    ("ms", 1e-3),
    ("us", 1e-6),
];

/// Largest inference time taken, s (about 3·10¹² years): far past any drift study, and well
/// within what a results file may hold (`results::validate::MAX_MAGNITUDE`), so every run's
/// results can be read back and merged.
pub const MAX_TIME_S: f64 = 1e20;

/// Parses `3600`, `1h`, `1 d`, `10y`, `2.5e6` into seconds (finite, >= 0 and at most
/// [`MAX_TIME_S`]).
pub fn parse_time(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E').unwrap_or(t.len());
    // "1e5" keeps its exponent; a unit starts at the first letter that is not an exponent marker.
    let (num, unit) = t.split_at(split);
    let unit = unit.trim();
    let v: f64 =
        num.trim().parse().map_err(|_| format!("time {s:?}: expected a number with an optional unit (s, min, h, d, w, month, y), e.g. 1h or 3.15e7"))?;
    let scale = if unit.is_empty() {
        1.0
    } else {
        TIME_UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, f)| *f)
            .ok_or_else(|| format!("time {s:?}: unknown unit {unit:?}; use s, min, h, d, w, month or y"))?
    };
    let secs = v * scale;
    if !secs.is_finite() {
        return Err(format!("time {s:?}: not a finite number of seconds; use a time up to {MAX_TIME_S:e} s, e.g. 10y"));
    }
    if secs < 0.0 {
        return Err(format!("time {s:?}: must be >= 0 (time since programming)"));
    }
    if secs > MAX_TIME_S {
        return Err(format!("time {s:?}: {secs:.3e} s is beyond the largest time taken ({MAX_TIME_S:e} s, about 3e12 y); use a shorter time, e.g. 10y"));
    }
    Ok(secs)
}

/// A short human label for a time in seconds (1 s, 1 h, 1 d, 1 month, 1 y, 10 y, ...).
pub fn time_label(secs: f64) -> String {
    if secs == 0.0 {
        return "0 s".into();
    }
    let order = [("y", 31_557_600.0), ("month", 2_629_800.0), ("d", 86_400.0), ("h", 3600.0), ("min", 60.0), ("s", 1.0)];
    for (u, f) in order {
        if secs >= f * 0.999 {
            let v = secs / f;
            return if (v - v.round()).abs() < 1e-3 * v.max(1.0) { format!("{} {u}", v.round()) } else { format!("{v:.3} {u}") };
        }
    }
    format!("{secs:.3e} s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_with_units() {
        assert_eq!(parse_time("3600").unwrap(), 3600.0);
        assert_eq!(parse_time("1h").unwrap(), 3600.0);
        assert_eq!(parse_time("2.5e3").unwrap(), 2500.0);
        assert_eq!(parse_time("10 y").unwrap(), 315_576_000.0);
        assert!(parse_time("-1").unwrap_err().contains(">= 0"));
        assert!(parse_time("1 fortnight").unwrap_err().contains("unknown unit"));
        // Too long to be read back from results.json, or not finite: refused, saying which.
        assert!(parse_time("1e23y").unwrap_err().contains("beyond the largest time"));
        assert!(parse_time("1e400s").unwrap_err().contains("not a finite"));
        assert_eq!(parse_time("1e20").unwrap(), MAX_TIME_S);
        const { assert!(MAX_TIME_S < crate::results::validate::MAX_MAGNITUDE) };
        assert_eq!(time_label(86_400.0), "1 d");
        assert_eq!(time_label(315_576_000.0), "10 y");
    }
}
