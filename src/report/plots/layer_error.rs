//! The error each layer adds on its own inputs (layer insight, median over trials) against time.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::canvas::DrawResult;
use super::canvas::*;
use super::figure::Figure;
use super::layer_lines::*;
use crate::report::series::*;
use crate::results::*;

/// The error each layer adds vs time, when some point has layer insight.
pub(crate) struct LayerError;

impl Figure for LayerError {
    fn stem(&self, _: &Results) -> &'static str {
        "layer_error_vs_time"
    }
    fn applies(&self, results: &Results) -> bool {
        results.points.iter().any(|p| !p.layer_insight.is_empty())
    }
    fn title(&self, _: &Results) -> String {
        "Error each layer adds on its own inputs vs time (median over trials)".to_string()
    }
    fn legend_items(&self, results: &Results, series: &[Series<'_>]) -> Vec<LegendItem> {
        layer_lines(series, &insight_layers, &|l| results.layer_name(l))
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
            &insight_layers,
            &|p, l| p.layer_insight.iter().find(|w| w.layer == l).map(|w| 100.0 * w.mvm_error.median),
            "‖h − act(Wx + b)‖ / ‖act(Wx + b)‖ (%)",
        )
    }
}
