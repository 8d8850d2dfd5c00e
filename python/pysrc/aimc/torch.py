"""Hardware-aware fine-tuning of a PyTorch model against aimc's own noise models.

    import aimc.torch as at
    at.prepare(model, device="pcm", t="10y", noise_scale=3.0, output_noise=0.12, dac_bits=7, clip_sigma=2.5)
    for x, y in loader:                  # an ordinary training loop: model.train(), loss, step
        loss = F.cross_entropy(model(x), y); opt.zero_grad(); loss.backward(); opt.step()
    at.unprepare(model)                  # plain Linear/Conv2d again, weights clipped
    layers, act = aimc.from_torch(model) # and evaluate it with aimc.classifier(...)

`prepare` wraps the forward pass of every `nn.Linear`, `nn.Conv2d` and `nn.Conv1d` (the layers aimc
maps onto crossbars), of every Hugging Face `Conv1D` (GPT-2's linear layers, W stored [in, out]: noise
and clipping act on W as a crossbar holds it, Wᵀ), and of every `nn.MultiheadAttention`
(`nn.TransformerEncoderLayer`'s self-attention): its Q, K and V as three crossbar matrices (views
of its `in_proj_weight`, as aimc's transformer maps them) and its out_proj, the scores digital.
In training mode each forward pass:

- draws a noisy copy of the weight with aimc's own code (`aimc::train::hwa`, the trainers'
  `[training]` section, through the Rust extension, in blocks of rows on every core): the device model's programming noise on
  the differential pair (max|W| at g_max), optionally drifted to `t` with the drift-exponent
  spread and read noise and compensated by one global factor; or additive Gaussian noise of
  `weight_noise_std` x max|W| with `device="gaussian"`. The gradient flows to the clean weight
  (the noise is a constant of the step);
- splits a Linear's (or Conv1D's) input into tiles of at most `max_in` rows (the evaluation's
  `[tile] max_in`, default 512), evenly as aimc maps the layer onto crossbars; each slice below is
  scaled by its own max|x| and the slices' outputs add digitally. A Conv2d (a Conv1d as its
  C x 1 x L image) is unfolded into one
  vector per output pixel (its C_in·kh·kw patch, aihwkit's AnalogConv2d mapping and aimc's
  `im2col`), and each patch goes through the tiles as a Linear layer's input does: its own
  max|x| per tile, bound management per patch (one group, no dilation and zero padding, as
  `aimc.from_torch` maps it; the unfolded patches take kh·kw times the input's memory, as in
  aihwkit);
- quantises each input slice to `dac_bits` over its max|x| with a straight-through gradient;
- adds output noise of `output_noise` x max|x| per output (aihwkit's out_noise with abs-max noise
  management, aimc's `[periphery] out_noise`);
- adds per-read weight noise of `w_noise` (aimc's and aihwkit's `w_noise`, `w_noise_type`
  "additive_constant" or "pcm_read"): sigma = w_noise x sqrt(sum x~^2) or sqrt(sum |W| x~^2) per
  tile output, x~ the DAC'd slice over its max, in the output's unit; and IR drop of `ir_drop`
  (aihwkit's formula, as aimc's evaluation computes it), deterministic, straight-through;
- with `weight_scaling_omega` > 0 (and `weight_scaling_columnwise`) takes each tile's (or
  column's) outputs in units of max|x| x max|W| / omega, as aimc maps the weights, for the output
  noise and the ADC;
- passes each output through the ADC, `adc_bits` over +-`out_bound` in units of max|x| (aimc's
  `out_res_bits` and `out_bound`; aihwkit's out_res and out_bound): the rounding with a
  straight-through gradient, the clipping with its own (a clipped output passes no gradient to
  its weights and inputs); the bias adds after it, digitally. With
  `bound_management="iterative"` (aihwkit's default forward, aimc's evaluation default) a tile
  whose outputs saturate is computed again with its input halved, until none does or the last
  reduction is reached;
- clips the weight to +-clip_sigma x std(W), and at most +-clip_value, first (after the previous
  optimiser step);
- with `input_range` learns a range per input tile, as aihwkit's `pre_post.input_range`: each
  slice is clipped to it and divided by it in place of its max|x| (see `prepare`).

In eval mode the layers compute in floating point (their inputs clipped to the ranges, if any).
Draws are reproducible: layer i at step k uses seed (seed, i, k). Torch is imported here only, so
`import aimc` works without it.
"""

from __future__ import annotations

import numpy as np

try:
    import torch
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover - exercised only without torch
    raise ImportError("aimc.torch needs PyTorch (pip install torch); the rest of aimc works without it") from e

from . import to_toml
from ._aimc import perturb_weights, perturb_weights_bytes

__all__ = ["prepare", "unprepare", "is_prepared"]

# The layers `prepare` wraps, by class name: nn.MultiheadAttention's out_proj is a
# NonDynamicallyQuantizableLinear, its stacked Q, K, V projection three `_InProj` views.
_KINDS = ("Linear", "Conv2d", "Conv1d", "Conv1D", "NonDynamicallyQuantizableLinear", "_InProj")

# The keys of `prepare`'s `periphery`, as an experiment file's [periphery] names them.
_PERIPHERY = ("out_noise", "inp_res_bits", "out_res_bits", "out_bound", "weight_scaling_omega", "weight_scaling_columnwise",
              "bound_management", "max_bm_factor", "max_bm_res", "w_noise", "w_noise_type", "ir_drop", "ir_drop_g_ratio")


# The forward settings of an aihwkit configuration that training does not model, at the values
# it does model (the attribute each comes from, for the message).
_UNMODELLED = {
    "noise_management": ("abs_max", "forward.noise_management", "training scales every input by its max|x|; use NoiseManagementType.ABS_MAX"),
    "inp_bound": (1.0, "forward.inp_bound", "training's DAC spans [-max|x|, max|x|]; use 1.0"),
    "inp_noise": (0.0, "forward.inp_noise", "training adds no input noise (the evaluation does); set it to 0.0 for training"),
}


