//! The report documents: what `report.md` and `report.html` say, and how each is written.
//!
//! The content is built once as a small document model ([`Block`], [`Inline`]) and then written
//! twice, as Markdown and as self-contained HTML, so the two reports cannot disagree. Numbers are
//! only formatted here (units, rounding); every statistic comes from the [`Results`] as stored.

use std::fmt::Write as _;

use super::plots::{is_classifier, metric_scale, series_of, PlotFile, Series};
use super::results::{Energy, Results};
use super::ReportError;

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

fn text(s: impl Into<String>) -> Vec<Inline> {
    vec![Inline::Text(s.into())]
}

fn code(s: impl Into<String>) -> Vec<Inline> {
    vec![Inline::Code(s.into())]
}

// ---------------------------------------------------------------------------------------------
// Number formatting.

/// How metric values are shown: accuracies in % with two decimals, anything else with four
/// significant digits in its own unit.
struct Fmt {
    classifier: bool,
    scale: f64,
}

impl Fmt {
    fn new(results: &Results) -> Self {
        Fmt { classifier: is_classifier(results), scale: metric_scale(results) }
    }

    /// A metric value for tables (no unit; the table's note gives it).
    fn value(&self, v: f64) -> String {
        if self.classifier {
            fixed(v * self.scale, 2)
        } else {
            significant(v, 4)
        }
    }

    /// A metric value for prose, with its unit.
    fn prose(&self, v: f64) -> String {
        if self.classifier {
            format!("{} %", fixed(v * self.scale, 1))
        } else {
            significant(v, 3)
        }
    }

    fn range(&self, lo: f64, hi: f64) -> String {
        format!("{}–{}", self.value(lo), self.value(hi))
    }

    /// The unit of differences between metric values.
    fn difference_unit(&self) -> &'static str {
        if self.classifier {
            " points"
        } else {
            ""
        }
    }
}

fn fixed(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return non_finite(v);
    }
    let s = format!("{v:.decimals$}");
    // "-0.00" reads as a sign error; rounding to zero shows as zero.
    if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
        s[1..].to_string()
    } else {
        s
    }
}

/// Drops trailing zeros of a fixed-notation number ("0.500" → "0.5") for values that are
/// settings rather than measurements.
fn trimmed(s: String) -> String {
    if s.contains('.') && !s.contains('e') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn non_finite(v: f64) -> String {
    if v.is_nan() {
        "n/a".to_string()
    } else if v > 0.0 {
        "∞".to_string()
    } else {
        "−∞".to_string()
    }
}

/// `digits` significant digits, in fixed notation for magnitudes 1e-3..1e6 and scientific
/// otherwise.
fn significant(v: f64, digits: usize) -> String {
    if !v.is_finite() {
        return non_finite(v);
    }
    if v == 0.0 {
        return "0".to_string();
    }
    let magnitude = v.abs().log10().floor() as i32;
    if (-3..6).contains(&magnitude) {
        let decimals = (digits as i32 - 1 - magnitude).max(0) as usize;
        fixed(v, decimals)
    } else {
        format!("{:.*e}", digits - 1, v)
    }
}

/// Decimals that show a ± half-width `hw` to one or two significant digits.
fn decimals_for(hw: f64) -> usize {
    if hw.is_finite() && hw > 0.0 {
        (-hw.log10().floor()).clamp(1.0, 6.0) as usize
    } else {
        1
    }
}

/// 0.95 → "95 %", 0.999 → "99.9 %".
fn percent_label(confidence: f64) -> String {
    let s = format!("{:.3}", confidence * 100.0);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s} %")
}

/// Picojoules in the most readable of pJ, nJ, µJ, mJ.
fn energy_label(pj: f64) -> String {
    scaled_unit(pj, &[(1.0, "pJ"), (1e3, "nJ"), (1e6, "µJ"), (1e9, "mJ")])
}

/// Nanoseconds in the most readable of ns, µs, ms, s.
fn latency_label(ns: f64) -> String {
    scaled_unit(ns, &[(1.0, "ns"), (1e3, "µs"), (1e6, "ms"), (1e9, "s")])
}

fn scaled_unit(v: f64, units: &[(f64, &str)]) -> String {
    let (factor, unit) = units.iter().rev().find(|(factor, _)| v.abs() >= *factor).copied().unwrap_or(units[0]);
    format!("{} {unit}", significant(v / factor, 3))
}

fn duration_label(seconds: f64) -> String {
    if !seconds.is_finite() {
        return non_finite(seconds);
    }
    if seconds < 120.0 {
        format!("{} s", significant(seconds, 3))
    } else if seconds < 7200.0 {
        format!("{} min", fixed(seconds / 60.0, 1))
    } else {
        format!("{} h", fixed(seconds / 3600.0, 2))
    }
}

// ---------------------------------------------------------------------------------------------
// Content.

