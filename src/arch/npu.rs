//! The cost model of a heterogeneous edge NPU (docs/npu.md): analog nodes are PCM cores of the
//! HERMES chip (Le Gallo et al., "A 64-core mixed-signal in-memory compute chip based on
//! phase-change memory for deep neural network inference", Nat. Electron. 6, 680–693 (2023):
//! 64 cores of 256 × 256, 8-bit MVMs at 63.1 TOPS and 9.76 TOPS/W with one-phase reads, 16.1 TOPS
//! and 2.48 TOPS/W with four-phase reads); digital nodes run every op without static weights;
//! an on-chip SRAM holds the activations. The table is editable TOML
//! (experiments/energy/npu_hermes.toml), every constant a `{ value, source }` pair.
//!
//! A network is a list of [`Op`]s (built in [`super::npu_models`]). Per op:
//! - a static-weight matrix (`in × out`, `vectors` inputs) on analog cores takes
//!   ceil(in/rows)·ceil(out/cols) cores, all in parallel, each doing one MVM per input vector one
//!   after another: time = vectors · t_MVM, energy = vectors · cores · E_MVM, with t_MVM and E_MVM of
//!   a full core derived from the chip's TOPS and TOPS/W ([`NpuTable::core_mvm`]); its digital
//!   post-processing (a scale per core output, the partial sums over input blocks, the bias) runs
//!   on the add unit. Run digitally instead (`digital` patterns), it is vectors · in · out MACs;
//! - a digital op is `count` elements (or MACs) at the unit's throughput × nodes and energy each;
//! - every op reads its inputs and writes its outputs through the SRAM: bytes / bandwidth, pJ/byte.
//!
//! The schedule is sequential: ops one after another in network order, each op's analog, digital
//! and SRAM parts added (no overlap: an upper bound on the latency), so the shares of time on the
//! three kinds of node sum to one. Pipelined over successive inferences (every matrix has its own
//! cores; the digital nodes and the SRAM are shared), the rate is 1 / the busiest resource's time.

use super::energy::Cost;
use crate::results::{NpuClass, NpuConstant, NpuRow, NpuSplit};
use serde::{Deserialize, Serialize};

/// The shipped table.
pub const NPU_HERMES_TABLE: &str = include_str!("../../experiments/energy/npu_hermes.toml");

/// Why a table or a layer list was refused; the message names the field and the fix.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum NpuError {
    #[error("NPU cost table: {0}")]
    Table(String),
    #[error("{field} = {value}: {fix}")]
    Field { field: String, value: String, fix: String },
}

/// The analog nodes: HERMES-style cores and the chip figures their per-core costs derive from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Analog {
    pub core_rows: Cost,
    pub core_cols: Cost,
    /// Cores of the chip whose TOPS are given (the per-core rate is the chip's / this).
    pub chip_cores: Cost,
    /// Operations per multiply-accumulate in the TOPS figures (2).
    pub ops_per_mac: Cost,
    pub one_phase_tops: Cost,
    pub one_phase_tops_per_w: Cost,
    pub four_phase_tops: Cost,
    pub four_phase_tops_per_w: Cost,
}

/// One digital unit: elements (or MACs) per second per node, pJ each.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unit {
    pub throughput_per_s: Cost,
    pub energy_pj: Cost,
}

/// The digital nodes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Digital {
    /// Nodes working in parallel on one op (throughputs are per node).
    pub nodes: Cost,
    /// Element-wise adds and multiplies (residuals, biases, MVM scales and partial sums, NoNorm).
    pub add: Unit,
    /// Activation functions (GELU, ReLU, the kernel features' exponential).
    pub activation: Unit,
    pub layernorm: Unit,
    /// Softmax, per score element.
    pub softmax: Unit,
    /// Multiply-accumulates of products without static weights, and of matrices run digitally.
    pub mac: Unit,
}

/// The on-chip SRAM holding the activations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sram {
    pub capacity_bytes: Cost,
    pub bandwidth_bytes_per_s: Cost,
    pub energy_pj_per_byte: Cost,
    pub bytes_per_value: Cost,
}

/// The NPU cost table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NpuTable {
    pub name: String,
    pub analog: Analog,
    pub digital: Digital,
    pub sram: Sram,
}

/// How the analog cores read: 8-bit one-phase (fast) or four-phase (higher precision).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Read {
    OnePhase,
    FourPhase,
}

