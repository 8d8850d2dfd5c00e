"""Models from PyTorch as aimc reads them: `from_torch` (an nn.Sequential of Linear, Conv2d,
pooling and BatchNorm layers, or a module whose own forward calls them, through `_fx.py`; a
PyTorch transformer classifier; a Hugging Face BERT-family
classifier or question-answering model, or GPT-2, through `_huggingface.py`), as layers for
`classifier` or a `TransformerModel` (`_tensors.py`). The forwards these names mean are the
engine's (docs/transformer.md); every mapping refuses, by field or tensor name, what that
forward does not compute."""

from __future__ import annotations

import sys

import numpy as np

from ._huggingface import _from_huggingface, _is_huggingface
from ._tensors import _ANALOG_CONV, _ANALOG_LINEAR, TransformerModel, _analog_ranges, _analog_weights, _numpy

def from_torch(module, positions: str | None = None, fold_batchnorm: bool = False):
    """An `nn.Sequential` of Linear and Conv2d layers, or a module whose forward calls them (a
    ResNet, with its residual additions), as ([layer, ...], activation), for
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
    it (after its activation), "pool", "pool_size" and "pool_stride" (an AdaptiveAvgPool2d or
    AdaptiveMaxPool2d, global pooling with output size 1 among them, gives "pool" and
    "pool_output", which `classifier` turns into the plain pooling it is on the images' maps). aimc maps a Conv2d as
    aihwkit does (unfolded kernel x in-channels rows, out-channels columns, one MVM per output
    pixel) and runs the pooling and Flatten digitally. The activation is one name when the same
    one sits between all layers and none after the last, else a list, the activation after each
    layer ("none" where there is none). ReLU, Tanh, SiLU and GELU are mapped (nn.GELU() as
    "gelu_exact", the erf form, and nn.GELU(approximate='tanh') as "gelu"); Flatten, Identity and
    the dropouts (Dropout, Dropout1d/2d/3d, AlphaDropout: identities at inference) are skipped, and so is a Softmax or LogSoftmax over the classes right after the last
    layer (the accuracy reads the logits' argmax, which it keeps); nested Sequentials are expanded in order.

    BatchNorm: a BatchNorm2d right after a Conv2d, or a BatchNorm1d right after a Linear or a
    Conv1d, stays digital by default, as aihwkit runs it (its convert_to_analog leaves the
    BatchNorm layers digital, so the tiles hold the layer's own weights): the layer is a dict (a
    Linear too: "weight", "bias", optionally "input_range") with "batchnorm", the BatchNorm's
    eval-mode parameters {"weight": gamma, "bias": beta, "running_mean": mean, "running_var": var}
    (float32 arrays; gamma 1 and beta 0 without affine parameters) and "eps", applied to each
    output as s (W x + b - mean) + beta, s = gamma / sqrt(var + eps), before the layer's residual
    add, activation and pooling. With `fold_batchnorm=True` it is folded into that layer's weights
    instead (W' = s W, b' = s (b - mean) + beta), which the tiles then hold, so the noise acts on
    other weights: on drifting devices the accuracies differ. A second BatchNorm after the same
    layer is folded in too with fold_batchnorm=True and refused otherwise (aimc keeps one digital
    BatchNorm per layer). A BatchNorm1d with an activation or nothing before it is folded into
    the Linear after it either way (W' = W diag(s), b' = b + W (beta - s mean)), as aimc has no
    digital step on a layer's inputs. Any other BatchNorm (a BatchNorm2d after an activation, a
    BatchNorm1d after a Conv2d) is refused, and so is anything else, by name: aimc never drops a
    layer silently.

    A module whose class defines its own forward() (a custom nn.Module, a ResNet) is read from
    that forward, traced with torch.fx in eval mode (see `_fx.py`): the Linear, Conv2d and Conv1d
    modules it calls become the layers, in the order it calls them, with the same mappings and
    BatchNorms as above (digital, or folded with fold_batchnorm=True); ReLU, GELU, Tanh and SiLU
    as modules or torch functions (F.relu, torch.relu, x.relu(), F.gelu, ...) become the
    activation of the layer whose output they take; max and average pooling (modules,
    F.max_pool2d, F.avg_pool2d, F.adaptive_*_pool2d, and x.mean((2, 3)) as global average
    pooling) its pooling; nn.Flatten, torch.flatten(x, 1) and
    x.view(x.size(0), -1) the flatten before a Linear. A residual addition (a + b, out += identity,
    torch.add) of two layers' outputs is held by the one computed later, whose output must not
    have an activation or pooling yet: that layer's dict gets "add", the index of the other, and
    the activation after the sum becomes its own (its output is then the sum's, activated and
    pooled); the earlier output may reach the sum through He et al.'s zero-padding shortcut (option A,
    the CIFAR ResNets' `LambdaLayer(lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, p, p)))`), which
    the dict records as "add_stride" and "add_pad_channels"; a layer that reads the output of another layer than the one before it in the list
    (a 1x1 shortcut convolution reading a block's input) gets "input", that layer's index. Such a
    Linear is a dict too ("weight", "bias", optionally "input_range"). A layer's output is passed
    on once, after its BatchNorm, addition, activation and pooling: one used both before and
    after them is refused, and so is every other operation (a multiplication, a concatenation, an
    addition of the network's input or of a constant, a torch function not listed), by the module
    or function and the forward it is in. A forward torch.fx cannot trace (control flow on tensor
    values) is refused, with the fix: a traceable forward, or an nn.Sequential. `classifier` then
    checks the layers against the module's own eval-mode outputs on the first rows of its data.

    An nn.Sequential (or AnalogSequential) whose children include such a module of the user's
    own (ResNet blocks between a stem and a head) is read from its trace too, whole.

    aihwkit's AnalogLinear and AnalogConv2d (in an AnalogSequential, or in a traced forward, as
    convert_to_analog leaves a ResNet) are read by their `get_weights()`, the logical weights with
    the mapping scales and learned output scales applied, and with their tiles' input ranges
    (aihwkit's `pre_post.input_range`, one per input tile): such a Linear is (W, b, input_range),
    such a Conv2d dict has "input_range". The BatchNorm after one, which aihwkit's
    convert_to_analog leaves digital, is read as after a Linear or Conv2d. Works by class name, so
    torch itself is not imported here."""
    if fold_batchnorm and (_is_huggingface(module) or _is_transformer(module)):
        raise ValueError("from_torch: fold_batchnorm=True with a transformer, which has no BatchNorm to fold; leave it out")
    if _is_huggingface(module):
        if positions is not None:
            raise ValueError(f"from_torch: positions = {positions!r} with a Hugging Face model, whose learned positions are in "
                             "its state dict; leave positions out")
        return _from_huggingface(module)
    if _is_transformer(module):
        return _transformer_from_torch(module, "sinusoidal" if positions is None else positions)
    if positions is not None:
        raise ValueError(f"from_torch: positions = {positions!r} is for transformer classifiers; this module is not one")
    if not _is_sequential(module):
        # Imported here: _fx builds on this module's layer readers.
        from ._fx import from_traced
        return from_traced(module, fold_batchnorm)
    children = _flatten_sequential(module)
    if any(_is_block(m) for m in children):
        # A block with its own forward among the children (a ResNet's BasicBlocks in an
        # nn.Sequential, as aihwkit's examples build ResNets): the whole Sequential is read from
        # its trace, which shows what each block computes.
        from ._fx import from_traced
        return from_traced(module, fold_batchnorm)
    layers, acts = [], []   # acts[i]: the activation after layer i
    pending = None          # a BatchNorm1d waiting for the next Linear: (scale, shift)
    last_layer = False      # the previous effective module was a layer (no activation since)
    last_where = None       # that layer, as messages name it
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
                layer += (_range(m),)
            layers.append(layer)
            acts.append("none")
            last_layer, last_where = True, f"module {i} ({kind})"
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
                shape = _ConvShape(m, w, b, 1 if "Conv1d" in kind else 2)
                layer = _conv1d(shape, i) if "Conv1d" in kind else _conv2d(shape, i)
                if ranges is not None:
                    layer["input_range"] = np.asarray(ranges, dtype=np.float32)
            else:
                layer = (w.astype(np.float32), b.astype(np.float32))
                if ranges is not None:
                    layer += (np.asarray(ranges, dtype=np.float32),)
            layers.append(layer)
            acts.append("none")
            last_layer, last_where = True, f"module {i} ({kind})"
        elif kind in ("Conv2d", "Conv1d"):
            if pending is not None:
                raise ValueError(f"from_torch: a BatchNorm1d waits for a Linear but module {i} is a {kind}")
            if layers and _is_conv(layers[-1]) and _layer_kind(layers[-1]) != kind:
                raise ValueError(f"from_torch: module {i} ({kind}) follows a {_layer_kind(layers[-1])}; "
                                 "aimc maps a network of one kind of convolution")
            layer = _conv2d(m, i) if kind == "Conv2d" else _conv1d(m, i)
            if _range(m) is not None:
                layer["input_range"] = _range(m)
            layers.append(layer)
            acts.append("none")
            last_layer, last_where = True, f"module {i} ({kind})"
        elif kind in ("BatchNorm1d", "BatchNorm2d"):
            where = f"module {i} ({kind})"
            if last_layer:
                layers[-1] = _normalised(layers[-1], m, where, last_where, fold_batchnorm)
            elif kind == "BatchNorm2d":
                raise ValueError(f"from_torch: {where} does not directly follow a Conv2d; aimc applies it to the output of the "
                                 "convolution right before it (move it before the activation, or fold it yourself)")
            elif pending is None:
                pending = _affine(_batchnorm(m, where))
            else:
                raise ValueError(f"from_torch: module {i} is a second BatchNorm1d with no Linear between; fold them first")
        elif kind in ("ReLU", "GELU", "Tanh", "SiLU"):
            if not layers or acts[-1] != "none" or pending is not None or (not last_layer and "pool" in _as_dict(layers[-1])):
                raise ValueError(f"from_torch: module {i} ({kind}) does not follow a layer (an activation first, two in a row, "
                                 "after a pooling, or after a BatchNorm1d waiting for its Linear); aimc applies one activation after a layer")
            # nn.GELU() is the exact (erf) GELU, aimc's "gelu_exact"; approximate='tanh' is "gelu".
            acts[-1] = "silu" if kind == "SiLU" else _activation_name(m, f"module {i}")
            last_layer = False
        elif kind in ("MaxPool2d", "AvgPool2d", "AdaptiveMaxPool2d", "AdaptiveAvgPool2d", "MaxPool1d", "AvgPool1d",
                      "AdaptiveMaxPool1d", "AdaptiveAvgPool1d"):
            one_d = kind.endswith("1d")
            if not layers or _layer_kind(layers[-1]) != ("Conv1d" if one_d else "Conv2d") or "pool" in layers[-1]:
                raise ValueError(f"from_torch: module {i} ({kind}) does not follow a Conv{'1' if one_d else '2'}d (and its activation); "
                                 "aimc pools a convolution's outputs once, digitally, after its activation")
            if kind.startswith("Adaptive"):
                pool = _adaptive_pool2d(m, f"module {i} ({kind})", kind)
            else:
                pool = _pool1d(m, f"module {i} ({kind})", kind) if one_d else _pool2d(m, f"module {i} ({kind})", kind)
            layers[-1] = dict(layers[-1], **pool)
            last_layer = False
        elif kind == "Flatten" or kind in _SKIPPED:
            continue
        elif kind in ("Softmax", "LogSoftmax") and i == len(children) - 1 and last_layer and getattr(m, "dim", None) in (-1, 1):
            # The logits' monotone map: the class a row is given (their argmax) is the same.
            continue
        else:
            raise ValueError(f"from_torch: module {i} is {kind}; aimc maps Linear and Conv2d layers (with a BatchNorm after them) with ReLU, "
                             "GELU, Tanh or SiLU after them, MaxPool2d/AvgPool2d after a Conv2d, Flatten, and a Softmax or "
                             "LogSoftmax over the classes (dim=1 or -1) right after the last layer; fold or remove the others")
    if pending is not None:
        raise ValueError("from_torch: the last BatchNorm1d has no Linear after it to fold into")
    if not layers:
        raise ValueError("from_torch: no Linear or Conv2d layer found")
    return layers, _activations(acts)