def _from_rpu_config(rpu_config, max_out: int):
    """(device, periphery, max_in, max_out, training, input_range) for `prepare` from an aihwkit
    InferenceRPUConfig; `training` is `aimc.aihwkit.training_from_aihwkit`'s: its weight modifier,
    drop connect and clipping; `input_range` its `pre_post.input_range` (None when not enabled).
    `max_out` is what aihwkit's max_output_size = 0 maps to: the model's largest layer."""
    from .aihwkit import from_aihwkit, input_range_from_aihwkit, training_from_aihwkit

    cfg = from_aihwkit(rpu_config, max_out=max_out)
    p = cfg["periphery"]
    ranges = input_range_from_aihwkit(rpu_config)
    unmodelled = dict(_UNMODELLED)
    if ranges is not None:
        # With input ranges every slice is divided by its range: aihwkit's constant noise
        # management at nm_thres 1 (or 0) divides by nothing more (StandardHWATrainingPreset).
        unmodelled["noise_management"] = ("constant", "forward.noise_management",
                                          "training with input ranges divides every slice by its range alone; use NoiseManagementType.CONSTANT with nm_thres 1")
        if p.get("nm_thres", 1.0) != 1.0:
            raise ValueError(f"prepare: rpu_config.forward.nm_thres = {p['nm_thres']!r}: training with input ranges divides every slice "
                             "by its range alone; use nm_thres = 1 (or 0)")
    elif p.get("noise_management") == "abs_max" and p.get("nm_thres", 0.0) > 0:
        raise ValueError(f"prepare: rpu_config.forward.nm_thres = {p['nm_thres']!r}: training scales every slice by its max|x| without "
                         "saturating it; use nm_thres = 0 (aihwkit's default)")
    bad = [f"rpu_config.{path} = {p.get(key, ok)!r}: {why}" for key, (ok, path, why) in unmodelled.items() if p.get(key, ok) != ok]
    if bad:
        raise ValueError("prepare: " + "; ".join(bad))
    periphery = {k: p[k] for k in _PERIPHERY if k in p}
    tile = cfg.get("tile", {})
    return (cfg["device"], periphery, int(tile.get("max_in", 512)), int(tile.get("max_out", 512)), training_from_aihwkit(rpu_config),
            ranges)


def _training_toml(device, t, noise_scale: float, weight_noise_std: float, pdrop: float = 0.0) -> str:
    if isinstance(device, dict) and "weight_noise" in device:
        # An aihwkit weight modifier's [training] fields (aimc.aihwkit.training_from_aihwkit).
        table = dict(device)
    elif device == "gaussian":
        table = {"weight_noise": "gaussian", "weight_noise_std": float(weight_noise_std)}
    else:
        fields = {}
        if isinstance(device, dict):
            # An experiment's [device] table (or aimc.from_aihwkit(cfg)["device"]): the model by
            # name, every other field set on it as the evaluation sets it.
            fields = dict(device)
            device = fields.pop("model", "pcm")
        table = {"weight_noise": device, "weight_noise_scale": float(noise_scale)}
        if t is not None:
            table["weight_noise_time"] = str(t)
        if fields:
            table["device"] = fields
    if pdrop > 0:
        table["weight_noise_pdrop"] = float(pdrop)
    return to_toml({"training": table})


