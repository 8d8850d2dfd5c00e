//! The report's plots, each written as PNG (for the Markdown report and papers) and SVG (inlined
//! into the HTML report): the metric against time after programming, the per-trial distribution
//! at each time, and the effective-weight error against time.
//!
//! Plots only read [`Results`]; apart from unit scaling and layout they compute nothing, so every
//! number drawn is one that the tables also show. Text is drawn with the DejaVu Sans font embedded
//! in the binary (through plotters' ab_glyph support, which never asks the system for fonts), so a
//! headless machine without any fonts renders the same pixels as a desktop.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, FontStyle};

use super::moe_plots::{self, MoeFigure};
use super::results::{Point, Results};
use super::{write_file, ReportError};

/// DejaVu Sans, registered under the generic family name so that the SVG files ask the browser
/// for its own sans-serif font instead of naming one the reader may not have.
const FONT_BYTES: &[u8] = include_bytes!("fonts/DejaVuSans.ttf");
pub(super) const FONT: &str = "sans-serif";

/// Canvas of the single-panel plots; a 1600 px plot printed one column wide (~8.5 cm) scales
/// text by ~0.2, so 36 px tick labels still print at about 7 pt.
pub(super) const WIDTH: u32 = 1600;
pub(super) const HEIGHT: u32 = 1000;
/// Text sizes in pixels (plotters' size: ascender to descender in the PNG; the SVG font-size,
/// which is the em size, comes out 1.24 times smaller, so 36 px ticks are 29 px there).
pub(super) const TICK_PX: u32 = 36;
pub(super) const AXIS_PX: u32 = 40;
pub(super) const TITLE_PX: u32 = 44;
const LEGEND_PX: u32 = 36;
/// Room reserved beside the plotting area for tick labels plus the axis description.
pub(super) const X_LABEL_AREA: u32 = 130;
pub(super) const Y_LABEL_AREA: u32 = 175;
pub(super) const CHART_MARGIN: u32 = 24;
/// Extra room on the right so the last tick label is not cut off.
pub(super) const CHART_MARGIN_RIGHT: u32 = 70;

pub(super) const LINE_PX: u32 = 4;
const MARKER_PX: i32 = 9;
/// Opacity of the 5–95 % bands: light enough that overlapping bands stay readable.
const BAND_ALPHA: f64 = 0.18;
/// Per-time strip plots show at most this many trials, so large runs keep small SVG files.
const MAX_DOTS: usize = 400;

pub(super) const BASELINE_COLOR: RGBColor = RGBColor(40, 40, 40);
pub(super) const BOLD_GRID: RGBColor = RGBColor(200, 200, 200);
pub(super) const LIGHT_GRID: RGBColor = RGBColor(236, 236, 236);

/// Okabe & Ito (2008) colour-blind-safe palette, without its yellow (too faint on white).
const PALETTE: [RGBColor; 6] =
    [RGBColor(0, 114, 178), RGBColor(213, 94, 0), RGBColor(0, 158, 115), RGBColor(204, 121, 167), RGBColor(230, 159, 0), RGBColor(86, 180, 233)];

/// Marker shapes told apart without colour (layers in the weight-error plot).
#[derive(Clone, Copy, Debug)]
pub(super) enum Marker {
    Circle,
    Triangle,
    Square,
    Diamond,
}
const MARKERS: [Marker; 4] = [Marker::Circle, Marker::Triangle, Marker::Square, Marker::Diamond];

pub(super) type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// One plot as written to disk.
#[derive(Clone, Debug, PartialEq)]
pub struct PlotFile {
    /// File name without extension, e.g. "accuracy_vs_time".
    pub stem: String,
    /// One-line description, used as the figure caption and alt text.
    pub title: String,
    pub png: PathBuf,
    pub svg: PathBuf,
}

/// The points of one series (one value of the non-time sweep axes), in time order.
#[derive(Clone, Debug)]
pub struct Series<'a> {
    pub name: &'a str,
    pub points: Vec<&'a Point>,
}

impl Series<'_> {
    /// The series name for legends and prose; a sweep with no axes besides time has one
    /// unnamed series.
    pub fn label(&self) -> &str {
        if self.name.is_empty() {
            "all points"
        } else {
            self.name
        }
    }
}

/// Groups the points by series, in order of first appearance in the results (the sweep order),
/// each series sorted by time.
pub fn series_of(results: &Results) -> Vec<Series<'_>> {
    let mut out: Vec<Series<'_>> = Vec::new();
    for point in &results.points {
        match out.iter_mut().find(|s| s.name == point.series) {
            Some(series) => series.points.push(point),
            None => out.push(Series { name: &point.series, points: vec![point] }),
        }
    }
    for series in &mut out {
        series.points.sort_by(|a, b| a.t_inf.total_cmp(&b.t_inf));
    }
    out
}

/// Whether the metric is a classification accuracy in [0, 1], shown in percent.
pub fn is_classifier(results: &Results) -> bool {
    // Accuracy workloads carry exact per-trial correct counts (a MoE classifier too); the names
    // cover a run with no points.
    results.workload == "classifier" || results.workload == "kernel_ridge" || results.points.iter().any(|p| p.per_trial_correct.is_some())
}

/// The sweep axis of the random-feature count (`features`), when it has several values: the
/// kernel workloads then get a plot of the metric against it.
pub fn features_axis(results: &Results) -> Option<Vec<f64>> {
    x_axis(results).filter(|a| a.name == "features").map(|a| a.values)
}

/// A numeric sweep axis the metric is plotted against: the feature count (kernel workloads, log
/// scale) or the tier noise slope (MoE, linear), when it has several values.
pub struct XAxis {
    pub name: &'static str,
    pub values: Vec<f64>,
    pub log: bool,
}