def _activations(acts: list):
    """The activation after each layer as `classifier` takes it: one name when the same one sits
    between all layers and none follows the last, else the list."""
    between = acts[:-1]
    if acts[-1] == "none" and len(set(between)) <= 1:
        return between[0] if between else "none"
    return acts


def _folded(layer, scale: np.ndarray, shift: np.ndarray):
    """A Linear tuple or a layer dict with the BatchNorm after it folded in (y = scale * x +
    shift per output): W' = s W, b' = s b + shift, in float64."""
    w, b = (layer["weight"], layer["bias"]) if isinstance(layer, dict) else layer[:2]
    shape = (-1,) + (1,) * (w.ndim - 1)
    w = (w.astype(np.float64) * scale.reshape(shape)).astype(np.float32)
    b = (b.astype(np.float64) * scale + shift).astype(np.float32)
    return dict(layer, weight=w, bias=b) if isinstance(layer, dict) else (w, b) + tuple(layer[2:])


def _is_conv(layer) -> bool:
    """Whether a `classifier` layer is a convolution: a dict with a 4-D weight (a Linear given as
    a dict, for its residual keys or its BatchNorm, has a 2-D one)."""
    return isinstance(layer, dict) and np.ndim(layer["weight"]) == 4


def _outputs(layer) -> int:
    """A `classifier` layer's output count (features, or a convolution's channels)."""
    return int(np.shape(layer["weight"] if isinstance(layer, dict) else layer[0])[0])


