//! What the MoE / 3D-tier figures share: the points with a cost model, grouping of identical
//! ones, the energy components. The figures exist only when some point carries a [`MoeCost`], so
//! the reports of the other workloads do not change; apart from unit scaling and layout they
//! compute nothing.

use crate::results::*;

/// The points with a cost model (the first time of each MoE sweep point), in results order.
pub(crate) fn moe_points(results: &Results) -> Vec<(&Point, &MoeCost)> {
    results.points.iter().filter_map(|p| p.moe.as_ref().map(|m| (p, m))).collect()
}

/// Sweep points whose drawn data are identical, drawn once. A sweep axis the data do not depend
/// on (the GPU comparison does not see the tier noise, for instance) would otherwise draw each
/// line exactly over the previous one, leaving only the last colour visible.
pub(crate) struct Group<'a> {
    /// The members' shared `axis=value` labels and their count, or the only member's series.
    pub(crate) label: String,
    /// The first member's cost model (every member's drawn data are the same).
    pub(crate) cost: &'a MoeCost,
}

/// Groups `points` by `key` (what a figure draws of a point), in order of first appearance.
pub(crate) fn grouped<'a, K: PartialEq>(points: &[(&'a Point, &'a MoeCost)], key: impl Fn(&'a MoeCost) -> K) -> Vec<Group<'a>> {
    let mut groups: Vec<(K, Vec<&Point>, &MoeCost)> = Vec::new();
    for &(p, m) in points {
        let k = key(m);
        match groups.iter_mut().find(|g| g.0 == k) {
            Some(g) => g.1.push(p),
            None => groups.push((k, vec![p], m)),
        }
    }
    groups.into_iter().map(|(_, members, cost)| Group { label: group_label(&members), cost }).collect()
}

pub(crate) fn group_label(members: &[&Point]) -> String {
    match members {
        [] => String::new(),
        [only] => label(only).to_string(),
        [first, ..] => {
            let common: Vec<String> =
                first.labels.iter().filter(|(k, v)| members.iter().all(|p| p.labels.get(*k) == Some(v))).map(|(k, v)| format!("{k}={v}")).collect();
            if common.is_empty() {
                format!("{} sweep points", members.len())
            } else {
                format!("{} ({} sweep points)", common.join(", "), members.len())
            }
        }
    }
}

/// What the GPU figure draws of a point: the batch sizes and both ratios.
pub(crate) fn gpu_key(m: &MoeCost) -> Vec<(u32, u64, u64)> {
    m.gpu.iter().map(|g| (g.batch, g.throughput_ratio.to_bits(), g.energy_efficiency_ratio.to_bits())).collect()
}

/// What the latency figure draws of a point: the histogram and the mean.
pub(crate) fn histogram_key(m: &MoeCost) -> (&crate::stats::Histogram, u64) {
    (&m.latency_hist, m.latency_ns.mean.to_bits())
}

/// A point's name in legends and titles; a sweep without axes has one unnamed point.
pub(crate) fn label(point: &Point) -> &str {
    if point.series.is_empty() {
        "all points"
    } else {
        &point.series
    }
}

/// Components of [`EnergyBreakdown`] in stacking order; component k is drawn in `palette(k)`.
pub(crate) const COMPONENTS: [&str; 6] = ["tier MVMs", "communication", "digital units", "attention units", "DRAM (KV cache)", "passive"];

pub(crate) fn components(e: &EnergyBreakdown) -> [f64; 6] {
    [e.mvm_pj, e.communication_pj, e.digital_pj, e.attention_pj, e.dram_pj, e.passive_pj]
}

/// Which components are non-zero at some point (the others are left out of the legend).
pub(crate) fn present_components(points: &[(&Point, &MoeCost)]) -> [bool; 6] {
    let mut present = [false; 6];
    for (_, m) in points {
        for (k, v) in components(&m.energy_per_token).into_iter().enumerate() {
            present[k] |= v > 0.0;
        }
    }
    present
}

#[cfg(test)]
mod tests {
    use super::super::tier_heatmap::viridis;
    use super::*;
    use crate::report::format::*;
    use crate::report::plots::canvas::*;
    use crate::report::plots::write_plots;
    use crate::report::tests::{synthetic, temp_dir};
    use crate::results::GpuPoint;
    use crate::stats::{Histogram, Summary};
    use plotters::style::RGBColor;

    const STEMS: [&str; 4] = ["energy_breakdown", "gpu_ratio_vs_batch", "latency_histogram", "tier_heatmap"];

