//! Runs a validated experiment: every sweep point × all trials on the chosen backend, then the
//! per-point statistics (stats module) into a [`Results`]. The RNG key is (seed, 0) for every
//! point with common random numbers (the default; differences between points are then paired,
//! see `paired`), (seed, point index) without; the time axis is inside each run, so every trial's
//! programmed state is reused across times (noise-models §1). Neighbouring points that the
//! workload runs alike (`Spec::grouped`: the noise budget's configurations, a sweep over noise)
//! run as one plan per checkpoint chunk, each point's trials those of its own run.

use crate::config::time_label;
use crate::config::{Experiment, SweepPoint, WorkloadKind};

pub mod check;
pub mod journal;
pub mod merge;
pub mod paired;
pub mod pipeline;
mod point_stats;

use crate::engine::plan::RunConfig;
use crate::engine::{Backend, EngineError};
use crate::results::{self, Adapter, Axis, LayerWeightError, Point, Results};
use crate::stats::{self, Moments};
use crate::workload::{analog_layers, Chunk, CompanionMetric, GroupRun, Grouped, PointRun, TimeMetrics};
pub use point_stats::*;

/// Where progress goes: a terminal bar, plain lines, or nowhere.
pub trait Progress {
    fn start(&mut self, total_trials: u64);
    fn advance(&mut self, trials: u64);
    fn finish(&mut self);
    /// Whether the user asked to stop (a notebook's interrupt): asked after every checkpoint
    /// chunk, so the run stops with its finished chunks journaled and a rerun resumes from them.
    fn interrupted(&mut self) -> bool {
        false
    }
}

/// Progress that says nothing (tests, `report`).
pub struct Quiet;
impl Progress for Quiet {
    fn start(&mut self, _: u64) {}
    fn advance(&mut self, _: u64) {}
    fn finish(&mut self) {}
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("sweep point {point} ({series}): {source}")]
    Engine { point: usize, series: String, source: EngineError },
    #[error("statistics: {0}")]
    Stats(#[from] stats::StatsError),
    #[error("writing the checkpoint journal: {0}")]
    Journal(std::io::Error),
    #[error(
        "sweep point {point} ({series}) at {time}: trial {trial} gave a metric of {value}; a weight, input or device parameter is out of range for this model"
    )]
    NonFinite { point: usize, series: String, time: String, trial: u64, value: f64 },
    #[error("interrupted; the finished chunks of trials are kept in the checkpoint journal, and the same run resumes from them")]
    Interrupted,
}

/// The results, complete or (when `error` is set) holding the points finished before it.
pub struct Outcome {
    pub results: Results,
    pub error: Option<RunError>,
}

/// Trials chunk cap: small enough that progress moves, large enough to fill a GPU.
pub const PROGRESS_CHUNK: u32 = 4096;

/// Adaptive trials stop no earlier than this: a t interval from a handful of discrete
/// accuracies is often zero-wide by ties (two trials of the default digits run tie 13 % of the
/// time), and stopping on it covered the mean 82 % of the time at a nominal 95 %; a first
/// look at 10 trials covers 94.8 % (simulated, std 0.5 points on 450 images).
pub const ADAPTIVE_MIN_TRIALS: u32 = 10;

/// Adaptive trials stop on a zero spread at some time only after this many trials: by the
/// rule of three, 30 tied trials bound the chance of a differing trial below 10 % (95 %), so the
/// point is deterministic to that resolution (all-ideal configurations are, exactly).
pub const ADAPTIVE_MIN_TIED_TRIALS: u32 = 30;

/// Which tail a point's risk counts: trials below a threshold (`tail_below`; a metric where higher
/// is better) or above it (`tail_above`; lower is better).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TailAt {
    Below(f64),
    Above(f64),
}

