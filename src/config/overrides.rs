//! Overrides of a validated experiment from the command line and the Python package: `--set
//! SECTION.FIELD=VALUE` on the document before validation, and `--trials`, `--ci-halfwidth` and
//! `--shard` after it, each keeping the typed [`Experiment`] and its `resolved` form (which names
//! the run in the checkpoint journal and the results) in step.

use super::{Adaptive, Experiment, ExperimentError};
use crate::crossbar::{split_len, split_start};
use crate::results::Shard;

/// One `--set [SECTION.]FIELD=VALUE`: the section (none for a top-level field such as
/// `trials` or `layer_insight_trials`), the field and the value as TOML (numbers, booleans,
/// arrays where it parses as one, else the text as a string).
pub fn parse_set(s: &str) -> Result<(Option<String>, String, toml::Value), ExperimentError> {
    let (key, value) = s.split_once('=').ok_or_else(|| {
        ExperimentError::Override(format!("--set {s}: expected [SECTION.]FIELD=VALUE, e.g. device.drift_scale=0.5 or layer_insight_trials=0"))
    })?;
    let key = key.trim();
    let (section, field) = match key.split_once('.') {
        Some((section, field)) => (Some(section.trim().to_string()), field.trim().to_string()),
        None => (None, key.to_string()),
    };
    if field.is_empty() || section.as_deref().is_some_and(str::is_empty) {
        return Err(ExperimentError::Override(format!(
            "--set {s}: expected [SECTION.]FIELD before '=': a top-level field (trials, seed, layer_insight_trials, ...) or SECTION.FIELD (device, periphery, kernel, moe, arch, ...)"
        )));
    }
    let v = toml::from_str::<toml::Table>(&format!("v = {}", value.trim())).ok().and_then(|t| t.get("v").cloned()).unwrap_or_else(|| value.trim().into());
    Ok((section, field, v))
}