pub fn x_axis(results: &Results) -> Option<XAxis> {
    for (name, log) in [("features", true), ("tier_noise_slope", false)] {
        let Some(axis) = results.axes.iter().find(|a| a.name == name) else { continue };
        let mut v: Vec<f64> = axis.values.iter().filter_map(|l| l.parse::<f64>().ok()).filter(|v| v.is_finite() && (!log || *v > 0.0)).collect();
        v.sort_by(f64::total_cmp);
        v.dedup();
        if v.len() >= 2 {
            return Some(XAxis { name, values: v, log });
        }
    }
    None
}

/// The metric against the feature count: one line (median, 5–95 % band) per combination of the
/// other axes and time, and each combination's floating-point metric dashed in its colour.
pub struct FeatureLine<'a> {
    pub label: String,
    /// (features, point), in feature order.
    pub points: Vec<(f64, &'a Point)>,
}

/// Groups the points by everything but the feature count (series without `features`, and time).
pub fn feature_lines(results: &Results) -> Vec<FeatureLine<'_>> {
    let name = x_axis(results).map_or("features", |a| a.name);
    let mut out: Vec<FeatureLine<'_>> = Vec::new();
    for p in &results.points {
        let Some(f) = p.labels.get(name).and_then(|l| l.parse::<f64>().ok()) else { continue };
        let rest: Vec<String> = p.labels.iter().filter(|(k, _)| *k != name).map(|(k, v)| format!("{k}={v}")).collect();
        let mut label = rest.join(", ");
        if results.times.len() > 1 {
            label = if label.is_empty() { p.time_label.clone() } else { format!("{label}, {}", p.time_label) };
        }
        match out.iter_mut().find(|l| l.label == label) {
            Some(l) => l.points.push((f, p)),
            None => out.push(FeatureLine { label, points: vec![(f, p)] }),
        }
    }
    for l in &mut out {
        l.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

/// Factor from stored metric values to displayed ones (100 for accuracies shown in %).
pub fn metric_scale(results: &Results) -> f64 {
    if is_classifier(results) {
        100.0
    } else {
        1.0
    }
}

/// The metric's axis description, with its unit.
pub fn metric_axis_label(results: &Results) -> String {
    if is_classifier(results) {
        format!("{} (%)", results.metric)
    } else {
        results.metric.clone()
    }
}

/// Registers the embedded font once per process; plotters keeps it in a global table.
fn ensure_font() -> Result<(), ReportError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok());
    if ok {
        Ok(())
    } else {
        Err(ReportError::Font)
    }
}

#[derive(Clone, Copy, Debug)]
enum Figure {
    MetricVsFeatures,
    MetricVsTime,
    Distribution,
    WeightError,
    /// The error each layer adds (layer insight, median over trials) vs time.
    LayerError,
    /// The noise budget: each source's cost alone per time, with paired intervals.
    Budget,
    /// The metric against each noise knob's relative level, at the last time.
    Sensitivity,
    /// The MoE / 3D-tier figures ([`moe_plots`]).
    Moe(MoeFigure),
}

