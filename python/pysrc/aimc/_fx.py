"""Modules whose class defines its own forward() (a ResNet, a custom nn.Module, an nn.Sequential
holding such blocks) as `classifier` layers, for `from_torch`. `from_traced` traces the forward
with torch.fx and maps its graph node by node onto the network the layer tables describe: Linear
and convolution layers (aihwkit's analog ones too, by their logical weights), each with
the BatchNorm after it (digital, or folded into its weights), then an optional residual add of
an earlier layer's output, its activation and its pooling, each reading the previous layer's
output or, through "input", an earlier one's; a shortcut may add an earlier output subsampled
and zero-padded in its channels (He et al.'s option A, the CIFAR ResNets' `LambdaLayer`). Every
node is mapped or refused by name; none is dropped. `check_traced` runs the mapped layers in
NumPy (`_numpy_forward`) against the module's own eval-mode output (its analog layers ideal) on
the first rows of the data, which `classifier` calls before a run. Nothing here imports torch but
for a module that is already torch's, so `import aimc` works without it."""

from __future__ import annotations

import dataclasses
import math
import operator
import sys
from types import SimpleNamespace

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._models import (_SKIPPED, _activation_name, _activations, _adaptive_pool2d, _affine, _conv1d, _conv2d, _ConvShape, _is_conv,
                      _linear, _linear_dict, _normalised, _outputs, _pool1d, _pool2d, _range, _source)
from ._tensors import _ANALOG_CONV, _ANALOG_LINEAR, _analog_ranges, _analog_weights

# `check_traced` compares the first rows of x, to this tolerance relative to the largest logit.
_CHECK_ROWS = 8
_CHECK_TOLERANCE = 1e-4

_POOLS = ("MaxPool2d", "AvgPool2d", "AdaptiveMaxPool2d", "AdaptiveAvgPool2d", "MaxPool1d", "AvgPool1d", "AdaptiveMaxPool1d",
          "AdaptiveAvgPool1d")
_MAPPED = ("aimc maps Linear, Conv2d and Conv1d modules with BatchNorm1d/2d after them, ReLU, GELU, Tanh and SiLU "
           "(modules or torch functions), residual additions of two layers' outputs (the earlier one may be a zero-padding shortcut, "
           "F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, p, p))), max and average pooling (modules, "
           "F.max_pool2d, F.avg_pool2d, F.adaptive_*_pool2d, x.mean((2, 3))), flattening (nn.Flatten, torch.flatten(x, 1), "
           "x.view(x.size(0), -1)), dropouts, Identity, and a Softmax or LogSoftmax over the classes as the forward's last step")

# What Tensor methods do, by name; functions are read by `_functions`.
_METHODS = {"add": "add", "add_": "add", "relu": "relu", "relu_": "relu", "tanh": "tanh", "tanh_": "tanh", "flatten": "flatten",
            "view": "view", "reshape": "view", "size": "size", "mean": "mean", "softmax": "softmax",
            "log_softmax": "log_softmax"}


class TracedLayers(list):
    """`from_torch`'s layers of a traced module: a list like any other, holding the module for
    `classifier` to check them against (`check_traced`), the softmax its forward ends with
    ("softmax", "log_softmax" or None), which the layers leave out, its traced graph, and the
    layer each of aihwkit's analog modules in it became (`analog`: module name -> index)."""

    def __init__(self, layers, module, final: str | None, graph=None, analog: dict | None = None):
        super().__init__(layers)
        self.module, self.final, self.graph, self.analog = module, final, graph, dict(analog or {})


@dataclasses.dataclass(frozen=True)
class _Tensor:
    """A tensor in the traced forward: the output of layer `layer` (None: the network's input) as
    it stood at `version` (a BatchNorm, residual add, activation or pooling applied to it makes
    the next one), flattened to [n, features] or not; `shortcut`, (stride, before, after) when it
    was subsampled (x[:, :, ::stride, ::stride]) or zero-padded in its channels (F.pad with
    before and after), which only a residual addition takes."""
    layer: int | None
    version: int = 0
    flat: bool = False
    shortcut: tuple | None = None


# Sizes a forward reads off a tensor to flatten it: x.shape (or x.size()), and x.size(0) (or x.shape[0]).
_SHAPE, _BATCH = "shape", "batch"


@dataclasses.dataclass(frozen=True)
class _Side:
    """A side of a layer's maps read off its shape (x.size()[3], x.shape[2], x.size(3): `dim` 2
    the height, 3 the width), as a pooling's window over the whole map takes it
    (F.avg_pool2d(out, out.size()[3]), the CIFAR ResNets' global pooling)."""
    layer: int | None
    dim: int


@dataclasses.dataclass
class _Layer:
    """A Linear or convolution layer as the mapping builds it."""
    where: str            # the module, as messages name it
    kind: str             # "Linear", "Conv2d" or "Conv1d"
    weights: object       # (W, b[, input_range]), or the convolution's dict
    source: int | None    # the layer whose output it reads; None: the network's input
    add: int | None = None
    add_pad: tuple | None = None   # the added output's zero-padding shortcut: (stride, before, after)
    act: str = "none"
    pool: dict | None = None
    changes: list = dataclasses.field(default_factory=list)  # changes[v]: what made version v + 1 of its output
    read_by: str | None = None                               # the first node that read its output

    @property
    def version(self) -> int:
        return len(self.changes)

    @property
    def outputs(self) -> int:
        return _outputs(self.weights)