def prepare(model, device: str = "pcm", t=None, noise_scale: float = 1.0, weight_noise_std: float = 0.0,
            output_noise: float = 0.0, dac_bits: int = 0, clip_sigma: float = 0.0, periphery: dict | None = None,
            seed: int = 0, adc_bits: int = 0, out_bound: float = 0.0, max_in: int = 512, max_out: int = 512,
            clip_value: float = 0.0, w_noise: float = 0.0, w_noise_type: str = "additive_constant",
            ir_drop: float = 0.0, ir_drop_g_ratio: float = 571428.6,
            weight_scaling_omega: float = 0.0, weight_scaling_columnwise: bool = False, rpu_config=None,
            bound_management: str = "none", max_bm_factor: float = 1000.0, max_bm_res: float = 0.25,
            input_range: bool | dict = False):
    """Wraps every nn.Linear and nn.Conv2d of `model` (in place; returns it) so that training
    sees aimc's noise (see the module docstring). `device`: an aimc device model name ("pcm",
    "hermes", "hermes1", "simple", ...) or "gaussian" or "none", or a device table as an
    experiment's [device] holds it (`{"model": "pcm", "g_max": 20.0, "drift_table": {...}}`, or
    `aimc.from_aihwkit(rpu_config)["device"]`: training then sees the aihwkit configuration's noise
    model); `t`: drift to this time ("10y")
    after programming; `noise_scale`: multiplies the device model's noise. `periphery` may give
    `out_noise`, `inp_res_bits`, `out_res_bits`, `out_bound`, `weight_scaling_omega`,
    `weight_scaling_columnwise`, `bound_management`, `max_bm_factor`, `max_bm_res`, `w_noise`,
    `w_noise_type`, `ir_drop` and `ir_drop_g_ratio` as in an
    experiment file's [periphery] (they set the arguments of those names, `output_noise`,
    `dac_bits` and `adc_bits` when those are left at their defaults). `bound_management`:
    "iterative" computes a tile whose outputs saturate the ADC again with its input halved, as
    aimc's evaluation and aihwkit's default forward do, up to the reduction `max_bm_factor` and
    `max_bm_res` allow; "none" (the default) leaves them clipped.
    `max_in`, `max_out`: the crossbar rows and columns of a tile. `rpu_config`: an aihwkit
    `InferenceRPUConfig` (read as `aimc.from_aihwkit` reads it) gives the device, the periphery
    and the tile instead, its bound management included, and what aihwkit applies in training
    only: its weight `modifier` (ADD_NORMAL, MULT_NORMAL, POLY, DISCRETIZE,
    DISCRETIZE_ADD_NORMAL, DROP_CONNECT, with pdrop) as the weight noise in place of the noise
    model's, and its `clip` (LAYER_GAUSSIAN, FIXED_VALUE, AVERAGE_CHANNEL_MAX); a setting training
    does not model (another input bound or noise management, DoReFa
    and the PCM modifiers) is refused with its attribute path. `clip_value`: clip the weights at
    +-clip_value as well. `input_range`: learn an input range per input tile of every layer, as
    aihwkit's `pre_post.input_range` does (True for aihwkit's defaults, or a dict of its
    InputRangeParameter fields `init_value`, `init_from_data`, `init_std_alpha`, `decay`,
    `input_min_percentage`, `gradient_scale`, `gradient_relative`, `learn_input_range`); an
    rpu_config with it enabled (StandardHWATrainingPreset) sets it. Each layer then holds a
    parameter `input_range` (create the optimiser after `prepare`), its inputs are clipped to
    ±range and divided by it instead of by their max|x|, and `aimc.from_torch` and the state dict
    (`PREFIX.input_range`) carry the ranges to the evaluation. Errors name the argument."""
    if rpu_config is not None:
        given = [n for n, v, d in (("device", device, "pcm"), ("periphery", periphery, None), ("output_noise", output_noise, 0.0),
                                   ("dac_bits", dac_bits, 0), ("adc_bits", adc_bits, 0), ("out_bound", out_bound, 0.0),
                                   ("max_in", max_in, 512), ("max_out", max_out, 512),
                                   ("weight_scaling_omega", weight_scaling_omega, 0.0),
                                   ("weight_scaling_columnwise", weight_scaling_columnwise, False),
                                   ("bound_management", bound_management, "none"), ("max_bm_factor", max_bm_factor, 1000.0),
                                   ("max_bm_res", max_bm_res, 0.25), ("w_noise", w_noise, 0.0),
                                   ("w_noise_type", w_noise_type, "additive_constant"), ("ir_drop", ir_drop, 0.0),
                                   ("ir_drop_g_ratio", ir_drop_g_ratio, 571428.6), ("input_range", input_range, False)) if v != d]
        if given:
            raise ValueError(f"prepare: rpu_config gives the device, periphery and tile; remove {', '.join(given)} or rpu_config")
        outs = [m.weight.shape[1 if type(m).__name__ == "Conv1D" else 0] for m in model.modules() if type(m).__name__ in _KINDS]
        device, periphery, max_in, max_out, training, input_range = _from_rpu_config(rpu_config, max(outs, default=1))
        input_range = False if input_range is None else input_range
        clipping = training["clip"]
        if clipping != {"sigma": 0.0, "fixed": 0.0, "channel_max": False} and (clip_sigma or clip_value):
            raise ValueError("prepare: rpu_config.clip gives the clipping; remove clip_sigma and clip_value or set rpu_config.clip.type to NONE")
        clip_sigma = clipping["sigma"] or clip_sigma
        clip_value = clipping["fixed"] or clip_value
        channel_max = clipping["channel_max"]
        pdrop = training["pdrop"]
        if training["weight_noise"] is not None:
            if t is not None or noise_scale != 1.0:
                raise ValueError("prepare: rpu_config.modifier gives the training's weight noise; t and noise_scale act on the "
                                 "noise model's programming noise, which it replaces: remove them or set modifier.type to NONE")
            device = training["weight_noise"]
    else:
        channel_max, pdrop = False, 0.0
    if is_prepared(model):
        raise ValueError("prepare: the model is already prepared; call aimc.torch.unprepare(model) first")
    periphery = dict(periphery or {})
    known = set(_PERIPHERY)
    unknown = set(periphery) - known
    if unknown:
        raise ValueError(f"prepare: periphery takes {', '.join(sorted(known))}; unknown {sorted(unknown)}")
    omega = float(weight_scaling_omega or periphery.get("weight_scaling_omega", 0.0))
    columnwise = bool(weight_scaling_columnwise or periphery.get("weight_scaling_columnwise", False))
    if not omega >= 0:
        raise ValueError(f"prepare: weight_scaling_omega = {omega}; use 0 (raw weights in the tile) or > 0")
    if columnwise and not omega > 0:
        raise ValueError("prepare: weight_scaling_columnwise needs weight_scaling_omega > 0 (each column rescaled to max|W| = omega), e.g. 1.0")
    if int(max_out) < 1:
        raise ValueError(f"prepare: max_out = {max_out}; give the crossbar columns of a tile, the evaluation's [tile] max_out (e.g. 512)")
    output_noise = float(output_noise or periphery.get("out_noise", 0.0))
    dac_bits = int(dac_bits or periphery.get("inp_res_bits", 0))
    adc_bits = int(adc_bits or periphery.get("out_res_bits", 0))
    out_bound = float(out_bound or periphery.get("out_bound", 0.0))
    if output_noise < 0 or clip_sigma < 0 or clip_value < 0 or noise_scale < 0 or not out_bound >= 0:
        raise ValueError("prepare: output_noise, clip_sigma, clip_value, noise_scale and out_bound must be >= 0")
    if dac_bits == 1 or dac_bits > 24 or dac_bits < 0:
        raise ValueError(f"prepare: dac_bits = {dac_bits}; use 0 (no DAC) or 2..24")
    if adc_bits == 1 or adc_bits > 24 or adc_bits < 0:
        raise ValueError(f"prepare: adc_bits = {adc_bits}; use 0 (no ADC) or 2..24")
    if adc_bits and not out_bound > 0:
        raise ValueError(f"prepare: adc_bits = {adc_bits} needs the ADC's range: out_bound > 0 (in units of max|x|, the evaluation's periphery out_bound, e.g. 12)")
    if int(max_in) < 1:
        raise ValueError(f"prepare: max_in = {max_in}; give the crossbar rows of a tile, the evaluation's [tile] max_in (e.g. 512)")
    w_noise = float(w_noise or periphery.get("w_noise", 0.0))
    w_noise_type = w_noise_type if w_noise_type != "additive_constant" else periphery.get("w_noise_type", "additive_constant")
    if not (np.isfinite(w_noise) and w_noise >= 0) or w_noise_type not in ("additive_constant", "pcm_read"):
        raise ValueError(f"prepare: w_noise = {w_noise}, w_noise_type = {w_noise_type!r}; use w_noise >= 0 and "
                         "\"additive_constant\" or \"pcm_read\" (aimc's periphery w_noise_type)")
    ir_drop = float(ir_drop or periphery.get("ir_drop", 0.0))
    ir_drop_g_ratio = float(ir_drop_g_ratio if ir_drop_g_ratio != 571428.6 else periphery.get("ir_drop_g_ratio", 571428.6))
    if not (np.isfinite(ir_drop) and ir_drop >= 0) or not (np.isfinite(ir_drop_g_ratio) and ir_drop_g_ratio > 0):
        raise ValueError(f"prepare: ir_drop = {ir_drop}, ir_drop_g_ratio = {ir_drop_g_ratio}; use ir_drop >= 0 and "
                         "ir_drop_g_ratio > 0 (aimc's periphery default 571428.6)")
    bound_management = bound_management if bound_management != "none" else periphery.get("bound_management", "none")
    max_bm_factor = float(max_bm_factor if max_bm_factor != 1000.0 else periphery.get("max_bm_factor", 1000.0))
    max_bm_res = float(max_bm_res if max_bm_res != 0.25 else periphery.get("max_bm_res", 0.25))
    if bound_management not in ("none", "iterative"):
        raise ValueError(f"prepare: bound_management = {bound_management!r}; use \"none\" or \"iterative\"")
    if bound_management == "iterative" and not out_bound > 0:
        raise ValueError("prepare: bound_management = \"iterative\" redoes a tile whose outputs saturate the ADC's range: "
                         "give out_bound > 0 (the evaluation's periphery out_bound, e.g. 12)")
    if not 0 <= max_bm_factor <= 32768 or not (np.isfinite(max_bm_res) and max_bm_res > 0):
        raise ValueError(f"prepare: max_bm_factor = {max_bm_factor}, max_bm_res = {max_bm_res}; use 0..32768 and a finite number > 0 "
                         "(aihwkit's defaults 1000 and 0.25)")
    spec = None
    if device != "none":
        spec = _training_toml(device, t, noise_scale, weight_noise_std, pdrop)
        # One draw on a dummy matrix checks the arguments with aimc's own messages.
        try:
            perturb_weights([1.0], spec, 0)
        except ValueError as e:
            raise ValueError(f"prepare: {e}".replace("training.device.", "device.").replace("training.weight_noise_std", "weight_noise_std")
                             .replace("training.weight_noise_time", "t").replace("training.weight_noise", "device")) from None
    step_dac = (2.0 / ((1 << dac_bits) - 2)) if dac_bits else 0.0
    # aimc's ADC grid: 2·out_bound / (2^bits − 2), the relative step rounded to f32 first as aimc
    # (and aihwkit) round it.
    step_adc = float(np.float32(np.float32(1.0 / ((1 << adc_bits) - 2)) * np.float32(2.0 * out_bound))) if adc_bits else 0.0
    # Bound management's last reduction, by aimc's (and aihwkit's) rule on the f32 DAC step.
    inp_res = float(np.float32(np.float32(1.0 / ((1 << dac_bits) - 2)) * np.float32(2.0))) if dac_bits else 0.0
    last = _bm_last_reduction(max_bm_factor, max_bm_res, inp_res) if bound_management == "iterative" else 1
    adc = (step_adc, out_bound, last)
    ranges = _range_settings(input_range)
    # Every check before the model changes, so a refused model is left as it was.
    attentions = [m for m in model.modules() if type(m).__name__ == "MultiheadAttention"]
    for i, a in enumerate(attentions):
        _check_attention(a, i)
    for i, m in enumerate(m for m in model.modules() if type(m).__name__ in _KINDS):
        if type(m).__name__ in ("Conv2d", "Conv1d"):
            _check_conv(m, i)
    for a in attentions:
        _attach_attention(a)
    layers = [m for m in model.modules() if type(m).__name__ in _KINDS]
    if not layers:
        raise ValueError("prepare: the model has no nn.Linear, nn.Conv2d or Conv1D layer to put on crossbars")
    for i, m in enumerate(layers):
        m._aimc = {"index": i, "steps": 0, "forward": m.forward}
        if ranges is not None:
            # The crossbar rows: a Conv2d's patch (C_in·kh·kw), a Conv1D's W [in, out], a Linear's in.
            n_in = m.weight.shape[0] if type(m).__name__ == "Conv1D" else int(np.prod(tuple(m.weight.shape)[1:]))
            # One range per input tile, learned or fixed at init_value.
            tiles = len(list(_tiles(n_in, int(max_in))))
            value = torch.full((tiles,), ranges["init_value"], dtype=m.weight.dtype, device=m.weight.device)
            if isinstance(m, _InProj):
                # Q, K and V read the same input: one range, held by the attention's `in_proj`
                # (the evaluation's `self_attn.in_proj.input_range`), initialised from the data by Q.
                first = not hasattr(m.holder, "input_range")
                if first:
                    m.holder.input_range = torch.nn.Parameter(value, requires_grad=ranges["learn_input_range"])
                m._aimc["range_updates"] = [0 if first else ranges["init_from_data"]] * tiles
            else:
                if hasattr(m, "input_range"):
                    raise ValueError(f"prepare: layer {i} ({type(m).__name__}) already has an attribute input_range")
                m.input_range = torch.nn.Parameter(value, requires_grad=ranges["learn_input_range"])
                m._aimc["range_updates"] = [0] * tiles
        clip = (float(clip_sigma), float(clip_value), bool(channel_max))
        m.forward = _wrapped(m, spec, seed, step_dac, output_noise, clip, adc, int(max_in), (omega, columnwise, int(max_out)),
                             (w_noise, w_noise_type == "pcm_read"), (ir_drop, ir_drop_g_ratio), ranges)
    model._aimc_prepared = True
    return model


