//! The edge-NPU cost section (`[npu]`; docs/npu.md): where the latency and the energy of one
//! inference go, in sentences with numbers, one row per network × sequence length × split × read
//! mode, the published reference where one is sourced, the constants with their sources and every
//! assumption.

use crate::report::document::*;
use crate::report::format::*;
use crate::results::*;

fn pct(part: f64, whole: f64) -> String {
    if whole > 0.0 {
        format!("{} %", fixed(100.0 * part / whole, 1))
    } else {
        "–".to_string()
    }
}

fn bytes_label(b: u64) -> String {
    if b >= 1 << 20 {
        format!("{} MiB", significant(b as f64 / (1u64 << 20) as f64, 3))
    } else {
        format!("{} KiB", significant(b as f64 / 1024.0, 3))
    }
}

/// The sentences of one row: latency, rates, the split of time and energy, the largest items.
pub(super) fn npu_row_sentences(r: &NpuRow) -> String {
    let t = &r.time_ns;
    let e = &r.energy_pj_split;
    let mut s = format!(
        "{}, {} tokens, split {}, {} reads: {} and {} per inference, {} inferences/s one at a time ({} with layers pipelined over inferences, bound by {}), {} TOPS/W, on {} analog cores ({} HERMES-size chips). ",
        r.network,
        r.seq_len,
        r.split,
        r.read.replace('_', "-"),
        latency_label(r.latency_ns),
        energy_label(r.energy_pj),
        significant(r.inferences_per_s, 3),
        significant(r.pipelined_inferences_per_s, 3),
        r.pipeline_bound,
        significant(r.tops_per_w, 3),
        r.cores,
        significant(r.chips, 3),
    );
    s.push_str(&format!(
        "The analog tiles take {} of the {} ({}); the digital nodes {} ({}); SRAM traffic {} ({}). ",
        latency_label(t.analog),
        latency_label(r.latency_ns),
        pct(t.analog, r.latency_ns),
        latency_label(t.digital),
        pct(t.digital, r.latency_ns),
        latency_label(t.sram),
        pct(t.sram, r.latency_ns),
    ));
    if let Some(top) = r.classes.first() {
        s.push_str(&format!(
            "The largest share of the latency is {} on the {}: {} of it ({} over {} ops). ",
            top.class,
            top.runs_on,
            pct(top.time_ns.total(), r.latency_ns),
            latency_label(top.time_ns.total()),
            top.count
        ));
    }
    let softmax: f64 = r.classes.iter().filter(|c| c.class.contains("softmax")).map(|c| c.time_ns.total()).sum();
    if softmax > 0.0 {
        s.push_str(&format!("The softmax on the digital nodes is {} of the latency ({}). ", pct(softmax, r.latency_ns), latency_label(softmax)));
    }
    let products: f64 = r.classes.iter().filter(|c| c.runs_on == "digital nodes (mac)").map(|c| c.time_ns.total()).sum();
    if products > 0.0 {
        s.push_str(&format!(
            "Products on the digital MAC unit (attention and digital matrices) take {} ({}). ",
            pct(products, r.latency_ns),
            latency_label(products)
        ));
    }
    s.push_str(&format!("The slowest single op is {} ({}). ", r.slowest_op, latency_label(r.slowest_op_ns)));
    s.push_str(&format!(
        "Energy: analog tiles {} ({}), digital nodes {} ({}), SRAM {} ({})",
        pct(e.analog, r.energy_pj),
        energy_label(e.analog),
        pct(e.digital, r.energy_pj),
        energy_label(e.digital),
        pct(e.sram, r.energy_pj),
        energy_label(e.sram)
    ));
    if let Some(top) = r.classes.iter().max_by(|a, b| a.energy_pj.total().total_cmp(&b.energy_pj.total())) {
        s.push_str(&format!("; the largest energy item is {} on the {} ({}).", top.class, top.runs_on, pct(top.energy_pj.total(), r.energy_pj)));
    } else {
        s.push('.');
    }
    if r.fits_sram {
        s.push_str(&format!(" The largest op's working set ({}) fits the SRAM.", bytes_label(r.largest_working_set_bytes)));
    } else {
        s.push_str(&format!(
            " The largest op's working set ({}) exceeds the SRAM: it would spill to off-chip memory, which the model does not cost.",
            bytes_label(r.largest_working_set_bytes)
        ));
    }
    s
}

