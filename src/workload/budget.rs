//! The noise budget (`[budget]` in an experiment file): which noise source costs the accuracy.
//! Every sweep point of the file becomes a set of configurations along a `budget` axis: `full`
//! (the file's settings), `ideal` (every listed source off), `only SOURCE` (that source alone on)
//! and `without SOURCE` (all but that source). Common random numbers throughout: the engine draws
//! each source from its own Philox stream, so a source that is on draws exactly the numbers it
//! draws in the full run, and every difference between configurations is paired trial by trial.
//! Per point and time the attribution is
//!   cost(config) = ideal − config            (metrics where higher is better, e.g. accuracy)
//!                = config − ideal            (errors)
//! with a paired Student-t interval over trials; the *alone* cost of a source is cost(only S), its
//! *removal* gain is cost(full) − cost(without S), and the interaction is
//! cost(full) − Σ_S cost(only S), stated plainly so a reader sees how far the sources add up.
//!
//! Cost: the configurations of a classifier's point run as one plan (`classifier::run_group`,
//! `plan::forward`): one set of buffers, and each distinct device state programmed once per
//! chunk and drifted once per time (with readout GDC the ADC and output noise are part of the
//! drifted state, since `drift` reads the GDC readout through them). The MVM stages (`dac`,
//! `mvm`, `bound`, `combine`) differ in every configuration, so a budget still costs about its
//! configuration count times a plain run's MVMs. tests/suite/budget.rs pins the contract the
//! reuse keeps: each configuration's trials equal its settings run alone, on both backends.

use super::SweepPoint;
use crate::crossbar::Periphery;
use crate::device::DeviceModel;
use crate::results::index::PointIndex;
use crate::results::{BudgetEntry, BudgetKnob, BudgetSource, Point, Results};
use crate::stats::{self, Moments, StatsError};
use serde::{Deserialize, Serialize};

/// A noise source the budget can switch off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Programming noise (device.prog_noise_scale → 0).
    Programming,
    /// Conductance drift (device.drift_scale → 0).
    Drift,
    /// 1/f read noise (device.read_noise_scale → 0).
    Read,
    /// Input quantisation (periphery.inp_res_bits → 0).
    Dac,
    /// Output quantisation and clipping (periphery.out_res_bits → 0, out_bound → 0).
    Adc,
    /// Additive output noise (periphery.out_noise → 0).
    OutputNoise,
    /// IR drop (periphery.ir_drop → 0).
    IrDrop,
    /// Per-read weight noise (periphery.w_noise → 0).
    WeightNoise,
    /// Input noise after the DAC (periphery.inp_noise → 0).
    InputNoise,
    /// Stuck devices (device.stuck_set and stuck_reset → 0).
    Stuck,
}

