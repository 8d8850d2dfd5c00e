"""aimc from Python: the same Monte Carlo engine and pipeline as the `aimc` command (one Rust
extension, no copy of the engine), for notebooks.

    import aimc
    r = aimc.run("experiments/digits_pcm_drift.toml", trials=200)      # a file or a dict
    r.per_trial()          # pandas DataFrame (or a list of dicts without pandas)
    r.report_html          # the report, with its plots beside it

    r = aimc.classifier([(W1, b1), (W2, b2)], x, y, times=["1h", "1y"], trials=500)
    r = aimc.weight_error(W, times=["1s", "1d"], trials=200)
    layers, activation = aimc.from_torch(torch_sequential)

Errors are ValueErrors carrying the CLI's messages (they name the field or file and the fix);
progress goes to stderr.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import struct
import tempfile
from typing import Any, Iterable, Sequence

import numpy as np

from ._aimc import __version__, run_toml as _run_toml

__all__ = ["run", "classifier", "weight_error", "from_torch", "Results", "to_toml", "__version__"]


class Results:
    """A finished run: the parsed results.json (`data`), its directory and report paths."""

    def __init__(self, data: dict, directory: str):
        self.data = data
        self.dir = pathlib.Path(directory)
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
        return self.data.get("fp_baseline")

    def per_trial(self):
        """One row per (point, time, trial): series, sweep labels, time, trial, value."""
        rows = []
        for p in self.points:
            for i, v in enumerate(p["per_trial"]):
                rows.append({"series": p["series"], **p["labels"], "t_s": p["t_inf"], "time": p["time_label"], "trial": i, "value": v})
        return _frame(rows)

    def per_point(self):
        """One row per (point, time): the summary statistics and the mean's interval."""
        rows = []
        for p in self.points:
            s = p["summary"]
            rows.append({
                "series": p["series"], **p["labels"], "t_s": p["t_inf"], "time": p["time_label"],
                "mean": s["mean"], "std": s["std"], "median": s["median"], "p05": s["p05"], "p95": s["p95"],
                "ci_lo": p["mean_ci"]["lo"], "ci_hi": p["mean_ci"]["hi"], "trials": s["n"], "fp": p.get("fp"),
            })
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


def _frame(rows: list):
    try:
        import pandas as pd
    except ImportError:
        return rows
    return pd.DataFrame(rows)


def run(experiment: str | os.PathLike | dict, backend: str = "auto", trials: int | None = None, out: str | None = None,
        set: dict | None = None, quiet: bool = False) -> Results:
    """Runs an experiment file (path) or document (dict, the file's TOML as nested dicts) and
    returns its Results. `set={"device.drift_scale": 0.5}` sets fields before validation, like
    `aimc run --set`. Relative paths in a dict resolve from the working directory."""
    if isinstance(experiment, dict):
        doc, path = json.loads(json.dumps(experiment)), pathlib.Path.cwd() / "experiment.toml"
    else:
        path = pathlib.Path(experiment)
        try:
            import tomllib
        except ImportError:  # Python < 3.11: read the file as text and let the engine parse it
            tomllib = None
        if set and tomllib is None:
            raise ValueError("set= needs Python >= 3.11 (tomllib) for experiment files; pass a dict instead")
        if tomllib is None:
            text, directory = _run_toml(path.read_text(), str(path), backend, out, trials, quiet)
            return Results(json.loads(text), directory)
        try:
            doc = tomllib.loads(path.read_text())
        except OSError as e:
            raise ValueError(f"{path}: cannot read the experiment file ({e}); check the path") from None
    for key, value in (set or {}).items():
        section, _, field = key.partition(".")
        if not field:
            raise ValueError(f"set {key!r}: expected 'SECTION.FIELD', e.g. 'device.drift_scale'")
        doc.setdefault(section, {})[field] = value
    text, directory = _run_toml(to_toml(doc), str(path), backend, out, trials, quiet)
    return Results(json.loads(text), directory)