def from_traced(module, fold_batchnorm: bool = False) -> tuple:
    """`from_torch` of a module with its own forward(): ([layer, ...], activation) as for an
    nn.Sequential, the layers a `TracedLayers`. A layer that reads the output of another layer
    than the one before it has "input", one that adds an earlier layer's output "add" (their
    indices in the list); the BatchNorm after a layer is its "batchnorm", or with
    `fold_batchnorm` folded into its weights; a Linear with any of these keys is a dict
    ("weight", "bias", optionally "input_range")."""
    kind = type(module).__name__
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(module, torch.nn.Module):
        raise ValueError(f"from_torch: {kind} defines its own forward(), which aimc reads by tracing it with torch.fx, but it is not a "
                         "torch.nn.Module. Give the same layers as an nn.Sequential, with the activations as modules (e.g. "
                         "nn.Sequential(model.fc1, nn.ReLU(), model.fc2)), or their weights as [(W, b), ...] to aimc.classifier")
    import torch.fx

    class Tracer(torch.fx.Tracer):
        """torch.fx's tracer, aihwkit's analog layers kept whole (refused by name) rather than traced into."""

        def is_leaf_module(self, m, name: str) -> bool:
            return type(m).__name__ in _ANALOG_LINEAR + _ANALOG_CONV or super().is_leaf_module(m, name)

    training = module.training
    module.eval()  # the forward aimc evaluates: a branch on self.training is traced as inference takes it
    try:
        graph = Tracer().trace(module)
    except Exception as e:
        raise ValueError(f"from_torch: {kind} defines its own forward(), which aimc reads by tracing it with torch.fx, and torch.fx "
                         f"cannot trace it ({type(e).__name__}: {e}), e.g. as it branches on tensor values. Make the forward traceable "
                         "(no control flow on the data), or give the layers as an nn.Sequential") from e
    finally:
        module.train(training)
    mapper = _Mapper(torch, module, fold_batchnorm)
    layers, acts = mapper.run(graph)
    return TracedLayers(layers, module, mapper.final, graph, mapper.analog), _activations(acts)


def _functions(torch) -> dict:
    """The torch functions and operators the mapping reads, by what they do."""
    F = torch.nn.functional
    table = {operator.add: "add", operator.iadd: "add", torch.add: "add", torch.relu: "relu", torch.relu_: "relu", F.relu: "relu",
             F.relu_: "relu", torch.tanh: "tanh", F.tanh: "tanh", F.gelu: "gelu", F.silu: "silu", torch.flatten: "flatten",
             torch.mean: "mean", F.max_pool2d: "MaxPool2d", F.avg_pool2d: "AvgPool2d", F.adaptive_max_pool2d: "AdaptiveMaxPool2d",
             F.adaptive_avg_pool2d: "AdaptiveAvgPool2d", getattr: "getattr", operator.getitem: "getitem", F.softmax: "softmax",
             F.log_softmax: "log_softmax", torch.softmax: "softmax", torch.log_softmax: "log_softmax", F.pad: "pad"}
    table.update(dict.fromkeys((F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, F.feature_alpha_dropout), "dropout"))
    return table


def _qualified(f) -> str:
    """A function as its users write it: operator.add, torch.cat, torch.nn.functional.gelu."""
    module = getattr(f, "__module__", None) or ""
    module = {"_operator": "operator", "torch._C._nn": "torch.nn.functional"}.get(module, module)
    name = getattr(f, "__name__", repr(f))
    return f"{module}.{name}" if module else name


def _arg(node, i: int, name: str, default):
    """A call's argument: positional `i`, or keyword `name`, or `default`."""
    return node.args[i] if len(node.args) > i else node.kwargs.get(name, default)


def _pool_arguments(node, kind: str) -> SimpleNamespace:
    """A functional pooling's arguments as the attributes of the module of `kind`."""
    names = {"MaxPool2d": ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
             "AvgPool2d": ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
             "AdaptiveMaxPool2d": ("output_size", "return_indices"), "AdaptiveAvgPool2d": ("output_size",)}[kind]
    return SimpleNamespace(**dict(zip(names, node.args[1:])), **node.kwargs)


