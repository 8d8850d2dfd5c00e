//! The summary: one sentence per series (median over time, floating point, the drop with the
//! mean's interval and the spread of single trials, the companion metric's means).

use std::fmt::Write as _;

use crate::report::format::*;
use crate::report::series::*;
use crate::results::*;

/// e.g. "With gdc=readout, the median test accuracy falls from 95.2 % at 1 s to 93.0 % at 10 y;
/// the floating-point accuracy is 95.3 %; at 10 y the mean drop is 2.3 ± 0.1 points (95 % CI of
/// the mean; 90 % of the 200 trials lie between 91.4 % and 94.5 %)." A direction (falls, rises)
/// only where the paired change between the first and last time is resolved.
pub(super) fn summary_sentence(results: &Results, fmt: &Fmt, series: &Series<'_>) -> String {
    let mut out =
        if series.name.is_empty() { format!("The median {}", results.metric) } else { format!("With {}, the median {}", series.name, results.metric) };
    let (Some(first), Some(last)) = (series.points.first(), series.points.last()) else {
        return out + " has no points.";
    };
    let (a, b) = (fmt.prose(first.summary.median), fmt.prose(last.summary.median));
    if series.points.len() == 1 {
        let _ = write!(out, " is {a} at {}", first.time_label);
    } else if a == b {
        let _ = write!(out, " stays at {a} from {} to {}", first.time_label, last.time_label);
    } else if time_change_resolved(first, last, results.confidence) {
        let verb = if last.summary.median > first.summary.median { "rises" } else { "falls" };
        let _ = write!(out, " {verb} from {a} at {} to {b} at {}", first.time_label, last.time_label);
    } else {
        let _ = write!(
            out,
            " is {a} at {} and {b} at {}, a change the trials do not resolve (the paired interval of the mean's change includes 0)",
            first.time_label, last.time_label
        );
    }
    if let Some(fp) = results.fp_baseline {
        let what = if fmt.classifier { "accuracy".to_string() } else { results.metric.clone() };
        let _ = write!(out, "; the floating-point {what} is {}", fmt.prose(fp));
    }
    if let Some(drop) = &last.drop {
        let hw = drop.ci.half_width() * fmt.scale;
        let decimals = decimals_for(hw);
        // The drop is floating point − mean; for a metric where lower is better the analog side
        // loses by the increase, mean − floating point.
        let (what, v) = if results.higher_is_better { ("drop", drop.mean) } else { ("increase over floating point", -drop.mean) };
        let n = last.per_trial.len();
        let spread = if hw == 0.0 && n >= 2 {
            format!("; all {n} trials gave the same value, so the interval shows no more than that")
        } else {
            format!(" of the mean; 90 % of the {n} trials lie between {} and {}", fmt.prose(last.summary.p05), fmt.prose(last.summary.p95))
        };
        let _ = write!(
            out,
            "; at {} the mean {what} is {} ± {}{} ({} CI{spread})",
            last.time_label,
            fixed(v * fmt.scale, decimals),
            fixed(hw, decimals),
            fmt.difference_unit(),
            percent_label(drop.ci.confidence)
        );
    }
    if let (Some(a), Some(b)) = (&first.companion, &last.companion) {
        let _ = write!(out, "; {} (the same trials) has mean {}", a.metric, significant(a.mean, 3));
        if series.points.len() > 1 {
            let _ = write!(out, " at {} and {} at {}", first.time_label, significant(b.mean, 3), last.time_label);
        }
        if let Some(fp) = b.fp {
            let _ = write!(out, ", {} in floating point", significant(fp, 3));
        }
    }
    out + "."
}

/// Whether the mean changed between the first and the last time by a paired interval that
/// excludes 0 (the same trials at every time: their programmed state drifts); with fewer than
/// two paired units, whether the medians differ at all.
fn time_change_resolved(first: &Point, last: &Point, confidence: f64) -> bool {
    let Some(u) = crate::run::paired::paired_units(&[first, last]).filter(|u| u[0].len() >= 2) else {
        return first.summary.median != last.summary.median;
    };
    let d: crate::stats::Moments = u[1].iter().zip(&u[0]).map(|(l, f)| l - f).collect();
    crate::stats::mean_t(&d, confidence).is_ok_and(|ci| !ci.contains(0.0))
}
