//! The canvas every figure draws on: size, fonts (embedded, so every machine renders the same
//! pixels), palette and markers, tick and axis helpers, the chart frames, and the legend below the
//! chart. Figures ([`super::Figure`]) use these and never the other way round.

use std::sync::OnceLock;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, FontStyle};

use crate::report::error::ReportError;
use crate::results::*;

/// DejaVu Sans, registered under the generic family name so that the SVG files ask the browser
/// for its own sans-serif font instead of naming one the reader may not have.
pub(crate) const FONT_BYTES: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");

pub(crate) const FONT: &str = "sans-serif";

/// Canvas of the single-panel plots; a 1600 px plot printed one column wide (~8.5 cm) scales
/// text by ~0.2, so 36 px tick labels still print at about 7 pt.
pub(crate) const WIDTH: u32 = 1600;

pub(crate) const HEIGHT: u32 = 1000;

/// Text sizes in pixels (plotters' size: ascender to descender in the PNG; the SVG font-size,
/// which is the em size, comes out 1.24 times smaller, so 36 px ticks are 29 px there).
pub(crate) const TICK_PX: u32 = 36;

pub(crate) const AXIS_PX: u32 = 40;

pub(crate) const TITLE_PX: u32 = 44;

pub(crate) const LEGEND_PX: u32 = 36;

/// Room reserved beside the plotting area for tick labels plus the axis description.
pub(crate) const X_LABEL_AREA: u32 = 130;

pub(crate) const Y_LABEL_AREA: u32 = 175;

pub(crate) const CHART_MARGIN: u32 = 24;

/// Extra room on the right so the last tick label is not cut off.
pub(crate) const CHART_MARGIN_RIGHT: u32 = 70;

pub(crate) const LINE_PX: u32 = 4;

pub(crate) const MARKER_PX: i32 = 9;

/// Opacity of the 5–95 % bands: light enough that overlapping bands stay readable.
pub(crate) const BAND_ALPHA: f64 = 0.18;

pub(crate) const BASELINE_COLOR: RGBColor = RGBColor(40, 40, 40);

pub(crate) const BOLD_GRID: RGBColor = RGBColor(200, 200, 200);

pub(crate) const LIGHT_GRID: RGBColor = RGBColor(236, 236, 236);

/// Okabe & Ito (2008) colour-blind-safe palette, without its yellow (too faint on white).
pub(crate) const PALETTE: [RGBColor; 6] =
    [RGBColor(0, 114, 178), RGBColor(213, 94, 0), RGBColor(0, 158, 115), RGBColor(204, 121, 167), RGBColor(230, 159, 0), RGBColor(86, 180, 233)];

/// Marker shapes told apart without colour (layers in the weight-error plot).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Marker {
    Circle,
    Triangle,
    Square,
    Diamond,
}

pub(crate) const MARKERS: [Marker; 4] = [Marker::Circle, Marker::Triangle, Marker::Square, Marker::Diamond];

pub(crate) type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Registers the embedded font once per process; plotters keeps it in a global table.
pub(crate) fn ensure_font() -> Result<(), ReportError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok());
    if ok {
        Ok(())
    } else {
        Err(ReportError::Font)
    }
}

pub(crate) fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

pub(crate) fn palette(index: usize) -> RGBColor {
    PALETTE[index % PALETTE.len()]
}

/// A series' colour and marker: the palette's six colours with circles, then again with the next
/// marker shape, so series past the sixth are still told apart.
pub(crate) fn series_style(index: usize) -> (RGBColor, Marker) {
    (palette(index), MARKERS[(index / PALETTE.len()) % MARKERS.len()])
}

