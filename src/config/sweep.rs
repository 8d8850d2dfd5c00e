//! `[sweep]`: the inference times (inside every run: a trial's programmed state is reused across
//! times, noise-models §1) and the other axes, whose cartesian product (last axis fastest) gives
//! the sweep points. An axis names a special setting (`gdc`, `tile`, `model`), a workload field
//! (`[kernel]`, `[moe]`, `[arch]`), a device field or a periphery field; every value is tried on
//! its section here, so a bad one is reported before any compute. `[budget]` adds one more axis.
//! A `variant` axis sets several fields together: each value is a table with a `name` (its
//! label) and the fields it sets (`{ name = "kernel", state_dict = "...", attention = "kernel" }`),
//! so pairs that belong together (a model and its attention) need no cartesian product. A field
//! the file sets that an axis (or every variant) also sets is refused, as the axis would replace
//! it at every point; a variant that leaves a field out keeps the file's value of it.

use super::noise::{
    named_device, parse_gdc, parse_tile_str, prog_reference, set_device_field, set_field, set_field_with, OPTIONAL_DEVICE_FIELDS, OPTIONAL_PERIPHERY_FIELDS,
};
use super::raw::RawExperiment;
use super::time::parse_time;
use crate::arch::tiers::Architecture;
use crate::crossbar::{Gdc, Periphery, TileShape};
use crate::device::{DeviceModel, MODEL_NAMES};
use crate::workload::kernel::KernelSettings;
use crate::workload::moe::MoeSettings;
use crate::workload::{budget, SweepPoint, WorkloadKind};

/// One sweep axis: its name, raw values and display labels.
#[derive(Clone, Debug)]
pub struct SweepAxis {
    pub name: String,
    pub values: Vec<toml::Value>,
    pub labels: Vec<String>,
}

/// Axis names that are not device or periphery fields.
const SPECIAL_AXES: [&str; 5] = ["t", "gdc", "tile", "model", "model_path"];
/// Friendly aliases for periphery fields.
const ALIASES: [(&str, &str); 2] = [("dac_bits", "inp_res_bits"), ("adc_bits", "out_res_bits")];
/// Largest number of inference times (they index a u16 in the engine's per-time buffers).
const MAX_TIMES: usize = 65_535;
/// Largest number of sweep points of one file.
const MAX_POINTS: usize = 10_000;

