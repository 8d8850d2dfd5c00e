//! The run itself: adapter, workload, trials, time, seed, provenance.

use crate::report::document::*;
use crate::report::format::*;
use crate::results::*;

pub(super) fn run_table(results: &Results) -> Table {
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
