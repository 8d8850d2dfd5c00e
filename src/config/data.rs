//! The data sections of an experiment file: `[data]` (a labelled CSV, .npy pair or .npz, scaled
//! and sliced) and `[attention]` (Q, K, V from .npy files or generated), each mistake named by
//! its field.

use super::raw::{RawAttention, RawData, MAX_ATTENTION_VALUES};
use crate::workload::io::{self, Dataset, Matrix};
use std::path::{Path, PathBuf};

/// A data set from a feature matrix and a label vector (n values, integers >= 0); `xs` names the
/// features and `ys` the labels in errors.
pub(super) fn labelled(x: io::Matrix, y: io::Matrix, scale: f32, xs: &str, ys: &str) -> Result<Dataset, String> {
    if y.data.len() != x.rows {
        let hint = if x.rows == 1 { " (a 1-D array is read as one row; the features need shape [n, features])" } else { "" };
        return Err(format!("{ys} holds {} labels but {xs} has {} rows{hint}", y.data.len(), x.rows));
    }
    let labels = y
        .data
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            if v >= 0.0 && v.fract() == 0.0 && v < u32::MAX as f32 {
                Ok(v as u32)
            } else {
                Err(format!("{ys}: row {i} has label {v}; labels are integers >= 0"))
            }
        })
        .collect::<Result<Vec<u32>, String>>()?;
    let scaled: Vec<f32> = x.data.iter().map(|v| v / scale).collect();
    if let Some(i) = scaled.iter().position(|v| !v.is_finite()) {
        return Err(format!(
            "{xs}: row {}, column {}: {} divided by data.scale = {scale} is beyond the range of 32-bit floats (±3.4e38); give a larger data.scale",
            i / x.cols.max(1),
            i % x.cols.max(1),
            x.data[i]
        ));
    }
    Ok(Dataset { x: scaled, labels, n_features: x.cols, spans: vec![], text: None, targets: vec![] })
}

/// The `[data]` set: a CSV (features, then the label; `header` says whether the first line names
/// the columns), a .npy feature matrix [n, features] with `labels` a .npy of n integer labels, or
/// a .npz holding both (arrays `features` and `labels`, default "x" and "y"); features divided by
/// `scale`, then `rows` start..end.
pub(super) fn read_data(d: &RawData, resolve: &dyn Fn(&Path) -> PathBuf) -> Result<(Dataset, PathBuf), String> {
    read_rows(d, resolve, true)
}

/// [`read_data`], or with `with_labels` false a language model's token rows ([`read_token_rows`]).
pub(super) fn read_rows(d: &RawData, resolve: &dyn Fn(&Path) -> PathBuf, with_labels: bool) -> Result<(Dataset, PathBuf), String> {
    let data_path = resolve(&d.path);
    if d.answer_text.is_some() {
        return Err("data.answer_text: only for question answering (transformer.task = \"qa_f1\" or \"qa_exact_match\"); remove it".into());
    }
    if !with_labels {
        return read_token_rows(d, data_path);
    }
    if !(d.scale.is_finite() && d.scale > 0.0) {
        return Err(format!("data.scale = {}: must be a finite number > 0 as a 32-bit float (about 1.2e-38 to 3.4e38)", d.scale));
    }
    let ext = data_path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if ext != "npz" && d.features.is_some() {
        return Err("data.features: names an array inside a .npz; remove it for a CSV or .npy".into());
    }
    if d.header && matches!(ext, "npy" | "npz") {
        return Err("data.header: only for CSV files".into());
    }
    let ds = match (ext, &d.labels) {
        ("npy", None) => return Err(format!("data.path = {}: a .npy holds features only; give data.labels = \"labels.npy\" too", data_path.display())),
        ("npy", Some(l)) => {
            let x = io::read_matrix(&data_path, None).map_err(|e| format!("data.path: {}", as_data(&e, "features")))?;
            let lp = resolve(l);
            let y = io::read_matrix(&lp, None).map_err(|e| format!("data.labels: {}", as_data(&e, "labels")))?;
            labelled(x, y, d.scale, &data_path.display().to_string(), &format!("data.labels: {}", lp.display()))?
        }
        ("npz", l) => {
            let (xn, yn) = (d.features.clone().unwrap_or_else(|| "x".into()), l.as_ref().map_or("y".into(), |p| p.display().to_string()));
            let x = io::read_npz_array(&data_path, &xn).map_err(|e| format!("data.features: {}", as_data(&e, "features")))?;
            let y = io::read_npz_array(&data_path, &yn).map_err(|e| format!("data.labels: {}", as_data(&e, "labels")))?;
            labelled(x, y, d.scale, &format!("{} array {xn}", data_path.display()), &format!("data.labels: {} array {yn}", data_path.display()))?
        }
        (_, None) => io::read_csv_with(&data_path, d.scale, d.header).map_err(|e| format!("data.path: {e}"))?,
        (_, Some(_)) => return Err("data.labels: only with a .npy or .npz feature file (a CSV has its labels in the last column)".into()),
    };
    take_rows(ds, d, data_path)
}

