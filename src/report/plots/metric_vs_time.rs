//! The metric against the time since programming: median and 5–95 % band per series, the floating-point baseline.

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::canvas::DrawResult;
use super::canvas::*;
use super::figure::Figure;
use crate::report::format::*;
use crate::report::series::*;
use crate::results::*;

pub(crate) fn metric_legend(results: &Results, series: &[Series<'_>]) -> Vec<LegendItem> {
    let mut items: Vec<LegendItem> =
        series.iter().enumerate().map(|(i, s)| LegendItem { swatch: Swatch::band(i), label: format!("{}: median, 5–95 %", s.label()) }).collect();
    if results.fp_baseline.is_some() {
        items.push(LegendItem { swatch: Swatch::Dashed(BASELINE_COLOR), label: "floating point".to_string() });
    }
    items
}

pub(crate) fn draw_metric_vs_time<DB: DrawingBackend>(chart_area: &DrawingArea<DB, Shift>, results: &Results, series: &[Series<'_>]) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let scale = metric_scale(results);

    let all: Vec<&Point> = series.iter().flat_map(|s| s.points.iter().copied()).collect();
    let axis = TimeAxis::new(&all, plot_width(chart_area.dim_in_pixel().0));
    let y_range = padded(all.iter().flat_map(|p| [p.summary.p05, p.summary.p95, p.summary.median]).chain(results.fp_baseline).map(|v| v * scale));
    let chart = build_chart(chart_area, None, (axis.lo, axis.hi), &axis.ticks, axis.description(), y_range, &metric_axis_label(results))?;
    let plot = chart.plotting_area();
    if all.is_empty() {
        draw_no_data(plot)?;
    }

    // One time for every series: the series side by side around it (dodged), so their bars do
    // not hide each other; the legend names them in the same order.
    let one_time = all.iter().all(|p| p.t_inf == all[0].t_inf);
    let dodge = if one_time && series.len() > 1 { 0.6 * (axis.hi - axis.lo) / series.len() as f64 } else { 0.0 };
    for (i, s) in series.iter().enumerate() {
        let (color, marker) = series_style(i);
        let shift = dodge * (i as f64 - (series.len() - 1) as f64 / 2.0);
        let at = |p: &Point, v: f64| (axis.x(p.t_inf) + shift, v * scale);
        let points: Vec<&Point> = s.points.iter().copied().filter(|p| p.t_inf.is_finite()).collect();
        if points.len() >= 2 {
            let band: Vec<(f64, f64)> = points.iter().map(|p| at(p, p.summary.p95)).chain(points.iter().rev().map(|p| at(p, p.summary.p05))).collect();
            plot.draw(&Polygon::new(band, color.mix(BAND_ALPHA).filled()))?;
        } else if let Some(p) = points.first() {
            // A band needs two times; a single time shows its 5–95 % range as a bar.
            let half = if dodge > 0.0 { 0.3 * dodge } else { 0.02 * (axis.hi - axis.lo) };
            let (x, lo) = at(p, p.summary.p05);
            let hi = p.summary.p95 * scale;
            plot.draw(&Rectangle::new([(x - half, lo), (x + half, hi)], color.mix(BAND_ALPHA).filled()))?;
        }
        let medians: Vec<(f64, f64)> = points.iter().map(|p| at(p, p.summary.median)).collect();
        plot.draw(&PathElement::new(medians.clone(), color.stroke_width(LINE_PX)))?;
        for m in medians {
            draw_marker(plot, m, marker, color)?;
        }
    }
    if let Some(fp) = results.fp_baseline {
        let y = fp * scale;
        plot.draw(&DashedPathElement::new(vec![(axis.lo, y), (axis.hi, y)], 14, 9, BASELINE_COLOR.stroke_width(3)))?;
    }
    Ok(())
}

/// The metric against the time since programming (every run has it).
pub(crate) struct MetricVsTime;

impl Figure for MetricVsTime {
    fn stem(&self, results: &Results) -> &'static str {
        if is_classifier(results) {
            "accuracy_vs_time"
        } else {
            "metric_vs_time"
        }
    }
    fn applies(&self, _: &Results) -> bool {
        true
    }
    fn title(&self, results: &Results) -> String {
        format!("{} vs time after programming (median, 5–95 % of trials)", capitalised(&results.metric))
    }
    fn legend_items(&self, results: &Results, series: &[Series<'_>]) -> Vec<LegendItem> {
        metric_legend(results, series)
    }
    fn note(&self, _: &Results, series_note: Option<&str>) -> Option<String> {
        series_note.map(str::to_string)
    }
    fn draw<DB: DrawingBackend>(&self, body: &DrawingArea<DB, Shift>, results: &Results, series: &[Series<'_>]) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        draw_metric_vs_time(body, results, series)
    }
}
