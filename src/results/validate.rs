//! Load-time validation of a results file: every invariant the readers (report, plots, merge,
//! paired differences, noise budget, trials.csv) index or divide on, checked once where the file
//! comes in, so a truncated or hand-edited `results.json` is refused with the field and what is
//! wrong instead of panicking further on.
//!
//! JSON cannot hold NaN or ±∞ (serde_json writes them as `null`, which an `f64` field refuses), so
//! non-finite values are already refused by the parser; what is left for numbers is magnitude.

use super::Results;
use crate::stats::{Histogram, Interval, Summary};

/// Largest magnitude accepted for any number in a results file. No quantity aimc writes comes near
/// it (energies in pJ, latencies in ns and throughputs stay below 1e20, counts below 2^64 ≈ 1.8e19);
/// beyond it sums and squares in the report overflow to ∞.
pub const MAX_MAGNITUDE: f64 = 1e30;

/// What is wrong with a results file that parsed as JSON: the field (a JSON path such as
/// `points[3].times`) and the problem.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct Invalid {
    pub field: String,
    pub problem: String,
}

fn bad(field: impl Into<String>, problem: impl Into<String>) -> Invalid {
    Invalid { field: field.into(), problem: problem.into() }
}

/// Checks the magnitude of every number in the parsed JSON (including `config`).
pub fn numbers(v: &serde_json::Value, path: &mut String) -> Result<(), Invalid> {
    match v {
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(x) if x.abs() <= MAX_MAGNITUDE => Ok(()),
            _ => Err(bad(path.clone(), format!("{n} is beyond ±{MAX_MAGNITUDE:e}, larger than any quantity aimc writes"))),
        },
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                numbers(x, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                numbers(x, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn finite(field: &str, v: f64) -> Result<(), Invalid> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(bad(field, format!("{v} is not a finite number")))
    }
}

fn non_negative(field: &str, v: f64) -> Result<(), Invalid> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(bad(field, format!("{v} is negative or not finite; it counts or measures something")))
    }
}

fn probability(field: &str, v: f64) -> Result<(), Invalid> {
    if (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(bad(field, format!("{v} is not a fraction in [0, 1]")))
    }
}

fn interval(field: &str, c: &Interval) -> Result<(), Invalid> {
    finite(&format!("{field}.lo"), c.lo)?;
    finite(&format!("{field}.hi"), c.hi)?;
    if c.lo > c.hi {
        return Err(bad(field, format!("lo {} is above hi {}", c.lo, c.hi)));
    }
    if !(c.confidence > 0.0 && c.confidence < 1.0) {
        return Err(bad(format!("{field}.confidence"), format!("{} is not in (0, 1)", c.confidence)));
    }
    Ok(())
}

fn summary(field: &str, s: &Summary) -> Result<(), Invalid> {
    if s.n == 0 {
        return Err(bad(format!("{field}.n"), "0: a summary of no values"));
    }
    for (name, v) in
        [("mean", s.mean), ("std", s.std), ("median", s.median), ("p01", s.p01), ("p05", s.p05), ("p95", s.p95), ("p99", s.p99), ("min", s.min), ("max", s.max)]
    {
        finite(&format!("{field}.{name}"), v)?;
    }
    if s.std < 0.0 {
        return Err(bad(format!("{field}.std"), format!("{} is negative", s.std)));
    }
    if s.min > s.max {
        return Err(bad(field, format!("min {} is above max {}", s.min, s.max)));
    }
    Ok(())
}

fn histogram(field: &str, h: &Histogram) -> Result<(), Invalid> {
    finite(&format!("{field}.lo"), h.lo)?;
    finite(&format!("{field}.hi"), h.hi)?;
    if h.lo >= h.hi {
        return Err(bad(field, format!("lo {} is not below hi {}", h.lo, h.hi)));
    }
    if h.counts.is_empty() {
        return Err(bad(format!("{field}.counts"), "no bins"));
    }
    // Counts are summed by the plots; their total must not overflow.
    let total = h.counts.iter().chain([&h.underflow, &h.overflow]).try_fold(0u64, |a, c| a.checked_add(*c));
    if total.is_none() {
        return Err(bad(format!("{field}.counts"), "the counts add up beyond 2^64"));
    }
    Ok(())
}

