//! AIMC against the GPU roofline by batch size: energy efficiency and throughput ratios on a log axis.

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::canvas::DrawResult;
use super::canvas::*;
use super::figure::Figure;
use super::moe::*;
use crate::report::series::*;
use crate::results::*;

/// One colour per group of points with the same ratios.
pub(crate) fn draw_gpu_ratio<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, groups: &[Group<'_>]) -> DrawResult
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

/// AIMC ÷ GPU ratios against batch size.
pub(crate) struct GpuRatioVsBatch;

impl Figure for GpuRatioVsBatch {
    fn stem(&self, _: &Results) -> &'static str {
        "gpu_ratio_vs_batch"
    }
    fn applies(&self, results: &Results) -> bool {
        !moe_points(results).is_empty()
    }
    fn title(&self, _: &Results) -> String {
        "AIMC against the GPU by batch size (solid: energy efficiency, dashed: throughput)".to_string()
    }
    fn legend_items(&self, results: &Results, _: &[Series<'_>]) -> Vec<LegendItem> {
        let points = moe_points(results);
        // One point: its colour on the style keys; several: a colour key, then dark style keys.
        let style_color = if points.len() == 1 { palette(0) } else { BASELINE_COLOR };
        let mut items: Vec<LegendItem> = if points.len() > 1 {
            grouped(&points, gpu_key).into_iter().enumerate().map(|(i, g)| LegendItem { swatch: Swatch::Box(palette(i)), label: g.label }).collect()
        } else {
            Vec::new()
        };
        items
            .push(LegendItem {
                swatch: Swatch::Line(style_color, Marker::Circle, false), label: "energy efficiency: GPU ÷ AIMC energy per token".to_string()
            });
        items.push(LegendItem { swatch: Swatch::Line(style_color, Marker::Triangle, true), label: "throughput: AIMC ÷ GPU tokens/s".to_string() });
        items.push(LegendItem { swatch: Swatch::MedianBar, label: "parity (ratio 1)".to_string() });
        items
    }
    fn draw<DB: DrawingBackend>(&self, body: &DrawingArea<DB, Shift>, results: &Results, _: &[Series<'_>]) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        draw_gpu_ratio(body, &grouped(&moe_points(results), gpu_key))
    }
}
