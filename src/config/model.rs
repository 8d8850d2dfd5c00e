//! `[model]`, `[data]`, `[attention]` and `[mvm]` resolved per workload: the classifier's
//! network and labelled data set, the single matrix of weight_error and mvm_error, the kernel
//! workloads' point set or Q/K/V, and the moe layer's data (which makes it a classifier). Shapes
//! are checked against each other here, so a mismatch names both sides before any compute.

use super::data::{attention_data, read_data, read_rows, read_span_rows, read_target_rows, read_text_rows};
use super::raw::{RawExperiment, RawLayer, RawModel};
use crate::workload::io::{self, Dataset, Linear, Matrix};
use crate::workload::kernel::{split_standardise, KernelData, PointSet, Standardise, TestRows};
use crate::workload::{Activation, SweepPoint, WorkloadKind};
use std::path::{Path, PathBuf};

/// Largest `[mvm] inputs` × matrix inputs: the random inputs are held in memory at once.
const MAX_MVM_INPUT_VALUES: u64 = 1 << 28;

/// Fewest rows of a kernel workload's data set: every 4th row tests, so 8 leaves 2 test rows.
const MIN_KERNEL_ROWS: usize = 8;

/// What the model and data sections resolve to.
#[derive(Default)]
pub(super) struct Loaded {
    pub layers: Vec<Linear>,
    pub data: Option<Dataset>,
    pub mvm_inputs: u32,
    pub kernel_data: Option<KernelData>,
    /// Set by `[model] layers` tables (classifier).
    pub layer_activations: Option<Vec<Activation>>,
    /// Layers named digital in `[model] layers` tables.
    pub layer_digital: Vec<String>,
    /// Per layer, its own `[periphery]` fields from its `[model] layers` table (checked).
    pub layer_periphery: Vec<Option<toml::Table>>,
}

/// `[model]` as the workload needs it: required by the network and matrix workloads, refused by
/// the kernel and moe workloads (which program a random projection or generated experts).
pub(super) fn model_section(raw: &RawExperiment) -> Result<Option<&RawModel>, String> {
    let wl = raw.workload;
    if wl == WorkloadKind::Transformer {
        // The state dict is `[model] path` or each point's `transformer.state_dict`.
        return Ok(raw.model.as_ref());
    }
    if wl == WorkloadKind::Npu {
        return match &raw.model {
            Some(_) => Err("the npu workload costs the network named in [npu] (network = \"mobilebert\"); remove [model]".into()),
            None => Ok(None),
        };
    }
    match (&raw.model, wl.is_kernel() || wl == WorkloadKind::Moe) {
        (Some(m), false) => Ok(Some(m)),
        (None, false) => Err(format!("the {} workload needs a [model] section with path = \"...\"", wl.name())),
        (Some(_), true) => Err(format!("the {} workload programs a random projection ([kernel]); remove [model]", wl.name())),
        (None, true) => Ok(None),
    }
}

/// Loads the workload's model and data; the moe workload also resolves each point's layer.
pub(super) fn load(raw: &RawExperiment, model: Option<&RawModel>, points: &mut [SweepPoint], resolve: &dyn Fn(&Path) -> PathBuf) -> Result<Loaded, String> {
    if raw.workload != WorkloadKind::Classifier && points.iter().any(|p| p.model_path.is_some()) {
        return Err(format!(
            "sweep.model_path: only the classifier workload takes a model per point; the {} workload sets its network in its own section",
            raw.workload.name()
        ));
    }
    if !matches!(raw.workload, WorkloadKind::KernelError | WorkloadKind::KernelRidge) {
        if let Some(d) = &raw.data {
            for (field, set) in [("test_rows", d.test_rows.is_some()), ("standardise", d.standardise.is_some()), ("std_ddof", d.std_ddof.is_some())] {
                if set {
                    return Err(format!(
                        "data.{field}: only the kernel workloads (kernel_error, kernel_ridge) choose their point set; the {} workload uses its data as given: remove it",
                        raw.workload.name()
                    ));
                }
            }
        }
    }
    match raw.workload {
        WorkloadKind::KernelError | WorkloadKind::KernelRidge => kernel_points(raw, resolve),
        WorkloadKind::Attention => {
            let a =
                raw.attention.as_ref().ok_or("the attention workload needs an [attention] section: heads, n, d (generated Q/K/V) or q, k, v = \"....npy\"")?;
            Ok(Loaded { kernel_data: Some(attention_data(a, resolve)?), ..Loaded::default() })
        }
        WorkloadKind::Moe => moe(raw, points, resolve),
        WorkloadKind::Npu => Ok(Loaded::default()),
        WorkloadKind::Transformer => transformer(raw, model, points, resolve),
        WorkloadKind::Classifier => classifier(raw, model.expect("checked by model_section"), points, resolve),
        WorkloadKind::WeightError | WorkloadKind::MvmError => matrix(raw, model.expect("checked by model_section"), resolve),
    }
}

