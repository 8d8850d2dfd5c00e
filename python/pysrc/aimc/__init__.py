"""aimc from Python: the same Monte Carlo engine and pipeline as the `aimc` command (one Rust
extension, no copy of the engine), for notebooks.

    import aimc
    r = aimc.run("experiments/digits_pcm_drift.toml", trials=200)      # a file or a dict
    r.per_trial()          # pandas DataFrame (or a list of dicts without pandas)
    r.report_html          # the report, with its plots beside it

    r = aimc.classifier([(W1, b1), (W2, b2)], x, y, times=["1h", "1y"], trials=500)
    layers, activation = aimc.from_torch(aihwkit_analog_sequential)   # weights, learned input ranges
    r = aimc.weight_error(W, times=["1s", "1d"], trials=200)
    layers, activation = aimc.from_torch(torch_sequential)
    model = aimc.from_torch(torch_transformer_classifier)               # a TransformerModel
    model = aimc.from_torch(hf_sequence_classifier)     # BERT, RoBERTa, ELECTRA, DistilBERT, MobileBERT: settings from config
    r = aimc.transformer(model, tokens, labels, times=["1h", "10y"], trials=100)
    r = aimc.language_model(gpt2, tokens)                               # perplexity per trial
    w = aimc.squad_windows(tokenizer, questions, contexts, answers)    # SQuAD's windows and text
    r = aimc.question_answering(hf_qa_model, w)                         # SQuAD's official F1
    enc, starts, ends, kept = aimc.squad_features(tokenizer, questions, contexts, answers)
    r = aimc.question_answering(hf_qa_model, enc, starts, ends)         # token-level F1
    r = aimc.classifier(layers, x, y, rpu_config=InferenceRPUConfig())  # aihwkit's settings
    aimc.from_aihwkit(rpu_config)  # what they map to (aimc.aihwkit; aihwkit itself not needed)

Errors are ValueErrors carrying the CLI's messages (they name the field or file and the fix);
progress goes to stderr. This file holds the calls; `_models` reads PyTorch models,
`_huggingface` Hugging Face ones, `_tensors` holds what both build (TransformerModel, the
safetensors writer, aihwkit's analog layers' weights and ranges), `_runner` builds and runs the
experiment document.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import pathlib
import shutil
import tempfile
from typing import Iterable, Sequence

import numpy as np

from ._aimc import __version__, run_toml as _run_toml
from ._runner import _document, _flat_sets, _rpu_base, _run_document, _toml_value, to_toml
from ._huggingface import _is_huggingface
from ._fx import TracedLayers, check_traced
from ._models import _is_conv, _is_transformer, _resolve_pools, from_torch
from ._tensors import TransformerModel, _write_safetensors
from .aihwkit import from_aihwkit
from .squad import SquadWindows, features as squad_features, windows as squad_windows

__all__ = ["run", "classifier", "weight_error", "transformer", "GLUE_METRICS", "language_model", "question_answering", "squad_features", "squad_windows", "from_torch", "from_aihwkit", "TransformerModel", "Results", "to_toml",
           "__version__"]


class Results:
    """A finished run: the parsed results.json (`data`), its directory and report paths."""

    def __init__(self, data: dict, directory: str):
        self.data = data
        # Absolute, so the report paths still hold after the notebook changes directory.
        self.dir = pathlib.Path(directory).resolve()
        self.report_md = self.dir / "report.md"
        self.report_html = self.dir / "report.html"

    @property
    def metric(self) -> str:
        return self.data["metric"]

    @property
    def points(self) -> list:
        return self.data["points"]

    @property
    def fp_baseline(self):
        """The floating-point accuracy: results.json's, else the one all points share (a
        transformer run records it per point; None where points differ, e.g. a state_dict sweep)."""
        fp = self.data.get("fp_baseline")
        if fp is None:
            per_point = {p.get("fp") for p in self.points}
            fp = per_point.pop() if len(per_point) == 1 else None
        return fp

    @property
    def companion(self) -> str | None:
        """The name of the benchmark's second metric scored from the same trials (SQuAD's
        `exact_match` beside its F1, GLUE's `accuracy` beside MRPC's F1, `spearman` beside
        STS-B's Pearson, `next_token_accuracy` beside a perplexity); None where the task has none."""
        return next((p["companion"]["metric"] for p in self.points if p.get("companion")), None)

    def per_trial(self):
        """One row per (point, time, trial): series, sweep labels, time, trial, value, and the
        companion metric's value in a column of its name where the run has one."""
        rows = []
        for p in self.points:
            also = p.get("companion")
            for i, v in enumerate(p["per_trial"]):
                row = {"series": p["series"], **p["labels"], "t_s": p["t_inf"], "time": p["time_label"], "trial": i, "value": v}
                if also:
                    row[also["metric"]] = also["per_trial"][i]
                rows.append(row)
        return _frame(rows)

    def per_point(self):
        """One row per (point, time): the summary statistics, the mean's trial-to-trial interval
        (`ci_lo`, `ci_hi`) and, where the run has one, its test-set sampling interval (`test_ci_lo`,
        `test_ci_hi`: classifiers Wilson over the test rows, language models over their sequences,
        GLUE's correlations the jackknife over the rows; None otherwise)."""
        rows = []
        for p in self.points:
            s = p["summary"]
            test = p.get("test_set_ci") or {}
            rows.append({
                "series": p["series"], **p["labels"], "t_s": p["t_inf"], "time": p["time_label"],
                "mean": s["mean"], "std": s["std"], "median": s["median"], "p05": s["p05"], "p95": s["p95"],
                "ci_lo": p["mean_ci"]["lo"], "ci_hi": p["mean_ci"]["hi"], "test_ci_lo": test.get("lo"), "test_ci_hi": test.get("hi"),
                "trials": s["n"], "fp": p.get("fp"),
                # The companion metric's mean, interval and floating-point value, prefixed by its name.
                **_companion_columns(p.get("companion")),
            })
        return _frame(rows)

    def per_row(self):
        """With `row_counts=True` (`classifier`) or `settings={"row_counts": True}` (a transformer
        classifier or reader): one row per (point, time, data row; per question with answer
        text), the trials that answered it right (`correct_trials`) of `trials`, and for a
        classifier the row's `label`. Which inputs (and classes) the noise breaks first."""
        rows, labels = [], self.data.get("row_labels")
        for p in self.points:
            for i, c in enumerate(p.get("per_row_correct") or []):
                row = {"series": p["series"], **p["labels"], "t_s": p["t_inf"], "time": p["time_label"], "row": i,
                       "correct_trials": c, "trials": len(p["per_trial"])}
                if labels is not None:
                    row["label"] = labels[i]
                rows.append(row)
        return _frame(rows)

    def per_layer(self):
        """Classifiers: one row per (point, time, layer) over the layer-insight trials: the error
        the layer adds on its own inputs (median and 5-95 % over trials), the share of its MVMs
        bound management redid and of its ADC outputs clipped. `name` is the layer's name in the
        state dict and `kind` "Linear" or "Conv2d"."""
        described = ((self.data.get("config") or {}).get("model") or {}).get("layers") or []
        rows = []
        for p in self.points:
            for l in p.get("layer_insight", []):
                e = l["mvm_error"]
                d = described[l["layer"]] if l["layer"] < len(described) else {}
                rows.append({"series": p["series"], **p["labels"], "t_s": p["t_inf"], "time": p["time_label"], "layer": l["layer"],
                             "name": d.get("name", str(l["layer"])), "kind": "Conv2d" if d.get("conv") else "Linear",
                             "trials": l["trials"], "mvm_error_median": e["median"], "mvm_error_p05": e["p05"], "mvm_error_p95": e["p95"],
                             "bm_repeated": l["bm_repeated"], "clipped": l["clipped"]})
        return _frame(rows)

    def __repr__(self) -> str:
        return f"Results({self.data['name']!r}, {len(self.points)} points, metric {self.metric!r}, in {str(self.dir)!r})"

    # The plot a notebook shows first: the metric against time, else the first the run wrote.
    _PLOTS = ("accuracy_vs_time.png", "metric_vs_time.png", "weight_error_vs_time.png", "distribution.png")

    def _repr_html_(self) -> str:
        """A notebook cell's view of the run: its main plot (inline PNG) and one row per point and
        time, the mean with its trial-to-trial 95 % half-width, the 5th percentile and the
        floating-point value; `report_html` holds the whole report."""
        import base64
        import html

        def num(v):
            return "" if v is None else f"{v:.4g}"

        rows = []
        for p in self.points:
            s, ci = p["summary"], p["mean_ci"]
            rows.append(f"<tr><td>{html.escape(str(p['series']))}</td><td>{html.escape(str(p['time_label']))}</td>"
                        f"<td>{num(s['mean'])}</td><td>± {num((ci['hi'] - ci['lo']) / 2)}</td><td>{num(s['p05'])}</td>"
                        f"<td>{num(p.get('fp'))}</td></tr>")
        plot = next((self.dir / n for n in self._PLOTS if (self.dir / n).exists()), None)
        img = "" if plot is None else f'<img src="data:image/png;base64,{base64.b64encode(plot.read_bytes()).decode()}" style="max-width:640px"/>'
        head = "<tr><th>series</th><th>time</th><th>mean</th><th>95 % of mean</th><th>p5</th><th>floating point</th></tr>"
        return (f"<div><b>{html.escape(str(self.data['name']))}</b>: {html.escape(self.metric)} over trials, "
                f"{len(self.points)} points (report: {html.escape(str(self.report_html))})<br/>{img}"
                f"<table>{head}{''.join(rows)}</table></div>")


