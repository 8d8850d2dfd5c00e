//! Statistics of a run, on fixed seeds (deterministic): common random numbers (sweep points that
//! differ only in a setting draw the same random numbers, so their difference is measured trial by
//! trial with a far tighter interval than two independent samples give); tail risk and the
//! separated intervals per point; adaptive trials stopping at the requested half-width with the
//! numbers a single run of that many trials gives.

use aimc::config::Experiment;
use aimc::engine::cpu::CpuBackend;
use aimc::run::{run, Quiet};
use std::path::PathBuf;

fn smoke(crn: bool) -> aimc::results::Results {
    let mut exp = Experiment::load(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("experiments/smoke.toml")).unwrap();
    // 80 trials: the 5th percentile's order-statistic interval needs 72 at 95 %.
    exp.trials = 80;
    exp.weight_error_trials = 0;
    exp.common_random_numbers = crn;
    exp.resolved["common_random_numbers"] = crn.into();
    let out = run(&exp, &mut CpuBackend::fast(2), &mut Quiet);
    assert!(out.error.is_none(), "{:?}", out.error);
    out.results
}

/// How far a Clopper-Pearson end's binomial tail may sit from (1 − confidence)/2: the library's
/// beta quantile is solved to ~1e-12, the f64 sum of ≤ 81 binomial terms here is good to ~1e-14.
const CP_TAIL_ABS: f64 = 1e-9;

/// P(X >= x) (`upper`) or P(X <= x) for X ~ Binomial(n, p), summed term by term in f64 (ln C(n, k)
/// from a running sum of logarithms).
fn binomial_tail(n: u64, x: u64, p: f64, upper: bool) -> f64 {
    let ln_choose = |k: u64| (1..=k).map(|i| ((n - k + i) as f64 / i as f64).ln()).sum::<f64>();
    let term = |k: u64| (ln_choose(k) + k as f64 * p.ln() + (n - k) as f64 * (1.0 - p).ln()).exp();
    if upper {
        (x..=n).map(term).sum()
    } else {
        (0..=x).map(term).sum()
    }
}

#[test]
fn binomial_tail_hand_values() {
    // Binomial(4, 1/2): P(X <= 1) = 5/16, P(X >= 3) = 5/16.
    assert!((binomial_tail(4, 1, 0.5, false) - 5.0 / 16.0).abs() < 1e-15);
    assert!((binomial_tail(4, 3, 0.5, true) - 5.0 / 16.0).abs() < 1e-15);
}

#[test]
fn paired_differences_are_tighter_with_common_random_numbers() {
    let (with, without) = (smoke(true), smoke(false));
    assert_eq!(with.paired.len(), 2, "gdc: readout − off at two times");
    for (a, b) in with.paired.iter().zip(&without.paired) {
        assert_eq!((a.axis.as_str(), a.value.as_str(), a.baseline.as_str()), ("gdc", "readout", "off"));
        assert!(a.common_random_numbers && !b.common_random_numbers);
        // Same draws on both sides: the paired interval is tighter than the unpaired one, and
        // tighter than the paired interval of independently drawn points.
        assert!(a.ci.half_width() < a.unpaired_half_width, "{}: paired ± {} vs unpaired ± {}", a.time_label, a.ci.half_width(), a.unpaired_half_width);
        assert!(a.ci.half_width() < b.ci.half_width(), "{}: paired ± {} with CRN vs {} without", a.time_label, a.ci.half_width(), b.ci.half_width());
    }
    // Points that share the key draw the same programmed devices: at 1 h, GDC changes the outputs
    // only through its factor, so most trials give the same count either way.
    let (off, on) = (&with.points[0], &with.points[2]);
    assert_eq!((off.time_label.as_str(), on.time_label.as_str()), ("1 h", "1 h"));
    let same = off.per_trial_correct.as_ref().unwrap().iter().zip(on.per_trial_correct.as_ref().unwrap()).filter(|(a, b)| a.abs_diff(**b) <= 1).count();
    assert!(same * 2 > off.per_trial.len(), "only {same} of {} trials within one sample", off.per_trial.len());
}