impl Read {
    pub fn name(self) -> &'static str {
        match self {
            Read::OnePhase => "one_phase",
            Read::FourPhase => "four_phase",
        }
    }
}

/// One full-core MVM: ns and pJ.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CoreMvm {
    pub ns: f64,
    pub pj: f64,
}

/// The digital unit an op runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnitKind {
    Add,
    Activation,
    LayerNorm,
    Softmax,
    Mac,
}

impl UnitKind {
    pub fn name(self) -> &'static str {
        match self {
            UnitKind::Add => "add",
            UnitKind::Activation => "activation",
            UnitKind::LayerNorm => "layernorm",
            UnitKind::Softmax => "softmax",
            UnitKind::Mac => "mac",
        }
    }
}

/// What an op does.
#[derive(Clone, Debug, PartialEq)]
pub enum Work {
    /// A static-weight matrix `inputs × outputs` (crossbar rows × columns) applied to `vectors` inputs.
    Mvm { inputs: u32, outputs: u32, vectors: u64 },
    /// `count` elements (or MACs) on a digital unit.
    Digital { unit: UnitKind, count: u64 },
    /// Data movement only (an embedding-table read).
    Move,
}

/// One op of a network, in execution order.
#[derive(Clone, Debug, PartialEq)]
pub struct Op {
    /// The instance, e.g. `layers.3.softmax`.
    pub name: String,
    /// The programmed matrix of an MVM (shared by repeated layers: its cores count once);
    /// `model.digital`-style patterns match it.
    pub matrix: Option<String>,
    pub work: Work,
    /// Values read from and written to the SRAM.
    pub values: u64,
}

impl Op {
    pub fn mvm(name: impl Into<String>, matrix: impl Into<String>, inputs: u32, outputs: u32, vectors: u64) -> Op {
        let values = vectors * (inputs as u64 + outputs as u64);
        Op { name: name.into(), matrix: Some(matrix.into()), work: Work::Mvm { inputs, outputs, vectors }, values }
    }

    pub fn digital(name: impl Into<String>, unit: UnitKind, count: u64, values: u64) -> Op {
        Op { name: name.into(), matrix: None, work: Work::Digital { unit, count }, values }
    }

    /// The class: the name with `layers.N.` taken out and other indices replaced by `*`.
    pub fn class(&self) -> String {
        let rest = match self.name.strip_prefix("layers.") {
            Some(r) => r.split_once('.').map_or(r, |(_, tail)| tail),
            None => &self.name,
        };
        rest.split('.').map(|p| if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) { "*" } else { p }).collect::<Vec<_>>().join(".")
    }
}

/// Whether `name` matches `pattern`, where `*` matches any run of characters (dots included).
pub fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for p in &parts[1..parts.len() - 1] {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    true
}

fn field_err(field: &str, value: impl std::fmt::Display, fix: &str) -> NpuError {
    NpuError::Field { field: field.into(), value: value.to_string(), fix: fix.into() }
}

impl NpuTable {
    /// Parses and validates a table.
    pub fn parse(text: &str) -> Result<NpuTable, NpuError> {
        let t: NpuTable = toml::from_str(text).map_err(|e| NpuError::Table(e.to_string().trim().replace('\n', " ")))?;
        t.validate()?;
        Ok(t)
    }

    /// The shipped table (experiments/energy/npu_hermes.toml).
    pub fn hermes() -> NpuTable {
        Self::parse(NPU_HERMES_TABLE).expect("the shipped NPU table parses")
    }

    /// Every constant with its dotted field name.
    pub fn entries(&self) -> Vec<(String, &Cost)> {
        let a = &self.analog;
        let d = &self.digital;
        let s = &self.sram;
        let mut v: Vec<(String, &Cost)> = vec![
            ("analog.core_rows".into(), &a.core_rows),
            ("analog.core_cols".into(), &a.core_cols),
            ("analog.chip_cores".into(), &a.chip_cores),
            ("analog.ops_per_mac".into(), &a.ops_per_mac),
            ("analog.one_phase_tops".into(), &a.one_phase_tops),
            ("analog.one_phase_tops_per_w".into(), &a.one_phase_tops_per_w),
            ("analog.four_phase_tops".into(), &a.four_phase_tops),
            ("analog.four_phase_tops_per_w".into(), &a.four_phase_tops_per_w),
            ("digital.nodes".into(), &d.nodes),
        ];
        for (n, u) in [("add", &d.add), ("activation", &d.activation), ("layernorm", &d.layernorm), ("softmax", &d.softmax), ("mac", &d.mac)] {
            v.push((format!("digital.{n}.throughput_per_s"), &u.throughput_per_s));
            v.push((format!("digital.{n}.energy_pj"), &u.energy_pj));
        }
        v.extend([
            ("sram.capacity_bytes".to_string(), &s.capacity_bytes),
            ("sram.bandwidth_bytes_per_s".to_string(), &s.bandwidth_bytes_per_s),
            ("sram.energy_pj_per_byte".to_string(), &s.energy_pj_per_byte),
            ("sram.bytes_per_value".to_string(), &s.bytes_per_value),
        ]);
        v
    }

