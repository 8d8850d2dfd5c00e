//! The per-trial distribution at each time: one panel per series, a dot per trial, the 5–95 % box,
//! the floating-point metric.

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::canvas::DrawResult;
use super::canvas::*;
use super::figure::Figure;
use crate::report::format::*;
use crate::report::series::*;
use crate::results::*;

/// Per-time strip plots show at most this many trials, so large runs keep small SVG files.
pub(crate) const MAX_DOTS: usize = 400;

/// Panel grid (rows, columns) for `n` series: stacked up to three, then two columns.
pub(crate) fn distribution_grid(n: usize) -> (usize, usize) {
    match n {
        0 | 1 => (1, 1),
        2 | 3 => (n, 1),
        _ => (n.div_ceil(2), 2),
    }
}

/// Every `stride`-th trial, so at most [`MAX_DOTS`] are drawn per time.
pub(crate) fn dot_stride(trials: usize) -> usize {
    trials.div_ceil(MAX_DOTS).max(1)
}

/// The stride between drawn trials, the same for every point so dot density compares.
pub(crate) fn distribution_stride(results: &Results) -> usize {
    results.points.iter().map(|p| dot_stride(p.per_trial.len())).max().unwrap_or(1)
}

pub(crate) fn distribution_legend(results: &Results) -> Vec<LegendItem> {
    let stride = distribution_stride(results);
    let dots_label = if stride > 1 { format!("trials (1 in {stride} shown)") } else { "trials".to_string() };
    vec![
        LegendItem { swatch: Swatch::Dots(palette(0)), label: dots_label },
        LegendItem { swatch: Swatch::Box(palette(0)), label: "5–95 %".to_string() },
        LegendItem { swatch: Swatch::Whisker, label: "1–99 %".to_string() },
        LegendItem { swatch: Swatch::MedianBar, label: "median".to_string() },
        LegendItem { swatch: Swatch::MeanMarker, label: "mean".to_string() },
    ]
    .into_iter()
    .chain(results.fp_baseline.map(|_| LegendItem { swatch: Swatch::Dashed(BASELINE_COLOR), label: "floating point".to_string() }))
    .collect()
}