/// The summary's sentence: the row at the reference's sequence length (else the first), where
/// its latency goes, and the reference beside it.
pub(super) fn npu_summary(n: &NpuReport) -> Option<String> {
    let r = n.reference.as_ref().and_then(|rf| n.rows.iter().find(|r| r.seq_len == rf.seq_len)).or(n.rows.first())?;
    let softmax: f64 = r.classes.iter().filter(|c| c.class.contains("softmax")).map(|c| c.time_ns.total()).sum();
    let mut s = format!(
        "Edge NPU: {} at {} tokens (split {}, {} reads) takes {} and {} per inference; the analog tiles take {} of it ({}), the digital nodes {}{}, the SRAM {}.",
        r.network,
        r.seq_len,
        r.split,
        r.read.replace('_', "-"),
        latency_label(r.latency_ns),
        energy_label(r.energy_pj),
        latency_label(r.time_ns.analog),
        pct(r.time_ns.analog, r.latency_ns),
        pct(r.time_ns.digital, r.latency_ns),
        if softmax > 0.0 { format!(" (the softmax {})", pct(softmax, r.latency_ns)) } else { String::new() },
        pct(r.time_ns.sram, r.latency_ns)
    );
    if let Some(rf) = n.reference.as_ref().filter(|rf| rf.seq_len == r.seq_len) {
        s.push_str(&format!(
            " Published: {} ms on a {} ({}× the NPU model's latency).",
            fixed(rf.latency_ms, 0),
            rf.device,
            significant(rf.latency_ms * 1e6 / r.latency_ns, 3)
        ));
    }
    Some(s)
}

