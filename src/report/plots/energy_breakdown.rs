//! Stacked bars of the energy per token by component (mean over trials), one bar per MoE sweep point.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::canvas::DrawResult;
use super::canvas::*;
use super::figure::Figure;
use super::moe::*;
use crate::report::format::*;
use crate::report::series::*;
use crate::results::*;

/// Widest sweep-point label beside a bar, in pixels, before it is shortened with an ellipsis.
pub(crate) const MAX_BAR_LABEL_PX: u32 = 660;

/// One horizontal bar per point (the first at the top), stacked by component, its total at its end.
pub(crate) fn draw_energy_breakdown<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, points: &[(&Point, &MoeCost)]) -> DrawResult
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

/// Stacked bars of the energy per token by component.
pub(crate) struct EnergyBreakdown;

impl Figure for EnergyBreakdown {
    fn stem(&self, _: &Results) -> &'static str {
        "energy_breakdown"
    }
    fn applies(&self, results: &Results) -> bool {
        !moe_points(results).is_empty()
    }
    fn title(&self, _: &Results) -> String {
        "Energy per token by component (mean over trials)".to_string()
    }
    /// Bars stay at least ~80 px apart, so their labels never overlap.
    fn chart_height(&self, results: &Results, _: &[Series<'_>], base: u32) -> u32 {
        base.max(260 + 80 * moe_points(results).len() as u32)
    }
    fn legend_items(&self, results: &Results, _: &[Series<'_>]) -> Vec<LegendItem> {
        let present = present_components(&moe_points(results));
        COMPONENTS
            .iter()
            .enumerate()
            .filter(|(k, _)| present[*k])
            .map(|(k, name)| LegendItem { swatch: Swatch::Box(palette(k)), label: name.to_string() })
            .collect()
    }
    fn draw<DB: DrawingBackend>(&self, body: &DrawingArea<DB, Shift>, results: &Results, _: &[Series<'_>]) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        draw_energy_breakdown(body, &moe_points(results))
    }
}
