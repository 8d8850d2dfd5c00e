//! The per-token latency histogram, all trials pooled, one outline per distinct histogram.

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::canvas::DrawResult;
use super::canvas::*;
use super::figure::Figure;
use super::moe::*;
use crate::report::format::*;
use crate::report::series::*;
use crate::results::*;

/// The latency histogram overlays at most this many distinct histograms; more are unreadable.
pub(crate) const MAX_HISTOGRAMS: usize = 6;

/// Fill opacity under each histogram outline, low so that overlapping ones stay visible.
pub(crate) const HIST_ALPHA: f64 = 0.10;

/// One outline per group of points with the same histogram, at most [`MAX_HISTOGRAMS`].
pub(crate) fn draw_latency_histogram<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, groups: &[Group<'_>]) -> DrawResult
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

/// The per-token latency histogram.
pub(crate) struct LatencyHistogram;

impl Figure for LatencyHistogram {
    fn stem(&self, _: &Results) -> &'static str {
        "latency_histogram"
    }
    fn applies(&self, results: &Results) -> bool {
        !moe_points(results).is_empty()
    }
    fn title(&self, results: &Results) -> String {
        match grouped(&moe_points(results), histogram_key).len() {
            n if n > MAX_HISTOGRAMS => format!("Per-token latency, all trials pooled (first {MAX_HISTOGRAMS} of {n} distinct histograms)"),
            _ => "Per-token latency, all trials pooled".to_string(),
        }
    }
    fn legend_items(&self, results: &Results, _: &[Series<'_>]) -> Vec<LegendItem> {
        let mut items: Vec<LegendItem> = grouped(&moe_points(results), histogram_key)
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
    fn draw<DB: DrawingBackend>(&self, body: &DrawingArea<DB, Shift>, results: &Results, _: &[Series<'_>]) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        draw_latency_histogram(body, &grouped(&moe_points(results), histogram_key))
    }
}