fn kernel_points(raw: &RawExperiment, resolve: &dyn Fn(&Path) -> PathBuf) -> Result<Loaded, String> {
    let d = raw
        .data
        .as_ref()
        .ok_or_else(|| format!("the {} workload needs a [data] section: a labelled CSV (features, then the integer label)", raw.workload.name()))?;
    let (ds, data_path) = read_data(d, resolve)?;
    if ds.len() < MIN_KERNEL_ROWS {
        return Err(format!(
            "data.path: {} has {} rows; the train/test split (every 4th row tests) needs at least {MIN_KERNEL_ROWS}",
            data_path.display(),
            ds.len()
        ));
    }
    let set = PointSet { test_rows: d.test_rows.unwrap_or_default(), standardise: d.standardise.unwrap_or_default(), ddof: d.std_ddof.unwrap_or(0) };
    if set.ddof > 1 {
        return Err(format!("data.std_ddof = {}: use 0 (divide by n, the default) or 1 (by n − 1, numpy's ddof=1)", set.ddof));
    }
    if set.test_rows == TestRows::All {
        if raw.workload == WorkloadKind::KernelRidge {
            return Err("data.test_rows = \"all\": kernel_ridge fits on the training rows and would have none; use \"every_4th\" (the default)".into());
        }
        if set.standardise == Standardise::Train {
            return Err("data.test_rows = \"all\" leaves no training rows to standardise by: set data.standardise = \"all\" (every row) or \"none\"".into());
        }
    }
    Ok(Loaded { kernel_data: Some(split_standardise(&ds.x, &ds.labels, ds.n_features, set)), ..Loaded::default() })
}

