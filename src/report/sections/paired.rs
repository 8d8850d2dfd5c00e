//! Paired differences: each sweep value against its axis's first value, trial by trial; past
//! `MAX_TABLE_ROWS` the tables list the largest differences and say where the rest are.

use std::collections::HashMap;

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
        // A direction only where the interval says so; otherwise the change and that it is not
        // resolved.
        let resolved = !big.ci.contains(0.0);
        let (verb, by) = match (resolved, big.mean >= 0.0) {
            (true, true) => ("raises", f(big.mean.abs())),
            (true, false) => ("lowers", f(big.mean.abs())),
            (false, _) => ("changes", format!("{}{}", if big.mean >= 0.0 { "+" } else { "−" }, f(big.mean.abs()))),
        };
        para.push_str(&format!(
            " At {}, {}={} {verb} the {} by {by} ± {}{unit} against {}={}{}{}.",
            big.time_label,
            big.axis,
            big.value,
            results.metric,
            f(big.ci.half_width()),
            big.axis,
            big.baseline,
            if big.others.is_empty() { String::new() } else { format!(" ({})", big.others) },
            if resolved { "" } else { ", an interval that includes 0: no difference is resolved" }
        ));
    }
    if results.paired.len() >= 20 {
        para.push_str(&format!(
            " With {} intervals, about {:.0} % of those whose true difference is 0 exclude 0 by chance; the largest of many differences is also biased away from 0.",
            results.paired.len(),
            100.0 * (1.0 - results.confidence)
        ));
    }
    // Past MAX_TABLE_ROWS differences, the largest (by |mean|); results.json keeps all of them.
    let keep = largest_rows(&results.paired.iter().map(|p| p.mean.abs()).collect::<Vec<_>>());
    if keep.len() < results.paired.len() {
        para.push_str(&format!(
            " The table lists the {} largest of the {} differences (by |mean|); every one is in results.json (`paired`).",
            keep.len(),
            results.paired.len()
        ));
    }
    let header = ["difference", "other axes", "t", "mean", "paired ± ", "unpaired ± "];
    let rows = keep
        .iter()
        .map(|&i| &results.paired[i])
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

/// The ratio of two points' losses from their own floating point, mean(loss_p) / mean(loss_q),
/// with its delta-method interval over the paired units (Student t on e_i = a_i − R·b_i, divided
/// by |mean b|): "0.43 [0.31, 0.55]". Only the ratio where the baseline's loss is not resolved
/// from zero (its interval includes 0: the ratio is unbounded), "–" without a loss.
fn loss_ratio(p: &Point, q: &Point, sign: f64, confidence: f64) -> String {
    let (Some(fp), Some(fq)) = (p.fp, q.fp) else { return "–".into() };
    let Some(u) = crate::run::paired::paired_units(&[p, q]).filter(|u| u[0].len() >= 2) else { return "–".into() };
    let a: Vec<f64> = u[0].iter().map(|v| sign * (fp - v)).collect();
    let b: Vec<f64> = u[1].iter().map(|v| sign * (fq - v)).collect();
    let (ma, mb): (crate::stats::Moments, crate::stats::Moments) = (a.iter().copied().collect(), b.iter().copied().collect());
    if mb.mean == 0.0 {
        return "–".into();
    }
    let r = ma.mean / mb.mean;
    let resolved = crate::stats::mean_t(&mb, confidence).is_ok_and(|ci| !ci.contains(0.0));
    let e: crate::stats::Moments = a.iter().zip(&b).map(|(x, y)| x - r * y).collect();
    match crate::stats::mean_t(&e, confidence) {
        Ok(ci) if resolved => {
            let h = ci.half_width() / mb.mean.abs();
            format!("{r:.2} [{:.2}, {:.2}]", r - h, r + h)
        }
        _ => format!("{r:.2} (baseline loss not resolved from 0)"),
    }
}

/// Whether the points differ in their floating-point metric (a sweep over model files, e.g. a
/// floating-point and a hardware-aware training): then the loss from each point's own floating
/// point is the comparison a paper prints.
pub(super) fn has_model_comparison(results: &Results) -> bool {
    let fps: Vec<f64> = results.points.iter().filter_map(|p| p.fp).collect();
    fps.len() == results.points.len() && (fps.iter().any(|&f| f != fps[0]) || results.config.get("point_models").is_some())
}

