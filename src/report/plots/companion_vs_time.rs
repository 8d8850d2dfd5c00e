//! The companion metric (`Point::companion`, the benchmark's second number of the same trials)
//! against the time since programming: per series its mean with the mean's trial-to-trial
//! interval as a band, and its floating-point value dashed in the series' colour: the numbers of
//! the report's "Also scored" tables.

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::canvas::DrawResult;
use super::canvas::*;
use super::figure::Figure;
use crate::report::series::*;
use crate::results::*;

/// The companion's name in words ("exact_match" → "exact match"), from the first point with one.
fn name(results: &Results) -> String {
    results.points.iter().find_map(|p| p.companion.as_ref()).map_or_else(String::new, |c| c.metric.replace('_', " "))
}

pub(crate) struct CompanionVsTime;

impl Figure for CompanionVsTime {
    fn stem(&self, _: &Results) -> &'static str {
        "companion_vs_time"
    }
    fn applies(&self, results: &Results) -> bool {
        results.points.iter().any(|p| p.companion.is_some())
    }
    fn title(&self, results: &Results) -> String {
        format!("{} (the same trials) vs time after programming (mean, {} CI)", capitalised(&name(results)), confidence(results))
    }
    fn legend_items(&self, results: &Results, series: &[Series<'_>]) -> Vec<LegendItem> {
        let mut items: Vec<LegendItem> = series
            .iter()
            .enumerate()
            .map(|(i, s)| LegendItem { swatch: Swatch::band(i), label: format!("{}: mean, {} CI", s.label(), confidence(results)) })
            .collect();
        if results.points.iter().any(|p| p.companion.as_ref().is_some_and(|c| c.fp.is_some())) {
            items.push(LegendItem { swatch: Swatch::Dashed(BASELINE_COLOR), label: "floating point (in the series' colour)".to_string() });
        }
        items
    }
    fn note(&self, _: &Results, series_note: Option<&str>) -> Option<String> {
        series_note.map(str::to_string)
    }
    fn draw<DB: DrawingBackend>(&self, body: &DrawingArea<DB, Shift>, results: &Results, series: &[Series<'_>]) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let all: Vec<&Point> = series.iter().flat_map(|s| with(s).into_iter().map(|(p, _)| p)).collect();
        let axis = TimeAxis::new(&all, plot_width(body.dim_in_pixel().0));
        let values = series.iter().flat_map(|s| with(s)).flat_map(|(_, c)| [c.mean_ci.lo, c.mean_ci.hi].into_iter().chain(c.fp));
        let chart = build_chart(body, None, (axis.lo, axis.hi), &axis.ticks, axis.description(), padded(values), &name(results))?;
        let plot = chart.plotting_area();
        if all.is_empty() {
            draw_no_data(plot)?;
        }
        for (i, s) in series.iter().enumerate() {
            let (color, marker) = series_style(i);
            let points: Vec<(&Point, &Companion)> = with(s).into_iter().filter(|(p, _)| p.t_inf.is_finite()).collect();
            let at = |p: &Point, v: f64| (axis.x(p.t_inf), v);
            if points.len() >= 2 {
                let band: Vec<(f64, f64)> =
                    points.iter().map(|(p, c)| at(p, c.mean_ci.hi)).chain(points.iter().rev().map(|(p, c)| at(p, c.mean_ci.lo))).collect();
                plot.draw(&Polygon::new(band, color.mix(BAND_ALPHA).filled()))?;
            } else if let Some((p, c)) = points.first() {
                let half = 0.02 * (axis.hi - axis.lo);
                let (x, lo) = at(p, c.mean_ci.lo);
                plot.draw(&Rectangle::new([(x - half, lo), (x + half, c.mean_ci.hi)], color.mix(BAND_ALPHA).filled()))?;
            }
            let means: Vec<(f64, f64)> = points.iter().map(|(p, c)| at(p, c.mean)).collect();
            plot.draw(&PathElement::new(means.clone(), color.stroke_width(LINE_PX)))?;
            for m in means {
                draw_marker(plot, m, marker, color)?;
            }
            if let Some(fp) = points.last().and_then(|(_, c)| c.fp) {
                plot.draw(&DashedPathElement::new(vec![(axis.lo, fp), (axis.hi, fp)], 14, 9, color.stroke_width(3)))?;
            }
        }
        Ok(())
    }
}

/// A series' points that have a companion, with it.
fn with<'a>(s: &Series<'a>) -> Vec<(&'a Point, &'a Companion)> {
    s.points.iter().filter_map(|p| p.companion.as_ref().map(|c| (*p, c))).collect()
}

/// The mean interval's confidence as a label ("95 %").
fn confidence(results: &Results) -> String {
    let c = results.points.iter().find_map(|p| p.companion.as_ref()).map_or(results.confidence, |c| c.mean_ci.confidence);
    crate::report::format::percent_label(c)
}