/// The tail a point's risk counts: the file's `tail_above`, else its `tail_below`, else for
/// exact counts (a classifier's accuracy) one point below floating point.
pub fn tail_at(tail_below: Option<f64>, tail_above: Option<f64>, counts: bool, fp: Option<f64>) -> Option<TailAt> {
    match tail_above {
        Some(t) => Some(TailAt::Above(t)),
        None if counts => tail_below.or(fp.map(|f| f - 0.01)).map(TailAt::Below),
        None => tail_below.map(TailAt::Below),
    }
}

fn run_config(exp: &Experiment, p: &SweepPoint, c: Chunk) -> RunConfig {
    RunConfig {
        reads_per_programming: exp.reads_per_programming,
        device: p.device.clone(),
        periphery: p.periphery.clone(),
        gdc: p.gdc,
        // Common random numbers: every point draws the same device and periphery noise, so the
        // differences between points are paired (noise-models §1 keys; issue of variance only).
        key: crate::rng::key(exp.seed, if exp.common_random_numbers { 0 } else { p.index as u32 }),
        trials: c.trials,
        first_trial: c.first_trial,
        times: exp.times.clone(),
        max_chunk: PROGRESS_CHUNK,
        layer_noise: p.layer_noise.clone(),
    }
}

/// Statistics of one point's per-trial metric.
#[allow(clippy::too_many_arguments)]
fn point(
    exp: &Experiment,
    sp: &SweepPoint,
    first_trial: u32,
    ti: usize,
    per_trial: Vec<f64>,
    correct: Option<(Vec<u32>, u32)>,
    test_var: Option<Vec<f64>>,
    test_scale: results::TestScale,
    fp: Option<f64>,
    weight_error: Vec<LayerWeightError>,
    projection: Option<results::ProjectionAverage>,
) -> Result<Point, RunError> {
    if let Some(i) = per_trial.iter().position(|v| !v.is_finite()) {
        return Err(RunError::NonFinite {
            point: sp.index,
            series: sp.series(),
            time: time_label(exp.times[ti]),
            trial: first_trial as u64 + i as u64,
            value: per_trial[i],
        });
    }
    let id = PointId {
        sweep_index: sp.index,
        labels: sp.labels.iter().cloned().collect(),
        series: sp.series(),
        t_inf: exp.times[ti],
        first_trial,
        reads_per_programming: exp.reads_per_programming,
        projection,
    };
    let tail = tail_at(exp.tail_below, exp.tail_above, correct.is_some(), fp);
    Ok(point_stats(id, per_trial, correct, test_var, test_scale, fp, weight_error, exp.confidence, exp.ci_half_width, tail)?)
}

/// Each data row's class where the run counted a classifier's rows (`row_counts`, or
/// `transformer.row_counts` of a classifying task): the data set's labels. None for a reader's
/// spans and questions, a regression's targets, or a run without row counts.
fn row_labels(exp: &Experiment, counted: bool) -> Option<Vec<u32>> {
    let classes = match exp.workload {
        WorkloadKind::Classifier => exp.row_counts,
        WorkloadKind::Transformer => {
            exp.points.iter().all(|p| p.transformer.as_ref().is_some_and(|s| s.row_counts && !s.task.qa() && !s.task.next_token() && !s.task.regression()))
        }
        _ => false,
    };
    (counted && classes).then(|| exp.data.as_ref().map(|d| d.labels.clone())).flatten()
}

/// A chunk's companion metric at time index `ti` as a point holds it; a value that is not finite
/// is refused, naming its trial, as the point's own metric is.
fn chunk_companion(exp: &Experiment, sp: &SweepPoint, first_trial: u32, ti: usize, c: CompanionMetric) -> Result<results::Companion, RunError> {
    if let Some(i) = c.per_trial.iter().position(|v| !v.is_finite()) {
        return Err(RunError::NonFinite {
            point: sp.index,
            series: sp.series(),
            time: time_label(exp.times[ti]),
            trial: first_trial as u64 + i as u64,
            value: c.per_trial[i],
        });
    }
    Ok(companion_stats(c, first_trial, exp.reads_per_programming, exp.confidence)?)
}