fn value_label(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Whether two values of one axis set the same thing: equal, numbers equal as numbers (`8` and
/// `8.0`), or tile strings equal as shapes (`"64x64"` and `"64X64"`).
fn same_value(a: &toml::Value, b: &toml::Value) -> bool {
    use toml::Value::{Float, Integer, String};
    match (a, b) {
        (Integer(x), Float(y)) | (Float(y), Integer(x)) => *x as f64 == *y,
        (String(x), String(y)) => x == y || matches!((parse_tile_str(x), parse_tile_str(y)), (Ok(p), Ok(q)) if p == q),
        _ => a == b,
    }
}

/// The times (seconds) and the other axes, in file order.
pub(super) fn axes(raw: &RawExperiment) -> Result<(Vec<f64>, Vec<SweepAxis>), String> {
    let mut times = vec![];
    let mut axes = vec![];
    for (k, v) in &raw.sweep {
        let arr = v.as_array().ok_or_else(|| format!("sweep.{k} = {v}: must be an array of values, e.g. {k} = [..]"))?;
        if arr.is_empty() {
            return Err(format!("sweep.{k}: the list is empty; give at least one value or remove the axis"));
        }
        if k == "t" {
            for x in arr {
                let secs = match x {
                    toml::Value::String(s) => parse_time(s),
                    toml::Value::Integer(i) => parse_time(&i.to_string()),
                    toml::Value::Float(f) => parse_time(&f.to_string()),
                    other => Err(format!("{other} is not a time")),
                }
                .map_err(|m| format!("sweep.t: {m}"))?;
                if let Some(j) = times.iter().position(|&t| t == secs) {
                    return Err(format!("sweep.t: {} and {} are the same time ({secs} s); give each time once", value_label(&arr[j]), value_label(x)));
                }
                times.push(secs);
            }
            continue;
        }
        if k == "variant" {
            let mut labels: Vec<String> = Vec::new();
            for (i, x) in arr.iter().enumerate() {
                let t = x
                    .as_table()
                    .ok_or_else(|| format!("sweep.variant[{i}] = {x}: each variant is a table, e.g. {{ name = \"kernel\", attention = \"kernel\" }}"))?;
                let label =
                    t.get("name").and_then(|n| n.as_str()).ok_or_else(|| format!("sweep.variant[{i}]: give it a name = \"...\" (its label in the results)"))?;
                if labels.iter().any(|l| l == label) {
                    return Err(format!("sweep.variant: two variants are named {label:?}; names label the points and must differ"));
                }
                if let Some(f) = t.keys().find(|f| *f == "t" || *f == "variant" || raw.sweep.contains_key(f.as_str())) {
                    return Err(format!("sweep.variant[{i}] ({label}) sets {f}, which is also an axis (or t); set it in one place"));
                }
                labels.push(label.to_string());
            }
            axes.push(SweepAxis { name: k.clone(), values: arr.clone(), labels });
            continue;
        }
        let name = ALIASES.iter().find(|(a, _)| a == k).map(|(_, f)| f.to_string()).unwrap_or(k.clone());
        if axes.iter().any(|a: &SweepAxis| a.name == name) {
            return Err(format!("sweep.{k}: the same field as another axis ({name}; dac_bits = inp_res_bits, adc_bits = out_res_bits); keep one"));
        }
        for (j, x) in arr.iter().enumerate() {
            if let Some(i) = arr[..j].iter().position(|y| same_value(x, y)) {
                return Err(format!(
                    "sweep.{k}: {} and {} are the same value; give each value once (the two points would be one series twice)",
                    value_label(&arr[i]),
                    value_label(x)
                ));
            }
        }
        axes.push(SweepAxis { name, values: arr.clone(), labels: arr.iter().map(value_label).collect() });
    }
    if times.is_empty() {
        return Err("sweep.t is missing: give the inference times, e.g. t = [\"1s\", \"1h\", \"1d\", \"1y\"]".into());
    }
    if times.len() > MAX_TIMES {
        return Err(format!("sweep.t: at most {MAX_TIMES} times"));
    }
    let n_points: usize = axes.iter().map(|a| a.values.len()).product();
    if n_points > MAX_POINTS {
        return Err(format!("the sweep has {n_points} points; at most {MAX_POINTS} (split it into several files)"));
    }
    Ok((times, axes))
}

/// What every sweep point starts from: the file's sections, before the axes set their fields.
pub(super) struct Base<'a> {
    pub device: DeviceModel,
    /// `[device]` as written (its `model` axis rebuilds the device with these fields).
    pub device_fields: &'a toml::Table,
    pub periphery: Periphery,
    pub gdc: Gdc,
    pub tile: TileShape,
    pub kernel: Option<KernelSettings>,
    pub moe: Option<(MoeSettings, Architecture)>,
    pub transformer: Option<crate::workload::transformer::TransformerSettings>,
}

/// The field names of each section an axis may set (for lookup and for the error that lists them).
struct Fields {
    kernel: toml::Table,
    moe: toml::Table,
    arch: toml::Table,
    transformer: toml::Table,
    device: toml::Table,
    periphery: toml::Table,
}

/// `[transformer]` fields held as `Option`s a file may leave out (absent, they have no TOML
/// form), which are sweep axes all the same.
const OPTIONAL_TRANSFORMER_FIELDS: [&str; 4] = ["state_dict", "pad_id", "segment_sep", "norm"];

/// A section's fields with its optional ones listed too: fields a file may leave out are axes
/// all the same (the placeholder value is never read).
fn with_optional(mut t: toml::Table, optional: &[&str]) -> toml::Table {
    for k in optional {
        t.entry(*k).or_insert(toml::Value::Boolean(false));
    }
    t
}

impl Fields {
    fn of(base: &Base<'_>) -> Fields {
        let (moe, arch) = match &base.moe {
            Some((m, a)) => (table(m), table(a)),
            None => (toml::Table::new(), toml::Table::new()),
        };
        let transformer = base.transformer.as_ref().map(|t| with_optional(table(t), &OPTIONAL_TRANSFORMER_FIELDS)).unwrap_or_default();
        Fields {
            kernel: base.kernel.as_ref().map(table).unwrap_or_default(),
            moe,
            arch,
            transformer,
            device: with_optional(table(&base.device), &OPTIONAL_DEVICE_FIELDS),
            periphery: with_optional(table(&base.periphery), &OPTIONAL_PERIPHERY_FIELDS),
        }
    }

    fn unknown(&self, key: &str) -> String {
        let mut kf =
            if self.kernel.is_empty() { String::new() } else { format!(", a kernel field ({})", self.kernel.keys().cloned().collect::<Vec<_>>().join(", ")) };
        if !self.transformer.is_empty() {
            kf.push_str(&format!(", a transformer field ({})", self.transformer.keys().cloned().collect::<Vec<_>>().join(", ")));
        }
        if !self.moe.is_empty() {
            let names: Vec<String> = self.moe.keys().chain(self.arch.keys()).cloned().collect();
            kf.push_str(&format!(", a moe or arch field ({})", names.join(", ")));
        }
        format!(
            "{key}: unknown sweep axis; use t, {}{kf}, a device field ({}) or a periphery field ({}; aliases dac_bits, adc_bits)",
            SPECIAL_AXES[1..].join(", "),
            self.device.keys().filter(|k| *k != "name").cloned().collect::<Vec<_>>().join(", "),
            self.periphery.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    }
}

/// A settings section as its TOML table; cannot fail: they are plain structs of numbers,
/// strings and enums.
fn table<T: serde::Serialize>(v: &T) -> toml::Table {
    toml::Table::try_from(v).expect("a settings section serialises to a TOML table")
}

/// What a sweep axis sets: a special setting or a field of one section. [`target`] picks it (the
/// one dispatch of every axis), [`apply_axis`] sets it on a point and [`Target::key`] names it
/// as a file or `--set` writes it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Target {
    Gdc,
    Tile,
    /// The device model by name (`device.model`).
    Model,
    /// The network file of the workload (`model.path`, `moe.model` or `transformer.state_dict`).
    ModelPath,
    Kernel,
    Transformer,
    Moe,
    Arch,
    Device,
    Periphery,
}

impl Target {
    /// Where a file (and `--set`) writes what axis `name` sets: (section, field); no section for
    /// a top-level field.
    fn key<'a>(self, name: &'a str, base: &Base<'_>) -> (Option<&'static str>, &'a str) {
        match self {
            Target::Gdc => (None, "gdc"),
            Target::Tile => (None, "tile"),
            Target::Model => (Some("device"), "model"),
            Target::ModelPath if base.moe.is_some() => (Some("moe"), "model"),
            Target::ModelPath if base.transformer.is_some() => (Some("transformer"), "state_dict"),
            Target::ModelPath => (Some("model"), "path"),
            Target::Kernel => (Some("kernel"), name),
            Target::Transformer => (Some("transformer"), name),
            Target::Moe => (Some("moe"), name),
            Target::Arch => (Some("arch"), name),
            Target::Device => (Some("device"), name),
            Target::Periphery => (Some("periphery"), name),
        }
    }
}

