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
/// (Matthews; Pearson's centred moments) or O(n) (Spearman: without row i every rank above x_i
/// falls by 1, and the rest of x_i's tie by ½); None with fewer than three rows.
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
            let without = |v: &[f64], r: &[f64], i: usize| -> Vec<f64> {
                (0..n)
                    .filter(|&j| j != i)
                    .map(|j| {
                        r[j] - if v[j] > v[i] {
                            1.0
                        } else if v[j] == v[i] {
                            0.5
                        } else {
                            0.0
                        }
                    })
                    .collect()
            };
            (pearson(&rx, &ry), jackknife(&|| (0..n).map(|i| pearson(&without(outputs, &rx, i), &without(&y, &ry, i))).collect()))
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
