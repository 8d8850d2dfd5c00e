"""Tensors as aimc's engine reads them: `TransformerModel` (a state dict under the names
docs/transformer-names.md lists, with its `[transformer]` settings), the safetensors writer,
PyTorch tensors as NumPy, and the weights and learned input ranges of aihwkit's analog layers
(`AnalogLinear`, `AnalogConv2d`: `get_weights()` and each tile's `input_range`). Shared by the
PyTorch (`_models.py`) and Hugging Face (`_huggingface.py`) conversions."""

from __future__ import annotations

import json
import os
import pathlib
import re
import struct

import numpy as np

class TransformerModel:
    """A transformer classifier for `transformer`: its weights as a state dict with PyTorch
    `nn.TransformerEncoder` names (NumPy float32: `embedding.weight`, optional
    `pos_embedding.weight` and `embed_norm.*`, `encoder.layers.N.self_attn.in_proj_weight`, ...,
    optional `encoder.norm.*`, `classifier.weight` or `classifier.K.weight`) and its
    `[transformer]` settings (heads, norm_first, activation, head_activation, layer_norm_eps,
    pooling, pad_id). `positions` is "learned" (the state dict has them), "sinusoidal" (aimc adds
    Vaswani's) or "none" (the model adds no positions: `transformer` writes a zero table)."""

    def __init__(self, tensors: dict, settings: dict, positions: str = "sinusoidal"):
        if positions not in ("learned", "sinusoidal", "none"):
            raise ValueError(f"positions = {positions!r}: use 'learned', 'sinusoidal' or 'none'")
        key = _family_key(tensors, "pos_embedding.weight", "embeddings.position_embeddings.weight")
        if (positions == "learned") != (key is not None):
            raise ValueError(f"positions = {positions!r} but the state dict {'lacks' if positions == 'learned' else 'has'} "
                             f"{key or 'pos_embedding.weight'}")
        if _family_key(tensors, "embedding.weight", "embeddings.word_embeddings.weight") is None:
            raise ValueError("the state dict has no token embedding (embedding.weight, or a BERT embeddings.word_embeddings.weight)")
        self.tensors = {k: np.asarray(v, dtype=np.float32) for k, v in tensors.items()}
        self.settings = dict(settings)
        self.positions = positions

    @property
    def _embedding(self) -> np.ndarray:
        return self.tensors[_family_key(self.tensors, "embedding.weight", "embeddings.word_embeddings.weight")]

    @property
    def d_model(self) -> int:
        """The layers' width: the position table's where there is one (MobileBERT's narrower token
        embedding is widened to it), else the token embedding's."""
        key = _family_key(self.tensors, "pos_embedding.weight", "embeddings.position_embeddings.weight")
        return int((self.tensors[key] if key is not None else self._embedding).shape[1])

    @property
    def vocab(self) -> int:
        return int(self._embedding.shape[0])

    @property
    def layers(self) -> int:
        return len({m.group(1) for k in self.tensors for m in [re.search(r"(?:^|\.)encoder\.layers?\.(\d+)\.", k)] if m})

    @property
    def classes(self) -> int:
        """The head's outputs: a language model's `lm_head`, or its tied embedding's vocabulary."""
        heads = sorted((k for k in self.tensors if k.startswith("classifier.") and k.endswith(".weight")), key=_head_index)
        if not heads:
            return int(self.tensors["lm_head.weight"].shape[0]) if "lm_head.weight" in self.tensors else self.vocab
        return int(self.tensors[heads[-1]].shape[0])

    def state_dict(self, seq: int | None = None) -> dict:
        """The tensors to write; with positions "none", a zero position table of `seq` rows
        (adding zeros is adding no positions)."""
        if self.positions != "none":
            return dict(self.tensors)
        if seq is None:
            raise ValueError("a model without positions needs the sequence length for its zero position table")
        return dict(self.tensors, **{"pos_embedding.weight": np.zeros((seq, self.d_model), np.float32)})

    def save(self, path: str | os.PathLike, seq: int | None = None) -> None:
        """Writes the state dict as .safetensors (the file `[model] path` names)."""
        _write_safetensors(pathlib.Path(path), self.state_dict(seq))

    def __repr__(self) -> str:
        return (f"TransformerModel(d_model {self.d_model}, vocab {self.vocab}, {self.layers} layers, {self.classes} classes, "
                f"positions {self.positions!r}, settings {self.settings!r})")