class _Mapper:
    """One traced graph mapped onto layers, node by node in the graph's (the forward's) order."""

    def __init__(self, torch, root, fold_batchnorm: bool):
        self.torch, self.root, self.fold_batchnorm = torch, root, fold_batchnorm
        self.functions = _functions(torch)
        self.layers: list[_Layer] = []
        # fx node -> _Tensor, (_SHAPE, layer), _BATCH, _Side, or None (an unused extra argument)
        self.values = {}
        self.final = None  # the softmax the forward ends with
        self.analog = {}   # aihwkit's analog modules: name -> the layer it became

    def run(self, graph) -> tuple[list, list]:
        for node in graph.nodes:
            self.values[node] = getattr(self, f"_{node.op}")(node)
        if not self.layers:
            raise ValueError(f"from_torch: {type(self.root).__name__}'s forward calls no Linear, Conv2d or Conv1d module")
        for layer in self.layers[:-1]:
            if layer.read_by is None:
                raise ValueError(f"from_torch: the output of {layer.where} is never used; every layer of an aimc network feeds a "
                                 "later one: remove it from the forward")
        return [self._layer_entry(i, layer) for i, layer in enumerate(self.layers)], [layer.act for layer in self.layers]

    def _layer_entry(self, i: int, layer: _Layer):
        """A layer as `classifier` takes it: a Linear's tuple, a dict with its pooling and
        residual keys."""
        keys = {"input": layer.source} if i > 0 and layer.source != i - 1 else {}
        if layer.add is not None:
            keys["add"] = layer.add
        if layer.add_pad is not None:
            stride, before, after = layer.add_pad
            keys.update(add_stride=stride, add_pad_channels=[before, after])
        entry = dict(layer.weights, **layer.pool) if layer.pool else layer.weights
        if keys and not isinstance(entry, dict):
            entry = _linear_dict(entry)
        return dict(entry, **keys) if keys else entry

    # ---- messages ----

    def _where(self, node) -> str:
        """A node as messages name it: the module it calls, or the function and the forward it is in."""
        if node.op == "call_module":
            return f"module {node.target} ({type(self.root.get_submodule(node.target)).__name__})"
        if node.op == "output":
            return f"{type(self.root).__name__}.forward's output"
        what = f"{_qualified(node.target)}()" if node.op == "call_function" else f".{node.target}()"
        stack = node.meta.get("nn_module_stack") or {}
        owner = next(reversed(stack.values()), None)
        if isinstance(owner, tuple) and len(owner) == 2:
            owner = f"{owner[0]} ({getattr(owner[1], '__name__', owner[1])})"
        return f"{what} (node {node.name}) in {owner or type(self.root).__name__ + '.forward'}"

    def _stale(self, node, layer: _Layer, v: _Tensor) -> ValueError:
        return ValueError(f"from_torch: {self._where(node)} uses the output of {layer.where} from before {layer.changes[v.version]}; "
                          "aimc passes a layer's output on once, after its BatchNorm, residual add, activation and pooling: use "
                          "that output everywhere")

    # ---- tensors read and changed ----

    def _tensor(self, arg, node, shortcut: bool = False) -> _Tensor:
        """A tensor argument; one subsampled or zero-padded (`_Tensor.shortcut`) only where the
        node builds or adds a shortcut (`shortcut`)."""
        v = self.values.get(arg) if isinstance(arg, self.torch.fx.Node) else None
        if not isinstance(v, _Tensor):
            raise ValueError(f"from_torch: {self._where(node)} takes {arg!r} where aimc expects a tensor, a layer's output. {_MAPPED}")
        if v.shortcut is not None and not shortcut:
            raise ValueError(f"from_torch: {self._where(node)} takes the output of {self.layers[v.layer].where} subsampled or "
                             "zero-padded; aimc maps those only as the shortcut a residual addition adds (He et al.'s option A, "
                             "out + F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, p, p)))")
        return v

    def _input(self, node) -> _Tensor:
        """The tensor a call takes first: its first argument, or `input` (torch's name for it)."""
        return self._tensor(node.args[0] if node.args else node.kwargs.get("input"), node)

    def _read(self, v: _Tensor, node, reader: str) -> None:
        """A layer's output read as it is final: nothing may change it after (see `_changing`)."""
        if v.layer is None:
            return
        layer = self.layers[v.layer]
        if v.version != layer.version:
            raise self._stale(node, layer, v)
        if layer.read_by is None:
            layer.read_by = reader

    def _changing(self, node, where: str, v: _Tensor | None = None) -> tuple[_Layer, _Tensor]:
        """The layer whose output `v` (default: the node's input) is, before the node
        (`where`) changes it: refused for the network's input, an output already read, or one
        read before a change."""
        v = self._input(node) if v is None else v
        if v.layer is None:
            raise ValueError(f"from_torch: {where} applies to the network's input; aimc applies it to a Linear or convolution "
                             "layer's output (preprocess x instead, or begin the network with a layer)")
        layer = self.layers[v.layer]
        if v.version != layer.version:
            raise self._stale(node, layer, v)
        if layer.read_by is not None:
            raise ValueError(f"from_torch: {where} changes the output of {layer.where} after {layer.read_by} read it; aimc passes "
                             "a layer's output on once, after its BatchNorm, residual add, activation and pooling: apply them "
                             "before any other use")
        return layer, v

    def _changed(self, layer: _Layer, v: _Tensor, where: str, flat: bool | None = None) -> _Tensor:
        """The layer's output after the node `where` changed it (a new version)."""
        layer.changes.append(where)
        return _Tensor(v.layer, layer.version, v.flat if flat is None else flat)

    # ---- nodes ----

    def _placeholder(self, node):
        if self.values:  # an argument after the input (the graph begins with its arguments)
            if not node.users:
                return None  # left at its default and never used
            raise ValueError(f"from_torch: {type(self.root).__name__}.forward takes {node.target} beside its input; aimc feeds a "
                             "network one tensor, the rows of x")
        return _Tensor(None)

    def _get_attr(self, node):
        raise ValueError(f"from_torch: {type(self.root).__name__}'s forward uses the tensor {node.target} directly; aimc reads "
                         "weights from Linear, Conv2d, Conv1d and BatchNorm modules only. " + _MAPPED)

    def _output(self, node) -> None:
        result = node.args[0]
        v = self.values.get(result) if isinstance(result, self.torch.fx.Node) else None
        name = type(self.root).__name__
        if not isinstance(v, _Tensor) or v.layer is None:
            raise ValueError(f"from_torch: {name}.forward returns {'its input' if isinstance(v, _Tensor) else type(result).__name__}; "
                             "aimc reads one tensor, the logits of the last layer")
        if v.layer != len(self.layers) - 1:
            raise ValueError(f"from_torch: {name}.forward returns the output of {self.layers[v.layer].where}, but "
                             f"{self.layers[-1].where} is computed after it; aimc's network output is its last layer's")
        self._read(v, node, self._where(node))

    def _call_module(self, node):
        m = self.root.get_submodule(node.target)
        kind, where = type(m).__name__, self._where(node)
        if kind in ("Linear", "Conv2d", "Conv1d"):
            return self._layer(node, m, kind, where)
        if kind in ("BatchNorm1d", "BatchNorm2d"):
            return self._batchnorm(node, m, where)
        if kind in ("ReLU", "GELU", "Tanh", "SiLU"):
            return self._activate(node, "silu" if kind == "SiLU" else _activation_name(m, where), where)
        if kind in _POOLS:
            return self._pool(node, kind, m, where)
        if kind == "Flatten":
            return self._flatten(node, getattr(m, "start_dim", 1), getattr(m, "end_dim", -1), where)
        if kind in _SKIPPED:
            return self._input(node)
        if kind in ("Softmax", "LogSoftmax"):
            return self._softmax(node, "softmax" if kind == "Softmax" else "log_softmax", getattr(m, "dim", None), where)
        if kind in _ANALOG_LINEAR + _ANALOG_CONV:
            self.analog[node.target] = len(self.layers)
            return self._layer(node, m, "Linear" if kind in _ANALOG_LINEAR else "Conv1d" if "Conv1d" in kind else "Conv2d", where, kind)
        raise ValueError(f"from_torch: {where} is not a module aimc maps. {_MAPPED}; fold or remove the others")

    def _call_method(self, node):
        return self._call(node, _METHODS.get(node.target))

    def _call_function(self, node):
        return self._call(node, self.functions.get(node.target))

    def _call(self, node, what: str | None):
        where = self._where(node)
        if what is None:
            raise ValueError(f"from_torch: {where} is not an operation aimc maps (multiplications, concatenations and other "
                             f"functions have no counterpart in its network). {_MAPPED}; compute the rest outside the model")
        if what == "add":
            return self._add(node, where)
        if what == "pad":
            return self._zero_pad(node, where)
        if what == "getitem" and isinstance(node.args[0], self.torch.fx.Node) and isinstance(self.values.get(node.args[0]), _Tensor):
            return self._subsample(node, where)
        if what in ("relu", "tanh", "silu"):
            return self._activate(node, what, where)
        if what == "gelu":
            return self._activate(node, "gelu" if _arg(node, 1, "approximate", "none") == "tanh" else "gelu_exact", where)
        if what == "flatten":
            return self._flatten(node, _arg(node, 1, "start_dim", 0), _arg(node, 2, "end_dim", -1), where)
        if what == "view":
            return self._view(node, where)
        if what == "mean":
            return self._mean(node, where)
        if what in ("softmax", "log_softmax"):
            return self._softmax(node, what, _arg(node, 1, "dim", None), where)
        if what == "dropout":
            return self._input(node)
        if what in ("size", "getattr", "getitem"):
            return self._size(node, what, where)
        args = _pool_arguments(node, what)
        sides = {k: self.values.get(v) for k, v in vars(args).items() if isinstance(v, self.torch.fx.Node)}
        if sides:
            return self._pool_over_map(node, what, args, sides, where)
        return self._pool(node, what, args, where)

    # ---- what nodes do ----

    def _layer(self, node, m, kind: str, where: str, analog: str | None = None) -> _Tensor:
        """A Linear, Conv2d or Conv1d module (`kind`; `analog`, the class name of one of aihwkit's
        analog layers, read by its logical weights and its tiles' input ranges)."""
        v = self._input(node)
        if v.layer is None:
            if self.layers:
                raise ValueError(f"from_torch: {where} reads the network's input, as {self.layers[0].where} does; aimc feeds the "
                                 "input to the first layer only (a shortcut from the input needs a layer first, e.g. a stem convolution)")
            if kind != "Linear" and v.flat:
                raise ValueError(f"from_torch: {where} reads the flattened input; a {kind} reads images")
        else:
            prev = self.layers[v.layer]
            if kind != "Linear" and (prev.kind != kind or v.flat):
                raise ValueError(f"from_torch: {where} reads the {'flattened ' if v.flat else ''}output of {prev.where}; a {kind} "
                                 f"reads the maps of a {kind} (aimc maps a network of one kind of convolution)")
            if kind == "Linear" and prev.kind != "Linear" and not v.flat:
                raise ValueError(f"from_torch: {where} reads the maps of {prev.where} unflattened; flatten them first "
                                 "(nn.Flatten() or torch.flatten(x, 1))")
        self._read(v, node, where)
        if analog is not None:
            weights = _analog_layer(m, node.target, analog)
        elif kind == "Linear":
            w, b = _linear(m, where)
            r = _range(m)
            weights = (w, b) if r is None else (w, b, r)
        else:
            weights = _conv2d(m, node.target) if kind == "Conv2d" else _conv1d(m, node.target)
            if _range(m) is not None:
                weights["input_range"] = _range(m)
        self.layers.append(_Layer(where, kind, weights, v.layer))
        return _Tensor(len(self.layers) - 1)

    def _batchnorm(self, node, m, where: str) -> _Tensor:
        layer, v = self._changing(node, where)
        if layer.add is not None or layer.act != "none" or layer.pool is not None or v.flat:
            raise ValueError(f"from_torch: {where} normalises the output of {layer.where} after its residual add, activation, "
                             "pooling or flattening; aimc applies a BatchNorm to the MVM + bias of the layer right before it, "
                             "before those: put it first")
        layer.weights = _normalised(layer.weights, m, where, layer.where, self.fold_batchnorm)
        return self._changed(layer, v, where)

    def _activate(self, node, name: str, where: str) -> _Tensor:
        layer, v = self._changing(node, where)
        if layer.act != "none" or layer.pool is not None:
            raise ValueError(f"from_torch: {where} follows the {'pooling' if layer.pool else layer.act} of {layer.where}; aimc applies "
                             "one activation to a layer's output (after its residual add), before its pooling")
        layer.act = name
        return self._changed(layer, v, where)

    def _pool(self, node, kind: str, m, where: str) -> _Tensor:
        layer, v = self._changing(node, where)
        one_d = kind.endswith("1d")
        if layer.kind != ("Conv1d" if one_d else "Conv2d") or v.flat or layer.pool is not None:
            raise ValueError(f"from_torch: {where} pools the {'flattened ' if v.flat else ''}output of {layer.where}; aimc pools a "
                             f"Conv{'1' if one_d else '2'}d's maps once, digitally, after its activation")
        if getattr(m, "return_indices", False):
            raise ValueError(f"from_torch: {where} returns the pooling's indices; aimc pools values only (return_indices=False)")
        if kind.startswith("Adaptive"):
            layer.pool = _adaptive_pool2d(m, where, kind)
        else:
            layer.pool = _pool1d(m, where, kind) if one_d else _pool2d(m, where, kind)
        return self._changed(layer, v, where)

    def _pool_over_map(self, node, kind: str, args, sides: dict, where: str) -> _Tensor:
        """F.avg_pool2d(x, x.size()[3]) (or max): a window of the pooled maps' side, its stride
        the window, no padding: on a square map the global pooling. `classifier` resolves the
        side once it knows the images' shape ("pool_side": 2 the height, 3 the width)."""
        v = self._input(node)
        side = sides.get("kernel_size")
        if (kind not in ("MaxPool2d", "AvgPool2d") or set(sides) != {"kernel_size"} or not isinstance(side, _Side)
                or side.layer != v.layer or getattr(args, "stride", None) not in (None, (), [])
                or getattr(args, "padding", 0) not in (0, (0, 0), [0, 0]) or getattr(args, "ceil_mode", False)):
            raise ValueError(f"from_torch: {where} pools with a window read off a tensor's shape; aimc maps that only as a "
                             "window of the pooled maps' own side with the default stride and no padding, "
                             "F.avg_pool2d(x, x.size()[3])")
        pool = SimpleNamespace(**{k: val for k, val in vars(args).items() if k != "kernel_size"}, kernel_size=1)
        out = self._pool(node, kind, pool, where)
        layer = self.layers[v.layer]
        del layer.pool["pool_size"], layer.pool["pool_stride"]
        layer.pool["pool_side"] = side.dim
        return out

    def _mean(self, node, where: str) -> _Tensor:
        """x.mean((2, 3)) over a Conv2d's maps (x.mean(2) over a Conv1d's): its global average pooling,
        flattened unless keepdim."""
        layer, v = self._changing(node, where)
        dims, keep = _arg(node, 1, "dim", None), _arg(node, 2, "keepdim", False)
        dims = tuple(dims) if isinstance(dims, (tuple, list)) else (dims,)
        spatial = (2,) if layer.kind == "Conv1d" else (2, 3)
        rank = len(spatial) + 2
        if (layer.kind == "Linear" or v.flat or layer.pool is not None or not all(isinstance(d, int) for d in dims)
                or sorted(d % rank for d in dims) != list(spatial) or set(node.kwargs) - {"dim", "keepdim"}):
            raise ValueError(f"from_torch: {where} is a mean aimc does not map; it maps the mean over a convolution's maps, "
                             "x.mean((2, 3)) (x.mean(2) for a Conv1d), as its global average pooling")
        layer.pool = {"pool": "avg", "pool_output": [1, 1]}
        return self._changed(layer, v, where, flat=v.flat or not keep)

    def _add(self, node, where: str) -> _Tensor:
        """a + b of two layers' outputs: the later layer's output, fresh, gets "add" = the earlier."""
        if len(node.args) != 2 or any(k != "alpha" for k in node.kwargs) or node.kwargs.get("alpha", 1) != 1:
            raise ValueError(f"from_torch: {where} is an addition aimc does not map; it adds two tensors, a + b (alpha 1)")
        values = [self.values.get(a) if isinstance(a, self.torch.fx.Node) else None for a in node.args]
        if not all(isinstance(v, _Tensor) for v in values):
            raise ValueError(f"from_torch: {where} adds a constant; aimc adds one layer's output to another's (a residual connection)")
        if any(v.layer is None for v in values):
            raise ValueError(f"from_torch: {where} adds the network's input; aimc adds layers' outputs only (begin the network with "
                             "a layer, e.g. a stem convolution, before the first shortcut)")
        earlier, later = sorted(values, key=lambda v: v.layer)
        if earlier.layer == later.layer:
            raise ValueError(f"from_torch: {where} adds the output of {self.layers[later.layer].where} to itself; aimc adds two layers' outputs")
        if later.shortcut is not None:
            raise ValueError(f"from_torch: {where} adds the subsampled or zero-padded output of {self.layers[later.layer].where} to "
                             f"the earlier {self.layers[earlier.layer].where}'s; aimc adds a zero-padding shortcut of the earlier "
                             "output into the later layer's own")
        layer, _ = self._changing(node, where, later)
        source = self.layers[earlier.layer]
        if (layer.kind == "Linear") != (source.kind == "Linear") or (layer.kind != "Linear" and (earlier.flat or later.flat)):
            raise ValueError(f"from_torch: {where} adds the output of {source.where} to that of {layer.where}; aimc adds a "
                             "convolution's maps to a convolution's, a Linear's outputs to a Linear's")
        if layer.add is not None or layer.act != "none" or layer.pool is not None:
            raise ValueError(f"from_torch: {where} adds the output of {source.where} to that of {layer.where} after its "
                             f"{'residual add' if layer.add is not None else 'activation' if layer.act != 'none' else 'pooling'}; "
                             "aimc adds into the later layer's own output (MVM + bias, then its BatchNorm) before its activation: "
                             "apply that branch's activation after the sum")
        stride, before, after = earlier.shortcut or (1, 0, 0)
        if source.outputs + before + after != layer.outputs:
            padded = f" zero-padded by {before} + {after}" if earlier.shortcut else ""
            raise ValueError(f"from_torch: {where} adds the output of {source.where} ({source.outputs} "
                             f"{'channels' if layer.kind != 'Linear' else 'features'}{padded}) to that of {layer.where} ({layer.outputs}); "
                             "the shapes must match")
        self._read(earlier, node, where)
        layer.add, layer.add_pad = earlier.layer, earlier.shortcut
        return self._changed(layer, later, where)

    def _shortcut_source(self, node, where: str) -> _Tensor:
        """The tensor a subsampling or zero padding takes: a Conv2d's maps, read as final."""
        v = self._tensor(node.args[0] if node.args else node.kwargs.get("input"), node, shortcut=True)
        if v.layer is None or v.flat or self.layers[v.layer].kind != "Conv2d":
            what = "the network's input" if v.layer is None else f"the {'flattened ' if v.flat else ''}output of {self.layers[v.layer].where}"
            raise ValueError(f"from_torch: {where} subsamples or pads {what}; aimc maps those only as a zero-padding shortcut "
                             "of a Conv2d's maps (He et al.'s option A, F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, p, p)))")
        self._read(v, node, where)
        return v

    def _subsample(self, node, where: str) -> _Tensor:
        """x[:, :, ::s, ::s] of a Conv2d's maps: a zero-padding shortcut's subsampling."""
        v = self._shortcut_source(node, where)
        index = node.args[1]
        index = tuple(index) if isinstance(index, (tuple, list)) else (index,)
        if index[:1] == (Ellipsis,):
            index = (slice(None), slice(None)) + index[1:]
        full = slice(None)
        steps = [i.step or 1 for i in index[2:] if isinstance(i, slice) and i.start in (None, 0) and i.stop is None]
        if (len(index) != 4 or index[:2] != (full, full) or len(steps) != 2 or steps[0] != steps[1] or steps[0] < 1
                or (v.shortcut or (1,))[0] != 1):
            raise ValueError(f"from_torch: {where} indexes the maps of {self.layers[v.layer].where} as {index!r}; aimc maps an "
                             "index only as a zero-padding shortcut's subsampling, x[:, :, ::s, ::s] (the same step down and across)")
        _, before, after = v.shortcut or (1, 0, 0)
        return dataclasses.replace(v, shortcut=(steps[0], before, after))

    def _zero_pad(self, node, where: str) -> _Tensor:
        """F.pad(x, (0, 0, 0, 0, before, after)) of a Conv2d's maps: a zero-padding shortcut's channels."""
        v = self._shortcut_source(node, where)
        pad = _arg(node, 1, "pad", None)
        mode, value = _arg(node, 2, "mode", "constant"), _arg(node, 3, "value", None)
        pad = tuple(pad) if isinstance(pad, (tuple, list)) else ()
        if (len(pad) != 6 or any(p != 0 for p in pad[:4]) or not all(isinstance(p, int) and p >= 0 for p in pad[4:])
                or mode != "constant" or value not in (None, 0, 0.0) or (v.shortcut or (1, 0, 0))[1:] != (0, 0)):
            raise ValueError(f"from_torch: {where} pads the maps of {self.layers[v.layer].where} with {pad!r} (mode {mode!r}, value "
                             f"{value!r}); aimc maps a padding only as a zero-padding shortcut's zero channels, F.pad(x, (0, 0, 0, 0, "
                             "before, after)), once")
        stride = (v.shortcut or (1,))[0]
        return dataclasses.replace(v, shortcut=(stride, pad[4], pad[5]))

    def _flatten(self, node, start, end, where: str) -> _Tensor:
        v = self._input(node)
        if start != 1 or end != -1:
            raise ValueError(f"from_torch: {where} flattens dimensions {start} to {end}; aimc flattens each row's features, "
                             "start_dim=1 and end_dim=-1 (as nn.Flatten() does)")
        return dataclasses.replace(v, flat=True)

    def _view(self, node, where: str) -> _Tensor:
        """x.view(x.size(0), -1) or x.reshape(x.shape[0], -1): the flatten before a Linear."""
        v = self._input(node)
        shape = node.args[1:]
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        shape = tuple(self.values.get(a) if isinstance(a, self.torch.fx.Node) else a for a in shape)
        if shape != (_BATCH, -1) or node.kwargs:
            raise ValueError(f"from_torch: {where} reshapes to {shape}; aimc maps a view or reshape only as the flatten before a "
                             "Linear, x.view(x.size(0), -1)")
        return dataclasses.replace(v, flat=True)

    def _size(self, node, what: str, where: str):
        """x.size(), x.shape, x.size(0), x.shape[0]: the sizes `_view` reads."""
        base, arg = node.args[0], _arg(node, 1, "dim", None)
        value = self.values.get(base) if isinstance(base, self.torch.fx.Node) else None
        shape = isinstance(value, tuple) and value[:1] == (_SHAPE,)
        if what == "getitem" and shape and arg == 0:
            return _BATCH
        if what == "getitem" and shape and arg in (2, 3, -2, -1):
            return _Side(value[1], arg % 4)
        if what == "size" and isinstance(value, _Tensor) and arg in (2, 3, -2, -1):
            return _Side(value.layer, arg % 4)
        if what == "getattr" and isinstance(value, _Tensor) and arg == "shape":
            return (_SHAPE, value.layer)
        if what == "size" and isinstance(value, _Tensor) and arg in (None, 0):
            return (_SHAPE, value.layer) if arg is None else _BATCH
        raise ValueError(f"from_torch: {where} reads a tensor's attribute or element aimc does not map; it reads the batch size "
                         "(x.size(0), x.shape[0]) to flatten, x.view(x.size(0), -1), and a map's side (x.size()[3]) as a pooling's "
                         "window over the whole map")

    def _softmax(self, node, kind: str, dim, where: str) -> _Tensor:
        """A Softmax or LogSoftmax (`kind`) over the classes as the forward's last step: the logits'
        monotone map, whose argmax (the class a row is given) is theirs."""
        v = self._input(node)
        if dim not in (1, -1) or [u.op for u in node.users] != ["output"] or v.layer is None:
            raise ValueError(f"from_torch: {where}: aimc maps a Softmax or LogSoftmax only over the classes (dim=1 or -1), as the "
                             "forward's last step (the accuracy reads the logits' argmax, which it keeps); remove it")
        self.final = kind
        return v


