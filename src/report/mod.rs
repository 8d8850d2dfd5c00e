//! Results, plots and reports.
pub mod results;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0}")]
    Io(String),
}

pub fn write_report(_results: &results::Results, _dir: &std::path::Path) -> Result<(), ReportError> {
    Ok(())
}
