//! Every statistic of one point from its trials, shared by `run` and `merge` so a merged or
//! resumed run has exactly the statistics of a single one: the summary and histogram, the mean's
//! interval (Student t over trials, or over programming or projection means), the test-set
//! interval (Wilson, the ratio estimator, the jackknife), the 5th percentile's order-statistic
//! interval, the tail's Clopper–Pearson interval, the drop from floating point, the two-level
//! variance split, and a companion metric's statistics.

use super::TailAt;
use crate::config::time_label;
use crate::results::{self, LayerWeightError, Point, Pooled};
use crate::stats::{self, Histogram, Moments, Summary};
use crate::workload::CompanionMetric;

/// Which point a set of trials belongs to.
pub struct PointId {
    pub sweep_index: usize,
    pub labels: std::collections::BTreeMap<String, String>,
    pub series: String,
    pub t_inf: f64,
    /// Global index of the first of the point's trials, and the reads per programming: which
    /// trials share a programming (the variance split).
    pub first_trial: u32,
    pub reads_per_programming: u32,
    /// Kernel workloads averaged over projections: the projections' floating-point statistics
    /// (the analog split between projections is filled in by [`point_stats`]).
    pub projection: Option<results::ProjectionAverage>,
}

/// The projection average of a kernel point from its projections' floating-point metrics.
pub fn projection_average(fp_per_seed: &[f64], trials_per_seed: u32, confidence: f64) -> Result<Option<results::ProjectionAverage>, stats::StatsError> {
    if fp_per_seed.len() < 2 {
        return Ok(None);
    }
    let m: Moments = fp_per_seed.iter().copied().collect();
    let mut fp_ci = stats::mean_t(&m, confidence)?;
    fp_ci.method = format!("{} over projections", fp_ci.method);
    Ok(Some(results::ProjectionAverage {
        seeds: fp_per_seed.len() as u32,
        trials_per_seed,
        fp_std: m.std(),
        fp_ci,
        fp_per_seed: fp_per_seed.to_vec(),
        split: None,
    }))
}

/// The test-set sampling interval of a mean metric: where the units of the test set are groups
/// of the counted items (a language model's sequences of tokens, a reader's questions) the ratio
/// estimator's from the per-trial variances of the metric's log; for a correlation (linear scale)
/// the jackknife's; else, for counts out of `n` items, Wilson over the items. None without either.
pub fn test_set_interval(
    mean: f64,
    per_trial: &[f64],
    n_items: Option<u32>,
    test_var: Option<&[f64]>,
    test_scale: results::TestScale,
    confidence: f64,
) -> Result<Option<stats::Interval>, stats::StatsError> {
    Ok(match (n_items, test_var) {
        (_, Some(v)) if v.len() == per_trial.len() && test_scale == results::TestScale::Linear => {
            Some(stats::jackknife_normal_interval(mean, v, confidence, -1.0, 1.0)?)
        }
        (_, Some(v)) if v.len() == per_trial.len() => {
            let mut ci = stats::ratio_exp_interval(mean, v, confidence)?;
            // A score in [0, 1] (an accuracy, an F1) stays below 1; a perplexity's trials are
            // all >= 1, and where they are all 1 its interval is [1, 1].
            if n_items.is_some() || per_trial.iter().all(|&v| v <= 1.0) {
                ci.hi = ci.hi.min(1.0);
            }
            Some(ci)
        }
        (Some(n), _) => Some(stats::wilson_proportion(mean, n as u64, confidence)?),
        (None, _) => None,
    })
}

