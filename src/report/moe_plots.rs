//! The plots of the MoE / 3D-tier workload (tiers-energy spec): the energy per token by component,
//! the AIMC / GPU ratios against batch size, the per-token latency histogram and the heat map of
//! tier use. They exist only when some point carries a [`MoeCost`], so the reports of the other
//! workloads do not change.
//!
//! Like the other plots these only read [`Results`]: apart from unit scaling (pJ → nJ, counts →
//! shares of tokens, ratios → their logarithm on a log axis) and layout they compute nothing. They
//! are written through the same path as the others ([`super::plots::write_plots`]), with the same
//! canvas, fonts, palette and legend.

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::format::{energy_unit, significant, time_unit};
use super::plots::{
    draw_marker, draw_no_data, palette, plot_width, thin_ticks, DrawResult, LegendItem, Marker, Swatch, TickedAxis, AXIS_PX, BASELINE_COLOR, BOLD_GRID,
    CHART_MARGIN, CHART_MARGIN_RIGHT, FONT, HEIGHT, LIGHT_GRID, LINE_PX, TICK_PX, TITLE_PX, WIDTH, X_LABEL_AREA, Y_LABEL_AREA,
};
use super::results::EnergyBreakdown;
use super::results::{MoeCost, Point, Results};

/// The latency histogram overlays at most this many distinct histograms; more are unreadable.
const MAX_HISTOGRAMS: usize = 6;
/// Fill opacity under each histogram outline, low so that overlapping ones stay visible.
const HIST_ALPHA: f64 = 0.10;
/// Widest sweep-point label beside a bar, in pixels, before it is shortened with an ellipsis.
const MAX_BAR_LABEL_PX: u32 = 660;
/// Width of the heat map's colour-bar panel (its tick labels and description included).
const COLOUR_BAR_PANEL: u32 = 300;

/// One of the MoE figures, in report order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum MoeFigure {
    /// Stacked bars of the energy per token by component; `bars` points with a cost model.
    EnergyBreakdown {
        bars: usize,
    },
    GpuRatioVsBatch,
    LatencyHistogram,
    TierHeatmap,
}

/// The MoE figures of `results`: all four when some point has a cost model, none otherwise.
pub(super) fn figures(results: &Results) -> Vec<MoeFigure> {
    let bars = moe_points(results).len();
    if bars == 0 {
        return Vec::new();
    }
    vec![MoeFigure::EnergyBreakdown { bars }, MoeFigure::GpuRatioVsBatch, MoeFigure::LatencyHistogram, MoeFigure::TierHeatmap]
}