def _companion_columns(c) -> dict:
    """`per_point`'s columns of a point's companion metric: `<name>_mean`, `<name>_ci_lo`,
    `<name>_ci_hi`, `<name>_test_ci_lo`, `<name>_test_ci_hi`, `<name>_fp`; none without one."""
    if not c:
        return {}
    name, test = c["metric"], c.get("test_set_ci") or {}
    return {f"{name}_mean": c["mean"], f"{name}_ci_lo": c["mean_ci"]["lo"], f"{name}_ci_hi": c["mean_ci"]["hi"],
            f"{name}_test_ci_lo": test.get("lo"), f"{name}_test_ci_hi": test.get("hi"), f"{name}_fp": c.get("fp")}


def _frame(rows: list):
    try:
        import pandas as pd
    except ImportError:
        return rows
    return pd.DataFrame(rows)


class _CallFiles:
    """The files one call writes for the engine (model, data, experiment file). They are written
    into a private folder, then `settle` moves it to one named by their content, so the same call
    gives the same paths and the same resolved configuration: a rerun replaces its own results, or
    resumes from its journal, instead of being refused as another configuration. Removed at the end."""

    def __enter__(self) -> "_CallFiles":
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="aimc-"))
        return self

    @staticmethod
    def _digest(folder: pathlib.Path) -> str:
        h = hashlib.sha256()
        for f in sorted(folder.iterdir()):
            h.update(f.name.encode() + b"\0")
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            h.update(b"\0")
        return h.hexdigest()

    def settle(self) -> pathlib.Path:
        digest = self._digest(self.dir)
        stable = self.dir.parent / f"aimc-inputs-{digest[:32]}"
        for _ in range(2):
            try:
                os.rename(self.dir, stable)
                break
            except OSError:
                # There already: an identical call's files (in use, or left by a crash), kept when
                # complete; a folder a crash left half-removed is replaced.
                if stable.is_dir() and self._digest(stable) == digest:
                    shutil.rmtree(self.dir, ignore_errors=True)
                    break
                shutil.rmtree(stable, ignore_errors=True)
        self.dir = stable
        return stable

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _out(out, default: str) -> str:
    """`out` as the engine takes it: a str or path-like, `default` where None; an empty one refused."""
    if out is None:
        return default
    out = os.fspath(out)
    if not out.strip():
        raise ValueError("out is empty: give a results directory, e.g. out=\"results/run1\" (or None for the default)")
    return out


