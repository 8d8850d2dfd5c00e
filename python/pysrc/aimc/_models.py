"""Models from PyTorch and Hugging Face as aimc reads them: `from_torch` (an nn.Sequential of
Linear, Conv2d, pooling and BatchNorm layers; a PyTorch transformer classifier; a Hugging Face
BERT-family classifier or question-answering model, GPT-2), `TransformerModel` (a state dict
under the names docs/transformer-names.md lists, with its `[transformer]` settings) and the
safetensors writer. The forwards these names mean are the engine's (docs/transformer.md);
every mapping refuses, by field or tensor name, what that forward does not compute."""

from __future__ import annotations

import json
import os
import pathlib
import re
import struct

import numpy as np

def from_torch(module, positions: str | None = None):
    """An `nn.Sequential` of Linear and Conv2d layers as ([layer, ...], activation), for
    `classifier`; a transformer classifier (an `nn.Embedding` first, then an encoder) as a
    `TransformerModel`, for `transformer` (see `_transformer_from_torch` for what it maps;
    `positions` says what a model without a position `nn.Embedding` adds: "sinusoidal", the
    default, Vaswani's, or "none"); a Hugging Face BERT, RoBERTa, XLM-R, ELECTRA, DistilBERT or
    MobileBERT sequence classifier as a `TransformerModel` with its settings from its config (see
    `_from_huggingface`; its positions are its own, learned); a Hugging Face GPT-2 language model
    (`GPT2LMHeadModel`, see `_gpt2`) as a `TransformerModel` for `language_model`, and its sequence
    classifier (`GPT2ForSequenceClassification`) for `transformer`.

    The Sequential case: a Linear layer is (W, b); a Conv2d layer is a dict with its 4-D "weight"
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
    refused by name: aimc never drops a layer silently. aihwkit's AnalogLinear and AnalogConv2d
    (in an AnalogSequential too) are read by their `get_weights()`, the logical weights with the
    mapping scales and learned output scales applied, and with their tiles' input ranges
    (aihwkit's `pre_post.input_range`, one per input tile): such a Linear is (W, b, input_range),
    such a Conv2d dict has "input_range". Works by class name, so torch itself is not imported
    here."""
    if _is_huggingface(module):
        if positions is not None:
            raise ValueError(f"from_torch: positions = {positions!r} with a Hugging Face model, whose learned positions are in "
                             "its state dict; leave positions out")
        return _from_huggingface(module)
    if _is_transformer(module):
        return _transformer_from_torch(module, "sinusoidal" if positions is None else positions)
    if positions is not None:
        raise ValueError(f"from_torch: positions = {positions!r} is for transformer classifiers; this module is not one")
    children = _flatten_sequential(module)
    layers, acts = [], []   # acts[i]: the activation after layer i
    pending = None          # a BatchNorm1d waiting for the next Linear: (scale, shift)
    last_layer = False      # the previous effective module was a layer (no activation since)
    for i, m in enumerate(children):
        kind = type(m).__name__
        if kind == "Linear":
            w = _numpy(m.weight).astype(np.float64)
            b = _numpy(m.bias).astype(np.float64) if getattr(m, "bias", None) is not None else np.zeros(w.shape[0])
            ranges = getattr(m, "input_range", None)
            if pending is not None and ranges is not None:
                raise ValueError(f"from_torch: a BatchNorm1d waits for module {i} (Linear with input ranges); aimc folds it only "
                                 "into a Linear without, as an input range clips the normalised inputs")
            if pending is not None:
                scale, shift = pending
                if scale.shape[0] != w.shape[1]:
                    raise ValueError(f"from_torch: the BatchNorm1d before module {i} has {scale.shape[0]} features but the Linear takes {w.shape[1]}")
                b = b + w @ shift
                w = w * scale[None, :]
                pending = None
            layer = (w.astype(np.float32), b.astype(np.float32))
            if ranges is not None:
                # Ranges learned by aimc.torch.prepare(input_range=...), one per input tile.
                layer += (np.abs(_numpy(ranges).reshape(-1)),)
            layers.append(layer)
            acts.append("none")
            last_layer = True
        elif kind in _ANALOG_LINEAR + _ANALOG_CONV:
            w, b = _analog_weights(m, i, kind)
            ranges = _analog_ranges(m, i, kind)
            if pending is not None:
                if ranges is not None or kind in _ANALOG_CONV:
                    raise ValueError(f"from_torch: a BatchNorm1d waits for module {i} ({kind}); aimc folds it into a digital or "
                                     "range-free analog Linear only, as a learned input range clips the normalised inputs")
                scale, shift = pending
                b, w, pending = b + w @ shift, w * scale[None, :], None
            if kind in _ANALOG_CONV:
                layer = _conv2d(_ConvShape(m, w, b), i)
                if ranges is not None:
                    layer["input_range"] = np.asarray(ranges, dtype=np.float32)
            else:
                layer = (w.astype(np.float32), b.astype(np.float32))
                if ranges is not None:
                    layer += (np.asarray(ranges, dtype=np.float32),)
            layers.append(layer)
            acts.append("none")
            last_layer = True
        elif kind == "Conv2d":
            if pending is not None:
                raise ValueError(f"from_torch: a BatchNorm1d waits for a Linear but module {i} is a Conv2d")
            layer = _conv2d(m, i)
            if getattr(m, "input_range", None) is not None:
                layer["input_range"] = np.abs(_numpy(m.input_range).reshape(-1))
            layers.append(layer)
            acts.append("none")
            last_layer = True
        elif kind in ("BatchNorm1d", "BatchNorm2d"):
            scale, shift = _batchnorm(m, i)
            if last_layer:
                prev = layers[-1]
                w, b = (prev["weight"], prev["bias"]) if isinstance(prev, dict) else prev[:2]
                if (kind == "BatchNorm2d") != isinstance(prev, dict):
                    raise ValueError(f"from_torch: module {i} ({kind}) follows a {'Conv2d' if isinstance(prev, dict) else 'Linear'}; "
                                     "BatchNorm2d folds into a Conv2d, BatchNorm1d into a Linear")
                if scale.shape[0] != w.shape[0]:
                    raise ValueError(f"from_torch: module {i} ({kind}) has {scale.shape[0]} features but the layer before it has {w.shape[0]} outputs")
                shape = (-1,) + (1,) * (w.ndim - 1)
                w = (w.astype(np.float64) * scale.reshape(shape)).astype(np.float32)
                b = (b.astype(np.float64) * scale + shift).astype(np.float32)
                layers[-1] = dict(prev, weight=w, bias=b) if isinstance(prev, dict) else (w, b) + tuple(prev[2:])
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
    """The modules of an `nn.Sequential` (or aihwkit's AnalogSequential, or a list) in order,
    nested Sequentials expanded, so a model built from blocks maps like the flat one; module
    indices in errors count the flat list."""
    children = list(module.children()) if hasattr(module, "children") else list(module)
    out = []
    for m in children:
        out.extend(_flatten_sequential(m) if type(m).__name__ in ("Sequential", "AnalogSequential") else [m])
    return out


