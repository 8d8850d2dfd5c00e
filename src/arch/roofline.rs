//! GPU roofline baseline of the same MoE layer and the AIMC / GPU ratios (tiers-energy.md §4; Büchel
//! et al., Nat. Comput. Sci. 5, 13–26 (2025), "Comparison with GPUs"): time per batch step =
//! max(weight bytes / bandwidth, FLOPs / peak), energy = board power × time or per-byte + per-FLOP.

use super::cost::GpuTable;
use super::schedule::ScheduleResult;
use super::tiers::MoeLayer;
use serde::{Deserialize, Serialize};

/// The GPU's time and energy for one MoE layer at one batch size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GpuEstimate {
    /// The GPU table's name.
    pub table: String,
    /// Tokens per batch step.
    pub batch: u32,
    /// Experts whose weights are read per step (expected distinct, or all E).
    pub experts_read: f64,
    /// Weight bytes read per step.
    pub bytes_per_step: f64,
    /// FLOPs per step (2 per multiply-accumulate).
    pub flops_per_step: f64,
    /// bytes / bandwidth, s.
    pub memory_time_s: f64,
    /// FLOPs / peak, s.
    pub compute_time_s: f64,
    /// max of the two, s.
    pub time_per_step_s: f64,
    /// Whether the memory term is the larger.
    pub memory_bound: bool,
    /// batch / time per step.
    pub tokens_per_s: f64,
    /// Energy per step / batch, pJ.
    pub energy_per_token_pj: f64,
    /// The assumptions, in words.
    pub assumptions: Vec<String>,
}

/// AIMC / GPU ratios with the assumptions behind them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ratios {
    /// AIMC tokens/s ÷ GPU tokens/s (> 1: AIMC faster).
    pub throughput_ratio: f64,
    /// GPU energy per token ÷ AIMC energy per token = AIMC tokens/J ÷ GPU tokens/J (> 1: AIMC more efficient).
    pub energy_efficiency_ratio: f64,
    /// Every assumption of both sides, in words, for the report.
    pub assumptions: Vec<String>,
}

/// Expected number of distinct experts chosen by `batch` independent tokens when token-level inclusion
/// probabilities are `inclusion`: Σ_i 1 − (1 − π_i)^B.
pub fn expected_distinct_experts(inclusion: &[f64], batch: u32) -> f64 {
    inclusion.iter().map(|p| 1.0 - (1.0 - p.clamp(0.0, 1.0)).powi(batch as i32)).sum()
}

/// The roofline of `layer` on `gpu` at batch size `batch`.
///
/// Weights read per batch step = the router + the experts the batch activates, each weight once per
/// step (perfect reuse across the batch). With `inclusion` = each expert's probability of being chosen
/// by one token (k/E for uniform routing; the diagonal of
/// [`super::routing::coselection_density`] of sampled tokens otherwise) the experts read are the
/// expected distinct experts of `batch` independent tokens ([`expected_distinct_experts`]); with `None`
/// all E experts are read, an upper bound (a dense-weight GPU kernel). Activations, the KV cache, kernel
/// launches and achieved-vs-peak efficiency are ignored: an optimistic GPU.
pub fn gpu_roofline(gpu: &GpuTable, layer: &MoeLayer, batch: u32, inclusion: Option<&[f64]>) -> Result<GpuEstimate, String> {
    gpu.validate()?;
    layer.validate()?;
    if batch == 0 {
        return Err("batch = 0: the GPU batch size must be >= 1".into());
    }
    let experts_read = match inclusion {
        None => layer.experts as f64,
        Some(p) => {
            if p.len() != layer.experts as usize {
                return Err(format!("inclusion has {} entries but layer.experts = {}: give one probability per expert", p.len(), layer.experts));
            }
            if let Some((i, x)) = p.iter().enumerate().find(|(_, x)| !(x.is_finite() && (0.0..=1.0).contains(*x))) {
                return Err(format!("inclusion[{i}] = {x}: must be a probability in [0, 1]"));
            }
            expected_distinct_experts(p, batch)
        }
    };
    let bpw = gpu.bytes_per_weight.value;
    let bytes = bpw * (layer.router_weights() as f64 + experts_read * layer.expert_weights() as f64);
    let flops = batch as f64 * layer.flops_per_token();
    let memory_time_s = bytes / gpu.bandwidth_bytes_per_s.value;
    let compute_time_s = flops / gpu.peak_flops.value;
    let time = memory_time_s.max(compute_time_s);
    let memory_bound = memory_time_s >= compute_time_s;
    let per_unit = gpu.energy_per_byte_pj.is_some() || gpu.energy_per_flop_pj.is_some();
    let energy_step_pj = if per_unit {
        let v = |c: &Option<super::cost::Cost>| c.as_ref().map_or(0.0, |c| c.value);
        bytes * v(&gpu.energy_per_byte_pj) + flops * v(&gpu.energy_per_flop_pj)
    } else {
        gpu.board_power_w.value * time * 1e12
    };
    let read = match inclusion {
        None => format!("all {} experts (an upper bound: every expert's weights read each step)", layer.experts),
        Some(_) => format!("{experts_read:.2} of {} experts (expected distinct experts of {batch} independent tokens for the routing)", layer.experts),
    };
    let assumptions = vec![
        format!(
            "GPU '{}': roofline per batch step of {batch} tokens = max(weight bytes / {:.3e} B/s, FLOPs / {:.3e} FLOP/s) = max({memory_time_s:.3e} s, \
             {compute_time_s:.3e} s): {}",
            gpu.name,
            gpu.bandwidth_bytes_per_s.value,
            gpu.peak_flops.value,
            if memory_bound { "memory-bound" } else { "compute-bound" }
        ),
        format!(
            "GPU reads the router and {read} once per step, {bpw} bytes per weight; activations, KV cache and launch overheads ignored; \
             peak bandwidth and FLOP/s reached (optimistic for the GPU)"
        ),
        if per_unit {
            "GPU energy = bytes x energy_per_byte_pj + FLOPs x energy_per_flop_pj (a missing one counts 0)".to_string()
        } else {
            format!("GPU energy = board power {} W x step time (the board at full power throughout)", gpu.board_power_w.value)
        },
    ];
    Ok(GpuEstimate {
        table: gpu.name.clone(),
        batch,
        experts_read,
        bytes_per_step: bytes,
        flops_per_step: flops,
        memory_time_s,
        compute_time_s,
        time_per_step_s: time,
        memory_bound,
        tokens_per_s: batch as f64 / time,
        energy_per_token_pj: energy_step_pj / batch as f64,
        assumptions,
    })
}