/// Pads a data range so that lines and markers do not sit on the frame, and widens an empty or
/// single-valued range (one point, one trial, identical trials) into a drawable one.
pub(crate) fn padded(values: impl IntoIterator<Item = f64>) -> (f64, f64) {
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
pub(crate) fn tick_decimals(span: f64) -> usize {
    let step = span / 8.0;
    if !(step.is_finite() && step > 0.0) {
        return 2;
    }
    (-step.log10().floor()).clamp(0.0, 8.0) as usize
}

/// Greedy left-to-right thinning of tick labels so that none overlap: a label is kept when it
/// clears the previous kept one by a gap. Widths are estimated from the character count
/// (DejaVu Sans averages ~0.55 em per character), which is the same for PNG and SVG.
pub(crate) fn thin_ticks(ticks: Vec<(f64, String)>, lo: f64, hi: f64, width_px: f64) -> Vec<(f64, String)> {
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
pub(crate) struct TimeAxis {
    pub(crate) log: bool,
    pub(crate) lo: f64,
    pub(crate) hi: f64,
    pub(crate) ticks: Vec<(f64, String)>,
}

impl TimeAxis {
    pub(crate) fn new(points: &[&Point], width_px: f64) -> Self {
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

    pub(crate) fn x(&self, t: f64) -> f64 {
        if self.log {
            t.log10()
        } else {
            t
        }
    }

    pub(crate) fn description(&self) -> &'static str {
        if self.log {
            "time after programming (log scale)"
        } else {
            "time after programming (s)"
        }
    }
}

/// Width in pixels of the plotting area inside a chart area of `width`.
pub(crate) fn plot_width(width: u32) -> f64 {
    f64::from(width.saturating_sub(Y_LABEL_AREA + CHART_MARGIN + CHART_MARGIN_RIGHT).max(1))
}

/// A linear f64 axis whose ticks are exactly the given positions (the sweep's times), with no
/// minor grid lines between them. plotters' own key-point wrapper drops the label formatting of
/// f64 axes, hence this small axis type.
pub(crate) struct TickedAxis {
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

pub(crate) type TimeChart<'a, DB> = ChartContext<'a, DB, Cartesian2d<TickedAxis, RangedCoordf64>>;

/// A chart whose x axis is `axis` (time, or categorical positions) with its own tick labels and
/// whose y axis spans `y_range`, with the common grid, fonts and axis descriptions.
pub(crate) fn build_chart<'a, DB: DrawingBackend>(
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

    // A description longer than its panel would run into the next one (it may reach into the
    // panel's margins, centred on the plotting area): whole words that fit, the cut marked (the
    // figure's title carries the full metric name).
    let (w, h) = area.dim_in_pixel();
    let y_desc = fit_words(y_desc, AXIS_PX, h.saturating_sub(2 * CHART_MARGIN));
    let x_desc = fit_words(x_desc, AXIS_PX, w.saturating_sub(2 * CHART_MARGIN));
    let x_label = |x: &f64| ticks.iter().min_by(|a, b| (a.0 - x).abs().total_cmp(&(b.0 - x).abs())).map(|(_, label)| label.clone()).unwrap_or_default();
    let decimals = tick_decimals(y_range.1 - y_range.0);
    let y_label = |y: &f64| format!("{y:.decimals$}");
    chart
        .configure_mesh()
        .x_desc(x_desc.as_str())
        .y_desc(y_desc.as_str())
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

pub(crate) fn draw_marker<DB: DrawingBackend, CT: CoordTranslate>(area: &DrawingArea<DB, CT>, at: CT::From, marker: Marker, color: RGBColor) -> DrawResult
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
pub(crate) fn draw_mean_marker<DB: DrawingBackend, CT: CoordTranslate>(area: &DrawingArea<DB, CT>, at: CT::From) -> DrawResult
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

pub(crate) enum Swatch {
    /// Median line with marker over its 5–95 % band.
    Band(RGBColor, Marker),
    Dashed(RGBColor),
    /// Line with marker; dashed for every other layer in the weight-error plot.
    Line(RGBColor, Marker, bool),
    Dots(RGBColor),
    Box(RGBColor),
    Whisker,
    MedianBar,
    MeanMarker,
    /// No swatch: a note on what the plot leaves out.
    Note,
}

impl Swatch {
    /// Series `index`'s band swatch, in its [`series_style`].
    pub(crate) fn band(index: usize) -> Swatch {
        let (color, marker) = series_style(index);
        Swatch::Band(color, marker)
    }
}

pub(crate) struct LegendItem {
    pub(super) swatch: Swatch,
    pub(super) label: String,
}

pub(crate) const SWATCH_W: i32 = 70;

pub(crate) const SWATCH_GAP: i32 = 14;

pub(crate) const ITEM_GAP: i32 = 56;

pub(crate) const ROW_H: i32 = 50;

pub(crate) const LEGEND_PAD: i32 = 16;

/// A legend laid out in centred rows that wrap at the canvas width.
pub(crate) struct Legend {
    pub(crate) items: Vec<LegendItem>,
    /// Left x and centre y of each item.
    pub(crate) positions: Vec<(i32, i32)>,
    pub(crate) height: u32,
}

impl Legend {
    /// Lays out `items`, measuring labels with the embedded font itself, so the layout (and the
    /// canvas height that depends on it) is known before any backend exists and is the same
    /// for PNG and SVG.
    pub(crate) fn new(items: Vec<LegendItem>) -> Result<Self, Box<dyn std::error::Error>> {
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

    pub(crate) fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        draw_legend(area, &self.items, &self.positions)
    }
}

pub(crate) fn draw_legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, items: &[LegendItem], positions: &[(i32, i32)]) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let text_style = TextStyle::from((FONT, LEGEND_PX)).pos(Pos::new(HPos::Left, VPos::Center));
    for (item, &(x, y)) in items.iter().zip(positions) {
        let (x1, mid) = (x + SWATCH_W, x + SWATCH_W / 2);
        let line = |color: RGBColor| PathElement::new(vec![(x, y), (x1, y)], color.stroke_width(LINE_PX));
        match item.swatch {
            Swatch::Band(color, marker) => {
                area.draw(&Rectangle::new([(x, y - 16), (x1, y + 16)], color.mix(BAND_ALPHA).filled()))?;
                area.draw(&line(color))?;
                draw_marker(area, (mid, y), marker, color)?;
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
            Swatch::Note => {}
        }
        area.draw(&Text::new(item.label.clone(), (x1 + SWATCH_GAP, y), text_style.clone()))?;
    }
    Ok(())
}

/// A note in the middle of an empty chart, so an empty run reads as empty rather than broken.
pub(crate) fn draw_no_data<DB: DrawingBackend, CT: CoordTranslate>(plot: &DrawingArea<DB, CT>) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let (w, h) = plot.dim_in_pixel();
    let style = TextStyle::from((FONT, AXIS_PX)).color(&BASELINE_COLOR).pos(Pos::new(HPos::Center, VPos::Center));
    plot.strip_coord_spec().draw(&Text::new("no points recorded", (w as i32 / 2, h as i32 / 2), style))?;
    Ok(())
}

/// One axis: its range, its ticks (position and label) and its description.
pub(crate) struct AxisSpec {
    pub(crate) lo: f64,
    pub(crate) hi: f64,
    pub(crate) ticks: Vec<(f64, String)>,
    pub(crate) desc: String,
}

pub(crate) type MoeChart<'a, DB> = ChartContext<'a, DB, Cartesian2d<TickedAxis, TickedAxis>>;

/// A chart with the given ticks on both axes, in the style of the other plots (fonts, grid,
/// margins). `grid` turns the (x, y) grid lines on; `y_label_area` is the room left of the plot.
pub(crate) fn ticked_chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    x: &AxisSpec,
    y: &AxisSpec,
    y_label_area: u32,
    grid: (bool, bool),
) -> Result<MoeChart<'a, DB>, Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let axis = |a: &AxisSpec| TickedAxis { lo: a.lo, hi: a.hi, ticks: a.ticks.iter().map(|(v, _)| *v).collect() };
    let mut chart = ChartBuilder::on(area)
        .margin(CHART_MARGIN)
        .margin_top(CHART_MARGIN + TICK_PX / 2)
        .margin_right(CHART_MARGIN_RIGHT)
        .x_label_area_size(X_LABEL_AREA)
        .y_label_area_size(y_label_area)
        .build_cartesian_2d(axis(x), axis(y))?;

    let nearest =
        |ticks: &[(f64, String)], v: f64| ticks.iter().min_by(|a, b| (a.0 - v).abs().total_cmp(&(b.0 - v).abs())).map(|(_, l)| l.clone()).unwrap_or_default();
    let x_label = |v: &f64| nearest(&x.ticks, *v);
    let y_label = |v: &f64| nearest(&y.ticks, *v);
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(x.desc.as_str())
        .y_desc(y.desc.as_str())
        .label_style((FONT, TICK_PX))
        .axis_desc_style((FONT, AXIS_PX))
        .x_labels(x.ticks.len().max(1))
        .y_labels(y.ticks.len().max(1))
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .bold_line_style(BOLD_GRID.stroke_width(1))
        .light_line_style(LIGHT_GRID.stroke_width(1))
        .axis_style(BLACK.stroke_width(2))
        .set_all_tick_mark_size(10);
    if !grid.0 {
        mesh.disable_x_mesh();
    }
    if !grid.1 {
        mesh.disable_y_mesh();
    }
    mesh.draw()?;
    Ok(chart)
}