/// The transformer workload: each point's state dict loaded once per file and checked against its
/// settings and the token data set, and its floating-point accuracy (the f64 reference) computed
/// once per distinct network and attention. The analog matrices of the first point name the
/// layers (`model.digital` takes their names, or a group by the last part: `q`, `ffn1`, `head`).
fn transformer(raw: &RawExperiment, model: Option<&RawModel>, points: &mut [SweepPoint], resolve: &dyn Fn(&Path) -> PathBuf) -> Result<Loaded, String> {
    use crate::workload::transformer::{names, reference, TransformerNet};
    use std::collections::HashMap;
    use std::sync::Arc;
    let d = raw.data.as_ref().ok_or("the transformer workload needs a [data] section: a CSV of token ids per row, then the label")?;
    // A language model's rows are token sequences alone (the task is the same at every point).
    let lm = points.first().and_then(|p| p.transformer.as_ref()).is_some_and(|s| s.task.next_token());
    // Question answering's rows carry an answer span each.
    let qa = points.first().and_then(|p| p.transformer.as_ref()).is_some_and(|s| s.task.qa());
    let (ds, _) = match points.first().and_then(|p| p.transformer.as_ref()) {
        Some(s) if qa && d.answer_text.is_some() => read_text_rows(d, resolve, s.answers)?,
        Some(s) if qa => read_span_rows(d, resolve, s.answers as usize)?,
        Some(s) if s.task.regression() => read_target_rows(d, resolve)?,
        _ => read_rows(d, resolve, !lm)?,
    };
    if let Some(m) = model {
        if !m.layers.is_empty() || m.tensor.is_some() || m.input_shape.is_some() || m.activations.is_some() {
            return Err("[model] of the transformer workload takes path and digital only; the architecture is [transformer]".into());
        }
    }
    let mut nets: HashMap<PathBuf, Arc<TransformerNet>> = HashMap::new();
    let mut fps: HashMap<String, u64> = HashMap::new();
    let mut lm_fps: HashMap<String, crate::workload::transformer::NextTokenScore> = HashMap::new();
    let mut qa_fps: HashMap<String, crate::workload::transformer::SpanScore> = HashMap::new();
    let mut glue_fps: HashMap<String, (f64, Option<f64>)> = HashMap::new();
    for p in points.iter_mut() {
        let at = if p.labels.is_empty() { String::new() } else { format!("sweep point {}: ", p.series()) };
        let s = p.transformer.as_mut().expect("transformer points carry their settings");
        let path = match (&s.state_dict, model) {
            (Some(sd), _) => resolve(sd),
            (None, Some(m)) => resolve(&m.path),
            (None, None) => return Err("the transformer workload needs a state dict: [model] path = \"....safetensors\" or transformer.state_dict".into()),
        };
        s.state_dict = Some(path.clone());
        let net = match nets.get(&path) {
            Some(n) => n.clone(),
            None => {
                let n = Arc::new(names::read(&path, s).map_err(|e| format!("{at}{e}"))?);
                nets.insert(path.clone(), n.clone());
                n
            }
        };
        s.net = Some(net);
        if ds.text.is_some() {
            // Scored from text: no token answers per row.
            s.answers = 0;
        }
        s.check(&ds).map_err(|e| format!("{at}{e}"))?;
        s.net().check_input_ranges(p.tile).map_err(|e| format!("{at}{e}"))?;
        if s.experts > 0 {
            s.moe_mapping(p.tile)
                .map_err(|e| format!("{at}transformer.experts = {}, tiers = {} on {}x{} crossbars: {e}", s.experts, s.tiers, p.tile.max_in, p.tile.max_out))?;
        }
        if s.baseline == crate::workload::transformer::Baseline::Engine {
            // The run's backend computes it when the run starts (transformer/baseline.rs).
            continue;
        }
        let key = serde_json::to_string(&*s).expect("settings serialise");
        if lm {
            let fp = *lm_fps.entry(key).or_insert_with(|| reference::fp_next_token(s.net(), s, &ds));
            s.fp_next = Some(fp);
        } else if qa {
            let fp = *qa_fps.entry(key).or_insert_with(|| reference::fp_span(s.net(), s, &ds));
            s.fp_span = Some(fp);
        } else if s.task.per_sequence() {
            let (fp, companion) = *glue_fps.entry(key).or_insert_with(|| reference::fp_score(s.net(), s, &ds));
            (s.fp_score, s.fp_score_companion) = (Some(fp), companion);
        } else {
            let fp = *fps.entry(key).or_insert_with(|| reference::fp_correct(s.net(), s, &ds));
            s.fp_correct = Some(fp);
        }
    }
    let first = points[0].transformer.as_ref().expect("checked");
    let layers = first.matrices().layers;
    let mut layer_digital = Vec::new();
    for want in model.map(|m| m.digital.as_slice()).unwrap_or_default() {
        let hits: Vec<String> = layers
            .iter()
            .filter(|l| &l.name == want || [l.name.rsplit('.').next(), l.name.split('.').next(), l.name.split('.').nth(2)].contains(&Some(want.as_str())))
            .map(|l| l.name.clone())
            .collect();
        if hits.is_empty() {
            let names: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
            return Err(format!(
                "model.digital: {want:?} names no analog matrix; they are {} (or a group: q, k, v, o, ffn1, ffn2, feature_q, router, experts, pooler, head; MobileBERT's bottleneck, ffn (its stacked pairs), embedding)",
                names.join(", ")
            ));
        }
        layer_digital.extend(hits);
    }
    Ok(Loaded { layers, data: Some(ds), layer_digital, ..Loaded::default() })
}

