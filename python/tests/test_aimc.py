"""The Python package against the CLI: the same experiment gives the same per-trial results byte
for byte, NumPy entry points run the same pipeline, bad input raises the CLI's messages."""
import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

import aimc
from aimc._fx import _numpy_forward

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


def test_results_of_another_configuration_need_overwrite(tmp_path):
    out = str(tmp_path / "r")
    first = aimc.run(SMOKE, backend="cpu", out=out, quiet=True)
    # The same configuration replaces its results; another one is refused, naming the keyword.
    aimc.run(SMOKE, backend="cpu", out=out, quiet=True)
    with pytest.raises(ValueError, match=r"holds the results of experiment smoke.*device\.drift_scale: 1\.0 → 0\.3.*overwrite=True"):
        aimc.run(SMOKE, backend="cpu", out=out, set={"device.drift_scale": 0.3}, quiet=True)
    assert json.loads((tmp_path / "r" / "results.json").read_text())["points"] == first.points
    r = aimc.run(SMOKE, backend="cpu", out=out, set={"device.drift_scale": 0.3}, quiet=True, overwrite=True)
    assert r.data["config"]["device"]["drift_scale"] == 0.3


def test_set_goes_through_the_engine_setter(tmp_path):
    # The smoke file sweeps gdc: setting it would go unused, so the engine refuses it, for the
    # file and for the same document as a dict, naming the axis.
    doc = {
        "name": "smoke", "workload": "classifier", "seed": 1, "trials": 4,
        "model": {"path": str(ROOT / "experiments" / "models" / "digits_mlp.safetensors")},
        "data": {"path": str(ROOT / "experiments" / "data" / "digits.csv"), "scale": 16.0, "rows": [1347, 1447]},
        "sweep": {"t": ["1h"], "gdc": ["off", "readout"]},
    }
    for experiment in (SMOKE, doc):
        with pytest.raises(ValueError, match=r"gdc.*sweep"):
            aimc.run(experiment, backend="cpu", out=str(tmp_path / "g"), set={"gdc": "off"}, quiet=True)
    with pytest.raises(ValueError, match=r"SECTION\.FIELD"):
        aimc.run(SMOKE, backend="cpu", out=str(tmp_path / "g"), set={"device.": 1}, quiet=True)
    r = aimc.run(doc, backend="cpu", out=str(tmp_path / "ok"), set={"device.drift_scale": 0.5}, quiet=True)
    assert r.data["config"]["device"]["drift_scale"] == 0.5


def test_top_level_fields_are_settable(tmp_path):
    r = aimc.run(SMOKE, backend="cpu", out=str(tmp_path / "s"), set={"layer_insight_trials": 0, "weight_error_trials": 2}, quiet=True)
    assert (r.data["config"]["layer_insight_trials"], r.data["config"]["weight_error_trials"]) == (0, 2)
    x = np.eye(4)
    layers = [(np.eye(4, dtype=np.float32), np.zeros(4, np.float32))]
    c = aimc.classifier(layers, x, np.arange(4), times=["1h"], trials=2, backend="cpu", out=str(tmp_path / "c"), quiet=True,
                        layer_insight_trials=0)
    assert c.data["config"]["layer_insight_trials"] == 0 and all(not p.get("layer_insight") for p in c.points)


def test_a_sweep_may_set_what_a_keyword_left_out(tmp_path):
    # gdc and device are written only where given, so sweep= may sweep them; given and swept, the
    # value would go unused, and the engine refuses it, naming both.
    layers = [(np.eye(4, dtype=np.float32), np.zeros(4, np.float32))]
    sweep = {"t": ["1h"], "gdc": ["off", "readout"]}
    r = aimc.classifier(layers, np.eye(4), np.arange(4), trials=2, backend="cpu", out=str(tmp_path / "s"), quiet=True, sweep=sweep)
    assert len(r.points) == 2
    with pytest.raises(ValueError, match=r"gdc is set and swept by \[sweep\] gdc.*remove one"):
        aimc.classifier(layers, np.eye(4), np.arange(4), trials=2, gdc="off", backend="cpu", out=str(tmp_path / "g"), quiet=True, sweep=sweep)
    # A directory (or device, or pipe) as the experiment file is refused before it is read.
    with pytest.raises(ValueError, match=r"not a regular file"):
        aimc.run(tmp_path, backend="cpu", quiet=True)


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
    # row_counts=True: per test row, the trials that classify it right; they add up to the
    # trials' counts, which stay those of the run without them.
    r3 = aimc.classifier(layers, x, y, times=["1h", "1y"], trials=6, backend="cpu", out=str(tmp_path / "c3"), quiet=True, row_counts=True)
    assert [p["per_trial"] for p in r3.points] == [p["per_trial"] for p in r.points]
    by_row = r3.per_row()
    by_row = by_row.to_dict("records") if hasattr(by_row, "to_dict") else by_row
    assert len(by_row) == 2 * 60 and all(0 <= row["correct_trials"] <= row["trials"] == 6 for row in by_row)
    assert [row["label"] for row in by_row[:60]] == list(y)
    for p in r3.points:
        assert sum(row["correct_trials"] for row in by_row if row["t_s"] == p["t_inf"]) == sum(p["per_trial_correct"])
    assert (tmp_path / "c3" / "row_counts.csv").exists()
    # A notebook shows the run: its accuracy-vs-time plot inline and a row per point and time.
    view = r._repr_html_()
    assert view.count("data:image/png;base64,") == 1 and view.count("<tr><td>") == 2 and "1 y" in view
    e = aimc.weight_error(w_true, times=["1s", "1y"], trials=4, backend="cpu", out=str(tmp_path / "w"), quiet=True)
    assert e.points[1]["summary"]["mean"] > e.points[0]["summary"]["mean"] > 0.0


