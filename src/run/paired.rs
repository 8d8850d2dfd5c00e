//! Paired differences between sweep points. For every sweep axis, each value is compared with the
//! axis's first value at the same other settings and time: per trial d_i = m_i(value) − m_i(first)
//! (the same global trial i on both sides), with a Student-t interval over trials (over the
//! group means where trials share a programming or a projection: two-level runs and
//! `kernel.projection_seeds`). With common
//! random numbers (the default) both sides of a pair saw the same device and periphery draws, so
//! the paired interval is much tighter than the unpaired (Welch) one, which is reported beside it.
//!
//! Which pairs: each value against its axis's first value (the baseline a reader names when the
//! axis is written first, e.g. `gdc = ["off", "readout"]`), not every pair of points and not
//! neighbours along the axis: one difference per point and axis it does not sit at the baseline
//! of, so the count is at most points × axes. Each baseline is one hash look-up
//! ([`PointIndex`]), and the t quantile of a degrees-of-freedom value is computed once
//! (`stats::interval`), so the whole pass is linear in the number of points.

use crate::results::index::PointIndex;
use crate::results::{PairedDifference, Results};
use crate::stats::{self, Moments, StatsError};

/// Every paired difference of a run's points.
pub fn paired_differences(results: &Results) -> Result<Vec<PairedDifference>, StatsError> {
    let mut out = Vec::new();
    let crn = results.config.get("common_random_numbers").and_then(|v| v.as_bool()).unwrap_or(false);
    let index = PointIndex::new(results);
    for axis in &results.axes {
        let Some(base_value) = axis.values.first() else { continue };
        for p in results.points.iter().filter(|p| p.labels.get(&axis.name).is_some_and(|v| v != base_value)) {
            let Some(q) = index.with(p, &axis.name, base_value) else { continue };
            if p.per_trial.len() < 2 {
                continue;
            }
            let Some(units) = paired_units(&[p, q]) else { continue };
            let (a, b) = (&units[0], &units[1]);
            let d: Moments = a.iter().zip(b.iter()).map(|(a, b)| a - b).collect();
            let (mp, mq): (Moments, Moments) = (a.iter().copied().collect(), b.iter().copied().collect());
            let paired = stats::mean_t(&d, results.confidence)?;
            let unpaired = stats::welch_t(&mq, &mp, results.confidence)?;
            let others: Vec<String> = p.labels.iter().filter(|(k, _)| *k != &axis.name).map(|(k, v)| format!("{k}={v}")).collect();
            out.push(PairedDifference {
                axis: axis.name.clone(),
                value: p.labels[&axis.name].clone(),
                baseline: base_value.clone(),
                others: others.join(", "),
                t_inf: p.t_inf,
                time_label: p.time_label.clone(),
                mean: d.mean,
                ci: paired,
                unpaired_half_width: unpaired.half_width(),
                common_random_numbers: crn,
            });
        }
    }
    Ok(out)
}

/// The paired units of points that ran the same trials: their per-trial metrics, or, where
/// trials share a programming or a projection (every point grouped alike, whole groups, at least
/// two), the group means, since trials of one group are not independent (P − 1 degrees of
/// freedom, as the points' own intervals). None when the points ran different trial counts.
pub fn paired_units(points: &[&crate::results::Point]) -> Option<Vec<Vec<f64>>> {
    let n = points.first()?.per_trial.len();
    if points.iter().any(|p| p.per_trial.len() != n) {
        return None;
    }
    let g0 = group(points[0]);
    let g = g0.filter(|&g| points.iter().all(|p| group(p) == Some(g)) && n.is_multiple_of(g) && n / g >= 2).unwrap_or(1);
    Some(points.iter().map(|p| p.per_trial.chunks(g).map(|c| c.iter().sum::<f64>() / c.len() as f64).collect()).collect())
}