/// Every structural invariant of a parsed [`Results`] the readers rely on.
pub fn results(r: &Results) -> Result<(), Invalid> {
    if !(r.confidence > 0.0 && r.confidence < 1.0) {
        return Err(bad("confidence", format!("{} is not in (0, 1)", r.confidence)));
    }
    non_negative("ci_half_width", r.ci_half_width)?;
    non_negative("run_seconds", r.run_seconds)?;
    non_negative("trials_per_second", r.trials_per_second)?;
    if let Some(f) = r.fp_baseline {
        finite("fp_baseline", f)?;
    }
    if r.trials == 0 {
        return Err(bad("trials", "0: a run holds at least one trial"));
    }
    if r.times.is_empty() {
        return Err(bad("times", "empty: a run has at least one inference time"));
    }
    for (i, t) in r.times.iter().enumerate() {
        non_negative(&format!("times[{i}]"), *t)?;
    }
    for (i, a) in r.axes.iter().enumerate() {
        if a.values.is_empty() {
            return Err(bad(format!("axes[{i}].values"), format!("axis {} has no values", a.name)));
        }
        if r.axes[..i].iter().any(|b| b.name == a.name) {
            return Err(bad(format!("axes[{i}].name"), format!("axis {} appears twice", a.name)));
        }
    }
    if r.points.is_empty() {
        return Err(bad("points", "empty: a results file holds at least one point"));
    }
    // Points are (sweep point, time) pairs in sweep order, every sweep point at every time.
    let n_sweep: usize = r.axes.iter().map(|a| a.values.len()).try_fold(1usize, |a, n| a.checked_mul(n)).unwrap_or(usize::MAX);
    if !r.points.len().is_multiple_of(r.times.len()) {
        return Err(bad("points", format!("{} entries, not a multiple of the {} times in times", r.points.len(), r.times.len())));
    }
    if r.points.len() / r.times.len() > n_sweep {
        return Err(bad("points", format!("{} entries but the axes span {n_sweep} sweep points × {} times", r.points.len(), r.times.len())));
    }
    if r.row_labels.is_some() && r.points.iter().all(|p| p.per_row_correct.is_none()) {
        return Err(bad("row_labels", "labels of rows no point counts (per_row_correct)"));
    }
    let trials = r.trials as usize;
    for (i, p) in r.points.iter().enumerate() {
        point(r, &format!("points[{i}]"), p, trials)?;
        // The rows' labels name every counted row.
        if let (Some(labels), Some(rows)) = (&r.row_labels, &p.per_row_correct) {
            if labels.len() != rows.len() {
                return Err(bad("row_labels", format!("{} labels but points[{i}].per_row_correct counts {} rows", labels.len(), rows.len())));
            }
        }
    }
    if let Some(e) = &r.energy {
        for (name, v) in [
            ("analog_pj", e.analog_pj),
            ("adc_pj", e.adc_pj),
            ("dac_pj", e.dac_pj),
            ("communication_pj", e.communication_pj),
            ("digital_pj", e.digital_pj),
            ("total_pj", e.total_pj),
            ("latency_ns", e.latency_ns),
        ] {
            non_negative(&format!("energy.{name}"), v)?;
        }
        if e.used_cells > e.crossbar_cells {
            return Err(bad("energy.used_cells", format!("{} cells used of {} in the tiles", e.used_cells, e.crossbar_cells)));
        }
    }
    if let Some(s) = &r.shard {
        if s.count == 0 || s.index >= s.count {
            return Err(bad("shard", format!("shard {} of {}: the index must be below the count", s.index, s.count)));
        }
        if s.first_trial.checked_add(s.trials).is_none() || s.first_weight_error_trial.checked_add(s.weight_error_trials).is_none() {
            return Err(bad("shard", "its trial range runs past 2^32"));
        }
    }
    if let Some(p) = &r.profile {
        for (i, s) in p.stages.iter().enumerate() {
            non_negative(&format!("profile.stages[{i}].seconds"), s.seconds)?;
        }
        for (i, (_, s)) in p.host.iter().enumerate() {
            non_negative(&format!("profile.host[{i}]"), *s)?;
        }
        if let Some(w) = p.wall_seconds {
            non_negative("profile.wall_seconds", w)?;
        }
    }
    for (i, d) in r.paired.iter().enumerate() {
        let f = format!("paired[{i}]");
        finite(&format!("{f}.mean"), d.mean)?;
        interval(&format!("{f}.ci"), &d.ci)?;
        non_negative(&format!("{f}.unpaired_half_width"), d.unpaired_half_width)?;
        non_negative(&format!("{f}.t_inf"), d.t_inf)?;
    }
    for (i, b) in r.budget.iter().enumerate() {
        budget(&format!("budget[{i}]"), b)?;
    }
    if let Some(c) = &r.reference {
        non_negative("reference.mean_tol_pp", c.mean_tol_pp)?;
        non_negative("reference.std_rel_tol", c.std_rel_tol)?;
        for (i, row) in c.rows.iter().enumerate() {
            let f = format!("reference.rows[{i}]");
            for (name, v) in
                [("mean", row.mean), ("std", row.std), ("p5", row.p5), ("ref_mean", row.ref_mean), ("ref_std", row.ref_std), ("ref_p5", row.ref_p5)]
            {
                finite(&format!("{f}.{name}"), v)?;
            }
            non_negative(&format!("{f}.t_inf"), row.t_inf)?;
        }
    }
    if let Some(n) = &r.npu {
        for (i, row) in n.rows.iter().enumerate() {
            let f = format!("npu.rows[{i}]");
            let (t, e) = (&row.time_ns, &row.energy_pj_split);
            for (name, v) in [
                ("latency_ns", row.latency_ns),
                ("energy_pj", row.energy_pj),
                ("inferences_per_s", row.inferences_per_s),
                ("pipelined_inferences_per_s", row.pipelined_inferences_per_s),
                ("tops_per_w", row.tops_per_w),
                ("time_ns.analog", t.analog),
                ("time_ns.digital", t.digital),
                ("time_ns.sram", t.sram),
                ("energy_pj_split.analog", e.analog),
                ("energy_pj_split.digital", e.digital),
                ("energy_pj_split.sram", e.sram),
            ] {
                non_negative(&format!("{f}.{name}"), v)?;
            }
        }
    }
    Ok(())
}

