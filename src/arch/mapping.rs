//! Mapping of a MoE layer's weight matrices onto (tile, tier) crossbars (tiers-energy.md §2;
//! Büchel et al., Nat. Comput. Sci. 5, 13–26 (2025), "Mapping MoEs onto 3D AIMC" and the
//! simulator's `threedsim.mapping` strategies): in-order greedy, experts-separated, co-selection-aware.

use super::tiers::{Architecture, Matrix, MoeLayer};
use serde::{Deserialize, Serialize};

/// How chunks are assigned to tiers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// In order (router, then FFN1/FFN2 of expert 0, 1, ...), each chunk to the tile with the fewest
    /// used tiers (ties: lowest tile index), on that tile's lowest free tier.
    Greedy,
    /// All experts stacked on the same tile set: chunk j of expert e (FFN1 chunks, then FFN2) on tile
    /// `g·n + j`, tier `e mod tiers`, with group `g = e div tiers` and `n` the chunks of one expert.
    /// With `experts <= tiers` expert e sits on tier e and chunk j of every expert shares tile j.
    ExpertsSeparated,
    /// Experts chosen together often go to different tile groups (see [`map_layer`]).
    CoSelection,
}

/// One tier-chunk of a matrix: a `rows` × `cols` block of it on one crossbar.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    /// Tile holding it.
    pub tile: u32,
    /// Tier of that tile holding it.
    pub tier: u32,
    /// Input block (rows `in_block·rows ..`).
    pub in_block: u32,
    /// Output block (columns `out_block·cols ..`).
    pub out_block: u32,
    /// Fraction of the crossbar's rows·cols holding weights.
    pub fill: f64,
}

/// A matrix and where its chunks are (chunk index = in_block·out_blocks + out_block).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MatrixMap {
    /// The matrix.
    pub matrix: Matrix,
    /// ceil(inputs / rows): partial sums added digitally.
    pub in_blocks: u32,
    /// ceil(outputs / cols).
    pub out_blocks: u32,
    /// Its chunks.
    pub chunks: Vec<Chunk>,
}

/// Where every chunk of a layer sits, and how full the accelerator is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mapping {
    /// The strategy used.
    pub strategy: Strategy,
    /// Tiles of the architecture.
    pub tiles: u32,
    /// Tiers per tile.
    pub tiers: u32,
    /// Columns per crossbar (the communication model counts them).
    pub cols: u32,
    /// Router, then FFN1 and FFN2 of expert 0, 1, ... (the order of [`MoeLayer::matrices`]).
    pub matrices: Vec<MatrixMap>,
    /// Tiers holding a chunk.
    pub tiers_used: u64,
    /// Tiles with at least one used tier.
    pub tiles_used: u32,
    /// tiers_used / (tiles·tiers).
    pub utilisation: f64,
    /// Mean over used tiers of the fraction of rows·cols holding weights.
    pub mean_fill: f64,
}

impl Mapping {
    /// The router's chunks.
    pub fn router(&self) -> &MatrixMap {
        &self.matrices[0]
    }
    /// FFN1 of expert `e`.
    pub fn ffn1(&self, e: u32) -> &MatrixMap {
        &self.matrices[1 + 2 * e as usize]
    }
    /// FFN2 of expert `e`.
    pub fn ffn2(&self, e: u32) -> &MatrixMap {
        &self.matrices[2 + 2 * e as usize]
    }
    /// Number of experts mapped.
    pub fn experts(&self) -> u32 {
        (self.matrices.len() as u32 - 1) / 2
    }
}

/// Occupancy of the accelerator while mapping.
struct Occupancy {
    used: Vec<Vec<bool>>,
    count: Vec<u32>,
}

impl Occupancy {
    fn take(&mut self, tile: u32, tier: u32) {
        self.used[tile as usize][tier as usize] = true;
        self.count[tile as usize] += 1;
    }
    /// The tile with the fewest used tiers (ties: lowest index) and its lowest free tier.
    fn fewest(&mut self) -> Option<(u32, u32)> {
        let tiers = self.used.first().map_or(0, |t| t.len()) as u32;
        let tile = (0..self.count.len()).filter(|&t| self.count[t] < tiers).min_by_key(|&t| (self.count[t], t))?;
        let tier = self.used[tile].iter().position(|u| !u)? as u32;
        self.take(tile as u32, tier);
        Some((tile as u32, tier))
    }
}