/// A language model's data: every column a token (a CSV, a .npy matrix [n, seq] or a .npz's
/// `features` array, default "x"); no labels are read, and a `data.labels` is refused.
fn read_token_rows(d: &RawData, data_path: PathBuf) -> Result<(Dataset, PathBuf), String> {
    if d.labels.is_some() {
        return Err("data.labels: a language model's rows are token sequences only (transformer.task = \"next_token\" predicts each row's next tokens); remove data.labels".into());
    }
    if d.scale != 1.0 {
        return Err(format!("data.scale = {}: token ids are not scaled; remove data.scale", d.scale));
    }
    let ext = data_path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let matrix = |m: io::Matrix| Dataset { labels: vec![0; m.rows], n_features: m.cols, x: m.data, spans: vec![], text: None, targets: vec![] };
    let ds = match ext {
        "npy" => matrix(io::read_matrix(&data_path, None).map_err(|e| format!("data.path: {}", as_data(&e, "tokens")))?),
        "npz" => {
            let xn = d.features.clone().unwrap_or_else(|| "x".into());
            matrix(io::read_npz_array(&data_path, &xn).map_err(|e| format!("data.features: {}", as_data(&e, "tokens")))?)
        }
        _ => io::read_csv_unlabelled(&data_path, d.header).map_err(|e| format!("data.path: {e}"))?,
    };
    take_rows(ds, d, data_path)
}

/// A regression head's data (GLUE's STS-B): token rows and a real-valued target per row, read as
/// [`token_rows_with`] reads them (the CSV's last column, or `data.labels`).
pub(super) fn read_target_rows(d: &RawData, resolve: &dyn Fn(&Path) -> PathBuf) -> Result<(Dataset, PathBuf), String> {
    if d.answer_text.is_some() {
        return Err("data.answer_text: only for question answering (transformer.task = \"qa_f1\" or \"qa_exact_match\"); remove it".into());
    }
    let layout =
        Labels { what: "targets", npy: "\"targets.npy\" too, n real values", csv: "its target", row: "a regression row is its tokens, then the target" };
    let (data_path, x, y, ys) = token_rows_with(d, resolve, 1, &layout)?;
    if y.data.len() != x.rows {
        return Err(format!("{ys} holds {} targets but {} has {} rows", y.data.len(), data_path.display(), x.rows));
    }
    if let Some(i) = y.data.iter().position(|t| !t.is_finite()) {
        return Err(format!("{ys}: row {} has target {}; a regression target is a finite number", i + 1, y.data[i]));
    }
    let ds = Dataset { labels: vec![0; x.rows], n_features: x.cols, x: x.data, spans: vec![], text: None, targets: y.data };
    take_rows(ds, d, data_path)
}

