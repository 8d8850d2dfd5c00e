//! The editable cost tables of the 3D AIMC MoE model and of its GPU baseline (tiers-energy.md §3–4;
//! Büchel et al., Nat. Comput. Sci. 5, 13–26 (2025), Methods and Supplementary Table of operation
//! costs; the simulator's `AcceleratorConfig`). Every constant is a `{ value, source }` pair in TOML,
//! shipped as experiments/energy/moe_3d.toml and experiments/energy/gpu_h100_sxm.toml.

pub use super::energy::Cost;
use serde::{Deserialize, Serialize};

/// The shipped 3D AIMC table.
pub const MOE_3D_TABLE: &str = include_str!("../../experiments/energy/moe_3d.toml");
/// The shipped GPU table (H100 SXM).
pub const GPU_H100_SXM_TABLE: &str = include_str!("../../experiments/energy/gpu_h100_sxm.toml");

/// One per-token digital operation measured at the table's d_model points.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpRow {
    /// Latency per token at each d_model point, ns.
    pub latency_ns: Vec<f64>,
    /// Energy per token at each d_model point, pJ.
    pub energy_pj: Vec<f64>,
    /// Where the numbers come from.
    pub source: String,
}

/// The per-token digital operations of the paper's supplementary table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerToken {
    /// The vector widths the rows were given at (strictly increasing).
    pub d_model: Vec<f64>,
    /// Where the d_model points come from.
    pub source: String,
    /// LayerNorm (stored for whole-block accounting; a MoE layer alone does not use it).
    pub layernorm: OpRow,
    /// GeLU (the expert activation, evaluated at d_ff).
    pub gelu: OpRow,
    /// Element-wise add (partial sums over input splits and the gate-weighted sum).
    pub add: OpRow,
    /// Inter-unit communication of a token vector (stored; the schedule uses the per-MVM model instead).
    pub communication: OpRow,
}

/// Latency (ns) and energy (pJ) of one operation.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct OpCost {
    /// ns.
    pub latency_ns: f64,
    /// pJ.
    pub energy_pj: f64,
}

/// Cost table of the 3D AIMC accelerator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierCostTable {
    /// Printed by reports.
    pub name: String,
    /// Latency of one MVM on one tier, any utilisation, ns.
    pub mvm_latency_ns: Cost,
    /// Energy of one MVM on one tier, pJ.
    pub mvm_energy_pj: Cost,
    /// Latency of the communication after each MVM, ns (delays the result, does not hold the tile).
    pub communication_latency_ns: Cost,
    /// Energy per transferred output bit after each MVM, pJ.
    pub communication_pj_per_bit: Cost,
    /// Bits per MVM output value.
    pub output_bits: Cost,
    /// Digital units (a pool; whole number >= 1).
    pub digital_units: Cost,
    /// Attention units (a pool; whole number >= 1).
    pub attention_units: Cost,
    /// Attention energy fit: a · n² · d pJ; this is a.
    pub attention_energy_pj_per_n2d: Cost,
    /// Attention latency fit (n / n0)² · (b · d² + c) ns: n0.
    pub attention_latency_n0: Cost,
    /// Attention latency fit: b (ns per d²).
    pub attention_latency_ns_per_d2: Cost,
    /// Attention latency fit: c (ns).
    pub attention_latency_ns_offset: Cost,
    /// Bandwidth of the DRAM holding the KV cache, bytes/s.
    pub dram_bandwidth_bytes_per_s: Cost,
    /// DRAM power while reading, W.
    pub dram_active_w: Cost,
    /// DRAM power while idle, W.
    pub dram_inactive_w: Cost,
    /// Bytes per stored K or V value.
    pub kv_bytes_per_value: Cost,
    /// Passive (leakage) power of the accelerator, W, charged over the whole makespan.
    pub passive_power_w: Cost,
    /// Footprint of one tier (= one tile; tiers stack vertically), mm²; optional.
    #[serde(default)]
    pub tier_area_mm2: Option<Cost>,
    /// Per-token digital operations.
    pub per_token: PerToken,
}

fn check(name: &str, c: &Cost) -> Result<(), String> {
    if c.value.is_finite() && c.value >= 0.0 {
        Ok(())
    } else {
        Err(format!("{name}.value = {}: must be a finite number >= 0", c.value))
    }
}

fn check_positive(name: &str, c: &Cost) -> Result<(), String> {
    check(name, c)?;
    if c.value > 0.0 {
        Ok(())
    } else {
        Err(format!("{name}.value = 0: must be > 0 (it divides)"))
    }
}