impl MoeFigure {
    pub(super) fn stem(self) -> &'static str {
        match self {
            MoeFigure::EnergyBreakdown { .. } => "energy_breakdown",
            MoeFigure::GpuRatioVsBatch => "gpu_ratio_vs_batch",
            MoeFigure::LatencyHistogram => "latency_histogram",
            MoeFigure::TierHeatmap => "tier_heatmap",
        }
    }

    pub(super) fn title(self, results: &Results) -> String {
        let points = moe_points(results);
        match self {
            MoeFigure::EnergyBreakdown { .. } => "Energy per token by component (mean over trials)".to_string(),
            MoeFigure::GpuRatioVsBatch => "AIMC against the GPU by batch size (solid: energy efficiency, dashed: throughput)".to_string(),
            MoeFigure::LatencyHistogram => match grouped(&points, histogram_key).len() {
                n if n > MAX_HISTOGRAMS => format!("Per-token latency, all trials pooled (first {MAX_HISTOGRAMS} of {n} distinct histograms)"),
                _ => "Per-token latency, all trials pooled".to_string(),
            },
            MoeFigure::TierHeatmap => match points.first() {
                Some((p, _)) if points.len() > 1 => {
                    let n = points.len();
                    fitted(label(p), TITLE_PX, WIDTH - 80, |l| format!("Tier use of {l} (first of {n} sweep points)"))
                }
                Some((p, _)) if !p.series.is_empty() => fitted(&p.series, TITLE_PX, WIDTH - 80, |l| format!("Tier use of {l}: mean MVMs per tile and tier")),
                _ => "Tier use: mean MVMs per tile and tier".to_string(),
            },
        }
    }

    /// Height above the legend, given the height the single-panel plots use (`base`).
    pub(super) fn chart_height(self, base: u32) -> u32 {
        match self {
            // Bars stay at least ~80 px apart, so their labels never overlap.
            MoeFigure::EnergyBreakdown { bars } => base.max(260 + 80 * bars as u32),
            // No legend below: the colour bar explains the colours.
            MoeFigure::TierHeatmap => HEIGHT,
            _ => base,
        }
    }

    pub(super) fn legend_items(self, results: &Results) -> Vec<LegendItem> {
        let points = moe_points(results);
        match self {
            MoeFigure::EnergyBreakdown { .. } => {
                let present = present_components(&points);
                COMPONENTS
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| present[*k])
                    .map(|(k, name)| LegendItem { swatch: Swatch::Box(palette(k)), label: name.to_string() })
                    .collect()
            }
            MoeFigure::GpuRatioVsBatch => {
                // One point: its colour on the style keys; several: a colour key, then dark style keys.
                let style_color = if points.len() == 1 { palette(0) } else { BASELINE_COLOR };
                let mut items: Vec<LegendItem> = if points.len() > 1 {
                    grouped(&points, gpu_key).into_iter().enumerate().map(|(i, g)| LegendItem { swatch: Swatch::Box(palette(i)), label: g.label }).collect()
                } else {
                    Vec::new()
                };
                items.push(LegendItem {
                    swatch: Swatch::Line(style_color, Marker::Circle, false),
                    label: "energy efficiency: GPU ÷ AIMC energy per token".to_string(),
                });
                items.push(LegendItem { swatch: Swatch::Line(style_color, Marker::Triangle, true), label: "throughput: AIMC ÷ GPU tokens/s".to_string() });
                items.push(LegendItem { swatch: Swatch::MedianBar, label: "parity (ratio 1)".to_string() });
                items
            }
            MoeFigure::LatencyHistogram => {
                let mut items: Vec<LegendItem> = grouped(&points, histogram_key)
                    .into_iter()
                    .take(MAX_HISTOGRAMS)
                    .enumerate()
                    .map(|(i, g)| {
                        let outside = g.cost.latency_hist.underflow + g.cost.latency_hist.overflow;
                        let label = if outside > 0 { format!("{}, {outside} tokens outside the bins", g.label) } else { g.label };
                        LegendItem { swatch: Swatch::Box(palette(i)), label }
                    })
                    .collect();
                items.push(LegendItem { swatch: Swatch::Dashed(BASELINE_COLOR), label: "mean per-token latency (in each colour)".to_string() });
                items
            }
            MoeFigure::TierHeatmap => Vec::new(),
        }
    }

    /// Draws the figure into `area`, the canvas below the title and above the legend.
    pub(super) fn draw<DB: DrawingBackend>(self, area: &DrawingArea<DB, Shift>, results: &Results) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let points = moe_points(results);
        match self {
            MoeFigure::EnergyBreakdown { .. } => draw_energy_breakdown(area, &points),
            MoeFigure::GpuRatioVsBatch => draw_gpu_ratio(area, &grouped(&points, gpu_key)),
            MoeFigure::LatencyHistogram => draw_latency_histogram(area, &grouped(&points, histogram_key)),
            MoeFigure::TierHeatmap => draw_tier_heatmap(area, points.first().map(|(_, m)| *m)),
        }
    }
}

/// The points with a cost model (the first time of each MoE sweep point), in results order.
fn moe_points(results: &Results) -> Vec<(&Point, &MoeCost)> {
    results.points.iter().filter_map(|p| p.moe.as_ref().map(|m| (p, m))).collect()
}

/// Sweep points whose drawn data are identical, drawn once. A sweep axis the data do not depend
/// on (the GPU comparison does not see the tier noise, for instance) would otherwise draw each
/// line exactly over the previous one, leaving only the last colour visible.
struct Group<'a> {
    /// The members' shared `axis=value` labels and their count, or the only member's series.
    label: String,
    /// The first member's cost model (every member's drawn data are the same).
    cost: &'a MoeCost,
}

