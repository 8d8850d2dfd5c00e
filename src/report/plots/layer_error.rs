//! The error each layer adds on its own inputs (layer insight, median over trials) against time.

use super::layer_lines::{insight_layers, LayerLinesFigure};

/// The error each layer adds vs time, when some point has layer insight.
pub(crate) const LAYER_ERROR: LayerLinesFigure = LayerLinesFigure {
    stem: "layer_error_vs_time",
    title: "Error each layer adds on its own inputs vs time (median over trials)",
    layers_of: insight_layers,
    value: |p, l| p.layer_insight.iter().find(|w| w.layer == l).map(|w| 100.0 * w.mvm_error.median),
    y_label: "‖h − act(Wx + b)‖ / ‖act(Wx + b)‖ (%)",
};