/// The report's content, in order.
pub fn document(results: &Results, plots: &[PlotFile]) -> Result<Vec<Block>, ReportError> {
    let fmt = Fmt::new(results);
    let series = series_of(results);
    let mut blocks = vec![Block::Heading(1, results.name.clone())];
    for paragraph in results.description.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        blocks.push(Block::Paragraph(text(paragraph.split_whitespace().collect::<Vec<_>>().join(" "))));
    }

    blocks.push(Block::Heading(2, "Summary".to_string()));
    if series.is_empty() {
        blocks.push(Block::Paragraph(text("The run recorded no points.")));
    } else {
        blocks.push(Block::List(series.iter().map(|s| text(summary_sentence(results, &fmt, s))).collect()));
    }
    blocks.push(Block::Paragraph(text(format!(
        "{} trials per point; intervals at {} confidence unless stated; {}.",
        results.trials,
        percent_label(results.confidence),
        if fmt.classifier { "accuracies in %, drops in percentage points" } else { "values in the metric's own unit" }
    ))));
    if let Some(energy) = &results.energy {
        blocks.push(Block::Paragraph(text(format!(
            "Energy per inference: {}, latency {}; cost table {}.",
            energy_label(energy.total_pj),
            latency_label(energy.latency_ns),
            energy.table
        ))));
        if energy.crossbar_cells > 0 && (energy.used_cells as f64) < 0.5 * energy.crossbar_cells as f64 {
            blocks.push(Block::Paragraph(text(format!(
                "The model fills {:.0} % of the crossbar cells of the tiles it occupies ({} of {}): the cost table charges a tier MVM at any fill, so these layers pay for full crossbars on every MVM; smaller crossbars (`[tile]`) or several layers per crossbar would cost less.",
                100.0 * energy.used_cells as f64 / energy.crossbar_cells as f64,
                energy.used_cells,
                energy.crossbar_cells
            ))));
        }
    }

    let floor = noise_floor_sentences(results);
    if !floor.is_empty() {
        blocks.push(Block::Heading(2, "Noise floor".to_string()));
        blocks.push(Block::Paragraph(text(
            "Floating point keeps improving with the feature count s (an approximation error falls roughly as 1/√s); with crossbar noise the analog metric improves at first and then levels off at a floor the noise sets. Per line, at the two largest s:",
        )));
        blocks.push(Block::List(floor.into_iter().map(text).collect()));
    }

    let budget = budget_blocks(results);
    if !budget.is_empty() {
        blocks.push(Block::Heading(2, "Noise budget".to_string()));
        blocks.extend(budget);
    }

    let moe = moe_blocks(results);
    if !moe.is_empty() {
        blocks.push(Block::Heading(2, "3D AIMC against a GPU".to_string()));
        blocks.extend(moe);
    }

    if !plots.is_empty() {
        blocks.push(Block::Heading(2, "Plots".to_string()));
        for plot in plots {
            blocks.push(Block::Figure { stem: plot.stem.clone(), caption: plot.title.clone() });
        }
    }

    blocks.push(Block::Heading(2, "Statistics".to_string()));
    let stops: Vec<Vec<Inline>> =
        series.iter().filter_map(|s| s.points.first().and_then(|p| p.stopped.as_ref()).map(|why| text(format!("{}: {why}.", s.label())))).collect();
    if !stops.is_empty() {
        blocks.push(Block::Paragraph(text(
            "Adaptive trials: each series ran batches of trials until the mean's trial-to-trial interval was narrow enough at every time, or the cap:",
        )));
        blocks.push(Block::List(stops));
    }
    if crate::report::plots::is_classifier(results) {
        blocks.push(Block::Paragraph(text(
            "Two uncertainties, kept apart. The trial-to-trial interval (Student t over trials) says how well the Monte Carlo pinned the mean accuracy down for this test set; it shrinks with more trials. The test-set sampling interval (Wilson over the test images) says how far the mean accuracy could lie on another test set of the same size; more trials do not shrink it. The pooled columns count every (trial, image) as an independent draw and are neither. The 5th percentile's interval is a percentile bootstrap over trials; P(< threshold) is the fraction of trials below the tail threshold (tail_below, default one point below floating point) with a Clopper–Pearson interval over trials.",
        )));
    }
    for s in &series {
        blocks.push(Block::Heading(3, s.label().to_string()));
        blocks.push(Block::Table(distribution_table(&fmt, s)));
        blocks.push(Block::Table(interval_table(results, &fmt, s)));
    }

    if !results.paired.is_empty() {
        blocks.push(Block::Heading(2, "Paired differences".to_string()));
        blocks.extend(paired_blocks(results));
    }

    if let Some(c) = &results.reference {
        blocks.push(Block::Heading(2, format!("Against {}", c.source)));
        blocks.extend(reference_blocks(c));
    }

    if let Some(energy) = &results.energy {
        blocks.push(Block::Heading(2, "Energy and latency per inference".to_string()));
        blocks.extend(energy_tables(energy));
    }

    if results.points.iter().any(|p| !p.layer_insight.is_empty()) {
        blocks.push(Block::Heading(2, "Per layer".to_string()));
        blocks.extend(layer_insight_blocks(results, &series));
    }

    if results.points.iter().any(|p| !p.weight_error.is_empty()) {
        blocks.push(Block::Heading(2, "Effective-weight error".to_string()));
        blocks.push(Block::Paragraph(text("E = (α W_eff − W) / max|W| over all weights and trials of a layer; α is the global drift compensation factor.")));
        blocks.push(Block::Table(weight_error_table(results, &series)));
    }

    blocks.push(Block::Heading(2, "Run".to_string()));
    blocks.push(Block::Table(run_table(results)));
    if let Some(profile) = &results.profile {
        blocks.push(Block::Heading(3, "Where the time went".to_string()));
        blocks.push(Block::Paragraph(text(format!("Per stage, timed by {} (`aimc run --profile`).", profile.timer))));
        blocks.push(Block::Code(String::new(), profile.table()));
    }

    blocks.push(Block::Heading(2, "Configuration".to_string()));
    blocks.push(Block::Code("json".to_string(), serde_json::to_string_pretty(&results.config)?));
    Ok(blocks)
}