/// Linear interpolation of `ys` over `xs` at `x`; outside the range, linear extrapolation along the
/// end segment; clamped at 0. One point = constant.
pub fn interpolate(xs: &[f64], ys: &[f64], x: f64) -> f64 {
    if xs.len() < 2 {
        return ys.first().copied().unwrap_or(0.0).max(0.0);
    }
    let i = xs.windows(2).position(|w| x <= w[1]).unwrap_or(xs.len() - 2);
    let (x0, x1, y0, y1) = (xs[i], xs[i + 1], ys[i], ys[i + 1]);
    (y0 + (y1 - y0) * (x - x0) / (x1 - x0)).max(0.0)
}

impl TierCostTable {
    /// Parses and validates a table.
    pub fn parse(text: &str) -> Result<TierCostTable, String> {
        let t: TierCostTable = toml::from_str(text).map_err(|e| format!("3D AIMC cost table: {e}"))?;
        t.validate()?;
        Ok(t)
    }

    /// The shipped table (experiments/energy/moe_3d.toml).
    pub fn default_table() -> TierCostTable {
        Self::parse(MOE_3D_TABLE).expect("the shipped 3D cost table parses")
    }

    /// Every value finite and >= 0; unit counts integers >= 1; bandwidth and n0 > 0; the per-token
    /// rows one value per d_model point, d_model strictly increasing.
    pub fn validate(&self) -> Result<(), String> {
        for (name, c) in [
            ("mvm_latency_ns", &self.mvm_latency_ns),
            ("mvm_energy_pj", &self.mvm_energy_pj),
            ("communication_latency_ns", &self.communication_latency_ns),
            ("communication_pj_per_bit", &self.communication_pj_per_bit),
            ("output_bits", &self.output_bits),
            ("attention_energy_pj_per_n2d", &self.attention_energy_pj_per_n2d),
            ("attention_latency_ns_per_d2", &self.attention_latency_ns_per_d2),
            ("attention_latency_ns_offset", &self.attention_latency_ns_offset),
            ("dram_active_w", &self.dram_active_w),
            ("dram_inactive_w", &self.dram_inactive_w),
            ("kv_bytes_per_value", &self.kv_bytes_per_value),
            ("passive_power_w", &self.passive_power_w),
        ] {
            check(name, c)?;
        }
        check_positive("dram_bandwidth_bytes_per_s", &self.dram_bandwidth_bytes_per_s)?;
        check_positive("attention_latency_n0", &self.attention_latency_n0)?;
        for (name, c) in [("digital_units", &self.digital_units), ("attention_units", &self.attention_units)] {
            check(name, c)?;
            if c.value < 1.0 || c.value.fract() != 0.0 {
                return Err(format!("{name}.value = {}: must be a whole number >= 1", c.value));
            }
        }
        if let Some(a) = &self.tier_area_mm2 {
            check("tier_area_mm2", a)?;
        }
        let p = &self.per_token;
        if p.d_model.is_empty() || p.d_model.windows(2).any(|w| w[1] <= w[0]) || p.d_model.iter().any(|d| !(d.is_finite() && *d > 0.0)) {
            return Err(format!("per_token.d_model = {:?}: must be non-empty, > 0 and strictly increasing", p.d_model));
        }
        for (name, row) in [("layernorm", &p.layernorm), ("gelu", &p.gelu), ("add", &p.add), ("communication", &p.communication)] {
            for (what, v) in [("latency_ns", &row.latency_ns), ("energy_pj", &row.energy_pj)] {
                if v.len() != p.d_model.len() {
                    return Err(format!("per_token.{name}.{what} has {} values: needs one per per_token.d_model point ({})", v.len(), p.d_model.len()));
                }
                if let Some((i, x)) = v.iter().enumerate().find(|(_, x)| !(x.is_finite() && **x >= 0.0)) {
                    return Err(format!("per_token.{name}.{what}[{i}] = {x}: must be a finite number >= 0"));
                }
            }
        }
        Ok(())
    }

    /// Cost of a per-token row at vector width `d` (see [`interpolate`]: GeLU and Add are exactly
    /// linear in d in the published table, LayerNorm and Communication step-like and flat past the ends).
    pub fn op(&self, row: &OpRow, d: f64) -> OpCost {
        let xs = &self.per_token.d_model;
        OpCost { latency_ns: interpolate(xs, &row.latency_ns, d), energy_pj: interpolate(xs, &row.energy_pj, d) }
    }

    /// Attention of one token over a context of `n` at width `d` (the paper's fits).
    pub fn attention(&self, n: f64, d: f64) -> OpCost {
        let r = n / self.attention_latency_n0.value;
        OpCost {
            latency_ns: r * r * (self.attention_latency_ns_per_d2.value * d * d + self.attention_latency_ns_offset.value),
            energy_pj: self.attention_energy_pj_per_n2d.value * n * n * d,
        }
    }

    /// Communication energy after one MVM of a crossbar with `cols` outputs, pJ.
    pub fn communication_pj_per_mvm(&self, cols: u32) -> f64 {
        self.communication_pj_per_bit.value * self.output_bits.value * cols as f64
    }
}

