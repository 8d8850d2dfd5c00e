//! The `[npu]` section and the `npu` workload: the edge-NPU cost model (`crate::arch::npu`,
//! docs/npu.md) of a network at several sequence lengths, analog/digital splits and read modes.
//! Two uses:
//! - `workload = "npu"` costs MobileBERT (Sun et al., ACL 2020) alone; its per-trial metric is
//!   the latency of the first row (deterministic: every trial has the same value);
//! - a `transformer` experiment with an `[npu]` section also costs each distinct network of its
//!   sweep points, so one report holds the accuracy distribution and the cost of the same model.
//!
//! The cost is computed once at validation (it does not depend on the trials) and recorded in
//! results.json; the report reads it from there.

use super::{Inputs, Metric, PointRun, SweepPoint, TimeMetrics};
use crate::arch::npu::{self, NpuTable, Read};
use crate::arch::npu_models::{Encoder, EncoderAttention, MobileBert};
use crate::engine::EngineError;
use crate::results::{NpuReference, NpuReport};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Which network the section costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// MobileBERT, Table 1 of Sun et al. (ACL 2020), MobileBERT column.
    Mobilebert,
    /// The `[transformer]` workload's own network at each sweep point.
    Transformer,
}

/// One analog/digital split: its name and the matrices (patterns, `*` any run) run digitally.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Split {
    pub name: String,
    #[serde(default)]
    pub digital: Vec<String>,
}

/// `[npu]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NpuSettings {
    /// The cost table, relative to the experiment file (default: experiments/energy/npu_hermes.toml).
    #[serde(default)]
    pub table: Option<PathBuf>,
    /// Default: mobilebert for the npu workload, the transformer for the transformer workload.
    #[serde(default)]
    pub network: Option<Network>,
    /// Tokens per inference (default: 128 for MobileBERT, the data's sequence length for a transformer).
    #[serde(default)]
    pub seq_len: Vec<u32>,
    /// Analog read modes (default one_phase).
    #[serde(default)]
    pub read: Vec<Read>,
    /// Analog/digital splits (default: one, every matrix analog).
    #[serde(default)]
    pub split: Vec<Split>,
    /// Classes of MobileBERT's classifier (default 2); refused with a transformer, whose state
    /// dict's head sets its classes.
    #[serde(default)]
    pub classes: Option<u32>,
    /// Analog cores available (0: as many as the network needs); fewer than needed is an error.
    #[serde(default)]
    pub analog_cores: u64,
}

/// Longest sequence costed (the attention ops' counts are n², kept far from overflow).
const MAX_SEQ_LEN: u32 = 1 << 16;

/// The published MobileBERT latency on a phone (Sun et al., ACL 2020).
fn mobilebert_reference() -> NpuReference {
    NpuReference {
        device: "Pixel 4 phone (CPU, TensorFlow Lite)".into(),
        seq_len: 128,
        latency_ms: 62.0,
        source: "Sun et al., 'MobileBERT: a Compact Task-Agnostic BERT for Resource-Limited Devices', ACL 2020: abstract ('62 ms latency on a Pixel 4 phone'); \
                 the GLUE results table gives the latency at sequence length 128 on the phone's CPU. No energy per inference is published there, so none is compared."
            .into(),
    }
}

