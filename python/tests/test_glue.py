"""GLUE's metrics of a Hugging Face classifier and regression head (`transformer(metric=...)`):
with an ideal device the engine's floating-point value is scikit-learn's and SciPy's metric of
the model's own NumPy forward (Matthews' correlation for CoLA, the F1 of class 1 for MRPC and
QQP, Pearson's and Spearman's correlations for STS-B), and bad metric names are refused."""

import numpy as np
import pytest

import aimc
from test_transformer import IDEAL, hf_classifier, hf_forward, padded_tokens


def _oracle(metric, out, labels):
    """The metric as GLUE's evaluation computes it (scikit-learn and SciPy), or a NumPy
    transcription of their formulas where they are not installed."""
    pred = np.argmax(out, axis=1)
    if metric == "matthews":
        try:
            from sklearn.metrics import matthews_corrcoef
            return matthews_corrcoef(labels, pred)
        except ImportError:
            k = out.shape[1]
            c = np.zeros((k, k))
            np.add.at(c, (labels, pred), 1)
            t, p, s = c.sum(1), c.sum(0), c.sum()
            return (np.trace(c) * s - t @ p) / np.sqrt((s * s - p @ p) * (s * s - t @ t))
    if metric == "f1":
        tp, fp, fn = np.sum((pred == 1) & (labels == 1)), np.sum((pred == 1) & (labels != 1)), np.sum((pred != 1) & (labels == 1))
        return 2 * tp / (2 * tp + fp + fn)
    x = out[:, 0]
    if metric == "spearman":
        try:
            from scipy.stats import spearmanr
            return spearmanr(x, labels)[0]
        except ImportError:
            x, labels = _ranks(x), _ranks(labels)
    return np.corrcoef(x, labels)[0, 1]


def _ranks(v):
    """Ranks from 1, tied values at their average rank (SciPy's `rankdata`)."""
    r = np.empty(len(v))
    r[np.argsort(v, kind="stable")] = np.arange(1, len(v) + 1)
    for value in np.unique(v):
        r[v == value] = r[v == value].mean()
    return r


@pytest.mark.parametrize("metric", ["matthews", "f1", "pearson", "spearman"])
def test_glue_metrics_equal_the_forward_scored_as_glue_scores_it(tmp_path, metric):
    rng = np.random.default_rng(21)
    labels_n = {"matthews": 3, "f1": 2}.get(metric, 1)
    hf = hf_classifier(rng, num_labels=labels_n)
    tok = padded_tokens(rng, n=30)
    out = hf_forward(hf, tok)
    if labels_n == 1:
        # STS-B-like targets: the model's output, scaled, plus a disturbance.
        y = 2.5 + 2.0 * out[:, 0] + 0.3 * rng.normal(size=len(tok))
    else:
        pred = np.argmax(out, axis=1)
        y = np.where(np.arange(len(tok)) % 4 == 3, (pred + 1) % labels_n, pred)
    assert aimc.from_torch(hf).settings.get("task") == ("regress_pearson" if labels_n == 1 else None)
    r = aimc.transformer(hf, tok, y, times=["1h"], trials=2, backend="cpu", out=str(tmp_path / metric), quiet=True, metric=metric,
                         **IDEAL)
    want = _oracle(metric, out, y.astype(np.float32).astype(np.float64) if labels_n == 1 else y)
    assert 0.05 < abs(want) < 0.999
    assert r.fp_baseline == pytest.approx(want, abs=1e-6)
    for v in r.points[0]["per_trial"]:
        assert v == pytest.approx(want, abs=1e-3)
    # A test-set interval over the rows around the mean, within the metric's range.
    row = r.per_point()
    row = row.iloc[0].to_dict() if hasattr(row, "iloc") else row[0]
    assert -1 <= row["test_ci_lo"] <= row["mean"] <= row["test_ci_hi"] <= 1
    # GLUE's second number of the task from the same trials: accuracy beside MRPC's F1, each
    # STS-B correlation beside the other; CoLA's Matthews coefficient stands alone.
    partner = {"f1": "accuracy", "pearson": "spearman", "spearman": "pearson"}.get(metric)
    assert r.companion == partner
    if partner:
        yy = y.astype(np.float32).astype(np.float64) if labels_n == 1 else y
        other = np.mean(np.argmax(out, axis=1) == y) if partner == "accuracy" else _oracle(partner, out, yy)
        assert row[f"{partner}_fp"] == pytest.approx(other, abs=1e-6)
        assert row[f"{partner}_ci_lo"] <= row[f"{partner}_mean"] <= row[f"{partner}_ci_hi"]
        assert row[f"{partner}_test_ci_lo"] <= row[f"{partner}_mean"] <= row[f"{partner}_test_ci_hi"]
        trials = r.per_trial()
        trials = trials.to_dict("records") if hasattr(trials, "to_dict") else trials
        assert [t[partner] for t in trials] == r.points[0]["companion"]["per_trial"]
        for t in trials:
            assert t[partner] == pytest.approx(other, abs=1e-3)


