//! The resolved configuration: every setting of the run as validated (defaults filled in, paths
//! resolved, the model's layers and the sweep axes), recorded in results.json. Its hash names the
//! run in the checkpoint journal, so [`super::overrides`] keeps it in step with every override.

use super::raw::{RawExperiment, RawModel};
use super::sweep::{Base, SweepAxis};
use super::time::time_label;
use super::Experiment;
use crate::workload::Activation;
use std::path::{Path, PathBuf};

/// The parts of a validated experiment the resolved form records besides the raw file.
pub(super) struct Parts<'a> {
    pub exp: &'a Experiment,
    pub model: &'a RawModel,
    pub model_path: &'a Path,
    /// `[model] layers` tables' activations, when they set any.
    pub layer_activations: Option<&'a [Activation]>,
    pub digital_names: &'a [String],
    pub axes: &'a [SweepAxis],
    /// The file's settings before the axes (a point may differ along them).
    pub base: &'a Base<'a>,
}

pub(super) fn resolved(raw: &RawExperiment, resolve: &dyn Fn(&Path) -> PathBuf, p: Parts<'_>) -> serde_json::Value {
    let exp = p.exp;
    let (model, layers, base) = (p.model, &exp.layers, p.base);
    let mut v = serde_json::json!({
        "name": raw.name,
        "workload": raw.workload,
        "seed": raw.seed,
        "trials": raw.trials,
        "confidence": raw.confidence,
        "ci_half_width": raw.ci_half_width,
        "gdc": raw.gdc,
        "weight_error_trials": raw.weight_error_trials,
        "layer_insight_trials": raw.layer_insight_trials,
        "common_random_numbers": raw.common_random_numbers,
        "tail_below": raw.tail_below,
        "kernel": base.kernel,
        "moe": base.moe.as_ref().map(|(m, _)| m),
        "arch": base.moe.as_ref().map(|(_, a)| a),
        "transformer": base.transformer,
        "cost_tables": exp.moe_tables.as_ref().map(|(t, g)| serde_json::json!({"tiers": t.name, "gpu": g.name})),
        "attention": raw.attention.as_ref().map(|a| serde_json::json!({"heads": a.heads, "n": a.n, "d": a.d, "causal": a.causal, "qk_std": a.qk_std, "data_seed": a.data_seed,
            "q": a.q.as_ref().map(|p| resolve(p).display().to_string()), "k": a.k.as_ref().map(|p| resolve(p).display().to_string()), "v": a.v.as_ref().map(|p| resolve(p).display().to_string())})),
        // A transformer's activations are `[transformer]` fields; `[model] activation` is a classifier's.
        "model": { "path": p.model_path.display().to_string(), "tensor": model.tensor,
                   "activation": (raw.workload != crate::workload::WorkloadKind::Transformer).then_some(model.activation),
                   "activations": p.layer_activations.or(model.activations.as_deref()), "digital": p.digital_names, "input_shape": model.input_shape,
                   "layers": layers.iter().map(|l| {
                       let mut j = serde_json::json!({"name": l.name, "out": l.weight.rows, "in": l.weight.cols, "conv": l.conv,
                           "mvms_per_sample": l.conv.map_or(1, |c| c.out_hw().0 * c.out_hw().1)});
                       // Recorded only where the model file gives them, so other results read as before.
                       if !l.input_range.is_empty() {
                           j["input_range"] = serde_json::json!(l.input_range);
                       }
                       if l.batchnorm.is_some() {
                           j["batchnorm"] = serde_json::json!("digital");
                       }
                       // A residual network's shortcuts, by the names of the layers they read.
                       for (key, link) in [("input", l.links.input), ("add", l.links.add)] {
                           if let Some(k) = link {
                               j[key] = serde_json::json!(layers[k].name);
                           }
                       }
                       if let Some(z) = l.links.add_pad {
                           j["add_stride"] = serde_json::json!(z.stride);
                           j["add_pad_channels"] = serde_json::json!([z.before, z.after]);
                       }
                       j
                   }).collect::<Vec<_>>() },
        "data": raw.data.as_ref().map(|d| data_json(d, resolve)),
        "device": base.device,
        "periphery": base.periphery,
        "tile": base.tile,
        "times_s": exp.times,
        "time_labels": exp.times.iter().map(|&t| time_label(t)).collect::<Vec<_>>(),
        "sweep_axes": p.axes.iter().map(|a| serde_json::json!({"name": a.name, "values": a.labels})).collect::<Vec<_>>(),
        "mvm_inputs": exp.mvm_inputs,
        "reference": exp.reference.as_ref().map(|r| r.file.clone()),
        "energy_table": exp.energy,
    });
    // A reader's answer rule is part of its numbers: `n_best` is recorded even at its default, so
    // the journal of a run that searched every span (before the field) is not resumed under it.
    if let Some(t) = base.transformer.as_ref().filter(|t| t.task.qa()) {
        v["transformer"]["n_best"] = serde_json::json!(t.n_best);
    }
    // Points that run different model files (a `model_path` sweep): each point's file, so the
    // report knows to compare losses from each point's own floating point.
    let files: Vec<Option<String>> = exp
        .points
        .iter()
        .map(|pt| {
            let f =
                pt.model_path.as_ref().or(pt.moe.as_ref().and_then(|(m, _)| m.model.as_ref())).or(pt.transformer.as_ref().and_then(|t| t.state_dict.as_ref()));
            f.map(|f| resolve(f).display().to_string())
        })
        .collect();
    if files.iter().any(|f| f.is_some() && *f != files[0]) {
        v["point_models"] = serde_json::json!(files);
    }
    // Recorded only when present, so files without [npu] keep their resolved form (and journal).
    if let (Some(npu), Some(obj)) = (&raw.npu, v.as_object_mut()) {
        obj.insert("npu".into(), serde_json::json!({ "section": npu, "table": exp.npu.as_ref().map(|n| n.table.clone()) }));
    }
    // Recorded only when set, so files without it keep their resolved form (and journal).
    if let Some(t) = raw.tail_above {
        v["tail_above"] = t.into();
    }
    // Recorded only when set, so the record of a one-level run is as it was.
    if raw.reads_per_programming > 1 {
        v["reads_per_programming"] = raw.reads_per_programming.into();
    }
    // Recorded only when set, as tail_above.
    if raw.row_counts {
        v["row_counts"] = true.into();
    }
    v
}

/// `[data]` as resolved: paths made absolute, and the kernel point set only where it is set (so
/// the resolved configuration of older files, and their results, stay byte-identical).
fn data_json(d: &super::raw::RawData, resolve: &dyn Fn(&std::path::Path) -> std::path::PathBuf) -> serde_json::Value {
    let labels =
        d.labels.as_ref().map(|l| if d.path.extension().is_some_and(|e| e == "npz") { l.display().to_string() } else { resolve(l).display().to_string() });
    let mut v =
        serde_json::json!({ "path": resolve(&d.path).display().to_string(), "labels": labels, "features": d.features, "scale": d.scale, "rows": d.rows });
    if let Some(t) = d.test_rows {
        v["test_rows"] = serde_json::to_value(t).unwrap_or_default();
    }
    if let Some(s) = d.standardise {
        v["standardise"] = serde_json::to_value(s).unwrap_or_default();
    }
    if let Some(k) = d.std_ddof {
        v["std_ddof"] = k.into();
    }
    v
}