def _layer_kind(layer) -> str:
    """What a `classifier` layer computes: "Conv1d", "Conv2d" or "Linear"."""
    if not _is_conv(layer):
        return "Linear"
    return "Conv1d" if layer.get("conv1d", False) else "Conv2d"


def _flatten_sequential(module) -> list:
    """The modules of an `nn.Sequential` (or aihwkit's AnalogSequential, or a list) in order,
    nested Sequentials expanded, so a model built from blocks maps like the flat one; module
    indices in errors count the flat list."""
    children = list(module.children()) if hasattr(module, "children") else list(module)
    out = []
    for m in children:
        out.extend(_flatten_sequential(m) if _is_sequential(m) else [m])
    return out


def _is_block(m) -> bool:
    """Whether `m` is a torch module of the user's own (not torch's, not aihwkit's) whose class
    defines its forward: a block such as a ResNet's BasicBlock."""
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(m, torch.nn.Module):
        return False
    own = [c for c in type(m).__mro__ if "forward" in vars(c)]
    return (bool(own) and own[0].__module__.split(".")[0] not in ("torch", "aihwkit")
            and type(m).__name__ not in _ANALOG_LINEAR + _ANALOG_CONV)


def _is_sequential(module) -> bool:
    """Whether `module` computes its children in order: an `nn.Sequential` or aihwkit's
    AnalogSequential, or a subclass of one that keeps its forward, or a list or tuple of modules.
    A module whose class defines its own `forward` may do anything between its children
    (functional activations, residual additions, pooling), which its children do not show."""
    if type(module) in (list, tuple):
        return True
    for c in type(module).__mro__:
        if c.__name__ in ("Sequential", "AnalogSequential"):
            return True
        if "forward" in vars(c):
            return False
    return False