/// Every statistic of a point from its per-trial metric (and, for classifiers, the exact per-trial
/// correct counts out of `n` samples; for a language model, the per-trial test-set variances of its
/// metric's log over the sequences). Used by `run` and by `merge`, so a merged run has exactly the
/// statistics a single run would have.
#[allow(clippy::too_many_arguments)]
pub fn point_stats(
    id: PointId,
    per_trial: Vec<f64>,
    correct: Option<(Vec<u32>, u32)>,
    test_var: Option<Vec<f64>>,
    test_scale: results::TestScale,
    fp: Option<f64>,
    weight_error: Vec<LayerWeightError>,
    confidence: f64,
    ci_half_width: f64,
    tail: Option<TailAt>,
) -> Result<Point, stats::StatsError> {
    let summary = Summary::from_sample(&per_trial)?;
    // Trial-to-trial uncertainty of the 5th percentile: order statistics, none below
    // `quantile_interval_min_n` trials (72 at 95 %).
    let mut p5_ci = stats::quantile_order_interval(&per_trial, 0.05, confidence)?;
    let mut tail = match tail {
        Some(at) => {
            let (threshold, above) = match at {
                TailAt::Below(t) => (t, false),
                TailAt::Above(t) => (t, true),
            };
            let below = per_trial.iter().filter(|&&v| if above { v > threshold } else { v < threshold }).count() as u64;
            let n = per_trial.len() as u64;
            Some(results::Tail { threshold, below, above, trials: n, probability: below as f64 / n as f64, ci: stats::clopper_pearson(below, n, confidence)? })
        }
        None => None,
    };
    let test_set_ci = test_set_interval(summary.mean, &per_trial, correct.as_ref().map(|c| c.1), test_var.as_deref(), test_scale, confidence)?;
    let variance_split = stats::VarianceSplit::from_trials(&per_trial, id.first_trial, id.reads_per_programming, confidence)?;
    // Trials of one projection share it (kernel.projection_seeds): the same two-level split, the
    // projections in the role of programmings.
    let mut projection = id.projection;
    if let Some(pa) = &mut projection {
        pa.split = stats::VarianceSplit::from_trials(&per_trial, id.first_trial, pa.trials_per_seed, confidence)?;
    }
    let groups =
        variance_split.as_ref().map(|v| (v.reads, "programming")).or(projection.as_ref().and_then(|p| p.split.as_ref()).map(|v| (v.reads, "projection")));
    // Reads of one programming are not independent: with two levels, the mean's interval and the
    // drop's are Student t over the P programming (or projection) means (Var = σ_b²/P +
    // σ_w²/(P R), P − 1 degrees of freedom), exact for the balanced design; otherwise over trials.
    let mom = unit_moments(&per_trial, groups.map(|(reads, _)| reads));
    // The quantile and the tail count trials: where trials share a programming or a projection
    // the intervals treat them as independent, and say so.
    if let Some((_, what)) = groups {
        for ci in p5_ci.iter_mut().chain(tail.iter_mut().map(|t| &mut t.ci)) {
            ci.method = format!("{}; trials of one {what} counted as independent, so too narrow", ci.method);
        }
    }
    let over_programmings = |mut i: stats::Interval| {
        if let Some((_, what)) = groups {
            i.method = format!("{} over {what} means", i.method);
        }
        i
    };
    let mean_ci = over_programmings(stats::mean_t(&mom, confidence)?);
    let (pooled, histogram) = match &correct {
        Some((c, n)) => {
            let succ: u64 = c.iter().map(|&k| k as u64).sum();
            let total = c.len() as u64 * *n as u64;
            let pooled = Pooled {
                successes: succ,
                trials: total,
                proportion: succ as f64 / total as f64,
                wilson: stats::wilson(succ, total, confidence)?,
                clopper_pearson: stats::clopper_pearson(succ, total, confidence)?,
            };
            // One bin per attainable accuracy value k/n, so the histogram is exact.
            let half = 0.5 / *n as f64;
            let mut h = Histogram::new(-half, 1.0 + half, *n as usize + 1)?;
            for &k in c {
                h.push(k as f64 / *n as f64);
            }
            (Some(pooled), h)
        }
        None => {
            let hi = summary.max.max(1e-12) * 1.05;
            let mut h = Histogram::new(0.0f64.min(summary.min), hi, 50)?;
            for &v in &per_trial {
                h.push(v);
            }
            (None, h)
        }
    };
    // Averaged over projections, the floating-point metric is itself a mean over them: each
    // projection's drop pairs its own floating point with its own analog mean, so the spread
    // between projections, common to both, cancels.
    let per_projection = match (groups, &projection) {
        (Some((reads, "projection")), Some(pa)) => {
            let s0 = (id.first_trial / reads) as usize;
            (s0 + mom.n as usize <= pa.fp_per_seed.len() && mom.n >= 2).then(|| {
                per_trial.chunks(reads as usize).enumerate().map(|(k, g)| pa.fp_per_seed[s0 + k] - g.iter().sum::<f64>() / g.len() as f64).collect::<Moments>()
            })
        }
        _ => None,
    };
    let drop = match (fp, per_projection) {
        (Some(_), Some(d)) => {
            let mut ci = stats::mean_t(&d, confidence)?;
            ci.method = format!("{} over paired projection differences", ci.method);
            Some(results::Drop { mean: d.mean, ci })
        }
        (Some(f), None) => Some(results::Drop { mean: f - summary.mean, ci: over_programmings(stats::difference_of_means_t(&mom, f, 0.0, confidence)?) }),
        (None, _) => None,
    };
    // Where trials share a programming or a projection the mean's interval is over the group
    // means: the groups needed from their spread, in whole groups of trials.
    let trials_needed = match groups {
        Some((reads, _)) if mom.std() > 0.0 => stats::trials_needed(mom.std(), ci_half_width, confidence)?.max(2).saturating_mul(reads as u64),
        Some((reads, _)) => 2 * reads as u64,
        None if summary.std > 0.0 => stats::trials_needed(summary.std, ci_half_width, confidence)?,
        None => 2,
    };
    Ok(Point {
        sweep_index: id.sweep_index,
        labels: id.labels,
        series: id.series,
        t_inf: id.t_inf,
        time_label: time_label(id.t_inf),
        per_trial,
        per_trial_correct: correct.map(|c| c.0),
        per_trial_test_var: test_var,
        test_var_scale: test_scale,
        per_row_correct: None,
        companion: None,
        summary,
        mean_ci,
        pooled,
        drop,
        trials_needed,
        histogram,
        weight_error,
        test_set_ci,
        p5_ci,
        tail,
        fp,
        moe: None,
        stopped: None,
        layer_insight: vec![],
        variance_split,
        fp_clipped: None,
        point_set: None,
        projection_average: projection,
    })
}