/// One chunk of one sweep point through its workload's run, then each time's statistics.
fn run_point(be: &mut dyn Backend, exp: &Experiment, sp: &SweepPoint, chunk: Chunk, progress: &mut dyn Progress) -> Result<Vec<Point>, RunError> {
    let mut on_progress = |n: u64| progress.advance(n);
    let mut r = PointRun { be, inputs: exp.inputs(), point: sp, cfg: run_config(exp, sp, chunk), chunk, progress: &mut on_progress };
    let per_time = (exp.workload.spec().run)(&mut r).map_err(|source| RunError::Engine { point: sp.index, series: sp.series(), source })?;
    chunk_points(be, exp, sp, chunk, per_time)
}

/// One chunk of several sweep points as one plan (the workload's [`Grouped`] run), then each
/// point's statistics per time.
fn run_group(
    be: &mut dyn Backend,
    exp: &Experiment,
    grouped: &Grouped,
    sps: &[SweepPoint],
    chunk: Chunk,
    progress: &mut dyn Progress,
) -> Result<Vec<Vec<Point>>, RunError> {
    let mut on_progress = |n: u64| progress.advance(n);
    let cfgs = sps.iter().map(|sp| run_config(exp, sp, chunk)).collect();
    let mut g = GroupRun { be, inputs: exp.inputs(), points: sps, cfgs, chunk, progress: &mut on_progress };
    let all = (grouped.run)(&mut g).map_err(|source| RunError::Engine { point: sps[0].index, series: group_series(sps), source })?;
    sps.iter().zip(all).map(|(sp, per_time)| chunk_points(be, exp, sp, chunk, per_time)).collect()
}

/// The points of a group, as an error names them.
fn group_series(sps: &[SweepPoint]) -> String {
    match sps {
        [one] => one.series(),
        [first, .., last] => format!("{} .. {}, run as one plan", first.series(), last.series()),
        [] => String::new(),
    }
}

/// Each time's statistics of one chunk of a point.
fn chunk_points(be: &mut dyn Backend, exp: &Experiment, sp: &SweepPoint, chunk: Chunk, per_time: Vec<TimeMetrics>) -> Result<Vec<Point>, RunError> {
    let clock = std::time::Instant::now();
    let out = per_time_parallel(per_time, |ti, m| {
        let projection = projection_average(&m.fp_per_seed, m.trials_per_seed, exp.confidence)?;
        let mut q = point(exp, sp, chunk.first_trial, ti, m.per_trial, m.correct, m.test_var, m.test_scale, m.fp, m.weight_error, projection)?;
        q.layer_insight = m.layer_insight;
        q.per_row_correct = m.row_correct;
        q.companion = m.companion.map(|c| chunk_companion(exp, sp, chunk.first_trial, ti, c)).transpose()?;
        q.moe = m.moe;
        q.fp_clipped = m.fp_clipped;
        q.point_set = m.point_set;
        Ok(q)
    })
    .into_iter()
    .collect();
    be.add_host(STATISTICS, clock.elapsed().as_secs_f64());
    out
}

/// `f(time index, item)` for every time point of a point, on up to as many threads as the host
/// has cores (each taking the next time point): the time points' statistics are independent
/// so they run side by side on a many-core host
/// instead of one after another, with values identical to a sequential run. Results come back in
/// time order.
fn per_time_parallel<T: Send, R: Send>(items: Vec<T>, f: impl Fn(usize, T) -> R + Sync) -> Vec<R> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(items.len());
    if workers < 2 {
        return items.into_iter().enumerate().map(|(ti, m)| f(ti, m)).collect();
    }
    let n = items.len();
    let queue = std::sync::Mutex::new(items.into_iter().enumerate());
    let (f, queue) = (&f, &queue);
    let mut done: Vec<(usize, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(move || {
                    let mut out = Vec::new();
                    loop {
                        // The lock is held only to take the next item (a panic in `f` poisons nothing).
                        let next = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
                        let Some((ti, m)) = next else { return out };
                        out.push((ti, f(ti, m)));
                    }
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    });
    done.sort_by_key(|(ti, _)| *ti);
    debug_assert_eq!(done.len(), n);
    done.into_iter().map(|(_, r)| r).collect()
}

