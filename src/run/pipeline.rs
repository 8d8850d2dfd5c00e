//! One pipeline behind every front end (`aimc run`, `aimc weights`, `aimc mlp`, the Python
//! package): lock the output directory, refuse to replace another configuration's results
//! unless told to overwrite, check and stage it before any compute, open the backend, run the
//! experiment with its checkpoint journal (a rerun resumes), then write results, plots and report
//! into the staging directory and publish the set whole (ripgrep's "one search behind every flag").

use crate::config::Experiment;
pub use crate::engine::BackendChoice;
use crate::report::publish::Staging;
use crate::results::Results;
use crate::run::{run_journaled, Progress};
use std::path::{Path, PathBuf};

/// Any failure of the pipeline, its message naming the file or directory and the fix.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Staging, reserving or publishing the results directory.
    #[error(transparent)]
    Publish(#[from] crate::report::publish::PublishError),
    /// Opening the backend or reading its profile.
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    /// The run itself (its finished points are kept as partial results).
    #[error(transparent)]
    Run(#[from] super::RunError),
    /// Opening the checkpoint journal beside the results directory.
    #[error("opening the checkpoint journal beside {dir}: {source}")]
    Journal { dir: PathBuf, source: std::io::Error },
    /// The journal beside the results directory holds another run's unfinished work.
    #[error(
        "{path} holds {chunks} finished chunks of an unfinished run with a different configuration{diff}; it is kept. Rerun that configuration to resume it, give --overwrite (Python: overwrite=True) to discard it, or choose another --out"
    )]
    OtherJournal { path: PathBuf, chunks: usize, diff: String },
    /// Writing results.json and trials.csv.
    #[error("writing {what} for {dir}: {source}")]
    Write { what: &'static str, dir: PathBuf, source: std::io::Error },
    /// Plots and the report.
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
}

/// Runs `exp` on `backend` into `dir` and returns the results and the published results.json.
/// `dir` may hold the results of the same configuration (they are replaced, or the run resumes
/// from their journal); the results of another configuration, or other files, only with
/// `overwrite`. `log` gets the one-line messages (the header, resuming, where partial results
/// went, a stale lock taken over).
pub fn run_to_dir(
    exp: &Experiment,
    backend: BackendChoice,
    dir: &Path,
    profile: bool,
    overwrite: bool,
    progress: &mut dyn Progress,
    log: &mut dyn FnMut(String),
) -> Result<(Results, PathBuf), PipelineError> {
    let staging = Staging::begin(dir, log)?;
    staging.check_replace(&exp.resolved, overwrite)?;
    if let Some(o) = crate::run::journal::Journal::other_run(dir, &exp.resolved) {
        if !overwrite {
            let mut d = o.differences.iter().take(3).cloned().collect::<Vec<_>>().join("; ");
            if o.differences.len() > 3 {
                d.push_str(&format!("; and {} more", o.differences.len() - 3));
            }
            let diff = if d.is_empty() { String::new() } else { format!(" ({d})") };
            return Err(PipelineError::OtherJournal { path: o.path, chunks: o.chunks, diff });
        }
        log(format!("discarding {} finished chunks of another configuration's unfinished run in {} (--overwrite)", o.chunks, o.path.display()));
    }
    // results.json and trials.csv hold every trial's metric (about 48 bytes each with the
    // per-trial counts), plus the plots and the report (a few MB).
    let values = exp.points.len() as u64 * exp.times.len() as u64 * exp.trials as u64;
    staging.reserve((values * 48 + (8 << 20)).min(1 << 30))?;
    let mut be = crate::engine::open(backend)?;
    let ad = be.adapter();
    log(format!("{}: {} sweep points x {} times x {} trials on {} ({})", exp.name, exp.points.len(), exp.times.len(), exp.trials, ad.name, ad.backend));
    let mut journal = crate::run::journal::Journal::open(dir, &exp.resolved).map_err(|source| PipelineError::Journal { dir: dir.to_path_buf(), source })?;
    if !journal.recovered.is_empty() {
        let (trials, chunks) = journal.recovered_trials();
        let total = exp.points.len() as u64 * exp.trials as u64;
        log(format!(
            "resuming: {trials} of {total} point-trials ({chunks} chunks over {} sweep points) from {}",
            exp.points.len(),
            crate::run::journal::path_for(dir).display()
        ));
    }
    // Floating-point values the file asks the backend for (`transformer.baseline = "engine"`),
    // those of resumed chunks as they recorded them.
    let with_baselines;
    let exp = if crate::workload::transformer::baseline::wanted(exp) {
        let clock = std::time::Instant::now();
        let mut e = exp.clone();
        let known = journal
            .recovered
            .iter()
            .filter_map(|(&(i, _), c)| {
                let p = c.points.first()?;
                Some((i, (p.fp?, p.companion.as_ref().and_then(|c| c.fp))))
            })
            .collect();
        let n = crate::workload::transformer::baseline::fill(&mut e, be.as_mut(), &known)?;
        let kept = if known.is_empty() { String::new() } else { " (the resumed chunks' values kept)".to_string() };
        log(format!(
            "floating-point baseline: {n} noiseless pass{} on {} in {:.1} s{kept}",
            if n == 1 { "" } else { "es" },
            ad.name,
            clock.elapsed().as_secs_f64()
        ));
        with_baselines = e;
        &with_baselines
    } else {
        exp
    };
    let plans = crate::run::plan_groups(exp);
    if plans.len() < exp.points.len() {
        log(format!(
            "the {} sweep points run as {} plan{}: points that differ only in noise, converter or drift-compensation settings share buffers and device states (each point's numbers are its own run's)",
            exp.points.len(),
            plans.len(),
            if plans.len() == 1 { "" } else { "s" }
        ));
    }
    // The progress counts the per-layer diagnostics' trials too: say so, with the two parts.
    let (all, sweep) = (crate::run::total_work(exp), exp.points.len() as u64 * exp.trials as u64);
    if all > sweep {
        log(format!(
            "progress counts {all} trials: {sweep} of the sweep points and {} of the per-layer diagnostics (weight error, layer insight)",
            all - sweep
        ));
    }
    be.set_profiling(profile);
    let clock = std::time::Instant::now();
    let mut outcome = run_journaled(exp, be.as_mut(), progress, Some(&mut journal));
    let wall = clock.elapsed().as_secs_f64();
    outcome.results.profile = be.take_profile()?.map(|mut p| {
        p.wall_seconds = Some(wall);
        p
    });
    if let Some(p) = &outcome.results.profile {
        log(format!("where the time went:\n{}", p.table()));
    }
    if let Some(err) = outcome.error {
        if !outcome.results.points.is_empty() {
            outcome.results.save(staging.path(), false).map_err(|source| PipelineError::Write { what: "partial results", dir: dir.to_path_buf(), source })?;
            let p = staging.publish_partial()?;
            log(format!("the points finished before the error are saved in {} (not a complete run; {} is untouched)", p.display(), dir.display()));
        }
        return Err(err.into());
    }
    let r = outcome.results;
    r.save(staging.path(), true).map_err(|source| PipelineError::Write { what: "results", dir: dir.to_path_buf(), source })?;
    crate::report::write_report(&r, staging.path())?;
    let path = staging.publish()?.join("results.json");
    journal.finish();
    Ok((r, path))
}