/// What axis `name` (aliases resolved) sets, or why it cannot be an axis.
fn target(name: &str, base: &Base<'_>, fields: &Fields) -> Result<Target, String> {
    let key = format!("sweep.{name}");
    Ok(match name {
        "model" => Target::Model,
        "model_path" => Target::ModelPath,
        "name" => return Err(format!("{key}: to compare device models sweep `model`, e.g. model = [\"pcm\", \"hermes\"]")),
        "gdc" => Target::Gdc,
        "tile" => Target::Tile,
        _ if base.kernel.is_some() && fields.kernel.contains_key(name) => Target::Kernel,
        "task" if base.transformer.is_some() => {
            return Err(format!("{key}: transformer.task sets what the metric is and what the data rows hold; it cannot be swept (use two files)"))
        }
        "answers" if base.transformer.is_some() => {
            return Err(format!("{key}: transformer.answers says how many columns of each data row are answers; it cannot be swept (use two files)"))
        }
        _ if base.transformer.is_some() && fields.transformer.contains_key(name) => Target::Transformer,
        "accuracy" if base.moe.is_some() => return Err(format!("{key}: moe.accuracy sets what the metric is; it cannot be swept (use two files)")),
        _ if base.moe.is_some() && fields.moe.contains_key(name) => Target::Moe,
        _ if base.moe.is_some() && fields.arch.contains_key(name) => Target::Arch,
        _ if fields.device.contains_key(name) => Target::Device,
        _ if fields.periphery.contains_key(name) => Target::Periphery,
        _ => return Err(fields.unknown(&key)),
    })
}

