//! The effective-weight error against the time since programming, one line per layer and series.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::canvas::DrawResult;
use super::canvas::*;
use super::figure::Figure;
use super::layer_lines::*;
use crate::report::series::*;
use crate::results::*;

/// Effective-weight error vs time, when some point has weight-error data.
pub(crate) struct WeightError;

impl Figure for WeightError {
    fn stem(&self, _: &Results) -> &'static str {
        "weight_error_vs_time"
    }
    fn applies(&self, results: &Results) -> bool {
        results.points.iter().any(|p| !p.weight_error.is_empty())
    }
    fn title(&self, _: &Results) -> String {
        "Effective-weight error vs time after programming".to_string()
    }
    fn legend_items(&self, results: &Results, series: &[Series<'_>]) -> Vec<LegendItem> {
        layer_lines(series, &weight_error_layers, &|l| results.layer_name(l))
            .into_iter()
            .map(|line| LegendItem { swatch: Swatch::Line(line.color, line.marker, line.dashed), label: line.label })
            .collect()
    }
    fn draw<DB: DrawingBackend>(&self, body: &DrawingArea<DB, Shift>, _: &Results, series: &[Series<'_>]) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        draw_layer_lines(
            body,
            series,
            &weight_error_layers,
            &|p, l| p.weight_error.iter().find(|w| w.layer == l).map(|w| w.std),
            "std of (weight error / max |W|)",
        )
    }
}
