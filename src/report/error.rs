//! Why a report could not be written, and the one file writer that names its path in the error.

use std::path::{Path, PathBuf};

/// Why a report could not be written. Each variant names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot create the report directory {path}: {source}")]
    CreateDir { path: PathBuf, source: std::io::Error },

    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },

    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },

    #[error("cannot draw the plot {path}: {message}")]
    Plot { path: PathBuf, message: String },

    #[error("the embedded font (src/report/fonts/DejaVuSans.ttf) could not be parsed; restore the file from the repository")]
    Font,

    #[error("cannot serialise the configuration for the report: {0}")]
    Config(#[from] serde_json::Error),
}

/// `std::fs::write` with the path in the error.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    std::fs::write(path, bytes).map_err(|source| ReportError::Write { path: path.to_path_buf(), source })
}