    /// Every value finite and > 0 (energies and bytes per value may be 0); core sizes, chip cores
    /// and nodes whole numbers; every source non-empty.
    pub fn validate(&self) -> Result<(), NpuError> {
        let may_be_zero = |f: &str| f.ends_with("energy_pj") || f.ends_with("energy_pj_per_byte") || f == "sram.bytes_per_value";
        for (f, c) in self.entries() {
            if !c.value.is_finite() || c.value < 0.0 || (c.value == 0.0 && !may_be_zero(&f)) {
                let need = if may_be_zero(&f) { "must be a finite number >= 0" } else { "must be a finite number > 0 (it divides or counts)" };
                return Err(field_err(&format!("{f}.value"), c.value, need));
            }
            if c.source.trim().is_empty() {
                return Err(field_err(&format!("{f}.source"), "\"\"", "give where the number comes from, or \"assumption: ...\" with the reason"));
            }
        }
        for (f, c) in [
            ("analog.core_rows", &self.analog.core_rows),
            ("analog.core_cols", &self.analog.core_cols),
            ("analog.chip_cores", &self.analog.chip_cores),
            ("digital.nodes", &self.digital.nodes),
        ] {
            if c.value.fract() != 0.0 || c.value > u32::MAX as f64 {
                return Err(field_err(&format!("{f}.value"), c.value, "must be a whole number"));
            }
        }
        Ok(())
    }

    /// The constants with their sources, for the report; a source starting with "assumption" marks one.
    pub fn constants(&self) -> Vec<NpuConstant> {
        self.entries()
            .into_iter()
            .map(|(field, c)| NpuConstant {
                field,
                value: c.value,
                source: c.source.clone(),
                assumption: c.source.trim_start().to_lowercase().starts_with("assumption"),
            })
            .collect()
    }

    /// Operations of one full-core MVM: ops_per_mac · rows · cols.
    pub fn ops_per_core_mvm(&self) -> f64 {
        self.analog.ops_per_mac.value * self.analog.core_rows.value * self.analog.core_cols.value
    }

    /// One full-core MVM in `read` mode: time = ops / (chip TOPS / chip cores), energy = ops / (TOPS/W).
    pub fn core_mvm(&self, read: Read) -> CoreMvm {
        let a = &self.analog;
        let (tops, tops_w) = match read {
            Read::OnePhase => (a.one_phase_tops.value, a.one_phase_tops_per_w.value),
            Read::FourPhase => (a.four_phase_tops.value, a.four_phase_tops_per_w.value),
        };
        let ops = self.ops_per_core_mvm();
        CoreMvm { ns: ops / (tops * 1e12 / a.chip_cores.value) * 1e9, pj: ops / tops_w }
    }

    /// The derived per-core figures, in words.
    pub fn derived(&self) -> Vec<String> {
        [Read::OnePhase, Read::FourPhase]
            .into_iter()
            .map(|r| {
                let m = self.core_mvm(r);
                format!(
                    "{} read: one {}×{} core MVM ({:.0} ops) takes {:.1} ns and {:.2} nJ (chip {} TOPS over {} cores; {} TOPS/W)",
                    r.name().replace('_', "-"),
                    self.analog.core_rows.value,
                    self.analog.core_cols.value,
                    self.ops_per_core_mvm(),
                    m.ns,
                    m.pj / 1e3,
                    if r == Read::OnePhase { self.analog.one_phase_tops.value } else { self.analog.four_phase_tops.value },
                    self.analog.chip_cores.value,
                    if r == Read::OnePhase { self.analog.one_phase_tops_per_w.value } else { self.analog.four_phase_tops_per_w.value },
                )
            })
            .collect()
    }