/// A companion metric: one value per trial of its point, and a name that is a trials.csv column
/// of its own (lower-case letters, digits and `_`, none of the file's other columns).
fn companion(r: &Results, f: &str, c: &super::Companion, n: usize) -> Result<(), Invalid> {
    let plain =
        c.metric.starts_with(|ch: char| ch.is_ascii_lowercase()) && c.metric.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_');
    if !plain {
        return Err(bad(format!("{f}.metric"), format!("{:?} is not a column name (lower-case letters, digits and _)", c.metric)));
    }
    let taken = ["sweep_index", "series", "t_inf_s", "time_label", "trial", "correct", "n_samples", r.metric_column.as_str()];
    if taken.contains(&c.metric.as_str()) || r.axes.iter().any(|a| a.name == c.metric) {
        return Err(bad(format!("{f}.metric"), format!("{:?} is already a trials.csv column", c.metric)));
    }
    if c.per_trial.len() != n {
        return Err(bad(format!("{f}.per_trial"), format!("{} entries but the point's per_trial has {n}", c.per_trial.len())));
    }
    if let Some(v) = &c.per_trial_test_var {
        if v.len() != n {
            return Err(bad(format!("{f}.per_trial_test_var"), format!("{} entries but the point's per_trial has {n}", v.len())));
        }
        if let Some(k) = v.iter().position(|x| !(x.is_finite() && *x >= 0.0)) {
            return Err(bad(format!("{f}.per_trial_test_var[{k}]"), format!("{}: a variance is finite and not negative", v[k])));
        }
    }
    if c.items == Some(0) {
        return Err(bad(format!("{f}.items"), "0: a count is out of at least one item"));
    }
    finite(&format!("{f}.mean"), c.mean)?;
    non_negative(&format!("{f}.std"), c.std)?;
    interval(&format!("{f}.mean_ci"), &c.mean_ci)?;
    if let Some(ci) = &c.test_set_ci {
        interval(&format!("{f}.test_set_ci"), ci)?;
    }
    if let Some(v) = c.fp {
        finite(&format!("{f}.fp"), v)?;
    }
    Ok(())
}

