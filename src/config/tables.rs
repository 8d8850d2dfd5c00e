//! The cost tables an experiment file may point at: `[energy] table` (the classifier's energy and
//! latency per inference), `[cost] tiers` / `gpu` (the moe workload's 3D-tier and GPU tables) and
//! `[npu] table` (the edge NPU); the shipped tables are the defaults.

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
                crate::files::read_to_string(&p).map(Some).map_err(|e| format!("cost.{field}: cannot read {} ({e})", p.display()))
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
            let text = crate::files::read_to_string(&p).map_err(|er| format!("energy.table: cannot read {} ({er})", p.display()))?;
            CostTable::parse(&text).map_err(|m| format!("energy.table {}: {m}", p.display()))
        }
    }
}

/// `[npu]` (the npu and transformer workloads): its settings and table, costed once here for
/// every network, sequence length, split and read mode (`crate::workload::npu`).
pub(super) fn npu(
    raw: &RawExperiment,
    axes: &[super::SweepAxis],
    times: &[f64],
    points: &[crate::workload::SweepPoint],
    data: Option<&crate::workload::io::Dataset>,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<Option<crate::results::NpuReport>, String> {
    let Some(s) = crate::workload::npu::section(raw.npu.as_ref(), raw.workload)? else {
        return Ok(None);
    };
    if raw.workload == crate::workload::WorkloadKind::Npu {
        if let Some(a) = axes.first() {
            return Err(format!("sweep.{}: the npu workload sweeps inside [npu] (seq_len, split, read); keep only sweep.t = [\"0s\"]", a.name));
        }
        // Every time would give the same latency under a time label it does not depend on.
        if times != [0.0] {
            let given = raw.sweep.get("t").map_or_else(String::new, |t| format!(" = {t}"));
            return Err(format!(
                "sweep.t{given}: the npu workload is a cost model with no device noise, so no time after programming (every time would give the same latency); keep only sweep.t = [\"0s\"]"
            ));
        }
    }
    let text = match &s.table {
        None => None,
        Some(p) => {
            let p = resolve(p);
            Some(crate::files::read_to_string(&p).map_err(|e| format!("npu.table: cannot read {} ({e}); check the path", p.display()))?)
        }
    };
    crate::workload::npu::report(&s, raw.workload, points, text.as_deref(), data.map(|d| d.n_features)).map(Some)
}