/// Sets axis `name` to `v` on point `p`.
fn apply_axis(p: &mut SweepPoint, name: &str, v: &toml::Value, base: &Base<'_>, fields: &Fields) -> Result<(), String> {
    let key = format!("sweep.{name}");
    if name == "variant" {
        let t = v.as_table().expect("checked by axes");
        for (f, fv) in t.iter().filter(|(f, _)| *f != "name") {
            let f = ALIASES.iter().find(|(a, _)| a == f).map_or(f.as_str(), |(_, g)| g);
            apply_axis(p, f, fv, base, fields).map_err(|m| format!("{m} (in variant {})", value_label(&t["name"])))?;
        }
        return Ok(());
    }
    // Every point starts from the base, so a section the base has, the point has.
    let missing = || format!("{key}: the point lacks the section this axis sets");
    match target(name, base, fields)? {
        Target::Model => {
            let s = v.as_str().ok_or_else(|| format!("{key}: {v} must be a model name string"))?;
            if DeviceModel::by_name(s).is_none() {
                return Err(format!("{key}: unknown model {s:?}; use one of {}", MODEL_NAMES.join(", ")));
            }
            p.device = named_device(s, base.device_fields, &key)?;
        }
        Target::ModelPath => {
            // The network file of any workload that has one (e.g. a floating-point and a
            // hardware-aware training of the same architecture): the classifier's, moe.model or
            // transformer.state_dict; loaded and checked with [model].
            let s = v.as_str().ok_or_else(|| format!("{key}: {v} must be a model file path string"))?;
            if let Some((m, _)) = p.moe.as_mut() {
                m.model = Some(s.into());
            } else if let Some(t) = p.transformer.as_mut() {
                t.state_dict = Some(s.into());
            } else {
                p.model_path = Some(s.into());
            }
        }
        Target::Gdc => p.gdc = parse_gdc(v).map_err(|m| format!("{key}: {m}"))?,
        Target::Tile => {
            let s = v.as_str().ok_or_else(|| format!("{key}: {v} must be a string like \"512x512\""))?;
            p.tile = parse_tile_str(s).map_err(|m| format!("{key}: {m}"))?;
        }
        Target::Kernel => set_field(p.kernel.as_mut().ok_or_else(missing)?, "sweep", name, v)?,
        Target::Transformer => set_field_with(p.transformer.as_mut().ok_or_else(missing)?, "sweep", name, v, &OPTIONAL_TRANSFORMER_FIELDS)?,
        Target::Moe => set_field(&mut p.moe.as_mut().ok_or_else(missing)?.0, "sweep", name, v)?,
        Target::Arch => set_field(&mut p.moe.as_mut().ok_or_else(missing)?.1, "sweep", name, v)?,
        Target::Device => {
            set_device_field(&mut p.device, "sweep", name, v)?;
            p.device.validate().map_err(|m| format!("{key}: {m}"))?;
        }
        Target::Periphery => {
            set_field_with(&mut p.periphery, "sweep", name, v, &OPTIONAL_PERIPHERY_FIELDS)?;
            p.periphery.validate().map_err(|m| format!("{key}: {m}"))?;
        }
    }
    Ok(())
}

