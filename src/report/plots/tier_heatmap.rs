//! The heat map of tier use: mean MVMs per batch on each tile and tier, with a viridis colour bar.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::canvas::DrawResult;
use super::canvas::*;
use super::figure::Figure;
use super::moe::*;
use crate::report::series::*;
use crate::results::*;

/// Width of the heat map's colour-bar panel (its tick labels and description included).
pub(crate) const COLOUR_BAR_PANEL: u32 = 300;

/// Viridis (van der Walt & Smith, matplotlib), sampled at nine points: perceptually uniform and
/// readable without colour vision and in greyscale.
pub(crate) const VIRIDIS: [(u8, u8, u8); 9] =
    [(68, 1, 84), (71, 44, 122), (59, 82, 139), (44, 113, 142), (33, 145, 140), (40, 174, 128), (94, 201, 98), (170, 220, 50), (253, 231, 37)];

/// The colour of `fraction` ∈ [0, 1] of the colour scale.
pub(crate) fn viridis(fraction: f64) -> RGBColor {
    let f = if fraction.is_finite() { fraction.clamp(0.0, 1.0) } else { 0.0 };
    let at = f * (VIRIDIS.len() - 1) as f64;
    let k = (at.floor() as usize).min(VIRIDIS.len() - 2);
    let t = at - k as f64;
    let mix = |a: u8, b: u8| (f64::from(a) + t * (f64::from(b) - f64::from(a))).round() as u8;
    let (a, b) = (VIRIDIS[k], VIRIDIS[k + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

pub(crate) fn draw_tier_heatmap<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, moe: Option<&MoeCost>) -> DrawResult
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

/// The heat map of tier use of the first MoE sweep point.
pub(crate) struct TierHeatmap;

impl Figure for TierHeatmap {
    fn stem(&self, _: &Results) -> &'static str {
        "tier_heatmap"
    }
    fn applies(&self, results: &Results) -> bool {
        !moe_points(results).is_empty()
    }
    fn title(&self, results: &Results) -> String {
        let points = moe_points(results);
        match points.first() {
            Some((p, _)) if points.len() > 1 => {
                let n = points.len();
                fitted(label(p), TITLE_PX, WIDTH - 80, |l| format!("Tier use of {l} (first of {n} sweep points)"))
            }
            Some((p, _)) if !p.series.is_empty() => fitted(&p.series, TITLE_PX, WIDTH - 80, |l| format!("Tier use of {l}: mean MVMs per tile and tier")),
            _ => "Tier use: mean MVMs per tile and tier".to_string(),
        }
    }
    /// No legend below: the colour bar explains the colours.
    fn chart_height(&self, _: &Results, _: &[Series<'_>], _: u32) -> u32 {
        HEIGHT
    }
    fn legend_items(&self, _: &Results, _: &[Series<'_>]) -> Vec<LegendItem> {
        Vec::new()
    }
    fn draw<DB: DrawingBackend>(&self, body: &DrawingArea<DB, Shift>, results: &Results, _: &[Series<'_>]) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        draw_tier_heatmap(body, moe_points(results).first().map(|(_, m)| *m))
    }
}
