//! The per-series statistics tables: the distribution over trials and the intervals of the mean.

use crate::report::document::*;
use crate::report::format::*;
use crate::report::series::*;
use crate::results::*;

pub(super) fn distribution_table(fmt: &Fmt, series: &Series<'_>) -> Table {
    let header = ["time", "trials", "mean", "std", "median", "p1", "p5", "p95", "p99", "min", "max"];
    let rows = series
        .points
        .iter()
        .map(|p| {
            let s = &p.summary;
            let mut row = vec![text(p.time_label.clone()), text(s.n.to_string())];
            for v in [s.mean, s.std, s.median, s.p01, s.p05, s.p95, s.p99, s.min, s.max] {
                row.push(text(fmt.value(v)));
            }
            row
        })
        .collect();
    Table { header: header.iter().map(|h| h.to_string()).collect(), rows, right_aligned: header.iter().map(|h| *h != "time").collect() }
}

/// Intervals, pooled counts, drop and trial planning; the optional columns appear when any
/// point of the series has them.
pub(super) fn interval_table(results: &Results, fmt: &Fmt, series: &Series<'_>) -> Table {
    let first = series.points.first();
    let mean_conf = first.map_or(results.confidence, |p| p.mean_ci.confidence);
    let pooled = series.points.iter().find_map(|p| p.pooled.as_ref());
    let drop = series.points.iter().find_map(|p| p.drop.as_ref());

    let test_set = series.points.iter().any(|p| p.test_set_ci.is_some());
    let p5 = series.points.iter().any(|p| p.p5_ci.is_some());
    let tail = series.points.iter().find_map(|p| p.tail.as_ref());
    let mut header = vec!["time".to_string(), format!("mean, trial-to-trial CI ({})", percent_label(mean_conf))];
    if test_set {
        header.push(format!("mean, test-set sampling CI ({})", percent_label(mean_conf)));
    }
    if p5 {
        header.push(format!("5th percentile CI (order statistics, {})", percent_label(mean_conf)));
    }
    if let Some(t) = tail {
        header.push(format!("P({} {}) over trials (Clopper–Pearson)", if t.above { ">" } else { "<" }, fmt.value(t.threshold)));
    }
    if let Some(pooled) = pooled {
        header.push("pooled trials × rows (correct/total)".to_string());
        header.push(format!("pooled Wilson ({})", percent_label(pooled.wilson.confidence)));
        header.push(format!("pooled Clopper–Pearson ({})", percent_label(pooled.clopper_pearson.confidence)));
    }
    // A metric where lower is better (an error, a perplexity) moves up: its change is shown as
    // the increase over floating point, the drop with its sign turned.
    let sign = if results.higher_is_better { 1.0 } else { -1.0 };
    if let Some(drop) = drop {
        let what = if results.higher_is_better { "drop" } else { "increase over floating point" };
        header.push(format!("{what} ({} CI)", percent_label(drop.ci.confidence)));
    }
    header.push(format!(
        "trials for ±{}{} ({})",
        trimmed(significant(results.ci_half_width * fmt.scale, 3)),
        fmt.difference_unit(),
        percent_label(results.confidence)
    ));

    let dash = || text("–");
    let rows = series
        .points
        .iter()
        .map(|p| {
            // A zero-wide interval from two or more trials: they all gave the same value.
            let tied = if p.mean_ci.lo == p.mean_ci.hi && p.per_trial.len() >= 2 { " (all trials equal)" } else { "" };
            let mut row = vec![text(p.time_label.clone()), text(format!("{}{tied}", fmt.range(p.mean_ci.lo, p.mean_ci.hi)))];
            if test_set {
                row.push(p.test_set_ci.as_ref().map_or_else(dash, |c| text(fmt.range(c.lo, c.hi))));
            }
            if p5 {
                row.push(p.p5_ci.as_ref().map_or_else(dash, |c| text(fmt.range(c.lo, c.hi))));
            }
            if tail.is_some() {
                row.push(
                    p.tail.as_ref().map_or_else(dash, |t| text(format!("{}/{} = {:.3} ({:.3}–{:.3})", t.below, t.trials, t.probability, t.ci.lo, t.ci.hi))),
                );
            }
            if pooled.is_some() {
                match &p.pooled {
                    Some(q) => {
                        row.push(text(format!("{} ({}/{})", fmt.value(q.proportion), q.successes, q.trials)));
                        row.push(text(fmt.range(q.wilson.lo, q.wilson.hi)));
                        row.push(text(fmt.range(q.clopper_pearson.lo, q.clopper_pearson.hi)));
                    }
                    None => row.extend([dash(), dash(), dash()]),
                }
            }
            if drop.is_some() {
                row.push(match &p.drop {
                    Some(d) => {
                        let (lo, hi) = if sign > 0.0 { (d.ci.lo, d.ci.hi) } else { (-d.ci.hi, -d.ci.lo) };
                        text(format!("{} ({})", fmt.value(sign * d.mean), fmt.range(lo, hi)))
                    }
                    None => dash(),
                });
            }
            row.push(text(p.trials_needed.to_string()));
            row
        })
        .collect();
    let right_aligned = (0..header.len()).map(|i| i > 0).collect();
    Table { header, rows, right_aligned }
}

/// Two-level Monte Carlo (`reads_per_programming` > 1): per time the metric's std between
/// programmings and between reads of one programming, each with the interval of its variance
/// (stats::anova), and the share of the mean's variance the programmings make.
pub(super) fn variance_split_table(fmt: &Fmt, series: &Series<'_>) -> Option<Table> {
    let first = series.points.iter().find_map(|p| p.variance_split.as_ref())?;
    let conf = percent_label(first.between_ci.confidence);
    let header = vec![
        "time".to_string(),
        "programmings × reads".to_string(),
        format!("std between programmings ({conf} CI, Satterthwaite; from 0 where the estimate is 0)"),
        format!("std between reads ({conf} CI, chi-square)"),
        "programmings' share of Var(mean)".to_string(),
    ];
    let rows = series
        .points
        .iter()
        .filter_map(|p| p.variance_split.as_ref().map(|v| (p, v)))
        .map(|(p, v)| {
            vec![
                text(p.time_label.clone()),
                text(format!("{} × {}", v.programmings, v.reads)),
                text(format!("{} ({})", fmt.value(v.between.sqrt()), fmt.range(v.between_ci.lo.sqrt(), v.between_ci.hi.sqrt()))),
                text(format!("{} ({})", fmt.value(v.within.sqrt()), fmt.range(v.within_ci.lo.sqrt(), v.within_ci.hi.sqrt()))),
                text(format!("{:.0} %", 100.0 * v.between_share)),
            ]
        })
        .collect();
    let right_aligned = (0..header.len()).map(|i| i > 0).collect();
    Some(Table { header, rows, right_aligned })
}
