//! `aimc merge`: the shards of one run (`aimc run --shard K/N`) back into the single run's
//! results. Trials are counter-based (global trial index in every Philox counter), so shard K
//! holds exactly trials K of the single run; merging concatenates per-trial metrics in trial
//! order and recomputes every statistic with the same code the single run uses. Weight-error
//! summaries combine as moments (Chan et al. 1979), which agrees with the single pass up to
//! floating-point rounding.

use super::{point_stats, PointId};
use crate::results::{LayerWeightError, Point, Results};

fn combine(a: &LayerWeightError, b: &LayerWeightError) -> LayerWeightError {
    let (na, nb) = (a.trials as f64, b.trials as f64);
    let n = na + nb;
    let mv = |ma: f64, sa: f64, mb: f64, sb: f64| {
        let mean = (na * ma + nb * mb) / n;
        // Population-style pooling per trial block: within + between.
        let var = (na * sa * sa + nb * sb * sb) / n + na * nb / (n * n) * (ma - mb).powi(2);
        (mean, var.max(0.0).sqrt())
    };
    let (mean, std) = mv(a.mean, a.std, b.mean, b.std);
    let (alpha_mean, alpha_std) = mv(a.alpha_mean, a.alpha_std, b.alpha_mean, b.alpha_std);
    LayerWeightError { layer: a.layer, trials: a.trials + b.trials, mean, std, alpha_mean, alpha_std }
}

/// Shards that do not form one run; the message says which shard differs and how.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MergeError(pub String);

/// Merges shard results (any order) into the results of the whole run.
pub fn merge(parts: Vec<Results>) -> Result<Results, MergeError> {
    merge_parts(parts).map_err(MergeError)
}