class _ConvShape:
    """An aihwkit AnalogConv2d's (or, `dims` 1, AnalogConv1d's) weight and geometry, read as
    `_conv2d` (`_conv1d`) reads a Conv2d (Conv1d): `get_weights()` gives the unfolded matrix
    [out, in·kh·kw] (or [out, in·k]), folded back here."""

    def __init__(self, m, w: np.ndarray, b: np.ndarray, dims: int = 2):
        if dims == 1:
            k = getattr(m, "kernel_size", None)
            k = [k[0] if isinstance(k, (tuple, list)) else k] if k is not None else None
        else:
            k = _pair(m.kernel_size, "kernel_size", type(m).__name__) if hasattr(m, "kernel_size") else None
        if w.ndim == 2 and k is not None:
            w = w.reshape(w.shape[0], -1, *k)
        self.weight, self.bias = w.astype(np.float32), b.astype(np.float32)
        for name in ("stride", "padding", "dilation", "groups", "padding_mode"):
            if hasattr(m, name):
                setattr(self, name, getattr(m, name))


def _as_dict(layer) -> dict:
    return layer if isinstance(layer, dict) else {}


def _pair(v, what: str, where: str) -> list:
    """An int or a pair of ints as [a, b]; `where` names the module in the refusal."""
    if isinstance(v, int):
        return [v, v]
    if isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(x, int) for x in v):
        return [int(v[0]), int(v[1])]
    raise ValueError(f"from_torch: {where}: {what} = {v!r} is not an int or a pair of ints")