def classifier(layers: Sequence, x, y, times: Iterable[str] = ("1s", "1h", "1d", "1y"), trials: int = 1000,
               device: str = "pcm", gdc: str = "readout", activation: str | Sequence[str] = "relu", seed: int = 0, backend: str = "auto",
               out: str | None = None, quiet: bool = False, input_shape: Sequence[int] | None = None, **overrides) -> Results:
    """Accuracy over trials of a network given as NumPy arrays: `layers` = [(W [out, in], b [out]), ...]
    for Linear layers, or the Conv2d dicts `from_torch` returns, with `activation` between them
    (or a list: the activation after each layer), on features `x` [n, in] and integer labels `y` [n].
    With Conv2d layers, `x` is [n, C, H, W] images (or [n, C*H*W] rows with `input_shape=(C, H, W)`).
    `overrides` set device and periphery fields: `device__drift_scale=0.5`, `periphery__out_res_bits=8`."""
    with tempfile.TemporaryDirectory(prefix="aimc-") as tmp:
        tmp = pathlib.Path(tmp)
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y)
        if x.ndim == 4:
            if input_shape is not None and tuple(input_shape) != x.shape[1:]:
                raise ValueError(f"input_shape {tuple(input_shape)} differs from the images' shape {x.shape[1:]}")
            input_shape, x = x.shape[1:], x.reshape(x.shape[0], -1)
        if x.ndim != 2 or y.shape != (x.shape[0],):
            raise ValueError(f"x must be [n, features] (or [n, C, H, W] images) and y [n] labels; got x {x.shape}, y {y.shape}")
        tensors, specs = {}, []
        for i, layer in enumerate(layers):
            conv = isinstance(layer, dict)
            w, b = (layer["weight"], layer["bias"]) if conv else layer
            tensors[f"{2 * i}.weight"], tensors[f"{2 * i}.bias"] = w, b
            spec = {"name": str(2 * i)}
            if conv:
                spec.update({k: layer[k] for k in ("stride", "padding", "pool", "pool_size", "pool_stride") if k in layer})
            specs.append(spec)
        _write_safetensors(tmp / "model.safetensors", tensors)
        np.savetxt(tmp / "data.csv", np.column_stack([x, y.astype(np.int64)]), delimiter=",", fmt=["%.9g"] * x.shape[1] + ["%d"])
        doc = _document("classifier", seed, trials, gdc, device, times, overrides)
        doc["model"] = {"path": str(tmp / "model.safetensors")}
        if any(isinstance(layer, dict) for layer in layers):
            doc["model"]["layers"] = specs
        if input_shape is not None:
            doc["model"]["input_shape"] = [int(v) for v in input_shape]
        if isinstance(activation, str):
            doc["model"]["activation"] = activation
        else:
            doc["model"]["activations"] = list(activation)
        doc["data"] = {"path": str(tmp / "data.csv")}
        doc["weight_error_trials"] = 0
        text, directory = _run_toml(to_toml(doc), str(tmp / "classifier.toml"), backend, out or "results/classifier", None, quiet)
        return Results(json.loads(text), directory)


def weight_error(w, times: Iterable[str] = ("1s", "1h", "1d", "1y"), trials: int = 200, device: str = "pcm", gdc: str = "readout",
                 seed: int = 0, backend: str = "auto", out: str | None = None, quiet: bool = False, **overrides) -> Results:
    """Std over trials of the effective-weight error (α·W_eff − W)/max|W| of a matrix W [out, in]."""
    with tempfile.TemporaryDirectory(prefix="aimc-") as tmp:
        tmp = pathlib.Path(tmp)
        _write_safetensors(tmp / "w.safetensors", {"weight": w})
        doc = _document("weight_error", seed, trials, gdc, device, times, overrides)
        doc["model"] = {"path": str(tmp / "w.safetensors"), "tensor": "weight"}
        text, directory = _run_toml(to_toml(doc), str(tmp / "weights.toml"), backend, out or "results/weights", None, quiet)
        return Results(json.loads(text), directory)