/// The `--profile` host activities of the run loop itself.
const STATISTICS: &str = "statistics";
const JOURNAL: &str = "checkpoint journal";

/// Trials of the first checkpoint chunk of a point; later chunks are sized from the time the
/// previous one took to about [`CHECKPOINT_SECONDS`] each.
pub const FIRST_CHECKPOINT_CHUNK: u32 = 256;

/// Compute between checkpoints: a kill loses at most about this much work.
pub const CHECKPOINT_SECONDS: f64 = 5.0;

/// Trials of the first checkpoint chunk of `points` points run as one plan: the work of one
/// point's [`FIRST_CHECKPOINT_CHUNK`], shared out (at least one trial), so a large group does
/// not go that many times as long before its first checkpoint.
pub fn first_checkpoint_chunk(points: usize) -> u32 {
    (FIRST_CHECKPOINT_CHUNK / points.max(1) as u32).max(1)
}

/// One point's chunks as they finish: its points (one per time, the per-trial values of every
/// chunk appended), the test samples per trial (classifiers, from the first chunk), the trials
/// done and the chunks they came in.
#[derive(Default)]
struct PointChunks {
    points: Vec<Point>,
    samples: Vec<Option<u32>>,
    done: u32,
    chunks: u32,
}

impl PointChunks {
    fn add(&mut self, trials: u32, pts: Vec<Point>) {
        self.done += trials;
        self.chunks += 1;
        if self.points.is_empty() {
            self.samples = pts.iter().map(|p| p.pooled.as_ref().map(|q| (q.trials / p.per_trial.len().max(1) as u64) as u32)).collect();
            self.points = pts;
        } else {
            for (p, q) in self.points.iter_mut().zip(pts) {
                p.per_trial.extend(q.per_trial);
                if let (Some(x), Some(y)) = (&mut p.per_trial_correct, q.per_trial_correct) {
                    x.extend(y);
                }
                // A chunk without variances (a journal of an earlier version) leaves the point
                // without its test-set interval rather than with one over some trials.
                match (&mut p.per_trial_test_var, q.per_trial_test_var) {
                    (Some(x), Some(y)) => x.extend(y),
                    (x, _) => *x = None,
                }
                p.per_row_correct = crate::results::add_row_counts(p.per_row_correct.take(), q.per_row_correct);
                p.companion = append_companion(p.companion.take(), q.companion);
            }
        }
    }

    /// The point's statistics over all its trials, as a single run of that many would have them
    /// (a single chunk's are those already).
    fn finish(self, be: &mut dyn Backend, exp: &Experiment, sp: &SweepPoint, reason: Option<String>) -> Result<Vec<Point>, RunError> {
        if self.chunks == 1 && reason.is_none() {
            return Ok(self.points);
        }
        let clock = std::time::Instant::now();
        let out = per_time_parallel(self.points.into_iter().zip(self.samples).collect(), |ti, (p, n_samples)| {
            let correct = p.per_trial_correct.zip(n_samples);
            // The floating-point metric, the first chunk's weight errors and the MoE cost model come
            // with the first chunk's points.
            let mut q =
                point(exp, sp, exp.first_trial, ti, p.per_trial, correct, p.per_trial_test_var, p.test_var_scale, p.fp, p.weight_error, p.projection_average)?;
            q.moe = p.moe;
            q.per_row_correct = p.per_row_correct;
            q.companion = p.companion.map(|c| companion_stats(companion_trials(c), exp.first_trial, exp.reads_per_programming, exp.confidence)).transpose()?;
            q.layer_insight = p.layer_insight;
            q.fp_clipped = p.fp_clipped;
            q.point_set = p.point_set;
            q.stopped = reason.clone();
            Ok(q)
        })
        .into_iter()
        .collect();
        be.add_host(STATISTICS, clock.elapsed().as_secs_f64());
        out
    }
}