/// Where a file writes what axis `name` (an alias resolved here) sets: (section, or none for a
/// top-level field; field), or none where the name is no valid axis (validation reports it).
fn written_key(name: &str, base: &Base<'_>, fields: &Fields) -> Option<(Option<&'static str>, String)> {
    let name = ALIASES.iter().find(|(a, _)| *a == name).map_or(name, |(_, f)| f);
    let t = target(name, base, fields).ok()?;
    let (section, field) = t.key(name, base);
    Some((section, field.to_string()))
}

/// The fields a variant table sets, as a file writes them.
fn variant_keys(t: &toml::Table, base: &Base<'_>, fields: &Fields) -> Vec<(Option<&'static str>, String)> {
    t.keys().filter(|f| *f != "name").flat_map(|f| written_keys(f, base, fields)).collect()
}

/// [`written_key`] and what else the file writes that the axis replaces: a transformer's state
/// dict is `transformer.state_dict`, else `[model] path` (`super::model`), so an axis that sets
/// the one replaces the other too.
fn written_keys(name: &str, base: &Base<'_>, fields: &Fields) -> Vec<(Option<&'static str>, String)> {
    let Some(key) = written_key(name, base, fields) else { return vec![] };
    if base.transformer.is_some() && key == (Some("transformer"), "state_dict".to_string()) {
        return vec![key, (Some("model"), "path".to_string())];
    }
    vec![key]
}

