//! Checkpoint and resume. While `aimc run` computes, every finished chunk of trials (a sweep
//! point and a trial range, all times) is appended to `DIR.journal.jsonl` beside the results
//! directory: a header line that identifies the run (sha256 of the resolved configuration:
//! experiment file, trials, shard, seed, everything that changes the numbers) and then one line
//! per chunk with the sha256 of its payload. A rerun of the same run finds the journal, keeps every
//! intact chunk line and computes only the rest; a line cut short by a kill fails its checksum and
//! is recomputed. Trials are counter-based, so a resumed run's per-trial results equal an
//! uninterrupted run's exactly, however the chunks fell. The journal is removed once the complete
//! results are published. The journal of another run's unfinished work is not replaced unless
//! told to overwrite ([`Journal::other_run`]); its header keeps that run's resolved configuration
//! so the refusal can say what differs.

use crate::results::Point;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The journal of one run.
pub struct Journal {
    path: PathBuf,
    file: std::fs::File,
    /// Chunks recovered from an earlier attempt, by (sweep index, first trial).
    pub recovered: std::collections::BTreeMap<(usize, u32), Recovered>,
}

/// One recovered chunk: its trial count and its points (one per time).
#[derive(Clone)]
pub struct Recovered {
    pub trials: u32,
    pub points: Vec<Point>,
}

/// The journal format; a journal of another version is replaced.
const VERSION: u32 = 2;

#[derive(serde::Serialize, serde::Deserialize)]
struct Header {
    aimc_journal: u32,
    run: String,
    /// The run's resolved configuration (absent in journals written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    config: Option<serde_json::Value>,
}

/// The journal of another run's unfinished work beside a results directory.
pub struct OtherRun {
    pub path: PathBuf,
    /// Its intact chunk lines.
    pub chunks: usize,
    /// The settings where it differs from this run (`path: old → new`), where it recorded them.
    pub differences: Vec<String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Entry {
    sweep_index: usize,
    first_trial: u32,
    trials: u32,
    sha256: String,
    points: serde_json::Value,
}

fn hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// The journal file beside results directory `dir`.
pub fn path_for(dir: &Path) -> PathBuf {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "results".into());
    dir.with_file_name(format!("{name}.journal.jsonl"))
}

impl Journal {
    /// The journal beside `dir` when it holds finished chunks of a run other than the one
    /// identified by `resolved` (opening would replace them); `None` when there is none, it is
    /// this run's, or it holds no intact chunk.
    pub fn other_run(dir: &Path, resolved: &serde_json::Value) -> Option<OtherRun> {
        let path = path_for(dir);
        let text = std::fs::read_to_string(&path).ok()?;
        let mut lines = text.lines();
        let header = serde_json::from_str::<Header>(lines.next()?).ok()?;
        let run = hex(serde_json::to_string(resolved).ok()?.as_bytes());
        if header.aimc_journal == VERSION && header.run == run {
            return None;
        }
        let chunks = lines.take_while(|l| serde_json::from_str::<Entry>(l).is_ok()).count();
        if chunks == 0 {
            return None;
        }
        let mut differences = Vec::new();
        if let Some(old) = &header.config {
            crate::report::publish::differences(old, resolved, &mut String::new(), &mut differences);
        }
        Some(OtherRun { path, chunks, differences })
    }

    /// Opens the journal of the run identified by `resolved` (the experiment's resolved
    /// configuration) beside `dir`: recovers the intact chunks of an earlier attempt of the same
    /// run, or starts a new journal (a journal of another run is replaced).
    pub fn open(dir: &Path, resolved: &serde_json::Value) -> std::io::Result<Journal> {
        let path = path_for(dir);
        let run = hex(serde_json::to_string(resolved).map_err(std::io::Error::other)?.as_bytes());
        let mut recovered = std::collections::BTreeMap::new();
        let mut keep = false;
        if let Ok(text) = std::fs::read_to_string(&path) {
            let mut lines = text.lines();
            if lines.next().and_then(|l| serde_json::from_str::<Header>(l).ok()).is_some_and(|h| h.aimc_journal == VERSION && h.run == run) {
                keep = true;
                for line in lines {
                    let Ok(e) = serde_json::from_str::<Entry>(line) else { break };
                    let payload = serde_json::to_string(&e.points).map_err(std::io::Error::other)?;
                    if hex(payload.as_bytes()) != e.sha256 {
                        break;
                    }
                    let Ok(points) = serde_json::from_value::<Vec<Point>>(e.points) else { break };
                    recovered.insert((e.sweep_index, e.first_trial), Recovered { trials: e.trials, points });
                }
            }
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let file = if keep {
            // Rewrite header and intact lines, dropping a torn tail, then append from there.
            let mut f = std::fs::File::create(&path)?;
            writeln!(f, "{}", serde_json::to_string(&Header { aimc_journal: VERSION, run, config: Some(resolved.clone()) }).map_err(std::io::Error::other)?)?;
            for (&(i, first), r) in &recovered {
                write_entry(&mut f, i, first, r.trials, &r.points)?;
            }
            f
        } else {
            let mut f = std::fs::File::create(&path)?;
            writeln!(f, "{}", serde_json::to_string(&Header { aimc_journal: VERSION, run, config: Some(resolved.clone()) }).map_err(std::io::Error::other)?)?;
            f.sync_data()?;
            f
        };
        Ok(Journal { path, file, recovered })
    }

    /// Appends a finished chunk of trials of a sweep point (flushed to disk before the run goes
    /// on).
    pub fn record(&mut self, sweep_index: usize, first_trial: u32, trials: u32, points: &[Point]) -> std::io::Result<()> {
        write_entry(&mut self.file, sweep_index, first_trial, trials, points)
    }

    /// Trials recovered in all, over how many chunks.
    pub fn recovered_trials(&self) -> (u64, usize) {
        (self.recovered.values().map(|r| r.trials as u64).sum(), self.recovered.len())
    }

    /// Removes the journal (after the complete results are published).
    pub fn finish(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn write_entry(f: &mut std::fs::File, sweep_index: usize, first_trial: u32, trials: u32, points: &[Point]) -> std::io::Result<()> {
    let value = serde_json::to_value(points).map_err(std::io::Error::other)?;
    let payload = serde_json::to_string(&value).map_err(std::io::Error::other)?;
    let line =
        serde_json::to_string(&Entry { sweep_index, first_trial, trials, sha256: hex(payload.as_bytes()), points: value }).map_err(std::io::Error::other)?;
    // One write of the whole line, so a kill leaves at most one torn line at the end.
    f.write_all(format!("{line}\n").as_bytes())?;
    f.sync_data()
}
