//! State-dict name tables of the transformer workload (to be written).

use super::{TransformerNet, TransformerSettings};
use std::path::Path;

/// Reads a .safetensors state dict into the network.
pub fn read(path: &Path, s: &TransformerSettings) -> Result<TransformerNet, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&bytes, s).map_err(|m| format!("{}: {m}", path.display()))
}

/// Parses a .safetensors state dict into the network.
pub fn parse(_bytes: &[u8], _s: &TransformerSettings) -> Result<TransformerNet, String> {
    Err("not yet".into())
}
