//! The report's document model: headings, paragraphs, lists, tables, code and figures, built once
//! by the sections and written twice ([`super::markdown`], [`super::html`]), so the two reports
//! cannot disagree.

/// A run of text within a paragraph, list item or table cell.
#[derive(Clone, Debug, PartialEq)]
pub enum Inline {
    Text(String),
    /// Identifiers, paths and hashes, shown in a monospace font.
    Code(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<Vec<Inline>>>,
    /// Numeric columns are right-aligned so digits line up.
    pub right_aligned: Vec<bool>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Block {
    Heading(u8, String),
    Paragraph(Vec<Inline>),
    List(Vec<Vec<Inline>>),
    Table(Table),
    /// A fenced code block with its language.
    Code(String, String),
    /// A plot: `stem` names `<stem>.png` (Markdown) and the inline SVG (HTML).
    Figure {
        stem: String,
        caption: String,
    },
}

pub fn text(s: impl Into<String>) -> Vec<Inline> {
    vec![Inline::Text(s.into())]
}

pub fn code(s: impl Into<String>) -> Vec<Inline> {
    vec![Inline::Code(s.into())]
}

/// Most rows a report table lists. A sweep of thousands of points would otherwise write
/// megabytes of rows no one reads; past it a section lists a selection, says which and how many it
/// left out, and points to results.json and trials.csv, which keep every point.
pub(crate) const MAX_TABLE_ROWS: usize = 40;

/// The indices of at most [`MAX_TABLE_ROWS`] of `n` rows, evenly spaced, in order.
pub(crate) fn evenly_spaced_rows(n: usize) -> Vec<usize> {
    crate::report::series::evenly_spaced(n, MAX_TABLE_ROWS)
}

/// The indices of the [`MAX_TABLE_ROWS`] rows with the largest `key` (ties: earlier first), in
/// their original order; all of them when there are at most that many.
pub(crate) fn largest_rows(keys: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..keys.len()).collect();
    if keys.len() > MAX_TABLE_ROWS {
        order.sort_by(|&a, &b| keys[b].total_cmp(&keys[a]).then(a.cmp(&b)));
        order.truncate(MAX_TABLE_ROWS);
        order.sort_unstable();
    }
    order
}

/// A paragraph, then a table whose columns from `first_right` on are right-aligned (numbers).
pub(crate) fn paragraph_and_table(para: String, header: &[&str], rows: Vec<Vec<Vec<Inline>>>, first_right: usize) -> Vec<Block> {
    vec![
        Block::Paragraph(text(para)),
        Block::Table(Table {
            header: header.iter().map(|h| h.trim().to_string()).collect(),
            rows,
            right_aligned: (0..header.len()).map(|i| i >= first_right).collect(),
        }),
    ]
}
