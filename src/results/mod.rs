//! The results file: everything a run produced, schema-versioned, written once as `results.json`
//! (plus `trials.csv`). Plots and reports read only this; `aimc report DIR` rebuilds them from it
//! without rerunning a trial. [`index`] finds a point by its labels and time in one look-up.
//!
//! A neutral module: the runner (`experiment`) writes it and the report reads it; it imports
//! neither the engine nor the 3D-tier model, which hand it plain data. [`schema`] holds the types,
//! [`validate`] the load-time checks, [`csv`] the trials.csv writer.

pub mod csv;
pub mod index;
pub mod schema;
pub mod validate;

pub use schema::*;

/// Why a results.json was refused, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{}: cannot read it ({source}); give the results directory of `aimc run`", path.display())]
    Read { path: std::path::PathBuf, source: std::io::Error },
    #[error("{}: {kind}", path.display())]
    Invalid { path: std::path::PathBuf, kind: InvalidFile },
}

/// What is wrong with the text of a results.json.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum InvalidFile {
    #[error("not a results file ({0}); rerun the experiment or restore the file")]
    Json(String),
    #[error("schema version {0}, this aimc reads versions 1 and {SCHEMA_VERSION}; rerun the experiment with this aimc")]
    Version(u64),
    #[error("{0}; the file was truncated or edited: rerun the experiment or restore the file")]
    Field(#[from] validate::Invalid),
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a reader never sees a
/// half-written file.
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

impl Results {
    /// Layer `i`'s name in the model ("3", "fc1"), or its index where the configuration lists
    /// no layers.
    pub fn layer_name(&self, i: usize) -> String {
        self.config.pointer(&format!("/model/layers/{i}/name")).and_then(|v| v.as_str()).map_or_else(|| i.to_string(), str::to_string)
    }

    /// "3 (Conv2d 8→16, 3×3, 16 MVMs per sample)" or "7 (Linear 64→10)": layer `i` as the
    /// resolved configuration describes it (its index alone where it lists no layers).
    pub fn layer_label(&self, i: usize) -> String {
        let Some(l) = self.config.pointer(&format!("/model/layers/{i}")) else {
            return i.to_string();
        };
        let (name, n_in, n_out) = (self.layer_name(i), l["in"].as_u64().unwrap_or(0), l["out"].as_u64().unwrap_or(0));
        // Learned input ranges: the values the layer's inputs are clipped to, per input tile.
        let ranges = match l.get("input_range").and_then(|r| r.as_array()) {
            Some(r) if !r.is_empty() => {
                let v: Vec<String> = r.iter().map(|x| format!("{:.3}", x.as_f64().unwrap_or(0.0))).collect();
                format!(", inputs clipped to ±{}", v.join("/"))
            }
            _ => String::new(),
        };
        // A residual network's shortcuts: the layer it reads instead of the previous, the one it adds.
        let mut links: String =
            [("reads", "input"), ("adds", "add")].iter().filter_map(|(verb, key)| l.get(*key)?.as_str().map(|n| format!(", {verb} {n}"))).collect();
        if let (Some(s), Some([b, a])) =
            (l.get("add_stride").and_then(|v| v.as_u64()), l.get("add_pad_channels").and_then(|v| v.as_array()).and_then(|v| Some([v.first()?, v.get(1)?])))
        {
            links += &format!(" through a zero-padding shortcut (stride {s}, channels padded {b} + {a})");
        }
        let norm = if l.get("batchnorm").is_some() { ", digital BatchNorm" } else { "" };
        let ranges = format!("{ranges}{norm}{links}");
        match l.get("conv").filter(|c| !c.is_null()) {
            Some(c) => format!(
                "{name} (Conv2d {}→{n_out}, {}×{}, {} MVMs per sample{ranges})",
                c["in_c"].as_u64().unwrap_or(0),
                c["k_h"].as_u64().unwrap_or(0),
                c["k_w"].as_u64().unwrap_or(0),
                l["mvms_per_sample"].as_u64().unwrap_or(0)
            ),
            None => format!("{name} (Linear {n_in}→{n_out}{ranges})"),
        }
    }

    /// `results.json` (or `results.partial.json` when the run stopped early) and `trials.csv`.
    pub fn save(&self, dir: &std::path::Path, complete: bool) -> std::io::Result<std::path::PathBuf> {
        std::fs::create_dir_all(dir)?;
        let name = if complete { "results.json" } else { "results.partial.json" };
        let path = dir.join(name);
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        write_atomic(&path, &json)?;
        let csv_name = if complete { "trials.csv" } else { "trials.partial.csv" };
        write_atomic(&dir.join(csv_name), self.trials_csv().as_bytes())?;
        if let Some(rows) = self.rows_csv() {
            write_atomic(&dir.join(if complete { "row_counts.csv" } else { "row_counts.partial.csv" }), rows.as_bytes())?;
        }
        Ok(path)
    }

    /// Reads `DIR/results.json` and validates it ([`validate`]): a file that parses but breaks an
    /// invariant the readers rely on (a per-trial vector shorter than the trial count, a heat map
    /// row of the wrong width) is refused here with the field, never later with a panic. Version-1
    /// files are read too: their JSON has the same fields, and they come back as this version (so
    /// `aimc report DIR` rewrites a version-1 directory as the current version).
    pub fn load(dir: &std::path::Path) -> Result<Results, LoadError> {
        let path = dir.join("results.json");
        let text = crate::files::read_to_string(&path).map_err(|source| LoadError::Read { path: path.clone(), source })?;
        Self::from_json(&text).map_err(|kind| LoadError::Invalid { path, kind })
    }

    /// Parses and validates the text of a `results.json` (see [`Results::load`]).
    pub fn from_json(text: &str) -> Result<Results, InvalidFile> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| InvalidFile::Json(e.to_string()))?;
        let ver = v.get("schema_version").and_then(|x| x.as_u64()).unwrap_or(0);
        if !READS.contains(&ver) {
            return Err(InvalidFile::Version(ver));
        }
        validate::numbers(&v, &mut String::new())?;
        let mut r: Results = serde_json::from_value(v).map_err(|e| InvalidFile::Json(e.to_string()))?;
        if r.metric_column.is_empty() {
            r.metric_column = r.legacy_metric_column().to_string();
        }
        r.schema_version = SCHEMA_VERSION;
        validate::results(&r)?;
        Ok(r)
    }
}

/// Two chunks' (or shards') per-row counts of right answers added; None unless both have them
/// for the same rows (a part without counts leaves the point without, rather than with some of
/// its trials').
pub fn add_row_counts(a: Option<Vec<u32>>, b: Option<Vec<u32>>) -> Option<Vec<u32>> {
    match (a, b) {
        (Some(mut x), Some(y)) if x.len() == y.len() => {
            for (c, d) in x.iter_mut().zip(y) {
                *c += d;
            }
            Some(x)
        }
        _ => None,
    }
}
