//! What the report says, section by section, in order: [`document`] assembles the sections (one
//! file each) into the document model. Numbers are only formatted here ([`super::format`]); every
//! statistic comes from the results as stored.

mod budget;
mod companion;
mod energy;
mod kernel;
mod layers;
mod moe;
mod noise_floor;
mod npu;
mod paired;
mod reference;
mod rows;
mod run;
mod statistics;
mod summary;

use crate::report::document::*;
use crate::report::error::ReportError;
use crate::report::format::*;
use crate::report::plots::PlotFile;
use crate::report::series::*;
use crate::results::*;
use budget::*;
use companion::*;
use energy::*;
use kernel::*;
use layers::*;
use moe::*;
use noise_floor::*;
use npu::*;
use paired::*;
use reference::*;
use rows::*;
use run::*;
use statistics::*;
use summary::*;

/// The report's content, in order.
pub fn document(results: &Results, plots: &[PlotFile]) -> Result<Vec<Block>, ReportError> {
    let fmt = Fmt::new(results);
    let series = series_of(results);
    let mut blocks = vec![Block::Heading(1, results.name.clone())];
    for paragraph in results.description.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        blocks.push(Block::Paragraph(text(paragraph.split_whitespace().collect::<Vec<_>>().join(" "))));
    }

    blocks.push(Block::Heading(2, "Summary".to_string()));
    // Past MAX_TABLE_ROWS series the summary, like the per-series statistics below, speaks of an
    // evenly spaced selection and says so; results.json and trials.csv keep every point.
    let listed: Vec<Series<'_>> = evenly_spaced_rows(series.len()).into_iter().map(|i| series[i].clone()).collect();
    let selection = (listed.len() < series.len()).then(|| {
        format!(
            "The sweep has {} series; this summary and the statistics below list {} of them, evenly spaced in sweep order. Every point is in results.json and trials.csv.",
            series.len(),
            listed.len()
        )
    });
    if series.is_empty() {
        blocks.push(Block::Paragraph(text("The run recorded no points.")));
    } else {
        blocks.push(Block::List(listed.iter().map(|s| text(summary_sentence(results, &fmt, s))).collect()));
    }
    if let Some(note) = &selection {
        blocks.push(Block::Paragraph(text(note.clone())));
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

    if let Some(s) = results.npu.as_ref().and_then(npu_summary) {
        blocks.push(Block::Paragraph(text(s)));
    }

    let (intro, floor) = noise_floor_sentences(results);
    if !floor.is_empty() {
        blocks.push(Block::Heading(2, "Noise floor".to_string()));
        blocks.push(Block::Paragraph(text(intro)));
        blocks.push(Block::List(floor.into_iter().map(text).collect()));
    }

    let kernel = kernel_blocks(results);
    if !kernel.is_empty() {
        blocks.push(Block::Heading(2, "Kernel point set, projections and clipping".to_string()));
        blocks.extend(kernel);
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

    if let Some(n) = &results.npu {
        blocks.push(Block::Heading(2, "Edge NPU: latency and energy per inference".to_string()));
        blocks.extend(npu_blocks(n));
    }

    if !plots.is_empty() {
        blocks.push(Block::Heading(2, "Plots".to_string()));
        for plot in plots {
            let caption = match &plot.note {
                Some(note) => format!("{} ({note})", plot.title),
                None => plot.title.clone(),
            };
            blocks.push(Block::Figure { stem: plot.stem.clone(), caption });
        }
    }

    blocks.push(Block::Heading(2, "Statistics".to_string()));
    let stops: Vec<Vec<Inline>> =
        listed.iter().filter_map(|s| s.points.first().and_then(|p| p.stopped.as_ref()).map(|why| text(format!("{}: {why}.", s.label())))).collect();
    if !stops.is_empty() {
        blocks.push(Block::Paragraph(text(
            "Adaptive trials: each series ran batches of trials until the mean's trial-to-trial interval was narrow enough at every time (and at least a minimum count of trials, so a few tied trials cannot stop it), or the cap. A run that stops when its interval is narrow has slightly less than the nominal coverage: read these intervals as approximate.",
        )));
        blocks.push(Block::List(stops));
    }
    if let Some(n) = results.points.iter().map(|p| p.per_trial.len()).filter(|&n| n < 100).min() {
        blocks.push(Block::Paragraph(text(format!(
            "With fewer than 100 trials (here as few as {n}), p1 and p99 (and the 1–99 % whiskers of the plots) interpolate between the two most extreme trials (linear quantiles): read them as the extremes of this sample, not as the 1 % tails."
        ))));
    }
    let sequences = results.points.iter().any(|p| p.per_trial_test_var.is_some());
    if crate::report::plots::is_classifier(results) && !sequences {
        blocks.push(Block::Paragraph(text(
            format!(
                "Two uncertainties, kept apart. The trial-to-trial interval (Student t over trials) says how well the Monte Carlo pinned the mean accuracy down for this test set; it shrinks with more trials. The test-set sampling interval (Wilson over the test rows: images, sequences or questions) bounds the mean accuracy over the population the test rows were drawn from (conservatively: it takes every row as an independent draw with the mean's success rate); more trials do not shrink it. The drop and every paired difference hold for this test set: they carry the trial-to-trial uncertainty only. The pooled columns count every (trial, row) as an independent draw and are neither. The 5th percentile's interval is distribution-free, from the order statistics of the trials (binomial); it needs at least {min_p5} trials at this confidence and is left out below that. P(< threshold) is the fraction of trials below the tail threshold (tail_below, default one point below floating point) with a Clopper–Pearson interval over trials.",
                min_p5 = crate::stats::quantile_interval_min_n(0.05, results.confidence)
            ),
        )));
    }
    if sequences && results.metric.contains("GLUE") {
        let how = if results.metric_column == "f1" {
            "The F1 is a ratio of sums over the rows (2 TP over 2 TP + FP + FN): the ratio's delta-method variance over the rows (Cochran 1977, §6.4), on the log scale and averaged over the trials (conservative), scales the mean by exp(∓ z σ), the upper end at most 1"
        } else {
            "Each trial's coefficient is recomputed without each row in turn: the jackknife variance over the rows (Efron & Stein 1981), averaged over the trials (conservative), gives the mean ± z σ, within [−1, 1]"
        };
        blocks.push(Block::Paragraph(text(format!(
            "Two uncertainties, kept apart. The trial-to-trial interval (Student t over trials) says how well the Monte Carlo pinned the mean down for this data set; it shrinks with more trials. The test-set sampling interval says how far it could lie on as many other rows from the same source: the rows (sentences, sentence pairs) are the independent draws. {how}; more trials do not shrink it. The change from floating point and every paired difference hold for this data set: they carry the trial-to-trial uncertainty only."
        ))));
    } else if sequences && results.metric_column == "f1" {
        let f1 = if results.metric.contains("official SQuAD") {
            "F1 as SQuAD's official script scores it (the answer's text against each annotated answer's, as bags of normalised words; a question's answer from its best window)"
        } else {
            "token-level F1"
        };
        blocks.push(Block::Paragraph(text(format!(
            "Two uncertainties, kept apart. The trial-to-trial interval (Student t over trials) says how well the Monte Carlo pinned the mean F1 down for these questions; it shrinks with more trials. The test-set sampling interval says how far it could lie on as many other questions from the same source: the questions are the independent draws. Each trial's F1 is the mean over the questions of the answer's {f1}; its variance over the questions (the delta method, Cochran 1977, §6.4), on the log scale and averaged over the trials (conservative), scales the mean by exp(∓ z σ), the upper end at most 1; more trials do not shrink it. The change from floating point and every paired difference hold for these questions: they carry the trial-to-trial uncertainty only."
        ))));
    } else if sequences {
        blocks.push(Block::Paragraph(text(
            "Two uncertainties, kept apart. The trial-to-trial interval (Student t over trials) says how well the Monte Carlo pinned the mean down for this text; it shrinks with more trials. The test-set sampling interval says how far it could lie on another text of as many sequences from the same source: the sequences are the independent draws (a sequence's tokens are not). Each trial's log perplexity is a ratio (summed loss over predicted tokens), its next-token accuracy one of hits over predicted tokens; the ratio's delta-method variance over the sequences (Cochran 1977, §6.4), on the log scale and averaged over the trials (conservative), scales the mean by exp(∓ z σ); more trials do not shrink it. The change from floating point and every paired difference hold for this text: they carry the trial-to-trial uncertainty only. P(> threshold), where the file sets tail_above, is the fraction of trials above it with a Clopper–Pearson interval over trials.",
        )));
    }
    if let Some(note) = &selection {
        blocks.push(Block::Paragraph(text(note.clone())));
    }
    for s in &listed {
        blocks.push(Block::Heading(3, s.label().to_string()));
        blocks.push(Block::Table(distribution_table(&fmt, s)));
        blocks.push(Block::Table(interval_table(results, &fmt, s)));
        if let Some(t) = variance_split_table(&fmt, s) {
            blocks.push(Block::Table(t));
            if let Some((p, v)) = s.points.iter().rev().find_map(|p| p.variance_split.as_ref().map(|v| (p, v))) {
                blocks.push(Block::Paragraph(text(format!(
                    "Reads of one programming share its programmed state, so the intervals of the mean and of the drop above are Student t over the {} programming means, not over the trials. At {}: {}",
                    v.programmings,
                    p.time_label,
                    v.advice()
                ))));
            }
        }
    }

    if results.points.iter().any(|p| p.companion.is_some()) {
        blocks.push(Block::Heading(2, "Also scored".to_string()));
        blocks.extend(companion_blocks(results, &listed));
    }

    if !results.paired.is_empty() {
        blocks.push(Block::Heading(2, "Paired differences".to_string()));
        blocks.extend(paired_blocks(results));
    }

    if results.points.iter().any(|p| p.per_row_correct.is_some()) {
        blocks.push(Block::Heading(2, "Rows noise breaks first".to_string()));
        blocks.extend(row_blocks(&listed, results.row_labels.as_deref()));
    }

    if has_model_comparison(results) {
        blocks.push(Block::Heading(2, "Loss from floating point".to_string()));
        blocks.extend(fp_loss_blocks(results));
    }

    if let Some(c) = &results.reference {
        blocks.push(Block::Heading(2, format!("Against {}", c.source)));
        blocks.extend(reference_blocks(c));
    }

    if let Some(energy) = &results.energy {
        blocks.push(Block::Heading(2, "Energy and latency per inference".to_string()));
        blocks.extend(energy_tables(energy));
        // The table's costs do not depend on the device model: say so where it is not PCM's
        // (the configuration's device, or a swept `model` axis).
        let config = &results.config;
        let swept = config["sweep_axes"].as_array().into_iter().flatten().filter(|a| a["name"] == "model" || a["name"] == "device.model");
        let mut models: Vec<&str> = Vec::new();
        for m in std::iter::once(&config["device"]["name"]).chain(swept.flat_map(|a| a["values"].as_array().into_iter().flatten())).filter_map(|v| v.as_str()) {
            if m != "pcm" && !models.contains(&m) {
                models.push(m);
            }
        }
        if !models.is_empty() {
            blocks.push(Block::Paragraph(text(format!(
                "The cost table charges each MVM, conversion and digital operation whatever the device: the numbers above are the table's costs for this network, the same for {} as for PCM. Give your technology's numbers with [energy] table = \"your.toml\" (experiments/energy/default.toml is the template).",
                models.join(", ")
            ))));
        }
        // Nor on the conductance pairs a weight takes (`device.pair_significance`, set or swept).
        let pairs = config["sweep_axes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["name"] == "pair_significance" || a["name"] == "device.pair_significance")
            .flat_map(|a| a["values"].as_array().into_iter().flatten())
            .chain(std::iter::once(&config["device"]["pair_significance"]))
            // A swept value is recorded as its TOML text ("[1.0, 3.0]"), a set one as an array.
            .filter_map(|v| v.as_array().map(|f| f.len()).or_else(|| v.as_str().filter(|t| t.starts_with('[')).map(|t| t.split(',').count())))
            .max()
            .unwrap_or(1);
        if pairs > 1 {
            blocks.push(Block::Paragraph(text(format!(
                "The cost table charges one conductance pair per weight: with up to {pairs} pairs per weight (device.pair_significance) the array holds up to {} devices per weight, whose extra read energy and area the numbers above leave out. Give your array's numbers with [energy] table = \"your.toml\" (experiments/energy/default.toml is the template).",
                2 * pairs
            ))));
        }
    }

    if results.points.iter().any(|p| !p.layer_insight.is_empty()) {
        blocks.push(Block::Heading(2, "Per layer".to_string()));
        blocks.extend(layer_insight_blocks(results, &listed));
    }

    if results.points.iter().any(|p| !p.weight_error.is_empty()) {
        blocks.push(Block::Heading(2, "Effective-weight error".to_string()));
        blocks.push(Block::Paragraph(text("E = (α W_eff − W) / max|W| over all weights and trials of a layer; α is the global drift compensation factor.")));
        blocks.push(Block::Table(weight_error_table(results, &listed)));
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