def check_traced(traced: TracedLayers, layers: list, activation, x: np.ndarray, input_shape) -> None:
    """Refuses layers read from a traced module that do not compute what the module does: the
    module (`traced.module`) in eval mode and `_numpy_forward` of the layers (pooling resolved),
    then the softmax the forward ends with, on the first rows of `x` (`classifier`'s [n,
    features] rows of images of `input_shape`), as the engine reads them (float32), must give
    the same outputs to 1e-4 of the largest. A forward can do what tracing does not show (a
    tensor changed in place after another use of it). aihwkit's analog modules compute with their
    tiles' noise and converters, so with them the module runs as its traced graph with each one
    replaced by the ideal layer it is (read from the module again: its logical weights, its inputs
    clipped to its ranges; `_mvm`), which checks the layers' weights and everything between them
    (shortcuts, BatchNorms, activations, pooling) as the module computes it."""
    module = traced.module
    torch = sys.modules["torch"]
    kind = type(module).__name__
    rows = x[:_CHECK_ROWS].astype(np.float32)
    shape = tuple(int(v) for v in input_shape) if input_shape is not None else rows.shape[1:]
    if any(isinstance(layer, dict) and layer.get("conv1d") for layer in layers):
        shape = (shape[0], shape[2])  # the module takes [n, C, L] signals
    inputs = torch.from_numpy(rows.reshape(len(rows), *shape))
    param = next(module.parameters(), None)
    if param is not None:
        inputs = inputs.to(param.device, param.dtype)
    training = module.training
    module.eval()
    try:
        with torch.no_grad():
            want = module(inputs) if not traced.analog else _ideal_analog(torch, traced, inputs)
    except Exception as e:
        raise ValueError(f"from_torch: {kind} does not run on the first rows of x as {list(inputs.shape)} ({type(e).__name__}: {e}); "
                         "give x as the module takes it (or input_shape)") from e
    finally:
        module.train(training)
    want = want.detach().double().cpu().numpy().reshape(len(rows), -1)
    got = _numpy_forward(layers, activation, rows.astype(np.float64), input_shape).reshape(len(rows), -1)
    if traced.final is not None:
        shifted = got - got.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        got = log_p if traced.final == "log_softmax" else np.exp(log_p)
    if got.shape != want.shape:
        raise ValueError(f"from_torch: the layers read from {kind}'s traced forward give {got.shape[1]} outputs per row, the module "
                         f"{want.shape[1]}; give the network as an nn.Sequential")
    scale, diff = float(np.abs(want).max()), float(np.abs(got - want).max())
    if not diff <= _CHECK_TOLERANCE * max(scale, 1e-6):
        raise ValueError(f"from_torch: the layers read from {kind}'s traced forward compute other outputs than the module on the "
                         f"first {len(rows)} rows of x (with activation {activation!r}: a difference of {diff:.3g} in outputs up to "
                         f"{scale:.3g}), so aimc would "
                         "evaluate another network: the forward does something its trace does not show (a tensor changed in place "
                         "after another use of it, a parameter changed in forward); give the network as an nn.Sequential, or "
                         "make those steps explicit")


