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

/// Per trial, the metric from `outputs` (`[trial][row][classes]`, `head_out`'s slots), and for
/// the F1 the test-set variance of its log (a ratio over the rows: `stats::ratio_variance`).
pub fn per_trial(task: Task, outputs: &[f32], classes: usize, data: &Dataset) -> (Vec<f64>, Option<Vec<f64>>) {
    let per = data.len() * classes;
    let trials: Vec<Vec<f64>> = outputs.chunks(per.max(1)).map(|t| wide(t)).collect();
    let values: Vec<f64> = trials.iter().map(|t| score(task, t, classes, data)).collect();
    let test_var = (task == Task::ClassifyF1)
        .then(|| {
            trials
                .iter()
                .zip(&values)
                .map(|(t, &f1)| f1_positive(&predictions(t, classes), &data.labels).1.filter(|_| f1 > 0.0).map(|v| v / (f1 * f1)))
                .collect::<Option<Vec<f64>>>()
        })
        .flatten();
    (values, test_var)
}

fn wide(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// The predicted class of each row of `outputs` (`[row][classes]`): the first largest output,
/// as the `accuracy` stage picks it.
pub fn predictions(outputs: &[f64], classes: usize) -> Vec<usize> {
    outputs.chunks(classes.max(1)).map(super::reference::argmax).collect()
}

/// Matthews' correlation coefficient of `pred` against `truth` over `classes` classes, Gorodkin's
/// R_K (Comput. Biol. Chem. 2004): (c·s − Σ_k p_k t_k) / √((s² − Σ_k p_k²)(s² − Σ_k t_k²)), c the
/// correct rows of s, p_k and t_k the rows predicted and labelled k; for two classes Matthews'
/// (1975) φ. 0 where a factor of the denominator is 0 (every row predicted, or labelled, alike),
/// as scikit-learn's `matthews_corrcoef` returns.
pub fn matthews(pred: &[usize], truth: &[u32], classes: usize) -> f64 {
    let (mut p, mut t) = (vec![0f64; classes], vec![0f64; classes]);
    let mut c = 0f64;
    for (&y, &l) in pred.iter().zip(truth) {
        p[y] += 1.0;
        t[l as usize] += 1.0;
        c += f64::from(y == l as usize);
    }
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
    let ranks = |v: &[f64]| Data::new(v.to_vec()).ranks(RankTieBreaker::Average);
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