/// The statistics of a point's companion metric (`results::Companion`) from its trials: the
/// mean's Student t interval as the point's own, over programming means where trials share one
/// (`reads_per_programming` > 1), and its test-set interval ([`test_set_interval`]). Used by
/// `run` and by `merge`.
pub fn companion_stats(c: CompanionMetric, first_trial: u32, reads_per_programming: u32, confidence: f64) -> Result<results::Companion, stats::StatsError> {
    let CompanionMetric { metric, per_trial, items, test_var, test_scale, fp } = c;
    let summary = Summary::from_sample(&per_trial)?;
    let split = stats::VarianceSplit::from_trials(&per_trial, first_trial, reads_per_programming, confidence)?;
    let mom = unit_moments(&per_trial, split.as_ref().map(|v| v.reads));
    let mut mean_ci = stats::mean_t(&mom, confidence)?;
    if split.is_some() {
        mean_ci.method = format!("{} over programming means", mean_ci.method);
    }
    let test_set_ci = test_set_interval(summary.mean, &per_trial, items, test_var.as_deref(), test_scale, confidence)?;
    Ok(results::Companion {
        metric,
        items,
        per_trial_test_var: test_var,
        test_var_scale: test_scale,
        mean: summary.mean,
        std: summary.std,
        per_trial,
        mean_ci,
        test_set_ci,
        fp,
    })
}

/// The companion of trials `a` then trials `b` (checkpoint chunks, shards), its statistics left
/// for [`companion_stats`] to form again: none where either has none (a chunk or shard of an
/// earlier version), and no variances where either has none.
pub fn append_companion(a: Option<results::Companion>, b: Option<results::Companion>) -> Option<results::Companion> {
    let (mut x, y) = (a?, b?);
    x.per_trial.extend(y.per_trial);
    x.per_trial_test_var = x.per_trial_test_var.zip(y.per_trial_test_var).map(|(mut v, w)| {
        v.extend(w);
        v
    });
    Some(x)
}

/// A point's companion as its statistics' input again (to add chunks or shards to it).
pub fn companion_trials(c: results::Companion) -> CompanionMetric {
    CompanionMetric { metric: c.metric, per_trial: c.per_trial, items: c.items, test_var: c.per_trial_test_var, test_scale: c.test_var_scale, fp: c.fp }
}

/// The moments of the mean's independent units: the trials, or where `reads` trials share a
/// programming (or a projection) the means of those groups.
fn unit_moments(per_trial: &[f64], reads: Option<u32>) -> Moments {
    match reads {
        Some(reads) => per_trial.chunks(reads as usize).map(|g| g.iter().sum::<f64>() / g.len() as f64).collect(),
        None => per_trial.iter().copied().collect(),
    }
}
