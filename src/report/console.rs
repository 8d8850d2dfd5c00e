//! The terminal's summary of a run: per series and time the mean ± CI half-width, the std, the 5th
//! percentile and the median, the two-level variance split (reads per programming > 1), the paired
//! differences at the last time, the reference comparison and the energy per inference. Like the
//! report it reads the results and computes nothing new.
//!
//! The terminal gets at most [`MAX_TERMINAL_ROWS`] rows per table whatever the sweep (a
//! 4,000-point sweep once wrote 2 MB of paired differences): an evenly spaced selection of the
//! points, the largest paired differences, and a line saying how many were left out and that
//! results.json and trials.csv hold them all.

use crate::report::series::evenly_spaced;
use crate::results::Results;

/// Most rows of each terminal table (points, variance split, paired differences).
pub const MAX_TERMINAL_ROWS: usize = 40;

/// The line that says what a capped table left out.
fn left_out(s: &mut String, shown: usize, total: usize, what: &str, which: &str, place: &str) {
    if shown < total {
        s.push_str(&format!("… {shown} of {total} {what} shown ({which}); all of them are in {place}\n"));
    }
}

/// A short table for the terminal: per series and time, mean ± CI half-width, std, 5th percentile
/// and median.
pub fn console_summary(r: &Results) -> String {
    let pct = super::format::is_classifier(r);
    let f = |v: f64| {
        if pct {
            format!("{:.2}", 100.0 * v)
        } else {
            format!("{v:.5}")
        }
    };
    let mut s = String::new();
    if let Some(fp) = r.fp_baseline {
        s.push_str(&format!("floating-point {}: {}{}\n", r.metric, f(fp), if pct { " %" } else { "" }));
    }
    let w = r.points.iter().map(|p| p.series.chars().count()).max().unwrap_or(0).max(28);
    // Points with their own floating-point value (a sweep over models or projections) show it
    // beside the analog mean.
    let fp_column = r.fp_baseline.is_none() && r.points.iter().any(|p| p.fp.is_some());
    // The std and the 5th percentile over trials are the figures a user compares with aihwkit or
    // a paper; the median beside them.
    s.push_str(&format!("{:<w$} {:>9} {:>10} {:>10} {:>10} {:>10} {:>10}", "series", "t", if pct { "mean %" } else { "mean" }, "± CI", "std", "p5", "median"));
    s.push_str(if fp_column { "      FP\n" } else { "\n" });
    let rows = evenly_spaced(r.points.len(), MAX_TERMINAL_ROWS);
    for p in rows.iter().map(|&i| &r.points[i]) {
        s.push_str(&format!(
            "{:<w$} {:>9} {:>10} {:>10} {:>10} {:>10} {:>10}",
            p.series,
            p.time_label,
            f(p.summary.mean),
            f(p.mean_ci.half_width()),
            f(p.summary.std),
            f(p.summary.p05),
            f(p.summary.median)
        ));
        match (fp_column, p.fp) {
            (true, Some(fp)) => s.push_str(&format!(" {:>7}\n", f(fp))),
            _ => s.push('\n'),
        }
    }
    left_out(&mut s, rows.len(), r.points.len(), "points", "evenly spaced in sweep order", "results.json and trials.csv");
    let last = r.times.last().copied().unwrap_or(0.0);
    if r.points.iter().any(|p| p.variance_split.is_some()) {
        s.push_str("two-level Monte Carlo: std between programmings and between reads of one programming [CI]\n");
        let split: Vec<_> = r.points.iter().filter(|p| p.variance_split.is_some()).collect();
        let rows = evenly_spaced(split.len(), MAX_TERMINAL_ROWS);
        for p in rows.iter().map(|&i| split[i]) {
            if let Some(v) = &p.variance_split {
                let (bc, wc) = (&v.between_ci, &v.within_ci);
                s.push_str(&format!(
                    "{:<w$} {:>9} {}x{}: programmings {} [{}, {}], reads {} [{}, {}]\n",
                    p.series,
                    p.time_label,
                    v.programmings,
                    v.reads,
                    f(v.between.sqrt()),
                    f(bc.lo.sqrt()),
                    f(bc.hi.sqrt()),
                    f(v.within.sqrt()),
                    f(wc.lo.sqrt()),
                    f(wc.hi.sqrt())
                ));
            }
        }
        left_out(&mut s, rows.len(), split.len(), "points", "evenly spaced in sweep order", "results.json and trials.csv");
        let advice: Vec<_> = split.iter().filter(|p| p.t_inf == last).collect();
        let rows = evenly_spaced(advice.len(), MAX_TERMINAL_ROWS);
        for p in rows.iter().map(|&i| advice[i]) {
            if let Some(v) = &p.variance_split {
                s.push_str(&format!("{} at {}: {}\n", p.series, p.time_label, v.advice()));
            }
        }
        left_out(&mut s, rows.len(), advice.len(), "points", "evenly spaced in sweep order", "results.json and trials.csv");
    }
    // The paired differences at the last time: the largest by |mean| past the cap, in run order.
    let paired: Vec<_> = r.paired.iter().filter(|p| p.t_inf == last).collect();
    let mut keep: Vec<usize> = (0..paired.len()).collect();
    if paired.len() > MAX_TERMINAL_ROWS {
        keep.sort_by(|&a, &b| paired[b].mean.abs().total_cmp(&paired[a].mean.abs()).then(a.cmp(&b)));
        keep.truncate(MAX_TERMINAL_ROWS);
        keep.sort_unstable();
    }
    for p in keep.iter().map(|&i| paired[i]) {
        s.push_str(&format!(
            "{}: {} − {}{} at {}: {} ± {} (paired; unpaired ± {})\n",
            p.axis,
            p.value,
            p.baseline,
            if p.others.is_empty() { String::new() } else { format!(" ({})", p.others) },
            p.time_label,
            f(p.mean),
            f(p.ci.half_width()),
            f(p.unpaired_half_width)
        ));
    }
    left_out(&mut s, keep.len(), paired.len(), "paired differences", "the largest by |mean|", "results.json (`paired`)");
    if let Some(c) = &r.reference {
        let worst = c.rows.iter().map(|x| x.mean_diff_pp.abs()).fold(0.0, f64::max);
        s.push_str(&format!(
            "against {}: {} of {} points within the pass mark (mean ±{} pp, std ±{:.0} %); largest mean difference {:.2} pp\n",
            c.source,
            c.rows.iter().filter(|x| x.pass).count(),
            c.rows.len(),
            c.mean_tol_pp,
            100.0 * c.std_rel_tol,
            worst
        ));
    }
    if let Some(e) = &r.energy {
        s.push_str(&format!("energy per inference: {:.2} nJ, latency {:.0} ns ({})\n", e.total_pj / 1e3, e.latency_ns, e.table));
    }
    s
}
