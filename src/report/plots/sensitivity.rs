//! Sensitivity: the metric with each noise knob moved alone from the file's setting, at the last time.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::canvas::DrawResult;
use super::canvas::*;
use super::figure::Figure;
use crate::report::format::*;
use crate::report::series::*;
use crate::results::*;

/// The knobs of the sensitivity plot, in order.
pub(crate) fn sensitivity_knobs(results: &Results) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for k in results.budget.last().map(|b| b.sensitivity.as_slice()).unwrap_or(&[]) {
        if !v.contains(&k.knob) {
            v.push(k.knob.clone());
        }
    }
    v
}

/// One line per knob at the last budget entry: x the relative noise level (1 = the file), y the
/// metric's median with its 5–95 % band.
pub(crate) fn draw_sensitivity<DB: DrawingBackend>(chart_area: &DrawingArea<DB, Shift>, results: &Results) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let scale = metric_scale(results);
    let Some(b) = results.budget.last() else { return Ok(()) };
    let rels: Vec<f64> = {
        let mut r: Vec<f64> = b.sensitivity.iter().map(|k| k.rel).collect();
        r.sort_by(f64::total_cmp);
        r.dedup();
        r
    };
    let hi = rels.last().copied().unwrap_or(2.0).max(2.0);
    let ticks: Vec<(f64, String)> = rels.iter().map(|&r| (r, format!("{r}"))).collect();
    let ticks = thin_ticks(ticks, -0.05 * hi, 1.05 * hi, plot_width(chart_area.dim_in_pixel().0));
    let y_range = padded(b.sensitivity.iter().flat_map(|k| [k.p05, k.p95, k.median]).map(|v| v * scale));
    let chart = build_chart(
        chart_area,
        None,
        (-0.05 * hi, 1.05 * hi),
        &ticks,
        "relative noise level (scale factor, or step 2^−Δbits; 1 = the file)",
        y_range,
        &metric_axis_label(results),
    )?;
    let plot = chart.plotting_area();
    for (i, knob) in sensitivity_knobs(results).iter().enumerate() {
        let (color, marker) = series_style(i);
        let pts: Vec<_> = b.sensitivity.iter().filter(|k| &k.knob == knob).collect();
        if pts.len() >= 2 {
            let band: Vec<(f64, f64)> = pts.iter().map(|k| (k.rel, k.p95 * scale)).chain(pts.iter().rev().map(|k| (k.rel, k.p05 * scale))).collect();
            plot.draw(&Polygon::new(band, color.mix(BAND_ALPHA).filled()))?;
        }
        let line: Vec<(f64, f64)> = pts.iter().map(|k| (k.rel, k.median * scale)).collect();
        plot.draw(&PathElement::new(line.clone(), color.stroke_width(LINE_PX)))?;
        for m in line {
            draw_marker(plot, m, marker, color)?;
        }
    }
    Ok(())
}

/// The metric against each noise knob's relative level, at the last time.
pub(crate) struct Sensitivity;

impl Figure for Sensitivity {
    fn stem(&self, _: &Results) -> &'static str {
        "sensitivity"
    }
    fn applies(&self, results: &Results) -> bool {
        results.budget.iter().any(|b| !b.sensitivity.is_empty())
    }
    fn title(&self, results: &Results) -> String {
        let t = results.budget.last().map_or(String::new(), |b| b.time_label.clone());
        format!("Sensitivity at {t}: each knob moved alone, same draws (median, 5–95 % of trials)")
    }
    fn legend_items(&self, results: &Results, _: &[Series<'_>]) -> Vec<LegendItem> {
        sensitivity_knobs(results).iter().enumerate().map(|(i, k)| LegendItem { swatch: Swatch::band(i), label: k.clone() }).collect()
    }
    fn draw<DB: DrawingBackend>(&self, body: &DrawingArea<DB, Shift>, results: &Results, _: &[Series<'_>]) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        draw_sensitivity(body, results)
    }
}