def from_torch(module) -> tuple[list, str | list]:
    """An `nn.Sequential` of Linear and Conv2d layers as ([layer, ...], activation), for
    `classifier`. A Linear layer is (W, b); a Conv2d layer is a dict with its 4-D "weight"
    [out, in, kh, kw], "bias", "stride", "padding" and, when a MaxPool2d or AvgPool2d follows
    it (after its activation), "pool", "pool_size" and "pool_stride". aimc maps a Conv2d as
    aihwkit does (unfolded kernel x in-channels rows, out-channels columns, one MVM per output
    pixel) and runs the pooling and Flatten digitally. The activation is one name when the same
    one sits between all layers and none after the last, else a list, the activation after each
    layer ("none" where there is none). ReLU, GELU and Tanh are mapped; Flatten, Identity and
    Dropout are skipped; nested Sequentials are expanded in order. BatchNorm1d/BatchNorm2d are folded with their eval-mode running
    statistics: into the layer right before them (W' = s W, b' = s (b - mean) + beta,
    s = gamma / sqrt(var + eps)), or, for BatchNorm1d when an activation or nothing precedes it,
    into the Linear after it (W' = W diag(s), b' = b + W (beta - s mean)). Anything else is
    refused by name: aimc never drops a layer silently. Works by class name, so torch itself is
    not imported here."""
    children = _flatten_sequential(module)
    layers, acts = [], []   # acts[i]: the activation after layer i
    pending = None          # a BatchNorm1d waiting for the next Linear: (scale, shift)
    last_layer = False      # the previous effective module was a layer (no activation since)
    for i, m in enumerate(children):
        kind = type(m).__name__
        if kind == "Linear":
            w = _numpy(m.weight).astype(np.float64)
            b = _numpy(m.bias).astype(np.float64) if getattr(m, "bias", None) is not None else np.zeros(w.shape[0])
            if pending is not None:
                scale, shift = pending
                if scale.shape[0] != w.shape[1]:
                    raise ValueError(f"from_torch: the BatchNorm1d before module {i} has {scale.shape[0]} features but the Linear takes {w.shape[1]}")
                b = b + w @ shift
                w = w * scale[None, :]
                pending = None
            layers.append((w.astype(np.float32), b.astype(np.float32)))
            acts.append("none")
            last_layer = True
        elif kind == "Conv2d":
            if pending is not None:
                raise ValueError(f"from_torch: a BatchNorm1d waits for a Linear but module {i} is a Conv2d")
            layers.append(_conv2d(m, i))
            acts.append("none")
            last_layer = True
        elif kind in ("BatchNorm1d", "BatchNorm2d"):
            scale, shift = _batchnorm(m, i)
            if last_layer:
                prev = layers[-1]
                w, b = (prev["weight"], prev["bias"]) if isinstance(prev, dict) else prev
                if (kind == "BatchNorm2d") != isinstance(prev, dict):
                    raise ValueError(f"from_torch: module {i} ({kind}) follows a {'Conv2d' if isinstance(prev, dict) else 'Linear'}; "
                                     "BatchNorm2d folds into a Conv2d, BatchNorm1d into a Linear")
                if scale.shape[0] != w.shape[0]:
                    raise ValueError(f"from_torch: module {i} ({kind}) has {scale.shape[0]} features but the layer before it has {w.shape[0]} outputs")
                shape = (-1,) + (1,) * (w.ndim - 1)
                w = (w.astype(np.float64) * scale.reshape(shape)).astype(np.float32)
                b = (b.astype(np.float64) * scale + shift).astype(np.float32)
                layers[-1] = dict(prev, weight=w, bias=b) if isinstance(prev, dict) else (w, b)
            elif kind == "BatchNorm2d":
                raise ValueError(f"from_torch: module {i} (BatchNorm2d) does not directly follow a Conv2d; aimc folds it into the "
                                 "convolution before it (move it before the activation, or fold it yourself)")
            elif pending is None:
                pending = (scale, shift)
            else:
                raise ValueError(f"from_torch: module {i} is a second BatchNorm1d with no Linear between; fold them first")
        elif kind in ("ReLU", "GELU", "Tanh"):
            if not layers or acts[-1] != "none" or pending is not None or (not last_layer and "pool" in _as_dict(layers[-1])):
                raise ValueError(f"from_torch: module {i} ({kind}) does not follow a layer (an activation first, two in a row, "
                                 "after a pooling, or after a BatchNorm1d waiting for its Linear); aimc applies one activation after a layer")
            acts[-1] = kind.lower()
            last_layer = False
        elif kind in ("MaxPool2d", "AvgPool2d"):
            if not layers or not isinstance(layers[-1], dict) or "pool" in layers[-1]:
                raise ValueError(f"from_torch: module {i} ({kind}) does not follow a Conv2d (and its activation); aimc pools a "
                                 "convolution's outputs once, digitally, after its activation")
            layers[-1] = dict(layers[-1], **_pool2d(m, i, kind))
            last_layer = False
        elif kind in ("Flatten", "Identity", "Dropout"):
            continue
        else:
            raise ValueError(f"from_torch: module {i} is {kind}; aimc maps Linear and Conv2d layers (BatchNorm folded) with ReLU, "
                             "GELU or Tanh after them, MaxPool2d/AvgPool2d after a Conv2d, and Flatten; fold or remove the others")
    if pending is not None:
        raise ValueError("from_torch: the last BatchNorm1d has no Linear after it to fold into")
    if not layers:
        raise ValueError("from_torch: no Linear or Conv2d layer found")
    between = acts[:-1]
    if acts[-1] == "none" and len(set(between)) <= 1:
        return layers, (between[0] if between else "none")
    return layers, acts


