//! Another simulator's numbers beside these, point by point (`[reference]`).

use crate::report::document::*;
use crate::report::format::*;
use crate::results::*;

/// The reference comparison: a sentence with the verdict, then one row per point.
pub(super) fn reference_blocks(c: &ReferenceComparison) -> Vec<Block> {
    let pass = c.rows.iter().filter(|r| r.pass).count();
    let verdict = if c.passed { "All points pass" } else { "Not every point passes" };
    let para = format!(
        "{verdict} the pass mark ({pass} of {}): mean accuracy within {} percentage points of {} and standard deviation over trials within {:.0} % of its. Means, population standard deviations and 5th percentiles over trials, in %; reference numbers from {}.",
        c.rows.len(),
        c.mean_tol_pp,
        c.source,
        100.0 * c.std_rel_tol,
        c.file
    );
    let pct = |v: f64| fixed(100.0 * v, 2);
    let header = ["series", "t", "trials", "mean", "std", "p5", "ref. reps", "ref. mean", "ref. std", "ref. p5", "Δ mean (pp)", "std ratio", "pass"];
    let rows = c
        .rows
        .iter()
        .map(|r| {
            [
                r.series.clone(),
                r.time_label.clone(),
                r.trials.to_string(),
                pct(r.mean),
                pct(r.std),
                pct(r.p5),
                r.ref_reps.to_string(),
                pct(r.ref_mean),
                pct(r.ref_std),
                pct(r.ref_p5),
                fixed(r.mean_diff_pp, 2),
                fixed(r.std_ratio, 2),
                (if r.pass { "yes" } else { "no" }).to_string(),
            ]
            .into_iter()
            .map(text)
            .collect()
        })
        .collect();
    paragraph_and_table(para, &header, rows, 2)
}