def _analog_layer(m, name: str, kind: str):
    """One of aihwkit's analog modules (`kind`, its class name) as a layer: its logical weights
    (`get_weights()`) and its tiles' input ranges; a Linear's tuple or a convolution's dict."""
    w, b = _analog_weights(m, name, kind)
    r = _analog_ranges(m, name, kind)
    r = None if r is None else np.asarray(r, dtype=np.float32)
    if kind in _ANALOG_LINEAR:
        return (w.astype(np.float32), b.astype(np.float32)) + (() if r is None else (r,))
    one_d = "Conv1d" in kind
    shape = _ConvShape(m, w, b, 1 if one_d else 2)
    layer = _conv1d(shape, name) if one_d else _conv2d(shape, name)
    if r is not None:
        layer["input_range"] = r
    return layer


def _ideal_analog(torch, traced: TracedLayers, inputs):
    """The traced module's forward on `inputs` with each of aihwkit's analog modules computed as
    the ideal layer it is (`_mvm` of the module read again by `_analog_layer`, in float64)."""

    class Ideal(torch.fx.Interpreter):
        def call_module(self, target, args, kwargs):
            if target not in traced.analog:
                return super().call_module(target, args, kwargs)
            m = traced.module.get_submodule(target)
            layer = _analog_layer(m, target, type(m).__name__)
            x = args[0].detach().double().cpu().numpy()
            conv1d = _is_conv(layer) and layer.get("conv1d")
            y = _mvm(layer, x[:, :, None, :] if conv1d else x, traced.analog[target])
            return torch.from_numpy(y[:, :, 0, :] if conv1d else y).to(args[0].dtype)

    return Ideal(torch.fx.GraphModule(traced.module, traced.graph)).run(inputs)