fn point(r: &Results, f: &str, p: &super::Point, trials: usize) -> Result<(), Invalid> {
    if !r.times.contains(&p.t_inf) {
        return Err(bad(format!("{f}.t_inf"), format!("{} is not one of times {:?}", p.t_inf, r.times)));
    }
    let n = p.per_trial.len();
    if n == 0 {
        return Err(bad(format!("{f}.per_trial"), "empty: a point holds at least one trial"));
    }
    if n > trials {
        return Err(bad(format!("{f}.per_trial"), format!("{n} entries but trials is {trials}")));
    }
    if p.summary.n != n as u64 {
        return Err(bad(format!("{f}.summary.n"), format!("{} but per_trial has {n} entries", p.summary.n)));
    }
    summary(&format!("{f}.summary"), &p.summary)?;
    interval(&format!("{f}.mean_ci"), &p.mean_ci)?;
    histogram(&format!("{f}.histogram"), &p.histogram)?;
    // Every trial's value is counted once (in a bin, under- or overflow): an empty histogram, or
    // one of other trials, is not this point's distribution.
    let counted = p.histogram.counts.iter().chain([&p.histogram.underflow, &p.histogram.overflow]).sum::<u64>();
    if counted != n as u64 {
        return Err(bad(format!("{f}.histogram.counts"), format!("count {counted} values in all but per_trial has {n}; each trial is counted once")));
    }
    if let Some(c) = &p.per_trial_correct {
        if c.len() != n {
            return Err(bad(format!("{f}.per_trial_correct"), format!("{} entries but per_trial has {n}", c.len())));
        }
    }
    if let Some(v) = &p.per_trial_test_var {
        if v.len() != n {
            return Err(bad(format!("{f}.per_trial_test_var"), format!("{} entries but per_trial has {n}", v.len())));
        }
        if let Some(k) = v.iter().position(|x| !(x.is_finite() && *x >= 0.0)) {
            return Err(bad(format!("{f}.per_trial_test_var[{k}]"), format!("{}: a variance is finite and not negative", v[k])));
        }
    }
    if let Some(k) = p.per_row_correct.as_ref().and_then(|c| c.iter().position(|&x| x as usize > n)) {
        return Err(bad(format!("{f}.per_row_correct[{k}]"), format!("{} right answers in {n} trials", p.per_row_correct.as_ref().unwrap()[k])));
    }
    if let Some(c) = &p.companion {
        companion(r, &format!("{f}.companion"), c, n)?;
    }
    if let Some(v) = p.fp_clipped {
        finite(&format!("{f}.fp_clipped"), v)?;
    }
    if let Some(a) = &p.projection_average {
        if a.seeds < 2 || a.trials_per_seed == 0 {
            return Err(bad(
                format!("{f}.projection_average"),
                format!("{} projections of {} trials: an average needs at least 2 projections of 1 or more trials", a.seeds, a.trials_per_seed),
            ));
        }
        non_negative(&format!("{f}.projection_average.fp_std"), a.fp_std)?;
        interval(&format!("{f}.projection_average.fp_ci"), &a.fp_ci)?;
    }
    if let Some(q) = &p.pooled {
        if q.successes > q.trials {
            return Err(bad(format!("{f}.pooled"), format!("{} successes of {} trials", q.successes, q.trials)));
        }
        if q.trials % n as u64 != 0 {
            return Err(bad(format!("{f}.pooled.trials"), format!("{} is not a whole number of samples for each of the {n} trials", q.trials)));
        }
        probability(&format!("{f}.pooled.proportion"), q.proportion)?;
        interval(&format!("{f}.pooled.wilson"), &q.wilson)?;
        interval(&format!("{f}.pooled.clopper_pearson"), &q.clopper_pearson)?;
        if let Some(c) = &p.per_trial_correct {
            let per = q.trials / n as u64;
            if let Some(k) = c.iter().position(|&c| u64::from(c) > per) {
                return Err(bad(format!("{f}.per_trial_correct[{k}]"), format!("{} correct of {per} samples", c[k])));
            }
        }
    }
    if let Some(d) = &p.drop {
        finite(&format!("{f}.drop.mean"), d.mean)?;
        interval(&format!("{f}.drop.ci"), &d.ci)?;
    }
    for (name, c) in [("test_set_ci", &p.test_set_ci), ("p5_ci", &p.p5_ci)] {
        if let Some(c) = c {
            interval(&format!("{f}.{name}"), c)?;
        }
    }
    if let Some(t) = &p.tail {
        if t.below > t.trials || t.trials == 0 {
            return Err(bad(format!("{f}.tail"), format!("{} in the tail of {} trials", t.below, t.trials)));
        }
        probability(&format!("{f}.tail.probability"), t.probability)?;
        interval(&format!("{f}.tail.ci"), &t.ci)?;
    }
    for (k, w) in p.weight_error.iter().enumerate() {
        let g = format!("{f}.weight_error[{k}]");
        if p.weight_error[..k].iter().any(|x| x.layer == w.layer) {
            return Err(bad(format!("{g}.layer"), format!("layer {} appears twice", w.layer)));
        }
        non_negative(&format!("{g}.std"), w.std)?;
        non_negative(&format!("{g}.alpha_std"), w.alpha_std)?;
    }
    for (k, l) in p.layer_insight.iter().enumerate() {
        let g = format!("{f}.layer_insight[{k}]");
        if p.layer_insight[..k].iter().any(|x| x.layer == l.layer) {
            return Err(bad(format!("{g}.layer"), format!("layer {} appears twice", l.layer)));
        }
        summary(&format!("{g}.mvm_error"), &l.mvm_error)?;
        probability(&format!("{g}.bm_repeated"), l.bm_repeated)?;
        probability(&format!("{g}.clipped"), l.clipped)?;
    }
    if let Some(m) = &p.moe {
        moe(&format!("{f}.moe"), m)?;
    }
    Ok(())
}

