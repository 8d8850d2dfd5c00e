//! 3D AIMC against a GPU: the MoE cost model of each sweep point (mapping, schedule, energy per token, the roofline comparison).

use crate::report::document::*;
use crate::report::format::*;
use crate::results::*;

/// The MoE cost model in words and tables: per sweep point the mapping, the schedule's
/// distributions, the energy per token by component; the AIMC / GPU ratios per batch size and
/// every assumption they rest on.
pub(super) fn moe_blocks(results: &Results) -> Vec<Block> {
    let pts: Vec<(&str, &crate::results::MoeCost)> =
        results.points.iter().filter_map(|p| p.moe.as_ref().map(|m| (if p.series.is_empty() { "all points" } else { p.series.as_str() }, m))).collect();
    let Some((_, first)) = pts.first() else {
        return vec![];
    };
    let mut blocks = vec![Block::Paragraph(text(format!(
        "Each trial draws the routing of a batch of {} tokens (the trial's noisy router, or the file's routing density) and schedules it event by event: MVMs on different tiers of one tile serialise (a tier conflict), tiles run in parallel, digital units are a shared pool. Costs from \"{}\"; the GPU from \"{}\". Means over trials, with the 5–95 % range of the per-trial values.",
        first.tokens, first.cost_table, first.gpu_table
    )))];
    let rows = pts
        .iter()
        .map(|(name, m)| {
            let e = &m.energy_per_token;
            let share = |v: f64| if e.total_pj > 0.0 { format!("{:.0} %", 100.0 * v / e.total_pj) } else { "–".into() };
            vec![
                text(name.to_string()),
                text(format!(
                    "{} / {} tiles, {} tiers ({:.0} % of all, fill {:.0} %)",
                    m.tiles_used,
                    m.tiles,
                    m.tiers_used,
                    100.0 * m.utilisation,
                    100.0 * m.mean_fill
                )),
                text(format!("{} ({}–{})", latency_label(m.latency_ns.mean), latency_label(m.latency_ns.p05), latency_label(m.latency_ns.p95))),
                text(format!("{} ({}–{})", significant(m.tier_conflicts.mean, 3), significant(m.tier_conflicts.p05, 3), significant(m.tier_conflicts.p95, 3))),
                text(significant(m.tokens_per_s.mean, 3)),
                text(energy_label(m.energy_per_token_pj.mean)),
                text(format!("MVM {}, comm. {}, digital {}, DRAM {}", share(e.mvm_pj), share(e.communication_pj), share(e.digital_pj), share(e.dram_pj))),
            ]
        })
        .collect();
    blocks.push(Block::Table(Table {
        header: ["series", "mapping", "latency per token", "tier conflicts per batch", "tokens/s", "energy per token", "energy by component"]
            .iter()
            .map(|h| h.to_string())
            .collect(),
        rows,
        right_aligned: vec![false, false, true, true, true, true, false],
    }));
    let mut rows = Vec::new();
    for (name, m) in &pts {
        for g in &m.gpu {
            rows.push(vec![
                text(name.to_string()),
                text(g.batch.to_string()),
                text(significant(g.aimc_tokens_per_s, 3)),
                text(significant(g.gpu_tokens_per_s, 3)),
                text(format!("{}{}", significant(g.throughput_ratio, 3), if g.gpu_memory_bound { " (GPU memory-bound)" } else { "" })),
                text(energy_label(g.aimc_energy_per_token_pj)),
                text(energy_label(g.gpu_energy_per_token_pj)),
                text(significant(g.energy_efficiency_ratio, 3)),
            ]);
        }
    }
    let best =
        pts.iter().flat_map(|(n, m)| m.gpu.iter().map(move |g| (n, g))).max_by(|a, b| a.1.energy_efficiency_ratio.total_cmp(&b.1.energy_efficiency_ratio));
    if let Some((n, g)) = best {
        blocks.push(Block::Paragraph(text(format!(
            "Against the GPU roofline of the same layer, the largest energy-efficiency ratio is {}× ({n}, batch {}), with a throughput ratio of {}×. These ratios rest on the assumptions listed below; change the cost tables to test your own technology.",
            significant(g.energy_efficiency_ratio, 3),
            g.batch,
            significant(g.throughput_ratio, 3)
        ))));
    }
    blocks.push(Block::Table(Table {
        header: ["series", "batch", "AIMC tokens/s", "GPU tokens/s", "throughput ratio", "AIMC energy/token", "GPU energy/token", "energy-efficiency ratio"]
            .iter()
            .map(|h| h.to_string())
            .collect(),
        rows,
        right_aligned: vec![false, true, true, true, true, true, true, true],
    }));
    blocks.push(Block::List(first.assumptions.iter().map(|a| text(a.clone())).collect()));
    let secs: f64 = pts.iter().map(|(_, m)| m.schedule_seconds).sum();
    let rate = pts.iter().map(|(_, m)| m.tokens_scheduled_per_s * m.schedule_seconds).sum::<f64>() / secs.max(1e-12);
    blocks.push(Block::Paragraph(text(format!(
        "The schedule simulation took {} for all points ({} tokens scheduled per second).",
        duration_label(secs),
        significant(rate, 3)
    ))));
    blocks
}
