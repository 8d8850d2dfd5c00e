//! External reference numbers beside aimc's: an experiment's `[reference]` names a file of another
//! simulator's per-repetition correct counts (`correct[gdc][t in seconds]`, `n_test`; the format of
//! experiments/reference/aihwkit_breast_cancer/aihwkit_results.json), and every classifier point
//! with a matching GDC setting and time gets a row: both means, population stds and 5th percentiles
//! (numpy's linear percentile on both sides), the difference and the pass mark (mean within
//! `mean_tol_pp` percentage points, std within `std_rel_tol`).

use crate::results::{ReferenceComparison, ReferenceRow, Results};
use crate::stats::quantile_sorted;
use std::collections::BTreeMap;
use std::path::Path;

/// Default pass mark: the reference case's (mean within 0.4 pp, std within 25 %).
pub const DEFAULT_MEAN_TOL_PP: f64 = 0.4;
pub const DEFAULT_STD_REL_TOL: f64 = 0.25;

/// A reference file, read and checked.
#[derive(Clone, Debug)]
pub struct Reference {
    pub file: String,
    /// e.g. "aihwkit 1.2.0".
    pub source: String,
    pub n_test: u32,
    /// gdc name → [(t in seconds, correct counts per repetition)].
    pub correct: BTreeMap<String, Vec<(f64, Vec<u32>)>>,
    pub mean_tol_pp: f64,
    pub std_rel_tol: f64,
}

#[derive(serde::Deserialize)]
struct RawFile {
    #[serde(default)]
    aihwkit: Option<String>,
    #[serde(default)]
    source: Option<String>,
    n_test: u32,
    correct: BTreeMap<String, BTreeMap<String, Vec<u32>>>,
}

impl Reference {
    /// Reads `path`; errors say what is wrong with the file and how the format looks.
    pub fn load(path: &Path, mean_tol_pp: f64, std_rel_tol: f64) -> Result<Reference, String> {
        let file = path.display().to_string();
        let text = crate::files::read_to_string(path).map_err(|e| format!("cannot read {file} ({e}); check the path"))?;
        let raw: RawFile = serde_json::from_str(&text)
            .map_err(|e| format!("{file}: {e}; expected {{\"n_test\": N, \"correct\": {{\"off\": {{\"1\": [counts...]}}, \"readout\": {{...}}}}}}"))?;
        if raw.n_test == 0 {
            return Err(format!("{file}: n_test = 0; it must be the number of test rows"));
        }
        let mut correct = BTreeMap::new();
        for (gdc, by_t) in raw.correct {
            if !matches!(gdc.as_str(), "off" | "readout" | "exact_reference") {
                return Err(format!("{file}: correct.{gdc}: unknown GDC setting; use off, readout or exact_reference"));
            }
            let mut rows = Vec::new();
            for (t, counts) in by_t {
                let secs: f64 = t.parse().map_err(|_| format!("{file}: correct.{gdc}.{t}: the key must be a time in seconds"))?;
                if counts.len() < 2 {
                    return Err(format!("{file}: correct.{gdc}.{t}: need at least 2 repetitions"));
                }
                if let Some(c) = counts.iter().find(|&&c| c > raw.n_test) {
                    return Err(format!("{file}: correct.{gdc}.{t}: count {c} exceeds n_test = {}", raw.n_test));
                }
                rows.push((secs, counts));
            }
            rows.sort_by(|a, b| a.0.total_cmp(&b.0));
            correct.insert(gdc, rows);
        }
        let source = raw.source.or(raw.aihwkit.map(|v| format!("aihwkit {v}"))).unwrap_or_else(|| "reference".into());
        Ok(Reference { file, source, n_test: raw.n_test, correct, mean_tol_pp, std_rel_tol })
    }

    /// The counts for a GDC setting and time (times match to 1e-9 relative).
    fn counts(&self, gdc: &str, t: f64) -> Option<&[u32]> {
        self.correct.get(gdc)?.iter().find(|(s, _)| (s - t).abs() <= 1e-9 * t.abs().max(1.0)).map(|(_, c)| c.as_slice())
    }
}

/// Mean, population std and 5th percentile (numpy linear) of accuracies.
fn describe(acc: &[f64]) -> (f64, f64, f64) {
    let n = acc.len() as f64;
    let mean = acc.iter().sum::<f64>() / n;
    let std = (acc.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / n).sqrt();
    let mut sorted = acc.to_vec();
    sorted.sort_by(f64::total_cmp);
    (mean, std, quantile_sorted(&sorted, 0.05))
}

/// The comparison rows of a run's results against `reference` (classifier points only).
pub fn compare(reference: &Reference, results: &Results) -> ReferenceComparison {
    let default_gdc = results.config.get("gdc").and_then(|g| g.as_str()).unwrap_or("readout").to_string();
    let mut rows = Vec::new();
    for p in &results.points {
        let (Some(correct), Some(pooled)) = (&p.per_trial_correct, &p.pooled) else { continue };
        let n = (pooled.trials / correct.len().max(1) as u64) as f64;
        let gdc = p.labels.get("gdc").cloned().unwrap_or_else(|| default_gdc.clone());
        let Some(counts) = reference.counts(&gdc, p.t_inf) else { continue };
        let ours: Vec<f64> = correct.iter().map(|&c| c as f64 / n).collect();
        let theirs: Vec<f64> = counts.iter().map(|&c| c as f64 / reference.n_test as f64).collect();
        let (am, asd, ap5) = describe(&ours);
        let (rm, rsd, rp5) = describe(&theirs);
        let mean_diff_pp = 100.0 * (am - rm);
        let std_ratio = if rsd > 0.0 { asd / rsd } else { f64::NAN };
        let pass = mean_diff_pp.abs() <= reference.mean_tol_pp && (std_ratio - 1.0).abs() <= reference.std_rel_tol;
        rows.push(ReferenceRow {
            series: p.series.clone(),
            t_inf: p.t_inf,
            time_label: p.time_label.clone(),
            trials: correct.len() as u32,
            mean: am,
            std: asd,
            p5: ap5,
            ref_reps: counts.len() as u32,
            ref_mean: rm,
            ref_std: rsd,
            ref_p5: rp5,
            mean_diff_pp,
            std_ratio,
            pass,
        });
    }
    let passed = !rows.is_empty() && rows.iter().all(|r| r.pass);
    ReferenceComparison {
        source: reference.source.clone(),
        file: reference.file.clone(),
        mean_tol_pp: reference.mean_tol_pp,
        std_rel_tol: reference.std_rel_tol,
        rows,
        passed,
    }
}
