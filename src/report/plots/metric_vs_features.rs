//! The metric against the feature count s (kernel workloads) or the tier noise slope (MoE), with each line's floating-point metric dashed.

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
    let values = lines.iter().flat_map(|l| l.points.iter().flat_map(|(_, p)| [p.summary.p05, p.summary.p95, p.summary.median].into_iter().chain(p.fp)));
    let y_range = padded(values.map(|v| v * scale));
    let desc = if log { "random features s (log scale)" } else { "tier noise slope (top tier's noise × (1 + slope))" };
    let chart = build_chart(chart_area, None, (lo, hi), &ticks, desc, y_range, &metric_axis_label(results))?;
    let plot = chart.plotting_area();
    for (i, l) in lines.iter().enumerate() {
        let color = palette(i);
        let at = |f: f64, v: f64| (x(f), v * scale);
        if l.points.len() >= 2 {
            let band: Vec<(f64, f64)> =
                l.points.iter().map(|(f, p)| at(*f, p.summary.p95)).chain(l.points.iter().rev().map(|(f, p)| at(*f, p.summary.p05))).collect();
            plot.draw(&Polygon::new(band, color.mix(BAND_ALPHA).filled()))?;
        }
        let medians: Vec<(f64, f64)> = l.points.iter().map(|(f, p)| at(*f, p.summary.median)).collect();
        plot.draw(&PathElement::new(medians.clone(), color.stroke_width(LINE_PX)))?;
        for m in medians {
            draw_marker(plot, m, Marker::Circle, color)?;
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
            .map(|(i, l)| LegendItem { swatch: Swatch::Band(palette(i)), label: if l.label.is_empty() { "analog".into() } else { l.label.clone() } })
            .collect();
        if results.points.iter().any(|p| p.fp.is_some()) {
            items.push(LegendItem {
                swatch: Swatch::Dashed(BASELINE_COLOR),
                label: if results.workload == "moe" {
                    "floating point (in each line's colour)".to_string()
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