/// e.g. "With gdc=readout, the median test accuracy falls from 95.2 % at 1 s to 93.0 % at 10 y;
/// the floating-point accuracy is 95.3 %; at 10 y the mean drop is 2.3 ± 0.1 points (95 % CI)."
fn summary_sentence(results: &Results, fmt: &Fmt, series: &Series<'_>) -> String {
    let mut out =
        if series.name.is_empty() { format!("The median {}", results.metric) } else { format!("With {}, the median {}", series.name, results.metric) };
    let (Some(first), Some(last)) = (series.points.first(), series.points.last()) else {
        return out + " has no points.";
    };
    let (a, b) = (fmt.prose(first.summary.median), fmt.prose(last.summary.median));
    if series.points.len() == 1 {
        let _ = write!(out, " is {a} at {}", first.time_label);
    } else if a == b {
        let _ = write!(out, " stays at {a} from {} to {}", first.time_label, last.time_label);
    } else {
        let verb = if last.summary.median > first.summary.median { "rises" } else { "falls" };
        let _ = write!(out, " {verb} from {a} at {} to {b} at {}", first.time_label, last.time_label);
    }
    if let Some(fp) = results.fp_baseline {
        let what = if fmt.classifier { "accuracy".to_string() } else { results.metric.clone() };
        let _ = write!(out, "; the floating-point {what} is {}", fmt.prose(fp));
    }
    if let Some(drop) = &last.drop {
        let hw = drop.ci.half_width() * fmt.scale;
        let decimals = decimals_for(hw);
        let _ = write!(
            out,
            "; at {} the mean drop is {} ± {}{} ({} CI)",
            last.time_label,
            fixed(drop.mean * fmt.scale, decimals),
            fixed(hw, decimals),
            fmt.difference_unit(),
            percent_label(drop.ci.confidence)
        );
    }
    out + "."
}

fn distribution_table(fmt: &Fmt, series: &Series<'_>) -> Table {
    let header = ["time", "trials", "mean", "std", "median", "p1", "p5", "p95", "p99", "min", "max"];
    let rows = series
        .points
        .iter()
        .map(|p| {
            let s = &p.summary;
            let mut row = vec![text(p.time_label.clone()), text(s.n.to_string())];
            for v in [s.mean, s.std, s.median, s.p01, s.p05, s.p95, s.p99, s.min, s.max] {
                row.push(text(fmt.value(v)));
            }
            row
        })
        .collect();
    Table { header: header.iter().map(|h| h.to_string()).collect(), rows, right_aligned: header.iter().map(|h| *h != "time").collect() }
}

