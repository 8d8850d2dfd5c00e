//! Per-layer values against time, the drawing shared by the weight-error and layer-error figures.

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::canvas::DrawResult;
use super::canvas::*;
use crate::report::series::*;
use crate::results::*;

/// One line of a per-layer plot: colour tells the series, marker shape and dashing the layer.
pub(crate) struct LayerLine<'a> {
    pub(crate) label: String,
    pub(crate) color: RGBColor,
    pub(crate) marker: Marker,
    pub(crate) dashed: bool,
    pub(crate) points: &'a [&'a Point],
    pub(crate) layer: usize,
}

/// The layers a point has weight-error data for.
pub(crate) fn weight_error_layers(p: &Point) -> Vec<usize> {
    p.weight_error.iter().map(|w| w.layer).collect()
}

/// The layers a point has layer-insight data for.
pub(crate) fn insight_layers(p: &Point) -> Vec<usize> {
    p.layer_insight.iter().map(|w| w.layer).collect()
}

/// One line per (series, layer); `name_of` names a layer in the legend.
pub(crate) fn layer_lines<'a>(series: &'a [Series<'a>], layers_of: &dyn Fn(&Point) -> Vec<usize>, name_of: &dyn Fn(usize) -> String) -> Vec<LayerLine<'a>> {
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

pub(crate) fn draw_layer_lines<DB: DrawingBackend>(
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

/// A per-layer value against time, one line per layer and series: the weight-error and the
/// layer-error figures are two of these.
pub(crate) struct LayerLinesFigure {
    pub(crate) stem: &'static str,
    pub(crate) title: &'static str,
    /// The layers a point has data for (none: the point is left out; no point: no figure).
    pub(crate) layers_of: fn(&Point) -> Vec<usize>,
    pub(crate) value: fn(&Point, usize) -> Option<f64>,
    pub(crate) y_label: &'static str,
}

impl super::figure::Figure for LayerLinesFigure {
    fn stem(&self, _: &Results) -> &'static str {
        self.stem
    }
    fn applies(&self, results: &Results) -> bool {
        results.points.iter().any(|p| !(self.layers_of)(p).is_empty())
    }
    fn title(&self, _: &Results) -> String {
        self.title.to_string()
    }
    fn legend_items(&self, results: &Results, series: &[Series<'_>]) -> Vec<LegendItem> {
        layer_lines(series, &self.layers_of, &|l| results.layer_name(l))
            .into_iter()
            .map(|line| LegendItem { swatch: Swatch::Line(line.color, line.marker, line.dashed), label: line.label })
            .collect()
    }
    fn note(&self, _: &Results, series_note: Option<&str>) -> Option<String> {
        series_note.map(str::to_string)
    }
    fn draw<DB: DrawingBackend>(&self, body: &DrawingArea<DB, Shift>, _: &Results, series: &[Series<'_>]) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        draw_layer_lines(body, series, &self.layers_of, &self.value, self.y_label)
    }
}
