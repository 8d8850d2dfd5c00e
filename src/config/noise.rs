//! The noise sections of an experiment file: `[device]` (a model by name, then any field
//! overridden), `[periphery]`, `[tile]` and `gdc`, and the workload sections that sweep axes can
//! also set (`[kernel]`, `[moe]` + `[arch]`). Every override goes through serde
//! (`set_field`), so every field is overridable and a wrong name or type names the field.

use super::raw::RawExperiment;
use crate::arch::tiers::Architecture;
use crate::crossbar::{Gdc, Periphery, TileShape, MAX_TILE_IN};
use crate::device::{DeviceModel, MODEL_NAMES};
use crate::workload::kernel::KernelSettings;
use crate::workload::moe::MoeSettings;
use crate::workload::transformer::TransformerSettings;
use crate::workload::WorkloadKind;

/// Sets `field` of a serde struct to `value` through its TOML form.
pub(super) fn set_field<T: serde::Serialize + serde::de::DeserializeOwned>(obj: &mut T, section: &str, field: &str, value: &toml::Value) -> Result<(), String> {
    set_field_with(obj, section, field, value, &[])
}

/// As [`set_field`], where `optional` names fields the struct may hold as absent (an `Option`
/// that is `None` has no TOML form) and that may still be set.
pub(super) fn set_field_with<T: serde::Serialize + serde::de::DeserializeOwned>(
    obj: &mut T,
    section: &str,
    field: &str,
    value: &toml::Value,
    optional: &[&str],
) -> Result<(), String> {
    let mut table = toml::Table::try_from(&*obj).map_err(|e| e.to_string())?;
    if !table.contains_key(field) && !optional.contains(&field) {
        let mut known: Vec<_> = table.keys().cloned().chain(optional.iter().map(|f| f.to_string())).collect();
        known.sort();
        known.dedup();
        return Err(format!("{section}.{field}: unknown field; known fields: {}", known.join(", ")));
    }
    table.insert(field.to_string(), value.clone());
    *obj = table.try_into().map_err(|e: toml::de::Error| format!("{section}.{field} = {value}: {}", e.message().trim()))?;
    Ok(())
}

/// `[device]`: the model named by `model` (default pcm) with every other field set on it.
pub(super) fn device(raw: &RawExperiment) -> Result<DeviceModel, String> {
    let mut fields = raw.device.clone();
    let name = match fields.remove("model") {
        None => "pcm".to_string(),
        Some(toml::Value::String(s)) => s,
        Some(v) => return Err(format!("device.model = {v}: must be a string, one of {}", MODEL_NAMES.join(", "))),
    };
    device_with_fields(&name, &fields)
}

/// `[device]` fields held as `Option`s, absent from the presets (they have no TOML form there),
/// which a file, a `--set` or a sweep axis may set all the same.
pub(super) const OPTIONAL_DEVICE_FIELDS: [&str; 8] =
    ["drift_table", "prog_table", "read_table", "relax_table", "log_relax", "pair_significance", "stuck_set", "stuck_reset"];

/// `[periphery]` fields a file may leave out that its serialised form omits at their defaults
/// (0: off), and that may still be set or swept.
pub(super) const OPTIONAL_PERIPHERY_FIELDS: [&str; 2] = ["nm_thres", "inp_noise"];

/// Sets `[device]` field `field` to `value` (from a file, `--set` or a sweep axis). An empty
/// `pair_significance` is refused rather than read as the default's one pair: the model stores
/// one pair as no list, so a written `[]` would otherwise pass for a choice it is not.
pub(super) fn set_device_field(d: &mut DeviceModel, section: &str, field: &str, value: &toml::Value) -> Result<(), String> {
    if field == "pair_significance" && value.as_array().is_some_and(|a| a.is_empty()) {
        return Err(format!("{section}.pair_significance = []: give the pairs' significance factors, least significant first ([1.0] is one pair)"));
    }
    set_field_with(d, section, field, value, &OPTIONAL_DEVICE_FIELDS)
}