fn empty_map(arch: &Architecture, m: Matrix) -> MatrixMap {
    let (ib, ob) = arch.blocks(m.inputs, m.outputs);
    MatrixMap { matrix: m, in_blocks: ib, out_blocks: ob, chunks: Vec::with_capacity(ib as usize * ob as usize) }
}

fn push_chunk(arch: &Architecture, mm: &mut MatrixMap, tile: u32, tier: u32) {
    let j = mm.chunks.len() as u32;
    let (ib, ob) = (j / mm.out_blocks, j % mm.out_blocks);
    let r = (mm.matrix.inputs - ib * arch.rows).min(arch.rows);
    let c = (mm.matrix.outputs - ob * arch.cols).min(arch.cols);
    let fill = r as f64 * c as f64 / (arch.rows as f64 * arch.cols as f64);
    mm.chunks.push(Chunk { tile, tier, in_block: ib, out_block: ob, fill });
}

fn n_chunks(mm: &MatrixMap) -> u32 {
    mm.in_blocks * mm.out_blocks
}

/// Maps `layer` onto `arch`.
///
/// - The router always takes its own tiers: under `Greedy` it is placed first in order; under the
///   two expert strategies it is placed after the experts, each chunk on the tile with the fewest used
///   tiers (so on an empty tile when one is left).
/// - `coselection` is read by `CoSelection` only (ignored otherwise). `CoSelection` needs `coselection` = the E × E co-selection density P (row-major; P[i, j] the
///   fraction of tokens choosing both i and j, see [`super::routing::coselection_density`]). An expert
///   takes a *tile group* of n tiles (n = its FFN1 + FFN2 chunks) and one tier on each of them, as in
///   `ExpertsSeparated`; there are G = min(E, floor(tiles / n)) groups of `tiers` slots. Experts in
///   decreasing order of total co-selection Σ_j≠i P[i, j] go, one by one, to the group with a free slot
///   that minimises Σ over its members f of (P[e, f] + P[f, e]) / 2 (ties: fewer members, then lowest
///   group): a greedy graph colouring in which heavy co-selection edges join different colours, so the
///   experts of a token sit on different tiles and run in parallel.
///
/// Errors name the shortfall: a layer with more chunks than tiles·tiers, or a strategy whose layout
/// needs more tiles than there are.
pub fn map_layer(arch: &Architecture, layer: &MoeLayer, strategy: Strategy, coselection: Option<&[f64]>) -> Result<Mapping, String> {
    arch.validate()?;
    layer.validate()?;
    let mut maps: Vec<MatrixMap> = layer.matrices().into_iter().map(|m| empty_map(arch, m)).collect();
    let need: u64 = maps.iter().map(|m| n_chunks(m) as u64).sum();
    if need > arch.capacity() {
        return Err(format!("the layer needs {need} tier-chunks but arch has {} x {} = {}; raise tiles or tiers", arch.tiles, arch.tiers, arch.capacity()));
    }
    let mut occ = Occupancy { used: vec![vec![false; arch.tiers as usize]; arch.tiles as usize], count: vec![0; arch.tiles as usize] };
    let full = |what: &str| format!("no free tier left for the {what}; raise tiles or tiers");
    let experts = layer.experts;
    let per_expert = n_chunks(&maps[1]) + n_chunks(&maps[2]);
    // Expert e -> (group, tier) for the two stacked strategies.
    let slots: Option<Vec<(u32, u32)>> = match strategy {
        Strategy::Greedy => None,
        Strategy::ExpertsSeparated => {
            let groups = experts.div_ceil(arch.tiers);
            if groups as u64 * per_expert as u64 > arch.tiles as u64 {
                return Err(format!(
                    "strategy experts_separated needs ceil(experts / tiers) x (chunks per expert) = {groups} x {per_expert} tiles but arch.tiles = {}; \
                     raise tiles or tiers, or use greedy",
                    arch.tiles
                ));
            }
            Some((0..experts).map(|e| (e / arch.tiers, e % arch.tiers)).collect())
        }
        Strategy::CoSelection => Some(coselection_slots(arch, experts, per_expert, coselection)?),
    };
    match slots {
        None => {
            for mm in maps.iter_mut() {
                for _ in 0..n_chunks(mm) {
                    let (tile, tier) = occ.fewest().ok_or_else(|| full("layer"))?;
                    push_chunk(arch, mm, tile, tier);
                }
            }
        }
        Some(slots) => {
            for (e, &(g, tier)) in slots.iter().enumerate() {
                let mut j = 0;
                for mm in maps[1 + 2 * e..3 + 2 * e].iter_mut() {
                    for _ in 0..n_chunks(mm) {
                        let tile = g * per_expert + j;
                        occ.take(tile, tier);
                        push_chunk(arch, mm, tile, tier);
                        j += 1;
                    }
                }
            }
            for _ in 0..n_chunks(&maps[0]) {
                let (tile, tier) = occ.fewest().ok_or_else(|| full("router"))?;
                push_chunk(arch, &mut maps[0], tile, tier);
            }
        }
    }
    let tiers_used: u64 = occ.count.iter().map(|&c| c as u64).sum();
    let fill: f64 = maps.iter().flat_map(|m| m.chunks.iter()).map(|c| c.fill).sum();
    Ok(Mapping {
        strategy,
        tiles: arch.tiles,
        tiers: arch.tiers,
        cols: arch.cols,
        matrices: maps,
        tiers_used,
        tiles_used: occ.count.iter().filter(|&&c| c > 0).count() as u32,
        utilisation: tiers_used as f64 / arch.capacity() as f64,
        mean_fill: fill / tiers_used as f64,
    })
}

