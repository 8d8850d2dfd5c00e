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
        "Every configuration drew the same random numbers (common random numbers), so each difference is paired trial by trial ({} intervals). The cost of a configuration is the metric's {what} against all sources off (\"ideal\"); a source's cost alone is that of the configuration with only that source on, its removal gain is what switching it off in the full configuration recovers. The interaction is the full cost minus the sum of the alone costs: positive when sources compound, negative when they overlap. A source is named the costliest only where its paired interval against the next one excludes 0.",
        percent_label(results.confidence)
    )))];
    let sentences = results
        .budget
        .iter()
        .map(|b| {
            let at = if b.series.is_empty() { format!("at {}", b.time_label) } else { format!("{}, at {}", b.series, b.time_label) };
            let pm = |x: &BudgetSource| format!("{} ± {}{unit}", f(x.alone), f((x.alone_hi - x.alone_lo) / 2.0));
            let total = format!("{} ± {}{unit}", f(b.cost), f((b.cost_hi - b.cost_lo) / 2.0));
            let mut by_cost: Vec<&BudgetSource> = b.sources.iter().collect();
            by_cost.sort_by(|x, y| y.alone.total_cmp(&x.alone));
            let dom_text = match (by_cost.first(), by_cost.get(1)) {
                (Some(d), _) if b.dominant_resolved => format!("{} costs most, {} of the {total} {what}", d.source.replace('_', " "), pm(d)),
                (Some(d), Some(e)) => format!(
                    "no single source is resolved as the costliest: {} ({}) and {} ({}) are not told apart by their paired interval, of the {total} {what}",
                    d.source.replace('_', " "),
                    pm(d),
                    e.source.replace('_', " "),
                    pm(e)
                ),
                _ => format!("the {what} is {total}"),
            };
            let mut layers: Vec<&BudgetSource> = b.layers.iter().collect();
            layers.sort_by(|x, y| y.alone.total_cmp(&x.alone));
            let layer = match (layers.first(), layers.get(1)) {
                (Some(l), _) if b.dominant_layer_resolved => format!("; by layer, {}'s noise alone costs most ({})", l.source, pm(l)),
                (Some(l), Some(m)) => format!("; by layer, {} ({}) and {} ({}) are not told apart", l.source, pm(l), m.source, pm(m)),
                _ => String::new(),
            };
            let inter = match b.interaction_ci {
                Some([lo, hi]) => format!("{} [{}, {}]{unit}", f(b.interaction), f(lo), f(hi)),
                None => format!("{}{unit}", f(b.interaction)),
            };
            // A removal that costs (its paired interval below 0): that source or layer off is
            // worse than all on, which an additive reading would call impossible; say so.
            let worse: Vec<String> = b
                .sources
                .iter()
                .chain(&b.layers)
                .filter(|x| x.removal_hi < 0.0)
                .map(|x| {
                    let name = x.source.replace('_', " ");
                    let name = if name.starts_with("layer ") { format!("{name}'s noise") } else { name };
                    format!("{name} ({} [{}, {}]{unit})", f(x.removal), f(x.removal_lo), f(x.removal_hi))
                })
                .collect();
            let worse = if worse.is_empty() {
                String::new()
            } else {
                format!(
                    "; removing {} makes it worse, not better: the sources interact, and a removal gain is what the network gives with that noise off (as a run with it off would), not a share of the {what}",
                    worse.join(", ")
                )
            };
            text(format!("{at}: {dom_text}{layer}; the sources' alone costs leave an interaction of {inter}{worse}."))
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
        let inter = match b.interaction_ci {
            Some([lo, hi]) => format!("{} [{}, {}]", f(b.interaction), f(lo), f(hi)),
            None => f(b.interaction),
        };
        rows.push(vec![text(String::new()), text("interaction".to_string()), text(inter), text("–".to_string())]);
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
        blocks.push(Block::Paragraph(text(format!(
            "Sensitivity: each knob moved alone from the file's setting on the same draws; the difference from the full configuration is paired. With many intervals, about {:.0} % of those whose true difference is 0 exclude 0 by chance: a single interval that just excludes 0, against the trend of its knob, is more likely that than an effect.",
            100.0 * (1.0 - results.confidence)
        ))));
        blocks.push(Block::Table(Table {
            header: ["point", "setting", "median", "difference from the file's setting"].iter().map(|h| h.to_string()).collect(),
            rows: sens,
            right_aligned: vec![false, false, true, true],
        }));
    }
    blocks
}