def _mvm(layer, h: np.ndarray, i: int) -> np.ndarray:
    """One layer's MVM + bias on its input `h` (maps [n, C, H, W] for a convolution, else
    [n, features] rows), inputs clipped to its ranges."""
    if _is_conv(layer):
        return _convolution(h, layer, i)
    w, b = (layer["weight"], layer["bias"]) if isinstance(layer, dict) else layer[:2]
    h = h.reshape(len(h), -1)
    if h.shape[1] != np.shape(w)[1]:
        raise ValueError(f"layers[{i}] takes {np.shape(w)[1]} inputs but reads {h.shape[1]} features")
    return _clipped(h, _ranges(layer)) @ np.asarray(w, np.float64).T + np.asarray(b, np.float64)


def _numpy_forward(layers: list, acts, x: np.ndarray, input_shape) -> np.ndarray:
    """The network `classifier` runs, in NumPy float64, on `x` [n, features] (rows of images of
    `input_shape` (C, H, W) for convolutions): each layer reads the previous layer's output (or
    its "input"'s), computes its MVM + bias (a Linear on the flattened (c, h, w) features, a
    convolution on each output pixel's patch with its stride and zero padding; inputs clipped to
    its input ranges, one per even slice), applies its digital "batchnorm" to each output
    (channel), adds the output of its "add" layer (through its zero-padding shortcut: "add_stride",
    "add_pad_channels"), applies its activation, then its pooling.
    `acts`: one name (after every layer but the last) or one per layer. Returns the last layer's
    output, [n, outputs]."""
    acts = [acts] * (len(layers) - 1) + ["none"] if isinstance(acts, str) else list(acts)
    if len(acts) != len(layers):
        raise ValueError(f"{len(acts)} activations for {len(layers)} layers; give one per layer")
    n, outs = len(x), []
    for i, (layer, act) in enumerate(zip(layers, acts)):
        h = (x if input_shape is None else x.reshape(n, *input_shape)) if i == 0 else outs[_source(layer, i)]
        y = _mvm(layer, h, i)
        if isinstance(layer, dict) and "batchnorm" in layer:
            y = _normalised_outputs(y, layer["batchnorm"])
        if isinstance(layer, dict) and "add" in layer:
            j = layer["add"]
            added = outs[j]
            if "add_stride" in layer or "add_pad_channels" in layer:
                # He et al.'s zero-padding shortcut: every s-th row and column, zero channels around.
                s = int(layer.get("add_stride", 1))
                before, after = (int(c) for c in layer.get("add_pad_channels", (0, 0)))
                added = np.pad(added[:, :, ::s, ::s], ((0, 0), (before, after), (0, 0), (0, 0)))
            if added.shape != y.shape:
                raise ValueError(f"layers[{i}] adds the output of layers[{j}], of shape {added.shape[1:]}, to its own, of shape "
                                 f"{y.shape[1:]}; the shapes must match")
            y = y + added
        if act not in _ACTIVATIONS:
            raise ValueError(f"layers[{i}]: activation {act!r}; give one of {', '.join(map(repr, _ACTIVATIONS))}")
        y = _ACTIVATIONS[act](y)
        if isinstance(layer, dict) and "pool" in layer:
            y = _pooled(y, layer)
        outs.append(y)
    return outs[-1].reshape(n, -1)