impl Figure {
    fn stem(self, results: &Results) -> &'static str {
        match self {
            Figure::MetricVsFeatures if features_axis(results).is_none() => "metric_vs_tier_noise",
            Figure::MetricVsFeatures => "metric_vs_features",
            Figure::MetricVsTime if is_classifier(results) => "accuracy_vs_time",
            Figure::MetricVsTime => "metric_vs_time",
            Figure::Distribution => "distribution",
            Figure::WeightError => "weight_error_vs_time",
            Figure::LayerError => "layer_error_vs_time",
            Figure::Budget => "noise_budget",
            Figure::Sensitivity => "sensitivity",
            Figure::Moe(moe) => moe.stem(),
        }
    }

    fn title(self, results: &Results) -> String {
        match self {
            Figure::MetricVsFeatures if features_axis(results).is_some() => {
                "Against the feature count s (median, 5–95 % of trials; dashed: floating point)".to_string()
            }
            Figure::MetricVsFeatures => "Against the tier noise slope (median, 5–95 % of trials)".to_string(),
            Figure::MetricVsTime => {
                format!("{} vs time after programming (median, 5–95 % of trials)", capitalised(&results.metric))
            }
            Figure::Distribution => {
                format!("{} per trial at each time", capitalised(&results.metric))
            }
            Figure::WeightError => "Effective-weight error vs time after programming".to_string(),
            Figure::LayerError => "Error each layer adds on its own inputs vs time (median over trials)".to_string(),
            Figure::Budget => "Noise budget: the cost of each source alone (paired intervals)".to_string(),
            Figure::Sensitivity => {
                let t = results.budget.last().map_or(String::new(), |b| b.time_label.clone());
                format!("Sensitivity at {t}: each knob moved alone, same draws (median, 5–95 % of trials)")
            }
            Figure::Moe(moe) => moe.title(results),
        }
    }

    /// Height above the legend. The distribution plot stacks one panel per row of series and
    /// grows taller to keep panels legible; the legend adds its own rows below, so a long legend
    /// never squeezes the chart.
    fn chart_height(self, series: &[Series<'_>]) -> u32 {
        let base = HEIGHT - (2 * LEGEND_PAD + ROW_H) as u32;
        match self {
            Figure::Distribution => base.max(180 + 520 * distribution_grid(series.len()).0 as u32),
            Figure::Moe(moe) => moe.chart_height(base),
            _ => base,
        }
    }

    fn legend_items(self, results: &Results, series: &[Series<'_>]) -> Vec<LegendItem> {
        match self {
            Figure::MetricVsFeatures => {
                let mut items: Vec<LegendItem> = feature_lines(results)
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
            Figure::MetricVsTime => metric_legend(results, series),
            Figure::Distribution => distribution_legend(results),
            Figure::WeightError => layer_lines(series, &weight_error_layers, &|l| results.layer_name(l))
                .into_iter()
                .map(|line| LegendItem { swatch: Swatch::Line(line.color, line.marker, line.dashed), label: line.label })
                .collect(),
            Figure::LayerError => layer_lines(series, &insight_layers, &|l| results.layer_name(l))
                .into_iter()
                .map(|line| LegendItem { swatch: Swatch::Line(line.color, line.marker, line.dashed), label: line.label })
                .collect(),
            Figure::Sensitivity => {
                sensitivity_knobs(results).iter().enumerate().map(|(i, k)| LegendItem { swatch: Swatch::Band(palette(i)), label: k.clone() }).collect()
            }
            Figure::Budget => {
                budget_groups(results).iter().enumerate().map(|(i, g)| LegendItem { swatch: Swatch::Box(palette(i)), label: g.clone() }).collect()
            }
            Figure::Moe(moe) => moe.legend_items(results),
        }
    }

    /// Draws the title, the chart and the legend below it.
    fn draw<DB: DrawingBackend>(self, root: &DrawingArea<DB, Shift>, results: &Results, series: &[Series<'_>], legend: &Legend) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE)?;
        let (chart_area, legend_area) = root.split_vertically(self.chart_height(series));
        // A top margin keeps the title clear of the canvas edge.
        let body = chart_area.margin(16, 0, 0, 0).titled(&self.title(results), (FONT, TITLE_PX))?;
        match self {
            Figure::MetricVsFeatures => draw_metric_vs_features(&body, results)?,
            Figure::MetricVsTime => draw_metric_vs_time(&body, results, series)?,
            Figure::Distribution => draw_distribution(&body, results, series)?,
            Figure::WeightError => draw_layer_lines(
                &body,
                series,
                &weight_error_layers,
                &|p, l| p.weight_error.iter().find(|w| w.layer == l).map(|w| w.std),
                "std of (weight error / max |W|)",
            )?,
            Figure::LayerError => draw_layer_lines(
                &body,
                series,
                &insight_layers,
                &|p, l| p.layer_insight.iter().find(|w| w.layer == l).map(|w| 100.0 * w.mvm_error.median),
                "‖h − act(Wx + b)‖ / ‖act(Wx + b)‖ (%)",
            )?,
            Figure::Budget => draw_budget(&body, results)?,
            Figure::Sensitivity => draw_sensitivity(&body, results)?,
            Figure::Moe(moe) => moe.draw(&body, results)?,
        }
        legend.draw(&legend_area)
    }
}

/// Draws every plot of `results` into `dir` as `<stem>.png` and `<stem>.svg` and lists them in
/// report order. The weight-error plot exists only when some point has weight-error data, the
/// MoE figures only when some point has a 3D-tier cost model.
pub fn write_plots(results: &Results, dir: &Path) -> Result<Vec<PlotFile>, ReportError> {
    ensure_font()?;
    let series = series_of(results);
    let mut figures = vec![Figure::MetricVsTime, Figure::Distribution];
    if x_axis(results).is_some() {
        figures.insert(0, Figure::MetricVsFeatures);
    }
    if results.points.iter().any(|p| !p.weight_error.is_empty()) {
        figures.push(Figure::WeightError);
    }
    if results.points.iter().any(|p| !p.layer_insight.is_empty()) {
        figures.push(Figure::LayerError);
    }
    if !results.budget.is_empty() {
        figures.insert(0, Figure::Budget);
    }
    if results.budget.iter().any(|b| !b.sensitivity.is_empty()) {
        figures.insert(1, Figure::Sensitivity);
    }
    figures.extend(moe_plots::figures(results).into_iter().map(Figure::Moe));
    figures.into_iter().map(|figure| write_figure(figure, results, &series, dir)).collect()
}

fn write_figure(figure: Figure, results: &Results, series: &[Series<'_>], dir: &Path) -> Result<PlotFile, ReportError> {
    let stem = figure.stem(results);
    let plot_error = |path: &Path, e: Box<dyn std::error::Error>| ReportError::Plot { path: path.to_path_buf(), message: e.to_string() };

    let png = dir.join(format!("{stem}.png"));
    let legend = Legend::new(figure.legend_items(results, series)).map_err(|e| plot_error(&png, e))?;
    let size = (WIDTH, figure.chart_height(series) + legend.height);
    {
        let root = BitMapBackend::new(&png, size).into_drawing_area();
        figure.draw(&root, results, series, &legend).and_then(|()| root.present().map_err(Into::into)).map_err(|e| plot_error(&png, e))?;
    }

    // The SVG is rendered to memory and written here so that I/O errors carry the path.
    let svg = dir.join(format!("{stem}.svg"));
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
        figure.draw(&root, results, series, &legend).and_then(|()| root.present().map_err(Into::into)).map_err(|e| plot_error(&svg, e))?;
    }
    write_file(&svg, text.as_bytes())?;

    Ok(PlotFile { stem: stem.to_string(), title: figure.title(results), png, svg })
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

pub(super) fn palette(index: usize) -> RGBColor {
    PALETTE[index % PALETTE.len()]
}

/// Pads a data range so that lines and markers do not sit on the frame, and widens an empty or
/// single-valued range (one point, one trial, identical trials) into a drawable one.
fn padded(values: impl IntoIterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.into_iter().filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return (0.0, 1.0);
    }
    let span = hi - lo;
    let pad = if span > 1e-12 * lo.abs().max(hi.abs()) {
        0.08 * span
    } else if lo != 0.0 {
        0.05 * lo.abs()
    } else {
        1.0
    };
    (lo - pad, hi + pad)
}

/// Decimals for tick labels on an axis spanning `span`: enough to tell about eight ticks apart.
fn tick_decimals(span: f64) -> usize {
    let step = span / 8.0;
    if !(step.is_finite() && step > 0.0) {
        return 2;
    }
    (-step.log10().floor()).clamp(0.0, 8.0) as usize
}

/// Greedy left-to-right thinning of tick labels so that none overlap: a label is kept when it
/// clears the previous kept one by a gap. Widths are estimated from the character count
/// (DejaVu Sans averages ~0.55 em per character), which is the same for PNG and SVG.
pub(super) fn thin_ticks(ticks: Vec<(f64, String)>, lo: f64, hi: f64, width_px: f64) -> Vec<(f64, String)> {
    let half_width = |label: &str| 0.5 * label.chars().count() as f64 * 0.62 * TICK_PX as f64;
    let px = |x: f64| (x - lo) / (hi - lo) * width_px;
    let mut kept: Vec<(f64, String)> = Vec::new();
    for (x, label) in ticks {
        let fits = kept.last().is_none_or(|(kx, klabel)| px(x) - px(*kx) >= half_width(klabel) + half_width(&label) + 24.0);
        if fits {
            kept.push((x, label));
        }
    }
    kept
}

/// The time axis: log10 of seconds when every time is positive (the usual drift sweep from 1 s
/// to 10 y), plain seconds otherwise. Ticks sit at the sweep's own times, labelled with their
/// time labels ("1 h", "1 month", ...).
struct TimeAxis {
    log: bool,
    lo: f64,
    hi: f64,
    ticks: Vec<(f64, String)>,
}

impl TimeAxis {
    fn new(points: &[&Point], width_px: f64) -> Self {
        let mut times: Vec<(f64, &str)> = points.iter().filter(|p| p.t_inf.is_finite()).map(|p| (p.t_inf, p.time_label.as_str())).collect();
        times.sort_by(|a, b| a.0.total_cmp(&b.0));
        times.dedup_by(|a, b| a.0 == b.0);
        let log = times.iter().all(|(t, _)| *t > 0.0);
        let x = |t: f64| if log { t.log10() } else { t };

        let (lo, hi) = match (times.first(), times.last()) {
            (Some(first), Some(last)) if last.0 > first.0 => {
                let (a, b) = (x(first.0), x(last.0));
                let pad = 0.06 * (b - a);
                (a - pad, b + pad)
            }
            // One time: half a decade either side (or ±50 % on a linear axis).
            (Some(only), _) if log => (x(only.0) - 0.5, x(only.0) + 0.5),
            (Some(only), _) => (only.0 - only.0.abs().max(1.0) * 0.5, only.0 + only.0.abs().max(1.0) * 0.5),
            _ => (0.0, 1.0),
        };
        let candidates = times.iter().map(|(t, label)| (x(*t), label.to_string())).collect();
        TimeAxis { log, lo, hi, ticks: thin_ticks(candidates, lo, hi, width_px) }
    }

    fn x(&self, t: f64) -> f64 {
        if self.log {
            t.log10()
        } else {
            t
        }
    }

    fn description(&self) -> &'static str {
        if self.log {
            "time after programming (log scale)"
        } else {
            "time after programming (s)"
        }
    }
}

/// Width in pixels of the plotting area inside a chart area of `width`.
pub(super) fn plot_width(width: u32) -> f64 {
    f64::from(width.saturating_sub(Y_LABEL_AREA + CHART_MARGIN + CHART_MARGIN_RIGHT).max(1))
}

/// A linear f64 axis whose ticks are exactly the given positions (the sweep's times), with no
/// minor grid lines between them. plotters' own key-point wrapper drops the label formatting of
/// f64 axes, hence this small axis type.
pub(super) struct TickedAxis {
    pub(super) lo: f64,
    pub(super) hi: f64,
    pub(super) ticks: Vec<f64>,
}

impl Ranged for TickedAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let fraction = (value - self.lo) / (self.hi - self.lo);
        limit.0 + (fraction * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

type TimeChart<'a, DB> = ChartContext<'a, DB, Cartesian2d<TickedAxis, RangedCoordf64>>;

/// A chart whose x axis is `axis` (time, or categorical positions) with its own tick labels and
/// whose y axis spans `y_range`, with the common grid, fonts and axis descriptions.
fn build_chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    caption: Option<(&str, u32)>,
    x_range: (f64, f64),
    ticks: &[(f64, String)],
    x_desc: &str,
    y_range: (f64, f64),
    y_desc: &str,
) -> Result<TimeChart<'a, DB>, Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let mut builder = ChartBuilder::on(area);
    if let Some((text, px)) = caption {
        builder.caption(text, (FONT, px));
    }
    let key_points: Vec<f64> = ticks.iter().map(|(x, _)| *x).collect();
    let mut chart = builder
        .margin(CHART_MARGIN)
        // Room for half of the topmost tick label, which sticks out above the plotting area.
        .margin_top(CHART_MARGIN + TICK_PX / 2)
        .margin_right(CHART_MARGIN_RIGHT)
        .x_label_area_size(X_LABEL_AREA)
        .y_label_area_size(Y_LABEL_AREA)
        .build_cartesian_2d(TickedAxis { lo: x_range.0, hi: x_range.1, ticks: key_points }, y_range.0..y_range.1)?;

    let x_label = |x: &f64| ticks.iter().min_by(|a, b| (a.0 - x).abs().total_cmp(&(b.0 - x).abs())).map(|(_, label)| label.clone()).unwrap_or_default();
    let decimals = tick_decimals(y_range.1 - y_range.0);
    let y_label = |y: &f64| format!("{y:.decimals$}");
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style((FONT, TICK_PX))
        .axis_desc_style((FONT, AXIS_PX))
        .x_labels(ticks.len().max(1))
        .y_labels(8)
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .bold_line_style(BOLD_GRID.stroke_width(1))
        .light_line_style(LIGHT_GRID.stroke_width(1))
        // One minor line between labelled ones: a denser grid only adds noise.
        .y_max_light_lines(1)
        .axis_style(BLACK.stroke_width(2))
        .set_all_tick_mark_size(10)
        .draw()?;
    Ok(chart)
}

pub(super) fn draw_marker<DB: DrawingBackend, CT: CoordTranslate>(area: &DrawingArea<DB, CT>, at: CT::From, marker: Marker, color: RGBColor) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let fill = color.filled();
    let r = MARKER_PX;
    match marker {
        Marker::Circle => area.draw(&(EmptyElement::at(at) + Circle::new((0, 0), r, fill)))?,
        Marker::Triangle => area.draw(&(EmptyElement::at(at) + TriangleMarker::new((0, 0), r + 2, fill)))?,
        Marker::Square => area.draw(&(EmptyElement::at(at) + Rectangle::new([(-r, -r), (r, r)], fill)))?,
        Marker::Diamond => {
            let d = r + 3;
            area.draw(&(EmptyElement::at(at) + Polygon::new(vec![(0, -d), (d, 0), (0, d), (-d, 0)], fill)))?
        }
    }
    Ok(())
}