/// One measured table's name, whether the model has it, its source's scale (name, value), what a
/// model whose scale is 0 lacks, the verb that uses the table, and the fit fields it replaces.
type TableUse<'a> = (&'a str, bool, &'a str, f64, &'a str, &'a str, &'a [&'a str]);

/// A measured table must act, and alone: a table on a model whose scale for that source is 0
/// (drift: `ideal`, `simple`, `afm`; programming: `ideal`; read noise: `ideal`, `simple`, `afm`)
/// would change nothing, so it is refused unless the file sets that scale itself (a sweep or the
/// noise budget may still turn the source off per point); a table beside the fields of the fit
/// it replaces, set in the file, would leave them unread, so that is refused too.
fn tables_act(d: &DeviceModel, fields: &toml::Table) -> Result<(), String> {
    let tables: [TableUse<'_>; 3] = [
        ("drift_table", d.drift_table.is_some(), "drift_scale", d.drift_scale, "does not drift", "drift with", &["mu_nu", "sigma_nu"]),
        (
            "prog_table",
            d.prog_table.is_some(),
            "prog_noise_scale",
            d.prog_noise_scale,
            "has no programming noise",
            "program with",
            &["prog_coeff", "prog_g_ref", "prog_break", "prog_coeff_hi"],
        ),
        ("read_table", d.read_table.is_some(), "read_noise_scale", d.read_noise_scale, "has no read noise", "read with", &["q_s"]),
    ];
    for (table, _, scale, value, lacks, verb, replaced) in tables.into_iter().filter(|t| t.1) {
        if value == 0.0 && !fields.contains_key(scale) {
            return Err(format!(
                "device.{table} on device.model = {:?}, which {lacks} ({scale} = 0): set device.{scale} = 1.0 to {verb} the table, or remove the table",
                d.name
            ));
        }
        if let Some(k) = replaced.iter().find(|k| fields.contains_key(**k)) {
            return Err(format!(
                "device.{k} beside device.{table}: the measured table replaces the fit {k} belongs to, so it would go unread; remove one of the two"
            ));
        }
    }
    Ok(())
}

/// The device model `name` with `fields` set on it as an experiment's `[device]` sets them (every
/// field of the model, a measured `drift_table`, `prog_table` or `read_table` too), checked;
/// errors name `device.FIELD`.
pub fn device_with_fields(name: &str, fields: &toml::Table) -> Result<DeviceModel, String> {
    let d = named_device(name, fields, "device.model")?;
    d.validate()?;
    tables_act(&d, fields)?;
    Ok(d)
}

/// The device model `name` with the `[device]` fields (other than `model`) set on it; `key` names
/// where the name came from in errors.
pub(super) fn named_device(name: &str, fields: &toml::Table, key: &str) -> Result<DeviceModel, String> {
    let mut d = DeviceModel::by_name(name).ok_or_else(|| format!("{key} = {name:?}: unknown model; use one of {}", MODEL_NAMES.join(", ")))?;
    for (k, v) in fields.iter().filter(|(k, _)| *k != "model") {
        set_device_field(&mut d, "device", k, v)?;
    }
    prog_reference(&d, fields.contains_key("prog_coeff"), fields.contains_key("prog_g_ref"))?;
    relaxation_alone(&d, fields)?;
    Ok(d)
}

/// The fields a relaxation table (`device.relax_table`, the `reram` model) leaves unread: the
/// programming polynomial, the drift fits and the read-noise fit with its times.
const RELAX_UNREAD: [&str; 10] = ["prog_coeff", "prog_g_ref", "prog_break", "prog_coeff_hi", "mu_nu", "sigma_nu", "q_s", "t0", "t_read", "read_noise_scale"];

/// The fields a log-time relaxation (`device.log_relax`, the `reram_cmo` model) leaves unread.
const LOG_RELAX_UNREAD: [&str; 8] = ["mu_nu", "sigma_nu", "q_s", "t0", "drift_table", "read_table", "prog_break", "prog_coeff_hi"];

/// A relaxation's field, whether the model has it, its model, what it is, what it gives in place
/// of a model's own, and the fields it leaves unread.
type Relaxation<'a> = (&'a str, bool, &'a str, &'a str, &'a str, &'a [&'a str]);

/// A relaxation (`relax_table`, `log_relax`) belongs to its ReRAM model (on another model it would
/// leave that model's programming, drift and read noise unread), and the fields it replaces are
/// not set beside it.
fn relaxation_alone(d: &DeviceModel, fields: &toml::Table) -> Result<(), String> {
    let relaxations: [Relaxation<'_>; 2] = [
        ("log_relax", d.log_relax.is_some(), "reram_cmo", "log-time relaxation", "drift and read noise", &LOG_RELAX_UNREAD),
        ("relax_table", d.relax_table.is_some(), "reram", "relaxation table", "programming noise and every read", &RELAX_UNREAD),
    ];
    for (field, _, model, what, gives, unread) in relaxations.into_iter().filter(|r| r.1) {
        if d.name != model {
            return Err(format!(
                "device.{field} on device.model = {:?}: a {what} gives the {gives} in place of a model's own; set device.model = \"{model}\" and give it there",
                d.name
            ));
        }
        if let Some(k) = unread.iter().find(|k| fields.contains_key(**k)) {
            return Err(format!("device.{k} on device.model = \"{model}\": its {what} (device.{field}) gives the {gives}, so {k} would go unread; remove it"));
        }
    }
    Ok(())
}

/// Programming-noise coefficients of the user's own (`prog_coeff`) are in µS at the g_max they
/// were fitted for. The presets keep their fit's reference (`prog_g_ref`, 25 µS for pcm); aihwkit
/// takes g_max when its `prog_coeff_g_max_reference` is not given. Where the two readings give
/// different σ (own coefficients, no reference, g_max away from the preset's reference), the
/// reference must be said rather than guessed.
///
/// A reference without own coefficients would rescale the preset's fit: aihwkit ignores its
/// `prog_coeff_g_max_reference` then (its `PCMLikeNoiseModel` resets it to 25 µS unless
/// `prog_coeff` is given), so a reference that differs from the preset's is refused too.
pub(super) fn prog_reference(d: &DeviceModel, coeff_set: bool, reference_set: bool) -> Result<(), String> {
    let preset = DeviceModel::by_name(&d.name).map(|p| p.prog_g_ref);
    if reference_set && !coeff_set && preset.is_some_and(|r| r != d.prog_g_ref) {
        return Err(format!(
            "device.prog_g_ref = {} without device.prog_coeff: the {} preset's coefficients are fitted at {} µS and read against it (aihwkit ignores prog_coeff_g_max_reference unless prog_coeff is given); leave prog_g_ref out, or give the coefficients it belongs to in prog_coeff",
            d.prog_g_ref,
            d.name,
            preset.unwrap_or(d.prog_g_ref)
        ));
    }
    if coeff_set && !reference_set && d.g_max != d.prog_g_ref {
        return Err(format!(
            "device.prog_coeff with g_max = {}: give the g_max the coefficients were fitted at, device.prog_g_ref (aihwkit's prog_coeff_g_max_reference; aihwkit takes g_max, {}, where it is not given; the {} preset's is {})",
            d.g_max, d.g_max, d.name, d.prog_g_ref
        ));
    }
    Ok(())
}

pub(super) fn periphery(raw: &RawExperiment) -> Result<Periphery, String> {
    let p: Periphery = raw.periphery.clone().try_into().map_err(|e: toml::de::Error| format!("[periphery]: {}", e.message().trim()))?;
    p.validate()?;
    Ok(p)
}

pub(super) fn parse_tile_str(s: &str) -> Result<TileShape, String> {
    let (a, b) = s.split_once(['x', 'X']).ok_or_else(|| format!("tile {s:?}: expected \"INPUTSxOUTPUTS\", e.g. \"512x512\""))?;
    let (max_in, max_out) = (
        a.trim().parse::<u32>().map_err(|_| format!("tile {s:?}: inputs must be an integer"))?,
        b.trim().parse::<u32>().map_err(|_| format!("tile {s:?}: outputs must be an integer"))?,
    );
    check_tile(TileShape { max_in, max_out })
}

pub(super) fn check_tile(t: TileShape) -> Result<TileShape, String> {
    if t.max_in == 0 || t.max_out == 0 || t.max_in > MAX_TILE_IN {
        return Err(format!("tile {}x{}: inputs must be 1..={MAX_TILE_IN} and outputs >= 1", t.max_in, t.max_out));
    }
    Ok(t)
}

pub(super) fn parse_gdc(v: &toml::Value) -> Result<Gdc, String> {
    v.clone()
        .try_into::<Gdc>()
        .map_err(|_| format!("gdc = {v}: use \"off\", \"readout\", \"exact_reference\", \"readout_per_column\" or \"exact_reference_per_column\""))
}

/// `[kernel]`: required by the kernel workloads, refused by the others; `[attention]` only with
/// the attention workload.
pub(super) fn kernel_section(raw: &RawExperiment) -> Result<Option<KernelSettings>, String> {
    let wl = raw.workload;
    let settings = if wl.is_kernel() {
        let t = raw
            .kernel
            .clone()
            .ok_or_else(|| format!("the {} workload needs a [kernel] section, e.g. kernel = \"rbf\", projection = \"rff\", features = 128", wl.name()))?;
        Some(KernelSettings::from_table(&t)?)
    } else if raw.kernel.is_some() {
        return Err("[kernel] is for the kernel_error, kernel_ridge and attention workloads; remove it or change workload".into());
    } else {
        None
    };
    if raw.attention.is_some() && wl != WorkloadKind::Attention {
        return Err("[attention] is for workload = \"attention\"; remove it or change workload".into());
    }
    Ok(settings)
}

/// A section's deserialisation error with the field at fault named: serde's message names the
/// type it expected, not the key, so the key is the one whose removal changes the error.
fn field_error<T: serde::de::DeserializeOwned>(section: &str, t: &toml::Table, msg: &str) -> String {
    let culprit = t.iter().find(|(k, _)| {
        let mut rest = t.clone();
        rest.remove(k.as_str());
        rest.try_into::<T>().map_or_else(|e| e.message().trim() != msg, |_| true)
    });
    match culprit {
        Some((k, v)) => format!("{section}.{k} = {v}: {msg}"),
        None => format!("[{section}]: {msg}"),
    }
}

/// `[transformer]`: required by the transformer workload, refused by the others.
pub(super) fn transformer_section(raw: &RawExperiment) -> Result<Option<TransformerSettings>, String> {
    match (raw.workload, &raw.transformer) {
        (WorkloadKind::Transformer, Some(t)) => {
            let s: TransformerSettings =
                t.clone().try_into().map_err(|e: toml::de::Error| field_error::<TransformerSettings>("transformer", t, e.message().trim()))?;
            Ok(Some(s))
        }
        (WorkloadKind::Transformer, None) => Err("the transformer workload needs a [transformer] section: heads = N (and attention, pooling, ...)".into()),
        (_, Some(_)) => Err("[transformer] is for workload = \"transformer\"; remove it or change workload".into()),
        (_, None) => Ok(None),
    }
}

/// `[moe]` and `[arch]`: required by the moe workload, refused (with `[cost]`) by the others.
pub(super) fn moe_section(raw: &RawExperiment) -> Result<Option<(MoeSettings, Architecture)>, String> {
    if raw.workload != WorkloadKind::Moe {
        if raw.moe.is_some() || raw.arch.is_some() || raw.cost.is_some() {
            return Err("[moe], [arch] and [cost] are for workload = \"moe\"; remove them or change workload".into());
        }
        return Ok(None);
    }
    let m = raw.moe.clone().ok_or("the moe workload needs a [moe] section: d_model, d_ff, experts, top_k (and tokens, routing, mapping, ...)")?;
    let a = raw.arch.clone().ok_or("the moe workload needs an [arch] section: tiles, tiers, rows, cols (e.g. 16, 8, 512, 512)")?;
    let m: MoeSettings = m.try_into().map_err(|e: toml::de::Error| format!("[moe]: {}", e.message().trim()))?;
    let a: Architecture = a.try_into().map_err(|e: toml::de::Error| format!("[arch]: {}", e.message().trim()))?;
    Ok(Some((m, a)))
}
