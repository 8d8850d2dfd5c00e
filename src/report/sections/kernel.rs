//! The kernel workloads' point set and clipping (Büchel, Camposampiero et al., Nat. Mach. Intell.
//! 2024: the projection clipped at 2σ): which points the kernel error used, and, with clipping,
//! the floating-point metric of the clipped projection beside the unclipped one and the analog
//! mean, so the clipping bias and the device noise are told apart.

use crate::report::document::*;
use crate::report::format::*;
use crate::results::*;

/// Rows of each table at most; the rest stay in results.json (`fp_clipped`,
/// `projection_average`).
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
    let pct = is_classifier(results);
    let f = |v: f64| if pct { format!("{} %", fixed(100.0 * v, 2)) } else { significant(v, 3) };
    blocks.extend(projection_blocks(results, &f));
    let clipped: Vec<&Point> = results.points.iter().filter(|p| p.fp_clipped.is_some() && p.fp.is_some()).collect();
    if clipped.is_empty() {
        return blocks;
    }
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

/// Points averaged over random projections (`kernel.projection_seeds`): floating point and
/// analog, each with its interval over projections, and the projections' share of the analog
/// mean's variance.
fn projection_blocks(results: &Results, f: &dyn Fn(f64) -> String) -> Vec<Block> {
    let avg: Vec<(&Point, &ProjectionAverage)> = results.points.iter().filter_map(|p| p.projection_average.as_ref().map(|a| (p, a))).collect();
    let Some((_, first)) = avg.first() else { return vec![] };
    let conf = percent_label(first.fp_ci.confidence);
    let rows: Vec<Vec<Vec<Inline>>> = avg
        .iter()
        .take(MAX_ROWS)
        .map(|(p, a)| {
            let share = a.split.as_ref().map_or("–".to_string(), |v| format!("{:.0} %", 100.0 * v.between_share));
            vec![
                text(p.series.clone()),
                text(p.time_label.clone()),
                text(format!("{} × {}", a.seeds, a.trials_per_seed)),
                text(format!("{} [{}, {}]", f(p.fp.unwrap_or(f64::NAN)), f(a.fp_ci.lo), f(a.fp_ci.hi))),
                text(f(a.fp_std)),
                text(format!("{} [{}, {}]", f(p.summary.mean), f(p.mean_ci.lo), f(p.mean_ci.hi))),
                text(share),
            ]
        })
        .collect();
    let more = if avg.len() > MAX_ROWS {
        format!(" The first {MAX_ROWS} of {} rows; every point's projection_average is in results.json.", avg.len())
    } else {
        String::new()
    };
    paragraph_and_table(
        format!(
            "Averaged over random projections (kernel.projection_seeds): each projection programs its own block of trials, so a trial redraws the device noise and a block the projection. Floating point is the mean over the projections; the analog mean's {conf} interval is Student t over the projection means, so it counts both sources of randomness. The last column is the projections' share of the analog mean's variance (the rest is device noise within one projection).{more}"
        ),
        &["series", "t", "projections × trials", "FP mean [CI]", "FP std", "analog mean [CI]", "projections' share"],
        rows,
        2,
    )
}