def test_a_layer_dict_carries_its_own_periphery(tmp_path):
    # A layer dict's "periphery" is that layer's [periphery] over the call's: a 3-bit ADC on the
    # head alone changes the trials, the call's own value on it changes nothing.
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 8))
    w1, w2 = rng.normal(size=(16, 8)).astype(np.float32), rng.normal(size=(3, 16)).astype(np.float32)
    y = np.argmax(np.maximum(x @ w1.T, 0) @ w2.T, axis=1)
    run = lambda head, name: aimc.classifier([(w1, np.zeros(16, np.float32)), {"weight": w2, "bias": np.zeros(3, np.float32), **head}], x, y,
                                             times=["1h"], trials=6, backend="cpu", out=str(tmp_path / name), quiet=True)
    plain, coarse, same = run({}, "p"), run({"periphery": {"out_res_bits": 3}}, "c"), run({"periphery": {"out_res_bits": 9}}, "s")
    assert [p["per_trial"] for p in same.points] == [p["per_trial"] for p in plain.points]
    assert [p["per_trial"] for p in coarse.points] != [p["per_trial"] for p in plain.points]
    with pytest.raises(ValueError, match=r"model\.layers\[1\]\.periphery(\.|__)adc: unknown field; known fields: .*inp_noise"):
        run({"periphery": {"adc": 3}}, "u")


def test_the_same_call_twice_replaces_its_own_results(tmp_path):
    # The inputs a call writes are named by their content: the same call is the same configuration.
    x, w = np.eye(4), np.eye(4, dtype=np.float32)
    layers = [(w, np.zeros(4, np.float32))]
    out = tmp_path / "c"  # a path-like out, as notebooks write it
    first = aimc.classifier(layers, x, np.arange(4), times=["1h"], trials=2, backend="cpu", out=out, quiet=True)
    again = aimc.classifier(layers, x, np.arange(4), times=["1h"], trials=2, backend="cpu", out=out, quiet=True)
    assert again.points == first.points
    with pytest.raises(ValueError, match="holds the results of experiment classifier"):
        aimc.classifier([(2 * w, np.zeros(4, np.float32))], x, np.arange(4), times=["1h"], trials=2, backend="cpu", out=out, quiet=True)
    e1 = aimc.weight_error(w, times=["1h"], trials=2, backend="cpu", out=tmp_path / "w", quiet=True)
    e2 = aimc.weight_error(w, times="1h", trials=2, backend="cpu", out=tmp_path / "w", quiet=True)  # one time as a string
    assert e1.points == e2.points
    with pytest.raises(ValueError, match="trials = 4.7: must be an integer"):
        aimc.weight_error(w, times="1h", trials=4.7, backend="cpu", out=tmp_path / "w2", quiet=True)
    # Labels that are not class indices, and an empty out, are refused before any compute.
    with pytest.raises(ValueError, match="non-negative integer class indices"):
        aimc.classifier(layers, x, [0.9, 1.9, 2.9, 3.9], times=["1h"], trials=2, backend="cpu", out=tmp_path / "f", quiet=True)
    with pytest.raises(ValueError, match="out is empty"):
        aimc.run(SMOKE, backend="cpu", out="", quiet=True)
    # A dict with NumPy values and paths, as notebooks build them.
    import tomllib
    doc = tomllib.loads(SMOKE.read_text())
    doc["model"]["path"] = ROOT / "experiments" / doc["model"]["path"]
    doc["data"]["path"] = ROOT / "experiments" / doc["data"]["path"]
    doc["seed"], doc["trials"] = np.int64(3), np.int64(2)
    r = aimc.run(doc, backend="cpu", out=tmp_path / "d", set={"layer_insight_trials": np.int64(0)}, quiet=True)
    assert r.data["config"]["seed"] == 3 and r.data["trials"] == 2