    fn unit(&self, u: UnitKind) -> &Unit {
        match u {
            UnitKind::Add => &self.digital.add,
            UnitKind::Activation => &self.digital.activation,
            UnitKind::LayerNorm => &self.digital.layernorm,
            UnitKind::Softmax => &self.digital.softmax,
            UnitKind::Mac => &self.digital.mac,
        }
    }

    /// Time (ns) and energy (pJ) of `count` elements on unit `u`.
    pub fn digital_cost(&self, u: UnitKind, count: u64) -> (f64, f64) {
        let unit = self.unit(u);
        (count as f64 / (unit.throughput_per_s.value * self.digital.nodes.value) * 1e9, count as f64 * unit.energy_pj.value)
    }

    /// Cores of an `inputs × outputs` matrix: ceil(in / rows) · ceil(out / cols), and the input blocks.
    pub fn cores(&self, inputs: u32, outputs: u32) -> (u64, u64) {
        let (r, c) = (self.analog.core_rows.value as u64, self.analog.core_cols.value as u64);
        let tiles_in = (inputs as u64).div_ceil(r);
        (tiles_in * (outputs as u64).div_ceil(c), tiles_in)
    }
}

/// One op's cost.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OpCost {
    pub time_ns: NpuSplit,
    pub energy_pj: NpuSplit,
    /// What runs the op's main work.
    pub runs_on: String,
    pub analog_macs: u64,
    pub digital_macs: u64,
    pub elementwise: u64,
    pub bytes: u64,
}

/// The cost of one op; `digital` says whether an MVM runs on the digital nodes.
pub fn op_cost(t: &NpuTable, op: &Op, digital: bool, read: Read) -> OpCost {
    let mut c = OpCost { bytes: (op.values as f64 * t.sram.bytes_per_value.value).round() as u64, ..OpCost::default() };
    c.time_ns.sram = c.bytes as f64 / t.sram.bandwidth_bytes_per_s.value * 1e9;
    c.energy_pj.sram = c.bytes as f64 * t.sram.energy_pj_per_byte.value;
    match op.work {
        Work::Mvm { inputs, outputs, vectors } => {
            let macs = vectors * inputs as u64 * outputs as u64;
            if digital {
                let (ns, pj) = t.digital_cost(UnitKind::Mac, macs);
                // the bias add
                let (ns_b, pj_b) = t.digital_cost(UnitKind::Add, vectors * outputs as u64);
                c.time_ns.digital = ns + ns_b;
                c.energy_pj.digital = pj + pj_b;
                c.digital_macs = macs;
                c.elementwise = vectors * outputs as u64;
                c.runs_on = "digital nodes (mac)".into();
            } else {
                let (cores, tiles_in) = t.cores(inputs, outputs);
                let m = t.core_mvm(read);
                c.time_ns.analog = vectors as f64 * m.ns;
                c.energy_pj.analog = (vectors * cores) as f64 * m.pj;
                // a scale per core output, the partial sums over input blocks, the bias
                let post = vectors * outputs as u64 * (2 * tiles_in);
                let (ns, pj) = t.digital_cost(UnitKind::Add, post);
                c.time_ns.digital = ns;
                c.energy_pj.digital = pj;
                c.analog_macs = macs;
                c.elementwise = post;
                c.runs_on = "analog tiles".into();
            }
        }
        Work::Digital { unit, count } => {
            let (ns, pj) = t.digital_cost(unit, count);
            c.time_ns.digital = ns;
            c.energy_pj.digital = pj;
            if unit == UnitKind::Mac {
                c.digital_macs = count;
            } else {
                c.elementwise = count;
            }
            c.runs_on = format!("digital nodes ({})", unit.name());
        }
        Work::Move => c.runs_on = "SRAM".into(),
    }
    c
}

/// Which matrices of `ops` each digital pattern matches; a pattern that matches none is an error
/// naming `field` (a misspelt name would otherwise cost nothing).
pub fn digital_matrices(ops: &[Op], patterns: &[String], field: &str) -> Result<Vec<String>, NpuError> {
    let mut names: Vec<String> = Vec::new();
    for o in ops {
        if let Some(m) = &o.matrix {
            if !names.contains(m) {
                names.push(m.clone());
            }
        }
    }
    let mut out = Vec::new();
    for p in patterns {
        let hits: Vec<&String> = names.iter().filter(|n| glob(p, n)).collect();
        if hits.is_empty() {
            let some: Vec<&str> = names.iter().take(8).map(String::as_str).collect();
            return Err(field_err(
                field,
                format!("{p:?}"),
                &format!("matches no matrix of the network; matrices are named like {}, ... ('*' matches any run)", some.join(", ")),
            ));
        }
        for h in hits {
            if !out.contains(h) {
                out.push(h.clone());
            }
        }
    }
    Ok(out)
}