def _conv1d(m, i: int | str) -> dict:
    """A Conv1d as the Conv2d it is on C x 1 x L images: weight [out, in, 1, k], stride [1, s],
    padding [0, p] ("conv1d": its input is [n, C, L]); what aimc cannot map is refused by name."""
    w = _numpy(m.weight)
    if w.ndim != 3:
        raise ValueError(f"from_torch: module {i} (Conv1d) has a {w.ndim}-D weight; expected [out, in, k]")
    first = lambda v: v[0] if isinstance(v, (tuple, list)) else v
    if getattr(m, "groups", 1) != 1:
        raise ValueError(f"from_torch: module {i} (Conv1d) has groups = {m.groups}; aimc maps dense convolutions (groups = 1)")
    if first(getattr(m, "dilation", 1)) != 1:
        raise ValueError(f"from_torch: module {i} (Conv1d) has dilation {m.dilation}; aimc maps dilation 1")
    if getattr(m, "padding_mode", "zeros") != "zeros":
        raise ValueError(f"from_torch: module {i} (Conv1d) has padding_mode = {m.padding_mode!r}; aimc pads with zeros")
    stride, padding, k = int(first(getattr(m, "stride", 1))), getattr(m, "padding", 0), w.shape[2]
    if padding == "valid":
        padding = 0
    elif padding == "same":
        if stride != 1 or k % 2 == 0:
            raise ValueError(f"from_torch: module {i} (Conv1d) has padding='same' with stride {stride} or an even kernel; give explicit padding")
        padding = k // 2
    b = _numpy(m.bias) if getattr(m, "bias", None) is not None else np.zeros(w.shape[0], dtype=np.float32)
    return {"weight": w[:, :, None, :], "bias": b, "stride": [1, stride], "padding": [0, int(first(padding))], "conv1d": True}


