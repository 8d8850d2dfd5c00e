//! GLUE's per-sequence metrics (Wang et al., ICLR 2019) of a pooled head, the scores by which
//! Spoon et al. (Front. Comput. Neurosci. 2021) judge BERT on PCM crossbars: Matthews'
//! correlation coefficient (CoLA), the F1 of class 1 (MRPC, QQP), and Pearson's and Spearman's
//! correlations of a regression output with real targets (STS-B), each as scikit-learn and SciPy
//! compute it (the numbers Hugging Face's `run_glue` reports). They read every trial's outputs
//! (`head_out`), and the f64 reference forward's for the floating-point value.

use super::Task;
use crate::workload::io::Dataset;
use statrs::statistics::{Data, OrderStatistics, RankTieBreaker};

/// One trial's (or the f64 forward's) metric from the head's outputs, `[row][classes]`, against
/// the data's labels (classes) or targets (regression).
pub fn score(task: Task, outputs: &[f64], classes: usize, data: &Dataset) -> f64 {
    match task {
        Task::ClassifyMatthews => matthews(&predictions(outputs, classes), &data.labels, classes),
        Task::ClassifyF1 => f1_positive(&predictions(outputs, classes), &data.labels).0,
        Task::RegressPearson => pearson(outputs, &wide(&data.targets)),
        Task::RegressSpearman => spearman(outputs, &wide(&data.targets)),
        _ => unreachable!("glue::score is called for per-sequence tasks only"),
    }
}

/// Per trial, the metric from `outputs` (`[trial][row][classes]`, `head_out`'s slots) and its
/// test-set variance over the rows ([`score_and_variance`]); the variances None where a trial
/// has none.
pub fn per_trial(task: Task, outputs: &[f32], classes: usize, data: &Dataset) -> (Vec<f64>, Option<Vec<f64>>) {
    let per = data.len() * classes;
    let (values, vars): (Vec<f64>, Vec<Option<f64>>) = outputs.chunks(per.max(1)).map(|t| score_and_variance(task, &wide(t), classes, data)).unzip();
    (values, vars.into_iter().collect())
}

/// One trial's metric ([`score`]) and its test-set variance over the rows, each trial's
/// predictions (or ranks) formed once for both: for the F1 the variance of its log (a ratio over
/// the rows: `stats::ratio_variance`; None for a zero F1); for Matthews' coefficient and the
/// correlations the jackknife's (Efron & Stein, Ann. Stat. 1981) of the value itself, (n − 1)/n ·
/// Σ_i (θ₋ᵢ − θ̄)², θ₋ᵢ the metric without row i, each from the whole set's sums in O(classes)
/// (Matthews; Pearson's centred moments) or O(log n) (Spearman: without row i every rank above
/// x_i falls by 1, and the rest of x_i's tie by ½: `spearman_leave_one_out`); None with fewer
/// than three rows.
pub fn score_and_variance(task: Task, outputs: &[f64], classes: usize, data: &Dataset) -> (f64, Option<f64>) {
    let n = data.len();
    let jackknife = |loo: &dyn Fn() -> Vec<f64>| {
        (n >= 3).then(|| {
            let loo = loo();
            let mean = loo.iter().sum::<f64>() / n as f64;
            (n - 1) as f64 / n as f64 * loo.iter().map(|v| (v - mean).powi(2)).sum::<f64>()
        })
    };
    match task {
        Task::ClassifyMatthews => {
            let pred = predictions(outputs, classes);
            (matthews(&pred, &data.labels, classes), jackknife(&|| matthews_leave_one_out(&pred, &data.labels, classes)))
        }
        Task::ClassifyF1 => {
            let (f1, var) = f1_positive(&predictions(outputs, classes), &data.labels);
            (f1, var.filter(|_| f1 > 0.0).map(|v| v / (f1 * f1)))
        }
        Task::RegressPearson => {
            let y = wide(&data.targets);
            (pearson(outputs, &y), jackknife(&|| pearson_leave_one_out(outputs, &y)))
        }
        Task::RegressSpearman => {
            let y = wide(&data.targets);
            let (rx, ry) = (ranks(outputs), ranks(&y));
            (pearson(&rx, &ry), jackknife(&|| spearman_leave_one_out(outputs, &y, &rx, &ry)))
        }
        _ => unreachable!("glue is called for per-sequence tasks only"),
    }
}