/// Trials per group of a point whose trials share a programming (`reads_per_programming`) or a
/// projection (`kernel.projection_seeds`); None when every trial is independent.
fn group(p: &crate::results::Point) -> Option<usize> {
    p.variance_split.as_ref().or(p.projection_average.as_ref().and_then(|a| a.split.as_ref())).map(|v| v.reads as usize).filter(|&r| r > 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{Axis, Point};

    /// The scan this module used before the index: the point with `axis = base_value` and every
    /// other label and the time equal to `p`'s, found by looking at every point.
    fn baseline_by_scan<'a>(results: &'a Results, p: &Point, axis: &str, base_value: &str) -> Option<&'a Point> {
        results.points.iter().find(|q| {
            q.t_inf == p.t_inf
                && q.labels.len() == p.labels.len()
                && q.labels.iter().all(|(k, v)| if k == axis { v == base_value } else { p.labels.get(k) == Some(v) })
        })
    }

    /// The quadratic construction, kept as the oracle.
    fn paired_by_scan(results: &Results) -> Vec<PairedDifference> {
        let mut out = Vec::new();
        let crn = results.config.get("common_random_numbers").and_then(|v| v.as_bool()).unwrap_or(false);
        for axis in &results.axes {
            let Some(base_value) = axis.values.first() else { continue };
            for p in results.points.iter().filter(|p| p.labels.get(&axis.name).is_some_and(|v| v != base_value)) {
                let Some(q) = baseline_by_scan(results, p, &axis.name, base_value) else { continue };
                if p.per_trial.len() != q.per_trial.len() || p.per_trial.len() < 2 {
                    continue;
                }
                let d: Moments = p.per_trial.iter().zip(&q.per_trial).map(|(a, b)| a - b).collect();
                let (mp, mq): (Moments, Moments) = (p.per_trial.iter().copied().collect(), q.per_trial.iter().copied().collect());
                let others: Vec<String> = p.labels.iter().filter(|(k, _)| *k != &axis.name).map(|(k, v)| format!("{k}={v}")).collect();
                out.push(PairedDifference {
                    axis: axis.name.clone(),
                    value: p.labels[&axis.name].clone(),
                    baseline: base_value.clone(),
                    others: others.join(", "),
                    t_inf: p.t_inf,
                    time_label: p.time_label.clone(),
                    mean: d.mean,
                    ci: stats::mean_t(&d, results.confidence).unwrap(),
                    unpaired_half_width: stats::welch_t(&mq, &mp, results.confidence).unwrap().half_width(),
                    common_random_numbers: crn,
                });
            }
        }
        out
    }

    /// Three axes (3 × 2 × 4 values) at two times with 5 trials, one point dropped and one given
    /// a different trial count, so missing baselines and mismatched pairs are covered too.
    fn small_sweep() -> Results {
        let mut r = crate::report::tests::synthetic();
        let template = r.points[0].clone();
        let axes = [("a", vec!["x", "y", "z"]), ("b", vec!["1", "2"]), ("c", vec!["p", "q", "r", "s"])];
        let mut state = 11u64;
        let mut points = Vec::new();
        for (ia, a) in axes[0].1.iter().enumerate() {
            for (ib, b) in axes[1].1.iter().enumerate() {
                for (ic, c) in axes[2].1.iter().enumerate() {
                    for t in [1.0, 3600.0] {
                        let mut p = template.clone();
                        p.labels = [("a", *a), ("b", *b), ("c", *c)].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
                        p.series = format!("a={a}, b={b}, c={c}");
                        p.t_inf = t;
                        p.per_trial = (0..5)
                            .map(|_| {
                                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                                0.9 - 0.01 * (ia + 2 * ib + 3 * ic) as f64 + 1e-3 * ((state >> 40) as f64 / (1u64 << 24) as f64)
                            })
                            .collect();
                        points.push(p);
                    }
                }
            }
        }
        points.remove(7);
        points[12].per_trial.pop();
        r.points = points;
        r.times = vec![1.0, 3600.0];
        r.axes = axes.iter().map(|(n, v)| Axis { name: n.to_string(), values: v.iter().map(|s| s.to_string()).collect() }).collect();
        r
    }

    #[test]
    fn indexed_pairs_equal_the_scanned_ones() {
        let r = small_sweep();
        let fast = paired_differences(&r).unwrap();
        let slow = paired_by_scan(&r);
        assert!(slow.len() > 50, "{} pairs", slow.len());
        // Same arithmetic on the same trials: equal to the bit, in the same order.
        assert_eq!(fast, slow);
    }
}