/// Groups `points` by `key` (what a figure draws of a point), in order of first appearance.
fn grouped<'a, K: PartialEq>(points: &[(&'a Point, &'a MoeCost)], key: impl Fn(&'a MoeCost) -> K) -> Vec<Group<'a>> {
    let mut groups: Vec<(K, Vec<&Point>, &MoeCost)> = Vec::new();
    for &(p, m) in points {
        let k = key(m);
        match groups.iter_mut().find(|g| g.0 == k) {
            Some(g) => g.1.push(p),
            None => groups.push((k, vec![p], m)),
        }
    }
    groups.into_iter().map(|(_, members, cost)| Group { label: group_label(&members), cost }).collect()
}

fn group_label(members: &[&Point]) -> String {
    match members {
        [] => String::new(),
        [only] => label(only).to_string(),
        [first, ..] => {
            let common: Vec<String> =
                first.labels.iter().filter(|(k, v)| members.iter().all(|p| p.labels.get(*k) == Some(v))).map(|(k, v)| format!("{k}={v}")).collect();
            if common.is_empty() {
                format!("{} sweep points", members.len())
            } else {
                format!("{} ({} sweep points)", common.join(", "), members.len())
            }
        }
    }
}

/// What the GPU figure draws of a point: the batch sizes and both ratios.
fn gpu_key(m: &MoeCost) -> Vec<(u32, u64, u64)> {
    m.gpu.iter().map(|g| (g.batch, g.throughput_ratio.to_bits(), g.energy_efficiency_ratio.to_bits())).collect()
}

/// What the latency figure draws of a point: the histogram and the mean.
fn histogram_key(m: &MoeCost) -> (&crate::stats::Histogram, u64) {
    (&m.latency_hist, m.latency_ns.mean.to_bits())
}

/// A point's name in legends and titles; a sweep without axes has one unnamed point.
fn label(point: &Point) -> &str {
    if point.series.is_empty() {
        "all points"
    } else {
        &point.series
    }
}

// ---------------------------------------------------------------------------------------------
// Axes shared by the MoE figures.

/// One axis: its range, its ticks (position and label) and its description.
struct AxisSpec {
    lo: f64,
    hi: f64,
    ticks: Vec<(f64, String)>,
    desc: String,
}

type MoeChart<'a, DB> = ChartContext<'a, DB, Cartesian2d<TickedAxis, TickedAxis>>;

/// A chart with the given ticks on both axes, in the style of the other plots (fonts, grid,
/// margins). `grid` turns the (x, y) grid lines on; `y_label_area` is the room left of the plot.
fn ticked_chart<'a, DB: DrawingBackend>(
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
fn plot_height(height: u32) -> f64 {
    f64::from(height.saturating_sub(2 * CHART_MARGIN + TICK_PX / 2 + X_LABEL_AREA).max(1))
}