/// A labelled data set makes the moe layer a classifier: its rows are the tokens and the
/// experts' outputs the class logits.
fn moe(raw: &RawExperiment, points: &mut [SweepPoint], resolve: &dyn Fn(&Path) -> PathBuf) -> Result<Loaded, String> {
    let data = match &raw.data {
        Some(d) => Some(read_data(d, resolve)?.0),
        None => None,
    };
    let inputs: Option<std::sync::Arc<[f32]>> = data.as_ref().map(|ds| ds.x.clone().into());
    for p in points {
        let at = if p.labels.is_empty() { String::new() } else { format!("sweep point {}: ", p.series()) };
        let (m, a) = p.moe.as_mut().expect("moe points carry their settings");
        if let Some(ds) = &data {
            if ds.n_features != m.d_model as usize {
                return Err(format!("{at}the data set has {} features per row but moe.d_model = {}; they must match", ds.n_features, m.d_model));
            }
            if let Some(&l) = ds.labels.iter().find(|&&l| l >= m.out()) {
                return Err(format!("{at}the data set has label {l} but the experts have {} outputs; set moe.d_out to the class count", m.out()));
            }
            if !m.accuracy {
                return Err(format!("{at}[data] makes the moe layer a classifier, which needs moe.accuracy = true"));
            }
            m.tokens = ds.labels.len() as u32;
            m.inputs = inputs.clone();
        }
        *a = m.resolve(a).map_err(|e| format!("{at}{e}"))?;
        if let Some(path) = &m.model {
            m.model = Some(resolve(path));
            if m.accuracy {
                crate::workload::moe::load_weights(m).map_err(|e| format!("{at}{e}"))?;
            }
        }
    }
    Ok(Loaded { data, ..Loaded::default() })
}

fn classifier(raw: &RawExperiment, model: &RawModel, points: &mut [SweepPoint], resolve: &dyn Fn(&Path) -> PathBuf) -> Result<Loaded, String> {
    let specs: Vec<RawLayer> = model.layers.iter().enumerate().map(|(i, v)| RawLayer::parse(i, v)).collect::<Result<_, _>>()?;
    let links = specs.iter().enumerate().map(|(i, l)| l.links(i, &specs)).collect::<Result<_, _>>()?;
    let batchnorms = specs.iter().enumerate().map(|(i, l)| l.batchnorm(i)).collect::<Result<_, _>>()?;
    let opt = io::StateDictOptions { layers: specs.iter().map(|l| l.name.clone()).collect(), allow_extra: model.allow_extra, links, batchnorms };
    let mut layers = io::read_state_dict_with(&resolve(&model.path), &opt).map_err(|e| format!("model.path: {e}"))?;
    let settings: Vec<crate::workload::ConvSettings> = specs.iter().enumerate().map(|(i, l)| l.settings(i)).collect::<Result<_, _>>()?;
    crate::workload::set_geometry(&mut layers, model.input_shape, &settings).map_err(|e| format!("model: {e}"))?;
    let mut layer_activations = None;
    if specs.iter().any(|l| l.activation.is_some()) {
        if model.activations.is_some() {
            return Err("model.activations and activations in model.layers tables: give them in one place".into());
        }
        let mut acts = crate::workload::between(layers.len(), model.activation);
        for (a, l) in acts.iter_mut().zip(&specs) {
            *a = l.activation.unwrap_or(*a);
        }
        layer_activations = Some(acts);
    }
    let layer_digital = specs.iter().filter(|l| l.digital).map(|l| l.name.clone()).collect();
    let layer_periphery = specs.iter().enumerate().map(|(i, l)| l.own_periphery(i)).collect::<Result<_, _>>()?;
    let d = raw.data.as_ref().ok_or("the classifier workload needs a [data] section with path = \"...csv\"")?;
    let (ds, _) = read_data(d, resolve)?;
    crate::workload::check_shapes(&layers, &ds).map_err(|e| format!("model/data mismatch: {e}"))?;
    let names = || layers.iter().map(|l| l.name.as_str()).collect::<Vec<_>>().join(", ");
    if let Some(a) = &model.activations {
        if a.len() != layers.len() {
            return Err(format!("model.activations has {} entries but the model has {} layers ({}); give one per layer", a.len(), layers.len(), names()));
        }
    }
    for d in &model.digital {
        if !layers.iter().any(|l| &l.name == d) {
            return Err(format!("model.digital: {d:?} is not a layer of the model; its layers are {}", names()));
        }
        if let Some(i) = specs.iter().position(|l| &l.name == d && l.periphery.as_ref().is_some_and(|t| !t.is_empty())) {
            return Err(format!(
                "model.layers[{i}].periphery with model.digital naming {d:?}: a digital layer has no converters or periphery noise; remove one of them"
            ));
        }
    }
    point_models(model, &opt, &settings, &layers, layer_activations.as_deref(), &ds, points, resolve)?;
    Ok(Loaded { layers, data: Some(ds), layer_activations, layer_digital, layer_periphery, ..Loaded::default() })
}

