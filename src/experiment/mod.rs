//! Experiment settings shared by the CLI and experiment files: time values with units, and
//! `section.field = value` overrides of the device model and periphery, applied through serde so
//! every field is overridable and a wrong name or type is an error that names it.

pub mod budget;
pub mod energy;
pub mod file;
pub mod journal;
pub mod kernel;
pub mod merge;
pub mod moe;
pub mod paired;
pub mod reference;
pub mod run;

pub use file::{Adaptive, Experiment, ExperimentError, SweepPoint, WorkloadKind};

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

/// Parses `3600`, `1h`, `1 d`, `10y`, `2.5e6` into seconds (must be finite and >= 0).
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
    if !(secs.is_finite() && secs >= 0.0) {
        return Err(format!("time {s:?}: must be >= 0 (time since programming)"));
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

/// The shard of this process from a batch scheduler's environment (`aimc run --shard env`):
/// a Slurm job array (`SLURM_ARRAY_TASK_ID` minus `SLURM_ARRAY_TASK_MIN`, of
/// `SLURM_ARRAY_TASK_COUNT`) or a Kubernetes Indexed Job (`JOB_COMPLETION_INDEX` of
/// `AIMC_SHARD_COUNT`, which the Job sets to its `completions`). Returns (K, N, where from).
pub fn shard_from_env(var: impl Fn(&str) -> Option<String>) -> Result<(u32, u32, &'static str), String> {
    let num = |name: &str| -> Result<Option<u32>, String> {
        match var(name) {
            None => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| format!("{name} = {v:?} is not a whole number")),
        }
    };
    if let Some(id) = num("SLURM_ARRAY_TASK_ID")? {
        let n = num("SLURM_ARRAY_TASK_COUNT")?.ok_or("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not: submit with sbatch --array=0-(N-1)")?;
        let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        let k = id.checked_sub(min).ok_or_else(|| format!("SLURM_ARRAY_TASK_ID {id} is below SLURM_ARRAY_TASK_MIN {min}"))?;
        return Ok((k, n, "the Slurm job array (SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT)"));
    }
    if let Some(k) = num("JOB_COMPLETION_INDEX")? {
        let n =
            num("AIMC_SHARD_COUNT")?.ok_or("JOB_COMPLETION_INDEX is set but AIMC_SHARD_COUNT is not: set it to the Job's completions (deploy/k8s-job.yaml)")?;
        return Ok((k, n, "the Kubernetes Indexed Job (JOB_COMPLETION_INDEX, AIMC_SHARD_COUNT)"));
    }
    Err("--shard env: no scheduler variables found (SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX); give --shard K/N".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_from_slurm_and_kubernetes() {
        let env = |pairs: &'static [(&'static str, &'static str)]| move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
        assert_eq!(shard_from_env(env(&[("SLURM_ARRAY_TASK_ID", "3"), ("SLURM_ARRAY_TASK_COUNT", "4")])).unwrap().0, 3);
        let (k, n, _) = shard_from_env(env(&[("SLURM_ARRAY_TASK_ID", "12"), ("SLURM_ARRAY_TASK_COUNT", "4"), ("SLURM_ARRAY_TASK_MIN", "10")])).unwrap();
        assert_eq!((k, n), (2, 4));
        let (k, n, _) = shard_from_env(env(&[("JOB_COMPLETION_INDEX", "1"), ("AIMC_SHARD_COUNT", "8")])).unwrap();
        assert_eq!((k, n), (1, 8));
        assert!(shard_from_env(env(&[("JOB_COMPLETION_INDEX", "1")])).unwrap_err().contains("AIMC_SHARD_COUNT"));
        assert!(shard_from_env(env(&[])).unwrap_err().contains("--shard K/N"));
        assert!(shard_from_env(env(&[("SLURM_ARRAY_TASK_ID", "x"), ("SLURM_ARRAY_TASK_COUNT", "4")])).unwrap_err().contains("whole number"));
    }

    #[test]
    fn times_with_units() {
        assert_eq!(parse_time("3600").unwrap(), 3600.0);
        assert_eq!(parse_time("1h").unwrap(), 3600.0);
        assert_eq!(parse_time("2.5e3").unwrap(), 2500.0);
        assert_eq!(parse_time("10 y").unwrap(), 315_576_000.0);
        assert!(parse_time("-1").unwrap_err().contains(">= 0"));
        assert!(parse_time("1 fortnight").unwrap_err().contains("unknown unit"));
        assert_eq!(time_label(86_400.0), "1 d");
        assert_eq!(time_label(315_576_000.0), "10 y");
    }
}
