//! The rows noise breaks first (a classifier's `row_counts`, `transformer.row_counts`): per
//! series, the data rows (questions) whose share of right trials falls most from the first time
//! to the last, so a reader sees which inputs fail first; row_counts.csv and results.json
//! (`per_row_correct`) keep every row.

use crate::report::document::*;
use crate::report::format::*;
use crate::report::series::Series;

/// Rows listed per series.
const LISTED: usize = 10;

/// Per series with counts: one sentence on how the rows stand at the last time, then the rows
/// whose share of right trials falls most from the first time to the last, at every time; with
/// the rows' labels (a classifier's), each class's share of right answers at every time.
pub(super) fn row_blocks(listed: &[Series<'_>], labels: Option<&[u32]>) -> Vec<Block> {
    let mut blocks = vec![Block::Paragraph(text(
        "Per data row (per question with answer text), the share of trials that answered it right: the rows whose share falls most from the first time to the last are the inputs the noise breaks first. row_counts.csv lists every row at every point.",
    ))];
    for s in listed {
        let with: Vec<_> = s.points.iter().filter(|p| p.per_row_correct.is_some()).collect();
        let (Some(first), Some(last)) = (with.first(), with.last()) else { continue };
        let (a, b) = (first.per_row_correct.as_ref().expect("filtered"), last.per_row_correct.as_ref().expect("filtered"));
        let share = |c: u32, p: &crate::results::Point| c as f64 / p.per_trial.len().max(1) as f64;
        let always = b.iter().filter(|&&c| c as usize == last.per_trial.len()).count();
        let never = b.iter().filter(|&&c| c == 0).count();
        // Each row's share of right trials at every time, formed once.
        let shares: Vec<Vec<f64>> = (0..a.len().min(b.len()))
            .map(|k| with.iter().map(|p| share(p.per_row_correct.as_ref().map_or(0, |c| c.get(k).copied().unwrap_or(0)), p)).collect())
            .collect();
        // The largest fall from the first time to the last first (the most negative last − first);
        // among equal falls, the rows right in fewer trials over all times (broken earlier); then
        // by row.
        let key = |r: &[f64]| (r[r.len() - 1] - r[0], r.iter().sum::<f64>());
        let mut order: Vec<(usize, (f64, f64))> = shares.iter().enumerate().map(|(k, r)| (k, key(r))).collect();
        order.sort_by(|(i, x), (j, y)| x.0.total_cmp(&y.0).then(x.1.total_cmp(&y.1)).then(i.cmp(j)));
        blocks.push(Block::Heading(3, s.label().to_string()));
        blocks.push(Block::Paragraph(text(format!("At {}, right in every trial: {always} of {} rows; in none: {never}.", last.time_label, b.len()))));
        let rows = order
            .into_iter()
            .take(LISTED)
            .map(|(i, _)| std::iter::once(text(i.to_string())).chain(shares[i].iter().map(|v| text(fixed(100.0 * v, 1)))).collect())
            .collect();
        let header = std::iter::once("row".to_string()).chain(with.iter().map(|p| format!("right at {} (%)", p.time_label))).collect();
        blocks.push(Block::Table(Table { header, rows, right_aligned: vec![true; with.len() + 1] }));
        if let Some(labels) = labels.filter(|l| l.len() == shares.len()) {
            blocks.push(Block::Paragraph(text(
                "Per class (the rows' labels), the share of its rows' trials that classify them right: the classes the noise breaks first.",
            )));
            blocks.push(Block::Table(class_table(labels, &with)));
        }
    }
    blocks
}

/// Per class of the rows' labels: its rows, and the share of their trials that classify them
/// right at every time.
fn class_table(labels: &[u32], with: &[&&crate::results::Point]) -> Table {
    let classes = labels.iter().max().map_or(0, |&m| m as usize + 1);
    let rows = (0..classes)
        .filter_map(|k| {
            let members: Vec<usize> = (0..labels.len()).filter(|&r| labels[r] as usize == k).collect();
            (!members.is_empty()).then(|| {
                let shares = with.iter().map(|p| {
                    let c = p.per_row_correct.as_ref().map_or(0u64, |c| members.iter().map(|&r| c.get(r).copied().unwrap_or(0) as u64).sum());
                    text(fixed(100.0 * c as f64 / (members.len() * p.per_trial.len()).max(1) as f64, 1))
                });
                [text(k.to_string()), text(members.len().to_string())].into_iter().chain(shares).collect()
            })
        })
        .collect();
    let header = ["class".to_string(), "rows".to_string()].into_iter().chain(with.iter().map(|p| format!("right at {} (%)", p.time_label))).collect();
    Table { header, rows, right_aligned: vec![true; with.len() + 2] }
}