pub(super) fn npu_blocks(n: &NpuReport) -> Vec<Block> {
    let mut blocks = vec![Block::Paragraph(text(format!(
        "One inference of each network on a heterogeneous NPU from the cost table \"{}\": static-weight matrices on analog PCM cores, everything else on digital nodes, activations through an on-chip SRAM. The cost model is deterministic (no trials); the schedule and every assumption are listed below.",
        n.table
    )))];
    if n.rows.is_empty() {
        blocks.push(Block::Paragraph(text("No network was costed.")));
    }
    blocks.push(Block::List(n.rows.iter().map(|r| text(npu_row_sentences(r))).collect()));
    if let Some(rf) = &n.reference {
        let same: Vec<&NpuRow> = n.rows.iter().filter(|r| r.seq_len == rf.seq_len && r.network == "MobileBERT").collect();
        let mut s =
            format!("Published reference: MobileBERT at {} tokens takes {} ms on a {} ({}).", rf.seq_len, fixed(rf.latency_ms, 0), rf.device, rf.source);
        for r in same {
            s.push_str(&format!(
                " The NPU model, split {}, {} reads: {} ({}× the phone's rate).",
                r.split,
                r.read.replace('_', "-"),
                latency_label(r.latency_ns),
                significant(rf.latency_ms * 1e6 / r.latency_ns, 3)
            ));
        }
        blocks.push(Block::Paragraph(text(s)));
    } else {
        blocks.push(Block::Paragraph(text("No published latency of this network on a phone or low-cost accelerator is sourced, so none is compared.")));
    }
    let rows = n
        .rows
        .iter()
        .map(|r| {
            vec![
                text(r.network.clone()),
                text(r.seq_len.to_string()),
                text(r.split.clone()),
                text(r.read.clone()),
                text(significant(r.latency_ns / 1e3, 4)),
                text(significant(r.energy_pj / 1e6, 4)),
                text(significant(r.inferences_per_s, 4)),
                text(significant(r.pipelined_inferences_per_s, 4)),
                text(significant(r.tops_per_w, 3)),
                text(format!(
                    "{} / {} / {}",
                    fixed(100.0 * r.time_ns.analog / r.latency_ns, 1),
                    fixed(100.0 * r.time_ns.digital / r.latency_ns, 1),
                    fixed(100.0 * r.time_ns.sram / r.latency_ns, 1)
                )),
                text(format!(
                    "{} / {} / {}",
                    fixed(100.0 * r.energy_pj_split.analog / r.energy_pj, 1),
                    fixed(100.0 * r.energy_pj_split.digital / r.energy_pj, 1),
                    fixed(100.0 * r.energy_pj_split.sram / r.energy_pj, 1)
                )),
                text(r.cores.to_string()),
                text(r.classes.first().map(|c| c.class.clone()).unwrap_or_default()),
            ]
        })
        .collect();
    blocks.extend(paragraph_and_table(
        "Every row: latency and energy of one inference, inferences/s one at a time and pipelined, TOPS/W (2 × MACs / energy), the shares of time and of energy on analog tiles / digital nodes / SRAM (%), the analog cores and the op class with the largest share of the latency.".into(),
        &["network", "tokens", "split", "read", "latency (µs)", "energy (µJ)", "inf/s", "pipelined inf/s", "TOPS/W", "time % A/D/S", "energy % A/D/S", "cores", "largest"],
        rows,
        4,
    ));
    // The breakdown of each network's first row.
    let mut seen: Vec<&str> = Vec::new();
    for r in &n.rows {
        if seen.contains(&r.network.as_str()) {
            continue;
        }
        seen.push(&r.network);
        let rows = r
            .classes
            .iter()
            .take(12)
            .map(|c| {
                vec![
                    text(c.class.clone()),
                    text(c.runs_on.clone()),
                    text(c.count.to_string()),
                    text(significant(c.time_ns.total() / 1e3, 4)),
                    text(fixed(100.0 * c.time_ns.total() / r.latency_ns, 1)),
                    text(significant(c.energy_pj.total() / 1e6, 4)),
                    text(fixed(100.0 * c.energy_pj.total() / r.energy_pj, 1)),
                ]
            })
            .collect();
        blocks.extend(paragraph_and_table(
            format!(
                "Where the time goes, {} at {} tokens, split {}, {} reads (op classes, the layer index taken out; the 12 largest):",
                r.network, r.seq_len, r.split, r.read
            ),
            &["op class", "runs on", "ops", "time (µs)", "time %", "energy (µJ)", "energy %"],
            rows,
            2,
        ));
    }
    blocks.push(Block::Paragraph(text("Per-core figures derived from the table:")));
    blocks.push(Block::List(n.derived.iter().map(|d| text(d.clone())).collect()));
    blocks.push(Block::Paragraph(text("The table's constants and their sources:")));
    blocks.push(Block::Table(Table {
        header: vec!["constant".into(), "value".into(), "source".into()],
        rows: n.constants.iter().map(|c| vec![code(c.field.clone()), text(trimmed(significant(c.value, 6))), text(c.source.clone())]).collect(),
        right_aligned: vec![false, true, false],
    }));
    let mut assumptions: Vec<Vec<Inline>> = n
        .constants
        .iter()
        .filter(|c| c.assumption)
        .map(|c| {
            let why = c.source.trim_start();
            let why = why.get("assumption".len()..).unwrap_or("").trim_start_matches([':', ' ']);
            text(format!("{} = {} is an assumption: {why}", c.field, trimmed(significant(c.value, 6))))
        })
        .collect();
    assumptions.extend(n.assumptions.iter().map(|a| text(a.clone())));
    assumptions.extend(n.notes.iter().map(|a| text(a.clone())));
    blocks.push(Block::Paragraph(text("Assumptions (constants without a published source, and the model's rules):")));
    blocks.push(Block::List(assumptions));
    blocks
}