pub const ALL: [Source; 10] = [
    Source::Programming,
    Source::Drift,
    Source::Read,
    Source::Dac,
    Source::Adc,
    Source::OutputNoise,
    Source::IrDrop,
    Source::WeightNoise,
    Source::InputNoise,
    Source::Stuck,
];

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Programming => "programming",
            Source::Drift => "drift",
            Source::Read => "read",
            Source::Dac => "dac",
            Source::Adc => "adc",
            Source::OutputNoise => "output_noise",
            Source::IrDrop => "ir_drop",
            Source::WeightNoise => "weight_noise",
            Source::InputNoise => "input_noise",
            Source::Stuck => "stuck",
        }
    }

    /// Whether the source is on in these settings.
    pub fn active(self, d: &DeviceModel, p: &Periphery) -> bool {
        match self {
            Source::Programming => d.prog_noise_scale > 0.0,
            Source::Drift => d.drift_scale > 0.0,
            Source::Read => d.read_noise_scale > 0.0,
            Source::Dac => p.inp_res_bits > 0,
            Source::Adc => p.out_res_bits > 0 || p.out_bound > 0.0,
            Source::OutputNoise => p.out_noise > 0.0,
            Source::IrDrop => p.ir_drop > 0.0,
            Source::WeightNoise => p.w_noise > 0.0,
            Source::InputNoise => p.inp_noise > 0.0,
            Source::Stuck => d.has_stuck(),
        }
    }

    /// Switches the source off.
    fn off(self, d: &mut DeviceModel, p: &mut Periphery) {
        match self {
            Source::Programming => d.prog_noise_scale = 0.0,
            Source::Drift => d.drift_scale = 0.0,
            Source::Read => d.read_noise_scale = 0.0,
            Source::Dac => p.inp_res_bits = 0,
            Source::Adc => {
                p.out_res_bits = 0;
                p.out_bound = 0.0;
            }
            Source::OutputNoise => p.out_noise = 0.0,
            Source::IrDrop => p.ir_drop = 0.0,
            Source::WeightNoise => p.w_noise = 0.0,
            Source::InputNoise => p.inp_noise = 0.0,
            Source::Stuck => (d.stuck_set, d.stuck_reset) = (0.0, 0.0),
        }
    }

    /// Copies the source's settings from `from` (switching it back on).
    fn copy(self, from: (&DeviceModel, &Periphery), d: &mut DeviceModel, p: &mut Periphery) {
        let (fd, fp) = from;
        match self {
            Source::Programming => d.prog_noise_scale = fd.prog_noise_scale,
            Source::Drift => d.drift_scale = fd.drift_scale,
            Source::Read => d.read_noise_scale = fd.read_noise_scale,
            Source::Dac => p.inp_res_bits = fp.inp_res_bits,
            Source::Adc => {
                p.out_res_bits = fp.out_res_bits;
                p.out_bound = fp.out_bound;
            }
            Source::OutputNoise => p.out_noise = fp.out_noise,
            Source::IrDrop => p.ir_drop = fp.ir_drop,
            Source::WeightNoise => p.w_noise = fp.w_noise,
            Source::InputNoise => p.inp_noise = fp.inp_noise,
            Source::Stuck => (d.stuck_set, d.stuck_reset) = (fd.stuck_set, fd.stuck_reset),
        }
    }
}

/// `[budget]`: the sources to attribute (default: those on in the file's settings).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetSettings {
    #[serde(default)]
    pub sources: Option<Vec<Source>>,
    /// Also sweep each noise knob around the file's setting on the same draws: the noise scales
    /// and the output noise × 0, 0.5, 1.5, 2; the DAC and ADC resolutions −2, −1, +1, +2 bits.
    #[serde(default)]
    pub sensitivity: bool,
}

