//! Crash-safe results directories. A run (or a merge, or a report rebuild) writes its whole set
//! of files (results.json, trials.csv, plots, report) into a staging directory beside the target,
//! `DIR.staging-PID`, made before any compute so an unwritable output fails at once; publishing
//! moves the old set aside, renames the staged set into place and removes the old one. A reader
//! sees the old set, for an instant no directory, or the new set: never a mix. A failed run
//! publishes what it finished to `DIR.partial` instead and leaves `DIR` untouched. A process
//! killed mid-write leaves only a `DIR.staging-PID` directory beside an intact `DIR`, which the
//! next run into `DIR` removes (a set moved aside whose replacement never arrived goes back).
//!
//! Three guards keep finished work: the whole sequence runs under `DIR.lock` ([`super::lock`]), so
//! a second process writing `DIR` is refused instead of racing this one; a run refuses to
//! replace results of a different configuration (or a directory that holds no aimc results)
//! unless told to overwrite ([`Staging::check_replace`]); and not even an overwrite replaces a
//! directory holding anything aimc does not write (a subdirectory, a hidden entry such as `.git`,
//! an experiment file, a model, a data set or notes: `not_written_by_aimc`), so `--out .` in a
//! project cannot delete it.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot write the results directory {path}: {reason}; choose a writable --out")]
    Unwritable { path: PathBuf, reason: std::io::Error },
    #[error("cannot publish the results into {path}: {reason}; the complete set is left in {staging}")]
    Publish { path: PathBuf, staging: PathBuf, reason: std::io::Error },
    #[error(
        "the results directory {path} needs about {need_mb} MB free for this run, and writing them failed: {reason}; free some space or choose another --out"
    )]
    NoSpace { path: PathBuf, need_mb: u64, reason: std::io::Error },
    #[error(transparent)]
    Locked(#[from] super::lock::LockError),
    #[error(
        "{path} holds the results of {what}, made {when}, with a different configuration than this run ({diff}); they are kept. Give --overwrite (Python: overwrite=True) to replace them, or choose another --out"
    )]
    Different { path: PathBuf, what: String, when: String, diff: String },
    #[error("{path} holds files that are not aimc results ({what}); they are kept. Give --overwrite (Python: overwrite=True) to replace the whole directory, or choose another --out")]
    Foreign { path: PathBuf, what: String },
    #[error(
        "{path} holds {what}, which aimc does not write; a results directory is replaced only when it holds nothing but aimc's files (results, trials, reports, plots), so it is kept even with --overwrite. Choose another --out (a new subdirectory), or move those out of it"
    )]
    NotOurs { path: PathBuf, what: String },
}

/// A staging directory for the files of `target`.
pub struct Staging {
    target: PathBuf,
    staging: PathBuf,
    done: bool,
    /// Dropped after the staging directory (fields drop in order), so the lock covers it all.
    _lock: super::lock::DirLock,
}

fn sibling(target: &Path, suffix: &str) -> PathBuf {
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "results".into());
    target.with_file_name(format!("{name}.{suffix}"))
}

