//! Paired differences: each sweep value against its axis's first value, trial by trial.

use crate::report::document::*;
use crate::report::format::*;
use crate::results::*;

/// Paired differences: one plain sentence for the largest at the last time, then the table.
pub(super) fn paired_blocks(results: &Results) -> Vec<Block> {
    let pct = crate::report::plots::is_classifier(results);
    let (scale, unit) = if pct { (100.0, " points") } else { (1.0, "") };
    let f = |v: f64| if pct { fixed(scale * v, 2) } else { significant(v, 4) };
    let crn = results.paired.iter().all(|p| p.common_random_numbers);
    let last = results.times.last().copied().unwrap_or(0.0);
    let mut para = format!(
        "Each value of a sweep axis against the axis's first value, trial by trial (the same trials on both sides{}), with a {:.0} % Student-t interval over trials; the unpaired interval's half-width is beside it.",
        if crn { ", which drew the same random numbers: common random numbers" } else { "; each point drew its own random numbers" },
        100.0 * results.confidence
    );
    if let Some(big) = results.paired.iter().filter(|p| p.t_inf == last).max_by(|a, b| a.mean.abs().total_cmp(&b.mean.abs())) {
        para.push_str(&format!(
            " At {}, {}={} {} the {} by {} ± {}{unit} against {}={}{}.",
            big.time_label,
            big.axis,
            big.value,
            if big.mean >= 0.0 { "raises" } else { "lowers" },
            results.metric,
            f(big.mean.abs()),
            f(big.ci.half_width()),
            big.axis,
            big.baseline,
            if big.others.is_empty() { String::new() } else { format!(" ({})", big.others) }
        ));
    }
    let header = ["difference", "other axes", "t", "mean", "paired ± ", "unpaired ± "];
    let rows = results
        .paired
        .iter()
        .map(|p| {
            [
                format!("{}: {} − {}", p.axis, p.value, p.baseline),
                p.others.clone(),
                p.time_label.clone(),
                f(p.mean),
                f(p.ci.half_width()),
                f(p.unpaired_half_width),
            ]
            .into_iter()
            .map(text)
            .collect()
        })
        .collect();
    paragraph_and_table(para, &header, rows, 3)
}
