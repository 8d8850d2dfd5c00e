//! The cost tables an experiment file may point at: `[energy] table` (the classifier's energy and
//! latency per inference) and `[cost] tiers` / `gpu` (the moe workload's 3D-tier and GPU tables);
//! the shipped tables are the defaults.

use super::raw::RawExperiment;
use crate::arch::cost::{GpuTable, TierCostTable};
use crate::arch::energy::CostTable;
use std::path::{Path, PathBuf};

/// `[cost]` of the moe workload (None for the others).
pub(super) fn moe_tables(raw: &RawExperiment, resolve: &dyn Fn(&Path) -> PathBuf) -> Result<Option<(TierCostTable, GpuTable)>, String> {
    if raw.moe.is_none() {
        return Ok(None);
    }
    let read = |field: &str, p: Option<&PathBuf>| -> Result<Option<String>, String> {
        match p {
            None => Ok(None),
            Some(p) => {
                let p = resolve(p);
                std::fs::read_to_string(&p).map(Some).map_err(|e| format!("cost.{field}: cannot read {} ({e})", p.display()))
            }
        }
    };
    let c = raw.cost.as_ref();
    let (t, g) = (read("tiers", c.and_then(|c| c.tiers.as_ref()))?, read("gpu", c.and_then(|c| c.gpu.as_ref()))?);
    let tiers = match t {
        None => TierCostTable::default_table(),
        Some(text) => TierCostTable::parse(&text).map_err(|m| format!("cost.tiers: {m}"))?,
    };
    let gpu = match g {
        None => GpuTable::h100_sxm(),
        Some(text) => GpuTable::parse(&text).map_err(|m| format!("cost.gpu: {m}"))?,
    };
    Ok(Some((tiers, gpu)))
}

/// `[energy] table`, else the shipped table.
pub(super) fn energy(raw: &RawExperiment, resolve: &dyn Fn(&Path) -> PathBuf) -> Result<CostTable, String> {
    match &raw.energy {
        None => Ok(CostTable::default_table()),
        Some(e) => {
            let p = resolve(&e.table);
            let text = std::fs::read_to_string(&p).map_err(|er| format!("energy.table: cannot read {} ({er})", p.display()))?;
            CostTable::parse(&text).map_err(|m| format!("energy.table {}: {m}", p.display()))
        }
    }
}