impl Staging {
    /// Takes `target`'s lock, creates the staging directory beside it and checks that it takes
    /// a file; `say` gets the line about a stale lock taken over.
    pub fn begin(target: &Path, say: &mut dyn FnMut(String)) -> Result<Staging, PublishError> {
        if target.exists() && !target.is_dir() {
            return Err(PublishError::Unwritable { path: target.to_path_buf(), reason: std::io::Error::other("it exists and is not a directory") });
        }
        // A file where a directory above it should be (`--out notes.txt/run`).
        if let Some(file) = target.ancestors().skip(1).find(|a| !a.as_os_str().is_empty() && a.exists()).filter(|a| !a.is_dir()) {
            let reason = std::io::Error::other(format!("{} is a file, not a directory", file.display()));
            return Err(PublishError::Unwritable { path: target.to_path_buf(), reason });
        }
        // An existing directory by its real path: "." or "results/x/" still has a name and a parent.
        let target = &std::fs::canonicalize(target).unwrap_or_else(|_| target.to_path_buf());
        let staging = sibling(target, &format!("staging-{}", std::process::id()));
        let unwritable = |reason| PublishError::Unwritable { path: target.to_path_buf(), reason };
        // The lock first: cleaning up leftovers of a killed process must not remove the staging
        // directory of one still running.
        let lock = super::lock::DirLock::acquire(target, say)?;
        recover(target).map_err(unwritable)?;
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(unwritable)?;
        }
        std::fs::create_dir_all(&staging).map_err(unwritable)?;
        std::fs::write(staging.join(".probe"), b"").and_then(|_| std::fs::remove_file(staging.join(".probe"))).map_err(unwritable)?;
        Ok(Staging { target: target.to_path_buf(), staging, done: false, _lock: lock })
    }

    /// Before any compute: refuses to replace what `target` holds unless it is the results of
    /// the same configuration (`resolved`, the run's resolved configuration as results.json
    /// records it in `config`), it is empty or absent, or `overwrite` is set. The message names
    /// the experiment, when its results were made and the first settings that differ.
    pub fn check_replace(&self, resolved: &serde_json::Value, overwrite: bool) -> Result<(), PublishError> {
        let foreign = not_written_by_aimc(&self.target);
        if !foreign.is_empty() {
            return Err(PublishError::NotOurs { path: self.target.clone(), what: listed(&foreign) });
        }
        if overwrite {
            return Ok(());
        }
        match existing(&self.target) {
            Existing::Nothing => Ok(()),
            Existing::Foreign(what) => Err(PublishError::Foreign { path: self.target.clone(), what }),
            Existing::Results { name, file, config, made } => {
                let mut diff = Vec::new();
                differences(&how_split(config), &how_split(resolved.clone()), &mut String::new(), &mut diff);
                if diff.is_empty() {
                    return Ok(());
                }
                let n = diff.len();
                let mut diff: Vec<String> = diff.into_iter().take(3).collect();
                if n > 3 {
                    diff.push(format!("and {} more", n - 3));
                }
                let what = if file.is_empty() { format!("experiment {name}") } else { format!("experiment {name} ({file})") };
                Err(PublishError::Different { path: self.target.clone(), what, when: made, diff: diff.join("; ") })
            }
        }
    }

    /// Checks before any compute that `bytes` (the run's expected results, plots and report) can
    /// be written here: writes that many bytes into the staging directory, flushes and removes
    /// them (a sparse or lazily allocated file would not prove the space).
    pub fn reserve(&self, bytes: u64) -> Result<(), PublishError> {
        use std::io::Write;
        let probe = self.staging.join(".space");
        let need_mb = bytes.div_ceil(1 << 20);
        let fail = |reason| PublishError::NoSpace { path: self.target.clone(), need_mb, reason };
        let res = (|| {
            let mut f = std::fs::File::create(&probe)?;
            let block = vec![0u8; 1 << 20];
            let mut left = bytes;
            while left > 0 {
                let n = left.min(block.len() as u64) as usize;
                f.write_all(&block[..n])?;
                left -= n as u64;
            }
            f.sync_all()
        })();
        let _ = std::fs::remove_file(&probe);
        res.map_err(fail)
    }

    /// Where to write the files.
    pub fn path(&self) -> &Path {
        &self.staging
    }

    /// Replaces `target` with the staged set.
    pub fn publish(mut self) -> Result<PathBuf, PublishError> {
        let target = self.target.clone();
        self.swap_into(&target)?;
        Ok(target)
    }

    /// Puts the staged (partial) set at `target.partial`, leaving `target` untouched.
    pub fn publish_partial(mut self) -> Result<PathBuf, PublishError> {
        let partial = sibling(&self.target, "partial");
        self.swap_into(&partial)?;
        Ok(partial)
    }

    fn swap_into(&mut self, dest: &Path) -> Result<(), PublishError> {
        let fail = |reason| PublishError::Publish { path: dest.to_path_buf(), staging: self.staging.clone(), reason };
        let old = sibling(dest, &format!("old-{}", std::process::id()));
        if dest.exists() {
            std::fs::rename(dest, &old).map_err(fail)?;
        }
        if let Err(e) = std::fs::rename(&self.staging, dest) {
            // Put the old set back rather than leave nothing.
            let _ = std::fs::rename(&old, dest);
            return Err(fail(e));
        }
        self.done = true;
        if old.exists() {
            let _ = std::fs::remove_dir_all(&old);
        }
        Ok(())
    }
}

/// What a results directory holds before a run replaces it.
enum Existing {
    /// No directory, or an empty one.
    Nothing,
    /// A results.json: its experiment's name and file, resolved configuration and when it was written.
    Results { name: String, file: String, config: serde_json::Value, made: String },
    /// Files but no readable results.json: a few of their names, or what is wrong with it.
    Foreign(String),
}

/// Whether aimc writes an entry of this name into a results directory: its results and trials
/// (complete or partial), its reports and its plots (by their stems). Anything else (a
/// subdirectory, a hidden entry, an experiment, model or data file, notes, a figure of one's own)
/// is the user's.
fn written_by_aimc(name: &str, is_file: bool) -> bool {
    const NAMES: [&str; 8] =
        ["results.json", "results.partial.json", "trials.csv", "trials.partial.csv", "row_counts.csv", "row_counts.partial.csv", "report.md", "report.html"];
    let plot = name.strip_suffix(".png").or_else(|| name.strip_suffix(".svg")).is_some_and(|stem| super::plots::PLOT_STEMS.contains(&stem));
    is_file && (NAMES.contains(&name) || plot)
}