/// Intervals, pooled counts, drop and trial planning; the optional columns appear when any
/// point of the series has them.
fn interval_table(results: &Results, fmt: &Fmt, series: &Series<'_>) -> Table {
    let first = series.points.first();
    let mean_conf = first.map_or(results.confidence, |p| p.mean_ci.confidence);
    let pooled = series.points.iter().find_map(|p| p.pooled.as_ref());
    let drop = series.points.iter().find_map(|p| p.drop.as_ref());

    let test_set = series.points.iter().any(|p| p.test_set_ci.is_some());
    let p5 = series.points.iter().any(|p| p.p5_ci.is_some());
    let tail = series.points.iter().find_map(|p| p.tail.as_ref());
    let mut header = vec!["time".to_string(), format!("mean, trial-to-trial CI ({})", percent_label(mean_conf))];
    if test_set {
        header.push(format!("mean, test-set sampling CI ({})", percent_label(mean_conf)));
    }
    if p5 {
        header.push(format!("5th percentile CI (bootstrap, {})", percent_label(mean_conf)));
    }
    if let Some(t) = tail {
        header.push(format!("P(< {}) over trials (Clopper–Pearson)", fmt.value(t.threshold)));
    }
    if let Some(pooled) = pooled {
        header.push("pooled trials × images (correct/total)".to_string());
        header.push(format!("pooled Wilson ({})", percent_label(pooled.wilson.confidence)));
        header.push(format!("pooled Clopper–Pearson ({})", percent_label(pooled.clopper_pearson.confidence)));
    }
    if let Some(drop) = drop {
        header.push(format!("drop ({} CI)", percent_label(drop.ci.confidence)));
    }
    header.push(format!(
        "trials for ±{}{} ({})",
        trimmed(significant(results.ci_half_width * fmt.scale, 3)),
        fmt.difference_unit(),
        percent_label(results.confidence)
    ));

    let dash = || text("–");
    let rows = series
        .points
        .iter()
        .map(|p| {
            let mut row = vec![text(p.time_label.clone()), text(fmt.range(p.mean_ci.lo, p.mean_ci.hi))];
            if test_set {
                row.push(p.test_set_ci.as_ref().map_or_else(dash, |c| text(fmt.range(c.lo, c.hi))));
            }
            if p5 {
                row.push(p.p5_ci.as_ref().map_or_else(dash, |c| text(fmt.range(c.lo, c.hi))));
            }
            if tail.is_some() {
                row.push(
                    p.tail.as_ref().map_or_else(dash, |t| text(format!("{}/{} = {:.3} ({:.3}–{:.3})", t.below, t.trials, t.probability, t.ci.lo, t.ci.hi))),
                );
            }
            if pooled.is_some() {
                match &p.pooled {
                    Some(q) => {
                        row.push(text(format!("{} ({}/{})", fmt.value(q.proportion), q.successes, q.trials)));
                        row.push(text(fmt.range(q.wilson.lo, q.wilson.hi)));
                        row.push(text(fmt.range(q.clopper_pearson.lo, q.clopper_pearson.hi)));
                    }
                    None => row.extend([dash(), dash(), dash()]),
                }
            }
            if drop.is_some() {
                row.push(match &p.drop {
                    Some(d) => text(format!("{} ({})", fmt.value(d.mean), fmt.range(d.ci.lo, d.ci.hi))),
                    None => dash(),
                });
            }
            row.push(text(p.trials_needed.to_string()));
            row
        })
        .collect();
    let right_aligned = (0..header.len()).map(|i| i > 0).collect();
    Table { header, rows, right_aligned }
}

fn energy_tables(energy: &Energy) -> Vec<Block> {
    let share = |pj: f64| {
        if energy.total_pj > 0.0 {
            fixed(100.0 * pj / energy.total_pj, 1)
        } else {
            "–".to_string()
        }
    };
    let parts = [
        ("analog MVM", energy.analog_pj),
        ("ADC", energy.adc_pj),
        ("DAC", energy.dac_pj),
        ("communication", energy.communication_pj),
        ("digital", energy.digital_pj),
        ("total", energy.total_pj),
    ];
    let breakdown = Table {
        header: vec!["component".to_string(), "energy (pJ)".to_string(), "share (%)".to_string()],
        rows: parts.iter().map(|(name, pj)| vec![text(*name), text(significant(*pj, 4)), text(share(*pj))]).collect(),
        right_aligned: vec![false, true, true],
    };
    let counts = [
        ("analog MVMs", energy.analog_mvms),
        ("ADC conversions", energy.adc_conversions),
        ("DAC conversions", energy.dac_conversions),
        ("digital operations", energy.digital_ops),
    ];
    let operations = Table {
        header: vec!["operation".to_string(), "count per inference".to_string()],
        rows: counts.iter().map(|(name, n)| vec![text(*name), text(n.to_string())]).collect(),
        right_aligned: vec![false, true],
    };
    vec![
        Block::Paragraph(text(format!(
            "Total {} and latency {} per inference, from the cost table {}.",
            energy_label(energy.total_pj),
            latency_label(energy.latency_ns),
            energy.table
        ))),
        Block::Table(breakdown),
        Block::Table(operations),
    ]
}