def test_glue_metrics_name_a_metric_for_every_task():
    assert set(aimc.GLUE_METRICS) == {"cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli"}
    assert set(aimc.GLUE_METRICS.values()) <= {"accuracy", "matthews", "f1", "pearson", "spearman"}


def test_metric_names_are_checked(tmp_path):
    rng = np.random.default_rng(22)
    tok = padded_tokens(rng, n=8)
    with pytest.raises(ValueError, match=r"metric = 'pearson': a classifier is scored by 'accuracy', 'matthews', 'f1'"):
        aimc.transformer(hf_classifier(rng), tok, np.zeros(8, int), trials=2, backend="cpu", out=str(tmp_path / "a"), quiet=True,
                         metric="pearson")
    with pytest.raises(ValueError, match=r"metric = 'f1': a regression head \(one output\) is scored by 'pearson', 'spearman'"):
        aimc.transformer(hf_classifier(rng, num_labels=1), tok, np.zeros(8), trials=2, backend="cpu", out=str(tmp_path / "b"), quiet=True,
                         metric="f1")
    with pytest.raises(ValueError, match=r"labels must be finite numbers"):
        aimc.transformer(hf_classifier(rng, num_labels=1), tok, np.full(8, np.nan), trials=2, backend="cpu", out=str(tmp_path / "c"),
                         quiet=True)


def test_a_transformers_regression_head_scores_as_scipy(tmp_path):
    """transformers' own STS-B-style model (BertForSequenceClassification with num_labels = 1):
    from_torch maps it as a regression, and the engine's floating-point Pearson and Spearman
    correlations are SciPy's of transformers' own outputs against the targets."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=12, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16,
                                     max_position_embeddings=16, num_labels=1, initializer_range=0.5)
    net = transformers.BertForSequenceClassification(config).eval()
    rng = np.random.default_rng(23)
    tok = padded_tokens(rng, n=30)
    with torch.no_grad():
        ids = torch.as_tensor(tok)
        out = net(input_ids=ids, attention_mask=(ids != 0).long()).logits.double().numpy()[:, 0]
    y = 2.5 + 2.0 * (out - out.mean()) / out.std() + 0.5 * rng.normal(size=len(tok))
    y32 = y.astype(np.float32).astype(np.float64)
    for metric, want in (("pearson", np.corrcoef(out, y32)[0, 1]), ("spearman", _oracle("spearman", out[:, None], y32))):
        r = aimc.transformer(net, tok, y, times=["1h"], trials=2, backend="cpu", out=str(tmp_path / metric), quiet=True, metric=metric,
                             **IDEAL)
        assert r.data["config"]["transformer"]["task"] == f"regress_{metric}"
        assert r.fp_baseline == pytest.approx(want, abs=1e-5), metric


def test_per_row_counts_the_trials_that_answer_each_row(tmp_path):
    rng = np.random.default_rng(24)
    hf = hf_classifier(rng, num_labels=2)
    tok = padded_tokens(rng, n=16)
    y = np.argmax(hf_forward(hf, tok), axis=1)
    r = aimc.transformer(hf, tok, y, times=["1h", "1y"], trials=6, backend="cpu", out=str(tmp_path / "rows"), quiet=True,
                         device="pcm", settings={"row_counts": True})
    rows = r.per_row()
    rows = rows.to_dict("records") if hasattr(rows, "to_dict") else rows
    assert len(rows) == 2 * 16 and all(0 <= x["correct_trials"] <= x["trials"] == 6 for x in rows)
    for p in r.points:
        mine = sum(x["correct_trials"] for x in rows if x["time"] == p["time_label"])
        assert mine == sum(p["per_trial_correct"])