/// GLUE's second metric of a task, the pair its leaderboard reports (Wang et al. 2019): accuracy
/// beside MRPC's and QQP's F1, Spearman's beside STS-B's Pearson and the reverse; CoLA's Matthews
/// coefficient stands alone.
///
/// The companion's name and the task whose metric it is.
pub fn partner(task: Task) -> Option<(&'static str, Task)> {
    match task {
        Task::ClassifyF1 => Some(("accuracy", Task::Classify)),
        Task::RegressPearson => Some(("spearman", Task::RegressSpearman)),
        Task::RegressSpearman => Some(("pearson", Task::RegressPearson)),
        _ => None,
    }
}

/// The companion metric ([`partner`]) of the f64 forward's outputs; None for a task without one.
pub fn companion_score(task: Task, outputs: &[f64], classes: usize, data: &Dataset) -> Option<f64> {
    match partner(task)? {
        (_, Task::Classify) => {
            let right = predictions(outputs, classes).iter().zip(&data.labels).filter(|(y, &l)| **y == l as usize).count();
            Some(right as f64 / data.len().max(1) as f64)
        }
        (_, other) => Some(score(other, outputs, classes, data)),
    }
}

/// Ranks from 1, tied values at their average rank (SciPy's `rankdata`, statrs).
fn ranks(v: &[f64]) -> Vec<f64> {
    Data::new(v.to_vec()).ranks(RankTieBreaker::Average)
}

/// Matthews' coefficient without each row in turn, from the whole set's counts: without a row
/// predicted y and labelled l, p·p falls by 2 p_y − 1, t·t by 2 t_l − 1 and p·t by p_l + t_y −
/// [y = l].
fn matthews_leave_one_out(pred: &[usize], truth: &[u32], classes: usize) -> Vec<f64> {
    let (p, t, c) = class_counts(pred, truth, classes);
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let (pp, tt, pt, s) = (dot(&p, &p), dot(&t, &t), dot(&p, &t), pred.len() as f64 - 1.0);
    pred.iter()
        .zip(truth)
        .map(|(&y, &l)| {
            let same = f64::from(y == l as usize);
            let denom = (s * s - (pp - 2.0 * p[y] + 1.0)) * (s * s - (tt - 2.0 * t[l as usize] + 1.0));
            let num = (c - same) * s - (pt - p[l as usize] - t[y] + same);
            if denom <= 0.0 {
                0.0
            } else {
                num / denom.sqrt()
            }
        })
        .collect()
}