/// A sensitivity setting: a knob and its change from the file's setting.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Knob {
    /// A noise scale or the output noise, times a factor.
    Scale(&'static str, f64),
    /// A converter resolution, plus some bits.
    Bits(&'static str, i32),
}

impl Knob {
    pub fn label(&self) -> String {
        match self {
            Knob::Scale(n, m) => format!("knob {n} x{m}"),
            Knob::Bits(n, b) => format!("knob {n} {b:+}"),
        }
    }

    /// Parses a label back: (knob, relative noise level: the factor, or the quantisation step
    /// against the file's, 2^(−bits)).
    pub fn parse(label: &str) -> Option<(String, f64)> {
        let rest = label.strip_prefix("knob ")?;
        let (name, v) = rest.split_once(' ')?;
        if let Some(m) = v.strip_prefix('x') {
            return m.parse::<f64>().ok().map(|m| (name.to_string(), m));
        }
        v.parse::<i32>().ok().map(|b| (name.to_string(), 2f64.powi(-b)))
    }

    fn apply(&self, d: &mut DeviceModel, p: &mut Periphery) {
        match *self {
            Knob::Scale("prog_noise_scale", m) => d.prog_noise_scale *= m,
            Knob::Scale("read_noise_scale", m) => d.read_noise_scale *= m,
            Knob::Scale("drift_scale", m) => d.drift_scale *= m,
            Knob::Scale(_, m) => p.out_noise *= m,
            Knob::Bits("inp_res_bits", b) => p.inp_res_bits = (p.inp_res_bits as i32 + b).max(2) as u32,
            Knob::Bits(_, b) => p.out_res_bits = (p.out_res_bits as i32 + b).max(2) as u32,
        }
    }
}

/// The sensitivity settings around the file's (first point's) values; knobs that are off, and
/// resolutions that would leave 2..=24 bits, are left out.
pub fn knobs(d: &DeviceModel, p: &Periphery) -> Vec<Knob> {
    let mut v = Vec::new();
    for (name, on) in [
        ("prog_noise_scale", d.prog_noise_scale > 0.0),
        ("read_noise_scale", d.read_noise_scale > 0.0),
        ("drift_scale", d.drift_scale > 0.0),
        ("out_noise", p.out_noise > 0.0),
    ] {
        if on {
            v.extend([0.0, 0.5, 1.5, 2.0].map(|m| Knob::Scale(name, m)));
        }
    }
    for (name, bits) in [("inp_res_bits", p.inp_res_bits), ("out_res_bits", p.out_res_bits)] {
        if bits > 0 {
            v.extend([-2, -1, 1, 2].into_iter().filter(|b| (2..=24).contains(&(bits as i32 + b))).map(|b| Knob::Bits(name, b)));
        }
    }
    v
}

/// The configuration labels of the `budget` axis, in order; with `layers` > 1 also every
/// layer's noise alone (`only layer k`, all listed sources on in layer k, off in the others) and
/// every layer's noise removed (`without layer k`).
pub fn labels(sources: &[Source], groups: &[LayerGroup], knobs: &[Knob]) -> Vec<String> {
    let mut v = vec!["full".to_string(), "ideal".to_string()];
    v.extend(sources.iter().map(|s| format!("only {}", s.name())));
    v.extend(sources.iter().map(|s| format!("without {}", s.name())));
    v.extend(groups.iter().map(|g| format!("only layer {}", g.name)));
    v.extend(groups.iter().map(|g| format!("without layer {}", g.name)));
    v.extend(knobs.iter().map(Knob::label));
    v
}

/// Every point of the sweep expanded into its budget configurations (budget varies fastest).
/// Layers the budget switches on or off together: one layer of a classifier (named by its index),
/// or one kind of a transformer's matrices (`q`, `ffn1`, `feature`, `head`, ... over all layers).
#[derive(Clone, Debug, PartialEq)]
pub struct LayerGroup {
    pub name: String,
    pub layers: Vec<usize>,
}

/// The budget's layer groups: each layer alone (classifiers: more than one layer), or a
/// transformer's matrices by kind, from their names (`layers.N.KIND`, `pooler`, `head.K`).
pub fn layer_groups(names: &[String], by_kind: bool) -> Vec<LayerGroup> {
    if !by_kind {
        if names.len() < 2 {
            return vec![];
        }
        return (0..names.len()).map(|k| LayerGroup { name: k.to_string(), layers: vec![k] }).collect();
    }
    let mut groups: Vec<LayerGroup> = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let kind = match n.split('.').collect::<Vec<_>>().as_slice() {
            ["layers", _, k] if k.starts_with("feature") => "feature".to_string(),
            ["layers", _, "experts", ..] => "experts".to_string(),
            // MobileBERT: its bottlenecks by part, its stacked pairs with the main pair's kinds.
            ["layers", _, "bottleneck", k] => format!("bottleneck.{k}"),
            ["layers", _, "ffn", _, k] => k.to_string(),
            ["layers", _, k] => k.to_string(),
            [first, ..] => first.to_string(),
            [] => continue,
        };
        match groups.iter_mut().find(|g| g.name == kind) {
            Some(g) => g.layers.push(i),
            None => groups.push(LayerGroup { name: kind, layers: vec![i] }),
        }
    }
    groups
}