def _conv2d(m, i: int | str) -> dict:
    """A Conv2d as a layer dict; what aimc cannot map (groups, dilation, other padding modes) is
    refused by name."""
    w = _numpy(m.weight)
    if w.ndim != 4:
        raise ValueError(f"from_torch: module {i} (Conv2d) has a {w.ndim}-D weight; expected [out, in, kh, kw]")
    if getattr(m, "groups", 1) != 1:
        raise ValueError(f"from_torch: module {i} (Conv2d) has groups = {m.groups}; aimc maps dense convolutions (groups = 1)")
    if _pair(getattr(m, "dilation", 1), "dilation", f"module {i} (Conv2d)") != [1, 1]:
        raise ValueError(f"from_torch: module {i} (Conv2d) has dilation {m.dilation}; aimc maps dilation 1")
    if getattr(m, "padding_mode", "zeros") != "zeros":
        raise ValueError(f"from_torch: module {i} (Conv2d) has padding_mode = {m.padding_mode!r}; aimc pads with zeros")
    stride = _pair(getattr(m, "stride", 1), "stride", f"module {i} (Conv2d)")
    padding = getattr(m, "padding", 0)
    if padding == "valid":
        padding = 0
    elif padding == "same":
        if stride != [1, 1] or w.shape[2] % 2 == 0 or w.shape[3] % 2 == 0:
            raise ValueError(f"from_torch: module {i} (Conv2d) has padding='same' with stride {stride} or an even kernel; give explicit padding")
        padding = [w.shape[2] // 2, w.shape[3] // 2]
    b = _numpy(m.bias) if getattr(m, "bias", None) is not None else np.zeros(w.shape[0], dtype=np.float32)
    return {"weight": w, "bias": b, "stride": stride, "padding": _pair(padding, "padding", f"module {i} (Conv2d)")}


def _side(v: list):
    """[height, width] as the layer tables write it: one number when square."""
    return v[0] if v[0] == v[1] else v


def _pool2d(m, where: str, kind: str) -> dict:
    size = _pair(getattr(m, "kernel_size", 2), "kernel_size", where)
    stride = getattr(m, "stride", None)
    stride = size if stride is None or stride == () or stride == [] else _pair(stride, "stride", where)
    padding = _pair(getattr(m, "padding", 0), "padding", where)
    if getattr(m, "ceil_mode", False):
        raise ValueError(f"from_torch: {where} uses ceil_mode; aimc pools in floor mode")
    if 2 * padding[0] > size[0] or 2 * padding[1] > size[1]:
        raise ValueError(f"from_torch: {where} pads by {padding}, more than half its window {size}")
    if kind == "MaxPool2d" and _pair(getattr(m, "dilation", 1), "dilation", where) != [1, 1]:
        raise ValueError(f"from_torch: {where} has dilation {m.dilation}; aimc pools with dilation 1")
    if kind == "AvgPool2d" and getattr(m, "divisor_override", None) is not None:
        raise ValueError(f"from_torch: {where} has divisor_override; aimc divides by the window size")
    pool = {"pool": "max" if kind == "MaxPool2d" else "avg", "pool_size": _side(size), "pool_stride": _side(stride)}
    if padding != [0, 0]:
        # Implicit padding (torchvision's ResNet stem): max pooling skips it, average pooling
        # counts it as zeros unless count_include_pad=False.
        pool["pool_padding"] = _side(padding)
        if kind == "AvgPool2d" and not getattr(m, "count_include_pad", True):
            pool["pool_count_include_pad"] = False
    return pool


def _adaptive_pool2d(m, where: str, kind: str) -> dict:
    """An AdaptiveAvgPool2d or AdaptiveMaxPool2d to an `output_size` (1: global pooling), or its
    1-D form over a Conv1d's 1 x L map: PyTorch's windows are then those of a plain pooling of
    window and stride map size / output size where the map divides evenly, which `classifier`
    resolves once it knows the images' shape ("pool_output", [height, width])."""
    size = getattr(m, "output_size", None)
    if kind.endswith("1d"):
        size = size[0] if isinstance(size, (tuple, list)) and len(size) == 1 else size
        out = [1, size] if isinstance(size, int) else None
    else:
        out = [size, size] if isinstance(size, int) else list(size) if isinstance(size, (tuple, list)) else None
    if out is None or len(out) != 2 or not all(isinstance(v, int) and v >= 1 for v in out):
        raise ValueError(f"from_torch: {where} has output_size {size!r}; aimc pools to a whole output size (an int, e.g. 1)")
    return {"pool": "max" if "Max" in kind else "avg", "pool_output": out}


def _pool1d(m, where: str, kind: str) -> dict:
    """A MaxPool1d or AvgPool1d over a Conv1d's 1 x L map, as a 1 x k pooling."""
    def one(v):
        """PyTorch's 1-D argument as an int (it may hold it as a 1-tuple)."""
        return v[0] if isinstance(v, (tuple, list)) and len(v) == 1 else v

    size = one(getattr(m, "kernel_size", 2))
    stride = one(getattr(m, "stride", None))
    stride = size if stride is None or stride == () or stride == [] else stride
    if not isinstance(size, int) or not isinstance(stride, int):
        raise ValueError(f"from_torch: {where} has kernel_size {size!r}, stride {stride!r}; give ints")
    padding = one(getattr(m, "padding", 0))
    if getattr(m, "ceil_mode", False):
        raise ValueError(f"from_torch: {where} uses ceil_mode; aimc pools in floor mode")
    if not isinstance(padding, int) or 2 * padding > size:
        raise ValueError(f"from_torch: {where} pads by {padding!r}; give an int of at most half its window {size}")
    if kind == "MaxPool1d" and one(getattr(m, "dilation", 1)) != 1:
        raise ValueError(f"from_torch: {where} has dilation {m.dilation}; aimc pools with dilation 1")
    pool = {"pool": "max" if kind == "MaxPool1d" else "avg", "pool_size": [1, size], "pool_stride": [1, stride]}
    if padding:
        pool["pool_padding"] = [0, padding]
        if kind == "AvgPool1d" and not getattr(m, "count_include_pad", True):
            pool["pool_count_include_pad"] = False
    return pool


def _resolve_pools(layers: list, input_shape) -> list:
    """The layers with every adaptive pooling ("pool_output", from `_adaptive_pool2d`) as the plain
    pooling it is on its convolution's output: window and stride side / output, the map square and
    the side divisible (PyTorch's adaptive windows are then all alike). Maps follow the images of
    `input_shape` (C, H, W) through each convolution (kernel, stride, zero padding) and pooling,
    from the layer each one reads (the one before it, or its "input"). A pooling over the map's
    side ("pool_side": 2 its height, 3 its width, from F.avg_pool2d(x, x.size()[3])) becomes a
    square window of that side, its stride the window."""
    if not any(isinstance(layer, dict) and ("pool_output" in layer or "pool_side" in layer) for layer in layers):
        return layers
    if input_shape is None:
        raise ValueError("an adaptive pooling, or one over a map's side, needs the images' shape: give x as [n, C, H, W] images or "
                         "input_shape=(C, H, W)")
    maps = []  # maps[i]: [height, width] of layer i's output (a Linear passes on the map it read)
    out = []
    for i, layer in enumerate(layers):
        hw = [int(input_shape[1]), int(input_shape[2])] if i == 0 else maps[_source(layer, i)]
        if not _is_conv(layer):
            maps.append(hw)
            out.append(layer)
            continue
        kh, kw = np.shape(layer["weight"])[2:4]
        (sh, sw), (ph, pw) = layer.get("stride", [1, 1]), layer.get("padding", [0, 0])
        hw = [(hw[0] + 2 * ph - kh) // sh + 1, (hw[1] + 2 * pw - kw) // sw + 1]
        if "pool_output" in layer:
            k = layer["pool_output"]
            k = [k, k] if isinstance(k, int) else list(k)
            if hw[0] % k[0] or hw[1] % k[1]:
                raise ValueError(f"layers[{i}]: an adaptive pooling to {k[0]} x {k[1]} of a {hw[0]} x {hw[1]} map; aimc pools maps "
                                 "whose sides the output size divides (PyTorch's windows are then a plain pooling's)")
            layer = {key: v for key, v in layer.items() if key != "pool_output"}
            window = [hw[0] // k[0], hw[1] // k[1]]
            window = window[0] if window[0] == window[1] else window
            layer.update(pool_size=window, pool_stride=window)
        if "pool_side" in layer:
            side = hw[layer["pool_side"] - 2]
            if side > min(hw):
                raise ValueError(f"layers[{i}]: a pooling over the {side}-wide side of a {hw[0]} x {hw[1]} map does not fit it")
            layer = {key: v for key, v in layer.items() if key != "pool_side"}
            layer.update(pool_size=side, pool_stride=side)
        if "pool" in layer:
            size = layer.get("pool_size", 2)
            size = [size, size] if isinstance(size, int) else list(size)
            stride = layer.get("pool_stride", size)
            stride = [stride, stride] if isinstance(stride, int) else list(stride)
            pad = layer.get("pool_padding", 0)
            pad = [pad, pad] if isinstance(pad, int) else list(pad)
            hw = [(hw[0] + 2 * pad[0] - size[0]) // stride[0] + 1, (hw[1] + 2 * pad[1] - size[1]) // stride[1] + 1]
        maps.append(hw)
        out.append(layer)
    return out


def _source(layer, i: int) -> int:
    """The index of the layer whose output layer i reads: its "input", else the one before it."""
    return layer.get("input", i - 1) if isinstance(layer, dict) else i - 1


def _batchnorm(m, where: str) -> dict:
    """A BatchNorm1d or BatchNorm2d (module `where`) in eval mode as its parameters: "weight"
    (gamma), "bias" (beta), "running_mean" and "running_var" (float32 arrays; gamma 1 and beta 0
    without affine parameters) and "eps"."""
    mean, var = getattr(m, "running_mean", None), getattr(m, "running_var", None)
    if mean is None or var is None:
        raise ValueError(f"from_torch: {where} has no running statistics (track_running_stats=False); aimc applies the eval-mode "
                         "normalisation, which needs them")
    mean, var = _numpy(mean), _numpy(var)
    gamma, beta = getattr(m, "weight", None), getattr(m, "bias", None)
    return {"weight": _numpy(gamma) if gamma is not None else np.ones_like(mean),
            "bias": _numpy(beta) if beta is not None else np.zeros_like(mean),
            "running_mean": mean, "running_var": var, "eps": float(getattr(m, "eps", 1e-5))}


def _affine(bn: dict) -> tuple[np.ndarray, np.ndarray]:
    """A BatchNorm's parameters (as `_batchnorm` gives them) as y = scale * x + shift per feature
    or channel, in float64."""
    scale = np.asarray(bn["weight"], np.float64) / np.sqrt(np.asarray(bn["running_var"], np.float64) + bn["eps"])
    return scale, np.asarray(bn["bias"], np.float64) - scale * np.asarray(bn["running_mean"], np.float64)


def _normalised(layer, m, where: str, after: str, fold: bool):
    """`layer` (a Linear tuple or a layer dict, module `after`) with the BatchNorm `m` (module
    `where`) applied to its outputs: with `fold`, folded into its weights and bias; else kept
    digital as its "batchnorm" (a Linear tuple becoming a dict), as aihwkit runs it. Refused: a
    BatchNorm2d after anything but a Conv2d, a BatchNorm1d after a Conv2d, one of another width
    than the layer's outputs, and a second one kept digital."""
    kind = type(m).__name__
    if (kind == "BatchNorm2d") != (_layer_kind(layer) == "Conv2d"):
        raise ValueError(f"from_torch: {where} follows {after}; aimc applies a BatchNorm2d to a Conv2d's outputs, a BatchNorm1d "
                         "to a Linear's or a Conv1d's")
    bn = _batchnorm(m, where)
    outputs = _outputs(layer)
    if bn["running_mean"].shape != (outputs,):
        raise ValueError(f"from_torch: {where} has {bn['running_mean'].size} features but {after} has {outputs} outputs")
    if fold:
        return _folded(layer, *_affine(bn))
    if "batchnorm" in _as_dict(layer):
        raise ValueError(f"from_torch: {where} is a second BatchNorm after {after}; aimc keeps one digital BatchNorm per layer: "
                         "merge the two, or fold them into the layer's weights (from_torch(..., fold_batchnorm=True))")
    return dict(layer if isinstance(layer, dict) else _linear_dict(layer), batchnorm=bn)


def _linear_dict(layer: tuple) -> dict:
    """A Linear tuple (W, b[, input_range]) as the layer dict that holds keys beside them."""
    w, b, *ranges = layer
    return {"weight": w, "bias": b, **({"input_range": ranges[0]} if ranges else {})}


# ---- Transformers --------------------------------------------------------------------------

# Classes that make a module a transformer classifier for from_torch (the decoder kinds are
# here so that they are refused by name rather than as a stray Sequential layer).
_TRANSFORMER_KINDS = ("Embedding", "TransformerEncoder", "TransformerEncoderLayer", "MultiheadAttention",
                      "Transformer", "TransformerDecoder", "TransformerDecoderLayer")
_CONTAINERS = ("Sequential", "ModuleList")
# Modules that compute nothing at inference: the dropouts (identities in eval mode) and Identity.
_SKIPPED = ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout", "Identity")


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


def _range(m) -> np.ndarray | None:
    """A layer's learned input ranges (`input_range`, as aimc.torch's `prepare(input_range=...)`
    leaves them; their absolute values, as the clip reads them), or None."""
    r = getattr(m, "input_range", None)
    return None if r is None else np.abs(_numpy(r).reshape(-1))


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
    # Learned input ranges (aimc.torch's): the stacked Q, K, V projection's is held by its
    # `in_proj` child, named as the file reads it beside in_proj_weight.
    for key, m in (("self_attn.in_proj", getattr(a, "in_proj", None)), ("self_attn.out_proj", a.out_proj),
                   ("linear1", layer.linear1), ("linear2", layer.linear2)):
        r = _range(m) if m is not None else None
        if r is not None:
            t[p + key + ".input_range"] = r
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
            head.append(_linear(m, where, head[-1][0].shape[0] if head else d) + (_range(m),))
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
    for k, (w, b, r) in enumerate(head):
        name = "classifier" if len(head) == 1 else f"classifier.{2 * k}"
        tensors[f"{name}.weight"], tensors[f"{name}.bias"] = w, b
        if r is not None:
            tensors[f"{name}.input_range"] = r
    first = layer_settings[0][1]
    settings = {"heads": first["heads"], "norm_first": first["norm_first"], "activation": first["activation"],
                "head_activation": head_acts[0] if len(head) > 1 else "gelu_exact", "layer_norm_eps": eps[0], "pooling": "mean"}
    if pad_id is not None:
        settings["pad_id"] = int(pad_id)
    return TransformerModel(tensors, settings, "learned" if "pos_embedding.weight" in tensors else positions)


# ---- Hugging Face encoders ------------------------------------------------------------------
