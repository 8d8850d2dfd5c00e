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
        "{} comes from the same trials and the same readback as the metric above ({}); trials.csv has it per trial in a column of its own. The test-set interval, the tail and the quantiles above are {}'s alone: a run with the companion as its task gives them for it.",
        names.join(", "),
        results.metric,
        results.metric_column
    )))];
    let dash = || text("–");
    for s in listed {
        let with: Vec<_> = s.points.iter().filter_map(|p| p.companion.as_ref().map(|c| (p, c))).collect();
        let Some((_, first)) = with.first() else { continue };
        blocks.push(Block::Heading(3, format!("{}: {}", s.label(), first.metric)));
        let header = vec![
            "time".to_string(),
            "mean".to_string(),
            format!("mean, trial-to-trial CI ({})", percent_label(first.mean_ci.confidence)),
            "floating point".to_string(),
            "analog − floating point".to_string(),
        ];
        let rows = with
            .iter()
            .map(|(p, c)| {
                vec![
                    text(p.time_label.clone()),
                    text(fixed(c.mean, DECIMALS)),
                    text(format!("{} – {}", fixed(c.mean_ci.lo, DECIMALS), fixed(c.mean_ci.hi, DECIMALS))),
                    c.fp.map_or_else(dash, |f| text(fixed(f, DECIMALS))),
                    c.fp.map_or_else(dash, |f| text(fixed(c.mean - f, DECIMALS))),
                ]
            })
            .collect();
        blocks.push(Block::Table(Table { header, rows, right_aligned: vec![false, true, true, true, true] }));
    }
    blocks
}
