//! The effective-weight error against the time since programming, one line per layer and series.

use super::layer_lines::{weight_error_layers, LayerLinesFigure};

/// Effective-weight error vs time, when some point has weight-error data.
pub(crate) const WEIGHT_ERROR: LayerLinesFigure = LayerLinesFigure {
    stem: "weight_error_vs_time",
    title: "Effective-weight error vs time after programming",
    layers_of: weight_error_layers,
    value: |p, l| p.weight_error.iter().find(|w| w.layer == l).map(|w| w.std),
    y_label: "std of (weight error / max |W|)",
};