/// The `model_path` axis: each point's model file read with `[model]`'s settings, checked to have
/// the same layers (names and shapes) as `[model] path`, and its floating-point accuracy computed
/// once per file.
#[allow(clippy::too_many_arguments)]
fn point_models(
    model: &RawModel,
    opt: &io::StateDictOptions,
    settings: &[crate::workload::ConvSettings],
    base: &[Linear],
    layer_activations: Option<&[Activation]>,
    ds: &Dataset,
    points: &mut [SweepPoint],
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<(), String> {
    use std::collections::HashMap;
    let acts = layer_activations
        .map(<[Activation]>::to_vec)
        .or_else(|| model.activations.clone())
        .unwrap_or_else(|| crate::workload::between(base.len(), model.activation));
    let mut loaded: HashMap<PathBuf, crate::workload::PointClassifier> = HashMap::new();
    for p in points.iter_mut() {
        let Some(mp) = p.model_path.clone() else { continue };
        let path = resolve(&mp);
        let at = format!("sweep point {}: model_path {}", p.series(), path.display());
        let entry = match loaded.get(&path) {
            Some(e) => e.clone(),
            None => {
                let mut layers = io::read_state_dict_with(&path, opt).map_err(|e| format!("{at}: {e}"))?;
                crate::workload::set_geometry(&mut layers, model.input_shape, settings).map_err(|e| format!("{at}: {e}"))?;
                if layers.len() != base.len() {
                    return Err(format!("{at}: {} layers, model.path has {}; a point's model must have the same architecture", layers.len(), base.len()));
                }
                for (a, b) in layers.iter().zip(base) {
                    if a.name != b.name || (a.weight.rows, a.weight.cols) != (b.weight.rows, b.weight.cols) {
                        return Err(format!(
                            "{at}: layer {} is {}x{}, model.path's {} is {}x{}; a point's model must have the same architecture",
                            a.name, a.weight.rows, a.weight.cols, b.name, b.weight.rows, b.weight.cols
                        ));
                    }
                }
                let fp = crate::workload::fp_accuracy(&layers, &acts, ds);
                let e = std::sync::Arc::new((layers, fp));
                loaded.insert(path.clone(), e.clone());
                e
            }
        };
        p.model_path = Some(path);
        p.classifier = Some(entry);
    }
    Ok(())
}

/// weight_error and mvm_error: one matrix (`model.tensor` of a file with several), and for
/// mvm_error the number of random input vectors.
fn matrix(raw: &RawExperiment, model: &RawModel, resolve: &dyn Fn(&Path) -> PathBuf) -> Result<Loaded, String> {
    let m: Matrix = io::read_matrix(&resolve(&model.path), model.tensor.as_deref()).map_err(|e| format!("model.path: {e}"))?;
    let mvm_inputs = match (raw.workload, &raw.mvm) {
        (WorkloadKind::MvmError, Some(mv)) if mv.inputs > 0 && (mv.inputs as u64) * (m.cols as u64) <= MAX_MVM_INPUT_VALUES => mv.inputs,
        (WorkloadKind::MvmError, Some(mv)) if mv.inputs > 0 => {
            return Err(format!("mvm.inputs = {}: {} inputs of {} values exceed {MAX_MVM_INPUT_VALUES} values; use fewer inputs", mv.inputs, mv.inputs, m.cols))
        }
        (WorkloadKind::MvmError, _) => return Err("the mvm_error workload needs [mvm] inputs = N (N >= 1 random input vectors)".into()),
        _ => 0,
    };
    let rows = m.rows;
    let l = Linear::dense(model.tensor.clone().unwrap_or_else(|| "weight".into()), m, vec![0.0; rows]);
    Ok(Loaded { layers: vec![l], mvm_inputs, ..Loaded::default() })
}
