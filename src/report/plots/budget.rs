//! The noise budget: each source's cost alone per time, with paired intervals.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::canvas::DrawResult;
use super::canvas::*;
use super::figure::Figure;
use crate::report::format::*;
use crate::report::series::*;
use crate::results::*;

/// The budget's groups (one per point and time), in results order.
pub(crate) fn budget_groups(results: &Results) -> Vec<String> {
    results.budget.iter().map(|b| if b.series.is_empty() { b.time_label.clone() } else { format!("{}, {}", b.series, b.time_label) }).collect()
}

/// Grouped bars: per source (and "all" and the interaction) one bar per point and time, its
/// height the cost alone, a whisker its paired interval (the interaction's too).
pub(crate) fn draw_budget<DB: DrawingBackend>(chart_area: &DrawingArea<DB, Shift>, results: &Results) -> DrawResult
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
        "input_noise" => "in noise".to_string(),
        "ir_drop" => "IR drop".to_string(),
        other => other.replace('_', " "),
    };
    let mut cats: Vec<String> = vec!["all".into()];
    cats.extend(first.sources.iter().map(|s| short(&s.source)));
    cats.push("interact.".into());
    let groups = results.budget.len();
    let ticks: Vec<(f64, String)> = cats.iter().enumerate().map(|(i, c)| (i as f64, c.clone())).collect();
    let values = results.budget.iter().flat_map(|b| {
        let inter = b.interaction_ci.unwrap_or([b.interaction; 2]);
        [b.cost_lo, b.cost_hi, b.interaction, inter[0], inter[1], 0.0].into_iter().chain(b.sources.iter().flat_map(|s| [s.alone_lo, s.alone_hi]))
    });
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
        bars.push((b.interaction, b.interaction_ci.map(|[lo, hi]| (lo, hi))));
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

/// The noise budget: each source's cost alone per time, with paired intervals.
pub(crate) struct Budget;

impl Figure for Budget {
    fn stem(&self, _: &Results) -> &'static str {
        "noise_budget"
    }
    fn applies(&self, results: &Results) -> bool {
        !results.budget.is_empty()
    }
    fn title(&self, results: &Results) -> String {
        format!("Noise budget: the cost of each source alone (whiskers: {} paired intervals)", percent_label(results.confidence))
    }
    fn legend_items(&self, results: &Results, _: &[Series<'_>]) -> Vec<LegendItem> {
        budget_groups(results).iter().enumerate().map(|(i, g)| LegendItem { swatch: Swatch::Box(palette(i)), label: g.clone() }).collect()
    }
    fn draw<DB: DrawingBackend>(&self, body: &DrawingArea<DB, Shift>, results: &Results, _: &[Series<'_>]) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        draw_budget(body, results)
    }
}