    /// A cost model shaped like a run's: `scale` spreads latencies, energies and ratios apart.
    fn moe_cost(scale: f64) -> MoeCost {
        let (tiles, tiers) = (12, 8);
        let latencies: Vec<f64> = (0..400).map(|i| 800.0 * scale + 40.0 * f64::from(i % 37) + 3.0 * f64::from(i % 11) * scale).collect();
        let (lo, hi) = latencies.iter().fold((f64::INFINITY, 0f64), |(a, b), &v| (a.min(v), b.max(v)));
        let mut latency_hist = Histogram::new(lo, hi * 1.0001, 40).unwrap();
        latencies.iter().for_each(|v| latency_hist.push(*v));
        let energy_per_token = EnergyBreakdown {
            mvm_pj: 5200.0 * scale,
            communication_pj: 900.0,
            digital_pj: 1400.0,
            attention_pj: 0.0,
            dram_pj: 300.0 * scale,
            passive_pj: 650.0,
            total_pj: 5200.0 * scale + 900.0 + 1400.0 + 300.0 * scale + 650.0,
        };
        let summary = |v: f64| Summary::from_sample(&[0.95 * v, v, 1.05 * v]).unwrap();
        MoeCost {
            strategy: "greedy".to_string(),
            tiles,
            tiers,
            tiers_used: 40,
            tiles_used: 10,
            utilisation: 40.0 / 96.0,
            mean_fill: 0.8,
            tokens: 64,
            latency_ns: Summary::from_sample(&latencies).unwrap(),
            tier_conflicts: summary(12.0),
            tokens_per_s: summary(2e6 / scale),
            energy_per_token_pj: summary(energy_per_token.total_pj),
            latency_hist,
            energy_per_token,
            tier_activations: (0..tiles)
                .map(|t| (0..tiers).map(|l| if t < 10 && l < 5 { f64::from((t * 7 + l * 3) % 11) * scale } else { 0.0 }).collect())
                .collect(),
            tile_utilisation: vec![0.5; tiles as usize],
            area_mm2: Some(12.0),
            gpu: [1_u32, 8, 64, 512]
                .iter()
                .map(|&batch| {
                    let b = f64::from(batch);
                    GpuPoint {
                        batch,
                        aimc_tokens_per_s: 2e6 / scale,
                        aimc_energy_per_token_pj: 8000.0 * scale,
                        gpu_tokens_per_s: 1e4 * b,
                        gpu_energy_per_token_pj: 4e6 / b,
                        gpu_memory_bound: batch < 64,
                        throughput_ratio: 200.0 / b / scale,
                        energy_efficiency_ratio: 500.0 / b.sqrt() / scale,
                    }
                })
                .collect(),
            assumptions: vec!["test".to_string()],
            cost_table: "test table".to_string(),
            gpu_table: "H100 SXM".to_string(),
            schedule_seconds: 0.01,
            tokens_scheduled_per_s: 1e6,
        }
    }

    /// The report sample with its two series' first-time points carrying cost models.
    fn moe_results() -> Results {
        let mut results = synthetic();
        results.workload = "moe".to_string();
        let firsts: Vec<usize> =
            (0..results.points.len()).filter(|&i| !results.points[..i].iter().any(|q| q.sweep_index == results.points[i].sweep_index)).collect();
        assert_eq!(firsts.len(), 2);
        for (k, i) in firsts.into_iter().enumerate() {
            results.points[i].moe = Some(moe_cost(1.0 + 1.5 * k as f64));
        }
        results
    }

    #[test]
    fn moe_figures_are_written_after_the_others() {
        let results = moe_results();
        let dir = temp_dir("moe-plots");
        std::fs::create_dir_all(&dir).unwrap();
        let plots = write_plots(&results, &dir).unwrap();
        let stems: Vec<&str> = plots.iter().map(|p| p.stem.as_str()).collect();
        assert_eq!(stems[stems.len() - 4..], STEMS, "{stems:?}");
        for stem in STEMS {
            for ext in ["png", "svg"] {
                let path = dir.join(format!("{stem}.{ext}"));
                let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(bytes.len() > 1000, "{} is only {} bytes", path.display(), bytes.len());
            }
        }
        let heatmap = plots.iter().find(|p| p.stem == "tier_heatmap").unwrap();
        assert!(heatmap.title.contains("gdc=off"), "{}", heatmap.title);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn other_workloads_get_no_moe_figures() {
        let dir = temp_dir("moe-plots-none");
        std::fs::create_dir_all(&dir).unwrap();
        let plots = write_plots(&synthetic(), &dir).unwrap();
        for stem in STEMS {
            assert!(plots.iter().all(|p| p.stem != stem), "{stem}");
            assert!(!dir.join(format!("{stem}.png")).exists() && !dir.join(format!("{stem}.svg")).exists(), "{stem}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn identical_data_is_drawn_once() {
        let mut results = moe_results();
        let points = moe_points(&results);
        let labels = |groups: Vec<Group<'_>>| groups.into_iter().map(|g| g.label).collect::<Vec<_>>();
        assert_eq!(labels(grouped(&points, gpu_key)), ["gdc=off", "gdc=readout"]);
        for p in &mut results.points {
            if p.moe.is_some() {
                p.moe = Some(moe_cost(1.0));
            }
        }
        let points = moe_points(&results);
        assert_eq!(labels(grouped(&points, gpu_key)), ["2 sweep points"]);
        assert_eq!(labels(grouped(&points, histogram_key)), ["2 sweep points"]);
    }

    #[test]
    fn axes_ticks_are_round_and_readable() {
        let labels = |t: Vec<(f64, String)>| t.into_iter().map(|(_, l)| l).collect::<Vec<_>>();
        assert_eq!(labels(linear_ticks(0.0, 10.5, 6.0)), ["0", "2", "4", "6", "8", "10"]);
        assert_eq!(labels(linear_ticks(0.0, 0.9, 4.0)), ["0.0", "0.2", "0.4", "0.6", "0.8"]);
        assert_eq!(labels(log_ticks(-1.2, 3.1)), ["0.1", "1", "10", "100", "1000"]);
        assert_eq!(labels(log_ticks(-0.2, 0.8)), ["1", "2", "5"]);
        assert_eq!(log_label(1.0, 6), "10⁶");
        assert_eq!(log_label(1.0, -5), "10⁻⁵");
        assert_eq!(labels(index_ticks(64, 640.0, 40.0)), (0..64).step_by(5).map(|i| i.to_string()).collect::<Vec<_>>());
        assert_eq!(energy_unit(12_000.0), ("nJ", 1e3));
        assert_eq!(significant(12.345, 3), "12.3");
        assert_eq!(viridis(0.0), RGBColor(68, 1, 84));
        assert_eq!(viridis(1.0), RGBColor(253, 231, 37));
    }
}