/// How [`token_rows_with`] names a data set's labels in its messages.
struct Labels<'a> {
    /// What they are ("answer spans").
    what: &'a str,
    /// What `data.labels` gives beside a .npy of tokens.
    npy: &'a str,
    /// What the last columns of a CSV row hold.
    csv: &'a str,
    /// What a CSV row holds.
    row: &'a str,
}

/// Token rows with `w` label columns each (question answering's answer spans, a regression's
/// target): a .npy matrix [n, seq] with `data.labels` a .npy of the labels, a .npz's `features`
/// and `labels` arrays (default "x" and "y"), or a CSV whose last `w` columns are the labels.
/// Tokens are not scaled. Returns the data path, the tokens, the labels as read (the caller
/// checks their shape and values) and where the labels came from, for messages.
fn token_rows_with(d: &RawData, resolve: &dyn Fn(&Path) -> PathBuf, w: usize, l: &Labels<'_>) -> Result<(PathBuf, Matrix, Matrix, String), String> {
    let data_path = resolve(&d.path);
    if d.scale != 1.0 {
        return Err(format!("data.scale = {}: token ids are not scaled; remove data.scale", d.scale));
    }
    let last = if w == 1 { "last column".to_string() } else { format!("last {w} columns") };
    let ext = data_path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let (x, y, what) = match (ext, &d.labels) {
        ("npy", None) => return Err(format!("data.path = {}: a .npy holds the token rows only; give data.labels = {}", data_path.display(), l.npy)),
        ("npy", Some(lp)) => {
            let lp = resolve(lp);
            let x = io::read_matrix(&data_path, None).map_err(|e| format!("data.path: {}", as_data(&e, "tokens")))?;
            let y = io::read_matrix(&lp, None).map_err(|e| format!("data.labels: {}", as_data(&e, l.what)))?;
            (x, y, format!("data.labels: {}", lp.display()))
        }
        ("npz", lp) => {
            let (xn, yn) = (d.features.clone().unwrap_or_else(|| "x".into()), lp.as_ref().map_or("y".into(), |p| p.display().to_string()));
            let x = io::read_npz_array(&data_path, &xn).map_err(|e| format!("data.features: {}", as_data(&e, "tokens")))?;
            let y = io::read_npz_array(&data_path, &yn).map_err(|e| format!("data.labels: {}", as_data(&e, l.what)))?;
            (x, y, format!("data.labels: {} array {yn}", data_path.display()))
        }
        (_, Some(_)) => return Err(format!("data.labels: only with a .npy or .npz token file (a CSV has {} in each row's {last})", l.csv)),
        (_, None) => {
            let all = io::read_csv_unlabelled(&data_path, d.header).map_err(|e| format!("data.path: {e}"))?;
            let cols = all.n_features;
            if cols <= w {
                return Err(format!("data.path = {}: {cols} column{}; {}", data_path.display(), if cols == 1 { "" } else { "s" }, l.row));
            }
            let rows = all.len();
            let (mut x, mut y) = (Vec::with_capacity(rows * (cols - w)), Vec::with_capacity(rows * w));
            for row in all.x.chunks(cols) {
                x.extend_from_slice(&row[..cols - w]);
                y.extend_from_slice(&row[cols - w..]);
            }
            (Matrix { rows, cols: cols - w, data: x }, Matrix { rows, cols: w, data: y }, format!("data.path: {}, the {last}", data_path.display()))
        }
    };
    Ok((data_path, x, y, what))
}