# aihwkit's InputRangeParameter defaults (src/aihwkit/simulator/parameters/pre_post.py).
_RANGE_DEFAULTS = {"init_value": 3.0, "init_from_data": 100, "init_std_alpha": 3.0, "decay": 0.001, "input_min_percentage": 0.95,
                   "gradient_scale": 1.0, "gradient_relative": True, "learn_input_range": True}


def _range_settings(input_range):
    """`prepare`'s input_range as aihwkit's InputRangeParameter fields, or None (no ranges)."""
    if input_range is False or input_range is None:
        return None
    given = {} if input_range is True else input_range
    if not isinstance(given, dict):
        raise ValueError(f"prepare: input_range = {input_range!r}; use True (aihwkit's InputRangeParameter defaults) or a dict of its fields")
    unknown = set(given) - set(_RANGE_DEFAULTS)
    if unknown:
        raise ValueError(f"prepare: input_range takes {', '.join(sorted(_RANGE_DEFAULTS))}; unknown {sorted(unknown)}")
    r = dict(_RANGE_DEFAULTS, **given)
    if not (np.isfinite(r["init_value"]) and r["init_value"] > 0):
        raise ValueError(f"prepare: input_range init_value = {r['init_value']!r}; give the first range, > 0 (aihwkit's default 3.0)")
    if int(r["init_from_data"]) < 0 or not r["init_std_alpha"] > 0 or not r["decay"] >= 0 or not 0 <= r["input_min_percentage"] <= 1:
        raise ValueError("prepare: input_range needs init_from_data >= 0, init_std_alpha > 0, decay >= 0 and 0 <= input_min_percentage <= 1")
    return r