/// The entries of `target` that aimc does not write (none where it is absent).
fn not_written_by_aimc(target: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(target) else { return Vec::new() };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| !written_by_aimc(&e.file_name().to_string_lossy(), e.file_type().is_ok_and(|t| t.is_file())))
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                format!("{name}/")
            } else {
                name
            }
        })
        .collect();
    names.sort();
    names
}

/// A few names, and how many more.
fn listed(names: &[String]) -> String {
    let mut shown: Vec<String> = names.iter().take(3).cloned().collect();
    if names.len() > 3 {
        shown.push(format!("{} more", names.len() - 3));
    }
    shown.join(", ")
}

fn existing(target: &Path) -> Existing {
    let Ok(entries) = std::fs::read_dir(target) else { return Existing::Nothing };
    let names: Vec<String> = entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    if names.is_empty() {
        return Existing::Nothing;
    }
    let json = target.join("results.json");
    if !json.exists() {
        return Existing::Foreign(format!("no results.json; {}", listed(&names)));
    }
    /// Only what the check needs; serde skips the rest (points, trials) without building it.
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(default)]
        name: String,
        #[serde(default)]
        experiment_file: String,
        #[serde(default)]
        config: serde_json::Value,
    }
    let head = std::fs::File::open(&json)
        .map_err(|e| e.to_string())
        .and_then(|f| serde_json::from_reader::<_, Head>(std::io::BufReader::new(f)).map_err(|e| e.to_string()));
    match head {
        Ok(h) => {
            let made = std::fs::metadata(&json)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or_else(|| "at an unknown time".into(), |d| format!("on {}", super::lock::utc(d.as_secs())));
            Existing::Results { name: h.name, file: h.experiment_file, config: h.config, made }
        }
        Err(e) => Existing::Foreign(format!("a results.json that cannot be read: {e}")),
    }
}

/// The settings where `old` and `new` differ, as `path: old → new` (JSON paths, leaves only).
/// A resolved configuration without `merged_shards`: the merge of N shards equals the single run
/// trial for trial, so either replaces the other; a single shard (`shard`) is part of a run and
/// stays a different configuration.
fn how_split(mut config: serde_json::Value) -> serde_json::Value {
    if let Some(obj) = config.as_object_mut() {
        obj.remove("merged_shards");
    }
    config
}

pub(crate) fn differences(old: &serde_json::Value, new: &serde_json::Value, path: &mut String, out: &mut Vec<String>) {
    use serde_json::Value;
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                differences(a.get(k).unwrap_or(&Value::Null), b.get(k).unwrap_or(&Value::Null), path, out);
                path.truncate(len);
            }
        }
        _ if old == new => {}
        _ => {
            let short = |v: &Value| {
                let s = v.to_string();
                if s.chars().count() > 40 {
                    format!("{}…", s.chars().take(40).collect::<String>())
                } else {
                    s
                }
            };
            out.push(format!("{}: {} → {}", if path.is_empty() { "the configuration" } else { path.as_str() }, short(old), short(new)));
        }
    }
}

/// Cleans up after a process killed while it held `target`'s staging or old set: a set moved
/// aside whose replacement never arrived goes back into place, and leftover staging and old
/// directories are removed. (One process writes one results directory at a time.)
fn recover(target: &Path) -> std::io::Result<()> {
    let (Some(parent), Some(name)) = (target.parent(), target.file_name().map(|n| n.to_string_lossy().into_owned())) else { return Ok(()) };
    let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
    let Ok(entries) = std::fs::read_dir(parent) else { return Ok(()) };
    let mut leftovers: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().map(|f| f.to_string_lossy()).is_some_and(|f| f.starts_with(&format!("{name}.staging-")) || f.starts_with(&format!("{name}.old-")))
        })
        .collect();
    leftovers.sort();
    for p in leftovers {
        let is_old = p.file_name().is_some_and(|f| f.to_string_lossy().starts_with(&format!("{name}.old-")));
        if is_old && !target.exists() {
            std::fs::rename(&p, target)?;
        } else {
            std::fs::remove_dir_all(&p)?;
        }
    }
    Ok(())
}

