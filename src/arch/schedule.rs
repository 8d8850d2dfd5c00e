//! Event-driven schedule, latency and energy of one MoE layer for a batch of tokens on the 3D AIMC
//! accelerator (tiers-energy.md §1 and §3; Büchel et al., Nat. Comput. Sci. 5, 13–26 (2025), "Simulator"
//! in Methods; threedsim's `schedule_execution`): one active tier per tile, tiles in parallel, pools of
//! digital and attention units, the KV-cache DRAM, and the energy breakdown.

use super::cost::{OpCost, TierCostTable};
use super::mapping::{Mapping, MatrixMap};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// What the schedule includes besides the MoE layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleOptions {
    /// Context length of an attention op run per token before the router (0 = no attention): a KV-cache
    /// read of 2·n·d_model values from DRAM, then the attention fit on an attention unit.
    #[serde(default)]
    pub attention_context: u32,
}

/// Energy of the batch by component, pJ (plain data of the results schema, where a MoE point
/// stores its mean per token).
pub use crate::results::EnergyBreakdown;

/// Timing, conflicts, utilisation and energy of one scheduled batch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScheduleResult {
    /// The cost table's name.
    pub table: String,
    /// Tokens in the batch (all arrive at t = 0).
    pub tokens: u32,
    /// Finish time of the last op, ns.
    pub makespan_ns: f64,
    /// Finish time of each token's gate-weighted sum, ns.
    pub per_token_latency_ns: Vec<f64>,
    /// MVMs that waited for their tile because another tier of it was computing.
    pub tier_conflicts: u64,
    /// Total wait of those MVMs, ns.
    pub conflict_wait_ns: f64,
    /// MVMs that waited for the same tier (queueing on one crossbar, not a tier conflict).
    pub same_tier_waits: u64,
    /// Total wait of those MVMs, ns.
    pub same_tier_wait_ns: f64,
    /// Time each tile spent computing, ns (utilisation = busy / makespan).
    pub tile_busy_ns: Vec<f64>,
    /// MVMs per tile and tier (a heat map).
    pub tier_activations: Vec<Vec<u64>>,
    /// Tier MVMs in all.
    pub mvms: u64,
    /// Energy by component.
    pub energy: EnergyBreakdown,
    /// tokens / makespan.
    pub tokens_per_s: f64,
    /// total energy / tokens.
    pub energy_per_token_pj: f64,
    /// tiles × tier footprint, when the table gives a tier area.
    pub area_mm2: Option<f64>,
}

impl ScheduleResult {
    /// Busy fraction of each tile over the makespan.
    pub fn tile_utilisation(&self) -> Vec<f64> {
        self.tile_busy_ns.iter().map(|b| if self.makespan_ns > 0.0 { b / self.makespan_ns } else { 0.0 }).collect()
    }
}

#[derive(Clone, Copy)]
enum Op {
    Mvm {
        tile: u32,
        tier: u32,
    },
    Digital(OpCost),
    Attention(OpCost),
    Dram {
        ns: f64,
    },
    /// The last op of a token: a digital op whose finish is the token's latency.
    Finish(OpCost),
}

struct Node {
    op: Op,
    token: u32,
    waiting: u32,
    ready: f64,
    succ: Vec<usize>,
}

struct Graph(Vec<Node>);

impl Graph {
    fn add(&mut self, op: Op, token: u32, preds: &[usize]) -> usize {
        let id = self.0.len();
        self.0.push(Node { op, token, waiting: preds.len() as u32, ready: 0.0, succ: Vec::new() });
        for &p in preds {
            self.0[p].succ.push(id);
        }
        id
    }
    fn mvms(&mut self, m: &MatrixMap, token: u32, preds: &[usize]) -> Vec<usize> {
        m.chunks.iter().map(|c| self.add(Op::Mvm { tile: c.tile, tier: c.tier }, token, preds)).collect()
    }
}

/// Earliest-free unit of a pool (ties: lowest index).
fn earliest(pool: &[f64]) -> usize {
    (0..pool.len()).min_by(|&a, &b| pool[a].total_cmp(&pool[b]).then(a.cmp(&b))).unwrap_or(0)
}

