//! Per layer: the error each layer adds on its own inputs (layer insight) and the effective-weight error.

use crate::report::document::*;
use crate::report::format::*;
use crate::report::series::*;
use crate::results::*;

/// Which layer costs the accuracy: per layer, the error its MVMs add on their own inputs, the share
/// of MVMs bound management redid and of ADC outputs clipped; one sentence on the worst layer at
/// the last time.
pub(super) fn layer_insight_blocks(results: &Results, series: &[Series<'_>]) -> Vec<Block> {
    let last = results.times.last().copied().unwrap_or(0.0);
    let trials = results.points.iter().flat_map(|p| p.layer_insight.first()).map(|l| l.trials).max().unwrap_or(0);
    let mut para = format!(
        "Over the first {trials} trials of each point: per layer, the relative error of its outputs against floating point on the same inputs (‖h − act(W x + b)‖ / ‖act(W x + b)‖ over the test set, x the layer's actual, noisy input: what this layer adds), the share of its tile MVMs that bound management redid with a reduced input (the ADC saturated at the full input scale) and the share of its ADC outputs clipped at the bound in the end."
    );
    let layers = results.config.pointer("/model/layers").and_then(|l| l.as_array()).cloned().unwrap_or_default();
    if layers.iter().any(|l| l.get("batchnorm").is_some() || l.get("add").is_some()) {
        para.push_str(" A layer with a digital BatchNorm or a shortcut's addition is compared on its W x + b, before them and its activation.");
    }
    let worst = results
        .points
        .iter()
        .filter(|p| p.t_inf == last)
        .flat_map(|p| p.layer_insight.iter().map(move |l| (p, l)))
        .max_by(|a, b| a.1.mvm_error.median.total_cmp(&b.1.mvm_error.median));
    if let Some((p, l)) = worst {
        para.push_str(&format!(
            " At {}, layer {} adds the largest error: median {} % ({}{}).",
            p.time_label,
            results.layer_label(l.layer),
            fixed(100.0 * l.mvm_error.median, 1),
            p.series,
            if l.clipped > 0.001 { format!("; {} % of its ADC outputs clipped", fixed(100.0 * l.clipped, 1)) } else { String::new() }
        ));
    }
    let header = ["series", "time", "layer", "MVM error, median", "5–95 %", "redone by bound management", "clipped ADC outputs"];
    let mut rows = Vec::new();
    for s in series {
        for p in &s.points {
            for l in &p.layer_insight {
                rows.push(vec![
                    text(s.label()),
                    text(p.time_label.clone()),
                    text(results.layer_label(l.layer)),
                    text(format!("{} %", fixed(100.0 * l.mvm_error.median, 2))),
                    text(format!("{}–{} %", fixed(100.0 * l.mvm_error.p05, 2), fixed(100.0 * l.mvm_error.p95, 2))),
                    text(format!("{} %", fixed(100.0 * l.bm_repeated, 2))),
                    text(format!("{} %", fixed(100.0 * l.clipped, 3))),
                ]);
            }
        }
    }
    let table = Table {
        header: header.iter().map(|h| h.to_string()).collect(),
        rows,
        right_aligned: header.iter().map(|h| !matches!(*h, "series" | "time")).collect(),
    };
    vec![Block::Paragraph(text(para)), Block::Table(table)]
}

pub(super) fn weight_error_table(results: &Results, series: &[Series<'_>]) -> Table {
    let header = ["series", "time", "layer", "trials", "mean", "std", "α mean", "α std"];
    let mut rows = Vec::new();
    for s in series {
        for p in &s.points {
            for w in &p.weight_error {
                rows.push(vec![
                    text(s.label()),
                    text(p.time_label.clone()),
                    text(results.layer_name(w.layer)),
                    text(w.trials.to_string()),
                    text(significant(w.mean, 4)),
                    text(significant(w.std, 4)),
                    text(significant(w.alpha_mean, 4)),
                    text(significant(w.alpha_std, 4)),
                ]);
            }
        }
    }
    Table { header: header.iter().map(|h| h.to_string()).collect(), rows, right_aligned: header.iter().map(|h| !matches!(*h, "series" | "time")).collect() }
}