class _InputRange(torch.autograd.Function):
    """Inputs clipped to ±range, as aihwkit's `apply_input_range`; backward as its
    `post_backward`: the inputs' gradient straight through (unmasked), the range's from the
    clipped inputs only (their gradient's part that would widen the range), times the range and
    `gradient_scale` when `gradient_relative`, plus `decay` x range while more than
    `input_min_percentage` of the inputs lie inside it."""

    @staticmethod
    def forward(ctx, x, r, settings):
        ctx.save_for_backward(x, r)
        ctx.settings = settings
        return torch.clamp(x, -r.abs(), r.abs())

    @staticmethod
    def backward(ctx, grad):
        x, r = ctx.saved_tensors
        s = ctx.settings
        if not ctx.needs_input_grad[1]:
            return grad, None, None
        upper, lower = x >= r, x <= -r
        g = torch.clamp(upper * grad, max=0.0).sum() - torch.clamp(lower * grad, min=0.0).sum()
        if s["gradient_relative"]:
            g = g * r * s["gradient_scale"]
        if s["decay"] > 0:
            inside = (x.abs() < r).float().mean()
            g = g + s["decay"] * r * (inside > s["input_min_percentage"]).to(r.dtype)
        return grad, g.reshape(r.shape), None


def _ranged(m, t: int, xs, ranges):
    """Input slice `xs` of input tile `t` clipped to the tile's range, and the range (detached) as
    the slice's scale: during the first `init_from_data` training passes the range is first set
    to the running mean of init_std_alpha x std(x), as aihwkit's `apply_input_range` does."""
    r = m.input_range
    counts = m._aimc["range_updates"]
    if counts[t] < ranges["init_from_data"]:
        std = xs.detach().std()
        if std > 0:
            with torch.no_grad():
                r[t] = (r[t] * counts[t] + ranges["init_std_alpha"] * std) / (counts[t] + 1)
            counts[t] += 1
        with torch.no_grad():
            r.abs_()
    rt = r[t:t + 1]
    return _InputRange.apply(xs, rt, ranges), rt.detach().abs()


def _check_conv(m, i: int) -> None:
    """A Conv2d or Conv1d that aimc's evaluation maps (`aimc.from_torch`): one group, no
    dilation, zero padding (numbers, 'valid', or 'same' with stride 1 and an odd kernel);
    training unfolds it into patches as the evaluation does."""
    odd = all(k % 2 == 1 for k in m.kernel_size) and all(s == 1 for s in m.stride)
    checks = ((m.groups != 1, f"groups = {m.groups}"), (any(d != 1 for d in m.dilation), f"dilation = {m.dilation}"),
              (m.padding_mode != "zeros", f"padding_mode = {m.padding_mode!r}"),
              (m.padding == "same" and not odd, "padding = 'same' with a stride or an even kernel"))
    bad = [what for failed, what in checks if failed]
    if bad:
        raise ValueError(f"prepare: layer {i} ({type(m).__name__}) has {', '.join(bad)}; aimc maps a convolution with one group, "
                         "no dilation and zero padding (numbers, 'valid', or 'same' at stride 1 with an odd kernel), as "
                         "aimc.from_torch reads it")