pub fn expand(points: Vec<SweepPoint>, sources: &[Source], groups: &[LayerGroup], n_layers: usize, knobs: &[Knob]) -> Vec<SweepPoint> {
    let names = labels(sources, groups, knobs);
    let layers = groups.len();
    let s2 = 2 + 2 * sources.len();
    let mut out = Vec::with_capacity(points.len() * names.len());
    for p in points {
        let (d0, p0) = (p.device.clone(), p.periphery.clone());
        let mut ideal = p.clone();
        for s in sources {
            s.off(&mut ideal.device, &mut ideal.periphery);
        }
        for (k, name) in names.iter().enumerate() {
            let mut q = match k {
                0 => p.clone(),
                1 => ideal.clone(),
                _ if k < 2 + sources.len() => {
                    let mut q = ideal.clone();
                    sources[k - 2].copy((&d0, &p0), &mut q.device, &mut q.periphery);
                    q
                }
                _ if k < s2 => {
                    let mut q = p.clone();
                    sources[k - 2 - sources.len()].off(&mut q.device, &mut q.periphery);
                    q
                }
                // Sensitivity: the point's settings with one knob moved.
                _ if k >= s2 + 2 * layers => {
                    let mut q = p.clone();
                    knobs[k - s2 - 2 * layers].apply(&mut q.device, &mut q.periphery);
                    q
                }
                // Layer configurations: the point's settings, with the ideal ones in the layers
                // whose noise is off.
                _ => {
                    let (only, group) = if k < s2 + layers { (true, k - s2) } else { (false, k - s2 - layers) };
                    let mut q = p.clone();
                    let off = Some((ideal.device.clone(), ideal.periphery.clone()));
                    q.layer_noise = (0..n_layers).map(|j| if groups[group].layers.contains(&j) != only { off.clone() } else { None }).collect();
                    q
                }
            };
            q.index = out.len();
            q.labels.push(("budget".into(), name.clone()));
            out.push(q);
        }
    }
    out
}

/// The point of configuration `config` with `p`'s other labels and time: one hash look-up, so the
/// budget of every point is linear in the number of points.
fn find<'a>(index: &PointIndex<'a>, p: &Point, config: &str) -> Option<&'a Point> {
    index.with(p, "budget", config)
}

/// The paired units of configurations (per trial, or per programming or projection where trials
/// share one: `run::paired::paired_units`), or the error naming the counts that differ.
fn units(points: &[&Point]) -> Result<Vec<Vec<f64>>, StatsError> {
    crate::run::paired::paired_units(points).ok_or_else(|| {
        let n: Vec<usize> = points.iter().map(|p| p.per_trial.len()).collect();
        let (a, b) = (n.iter().min().copied().unwrap_or(0), n.iter().max().copied().unwrap_or(0));
        StatsError::UnpairedTrials { a, b }
    })
}

/// Paired mean and interval of `sign · (a_i − b_i)` over the paired units.
fn paired(a: &Point, b: &Point, sign: f64, confidence: f64) -> Result<(f64, f64, f64), StatsError> {
    let u = units(&[a, b])?;
    let d: Moments = u[0].iter().zip(&u[1]).map(|(x, y)| sign * (x - y)).collect();
    let ci = stats::mean_t(&d, confidence)?;
    Ok((d.mean, ci.lo, ci.hi))
}

/// Whether the largest alone cost of `rows` exceeds the next largest with a paired interval that
/// excludes 0 (a single row is resolved): `sign · (only₂ − only₁)` per unit, the two
/// configurations' difference in cost.
fn largest_resolved(index: &PointIndex<'_>, full: &Point, rows: &[BudgetSource], sign: f64, confidence: f64) -> Result<bool, StatsError> {
    let mut by_cost: Vec<&BudgetSource> = rows.iter().collect();
    by_cost.sort_by(|a, b| b.alone.total_cmp(&a.alone));
    let [first, second, ..] = by_cost[..] else { return Ok(true) };
    let (Some(a), Some(b)) = (find(index, full, &format!("only {}", first.source)), find(index, full, &format!("only {}", second.source))) else {
        return Ok(false);
    };
    Ok(paired(b, a, sign, confidence)?.1 > 0.0)
}

/// The interaction cost(full) − Σ cost(only S) per unit, its mean and interval.
fn interaction(index: &PointIndex<'_>, ideal: &Point, full: &Point, rows: &[BudgetSource], sign: f64, confidence: f64) -> Result<(f64, f64, f64), StatsError> {
    let mut points = vec![ideal, full];
    for r in rows {
        if let Some(only) = find(index, full, &format!("only {}", r.source)) {
            points.push(only);
        }
    }
    let u = units(&points)?;
    let per: Moments = (0..u[0].len())
        .map(|i| {
            let cost = |k: usize| sign * (u[0][i] - u[k][i]);
            cost(1) - (2..u.len()).map(cost).sum::<f64>()
        })
        .collect();
    let ci = stats::mean_t(&per, confidence)?;
    Ok((per.mean, ci.lo, ci.hi))
}