/// Cost table of a GPU for the roofline baseline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuTable {
    /// Printed by reports.
    pub name: String,
    /// Memory bandwidth, bytes/s.
    pub bandwidth_bytes_per_s: Cost,
    /// Peak dense FLOP/s at the weight precision.
    pub peak_flops: Cost,
    /// Board power, W.
    pub board_power_w: Cost,
    /// Bytes per stored weight (2 for bf16).
    pub bytes_per_weight: Cost,
    /// Optional energy model replacing board power × time: pJ per weight byte moved.
    #[serde(default)]
    pub energy_per_byte_pj: Option<Cost>,
    /// Optional energy model replacing board power × time: pJ per FLOP.
    #[serde(default)]
    pub energy_per_flop_pj: Option<Cost>,
}

impl GpuTable {
    /// Parses and validates a table.
    pub fn parse(text: &str) -> Result<GpuTable, String> {
        let t: GpuTable = toml::from_str(text).map_err(|e| format!("GPU cost table: {e}"))?;
        t.validate()?;
        Ok(t)
    }

    /// The shipped H100 SXM table.
    pub fn h100_sxm() -> GpuTable {
        Self::parse(GPU_H100_SXM_TABLE).expect("the shipped GPU table parses")
    }

    /// Every value finite and >= 0; bandwidth and peak FLOP/s > 0.
    pub fn validate(&self) -> Result<(), String> {
        check_positive("bandwidth_bytes_per_s", &self.bandwidth_bytes_per_s)?;
        check_positive("peak_flops", &self.peak_flops)?;
        check("board_power_w", &self.board_power_w)?;
        check("bytes_per_weight", &self.bytes_per_weight)?;
        for (name, c) in [("energy_per_byte_pj", &self.energy_per_byte_pj), ("energy_per_flop_pj", &self.energy_per_flop_pj)] {
            if let Some(c) = c {
                check(name, c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_tables_parse_and_match_the_spec() {
        let t = TierCostTable::default_table();
        assert_eq!((t.mvm_latency_ns.value, t.mvm_energy_pj.value), (100.0, 10_000.0));
        assert!((t.communication_pj_per_mvm(512) - 1e-5 * 8.0 * 512.0 * 1e3).abs() < 1e-9);
        // the fits reproduce the published table: attention at n = 64, d = 256 is 4295 ns / 23 376 pJ
        let a = t.attention(64.0, 256.0);
        assert!((a.latency_ns - 4295.0).abs() < 5.0 && (a.energy_pj - 23_376.0).abs() / 23_376.0 < 1e-3, "{a:?}");
        // table points exactly, linear in between and beyond
        assert_eq!(t.op(&t.per_token.gelu, 512.0).latency_ns, 38.0);
        assert_eq!(t.op(&t.per_token.gelu, 640.0).latency_ns, 46.0);
        assert_eq!(t.op(&t.per_token.gelu, 2048.0).latency_ns, 134.0);
        assert_eq!(t.op(&t.per_token.layernorm, 4096.0).latency_ns, 100.0);
        let g = GpuTable::h100_sxm();
        assert_eq!((g.bandwidth_bytes_per_s.value, g.peak_flops.value, g.board_power_w.value, g.bytes_per_weight.value), (3.35e12, 989e12, 700.0, 2.0));
    }

    #[test]
    fn bad_cost_tables_name_the_field() {
        let bad = MOE_3D_TABLE.replacen("value = 100.0", "value = -100.0", 1);
        assert!(TierCostTable::parse(&bad).unwrap_err().contains("mvm_latency_ns.value = -100"));
        let mut t = TierCostTable::default_table();
        t.digital_units.value = 0.0;
        assert!(t.validate().unwrap_err().contains("digital_units.value = 0"));
        let mut t = TierCostTable::default_table();
        t.per_token.add.energy_pj.pop();
        assert!(t.validate().unwrap_err().contains("per_token.add.energy_pj has 3 values"));
        let mut t = TierCostTable::default_table();
        t.passive_power_w.value = f64::NAN;
        assert!(t.validate().unwrap_err().contains("passive_power_w.value = NaN"));
        let mut g = GpuTable::h100_sxm();
        g.board_power_w.value = -1.0;
        assert!(g.validate().unwrap_err().contains("board_power_w.value = -1"));
        g.board_power_w.value = 700.0;
        g.bandwidth_bytes_per_s.value = 0.0;
        assert!(g.validate().unwrap_err().contains("bandwidth_bytes_per_s.value = 0"));
        g.bandwidth_bytes_per_s.value = 1.0;
        g.energy_per_flop_pj = Some(Cost { value: -0.5, source: String::new() });
        assert!(g.validate().unwrap_err().contains("energy_per_flop_pj.value = -0.5"));
    }
}