/// The chunk of a point starting `done` trials in: its trials, and the weight-error and
/// layer-insight trials of a first chunk.
fn chunk_at(exp: &Experiment, done: u32, trials: u32) -> Chunk {
    Chunk {
        first_trial: exp.first_trial + done,
        trials,
        weight_error_trials: if done == 0 { exp.weight_error_trials } else { 0 },
        first_weight_error_trial: exp.first_weight_error_trial,
        layer_insight_trials: if done == 0 { exp.layer_insight_trials } else { 0 },
    }
}

/// The recovered chunk of point `sp` starting `done` trials in, with the progress it stands for
/// (its trials, and a first chunk's per-layer diagnostics).
fn recovered_at(exp: &Experiment, sp: &SweepPoint, done: u32, journal: &Option<&mut journal::Journal>) -> Option<(journal::Recovered, u64)> {
    // A chunk of no trials would take no step: computed anew instead.
    let r = journal.as_ref()?.recovered.get(&(sp.index, exp.first_trial + done)).filter(|r| r.trials > 0)?.clone();
    let c = chunk_at(exp, done, r.trials);
    let extras = if exp.workload.spec().layer_extras {
        c.weight_error_trials as u64 * exp.layers.len() as u64 + if sp.budget_only() { 0 } else { c.layer_insight_trials as u64 }
    } else {
        0
    };
    let units = r.trials as u64 + extras;
    Some((r, units))
}

/// Trials of the next checkpoint chunk of `points` points run together, after one of `trials`
/// trials took `seconds`: about [`CHECKPOINT_SECONDS`] of compute, at least the work of 16 trials
/// of one point (shared out over the points, at least one trial) and at most 8 times this
/// chunk's trials times the points (a one-trial chunk of one point still allows 16): a group's
/// first chunk, one point's work shared out, grows to the timed size at once.
fn next_chunk(trials: u32, seconds: f64, points: usize) -> u32 {
    let per_trial = seconds.max(1e-6) / trials as f64;
    let points = points.max(1) as u32;
    let (least, most) = ((16 / points).max(1), trials.saturating_mul(8).saturating_mul(points).max(16));
    ((CHECKPOINT_SECONDS / per_trial) as u32).clamp(least, most.max(least))
}

/// Trials of the next chunk: `next`, or all `left` where the rest after `next` would be a tail
/// of less than half a chunk (one checkpoint fewer, at most 1.5 times the chunk's compute).
fn chunk_trials(next: u32, left: u32) -> u32 {
    if left.saturating_sub(next) < next / 2 {
        left
    } else {
        next.min(left)
    }
}