/// The cost of one inference: `ops` in order, the matrices in `digital` on the digital nodes.
pub fn cost(t: &NpuTable, ops: &[Op], digital: &[String], read: Read) -> NpuRow {
    let mut row = NpuRow { read: read.name().into(), digital_matrices: digital.to_vec(), ..NpuRow::default() };
    let mut classes: Vec<NpuClass> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    // Analog time per matrix: a matrix's cores serve every op that reads it (layers repeated with
    // shared weights, one projection for queries and keys), one op after another.
    let mut analog_per_matrix: Vec<(String, f64, usize)> = Vec::new();
    for op in ops {
        let is_digital = op.matrix.as_ref().is_some_and(|m| digital.contains(m));
        let c = op_cost(t, op, is_digital, read);
        if let (Work::Mvm { inputs, outputs, .. }, Some(m), false) = (&op.work, &op.matrix, is_digital) {
            if !seen.contains(&m.as_str()) {
                seen.push(m);
                row.cores += t.cores(*inputs, *outputs).0;
            }
        }
        row.analog_macs += c.analog_macs;
        row.digital_macs += c.digital_macs;
        row.elementwise_ops += c.elementwise;
        row.sram_bytes += c.bytes;
        row.largest_working_set_bytes = row.largest_working_set_bytes.max(c.bytes);
        for (acc, v) in [(&mut row.time_ns, &c.time_ns), (&mut row.energy_pj_split, &c.energy_pj)] {
            acc.analog += v.analog;
            acc.digital += v.digital;
            acc.sram += v.sram;
        }
        if c.time_ns.analog > 0.0 {
            let name = op.matrix.clone().unwrap_or_else(|| op.name.clone());
            match analog_per_matrix.iter_mut().find(|(m, _, _)| *m == name) {
                Some((_, t, n)) => {
                    *t += c.time_ns.analog;
                    *n += 1;
                }
                None => analog_per_matrix.push((name, c.time_ns.analog, 1)),
            }
        }
        let total = c.time_ns.total();
        if total > row.slowest_op_ns {
            row.slowest_op_ns = total;
            row.slowest_op = op.name.clone();
        }
        let class = op.class();
        let i = match classes.iter().position(|k| k.class == class && k.runs_on == c.runs_on) {
            Some(i) => i,
            None => {
                classes.push(NpuClass { class, runs_on: c.runs_on.clone(), ..NpuClass::default() });
                classes.len() - 1
            }
        };
        let k = &mut classes[i];
        k.count += 1;
        for (acc, v) in [(&mut k.time_ns, &c.time_ns), (&mut k.energy_pj, &c.energy_pj)] {
            acc.analog += v.analog;
            acc.digital += v.digital;
            acc.sram += v.sram;
        }
    }
    classes.sort_by(|a, b| b.time_ns.total().total_cmp(&a.time_ns.total()));
    row.classes = classes;
    row.macs = row.analog_macs + row.digital_macs;
    row.chips = row.cores as f64 / t.analog.chip_cores.value;
    row.fits_sram = (row.largest_working_set_bytes as f64) <= t.sram.capacity_bytes.value;
    row.latency_ns = row.time_ns.total();
    row.energy_pj = row.energy_pj_split.total();
    row.inferences_per_s = if row.latency_ns > 0.0 { 1e9 / row.latency_ns } else { 0.0 };
    let busiest = analog_per_matrix.iter().fold(None, |a: Option<&(String, f64, usize)>, b| if a.is_none_or(|a| b.1 > a.1) { Some(b) } else { a });
    let analog_bound = match busiest {
        Some((m, t, 1)) => (*t, format!("the analog cores of {m}")),
        Some((m, t, n)) => (*t, format!("the analog cores of {m} ({n} ops share them)")),
        None => (0.0, String::new()),
    };
    let (bound_ns, bound) = [
        analog_bound,
        (row.time_ns.digital, "the digital nodes (all digital work of an inference)".to_string()),
        (row.time_ns.sram, "the SRAM (all data movement of an inference)".to_string()),
    ]
    .into_iter()
    .fold((0.0, String::new()), |a, b| if b.0 > a.0 { b } else { a });
    row.pipelined_inferences_per_s = if bound_ns > 0.0 { 1e9 / bound_ns } else { 0.0 };
    row.pipeline_bound = bound;
    row.tops_per_w = if row.energy_pj > 0.0 { t.analog.ops_per_mac.value * row.macs as f64 / row.energy_pj } else { 0.0 };
    row
}