def _flatten_sequential(module) -> list:
    """The modules of an `nn.Sequential` (or a list) in order, nested Sequentials expanded, so a
    model built from blocks maps like the flat one; module indices in errors count the flat list."""
    children = list(module.children()) if hasattr(module, "children") else list(module)
    out = []
    for m in children:
        out.extend(_flatten_sequential(m) if type(m).__name__ == "Sequential" else [m])
    return out


def _as_dict(layer) -> dict:
    return layer if isinstance(layer, dict) else {}


def _pair(v, what: str, i: int) -> list:
    if isinstance(v, int):
        return [v, v]
    if isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(x, int) for x in v):
        return [int(v[0]), int(v[1])]
    raise ValueError(f"from_torch: module {i}: {what} = {v!r} is not an int or a pair of ints")


def _conv2d(m, i: int) -> dict:
    """A Conv2d as a layer dict; what aimc cannot map (groups, dilation, other padding modes) is
    refused by name."""
    w = _numpy(m.weight)
    if w.ndim != 4:
        raise ValueError(f"from_torch: module {i} (Conv2d) has a {w.ndim}-D weight; expected [out, in, kh, kw]")
    if getattr(m, "groups", 1) != 1:
        raise ValueError(f"from_torch: module {i} (Conv2d) has groups = {m.groups}; aimc maps dense convolutions (groups = 1)")
    if _pair(getattr(m, "dilation", 1), "dilation", i) != [1, 1]:
        raise ValueError(f"from_torch: module {i} (Conv2d) has dilation {m.dilation}; aimc maps dilation 1")
    if getattr(m, "padding_mode", "zeros") != "zeros":
        raise ValueError(f"from_torch: module {i} (Conv2d) has padding_mode = {m.padding_mode!r}; aimc pads with zeros")
    stride = _pair(getattr(m, "stride", 1), "stride", i)
    padding = getattr(m, "padding", 0)
    if padding == "valid":
        padding = 0
    elif padding == "same":
        if stride != [1, 1] or w.shape[2] % 2 == 0 or w.shape[3] % 2 == 0:
            raise ValueError(f"from_torch: module {i} (Conv2d) has padding='same' with stride {stride} or an even kernel; give explicit padding")
        padding = [w.shape[2] // 2, w.shape[3] // 2]
    b = _numpy(m.bias) if getattr(m, "bias", None) is not None else np.zeros(w.shape[0], dtype=np.float32)
    return {"weight": w, "bias": b, "stride": stride, "padding": _pair(padding, "padding", i)}


def _pool2d(m, i: int, kind: str) -> dict:
    size = _pair(getattr(m, "kernel_size", 2), "kernel_size", i)
    stride = getattr(m, "stride", None)
    stride = size if stride is None or stride == () or stride == [] else _pair(stride, "stride", i)
    if size[0] != size[1] or stride[0] != stride[1]:
        raise ValueError(f"from_torch: module {i} ({kind}) has a non-square window {size} or stride {stride}; aimc pools square windows")
    if _pair(getattr(m, "padding", 0), "padding", i) != [0, 0] or getattr(m, "ceil_mode", False):
        raise ValueError(f"from_torch: module {i} ({kind}) pads or uses ceil_mode; aimc pools without padding in floor mode")
    if kind == "MaxPool2d" and _pair(getattr(m, "dilation", 1), "dilation", i) != [1, 1]:
        raise ValueError(f"from_torch: module {i} (MaxPool2d) has dilation {m.dilation}; aimc pools with dilation 1")
    if kind == "AvgPool2d" and getattr(m, "divisor_override", None) is not None:
        raise ValueError(f"from_torch: module {i} (AvgPool2d) has divisor_override; aimc divides by the window size")
    return {"pool": "max" if kind == "MaxPool2d" else "avg", "pool_size": size[0], "pool_stride": stride[0]}


def _batchnorm(m, i: int) -> tuple[np.ndarray, np.ndarray]:
    """A BatchNorm1d or BatchNorm2d in eval mode as y = scale * x + shift per feature or channel (float64)."""
    mean, var = getattr(m, "running_mean", None), getattr(m, "running_var", None)
    if mean is None or var is None:
        raise ValueError(f"from_torch: module {i} ({type(m).__name__}) has no running statistics (track_running_stats=False); "
                         "aimc folds the eval-mode normalisation, which needs them")
    mean, var = _numpy(mean).astype(np.float64), _numpy(var).astype(np.float64)
    eps = float(getattr(m, "eps", 1e-5))
    gamma = _numpy(m.weight).astype(np.float64) if getattr(m, "weight", None) is not None else np.ones_like(mean)
    beta = _numpy(m.bias).astype(np.float64) if getattr(m, "bias", None) is not None else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + eps)
    return scale, beta - scale * mean