impl Drop for Staging {
    /// An unpublished staging directory (an error before publishing) is removed.
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_replaces_the_whole_set_and_partial_stays_apart() {
        let root = std::env::temp_dir().join(format!("aimc-publish-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dir = root.join("run");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("old.txt"), b"old").unwrap();
        // A failed run: partial results beside, the old set untouched.
        let s = Staging::begin(&dir, &mut |_| {}).unwrap();
        std::fs::write(s.path().join("results.partial.json"), b"{}").unwrap();
        let partial = s.publish_partial().unwrap();
        assert!(partial.join("results.partial.json").exists() && dir.join("old.txt").exists());
        // A complete run replaces the set: no file of the old one is left.
        let s = Staging::begin(&dir, &mut |_| {}).unwrap();
        std::fs::write(s.path().join("new.txt"), b"new").unwrap();
        s.publish().unwrap();
        assert!(dir.join("new.txt").exists() && !dir.join("old.txt").exists());
        // An abandoned staging directory is removed; only the run and its partial set remain.
        drop(Staging::begin(&dir, &mut |_| {}).unwrap());
        let mut names: Vec<String> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        assert_eq!(names, ["run", "run.partial"]);
        // A process killed between moving the old set aside and renaming the new one in: the old
        // set goes back into place and the leftovers are removed.
        std::fs::rename(&dir, root.join("run.old-99999")).unwrap();
        std::fs::create_dir_all(root.join("run.staging-99998")).unwrap();
        let s = Staging::begin(&dir, &mut |_| {}).unwrap();
        assert!(dir.join("new.txt").exists() && !root.join("run.old-99999").exists() && !root.join("run.staging-99998").exists());
        drop(s);
        // A file where the directory should be is refused before any work.
        std::fs::write(root.join("file"), b"").unwrap();
        assert!(matches!(Staging::begin(&root.join("file"), &mut |_| {}), Err(PublishError::Unwritable { .. })));
        let msg = Staging::begin(&root.join("file/sub"), &mut |_| {}).err().unwrap().to_string();
        assert!(msg.contains("is a file, not a directory") && msg.contains("choose a writable --out"), "{msg}");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn results_of_another_configuration_or_foreign_files_are_kept_without_overwrite() {
        let root = std::env::temp_dir().join(format!("aimc-replace-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dir = root.join("run");
        let config = serde_json::json!({"name": "smoke", "device": {"drift_scale": 1.0}});
        // Nothing there yet, or an empty directory: any run may write.
        let s = Staging::begin(&dir, &mut |_| {}).unwrap();
        s.check_replace(&config, false).unwrap();
        std::fs::write(s.path().join("results.json"), serde_json::json!({"name": "smoke", "experiment_file": "smoke.toml", "config": config}).to_string())
            .unwrap();
        s.publish().unwrap();
        // The same configuration replaces (or resumes) as before.
        let s = Staging::begin(&dir, &mut |_| {}).unwrap();
        s.check_replace(&config, false).unwrap();
        // Another one is refused, naming the experiment, when and what differs, and the flag.
        let other = serde_json::json!({"name": "smoke", "device": {"drift_scale": 0.3}});
        let msg = s.check_replace(&other, false).unwrap_err().to_string();
        for part in ["experiment smoke (smoke.toml)", "made on 20", "device.drift_scale: 1.0 → 0.3", "--overwrite", "overwrite=True"] {
            assert!(msg.contains(part), "{part:?} missing from: {msg}");
        }
        s.check_replace(&other, true).unwrap();
        drop(s);
        // Plots without a readable results.json (a set whose writing was cut short) are replaced
        // only when told to.
        std::fs::remove_file(dir.join("results.json")).unwrap();
        std::fs::write(dir.join("accuracy_vs_time.svg"), b"<svg/>").unwrap();
        let s = Staging::begin(&dir, &mut |_| {}).unwrap();
        let msg = s.check_replace(&config, false).unwrap_err().to_string();
        assert!(msg.contains("not aimc results") && msg.contains("accuracy_vs_time.svg") && msg.contains("--overwrite"), "{msg}");
        s.check_replace(&config, true).unwrap();
        drop(s);
        // A directory holding anything else is never replaced, not even with --overwrite: a
        // project's files, a subdirectory (inputs, shards) or a hidden entry such as .git.
        for (name, dir_entry, shown) in [
            ("notes.txt", false, "notes.txt"),
            ("data", true, "data/"),
            (".git", true, ".git/"),
            ("exp.toml", false, "exp.toml"),
            ("fig2.svg", false, "fig2.svg"),
        ] {
            let p = dir.join(name);
            if dir_entry {
                std::fs::create_dir_all(p.join("x")).unwrap();
            } else {
                std::fs::write(&p, b"mine").unwrap();
            }
            let s = Staging::begin(&dir, &mut |_| {}).unwrap();
            for overwrite in [false, true] {
                let msg = s.check_replace(&config, overwrite).unwrap_err().to_string();
                assert!(msg.contains(shown) && msg.contains("kept even with --overwrite") && msg.contains("another --out"), "{msg}");
            }
            drop(s);
            assert!(p.exists(), "{name} must survive");
            if dir_entry {
                std::fs::remove_dir_all(&p).unwrap();
            } else {
                std::fs::remove_file(&p).unwrap();
            }
        }
        let _ = std::fs::remove_dir_all(&root);
    }
}