/// The mean as a hollow diamond, so the median bar it usually sits on stays visible.
fn draw_mean_marker<DB: DrawingBackend, CT: CoordTranslate>(area: &DrawingArea<DB, CT>, at: CT::From) -> DrawResult
where
    CT::From: Clone,
    DB::ErrorType: 'static,
{
    let d = MARKER_PX + 4;
    let corners = vec![(0, -d), (d, 0), (0, d), (-d, 0)];
    area.draw(&(EmptyElement::at(at.clone()) + Polygon::new(corners.clone(), WHITE.filled())))?;
    let mut outline = corners;
    outline.push((0, -d));
    area.draw(&(EmptyElement::at(at) + PathElement::new(outline, BASELINE_COLOR.stroke_width(3))))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Legend: drawn below the chart rather than inside it, so it can never hide data.

pub(super) enum Swatch {
    /// Median line with marker over its 5–95 % band.
    Band(RGBColor),
    Dashed(RGBColor),
    /// Line with marker; dashed for every other layer in the weight-error plot.
    Line(RGBColor, Marker, bool),
    Dots(RGBColor),
    Box(RGBColor),
    Whisker,
    MedianBar,
    MeanMarker,
}

pub(super) struct LegendItem {
    pub(super) swatch: Swatch,
    pub(super) label: String,
}

const SWATCH_W: i32 = 70;
const SWATCH_GAP: i32 = 14;
const ITEM_GAP: i32 = 56;
const ROW_H: i32 = 50;
const LEGEND_PAD: i32 = 16;

/// A legend laid out in centred rows that wrap at the canvas width.
struct Legend {
    items: Vec<LegendItem>,
    /// Left x and centre y of each item.
    positions: Vec<(i32, i32)>,
    height: u32,
}

impl Legend {
    /// Lays out `items`, measuring labels with the embedded font itself, so the layout (and the
    /// canvas height that depends on it) is known before any backend exists and is the same
    /// for PNG and SVG.
    fn new(items: Vec<LegendItem>) -> Result<Self, Box<dyn std::error::Error>> {
        if items.is_empty() {
            return Ok(Legend { items, positions: Vec::new(), height: 0 });
        }
        let font = FontDesc::from((FONT, f64::from(LEGEND_PX)));
        let mut widths = Vec::with_capacity(items.len());
        for item in &items {
            let (text_w, _) = font.box_size(&item.label)?;
            widths.push(SWATCH_W + SWATCH_GAP + text_w as i32);
        }

        // Rows as (first, end, width), filled greedily.
        let width = WIDTH as i32;
        let usable = width - 2 * LEGEND_PAD;
        let mut rows: Vec<(usize, usize, i32)> = Vec::new();
        let (mut start, mut row_w) = (0, 0);
        for (i, w) in widths.iter().enumerate() {
            let added = if i == start { *w } else { row_w + ITEM_GAP + w };
            if i > start && added > usable {
                rows.push((start, i, row_w));
                start = i;
                row_w = *w;
            } else {
                row_w = added;
            }
        }
        rows.push((start, items.len(), row_w));

        let mut positions = vec![(0, 0); items.len()];
        for (r, (first, end, row_w)) in rows.iter().enumerate() {
            let mut x = ((width - row_w) / 2).max(LEGEND_PAD);
            let y = LEGEND_PAD + ROW_H / 2 + r as i32 * ROW_H;
            for i in *first..*end {
                positions[i] = (x, y);
                x += widths[i] + ITEM_GAP;
            }
        }
        let height = (2 * LEGEND_PAD + rows.len() as i32 * ROW_H) as u32;
        Ok(Legend { items, positions, height })
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        draw_legend(area, &self.items, &self.positions)
    }
}

fn draw_legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, items: &[LegendItem], positions: &[(i32, i32)]) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let text_style = TextStyle::from((FONT, LEGEND_PX)).pos(Pos::new(HPos::Left, VPos::Center));
    for (item, &(x, y)) in items.iter().zip(positions) {
        let (x1, mid) = (x + SWATCH_W, x + SWATCH_W / 2);
        let line = |color: RGBColor| PathElement::new(vec![(x, y), (x1, y)], color.stroke_width(LINE_PX));
        match item.swatch {
            Swatch::Band(color) => {
                area.draw(&Rectangle::new([(x, y - 16), (x1, y + 16)], color.mix(BAND_ALPHA).filled()))?;
                area.draw(&line(color))?;
                draw_marker(area, (mid, y), Marker::Circle, color)?;
            }
            Swatch::Dashed(color) => {
                area.draw(&DashedPathElement::new(vec![(x, y), (x1, y)], 14, 9, color.stroke_width(3)))?;
            }
            Swatch::Line(color, marker, dashed) => {
                if dashed {
                    area.draw(&DashedPathElement::new(vec![(x, y), (x1, y)], 16, 8, color.stroke_width(LINE_PX)))?;
                } else {
                    area.draw(&line(color))?;
                }
                draw_marker(area, (mid, y), marker, color)?;
            }
            Swatch::Dots(color) => {
                for dx in [10, 30, 50] {
                    area.draw(&Circle::new((x + dx, y + (dx % 20) - 5), 5, color.mix(0.6).filled()))?;
                }
            }
            Swatch::Box(color) => {
                area.draw(&Rectangle::new([(x + 10, y - 16), (x1 - 10, y + 16)], color.mix(0.3).filled()))?;
                area.draw(&Rectangle::new([(x + 10, y - 16), (x1 - 10, y + 16)], color.stroke_width(3)))?;
            }
            Swatch::Whisker => {
                let style = BASELINE_COLOR.stroke_width(3);
                area.draw(&PathElement::new(vec![(mid, y - 20), (mid, y + 20)], style))?;
                area.draw(&PathElement::new(vec![(mid - 10, y - 20), (mid + 10, y - 20)], style))?;
                area.draw(&PathElement::new(vec![(mid - 10, y + 20), (mid + 10, y + 20)], style))?;
            }
            Swatch::MedianBar => {
                area.draw(&PathElement::new(vec![(x + 10, y), (x1 - 10, y)], BASELINE_COLOR.stroke_width(6)))?;
            }
            Swatch::MeanMarker => draw_mean_marker(area, (mid, y))?,
        }
        area.draw(&Text::new(item.label.clone(), (x1 + SWATCH_GAP, y), text_style.clone()))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Metric vs time.

fn metric_legend(results: &Results, series: &[Series<'_>]) -> Vec<LegendItem> {
    let mut items: Vec<LegendItem> =
        series.iter().enumerate().map(|(i, s)| LegendItem { swatch: Swatch::Band(palette(i)), label: format!("{}: median, 5–95 %", s.label()) }).collect();
    if results.fp_baseline.is_some() {
        items.push(LegendItem { swatch: Swatch::Dashed(BASELINE_COLOR), label: "floating point".to_string() });
    }
    items
}

fn draw_metric_vs_time<DB: DrawingBackend>(chart_area: &DrawingArea<DB, Shift>, results: &Results, series: &[Series<'_>]) -> DrawResult
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

    for (i, s) in series.iter().enumerate() {
        let color = palette(i);
        let at = |p: &Point, v: f64| (axis.x(p.t_inf), v * scale);
        let points: Vec<&Point> = s.points.iter().copied().filter(|p| p.t_inf.is_finite()).collect();
        if points.len() >= 2 {
            let band: Vec<(f64, f64)> = points.iter().map(|p| at(p, p.summary.p95)).chain(points.iter().rev().map(|p| at(p, p.summary.p05))).collect();
            plot.draw(&Polygon::new(band, color.mix(BAND_ALPHA).filled()))?;
        } else if let Some(p) = points.first() {
            // A band needs two times; a single time shows its 5–95 % range as a bar.
            let half = 0.02 * (axis.hi - axis.lo);
            let (x, lo) = at(p, p.summary.p05);
            let hi = p.summary.p95 * scale;
            plot.draw(&Rectangle::new([(x - half, lo), (x + half, hi)], color.mix(BAND_ALPHA).filled()))?;
        }
        let medians: Vec<(f64, f64)> = points.iter().map(|p| at(p, p.summary.median)).collect();
        plot.draw(&PathElement::new(medians.clone(), color.stroke_width(LINE_PX)))?;
        for m in medians {
            draw_marker(plot, m, Marker::Circle, color)?;
        }
    }
    if let Some(fp) = results.fp_baseline {
        let y = fp * scale;
        plot.draw(&DashedPathElement::new(vec![(axis.lo, y), (axis.hi, y)], 14, 9, BASELINE_COLOR.stroke_width(3)))?;
    }
    Ok(())
}

fn draw_metric_vs_features<DB: DrawingBackend>(chart_area: &DrawingArea<DB, Shift>, results: &Results) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let scale = metric_scale(results);
    let axis = x_axis(results);
    let log = axis.as_ref().is_some_and(|a| a.log);
    let feats = axis.map(|a| a.values).unwrap_or_default();
    let lines = feature_lines(results);
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

/// The knobs of the sensitivity plot, in order.
fn sensitivity_knobs(results: &Results) -> Vec<String> {
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
fn draw_sensitivity<DB: DrawingBackend>(chart_area: &DrawingArea<DB, Shift>, results: &Results) -> DrawResult
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
        "relative noise level (noise-scale factor, or quantisation step 2^−Δbits; 1 = the file)",
        y_range,
        &metric_axis_label(results),
    )?;
    let plot = chart.plotting_area();
    for (i, knob) in sensitivity_knobs(results).iter().enumerate() {
        let color = palette(i);
        let pts: Vec<_> = b.sensitivity.iter().filter(|k| &k.knob == knob).collect();
        if pts.len() >= 2 {
            let band: Vec<(f64, f64)> = pts.iter().map(|k| (k.rel, k.p95 * scale)).chain(pts.iter().rev().map(|k| (k.rel, k.p05 * scale))).collect();
            plot.draw(&Polygon::new(band, color.mix(BAND_ALPHA).filled()))?;
        }
        let line: Vec<(f64, f64)> = pts.iter().map(|k| (k.rel, k.median * scale)).collect();
        plot.draw(&PathElement::new(line.clone(), color.stroke_width(LINE_PX)))?;
        for m in line {
            draw_marker(plot, m, Marker::Circle, color)?;
        }
    }
    Ok(())
}

/// The budget's groups (one per point and time), in results order.
fn budget_groups(results: &Results) -> Vec<String> {
    results.budget.iter().map(|b| if b.series.is_empty() { b.time_label.clone() } else { format!("{}, {}", b.series, b.time_label) }).collect()
}

/// Grouped bars: per source (and "all" and the interaction) one bar per point and time, its
/// height the cost alone, a whisker its paired interval.
fn draw_budget<DB: DrawingBackend>(chart_area: &DrawingArea<DB, Shift>, results: &Results) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let scale = metric_scale(results);
    let Some(first) = results.budget.first() else { return Ok(()) };
    // Short tick labels: eight or more categories share 1600 px.
    let short = |s: &str| match s {
        "programming" => "prog.".to_string(),
        "output_noise" => "out noise".to_string(),
        "weight_noise" => "w noise".to_string(),
        "ir_drop" => "IR drop".to_string(),
        other => other.replace('_', " "),
    };
    let mut cats: Vec<String> = vec!["all".into()];
    cats.extend(first.sources.iter().map(|s| short(&s.source)));
    cats.push("interact.".into());
    let groups = results.budget.len();
    let ticks: Vec<(f64, String)> = cats.iter().enumerate().map(|(i, c)| (i as f64, c.clone())).collect();
    let values = results
        .budget
        .iter()
        .flat_map(|b| [b.cost_lo, b.cost_hi, b.interaction, 0.0].into_iter().chain(b.sources.iter().flat_map(|s| [s.alone_lo, s.alone_hi])));
    let y_range = padded(values.map(|v| v * scale));
    let unit = if is_classifier(results) { "accuracy drop (points)".to_string() } else { format!("increase of the {}", results.metric) };
    let chart = build_chart(
        chart_area,
        None,
        (-0.6, cats.len() as f64 - 0.4),
        &ticks,
        "noise source (on alone); all: every source; interact.: all − Σ alone",
        y_range,
        &unit,
    )?;
    let plot = chart.plotting_area();
    let width = 0.8 / groups as f64;
    for (g, b) in results.budget.iter().enumerate() {
        let color = palette(g);
        let mut bars: Vec<(f64, Option<(f64, f64)>)> = vec![(b.cost, Some((b.cost_lo, b.cost_hi)))];
        bars.extend(b.sources.iter().map(|s| (s.alone, Some((s.alone_lo, s.alone_hi)))));
        bars.push((b.interaction, None));
        for (i, (v, ci)) in bars.into_iter().enumerate() {
            let x0 = i as f64 - 0.4 + g as f64 * width;
            let (lo, hi) = if v >= 0.0 { (0.0, v * scale) } else { (v * scale, 0.0) };
            plot.draw(&Rectangle::new([(x0 + 0.1 * width, lo), (x0 + 0.9 * width, hi)], color.filled()))?;
            if let Some((a, c)) = ci {
                let xm = x0 + 0.5 * width;
                plot.draw(&PathElement::new(vec![(xm, a * scale), (xm, c * scale)], BASELINE_COLOR.stroke_width(3)))?;
            }
        }
    }
    plot.draw(&PathElement::new(vec![(-0.6, 0.0), (cats.len() as f64 - 0.4, 0.0)], BASELINE_COLOR.stroke_width(2)))?;
    Ok(())
}

/// A note in the middle of an empty chart, so an empty run reads as empty rather than broken.
pub(super) fn draw_no_data<DB: DrawingBackend, CT: CoordTranslate>(plot: &DrawingArea<DB, CT>) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let (w, h) = plot.dim_in_pixel();
    let style = TextStyle::from((FONT, AXIS_PX)).color(&BASELINE_COLOR).pos(Pos::new(HPos::Center, VPos::Center));
    plot.strip_coord_spec().draw(&Text::new("no points recorded", (w as i32 / 2, h as i32 / 2), style))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Per-trial distribution.

/// Panel grid (rows, columns) for `n` series: stacked up to three, then two columns.
fn distribution_grid(n: usize) -> (usize, usize) {
    match n {
        0 | 1 => (1, 1),
        2 | 3 => (n, 1),
        _ => (n.div_ceil(2), 2),
    }
}

/// Every `stride`-th trial, so at most [`MAX_DOTS`] are drawn per time.
fn dot_stride(trials: usize) -> usize {
    trials.div_ceil(MAX_DOTS).max(1)
}

/// The stride between drawn trials, the same for every point so dot density compares.
fn distribution_stride(results: &Results) -> usize {
    results.points.iter().map(|p| dot_stride(p.per_trial.len())).max().unwrap_or(1)
}

fn distribution_legend(results: &Results) -> Vec<LegendItem> {
    let stride = distribution_stride(results);
    let dots_label = if stride > 1 { format!("trials (1 in {stride} shown)") } else { "trials".to_string() };
    vec![
        LegendItem { swatch: Swatch::Dots(palette(0)), label: dots_label },
        LegendItem { swatch: Swatch::Box(palette(0)), label: "5–95 %".to_string() },
        LegendItem { swatch: Swatch::Whisker, label: "1–99 %".to_string() },
        LegendItem { swatch: Swatch::MedianBar, label: "median".to_string() },
        LegendItem { swatch: Swatch::MeanMarker, label: "mean".to_string() },
    ]
}

fn draw_distribution<DB: DrawingBackend>(panels_area: &DrawingArea<DB, Shift>, results: &Results, series: &[Series<'_>]) -> DrawResult
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
            .flat_map(|p| [p.summary.min, p.summary.max, p.summary.p01, p.summary.p99].into_iter().chain(p.per_trial.iter().copied()).map(|v| v * scale)),
    );
    let (rows, cols) = distribution_grid(series.len());
    let panels = panels_area.split_evenly((rows, cols));
    let y_desc = metric_axis_label(results);

    for (i, (s, panel)) in series.iter().zip(&panels).enumerate() {
        // The shared x description is written once, under the bottom row.
        let x_desc = if i / cols + 1 == rows { "time after programming" } else { "" };
        draw_distribution_panel(panel, s, scale, stride, palette(i), y_range, (x_desc, &y_desc))?;
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
/// whiskers and the mean, and beside it the trials as a strip of dots.
fn draw_distribution_panel<DB: DrawingBackend>(
    panel: &DrawingArea<DB, Shift>,
    series: &Series<'_>,
    scale: f64,
    stride: usize,
    color: RGBColor,
    y_range: (f64, f64),
    (x_desc, y_desc): (&str, &str),
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

// ---------------------------------------------------------------------------------------------
// Per-layer values vs time: effective-weight error, and the error each layer adds.

/// One line of a per-layer plot: colour tells the series, marker shape and dashing the layer.
struct LayerLine<'a> {
    label: String,
    color: RGBColor,
    marker: Marker,
    dashed: bool,
    points: &'a [&'a Point],
    layer: usize,
}

/// The layers a point has weight-error data for.
fn weight_error_layers(p: &Point) -> Vec<usize> {
    p.weight_error.iter().map(|w| w.layer).collect()
}

/// The layers a point has layer-insight data for.
fn insight_layers(p: &Point) -> Vec<usize> {
    p.layer_insight.iter().map(|w| w.layer).collect()
}

/// One line per (series, layer); `name_of` names a layer in the legend.
fn layer_lines<'a>(series: &'a [Series<'a>], layers_of: &dyn Fn(&Point) -> Vec<usize>, name_of: &dyn Fn(usize) -> String) -> Vec<LayerLine<'a>> {
    let mut lines = Vec::new();
    for (i, s) in series.iter().enumerate() {
        let mut layers: Vec<usize> = s.points.iter().flat_map(|p| layers_of(p)).collect();
        layers.sort_unstable();
        layers.dedup();
        for (k, layer) in layers.into_iter().enumerate() {
            lines.push(LayerLine {
                label: format!("{}, layer {}", s.label(), name_of(layer)),
                color: palette(i),
                marker: MARKERS[k % MARKERS.len()],
                dashed: k % 2 == 1,
                points: &s.points,
                layer,
            });
        }
    }
    lines
}

fn draw_layer_lines<DB: DrawingBackend>(
    chart_area: &DrawingArea<DB, Shift>,
    series: &[Series<'_>],
    layers_of: &dyn Fn(&Point) -> Vec<usize>,
    value: &dyn Fn(&Point, usize) -> Option<f64>,
    y_label: &str,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let with_data: Vec<&Point> = series.iter().flat_map(|s| s.points.iter().copied()).filter(|p| !layers_of(p).is_empty()).collect();
    let axis = TimeAxis::new(&with_data, plot_width(chart_area.dim_in_pixel().0));
    let values: Vec<f64> = with_data.iter().flat_map(|p| layers_of(p).into_iter().filter_map(|l| value(p, l))).collect();
    // Errors are non-negative; starting at zero shows their size honestly.
    let y_range = {
        let (lo, hi) = padded(values.into_iter().chain([0.0]));
        (lo.max(0.0), hi)
    };
    let chart = build_chart(chart_area, None, (axis.lo, axis.hi), &axis.ticks, axis.description(), y_range, y_label)?;
    let plot = chart.plotting_area();
    for line in layer_lines(series, layers_of, &|l| l.to_string()) {
        let coords: Vec<(f64, f64)> =
            line.points.iter().filter(|p| p.t_inf.is_finite()).filter_map(|p| Some((axis.x(p.t_inf), value(p, line.layer)?))).collect();
        let style = line.color.stroke_width(LINE_PX);
        if line.dashed {
            plot.draw(&DashedPathElement::new(coords.clone(), 16, 8, style))?;
        } else {
            plot.draw(&PathElement::new(coords.clone(), style))?;
        }
        for c in coords {
            draw_marker(plot, c, line.marker, line.color)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degenerate_ranges_are_widened() {
        assert_eq!(padded([]), (0.0, 1.0));
        assert_eq!(padded([f64::NAN]), (0.0, 1.0));
        let (lo, hi) = padded([90.0, 90.0]);
        assert!(lo < 90.0 && hi > 90.0);
        assert_eq!(padded([0.0]), (-1.0, 1.0));
        let (lo, hi) = padded([1.0, 2.0]);
        assert!((lo - 0.92).abs() < 1e-12 && (hi - 2.08).abs() < 1e-12);
    }

    #[test]
    fn crowded_tick_labels_are_thinned() {
        let ticks: Vec<(f64, String)> = (0..20).map(|i| (f64::from(i), format!("{i} month"))).collect();
        let kept = thin_ticks(ticks, 0.0, 19.0, 1300.0);
        assert!(kept.len() < 20 && kept.len() >= 4, "{kept:?}");
        assert_eq!(kept[0].1, "0 month");
    }

    #[test]
    fn tick_decimals_follow_the_span() {
        assert_eq!(tick_decimals(10.0), 0);
        assert_eq!(tick_decimals(1.0), 1);
        assert_eq!(tick_decimals(0.08), 2);
    }
}