def _numpy(t) -> np.ndarray:
    if hasattr(t, "detach"):
        t = t.detach().cpu().numpy()
    return np.asarray(t, dtype=np.float32)


def _document(workload: str, seed: int, trials: int, gdc: str, device: str, times, overrides: dict) -> dict:
    doc: dict[str, Any] = {"name": workload, "workload": workload, "seed": int(seed), "trials": int(trials), "gdc": gdc,
                           "device": {"model": device}, "periphery": {}, "sweep": {"t": [str(t) for t in times]}}
    for key, value in overrides.items():
        section, _, field = key.partition("__")
        if section not in ("device", "periphery") or not field:
            raise ValueError(f"{key}=: use device__FIELD=value or periphery__FIELD=value, e.g. periphery__out_res_bits=8")
        doc[section][field] = value
    return doc


def _write_safetensors(path: pathlib.Path, tensors: dict) -> None:
    """A safetensors file of float32 tensors (the format: u64 header length, JSON header, data)."""
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(np.asarray(tensors[name], dtype="<f4"))
        raw = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":"))
    text += " " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text.encode())
        for c in chunks:
            f.write(c)


def to_toml(doc: dict) -> str:
    """A TOML document from nested dicts of strings, numbers, booleans and lists."""
    def value(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, np.integer)):
            return str(int(v))
        if isinstance(v, (float, np.floating)):
            f = float(v)
            if math.isnan(f) or math.isinf(f):
                return "nan" if math.isnan(f) else ("inf" if f > 0 else "-inf")
            return repr(f)
        if isinstance(v, str):
            return json.dumps(v, ensure_ascii=False)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + " }"
        raise ValueError(f"cannot write {type(v).__name__} {v!r} into an experiment document")

    def table(d: dict, prefix: str) -> list:
        lines = [f"{json.dumps(k)} = {value(v)}" for k, v in d.items() if not isinstance(v, dict)]
        for k, v in d.items():
            if isinstance(v, dict):
                name = f"{prefix}.{json.dumps(k)}" if prefix else json.dumps(k)
                lines += ["", f"[{name}]"] + table(v, name)
        return lines

    return "\n".join(table(doc, "")) + "\n"