/// One sweep point in chunks of trials, each recorded in the checkpoint journal as it finishes
/// (chunks the journal already holds are taken as they are). Adaptive runs chunk by their batch of
/// `exp.trials` and stop once the mean's trial-to-trial interval is at most `a.half_width` at every
/// time, or at `a.max_trials`; other runs chunk only with a journal, by compute time. The
/// statistics are then computed once over all trials, as a single run of that many would have.
fn run_point_checkpointed(
    be: &mut dyn Backend,
    exp: &Experiment,
    sp: &SweepPoint,
    progress: &mut dyn Progress,
    journal: &mut Option<&mut journal::Journal>,
) -> Result<Vec<Point>, RunError> {
    let adaptive = exp.adaptive;
    let cap = adaptive.map_or(exp.trials, |a| a.max_trials);
    let timed = adaptive.is_none() && journal.is_some() && exp.workload.spec().chunkable;
    let mut next = match adaptive {
        Some(_) => exp.trials.max(2),
        None if timed => FIRST_CHECKPOINT_CHUNK,
        None => exp.trials,
    };
    let mut acc = PointChunks::default();
    let reason = loop {
        let done = acc.done;
        let (n, pts) = match recovered_at(exp, sp, done, journal) {
            Some((r, units)) => {
                progress.advance(units);
                (r.trials, r.points)
            }
            None => {
                let chunk = chunk_at(exp, done, if adaptive.is_some() { next.min(cap - done) } else { chunk_trials(next, cap - done) });
                let clock = std::time::Instant::now();
                let pts = run_point(be, exp, sp, chunk, progress)?;
                if let Some(j) = journal.as_mut() {
                    let clock = std::time::Instant::now();
                    j.record(sp.index, chunk.first_trial, chunk.trials, &pts).map_err(RunError::Journal)?;
                    be.add_host(JOURNAL, clock.elapsed().as_secs_f64());
                }
                if timed {
                    next = next_chunk(chunk.trials, clock.elapsed().as_secs_f64(), 1);
                }
                if progress.interrupted() {
                    return Err(RunError::Interrupted);
                }
                (chunk.trials, pts)
            }
        };
        acc.add(n, pts);
        let done = acc.done;
        let clock = std::time::Instant::now();
        let stop = match adaptive {
            Some(a) => {
                let (mut worst, mut tied) = (0.0f64, false);
                for p in &acc.points {
                    let m: Moments = p.per_trial.iter().copied().collect();
                    worst = worst.max(stats::mean_t(&m, exp.confidence)?.half_width());
                    tied |= m.std() == 0.0;
                }
                let enough = done >= ADAPTIVE_MIN_TRIALS && (!tied || done >= ADAPTIVE_MIN_TIED_TRIALS);
                if worst <= a.half_width && enough {
                    Some(Some(format!("reached ±{} after {done} trials", a.half_width)))
                } else if done >= a.max_trials {
                    Some(Some(format!("stopped at the cap of {done} trials with ±{worst:.3e} (asked ±{})", a.half_width)))
                } else {
                    None
                }
            }
            None if done >= exp.trials => Some(None),
            None => None,
        };
        be.add_host(STATISTICS, clock.elapsed().as_secs_f64());
        if let Some(reason) = stop {
            break reason;
        }
    };
    acc.finish(be, exp, sp, reason)
}

/// Neighbouring points that run as one plan (the workload's [`Grouped`] run, fixed trial
/// counts), in checkpoint chunks as [`run_point_checkpointed`]: each chunk of the group is
/// recorded point by point, and a point whose next chunk the journal holds takes it. The points
/// not yet at the end that are the fewest trials in run their next chunk together, so after a
/// kill between two points' records the group runs together again from the next chunk on. Every
/// point's trials and statistics are those of its own run.
fn run_group_checkpointed(
    be: &mut dyn Backend,
    exp: &Experiment,
    grouped: &Grouped,
    sps: &[SweepPoint],
    progress: &mut dyn Progress,
    journal: &mut Option<&mut journal::Journal>,
) -> Result<Vec<Point>, RunError> {
    let timed = journal.is_some() && exp.workload.spec().chunkable;
    let mut next = if timed { first_checkpoint_chunk(sps.len()) } else { exp.trials };
    let mut acc: Vec<PointChunks> = sps.iter().map(|_| PointChunks::default()).collect();
    loop {
        for (sp, a) in sps.iter().zip(acc.iter_mut()) {
            while let Some((r, units)) = recovered_at(exp, sp, a.done, journal) {
                progress.advance(units);
                a.add(r.trials, r.points);
            }
        }
        let Some(done) = acc.iter().map(|a| a.done).filter(|&d| d < exp.trials).min() else { break };
        let members: Vec<usize> = (0..sps.len()).filter(|&k| acc[k].done == done).collect();
        let chunk = chunk_at(exp, done, chunk_trials(next, exp.trials - done));
        let clock = std::time::Instant::now();
        let group: Vec<SweepPoint> = members.iter().map(|&k| sps[k].clone()).collect();
        let all = if group.len() == 1 { vec![run_point(be, exp, &group[0], chunk, progress)?] } else { run_group(be, exp, grouped, &group, chunk, progress)? };
        for (&k, pts) in members.iter().zip(all) {
            if let Some(j) = journal.as_mut() {
                let clock = std::time::Instant::now();
                j.record(sps[k].index, chunk.first_trial, chunk.trials, &pts).map_err(RunError::Journal)?;
                be.add_host(JOURNAL, clock.elapsed().as_secs_f64());
            }
            acc[k].add(chunk.trials, pts);
        }
        if progress.interrupted() {
            return Err(RunError::Interrupted);
        }
        if timed {
            next = next_chunk(chunk.trials, clock.elapsed().as_secs_f64() / members.len() as f64 * sps.len() as f64, sps.len());
        }
    }
    let mut out = Vec::new();
    for (sp, a) in sps.iter().zip(acc) {
        out.extend(a.finish(be, exp, sp, None)?);
    }
    Ok(out)
}