/// Spearman's coefficient without each row in turn, in O(n log n) from the whole set's ranks
/// (`rx`, `ry`, average ranks of `x` and `y`). Without row i every rank above x_i falls by 1 and
/// the rest of x_i's ties by ½ (a_j; likewise b_j in y), so each value is Pearson's of the
/// adjusted ranks, formed from five sums over j ≠ i: Σ rx_j − a_j, its square, the same in y, and
/// Σ (rx_j − a_j)(ry_j − b_j). They need, per row, the rows above it and tied with it in x (and
/// in y), the ranks' sums over them (prefix sums in x order, and in y order), and the rows above
/// or tied with it in both (a Fenwick tree over y's order, filled in descending x). Where the
/// other rows are all tied in x or in y the value is 0, as [`pearson`] gives.
fn spearman_leave_one_out(x: &[f64], y: &[f64], rx: &[f64], ry: &[f64]) -> Vec<f64> {
    let n = x.len().min(y.len());
    /// Per row: rows above it and tied with it (itself included), and the other variable's
    /// ranks summed over each of those sets, from groups of ties in descending order.
    struct Order {
        above: Vec<f64>,
        tied: Vec<f64>,
        other_above: Vec<f64>,
        other_tied: Vec<f64>,
        own_above: Vec<f64>,
        groups: usize,
    }
    let order = |v: &[f64], own: &[f64], other: &[f64]| -> (Order, Vec<usize>) {
        let mut idx: Vec<usize> = (0..n).collect();
        idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]));
        let mut o = Order { above: vec![0.0; n], tied: vec![0.0; n], other_above: vec![0.0; n], other_tied: vec![0.0; n], own_above: vec![0.0; n], groups: 0 };
        let (mut done, mut other_sum, mut own_sum, mut start) = (0usize, 0.0, 0.0, 0usize);
        let mut dense = vec![0usize; n];
        while start < n {
            let end = start + idx[start..].iter().take_while(|&&j| v[j] == v[idx[start]]).count();
            let group = &idx[start..end];
            let (t_other, t_own): (f64, f64) = group.iter().fold((0.0, 0.0), |(a, b), &j| (a + other[j], b + own[j]));
            for &j in group {
                o.above[j] = done as f64;
                o.tied[j] = group.len() as f64;
                o.other_above[j] = other_sum;
                o.other_tied[j] = t_other;
                o.own_above[j] = own_sum;
                dense[j] = o.groups;
            }
            o.groups += 1;
            done += group.len();
            other_sum += t_other;
            own_sum += t_own;
            start = end;
        }
        (o, dense)
    };
    let (ox, _) = order(&x[..n], rx, ry);
    let (oy, ky) = order(&y[..n], ry, rx);
    // Rows above row i in both x and y, above in x and tied in y, tied in x and above in y, tied
    // in both (itself included): y's dense descending order `ky`, a Fenwick tree of counts over
    // it filled with the rows above in x, then each x tie group by itself.
    let (mut gg, mut ge, mut eg, mut ee) = (vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let mut tree = vec![0u32; oy.groups + 1];
    let prefix = |tree: &[u32], k: usize| -> u32 {
        let (mut s, mut k) = (0, k);
        while k > 0 {
            s += tree[k];
            k &= k - 1;
        }
        s
    };
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&a, &b| x[b].total_cmp(&x[a]).then(ky[a].cmp(&ky[b])));
    let mut start = 0;
    while start < n {
        let end = start + idx[start..].iter().take_while(|&&j| x[j] == x[idx[start]]).count();
        let group = &idx[start..end];
        for (g, &j) in group.iter().enumerate() {
            let (below, upto) = (prefix(&tree, ky[j]), prefix(&tree, ky[j] + 1));
            gg[j] = below as f64;
            ge[j] = (upto - below) as f64;
            // The group is in ascending ky: members before j's first tie in y are above it.
            let first = group.partition_point(|&m| ky[m] < ky[j]);
            let last = group.partition_point(|&m| ky[m] <= ky[j]);
            eg[j] = first as f64;
            ee[j] = (last - first) as f64;
            debug_assert!(first <= g && g < last);
        }
        for &j in group {
            let mut k = ky[j] + 1;
            while k < tree.len() {
                tree[k] += 1;
                k += k & k.wrapping_neg();
            }
        }
        start = end;
    }
    let sum = |v: &[f64]| v[..n].iter().sum::<f64>();
    let (sx, sy) = (sum(rx), sum(ry));
    let (qx, qy) = (rx[..n].iter().map(|r| r * r).sum::<f64>(), ry[..n].iter().map(|r| r * r).sum::<f64>());
    let pxy: f64 = rx[..n].iter().zip(&ry[..n]).map(|(a, b)| a * b).sum();
    let m = (n - 1) as f64;
    // The other rows all tied: one group of ties, or two with this row alone in one.
    let constant = |o: &Order, i: usize| o.groups == 1 || (o.groups == 2 && o.tied[i] == 1.0);
    (0..n)
        .map(|i| {
            if constant(&ox, i) || constant(&oy, i) {
                return 0.0;
            }
            // Σ_j≠i a_j, Σ a_j rx_j and Σ a_j² (ties of row i share its average rank).
            let (tx, ty) = (ox.tied[i] - 1.0, oy.tied[i] - 1.0);
            let (a, b) = (ox.above[i] + 0.5 * tx, oy.above[i] + 0.5 * ty);
            let sum_x = sx - rx[i] - a;
            let sum_y = sy - ry[i] - b;
            let sq_x = qx - rx[i] * rx[i] - 2.0 * (ox.own_above[i] + 0.5 * tx * rx[i]) + ox.above[i] + 0.25 * tx;
            let sq_y = qy - ry[i] * ry[i] - 2.0 * (oy.own_above[i] + 0.5 * ty * ry[i]) + oy.above[i] + 0.25 * ty;
            let a_ry = ox.other_above[i] + 0.5 * (ox.other_tied[i] - ry[i]);
            let b_rx = oy.other_above[i] + 0.5 * (oy.other_tied[i] - rx[i]);
            let ab = gg[i] + 0.5 * ge[i] + 0.5 * eg[i] + 0.25 * (ee[i] - 1.0);
            let cross = pxy - rx[i] * ry[i] - a_ry - b_rx + ab;
            let (vx, vy, cov) = (sq_x - sum_x * sum_x / m, sq_y - sum_y * sum_y / m, cross - sum_x * sum_y / m);
            if vx <= 0.0 || vy <= 0.0 {
                0.0
            } else {
                (cov / (vx.sqrt() * vy.sqrt())).clamp(-1.0, 1.0)
            }
        })
        .collect()
}