def run(experiment: str | os.PathLike | dict, backend: str = "auto", trials: int | None = None, out: str | None = None,
        set: dict | None = None, quiet: bool = False, overwrite: bool = False, rpu_config=None) -> Results:
    """Runs an experiment file (path) or document (dict, the file's TOML as nested dicts) and
    returns its Results. `set={"device.drift_scale": 0.5, "layer_insight_trials": 0}` sets
    fields before validation, like `aimc run --set` (SECTION.FIELD, or a top-level field).
    Relative paths in a dict resolve from the working directory. `out` (default results/NAME)
    may hold the results of the same configuration, which are replaced; the results of another
    configuration are kept and the run refused unless `overwrite=True`; a directory holding
    files aimc does not write (a subdirectory, .git, inputs, notes) is never replaced.
    `rpu_config`, an aihwkit InferenceRPUConfig, gives the settings `from_aihwkit` maps it to as
    if the document held them: its sweep axes still vary them, and `set` still overrides them."""
    if isinstance(experiment, dict):
        text, path = to_toml(copy.deepcopy(experiment)), pathlib.Path.cwd() / "experiment.toml"
    else:
        path = pathlib.Path(experiment)
        # A device, pipe or directory would be read without end or waited on (the engine refuses
        # them too, naming the path).
        if path.exists() and not path.is_file():
            raise ValueError(f"{path}: cannot read the experiment file ({path} is not a regular file: a directory, device or pipe); give the path of a file")
        try:
            text = path.read_text()
        except OSError as e:
            raise ValueError(f"{path}: cannot read the experiment file ({e}); check the path") from None
    # The engine's own setter (`aimc run --set`), on files and documents alike: every override is
    # checked as the field it sets, on any Python version.
    sets = []
    for key, value in (set or {}).items():
        if not isinstance(key, str) or not key or key.startswith(".") or key.endswith("."):
            raise ValueError(f"set {key!r}: expected 'SECTION.FIELD' or a top-level field, e.g. 'device.drift_scale' or 'layer_insight_trials'")
        sets.append(f"{key}={_toml_value(value)}")
    base = None if rpu_config is None else _flat_sets(from_aihwkit(rpu_config))
    text, directory = _run_toml(text, str(path), backend, None if out is None else _out(out, ""), trials, quiet, overwrite, sets, base,
                                _learns_input_ranges(rpu_config))
    return Results(json.loads(text), directory)


