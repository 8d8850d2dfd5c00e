//! trials.csv: one row per (sweep point, time, trial), the per-trial metric in a column named for
//! the workload (docs/results.md) and a companion metric's after it, tidy for pandas or polars;
//! row_counts.csv (`row_counts`, `transformer.row_counts`): one row per (sweep point, time, data
//! row), the trials that answered the row right.

use super::Results;

impl Results {
    /// The trials.csv column of the per-trial metric, as a version-1 file (which did not record
    /// it) named it.
    pub(super) fn legacy_metric_column(&self) -> &'static str {
        match self.workload.as_str() {
            "classifier" => "test_accuracy",
            "weight_error" => "weight_error_std",
            "mvm_error" => "mvm_relative_error",
            "kernel_error" => "kernel_relative_error",
            "kernel_ridge" => "ridge_test_accuracy",
            "attention" => "attention_relative_error",
            "moe" if self.metric.contains("latency") => "moe_latency_ns",
            "moe" if self.metric.starts_with("test accuracy") => "moe_test_accuracy",
            "moe" => "moe_output_relative_error",
            _ => "metric",
        }
    }

    /// The first columns of a CSV row of point `p`: its sweep index, series and axis labels.
    fn point_fields(&self, p: &super::Point) -> String {
        let mut s = format!("{},{}", p.sweep_index, csv_field(&p.series));
        for a in &self.axes {
            s.push(',');
            s.push_str(&csv_field(p.labels.get(&a.name).map(String::as_str).unwrap_or("")));
        }
        s
    }

    /// The header's first columns ([`Results::point_fields`]).
    fn point_header(&self) -> String {
        std::iter::once("sweep_index,series").chain(self.axes.iter().map(|a| a.name.as_str())).collect::<Vec<_>>().join(",")
    }

    /// Per row of the data set (per question with answer text), the trials that answered it
    /// right, one line per (point, time, row); None where no point counted them.
    pub fn rows_csv(&self) -> Option<String> {
        self.points.iter().any(|p| p.per_row_correct.is_some()).then(|| {
            // A classifier's rows carry their label, after the counts.
            let label = |row: usize| self.row_labels.as_ref().and_then(|l| l.get(row)).map_or(String::new(), |l| format!(",{l}"));
            let mut s =
                format!("{},t_inf_s,time_label,row,correct_trials,trials{}\n", self.point_header(), if self.row_labels.is_some() { ",label" } else { "" });
            for p in &self.points {
                for (row, c) in p.per_row_correct.iter().flatten().enumerate() {
                    s.push_str(&format!("{},{},{},{row},{c},{}{}\n", self.point_fields(p), p.t_inf, csv_field(&p.time_label), p.per_trial.len(), label(row)));
                }
            }
            s
        })
    }

    /// The companion metrics' columns ([`super::Point::companion`]), in the order points first
    /// name them; empty where no point has one.
    fn companion_columns(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for c in self.points.iter().filter_map(|p| p.companion.as_ref()) {
            if !out.contains(&c.metric.as_str()) {
                out.push(&c.metric);
            }
        }
        out
    }

    /// Per-trial metrics, one row per (point, time, trial), tidy for pandas or polars; a
    /// companion metric in a column of its own after them, empty where a point has none.
    pub fn trials_csv(&self) -> String {
        let also = self.companion_columns();
        let mut s = self.point_header();
        s.push_str(&format!(",t_inf_s,time_label,trial,{},correct,n_samples", self.metric_column));
        also.iter().for_each(|c| s.push_str(&format!(",{c}")));
        s.push('\n');
        // A shard's trials by their index in the whole run, as its results.json records them.
        let first = self.shard.as_ref().map_or(0, |sh| sh.first_trial as usize);
        for p in &self.points {
            let n_samples = p.pooled.as_ref().map(|q| q.trials / p.per_trial.len().max(1) as u64);
            for (i, m) in p.per_trial.iter().enumerate() {
                s.push_str(&self.point_fields(p));
                let c = p.per_trial_correct.as_ref().map(|c| c[i].to_string()).unwrap_or_default();
                let n = n_samples.map(|n| n.to_string()).unwrap_or_default();
                s.push_str(&format!(",{},{},{},{},{},{}", p.t_inf, csv_field(&p.time_label), first + i, m, c, n));
                for name in &also {
                    s.push(',');
                    if let Some(v) = p.companion.as_ref().filter(|c| c.metric == *name).map(|c| c.per_trial[i]) {
                        s.push_str(&v.to_string());
                    }
                }
                s.push('\n');
            }
        }
        s
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