/// Question answering scored from text (`data.answer_text`, SQuAD's official metrics): the token
/// rows as a language model's ([`read_token_rows`]), one row per window of a question's
/// context, and the JSON that gives each question's context and answers and each row's question
/// and token offsets (`squad::AnswerText`). No answer spans are read: the text is the label.
pub(super) fn read_text_rows(d: &RawData, resolve: &dyn Fn(&Path) -> PathBuf, answers: u32) -> Result<(Dataset, PathBuf), String> {
    let text_path = resolve(d.answer_text.as_ref().expect("called with data.answer_text"));
    if d.labels.is_some() {
        return Err("data.labels: with data.answer_text the answers are the text in it; remove data.labels".into());
    }
    if d.rows.is_some() {
        return Err("data.rows: with data.answer_text every row is a window of one of its questions; choose the questions before writing the files, and remove data.rows".into());
    }
    if answers != 1 {
        return Err(format!("transformer.answers = {answers}: with data.answer_text each question's answers are the text in it; remove transformer.answers"));
    }
    let (mut ds, data_path) = read_token_rows(d, resolve(&d.path))?;
    let json = std::fs::read_to_string(&text_path).map_err(|e| format!("data.answer_text: {}: {e}", text_path.display()))?;
    let text = crate::workload::transformer::squad::AnswerText::from_json(&json, ds.len(), ds.n_features)
        .map_err(|e| format!("data.answer_text: {}: {e}", text_path.display()))?;
    ds.text = Some(std::sync::Arc::new(text));
    Ok((ds, data_path))
}

/// Extractive question answering's data: token rows (a .npy matrix [n, seq], a .npz's `features`
/// array) with each row's `answers` labelled answer spans, start and end token positions, in
/// `data.labels` (a .npy [n, 2 · answers], or the .npz's `labels` array, default "y"); or a CSV
/// whose last 2 · answers columns are the spans (start, end, start, end, ...). Each span is packed
/// as start · seq + end (`transformer::span_of`): all of them in `spans`, each row's first in
/// `labels`.
pub(super) fn read_span_rows(d: &RawData, resolve: &dyn Fn(&Path) -> PathBuf, answers: usize) -> Result<(Dataset, PathBuf), String> {
    if answers == 0 {
        return Err("transformer.answers = 0: each row has at least one labelled answer".into());
    }
    let w = 2 * answers;
    let shape = if answers == 1 {
        "[n, 2] array of each row's answer start and end token".to_string()
    } else {
        format!("[n, {w}] array of each row's {answers} answers' start and end tokens")
    };
    let layout = Labels {
        what: "answer spans",
        npy: &format!("\"spans.npy\" too, an {shape}"),
        csv: "its answers",
        row: &format!("a question-answering row is its tokens, then {w} columns: each of its {answers} answers' start and end token (transformer.answers)"),
    };
    let (data_path, x, spans, what) = token_rows_with(d, resolve, w, &layout)?;
    if spans.rows != x.rows || spans.cols != w {
        return Err(format!(
            "{what}: [{}, {}] but the {} token rows with transformer.answers = {answers} need [{}, {w}]: each row's answers' start and end tokens",
            spans.rows, spans.cols, x.rows, x.rows
        ));
    }
    let seq = x.cols;
    let mut packed = Vec::with_capacity(x.rows * answers);
    for (i, se) in spans.data.chunks(2).enumerate() {
        let ok = |v: f32| v >= 0.0 && v.fract() == 0.0 && (v as usize) < seq;
        if !(ok(se[0]) && ok(se[1]) && se[0] <= se[1]) {
            let which = if answers > 1 { format!(", answer {}", i % answers + 1) } else { String::new() };
            return Err(format!(
                "{what}: row {}{which}: the answer span [{}, {}] is not two whole token positions, start <= end, within the row's {seq} tokens (positions from 0)",
                i / answers + 1,
                se[0],
                se[1]
            ));
        }
        packed.push(se[0] as u32 * seq as u32 + se[1] as u32);
    }
    let labels = packed.iter().step_by(answers).copied().collect();
    take_rows(Dataset { x: x.data, labels, n_features: seq, spans: packed, text: None, targets: vec![] }, d, data_path)
}

/// A matrix reader's error about a data file: the reader speaks of weights, these are `what`
/// (features, labels, tokens, answer spans).
fn as_data(e: &crate::workload::WorkloadError, what: &str) -> String {
    e.to_string().replace("weights must be finite", &format!("{what} must be finite"))
}

