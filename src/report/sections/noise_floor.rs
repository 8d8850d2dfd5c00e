//! The noise floor of a feature-count sweep: where the analog metric levels off while floating point keeps improving.
//!
//! Up to `MAX_PLOT_SERIES` lines (every combination of the other axes and time) each get a
//! sentence and a verdict. Past that (a sweep over a hundred projection seeds), one verdict is
//! given for the median line (per feature count, the median over lines of the analog median and
//! of floating point) with the count of lines that level off on their own: single projections
//! scatter, so per-line verdicts disagree and a hundred of them read as contradictions.

use crate::report::format::*;
use crate::report::series::{feature_lines, FeatureLine, MAX_PLOT_SERIES};
use crate::results::*;
use crate::stats::quantile::quantile_sorted;

/// The intro and the sentences of the section (empty without a feature-count axis).
pub(super) fn noise_floor_sentences(results: &Results) -> (String, Vec<String>) {
    let intro = "Floating point keeps improving with the feature count s (an approximation error falls roughly as 1/√s); with crossbar noise the analog metric improves at first and then levels off at a floor the noise sets.";
    if crate::report::plots::features_axis(results).is_none() {
        return (String::new(), vec![]);
    }
    let pct = crate::report::plots::is_classifier(results);
    let f = |v: f64| if pct { format!("{} %", fixed(100.0 * v, 2)) } else { significant(v, 3) };
    let rel = |a: f64, b: f64| if a != 0.0 { format!("{:+.0} %", 100.0 * (b - a) / a.abs()) } else { "–".to_string() };
    // Levelling off: the analog metric changed by less than half of what floating point did.
    let levelled = |da: f64, dfp: Option<f64>| matches!(dfp, Some(d) if d != 0.0 && da.abs() < 0.5 * d.abs());
    let lines = feature_lines(results);
    let lines: Vec<_> = lines.iter().filter(|l| l.points.len() >= 2).collect();
    if lines.len() > MAX_PLOT_SERIES {
        // The two largest feature counts of the sweep, and every line's points there.
        let Some(feats) = crate::report::plots::features_axis(results) else { return (String::new(), vec![]) };
        let (fa, fb) = (feats[feats.len() - 2], feats[feats.len() - 1]);
        fn at<'a>(l: &FeatureLine<'a>, s: f64) -> Option<&'a Point> {
            l.points.iter().find(|(x, _)| *x == s).map(|(_, p)| *p)
        }
        let pairs: Vec<(&Point, &Point)> = lines.iter().filter_map(|l| Some((at(l, fa)?, at(l, fb)?))).collect();
        if pairs.is_empty() {
            return (String::new(), vec![]);
        }
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            (!v.is_empty()).then(|| quantile_sorted(&v, 0.5))
        };
        let (a, b) = (median(pairs.iter().map(|(p, _)| p.summary.median).collect()), median(pairs.iter().map(|(_, q)| q.summary.median).collect()));
        let (a, b) = (a.unwrap_or(f64::NAN), b.unwrap_or(f64::NAN));
        let with_fp: Vec<(f64, f64)> = pairs.iter().filter_map(|(p, q)| Some((p.fp?, q.fp?))).collect();
        let (fpa, fpb) = if with_fp.len() == pairs.len() {
            (median(with_fp.iter().map(|x| x.0).collect()), median(with_fp.iter().map(|x| x.1).collect()))
        } else {
            (None, None)
        };
        let fp = match (fpa, fpb) {
            (Some(x), Some(y)) => format!("; floating point {} → {} ({})", f(x), f(y), rel(x, y)),
            _ => String::new(),
        };
        let verdict = match fpa.zip(fpb) {
            Some((x, y)) if levelled(b - a, Some(y - x)) => format!("The median line has levelled off: the noise floor sits near {}", f(b)),
            Some(_) => format!("The median line still improves with floating point: no floor is reached by s = {fb}"),
            None => format!("At s = {fb} the median line is at {}", f(b)),
        };
        let own = pairs.iter().filter(|(p, q)| levelled(q.summary.median - p.summary.median, q.fp.zip(p.fp).map(|(y, x)| y - x))).count();
        let intro = format!(
            "{intro} The sweep has {} lines (every combination of the other axes and time); single lines scatter with their own random draws, so the verdict is for the median line: per s, the median over lines of the analog median and of floating point, at the two largest s.",
            lines.len()
        );
        let sentence = format!(
            "Median over {} lines: the analog median goes {} → {} ({}) from s = {fa} to s = {fb}{fp}. {verdict}. {own} of the {} lines level off on their own by the same rule (the analog change less than half the floating-point change); every line's points are in results.json.",
            pairs.len(),
            f(a),
            f(b),
            rel(a, b),
            pairs.len()
        );
        return (intro, vec![sentence]);
    }
    let sentences = lines
        .iter()
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
            let (da, dfp) = (b.summary.median - a.summary.median, b.fp.zip(a.fp).map(|(y, x)| y - x));
            let verdict = match dfp {
                Some(_) if levelled(da, dfp) => format!("It has levelled off: the noise floor sits near {}{gap}", f(b.summary.median)),
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
        .collect();
    (format!("{intro} Per line, at the two largest s:"), sentences)
}