/// The schedule and counting rules, in words (the report prints them).
pub fn assumptions(t: &NpuTable) -> Vec<String> {
    vec![
        format!(
            "Weights stationary: every static-weight matrix has its own analog cores, ceil(in/{0})·ceil(out/{1}) of them, programmed once (a matrix shared by repeated layers counts once); no reprogramming during inference.",
            t.analog.core_rows.value, t.analog.core_cols.value
        ),
        "A core MVM costs the full core's time and energy whatever its fill (the chip's peak TOPS and TOPS/W at full use); the cores of one matrix run in parallel, each doing one MVM per token one after another.".into(),
        "Schedule: ops one after another in network order (layers sequential, tokens of an op streamed); each op's analog, digital and SRAM times add (no overlap: an upper bound on the latency). Inferences/s = 1 / latency; pipelined = layers pipelined over successive inferences, 1 / the busiest resource (one matrix's cores, over every op that reads them: repeated layers and shared projections add up; or all digital work, or all SRAM traffic).".into(),
        "Analog MVM post-processing on the digital add unit: a scale per core output, the partial sums over input blocks and the bias (2 · input blocks element ops per output). A matrix run digitally costs in·out MACs per token on the MAC unit plus the bias.".into(),
        "Products without static weights (attention scores QKᵀ and the context with V; kernel attention's linear products) run on the digital MAC unit; softmax, normalisation, activations and residual adds on the digital nodes.".into(),
        "Every op reads its inputs and writes its outputs through the SRAM once (8-bit values unless the table says otherwise); the embedding table is read from SRAM (its storage is not costed); no DRAM. The largest op's working set is checked against the SRAM capacity.".into(),
        "TOPS/W = 2 × all MACs (static and attention) / energy; element-wise ops are not counted as operations. Idle and leakage power are not in the table and not charged.".into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("layers.*.ffn.*", "layers.3.ffn.2.up"));
        assert!(glob("embedding.*", "embedding.proj"));
        assert!(glob("q", "q") && !glob("q", "layers.0.q"));
        assert!(glob("*.q", "layers.0.q") && !glob("*.q", "layers.0.qq.k"));
        assert!(!glob("layers.*.ffn*", "layers.1.o"));
    }

    /// A matrix read by two ops (a layer repeated with shared weights) keeps its cores busy for
    /// both: the pipelined rate halves against two matrices of their own.
    #[test]
    fn shared_cores_add_up_in_the_pipelined_bound() {
        let t = NpuTable::hermes();
        let own = [Op::mvm("layers.0.q", "layers.0.q", 256, 256, 64), Op::mvm("layers.1.q", "layers.1.q", 256, 256, 64)];
        let shared = [Op::mvm("layers.0.q", "layers.0.q", 256, 256, 64), Op::mvm("layers.1.q", "layers.0.q", 256, 256, 64)];
        let (a, b) = (cost(&t, &own, &[], Read::OnePhase), cost(&t, &shared, &[], Read::OnePhase));
        assert_eq!(a.latency_ns, b.latency_ns);
        assert!(
            (a.pipelined_inferences_per_s / b.pipelined_inferences_per_s - 2.0).abs() < 1e-9,
            "{} vs {}",
            a.pipelined_inferences_per_s,
            b.pipelined_inferences_per_s
        );
        assert!(b.pipeline_bound.contains("layers.0.q (2 ops share them)"), "{}", b.pipeline_bound);
        assert_eq!(b.cores * 2, a.cores);
    }

    #[test]
    fn classes_drop_the_layer_index() {
        let o = Op::digital("layers.12.ffn.3.act", UnitKind::Activation, 1, 1);
        assert_eq!(o.class(), "ffn.*.act");
        assert_eq!(Op::digital("embedding.norm", UnitKind::Add, 1, 1).class(), "embedding.norm");
    }
}