/// Reads `[npu]` (None when absent) and refuses it where it has no network to cost.
pub fn section(table: Option<&toml::Table>, workload: super::WorkloadKind) -> Result<Option<NpuSettings>, String> {
    use super::WorkloadKind as W;
    let Some(t) = table else {
        return if workload == W::Npu {
            Err("the npu workload needs an [npu] section: network = \"mobilebert\", seq_len = [128], ...".into())
        } else {
            Ok(None)
        };
    };
    if !matches!(workload, W::Npu | W::Transformer) {
        return Err(format!("[npu] costs a network of the npu or transformer workload; remove it or change workload (this is {})", workload.name()));
    }
    // A list left empty is a mistake, not a request for the default (as for every sweep axis).
    for (k, default) in [("seq_len", "128 for MobileBERT, the data's length for a transformer"), ("read", "one_phase"), ("split", "every matrix analog")] {
        if t.get(k).and_then(|v| v.as_array()).is_some_and(|a| a.is_empty()) {
            return Err(format!("npu.{k}: the list is empty; give at least one value, or remove npu.{k} for the default ({default})"));
        }
    }
    let s: NpuSettings = t.clone().try_into().map_err(|e: toml::de::Error| format!("[npu]: {}", e.message().trim()))?;
    match (workload, s.network) {
        (W::Npu, Some(Network::Transformer)) => {
            return Err(
                "npu.network = \"transformer\": the transformer's network comes with workload = \"transformer\"; use network = \"mobilebert\" here".into()
            )
        }
        (W::Transformer, Some(Network::Mobilebert)) => {
            return Err(
                "npu.network = \"mobilebert\": a transformer experiment costs its own network; remove npu.network, or cost MobileBERT with workload = \"npu\""
                    .into(),
            )
        }
        _ => {}
    }
    if let Some(&n) = s.seq_len.iter().find(|&&n| n == 0 || n > MAX_SEQ_LEN) {
        return Err(format!("npu.seq_len contains {n}: each must be in 1..={MAX_SEQ_LEN} tokens"));
    }
    if let (W::Transformer, Some(c)) = (workload, s.classes) {
        return Err(format!(
            "npu.classes = {c}: sets the outputs of MobileBERT's classifier (workload = \"npu\"); a transformer experiment costs its own network, whose classes are the outputs of its state dict's head; remove npu.classes"
        ));
    }
    if s.classes == Some(0) {
        return Err("npu.classes = 0: must be >= 1 (MobileBERT's classifier outputs)".into());
    }
    for (i, sp) in s.split.iter().enumerate() {
        if sp.name.trim().is_empty() {
            return Err(format!("npu.split[{i}].name is empty: give each split a name (its label in the report)"));
        }
        if s.split[..i].iter().any(|o| o.name == sp.name) {
            return Err(format!("npu.split[{i}].name = {:?}: two splits share the name; names label the rows", sp.name));
        }
    }
    Ok(Some(s))
}

/// A MobileBERT-form network (bottleneck layers) of a transformer sweep point as the cost model's
/// MobileBERT shapes, or why its form is not the one [`MobileBert::ops`] counts (a shared Q/K
/// bottleneck, the trigram input, the same stacked pairs in every layer, one classifier layer).
fn mobilebert_of(s: &super::transformer::TransformerSettings) -> Result<MobileBert, String> {
    let net = s.net();
    let b0 = &net.blocks[0];
    let form = net.blocks.iter().all(|b| b.bottleneck.as_ref().is_some_and(|bn| bn.shared.is_some()) && b.extra_ffns.len() == b0.extra_ffns.len());
    let Some((_, 3)) = net.embed_proj.as_ref().filter(|_| form && net.head.len() == 1) else {
        return Err("a bottleneck network is costed in MobileBERT's form only: a shared Q/K bottleneck in every layer, the trigram input, the same stacked feed-forward pairs in every layer and one classifier layer".into());
    };
    Ok(MobileBert {
        layers: net.blocks.len() as u32 * s.repeat_layers.max(1),
        hidden: net.d_model() as u32,
        bottleneck: net.inner() as u32,
        heads: s.heads,
        intermediate: net.d_ff() as u32,
        ffns: b0.extra_ffns.len() as u32 + 1,
        embedding: net.embedding.cols as u32,
        classes: net.classes() as u32,
        pooler: net.pooler.is_some(),
    })
}

