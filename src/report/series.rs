//! Views of a results file shared by the sections and the plots: points grouped into series (one
//! per label of the non-time axes, in sweep order), and the numeric sweep axis a figure can plot
//! against (the feature count, the tier noise slope) with its lines.

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
    for point in &results.points {
        match out.iter_mut().find(|s| s.name == point.series) {
            Some(series) => series.points.push(point),
            None => out.push(Series { name: &point.series, points: vec![point] }),
        }
    }
    for series in &mut out {
        series.points.sort_by(|a, b| a.t_inf.total_cmp(&b.t_inf));
    }
    out
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
pub struct FeatureLine<'a> {
    pub label: String,
    /// (features, point), in feature order.
    pub points: Vec<(f64, &'a Point)>,
}

/// Groups the points by everything but the feature count (series without `features`, and time).
pub fn feature_lines(results: &Results) -> Vec<FeatureLine<'_>> {
    let name = x_axis(results).map_or("features", |a| a.name);
    let mut out: Vec<FeatureLine<'_>> = Vec::new();
    for p in &results.points {
        let Some(f) = p.labels.get(name).and_then(|l| l.parse::<f64>().ok()) else { continue };
        let rest: Vec<String> = p.labels.iter().filter(|(k, _)| *k != name).map(|(k, v)| format!("{k}={v}")).collect();
        let mut label = rest.join(", ");
        if results.times.len() > 1 {
            label = if label.is_empty() { p.time_label.clone() } else { format!("{label}, {}", p.time_label) };
        }
        match out.iter_mut().find(|l| l.label == label) {
            Some(l) => l.points.push((f, p)),
            None => out.push(FeatureLine { label, points: vec![(f, p)] }),
        }
    }
    for l in &mut out {
        l.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}
