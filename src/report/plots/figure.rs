//! The [`Figure`] trait: what every figure file implements, so a figure lives in one place.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::canvas::{DrawResult, LegendItem};
use crate::report::series::Series;
use crate::results::Results;

/// One figure of the report, in one place: the file it is written to, whether it applies to a
/// run, its title and legend, and how it draws its chart.
pub(crate) trait Figure {
    /// The file stem: `<stem>.png` and `<stem>.svg`.
    fn stem(&self, results: &Results) -> &'static str;
    /// Whether `results` hold what this figure draws.
    fn applies(&self, results: &Results) -> bool;
    fn title(&self, results: &Results) -> String;
    /// Height above the legend; `base` is what the single-panel figures use.
    fn chart_height(&self, _results: &Results, _series: &[Series<'_>], base: u32) -> u32 {
        base
    }
    fn legend_items(&self, results: &Results, series: &[Series<'_>]) -> Vec<LegendItem>;
    /// What the plot leaves out, when it draws a selection ([`crate::report::series::shown`]):
    /// shown under the legend and in the report's caption. `series_note` says what the series
    /// passed to [`Figure::draw`] leave out; figures drawn from the series return it.
    fn note(&self, _results: &Results, _series_note: Option<&str>) -> Option<String> {
        None
    }
    /// Draws the chart into `body`, the canvas below the title and above the legend.
    fn draw<DB: DrawingBackend>(&self, body: &DrawingArea<DB, Shift>, results: &Results, series: &[Series<'_>]) -> DrawResult
    where
        DB::ErrorType: 'static;
}