/// Height in pixels of the plotting area of a [`ticked_chart`] in an area `height` tall.
pub(crate) fn plot_height(height: u32) -> f64 {
    f64::from(height.saturating_sub(2 * CHART_MARGIN + TICK_PX / 2 + X_LABEL_AREA).max(1))
}

/// About `target` ticks within [lo, hi] at round values (span / target rounded to 1, 2 or 5 ×
/// 10^k apart), labelled with as many decimals as the step needs.
pub(crate) fn linear_ticks(lo: f64, hi: f64, target: f64) -> Vec<(f64, String)> {
    let span = hi - lo;
    if !(span.is_finite() && span > 0.0) {
        return Vec::new();
    }
    let raw = span / target;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = magnitude
        * match raw / magnitude {
            f if f < 1.5 => 1.0,
            f if f < 3.0 => 2.0,
            f if f < 7.0 => 5.0,
            _ => 10.0,
        };
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    let first = (lo / step).ceil() as i64;
    (first..)
        .map(|k| k as f64 * step)
        .take_while(|v| *v <= hi + 1e-9 * step)
        .map(|v| {
            let v = if v.abs() < 1e-9 * step { 0.0 } else { v };
            (v, format!("{v:.decimals$}"))
        })
        .collect()
}

/// Ticks of a log10 axis (positions are log10 of the value) spanning [lo, hi]: every decade, and
/// 2 and 5 between them when fewer than three decades are in range.
pub(crate) fn log_ticks(lo: f64, hi: f64) -> Vec<(f64, String)> {
    let decades: Vec<i32> = ((lo.ceil() as i32)..=(hi.floor() as i32)).collect();
    let mantissas: &[f64] = if decades.len() >= 3 { &[1.0] } else { &[1.0, 2.0, 5.0] };
    let mut ticks = Vec::new();
    for k in (lo.floor() as i32)..=(hi.ceil() as i32) {
        for &m in mantissas {
            let at = m.log10() + f64::from(k);
            if (lo..=hi).contains(&at) {
                ticks.push((at, log_label(m, k)));
            }
        }
    }
    ticks
}