def classifier(layers: Sequence, x, y, times: Iterable[str] = ("1s", "1h", "1d", "1y"), trials: int = 1000,
               device: str | None = None, gdc: str | None = None, activation: str | Sequence[str] | None = None, seed: int = 0,
               backend: str = "auto", out: str | None = None, quiet: bool = False, input_shape: Sequence[int] | None = None,
               overwrite: bool = False, rpu_config=None, fold_batchnorm: bool = False, **overrides) -> Results:
    """Accuracy over trials of a network given as NumPy arrays: `layers` = [(W [out, in], b [out]), ...]
    for Linear layers (or (W, b, input_range): aihwkit's learned input ranges, one value or one per
    input tile), or the Conv2d dicts `from_torch` returns, with `activation` between them
    (or a list: the activation after each layer; "relu" when left out), on features `x` [n, in] and
    integer labels `y` [n]. `layers` may also be the PyTorch (or aihwkit) `nn.Sequential` itself,
    read by `from_torch` with its own activations, or a module with its own forward (a ResNet).
    With Conv2d layers, `x` is [n, C, H, W] images (or [n, C*H*W] rows with `input_shape=(C, H, W)`);
    with Conv1d layers [n, C, L] signals (or rows with `input_shape=(C, L)`).
    Residual networks: a layer dict's "input" (the index of an earlier layer) makes the layer read
    that layer's output instead of the previous one's, and "add" adds that layer's output to its
    own (MVM + bias, then its BatchNorm) before its activation, as `out += identity; relu(out)`
    does; a layer's output is taken after its add, activation and pooling. A convolution's "add"
    may be He et al.'s zero-padding shortcut (option A, `F.pad(x[:, :, ::s, ::s], (0, 0, 0, 0,
    before, after))`): "add_stride" s and "add_pad_channels" [before, after]. A Linear with these
    keys is a dict too ("weight" [out, in], "bias", optionally "input_range"). They are written to the experiment
    file as `input = "NAME"` and `add = "NAME"` (with `add_stride` and `add_pad_channels`), NAME
    the layer's name in the state dict. A layer dict's "periphery" ({"out_res_bits": 8}) gives that
    layer its own [periphery] fields over the call's (the layer's table `periphery = {...}`).
    BatchNorm: a layer dict's "batchnorm" ({"weight": gamma, "bias": beta, "running_mean",
    "running_var", one value per output, and "eps" > 0}, as `from_torch` gives it) runs
    digitally on the layer's outputs after its MVM + bias, before its add, activation and
    pooling, as aihwkit runs the BatchNorm after an analog layer; it is written beside the
    layer's tensors as NAME.bn.weight, .bias, .running_mean and .running_var, with `batchnorm =
    "NAME.bn"` and `batchnorm_eps` in the layer's table. A module is read with its BatchNorms
    digital by default; `fold_batchnorm=True` folds them into the weights instead (see
    `from_torch`; with layers already mapped, pass it to `from_torch`). Layers
    that `from_torch` read from a module's traced forward are checked first: their NumPy forward
    on the first 8 rows of `x` must give the module's own eval-mode outputs (to 1e-4 of the
    largest), else the call is refused.
    `overrides` set device and periphery fields (`device__drift_scale=0.5`, `periphery__out_res_bits=8`)
    or top-level fields of the experiment (`layer_insight_trials=0`, `weight_error_trials=100`).
    `device` and `gdc` left out are the engine's defaults ("pcm", "readout"), so `sweep=` may sweep
    them; given and swept, the call is refused (the value would go unused). `rpu_config`, an aihwkit
    InferenceRPUConfig, gives the device, periphery, tile and gdc instead (`from_aihwkit` says what
    it maps to; `gdc` and `overrides` still override).
    `overwrite=True` replaces the results of a different configuration in `out`."""
    out = _out(out, "results/classifier")
    if callable(getattr(layers, "children", None)):
        layers, read = from_torch(layers, fold_batchnorm=fold_batchnorm)
        if activation is not None and activation != read:
            raise ValueError(f"activation={activation!r}, but the model's own activations read as {read!r}; leave activation "
                             "out to use the model's")
        activation = read
    else:
        if fold_batchnorm:
            raise ValueError("fold_batchnorm=True folds the BatchNorms of a module that classifier reads, but these layers are mapped "
                             "already (a layer's \"batchnorm\" runs digitally): give the module, or fold when mapping it, "
                             "aimc.from_torch(module, fold_batchnorm=True)")
        if activation is None:
            activation = "relu"
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    if hasattr(y, "detach"):
        y = y.detach().cpu().numpy()
    with _CallFiles() as files:
        tmp = files.dir
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y)
        # A Conv1d network reads [n, C, L] signals as C x 1 x L images.
        if any(isinstance(layer, dict) and layer.get("conv1d") for layer in layers):
            if x.ndim == 3:
                x = x[:, :, None, :]
            if input_shape is not None and len(input_shape) == 2:
                input_shape = (input_shape[0], 1, input_shape[1])
        if x.ndim == 4:
            if input_shape is not None and tuple(input_shape) != x.shape[1:]:
                raise ValueError(f"input_shape {tuple(input_shape)} differs from the images' shape {x.shape[1:]}")
            input_shape, x = x.shape[1:], x.reshape(x.shape[0], -1)
        if x.ndim != 2 or y.shape != (x.shape[0],):
            raise ValueError(f"x must be [n, features] (or [n, C, H, W] images) and y [n] labels; got x {x.shape}, y {y.shape}")
        traced = layers if isinstance(layers, TracedLayers) else None
        layers = _resolve_pools(list(layers), input_shape)
        yv = y.astype(np.float64) if y.dtype.kind in "biuf" else None
        if yv is None or not np.all(np.isfinite(yv) & (yv >= 0) & (yv == np.round(yv))):
            raise ValueError("y must be non-negative integer class indices (0, 1, 2, ...)")
        tensors, specs = {}, []
        for i, layer in enumerate(layers):
            table = isinstance(layer, dict)
            if not table and (not isinstance(layer, (tuple, list)) or len(layer) not in (2, 3)):
                raise ValueError(f"layers[{i}] must be (W, b), (W, b, input_range) or a layer dict as from_torch gives (a Conv2d's, "
                                 "or a Linear's with residual keys or a BatchNorm)")
            w, b = (layer["weight"], layer["bias"]) if table else layer[:2]
            ranges = layer.get("input_range") if table else (layer[2] if len(layer) == 3 else None)
            tensors[f"{2 * i}.weight"], tensors[f"{2 * i}.bias"] = w, b
            if ranges is not None:
                tensors[f"{2 * i}.input_range"] = np.atleast_1d(np.asarray(ranges, dtype=np.float64))
            elif _learns_input_ranges(rpu_config):
                raise ValueError(f"layers[{i}] has no input range, but the rpu_config's pre_post.input_range is enabled: "
                                 "aihwkit clips every layer's inputs to its learned range; give the layers of the trained "
                                 "analog model, aimc.from_torch(analog_model), or (W, b, input_range)")
            spec = {"name": str(2 * i)}
            if _is_conv(layer):
                spec.update({k: layer[k] for k in ("stride", "padding", "pool", "pool_size", "pool_stride", "pool_padding", "pool_count_include_pad")
                             if k in layer})
            if table:
                spec.update({k: str(2 * _earlier(layer, k, i)) for k in ("input", "add") if k in layer})
                if "add_stride" in layer:
                    spec["add_stride"] = int(layer["add_stride"])
                if "add_pad_channels" in layer:
                    spec["add_pad_channels"] = [int(c) for c in layer["add_pad_channels"]]
            if table and "periphery" in layer:
                if not isinstance(layer["periphery"], dict):
                    raise ValueError(f"layers[{i}]['periphery'] must be a dict of [periphery] fields, e.g. {{'out_res_bits': 8}}")
                spec["periphery"] = dict(layer["periphery"])
            if table and "batchnorm" in layer:
                bn, spec["batchnorm_eps"] = _batchnorm_tensors(layer["batchnorm"], int(np.shape(w)[0]), i)
                spec["batchnorm"] = f"{2 * i}.bn"
                tensors.update({f"{2 * i}.bn.{k}": v for k, v in bn.items()})
            specs.append(spec)
        if traced is not None:
            check_traced(traced, layers, activation, x, input_shape)
        _write_safetensors(tmp / "model.safetensors", tensors)
        # The engine reads f32 features: stored as such (a .npz, not text: a CIFAR-10 test set as
        # CSV is 370 MB and seconds to write and parse), the labels as exact floats.
        np.savez(tmp / "data.npz", x=x.astype(np.float32), y=y.astype(np.float64))
        tmp = files.settle()
        doc = _document("classifier", seed, trials, gdc, device, times, overrides, rpu_config=rpu_config)
        doc["model"] = {"path": str(tmp / "model.safetensors")}
        if any(isinstance(layer, dict) for layer in layers):
            doc["model"]["layers"] = specs
        if input_shape is not None:
            doc["model"]["input_shape"] = [int(v) for v in input_shape]
        if isinstance(activation, str):
            doc["model"]["activation"] = activation
        else:
            doc["model"]["activations"] = list(activation)
        doc["data"] = {"path": str(tmp / "data.npz")}
        doc.setdefault("weight_error_trials", 0)
        outputs = max(int(np.shape(layer["weight"] if isinstance(layer, dict) else layer[0])[0]) for layer in layers)
        text, directory = _run_document(doc, tmp / "classifier.toml", backend, out, quiet, overwrite, _rpu_base(rpu_config, doc, outputs),
                                        _learns_input_ranges(rpu_config))
        return Results(json.loads(text), directory)