/// The network of a transformer sweep point as the cost model's shapes, or why it is not costed.
fn encoder(p: &SweepPoint) -> Result<Encoder, String> {
    let s = p.transformer.as_ref().ok_or("no [transformer] settings")?;
    if s.experts > 0 {
        return Err(format!("transformer.experts = {}: routed feed-forward layers are not in the NPU cost model", s.experts));
    }
    let net = s.net();
    if net.blocks.iter().any(|b| !b.extra_ffns.is_empty()) || net.embed_proj.is_some() {
        return Err("stacked feed-forward pairs or an embedding projection without MobileBERT's bottlenecks are not in the NPU cost model".into());
    }
    let attention = match s.attention {
        super::transformer::AttentionKind::Softmax => EncoderAttention::Softmax,
        super::transformer::AttentionKind::Kernel => {
            let rows = s.projection_rows();
            let width = if s.feature_map == crate::features::SoftmaxFeatures::Relu { rows } else { 2 * rows };
            let own_k = s.projection == super::transformer::FeatureSource::Model && net.blocks.iter().any(|b| b.feature_k.is_some());
            EncoderAttention::Kernel { rows, width, separate_qk: own_k || (s.projection != super::transformer::FeatureSource::Model && s.separate_qk) }
        }
    };
    Ok(Encoder {
        d_model: net.d_model() as u32,
        heads: s.heads,
        d_ff: net.d_ff() as u32,
        stored_layers: net.blocks.len() as u32,
        repeat: s.repeat_layers.max(1),
        embed_scale: s.embed_scale != 1.0,
        embed_norm: net.embed_norm.is_some(),
        final_norm: net.final_norm.is_some(),
        attention,
        mean_pooling: s.pooling == super::transformer::Pooling::Mean,
        pooler: net.pooler.as_ref().map(|l| (l.weight.cols as u32, l.weight.rows as u32)),
        head: net.head.iter().map(|l| (l.weight.cols as u32, l.weight.rows as u32)).collect(),
        next_token: s.task.token_head(),
    })
}

/// A transformer point's network by the sweep labels that can change it (`variant` and the
/// `[transformer]` fields; not the device, periphery, GDC or tile).
fn network_label(p: &SweepPoint) -> String {
    let fields = p.transformer.as_ref().and_then(|s| toml::Table::try_from(s).ok()).unwrap_or_default();
    let keep: Vec<String> = p.labels.iter().filter(|(k, _)| k == "variant" || fields.contains_key(k)).map(|(k, v)| format!("{k}={v}")).collect();
    if keep.is_empty() {
        "transformer".into()
    } else {
        keep.join(", ")
    }
}

/// The cost report of `[npu]`: every network × sequence length × split × read mode.
/// `table_text` is the table file's text (None: the shipped table); `data_seq` the data set's
/// A network's op list at a sequence length.
type OpBuilder = Box<dyn Fn(u64) -> Vec<npu::Op>>;