# aihwkit's analog layers (aihwkit.nn: AnalogLinear, AnalogConv2d and their mapped forms).
_ANALOG_LINEAR = ("AnalogLinear", "AnalogLinearMapped")
_ANALOG_CONV = ("AnalogConv2d", "AnalogConv2dMapped")


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


class _ConvShape:
    """An aihwkit AnalogConv2d's weight and geometry, read as `_conv2d` reads a Conv2d."""

    def __init__(self, m, w: np.ndarray, b: np.ndarray):
        k = _pair(m.kernel_size, "kernel_size", 0) if hasattr(m, "kernel_size") else None
        if w.ndim == 2 and k is not None:
            w = w.reshape(w.shape[0], -1, k[0], k[1])
        self.weight, self.bias = w.astype(np.float32), b.astype(np.float32)
        for name in ("stride", "padding", "dilation", "groups", "padding_mode"):
            if hasattr(m, name):
                setattr(self, name, getattr(m, name))


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


# ---- Transformers --------------------------------------------------------------------------

# Classes that make a module a transformer classifier for from_torch (the decoder kinds are
# here so that they are refused by name rather than as a stray Sequential layer).
_TRANSFORMER_KINDS = ("Embedding", "TransformerEncoder", "TransformerEncoderLayer", "MultiheadAttention",
                      "Transformer", "TransformerDecoder", "TransformerDecoderLayer")
_CONTAINERS = ("Sequential", "ModuleList")
_SKIPPED = ("Dropout", "Identity")


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


def _hint(kind: str) -> str:
    """What to do about a module kind that has a near miss in the transformer mapping."""
    if kind == "MultiheadAttention":
        return " (aimc maps attention inside nn.TransformerEncoderLayer, with its norms and feed-forward pair)"
    if "Position" in kind:
        return (" (a model without a position nn.Embedding runs with Vaswani's sinusoids added, from_torch(..., "
                "positions='sinusoidal'); remove a sinusoidal encoding module from the children, or use a learned nn.Embedding)")
    return ""


def _where(i: int, name: str) -> str:
    """A module in messages: its index in the expanded children, and its name where that says more."""
    return f"module {i}" if name == str(i) else f"module {i} ({name})"


def _is_transformer(module) -> bool:
    if type(module).__name__ in _TRANSFORMER_KINDS:
        return True
    return any(type(m).__name__ in _TRANSFORMER_KINDS for _, m in _named_modules(module))


def _named_modules(module) -> list:
    """(name, module) of a model's children in order, Sequentials and ModuleLists expanded
    (dotted names, as PyTorch prints them); a bare module is its own only child."""
    if type(module).__name__ in _TRANSFORMER_KINDS:
        return [(type(module).__name__, module)]
    if hasattr(module, "named_children"):
        children = list(module.named_children())
    elif hasattr(module, "children"):
        children = [(str(i), m) for i, m in enumerate(module.children())]
    else:
        children = [(str(i), m) for i, m in enumerate(module)]
    out = []
    for name, m in children:
        if type(m).__name__ in _CONTAINERS:
            out.extend((f"{name}.{sub}", x) for sub, x in _named_modules(m))
        else:
            out.append((name, m))
    return out


def _activation_name(a, where: str) -> str:
    """aimc's name of a PyTorch activation given as a module (GELU, ReLU, Tanh) or a function
    (F.gelu, F.relu, torch.tanh, a functools.partial of F.gelu with approximate=...)."""
    kind = type(a).__name__
    if kind == "GELU":
        return "gelu" if getattr(a, "approximate", "none") == "tanh" else "gelu_exact"
    if kind in ("ReLU", "Tanh"):
        return kind.lower()
    if kind == "partial" and getattr(getattr(a, "func", None), "__name__", None) == "gelu" and not getattr(a, "args", ()):
        approx = (getattr(a, "keywords", None) or {}).get("approximate", "none")
        if approx in ("none", "tanh"):
            return "gelu" if approx == "tanh" else "gelu_exact"
    name = getattr(a, "__name__", None)
    if callable(a) and name in ("gelu", "relu", "tanh"):
        return {"gelu": "gelu_exact", "relu": "relu", "tanh": "tanh"}[name]
    raise ValueError(f"from_torch: {where} is {name or kind}; aimc maps GELU (exact or approximate='tanh'), ReLU and Tanh")


def _layernorm(m, d: int, where: str) -> tuple[np.ndarray, np.ndarray, float]:
    """A LayerNorm over the last d features as (gamma, beta, eps); no affine part is ones and zeros."""
    shape = tuple(getattr(m, "normalized_shape", (d,)))
    if shape != (d,):
        raise ValueError(f"from_torch: {where} (LayerNorm) normalises over {shape}; aimc normalises each token's {d} features, ({d},)")
    w, b = getattr(m, "weight", None), getattr(m, "bias", None)
    gamma = _numpy(w) if w is not None else np.ones(d, np.float32)
    beta = _numpy(b) if b is not None else np.zeros(d, np.float32)
    return gamma, beta, float(getattr(m, "eps", 1e-5))