def _earlier(layer: dict, key: str, i: int) -> int:
    """A residual key of layers[i]: the index of an earlier layer (its name in the state dict is
    twice that, as `classifier` writes it)."""
    j = layer[key]
    if isinstance(j, bool) or not isinstance(j, (int, np.integer)) or not 0 <= j < i:
        raise ValueError(f"layers[{i}][{key!r}] = {j!r}: give the index of an earlier layer in the list" +
                         (f" (0 to {i - 1})" if i else "; the first layer reads the network's input and adds nothing"))
    return int(j)


_BATCHNORM_KEYS = ("weight", "bias", "running_mean", "running_var")


def _batchnorm_tensors(bn, outputs: int, i: int) -> tuple[dict, float]:
    """layers[i]["batchnorm"] as the float32 tensors the file holds ("weight", "bias",
    "running_mean", "running_var", each one value per output) and eps; anything the engine would
    not read as a BatchNorm is refused, naming the layer and the key."""
    where = f"layers[{i}]['batchnorm']"
    if not isinstance(bn, dict) or set(bn) != {*_BATCHNORM_KEYS, "eps"}:
        got = sorted(bn) if isinstance(bn, dict) else type(bn).__name__
        raise ValueError(f"{where} is {got}; give a dict of weight (gamma), bias (beta), running_mean and running_var, one value "
                         "per output, and eps, as aimc.from_torch gives it")
    tensors = {}
    for key in _BATCHNORM_KEYS:
        v = np.asarray(bn[key], dtype=np.float32)
        if v.shape != (outputs,):
            raise ValueError(f"{where}[{key!r}] has shape {v.shape}; the layer has {outputs} outputs, one value each")
        if not np.all(np.isfinite(v)):
            raise ValueError(f"{where}[{key!r}] holds a value that is not a finite float32 (NaN, ±inf or out of range)")
        tensors[key] = v
    if np.any(tensors["running_var"] < 0):
        raise ValueError(f"{where}['running_var'] holds a negative value; a variance is >= 0")
    eps = bn["eps"]
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.integer, np.floating)) or not (np.isfinite(eps) and eps > 0):
        raise ValueError(f"{where}['eps'] = {eps!r}; give a number > 0 (PyTorch's default 1e-5)")
    return tensors, float(eps)


def _learns_input_ranges(rpu_config) -> bool:
    """Whether an aihwkit configuration clips inputs to learned ranges (pre_post.input_range)."""
    ir = getattr(getattr(rpu_config, "pre_post", None), "input_range", None)
    return rpu_config is not None and bool(getattr(ir, "enable", False))


def weight_error(w, times: Iterable[str] = ("1s", "1h", "1d", "1y"), trials: int = 200, device: str | None = None,
                 gdc: str | None = None, seed: int = 0, backend: str = "auto", out: str | None = None, quiet: bool = False,
                 overwrite: bool = False, rpu_config=None, **overrides) -> Results:
    """Std over trials of the effective-weight error (α·W_eff − W)/max|W| of a matrix W [out, in].
    `device`, `gdc`, `rpu_config` and `overrides` as for `classifier`; `overwrite=True` replaces
    another configuration's results in `out`."""
    out = _out(out, "results/weights")
    with _CallFiles() as files:
        _write_safetensors(files.dir / "w.safetensors", {"weight": w})
        tmp = files.settle()
        doc = _document("weight_error", seed, trials, gdc, device, times, overrides, rpu_config=rpu_config)
        doc["model"] = {"path": str(tmp / "w.safetensors"), "tensor": "weight"}
        text, directory = _run_document(doc, tmp / "weights.toml", backend, out, quiet, overwrite, _rpu_base(rpu_config, doc))
        return Results(json.loads(text), directory)