/// `data.rows` = [start, end] of a data set read from `data_path` (all rows without it).
fn take_rows(ds: Dataset, d: &RawData, data_path: PathBuf) -> Result<(Dataset, PathBuf), String> {
    let Some(r) = &d.rows else { return Ok((ds, data_path)) };
    let &[a, b] = r.as_slice() else {
        return Err(format!("data.rows = {r:?}: give two numbers, [start, end] (rows start..end, end excluded)"));
    };
    if a >= b || b > ds.len() {
        return Err(format!("data.rows = [{a}, {b}]: {} has {} rows; need start < end <= {}", data_path.display(), ds.len(), ds.len()));
    }
    Ok((ds.rows(a, b), data_path))
}

/// Reads or generates the attention workload's Q, K, V (each `[heads][n][d]`).
pub(super) fn attention_data(a: &RawAttention, resolve: &dyn Fn(&Path) -> PathBuf) -> Result<crate::workload::kernel::KernelData, String> {
    if a.heads == 0 {
        return Err("attention.heads = 0: must be >= 1".into());
    }
    let (q, k, v, n, d) = match (&a.q, &a.k, &a.v) {
        (None, None, None) => {
            if a.n == 0 || a.d == 0 {
                return Err(format!("attention.n = {}, attention.d = {}: give both (>= 1) to generate Q, K, V, or q, k, v = \"....npy\"", a.n, a.d));
            }
            if a.heads * a.n * a.d > MAX_ATTENTION_VALUES {
                return Err(format!("attention: heads x n x d = {} values per tensor; at most {MAX_ATTENTION_VALUES}", a.heads * a.n * a.d));
            }
            let std = a.qk_std.unwrap_or((a.d as f64).powf(-0.25));
            if !(std > 0.0 && std.is_finite()) {
                return Err(format!("attention.qk_std = {std}: must be > 0"));
            }
            let (q, k, v) = crate::features::attention::synthetic_qkv(a.heads, a.n, a.d, std, a.data_seed);
            (q, k, v, a.n, a.d)
        }
        (Some(qp), Some(kp), Some(vp)) => {
            if a.qk_std.is_some() {
                return Err("attention.qk_std: only for generated Q/K/V; remove it (the .npy files are used as they are)".into());
            }
            let load = |name: &str, p: &Path| -> Result<Matrix, String> {
                let path = resolve(p);
                let m = io::read_matrix(&path, None).map_err(|e| format!("attention.{name}: {e}"))?;
                if m.rows % a.heads != 0 {
                    return Err(format!(
                        "attention.{name}: {} has {} rows, not a multiple of heads = {} (rows are heads x n, head-major)",
                        path.display(),
                        m.rows,
                        a.heads
                    ));
                }
                Ok(m)
            };
            let (q, k, v) = (load("q", qp)?, load("k", kp)?, load("v", vp)?);
            if q.cols != k.cols {
                return Err(format!("attention.q and attention.k: d differs ({} vs {} columns); Q and K need the same d", q.cols, k.cols));
            }
            if q.rows != k.rows || q.rows != v.rows {
                return Err(format!("attention: q, k, v have {}, {} and {} rows; they need the same heads x n", q.rows, k.rows, v.rows));
            }
            if v.cols != q.cols {
                return Err(format!("attention.v: {} columns; this workload needs V of the same d as Q and K ({})", v.cols, q.cols));
            }
            if (a.n != 0 && a.n * a.heads != q.rows) || (a.d != 0 && a.d != q.cols) {
                return Err(format!("attention.n = {}, d = {}: the files hold n = {}, d = {}; remove n and d or fix them", a.n, a.d, q.rows / a.heads, q.cols));
            }
            let n = q.rows / a.heads;
            (q.data, k.data, v.data, n, q.cols)
        }
        _ => return Err("attention: give all of q, k, v (.npy, [heads x n, d] each) or none (generated)".into()),
    };
    Ok(crate::workload::kernel::KernelData::Attention { heads: a.heads, n, d, causal: a.causal, q, k, v })
}
