//! The summary: one sentence per series (median over time, floating point, the drop).

use std::fmt::Write as _;

use crate::report::format::*;
use crate::report::series::*;
use crate::results::*;

/// e.g. "With gdc=readout, the median test accuracy falls from 95.2 % at 1 s to 93.0 % at 10 y;
/// the floating-point accuracy is 95.3 %; at 10 y the mean drop is 2.3 ± 0.1 points (95 % CI)."
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
    } else {
        let verb = if last.summary.median > first.summary.median { "rises" } else { "falls" };
        let _ = write!(out, " {verb} from {a} at {} to {b} at {}", first.time_label, last.time_label);
    }
    if let Some(fp) = results.fp_baseline {
        let what = if fmt.classifier { "accuracy".to_string() } else { results.metric.clone() };
        let _ = write!(out, "; the floating-point {what} is {}", fmt.prose(fp));
    }
    if let Some(drop) = &last.drop {
        let hw = drop.ci.half_width() * fmt.scale;
        let decimals = decimals_for(hw);
        let _ = write!(
            out,
            "; at {} the mean drop is {} ± {}{} ({} CI)",
            last.time_label,
            fixed(drop.mean * fmt.scale, decimals),
            fixed(hw, decimals),
            fmt.difference_unit(),
            percent_label(drop.ci.confidence)
        );
    }
    out + "."
}
