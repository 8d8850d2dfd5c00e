//! The metric against the feature count s (kernel workloads) or the tier noise slope (MoE), with each line's floating-point metric dashed.
//! Points averaged over random projections (`kernel.projection_seeds`) are drawn as papers draw
//! seed-averaged curves: the mean with its interval over projections, for the analog metric and
//! for floating point alike.

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::canvas::DrawResult;
use super::canvas::*;
use super::figure::Figure;
use crate::report::format::*;
use crate::report::series::*;
use crate::results::*;

pub(crate) fn draw_metric_vs_features<DB: DrawingBackend>(chart_area: &DrawingArea<DB, Shift>, results: &Results) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let scale = metric_scale(results);
    let axis = x_axis(results);
    let log = axis.as_ref().is_some_and(|a| a.log);
    let feats = axis.map(|a| a.values).unwrap_or_default();
    // Past MAX_PLOT_SERIES lines an evenly spaced selection, as the legend says.
    let (lines, _) = shown(&feature_lines(results), "lines");
    let x = |f: f64| if log { f.log2() } else { f };
    let (lo, hi) = match (feats.first(), feats.last()) {
        (Some(&a), Some(&b)) => {
            let pad = 0.06 * (x(b) - x(a)).max(1e-9);
            (x(a) - pad, x(b) + pad)
        }
        _ => (0.0, 1.0),
    };
    let ticks = thin_ticks(feats.iter().map(|&f| (x(f), format!("{f}"))).collect(), lo, hi, plot_width(chart_area.dim_in_pixel().0));
    let avg = averaged(results);
    let values = lines.iter().flat_map(|l| {
        l.points.iter().flat_map(move |(_, p)| match (&p.projection_average, avg) {
            (Some(a), true) => vec![p.mean_ci.lo, p.mean_ci.hi, a.fp_ci.lo, a.fp_ci.hi],
            _ => [p.summary.p05, p.summary.p95, p.summary.median].into_iter().chain(p.fp).collect(),
        })
    });
    let y_range = padded(values.map(|v| v * scale));
    let desc = if log { "random features s (log scale)" } else { "tier noise slope (top tier's noise × (1 + slope))" };
    let chart = build_chart(chart_area, None, (lo, hi), &ticks, desc, y_range, &metric_axis_label(results))?;
    let plot = chart.plotting_area();
    for (i, l) in lines.iter().enumerate() {
        let (color, marker) = series_style(i);
        let at = |f: f64, v: f64| (x(f), v * scale);
        // Seed-averaged: the mean and its interval over projections; otherwise the median and
        // the 5–95 % range of trials.
        let (lo_of, hi_of, mid_of): (Stat, Stat, Stat) =
            if avg { (|p| p.mean_ci.lo, |p| p.mean_ci.hi, |p| p.summary.mean) } else { (|p| p.summary.p05, |p| p.summary.p95, |p| p.summary.median) };
        if l.points.len() >= 2 {
            let band: Vec<(f64, f64)> = l.points.iter().map(|(f, p)| at(*f, hi_of(p))).chain(l.points.iter().rev().map(|(f, p)| at(*f, lo_of(p)))).collect();
            plot.draw(&Polygon::new(band, color.mix(BAND_ALPHA).filled()))?;
            if avg {
                // Floating point's own interval over the same projections, fainter.
                let fp_band: Vec<(f64, f64)> = l
                    .points
                    .iter()
                    .filter_map(|(f, p)| p.projection_average.as_ref().map(|a| at(*f, a.fp_ci.hi)))
                    .chain(l.points.iter().rev().filter_map(|(f, p)| p.projection_average.as_ref().map(|a| at(*f, a.fp_ci.lo))))
                    .collect();
                if fp_band.len() >= 4 {
                    plot.draw(&Polygon::new(fp_band, color.mix(BAND_ALPHA / 2.0).filled()))?;
                }
            }
        }
        let medians: Vec<(f64, f64)> = l.points.iter().map(|(f, p)| at(*f, mid_of(p))).collect();
        plot.draw(&PathElement::new(medians.clone(), color.stroke_width(LINE_PX)))?;
        for m in medians {
            draw_marker(plot, m, marker, color)?;
        }
        let fp: Vec<(f64, f64)> = l.points.iter().filter_map(|(f, p)| p.fp.map(|v| at(*f, v))).collect();
        if fp.len() >= 2 {
            plot.draw(&DashedPathElement::new(fp, 14, 9, color.stroke_width(3)))?;
        }
    }
    Ok(())
}

/// The metric against the feature count (or the tier noise slope), when the sweep has that axis.
pub(crate) struct MetricVsFeatures;

impl Figure for MetricVsFeatures {
    fn stem(&self, results: &Results) -> &'static str {
        if features_axis(results).is_none() {
            "metric_vs_tier_noise"
        } else {
            "metric_vs_features"
        }
    }
    fn applies(&self, results: &Results) -> bool {
        x_axis(results).is_some()
    }
    fn title(&self, results: &Results) -> String {
        if let Some(a) = results.points.iter().find_map(|p| p.projection_average.as_ref()).filter(|_| averaged(results)) {
            return format!("Averaged over {} projections: mean, {} interval (dashed: floating point)", a.seeds, percent_label(a.fp_ci.confidence));
        }
        if features_axis(results).is_some() {
            "Against the feature count s (median, 5–95 % of trials; dashed: floating point)".to_string()
        } else {
            "Against the tier noise slope (median, 5–95 % of trials)".to_string()
        }
    }
    fn legend_items(&self, results: &Results, _: &[Series<'_>]) -> Vec<LegendItem> {
        let mut items: Vec<LegendItem> = shown(&feature_lines(results), "lines")
            .0
            .iter()
            .enumerate()
            .map(|(i, l)| LegendItem { swatch: Swatch::band(i), label: if l.label.is_empty() { "analog".into() } else { l.label.clone() } })
            .collect();
        if results.points.iter().any(|p| p.fp.is_some()) {
            items.push(LegendItem {
                swatch: Swatch::Dashed(BASELINE_COLOR),
                label: if results.workload == "moe" {
                    "floating point (in each line's colour)".to_string()
                } else if averaged(results) {
                    "floating point, mean over the same projections (in each line's colour)".to_string()
                } else {
                    "floating point, same projection (in each line's colour)".to_string()
                },
            });
        }
        items
    }
    fn note(&self, results: &Results, _: Option<&str>) -> Option<String> {
        shown(&feature_lines(results), "lines").1
    }
    fn draw<DB: DrawingBackend>(&self, body: &DrawingArea<DB, Shift>, results: &Results, _: &[Series<'_>]) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        draw_metric_vs_features(body, results)
    }
}

/// Whether every point is averaged over random projections (then the plot draws means and
/// intervals over projections).
fn averaged(results: &Results) -> bool {
    !results.points.is_empty() && results.points.iter().all(|p| p.projection_average.is_some())
}

/// One statistic of a point (the band's edges and the line).
type Stat = fn(&Point) -> f64;