_ACTIVATIONS = {
    "none": lambda v: v,
    "relu": lambda v: np.maximum(v, 0.0),
    "tanh": np.tanh,
    "gelu": lambda v: 0.5 * v * (1 + np.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3))),
    "gelu_exact": lambda v: 0.5 * v * (1 + np.vectorize(math.erf, otypes=[np.float64])(v / math.sqrt(2))),
    "silu": lambda v: v / (1 + np.exp(-v)),
}


def _normalised_outputs(y: np.ndarray, bn: dict) -> np.ndarray:
    """A layer's outputs [n, outputs] (or maps [n, channels, h, w]) through its BatchNorm, per
    output (channel): scale * y + shift, as the engine applies it."""
    scale, shift = _affine(bn)
    shape = (-1,) + (1,) * (y.ndim - 2)
    return y * scale.reshape(shape) + shift.reshape(shape)


def _two(v) -> tuple[int, int]:
    """A side or [height, width] as (height, width)."""
    return tuple(int(a) for a in np.broadcast_to(v, 2))


def _ranges(layer):
    """A layer's input ranges (one per input tile), or None."""
    if isinstance(layer, dict):
        return layer.get("input_range")
    return layer[2] if len(layer) == 3 else None


def _clipped(v: np.ndarray, ranges) -> np.ndarray:
    """`v`'s last axis clipped to its input ranges, one per even slice (768 inputs, 2 ranges: 384 each)."""
    if ranges is None:
        return v
    r = np.abs(np.atleast_1d(np.asarray(ranges, np.float64)))
    base, extra = divmod(v.shape[-1], len(r))
    bounds = np.repeat(r, [base + 1] * extra + [base] * (len(r) - extra))
    return np.clip(v, -bounds, bounds)