/// The budget of every (point, time) of a run with a `budget` axis.
pub fn attribute(results: &Results) -> Result<Vec<BudgetEntry>, StatsError> {
    let Some(axis) = results.axes.iter().find(|a| a.name == "budget") else {
        return Ok(vec![]);
    };
    let all: Vec<String> = axis.values.iter().filter_map(|v| v.strip_prefix("only ").map(str::to_string)).collect();
    let (layers, sources): (Vec<String>, Vec<String>) = all.into_iter().partition(|v| v.starts_with("layer "));
    // cost(config) = sign · (ideal − config): higher-is-better metrics lose, errors gain.
    let sign = if results.higher_is_better { 1.0 } else { -1.0 };
    let mut out = Vec::new();
    let index = PointIndex::new(results);
    for full in results.points.iter().filter(|p| p.labels.get("budget").map(String::as_str) == Some("full")) {
        let Some(ideal) = find(&index, full, "ideal") else { continue };
        let (cost, lo, hi) = paired(ideal, full, sign, results.confidence)?;
        // Each source's (or layer's) cost alone, and the removal gain
        // cost(full) − cost(without S) = sign · (without − full).
        let shares = |names: &[String]| -> Result<Vec<BudgetSource>, StatsError> {
            let mut rows = Vec::new();
            for s in names {
                let (Some(only), Some(without)) = (find(&index, full, &format!("only {s}")), find(&index, full, &format!("without {s}"))) else { continue };
                let alone = paired(ideal, only, sign, results.confidence)?;
                let removal = paired(without, full, sign, results.confidence)?;
                rows.push(BudgetSource {
                    source: s.clone(),
                    alone: alone.0,
                    alone_lo: alone.1,
                    alone_hi: alone.2,
                    removal: removal.0,
                    removal_lo: removal.1,
                    removal_hi: removal.2,
                });
            }
            Ok(rows)
        };
        let (rows, layer_rows) = (shares(&sources)?, shares(&layers)?);
        let mut sens = Vec::new();
        for v in &axis.values {
            let Some((knob, rel)) = Knob::parse(v) else { continue };
            let Some(q) = find(&index, full, v) else { continue };
            let d = paired(q, full, 1.0, results.confidence)?;
            sens.push(BudgetKnob {
                knob,
                setting: v.trim_start_matches("knob ").to_string(),
                rel,
                median: q.summary.median,
                p05: q.summary.p05,
                p95: q.summary.p95,
                diff: d.0,
                diff_lo: d.1,
                diff_hi: d.2,
            });
        }
        if !sens.is_empty() {
            // The file's own setting of every knob: the full configuration.
            let names: Vec<String> = sens.iter().map(|k| k.knob.clone()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
            for knob in names {
                sens.push(BudgetKnob {
                    knob,
                    setting: "as in the file".into(),
                    rel: 1.0,
                    median: full.summary.median,
                    p05: full.summary.p05,
                    p95: full.summary.p95,
                    diff: 0.0,
                    diff_lo: 0.0,
                    diff_hi: 0.0,
                });
            }
            sens.sort_by(|a, b| a.knob.cmp(&b.knob).then(a.rel.total_cmp(&b.rel)));
        }
        let (interaction, interaction_lo, interaction_hi) = interaction(&index, ideal, full, &rows, sign, results.confidence)?;
        let dominant = rows.iter().max_by(|a, b| a.alone.total_cmp(&b.alone)).map(|r| r.source.clone()).unwrap_or_default();
        let dominant_resolved = largest_resolved(&index, full, &rows, sign, results.confidence)?;
        let dominant_layer_resolved = largest_resolved(&index, full, &layer_rows, sign, results.confidence)?;
        let series: Vec<String> = full.labels.iter().filter(|(k, _)| *k != "budget").map(|(k, v)| format!("{k}={v}")).collect();
        out.push(BudgetEntry {
            series: series.join(", "),
            t_inf: full.t_inf,
            time_label: full.time_label.clone(),
            cost,
            cost_lo: lo,
            cost_hi: hi,
            sources: rows,
            layers: layer_rows,
            sensitivity: sens,
            interaction,
            interaction_ci: Some([interaction_lo, interaction_hi]),
            dominant,
            dominant_resolved,
            dominant_layer_resolved,
        });
    }
    Ok(out)
}
