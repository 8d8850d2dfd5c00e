//! Reports of a finished run, built from a results file ([`crate::results`]) alone: the sections
//! ([`sections`]) fill a document model ([`document`]) that is written as Markdown ([`markdown`])
//! and as self-contained HTML ([`html`]); the plots ([`plots`]) are drawn beside it. Numbers and
//! units are formatted in one place ([`format`](mod@format)).
//!
//! [`write_report`] is the single entry point. It reads a [`Results`] and nothing else, so
//! `aimc report DIR` can rebuild a report from `results.json` alone, and the same results always
//! give byte-identical files (nothing here reads the clock or the environment).

pub mod console;
pub mod document;
pub(crate) mod error;
pub mod format;
pub mod html;
pub mod lock;
pub mod markdown;
pub mod plots;
pub mod publish;
pub mod sections;
pub mod series;

use std::path::Path;

pub(crate) use error::write_file;
pub use error::ReportError;

use crate::results::Results;

/// File names inside the report directory, shared by the writer and its callers.
pub const MARKDOWN_FILE: &str = "report.md";
pub const HTML_FILE: &str = "report.html";

/// Writes the plots (PNG and SVG), `report.md` and `report.html` for `results` into `dir`,
/// creating `dir` if needed and overwriting earlier files of the same names.
pub fn write_report(results: &Results, dir: &Path) -> Result<(), ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::CreateDir { path: dir.to_path_buf(), source })?;

    let figures = plots::write_plots(results, dir)?;
    let document = sections::document(results, &figures)?;

    let md_path = dir.join(MARKDOWN_FILE);
    write_file(&md_path, markdown::to_markdown(&document).as_bytes())?;

    // The HTML inlines the SVG files exactly as written, so the page and the files cannot drift.
    let mut svgs = Vec::with_capacity(figures.len());
    for figure in &figures {
        let text = std::fs::read_to_string(&figure.svg).map_err(|source| ReportError::Read { path: figure.svg.clone(), source })?;
        svgs.push((figure.stem.clone(), text));
    }
    let html_path = dir.join(HTML_FILE);
    write_file(&html_path, html::to_html(&results.name, &document, &svgs).as_bytes())?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::results::{Adapter, Axis, Drop, Energy, LayerWeightError, Point, Pooled, SCHEMA_VERSION};
    use crate::stats::{clopper_pearson, difference_of_means_t, mean_t, trials_needed, wilson};
    use crate::stats::{Histogram, Moments, Summary};
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    const TEST_EXAMPLES: u32 = 10_000;
    const FP_ACCURACY: f64 = 0.953;

    /// splitmix64 (Steele, Lea & Flood 2014): fixed-seed test data without a dependency.
    fn unit(state: &mut u64) -> f64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A classifier point whose statistics come from the real stats functions, so the report
    /// sees numbers shaped like a run's.
    fn classifier_point(sweep_index: usize, series: &str, t: f64, label: &str, per_trial: Vec<f64>) -> Point {
        let correct: Vec<u32> = per_trial.iter().map(|a| (a * f64::from(TEST_EXAMPLES)).round() as u32).collect();
        let per_trial: Vec<f64> = correct.iter().map(|c| f64::from(*c) / f64::from(TEST_EXAMPLES)).collect();
        let moments: Moments = per_trial.iter().copied().collect();
        let successes: u64 = correct.iter().map(|c| u64::from(*c)).sum();
        let trials = u64::from(TEST_EXAMPLES) * per_trial.len() as u64;
        let mut histogram = Histogram::new(0.8, 1.0, 40).unwrap();
        per_trial.iter().for_each(|a| histogram.push(*a));
        let (key, value) = series.split_once('=').unwrap_or(("", series));
        Point {
            sweep_index,
            labels: BTreeMap::from([(key.to_string(), value.to_string())]),
            series: series.to_string(),
            t_inf: t,
            time_label: label.to_string(),
            summary: Summary::from_sample(&per_trial).unwrap(),
            mean_ci: mean_t(&moments, 0.95).unwrap(),
            pooled: Some(Pooled {
                successes,
                trials,
                proportion: successes as f64 / trials as f64,
                wilson: wilson(successes, trials, 0.95).unwrap(),
                clopper_pearson: clopper_pearson(successes, trials, 0.95).unwrap(),
            }),
            drop: Some(Drop { mean: FP_ACCURACY - moments.mean, ci: difference_of_means_t(&moments, FP_ACCURACY, 0.0, 0.95).unwrap() }),
            trials_needed: trials_needed(moments.std(), 0.005, 0.95).unwrap(),
            histogram,
            weight_error: (0..2)
                .map(|layer| LayerWeightError {
                    layer,
                    trials: per_trial.len() as u64,
                    mean: 1e-4 * layer as f64,
                    std: 0.02 + 0.003 * t.log10() * (1.0 + 0.5 * layer as f64) * if sweep_index == 0 { 1.5 } else { 0.6 },
                    alpha_mean: 1.0 + 0.01 * t.log10(),
                    alpha_std: 0.002,
                })
                .collect(),
            per_trial,
            per_trial_correct: Some(correct),
            per_trial_test_var: None,
            test_var_scale: Default::default(),
            per_row_correct: None,
            companion: None,
            test_set_ci: None,
            p5_ci: None,
            tail: None,
            fp: Some(FP_ACCURACY),
            moe: None,
            stopped: None,
            layer_insight: vec![],
            variance_split: None,
            fp_clipped: None,
            point_set: None,
            projection_average: None,
        }
    }

    pub(crate) fn results_with(points: Vec<Point>, times: Vec<f64>, trials: u32) -> Results {
        Results {
            schema_version: SCHEMA_VERSION,
            tool: "aimc 0.1.0".to_string(),
            git_commit: "0123456789abcdef0123456789abcdef01234567".to_string(),
            adapter: Adapter {
                name: "llvmpipe (LLVM 19, 256 bits)".to_string(),
                backend: "Vulkan".to_string(),
                driver: "llvmpipe".to_string(),
                device_type: "Cpu".to_string(),
            },
            seed: 42,
            experiment_file: "experiments/mlp_mnist_drift.toml".to_string(),
            experiment_sha256: "ab".repeat(32),
            name: "MLP on MNIST: PCM drift <with> & without GDC".to_string(),
            description: "Accuracy of a 784-256-10 MLP on PCM tiles\nafter drift.\n\nSecond paragraph.".to_string(),
            workload: "classifier".to_string(),
            metric: "test accuracy".to_string(),
            metric_column: "test_accuracy".to_string(),
            higher_is_better: true,
            ci_half_width: 0.005,
            confidence: 0.95,
            config: serde_json::json!({"device": {"model": "pcm", "drift_nu": 0.06}, "sweep": {"gdc": ["off", "readout"]}}),
            axes: vec![Axis { name: "gdc".to_string(), values: vec!["off".to_string(), "readout".to_string()] }],
            times,
            fp_baseline: Some(FP_ACCURACY),
            points,
            energy: Some(Energy {
                table: "pcm-14nm (Le Gallo 2023)".to_string(),
                analog_mvms: 3,
                adc_conversions: 522,
                dac_conversions: 1040,
                digital_ops: 2100,
                analog_pj: 1200.0,
                adc_pj: 5220.0,
                dac_pj: 1040.0,
                communication_pj: 300.5,
                digital_pj: 210.0,
                total_pj: 7970.5,
                latency_ns: 1250.0,
                crossbar_cells: 3 * 512 * 512,
                used_cells: 40_000,
            }),
            trials,
            run_seconds: 12.5,
            trials_per_second: 48.0,
            shard: None,
            profile: None,
            reference: None,
            npu: None,
            paired: vec![],
            budget: vec![],
            row_labels: None,
        }
    }

    /// 2 series × 6 times × 50 trials: accuracy falls with log time, faster without GDC.
    pub(crate) fn synthetic() -> Results {
        let times: [(f64, &str); 6] =
            [(1.0, "1 s"), (3600.0, "1 h"), (86_400.0, "1 d"), (2_629_800.0, "1 month"), (31_557_600.0, "1 y"), (315_576_000.0, "10 y")];
        let mut state = 7_u64;
        let mut points = Vec::new();
        for (s, (series, slope)) in [("gdc=off", 0.006), ("gdc=readout", 0.002)].into_iter().enumerate() {
            for (t, label) in times {
                let centre = FP_ACCURACY - 0.001 - slope * t.log10() * (1.0 + 0.1 * t.log10());
                let per_trial = (0..50).map(|_| centre + 0.004 * (unit(&mut state) - 0.5) * (1.0 + t.log10())).collect();
                points.push(classifier_point(s, series, t, label, per_trial));
            }
        }
        results_with(points, times.iter().map(|t| t.0).collect(), 50)
    }

    /// A fresh, empty directory under the system temp dir, unique per test and process.
    pub(crate) fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("aimc-report-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn read(path: &Path) -> Vec<u8> {
        std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    const FILES: [&str; 8] = [
        "accuracy_vs_time.png",
        "accuracy_vs_time.svg",
        "distribution.png",
        "distribution.svg",
        "weight_error_vs_time.png",
        "weight_error_vs_time.svg",
        MARKDOWN_FILE,
        HTML_FILE,
    ];

    #[test]
    fn full_report_has_every_file_and_the_summary() {
        let results = synthetic();
        let dir = temp_dir("full");
        write_report(&results, &dir).unwrap();
        for name in FILES {
            let bytes = read(&dir.join(name));
            assert!(bytes.len() > 1000, "{name} is only {} bytes", bytes.len());
            if name.ends_with(".png") {
                assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{name}");
                // Text and a few lines compress well; a blank or text-less plot is far smaller.
                assert!((20_000..3_000_000).contains(&bytes.len()), "{name}: {} bytes", bytes.len());
            }
        }

        let md = String::from_utf8(read(&dir.join(MARKDOWN_FILE))).unwrap();
        for needle in [
            "# MLP on MNIST: PCM drift \\<with\\> & without GDC",
            "| time | trials | mean | std | median | p1 | p5 | p95 | p99 | min | max |",
            "| time | mean, trial-to-trial CI (95 %) | pooled trials × rows (correct/total) | pooled Wilson (95 %) | pooled Clopper–Pearson (95 %) | drop (95 % CI) | trials for ±0.5 points (95 %) |",
            "the floating-point accuracy is 95.3 %",
            "Energy per inference: 7.97 nJ, latency 1.25 µs",
            "![Test accuracy vs time after programming (median, 5–95 % of trials)](accuracy_vs_time.png)",
            "| experiment sha256 | `abab",
            "```json\n{\n  \"device\"",
        ] {
            assert!(md.contains(needle), "report.md lacks {needle:?}:\n{md}");
        }
        let sentence = md.lines().find(|l| l.starts_with("- With gdc=readout, the median test accuracy falls from ")).unwrap();
        assert!(
            sentence.contains(" at 1 s to ") && sentence.contains(" at 10 y; the floating-point accuracy is 95.3 %; at 10 y the mean drop is "),
            "{sentence}"
        );
        // The mean's interval, then where single trials lie (a chip is not the mean).
        assert!(sentence.contains(" points (95 % CI of the mean; 90 % of the 50 trials lie between "), "{sentence}");

        let html = String::from_utf8(read(&dir.join(HTML_FILE))).unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert_eq!(html.matches("<svg ").count(), 3, "three inline plots");
        assert_eq!(html.matches(" viewBox=\"0 0 1600 ").count(), 3, "inline plots scale with the page");
        assert!(!html.contains("<?xml") && !html.contains("src=\""), "self-contained");
        assert!(html.contains("<title>MLP on MNIST: PCM drift &lt;with&gt; &amp; without GDC</title>"));
        assert!(html.contains("<th class=\"num\">median</th>"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn rendering_twice_gives_identical_bytes() {
        let results = synthetic();
        let (a, b) = (temp_dir("twice-a"), temp_dir("twice-b"));
        write_report(&results, &a).unwrap();
        write_report(&results, &b).unwrap();
        for name in FILES {
            assert!(read(&a.join(name)) == read(&b.join(name)), "{name} differs between renders");
        }
        // Rewriting into the same directory (what `aimc report DIR` does) changes nothing either.
        let before = read(&a.join("distribution.png"));
        write_report(&results, &a).unwrap();
        assert!(before == read(&a.join("distribution.png")));
        let _ = std::fs::remove_dir_all(&a);
        let _ = std::fs::remove_dir_all(&b);
    }

    #[test]
    fn one_point_with_one_trial_renders() {
        let mut results = synthetic();
        let mut point = results.points[3].clone();
        point.per_trial.truncate(1);
        point.summary = Summary::from_sample(&point.per_trial).unwrap();
        let moments: Moments = point.per_trial.iter().copied().collect();
        point.mean_ci = mean_t(&moments, 0.95).unwrap();
        point.drop = Some(Drop { mean: 0.01, ci: difference_of_means_t(&moments, FP_ACCURACY, 0.0, 0.95).unwrap() });
        point.weight_error.clear();
        results.points = vec![point];
        results.times = vec![results.points[0].t_inf];
        results.trials = 1;
        results.energy = None;
        let dir = temp_dir("one");
        write_report(&results, &dir).unwrap();
        assert!(dir.join("accuracy_vs_time.png").exists() && dir.join("distribution.svg").exists());
        assert!(!dir.join("weight_error_vs_time.png").exists(), "no weight-error data, no plot");
        let md = String::from_utf8(read(&dir.join(MARKDOWN_FILE))).unwrap();
        assert!(md.contains("- With gdc=off, the median test accuracy is "), "{md}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn no_points_and_other_workloads_render() {
        let mut results = synthetic();
        results.workload = "mvm_error".to_string();
        results.metric = "relative MVM error".to_string();
        results.fp_baseline = None;
        for p in &mut results.points {
            p.pooled = None;
            p.drop = None;
            p.per_trial_correct = None;
            p.series.clear();
        }
        results.points.truncate(6);
        let dir = temp_dir("mvm");
        write_report(&results, &dir).unwrap();
        assert!(dir.join("metric_vs_time.png").exists() && !dir.join("accuracy_vs_time.png").exists());
        let md = String::from_utf8(read(&dir.join(MARKDOWN_FILE))).unwrap();
        assert!(md.contains("- The median relative MVM error falls from "), "{md}");

        results.points.clear();
        results.times.clear();
        let dir_empty = temp_dir("empty");
        write_report(&results, &dir_empty).unwrap();
        assert!(dir_empty.join("metric_vs_time.svg").exists());
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&dir_empty);
    }

    #[test]
    fn unwritable_directory_names_the_path() {
        let file = temp_dir("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let err = write_report(&synthetic(), &file).unwrap_err();
        assert!(err.to_string().contains("not-a-dir"), "{err}");
        let _ = std::fs::remove_file(&file);
    }
}