/// Co-selection-aware (group, tier) of each expert: greedy colouring described at [`map_layer`].
fn coselection_slots(arch: &Architecture, experts: u32, per_expert: u32, p: Option<&[f64]>) -> Result<Vec<(u32, u32)>, String> {
    let e = experts as usize;
    let p = p.ok_or("strategy co_selection needs the co-selection density (experts x experts); pass it or use experts_separated")?;
    if p.len() != e * e {
        return Err(format!("co-selection density has {} entries but experts = {experts}: needs experts x experts = {}", p.len(), e * e));
    }
    if let Some(v) = p.iter().find(|v| !(v.is_finite() && **v >= 0.0)) {
        return Err(format!("co-selection density has entry {v}: every entry must be finite and >= 0"));
    }
    let groups = experts.min(arch.tiles / per_expert);
    if groups == 0 || (groups as u64 * arch.tiers as u64) < experts as u64 {
        return Err(format!(
            "strategy co_selection fits {groups} tile groups of {per_expert} tiles x {} tiers = {} expert slots, fewer than experts = {experts}; \
             raise tiles or tiers, or use greedy",
            arch.tiers,
            groups as u64 * arch.tiers as u64
        ));
    }
    let w = |i: usize, j: usize| 0.5 * (p[i * e + j] + p[j * e + i]);
    let total = |i: usize| (0..e).filter(|&j| j != i).map(|j| w(i, j)).sum::<f64>();
    let mut order: Vec<usize> = (0..e).collect();
    order.sort_by(|&a, &b| total(b).total_cmp(&total(a)).then(a.cmp(&b)));
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); groups as usize];
    let mut slots = vec![(0, 0); e];
    for &x in &order {
        let g = (0..groups as usize)
            .filter(|&g| members[g].len() < arch.tiers as usize)
            .min_by(|&a, &b| {
                let ca: f64 = members[a].iter().map(|&f| w(x, f)).sum();
                let cb: f64 = members[b].iter().map(|&f| w(x, f)).sum();
                ca.total_cmp(&cb).then(members[a].len().cmp(&members[b].len())).then(a.cmp(&b))
            })
            .ok_or("co-selection placement ran out of slots")?;
        slots[x] = (g as u32, members[g].len() as u32);
        members[g].push(x);
    }
    Ok(slots)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arch(tiles: u32, tiers: u32) -> Architecture {
        Architecture { tiles, tiers, rows: 512, cols: 512, tier_noise: vec![] }
    }
    const LAYER: MoeLayer = MoeLayer { d_model: 1024, d_ff: 2048, experts: 4, top_k: 2, d_out: 0 };

    /// Router 1024 x 4: 2 x 1 = 2 chunks; FFN1 1024 x 2048: 2 x 4 = 8; FFN2 2048 x 1024: 4 x 2 = 8;
    /// total 2 + 4 x 16 = 66.
    #[test]
    fn greedy_counts_by_hand() {
        let m = map_layer(&arch(40, 2), &LAYER, Strategy::Greedy, None).unwrap();
        assert_eq!(m.router().chunks.len(), 2);
        assert_eq!((m.ffn1(0).in_blocks, m.ffn1(0).out_blocks, m.ffn1(3).chunks.len()), (2, 4, 8));
        assert_eq!((m.ffn2(2).in_blocks, m.ffn2(2).out_blocks), (4, 2));
        assert_eq!(m.tiers_used, 66);
        assert_eq!(m.tiles_used, 40);
        assert!((m.utilisation - 66.0 / 80.0).abs() < 1e-12);
        // every chunk is full except the router's: 4 of 512 columns used
        let want = (64.0 + 2.0 * 4.0 / 512.0) / 66.0;
        assert!((m.mean_fill - want).abs() < 1e-12, "{} vs {want}", m.mean_fill);
        // in order, fewest used first: the first 40 chunks go to tier 0 of tiles 0..40
        assert_eq!((m.router().chunks[1].tile, m.router().chunks[1].tier), (1, 0));
        let c = m.ffn1(2).chunks[6]; // chunk 2 + 16 + 16 + 6 = 40 overall: tile 0, tier 1
        assert_eq!((c.tile, c.tier, c.in_block, c.out_block), (0, 1, 1, 2));
        let mut seen = std::collections::HashSet::new();
        assert!(m.matrices.iter().flat_map(|mm| mm.chunks.iter()).all(|c| seen.insert((c.tile, c.tier))), "one chunk per tier");
    }

    #[test]
    fn experts_separated_puts_expert_e_on_tier_e() {
        let m = map_layer(&arch(17, 4), &LAYER, Strategy::ExpertsSeparated, None).unwrap();
        for e in 0..4 {
            for (j, c) in m.ffn1(e).chunks.iter().chain(m.ffn2(e).chunks.iter()).enumerate() {
                assert_eq!((c.tile, c.tier), (j as u32, e));
            }
        }
        // the router takes the one empty tile (16), tiers 0 and 1
        let r: Vec<_> = m.router().chunks.iter().map(|c| (c.tile, c.tier)).collect();
        assert_eq!(r, vec![(16, 0), (16, 1)]);
        assert_eq!((m.tiers_used, m.tiles_used), (66, 17));
        let e = map_layer(&arch(24, 3), &LAYER, Strategy::ExpertsSeparated, None).unwrap_err();
        assert!(e.contains("experts_separated needs") && e.contains("2 x 16 tiles but arch.tiles = 24"), "{e}");
    }

    #[test]
    fn too_small_an_architecture_is_an_error() {
        let e = map_layer(&arch(8, 8), &LAYER, Strategy::Greedy, None).unwrap_err();
        assert!(e.contains("needs 66 tier-chunks but arch has 8 x 8 = 64; raise tiles or tiers"), "{e}");
    }

    #[test]
    fn coselection_separates_coselected_experts() {
        // experts 0 & 1 and 2 & 3 are always chosen together (top-2): they must land in different groups.
        let mut p = vec![0.0; 16];
        for (i, j) in [(0, 1), (2, 3)] {
            p[i * 4 + j] = 0.5;
            p[j * 4 + i] = 0.5;
        }
        for i in 0..4 {
            p[i * 4 + i] = 0.5;
        }
        let m = map_layer(&arch(33, 2), &LAYER, Strategy::CoSelection, Some(&p)).unwrap();
        let tile = |e: u32| m.ffn1(e).chunks[0].tile;
        assert_ne!(tile(0), tile(1));
        assert_ne!(tile(2), tile(3));
        assert!(map_layer(&arch(33, 2), &LAYER, Strategy::CoSelection, None).unwrap_err().contains("co-selection density"));
        assert!(map_layer(&arch(33, 2), &LAYER, Strategy::CoSelection, Some(&p[..4])).unwrap_err().contains("16"));
        let e = map_layer(&arch(22, 3), &LAYER, Strategy::CoSelection, Some(&p)).unwrap_err();
        assert!(e.contains("fits 1 tile groups"), "{e}");
        assert_eq!(serde_json::to_string(&Strategy::CoSelection).unwrap(), "\"co_selection\"");
    }
}
