//! Energy and latency per inference from an editable cost table (tiers-energy.md §3; Büchel et
//! al., Nat. Comput. Sci. 5, 13 (2025) and its simulator's `AcceleratorConfig`). Every constant is
//! a `{ value, source }` pair in a TOML file, so a user swaps in their own technology numbers and
//! the report names the table it used.

use crate::engine::plan::AnalogLayer;
use crate::results::Energy;
use serde::{Deserialize, Serialize};

/// The shipped default table (also at experiments/energy/default.toml).
pub const DEFAULT_TABLE: &str = include_str!("../../experiments/energy/default.toml");

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cost {
    pub value: f64,
    pub source: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostTable {
    pub name: String,
    /// One analog MVM on one crossbar tier, whatever its utilisation (pJ, ns).
    pub mvm_energy_pj: Cost,
    pub mvm_latency_ns: Cost,
    /// One DAC conversion (one input line driven) and one ADC conversion (one output read), pJ.
    pub dac_energy_pj: Cost,
    pub adc_energy_pj: Cost,
    /// Moving one bit of an MVM result to the digital units, pJ; latency per MVM, ns.
    pub communication_pj_per_bit: Cost,
    pub communication_latency_ns: Cost,
    /// Bits per transferred output value.
    pub output_bits: Cost,
    /// One digital add or multiply on one element, pJ (partial sums, scales, bias).
    pub digital_op_pj: Cost,
    /// One activation function on one element, pJ.
    pub activation_pj: Cost,
    /// Latency of the digital post-processing of one output vector, ns.
    pub digital_latency_ns: Cost,
}

impl CostTable {
    pub fn parse(text: &str) -> Result<CostTable, String> {
        let t: CostTable = toml::from_str(text).map_err(|e| e.to_string())?;
        for (name, c) in t.entries() {
            if !(c.value.is_finite() && c.value >= 0.0) {
                return Err(format!("{name}.value = {}: must be a finite number >= 0", c.value));
            }
        }
        Ok(t)
    }

    pub fn default_table() -> CostTable {
        Self::parse(DEFAULT_TABLE).expect("the shipped cost table parses")
    }

    fn entries(&self) -> [(&'static str, &Cost); 10] {
        [
            ("mvm_energy_pj", &self.mvm_energy_pj),
            ("mvm_latency_ns", &self.mvm_latency_ns),
            ("dac_energy_pj", &self.dac_energy_pj),
            ("adc_energy_pj", &self.adc_energy_pj),
            ("communication_pj_per_bit", &self.communication_pj_per_bit),
            ("communication_latency_ns", &self.communication_latency_ns),
            ("output_bits", &self.output_bits),
            ("digital_op_pj", &self.digital_op_pj),
            ("activation_pj", &self.activation_pj),
            ("digital_latency_ns", &self.digital_latency_ns),
        ]
    }

    /// Energy and latency of one input vector through `layers`. Each tile does one MVM per layer
    /// (bound-management repeats are not counted); tiles of a layer run in parallel, layers in
    /// sequence. Digital ops: partial-sum adds over input tiles, the per-tile scale multiply, the
    /// bias add, and the activation. A layer with `digital[i]` set runs on the digital units
    /// instead: two ops per weight (multiply, add), the bias add and the activation, no tile.
    /// A convolution counts all of this once per output pixel (its MVMs run in sequence on its
    /// tiles, so its latency is per pixel too) and its pooling as digital ops.
    pub fn per_inference(&self, layers: &[AnalogLayer], digital: &[bool], crossbar: crate::crossbar::TileShape) -> Energy {
        let (mut mvms, mut adc, mut dac, mut ops, mut acts) = (0u64, 0u64, 0u64, 0u64, 0u64);
        let (mut used, mut tiles) = (0u64, 0u64);
        let mut latency = 0.0;
        for (i, l) in layers.iter().enumerate() {
            let m = &l.mapped;
            // A convolution runs one MVM per output pixel (aihwkit's AnalogConv2d), one after
            // another on the same tiles; its pooling is digital (one op per window element).
            let v = l.vectors_per_sample() as u64;
            if l.activation != 0 {
                acts += v * m.n_out as u64;
            }
            if let Some(c) = l.conv.filter(|c| c.pool_kind != 0) {
                ops += (c.pool_h * c.pool_w * c.pool_size * c.pool_kw) as u64 * m.n_out as u64;
            }
            // A residual addition: one digital add per output before the activation; a digital
            // BatchNorm, a multiply and an add.
            if l.links.add.is_some() {
                ops += v * m.n_out as u64;
            }
            if l.batchnorm.is_some() {
                ops += 2 * v * m.n_out as u64;
            }
            if digital.get(i).copied().unwrap_or(false) {
                ops += v * (2 * m.len() as u64 + m.n_out as u64);
                latency += self.digital_latency_ns.value;
                continue;
            }
            mvms += v * m.n_tiles() as u64;
            tiles += m.n_tiles() as u64;
            for t in &m.tiles {
                dac += v * t.cols as u64;
                adc += v * t.rows as u64;
                used += t.rows as u64 * t.cols as u64;
            }
            // scale multiply per tile output, adds over input tiles, bias add
            ops += v * (m.tiles_in as u64 * m.n_out as u64 + (m.tiles_in as u64 - 1) * m.n_out as u64 + m.n_out as u64);
            latency += v as f64 * (self.mvm_latency_ns.value + self.communication_latency_ns.value + self.digital_latency_ns.value);
        }
        let analog_pj = mvms as f64 * self.mvm_energy_pj.value;
        let adc_pj = adc as f64 * self.adc_energy_pj.value;
        let dac_pj = dac as f64 * self.dac_energy_pj.value;
        let communication_pj = adc as f64 * self.output_bits.value * self.communication_pj_per_bit.value;
        let digital_pj = ops as f64 * self.digital_op_pj.value + acts as f64 * self.activation_pj.value;
        Energy {
            table: self.name.clone(),
            analog_mvms: mvms,
            adc_conversions: adc,
            dac_conversions: dac,
            digital_ops: ops + acts,
            analog_pj,
            adc_pj,
            dac_pj,
            communication_pj,
            digital_pj,
            total_pj: analog_pj + adc_pj + dac_pj + communication_pj + digital_pj,
            latency_ns: latency,
            crossbar_cells: tiles * crossbar.max_in as u64 * crossbar.max_out as u64,
            used_cells: used,
        }
    }
}
