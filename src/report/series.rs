//! Views of a results file shared by the sections and the plots: points grouped into series (one
//! per label of the non-time axes, in sweep order), and the numeric sweep axis a figure can plot
//! against (the feature count, the tier noise slope) with its lines.

use std::collections::HashMap;

use crate::results::{Point, Results};

/// The points of one series (one value of the non-time sweep axes), in time order.
#[derive(Clone, Debug)]
pub struct Series<'a> {
    pub name: &'a str,
    pub points: Vec<&'a Point>,
}

impl Series<'_> {
    /// The series name for legends and prose; a sweep with no axes besides time has one
    /// unnamed series.
    pub fn label(&self) -> &str {
        if self.name.is_empty() {
            "all points"
        } else {
            self.name
        }
    }
}

/// Groups the points by series, in order of first appearance in the results (the sweep order),
/// each series sorted by time.
pub fn series_of(results: &Results) -> Vec<Series<'_>> {
    let mut out: Vec<Series<'_>> = Vec::new();
    // Series by name, so grouping is linear in the points (a 4,000-series sweep has 4,000 names).
    let mut at: HashMap<&str, usize> = HashMap::new();
    for point in &results.points {
        let i = *at.entry(point.series.as_str()).or_insert_with(|| {
            out.push(Series { name: &point.series, points: vec![] });
            out.len() - 1
        });
        out[i].points.push(point);
    }
    for series in &mut out {
        series.points.sort_by(|a, b| a.t_inf.total_cmp(&b.t_inf));
    }
    out
}

/// Most series (or lines) a plot draws one by one. Past it a plot draws [`MAX_PLOT_SERIES`] of
/// them, evenly spaced in sweep order, and says so in its legend and caption: a 4,000-series
/// sweep drawn in full is a 200 MB picture with a legend no one reads. Every point stays in
/// results.json and trials.csv.
pub const MAX_PLOT_SERIES: usize = 12;

/// Indices of at most `cap` (≥ 2) of `n` items, evenly spaced in order, the first and the last
/// included; all of them when `n <= cap`.
pub fn evenly_spaced(n: usize, cap: usize) -> Vec<usize> {
    if n <= cap {
        return (0..n).collect();
    }
    let cap = cap.max(2);
    (0..cap).map(|k| k * (n - 1) / (cap - 1)).collect()
}

/// At most [`MAX_PLOT_SERIES`] of `items`, evenly spaced, and the note a plot shows when some
/// were left out (`what`: "series", "lines").
pub fn shown<T: Clone>(items: &[T], what: &str) -> (Vec<T>, Option<String>) {
    let keep = evenly_spaced(items.len(), MAX_PLOT_SERIES);
    let note = (keep.len() < items.len())
        .then(|| format!("{} of {} {what} shown, evenly spaced in sweep order; every point is in results.json and trials.csv", keep.len(), items.len()));
    (keep.into_iter().map(|i| items[i].clone()).collect(), note)
}

/// The sweep axis of the random-feature count (`features`), when it has several values: the
/// kernel workloads then get a plot of the metric against it.
pub fn features_axis(results: &Results) -> Option<Vec<f64>> {
    x_axis(results).filter(|a| a.name == "features").map(|a| a.values)
}

/// A numeric sweep axis the metric is plotted against: the feature count (kernel workloads, log
/// scale) or the tier noise slope (MoE, linear), when it has several values.
pub struct XAxis {
    pub name: &'static str,
    pub values: Vec<f64>,
    pub log: bool,
}

pub fn x_axis(results: &Results) -> Option<XAxis> {
    for (name, log) in [("features", true), ("tier_noise_slope", false)] {
        let Some(axis) = results.axes.iter().find(|a| a.name == name) else { continue };
        let mut v: Vec<f64> = axis.values.iter().filter_map(|l| l.parse::<f64>().ok()).filter(|v| v.is_finite() && (!log || *v > 0.0)).collect();
        v.sort_by(f64::total_cmp);
        v.dedup();
        if v.len() >= 2 {
            return Some(XAxis { name, values: v, log });
        }
    }
    None
}

/// The metric against the feature count: one line (median, 5–95 % band) per combination of the
/// other axes and time, and each combination's floating-point metric dashed in its colour.
#[derive(Clone)]
pub struct FeatureLine<'a> {
    pub label: String,
    /// (features, point), in feature order.
    pub points: Vec<(f64, &'a Point)>,
}

/// Groups the points by everything but the feature count (series without `features`, and time).
pub fn feature_lines(results: &Results) -> Vec<FeatureLine<'_>> {
    let name = x_axis(results).map_or("features", |a| a.name);
    let mut out: Vec<FeatureLine<'_>> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for p in &results.points {
        let Some(f) = p.labels.get(name).and_then(|l| l.parse::<f64>().ok()) else { continue };
        let rest: Vec<String> = p.labels.iter().filter(|(k, _)| *k != name).map(|(k, v)| format!("{k}={v}")).collect();
        let mut label = rest.join(", ");
        if results.times.len() > 1 {
            label = if label.is_empty() { p.time_label.clone() } else { format!("{label}, {}", p.time_label) };
        }
        match at.get(&label) {
            Some(&i) => out[i].points.push((f, p)),
            None => {
                at.insert(label.clone(), out.len());
                out.push(FeatureLine { label, points: vec![(f, p)] });
            }
        }
    }
    for l in &mut out {
        l.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}