/// Which layer costs the accuracy: per layer, the error its MVMs add on their own inputs, the share
/// of MVMs bound management redid and of ADC outputs clipped; one sentence on the worst layer at
/// the last time.
fn layer_insight_blocks(results: &Results, series: &[Series<'_>]) -> Vec<Block> {
    let last = results.times.last().copied().unwrap_or(0.0);
    let trials = results.points.iter().flat_map(|p| p.layer_insight.first()).map(|l| l.trials).max().unwrap_or(0);
    let mut para = format!(
        "Over the first {trials} trials of each point: per layer, the relative error of its outputs against floating point on the same inputs (‖h − act(W x + b)‖ / ‖act(W x + b)‖ over the test set, x the layer's actual, noisy input: what this layer adds), the share of its tile MVMs that bound management redid with a reduced input (the ADC saturated at the full input scale) and the share of its ADC outputs clipped at the bound in the end."
    );
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

fn weight_error_table(results: &Results, series: &[Series<'_>]) -> Table {
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

/// Paired differences: one plain sentence for the largest at the last time, then the table.
fn paired_blocks(results: &Results) -> Vec<Block> {
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

/// The reference comparison: a sentence with the verdict, then one row per point.
fn reference_blocks(c: &super::results::ReferenceComparison) -> Vec<Block> {
    let pass = c.rows.iter().filter(|r| r.pass).count();
    let verdict = if c.passed { "All points pass" } else { "Not every point passes" };
    let para = format!(
        "{verdict} the pass mark ({pass} of {}): mean accuracy within {} percentage points of {} and standard deviation over trials within {:.0} % of its. Means, population standard deviations and 5th percentiles over trials, in %; reference numbers from {}.",
        c.rows.len(),
        c.mean_tol_pp,
        c.source,
        100.0 * c.std_rel_tol,
        c.file
    );
    let pct = |v: f64| fixed(100.0 * v, 2);
    let header = ["series", "t", "trials", "mean", "std", "p5", "ref. reps", "ref. mean", "ref. std", "ref. p5", "Δ mean (pp)", "std ratio", "pass"];
    let rows = c
        .rows
        .iter()
        .map(|r| {
            [
                r.series.clone(),
                r.time_label.clone(),
                r.trials.to_string(),
                pct(r.mean),
                pct(r.std),
                pct(r.p5),
                r.ref_reps.to_string(),
                pct(r.ref_mean),
                pct(r.ref_std),
                pct(r.ref_p5),
                fixed(r.mean_diff_pp, 2),
                fixed(r.std_ratio, 2),
                (if r.pass { "yes" } else { "no" }).to_string(),
            ]
            .into_iter()
            .map(text)
            .collect()
        })
        .collect();
    paragraph_and_table(para, &header, rows, 2)
}

/// A paragraph, then a table whose columns from `first_right` on are right-aligned (numbers).
fn paragraph_and_table(para: String, header: &[&str], rows: Vec<Vec<Vec<Inline>>>, first_right: usize) -> Vec<Block> {
    vec![
        Block::Paragraph(text(para)),
        Block::Table(Table {
            header: header.iter().map(|h| h.trim().to_string()).collect(),
            rows,
            right_aligned: (0..header.len()).map(|i| i >= first_right).collect(),
        }),
    ]
}

fn run_table(results: &Results) -> Table {
    let a = &results.adapter;
    let rows: Vec<(&str, Vec<Inline>)> = vec![
        ("adapter", text(a.name.clone())),
        ("backend", text(a.backend.clone())),
        ("driver", text(a.driver.clone())),
        ("device type", text(a.device_type.clone())),
        ("workload", code(results.workload.clone())),
        ("metric", text(results.metric.clone())),
        ("trials per point", text(results.trials.to_string())),
        ("run time", text(duration_label(results.run_seconds))),
        ("throughput", text(format!("{} trials/s", significant(results.trials_per_second, 4)))),
        ("seed", code(results.seed.to_string())),
        ("tool", text(results.tool.clone())),
        ("git commit", code(results.git_commit.clone())),
        ("experiment file", code(results.experiment_file.clone())),
        ("experiment sha256", code(results.experiment_sha256.clone())),
        ("schema version", text(results.schema_version.to_string())),
    ];
    Table {
        header: vec!["".to_string(), "value".to_string()],
        rows: rows.into_iter().map(|(k, v)| vec![text(k), v]).collect(),
        right_aligned: vec![false, false],
    }
}

// ---------------------------------------------------------------------------------------------
// Markdown.

/// Escapes characters that Markdown would read as markup, so names and labels print literally.
fn md_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '|') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn md_inline(parts: &[Inline]) -> String {
    parts
        .iter()
        .map(|part| match part {
            Inline::Text(s) => md_escape(s),
            Inline::Code(s) => {
                // A code span cannot hold its own delimiter; a longer fence can. Pipes still
                // need escaping inside tables (GitHub's rule), harmless elsewhere.
                let fence = if s.contains('`') { "``" } else { "`" };
                let body = s.replace('|', "\\|").replace('\n', " ");
                if fence.len() > 1 {
                    format!("{fence} {body} {fence}")
                } else {
                    format!("`{body}`")
                }
            }
        })
        .collect()
}

pub fn to_markdown(blocks: &[Block]) -> String {
    let mut out = String::new();
    for block in blocks {
        match block {
            Block::Heading(level, title) => {
                let _ = writeln!(out, "{} {}", "#".repeat(usize::from(*level)), md_escape(title));
            }
            Block::Paragraph(parts) => {
                let _ = writeln!(out, "{}", md_inline(parts));
            }
            Block::List(items) => {
                for item in items {
                    let _ = writeln!(out, "- {}", md_inline(item));
                }
            }
            Block::Table(table) => {
                let cell = |s: &str| {
                    if s.is_empty() {
                        " ".to_string()
                    } else {
                        s.to_string()
                    }
                };
                let header: Vec<String> = table.header.iter().map(|h| cell(&md_escape(h))).collect();
                let _ = writeln!(out, "| {} |", header.join(" | "));
                let rule: Vec<&str> = table.right_aligned.iter().map(|r| if *r { "---:" } else { "---" }).collect();
                let _ = writeln!(out, "| {} |", rule.join(" | "));
                for row in &table.rows {
                    let cells: Vec<String> = row.iter().map(|c| cell(&md_inline(c))).collect();
                    let _ = writeln!(out, "| {} |", cells.join(" | "));
                }
            }
            Block::Code(lang, body) => {
                // A fence longer than any backtick run inside the body.
                let longest = body.split(|c| c != '`').map(str::len).max().unwrap_or(0);
                let fence = "`".repeat(longest.max(2) + 1);
                let _ = writeln!(out, "{fence}{lang}\n{body}\n{fence}");
            }
            Block::Figure { stem, caption } => {
                let _ = writeln!(out, "![{}]({stem}.png)\n\n*{}* ([SVG]({stem}.svg))", md_escape(caption), md_escape(caption));
            }
        }
        out.push('\n');
    }
    // One trailing newline, not two.
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

// ---------------------------------------------------------------------------------------------
// HTML.

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn html_inline(parts: &[Inline]) -> String {
    parts
        .iter()
        .map(|part| match part {
            Inline::Text(s) => html_escape(s),
            Inline::Code(s) => format!("<code>{}</code>", html_escape(s)),
        })
        .collect()
}

const CSS: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;line-height:1.5;color:#1a1a1a;background:#fff;margin:0}
main{max-width:1100px;margin:0 auto;padding:2rem 1.5rem 4rem}
h1{font-size:1.9rem;margin-bottom:.3rem}h2{margin-top:2.5rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem;display:block;overflow-x:auto;max-width:100%}
th,td{border:1px solid #d0d0d0;padding:.3rem .6rem}td{white-space:nowrap}th{vertical-align:bottom}
th{background:#f3f3f3}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tbody tr:nth-child(even){background:#fafafa}
code{font-family:ui-monospace,'DejaVu Sans Mono',Menlo,Consolas,monospace;font-size:.9em;background:#f3f3f3;padding:0 .2em;border-radius:3px}
pre{background:#f6f6f6;border:1px solid #e0e0e0;padding:1rem;overflow-x:auto;font-size:.85rem}pre code{background:none;padding:0}
figure{margin:1.5rem 0}figure svg{width:100%;height:auto;display:block}figcaption{color:#555;font-size:.95rem;margin-top:.3rem}
";

/// Prepares an SVG file's text for inlining: drops any XML prolog or doctype (invalid inside
/// HTML) and adds a viewBox when missing, so the picture scales to the page width instead of
/// being cropped.
pub fn inline_svg(svg: &str) -> String {
    let mut body = svg.trim_start();
    while body.starts_with("<?") || body.starts_with("<!") {
        match body.find('>') {
            Some(end) => body = body[end + 1..].trim_start(),
            None => break,
        }
    }
    let Some(tag_end) = body.find('>') else {
        return body.to_string();
    };
    let tag = &body[..tag_end];
    if !tag.starts_with("<svg") || tag.contains("viewBox") {
        return body.to_string();
    }
    let attribute = |name: &str| {
        let key = format!(" {name}=\"");
        tag.find(&key).and_then(|i| {
            let rest = &tag[i + key.len()..];
            rest.find('"').map(|j| rest[..j].to_string())
        })
    };
    match (attribute("width"), attribute("height")) {
        (Some(w), Some(h)) => format!("<svg viewBox=\"0 0 {w} {h}\"{}", &body[4..]),
        _ => body.to_string(),
    }
}

/// The self-contained HTML page. `svgs` maps each figure stem to the text of its SVG file.
pub fn to_html(title: &str, blocks: &[Block], svgs: &[(String, String)]) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n<main>\n",
        html_escape(title)
    );
    for block in blocks {
        match block {
            Block::Heading(level, title) => {
                let _ = writeln!(out, "<h{level}>{}</h{level}>", html_escape(title));
            }
            Block::Paragraph(parts) => {
                let _ = writeln!(out, "<p>{}</p>", html_inline(parts));
            }
            Block::List(items) => {
                out.push_str("<ul>\n");
                for item in items {
                    let _ = writeln!(out, "<li>{}</li>", html_inline(item));
                }
                out.push_str("</ul>\n");
            }
            Block::Table(table) => html_table(&mut out, table),
            Block::Code(lang, body) => {
                let _ = writeln!(out, "<pre><code class=\"language-{}\">{}</code></pre>", html_escape(lang), html_escape(body));
            }
            Block::Figure { stem, caption } => {
                out.push_str("<figure>\n");
                match svgs.iter().find(|(s, _)| s == stem) {
                    Some((_, svg)) => {
                        out.push_str(inline_svg(svg).trim_end());
                        out.push('\n');
                    }
                    None => {
                        let _ = writeln!(out, "<p>(plot {} missing)</p>", html_escape(stem));
                    }
                }
                let _ = writeln!(out, "<figcaption>{}</figcaption>\n</figure>", html_escape(caption));
            }
        }
    }
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

fn html_table(out: &mut String, table: &Table) {
    let class = |i: usize| {
        if table.right_aligned.get(i).copied().unwrap_or(false) {
            " class=\"num\""
        } else {
            ""
        }
    };
    out.push_str("<table>\n<thead><tr>");
    for (i, h) in table.header.iter().enumerate() {
        let _ = write!(out, "<th{}>{}</th>", class(i), html_escape(h));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in &table.rows {
        out.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            let _ = write!(out, "<td{}>{}</td>", class(i), html_inline(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
}

/// Where the analog metric levels off: per line of the feature plot (every combination of the
/// other axes and time), the analog median and the floating-point value at the two largest
/// feature counts, and how much each changed between them.
fn noise_floor_sentences(results: &Results) -> Vec<String> {
    if crate::report::plots::features_axis(results).is_none() {
        return vec![];
    }
    let pct = crate::report::plots::is_classifier(results);
    let f = |v: f64| if pct { format!("{} %", fixed(100.0 * v, 2)) } else { significant(v, 3) };
    let rel = |a: f64, b: f64| if a != 0.0 { format!("{:+.0} %", 100.0 * (b - a) / a.abs()) } else { "–".to_string() };
    crate::report::plots::feature_lines(results)
        .iter()
        .filter(|l| l.points.len() >= 2)
        .map(|l| {
            let (fa, a) = l.points[l.points.len() - 2];
            let (fb, b) = l.points[l.points.len() - 1];
            let name = if l.label.is_empty() { "analog".to_string() } else { l.label.clone() };
            let fp = match (a.fp, b.fp) {
                (Some(x), Some(y)) => format!("; floating point {} → {} ({})", f(x), f(y), rel(x, y)),
                _ => String::new(),
            };
            let gap = match b.fp {
                Some(y) if y != 0.0 => format!(", {:.1}× floating point at s = {fb}", b.summary.median / y),
                _ => String::new(),
            };
            // Levelling off: the analog metric changed by less than half of what floating point did.
            let (da, dfp) = (b.summary.median - a.summary.median, b.fp.zip(a.fp).map(|(y, x)| y - x));
            let verdict = match dfp {
                Some(d) if d != 0.0 && da.abs() < 0.5 * d.abs() => format!("It has levelled off: the noise floor sits near {}{gap}", f(b.summary.median)),
                Some(_) => format!("It still improves with floating point: no floor is reached by s = {fb}{gap}"),
                None => format!("At s = {fb} it is {}", f(b.summary.median)),
            };
            format!(
                "{name}: the analog median goes {} → {} ({}) from s = {fa} to s = {fb}{fp}. {verdict}.",
                f(a.summary.median),
                f(b.summary.median),
                rel(a.summary.median, b.summary.median),
            )
        })
        .collect()
}

/// The noise budget: per point and time one sentence naming the dominant source, then the table
/// of every source's cost alone and the gain of removing it, with paired intervals.
fn budget_blocks(results: &Results) -> Vec<Block> {
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

/// The MoE cost model in words and tables: per sweep point the mapping, the schedule's
/// distributions, the energy per token by component; the AIMC / GPU ratios per batch size and
/// every assumption they rest on.
fn moe_blocks(results: &Results) -> Vec<Block> {
    let pts: Vec<(&str, &crate::report::results::MoeCost)> =
        results.points.iter().filter_map(|p| p.moe.as_ref().map(|m| (if p.series.is_empty() { "all points" } else { p.series.as_str() }, m))).collect();
    let Some((_, first)) = pts.first() else {
        return vec![];
    };
    let mut blocks = vec![Block::Paragraph(text(format!(
        "Each trial draws the routing of a batch of {} tokens (the trial's noisy router, or the file's routing density) and schedules it event by event: MVMs on different tiers of one tile serialise (a tier conflict), tiles run in parallel, digital units are a shared pool. Costs from \"{}\"; the GPU from \"{}\". Means over trials, with the 5–95 % range of the per-trial values.",
        first.tokens, first.cost_table, first.gpu_table
    )))];
    let rows = pts
        .iter()
        .map(|(name, m)| {
            let e = &m.energy_per_token;
            let share = |v: f64| if e.total_pj > 0.0 { format!("{:.0} %", 100.0 * v / e.total_pj) } else { "–".into() };
            vec![
                text(name.to_string()),
                text(format!(
                    "{} / {} tiles, {} tiers ({:.0} % of all, fill {:.0} %)",
                    m.tiles_used,
                    m.tiles,
                    m.tiers_used,
                    100.0 * m.utilisation,
                    100.0 * m.mean_fill
                )),
                text(format!("{} ({}–{})", latency_label(m.latency_ns.mean), latency_label(m.latency_ns.p05), latency_label(m.latency_ns.p95))),
                text(format!("{} ({}–{})", significant(m.tier_conflicts.mean, 3), significant(m.tier_conflicts.p05, 3), significant(m.tier_conflicts.p95, 3))),
                text(significant(m.tokens_per_s.mean, 3)),
                text(energy_label(m.energy_per_token_pj.mean)),
                text(format!("MVM {}, comm. {}, digital {}, DRAM {}", share(e.mvm_pj), share(e.communication_pj), share(e.digital_pj), share(e.dram_pj))),
            ]
        })
        .collect();
    blocks.push(Block::Table(Table {
        header: ["series", "mapping", "latency per token", "tier conflicts per batch", "tokens/s", "energy per token", "energy by component"]
            .iter()
            .map(|h| h.to_string())
            .collect(),
        rows,
        right_aligned: vec![false, false, true, true, true, true, false],
    }));
    let mut rows = Vec::new();
    for (name, m) in &pts {
        for g in &m.gpu {
            rows.push(vec![
                text(name.to_string()),
                text(g.batch.to_string()),
                text(significant(g.aimc_tokens_per_s, 3)),
                text(significant(g.gpu_tokens_per_s, 3)),
                text(format!("{}{}", significant(g.throughput_ratio, 3), if g.gpu_memory_bound { " (GPU memory-bound)" } else { "" })),
                text(energy_label(g.aimc_energy_per_token_pj)),
                text(energy_label(g.gpu_energy_per_token_pj)),
                text(significant(g.energy_efficiency_ratio, 3)),
            ]);
        }
    }
    let best =
        pts.iter().flat_map(|(n, m)| m.gpu.iter().map(move |g| (n, g))).max_by(|a, b| a.1.energy_efficiency_ratio.total_cmp(&b.1.energy_efficiency_ratio));
    if let Some((n, g)) = best {
        blocks.push(Block::Paragraph(text(format!(
            "Against the GPU roofline of the same layer, the largest energy-efficiency ratio is {}× ({n}, batch {}), with a throughput ratio of {}×. These ratios rest on the assumptions listed below; change the cost tables to test your own technology.",
            significant(g.energy_efficiency_ratio, 3),
            g.batch,
            significant(g.throughput_ratio, 3)
        ))));
    }
    blocks.push(Block::Table(Table {
        header: ["series", "batch", "AIMC tokens/s", "GPU tokens/s", "throughput ratio", "AIMC energy/token", "GPU energy/token", "energy-efficiency ratio"]
            .iter()
            .map(|h| h.to_string())
            .collect(),
        rows,
        right_aligned: vec![false, true, true, true, true, true, true, true],
    }));
    blocks.push(Block::List(first.assumptions.iter().map(|a| text(a.clone())).collect()));
    let secs: f64 = pts.iter().map(|(_, m)| m.schedule_seconds).sum();
    let rate = pts.iter().map(|(_, m)| m.tokens_scheduled_per_s * m.schedule_seconds).sum::<f64>() / secs.max(1e-12);
    blocks.push(Block::Paragraph(text(format!(
        "The schedule simulation took {} for all points ({} tokens scheduled per second).",
        duration_label(secs),
        significant(rate, 3)
    ))));
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_format_for_reading() {
        assert_eq!(fixed(-0.0001, 2), "0.00");
        assert_eq!(fixed(95.216, 1), "95.2");
        assert_eq!(significant(0.020004, 4), "0.02000");
        assert_eq!(significant(7971.2, 4), "7971");
        assert_eq!(significant(1.5e-5, 3), "1.50e-5");
        assert_eq!(significant(f64::NAN, 3), "n/a");
        assert_eq!(trimmed(significant(0.5, 3)), "0.5");
        assert_eq!(percent_label(0.95), "95 %");
        assert_eq!(percent_label(0.999), "99.9 %");
        assert_eq!(energy_label(7970.5), "7.97 nJ");
        assert_eq!(energy_label(12.0), "12.0 pJ");
        assert_eq!(latency_label(1250.0), "1.25 µs");
        assert_eq!(decimals_for(0.1), 1);
        assert_eq!(decimals_for(0.04), 2);
    }

    #[test]
    fn text_is_escaped_for_each_format() {
        assert_eq!(md_escape("a_b|c*<d>"), "a\\_b\\|c\\*\\<d\\>");
        assert_eq!(html_escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
        assert_eq!(md_inline(&code("a|b")), "`a\\|b`");
        assert_eq!(md_inline(&code("a`b")), "`` a`b ``");
    }

    #[test]
    fn code_fence_outgrows_backticks_in_the_body() {
        let md = to_markdown(&[Block::Code("json".into(), "\"```\"".into())]);
        assert!(md.starts_with("````json\n"), "{md}");
    }

    #[test]
    fn inline_svg_drops_the_prolog_and_scales() {
        let svg = "<?xml version=\"1.0\"?>\n<!DOCTYPE svg>\n<svg width=\"10\" height=\"20\" xmlns=\"http://www.w3.org/2000/svg\"></svg>";
        assert_eq!(inline_svg(svg), "<svg viewBox=\"0 0 10 20\" width=\"10\" height=\"20\" xmlns=\"http://www.w3.org/2000/svg\"></svg>");
        let with_view_box = "<svg width=\"1\" height=\"1\" viewBox=\"0 0 1 1\"></svg>";
        assert_eq!(inline_svg(with_view_box), with_view_box);
    }

    #[test]
    fn tables_render_in_both_formats() {
        let table = Table { header: vec!["time".into(), "mean".into()], rows: vec![vec![text("1 s"), text("95.20")]], right_aligned: vec![false, true] };
        let md = to_markdown(&[Block::Table(table.clone())]);
        assert_eq!(md, "| time | mean |\n| --- | ---: |\n| 1 s | 95.20 |\n");
        let html = to_html("t", &[Block::Table(table)], &[]);
        assert!(html.contains("<tr><td>1 s</td><td class=\"num\">95.20</td></tr>"), "{html}");
    }
}