def transformer(model, tokens, labels, times: Iterable[str] = ("1s", "1h", "1d", "1y"), trials: int = 100, device: str | None = None,
                gdc: str | None = None, attention: str | None = None, features: int | None = None, pad_id: int | None = None,
                pooling: str | None = None, embed_scale: float | None = None, seed: int = 0, backend: str = "auto",
                out: str | None = None, quiet: bool = False, settings: dict | None = None, digital: Sequence[str] | None = None,
                overwrite: bool = False, rpu_config=None, token_type_ids=None, answer_text: dict | None = None, metric: str | None = None,
                **overrides) -> Results:
    """Accuracy over trials of a transformer classifier on token sequences (the `transformer`
    workload): every static-weight matrix on noisy crossbars, embedding, LayerNorm, attention,
    residual adds and pooling digital. `model` is a `TransformerModel` (from `from_torch`), a
    module `from_torch` maps (a PyTorch transformer classifier, a Hugging Face BERT, RoBERTa,
    XLM-R, ELECTRA, DistilBERT or MobileBERT sequence classifier), or the path of a .safetensors
    state dict (PyTorch or BERT names; docs/transformer-names.md) with its `[transformer]` settings in
    `settings` (at least "heads"). `tokens` [n, seq] are integer ids, padding (`pad_id`) trailing each row, or a tokenizer's output (a dict or `BatchEncoding`
    with `input_ids`, and optionally `token_type_ids` and `attention_mask`, which must mask
    exactly the trailing padding); `labels` [n] the classes (None with settings task "next_token" or
    "next_token_accuracy", a causal language model: see `language_model`).

    Settings, each overriding the model's: `attention` ("softmax", the default, or "kernel"),
    `features` (kernel attention's m, default 256), `pad_id` (default: the token embedding's
    padding_idx; `settings={"pad_id": None}` for none), `pooling` ("mean", the default, "cls",
    or "last": the last non-padding token), `embed_scale` (default 1; √d_model for Vaswani-style
    models), `settings` (any `[transformer]` field; None removes one), `digital` (matrices that
    stay digital: `layers.0.q`, or kinds `q`, `ffn1`, `head`, ...). `overrides` set device,
    periphery and transformer fields:
    `device__drift_scale=0.5`, `periphery__out_res_bits=8`, `transformer__causal=True`, and top-level
    fields of the experiment (`layer_insight_trials=0`). `device`, `gdc` and `rpu_config` (an aihwkit
    InferenceRPUConfig) as for `classifier`. `overwrite=True` replaces the results of a different
    configuration in `out`. `token_type_ids` [n, seq] (a BERT tokenizer's, for sentence pairs):
    aimc derives the types from the tokens, 0 up to a row's first separator and 1 after it, so
    it reads the separator's id from them (`settings={"segment_sep": id}` says it directly) and
    refuses types that rule does not reproduce. `answer_text` (question answering, labels None):
    the questions' contexts and answers as text and each row's question and token offsets
    (`squad_windows(...).text`), scored by SQuAD's official metrics.

    `metric` scores each trial's predictions over the data set as GLUE does (Wang et al. 2019):
    "accuracy" (the default for a classifier), "matthews" (Matthews' correlation, CoLA), "f1"
    (the F1 of class 1 of a binary classifier, MRPC and QQP), or for a regression head (one
    output, a Hugging Face model with num_labels = 1, STS-B; `labels` [n] real targets)
    "pearson" (its default) or "spearman"."""
    if isinstance(model, tuple) and len(model) == 2:
        model, settings = model[0], {**model[1], **(settings or {})}
    if _is_huggingface(model) or (hasattr(model, "named_children") and _is_transformer(model)):
        model = from_torch(model)
    if isinstance(model, TransformerModel):
        base = dict(model.settings)
    elif isinstance(model, (str, os.PathLike)):
        if not pathlib.Path(model).is_file():
            raise ValueError(f"{model}: no such state dict; give a .safetensors file or a TransformerModel from from_torch")
        base = {}
    else:
        raise ValueError(f"model is {type(model).__name__}; give a TransformerModel (aimc.from_torch), a module from_torch maps "
                         "(a PyTorch transformer classifier, a Hugging Face BERT-family classifier) or a .safetensors path "
                         "with settings=")
    mask = None
    if hasattr(tokens, "keys") and "input_ids" in tokens.keys():  # a tokenizer's output
        extra = set(tokens.keys()) - {"input_ids", "token_type_ids", "attention_mask"}
        if extra:
            raise ValueError(f"tokens holds {sorted(extra)} beside input_ids; aimc reads input_ids, token_type_ids and attention_mask")
        if "token_type_ids" in tokens.keys():
            if token_type_ids is not None:
                raise ValueError("token_type_ids are given twice: in tokens and as token_type_ids=; give one")
            token_type_ids = tokens["token_type_ids"]
        mask = np.asarray(tokens["attention_mask"]) if "attention_mask" in tokens.keys() else None
        tokens = tokens["input_ids"]
    tok = np.asarray(tokens)
    if metric is not None:
        s0 = {**base, **(settings or {})}
        regression = s0.get("task") in _REGRESSION_TASKS.values()
        tasks = _REGRESSION_TASKS if regression else _CLASSIFY_TASKS
        if s0.get("task", "classify") not in (*_CLASSIFY_TASKS.values(), *_REGRESSION_TASKS.values()):
            raise ValueError(f"metric = {metric!r} scores a sequence classifier or regression; this model's task is {s0['task']!r} "
                             "(aimc.language_model and aimc.question_answering take their own metric)")
        if metric not in tasks:
            head = "a regression head (one output)" if regression else "a classifier"
            raise ValueError(f"metric = {metric!r}: {head} is scored by {', '.join(repr(m) for m in tasks)}")
        settings = {**(settings or {}), "task": tasks[metric]}
    # A causal language model's rows are its tokens: no labels (aimc.language_model); question
    # answering's labels are each row's answer span, [n, 2] (aimc.question_answering).
    task = {**base, **(settings or {})}.get("task", "classify")
    lm = task in ("next_token", "next_token_accuracy")
    qa = task in ("qa_f1", "qa_exact_match")
    if answer_text is not None and not qa:
        raise ValueError("answer_text scores question answering (settings task qa_f1 or qa_exact_match); use aimc.question_answering")
    tokens_only = lm or answer_text is not None
    if tokens_only != (labels is None):
        raise ValueError("a language model (settings task next_token) takes labels=None: its rows are its tokens (aimc.language_model)"
                         if lm else "with answer_text the answers are its text: labels=None" if tokens_only
                         else "labels [n] are the classes of a classifier; a causal language model runs through aimc.language_model")
    y = np.zeros(len(tok), dtype=np.int64) if tokens_only else np.asarray(labels)
    ok = tok.ndim == 2 and (y.ndim == 2 and y.shape[0] == tok.shape[0] and y.shape[1] >= 2 and y.shape[1] % 2 == 0 if qa and not tokens_only
                            else y.shape == (tok.shape[0],))
    if not ok:
        raise ValueError(f"tokens must be [n, seq] token ids and labels [n] ([n, 2 * answers] answer spans for question answering); "
                         f"got tokens {tok.shape}, labels {y.shape}")
    regress = task in _REGRESSION_TASKS.values()
    for what, a in (("tokens", tok), ("labels", y)):
        v = a.astype(np.float64)
        if regress and what == "labels":
            if not np.all(np.isfinite(v)):
                raise ValueError("labels must be finite numbers (a regression head's targets)")
        elif not np.all(np.isfinite(v) & (v >= 0) & (v == np.round(v))):
            raise ValueError(f"{what} must be non-negative integers (token ids and class indices)")
    s = {**base, **(settings or {})}
    if qa and not tokens_only and y.shape[1] > 2:
        s["answers"] = y.shape[1] // 2
    for key, value in (("attention", attention), ("features", features), ("pad_id", pad_id), ("pooling", pooling), ("embed_scale", embed_scale)):
        if value is not None:
            s[key] = value
    s = {k: v for k, v in s.items() if v is not None}  # settings={"pad_id": None} removes the model's
    if mask is not None:
        _check_attention_mask(tok, mask, s.get("pad_id"))
    if token_type_ids is not None:
        sep = _segment_sep(tok, token_type_ids, s.get("pad_id"))
        if sep is not None and s.setdefault("segment_sep", sep) != sep:
            raise ValueError(f"settings segment_sep = {s['segment_sep']} but token_type_ids switch to type 1 after token {sep}")
    out = _out(out, "results/transformer")
    with _CallFiles() as files:
        tmp = files.dir
        if isinstance(model, TransformerModel):
            model.save(tmp / "model.safetensors", seq=tok.shape[1])
        if regress:
            # Each target as the shortest decimal that reads back to the same float32.
            lines = (",".join(map(str, r)) + "," + repr(float(np.float32(t))) for r, t in zip(tok.astype(np.int64).tolist(), y))
            (tmp / "tokens.csv").write_text("".join(line + "\n" for line in lines))
        else:
            rows = tok.astype(np.int64) if tokens_only else np.column_stack([tok.astype(np.int64), y.astype(np.int64).reshape(len(tok), -1)])
            np.savetxt(tmp / "tokens.csv", rows, delimiter=",", fmt="%d")
        if answer_text is not None:
            (tmp / "answer_text.json").write_text(json.dumps(answer_text))
        tmp = files.settle()
        path = tmp / "model.safetensors" if isinstance(model, TransformerModel) else pathlib.Path(model).resolve()
        doc = _document("transformer", seed, trials, gdc, device, times, overrides, sections=("device", "periphery", "transformer"),
                        rpu_config=rpu_config)
        doc["model"] = {"path": str(path)}
        if digital:
            doc["model"]["digital"] = [digital] if isinstance(digital, str) else [str(v) for v in digital]
        doc["data"] = {"path": str(tmp / "tokens.csv")}
        if answer_text is not None:
            doc["data"]["answer_text"] = str(tmp / "answer_text.json")
        doc["transformer"] = {**s, **doc["transformer"]}
        text, directory = _run_document(doc, tmp / "transformer.toml", backend, out, quiet, overwrite,
                                        _rpu_base(rpu_config, doc, _largest_layer(model, s)), _learns_input_ranges(rpu_config))
        return Results(json.loads(text), directory)