def _family_key(tensors, torch_name: str, bert_name: str) -> str | None:
    """The key of one tensor under either name family: PyTorch's name as aimc writes it, or a
    BERT name under any prefix (`bert.embeddings...`); None when the state dict has neither."""
    if torch_name in tensors:
        return torch_name
    return next((k for k in tensors if k == bert_name or k.endswith("." + bert_name)), None)


def _head_index(name: str) -> int:
    part = name.split(".")[1]
    return int(part) if part.isdigit() else 0


# aihwkit's analog layers (aihwkit.nn: AnalogLinear, AnalogConv2d and their mapped forms).
_ANALOG_LINEAR = ("AnalogLinear", "AnalogLinearMapped")
_ANALOG_CONV = ("AnalogConv2d", "AnalogConv2dMapped", "AnalogConv1d", "AnalogConv1dMapped")


def _tile_range(tile, i: int, kind: str):
    """One aihwkit tile's input range (`input_range`, a learned Parameter or a fixed buffer of one
    value; aihwkit clips at its absolute value), or None without one."""
    r = getattr(tile, "input_range", None)
    if r is None:
        return None
    v = _numpy(r).reshape(-1)
    if v.size != 1 or not np.isfinite(v[0]) or v[0] == 0:
        raise ValueError(f"from_torch: module {i} ({kind}) has input_range {v.tolist()}; aimc takes one finite, non-zero range per tile")
    return float(abs(v[0]))


def _analog_ranges(m, i: int, kind: str) -> list | None:
    """An aihwkit layer's input ranges in input order, one per input tile (aihwkit's
    TileModuleArray holds its tiles as array[input tile][output tile], each with its own range),
    or None when its tiles have none. aimc quantises an input slice once for all its output tiles,
    so their ranges must agree."""
    mod = getattr(m, "analog_module", None)
    if mod is None:
        raise ValueError(f"from_torch: module {i} ({kind}) has no analog_module; aimc reads aihwkit 0.8 and later, "
                         "whose analog layers hold their tiles there")
    grid = [[_tile_range(t, i, kind) for t in row] for row in mod.array] if hasattr(mod, "array") else [[_tile_range(mod, i, kind)]]
    flat = [r for row in grid for r in row]
    if all(r is None for r in flat):
        return None
    if any(r is None for r in flat):
        raise ValueError(f"from_torch: module {i} ({kind}) has input ranges on some tiles only")
    ranges = []
    for k, row in enumerate(grid):
        if max(row) != min(row):
            raise ValueError(f"from_torch: module {i} ({kind}): input tile {k} has input ranges {row} on its output tiles; aimc quantises "
                             "an input slice once for all output tiles, so give them one range (or set mapping.max_output_size = 0)")
        ranges.append(row[0])
    return ranges


def _analog_weights(m, i: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """An aihwkit layer's logical weights and bias: `get_weights()`, which applies the tiles'
    mapping scales and learned output scales (aihwkit's `get_scales`), as the network computes
    with them."""
    if not hasattr(m, "get_weights"):
        raise ValueError(f"from_torch: module {i} ({kind}) has no get_weights(); aimc reads aihwkit 0.8 and later")
    w, b = m.get_weights()
    w = _numpy(w).astype(np.float64)
    b = _numpy(b).astype(np.float64) if b is not None else np.zeros(w.shape[0])
    return w, b


def _numpy(t) -> np.ndarray:
    if hasattr(t, "detach"):
        t = t.detach().cpu()
        if t.is_floating_point():
            t = t.float()  # bf16 and f16 have no NumPy view; f32 holds both exactly
        t = t.numpy()
    return np.asarray(t, dtype=np.float32)


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