def _linear(m, where: str, cols: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A Linear's (W [out, in], b [out]); no bias is zeros; `cols` checks its input width."""
    w = _numpy(m.weight)
    if w.ndim != 2:
        raise ValueError(f"from_torch: {where} has a {w.ndim}-D weight; a Linear's is [out, in]")
    if cols is not None and w.shape[1] != cols:
        raise ValueError(f"from_torch: {where} takes {w.shape[1]} inputs but what comes before it has {cols} features")
    b = getattr(m, "bias", None)
    return w, (_numpy(b) if b is not None else np.zeros(w.shape[0], np.float32))


def _encoder_layer(layer, n: int, d: int, where: str) -> tuple[dict, dict]:
    """One nn.TransformerEncoderLayer as state-dict tensors (`encoder.layers.N.*`) and the
    settings it implies (heads, norm_first, activation, layer_norm_eps)."""
    kind = type(layer).__name__
    if kind != "TransformerEncoderLayer":
        raise ValueError(f"from_torch: {where} is {kind}; an encoder's layers must be nn.TransformerEncoderLayer "
                         "(self-attention, linear1/linear2, norm1/norm2)")
    a = layer.self_attn
    if type(a).__name__ != "MultiheadAttention":
        raise ValueError(f"from_torch: {where}.self_attn is {type(a).__name__}; aimc maps nn.MultiheadAttention")
    e = int(getattr(a, "embed_dim", d))
    if e != d:
        raise ValueError(f"from_torch: {where}.self_attn has embed_dim {e} but the token embedding is {d} wide")
    if getattr(a, "kdim", e) != e or getattr(a, "vdim", e) != e:
        raise ValueError(f"from_torch: {where}.self_attn (MultiheadAttention) has kdim {a.kdim} / vdim {a.vdim} != embed_dim {e}; "
                         "aimc maps self-attention, where keys and values are the tokens themselves")
    if getattr(a, "bias_k", None) is not None or getattr(a, "bias_v", None) is not None or getattr(a, "add_zero_attn", False):
        raise ValueError(f"from_torch: {where}.self_attn (MultiheadAttention) has add_bias_kv or add_zero_attn; "
                         "aimc's attention has no extra key/value rows")
    p = f"encoder.layers.{n}."
    t = {}
    if getattr(a, "in_proj_weight", None) is not None:
        t[p + "self_attn.in_proj_weight"] = _numpy(a.in_proj_weight)
    else:  # the separate form (_qkv_same_embed_dim False): stacked here, rows Q, K, V
        t[p + "self_attn.in_proj_weight"] = np.concatenate([_numpy(getattr(a, f"{x}_proj_weight")) for x in "qkv"])
    if t[p + "self_attn.in_proj_weight"].shape != (3 * d, d):
        raise ValueError(f"from_torch: {where}.self_attn's Q, K, V weights are {t[p + 'self_attn.in_proj_weight'].shape}, expected ({3 * d}, {d})")
    bias = getattr(a, "in_proj_bias", None)
    t[p + "self_attn.in_proj_bias"] = _numpy(bias) if bias is not None else np.zeros(3 * d, np.float32)
    t[p + "self_attn.out_proj.weight"], t[p + "self_attn.out_proj.bias"] = _linear(a.out_proj, f"{where}.self_attn.out_proj", d)
    t[p + "linear1.weight"], t[p + "linear1.bias"] = _linear(layer.linear1, f"{where}.linear1", d)
    t[p + "linear2.weight"], t[p + "linear2.bias"] = _linear(layer.linear2, f"{where}.linear2", t[p + "linear1.weight"].shape[0])
    if t[p + "linear2.weight"].shape[0] != d:
        raise ValueError(f"from_torch: {where}.linear2 has {t[p + 'linear2.weight'].shape[0]} outputs; the residual needs {d}")
    eps = []
    for norm in ("norm1", "norm2"):
        t[p + norm + ".weight"], t[p + norm + ".bias"], e_ = _layernorm(getattr(layer, norm), d, f"{where}.{norm}")
        eps.append(e_)
    heads = int(a.num_heads)
    settings = {"heads": heads, "norm_first": bool(getattr(layer, "norm_first", False)),
                "activation": _activation_name(layer.activation, f"{where}.activation"), "layer_norm_eps": eps}
    return t, settings


def _transformer_from_torch(module, positions: str) -> TransformerModel:
    """A transformer classifier whose children are, in order: the token `nn.Embedding`; an
    optional second `nn.Embedding` (learned positions, added to the token embeddings); an
    optional `nn.LayerNorm` after the embedding sum; an `nn.TransformerEncoder` (or
    `nn.TransformerEncoderLayer`s; with its optional final `norm`, or an `nn.LayerNorm` after
    it); the head, `nn.Linear` layers with one kind of activation (GELU, ReLU, Tanh) between
    them. Dropout and Identity are skipped, Sequentials and ModuleLists expanded. The forward
    aimc runs is: x = E[tokens]·embed_scale + positions, the LayerNorm, the layers (post- or
    pre-LN, softmax attention over the non-padding keys), the final norm, mean pooling over the
    non-padding tokens (or `pooling="cls"`: the first token; `pooling="last"`: the last
    non-padding token), the head."""
    if positions not in ("sinusoidal", "none"):
        raise ValueError(f"from_torch: positions = {positions!r}: use 'sinusoidal' (aimc adds Vaswani's sinusoids) or 'none' "
                         "(the model adds no positions); learned positions come from a second nn.Embedding")
    mods = [(i, name, m) for i, (name, m) in enumerate(_named_modules(module)) if type(m).__name__ not in _SKIPPED]
    tensors, layer_settings, head, head_acts = {}, [], [], []
    d, stage, eps, pad_id, final = None, "embedding", [], None, False
    for i, name, m in mods:
        kind = type(m).__name__
        where = _where(i, name)
        if stage == "embedding":
            if kind != "Embedding":
                raise ValueError(f"from_torch: {where} is {kind}; a transformer classifier starts with its token nn.Embedding{_hint(kind)}")
            if getattr(m, "max_norm", None) is not None:
                raise ValueError(f"from_torch: {where} (Embedding) has max_norm, which rescales rows at lookup; aimc looks rows up as stored")
            tensors["embedding.weight"] = _numpy(m.weight)
            d = tensors["embedding.weight"].shape[1]
            pad_id = getattr(m, "padding_idx", None)
            stage = "positions"
        elif kind == "Embedding" and stage == "positions":
            if getattr(m, "max_norm", None) is not None:
                raise ValueError(f"from_torch: {where} (Embedding) has max_norm; aimc adds position rows as stored")
            w = _numpy(m.weight)
            if w.shape[1] != d:
                raise ValueError(f"from_torch: {where} (position Embedding) is {w.shape[1]} wide but the token embedding {d}")
            tensors["pos_embedding.weight"] = w
            stage = "embed_norm"
        elif kind == "LayerNorm" and stage in ("positions", "embed_norm"):
            tensors["embed_norm.weight"], tensors["embed_norm.bias"], e_ = _layernorm(m, d, where)
            eps.append(e_)
            stage = "encoder"
        elif kind in ("TransformerEncoder", "TransformerEncoderLayer") and stage in ("positions", "embed_norm", "encoder", "layers"):
            if final:
                raise ValueError(f"from_torch: {where} ({kind}) follows an encoder's final norm; give the layers as one nn.TransformerEncoder")
            for j, layer in enumerate(m.layers if kind == "TransformerEncoder" else [m]):
                t, ls = _encoder_layer(layer, len(layer_settings), d, _where(i, f"{name}.layers.{j}") if kind == "TransformerEncoder" else where)
                tensors.update(t)
                layer_settings.append((where, ls))
                eps.extend(ls["layer_norm_eps"])
            norm = getattr(m, "norm", None) if kind == "TransformerEncoder" else None
            if norm is not None:
                tensors["encoder.norm.weight"], tensors["encoder.norm.bias"], e_ = _layernorm(norm, d, _where(i, f"{name}.norm"))
                eps.append(e_)
                final = True
            stage = "layers"
        elif kind == "LayerNorm" and stage == "layers" and not final:
            # A LayerNorm after the last layer is the encoder's final norm, whoever holds it.
            tensors["encoder.norm.weight"], tensors["encoder.norm.bias"], e_ = _layernorm(m, d, where)
            eps.append(e_)
            final = True
        elif kind == "Linear" and stage in ("layers", "head"):
            head.append(_linear(m, where, head[-1][0].shape[0] if head else d))
            head_acts.append(None)
            stage = "head"
        elif kind in ("GELU", "ReLU", "Tanh") and stage == "head" and head_acts[-1] is None:
            head_acts[-1] = _activation_name(m, where)
        else:
            expected = {
                "positions": "a position nn.Embedding, an nn.LayerNorm or the encoder",
                "embed_norm": "an nn.LayerNorm or the encoder",
                "encoder": "the encoder (nn.TransformerEncoder or nn.TransformerEncoderLayer)",
                "layers": "more encoder layers, a final nn.LayerNorm or the head's nn.Linear",
                "head": "the head's nn.Linear layers with one activation (GELU, ReLU, Tanh) between them",
            }[stage]
            raise ValueError(f"from_torch: {where} is {kind}; expected {expected} here{_hint(kind)}. aimc maps a transformer classifier of "
                             "nn.Embedding, nn.LayerNorm, nn.TransformerEncoder(Layer) and a Linear head; fold or remove the others")
    if stage == "embedding":
        raise ValueError("from_torch: no token nn.Embedding found")
    if not layer_settings:
        raise ValueError("from_torch: no nn.TransformerEncoder or nn.TransformerEncoderLayer after the embedding")
    if not head:
        raise ValueError("from_torch: no classifier head (nn.Linear) after the encoder")
    if head_acts[-1] is not None:
        raise ValueError(f"from_torch: the head ends with {head_acts[-1]} after its last Linear; aimc reads the last Linear's outputs as the logits")
    for key in ("heads", "norm_first", "activation"):
        values = {ls[key] for _, ls in layer_settings}
        if len(values) > 1:
            raise ValueError(f"from_torch: the encoder layers differ in {key} ({', '.join(f'{w}: {ls[key]!r}' for w, ls in layer_settings)}); "
                             f"aimc runs one {key} for all layers")
    if len(set(eps)) > 1:
        raise ValueError(f"from_torch: the LayerNorms have different eps ({sorted(set(eps))}); aimc runs one transformer.layer_norm_eps")
    between = set(head_acts[:-1])
    if None in between or len(between) > 1:
        raise ValueError(f"from_torch: the head's Linear layers have activations {[a or 'none' for a in head_acts[:-1]]} between them; "
                         "aimc runs one kind (transformer.head_activation) between every two")
    if len(head) == 1:
        tensors["classifier.weight"], tensors["classifier.bias"] = head[0]
    else:
        for k, (w, b) in enumerate(head):
            tensors[f"classifier.{2 * k}.weight"], tensors[f"classifier.{2 * k}.bias"] = w, b
    first = layer_settings[0][1]
    settings = {"heads": first["heads"], "norm_first": first["norm_first"], "activation": first["activation"],
                "head_activation": head_acts[0] if len(head) > 1 else "gelu_exact", "layer_norm_eps": eps[0], "pooling": "mean"}
    if pad_id is not None:
        settings["pad_id"] = int(pad_id)
    return TransformerModel(tensors, settings, "learned" if "pos_embedding.weight" in tensors else positions)


# ---- Hugging Face encoders ------------------------------------------------------------------

# The Hugging Face sequence classifiers from_torch maps, by config.model_type. BERT's, RoBERTa's
# and ELECTRA's state dicts keep BERT's names (the engine's name table reads them,
# docs/transformer-names.md); MobileBERT's keep their own (the engine reads its bottlenecks,
# stacked feed-forward networks and trigram embedding by those names); DistilBERT's are renamed
# to PyTorch's nn.TransformerEncoder names. The settings come from `model.config`.
_HF_CLASSIFIERS = {"bert": "BertForSequenceClassification", "roberta": "RobertaForSequenceClassification",
                   "xlm-roberta": "XLMRobertaForSequenceClassification", "electra": "ElectraForSequenceClassification",
                   "distilbert": "DistilBertForSequenceClassification", "mobilebert": "MobileBertForSequenceClassification"}
# The config's activation (transformers' ACT2FN names) → transformer.activation. "gelu" is the
# erf form; gelu_new, gelu_pytorch_tanh and gelu_fast are the tanh form (gelu_fast writes √(2/π)
# as 0.7978845608, 3e-11 from it: below f32's resolution).
_HF_ACTIVATIONS = {"gelu": "gelu_exact", "gelu_new": "gelu", "gelu_pytorch_tanh": "gelu", "gelu_fast": "gelu", "relu": "relu",
                   "silu": "silu", "swish": "silu", "tanh": "tanh"}
# Index buffers a state dict may hold beside its weights (skipped by name, never by dtype).
_HF_INDEX_BUFFERS = ("position_ids", "token_type_ids")
# The Hugging Face causal models from_torch maps, by config.model_type: the language model (for
# aimc.language_model) and the sequence classifier (for aimc.transformer).
_HF_LANGUAGE_MODELS = {"gpt2": "GPT2LMHeadModel"}
# The extractive question-answering heads from_torch maps (`qa_outputs`, start and end logits per
# token), by config.model_type: the encoders of _HF_CLASSIFIERS under a span head.
_HF_QUESTION_ANSWERING = {"bert": "BertForQuestionAnswering", "roberta": "RobertaForQuestionAnswering",
                          "xlm-roberta": "XLMRobertaForQuestionAnswering", "electra": "ElectraForQuestionAnswering",
                          "distilbert": "DistilBertForQuestionAnswering", "mobilebert": "MobileBertForQuestionAnswering"}
_HF_CAUSAL_CLASSIFIERS = {"gpt2": "GPT2ForSequenceClassification"}


def _gpt2(module) -> TransformerModel:
    """A Hugging Face GPT-2 language model (`GPT2LMHeadModel`; Radford et al., "Language models are
    unsupervised multitask learners", 2019) as a `TransformerModel` under PyTorch's
    nn.TransformerEncoder names, for `language_model`: wte and wpe as the token and learned
    position tables; per block pre-LN (ln_1 before attention, ln_2 before the MLP) with causal
    softmax attention scaled 1/sqrt(d_head), c_attn's Q, K, V with their biases, c_proj, and the MLP
    c_fc, activation_function (gelu_new: the tanh form), c_proj; ln_f as the final norm; lm_head,
    which GPT-2 ties to wte (left out then: aimc ties it, logits = wte h with no bias). A
    `GPT2ForSequenceClassification` runs the same blocks for `transformer`: its `score` (no bias)
    is the head, on the last non-padding token (`pooling="last"`: transformers' last token that is
    not pad_token_id; the last token of the row without one). GPT-2's
    Conv1D layers store W as [in, out] (y = x W + b), so each is transposed to nn.Linear's
    [out, in]. The causal-mask buffers (attn.bias, attn.masked_bias) are skipped. What the config
    allows beyond that forward is refused by field name."""
    kind = type(module).__name__
    cfg = module.config
    lm, classifier = _HF_LANGUAGE_MODELS[cfg.model_type], _HF_CAUSAL_CLASSIFIERS[cfg.model_type]
    if kind not in (lm, classifier):
        raise ValueError(f"from_torch: {kind} is not {lm} or {classifier}; aimc scores GPT-2's next-token predictions or its "
                         "sequence classes, so give the model with its language-model or classification head")

    def field(name, default=None):
        return getattr(cfg, name, default)

    refuse = {"scale_attn_weights": (True, "attention scores scaled by 1/sqrt(d_head)"),
              "scale_attn_by_inverse_layer_idx": (False, "no extra 1/(layer + 1) scale of the scores"),
              "add_cross_attention": (False, "self-attention only")}
    for name, (want, what) in refuse.items():
        if bool(field(name, want)) != want:
            raise ValueError(f"from_torch: {kind}.config.{name} = {field(name)!r}; aimc runs GPT-2 with {what} ({name} = {want})")
    act = field("activation_function")
    if not isinstance(act, str) or act not in _HF_ACTIVATIONS:
        raise ValueError(f"from_torch: {kind}.config.activation_function = {act!r}; aimc maps {', '.join(sorted(_HF_ACTIVATIONS))}")
    sd = {name: t for name, t in module.state_dict().items() if not re.fullmatch(r"transformer\.h\.\d+\.attn\.(bias|masked_bias)", name)}
    fixed = {"transformer.wte.weight": "embedding.weight", "transformer.wpe.weight": "pos_embedding.weight",
             "transformer.ln_f.weight": "encoder.norm.weight", "transformer.ln_f.bias": "encoder.norm.bias"}
    # (GPT-2 part, aimc part, Conv1D to transpose)
    per_layer = {"ln_1": ("norm1", False), "attn.c_attn": ("self_attn.in_proj", True), "attn.c_proj": ("self_attn.out_proj", True),
                 "ln_2": ("norm2", False), "mlp.c_fc": ("linear1", True), "mlp.c_proj": ("linear2", True)}
    tensors = {}
    for name, t in sd.items():
        a = _numpy(t)
        if name in fixed:
            tensors[fixed[name]] = a
            continue
        if name == "lm_head.weight":
            continue
        if name == "lm_head.input_range":
            # aimc.torch's learned input range of the head (tied to the embedding or not).
            tensors[name] = a
            continue
        if name in ("score.weight", "score.input_range") and kind == classifier:
            tensors[name.replace("score", "classifier")] = a
            continue
        m = re.fullmatch(r"transformer\.h\.(\d+)\.(.+)\.(weight|bias|input_range)", name)
        if m is None or m.group(2) not in per_layer:
            raise ValueError(f"from_torch: {kind}'s state dict holds {name}, which GPT-2's forward does not read")
        n, part, what = m.groups()
        target, conv = per_layer[part]
        if target == "self_attn.in_proj" and what == "input_range":
            key = f"encoder.layers.{n}.self_attn.in_proj.input_range"
        elif target == "self_attn.in_proj":
            key = f"encoder.layers.{n}.self_attn.in_proj_{what}"
        else:
            key = f"encoder.layers.{n}.{target}.{what}"
        tensors[key] = np.ascontiguousarray(a.T) if conv and what == "weight" else a
    head = sd.get("lm_head.weight")
    if head is not None and not np.array_equal(_numpy(head), tensors["embedding.weight"]):
        tensors["lm_head.weight"] = _numpy(head)
    settings = {"heads": int(field("n_head")), "norm_first": True, "activation": _HF_ACTIVATIONS[act],
                "layer_norm_eps": float(field("layer_norm_epsilon", 1e-5)), "causal": True}
    settings.update({"task": "next_token"} if kind == lm else {"pooling": "last"})
    if field("pad_token_id") is not None:
        settings["pad_id"] = int(field("pad_token_id"))
    return TransformerModel(tensors, settings, "learned")


def _is_huggingface(module) -> bool:
    """A Hugging Face transformers model: it carries a config with a model_type."""
    return isinstance(getattr(getattr(module, "config", None), "model_type", None), str)


def _from_huggingface(module) -> TransformerModel:
    """A Hugging Face encoder classifier as a `TransformerModel`, its settings from its config.
    Every family runs post-LN layers with softmax self-attention over the non-padding keys
    (padding `pad_token_id`, trailing, masked as the attention mask a tokenizer gives), learned
    absolute positions and the first token's vector into the head:

    - BERT (`BertForSequenceClassification`): token-type row 0 added (single-segment inputs),
      the CLS token through the tanh pooler into the Linear classifier.
    - RoBERTa and XLM-R (`RobertaForSequenceClassification`, `XLMRobertaForSequenceClassification`):
      BERT's layers; a token at index i has position row i + pad_token_id + 1 (transformers'
      `create_position_ids_from_input_ids`), so the table is kept from that row on; the head is
      dense, tanh, out_proj on the <s> token (no pooler).
    - ELECTRA (`ElectraForSequenceClassification`, the discriminator): BERT's layers and token
      types; the head is dense, GELU (erf), out_proj on the first token (no pooler). An embedding
      narrower than the layers (`embeddings_project`, ELECTRA-small) is refused: its LayerNorm
      acts before the projection, which aimc's embedding does not model.
    - DistilBERT (`DistilBertForSequenceClassification`): no token types, LayerNorm ε 1e-12 (fixed
      in its code); the head is pre_classifier, ReLU, classifier on the CLS token.
    - MobileBERT (`MobileBertForSequenceClassification`): its own names, BERT's positions and token
      types. The token embedding (embedding_size wide) is concatenated with its neighbours' (next,
      own, previous over the padded row; `trigram_input`) and embedding_transformation widens it to
      hidden_size; every norm is `normalization_type` ('no_norm', x·weight + bias, or
      'layer_norm': `transformer.norm`). A layer narrows its input to intra_bottleneck_size
      (`use_bottleneck`; the attention's queries and keys through their own shared bottleneck with
      `key_query_shared_bottleneck`, all of Q, K, V from the input bottleneck with
      `use_bottleneck_attention`), runs attention and num_feedforward_networks feed-forward
      networks, each with its residual and norm, and widens back with a residual from its input.
      The first token goes through the tanh pooler (`classifier_activation`; without it, straight)
      into the Linear classifier. transformers' embedding and FFN-output LayerNorms keep
      nn.LayerNorm's ε 1e-5 whatever layer_norm_eps says, so 'layer_norm' needs layer_norm_eps
      1e-5; use_bottleneck_attention with key_query_shared_bottleneck, or with an
      intra_bottleneck_size equal to hidden_size, is refused.

    A family's question-answering model (`BertForQuestionAnswering`, ...) is the same encoder
    with `qa_outputs` [2, hidden] on every token in place of the pooler and classifier
    (`task = "qa_f1"`, for `question_answering`); RoBERTa's keeps its token-type row 0 alone, as
    its tokenizers write no token types.

    What a config allows beyond that forward is refused by field name."""
    kind = type(module).__name__
    cfg = module.config
    model_type = cfg.model_type
    if model_type in _HF_LANGUAGE_MODELS:
        return _gpt2(module)
    if model_type not in _HF_CLASSIFIERS:
        raise ValueError(f"from_torch: {kind} is a Hugging Face {model_type!r} model; aimc maps the sequence classifiers of BERT, "
                         "RoBERTa, XLM-R, ELECTRA, DistilBERT and MobileBERT. Export other weights under PyTorch nn.TransformerEncoder "
                         "or BERT names (docs/transformer-names.md), where their forward is that one")
    qa = kind == _HF_QUESTION_ANSWERING[model_type]
    if kind != _HF_CLASSIFIERS[model_type] and not qa:
        raise ValueError(f"from_torch: {kind} is not a sequence classifier or a question-answering model; aimc scores a "
                         f"classifier's accuracy or an answer span's F1: give a {_HF_CLASSIFIERS[model_type]} or a "
                         f"{_HF_QUESTION_ANSWERING[model_type]}, fine-tuned on your task")

    def field(name, default=None):
        return getattr(cfg, name, default)

    if field("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"from_torch: {kind}.config.position_embedding_type = {field('position_embedding_type')!r}; aimc adds "
                         "learned absolute positions ('absolute'), not relative position scores")
    for flag in ("is_decoder", "add_cross_attention"):
        if field(flag, False):
            raise ValueError(f"from_torch: {kind}.config.{flag} = True; aimc runs an encoder (bidirectional self-attention "
                             "over the non-padding tokens, no cross-attention)")
    labels = int(field("num_labels", 2))
    problem = field("problem_type")
    # transformers reads num_labels = 1 as a regression (STS-B) unless problem_type says otherwise.
    regression = not qa and labels == 1 and problem in (None, "regression")
    if not qa and not regression and (labels < 2 or problem in ("regression", "multi_label_classification")):
        raise ValueError(f"from_torch: {kind} has num_labels = {labels}, problem_type = {problem!r}; aimc scores a single-label "
                         "classifier by the argmax of its logits (num_labels >= 2, problem_type 'single_label_classification' or None) "
                         "or a regression head (num_labels = 1, problem_type 'regression' or None)")
    act_field = "activation" if model_type == "distilbert" else "hidden_act"
    act = field(act_field)
    if not isinstance(act, str) or act not in _HF_ACTIVATIONS:
        raise ValueError(f"from_torch: {kind}.config.{act_field} = {act!r}; aimc maps {', '.join(sorted(_HF_ACTIVATIONS))}")
    tensors = {}
    # aihwkit's analog layers (convert_to_analog keeps the module names): their logical weights,
    # bias and input ranges in the Linear's names, in place of their tiles' state.
    analog = {n: m for n, m in module.named_modules() if type(m).__name__ in _ANALOG_LINEAR} if hasattr(module, "named_modules") else {}
    for n, m in analog.items():
        w, b = _analog_weights(m, n, type(m).__name__)
        tensors[f"{n}.weight"], tensors[f"{n}.bias"] = w.astype(np.float32), b.astype(np.float32)
        ranges = _analog_ranges(m, n, type(m).__name__)
        if ranges is not None:
            tensors[f"{n}.input_range"] = np.asarray(ranges, dtype=np.float32)
    for name, t in module.state_dict().items():
        if name.rsplit(".", 1)[-1] in _HF_INDEX_BUFFERS or any(name.startswith(f"{n}.") for n in analog):
            continue
        floating = t.is_floating_point() if hasattr(t, "is_floating_point") else np.issubdtype(np.asarray(t).dtype, np.floating)
        if not floating:
            raise ValueError(f"from_torch: {kind}'s state dict holds {name} of dtype {t.dtype}; aimc reads floating-point weights "
                             f"(and skips the index buffers {', '.join(_HF_INDEX_BUFFERS)})")
        tensors[name] = _numpy(t)
    pad = field("pad_token_id")
    settings = {"heads": int(field("n_heads" if model_type == "distilbert" else "num_attention_heads")), "norm_first": False,
                "activation": _HF_ACTIVATIONS[act], "pooling": "cls"}
    if model_type == "bert":
        settings.update(head_activation="gelu_exact", layer_norm_eps=float(field("layer_norm_eps", 1e-12)))
    elif model_type == "electra":
        if field("embedding_size", field("hidden_size")) != field("hidden_size"):
            raise ValueError(f"from_torch: {kind}.config.embedding_size = {field('embedding_size')} but hidden_size = {field('hidden_size')}: "
                             "ELECTRA normalises the narrower embedding before embeddings_project widens it, which aimc's embedding "
                             "(LayerNorm at the layers' width) does not model; ELECTRA-base and -large have equal sizes")
        tensors = _bert_like_names(tensors, kind, None)
        settings.update(head_activation="gelu_exact", layer_norm_eps=float(field("layer_norm_eps", 1e-12)))
    elif model_type == "distilbert":
        # sinusoidal_pos_embds writes its sinusoids into position_embeddings.weight: the table as stored.
        tensors = _distilbert_names(tensors, kind)
        settings.update(head_activation="relu", layer_norm_eps=1e-12)
    elif model_type == "mobilebert":
        tensors = _mobilebert_tensors(tensors, kind, cfg)
        settings.update(head_activation="gelu_exact", layer_norm_eps=float(field("layer_norm_eps", 1e-12)),
                        norm=field("normalization_type", "no_norm"))
    else:
        if pad is None:
            raise ValueError(f"from_torch: {kind}.config.pad_token_id is None; RoBERTa's positions count from it (row i + pad + 1)")
        tensors = _bert_like_names(tensors, kind, int(pad) + 1)
        # RoBERTa's tokenizers write no token types: every token reads row 0, a second segment
        # (question answering's context) too, so only that row is kept.
        for name in [n for n in tensors if n.endswith("token_type_embeddings.weight")]:
            tensors[name] = tensors[name][:1]
        settings.update(head_activation="tanh", layer_norm_eps=float(field("layer_norm_eps", 1e-5)))
    if pad is not None:
        settings["pad_id"] = int(pad)
    if regression:
        # One output per sequence scored against real targets (GLUE's STS-B): Pearson's r unless
        # transformer(metric="spearman") asks for the rank correlation.
        settings["task"] = "regress_pearson"
    if qa:
        # The span head on every token (qa_outputs [2, hidden]); the F1 unless question_answering
        # asks for the exact match.
        settings["task"] = "qa_f1"
        del settings["pooling"], settings["head_activation"]
    return TransformerModel(tensors, settings, "learned")


def _bert_like_names(tensors: dict, kind: str, first_position: int | None) -> dict:
    """RoBERTa's or ELECTRA's state dict under BERT's names: the head's dense and out_proj as an
    nn.Sequential's Linear layers 0 and 2; with `first_position` (RoBERTa: pad + 1, where a
    sequence's first token reads the table), the position table from that row."""
    out = {}
    for name, t in tensors.items():
        if first_position is not None and name.endswith("embeddings.position_embeddings.weight"):
            if t.shape[0] <= first_position:
                raise ValueError(f"from_torch: {kind}'s {name} has {t.shape[0]} rows; its positions start at row pad_token_id + 1 = {first_position}")
            out[name] = t[first_position:]
        elif name.startswith("classifier.dense."):
            out["classifier.0." + name.rsplit(".", 1)[-1]] = t
        elif name.startswith("classifier.out_proj."):
            out["classifier.2." + name.rsplit(".", 1)[-1]] = t
        else:
            out[name] = t
    return out


def _mobilebert_tensors(tensors: dict, kind: str, cfg) -> dict:
    """MobileBERT's state dict as the engine reads it (its own names), once its config is one the
    engine's forward runs. Without `trigram_input` and with an embedding as wide as the layers,
    transformers adds the embedding as it is and never applies embedding_transformation (which
    the state dict still holds): that Linear is left out, so that the engine does not apply it."""
    def field(name, default=None):
        return getattr(cfg, name, default)

    norm = field("normalization_type", "no_norm")
    if norm not in ("no_norm", "layer_norm"):
        raise ValueError(f"from_torch: {kind}.config.normalization_type = {norm!r}; aimc runs MobileBERT's 'no_norm' (x·weight + bias) "
                         "and 'layer_norm'")
    eps = float(field("layer_norm_eps", 1e-12))
    if norm == "layer_norm" and eps != 1e-5:
        raise ValueError(f"from_torch: {kind}.config.layer_norm_eps = {eps:g} with normalization_type 'layer_norm': transformers' "
                         "MobileBERT builds its embedding and FFN-output LayerNorms with nn.LayerNorm's ε 1e-5 whatever layer_norm_eps "
                         "says and the others with layer_norm_eps, while aimc runs one transformer.layer_norm_eps; a model whose "
                         "layer_norm_eps is 1e-5 (or normalization_type 'no_norm', MobileBERT's own) runs as transformers runs it")
    ffns = field("num_feedforward_networks", 1)
    if not isinstance(ffns, int) or ffns < 1:
        raise ValueError(f"from_torch: {kind}.config.num_feedforward_networks = {ffns!r}; a MobileBERT layer runs at least one "
                         "feed-forward network (its intermediate and output)")
    if field("use_bottleneck", True) and field("use_bottleneck_attention", False) and field("key_query_shared_bottleneck", False):
        raise ValueError(f"from_torch: {kind}.config.use_bottleneck_attention = True and key_query_shared_bottleneck = True: "
                         "transformers then reads Q, K and V from the input bottleneck and leaves the shared attention bottleneck "
                         "unused, which aimc does not model; set one of the two to False (google/mobilebert-uncased shares the query "
                         "and key bottleneck, without bottleneck attention)")
    if field("use_bottleneck", True) and field("use_bottleneck_attention", False) and field("intra_bottleneck_size") == field("hidden_size"):
        raise ValueError(f"from_torch: {kind}.config.use_bottleneck_attention = True with intra_bottleneck_size = hidden_size = "
                         f"{field('hidden_size')}: aimc tells attention on the input bottleneck by the width of V's input "
                         "(intra_bottleneck_size, not hidden_size), which these equal sizes do not show, and would run Q, K and V on "
                         "the layer's input; it runs such a model where intra_bottleneck_size differs from hidden_size")
    if not field("trigram_input", True) and field("embedding_size") == field("hidden_size"):
        tensors = {k: t for k, t in tensors.items() if ".embeddings.embedding_transformation." not in "." + k}
    return tensors


def _distilbert_names(tensors: dict, kind: str) -> dict:
    """DistilBERT's state dict under PyTorch's nn.TransformerEncoder names: Q, K and V stacked
    into in_proj, sa_layer_norm as norm1 and output_layer_norm as norm2 (both post-LN), the head's
    pre_classifier and classifier as an nn.Sequential's Linear layers 0 and 2."""
    fixed = {"distilbert.embeddings.word_embeddings.weight": "embedding.weight",
             "distilbert.embeddings.position_embeddings.weight": "pos_embedding.weight",
             "distilbert.embeddings.LayerNorm.weight": "embed_norm.weight", "distilbert.embeddings.LayerNorm.bias": "embed_norm.bias",
             "pre_classifier.weight": "classifier.0.weight", "pre_classifier.bias": "classifier.0.bias",
             "classifier.weight": "classifier.2.weight", "classifier.bias": "classifier.2.bias",
             "qa_outputs.weight": "qa_outputs.weight", "qa_outputs.bias": "qa_outputs.bias",
             # Learned input ranges (aimc.torch's `input_range`) of the head's layers.
             "pre_classifier.input_range": "classifier.0.input_range", "classifier.input_range": "classifier.2.input_range",
             "qa_outputs.input_range": "qa_outputs.input_range"}
    per_layer = {"attention.out_lin": "self_attn.out_proj", "sa_layer_norm": "norm1", "ffn.lin1": "linear1", "ffn.lin2": "linear2",
                 "output_layer_norm": "norm2"}
    out, qkv = {}, {}
    for name, t in tensors.items():
        if name in fixed:
            out[fixed[name]] = t
            continue
        m = re.fullmatch(r"distilbert\.transformer\.layer\.(\d+)\.(.+)\.(weight|bias|input_range)", name)
        if m is None:
            raise ValueError(f"from_torch: {kind}'s state dict holds {name}, which DistilBERT's forward does not read")
        n, part, what = m.groups()
        if part in ("attention.q_lin", "attention.k_lin", "attention.v_lin"):
            qkv.setdefault((n, what), {})[part[-5]] = t
        elif part in per_layer:
            out[f"encoder.layers.{n}.{per_layer[part]}.{what}"] = t
        else:
            raise ValueError(f"from_torch: {kind}'s state dict holds {name}, which DistilBERT's forward does not read")
    for (n, what), parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise ValueError(f"from_torch: {kind}'s layer {n} lacks attention.{'/'.join(sorted({'q', 'k', 'v'} - set(parts)))}_lin.{what}")
        if what == "input_range":
            # Q, K and V read the same input; stacked, they share one range per input tile.
            if not (np.array_equal(parts["q"], parts["k"]) and np.array_equal(parts["q"], parts["v"])):
                raise ValueError(f"from_torch: {kind}'s layer {n} has input ranges q {parts['q'].tolist()}, k {parts['k'].tolist()}, "
                                 f"v {parts['v'].tolist()}; aimc stacks DistilBERT's Q, K and V, which then share one range: give them equal ones")
            out[f"encoder.layers.{n}.self_attn.in_proj.input_range"] = parts["q"]
            continue
        out[f"encoder.layers.{n}.self_attn.in_proj_{what}"] = np.concatenate([parts["q"], parts["k"], parts["v"]])
    return out


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