def _convolution(h: np.ndarray, layer: dict, i: int) -> np.ndarray:
    """A convolution of maps [n, C, H, W] with zero padding and stride, as one MVM per output
    pixel's patch (its (c, i, j) columns clipped to the input ranges): [n, out, oh, ow]."""
    w = np.asarray(layer["weight"], np.float64)
    o, c, kh, kw = w.shape
    if h.ndim != 4:
        raise ValueError(f"layers[{i}] is a convolution but reads {h.shape[1]} features; give x as [n, C, H, W] images "
                         "or input_shape=(C, H, W)" if i == 0 else f"layers[{i}] is a convolution but reads a Linear's outputs")
    if h.shape[1] != c:
        raise ValueError(f"layers[{i}] takes {c} channels but reads {h.shape[1]}")
    (sh, sw), (ph, pw) = _two(layer.get("stride", 1)), _two(layer.get("padding", 0))
    padded = np.pad(h, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    windows = sliding_window_view(padded, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]  # [n, c, oh, ow, kh, kw]
    n, _, oh, ow = windows.shape[:4]
    patches = windows.transpose(0, 2, 3, 1, 4, 5).reshape(n, oh, ow, c * kh * kw)
    y = _clipped(patches, _ranges(layer)) @ w.reshape(o, -1).T + np.asarray(layer["bias"], np.float64)
    return y.transpose(0, 3, 1, 2)


def _pooled(y: np.ndarray, layer: dict) -> np.ndarray:
    """Max or average pooling of maps [n, C, H, W] in floor mode, with PyTorch's implicit
    padding: −∞ for max pooling; zeros for average pooling, counted in the divisor unless
    "pool_count_include_pad" is False."""
    kh, kw = _two(layer.get("pool_size", 2))
    sh, sw = _two(layer.get("pool_stride", [kh, kw]))
    ph, pw = _two(layer.get("pool_padding", 0))
    is_max = layer["pool"] == "max"
    pad = ((0, 0), (0, 0), (ph, ph), (pw, pw))
    inside = np.pad(np.ones(y.shape[2:]), pad[2:])
    y = np.pad(y, pad, constant_values=-np.inf if is_max else 0.0)
    windows = sliding_window_view(y, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    if is_max:
        return windows.max(axis=(-2, -1))
    if layer.get("pool_count_include_pad", True):
        return windows.mean(axis=(-2, -1))
    counts = sliding_window_view(inside, (kh, kw))[::sh, ::sw].sum(axis=(-2, -1))
    return windows.sum(axis=(-2, -1)) / counts