/// Applies `--set` overrides to an experiment document before validation, so every override is
/// checked like a field of the file. The one setter of every front end: `aimc run` applies it to
/// the file, `aimc weights` and `aimc mlp` to the document their flags build, the Python package
/// to the document it writes; so every field a file takes, top-level or in a section, can be set
/// from each of them.
pub fn apply_sets(doc: &mut toml::Table, sets: &[String]) -> Result<(), ExperimentError> {
    for s in sets {
        match parse_set(s)? {
            (Some(section), field, v) => {
                let table = doc.entry(section.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
                let Some(t) = table.as_table_mut() else {
                    return Err(ExperimentError::Override(format!("--set {s}: {section} is a top-level value, not a [section]; use --set {section}=VALUE")));
                };
                t.insert(field, v);
            }
            (None, field, v) => {
                if doc.get(&field).is_some_and(|old| old.is_table()) && !v.is_table() {
                    return Err(ExperimentError::Override(format!("--set {s}: {field} is a [section]; set one of its fields with --set {field}.FIELD=VALUE")));
                }
                doc.insert(field, v);
            }
        }
    }
    Ok(())
}

/// Refuses a `--set` of a field that a sweep axis also sets: the axis replaces the value at every
/// point, so it would go unused while the results recorded it. Which fields the axes set comes
/// from the sweep's own dispatch ([`super::sweep::swept_fields`]).
pub(super) fn check_sets_not_swept(sets: &[String], sweep: &toml::Table, base: &super::sweep::Base<'_>) -> Result<(), ExperimentError> {
    if sets.is_empty() {
        return Ok(());
    }
    let swept = super::sweep::swept_fields(sweep, base);
    for s in sets {
        let (section, field, value) = parse_set(s)?;
        // The field itself, or a field inside a top-level one an axis sets whole (`tile.max_in`).
        let hit = |sec: &Option<&str>, f: &String| (*sec == section.as_deref() && *f == field) || (sec.is_none() && section.as_deref() == Some(f.as_str()));
        let Some((_, _, axis)) = swept.iter().find(|(sec, f, _)| hit(sec, f)) else {
            continue;
        };
        let key = section.map_or(field.clone(), |sec| format!("{sec}.{field}"));
        let fix = if axis == "sweep.variant" {
            "set it in the variants of sweep.variant instead (or remove it from them)".to_string()
        } else {
            format!("set the axis instead, e.g. --set '{axis}=[{value}]'")
        };
        return Err(ExperimentError::Override(format!(
            "--set {}: {axis} also sets {key} at every sweep point, so this value would go unused; {fix}",
            s.trim()
        )));
    }
    Ok(())
}

/// An experiment file's text with `--set` overrides applied (the text itself without any).
fn with_sets(text: &str, path: &std::path::Path, sets: &[String]) -> Result<String, ExperimentError> {
    if sets.is_empty() {
        return Ok(text.to_string());
    }
    let bad = |msg: String| ExperimentError::Invalid { file: path.display().to_string(), msg };
    let mut doc: toml::Table = toml::from_str(text).map_err(|e| bad(e.to_string().trim().replace('\n', " ")))?;
    apply_sets(&mut doc, sets)?;
    toml::to_string(&doc).map_err(|e| bad(format!("the document with --set applied does not serialise ({e})")))
}

/// An experiment file's text with base settings written in as if the file held them (the Python
/// package's `rpu_config=`: an aihwkit configuration's device, periphery, tile and GDC). A field
/// a `[sweep]` axis sets at every point is left to the axis, which varies it as it would the
/// file's own value. Refused, naming the field and the fix: a field the file itself sets to
/// another value (which of the two was meant is not guessed), and a base `device.model` with an
/// axis that sets the model anywhere (the base's device fields are that model's and would be laid
/// over the others' presets).
pub fn with_base(text: &str, path: &std::path::Path, base: &[String]) -> Result<String, ExperimentError> {
    if base.is_empty() {
        return Ok(text.to_string());
    }
    let bad = |msg: String| ExperimentError::Invalid { file: path.display().to_string(), msg };
    let (everywhere, anywhere) = Experiment::swept_fields(text, path)?;
    let covers = |f: &str, key: &str| f == key || key.strip_prefix(f).is_some_and(|rest| rest.starts_with('.'));
    let doc: toml::Table = toml::from_str(text).map_err(|e| bad(e.to_string().trim().replace('\n', " ")))?;
    let mut keep = vec![];
    for set in base {
        let (section, field, value) = parse_set(set)?;
        let key = section.as_ref().map_or(field.clone(), |s| format!("{s}.{field}"));
        if key == "device.model" {
            if let Some(f) = anywhere.iter().find(|f| covers(f, "device.model")) {
                return Err(bad(format!(
                    "the aihwkit configuration gives the device (device.model = {value} with its noise model's fields), and the sweep sets {f}: its other models would run under those fields; remove the model axis or the configuration"
                )));
            }
        }
        if everywhere.iter().any(|f| covers(f, &key)) {
            continue;
        }
        let own = match &section {
            None => doc.get(&field),
            Some(s) => match doc.get(s) {
                Some(toml::Value::Table(t)) => t.get(&field),
                Some(v) => Some(v),
                None => None,
            },
        };
        // `tile = "512x512"`: the shape the configuration's tile.max_in and tile.max_out give
        // when they agree with it; the file's string stays.
        if let (Some("tile"), Some(toml::Value::String(shape))) = (section.as_deref(), own) {
            let given = super::noise::parse_tile_str(shape).ok().map(|t| match field.as_str() {
                "max_in" => t.max_in as i64,
                _ => t.max_out as i64,
            });
            if given.is_some_and(|g| same_value(&toml::Value::Integer(g), &value)) && matches!(field.as_str(), "max_in" | "max_out") {
                continue;
            }
        }
        if let Some(own) = own.filter(|own| !same_value(own, &value)) {
            let at = section.as_ref().map_or(field.clone(), |s| if doc.get(s).is_some_and(|v| v.is_table()) { key.clone() } else { s.clone() });
            return Err(bad(format!(
                "{at} = {own} in the experiment and the aihwkit configuration gives {key} = {value}: remove it from the experiment, or change the configuration"
            )));
        }
        keep.push(set.clone());
    }
    with_sets(text, path, &keep)
}

/// Two TOML values as the settings they give: numbers by value (`25` and `25.0` alike), arrays
/// element by element.
fn same_value(a: &toml::Value, b: &toml::Value) -> bool {
    use toml::Value::{Array, Float, Integer};
    match (a, b) {
        (Integer(x), Float(y)) | (Float(y), Integer(x)) => *x as f64 == *y,
        (Array(x), Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_value(a, b)),
        _ => a == b,
    }
}

impl Experiment {
    /// Reads an experiment file with `--set SECTION.FIELD=VALUE` applied to its TOML, then
    /// validates it.
    pub fn load_with_sets(path: &std::path::Path, sets: &[String]) -> Result<Experiment, ExperimentError> {
        if sets.is_empty() {
            return Experiment::load(path);
        }
        Experiment::from_text_with_sets(&Experiment::read_text(path)?, path, sets)
    }

    /// [`Self::load_with_sets`] with `--trials N` as [`Self::from_text_with_trials`] applies it.
    pub fn load_with_trials(path: &std::path::Path, sets: &[String], trials: Option<u32>) -> Result<Experiment, ExperimentError> {
        Experiment::from_text_with_trials(&Experiment::read_text(path)?, path, sets, trials)
    }

    /// An experiment file's text (read from `path`) with `--set` overrides applied, then validated.
    pub fn from_text_with_sets(text: &str, path: &std::path::Path, sets: &[String]) -> Result<Experiment, ExperimentError> {
        Experiment::validate(&with_sets(text, path, sets)?, text, path, sets)
    }

    /// An experiment with `--set` overrides and `--trials N` (CLI; `trials=N` in Python): the trial
    /// count goes into the document before validation, so what depends on it (`reads_per_programming`,
    /// `kernel.projection_seeds`) is checked against the count that runs, then [`Self::set_trials`]
    /// clamps the diagnostics' trials to it.
    /// The experiment's `sha256` stays that of the file with the `--set` overrides, as without
    /// `--trials` (shards of one file with different counts are told apart by their counts).
    pub fn from_text_with_trials(text: &str, path: &std::path::Path, sets: &[String], trials: Option<u32>) -> Result<Experiment, ExperimentError> {
        let Some(t) = trials else { return Experiment::from_text_with_sets(text, path, sets) };
        let mut all = sets.to_vec();
        all.push(format!("trials={t}"));
        let mut exp = Experiment::from_text_with_sets(text, path, &all)?;
        exp.sha256 = super::text_sha256(&with_sets(text, path, sets)?);
        exp.set_trials(t)?;
        Ok(exp)
    }

    /// `--trials N` (CLI) and `trials=N` (Python): the trial count, with the weight-error and
    /// layer-insight trials clamped to it, recorded in the resolved form.
    pub fn set_trials(&mut self, trials: u32) -> Result<(), ExperimentError> {
        if trials < 2 {
            return Err(ExperimentError::Override(format!("trials = {trials}: an interval over trials needs at least 2")));
        }
        if trials > super::MAX_TRIALS {
            return Err(ExperimentError::Override(format!(
                "trials = {trials}: at most {} (every trial's metric is kept in memory and in results.json)",
                super::MAX_TRIALS
            )));
        }
        super::check_reads(trials, self.reads_per_programming).map_err(ExperimentError::Override)?;
        if self.shard.is_some() {
            return Err(ExperimentError::Override("--trials after --shard: set the trial count first, then pick the shard".into()));
        }
        for p in &self.points {
            if let Some(k) = &p.kernel {
                crate::workload::kernel::check_projection_trials(trials, k.projection_seeds)
                    .map_err(|m| ExperimentError::Override(m.replace("trials =", "--trials")))?;
            }
        }
        self.trials = trials;
        self.total_trials = trials;
        self.weight_error_trials = self.weight_error_trials.min(trials);
        self.layer_insight_trials = self.layer_insight_trials.min(trials);
        self.resolved["trials"] = trials.into();
        Ok(())
    }

    /// `--ci-halfwidth X --max-trials N`: adaptive trials, in batches of the trial count.
    pub fn set_adaptive(&mut self, half_width: f64, max_trials: u32) -> Result<(), ExperimentError> {
        if !(half_width > 0.0 && half_width.is_finite()) {
            return Err(ExperimentError::Override(format!("--ci-halfwidth {half_width}: must be > 0, e.g. 0.001 for ±0.1 points of accuracy")));
        }
        if self.shard.is_some() {
            return Err(ExperimentError::Override(
                "--ci-halfwidth with --shard: adaptive trials decide the trial count as they go; run shards with a fixed count".into(),
            ));
        }
        if max_trials > super::MAX_TRIALS {
            return Err(ExperimentError::Override(format!("--max-trials {max_trials}: at most {} (every trial's metric is kept)", super::MAX_TRIALS)));
        }
        if max_trials < self.trials.max(2) {
            return Err(ExperimentError::Override(format!("--max-trials {max_trials}: must be at least the batch of {} trials", self.trials.max(2))));
        }
        if self.reads_per_programming > 1 {
            return Err(ExperimentError::Override(
                "--ci-halfwidth with reads_per_programming > 1: adaptive trials stop at any trial, not at whole programmings; run a fixed count".into(),
            ));
        }
        if self.points.iter().any(|p| p.budget_only()) {
            return Err(ExperimentError::Override(
                "--ci-halfwidth with a [budget]: adaptive trials stop each configuration at its own count, and the budget pairs configurations trial by trial; run a fixed count (the report's \"trials for ±\" column says how many)".into(),
            ));
        }
        if self.points.iter().any(|p| p.kernel.as_ref().is_some_and(|k| k.projection_seeds > 1)) {
            return Err(ExperimentError::Override(
                "--ci-halfwidth with kernel.projection_seeds > 1: the trials are fixed blocks of one projection each; run a fixed count".into(),
            ));
        }
        self.ci_half_width = half_width;
        self.resolved["ci_half_width"] = half_width.into();
        self.resolved["adaptive_max_trials"] = max_trials.into();
        self.adaptive = Some(Adaptive { half_width, max_trials });
        Ok(())
    }

    /// Restricts the run to shard `index` of `count`: balanced contiguous trial ranges, the same
    /// global trial indices (so the same random numbers) as the single run.
    pub fn apply_shard(&mut self, index: u32, count: u32) -> Result<(), ExperimentError> {
        if count == 0 || index >= count {
            return Err(ExperimentError::Override(format!("--shard {index}/{count}: need 0 <= K < N, e.g. --shard 0/4 .. --shard 3/4")));
        }
        if count > self.trials {
            return Err(ExperimentError::Override(format!("--shard {index}/{count}: more shards than the {} trials", self.trials)));
        }
        if self.adaptive.is_some() {
            return Err(ExperimentError::Override(
                "--ci-halfwidth with --shard: adaptive trials decide the trial count as they go; run shards with a fixed count".into(),
            ));
        }
        // Refused here, before any compute, rather than by the merge afterwards.
        if self.workload == crate::workload::WorkloadKind::Moe {
            return Err(ExperimentError::Override(
                "--shard with the moe workload: its cost model (latency, conflicts, energy per token) summarises each run's own trials and cannot be pooled from shards; run it unsharded".into(),
            ));
        }
        let (t, w) = (self.trials, self.weight_error_trials);
        let shard = Shard {
            index,
            count,
            first_trial: split_start(t, count, index),
            trials: split_len(t, count, index),
            first_weight_error_trial: if w > 0 { split_start(w, count, index) } else { 0 },
            weight_error_trials: if w > 0 { split_len(w, count, index) } else { 0 },
        };
        self.first_trial = shard.first_trial;
        self.trials = shard.trials;
        self.first_weight_error_trial = shard.first_weight_error_trial;
        self.weight_error_trials = shard.weight_error_trials;
        // The layer insight runs the first trials, once: in shard 0.
        if index != 0 {
            self.layer_insight_trials = 0;
        }
        self.resolved["shard"] = serde_json::to_value(&shard).expect("a shard serialises");
        self.shard = Some(shard);
        Ok(())
    }
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
}

#[cfg(test)]
mod override_tests {
    use super::*;
    use std::path::Path;

    fn smoke() -> Experiment {
        Experiment::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/smoke.toml")).unwrap()
    }

    #[test]
    fn set_values_parse_as_toml_else_text() {
        assert_eq!(parse_set("device.drift_scale=0.5").unwrap(), (Some("device".into()), "drift_scale".into(), toml::Value::Float(0.5)));
        assert_eq!(parse_set("layer_insight_trials=0").unwrap(), (None, "layer_insight_trials".into(), toml::Value::Integer(0)));
        assert_eq!(parse_set(" periphery.out_res_bits = 8 ").unwrap().2, toml::Value::Integer(8));
        assert_eq!(parse_set("device.model=hermes").unwrap().2, toml::Value::String("hermes".into()));
        assert_eq!(parse_set("model.input_shape=[1,8,8]").unwrap().2.as_array().map(|a| a.len()), Some(3));
        assert!(parse_set(".drift_scale=0.5").unwrap_err().to_string().contains("[SECTION.]FIELD"));
        assert!(parse_set("device.drift_scale").unwrap_err().to_string().contains("[SECTION.]FIELD=VALUE"));
        let mut doc = toml::Table::new();
        doc.insert("seed".into(), 1.into());
        doc.insert("device".into(), toml::Value::Table(toml::Table::new()));
        assert!(apply_sets(&mut doc, &["seed.x=1".into()]).unwrap_err().to_string().contains("not a [section]"));
        assert!(apply_sets(&mut doc, &["device=pcm".into()]).unwrap_err().to_string().contains("device.FIELD=VALUE"));
        apply_sets(&mut doc, &["seed=7".into()]).unwrap();
        assert_eq!(doc["seed"], toml::Value::Integer(7));
    }

    /// Base settings (Python's `rpu_config=`) are written as the file's own, except where an axis
    /// sets the field at every point: there the axis varies it, and the document stays valid.
    #[test]
    fn base_settings_leave_swept_fields_to_their_axes() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/aihwkit_breast_cancer.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let (swept, _) = Experiment::swept_fields(&text, &path).unwrap();
        assert!(swept.iter().any(|f| f == "gdc"), "{swept:?}");
        let base = ["gdc=\"readout\"".to_string(), "periphery.out_res_bits=8".to_string()];
        let with = with_base(&text, &path, &base).unwrap();
        let doc: toml::Table = toml::from_str(&with).unwrap();
        assert!(!doc.contains_key("gdc"), "the swept gdc is left to its axis");
        assert_eq!(doc["periphery"]["out_res_bits"], toml::Value::Integer(8));
        let e = Experiment::from_text(&with, &path).unwrap();
        assert!(e.points.iter().all(|p| p.periphery.out_res_bits == 8));
        // Written as the file's own, the swept gdc is refused, naming both.
        let err = with_sets(&text, &path, &base[..1]).and_then(|t| Experiment::from_text(&t, &path)).unwrap_err().to_string();
        assert!(err.contains("gdc") && err.contains("[sweep] gdc"), "{err}");
    }

    /// A file's `tile = "512x512"` string agrees with a configuration's `tile.max_in` and
    /// `tile.max_out` of the same shape, and stays; a different shape is refused, naming both.
    #[test]
    fn a_tile_string_agrees_with_the_same_shape_as_a_table() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/smoke.toml");
        let text = std::fs::read_to_string(&path).unwrap().replacen("trials = ", "tile = \"64x32\"\ntrials = ", 1);
        let base = ["tile.max_in=64".to_string(), "tile.max_out=32".to_string()];
        let with = with_base(&text, &path, &base).unwrap();
        assert_eq!(with, text);
        let e = Experiment::from_text(&with, &path).unwrap();
        assert!(e.points.iter().all(|p| (p.tile.max_in, p.tile.max_out) == (64, 32)));
        let err = with_base(&text, &path, &["tile.max_in=512".to_string()]).unwrap_err().to_string();
        assert!(err.contains("tile = \"64x32\" in the experiment and the aihwkit configuration gives tile.max_in = 512"), "{err}");
        // Neither a shape nor a table: named, with both spellings.
        for (tile, want) in [
            ("\"64by32\"", "expected \"INPUTSxOUTPUTS\""),
            ("5", "tile = 5: write [tile] with max_in and max_out, or tile = \"512x512\""),
            ("[64, 32]", "tile = [64, 32]: write [tile]"),
        ] {
            let text = text.replace("tile = \"64x32\"", &format!("tile = {tile}"));
            let err = Experiment::from_text(&text, &path).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
    }

    #[test]
    fn trials_clamp_the_extras_and_the_resolved_form_follows() {
        let mut e = smoke();
        assert_eq!((e.trials, e.weight_error_trials, e.layer_insight_trials), (8, 4, 8));
        e.set_trials(3).unwrap();
        assert_eq!((e.trials, e.weight_error_trials, e.layer_insight_trials), (3, 3, 3));
        assert_eq!(e.resolved["trials"], 3);
        assert!(e.set_trials(1).unwrap_err().to_string().contains("at least 2"));
    }

    #[test]
    fn shards_and_adaptive_trials_exclude_each_other() {
        let mut e = smoke();
        e.set_adaptive(0.01, 64).unwrap();
        assert!(e.apply_shard(0, 2).unwrap_err().to_string().contains("--ci-halfwidth with --shard"));
        let mut e = smoke();
        e.apply_shard(1, 3).unwrap();
        assert_eq!((e.first_trial, e.trials, e.layer_insight_trials), (3, 3, 0));
        assert_eq!(e.resolved["shard"]["index"], 1);
        assert!(e.set_adaptive(0.01, 64).unwrap_err().to_string().contains("--ci-halfwidth with --shard"));
        assert!(smoke().set_adaptive(0.01, 4).unwrap_err().to_string().contains("--max-trials 4"));
    }
}