/// Schedules `tokens` (each a list of distinct expert indices) through the mapped layer.
///
/// Per token: [KV read on the DRAM → attention on an attention unit] → the router's chunks → a digital
/// op adding the router's partial sums ((in_blocks − 1) Adds at width E) → for each chosen expert:
/// its FFN1 chunks → a digital op (partial sums, (in_blocks − 1) Adds at d_ff, then GeLU at d_ff) →
/// its FFN2 chunks → once every chosen expert is done, one digital op adding FFN2's partial sums
/// ((in_blocks − 1) Adds at d_model per expert) and the gate-weighted sum (k Adds at d_model).
/// All chunks of a matrix start when their input is ready (input broadcast); a result is available
/// `communication_latency_ns` after its MVM ends. Softmax and top-k are not in the cost table and cost 0.
///
/// Resources: an MVM holds its tile for `mvm_latency_ns`. A tile runs one MVM at a time, so MVMs on
/// different tiers of one tile serialise: the wait is a *tier conflict* when the MVM it waits behind
/// is on another tier, and a *same-tier wait* (plain queueing on one crossbar) when on the same tier.
/// Different tiles run in parallel. Digital and attention ops take the earliest free unit of their pool;
/// the DRAM serves one read at a time. Every resource is FIFO in ready time (ties: token, then op
/// order), a deterministic list schedule: ops are released in non-decreasing ready time, each starts
/// at max(ready, resource free).
pub fn schedule(mapping: &Mapping, table: &TierCostTable, tokens: &[Vec<u32>], opts: &ScheduleOptions) -> Result<ScheduleResult, String> {
    table.validate()?;
    let experts = mapping.experts();
    if tokens.is_empty() {
        return Err("schedule: no tokens; give at least one token's expert choice".into());
    }
    for (t, choice) in tokens.iter().enumerate() {
        if choice.is_empty() {
            return Err(format!("token {t} chose no expert: every token needs >= 1 (top_k)"));
        }
        if let Some(e) = choice.iter().find(|&&e| e >= experts) {
            return Err(format!("token {t} chose expert {e} but the mapping has experts 0..{experts}"));
        }
        if (1..choice.len()).any(|i| choice[..i].contains(&choice[i])) {
            return Err(format!("token {t} chose {choice:?}: experts must be distinct"));
        }
    }
    let router = mapping.router();
    let d_model = router.matrix.inputs as f64;
    let d_ff = mapping.ffn1(0).matrix.outputs as f64;
    let p = &table.per_token;
    let add = |d: f64, times: f64| {
        let c = table.op(&p.add, d);
        OpCost { latency_ns: c.latency_ns * times, energy_pj: c.energy_pj * times }
    };
    let kv_bytes = 2.0 * opts.attention_context as f64 * d_model * table.kv_bytes_per_value.value;
    let mut g = Graph(Vec::new());
    for (t, choice) in tokens.iter().enumerate() {
        let t = t as u32;
        let mut head: Vec<usize> = Vec::new();
        if opts.attention_context > 0 {
            let dram = g.add(Op::Dram { ns: kv_bytes / table.dram_bandwidth_bytes_per_s.value * 1e9 }, t, &[]);
            head = vec![g.add(Op::Attention(table.attention(opts.attention_context as f64, d_model)), t, &[dram])];
        }
        let r = g.mvms(router, t, &head);
        let reduce = g.add(Op::Digital(add(experts as f64, (router.in_blocks - 1) as f64)), t, &r);
        let mut ends = Vec::new();
        for &e in choice {
            let (f1, f2) = (mapping.ffn1(e), mapping.ffn2(e));
            let c1 = g.mvms(f1, t, &[reduce]);
            let gelu = table.op(&p.gelu, d_ff);
            let acc = add(d_ff, (f1.in_blocks - 1) as f64);
            let act = g.add(Op::Digital(OpCost { latency_ns: acc.latency_ns + gelu.latency_ns, energy_pj: acc.energy_pj + gelu.energy_pj }), t, &c1);
            ends.extend(g.mvms(f2, t, &[act]));
        }
        let sums: f64 = choice.iter().map(|&e| (mapping.ffn2(e).in_blocks - 1) as f64).sum::<f64>() + choice.len() as f64;
        g.add(Op::Finish(add(d_model, sums)), t, &ends);
    }

    let (tiles, tiers) = (mapping.tiles as usize, mapping.tiers as usize);
    let mvm_ns = table.mvm_latency_ns.value;
    let comm_ns = table.communication_latency_ns.value;
    let mut tile_free = vec![0.0f64; tiles];
    let mut last_tier: Vec<Option<u32>> = vec![None; tiles];
    let mut digital = vec![0.0f64; table.digital_units.value as usize];
    let mut attention = vec![0.0f64; table.attention_units.value as usize];
    let mut dram_free = 0.0f64;
    let mut res = ScheduleResult {
        table: table.name.clone(),
        tokens: tokens.len() as u32,
        per_token_latency_ns: vec![0.0; tokens.len()],
        tile_busy_ns: vec![0.0; tiles],
        tier_activations: vec![vec![0; tiers]; tiles],
        area_mm2: table.tier_area_mm2.as_ref().map(|a| a.value * tiles as f64),
        ..Default::default()
    };
    let mut dram_active_ns = 0.0;
    // Times are finite and >= 0, so their bit patterns order like the values.
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> = (0..g.0.len()).filter(|&i| g.0[i].waiting == 0).map(|i| Reverse((0, i))).collect();
    while let Some(Reverse((_, id))) = heap.pop() {
        let ready = g.0[id].ready;
        let pool_op = |pool: &mut Vec<f64>, c: OpCost| {
            let u = earliest(pool);
            let end = ready.max(pool[u]) + c.latency_ns;
            pool[u] = end;
            end
        };
        let done = match g.0[id].op {
            Op::Mvm { tile, tier } => {
                let (ti, start) = (tile as usize, ready.max(tile_free[tile as usize]));
                if start > ready {
                    if last_tier[ti] == Some(tier) {
                        res.same_tier_waits += 1;
                        res.same_tier_wait_ns += start - ready;
                    } else {
                        res.tier_conflicts += 1;
                        res.conflict_wait_ns += start - ready;
                    }
                }
                tile_free[ti] = start + mvm_ns;
                last_tier[ti] = Some(tier);
                res.tile_busy_ns[ti] += mvm_ns;
                res.tier_activations[ti][tier as usize] += 1;
                res.mvms += 1;
                start + mvm_ns + comm_ns
            }
            Op::Digital(c) => {
                res.energy.digital_pj += c.energy_pj;
                pool_op(&mut digital, c)
            }
            Op::Finish(c) => {
                res.energy.digital_pj += c.energy_pj;
                let end = pool_op(&mut digital, c);
                res.per_token_latency_ns[g.0[id].token as usize] = end;
                end
            }
            Op::Attention(c) => {
                res.energy.attention_pj += c.energy_pj;
                pool_op(&mut attention, c)
            }
            Op::Dram { ns } => {
                dram_active_ns += ns;
                dram_free = ready.max(dram_free) + ns;
                dram_free
            }
        };
        res.makespan_ns = res.makespan_ns.max(done);
        for s in std::mem::take(&mut g.0[id].succ) {
            let n = &mut g.0[s];
            n.ready = n.ready.max(done);
            n.waiting -= 1;
            if n.waiting == 0 {
                heap.push(Reverse((n.ready.to_bits(), s)));
            }
        }
    }

    let e = &mut res.energy;
    e.mvm_pj = res.mvms as f64 * table.mvm_energy_pj.value;
    e.communication_pj = res.mvms as f64 * table.communication_pj_per_mvm(mapping.cols);
    // W × ns = nJ = 1e3 pJ
    e.dram_pj = 1e3 * (table.dram_active_w.value * dram_active_ns + table.dram_inactive_w.value * (res.makespan_ns - dram_active_ns).max(0.0));
    e.passive_pj = 1e3 * table.passive_power_w.value * res.makespan_ns;
    e.total_pj = e.mvm_pj + e.communication_pj + e.digital_pj + e.attention_pj + e.dram_pj + e.passive_pj;
    res.tokens_per_s = if res.makespan_ns > 0.0 { res.tokens as f64 / res.makespan_ns * 1e9 } else { f64::INFINITY };
    res.energy_per_token_pj = e.total_pj / res.tokens as f64;
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::mapping::{map_layer, Strategy};
    use crate::arch::routing::{sample_tokens, Routing};
    use crate::arch::tiers::{Architecture, MoeLayer};

    /// One chunk per matrix: 4 x 4 crossbars, d_model = d_ff = 4, two experts.
    const TINY: MoeLayer = MoeLayer { d_model: 4, d_ff: 4, experts: 2, top_k: 2, d_out: 0 };

    fn tiny_arch(tiles: u32, tiers: u32) -> Architecture {
        Architecture { tiles, tiers, rows: 4, cols: 4, tier_noise: vec![] }
    }

    /// The shipped table with free digital ops and the given communication latency.
    fn table(comm_ns: f64) -> TierCostTable {
        let mut t = TierCostTable::default_table();
        for row in [&mut t.per_token.add, &mut t.per_token.gelu] {
            row.latency_ns.iter_mut().for_each(|x| *x = 0.0);
        }
        t.communication_latency_ns.value = comm_ns;
        t
    }

    /// Experts-separated on 3 tiles x 2 tiers: experts 0 and 1 on tiers 0 and 1 of tiles 0 (FFN1) and
    /// 1 (FFN2), the router on tile 2. Router 0–100; FFN1 of expert 0 on tile 0 100–200; FFN1 of
    /// expert 1 needs tier 1 of the busy tile 0: waits 100 (one tier conflict), 200–300; FFN2s 200–300
    /// and 300–400 on tile 1 (no wait: tile 1 is free at 300). Makespan 400.
    #[test]
    fn different_tiers_of_one_tile_serialise() {
        let m = map_layer(&tiny_arch(3, 2), &TINY, Strategy::ExpertsSeparated, None).unwrap();
        assert_eq!((m.ffn1(1).chunks[0].tile, m.ffn1(1).chunks[0].tier, m.router().chunks[0].tile), (0, 1, 2));
        let r = schedule(&m, &table(0.0), &[vec![0, 1]], &ScheduleOptions::default()).unwrap();
        assert_eq!(r.makespan_ns, 400.0);
        assert_eq!((r.tier_conflicts, r.conflict_wait_ns, r.same_tier_waits), (1, 100.0, 0));
        assert_eq!(r.per_token_latency_ns, vec![400.0]);
        assert_eq!(r.tile_busy_ns, vec![200.0, 200.0, 100.0]);
        assert_eq!(r.tier_activations, vec![vec![1, 1], vec![1, 1], vec![1, 0]]);
    }

    /// Greedy on 5 tiles: router, FFN1/FFN2 of expert 0, FFN1/FFN2 of expert 1 each on its own tile.
    /// With 10 ns communication: router 0–100 (+10), both FFN1s 110–210 in parallel, both FFN2s
    /// 220–320, sum at 330. Two tokens choosing only expert 0 queue on the same tiers instead.
    #[test]
    fn different_tiles_overlap() {
        let m = map_layer(&tiny_arch(5, 2), &TINY, Strategy::Greedy, None).unwrap();
        let r = schedule(&m, &table(10.0), &[vec![0, 1]], &ScheduleOptions::default()).unwrap();
        assert_eq!((r.makespan_ns, r.tier_conflicts, r.same_tier_waits), (330.0, 0, 0));
        assert_eq!(r.mvms, 5);
        let r = schedule(&m, &table(10.0), &[vec![0], vec![0]], &ScheduleOptions::default()).unwrap();
        // token 1's router waits 0–100 behind token 0's on the same tier; then it trails by 100 ns
        assert_eq!(r.per_token_latency_ns, vec![330.0, 430.0]);
        assert_eq!((r.tier_conflicts, r.same_tier_waits, r.same_tier_wait_ns), (0, 1, 100.0));
        assert!(schedule(&m, &table(0.0), &[vec![2]], &ScheduleOptions::default()).unwrap_err().contains("expert 2"));
        assert!(schedule(&m, &table(0.0), &[vec![1, 1]], &ScheduleOptions::default()).unwrap_err().contains("distinct"));
    }

    #[test]
    fn energy_adds_up() {
        let layer = MoeLayer { d_model: 1024, d_ff: 2048, experts: 8, top_k: 2, d_out: 0 };
        let arch = Architecture { tiles: 64, tiers: 4, rows: 512, cols: 512, tier_noise: vec![] };
        let m = map_layer(&arch, &layer, Strategy::ExpertsSeparated, None).unwrap();
        let toks = sample_tokens(&Routing::Zipf { s: 1.0 }, 8, 2, 3, 0, 64).unwrap();
        let mut t = TierCostTable::default_table();
        t.passive_power_w.value = 0.5;
        t.tier_area_mm2 = Some(crate::arch::cost::Cost { value: 0.25, source: "test".into() });
        let r = schedule(&m, &t, &toks, &ScheduleOptions { attention_context: 128 }).unwrap();
        let e = r.energy;
        assert_eq!(e.total_pj, e.mvm_pj + e.communication_pj + e.digital_pj + e.attention_pj + e.dram_pj + e.passive_pj);
        assert!([e.mvm_pj, e.communication_pj, e.digital_pj, e.attention_pj, e.dram_pj, e.passive_pj].iter().all(|&x| x > 0.0));
        assert!((r.energy_per_token_pj * 64.0 - e.total_pj).abs() <= 1e-9 * e.total_pj);
        // router 2 chunks + 2 experts x (8 + 8) chunks per token
        assert_eq!(r.mvms, 64 * 34);
        assert_eq!(e.mvm_pj, 64.0 * 34.0 * 10_000.0);
        assert_eq!(r.tier_activations.iter().flatten().sum::<u64>(), r.mvms);
        assert_eq!(r.area_mm2, Some(16.0));
        assert!(r.per_token_latency_ns.iter().all(|&l| l > 0.0 && l <= r.makespan_ns));
        assert!((r.tokens_per_s - 64.0 / r.makespan_ns * 1e9).abs() < 1e-6);
        assert!(r.tile_utilisation().iter().all(|&u| (0.0..=1.0).contains(&u)));
    }
}
