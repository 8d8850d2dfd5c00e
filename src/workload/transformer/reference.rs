//! The independent f64 forward pass of the transformer workload (to be written).

use super::{TransformerNet, TransformerSettings};
use crate::workload::io::Dataset;

/// Logits of one sequence (`tokens`, its first `len` not padding), f64 throughout.
pub fn logits(_net: &TransformerNet, _s: &TransformerSettings, _tokens: &[u32], _len: usize) -> Vec<f64> {
    Vec::new()
}

/// Correct predictions of the f64 forward over a token data set.
pub fn fp_correct(_net: &TransformerNet, _s: &TransformerSettings, _data: &Dataset) -> u64 {
    0
}
