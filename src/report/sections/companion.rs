//! The companion metric (`Point::companion`): the benchmark's second number of the same trials
//! (SQuAD's exact match beside its F1, GLUE's accuracy beside MRPC's and QQP's F1, Spearman's
//! beside Pearson's correlation on STS-B, next-token accuracy beside perplexity), per series and
//! time: its mean with the trial-to-trial interval, and the floating-point value beside it.

use crate::report::document::*;
use crate::report::format::*;
use crate::report::series::Series;
use crate::results::Results;

/// Decimals of every companion value: four places read an F1 or a correlation to 0.01 %.
const DECIMALS: usize = 4;

/// One sentence naming the companion, then per series a table of it at every time.
pub(super) fn companion_blocks(results: &Results, listed: &[Series<'_>]) -> Vec<Block> {
    let mut names: Vec<&str> = Vec::new();
    for c in results.points.iter().filter_map(|p| p.companion.as_ref()) {
        if !names.contains(&c.metric.as_str()) {
            names.push(&c.metric);
        }
    }
    let mut blocks = vec![Block::Paragraph(text(format!(
        "{} comes from the same trials and the same readback as the metric above ({}); trials.csv has it per trial in a column of its own. Its intervals are those a run with it as the task gives; the tail and the quantiles above are {}'s alone.",
        names.join(", "),
        results.metric,
        results.metric_column
    )))];
    let dash = || text("–");
    for s in listed {
        let with: Vec<_> = s.points.iter().filter_map(|p| p.companion.as_ref().map(|c| (p, c))).collect();
        let Some((_, first)) = with.first() else { continue };
        blocks.push(Block::Heading(3, format!("{}: {}", s.label(), first.metric)));
        let range = |lo: f64, hi: f64| text(format!("{} – {}", fixed(lo, DECIMALS), fixed(hi, DECIMALS)));
        let test_set = with.iter().any(|(_, c)| c.test_set_ci.is_some());
        let mut header = vec!["time".to_string(), "mean".to_string(), format!("mean, trial-to-trial CI ({})", percent_label(first.mean_ci.confidence))];
        if test_set {
            header.push(format!("mean, test-set sampling CI ({})", percent_label(first.mean_ci.confidence)));
        }
        header.extend(["floating point".to_string(), "analog − floating point".to_string()]);
        let rows = with
            .iter()
            .map(|(p, c)| {
                let mut row = vec![text(p.time_label.clone()), text(fixed(c.mean, DECIMALS)), range(c.mean_ci.lo, c.mean_ci.hi)];
                if test_set {
                    row.push(c.test_set_ci.as_ref().map_or_else(dash, |ci| range(ci.lo, ci.hi)));
                }
                row.push(c.fp.map_or_else(dash, |f| text(fixed(f, DECIMALS))));
                row.push(c.fp.map_or_else(dash, |f| text(fixed(c.mean - f, DECIMALS))));
                row
            })
            .collect();
        let right_aligned = (0..header.len()).map(|i| i > 0).collect();
        blocks.push(Block::Table(Table { header, rows, right_aligned }));
    }
    blocks
}