/// Loss from floating point: per point its own FP metric, the analog mean and the loss FP − mean
/// (the mean's interval: FP is exact); then, for every paired difference along an axis whose
/// values change the FP metric, the difference of the two losses with the paired interval (the FP
/// values are constants, so the loss difference has the paired interval of the means) and their
/// ratio.
pub(super) fn fp_loss_blocks(results: &Results) -> Vec<Block> {
    let pct = crate::report::plots::is_classifier(results);
    let (scale, unit) = if pct { (100.0, " points") } else { (1.0, "") };
    let f = |v: f64| if pct { fixed(scale * v, 2) } else { significant(v, 4) };
    let sign = if results.higher_is_better { 1.0 } else { -1.0 };
    let loss = |p: &Point| p.fp.map(|fp| sign * (fp - p.summary.mean));
    let header = ["series", "t", "floating point", "analog mean", "loss", "± "];
    let rows: Vec<Vec<Vec<Inline>>> = results
        .points
        .iter()
        .filter_map(|p| {
            let l = loss(p)?;
            Some([p.series.clone(), p.time_label.clone(), f(p.fp?), f(p.summary.mean), f(l), f(p.mean_ci.half_width())].into_iter().map(text).collect())
        })
        .collect();
    let mut para = format!(
        "Each point's loss from its own floating-point {} (its model evaluated without noise), with the mean's {:.0} % interval{unit}.",
        results.metric,
        100.0 * results.confidence
    );
    let keep = evenly_spaced_rows(rows.len());
    let rows = if keep.len() < rows.len() {
        para.push_str(&format!(" The table lists {} of the {} points, evenly spaced in sweep order; every point is in results.json.", keep.len(), rows.len()));
        let mut rows: Vec<Option<Vec<Vec<Inline>>>> = rows.into_iter().map(Some).collect();
        keep.iter().filter_map(|&i| rows[i].take()).collect()
    } else {
        rows
    };
    let mut blocks = paragraph_and_table(para, &header, rows, 2);
    // Each pair's two points, by (axis, other labels, value, time): one look-up per pair, where a
    // scan of every point per pair made a 4,000-point sweep quadratic.
    let mut by_key: HashMap<(&str, String, &str, u64), &Point> = HashMap::new();
    if !results.paired.is_empty() {
        for axis in &results.axes {
            for p in &results.points {
                let Some(value) = p.labels.get(&axis.name) else { continue };
                let others: Vec<String> = p.labels.iter().filter(|(k, _)| *k != &axis.name).map(|(k, v)| format!("{k}={v}")).collect();
                by_key.entry((axis.name.as_str(), others.join(", "), value.as_str(), p.t_inf.to_bits())).or_insert(p);
            }
        }
    }
    let point_of = |d: &PairedDifference, value: &str| by_key.get(&(d.axis.as_str(), d.others.clone(), value, d.t_inf.to_bits())).copied();
    let mut pairs = Vec::new();
    let mut sizes = Vec::new();
    let mut last_sentence = None;
    let last = results.times.last().copied().unwrap_or(0.0);
    for d in &results.paired {
        let (Some(p), Some(q)) = (point_of(d, &d.value), point_of(d, &d.baseline)) else { continue };
        let (Some(lp), Some(lq)) = (loss(p), loss(q)) else { continue };
        if p.fp == q.fp && results.config.get("point_models").is_none() {
            continue;
        }
        // loss_p − loss_q = (fp_p − fp_q) − sign·(mean_p − mean_q): the paired interval of the means.
        let diff = lp - lq;
        let ratio = loss_ratio(p, q, sign, results.confidence);
        // loss_p − ½·loss_q trial by trial: below zero with its interval when p loses at most
        // half of what the baseline loses.
        let half: crate::stats::Moments =
            p.per_trial.iter().zip(&q.per_trial).map(|(a, b)| sign * (p.fp.unwrap_or(0.0) - a) - 0.5 * sign * (q.fp.unwrap_or(0.0) - b)).collect();
        let half = match crate::stats::mean_t(&half, results.confidence) {
            Ok(ci) if p.per_trial.len() == q.per_trial.len() && p.per_trial.len() > 1 => format!("{} ± {}", f(half.mean), f(ci.half_width())),
            _ => "–".into(),
        };
        if d.t_inf == last {
            last_sentence = Some(format!(
                " At {}, {}={} loses {}{unit} from its floating point and {}={} {}{unit}: a difference of {} ± {}{unit} (paired), a ratio of {ratio}{}.",
                d.time_label,
                d.axis,
                d.value,
                f(lp),
                d.axis,
                d.baseline,
                f(lq),
                f(diff),
                f(d.ci.half_width()),
                if ratio.contains('[') { " (delta-method interval over paired trials)" } else { "" }
            ));
        }
        sizes.push(diff.abs());
        pairs.push(
            [
                format!("{}: {} − {}", d.axis, d.value, d.baseline),
                d.others.clone(),
                d.time_label.clone(),
                f(lp),
                f(lq),
                f(diff),
                f(d.ci.half_width()),
                ratio,
                half,
            ]
            .into_iter()
            .map(text)
            .collect(),
        );
    }
    if !pairs.is_empty() {
        let mut para = format!(
            "The loss of each value against the axis's first value at the same time, trial by trial as in the paired differences; the last column is loss − ½·baseline loss per trial, below zero (with its interval) where the value loses at most half of what the baseline loses.{}",
            last_sentence.unwrap_or_default()
        );
        let keep = largest_rows(&sizes);
        if keep.len() < pairs.len() {
            para.push_str(&format!(
                " The table lists the {} largest of the {} differences (by |difference|); the paired differences of every pair are in results.json (`paired`).",
                keep.len(),
                pairs.len()
            ));
            let mut all: Vec<Option<Vec<Vec<Inline>>>> = pairs.into_iter().map(Some).collect();
            pairs = keep.iter().filter_map(|&i| all[i].take()).collect();
        }
        blocks.extend(paragraph_and_table(
            para,
            &["losses", "other axes", "t", "loss", "baseline loss", "difference", "paired ± ", "ratio", "loss − ½ baseline"],
            pairs,
            3,
        ));
    }
    blocks
}