/// sequence length (a transformer's default).
pub fn report(
    s: &NpuSettings,
    workload: super::WorkloadKind,
    points: &[SweepPoint],
    table_text: Option<&str>,
    data_seq: Option<usize>,
) -> Result<NpuReport, String> {
    let table = match table_text {
        None => NpuTable::hermes(),
        Some(t) => NpuTable::parse(t).map_err(|e| format!("npu.table: {e}"))?,
    };
    let network = s.network.unwrap_or(if workload == super::WorkloadKind::Npu { Network::Mobilebert } else { Network::Transformer });
    // (label, op builder) per distinct network
    let mut networks: Vec<(String, OpBuilder)> = Vec::new();
    // A network with a learned positions table runs no longer sequences than it has rows.
    let mut max_positions: Vec<Option<usize>> = Vec::new();
    let mut notes = Vec::new();
    let mut reference = None;
    let default_seq = match network {
        Network::Mobilebert => {
            let m = MobileBert { classes: s.classes.unwrap_or(2), ..MobileBert::PAPER };
            networks.push(("MobileBERT".into(), Box::new(move |n| m.ops(n))));
            max_positions.push(None);
            reference = Some(mobilebert_reference());
            128
        }
        Network::Transformer => {
            let mut seen: Vec<Encoder> = Vec::new();
            let mut seen_mobile: Vec<MobileBert> = Vec::new();
            for p in points.iter().filter(|p| !p.budget_only()) {
                // MobileBERT's bottleneck layers: its own op list.
                if let Some(s) = p.transformer.as_ref().filter(|s| s.net.as_ref().is_some_and(|n| n.blocks.iter().any(|b| b.bottleneck.is_some()))) {
                    match mobilebert_of(s) {
                        Ok(m) if seen_mobile.contains(&m) => {}
                        Ok(m) => {
                            seen_mobile.push(m);
                            networks.push((network_label(p), Box::new(move |n| m.ops(n))));
                            max_positions.push(s.net().max_positions());
                        }
                        Err(why) => notes.push(format!("sweep point {} not costed: {why}", p.series())),
                    }
                    continue;
                }
                match encoder(p) {
                    Ok(e) if seen.contains(&e) => {}
                    Ok(e) => {
                        seen.push(e.clone());
                        let label = network_label(p);
                        networks.push((label, Box::new(move |n| e.ops(n))));
                        max_positions.push(p.transformer.as_ref().and_then(|t| t.net.as_ref()).and_then(|net| net.max_positions()));
                    }
                    Err(why) => notes.push(format!("sweep point {} not costed: {why}", p.series())),
                }
            }
            data_seq.unwrap_or(0) as u32
        }
    };
    let seqs = if s.seq_len.is_empty() { vec![default_seq] } else { s.seq_len.clone() };
    if seqs.contains(&0) {
        return Err("npu.seq_len: give the tokens per inference, e.g. seq_len = [64] (the data set gives no sequence length)".into());
    }
    let reads = if s.read.is_empty() { vec![Read::OnePhase] } else { s.read.clone() };
    let splits = if s.split.is_empty() { vec![Split { name: "all_analog".into(), digital: vec![] }] } else { s.split.clone() };
    let mut rows = Vec::new();
    for ((label, build), max) in networks.iter().zip(&max_positions) {
        for &n in &seqs {
            if let Some(max) = max.filter(|&m| n as usize > m) {
                return Err(format!(
                    "npu.seq_len contains {n}: {label} has {max} learned positions, so it runs no longer sequences; cost at most {max} tokens, or give the model a longer positions table"
                ));
            }
            let ops = build(n as u64);
            for (si, sp) in splits.iter().enumerate() {
                let digital = npu::digital_matrices(&ops, &sp.digital, &format!("npu.split[{si}].digital")).map_err(|e| e.to_string())?;
                for &r in &reads {
                    let mut row = npu::cost(&table, &ops, &digital, r);
                    if s.analog_cores > 0 && row.cores > s.analog_cores {
                        return Err(format!(
                            "npu.analog_cores = {}: {label} at {n} tokens with split {:?} needs {} cores (weights stay on their cores); raise it, set 0 for as many as needed, or run more matrices digitally",
                            s.analog_cores, sp.name, row.cores
                        ));
                    }
                    row.network = label.clone();
                    row.seq_len = n;
                    row.split = sp.name.clone();
                    rows.push(row);
                }
            }
        }
    }
    Ok(NpuReport {
        table: table.name.clone(),
        constants: table.constants(),
        derived: table.derived(),
        assumptions: npu::assumptions(&table),
        rows,
        reference,
        notes,
    })
}

pub fn metric(_: &Inputs<'_>, _: &SweepPoint) -> Metric {
    Metric { text: "NPU latency per inference of the first [npu] row (µs; deterministic)", column: "npu_latency_us", higher_is_better: false }
}

/// Every trial's metric is the first row's latency: the cost model has no random part.
pub fn run(r: &mut PointRun<'_>) -> Result<Vec<TimeMetrics>, EngineError> {
    let row = r.inputs.npu.and_then(|n| n.rows.first()).ok_or_else(|| EngineError::Invalid("the npu workload has no costed row".into()))?;
    (r.progress)(r.cfg.trials as u64);
    Ok(super::plain(r.inputs.times.iter().map(|_| vec![row.latency_ns / 1e3; r.cfg.trials as usize]), None))
}
