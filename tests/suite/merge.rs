//! `aimc merge` beyond the classifier (tests/suite/cli.rs covers that end to end): the shards of a
//! kernel run merge into the single run's points with each point's own floating-point metric, and
//! shards of a moe run are refused by name rather than merged without their cost model.

use crate::common;

use crate::common::{experiment as exp, run_ok};
use aimc::run::merge::merge;

/// Two feature counts, so two projections with their own floating-point metric.
fn kernel() -> String {
    common::IRIS_ERROR.replace("t = [\"1h\"]", "t = [\"1h\"]\nfeatures = [16, 32]")
}

fn shards(text: &str, n: u32) -> Vec<aimc::results::Results> {
    (0..n)
        .map(|k| {
            let mut e = exp(text).unwrap();
            e.apply_shard(k, n).unwrap();
            run_ok(&mut common::cpu(), &e)
        })
        .collect()
}

#[test]
fn kernel_shards_merge_with_each_points_floating_point_metric() {
    let single = run_ok(&mut common::cpu(), &exp(&kernel()).unwrap());
    let merged = merge(shards(&kernel(), 3)).unwrap();
    assert_eq!(single.points.len(), merged.points.len());
    for (a, b) in single.points.iter().zip(&merged.points) {
        assert_eq!(a.per_trial, b.per_trial, "{}", a.series);
        assert!(a.fp.is_some() && a.fp == b.fp, "{}: fp {:?} vs {:?}", a.series, a.fp, b.fp);
        assert_eq!(a.drop, b.drop);
    }
    // Two feature counts, two projections: their floating-point errors differ.
    assert_ne!(merged.points[0].fp, merged.points[1].fp);
}

#[test]
fn moe_shards_are_refused_by_name() {
    let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/moe_digits.toml"))
        .unwrap()
        .replace("trials = 200", "trials = 4")
        .replace("t = [\"1s\", \"1d\", \"1y\", \"10y\"]", "t = [\"1d\"]")
        .replace("tier_noise_slope = [0.0, 1.0, 3.0]", "");
    // Refused at --shard, before any compute.
    let e = exp(&text).unwrap().apply_shard(0, 2).unwrap_err().to_string();
    assert!(e.contains("moe") && e.contains("unsharded"), "{e}");
    // And by the merge, for shard results made otherwise.
    let whole = run_ok(&mut common::cpu(), &exp(&text).unwrap());
    let parts: Vec<_> = (0..2u32)
        .map(|k| {
            let mut r = whole.clone();
            r.shard = Some(aimc::results::Shard { index: k, count: 2, first_trial: 2 * k, trials: 2, first_weight_error_trial: 0, weight_error_trials: 0 });
            r
        })
        .collect();
    let e = merge(parts).unwrap_err().to_string();
    assert!(e.contains("moe") && e.contains("unsharded"), "{e}");
}

/// Shards of different documents are refused saying what differs: the setting where the
/// configurations differ, or an edit that changed no setting, or the seed.
#[test]
fn shards_of_different_documents_say_what_differs() {
    let mut parts = shards(&kernel(), 2);
    let other = kernel().replace("[periphery]", "[periphery]\nout_noise = 0.02");
    let mut e = exp(&other).unwrap();
    e.apply_shard(1, 2).unwrap();
    parts[1] = run_ok(&mut common::cpu(), &e);
    let msg = merge(parts).unwrap_err().to_string();
    assert!(msg.contains("shard 1 comes from another experiment document") && msg.contains("out_noise"), "{msg}");
    // A comment edited: the same settings, another document.
    let mut parts = shards(&kernel(), 2);
    parts[1].experiment_sha256 = "0".repeat(64);
    let msg = merge(parts).unwrap_err().to_string();
    assert!(msg.contains("the file was edited (its settings are the same)"), "{msg}");
    let mut parts = shards(&kernel(), 2);
    parts[1].seed += 1;
    let msg = merge(parts).unwrap_err().to_string();
    assert!(msg.contains("shard 1 ran with seed"), "{msg}");
}