def _largest_layer(model, settings: dict) -> int | None:
    """A transformer's largest analog layer output count (what aihwkit's max_output_size = 0
    maps to): its 2-D weights but the embedding and position tables, which are no MVMs, unless the
    head is tied to the embedding (a language model's). None for a file given by path."""
    if not isinstance(model, TransformerModel):
        return None
    tables = ("embed", "wte", "wpe", "position", "token_type", "feature_projection")
    rows = [v.shape[0] for k, v in model.tensors.items() if k.endswith("weight") and v.ndim == 2 and not any(t in k for t in tables)]
    if settings.get("task") == "next_token":
        rows.append(model.vocab)
    return max(rows, default=None)


# `transformer(metric=...)`: GLUE's metrics of a sequence classifier and of a regression head.
_CLASSIFY_TASKS = {"accuracy": "classify", "matthews": "classify_matthews", "f1": "classify_f1"}
_REGRESSION_TASKS = {"pearson": "regress_pearson", "spearman": "regress_spearman"}

#: The metric GLUE's leaderboard scores each task by (Wang et al. 2019; MRPC and QQP report the
#: F1 beside the accuracy, STS-B Spearman's beside Pearson's): `metric=GLUE_METRICS["cola"]`.
GLUE_METRICS = {"cola": "matthews", "sst2": "accuracy", "mrpc": "f1", "qqp": "f1", "stsb": "pearson", "mnli": "accuracy",
                "qnli": "accuracy", "rte": "accuracy", "wnli": "accuracy"}


def language_model(model, tokens, metric: str = "perplexity", settings: dict | None = None, **kw) -> Results:
    """Next-token perplexity over trials of a causal transformer language model (the `transformer`
    workload with `task = "next_token"`): the head runs on every token on noisy crossbars and each
    position i < len - 1 is scored against token i + 1; per trial the perplexity
    exp(mean -ln p(next token)) over every predicted token, beside the floating-point one (lower is
    better). `metric="accuracy"` gives the next-token top-1 accuracy instead (exact counts). `model`
    as for `transformer`; its head (`classifier`, `head` or `lm_head`) has one output per
    vocabulary token, or is absent in a state dict (then the embedding, tied). The attention is
    made causal. `tokens` [n, seq] integer ids, padding trailing each row (a row of one token
    predicts nothing), or a tokenizer's output. Every other keyword is `transformer`'s."""
    tasks = {"perplexity": "next_token", "accuracy": "next_token_accuracy"}
    if metric not in tasks:
        raise ValueError(f"metric = {metric!r}: give 'perplexity' or 'accuracy' (next-token top-1)")
    return transformer(model, tokens, None, settings={**(settings or {}), "task": tasks[metric], "causal": True}, **kw)