/// The sizes of the runs of neighbouring points that run as one plan, in order (all 1 where
/// the workload groups none).
pub fn plan_groups(exp: &Experiment) -> Vec<usize> {
    let mut sizes = Vec::new();
    let mut i = 0;
    while i < exp.points.len() {
        let len = group_len(exp, i);
        sizes.push(len);
        i += len;
    }
    sizes
}

/// How many points from `exp.points[i]` on run as one plan: the run of neighbours the workload
/// calls alike (1 where it groups none, and for adaptive trials, whose points stop apart).
fn group_len(exp: &Experiment, i: usize) -> usize {
    let Some(g) = &exp.workload.spec().grouped else { return 1 };
    if exp.adaptive.is_some() {
        return 1;
    }
    let first = &exp.points[i];
    1 + exp.points[i + 1..].iter().take_while(|p| (g.alike)(first, p)).count()
}

/// Total trial units the progress bar counts for an experiment.
pub fn total_work(exp: &Experiment) -> u64 {
    let extras = exp.workload.spec().layer_extras;
    let per_point = exp.trials as u64 + if extras { exp.weight_error_trials as u64 * exp.layers.len() as u64 } else { 0 };
    let insight = if extras { exp.layer_insight_trials as u64 * exp.points.iter().filter(|sp| !sp.budget_only()).count() as u64 } else { 0 };
    per_point * exp.points.len() as u64 + insight
}

pub fn run(exp: &Experiment, be: &mut dyn Backend, progress: &mut dyn Progress) -> Outcome {
    run_journaled(exp, be, progress, None)
}