fn moe(f: &str, m: &super::MoeCost) -> Result<(), Invalid> {
    if m.tiles == 0 || m.tiers == 0 {
        return Err(bad(f, format!("{} tiles of {} tiers: a mapping has at least one of each", m.tiles, m.tiers)));
    }
    if m.tier_activations.len() != m.tiles as usize {
        return Err(bad(format!("{f}.tier_activations"), format!("{} rows but tiles is {}", m.tier_activations.len(), m.tiles)));
    }
    for (i, row) in m.tier_activations.iter().enumerate() {
        if row.len() != m.tiers as usize {
            return Err(bad(format!("{f}.tier_activations[{i}]"), format!("{} entries but tiers is {}", row.len(), m.tiers)));
        }
        for (j, v) in row.iter().enumerate() {
            non_negative(&format!("{f}.tier_activations[{i}][{j}]"), *v)?;
        }
    }
    if m.tile_utilisation.len() != m.tiles as usize {
        return Err(bad(format!("{f}.tile_utilisation"), format!("{} entries but tiles is {}", m.tile_utilisation.len(), m.tiles)));
    }
    for (i, u) in m.tile_utilisation.iter().enumerate() {
        non_negative(&format!("{f}.tile_utilisation[{i}]"), *u)?;
    }
    probability(&format!("{f}.utilisation"), m.utilisation)?;
    probability(&format!("{f}.mean_fill"), m.mean_fill)?;
    for (name, s) in [
        ("latency_ns", &m.latency_ns),
        ("tier_conflicts", &m.tier_conflicts),
        ("tokens_per_s", &m.tokens_per_s),
        ("energy_per_token_pj", &m.energy_per_token_pj),
    ] {
        summary(&format!("{f}.{name}"), s)?;
    }
    histogram(&format!("{f}.latency_hist"), &m.latency_hist)?;
    let e = &m.energy_per_token;
    for (name, v) in [
        ("mvm_pj", e.mvm_pj),
        ("communication_pj", e.communication_pj),
        ("digital_pj", e.digital_pj),
        ("attention_pj", e.attention_pj),
        ("dram_pj", e.dram_pj),
        ("passive_pj", e.passive_pj),
        ("total_pj", e.total_pj),
    ] {
        non_negative(&format!("{f}.energy_per_token.{name}"), v)?;
    }
    if let Some(a) = m.area_mm2 {
        non_negative(&format!("{f}.area_mm2"), a)?;
    }
    for (i, g) in m.gpu.iter().enumerate() {
        let h = format!("{f}.gpu[{i}]");
        if g.batch == 0 {
            return Err(bad(format!("{h}.batch"), "0: a batch holds at least one token"));
        }
        for (name, v) in [
            ("aimc_tokens_per_s", g.aimc_tokens_per_s),
            ("aimc_energy_per_token_pj", g.aimc_energy_per_token_pj),
            ("gpu_tokens_per_s", g.gpu_tokens_per_s),
            ("gpu_energy_per_token_pj", g.gpu_energy_per_token_pj),
            ("throughput_ratio", g.throughput_ratio),
            ("energy_efficiency_ratio", g.energy_efficiency_ratio),
        ] {
            non_negative(&format!("{h}.{name}"), v)?;
        }
    }
    non_negative(&format!("{f}.schedule_seconds"), m.schedule_seconds)?;
    non_negative(&format!("{f}.tokens_scheduled_per_s"), m.tokens_scheduled_per_s)?;
    Ok(())
}