/// m × 10^k as plain digits ("0.05", "1", "200") when short, else with a power of ten ("10⁶").
pub(crate) fn log_label(m: f64, k: i32) -> String {
    if (-3..=4).contains(&k) {
        let decimals = (-k).max(0) as usize;
        format!("{:.decimals$}", m * 10f64.powi(k))
    } else {
        const SUPERSCRIPTS: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
        let digits: String = k.unsigned_abs().to_string().chars().map(|c| SUPERSCRIPTS[c.to_digit(10).unwrap_or(0) as usize]).collect();
        let power = format!("10{}{digits}", if k < 0 { "⁻" } else { "" });
        if m == 1.0 {
            power
        } else {
            format!("{m}×{power}")
        }
    }
}

/// Ticks at integer positions 0..n, every 1, 2, 5, 10, ... so that labels `label_px` apart fit on
/// an axis `length_px` long.
pub(crate) fn index_ticks(n: usize, length_px: f64, label_px: f64) -> Vec<(f64, String)> {
    let per_index = length_px / n.max(1) as f64;
    let stride = [1, 2, 5].iter().flat_map(|m| (0..7).map(move |e| m * 10usize.pow(e))).filter(|s| *s as f64 * per_index >= label_px).min().unwrap_or(1);
    (0..n).step_by(stride.max(1)).map(|i| (i as f64, i.to_string())).collect()
}