/// As [`run`], with a checkpoint journal: chunks of trials it recovered are taken as they are, and
/// every newly finished chunk is recorded before the next one starts.
pub fn run_journaled(exp: &Experiment, be: &mut dyn Backend, progress: &mut dyn Progress, mut journal: Option<&mut journal::Journal>) -> Outcome {
    let start = std::time::Instant::now();
    progress.start(total_work(exp));
    let mut points = Vec::new();
    let mut error = None;
    let mut i = 0;
    for len in plan_groups(exp) {
        let got = match &exp.workload.spec().grouped {
            Some(g) if len > 1 => run_group_checkpointed(be, exp, g, &exp.points[i..i + len], progress, &mut journal),
            _ => run_point_checkpointed(be, exp, &exp.points[i], progress, &mut journal),
        };
        match got {
            Ok(p) => points.extend(p),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
        i += len;
    }
    progress.finish();
    let secs = start.elapsed().as_secs_f64();
    let ad = be.adapter();
    let fp_baseline = match (&exp.data, exp.workload) {
        // A sweep over model files keeps each point's own `fp`.
        (Some(_), WorkloadKind::Classifier) if exp.points.iter().any(|p| p.classifier.is_some()) => {
            points.first().and_then(|p| p.fp).filter(|&f| points.iter().all(|p| p.fp == Some(f)))
        }
        (Some(_), WorkloadKind::Classifier) => exp.fp_correct.map(|(c, n)| c as f64 / n as f64),
        // The MoE classifier: the floating-point accuracy of its model, when every point runs the
        // same one (a sweep over model files keeps each point's own `fp`).
        (Some(_), WorkloadKind::Moe) => points.first().and_then(|p| p.fp).filter(|&f| points.iter().all(|p| p.fp == Some(f))),
        // The transformer: one baseline when every point runs the same network and attention
        // (a sweep over state dicts or attention kinds keeps each point's own `fp`).
        (Some(_), WorkloadKind::Transformer) => points.first().and_then(|p| p.fp).filter(|&f| points.iter().all(|p| p.fp == Some(f))),
        _ => None,
    };
    let energy = (exp.workload == WorkloadKind::Classifier).then(|| {
        let first = &exp.points[0];
        exp.energy.per_inference(&analog_layers(&exp.layers, &exp.activations, first.tile, (&first.periphery).into()), &exp.digital, first.tile)
    });
    let metric = exp.metric();
    let points_have_rows = points.iter().any(|p| p.per_row_correct.is_some());
    // Trials run over all points (one time per point: times share a trial's programmed state);
    // with adaptive trials points may have run more than the file's count.
    let trials_run: f64 = points.iter().step_by(exp.times.len().max(1)).map(|p| p.per_trial.len() as f64).sum();
    let max_trials = points.iter().map(|p| p.per_trial.len() as u32).max().unwrap_or(exp.trials).max(exp.trials);
    let mut results = Results {
        schema_version: results::SCHEMA_VERSION,
        tool: format!("aimc {}", env!("CARGO_PKG_VERSION")),
        git_commit: env!("AIMC_GIT_COMMIT").to_string(),
        adapter: Adapter { name: ad.name, backend: ad.backend, driver: ad.driver, device_type: ad.device_type },
        seed: exp.seed,
        experiment_file: exp.file.display().to_string(),
        experiment_sha256: exp.sha256.clone(),
        name: exp.name.clone(),
        description: exp.description.clone(),
        workload: exp.workload.name().to_string(),
        metric: metric.text.into(),
        metric_column: metric.column.into(),
        higher_is_better: metric.higher_is_better,
        ci_half_width: exp.ci_half_width,
        confidence: exp.confidence,
        config: exp.resolved.clone(),
        axes: exp.axes.iter().map(|a| Axis { name: a.name.clone(), values: a.labels.clone() }).collect(),
        times: exp.times.clone(),
        fp_baseline,
        points,
        energy,
        trials: max_trials,
        run_seconds: secs,
        trials_per_second: trials_run / secs.max(1e-9),
        shard: exp.shard.clone(),
        profile: None,
        reference: None,
        npu: exp.npu.clone(),
        paired: vec![],
        budget: vec![],
        row_labels: row_labels(exp, points_have_rows),
    };
    let clock = std::time::Instant::now();
    if let Some(r) = &exp.reference {
        results.reference = Some(crate::config::reference::compare(r, &results));
    }
    match paired::paired_differences(&results) {
        Ok(p) => results.paired = p,
        Err(e) => error = error.or(Some(RunError::Stats(e))),
    }
    match crate::workload::budget::attribute(&results) {
        Ok(b) => results.budget = b,
        Err(e) => error = error.or(Some(RunError::Stats(e))),
    }
    be.add_host(STATISTICS, clock.elapsed().as_secs_f64());
    Outcome { results, error }
}

#[cfg(test)]
mod tests {
    use super::per_time_parallel;

    /// More time points than cores, uneven work: every result at its time index, as a sequential
    /// map gives them.
    #[test]
    fn per_time_parallel_keeps_time_order() {
        let items: Vec<u64> = (0..37).map(|i| (i * 7919) % 101).collect();
        let work = |ti: usize, x: u64| (0..x * 1000).fold(ti as u64, |a, k| a.wrapping_mul(31).wrapping_add(k));
        let want: Vec<u64> = items.iter().enumerate().map(|(ti, &x)| work(ti, x)).collect();
        assert_eq!(per_time_parallel(items, work), want);
        assert_eq!(per_time_parallel(Vec::<u64>::new(), work), Vec::<u64>::new());
    }
}