fn budget(f: &str, b: &super::BudgetEntry) -> Result<(), Invalid> {
    non_negative(&format!("{f}.t_inf"), b.t_inf)?;
    for (name, v) in [("cost", b.cost), ("cost_lo", b.cost_lo), ("cost_hi", b.cost_hi), ("interaction", b.interaction)] {
        finite(&format!("{f}.{name}"), v)?;
    }
    if b.sources.is_empty() {
        return Err(bad(format!("{f}.sources"), "empty: a budget attributes its cost to at least one source"));
    }
    for (list, name) in [(&b.sources, "sources"), (&b.layers, "layers")] {
        for (i, s) in list.iter().enumerate() {
            let g = format!("{f}.{name}[{i}]");
            if s.alone_lo > s.alone_hi || s.removal_lo > s.removal_hi {
                return Err(bad(g, "an interval's lo is above its hi"));
            }
        }
    }
    for (i, k) in b.sensitivity.iter().enumerate() {
        let g = format!("{f}.sensitivity[{i}]");
        non_negative(&format!("{g}.rel"), k.rel)?;
        if k.diff_lo > k.diff_hi {
            return Err(bad(g, format!("diff_lo {} is above diff_hi {}", k.diff_lo, k.diff_hi)));
        }
    }
    Ok(())
}