/// Pearson's correlation without each row in turn, from the centred sums of the whole set.
fn pearson_leave_one_out(x: &[f64], y: &[f64]) -> Vec<f64> {
    let n = x.len().min(y.len());
    let mean = |v: &[f64]| v[..n].iter().sum::<f64>() / n as f64;
    let (mx, my) = (mean(x), mean(y));
    let (dx, dy): (Vec<f64>, Vec<f64>) = x[..n].iter().zip(&y[..n]).map(|(a, b)| (a - mx, b - my)).unzip();
    let (sx, sy) = (dx.iter().sum::<f64>(), dy.iter().sum::<f64>());
    let sxx: f64 = dx.iter().map(|v| v * v).sum();
    let syy: f64 = dy.iter().map(|v| v * v).sum();
    let sxy: f64 = dx.iter().zip(&dy).map(|(a, b)| a * b).sum();
    let m = (n - 1) as f64;
    (0..n)
        .map(|i| {
            let (a, b) = (sx - dx[i], sy - dy[i]);
            let vx = sxx - dx[i] * dx[i] - a * a / m;
            let vy = syy - dy[i] * dy[i] - b * b / m;
            let cov = sxy - dx[i] * dy[i] - a * b / m;
            if vx <= 0.0 || vy <= 0.0 {
                0.0
            } else {
                (cov / (vx.sqrt() * vy.sqrt())).clamp(-1.0, 1.0)
            }
        })
        .collect()
}