/// A field as a file writes it: (section, or none for a top-level field; field).
type Key = (Option<&'static str>, String);

/// The fields each axis of `[sweep]` sets, as a file writes them: (the axis as the file names it,
/// `sweep.adc_bits` or `sweep.variant`; one set of fields per point kind: one for a plain axis,
/// one per variant). Axes that are not valid set nothing here (validation reports them).
fn axis_keys(sweep: &toml::Table, base: &Base<'_>) -> Vec<(String, Vec<Vec<Key>>)> {
    let fields = Fields::of(base);
    sweep
        .iter()
        .filter(|(k, _)| *k != "t")
        .map(|(k, v)| {
            if k == "variant" {
                let sets = v.as_array().into_iter().flatten().map(|v| v.as_table().map(|t| variant_keys(t, base, &fields)).unwrap_or_default());
                ("sweep.variant".to_string(), sets.collect())
            } else {
                (format!("sweep.{k}"), vec![written_keys(k, base, &fields)])
            }
        })
        .collect()
}

/// Every field the axes of `[sweep]` set at some point: (section, or none for a top-level field;
/// field; the axis as the file names it).
pub(super) fn swept_fields(sweep: &toml::Table, base: &Base<'_>) -> Vec<(Option<&'static str>, String, String)> {
    let mut out = vec![];
    for (axis, sets) in axis_keys(sweep, base) {
        out.extend(sets.into_iter().flatten().map(|(s, f)| (s, f, axis.clone())));
    }
    out
}

/// The fields the axes of `[sweep]` set at every point, as [`swept_fields`] names them: a plain
/// axis's field, and a field every variant sets (one that only some variants set keeps the
/// file's value at the others, so the file's value is used).
pub(super) fn swept_everywhere(sweep: &toml::Table, base: &Base<'_>) -> Vec<(Option<&'static str>, String, String)> {
    let mut out = vec![];
    for (axis, sets) in axis_keys(sweep, base) {
        if let Some((first, rest)) = sets.split_first() {
            out.extend(first.iter().filter(|key| rest.iter().all(|s| s.contains(key))).map(|(s, f)| (*s, f.clone(), axis.clone())));
        }
    }
    out
}

/// Whether the file can leave `section.field` out: the section still reads without it. A field
/// its section requires (`kernel.features`, `moe.experts`, `arch.tiers`, a classifier's
/// `model.path`, which also gives the layers every point's model is checked against, a
/// transformer's beside `model.digital`) is written whatever the axes set; device fields fall back
/// to the model's preset, periphery fields and the top-level `gdc` and `tile` to their defaults.
fn optional_in_file(doc: &toml::Table, section: Option<&str>, field: &str) -> bool {
    use crate::workload::transformer::TransformerSettings;
    let Some(section) = section else { return true };
    let Some(mut t) = doc.get(section).and_then(|v| v.as_table()).cloned() else { return true };
    t.remove(field);
    match section {
        "kernel" => KernelSettings::from_table(&t).is_ok(),
        "moe" => t.try_into::<MoeSettings>().is_ok(),
        "arch" => t.try_into::<Architecture>().is_ok(),
        "transformer" => t.try_into::<TransformerSettings>().is_ok(),
        // A transformer's [model] holds the state dict and `digital`: with the path gone and
        // nothing else, the section goes too.
        "model" if doc.get("workload").and_then(|w| w.as_str()) == Some("transformer") => t.is_empty(),
        "model" => t.try_into::<super::raw::RawModel>().is_ok(),
        _ => true,
    }
}

/// The line (from 1) of `section.field` in the experiment file's text, where it can be found.
fn line_of(text: &str, section: Option<&str>, field: &str) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    let doc = DeTable::parse(text).ok()?;
    let find = |t: &'_ DeTable<'_>, key: &str| t.iter().find(|(k, _)| k.get_ref() == key).map(|(k, _)| k.span().start);
    let at = match section {
        None => find(doc.get_ref(), field)?,
        Some(s) => match doc.get_ref().iter().find(|(k, _)| k.get_ref() == s).map(|(_, v)| v.get_ref()) {
            Some(DeValue::Table(t)) => find(t, field)?,
            _ => return None,
        },
    };
    Some(text[..at.min(text.len())].matches('\n').count() + 1)
}

/// Refuses a file (or document) that sets a field an axis also sets at every point: the axis
/// replaces the value everywhere, so it would go unused while results.json recorded it (as a
/// `--set` of it is refused, [`super::overrides::check_sets_not_swept`]). `source` is the file's
/// own text, for the line. Fields the file cannot leave out ([`optional_in_file`]) are taken.
pub(super) fn check_file_not_swept(doc: &toml::Table, source: &str, sweep: &toml::Table, base: &Base<'_>) -> Result<(), String> {
    for (section, field, axis) in swept_everywhere(sweep, base) {
        let set = match section {
            None => doc.contains_key(&field),
            Some(s) => doc.get(s).and_then(|v| v.as_table()).is_some_and(|t| t.contains_key(&field)),
        };
        if !set || !optional_in_file(doc, section, &field) {
            continue;
        }
        let key = section.map_or(field.clone(), |s| format!("{s}.{field}"));
        let at = match (line_of(source, section, &field), section) {
            (Some(l), None) => format!("at line {l}"),
            (Some(l), Some(s)) => format!("at line {l} (in [{s}])"),
            (None, None) => "at the top level".to_string(),
            (None, Some(s)) => format!("in [{s}]"),
        };
        let by = match axis.strip_prefix("sweep.") {
            Some("variant") => "by every variant of [sweep] variant, which replace".to_string(),
            Some(a) => format!("swept by [sweep] {a}, which replaces"),
            None => format!("swept by {axis}, which replaces"),
        };
        // Only a transformer's model.path gets here (a classifier's is required): its [model] goes.
        let setting = if key == "model.path" { "[model] section".to_string() } else { format!("{key} setting") };
        return Err(format!(
            "{key} is set {at} and {by} it at every point: the set value would go unused while results.json recorded it; remove one, the {setting} or the axis"
        ));
    }
    Ok(())
}

