//! The report's plots, each written as PNG (for the Markdown report and papers) and SVG (inlined
//! into the HTML report). One file per figure, each an implementation of `Figure`: its file
//! name, whether it applies to these results, its title, legend and drawing; [`write_plots`] lists
//! them in report order. The shared drawing code (canvas, axes, legend) is in `canvas`.
//!
//! Plots only read [`Results`]; apart from unit scaling and layout they compute nothing, so every
//! number drawn is one that the tables also show. Text is drawn with the DejaVu Sans font embedded
//! in the binary (through plotters' ab_glyph support, which never asks the system for fonts), so a
//! headless machine without any fonts renders the same pixels as a desktop.

pub(crate) mod canvas;
mod figure;
mod layer_lines;
mod moe;

mod budget;
mod companion_vs_time;
mod distribution;
mod energy_breakdown;
mod gpu_ratio;
mod latency_histogram;
mod layer_error;
mod metric_vs_features;
mod metric_vs_time;
mod sensitivity;
mod tier_heatmap;
mod weight_error;

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::error::{write_file, ReportError};
use crate::results::Results;
use figure::Figure;
// Paths kept for callers: what the metric is and how it scales live in format, the views of the
// points in series.
pub use super::format::{is_classifier, metric_axis_label, metric_scale};
pub use super::series::*;
use canvas::{ensure_font, DrawResult, Legend, LegendItem, Swatch, FONT, HEIGHT, LEGEND_PAD, ROW_H, TITLE_PX, WIDTH};

/// Every stem a figure is written under (`<stem>.png`, `<stem>.svg`): a results directory holds
/// these and no other images, so a rerun or `--overwrite` replaces them and keeps any other
/// (`report::publish`). `write_figure` checks each figure's stem against it.
pub const PLOT_STEMS: [&str; 14] = [
    "noise_budget",
    "sensitivity",
    "metric_vs_features",
    "metric_vs_tier_noise",
    "accuracy_vs_time",
    "metric_vs_time",
    "companion_vs_time",
    "distribution",
    "weight_error_vs_time",
    "layer_error_vs_time",
    "energy_breakdown",
    "gpu_ratio_vs_batch",
    "latency_histogram",
    "tier_heatmap",
];

/// Draws every plot of `results` that applies into `dir` as `<stem>.png` and `<stem>.svg` and
/// lists them in report order (the order of this list).
pub fn write_plots(results: &Results, dir: &Path) -> Result<Vec<PlotFile>, ReportError> {
    ensure_font()?;
    // Past MAX_PLOT_SERIES series the plots draw an evenly spaced selection and say so.
    let (series, series_note) = shown(&series_of(results), "series");
    let note = series_note.as_deref();
    let mut out = Vec::new();
    let mut add = |written: Option<PlotFile>| out.extend(written);
    add(write_figure(&budget::Budget, results, &series, note, dir)?);
    add(write_figure(&sensitivity::Sensitivity, results, &series, note, dir)?);
    add(write_figure(&metric_vs_features::MetricVsFeatures, results, &series, note, dir)?);
    add(write_figure(&metric_vs_time::MetricVsTime, results, &series, note, dir)?);
    add(write_figure(&companion_vs_time::CompanionVsTime, results, &series, note, dir)?);
    add(write_figure(&distribution::Distribution, results, &series, note, dir)?);
    add(write_figure(&weight_error::WEIGHT_ERROR, results, &series, note, dir)?);
    add(write_figure(&layer_error::LAYER_ERROR, results, &series, note, dir)?);
    add(write_figure(&energy_breakdown::EnergyBreakdown, results, &series, note, dir)?);
    add(write_figure(&gpu_ratio::GpuRatioVsBatch, results, &series, note, dir)?);
    add(write_figure(&latency_histogram::LatencyHistogram, results, &series, note, dir)?);
    add(write_figure(&tier_heatmap::TierHeatmap, results, &series, note, dir)?);
    Ok(out)
}

/// Draws the title, the chart and the legend below it.
fn draw_figure<F: Figure, DB: DrawingBackend>(
    figure: &F,
    root: &DrawingArea<DB, Shift>,
    results: &Results,
    series: &[Series<'_>],
    legend: &Legend,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let (chart_area, legend_area) = root.split_vertically(chart_height(figure, results, series));
    // A top margin keeps the title clear of the canvas edge.
    // A title wider than the canvas is set smaller (not cut at both edges).
    let title = figure.title(results);
    let px = title_px(&title);
    let body = chart_area.margin(16, 0, 0, 0).titled(&title, (FONT, px))?;
    figure.draw(&body, results, series)?;
    legend.draw(&legend_area)
}

/// The title's font size: [`TITLE_PX`], or smaller (down to two thirds) so it fits the canvas
/// with a margin on each side.
fn title_px(title: &str) -> u32 {
    let room = WIDTH - 80;
    let w = canvas::text_width(title, TITLE_PX);
    if w <= room {
        TITLE_PX
    } else {
        ((TITLE_PX as u64 * room as u64 / w as u64) as u32).max(TITLE_PX * 2 / 3)
    }
}

/// The figure's height above the legend, from the single-panel base: the canvas less the
/// legend's one row with its padding.
fn chart_height<F: Figure>(figure: &F, results: &Results, series: &[Series<'_>]) -> u32 {
    figure.chart_height(results, series, HEIGHT - (2 * LEGEND_PAD + ROW_H) as u32)
}

/// `figure` as PNG and SVG in `dir`, when it applies to `results`.
fn write_figure<F: Figure>(
    figure: &F,
    results: &Results,
    series: &[Series<'_>],
    series_note: Option<&str>,
    dir: &Path,
) -> Result<Option<PlotFile>, ReportError> {
    if !figure.applies(results) {
        return Ok(None);
    }
    let stem = figure.stem(results);
    assert!(PLOT_STEMS.contains(&stem), "the figure stem {stem} is missing from PLOT_STEMS");
    let plot_error = |path: &Path, e: Box<dyn std::error::Error>| ReportError::Plot { path: path.to_path_buf(), message: e.to_string() };

    let png = dir.join(format!("{stem}.png"));
    let note = figure.note(results, series_note);
    let mut items = figure.legend_items(results, series);
    items.extend(note.clone().map(|label| LegendItem { swatch: Swatch::Note, label }));
    let legend = Legend::new(items).map_err(|e| plot_error(&png, e))?;
    let size = (WIDTH, chart_height(figure, results, series) + legend.height);
    {
        let root = BitMapBackend::new(&png, size).into_drawing_area();
        draw_figure(figure, &root, results, series, &legend).and_then(|()| root.present().map_err(Into::into)).map_err(|e| plot_error(&png, e))?;
    }

    // The SVG is rendered to memory and written here so that I/O errors carry the path.
    let svg = dir.join(format!("{stem}.svg"));
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
        draw_figure(figure, &root, results, series, &legend).and_then(|()| root.present().map_err(Into::into)).map_err(|e| plot_error(&svg, e))?;
    }
    write_file(&svg, text.as_bytes())?;

    Ok(Some(PlotFile { stem: stem.to_string(), title: figure.title(results), note, png, svg }))
}

/// One plot as written to disk.
#[derive(Clone, Debug, PartialEq)]
pub struct PlotFile {
    /// File name without extension, e.g. "accuracy_vs_time".
    pub stem: String,
    /// One-line description, used as the figure caption and alt text.
    pub title: String,
    /// What the plot leaves out when it draws a selection of many series, else `None`.
    pub note: Option<String>,
    pub png: PathBuf,
    pub svg: PathBuf,
}
