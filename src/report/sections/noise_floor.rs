//! The noise floor of a feature-count sweep: where the analog metric levels off while floating point keeps improving.

use crate::report::format::*;
use crate::results::*;

/// Where the analog metric levels off: per line of the feature plot (every combination of the
/// other axes and time), the analog median and the floating-point value at the two largest
/// feature counts, and how much each changed between them.
pub(super) fn noise_floor_sentences(results: &Results) -> Vec<String> {
    if crate::report::plots::features_axis(results).is_none() {
        return vec![];
    }
    let pct = crate::report::plots::is_classifier(results);
    let f = |v: f64| if pct { format!("{} %", fixed(100.0 * v, 2)) } else { significant(v, 3) };
    let rel = |a: f64, b: f64| if a != 0.0 { format!("{:+.0} %", 100.0 * (b - a) / a.abs()) } else { "–".to_string() };
    crate::report::plots::feature_lines(results)
        .iter()
        .filter(|l| l.points.len() >= 2)
        .map(|l| {
            let (fa, a) = l.points[l.points.len() - 2];
            let (fb, b) = l.points[l.points.len() - 1];
            let name = if l.label.is_empty() { "analog".to_string() } else { l.label.clone() };
            let fp = match (a.fp, b.fp) {
                (Some(x), Some(y)) => format!("; floating point {} → {} ({})", f(x), f(y), rel(x, y)),
                _ => String::new(),
            };
            let gap = match b.fp {
                Some(y) if y != 0.0 => format!(", {:.1}× floating point at s = {fb}", b.summary.median / y),
                _ => String::new(),
            };
            // Levelling off: the analog metric changed by less than half of what floating point did.
            let (da, dfp) = (b.summary.median - a.summary.median, b.fp.zip(a.fp).map(|(y, x)| y - x));
            let verdict = match dfp {
                Some(d) if d != 0.0 && da.abs() < 0.5 * d.abs() => format!("It has levelled off: the noise floor sits near {}{gap}", f(b.summary.median)),
                Some(_) => format!("It still improves with floating point: no floor is reached by s = {fb}{gap}"),
                None => format!("At s = {fb} it is {}", f(b.summary.median)),
            };
            format!(
                "{name}: the analog median goes {} → {} ({}) from s = {fa} to s = {fb}{fp}. {verdict}.",
                f(a.summary.median),
                f(b.summary.median),
                rel(a.summary.median, b.summary.median),
            )
        })
        .collect()
}