def question_answering(model, tokens, starts=None, ends=None, metric: str = "f1", settings: dict | None = None,
                       null_score_diff_threshold: float | None = None, n_best_size: int | None = None,
                       max_answer_length: int | None = None, **kw) -> Results:
    """Extractive question answering over trials (SQuAD; the `transformer` workload with
    `task = "qa_f1"`): the span head (`qa_outputs`, a start and an end logit per token) runs on
    every token on noisy crossbars, and each row's answer is the context span start <= end <
    start + max_answer_length tokens (default 30) with the largest start + end logit, its start
    among the row's n_best_size largest start logits and its end among its n_best_size largest end
    logits (default 20; 0 searches every span), as Hugging Face's SQuAD post-processing
    (`postprocess_qa_predictions`) takes them; the context is the tokens after the row's first
    separator (the separators excluded). Per trial the token-level F1 of the answers against the labelled spans
    (2 overlap / (predicted + labelled length), averaged over the rows), beside the floating-point
    one; `metric="exact_match"` gives the fraction of exact answers instead (exact counts).
    `model` as for `transformer` (a `BertForQuestionAnswering` or another family's, through
    `from_torch`); `tokens` [n, seq] `[CLS] question [SEP] context [SEP]` rows or a tokenizer's
    output for (question, context) pairs, with `token_type_ids` (or `settings={"segment_sep": id}`);
    `starts`, `ends` [n] each row's answer start and end token (a SQuAD feature's
    `start_positions` and `end_positions`, inside the context: leave out rows whose answer the
    tokenizer cut off), or [n, k] for k annotated answers per row (SQuAD's dev set has up to
    three; repeat one to fill a row), scored by the best of them as SQuAD's metrics score. The F1
    counts the model's tokens; SQuAD's official F1 counts normalised words of the answer text.

    With `tokens` a `squad_windows(...)` result (no starts or ends) the scores are SQuAD's
    official ones instead, over the questions: each question's answer the best of its windows'
    by score, its context text scored against the annotated answers' text by normalised exact
    match and bag-of-words F1, as Hugging Face's run_qa and aihwkit's BERT example score SQuAD.
    With SQuAD 2.0's windows a question answers nothing where its lowest null score exceeds its
    best span's by more than `null_score_diff_threshold` (Hugging Face's option; default 0).
    Every other keyword is `transformer`'s."""
    tasks = {"f1": "qa_f1", "exact_match": "qa_exact_match"}
    if metric not in tasks:
        raise ValueError(f"metric = {metric!r}: give 'f1' (token-level) or 'exact_match'")
    if null_score_diff_threshold is not None:
        settings = {**(settings or {}), "null_score_diff_threshold": float(null_score_diff_threshold)}
    for name, field, v in (("n_best_size", "n_best", n_best_size), ("max_answer_length", "max_answer_tokens", max_answer_length)):
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name} = {v!r}: give a whole number of tokens (Hugging Face's default: "
                             f"{20 if name == 'n_best_size' else 30})")
        settings = {**(settings or {}), field: int(v)}
    if isinstance(tokens, SquadWindows):
        if starts is not None or ends is not None:
            raise ValueError("squad_windows carry their answers as text: leave out starts and ends")
        # The tokenizer's separator marks the context, for models with no token types
        # (DistilBERT) or one (RoBERTa) as for BERT's.
        s = {"segment_sep": tokens.segment_sep, **(settings or {}), "task": tasks[metric]}
        return transformer(model, tokens.enc, None, answer_text=tokens.text, settings=s, **kw)
    if starts is None or ends is None:
        raise ValueError("give starts and ends (each row's answer tokens, aimc.squad_features), or tokens from aimc.squad_windows")
    s, e = np.asarray(starts), np.asarray(ends)
    if s.ndim not in (1, 2) or s.shape != e.shape:
        raise ValueError(f"starts and ends must be [n] token positions (one answer per row) or [n, k] (k answers per row), the same "
                         f"shape; got {s.shape} and {e.shape}")
    s, e = s.reshape(len(s), -1), e.reshape(len(e), -1)
    spans = np.stack([s, e], axis=2).reshape(len(s), -1)  # start, end of answer 1, then answer 2, ...
    return transformer(model, tokens, spans, settings={**(settings or {}), "task": tasks[metric]}, **kw)


def _lengths(tokens: np.ndarray, pad_id) -> list:
    """Each row's tokens before its first `pad_id` (the engine's `TransformerSettings::length`)."""
    return [int(np.argmax(row == pad_id)) if pad_id is not None and np.any(row == pad_id) else len(row) for row in tokens]


def _check_attention_mask(tokens: np.ndarray, mask: np.ndarray, pad_id) -> None:
    """aimc masks a row's keys from its first `pad_id` on; a tokenizer's attention mask must say
    the same (1 on the tokens, 0 on trailing padding), or the model would see other inputs."""
    if mask.shape != tokens.shape:
        raise ValueError(f"attention_mask must be [n, seq] like input_ids {tokens.shape}; got {mask.shape}")
    for r, (row, m, n) in enumerate(zip(tokens, mask, _lengths(tokens, pad_id))):
        want = np.arange(len(row)) < n
        if not np.array_equal(m != 0, want):
            first = int(np.flatnonzero((m != 0) != want)[0])
            raise ValueError(f"attention_mask row {r} is {int(m[first])} at token {first}, but aimc masks the keys from the first "
                             f"pad_id ({pad_id}) on, at token {n}: pad at the end (tokenizer padding_side='right') with the "
                             "model's pad token, or set pad_id")


def _segment_sep(tokens: np.ndarray, token_type_ids, pad_id) -> int | None:
    """The separator id a tokenizer's `token_type_ids` imply: the token before each row's first
    type-1 token, the same in every row; None when no row has a second segment. The rule the
    engine applies (type 1 after a row's first separator, `transformer.segment_sep`) must give
    every row's types on its non-padding tokens; anything else is refused, naming the row."""
    types = np.asarray(token_type_ids)
    if types.shape != tokens.shape:
        raise ValueError(f"token_type_ids must be [n, seq] like tokens {tokens.shape}; got {types.shape}")
    if not np.all((types == 0) | (types == 1)):
        raise ValueError("token_type_ids hold 0 (first segment) and 1 (second segment); aimc models sentence pairs, not more segments")
    lengths = _lengths(tokens, pad_id)
    seps = {}
    for r, (row, ty, n) in enumerate(zip(tokens, types, lengths)):
        ones = np.flatnonzero(ty[:n] == 1)
        if len(ones) == 0:
            continue
        if ones[0] == 0:
            raise ValueError(f"token_type_ids row {r} starts with type 1; the first segment (type 0) holds at least the first token")
        seps.setdefault(int(row[ones[0] - 1]), r)
    if not seps:
        return None
    if len(seps) > 1:
        (a, ra), (b, rb) = list(seps.items())[:2]
        raise ValueError(f"token_type_ids switch to type 1 after token {a} in row {ra} but after token {b} in row {rb}; aimc derives the "
                         "types from one separator id (BERT's [SEP])")
    sep = next(iter(seps))
    for r, (row, ty, n) in enumerate(zip(tokens, types, lengths)):
        want = np.zeros(n, dtype=types.dtype)
        first = np.flatnonzero(row[:n] == sep)
        if len(first):
            want[first[0] + 1:] = 1
        if not np.array_equal(ty[:n], want):
            raise ValueError(f"token_type_ids row {r} is not 0 up to the first separator ({sep}) and 1 after it, as BERT's tokenizers "
                             "write a pair; aimc derives the types from that rule")
    return sep