fn wide(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// The predicted class of each row of `outputs` (`[row][classes]`): the first largest output,
/// as the `accuracy` stage picks it.
pub fn predictions(outputs: &[f64], classes: usize) -> Vec<usize> {
    outputs.chunks(classes.max(1)).map(super::reference::argmax).collect()
}

/// Rows predicted (p_k) and labelled (t_k) as each class, and the rows predicted right.
fn class_counts(pred: &[usize], truth: &[u32], classes: usize) -> (Vec<f64>, Vec<f64>, f64) {
    let (mut p, mut t) = (vec![0f64; classes], vec![0f64; classes]);
    let mut c = 0f64;
    for (&y, &l) in pred.iter().zip(truth) {
        p[y] += 1.0;
        t[l as usize] += 1.0;
        c += f64::from(y == l as usize);
    }
    (p, t, c)
}

/// Matthews' correlation coefficient of `pred` against `truth` over `classes` classes, Gorodkin's
/// R_K (Comput. Biol. Chem. 2004): (c·s − Σ_k p_k t_k) / √((s² − Σ_k p_k²)(s² − Σ_k t_k²)), c the
/// correct rows of s, p_k and t_k the rows predicted and labelled k; for two classes Matthews'
/// (1975) φ. 0 where a factor of the denominator is 0 (every row predicted, or labelled, alike),
/// as scikit-learn's `matthews_corrcoef` returns.
pub fn matthews(pred: &[usize], truth: &[u32], classes: usize) -> f64 {
    let (p, t, c) = class_counts(pred, truth, classes);
    let s = pred.len() as f64;
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let denom = (s * s - dot(&p, &p)) * (s * s - dot(&t, &t));
    if denom == 0.0 {
        0.0
    } else {
        (c * s - dot(&p, &t)) / denom.sqrt()
    }
}

/// The F1 of class 1, 2 TP / (2 TP + FP + FN) (scikit-learn's binary `f1_score`; 0 where no row
/// is labelled or predicted 1), and the test-set variance of that ratio over the rows (each row
/// adds 2 to the numerator if a true positive, and 2, 1 or 1 to the denominator if a true
/// positive, a false positive or a false negative; `stats::ratio_variance`).
pub fn f1_positive(pred: &[usize], truth: &[u32]) -> (f64, Option<f64>) {
    let (num, den): (Vec<f64>, Vec<u64>) = pred
        .iter()
        .zip(truth)
        .map(|(&y, &l)| match (y == 1, l == 1) {
            (true, true) => (2.0, 2),
            (true, false) | (false, true) => (0.0, 1),
            (false, false) => (0.0, 0),
        })
        .unzip();
    let total: u64 = den.iter().sum();
    if total == 0 {
        return (0.0, None);
    }
    (num.iter().sum::<f64>() / total as f64, crate::stats::ratio_variance(&num, &den))
}

/// Pearson's product-moment correlation of `x` and `y` (SciPy's `pearsonr`), in f64 with the
/// means taken first; 0 where either is constant (the correlation is undefined there; SciPy
/// returns NaN, which would poison the trials' statistics).
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len().min(y.len());
    if n == 0 {
        return 0.0;
    }
    let mean = |v: &[f64]| v[..n].iter().sum::<f64>() / n as f64;
    let (mx, my) = (mean(x), mean(y));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x[..n].iter().zip(&y[..n]) {
        let (dx, dy) = (a - mx, b - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx == 0.0 || syy == 0.0 {
        0.0
    } else {
        (sxy / (sxx.sqrt() * syy.sqrt())).clamp(-1.0, 1.0)
    }
}

/// Spearman's rank correlation (SciPy's `spearmanr`): Pearson's of the ranks, tied values at
/// their average rank.
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    pearson(&ranks(x), &ranks(y))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matthews_matches_scikit_learn() {
        // sklearn.metrics.matthews_corrcoef([1,1,1,0], [1,0,1,1]) = -1/3.
        assert!((matthews(&[1, 0, 1, 1], &[1, 1, 1, 0], 2) + 1.0 / 3.0).abs() < 1e-15);
        // Perfect, inverted and constant predictions.
        assert_eq!(matthews(&[0, 1, 1, 0], &[0, 1, 1, 0], 2), 1.0);
        assert_eq!(matthews(&[1, 0, 0, 1], &[0, 1, 1, 0], 2), -1.0);
        assert_eq!(matthews(&[1, 1, 1, 1], &[0, 1, 1, 0], 2), 0.0);
        // Multiclass: matthews_corrcoef([0,1,2,0,1,2,2,1], [0,2,1,0,0,1,2,2]) = 0.07142857142857142.
        let m = matthews(&[0, 2, 1, 0, 0, 1, 2, 2], &[0, 1, 2, 0, 1, 2, 2, 1], 3);
        assert!((m - 0.07142857142857142).abs() < 1e-15, "{m}");
    }

    #[test]
    fn f1_matches_scikit_learn() {
        // f1_score([1,1,0,1,0,0], [1,0,0,1,1,0]) = 2·2 / (2·2 + 1 + 1) = 2/3.
        let (f1, var) = f1_positive(&[1, 0, 0, 1, 1, 0], &[1, 1, 0, 1, 0, 0]);
        assert!((f1 - 2.0 / 3.0).abs() < 1e-15);
        assert!(var.unwrap() > 0.0);
        assert_eq!(f1_positive(&[0, 0], &[0, 0]), (0.0, None));
        assert_eq!(f1_positive(&[1, 1], &[1, 1]).0, 1.0);
    }

    /// Each leave-one-out value from the whole set's sums equals the metric recomputed without
    /// that row.
    #[test]
    fn leave_one_out_values_equal_the_recomputed_metric() {
        let pred = [0usize, 2, 1, 0, 0, 1, 2, 2, 1, 1, 0];
        let truth = [0u32, 1, 2, 0, 1, 2, 2, 1, 1, 0, 0];
        let x = [1.0, 2.5, 3.0, 4.0, 5.5, 2.5, 7.0, 1.0, 9.0, 4.0, 3.0];
        let y = [5.0, 6.0, 7.5, 8.0, 7.0, 2.0, 1.0, 6.0, 3.0, 4.0, 4.0];
        let drop = |v: &[f64], i: usize| -> Vec<f64> { v.iter().enumerate().filter(|&(j, _)| j != i).map(|(_, &a)| a).collect() };
        let (mcc, r) = (matthews_leave_one_out(&pred, &truth, 3), pearson_leave_one_out(&x, &y));
        for i in 0..pred.len() {
            let (p, t): (Vec<usize>, Vec<u32>) = pred.iter().zip(&truth).enumerate().filter(|&(j, _)| j != i).map(|(_, (&a, &b))| (a, b)).unzip();
            assert!((mcc[i] - matthews(&p, &t, 3)).abs() < 1e-12, "row {i}");
            assert!((r[i] - pearson(&drop(&x, i), &drop(&y, i))).abs() < 1e-12, "row {i}");
        }
        // Spearman's, through the data set: the same by recomputation, ties included.
        let data = Dataset { targets: y.iter().map(|&v| v as f32).collect(), labels: vec![0; y.len()], ..Dataset::default() };
        let n = x.len() as f64;
        let loo: Vec<f64> = (0..x.len()).map(|i| spearman(&drop(&x, i), &drop(&y, i))).collect();
        let m = loo.iter().sum::<f64>() / n;
        let want = (n - 1.0) / n * loo.iter().map(|v| (v - m).powi(2)).sum::<f64>();
        let (rho, got) = score_and_variance(Task::RegressSpearman, &x, 1, &data);
        assert_eq!(rho, spearman(&x, &y));
        let got = got.unwrap();
        assert!((got - want).abs() < 1e-12 * want.max(1.0), "{got} against {want}");
        assert!(score_and_variance(Task::RegressPearson, &x[..2], 1, &Dataset { targets: vec![1.0, 2.0], labels: vec![0; 2], ..Dataset::default() })
            .1
            .is_none());
    }

    /// The O(n log n) leave-one-out Spearman values equal recomputation on data with many ties
    /// (values from a small set), on orderings that tie everything but one row, and on constant
    /// columns (0, as `pearson` gives).
    #[test]
    fn spearman_leave_one_out_equals_recomputation() {
        let drop = |v: &[f64], i: usize| -> Vec<f64> { v.iter().enumerate().filter(|&(j, _)| j != i).map(|(_, &a)| a).collect() };
        let check = |x: &[f64], y: &[f64], what: &str| {
            let got = spearman_leave_one_out(x, y, &ranks(x), &ranks(y));
            for (i, g) in got.iter().enumerate() {
                let want = spearman(&drop(x, i), &drop(y, i));
                assert!((g - want).abs() < 1e-12, "{what}, row {i}: {g} against {want}");
            }
        };
        for seed in 0..6u64 {
            let u = crate::rng::uniform_signed(2 * 57, 100 + seed);
            let levels = [3.0, 5.0, 50.0, 1e9][seed as usize % 4];
            let x: Vec<f64> = u[..57].iter().map(|v| ((v + 1.0) * levels / 2.0).floor() as f64).collect();
            let y: Vec<f64> = u[57..].iter().zip(&x).map(|(v, a)| (a + (v * 4.0) as f64).round()).collect();
            check(&x, &y, &format!("seed {seed}"));
        }
        let ones = vec![1.0; 9];
        let mut one_out = ones.clone();
        one_out[4] = 2.0;
        let ramp: Vec<f64> = (0..9).map(|v| v as f64).collect();
        check(&one_out, &ramp, "all tied but one row");
        check(&ramp, &one_out, "all tied but one row, in y");
        check(&ones, &ramp, "constant x");
        check(&[1.0, 2.0, 2.0, 1.0], &[3.0, 1.0, 2.0, 3.0], "two ties of two");
    }

    #[test]
    fn correlations_match_scipy() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let y = [5.0, 6.0, 7.0, 8.0, 7.0];
        // scipy.stats.pearsonr(x, y)[0] = 0.8320502943378436; spearmanr = 0.8207826816681233.
        assert!((pearson(&x, &y) - 0.8320502943378436).abs() < 1e-15);
        assert!((spearman(&x, &y) - 0.8207826816681233).abs() < 1e-15);
        assert_eq!(pearson(&x, &[2.0; 5]), 0.0);
        assert!((spearman(&x, &[9.0, 7.0, 5.0, 3.0, 1.0]) + 1.0).abs() < 1e-15);
    }
}