/// Text centred vertically, starting at its anchor.
pub(crate) fn left_text(px: u32) -> TextStyle<'static> {
    TextStyle::from((FONT, px)).color(&BASELINE_COLOR).pos(Pos::new(HPos::Left, VPos::Center))
}

/// Width in pixels of `text` in the embedded font at `px` (estimated if the font cannot say).
pub(crate) fn text_width(text: &str, px: u32) -> u32 {
    let font = FontDesc::from((FONT, f64::from(px)));
    font.box_size(text).map(|(w, _)| w).unwrap_or_else(|_| (text.chars().count() as f64 * 0.62 * f64::from(px)) as u32)
}

/// `wrap(label)`, with `label` shortened in the middle ("mapping=gre…tiers=8", which keeps the
/// distinguishing ends of sweep labels) until the whole text fits in `max_px` at `px`.
pub(crate) fn fitted(label: &str, px: u32, max_px: u32, wrap: impl Fn(&str) -> String) -> String {
    let chars: Vec<char> = label.chars().collect();
    let mut keep = chars.len();
    loop {
        let shown = if keep == chars.len() {
            label.to_string()
        } else {
            let head = keep.div_ceil(2);
            let tail = keep - head;
            let mut s: String = chars[..head].iter().collect();
            s.push('…');
            s.extend(&chars[chars.len() - tail..]);
            s
        };
        let text = wrap(&shown);
        if keep <= 8 || text_width(&text, px) <= max_px {
            return text;
        }
        keep -= 1;
    }
}

/// The leading whole words of `label` that fit in `max_px` at `px`, an ellipsis marking the cut
/// (all of it when it fits; at least the first word). A trailing unit such as "(%)" is kept.
pub(crate) fn fit_words(label: &str, px: u32, max_px: u32) -> String {
    if text_width(label, px) <= max_px {
        return label.to_string();
    }
    let (head, unit) = match label.rsplit_once(' ') {
        Some((h, u)) if u.starts_with('(') && u.ends_with(')') && u.chars().count() <= 6 => (h, format!(" {u}")),
        _ => (label, String::new()),
    };
    let mut kept = String::new();
    for word in head.split(' ') {
        let next = if kept.is_empty() { word.to_string() } else { format!("{kept} {word}") };
        if !kept.is_empty() && text_width(&format!("{next} …{unit}"), px) > max_px {
            break;
        }
        kept = next;
    }
    format!("{kept} …{unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_descriptions_keep_the_words_that_fit() {
        let long = "relative MVM error ‖y − W x‖/‖W x‖";
        assert_eq!(fit_words(long, AXIS_PX, 10_000), long);
        let short = fit_words(long, AXIS_PX, text_width("relative MVM error …", AXIS_PX) + 5);
        assert_eq!(short, "relative MVM error …");
        assert_eq!(fit_words(long, AXIS_PX, 1), "relative …");
        // The unit stays.
        assert_eq!(fit_words("test accuracy (transformer) (%)", AXIS_PX, 1), "test … (%)");
    }

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
