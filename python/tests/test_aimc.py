"""The Python package against the CLI: the same experiment gives the same per-trial results byte
for byte, NumPy entry points run the same pipeline, bad input raises the CLI's messages."""
import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

import aimc

ROOT = pathlib.Path(__file__).resolve().parents[2]
SMOKE = ROOT / "experiments" / "smoke.toml"


def cli() -> pathlib.Path:
    """The `aimc` binary that `cargo test` or `cargo build` made (the README's commands)."""
    for p in (os.environ.get("AIMC_BIN"), ROOT / "target" / "debug" / "aimc", ROOT / "target" / "release" / "aimc"):
        if p and pathlib.Path(p).is_file():
            return pathlib.Path(p)
    raise AssertionError("no aimc binary: run `cargo build` (or set AIMC_BIN) before the Python tests")


def test_run_matches_the_cli_byte_for_byte(tmp_path):
    r = aimc.run(SMOKE, backend="cpu", out=str(tmp_path / "py"), quiet=True)
    subprocess.run([str(cli()), "run", str(SMOKE), "--backend", "cpu", "--out", str(tmp_path / "cli")], check=True, capture_output=True)
    c = json.loads((tmp_path / "cli" / "results.json").read_text())
    assert [p["per_trial"] for p in r.points] == [p["per_trial"] for p in c["points"]]
    assert [p["per_trial_correct"] for p in r.points] == [p["per_trial_correct"] for p in c["points"]]
    assert r.report_html.is_file() and (r.dir / "trials.csv").is_file()
    rows = r.per_trial()
    assert len(rows) == sum(len(p["per_trial"]) for p in r.points)


def test_run_from_a_dict_with_set(tmp_path):
    import tomllib
    doc = tomllib.loads(SMOKE.read_text())
    for section in ("model", "data"):
        doc[section]["path"] = str(ROOT / "experiments" / doc[section]["path"])
    r = aimc.run(doc, backend="cpu", out=str(tmp_path / "d"), set={"periphery.out_res_bits": 8}, quiet=True)
    assert r.data["config"]["periphery"]["out_res_bits"] == 8
    assert len(r.points) == 4


def test_classifier_and_weight_error_from_numpy(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 8))
    w_true = rng.normal(size=(3, 8))
    y = np.argmax(x @ w_true.T, axis=1)
    layers = [(w_true.astype(np.float32), np.zeros(3, np.float32))]
    r = aimc.classifier(layers, x, y, times=["1h", "1y"], trials=6, backend="cpu", out=str(tmp_path / "c"), quiet=True)
    assert r.fp_baseline == 1.0
    assert len(r.points) == 2 and all(len(p["per_trial"]) == 6 for p in r.points)
    assert all(0.5 < p["summary"]["mean"] <= 1.0 for p in r.points)
    rows = r.per_layer()
    rows = rows.to_dict("records") if hasattr(rows, "to_dict") else rows
    assert len(rows) == 2 and all(row["layer"] == 0 and row["mvm_error_median"] > 0 for row in rows)
    # One layer: an activation list ["none"] is the same model as the default.
    r2 = aimc.classifier(layers, x, y, times=["1h", "1y"], trials=6, backend="cpu", activation=["none"], out=str(tmp_path / "c2"), quiet=True)
    assert [p["per_trial"] for p in r2.points] == [p["per_trial"] for p in r.points]
    e = aimc.weight_error(w_true, times=["1s", "1y"], trials=4, backend="cpu", out=str(tmp_path / "w"), quiet=True)
    assert e.points[1]["summary"]["mean"] > e.points[0]["summary"]["mean"] > 0.0


def test_bad_input_raises_the_cli_message(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(SMOKE.read_text().replace("trials = 8", "trials = 1"))
    with pytest.raises(ValueError, match=r"trials = 1: an interval over trials needs at least 2"):
        aimc.run(bad, backend="cpu", out=str(tmp_path / "o"))
    out = subprocess.run([str(cli()), "check", str(bad)], capture_output=True, text=True)
    assert "trials = 1: an interval over trials needs at least 2" in out.stderr
    with pytest.raises(ValueError, match="periphery__FIELD"):
        aimc.classifier([(np.eye(2), np.zeros(2))], np.eye(2), np.array([0, 1]), out_res_bits=8)


class Linear:
    def __init__(self, w, b):
        self.weight, self.bias = w, b


class ReLU:
    pass


class Conv2d:
    pass


def test_from_torch_by_class_name():
    layers, act = aimc.from_torch([Linear(np.ones((4, 3)), np.zeros(4)), ReLU(), Linear(np.ones((2, 4)), None)])
    assert act == "relu" and [w.shape for w, _ in layers] == [(4, 3), (2, 4)]
    # Mixed activations come back one per layer; an activation with no Linear before it is refused.
    class Tanh:
        pass
    l = lambda o, i: Linear(np.ones((o, i)), np.zeros(o))
    _, acts = aimc.from_torch([l(4, 3), ReLU(), l(5, 4), Tanh(), l(2, 5)])
    assert acts == ["relu", "tanh", "none"]
    with pytest.raises(ValueError, match="does not follow a Linear"):
        aimc.from_torch([ReLU(), l(4, 3)])
    with pytest.raises(ValueError, match="Conv2d"):
        aimc.from_torch([Conv2d()])


class BatchNorm1d:
    def __init__(self, n, seed):
        r = np.random.default_rng(seed)
        self.weight, self.bias = r.normal(1, 0.2, n), r.normal(0, 0.3, n)
        self.running_mean, self.running_var, self.eps = r.normal(0, 0.5, n), r.uniform(0.5, 2, n), 1e-5

    def __call__(self, x):
        return (x - self.running_mean) / np.sqrt(self.running_var + self.eps) * self.weight + self.bias


def test_from_torch_folds_batchnorm_before_and_after_a_linear():
    r = np.random.default_rng(1)
    l1, l2 = Linear(r.normal(size=(6, 5)), r.normal(size=6)), Linear(r.normal(size=(3, 6)), r.normal(size=3))
    bn_in, bn_mid = BatchNorm1d(5, 2), BatchNorm1d(6, 3)
    x = r.normal(size=(4, 5))
    relu = lambda v: np.maximum(v, 0)
    # BatchNorm on the input (folded forward), and after the first Linear (folded backward).
    want = relu(bn_mid(bn_in(x) @ l1.weight.T + l1.bias)) @ l2.weight.T + l2.bias
    layers, act = aimc.from_torch([bn_in, l1, bn_mid, ReLU(), l2])
    assert act == "relu" and len(layers) == 2
    (w1, b1), (w2, b2) = layers
    got = relu(x @ w1.T + b1) @ w2.T + b2
    assert np.allclose(got, want, atol=1e-5)
    with pytest.raises(ValueError, match="no Linear after it"):
        aimc.from_torch([l1, ReLU(), BatchNorm1d(6, 4)])


def test_to_toml_round_trips():
    import tomllib
    doc = {"name": "x", "trials": 3, "sweep": {"t": ["1s", "1h"], "gdc": ["off"]}, "moe": {"routing": {"kind": "zipf", "s": 1.5}}, "flag": True}
    assert tomllib.loads(aimc.to_toml(doc)) == doc