/// Refuses a transformer field that only a switch turns on (kernel attention's `features`,
/// the routed layer's `top_k`, [`crate::workload::transformer::SWITCHED`]) where the switch is
/// left at its default everywhere: the file, `--set` (both in `doc`), the axes and the variants
/// leave it out. The value would go unused, and the feature it is for would not run.
pub(super) fn check_switched_fields(doc: &toml::Table, source: &str, sweep: &toml::Table, base: &Base<'_>) -> Result<(), String> {
    if base.transformer.is_none() {
        return Ok(());
    }
    let file = doc.get("transformer").and_then(|v| v.as_table());
    let swept = swept_fields(sweep, base);
    let axis_of = |field: &str| swept.iter().find(|(s, f, _)| *s == Some("transformer") && f == field).map(|(_, _, a)| a.clone());
    for g in &crate::workload::transformer::SWITCHED {
        if file.is_some_and(|t| t.contains_key(g.switch)) || axis_of(g.switch).is_some() {
            continue;
        }
        for field in g.fields {
            let at = if file.is_some_and(|t| t.contains_key(*field)) {
                match line_of(source, Some("transformer"), field) {
                    Some(l) => format!("is set at line {l}"),
                    None => "is set".to_string(),
                }
            } else if let Some(axis) = axis_of(field) {
                match axis.strip_prefix("sweep.") {
                    Some("variant") => "is set by [sweep] variant".to_string(),
                    Some(a) => format!("is swept by [sweep] {a}"),
                    None => format!("is swept by {axis}"),
                }
            } else {
                continue;
            };
            return Err(format!(
                "transformer.{field} {at} but transformer.{} is left at its default, {}, which does not use it; set {}, or remove {field}",
                g.switch, g.default, g.on
            ));
        }
    }
    Ok(())
}

/// Every sweep point, each axis value tried on its section.
pub(super) fn points(axes: &[SweepAxis], base: &Base<'_>) -> Result<Vec<SweepPoint>, String> {
    let fields = Fields::of(base);
    let n_points: usize = axes.iter().map(|a| a.values.len()).product();
    let mut points = Vec::with_capacity(n_points);
    for index in 0..n_points {
        let mut p = SweepPoint {
            index,
            labels: vec![],
            device: base.device.clone(),
            periphery: base.periphery.clone(),
            gdc: base.gdc,
            tile: base.tile,
            kernel: base.kernel.clone(),
            moe: base.moe.clone(),
            transformer: base.transformer.clone(),
            layer_noise: vec![],
            model_path: None,
            classifier: None,
        };
        let mut rem = index;
        // Last axis varies fastest.
        let mut choice = vec![0; axes.len()];
        for (ai, a) in axes.iter().enumerate().rev() {
            choice[ai] = rem % a.values.len();
            rem /= a.values.len();
        }
        for (ai, a) in axes.iter().enumerate() {
            apply_axis(&mut p, &a.name, &a.values[choice[ai]], base, &fields)?;
            p.labels.push((a.name.clone(), a.labels[choice[ai]].clone()));
        }
        // Own programming coefficients need their reference g_max wherever g_max moves: the
        // file's device fields, this point's axes and its variant's fields together.
        let set = |f: &str| {
            base.device_fields.contains_key(f)
                || axes
                    .iter()
                    .enumerate()
                    .any(|(ai, a)| a.name == f || (a.name == "variant" && a.values[choice[ai]].as_table().is_some_and(|t| t.contains_key(f))))
        };
        prog_reference(&p.device, set("prog_coeff"), set("prog_g_ref")).map_err(|m| format!("{m} (sweep point {})", p.series()))?;
        // A model fitted on per-row scaled weights (AFM) needs per-row scales in the mapping.
        if p.device.scale_per_row && !(p.periphery.weight_scaling_columnwise && p.periphery.weight_scaling_omega > 0.0) {
            return Err(format!(
                "device.model = {:?} scales every output row of each tile on its own (max|W| of the row → g_max): set periphery.weight_scaling_omega = 1.0 and periphery.weight_scaling_columnwise = true{}",
                p.device.name,
                if p.labels.is_empty() { String::new() } else { format!(" (sweep point {})", p.labels.iter().map(|(k, v)| format!("{k} = {v}")).collect::<Vec<_>>().join(", ")) }
            ));
        }
        let point = if p.labels.is_empty() { String::new() } else { format!(" (sweep point {})", p.series()) };
        input_noise_readout(&p.periphery, p.gdc, &point)?;
        points.push(p);
    }
    Ok(points)
}