#[test]
fn tail_risk_and_separate_uncertainties_are_reported_per_point() {
    let r = smoke(true);
    let fp = r.fp_baseline.unwrap();
    for p in &r.points {
        let t = p.tail.as_ref().expect("classifier points carry the tail risk");
        // Default threshold: one point below floating point.
        assert!((t.threshold - (fp - 0.01)).abs() < 1e-12);
        let below = p.per_trial.iter().filter(|&&v| v < t.threshold).count() as u64;
        assert_eq!((t.below, t.trials), (below, p.per_trial.len() as u64));
        // The Clopper-Pearson interval by its definition (not by the beta quantiles the library
        // uses): the binomial tails at its ends are each (1 − confidence)/2.
        let half_alpha = (1.0 - r.confidence) / 2.0;
        if below > 0 {
            let tail = binomial_tail(t.trials, below, t.ci.lo, true);
            assert!((tail - half_alpha).abs() <= CP_TAIL_ABS, "{}: P(X >= {below} | {}) = {tail}, want {half_alpha}", p.time_label, t.ci.lo);
        } else {
            assert_eq!(t.ci.lo, 0.0);
        }
        if below < t.trials {
            let tail = binomial_tail(t.trials, below, t.ci.hi, false);
            assert!((tail - half_alpha).abs() <= CP_TAIL_ABS, "{}: P(X <= {below} | {}) = {tail}, want {half_alpha}", p.time_label, t.ci.hi);
        } else {
            assert_eq!(t.ci.hi, 1.0);
        }
        // 100 test images: the test-set interval is far wider than the trial-to-trial one.
        let ts = p.test_set_ci.as_ref().unwrap();
        assert!(ts.lo <= p.summary.mean && p.summary.mean <= ts.hi);
        assert!(ts.half_width() > 3.0 * p.mean_ci.half_width(), "{}: test-set ± {} vs trials ± {}", p.time_label, ts.half_width(), p.mean_ci.half_width());
        // The 5th percentile's interval: two order statistics of the trials whose binomial
        // coverage P(l ≤ B < u), B ~ Binomial(n, 0.05), is at least the confidence.
        let p5 = p.p5_ci.as_ref().unwrap();
        assert!(p5.lo <= p.summary.p05 && p.summary.p05 <= p5.hi, "{p5:?} vs p5 {}", p.summary.p05);
        let mut sorted = p.per_trial.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len() as u64;
        let (l, u) = (sorted.iter().position(|&v| v == p5.lo).unwrap() as u64 + 1, sorted.iter().rposition(|&v| v == p5.hi).unwrap() as u64 + 1);
        let coverage = 1.0 - binomial_tail(n, l - 1, 0.05, false) - binomial_tail(n, u, 0.05, true);
        assert!(coverage >= r.confidence - 1e-12, "{}: order statistics ({l}, {u}) of {n} cover {coverage}", p.time_label);
    }
}

/// A loose target is met at once, but adaptive trials stop no earlier than their minimum, and
/// on a zero spread (tied discrete accuracies) no earlier than the larger one.
#[test]
fn adaptive_trials_do_not_stop_on_a_few_trials() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("experiments/smoke.toml");
    let mut exp = Experiment::load(&path).unwrap();
    exp.weight_error_trials = 0;
    exp.trials = 2;
    exp.adaptive = Some(aimc::config::Adaptive { half_width: 1.0, max_trials: 200 });
    let out = run(&exp, &mut CpuBackend::fast(2), &mut Quiet);
    assert!(out.error.is_none(), "{:?}", out.error);
    let r = out.results;
    for p in &r.points {
        let n = p.per_trial.len() as u32;
        assert!(n >= aimc::run::ADAPTIVE_MIN_TRIALS, "{} {}: stopped after {n} trials", p.series, p.time_label);
    }
    // Every time of a point stops together: where any time's trials all tied, the point ran the
    // larger minimum.
    for p in &r.points {
        let tied = r.points.iter().filter(|q| q.series == p.series).any(|q| q.summary.std == 0.0);
        if tied {
            assert!(p.per_trial.len() as u32 >= aimc::run::ADAPTIVE_MIN_TIED_TRIALS, "{}: tied after {}", p.series, p.per_trial.len());
        }
    }
}

#[test]
fn adaptive_trials_stop_at_the_requested_half_width_with_the_single_run_numbers() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("experiments/smoke.toml");
    let mut exp = Experiment::load(&path).unwrap();
    exp.weight_error_trials = 0;
    let (target, cap) = (0.006, 64);
    exp.adaptive = Some(aimc::config::Adaptive { half_width: target, max_trials: cap });
    let out = run(&exp, &mut CpuBackend::fast(2), &mut Quiet);
    assert!(out.error.is_none(), "{:?}", out.error);
    let r = out.results;
    for p in &r.points {
        let n = p.per_trial.len() as u32;
        // Whole batches of the file's trial count; stopped at the bound, or at the cap.
        assert_eq!(n % exp.trials, 0, "{} {}: {n} trials", p.series, p.time_label);
        assert!(p.mean_ci.half_width() <= target || n == cap, "{} {}: ±{} after {n} trials", p.series, p.time_label, p.mean_ci.half_width());
        assert!(p.stopped.as_deref().is_some_and(|s| s.contains(&format!("{n} trials"))), "{:?}", p.stopped);
    }
    // A point that needed more than one batch drew exactly the trials a single run of that many
    // trials draws (the next global trial indices each batch).
    let most = r.points.iter().map(|p| p.per_trial.len()).max().unwrap() as u32;
    assert!(most > exp.trials, "the target should need more than one batch somewhere");
    let mut single = exp.clone();
    single.adaptive = None;
    single.trials = most;
    let s = run(&single, &mut CpuBackend::fast(2), &mut Quiet).results;
    for (a, b) in r.points.iter().zip(&s.points) {
        let n = a.per_trial.len();
        assert_eq!(a.per_trial_correct.as_ref().unwrap()[..], b.per_trial_correct.as_ref().unwrap()[..n], "{} {}", a.series, a.time_label);
    }
}