def _patches(m, x):
    """A Conv2d's input as the vectors its crossbar multiplies (aihwkit's AnalogConv2d mapping,
    aimc's `im2col`): one row per output pixel, C_in·kh·kw long in (c, i, j) order (PyTorch's
    `weight.view(out, -1)`), shape [N, out_h·out_w, C_in·kh·kw]; and (out_h, out_w). A Conv1d's
    [N, C, L] input is the C x 1 x L image of its 1 x k kernel, as the evaluation maps it."""
    if type(m).__name__ == "Conv1d":
        x = x.unsqueeze(2)
        (kh, kw), stride = (1, m.kernel_size[0]), (1, m.stride[0])
        pad = (0, m.padding[0]) if not isinstance(m.padding, str) else m.padding
    else:
        (kh, kw), stride, pad = m.kernel_size, m.stride, m.padding
    pad = {"valid": (0, 0), "same": (kh // 2, kw // 2)}.get(pad, pad) if isinstance(pad, str) else pad
    (ph, pw), (sh, sw) = pad, stride
    out_h = (x.shape[-2] + 2 * ph - kh) // sh + 1
    out_w = (x.shape[-1] + 2 * pw - kw) // sw + 1
    cols = F.unfold(x, (kh, kw), padding=(ph, pw), stride=(sh, sw))
    return cols.transpose(1, 2), (out_h, out_w)


def _unpatched(y, hw, one_d: bool = False):
    """Per-pixel outputs [N, out_h·out_w, C_out] as the convolution's map [N, C_out, out_h, out_w]
    ([N, C_out, out_w] for a Conv1d)."""
    y = y.transpose(1, 2)
    return y.reshape(y.shape[0], y.shape[1], hw[1]) if one_d else y.reshape(y.shape[0], y.shape[1], hw[0], hw[1])


def is_prepared(model) -> bool:
    return bool(getattr(model, "_aimc_prepared", False))


def unprepare(model):
    """Restores every wrapped layer's own forward (in place; returns the model), with the weights
    clipped one last time as training saw them (unless no optimiser step changed them since the
    last forward pass clipped them), ready for `aimc.from_torch`."""
    if not is_prepared(model):
        raise ValueError("unprepare: the model was not prepared with aimc.torch.prepare")
    for m in model.modules():
        state = getattr(m, "_aimc", None)
        if state is None:
            continue
        clip = m.forward.clip
        # Clipped once more unless nothing changed the weight since a forward pass clipped it
        # (clipping at a std or a channel mean is not idempotent).
        if any(clip) and m.weight._version != state.get("clipped_at"):
            with torch.no_grad():
                _clip_(m.weight, clip, m.forward.out_dim)
        m.forward = state["forward"]
        del m._aimc
    for a in [m for m in model.modules() if hasattr(m, "_aimc_attention")]:
        a.forward, a._qkv_same_embed_dim = a._aimc_attention
        del a._aimc_attention
        # The Q, K, V views go; a learned range stays, as `in_proj.input_range`.
        for part in "qkv":
            delattr(a.in_proj, part)
        if not hasattr(a.in_proj, "input_range"):
            del a.in_proj
    del model._aimc_prepared
    return model


class _InProj(torch.nn.Module):
    """Q, K or V (`part` 0, 1, 2) of an nn.MultiheadAttention's stacked `in_proj_weight` as a
    layer `prepare` wraps: its weight and bias are views of the attention's own rows (not copies,
    not registered again), so each of the three is a crossbar matrix of its own, as aimc's
    transformer maps them (own weight scale, noise draw and tiles); the range they share is the
    `holder`'s (`self_attn.in_proj`)."""

    def __init__(self, attention, holder, part: int):
        super().__init__()
        # Plain attributes, not children: modules() would otherwise walk back up.
        object.__setattr__(self, "attention", attention)
        object.__setattr__(self, "holder", holder)
        self.part = part

    @property
    def weight(self):
        e = self.attention.embed_dim
        return self.attention.in_proj_weight[self.part * e:(self.part + 1) * e]

    @property
    def bias(self):
        b, e = self.attention.in_proj_bias, self.attention.embed_dim
        return None if b is None else b[self.part * e:(self.part + 1) * e]

    @property
    def input_range(self):
        return self.holder.input_range

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)


def _check_attention(a, i: int) -> None:
    """An nn.MultiheadAttention (the `i`-th) that aimc's transformer maps: self-attention with
    one stacked Q, K, V projection and no extra key/value rows."""
    if not getattr(a, "_qkv_same_embed_dim", False) or getattr(a, "in_proj_weight", None) is None:
        raise ValueError(f"prepare: MultiheadAttention {i} has kdim or vdim other than embed_dim; aimc maps self-attention, "
                         "where keys and values are the tokens themselves")
    if getattr(a, "bias_k", None) is not None or getattr(a, "add_zero_attn", False):
        raise ValueError(f"prepare: MultiheadAttention {i} has add_bias_kv or add_zero_attn; aimc's attention has no extra key/value rows")
    if hasattr(a, "in_proj"):
        raise ValueError(f"prepare: MultiheadAttention {i} already has an attribute in_proj")


def _attach_attention(a) -> None:
    """Prepares nn.MultiheadAttention `a` as aimc's transformer maps self-attention: Q, K and V as
    three crossbar matrices (`_InProj` views of its in_proj_weight, under `a.in_proj`), the
    scores and softmax digital, out_proj a crossbar matrix. Its forward is replaced by
    `_attention_forward`, which PyTorch's fused eval path of TransformerEncoderLayer would skip:
    that path is off while prepared (it reads `_qkv_same_embed_dim`)."""
    holder = torch.nn.Module()
    a.in_proj = holder
    for p, part in enumerate("qkv"):
        setattr(holder, part, _InProj(a, holder, p))
    a._aimc_attention = (a.forward, a._qkv_same_embed_dim)
    a._qkv_same_embed_dim = False
    a.forward = _attention_forward(a)


def _attention_forward(a):
    """nn.MultiheadAttention's self-attention with its projections through the prepared layers:
    Q, K, V from `a.in_proj`'s views, PyTorch's scaled dot-product attention over them (the masks
    as MultiheadAttention reads them: True or -inf excludes a key; dropout on the weights in
    training), out_proj. Returns (output, None): attention weights are not kept."""
    def forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None, average_attn_weights=True, is_causal=False):
        if key is not query or value is not query:
            raise ValueError("aimc.torch: a prepared nn.MultiheadAttention computes self-attention (query, key and value the "
                             "same tensor), as aimc's transformer maps it")
        x = query if a.batch_first or query.dim() == 2 else query.transpose(0, 1)
        single = x.dim() == 2
        if single:
            x = x.unsqueeze(0)
        b, n, e = x.shape
        h = a.num_heads
        q, k, v = (getattr(a.in_proj, part)(x).reshape(b, n, h, e // h).transpose(1, 2) for part in "qkv")
        mask = None
        for m_, shape in ((key_padding_mask, (b, 1, 1, n)), (attn_mask, None)):
            if m_ is None:
                continue
            add = torch.zeros(m_.shape, dtype=q.dtype, device=q.device).masked_fill(m_, float("-inf")) if m_.dtype == torch.bool else m_.to(q.dtype)
            add = add.reshape(shape) if shape is not None else (add.reshape(b, h, n, n) if add.dim() == 3 else add)
            mask = add if mask is None else mask + add
        causal = bool(is_causal) and mask is None
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=a.dropout if a.training else 0.0, is_causal=causal)
        out = a.out_proj(o.transpose(1, 2).reshape(b, n, e))
        if single:
            out = out.squeeze(0)
        elif not a.batch_first:
            out = out.transpose(0, 1)
        return out, None

    return forward


def _tiles(n_in: int, max_in: int):
    """The input slices [a, b) of a layer with `n_in` inputs on tiles of at most `max_in` rows,
    split evenly as aimc maps it (768 inputs on 512-row tiles: two slices of 384)."""
    parts = -(-n_in // max_in)
    base, extra = divmod(n_in, parts)
    a = 0
    for i in range(parts):
        b = a + base + (1 if i < extra else 0)
        yield a, b
        a = b


def _dac(x, amax, step: float):
    """The DAC: `x` quantised over `amax` (its max|x|) with a straight-through gradient."""
    if not step:
        return x
    safe = torch.where(amax > 0, amax, torch.ones_like(amax))
    q = torch.clamp(torch.round(x / safe / step) * step, -1.0, 1.0) * safe
    return x + (q - x).detach()


def _out_noise(y, scale, output_noise: float):
    """Output noise of `output_noise` x `scale` (max|x|) per output."""
    if output_noise > 0:
        return y + output_noise * scale * torch.randn_like(y)
    return y


def _clip_(w, clip, out_dim: int = 0) -> None:
    """Clips `w` in place as aihwkit's WeightClipParameter: `clip` = (sigma, fixed, channel_max),
    the bound sigma x std(W) (LAYER_GAUSSIAN) or the mean over output channels of their max|W|
    (AVERAGE_CHANNEL_MAX; the outputs along `out_dim`), and at most `fixed` (> 0, FIXED_VALUE or
    with either)."""
    sigma, fixed, channel_max = clip
    bound = None
    if sigma > 0:
        bound = sigma * w.std(unbiased=False)
    elif channel_max:
        dims = [d for d in range(w.dim()) if d != out_dim]
        bound = w.abs().amax(dim=dims).mean() if dims else w.abs().mean()
    if fixed > 0:
        bound = torch.tensor(fixed, dtype=w.dtype, device=w.device) if bound is None else torch.clamp(bound, max=fixed)
    if bound is not None:
        w.clamp_(-bound, bound)


def _bm_last_reduction(max_bm_factor: float, max_bm_res: float, inp_res: float) -> int:
    """The last input reduction iterative bound management tries (aimc's `bm_last_reduction`,
    aihwkit's rule): the smallest power of two above min(max_bm_factor, max_bm_res / inp_res)."""
    red = 1
    while red < 1 << 30 and not (red > max_bm_factor or (inp_res > 0 and red > max_bm_res / inp_res)):
        red *= 2
    return red


def _adc(y, scale, adc):
    """The ADC on `y` (outputs without their bias) in units of `scale` (max|x|): the rounding
    with a straight-through gradient, the clamp with its own (zero outside +-out_bound: a clipped
    output's weights and inputs learn nothing from it, as in aimc's trainers); identity without
    an ADC. Returns the outputs and which were clipped."""
    step, bound = adc[0], adc[1]
    if not (step or bound):
        return y, torch.zeros_like(y, dtype=torch.bool)
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = y / safe
    if step:
        q = q + (torch.round(q / step) * step - q).detach()  # ties to even, as aimc's quant_out
    if bound:
        # Clipped: beyond the range after rounding (aimc's `saturated`); the top code itself
        # passes its gradient.
        clipped = (q.detach().abs() > bound) & (scale > 0)
        q = torch.where(clipped, torch.clamp(q.detach(), -bound, bound), q)
    else:
        clipped = torch.zeros_like(y, dtype=torch.bool)
    return torch.where(scale > 0, q * safe, torch.zeros_like(q)), clipped


def _tile_any(flags, dim: int, max_out: int):
    """Whether any output of each output tile (at most `max_out` outputs along `dim`) is set,
    broadcast back over the tile's outputs."""
    n = flags.shape[dim]
    parts = [flags.narrow(dim, a, b - a).any(dim=dim, keepdim=True).expand_as(flags.narrow(dim, a, b - a)) for a, b in _tiles(n, max_out)]
    return torch.cat(parts, dim=dim)


def _crossbar(lin, xs, amax, unit, step: float, output_noise: float, adc, dim: int, max_out: int, wn=None, ir=None):
    """One tile's outputs without bias: `lin(x)` of the DAC'd input slice `xs` (max|x| `amax`),
    output noise, per-read weight noise (`wn` = (w_noise, sq): sigma = w_noise x sqrt(sq(x~^2)) in
    units of `unit`, x~ the DAC'd slice over its max, sq summing it per output with weights 1 or
    |W| in the tile's unit; aimc's `Injector::w_noise_std`), IR drop (`ir` = (ir_drop, g_ratio, n,
    sa, sp): aihwkit's formula, -ir_drop c(a) sp(x~) with a = n / g_ratio sa(|x~|), sa and sp the
    rows' sums with |W| and W (1 - r_k^2) in the tile's unit; deterministic, straight-through) and
    the ADC in units of `unit`; with bound management (adc[2] > 1, aimc's
    `Injector::bound_redo`) every vector whose outputs saturated in an output tile (`max_out`
    outputs along `dim`) is computed again with its input halved, quantised again by the DAC, with
    fresh output noise and the ADC, and multiplied back, until none saturates or the reduction
    reaches adc[2]. The gradient goes straight through the reduction (red · W · x/red)."""
    safe = torch.where(amax > 0, amax, torch.ones_like(amax))

    def level(xd):
        y = lin(xd)
        if ir is not None:
            xt = xd.detach() / safe
            a = ir[2] / ir[1] * ir[3](xt.abs())
            y = y + (-ir[0] * a * (a * (0.05 * a - 0.2) + 0.5) * ir[4](xt) * unit).detach()
        y = _out_noise(y, unit, output_noise)
        if wn is not None:
            sigma = wn[0] * torch.sqrt(wn[1]((xd.detach() / safe) ** 2)) * unit
            y = y + sigma * torch.randn_like(y)
        return _adc(y, unit, adc)

    y, clipped = level(_dac(xs, amax, step))
    last = adc[2] if len(adc) > 2 else 1
    redo = _tile_any(clipped, dim, max_out) if last > 1 else None
    red = 1
    while red < last and bool(redo.any()):
        red *= 2
        y_r, clipped_r = level(_dac(xs / red, amax, step))
        y = torch.where(redo, y_r * red, y)
        clipped = torch.where(redo, clipped_r, clipped)
        redo = redo & _tile_any(clipped_r, dim, max_out)
    return y


def _scales(w, scaling):
    """The weight scales of a crossbar block `w` [out, in] (one input tile) per output, as aimc
    maps it: with omega > 0 each tile of at most max_out outputs (or, columnwise, each output) is
    rescaled to max|W| = omega, so its outputs are in units of max|W| / omega (1 for an all-zero
    block); None with omega = 0."""
    omega, columnwise, max_out = scaling
    if not omega:
        return None
    m = w.detach().abs().amax(dim=1)
    if not columnwise:
        m = torch.cat([m[a:b].amax().expand(b - a) for a, b in _tiles(m.shape[0], max_out)])
    return torch.where(m > 0, m / omega, torch.ones_like(m))


def _wrapped(m, spec, seed: int, step: float, output_noise: float, clip=(0.0, 0.0, False), adc=(0.0, 0.0, 1), max_in: int = 512,
             scaling=(0.0, False, 512), w_noise=(0.0, False), ir_drop=(0.0, 571428.6), ranges=None):
    conv = type(m).__name__ in ("Conv2d", "Conv1d")
    one_d = type(m).__name__ == "Conv1d"
    # Hugging Face's Conv1D: y = x W + b with W [in, out]; the crossbar holds Wᵀ [out, in].
    conv1d = type(m).__name__ == "Conv1D"
    out_dim = 1 if conv1d else 0

    def clipped_eval(x):
        """Eval mode with ranges: floating point, each input tile's slice clipped to its range
        (the noiseless network as trained, aimc's floating-point baseline)."""
        r = m.input_range.detach().abs()

        def clip(v):
            bounds = torch.cat([r[t].expand(b - a) for t, (a, b) in enumerate(_tiles(v.shape[-1], max_in))])
            return torch.maximum(torch.minimum(v, bounds), -bounds)

        if conv:
            # Each patch's columns clipped to their tile's range, as the evaluation's tiles clip.
            p, hw = _patches(m, x)
            return _unpatched(F.linear(clip(p), m.weight.reshape(m.weight.shape[0], -1), m.bias), hw, one_d)
        return m._aimc["forward"](clip(x))

    def forward(x):
        if not m.training:
            return m._aimc["forward"](x) if ranges is None else clipped_eval(x)
        state = m._aimc
        k = state["steps"]
        state["steps"] = k + 1
        w = m.weight
        if any(clip) and w._version != state.get("clipped_at"):
            with torch.no_grad():
                _clip_(w, clip, out_dim)
            state["clipped_at"] = w._version
        if spec is not None:
            held = w.detach().t() if conv1d else w.detach()
            flat = held.to("cpu", torch.float32).contiguous().reshape(-1).numpy()
            draw_seed = (seed * 1_000_003 + state["index"]) * 1_000_033 + k
            cols = int(np.prod(tuple(held.shape)[1:]))
            raw = perturb_weights_bytes(flat.tobytes(), spec, draw_seed & 0xFFFF_FFFF_FFFF_FFFF, cols)
            noisy = np.frombuffer(raw, dtype=np.float32).copy()
            noisy = torch.from_numpy(noisy.reshape(tuple(held.shape))).to(w.device, w.dtype)
            delta = (noisy.t() if conv1d else noisy) - w.detach()
            w = w + delta
        if conv:
            # One vector per output pixel (its patch), through the layer's tiles as a Linear's.
            p, hw = _patches(m, x)
            return _unpatched(tiles(p, w.reshape(w.shape[0], -1), m.bias), hw, one_d)
        return tiles(x, w.t() if conv1d else w, m.bias)

    def tiles(x, wt, bias):
        """The crossbar MVM of `x` (rows of `wt`'s inputs) by `wt` [out, in], as the crossbar
        holds it, then the bias."""
        n_in = x.shape[-1]
        if n_in <= max_in and not (adc[0] or adc[1]) and not scaling[0] and not w_noise[0] and not ir_drop[0] and ranges is None:
            amax = x.detach().abs().amax(dim=-1, keepdim=True)
            y = F.linear(_dac(x, amax, step), wt, bias)
            return _out_noise(y, amax, output_noise)
        # Tiles of max_in rows: each slice its own DAC scale, output noise and ADC (and bound
        # management); the slices' outputs and the bias add digitally.
        y = None
        for t, (a, b) in enumerate(_tiles(n_in, max_in)):
            xs = x[..., a:b]
            amax = xs.detach().abs().amax(dim=-1, keepdim=True)
            if ranges is not None:
                # Clipped to the tile's range and divided by it, not by max|x|.
                xs, r = _ranged(m, t, xs, ranges)
                amax = r.expand_as(amax)
            ws = _scales(wt[:, a:b], scaling)
            unit = amax if ws is None else amax * ws
            wn = None
            if w_noise[0]:
                wd = wt[:, a:b].detach()
                if w_noise[1]:
                    wn = (w_noise[0], lambda v, wd=wd, ws=ws: F.linear(v, wd.abs()) / (1 if ws is None else ws))
                else:
                    wn = (w_noise[0], lambda v: v.sum(dim=-1, keepdim=True))
            ir = None
            if ir_drop[0]:
                wd = wt[:, a:b].detach()
                n = b - a
                r = 1 - torch.arange(n, dtype=wd.dtype, device=wd.device) / n
                div = 1 if ws is None else ws
                ir = (ir_drop[0], ir_drop[1], n, lambda v, wd=wd, div=div: F.linear(v, wd.abs()) / div,
                      lambda v, wd=wd, r=r, div=div: F.linear(v, wd * (1 - r * r)) / div)
            part = _crossbar(lambda v: F.linear(v, wt[:, a:b]), xs, amax, unit, step, output_noise, adc, -1, scaling[2], wn, ir)
            y = part if y is None else y + part
        return y if bias is None else y + bias

    forward.clip = clip
    forward.ranges = ranges
    forward.out_dim = out_dim
    forward.adc = adc
    forward.w_noise = w_noise
    forward.ir_drop = ir_drop
    return forward
