//! The kernel workloads' point set and clipping (Büchel, Camposampiero et al., Nat. Mach. Intell.
//! 2024: the projection clipped at 2σ): which points the kernel error used, and, with clipping,
//! the floating-point metric of the clipped projection beside the unclipped one and the analog
//! mean, so the clipping bias and the device noise are told apart.

use crate::report::document::*;
use crate::report::format::*;
use crate::results::*;

/// Rows of the clipping table at most; the rest stay in results.json (`fp_clipped`).
const MAX_ROWS: usize = 40;

pub(super) fn kernel_blocks(results: &Results) -> Vec<Block> {
    let mut blocks = Vec::new();
    // The point sets, each once with how many points used it.
    let mut sets: Vec<(&PointSetUsed, usize)> = Vec::new();
    for p in results.points.iter().filter_map(|p| p.point_set.as_ref()) {
        match sets.iter_mut().find(|(s, _)| *s == p) {
            Some((_, n)) => *n += 1,
            None => sets.push((p, 1)),
        }
    }
    if !sets.is_empty() {
        let lines: Vec<String> = if sets.len() == 1 {
            vec![format!("{} points: {}.", sets[0].0.points, sets[0].0.description)]
        } else {
            sets.iter().map(|(s, n)| format!("{} points: {} ({n} of {} sweep points and times).", s.points, s.description, results.points.len())).collect()
        };
        blocks.push(Block::Paragraph(text(format!(
            "The kernel error is computed on {}",
            if lines.len() == 1 { lines[0].clone() } else { format!("these point sets: {}", lines.join(" ")) }
        ))));
    }
    let clipped: Vec<&Point> = results.points.iter().filter(|p| p.fp_clipped.is_some() && p.fp.is_some()).collect();
    if clipped.is_empty() {
        return blocks;
    }
    let pct = is_classifier(results);
    let f = |v: f64| if pct { format!("{} %", fixed(100.0 * v, 2)) } else { significant(v, 3) };
    let rows: Vec<Vec<Vec<Inline>>> = clipped
        .iter()
        .take(MAX_ROWS)
        .map(|p| {
            let (fp, fc) = (p.fp.unwrap_or(f64::NAN), p.fp_clipped.unwrap_or(f64::NAN));
            vec![
                text(p.series.clone()),
                text(p.time_label.clone()),
                text(f(fp)),
                text(f(fc)),
                text(f(fc - fp)),
                text(f(p.summary.mean)),
                text(f(p.summary.mean - fc)),
            ]
        })
        .collect();
    let more = if clipped.len() > MAX_ROWS {
        format!(" The first {MAX_ROWS} of {} rows; every point's fp_clipped is in results.json.", clipped.len())
    } else {
        String::new()
    };
    blocks.extend(paragraph_and_table(
        format!(
            "The programmed projection is clipped (kernel.clip_sigma), and floating point is given both ways: on the projection as drawn (FP) and on the clipped one (FP clipped). FP clipped − FP is the clipping's own bias; analog − FP clipped is what the device and periphery noise add.{more}"
        ),
        &["series", "t", "FP", "FP clipped", "clipping bias", "analog mean", "noise (analog − FP clipped)"],
        rows,
        2,
    ));
    blocks
}
