//! The noise budget: each source's cost alone and its removal gain, the layers, the sensitivity to each knob (experiment::budget).

use crate::report::document::*;
use crate::report::format::*;
use crate::results::*;

/// The noise budget: per point and time one sentence naming the dominant source, then the table
/// of every source's cost alone and the gain of removing it, with paired intervals.
pub(super) fn budget_blocks(results: &Results) -> Vec<Block> {
    if results.budget.is_empty() {
        return vec![];
    }
    let pct = crate::report::plots::is_classifier(results);
    let (scale, unit) = if pct { (100.0, " points") } else { (1.0, "") };
    let f = |v: f64| if pct { fixed(scale * v, 2) } else { significant(v, 3) };
    let what = if results.higher_is_better { "drop" } else { "increase" };
    let mut blocks = vec![Block::Paragraph(text(format!(
        "Every configuration drew the same random numbers (common random numbers), so each difference is paired trial by trial ({} intervals). The cost of a configuration is the metric's {what} against all sources off (\"ideal\"); a source's cost alone is that of the configuration with only that source on, its removal gain is what switching it off in the full configuration recovers. The interaction is the full cost minus the sum of the alone costs: positive when sources compound, negative when they overlap.",
        percent_label(results.confidence)
    )))];
    let sentences = results
        .budget
        .iter()
        .map(|b| {
            let at = if b.series.is_empty() { format!("at {}", b.time_label) } else { format!("{}, at {}", b.series, b.time_label) };
            let dom = b.sources.iter().find(|s| s.source == b.dominant);
            let dom_text = match dom {
                Some(d) => format!(
                    "{} costs {} ± {}{unit} of the {} ± {}{unit} {what}",
                    d.source.replace('_', " "),
                    f(d.alone),
                    f((d.alone_hi - d.alone_lo) / 2.0),
                    f(b.cost),
                    f((b.cost_hi - b.cost_lo) / 2.0)
                ),
                None => format!("the {what} is {}{unit}", f(b.cost)),
            };
            let layer = b.layers.iter().max_by(|x, y| x.alone.total_cmp(&y.alone)).map_or(String::new(), |l| {
                format!("; by layer, {}'s noise alone costs most ({} ± {}{unit})", l.source, f(l.alone), f((l.alone_hi - l.alone_lo) / 2.0))
            });
            text(format!("{at}: {dom_text}{layer}; the sources' alone costs leave an interaction of {}{unit}.", f(b.interaction)))
        })
        .collect();
    blocks.push(Block::List(sentences));
    let mut rows = Vec::new();
    for b in &results.budget {
        let name = if b.series.is_empty() { b.time_label.clone() } else { format!("{}, {}", b.series, b.time_label) };
        rows.push(vec![
            text(name.clone()),
            text("all sources".to_string()),
            text(format!("{} [{}, {}]", f(b.cost), f(b.cost_lo), f(b.cost_hi))),
            text("–".to_string()),
        ]);
        for s in &b.sources {
            rows.push(vec![
                text(String::new()),
                text(s.source.replace('_', " ")),
                text(format!("{} [{}, {}]", f(s.alone), f(s.alone_lo), f(s.alone_hi))),
                text(format!("{} [{}, {}]", f(s.removal), f(s.removal_lo), f(s.removal_hi))),
            ]);
        }
        rows.push(vec![text(String::new()), text("interaction".to_string()), text(f(b.interaction)), text("–".to_string())]);
        for l in &b.layers {
            rows.push(vec![
                text(String::new()),
                text(format!("{} (every source)", l.source)),
                text(format!("{} [{}, {}]", f(l.alone), f(l.alone_lo), f(l.alone_hi))),
                text(format!("{} [{}, {}]", f(l.removal), f(l.removal_lo), f(l.removal_hi))),
            ]);
        }
    }
    blocks.push(Block::Table(Table {
        header: ["point", "source", &format!("cost alone{}", if pct { " (points)" } else { "" }), "removal gain"].iter().map(|h| h.to_string()).collect(),
        rows,
        right_aligned: vec![false, false, true, true],
    }));
    let sens: Vec<Vec<Vec<Inline>>> = results
        .budget
        .iter()
        .flat_map(|b| {
            let name = if b.series.is_empty() { b.time_label.clone() } else { format!("{}, {}", b.series, b.time_label) };
            b.sensitivity.iter().filter(|k| k.setting != "as in the file").map(move |k| {
                vec![text(name.clone()), text(k.setting.clone()), text(f(k.median)), text(format!("{} [{}, {}]", f(k.diff), f(k.diff_lo), f(k.diff_hi)))]
            })
        })
        .collect();
    if !sens.is_empty() {
        blocks.push(Block::Paragraph(text(
            "Sensitivity: each knob moved alone from the file's setting on the same draws; the difference from the full configuration is paired.",
        )));
        blocks.push(Block::Table(Table {
            header: ["point", "setting", "median", "difference from the file's setting"].iter().map(|h| h.to_string()).collect(),
            rows: sens,
            right_aligned: vec![false, false, true, true],
        }));
    }
    blocks
}
