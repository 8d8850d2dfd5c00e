//! Paired differences between sweep points. For every sweep axis, each value is compared with the
//! axis's first value at the same other settings and time: per trial d_i = m_i(value) − m_i(first)
//! (the same global trial i on both sides), with a Student-t interval over trials. With common
//! random numbers (the default) both sides of a pair saw the same device and periphery draws, so
//! the paired interval is much tighter than the unpaired (Welch) one, which is reported beside it.

use crate::results::{PairedDifference, Point, Results};
use crate::stats::{self, Moments, StatsError};

/// Every paired difference of a run's points.
pub fn paired_differences(results: &Results) -> Result<Vec<PairedDifference>, StatsError> {
    let mut out = Vec::new();
    let crn = results.config.get("common_random_numbers").and_then(|v| v.as_bool()).unwrap_or(false);
    for axis in &results.axes {
        let Some(base_value) = axis.values.first() else { continue };
        for p in results.points.iter().filter(|p| p.labels.get(&axis.name).is_some_and(|v| v != base_value)) {
            let Some(q) = baseline(results, p, &axis.name, base_value) else { continue };
            if p.per_trial.len() != q.per_trial.len() || p.per_trial.len() < 2 {
                continue;
            }
            let d: Moments = p.per_trial.iter().zip(&q.per_trial).map(|(a, b)| a - b).collect();
            let (mp, mq): (Moments, Moments) = (p.per_trial.iter().copied().collect(), q.per_trial.iter().copied().collect());
            let paired = stats::mean_t(&d, results.confidence)?;
            let unpaired = stats::difference_of_means_t(&mq, mp.mean, mp.sem(), results.confidence)?;
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

/// The point with `axis = base_value` and every other label and the time equal to `p`'s.
fn baseline<'a>(results: &'a Results, p: &Point, axis: &str, base_value: &str) -> Option<&'a Point> {
    results.points.iter().find(|q| {
        q.t_inf == p.t_inf
            && q.labels.len() == p.labels.len()
            && q.labels.iter().all(|(k, v)| if k == axis { v == base_value } else { p.labels.get(k) == Some(v) })
    })
}