/// Input noise under GDC is modelled in the readout with the output noise alone: the readout's
/// IR-drop and weight-noise terms would read the noisy input lines, which the readout does not
/// model, so those combinations are refused at each point.
pub(super) fn input_noise_readout(io: &crate::crossbar::Periphery, gdc: crate::crossbar::Gdc, point: &str) -> Result<(), String> {
    if io.inp_noise > 0.0 && gdc != crate::crossbar::Gdc::Off && (io.w_noise > 0.0 || io.ir_drop > 0.0) {
        let (field, v) = if io.w_noise > 0.0 { ("w_noise", io.w_noise) } else { ("ir_drop", io.ir_drop) };
        return Err(format!(
            "periphery.inp_noise = {} with periphery.{field} = {v} under drift compensation (gdc on): the GDC readout with input noise is modelled with output noise only, not with {field}; set gdc = \"off\", or inp_noise or {field} to 0{point}",
            io.inp_noise
        ));
    }
    Ok(())
}

/// `[budget]`: every point expanded into the budget's configurations along a `budget` axis.
/// `layers` is the model's layer count.
pub(super) fn budget_axis(raw: &RawExperiment, axes: &mut Vec<SweepAxis>, points: Vec<SweepPoint>, layer_names: &[String]) -> Result<Vec<SweepPoint>, String> {
    let Some(b) = &raw.budget else {
        return Ok(points);
    };
    let wl = raw.workload;
    if !matches!(wl, WorkloadKind::Classifier | WorkloadKind::MvmError | WorkloadKind::Transformer) {
        return Err(format!("[budget] is for the classifier, transformer and mvm_error workloads, not {}", wl.name()));
    }
    if !raw.common_random_numbers {
        return Err("[budget] needs common_random_numbers = true: the attribution pairs every configuration trial by trial".into());
    }
    if axes.iter().any(|a| a.name == "budget") {
        return Err("sweep.budget: the budget axis is made by [budget]; remove it from [sweep]".into());
    }
    let first = &points[0];
    let sources: Vec<budget::Source> = match &b.sources {
        Some(s) if s.is_empty() => return Err("budget.sources = []: list at least one source, or remove it for every active one".into()),
        Some(s) => s.clone(),
        None => budget::ALL.iter().copied().filter(|s| s.active(&first.device, &first.periphery)).collect(),
    };
    if sources.is_empty() {
        return Err("[budget]: no noise source is on in this configuration; nothing to attribute".into());
    }
    let groups = budget::layer_groups(layer_names, wl == WorkloadKind::Transformer);
    let knobs = if b.sensitivity { budget::knobs(&first.device, &first.periphery) } else { vec![] };
    let names = budget::labels(&sources, &groups, &knobs);
    axes.push(SweepAxis { name: "budget".into(), values: names.iter().map(|n| toml::Value::String(n.clone())).collect(), labels: names });
    Ok(budget::expand(points, &sources, &groups, layer_names.len(), &knobs))
}