def test_bad_input_raises_the_cli_message(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(SMOKE.read_text().replace("trials = 8", "trials = 1"))
    with pytest.raises(ValueError, match=r"trials = 1: an interval over trials needs at least 2"):
        aimc.run(bad, backend="cpu", out=str(tmp_path / "o"))
    out = subprocess.run([str(cli()), "check", str(bad)], capture_output=True, text=True)
    assert "trials = 1: an interval over trials needs at least 2" in out.stderr
    with pytest.raises(ValueError, match="periphery__FIELD"):
        aimc.classifier([(np.eye(2), np.zeros(2))], np.eye(2), np.array([0, 1]), out_res_bits=8)
    # A misspelt field names the keyword the caller wrote, not the temporary experiment file.
    with pytest.raises(ValueError) as e:
        aimc.classifier([(np.eye(2), np.zeros(2))], np.eye(2), np.array([0, 1]), trials=2, backend="cpu",
                        out=str(tmp_path / "c"), device__drift_scal=0.5)
    assert "device__drift_scal" in str(e.value) and "classifier.toml" not in str(e.value), str(e.value)


class Linear:
    def __init__(self, w, b):
        self.weight, self.bias = w, b


class ReLU:
    pass


class Conv2d:
    def __init__(self, w, b, stride=1, padding=0):
        self.weight, self.bias, self.stride, self.padding = w, b, stride, padding
        self.dilation, self.groups, self.padding_mode = (1, 1), 1, "zeros"


class MaxPool2d:
    def __init__(self, k, stride=None):
        self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode = k, stride, 0, 1, False


class AvgPool2d:
    def __init__(self, k):
        self.kernel_size, self.stride, self.padding, self.ceil_mode, self.divisor_override = k, k, 0, False, None


class Flatten:
    pass


class LSTM:
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
    with pytest.raises(ValueError, match="does not follow a layer"):
        aimc.from_torch([ReLU(), l(4, 3)])
    with pytest.raises(ValueError, match="module 0 is LSTM"):
        aimc.from_torch([LSTM()])


def test_a_final_softmax_keeps_the_class_and_is_read_as_the_identity():
    """A Softmax or LogSoftmax over the classes right after the last layer leaves each row's
    argmax, which the accuracy reads, so it maps to nothing (as a dropout does); anywhere else, or
    over another dimension, it is refused."""
    l = lambda o, i: Linear(np.ones((o, i)), np.zeros(o))
    Softmax = type("Softmax", (), {"dim": 1})
    LogSoftmax = type("LogSoftmax", (), {"dim": -1})
    Dropout2d = type("Dropout2d", (), {})
    for final in (Softmax(), LogSoftmax()):
        layers, act = aimc.from_torch([l(4, 3), ReLU(), Dropout2d(), l(2, 4), final])
        assert act == "relu" and len(layers) == 2
    with pytest.raises(ValueError, match="module 1 is Softmax"):
        aimc.from_torch([l(4, 3), Softmax(), l(2, 4)])
    over_batch = type("Softmax", (), {"dim": 0})()
    with pytest.raises(ValueError, match="module 3 is Softmax"):
        aimc.from_torch([l(4, 3), ReLU(), l(2, 4), over_batch])


def test_from_torch_refuses_a_module_with_its_own_forward_it_cannot_trace():
    """A module whose class defines forward() may compute anything between its children: aimc
    reads it by tracing that forward with torch.fx (tests/test_residual.py), so one that is not a
    torch.nn.Module is refused with the fix; an nn.Sequential subclass that keeps Sequential's
    forward is read as one, nested too."""
    l = lambda o, i: Linear(np.ones((o, i)), np.zeros(o))
    Sequential = type("Sequential", (list,), {"children": lambda self: iter(self), "forward": lambda self, x: x})

    class Net:
        def __init__(self):
            self.fc1, self.fc2 = l(4, 3), l(2, 4)

        def children(self):
            return iter([self.fc1, self.fc2])

        def forward(self, x):
            return x

    with pytest.raises(ValueError, match=r"from_torch: Net defines its own forward\(\), which aimc reads by tracing it with "
                                         r"torch.fx, but it is not a torch.nn.Module.*nn.Sequential\(model.fc1, nn.ReLU\(\), model.fc2\)"):
        aimc.from_torch(Net())
    Blocks = type("Blocks", (Sequential,), {})
    layers, act = aimc.from_torch(Blocks([Blocks([l(4, 3), ReLU()]), l(2, 4)]))
    assert act == "relu" and [w.shape for w, _ in layers] == [(4, 3), (2, 4)]
    Custom = type("Custom", (Sequential,), {"forward": lambda self, x: x})
    with pytest.raises(ValueError, match="from_torch: Custom defines its own forward"):
        aimc.from_torch(Custom([l(4, 3)]))


class BatchNorm1d:
    def __init__(self, n, seed):
        r = np.random.default_rng(seed)
        self.weight, self.bias = r.normal(1, 0.2, n), r.normal(0, 0.3, n)
        self.running_mean, self.running_var, self.eps = r.normal(0, 0.5, n), r.uniform(0.5, 2, n), 1e-5

    def __call__(self, x):
        return (x - self.running_mean) / np.sqrt(self.running_var + self.eps) * self.weight + self.bias


def test_a_batchnorm1d_after_a_linear_stays_digital_and_one_before_it_folds():
    """A BatchNorm1d after a Linear is that layer's digital "batchnorm" by default (the Linear a
    dict), its eval-mode parameters as float32; with fold_batchnorm=True it is folded into the
    Linear's weights. One on the network's input is folded into the Linear after it either way.
    Both forms compute the network's forward."""
    r = np.random.default_rng(1)
    l1, l2 = Linear(r.normal(size=(6, 5)), r.normal(size=6)), Linear(r.normal(size=(3, 6)), r.normal(size=3))
    bn_in, bn_mid = BatchNorm1d(5, 2), BatchNorm1d(6, 3)
    x = r.normal(size=(4, 5))
    relu = lambda v: np.maximum(v, 0)
    want = relu(bn_mid(bn_in(x) @ l1.weight.T + l1.bias)) @ l2.weight.T + l2.bias
    layers, act = aimc.from_torch([bn_in, l1, bn_mid, ReLU(), l2])
    assert act == "relu" and len(layers) == 2 and set(layers[0]) == {"weight", "bias", "batchnorm"} and len(layers[1]) == 2
    bn = layers[0]["batchnorm"]
    for key in ("weight", "bias", "running_mean", "running_var"):
        assert bn[key].dtype == np.float32 and np.array_equal(bn[key], getattr(bn_mid, key).astype(np.float32))
    assert bn["eps"] == bn_mid.eps
    w1, b1 = layers[0]["weight"], layers[0]["bias"]
    digital = (x @ w1.T + b1 - bn["running_mean"]) / np.sqrt(bn["running_var"] + bn["eps"]) * bn["weight"] + bn["bias"]
    assert np.allclose(relu(digital) @ layers[1][0].T + layers[1][1], want, atol=1e-5)
    (w1, b1), (w2, b2) = aimc.from_torch([bn_in, l1, bn_mid, ReLU(), l2], fold_batchnorm=True)[0]
    assert np.allclose(relu(x @ w1.T + b1) @ w2.T + b2, want, atol=1e-5)
    with pytest.raises(ValueError, match="no Linear after it"):
        aimc.from_torch([l1, ReLU(), BatchNorm1d(6, 4)])


def test_classifier_runs_a_digital_batchnorm_and_refuses_a_malformed_one(tmp_path):
    """A layer's "batchnorm" goes to the engine as its NAME.bn.* tensors and eps: the
    floating-point accuracy is the NumPy forward's, the BatchNorm applied after the MVM + bias
    with its eps (large here, against small variances, so that it decides classes), and
    results.json records it as digital. A dict the engine would not read as a BatchNorm, or
    fold_batchnorm=True with layers already mapped, is refused, naming the layer and the fix."""
    r = np.random.default_rng(4)
    l1, l2 = Linear(r.normal(size=(6, 5)), r.normal(size=6)), Linear(r.normal(size=(3, 6)), r.normal(size=3))
    bn = BatchNorm1d(6, 5)
    bn.running_var, bn.eps = r.uniform(0.01, 0.1, 6), 0.2
    layers, act = aimc.from_torch([l1, bn, ReLU(), l2])
    x = r.normal(size=(300, 5))
    logits = _numpy_forward(layers, act, x, None)
    top2 = np.sort(logits, axis=1)[:, -2:]
    x, logits = x[top2[:, 1] - top2[:, 0] > 1e-3], logits[top2[:, 1] - top2[:, 0] > 1e-3]
    y = r.integers(0, 3, size=len(x))
    small_eps = [dict(layers[0], batchnorm={**layers[0]["batchnorm"], "eps": 1e-5}), layers[1]]
    assert np.any(np.argmax(_numpy_forward(small_eps, act, x, None), axis=1) != np.argmax(logits, axis=1))
    kw = dict(activation=act, times=["1h"], trials=2, backend="cpu", quiet=True)
    res = aimc.classifier(layers, x, y, out=str(tmp_path / "bn"), **kw)
    assert res.fp_baseline == pytest.approx(np.mean(np.argmax(logits, axis=1) == y), abs=1e-12)
    assert [t.get("batchnorm") for t in res.data["config"]["model"]["layers"]] == ["digital", None]

    def changed(**parts):
        given = {k: v for k, v in {**layers[0]["batchnorm"], **parts}.items() if v is not None}
        return [dict(layers[0], batchnorm=given), layers[1]]

    for given, match in ((changed(eps=0.0), r"layers\[0\]\['batchnorm'\]\['eps'\] = 0\.0; give a number > 0"),
                         (changed(eps=None), r"layers\[0\]\['batchnorm'\] is \['bias', 'running_mean', 'running_var', 'weight'\]; give"),
                         (changed(weight=np.ones(5)), r"\['weight'\] has shape \(5,\); the layer has 6 outputs"),
                         (changed(bias=np.full(6, np.nan)), r"\['bias'\] holds a value that is not a finite float32"),
                         (changed(running_var=-np.ones(6)), r"\['running_var'\] holds a negative value")):
        with pytest.raises(ValueError, match=match):
            aimc.classifier(given, x, y, out=str(tmp_path / "bad"), **kw)
    with pytest.raises(ValueError, match=r"these layers are mapped already.*aimc\.from_torch\(module, fold_batchnorm=True\)"):
        aimc.classifier(layers, x, y, out=str(tmp_path / "bad"), fold_batchnorm=True, **kw)


def test_to_toml_round_trips():
    import tomllib
    doc = {"name": "x", "trials": 3, "sweep": {"t": ["1s", "1h"], "gdc": ["off"]}, "moe": {"routing": {"kind": "zipf", "s": 1.5}}, "flag": True}
    assert tomllib.loads(aimc.to_toml(doc)) == doc


class BatchNorm2d(BatchNorm1d):
    pass


class Tanh:
    pass


def _direct_cnn(layers, acts, x):
    """PyTorch's forward pass in NumPy (float64): NCHW convolution with zero padding, the
    BatchNorm after it, pooling, flatten, Linear; an oracle written apart from the engine's
    im2col/NHWC path."""
    h = x.astype(np.float64)
    for layer, act in zip(layers, acts):
        if isinstance(layer, dict):
            w, b = layer["weight"].astype(np.float64), layer["bias"].astype(np.float64)
            (sh, sw), (ph, pw) = layer["stride"], layer["padding"]
            h = np.pad(h, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
            o, _, kh, kw = w.shape
            oh, ow = (h.shape[2] - kh) // sh + 1, (h.shape[3] - kw) // sw + 1
            out = np.zeros((h.shape[0], o, oh, ow))
            for i in range(oh):
                for j in range(ow):
                    patch = h[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
                    out[:, :, i, j] = np.einsum("nckl,ockl->no", patch, w) + b
            h = out
        else:
            h = h.reshape(h.shape[0], -1) @ layer[0].astype(np.float64).T + layer[1]
        if isinstance(layer, dict) and "batchnorm" in layer:
            bn = {k: np.asarray(v, np.float64).reshape((-1,) + (1,) * (h.ndim - 2)) for k, v in layer["batchnorm"].items()}
            h = (h - bn["running_mean"]) / np.sqrt(bn["running_var"] + bn["eps"]) * bn["weight"] + bn["bias"]
        h = {"relu": lambda v: np.maximum(v, 0), "tanh": np.tanh, "none": lambda v: v}[act](h)
        if isinstance(layer, dict) and "pool" in layer:
            (kh, kw), (sh, sw) = (np.broadcast_to(layer[key], 2) for key in ("pool_size", "pool_stride"))
            n, c, hh, ww = h.shape
            oh, ow = (hh - kh) // sh + 1, (ww - kw) // sw + 1
            win = np.stack([h[:, :, a:a + sh * (oh - 1) + 1:sh, bb:bb + sw * (ow - 1) + 1:sw] for a in range(kh) for bb in range(kw)])
            h = win.max(axis=0) if layer["pool"] == "max" else win.mean(axis=0)
    return h


def test_from_torch_maps_conv_pool_and_batchnorm2d():
    """A BatchNorm2d after a Conv2d is the layer's digital "batchnorm", the convolution keeping
    its own weights; with fold_batchnorm=True it is folded into them, in float64 from the float32
    parameters: W' = s W, b' = s b + (beta - s mean), s = gamma / sqrt(var + eps)."""
    rng = np.random.default_rng(1)
    w = rng.normal(size=(4, 2, 3, 3)).astype(np.float32)
    bn = BatchNorm2d(4, 0)
    model = [Conv2d(w, np.zeros(4, np.float32), padding=1), bn, ReLU(), MaxPool2d(2), Flatten(), Linear(np.ones((3, 4 * 3 * 3)), None)]
    layers, act = aimc.from_torch(model)
    assert act == "relu" and isinstance(layers[0], dict) and layers[0]["pool"] == "max" and layers[0]["pool_stride"] == 2
    assert np.array_equal(layers[0]["weight"], w) and np.array_equal(layers[0]["batchnorm"]["running_var"], bn.running_var.astype(np.float32))
    folded, _ = aimc.from_torch(model, fold_batchnorm=True)
    f64 = lambda v: v.astype(np.float32).astype(np.float64)  # noqa: E731
    s = f64(bn.weight) / np.sqrt(f64(bn.running_var) + bn.eps)
    assert "batchnorm" not in folded[0] and folded[0]["pool"] == "max"
    assert np.array_equal(folded[0]["weight"], (w.astype(np.float64) * s[:, None, None, None]).astype(np.float32))
    assert np.array_equal(folded[0]["bias"], (np.zeros(4) * s + (f64(bn.bias) - s * f64(bn.running_mean))).astype(np.float32))
    Sequential = type("Sequential", (list,), {"children": lambda self: iter(self)})
    nested, _ = aimc.from_torch(Sequential([Sequential(model[:4]), Sequential(model[4:])]))
    assert len(nested) == 2 and np.array_equal(nested[0]["weight"], layers[0]["weight"])
    with pytest.raises(ValueError, match="does not follow a Conv2d"):
        aimc.from_torch([Linear(np.ones((4, 3)), None), MaxPool2d(2)])
    with pytest.raises(ValueError, match=r"module 2 \(MaxPool2d\) does not follow a Conv2d"):
        aimc.from_torch([Linear(np.ones((4, 3)), None), BatchNorm1d(4, 1), MaxPool2d(2)])
    with pytest.raises(ValueError, match="groups"):
        c = Conv2d(w, None)
        c.groups = 2
        aimc.from_torch([c])


def test_conv_classifier_fp_baseline_equals_a_direct_convolution(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, size=(40, 2, 7, 6))
    y = rng.integers(0, 3, size=40)
    model = [Conv2d(rng.normal(size=(3, 2, 3, 2)).astype(np.float32), rng.normal(size=3).astype(np.float32), stride=(2, 1), padding=(1, 0)),
             ReLU(), AvgPool2d(2),
             Conv2d(rng.normal(size=(4, 3, 2, 2)).astype(np.float32), rng.normal(size=4).astype(np.float32), padding=1), Tanh(), MaxPool2d(2),
             Flatten(), Linear(rng.normal(size=(3, 4 * 1 * 1)).astype(np.float32), rng.normal(size=3).astype(np.float32))]
    layers, acts = aimc.from_torch(model)
    assert acts == ["relu", "tanh", "none"]
    want = np.mean(np.argmax(_direct_cnn(layers, acts, x), axis=1) == y)
    r = aimc.classifier(layers, x, y, activation=acts, times=["1h"], trials=4, backend="cpu", out=str(tmp_path / "cnn"), quiet=True)
    assert r.fp_baseline == want
    assert r.data["config"]["model"]["input_shape"] == [2, 7, 6]
    assert all(0.0 <= v <= 1.0 for v in r.points[0]["per_trial"])
    rows = r.per_layer()
    rows = rows.to_dict("records") if hasattr(rows, "to_dict") else rows
    assert [(row["name"], row["kind"]) for row in rows] == [("0", "Conv2d"), ("2", "Conv2d"), ("4", "Linear")]
    with pytest.raises(ValueError, match="input_shape"):
        aimc.classifier(layers, x.reshape(40, -1), y, activation=acts, times=["1h"], trials=2, backend="cpu", out=str(tmp_path / "bad"), quiet=True)


def test_adaptive_pooling_is_the_plain_pooling_it_computes(tmp_path):
    """AdaptiveAvgPool2d(1) (global average pooling, as most CNNs end) and AdaptiveMaxPool2d(2)
    after a convolution: `classifier` resolves each to the plain pooling PyTorch computes on that
    map (window and stride 6 on a 6 x 6 map; 2 on a 4 x 4 one), and the floating-point baseline
    equals the direct forward's; a map the output size does not divide is refused."""
    rng = np.random.default_rng(5)
    AdaptiveAvgPool2d = type("AdaptiveAvgPool2d", (), {"output_size": 1})
    AdaptiveMaxPool2d = type("AdaptiveMaxPool2d", (), {"output_size": (2, 2)})
    conv = lambda o, c: Conv2d(rng.normal(size=(o, c, 3, 3)).astype(np.float32), rng.normal(size=o).astype(np.float32), padding=1)
    x = rng.uniform(-1, 1, size=(40, 2, 6, 6))
    y = rng.integers(0, 3, size=40)
    for pool, feats, resolved in ((AdaptiveAvgPool2d(), 4, ("avg", 6)), (AdaptiveMaxPool2d(), 16, ("max", 3))):
        model = [conv(4, 2), ReLU(), pool, Flatten(), Linear(rng.normal(size=(3, feats)).astype(np.float32), np.zeros(3, np.float32))]
        layers, act = aimc.from_torch(model)
        assert "pool_output" in layers[0]
        resolved_layers = aimc._resolve_pools(layers, (2, 6, 6))
        assert (resolved_layers[0]["pool"], resolved_layers[0]["pool_size"], resolved_layers[0]["pool_stride"]) == resolved + resolved[1:]
        want = np.mean(np.argmax(_direct_cnn(resolved_layers, ["relu", "none"], x), axis=1) == y)
        r = aimc.classifier(layers, x, y, activation=act, times=["1h"], trials=2, backend="cpu", out=str(tmp_path / resolved[0]), quiet=True)
        assert r.fp_baseline == want
    with pytest.raises(ValueError, match=r"an adaptive pooling to 2 x 2 of a 5 x 5 map"):
        aimc.classifier(layers, x[:, :, :5, :5], y, activation=act, times=["1h"], trials=2, backend="cpu", out=str(tmp_path / "odd"), quiet=True)


def test_a_conv1d_network_runs_as_its_1xk_convolutions(tmp_path):
    """Conv1d layers as the Conv2d they are on C x 1 x L signals (weight [out, in, 1, k]), a
    BatchNorm1d digital after the Conv1d before it, MaxPool1d as a 1 x 2 pooling and
    AdaptiveAvgPool1d(1) as the global 1 x L one: the floating-point baseline of [n, C, L] signals
    equals the direct forward's; a Conv1d after a Conv2d, or a 1-D pooling after a Conv2d, is refused."""
    rng = np.random.default_rng(9)

    class Conv1d:
        def __init__(self, w, b, padding=0):
            self.weight, self.bias, self.stride, self.padding = w, b, (1,), (padding,)
            self.dilation, self.groups, self.padding_mode = (1,), 1, "zeros"

    MaxPool1d = type("MaxPool1d", (), {"kernel_size": 2, "stride": None, "padding": 0, "dilation": 1, "ceil_mode": False})
    AdaptiveAvgPool1d = type("AdaptiveAvgPool1d", (), {"output_size": 1})
    bn = BatchNorm1d(4, 3)
    conv = lambda o, c, pad: Conv1d(rng.normal(size=(o, c, 3)).astype(np.float32), rng.normal(size=o).astype(np.float32), pad)
    model = [conv(4, 2, 1), bn, ReLU(), MaxPool1d(), conv(5, 4, 0), Tanh(), AdaptiveAvgPool1d(), Flatten(),
             Linear(rng.normal(size=(3, 5)).astype(np.float32), np.zeros(3, np.float32))]
    layers, acts = aimc.from_torch(model)
    assert [np.shape(l["weight"]) if isinstance(l, dict) else None for l in layers[:2]] == [(4, 2, 1, 3), (5, 4, 1, 3)]
    assert (layers[0]["pool_size"], layers[1]["pool_output"]) == ([1, 2], [1, 1])
    x = rng.uniform(-1, 1, size=(40, 2, 14))
    y = rng.integers(0, 3, size=40)
    resolved = aimc._resolve_pools(layers, (2, 1, 14))
    assert (resolved[1]["pool_size"], resolved[1]["pool_stride"]) == ([1, 5], [1, 5])
    want = np.mean(np.argmax(_direct_cnn(resolved, acts, x[:, :, None, :]), axis=1) == y)
    r = aimc.classifier(layers, x, y, activation=acts, times=["1h"], trials=2, backend="cpu", out=str(tmp_path / "c1d"), quiet=True)
    assert r.fp_baseline == want and r.data["config"]["model"]["input_shape"] == [2, 1, 14]
    with pytest.raises(ValueError, match=r"module 2 \(Conv1d\) follows a Conv2d"):
        aimc.from_torch([Conv2d(np.ones((2, 2, 3, 3), np.float32), None), ReLU(), conv(2, 2, 0)])
    with pytest.raises(ValueError, match=r"module 1 \(MaxPool1d\) does not follow a Conv1d"):
        aimc.from_torch([Conv2d(np.ones((2, 2, 3, 3), np.float32), None), MaxPool1d()])


def test_an_interrupt_stops_the_run_at_a_checkpoint(tmp_path):
    # A notebook's interrupt (SIGINT) stops the run after its current chunk, as KeyboardInterrupt,
    # with the finished chunks journaled for the same call to resume from.
    import signal
    import sys
    import time
    out = tmp_path / "r"
    script = (
        "import signal, aimc\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "try:\n"
        f"    aimc.run({str(SMOKE)!r}, backend='cpu', trials=400000, out={str(out)!r}, quiet=True)\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted')\n"
    )
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    journal = tmp_path / "r.journal.jsonl"
    start = time.time()
    while time.time() - start < 120 and not (journal.exists() and journal.read_text().count("\n") >= 2):
        time.sleep(0.05)
    assert p.poll() is None, "the run ended before it could be interrupted"
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=120)
    assert "interrupted" in stdout and "resumes from them" in stderr, stderr
    assert journal.exists() and journal.read_text().count("\n") >= 2 and not (out / "results.json").exists()


def test_a_zero_padding_shortcut_runs_as_the_cifar_resnets_compute_it(tmp_path):
    """A convolution's "add" through He et al.'s zero-padding shortcut (option A): "add_stride" 2
    and "add_pad_channels" [2, 2] add the stem's maps at every second row and column between
    zero channels, F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 2, 2)); the floating-point baseline
    equals that forward written out in NumPy, and the experiment file records the shortcut."""
    rng = np.random.default_rng(9)
    x = rng.uniform(-1, 1, size=(60, 2, 5, 5))
    y = rng.integers(0, 3, size=60)
    stem = {"weight": rng.normal(size=(4, 2, 3, 3)).astype(np.float32), "bias": rng.normal(size=4).astype(np.float32),
            "stride": [1, 1], "padding": [1, 1]}
    block = {"weight": rng.normal(size=(8, 4, 3, 3)).astype(np.float32) * 0.3, "bias": rng.normal(size=8).astype(np.float32),
             "stride": [2, 2], "padding": [1, 1], "add": 0, "add_stride": 2, "add_pad_channels": [2, 2]}
    head = (rng.normal(size=(3, 72)).astype(np.float32), rng.normal(size=3).astype(np.float32))
    h0 = _direct_cnn([stem], ["relu"], x)
    shortcut = np.pad(h0[:, :, ::2, ::2], ((0, 0), (2, 2), (0, 0), (0, 0)))
    h1 = np.maximum(_direct_cnn([block], ["none"], h0) + shortcut, 0)
    want = np.mean(np.argmax(h1.reshape(60, -1) @ head[0].astype(np.float64).T + head[1], axis=1) == y)
    r = aimc.classifier([stem, block, head], x, y, activation=["relu", "relu", "none"], times=["1h"], trials=2, backend="cpu",
                        out=str(tmp_path / "a"), quiet=True)
    assert r.fp_baseline == want
    table = r.data["config"]["model"]["layers"][1]
    assert (table["add"], table["add_stride"], table["add_pad_channels"]) == ("0", 2, [2, 2])
    with pytest.raises(ValueError, match=r"layer 2 adds the output of 0 \(4 x 5 x 5\) to its own \(8 x 3 x 3\); its zero-padding "
                                         r"shortcut \(stride 2, channels padded 2 \+ 1\)"):
        aimc.classifier([stem, dict(block, add_pad_channels=[2, 1]), head], x, y, activation=["relu", "relu", "none"], times=["1h"],
                        trials=2, backend="cpu", out=str(tmp_path / "bad"), quiet=True)