/// AIMC / GPU ratios for the same layer, with both sides' assumptions written out.
pub fn ratios(aimc: &ScheduleResult, gpu: &GpuEstimate) -> Ratios {
    let mut assumptions = vec![format!(
        "AIMC '{}': weights stationary in the tiers (no weight movement); {} tokens of one MoE layer arriving at t = 0, expert choices sampled \
         from the routing density; throughput = tokens / makespan of the event-driven schedule (tier conflicts serialise)",
        aimc.table, aimc.tokens
    )];
    assumptions.extend(gpu.assumptions.iter().cloned());
    if aimc.tokens != gpu.batch {
        assumptions.push(format!("batch sizes differ: AIMC schedules {} tokens, the GPU roofline uses batch {}", aimc.tokens, gpu.batch));
    }
    assumptions
        .push("ratios are AIMC over GPU: throughput = AIMC tokens/s / GPU tokens/s; energy efficiency = GPU energy per token / AIMC energy per token".into());
    Ratios { throughput_ratio: aimc.tokens_per_s / gpu.tokens_per_s, energy_efficiency_ratio: gpu.energy_per_token_pj / aimc.energy_per_token_pj, assumptions }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::cost::Cost;

    fn gpu(bw: f64, flops: f64, watts: f64) -> GpuTable {
        let c = |value| Cost { value, source: "test".into() };
        GpuTable {
            name: "test".into(),
            bandwidth_bytes_per_s: c(bw),
            peak_flops: c(flops),
            board_power_w: c(watts),
            bytes_per_weight: c(2.0),
            energy_per_byte_pj: None,
            energy_per_flop_pj: None,
        }
    }
    const LAYER: MoeLayer = MoeLayer { d_model: 1024, d_ff: 2048, experts: 8, top_k: 2, d_out: 0 };

    #[test]
    fn memory_bound_is_bytes_over_bandwidth() {
        // all 8 experts: 2 B x (1024 x 8 + 8 x 2 x 1024 x 2048) = 67 125 248 B at 1e12 B/s
        let r = gpu_roofline(&gpu(1e12, 1e15, 700.0), &LAYER, 4, None).unwrap();
        let bytes = 2.0 * (1024.0 * 8.0 + 8.0 * 2.0 * 1024.0 * 2048.0);
        assert_eq!(r.bytes_per_step, bytes);
        assert!(r.memory_bound);
        assert_eq!(r.time_per_step_s, bytes / 1e12);
        assert_eq!(r.tokens_per_s, 4.0 / (bytes / 1e12));
        assert!((r.energy_per_token_pj - 700.0 * bytes / 1e12 * 1e12 / 4.0).abs() < 1e-6 * r.energy_per_token_pj);
    }

    #[test]
    fn compute_bound_and_per_unit_energy() {
        let mut g = gpu(1e15, 1e9, 700.0);
        g.energy_per_byte_pj = Some(Cost { value: 10.0, source: "t".into() });
        let r = gpu_roofline(&g, &LAYER, 2, Some(&[0.25; 8])).unwrap();
        let flops = 2.0 * 2.0 * (1024.0 * 8.0 + 2.0 * 2.0 * 1024.0 * 2048.0);
        assert!(!r.memory_bound);
        assert_eq!(r.time_per_step_s, flops / 1e9);
        // uniform top-2 of 8 at batch 2: 8 (1 - 0.75^2) = 3.5 experts
        assert!((r.experts_read - 3.5).abs() < 1e-12);
        assert_eq!(r.energy_per_token_pj, r.bytes_per_step * 10.0 / 2.0);
        assert!(gpu_roofline(&g, &LAYER, 0, None).unwrap_err().contains("batch = 0"));
        assert!(gpu_roofline(&g, &LAYER, 2, Some(&[0.25; 3])).unwrap_err().contains("inclusion has 3"));
    }

    #[test]
    fn ratios_and_assumptions() {
        let g = gpu_roofline(&GpuTable::h100_sxm(), &LAYER, 8, None).unwrap();
        let aimc = ScheduleResult { table: "t".into(), tokens: 8, makespan_ns: 1000.0, tokens_per_s: 8e6, energy_per_token_pj: 1e6, ..Default::default() };
        let r = ratios(&aimc, &g);
        assert_eq!(r.throughput_ratio, 8e6 / g.tokens_per_s);
        assert_eq!(r.energy_efficiency_ratio, g.energy_per_token_pj / 1e6);
        assert!(r.assumptions.iter().any(|a| a.contains("all 8 experts")) && r.assumptions.iter().any(|a| a.contains("700 W")));
    }
}