fn merge_parts(mut parts: Vec<Results>) -> Result<Results, String> {
    if parts.is_empty() {
        return Err("give the results directories of all shards".into());
    }
    for (i, p) in parts.iter().enumerate() {
        if p.shard.is_none() {
            return Err(format!("input {} ({}) is not a shard (it was not run with --shard K/N)", i + 1, p.name));
        }
    }
    parts.sort_by_key(|p| p.shard.as_ref().unwrap().index);
    let n = parts[0].shard.as_ref().unwrap().count;
    let have: Vec<u32> = parts.iter().map(|p| p.shard.as_ref().unwrap().index).collect();
    if have != (0..n).collect::<Vec<_>>() || parts.iter().any(|p| p.shard.as_ref().unwrap().count != n) {
        return Err(format!("need each of shards 0..{n} of the same run exactly once; got shards {have:?}"));
    }
    let first = &parts[0];
    if parts.iter().any(|p| p.points.iter().any(|q| q.moe.is_some())) {
        return Err("these are shards of a moe run: its cost model (latency, conflicts, energy per token) summarises each shard's own trials and cannot be pooled into the single run's; run the moe workload unsharded".into());
    }
    for p in &parts[1..] {
        let k = p.shard.as_ref().unwrap().index;
        if p.seed != first.seed {
            return Err(format!("shard {k} ran with seed {} and shard 0 with seed {}; run every shard from the same file and --set", p.seed, first.seed));
        }
        if p.schema_version != first.schema_version {
            return Err(format!(
                "shard {k} was written by results schema {} and shard 0 by {}; rerun the shards with one aimc version",
                p.schema_version, first.schema_version
            ));
        }
        if p.experiment_sha256 != first.experiment_sha256 {
            // The settings that differ where the configurations say (a comment edited says none).
            let mut diff = Vec::new();
            crate::report::publish::differences(&first.config, &p.config, &mut String::new(), &mut diff);
            diff.retain(|d| !d.starts_with("trials") && !d.starts_with("shard"));
            let what = if diff.is_empty() {
                "the file was edited (its settings are the same), or it was given another --set".to_string()
            } else {
                diff.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
            };
            return Err(format!("shard {k} comes from another experiment document than shard 0 ({what}); run every shard from the same file and --set"));
        }
        if p.points.len() != first.points.len() || p.points.iter().zip(&first.points).any(|(a, b)| a.series != b.series || a.t_inf != b.t_inf) {
            return Err(format!("shard {} has different sweep points than shard 0 (did one of them stop early?)", p.shard.as_ref().unwrap().index));
        }
        if p.config.get("trials") != first.config.get("trials") {
            return Err(format!(
                "shard {} was run with {} trials in all, shard 0 with {}: run every shard with the same --trials",
                p.shard.as_ref().unwrap().index,
                p.config.get("trials").cloned().unwrap_or_default(),
                first.config.get("trials").cloned().unwrap_or_default()
            ));
        }
    }
    // The shards' trial ranges must tile 0..total with no gap and no overlap, and each must hold
    // the trials it claims.
    let mut next = 0u32;
    for p in &parts {
        let sh = p.shard.as_ref().unwrap();
        if sh.first_trial != next {
            return Err(format!("shard {} starts at trial {} where trial {next} was expected: a gap or an overlap between shards", sh.index, sh.first_trial));
        }
        if let Some(bad) = p.points.iter().find(|q| q.per_trial.len() != sh.trials as usize) {
            return Err(format!("shard {} claims {} trials but holds {} at {} {}", sh.index, sh.trials, bad.per_trial.len(), bad.series, bad.time_label));
        }
        next += sh.trials;
    }
    let confidence = first.confidence;
    let half = first.ci_half_width;
    let mut points = Vec::with_capacity(first.points.len());
    for i in 0..first.points.len() {
        let p0: &Point = &first.points[i];
        let per_trial: Vec<f64> = parts.iter().flat_map(|r| r.points[i].per_trial.iter().copied()).collect();
        let correct = match &p0.per_trial_correct {
            Some(_) => {
                let n_samples = (p0.pooled.as_ref().map(|q| q.trials).unwrap_or(0) / p0.per_trial.len().max(1) as u64) as u32;
                Some((parts.iter().flat_map(|r| r.points[i].per_trial_correct.clone().unwrap_or_default()).collect(), n_samples))
            }
            None => None,
        };
        // Every shard's variances, or none (a shard of an earlier version has none).
        let test_var = parts.iter().map(|r| r.points[i].per_trial_test_var.clone()).collect::<Option<Vec<Vec<f64>>>>().map(|v| v.concat());
        let mut we = p0.weight_error.clone();
        for r in &parts[1..] {
            for (l, w) in we.iter_mut().zip(&r.points[i].weight_error) {
                *l = if l.trials == 0 {
                    w.clone()
                } else if w.trials == 0 {
                    l.clone()
                } else {
                    combine(l, w)
                };
            }
        }
        let reads = first.config.get("reads_per_programming").and_then(|v| v.as_u64()).unwrap_or(1) as u32;
        let id_first_trial = parts[0].shard.as_ref().map_or(0, |s| s.first_trial);
        let id = PointId {
            sweep_index: p0.sweep_index,
            labels: p0.labels.clone(),
            series: p0.series.clone(),
            t_inf: p0.t_inf,
            first_trial: id_first_trial,
            reads_per_programming: reads,
            projection: p0.projection_average.clone(),
        };
        let recorded = |key: &str| first.config.get(key).and_then(|v| v.as_f64());
        let tail = crate::run::tail_at(recorded("tail_below"), recorded("tail_above"), correct.is_some(), first.fp_baseline);
        // The point's own floating-point metric (a kernel workload's depends on its projection).
        let mut q = point_stats(id, per_trial, correct, test_var, p0.test_var_scale, p0.fp.or(first.fp_baseline), we, confidence, half, tail)
            .map_err(|e| e.to_string())?;
        q.per_row_correct = parts.iter().map(|r| r.points[i].per_row_correct.clone()).reduce(crate::results::add_row_counts).flatten();
        // The companion metric over every shard's trials (none where a shard has none).
        if let Some(c) = parts.iter().map(|r| r.points[i].companion.clone()).reduce(crate::run::append_companion).flatten() {
            q.companion = Some(crate::run::companion_stats(crate::run::companion_trials(c), id_first_trial, reads, confidence).map_err(|e| e.to_string())?);
        }
        // The layer insight ran the first trials, in shard 0.
        q.layer_insight = parts.iter().map(|r| &r.points[i].layer_insight).find(|l| !l.is_empty()).cloned().unwrap_or_default();
        // What does not depend on the trials: the clipped projection's floating-point metric
        // and the kernel point set.
        q.fp_clipped = p0.fp_clipped;
        q.point_set = p0.point_set.clone();
        points.push(q);
    }
    let total_trials: u32 = parts.iter().map(|p| p.trials).sum();
    let run_seconds: f64 = parts.iter().map(|p| p.run_seconds).sum();
    let mut adapter = first.adapter.clone();
    if parts.iter().any(|p| p.adapter.name != adapter.name) {
        adapter.name = parts.iter().map(|p| p.adapter.name.clone()).collect::<Vec<_>>().join(" + ");
    }
    let mut config = first.config.clone();
    if let Some(obj) = config.as_object_mut() {
        obj.remove("shard");
        obj.insert("merged_shards".into(), n.into());
    }
    let n_sweep = first.points.len() / first.times.len().max(1);
    Ok(Results {
        adapter,
        config,
        points,
        trials: total_trials,
        run_seconds,
        trials_per_second: n_sweep as f64 * total_trials as f64 / run_seconds.max(1e-9),
        shard: None,
        profile: None,
        reference: None,
        paired: vec![],
        budget: vec![],
        ..first.clone()
    })
    .and_then(|mut r| {
        r.paired = crate::run::paired::paired_differences(&r).map_err(|e| format!("paired differences of the merged run: {e}"))?;
        r.budget = crate::workload::budget::attribute(&r).map_err(|e| format!("noise budget of the merged run: {e}"))?;
        // The comparison is recomputed on the merged points from the reference file it came from.
        if let Some(c) = &first.reference {
            if let Ok(rf) = crate::config::reference::Reference::load(std::path::Path::new(&c.file), c.mean_tol_pp, c.std_rel_tol) {
                r.reference = Some(crate::config::reference::compare(&rf, &r));
            }
        }
        Ok(r)
    })
}
