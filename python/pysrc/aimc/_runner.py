"""The experiment document behind every Python call: a TOML table built from keyword
arguments (`SECTION__FIELD=value`), aihwkit's settings folded in, written beside the call's
files and run through the same pipeline as `aimc run` (`to_toml` writes the document)."""

from __future__ import annotations

import json
import math
import os
import pathlib
import re
from typing import Any, Sequence

import numpy as np

from ._aimc import run_toml as _run_toml
from .aihwkit import from_aihwkit

def _document(workload: str, seed: int, trials: int, gdc: str | None, device: str | None, times, overrides: dict,
              sections: Sequence[str] = ("device", "periphery"), rpu_config=None) -> dict:
    """The experiment document of a keyword call. `gdc` and `device` are written only where given
    (None: the engine's defaults, "readout" and "pcm"), so a `sweep=` override may sweep them; one
    given and swept is refused by the engine, naming both."""
    for what, v in (("trials", trials), ("seed", seed)):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"{what} = {v!r}: must be an integer")
    doc: dict[str, Any] = {"name": workload, "workload": workload, "seed": int(seed), "trials": int(trials)}
    if rpu_config is not None and device is not None:
        raise ValueError(f"device={device!r} and rpu_config= both give the device: the rpu_config's noise_model maps to "
                         "device.model = \"pcm\" with its fields; leave device= out (or rpu_config=, for another model)")
    if gdc is not None:
        doc["gdc"] = gdc
    for section in sections:
        doc.setdefault(section, {})
    if device is not None:
        doc["device"]["model"] = device
    # One time alone is a list of one ("1h", not its characters).
    doc["sweep"] = {"t": [str(times)] if isinstance(times, str) else [str(t) for t in times]}
    for key, value in overrides.items():
        section, sep, field = key.partition("__")
        if not sep:
            # A top-level field of the experiment (layer_insight_trials, weight_error_trials, ...),
            # as `--set FIELD=VALUE`; the engine refuses one the schema does not have.
            if key in sections:
                raise ValueError(f"{key}=: {key} is a section; use {key}__FIELD=value")
            doc[key] = value
            continue
        if section not in sections or not field:
            forms = " or ".join(f"{s}__FIELD=value" for s in sections)
            raise ValueError(f"{key}=: use {forms} (or a top-level field such as layer_insight_trials=0), e.g. periphery__out_res_bits=8")
        doc[section][field] = value
    return doc


def _rpu_base(rpu_config, doc: dict, max_out: int | None = None) -> list | None:
    """The engine's base settings (`with_base`) of a keyword call's `rpu_config`: what the
    keywords gave themselves (`gdc=`, `periphery__out_res_bits=8`) is left out, so they override
    it, and the engine leaves a field a `sweep=` axis sets to the axis. `max_out`, the model's
    largest layer output count, is what aihwkit's `mapping.max_output_size = 0` maps to."""
    if rpu_config is None:
        return None
    given = {k for k, v in doc.items() if not isinstance(v, dict)}
    given |= {f"{k}.{f}" for k, v in doc.items() if isinstance(v, dict) for f in v}
    return [s for s in _flat_sets(from_aihwkit(rpu_config, max_out=max_out)) if s.split("=", 1)[0] not in given]


def _flat_sets(settings: dict) -> list:
    """`from_aihwkit`'s settings as the engine's `SECTION.FIELD=VALUE` assignments."""
    sets = []
    for key, value in settings.items():
        if isinstance(value, dict):
            sets += [f"{key}.{field}={_toml_value(v)}" for field, v in value.items()]
        else:
            sets.append(f"{key}={_toml_value(value)}")
    return sets


def _run_document(doc: dict, path: pathlib.Path, backend: str, out: str, quiet: bool, overwrite: bool = False, base: list | None = None,
                  need_ranges: bool = False):
    """Runs a document this module built in a temporary folder. Its errors name what the caller
    wrote: the temporary file's path is dropped and `section.field` becomes the keyword
    `section__field` (e.g. device__drift_scale), the rest of the CLI's message kept."""
    try:
        return _run_toml(to_toml(doc), str(path), backend, out, None, quiet, overwrite, None, base, need_ranges)
    except ValueError as e:
        msg = str(e).replace(f"{path}: ", "").replace(str(path), "the arguments")
        # Lines of the document this module wrote mean nothing to the caller.
        msg = re.sub(r" at line \d+( \(in \[\w+\]\))?", "", msg)
        for section in ("device", "periphery"):
            msg = re.sub(rf"\b{section}\.(\w+)", rf"{section}__\1", msg)
        # A keyword taken as a top-level field that the experiment does not have: most likely a
        # section's field written without its section.
        unknown = re.search(r"unknown field `(\w+)`, expected one of `name`", msg)
        if unknown and unknown.group(1) in doc:
            sections = [k for k in ("device", "periphery", "transformer") if isinstance(doc.get(k), dict)]
            msg += "; a section's field is a keyword SECTION__FIELD: " + " or ".join(f"{k}__FIELD=value" for k in sections)
        raise ValueError(msg) from None


def _toml_value(v) -> str:
    """One TOML value from a string, number, boolean, list or dict (NumPy scalars and arrays, and
    paths, as their Python values)."""
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, np.ndarray):
        return _toml_value(v.tolist())
    if isinstance(v, os.PathLike):
        return json.dumps(os.fspath(v), ensure_ascii=False)
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
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise ValueError(f"cannot write {type(v).__name__} {v!r} into an experiment document")


def to_toml(doc: dict) -> str:
    """A TOML document from nested dicts of strings, numbers, booleans and lists (NumPy scalars
    and arrays, and paths, as their Python values)."""
    value = _toml_value

    def table(d: dict, prefix: str) -> list:
        lines = [f"{json.dumps(k)} = {value(v)}" for k, v in d.items() if not isinstance(v, dict)]
        for k, v in d.items():
            if isinstance(v, dict):
                name = f"{prefix}.{json.dumps(k)}" if prefix else json.dumps(k)
                lines += ["", f"[{name}]"] + table(v, name)
        return lines

    return "\n".join(table(doc, "")) + "\n"