/// About `target` ticks within [lo, hi] at round values (span / target rounded to 1, 2 or 5 ×
/// 10^k apart), labelled with as many decimals as the step needs.
fn linear_ticks(lo: f64, hi: f64, target: f64) -> Vec<(f64, String)> {
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
fn log_ticks(lo: f64, hi: f64) -> Vec<(f64, String)> {
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
fn log_label(m: f64, k: i32) -> String {
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
fn index_ticks(n: usize, length_px: f64, label_px: f64) -> Vec<(f64, String)> {
    let per_index = length_px / n.max(1) as f64;
    let stride = [1, 2, 5].iter().flat_map(|m| (0..7).map(move |e| m * 10usize.pow(e))).filter(|s| *s as f64 * per_index >= label_px).min().unwrap_or(1);
    (0..n).step_by(stride.max(1)).map(|i| (i as f64, i.to_string())).collect()
}

/// Text centred vertically, starting at its anchor.
fn left_text(px: u32) -> TextStyle<'static> {
    TextStyle::from((FONT, px)).color(&BASELINE_COLOR).pos(Pos::new(HPos::Left, VPos::Center))
}

// ---------------------------------------------------------------------------------------------
// Energy per token by component.

/// Components of [`EnergyBreakdown`] in stacking order; component k is drawn in `palette(k)`.
const COMPONENTS: [&str; 6] = ["tier MVMs", "communication", "digital units", "attention units", "DRAM (KV cache)", "passive"];

fn components(e: &EnergyBreakdown) -> [f64; 6] {
    [e.mvm_pj, e.communication_pj, e.digital_pj, e.attention_pj, e.dram_pj, e.passive_pj]
}

/// Which components are non-zero at some point (the others are left out of the legend).
fn present_components(points: &[(&Point, &MoeCost)]) -> [bool; 6] {
    let mut present = [false; 6];
    for (_, m) in points {
        for (k, v) in components(&m.energy_per_token).into_iter().enumerate() {
            present[k] |= v > 0.0;
        }
    }
    present
}

/// Width in pixels of `text` in the embedded font at `px` (estimated if the font cannot say).
fn text_width(text: &str, px: u32) -> u32 {
    let font = FontDesc::from((FONT, f64::from(px)));
    font.box_size(text).map(|(w, _)| w).unwrap_or_else(|_| (text.chars().count() as f64 * 0.62 * f64::from(px)) as u32)
}

/// `wrap(label)`, with `label` shortened in the middle ("mapping=gre…tiers=8", which keeps the
/// distinguishing ends of sweep labels) until the whole text fits in `max_px` at `px`.
fn fitted(label: &str, px: u32, max_px: u32, wrap: impl Fn(&str) -> String) -> String {
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

/// One horizontal bar per point (the first at the top), stacked by component, its total at its end.
fn draw_energy_breakdown<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, points: &[(&Point, &MoeCost)]) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let totals: Vec<f64> = points.iter().map(|(_, m)| m.energy_per_token.total_pj.max(components(&m.energy_per_token).iter().sum())).collect();
    let max = totals.iter().copied().filter(|v| v.is_finite()).fold(0.0, f64::max);
    let (unit, div) = energy_unit(max);
    let n = points.len();

    let labels: Vec<String> = points.iter().map(|(p, _)| fitted(label(p), TICK_PX, MAX_BAR_LABEL_PX, str::to_string)).collect();
    let widest = labels.iter().map(|l| text_width(l, TICK_PX)).max().unwrap_or(0);
    let y_label_area = (widest + 40).max(Y_LABEL_AREA);

    // Room right of the longest bar for its total.
    let hi = if max > 0.0 { max / div * 1.2 } else { 1.0 };
    let width_px = f64::from(area.dim_in_pixel().0.saturating_sub(y_label_area + CHART_MARGIN + CHART_MARGIN_RIGHT).max(1));
    let x = AxisSpec { lo: 0.0, hi, ticks: thin_ticks(linear_ticks(0.0, hi, 6.0), 0.0, hi, width_px), desc: format!("energy per token ({unit})") };
    let row = |k: usize| (n - 1 - k) as f64;
    let y = AxisSpec { lo: -0.6, hi: n.max(1) as f64 - 0.4, ticks: labels.into_iter().enumerate().map(|(k, l)| (row(k), l)).collect(), desc: String::new() };
    let chart = ticked_chart(area, &x, &y, y_label_area, (true, false))?;
    let plot = chart.plotting_area();
    if n == 0 {
        return draw_no_data(plot);
    }

    for (k, ((_, m), total)) in points.iter().zip(&totals).enumerate() {
        let (y0, y1) = (row(k) - 0.3, row(k) + 0.3);
        let mut start = 0.0;
        for (c, value) in components(&m.energy_per_token).into_iter().enumerate() {
            if value.is_nan() || value <= 0.0 {
                continue;
            }
            let end = start + value / div;
            let color = palette(c);
            plot.draw(&Rectangle::new([(start, y0), (end, y1)], color.mix(0.3).filled()))?;
            plot.draw(&Rectangle::new([(start, y0), (end, y1)], color.stroke_width(3)))?;
            start = end;
        }
        plot.draw(&(EmptyElement::at((start, row(k))) + Text::new(format!("{} {unit}", significant(total / div, 3)), (14, 0), left_text(TICK_PX))))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// AIMC / GPU ratios against batch size.

/// One colour per group of points with the same ratios.
fn draw_gpu_ratio<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, groups: &[Group<'_>]) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let mut batches: Vec<u32> = groups.iter().flat_map(|g| g.cost.gpu.iter().map(|g| g.batch)).filter(|b| *b > 0).collect();
    batches.sort_unstable();
    batches.dedup();
    let bx = |b: u32| f64::from(b).log2();
    let (x_lo, x_hi) = match (batches.first(), batches.last()) {
        (Some(&a), Some(&b)) if b > a => {
            let pad = 0.06 * (bx(b) - bx(a));
            (bx(a) - pad, bx(b) + pad)
        }
        (Some(&a), _) => (bx(a) - 1.0, bx(a) + 1.0),
        _ => (0.0, 1.0),
    };
    let width_px = plot_width(area.dim_in_pixel().0);
    let x = AxisSpec {
        lo: x_lo,
        hi: x_hi,
        ticks: thin_ticks(batches.iter().map(|&b| (bx(b), b.to_string())).collect(), x_lo, x_hi, width_px),
        desc: "batch size (tokens, log scale)".to_string(),
    };

    // Ratios are drawn on a log10 axis that always includes parity.
    let log = |r: f64| (r.is_finite() && r > 0.0).then(|| r.log10());
    let logs = groups.iter().flat_map(|g| g.cost.gpu.iter().flat_map(|g| [log(g.energy_efficiency_ratio), log(g.throughput_ratio)])).flatten();
    let (lo, hi) = logs.chain([0.0]).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let pad = (0.06 * (hi - lo)).max(0.15);
    let (y_lo, y_hi) = (lo - pad, hi + pad);
    let y = AxisSpec { lo: y_lo, hi: y_hi, ticks: log_ticks(y_lo, y_hi), desc: "AIMC ÷ GPU (log scale)".to_string() };
    let chart = ticked_chart(area, &x, &y, Y_LABEL_AREA, (true, true))?;
    let plot = chart.plotting_area();
    if batches.is_empty() {
        return draw_no_data(plot);
    }

    plot.draw(&PathElement::new(vec![(x_lo, 0.0), (x_hi, 0.0)], BASELINE_COLOR.stroke_width(6)))?;
    for (i, g) in groups.iter().enumerate() {
        let (color, m) = (palette(i), g.cost);
        let energy: Vec<(f64, f64)> = m.gpu.iter().filter(|g| g.batch > 0).filter_map(|g| Some((bx(g.batch), log(g.energy_efficiency_ratio)?))).collect();
        let throughput: Vec<(f64, f64)> = m.gpu.iter().filter(|g| g.batch > 0).filter_map(|g| Some((bx(g.batch), log(g.throughput_ratio)?))).collect();
        plot.draw(&PathElement::new(energy.clone(), color.stroke_width(LINE_PX)))?;
        plot.draw(&DashedPathElement::new(throughput.clone(), 16, 8, color.stroke_width(LINE_PX)))?;
        for at in energy {
            draw_marker(plot, at, Marker::Circle, color)?;
        }
        for at in throughput {
            draw_marker(plot, at, Marker::Triangle, color)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Per-token latency histogram.

/// One outline per group of points with the same histogram, at most [`MAX_HISTOGRAMS`].
fn draw_latency_histogram<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, groups: &[Group<'_>]) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let shown: Vec<&MoeCost> = groups.iter().take(MAX_HISTOGRAMS).map(|g| g.cost).collect();
    let lo_ns = shown.iter().map(|m| m.latency_hist.lo).fold(f64::INFINITY, f64::min);
    let hi_ns = shown.iter().map(|m| m.latency_hist.hi).fold(f64::NEG_INFINITY, f64::max);
    let (unit, div) = time_unit(hi_ns.abs());
    // Share of all the point's tokens (those outside the bins included) in each bin, in %.
    let share = |m: &MoeCost, count: u64| 100.0 * count as f64 / m.latency_hist.total().max(1) as f64;
    let top = shown.iter().flat_map(|m| m.latency_hist.counts.iter().map(move |c| share(m, *c))).fold(0.0, f64::max);

    let (x_lo, x_hi) = if lo_ns < hi_ns {
        let pad = 0.04 * (hi_ns - lo_ns);
        ((lo_ns - pad) / div, (hi_ns + pad) / div)
    } else {
        (0.0, 1.0)
    };
    let width_px = plot_width(area.dim_in_pixel().0);
    let x =
        AxisSpec { lo: x_lo, hi: x_hi, ticks: thin_ticks(linear_ticks(x_lo, x_hi, 8.0), x_lo, x_hi, width_px), desc: format!("per-token latency ({unit})") };
    let y_hi = if top > 0.0 { top * 1.08 } else { 1.0 };
    let y = AxisSpec { lo: 0.0, hi: y_hi, ticks: linear_ticks(0.0, y_hi, 7.0), desc: "share of tokens per bin (%)".to_string() };
    let chart = ticked_chart(area, &x, &y, Y_LABEL_AREA, (true, true))?;
    let plot = chart.plotting_area();
    if shown.is_empty() {
        return draw_no_data(plot);
    }

    for (i, m) in shown.iter().enumerate() {
        let color = palette(i);
        let h = &m.latency_hist;
        let edges: Vec<f64> = h.edges().into_iter().map(|e| e / div).collect();
        let mut outline = vec![(edges[0], 0.0)];
        for (j, &c) in h.counts.iter().enumerate() {
            outline.push((edges[j], share(m, c)));
            outline.push((edges[j + 1], share(m, c)));
        }
        outline.push((edges[edges.len() - 1], 0.0));
        plot.draw(&Polygon::new(outline.clone(), color.mix(HIST_ALPHA).filled()))?;
        plot.draw(&PathElement::new(outline, color.stroke_width(LINE_PX - 1)))?;
        let mean = m.latency_ns.mean / div;
        if mean.is_finite() {
            plot.draw(&DashedPathElement::new(vec![(mean, 0.0), (mean, y_hi)], 14, 9, color.stroke_width(3)))?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Heat map of tier activations.

/// Viridis (van der Walt & Smith, matplotlib), sampled at nine points: perceptually uniform and
/// readable without colour vision and in greyscale.
const VIRIDIS: [(u8, u8, u8); 9] =
    [(68, 1, 84), (71, 44, 122), (59, 82, 139), (44, 113, 142), (33, 145, 140), (40, 174, 128), (94, 201, 98), (170, 220, 50), (253, 231, 37)];

/// The colour of `fraction` ∈ [0, 1] of the colour scale.
fn viridis(fraction: f64) -> RGBColor {
    let f = if fraction.is_finite() { fraction.clamp(0.0, 1.0) } else { 0.0 };
    let at = f * (VIRIDIS.len() - 1) as f64;
    let k = (at.floor() as usize).min(VIRIDIS.len() - 2);
    let t = at - k as f64;
    let mix = |a: u8, b: u8| (f64::from(a) + t * (f64::from(b) - f64::from(a))).round() as u8;
    let (a, b) = (VIRIDIS[k], VIRIDIS[k + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

fn draw_tier_heatmap<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, moe: Option<&MoeCost>) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let heat: &[Vec<f64>] = moe.map(|m| m.tier_activations.as_slice()).unwrap_or_default();
    let tiles = heat.len();
    let tiers = heat.iter().map(Vec::len).max().unwrap_or(0);
    let max = heat.iter().flatten().copied().filter(|v| v.is_finite()).fold(0.0, f64::max);

    let (width, height) = area.dim_in_pixel();
    let (map_area, bar_area) = area.split_horizontally(width.saturating_sub(COLOUR_BAR_PANEL));
    let label_px = |n: usize| n.to_string().len() as f64 * 0.62 * f64::from(TICK_PX) + 24.0;
    let x = AxisSpec {
        lo: -0.5,
        hi: tiles.max(1) as f64 - 0.5,
        ticks: index_ticks(tiles, plot_width(map_area.dim_in_pixel().0), label_px(tiles)),
        desc: "tile".to_string(),
    };
    let y = AxisSpec {
        lo: -0.5,
        hi: tiers.max(1) as f64 - 0.5,
        ticks: index_ticks(tiers, plot_height(height), 1.6 * f64::from(TICK_PX)),
        desc: "tier".to_string(),
    };
    let chart = ticked_chart(&map_area, &x, &y, Y_LABEL_AREA, (false, false))?;
    let plot = chart.plotting_area();
    if tiles == 0 || tiers == 0 {
        draw_no_data(plot)?;
    }
    for (tile, row) in heat.iter().enumerate() {
        for (tier, &v) in row.iter().enumerate() {
            let (t, l) = (tile as f64, tier as f64);
            let fraction = if max > 0.0 { v / max } else { 0.0 };
            plot.draw(&Rectangle::new([(t - 0.5, l - 0.5), (t + 0.5, l + 0.5)], viridis(fraction).filled()))?;
        }
    }

    // Colour bar, its plotting area level with the heat map's.
    let top = if max > 0.0 { max } else { 1.0 };
    let bar_x = AxisSpec { lo: 0.0, hi: 1.0, ticks: Vec::new(), desc: String::new() };
    let bar_y = AxisSpec { lo: 0.0, hi: top, ticks: linear_ticks(0.0, top, 6.0), desc: "mean MVMs per batch".to_string() };
    // Room for the widest tick label and the description beside it, no more.
    let widest = bar_y.ticks.iter().map(|(_, l)| text_width(l, TICK_PX)).max().unwrap_or(0);
    let bar = ticked_chart(&bar_area, &bar_x, &bar_y, widest + AXIS_PX + 50, (false, false))?;
    let steps = 128;
    for s in 0..steps {
        let (a, b) = (s as f64 / steps as f64, (s + 1) as f64 / steps as f64);
        bar.plotting_area().draw(&Rectangle::new([(0.0, a * top), (1.0, b * top)], viridis(0.5 * (a + b)).filled()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::plots::write_plots;
    use super::super::results::GpuPoint;
    use super::super::tests::{synthetic, temp_dir};
    use super::*;
    use crate::stats::{Histogram, Summary};

    const STEMS: [&str; 4] = ["energy_breakdown", "gpu_ratio_vs_batch", "latency_histogram", "tier_heatmap"];

    /// A cost model shaped like a run's: `scale` spreads latencies, energies and ratios apart.
    fn moe_cost(scale: f64) -> MoeCost {
        let (tiles, tiers) = (12, 8);
        let latencies: Vec<f64> = (0..400).map(|i| 800.0 * scale + 40.0 * f64::from(i % 37) + 3.0 * f64::from(i % 11) * scale).collect();
        let (lo, hi) = latencies.iter().fold((f64::INFINITY, 0f64), |(a, b), &v| (a.min(v), b.max(v)));
        let mut latency_hist = Histogram::new(lo, hi * 1.0001, 40).unwrap();
        latencies.iter().for_each(|v| latency_hist.push(*v));
        let energy_per_token = EnergyBreakdown {
            mvm_pj: 5200.0 * scale,
            communication_pj: 900.0,
            digital_pj: 1400.0,
            attention_pj: 0.0,
            dram_pj: 300.0 * scale,
            passive_pj: 650.0,
            total_pj: 5200.0 * scale + 900.0 + 1400.0 + 300.0 * scale + 650.0,
        };
        let summary = |v: f64| Summary::from_sample(&[0.95 * v, v, 1.05 * v]).unwrap();
        MoeCost {
            strategy: "greedy".to_string(),
            tiles,
            tiers,
            tiers_used: 40,
            tiles_used: 10,
            utilisation: 40.0 / 96.0,
            mean_fill: 0.8,
            tokens: 64,
            latency_ns: Summary::from_sample(&latencies).unwrap(),
            tier_conflicts: summary(12.0),
            tokens_per_s: summary(2e6 / scale),
            energy_per_token_pj: summary(energy_per_token.total_pj),
            latency_hist,
            energy_per_token,
            tier_activations: (0..tiles)
                .map(|t| (0..tiers).map(|l| if t < 10 && l < 5 { f64::from((t * 7 + l * 3) % 11) * scale } else { 0.0 }).collect())
                .collect(),
            tile_utilisation: vec![0.5; tiles as usize],
            area_mm2: Some(12.0),
            gpu: [1_u32, 8, 64, 512]
                .iter()
                .map(|&batch| {
                    let b = f64::from(batch);
                    GpuPoint {
                        batch,
                        aimc_tokens_per_s: 2e6 / scale,
                        aimc_energy_per_token_pj: 8000.0 * scale,
                        gpu_tokens_per_s: 1e4 * b,
                        gpu_energy_per_token_pj: 4e6 / b,
                        gpu_memory_bound: batch < 64,
                        throughput_ratio: 200.0 / b / scale,
                        energy_efficiency_ratio: 500.0 / b.sqrt() / scale,
                    }
                })
                .collect(),
            assumptions: vec!["test".to_string()],
            cost_table: "test table".to_string(),
            gpu_table: "H100 SXM".to_string(),
            schedule_seconds: 0.01,
            tokens_scheduled_per_s: 1e6,
        }
    }

    /// The report sample with its two series' first-time points carrying cost models.
    fn moe_results() -> Results {
        let mut results = synthetic();
        results.workload = "moe".to_string();
        let firsts: Vec<usize> =
            (0..results.points.len()).filter(|&i| !results.points[..i].iter().any(|q| q.sweep_index == results.points[i].sweep_index)).collect();
        assert_eq!(firsts.len(), 2);
        for (k, i) in firsts.into_iter().enumerate() {
            results.points[i].moe = Some(moe_cost(1.0 + 1.5 * k as f64));
        }
        results
    }

    #[test]
    fn moe_figures_are_written_after_the_others() {
        let results = moe_results();
        let dir = temp_dir("moe-plots");
        std::fs::create_dir_all(&dir).unwrap();
        let plots = write_plots(&results, &dir).unwrap();
        let stems: Vec<&str> = plots.iter().map(|p| p.stem.as_str()).collect();
        assert_eq!(stems[stems.len() - 4..], STEMS, "{stems:?}");
        for stem in STEMS {
            for ext in ["png", "svg"] {
                let path = dir.join(format!("{stem}.{ext}"));
                let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(bytes.len() > 1000, "{} is only {} bytes", path.display(), bytes.len());
            }
        }
        let heatmap = plots.iter().find(|p| p.stem == "tier_heatmap").unwrap();
        assert!(heatmap.title.contains("gdc=off"), "{}", heatmap.title);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn other_workloads_get_no_moe_figures() {
        let dir = temp_dir("moe-plots-none");
        std::fs::create_dir_all(&dir).unwrap();
        let plots = write_plots(&synthetic(), &dir).unwrap();
        for stem in STEMS {
            assert!(plots.iter().all(|p| p.stem != stem), "{stem}");
            assert!(!dir.join(format!("{stem}.png")).exists() && !dir.join(format!("{stem}.svg")).exists(), "{stem}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn identical_data_is_drawn_once() {
        let mut results = moe_results();
        let points = moe_points(&results);
        let labels = |groups: Vec<Group<'_>>| groups.into_iter().map(|g| g.label).collect::<Vec<_>>();
        assert_eq!(labels(grouped(&points, gpu_key)), ["gdc=off", "gdc=readout"]);
        for p in &mut results.points {
            if p.moe.is_some() {
                p.moe = Some(moe_cost(1.0));
            }
        }
        let points = moe_points(&results);
        assert_eq!(labels(grouped(&points, gpu_key)), ["2 sweep points"]);
        assert_eq!(labels(grouped(&points, histogram_key)), ["2 sweep points"]);
    }

    #[test]
    fn axes_ticks_are_round_and_readable() {
        let labels = |t: Vec<(f64, String)>| t.into_iter().map(|(_, l)| l).collect::<Vec<_>>();
        assert_eq!(labels(linear_ticks(0.0, 10.5, 6.0)), ["0", "2", "4", "6", "8", "10"]);
        assert_eq!(labels(linear_ticks(0.0, 0.9, 4.0)), ["0.0", "0.2", "0.4", "0.6", "0.8"]);
        assert_eq!(labels(log_ticks(-1.2, 3.1)), ["0.1", "1", "10", "100", "1000"]);
        assert_eq!(labels(log_ticks(-0.2, 0.8)), ["1", "2", "5"]);
        assert_eq!(log_label(1.0, 6), "10⁶");
        assert_eq!(log_label(1.0, -5), "10⁻⁵");
        assert_eq!(labels(index_ticks(64, 640.0, 40.0)), (0..64).step_by(5).map(|i| i.to_string()).collect::<Vec<_>>());
        assert_eq!(energy_unit(12_000.0), ("nJ", 1e3));
        assert_eq!(significant(12.345, 3), "12.3");
        assert_eq!(viridis(0.0), RGBColor(68, 1, 84));
        assert_eq!(viridis(1.0), RGBColor(253, 231, 37));
    }
}