pub(crate) fn draw_distribution<DB: DrawingBackend>(panels_area: &DrawingArea<DB, Shift>, results: &Results, series: &[Series<'_>]) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let scale = metric_scale(results);
    let stride = distribution_stride(results);

    // One y range for all panels so that series compare by eye.
    let y_range = padded(
        results
            .points
            .iter()
            .flat_map(|p| [p.summary.min, p.summary.max, p.summary.p01, p.summary.p99].into_iter().chain(p.per_trial.iter().copied()).map(|v| v * scale))
            .chain(results.fp_baseline.map(|v| v * scale)),
    );
    let (rows, cols) = distribution_grid(series.len());
    let panels = panels_area.split_evenly((rows, cols));
    let y_desc = metric_axis_label(results);

    for (i, (s, panel)) in series.iter().zip(&panels).enumerate() {
        // The shared x description is written once, under the bottom row.
        let x_desc = if i / cols + 1 == rows { "time after programming" } else { "" };
        draw_distribution_panel(panel, s, scale, stride, palette(i), y_range, (x_desc, &y_desc), results.fp_baseline)?;
    }
    if series.is_empty() {
        if let Some(panel) = panels.first() {
            let chart = build_chart(panel, None, (-0.6, 0.6), &[], "time after programming", y_range, &y_desc)?;
            draw_no_data(chart.plotting_area())?;
        }
    }
    Ok(())
}

/// One panel: at each time (evenly spaced, labelled) a 5–95 % box with median bar, 1–99 %
/// whiskers and the mean, and beside it the trials as a strip of dots; the floating-point
/// metric, where the run has one, as a dashed line.
#[allow(clippy::too_many_arguments)]
pub(crate) fn draw_distribution_panel<DB: DrawingBackend>(
    panel: &DrawingArea<DB, Shift>,
    series: &Series<'_>,
    scale: f64,
    stride: usize,
    color: RGBColor,
    y_range: (f64, f64),
    (x_desc, y_desc): (&str, &str),
    fp: Option<f64>,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let n = series.points.len();
    let candidates: Vec<(f64, String)> = series.points.iter().enumerate().map(|(k, p)| (k as f64, p.time_label.clone())).collect();
    let x_range = (-0.6, n.max(1) as f64 - 0.4);
    let ticks = thin_ticks(candidates, x_range.0, x_range.1, plot_width(panel.dim_in_pixel().0));
    let mut chart = build_chart(panel, Some((series.label(), AXIS_PX)), x_range, &ticks, x_desc, y_range, y_desc)?;
    let dark = BASELINE_COLOR;
    if let Some(fp) = fp {
        let y = fp * scale;
        chart.plotting_area().draw(&DashedPathElement::new(vec![(x_range.0, y), (x_range.1, y)], 14, 9, BASELINE_COLOR.stroke_width(3)))?;
    }

    for (k, p) in series.points.iter().enumerate() {
        let x = k as f64;
        let plot = chart.plotting_area();
        let s = &p.summary;
        let v = |value: f64| value * scale;
        // Box left of the tick, dots right of it, so neither hides the other.
        let (bx0, bx1, bc) = (x - 0.34, x - 0.04, x - 0.19);
        plot.draw(&Rectangle::new([(bx0, v(s.p05)), (bx1, v(s.p95))], color.mix(0.3).filled()))?;
        plot.draw(&Rectangle::new([(bx0, v(s.p05)), (bx1, v(s.p95))], color.stroke_width(3)))?;
        let whisker = dark.stroke_width(3);
        plot.draw(&PathElement::new(vec![(bc, v(s.p01)), (bc, v(s.p05))], whisker))?;
        plot.draw(&PathElement::new(vec![(bc, v(s.p95)), (bc, v(s.p99))], whisker))?;
        for cap in [s.p01, s.p99] {
            plot.draw(&PathElement::new(vec![(bc - 0.06, v(cap)), (bc + 0.06, v(cap))], whisker))?;
        }
        plot.draw(&PathElement::new(vec![(bx0, v(s.median)), (bx1, v(s.median))], dark.stroke_width(6)))?;
        draw_mean_marker(plot, (bc, v(s.mean)))?;

        // Golden-ratio offsets spread the dots evenly and identically on every render.
        let dots = p.per_trial.iter().step_by(stride).enumerate().filter(|(_, t)| t.is_finite());
        chart.draw_series(dots.map(|(j, &t)| {
            let offset = (j as f64 * 0.618_033_988_75).fract();
            Circle::new((x + 0.06 + 0.3 * offset, v(t)), 5, color.mix(0.45).filled())
        }))?;
    }
    Ok(())
}

/// The per-trial distribution at each time (every run has it).
pub(crate) struct Distribution;

impl Figure for Distribution {
    fn stem(&self, _: &Results) -> &'static str {
        "distribution"
    }
    fn applies(&self, _: &Results) -> bool {
        true
    }
    fn title(&self, results: &Results) -> String {
        format!("{} per trial at each time", capitalised(&results.metric))
    }
    /// One panel per row of series, taller to keep panels legible; the legend adds its own rows
    /// below, so a long legend never squeezes the chart.
    fn chart_height(&self, _: &Results, series: &[Series<'_>], base: u32) -> u32 {
        base.max(180 + 520 * distribution_grid(series.len()).0 as u32)
    }
    fn legend_items(&self, results: &Results, _: &[Series<'_>]) -> Vec<LegendItem> {
        distribution_legend(results)
    }
    fn note(&self, _: &Results, series_note: Option<&str>) -> Option<String> {
        series_note.map(str::to_string)
    }
    fn draw<DB: DrawingBackend>(&self, body: &DrawingArea<DB, Shift>, results: &Results, series: &[Series<'_>]) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        draw_distribution(body, results, series)
    }
}
