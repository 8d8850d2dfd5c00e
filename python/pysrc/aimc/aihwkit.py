"""aimc's reading of IBM aihwkit's `InferenceRPUConfig`: `from_aihwkit(rpu_config)` turns the
configuration an aihwkit user already has into aimc's experiment settings (`gdc`, `[device]`,
`[periphery]`, `[tile]`), and refuses, by its attribute path, every setting aimc does not model.
docs/aihwkit.md has the mapping table; this module owns it.

It follows aihwkit's InferenceRPUConfig of 1.1.0 and later (the reference case of
experiments/reference/aihwkit_breast_cancer ran 1.2.0): attribute names, defaults and meanings as
in aihwkit's source, src/aihwkit/simulator/parameters/io.py (IOParameters), mapping.py
(MappingParameter), inference.py (WeightModifierParameter, WeightClipParameter,
WeightRemapParameter), pre_post.py (InputRangeParameter), simulator/configs/configs.py
(InferenceRPUConfig), inference/noise/pcm.py (PCMLikeNoiseModel), hermes.py, custom.py and
reram.py (the other noise models below), inference/converter/conductance.py
(SinglePairConductanceConverter, SingleDeviceConductanceConverter), inference/compensation/drift.py,
and the RPUCuda forward pass it configures (src/rpucuda/rpu_pulsed_meta_parameter.cpp: how inp_res,
out_res and the bounds are read).

Nothing here imports aihwkit or torch: attributes are read with getattr, classes are told apart by
their names (`type(obj).__name__`), enum members by their names (`NoiseManagementType.ABS_MAX`,
"AbsMax" and "abs_max" alike), so a configuration maps without aihwkit installed. An attribute an
object lacks is taken at aihwkit's default (a field an older aihwkit did not have). For aihwkit's
dataclasses, a field this module does not know (a newer aihwkit's) passes only at its default.

What is read, and how:
- forward (IOParameters, or aihwkit's presets' PresetIOParameters): the periphery of every MVM;
  aimc's `[periphery]` fields are aihwkit's,
  the converter resolutions as bits (`inp_res = 1/(2**b - 2)`); settings aimc does not model are
  refused unless at aihwkit's default. `is_perfect` (or `mv_type` IDEAL) is aihwkit's ideal MVM,
  which disregards every other forward setting.
- mapping (MappingParameter): the tile size (max_output_size = 0 as the model's largest layer,
  `max_out`), weight scaling, a digital bias, learned output scales where the mapping divides
  them out (folded into the weights aimc is given).
- noise_model: PCMLikeNoiseModel (with its SinglePairConductanceConverter) as aimc's `pcm` model;
  CustomDriftPCMLikeNoiseModel as the same with its measured drift (`custom_drift_model`) as
  `device.drift_table`; HermesNoiseModel (hermes.py) as `hermes` (num_devices = 2, its default)
  or `hermes1`; StateIndependentNoiseModel (custom.py) as `pcm` with its constant programming
  polynomial, drift and read noise written out; ReRamWan2022NoiseModel (reram.py) as `reram` with
  its `coeff_dic` written out as `device.relax_table` and its one `noise_scale` as both
  `prog_noise_scale` and `drift_scale`; ReRamCMONoiseModel (reram.py, with its
  SingleDeviceConductanceConverter: one device per weight on [g_min, g_max]) as `reram_cmo`, every
  field written out: the programming polynomial of its acceptance range (µS in g, rewritten in
  g/g_max), `decay_dict` and `read_dict` as `device.log_relax` and `t_read`. The PCM-like and
  HERMES models also take an NPairConductanceConverter or DualPairConductanceConverter (several
  conductance pairs per weight, g_min 0): its `f_lst` as `device.pair_significance`.
- drift_compensation: None, GlobalDriftCompensation, GlobalDriftCompensationWithExactReference or
  PerColumnDriftCompensation as `gdc`.
- tile_class: InferenceTile (RPUCuda's, the default) or TorchInferenceTile
  (TorchInferenceRPUConfig's pure-PyTorch tile: same device model and periphery; its
  whole-batch iterative bound management is refused, as are the settings it raises for).
- pre_post.input_range: the learned ranges are the model's (`aimc.from_torch` of the analog
  model reads them, the model file holds them as `PREFIX.input_range`); enabled, the entry
  points refuse a model without them.
- Training only, so not read: clip and remap run after optimizer updates (post_update_step), the
  modifier perturbs training forwards (unless `enable_during_test`), backward / update / device
  are the training passes, runtime the simulator's own precision and offloading. A remap that
  leaves other weights than the mapping (any but the symmetric ones matching it) or a modifier
  active during test changes inference, and is refused. `training_from_aihwkit` reads the
  modifier and clip, `input_range_from_aihwkit` the input ranges, for hardware-aware training
  (`aimc.torch.prepare(rpu_config=...)`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

__all__ = ["from_aihwkit", "training_from_aihwkit", "input_range_from_aihwkit"]

# aihwkit's defaults (io.py, mapping.py, pcm.py, hermes.py, reram.py, conductance.py).
_PCM_PROG_COEFF = [0.26348, 1.9650, -1.1731]
_PCM_G_REF = 25.0
# ReRamWan2022NoiseModel's: g_max (its SinglePairConductanceConverter's default) and coeff_dic, the
# σ polynomial's coefficients (µS, ascending powers of g_T/g_max, c0 first) at each time (s).
_RERAM_G_MAX = 25.0
_RERAM_COEFF_DIC = {
    1.0: [0.348, 16.030, -43.853, 45.393, -16.815],
    86400.0: [0.701, 22.086, -50.773, 47.095, -16.458],
    172800.0: [0.782, 20.274, -43.507, 37.062, -11.934],
}
# aimc's relaxation table: a quartic (5 coefficients) at each of at most 4 times (device::RelaxTable).
_RELAX_COEFFS = 5
_RELAX_TIMES = 4
# ReRamCMONoiseModel's (reram.py): its SingleDeviceConductanceConverter's range (µS), coeff_dict
# (acceptance range -> the programming σ's coefficients, µS, c0 first, ascending powers of g in µS),
# acceptance_range (2e-2 is no key, so its constructor programs with the smallest, 0.2), decay_dict
# and read_dict; aimc's `reram_cmo` preset holds them.
_CMO_G_MAX = 88.199997
_CMO_G_MIN = 9.0
_CMO_COEFF_DICT = {0.2: [0.00081107, 0.00106879], 2: [0.0112185391, 0.01129027418]}
_CMO_ACCEPTANCE = 2e-2
_CMO_DECAY = {"mean": [-0.08900206], "std": [0.04201137, 0.41183342]}
_CMO_READ = {"K": 0.0277316483, "t_read": 1e-6}
_PROG_COEFFS = 4  # aimc's programming polynomial: a cubic (device::DeviceModel::prog_coeff)
# The PCM-like noise models aimc maps, by aihwkit class (and HermesNoiseModel's num_devices): aimc's
# preset and the defaults aihwkit's constructor gives the fields read here (g_max, t_0, t_read, the
# programming polynomial and the g_max it was fitted at), which are also the preset's.
# StateIndependentNoiseModel, ReRamWan2022NoiseModel and ReRamCMONoiseModel are mapped by their own
# readers (_state_independent, _reram, _reram_cmo).
_PRESETS = {
    "PCMLikeNoiseModel": ("pcm", 25.0, 20.0, 250.0e-9, _PCM_PROG_COEFF, _PCM_G_REF),
    "CustomDriftPCMLikeNoiseModel": ("pcm", 25.0, 20.0, 250.0e-9, _PCM_PROG_COEFF, _PCM_G_REF),
    ("HermesNoiseModel", 2): ("hermes", 20.7, 300.0, 512.0e-9, [0.16603222, 4.71806468, -8.48101252, 4.68961419], 20.7),
    ("HermesNoiseModel", 1): ("hermes1", 10.35, 200.0, 512.0e-9, [0.15781817, 2.32443916, -2.16310839, 0.68841818], 10.35),
}
_AIMC_G_RATIO = 571428.6  # aimc's periphery.ir_drop_g_ratio default (crossbar::Periphery)
_MAX_TILE_IN = 2048  # the largest tile input count aimc's engine takes (crossbar::MAX_TILE_IN)

# IOParameters fields aimc does not model: their aihwkit default, and what they are.
_FORWARD_UNMODELLED = {
    "inp_sto_round": (False, "stochastic rounding in the DAC"),
    "inp_asymmetry": (0.0, "an input asymmetry of separate positive and negative passes"),
    "out_noise_std": (0.0, "an output-to-output variation of the output noise"),
    "out_sto_round": (False, "stochastic rounding in the ADC"),
    "out_scale": (1.0, "a fixed output scale"),
    "out_asymmetry": (0.0, "an output asymmetry of separate positive and negative passes"),
    "out_nonlinearity": (0.0, "the S-shaped output non-linearity"),
    "out_nonlinearity_std": (0.0, "an output-to-output variation of the output non-linearity"),
    "slope_calibration": (0.0, "a calibration of the output non-linearity"),
    "v_offset_std": (0.0, "voltage offsets of the output lines"),
    "v_offset_w_min": (-1.0, "the voltage offset of an implicit reference unit"),
    "r_series": (0.0, "a series resistance"),
    "w_read_asymmetry_dtod": (0.0, "a device polarity read dependence"),
    "bm_test_negative_bound": (True, "bound management that tests the positive bound only"),
}

# IOParameters fields aimc maps: their aihwkit default.
_FORWARD_MAPPED = {
    "is_perfect": False, "mv_type": "ONE_PASS", "inp_bound": 1.0, "inp_res": 1 / (2**7 - 2), "out_bound": 12.0,
    "out_noise": 0.06, "out_res": 1 / (2**9 - 2), "bound_management": "ITERATIVE", "noise_management": "ABS_MAX",
    "w_noise": 0.0, "w_noise_type": "NONE", "ir_drop": 0.0, "ir_drop_g_ratio": 1.0 / 0.35 / 5e-6, "inp_noise": 0.0,
    "max_bm_factor": 1000, "max_bm_res": 0.25, "nm_thres": 0.0,
}
# The IOParameters classes read as IOParameters: aihwkit's presets' subclass changes defaults only.
_IO_CLASSES = ("IOParameters", "PresetIOParameters")
# aihwkit's remap types that, after training, leave the weights as a mapping does: each output
# channel (CHANNELWISE_SYMMETRIC) or the layer (LAYERWISE_SYMMETRIC) scaled to max|W| = remapped_wmax.
_REMAP_AS_MAPPING = {"channelwisesymmetric": True, "layerwisesymmetric": False}

_MAPPING_KNOWN = {"digital_bias", "weight_scaling_omega", "weight_scaling_columnwise", "weight_scaling_lr_compensation",
                  "learn_out_scaling", "out_scaling_columnwise", "max_input_size", "max_output_size"}

_CONFIG_KNOWN = {"forward", "noise_model", "drift_compensation", "mapping", "clip", "remap", "modifier", "pre_post",
                 "runtime", "device", "backward", "update", "tile_class", "tile_array_class", "simulator_tile_class"}

# The tiles aimc follows, by aihwkit class name, and the simulator tile each runs on: RPUCuda's
# InferenceTile (InferenceRPUConfig) and the pure-PyTorch TorchInferenceTile
# (TorchInferenceRPUConfig, simulator/tiles/torch_tile.py and analog_mvm.py).
_TILES = {"InferenceTile": None, "TorchInferenceTile": "TorchSimulatorTile"}

_GDC = {
    "GlobalDriftCompensation": "readout",
    "GlobalDriftCompensationWithExactReference": "exact_reference",
    "PerColumnDriftCompensation": "readout_per_column",
}


def _enum(v) -> str:
    """An aihwkit enum member, or its name or value as a string, as one key: "absmax" for
    NoiseManagementType.ABS_MAX, "ABS_MAX", "AbsMax" and "NoiseManagementType.ABS_MAX"."""
    name = getattr(v, "name", None)
    if isinstance(v, str) or not isinstance(name, str):
        name = str(v)
    return name.rsplit(".", 1)[-1].replace("_", "").lower()


def _show(v) -> str:
    """A value as aihwkit code would write it."""
    if isinstance(v, type):
        return v.__name__
    if _enum_like(v):
        return f"{type(v).__name__}.{v.name}"
    return repr(v)


def _kind(obj) -> str:
    return type(obj).__name__


class _Reader:
    """Collects what aimc does not model, so one error names every such setting."""

    def __init__(self):
        self.refused: list[str] = []

    def refuse(self, path: str, value, why: str, fix: str) -> None:
        self.refused.append(f"{path} = {_show(value)} is not modelled by aimc ({why}); {fix}")

    def num(self, obj, path: str, default) -> float:
        """The number at `path` (its last part the attribute of `obj`), aihwkit's `default` where
        the object lacks it; anything but a number is refused."""
        value = _get(obj, path.rsplit(".", 1)[-1], default)
        # A bool or a string is not taken for a number (True as 1.0, "20" as 20.0).
        if isinstance(value, (bool, str, bytes)):
            self.refused.append(f"{path} = {_show(value)} is not a number")
            return float(default)
        try:
            return float(value)
        except (TypeError, ValueError):
            self.refused.append(f"{path} = {_show(value)} is not a number")
            return float(default)

    def default_only(self, path: str, value, default, why: str) -> None:
        if not _same(value, default):
            self.refuse(path, value, why, f"set it to {_show(default)} (aihwkit's default)")

    def unknown_fields(self, obj, path: str, known) -> None:
        """A dataclass's fields this mapping does not know (a newer aihwkit's) pass only at their
        defaults: aimc cannot say what another value would change."""
        if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
            return
        for f in dataclasses.fields(obj):
            if f.name in known or not hasattr(obj, f.name):
                continue
            value = getattr(obj, f.name)
            try:
                if f.default is not dataclasses.MISSING:
                    default = f.default
                elif f.default_factory is not dataclasses.MISSING:
                    default = f.default_factory()
                else:
                    default = dataclasses.MISSING
                same = default is not dataclasses.MISSING and _same(value, default)
            except Exception:  # a default that cannot be built or compared: not at its default
                same = False
            if not same:
                self.refused.append(f"{path}.{f.name} = {_show(value)} is not known to aimc's mapping of aihwkit's "
                                    "InferenceRPUConfig (a newer aihwkit's setting?); leave it at its default")

    def raise_if_any(self) -> None:
        if len(self.refused) == 1:
            raise ValueError(f"from_aihwkit: {self.refused[0]}")
        if self.refused:
            lines = "\n".join(f"  {r}" for r in self.refused)
            raise ValueError(f"from_aihwkit: {len(self.refused)} settings of this InferenceRPUConfig are not modelled by aimc:\n{lines}")


def _enum_like(v) -> bool:
    return isinstance(getattr(v, "name", None), str) and not isinstance(v, (str, int, float))


def _same(a, b) -> bool:
    """Whether a setting is at its default: enum members by name, anything else by ==."""
    if _enum_like(a) or _enum_like(b):
        return _enum(a) == _enum(b)
    try:
        return bool(a == b)
    except Exception:  # an array or another object without a plain ==: not the default
        return False


def _get(obj, name: str, default):
    return getattr(obj, name, default) if obj is not None else default


def _bits(path: str, res: float, r: _Reader) -> int:
    """A converter resolution as bits: aihwkit's `res` (RPUCuda's checkRes: <= 0 no quantisation,
    > 1 a number of steps, else 1/steps) has 2**b - 2 steps over the range (aimc's and aihwkit's
    convention: 7 bits = 1/126)."""
    if not math.isfinite(res):
        r.refuse(path, res, "a resolution must be finite", "give 1/(2**b - 2) for b bits, or 0 for none")
        return 0
    if res <= 0.0:
        return 0
    steps = res if res > 1.0 else 1.0 / res
    b = round(math.log2(steps + 2.0))
    if 2 <= b <= 24 and abs(steps - (2**b - 2)) <= 1e-6 * steps:
        return b
    near = min(24, max(2, b))
    r.refuse(path, res, f"{steps:.6g} converter steps; aimc's converters have 2**b - 2 steps for b = 2..24 bits",
             f"the nearest is {near} bits: set it to 1/(2**{near} - 2) (= {1 / (2**near - 2):.6g}), or 0 for no quantisation")
    return near


def _forward(fwd, r: _Reader) -> dict:
    """IOParameters as `[periphery]` (without the mapping's weight scaling)."""
    if fwd is not None and _kind(fwd) not in _IO_CLASSES:
        r.refused.append(f"forward is {_kind(fwd)}; aimc maps aihwkit's IOParameters (its IR drop and periphery), "
                         "so give the forward settings as IOParameters")
        return {}
    perfect = bool(_get(fwd, "is_perfect", False))
    mv = _enum(_get(fwd, "mv_type", "ONE_PASS"))
    if perfect or mv == "ideal":
        # aihwkit's ideal forward (RPUCuda: is_perfect, or mv_type IDEAL, disregards every other
        # forward setting): no DAC, ADC, bounds, noise or IR drop.
        return {"inp_bound": 1.0, "inp_res_bits": 0, "out_bound": 0.0, "out_res_bits": 0, "out_noise": 0.0,
                "noise_management": "abs_max", "bound_management": "none", "max_bm_factor": float(_FORWARD_MAPPED["max_bm_factor"]),
                "max_bm_res": _FORWARD_MAPPED["max_bm_res"], "w_noise": 0.0, "w_noise_type": "additive_constant",
                "ir_drop": 0.0, "ir_drop_g_ratio": _AIMC_G_RATIO}
    if mv != "onepass":
        r.refuse("forward.mv_type", _get(fwd, "mv_type", None), "aimc runs one pass for positive and negative inputs",
                 "set it to AnalogMVType.ONE_PASS (aihwkit's default)")
    for name, (default, why) in _FORWARD_UNMODELLED.items():
        r.default_only(f"forward.{name}", _get(fwd, name, default), default, why)
    r.unknown_fields(fwd, "forward", set(_FORWARD_UNMODELLED) | set(_FORWARD_MAPPED))

    d = _FORWARD_MAPPED
    nm = _enum(_get(fwd, "noise_management", d["noise_management"]))
    bm = _enum(_get(fwd, "bound_management", d["bound_management"]))
    wnt = _enum(_get(fwd, "w_noise_type", d["w_noise_type"]))
    p: dict[str, Any] = {}
    if nm not in ("none", "absmax", "constant"):
        r.refuse("forward.noise_management", _get(fwd, "noise_management", None), "aimc's noise management is abs-max, constant or none",
                 "use NoiseManagementType.ABS_MAX (aihwkit's default), CONSTANT or NONE")
    if bm not in ("none", "iterative"):
        r.refuse("forward.bound_management", _get(fwd, "bound_management", None), "aimc's bound management is iterative or none",
                 "use BoundManagementType.ITERATIVE (aihwkit's default) or BoundManagementType.NONE")
    if wnt not in ("none", "additiveconstant", "pcmread"):
        r.refuse("forward.w_noise_type", _get(fwd, "w_noise_type", None), "aimc's weight noise is additive-constant or PCM-read",
                 "use WeightNoiseType.NONE (aihwkit's default), ADDITIVE_CONSTANT or PCM_READ")

    inp_bound = r.num(fwd, "forward.inp_bound", d["inp_bound"])
    if not inp_bound > 0.0:
        r.refuse("forward.inp_bound", inp_bound, "no input bound (aihwkit reads <= 0 as unbounded inputs and no DAC)",
                 "give the DAC range, > 0 (aihwkit's default 1.0)")
    elif nm != "none" and inp_bound != 1.0:
        r.refused.append(f"forward.inp_bound = {inp_bound!r} with forward.noise_management = {_show(_get(fwd, 'noise_management', None))}: "
                         "noise management scales each input to [-1, 1], so the DAC range must be 1 (aihwkit itself stops on "
                         "this); set inp_bound = 1.0, or noise_management = NoiseManagementType.NONE")
    p["inp_bound"] = inp_bound if inp_bound > 0.0 else 1.0
    p["inp_res_bits"] = _bits("forward.inp_res", r.num(fwd, "forward.inp_res", d["inp_res"]), r)
    out_bound = r.num(fwd, "forward.out_bound", d["out_bound"])
    if not math.isfinite(out_bound) or out_bound <= 0.0:
        # RPUCuda: an output bound <= 0 (or infinite) clips nothing, and its ADC step (out_res
        # times 2·out_bound) is <= 0: no quantisation.
        p["out_bound"], p["out_res_bits"] = 0.0, 0
    else:
        p["out_bound"] = out_bound
        p["out_res_bits"] = _bits("forward.out_res", r.num(fwd, "forward.out_res", d["out_res"]), r)
    p["out_noise"] = r.num(fwd, "forward.out_noise", d["out_noise"])
    # Gaussian noise on every input line after the DAC (rpucuda's prepareInput); written only
    # when set, so a default configuration's periphery is unchanged.
    inp_noise = r.num(fwd, "forward.inp_noise", d["inp_noise"])
    if not (math.isfinite(inp_noise) and inp_noise >= 0.0):
        r.refuse("forward.inp_noise", inp_noise, "a noise level must be a finite number >= 0", "give a number >= 0 (aihwkit's default 0.0)")
    elif inp_noise > 0.0:
        p["inp_noise"] = inp_noise
    p["noise_management"] = {"none": "none", "constant": "constant"}.get(nm, "abs_max")
    # rpucuda's computeNoiseManagement reads nm_thres only when > 0: abs-max's scale saturates at
    # it, constant's is it (1 otherwise); NONE ignores it.
    thres = r.num(fwd, "forward.nm_thres", d["nm_thres"])
    if not math.isfinite(thres):
        r.refuse("forward.nm_thres", thres, "a threshold must be finite", "give a number, or 0 (aihwkit's default: none)")
    elif thres > 0.0 and nm != "none":
        p["nm_thres"] = thres
    p["bound_management"] = "none" if bm == "none" else "iterative"
    p["max_bm_factor"] = r.num(fwd, "forward.max_bm_factor", d["max_bm_factor"])
    p["max_bm_res"] = r.num(fwd, "forward.max_bm_res", d["max_bm_res"])
    # WeightNoiseType.NONE ignores w_noise (aihwkit's default type): no weight noise.
    p["w_noise"] = 0.0 if wnt == "none" else r.num(fwd, "forward.w_noise", d["w_noise"])
    p["w_noise_type"] = "pcm_read" if wnt == "pcmread" else "additive_constant"
    p["ir_drop"] = r.num(fwd, "forward.ir_drop", d["ir_drop"])
    p["ir_drop_g_ratio"] = _g_ratio(r.num(fwd, "forward.ir_drop_g_ratio", d["ir_drop_g_ratio"]))
    return p


def _g_ratio(v: float) -> float:
    """aimc writes aihwkit's default ratio, 1/0.35/5e-6 = 571428.571..., as 571428.6 (7e-8
    apart): the default maps to aimc's default, so a default configuration is aimc's own; any
    other value maps as it is."""
    return _AIMC_G_RATIO if v == _FORWARD_MAPPED["ir_drop_g_ratio"] else v


def _mapping(m, r: _Reader, max_out: int | None) -> tuple[dict, dict]:
    """MappingParameter as (`[tile]`, the periphery's weight-scaling fields)."""
    r.unknown_fields(m, "mapping", _MAPPING_KNOWN)
    if not _get(m, "digital_bias", True):
        r.refuse("mapping.digital_bias", False, "aimc adds the bias digitally, not as an analog column",
                 "set it to True (aihwkit's default)")
    tile = {}
    for name, key in (("max_input_size", "max_in"), ("max_output_size", "max_out")):
        v = _get(m, name, 512)
        whole = isinstance(v, int) and not isinstance(v, bool) or isinstance(v, float) and v.is_integer()
        if name == "max_output_size" and whole and v == 0 and max_out is not None:
            # aihwkit's 0: every layer's outputs on one tile, as the largest layer's outputs give.
            tile[key] = int(max_out)
            continue
        if not whole or v < 1:
            r.refuse(f"mapping.{name}", v, "aimc splits every layer into tiles of a given size, where aihwkit's 0 keeps each layer on one tile",
                     "give the tile size, e.g. 512 (aihwkit's default), or the largest layer's size for one tile per layer")
        elif name == "max_input_size" and v > _MAX_TILE_IN:
            r.refuse(f"mapping.{name}", v, f"aimc's tiles take at most {_MAX_TILE_IN} inputs", f"use at most {_MAX_TILE_IN}")
        else:
            tile[key] = int(v)
    omega = r.num(m, "mapping.weight_scaling_omega", 0.0)
    if not (math.isfinite(omega) and omega >= 0.0):
        r.refuse("mapping.weight_scaling_omega", omega, "a weight scale must be finite and >= 0",
                 "use 0.0 (raw weights in the tile, aihwkit's default) or ω > 0")
        omega = 0.0
    # aihwkit reads weight_scaling_columnwise only with ω > 0 (periphery.apply_weight_scaling).
    columnwise = bool(_get(m, "weight_scaling_columnwise", False)) and omega > 0.0
    if _get(m, "learn_out_scaling", False) and (omega <= 0.0 or bool(_get(m, "out_scaling_columnwise", False)) and not columnwise):
        # The learned scales multiply the outputs digitally. Folded into the weights aimc is given
        # (aihwkit's get_weights() applies them; aimc.from_torch reads that), they divide out of the
        # tile again wherever the mapping rescales at least as finely: every column with
        # columnwise scaling, the whole tile for one scale per tile.
        r.refuse("mapping.learn_out_scaling", True, "learned output scales that the weight mapping would not divide out again "
                 "(one per column needs weight_scaling_columnwise, and any needs weight_scaling_omega > 0)",
                 "set weight_scaling_omega > 0 (with weight_scaling_columnwise = True for out_scaling_columnwise), or fold the "
                 "scales into the weights yourself and set it to False")
    return tile, {"weight_scaling_omega": omega, "weight_scaling_columnwise": columnwise}


_DRIFT_KEYS = {"g_lst": "g", "nu_mean_lst": "nu_mean", "nu_std_lst": "nu_std"}


def _drift_table(nm, r: _Reader) -> dict | None:
    """CustomDriftPCMLikeNoiseModel's `custom_drift_model` as aimc's `device.drift_table` (the
    values are checked by aimc, which names device.drift_table's fields)."""
    m = getattr(nm, "custom_drift_model", None)
    if not isinstance(m, dict) or set(m) != set(_DRIFT_KEYS):
        r.refused.append(f"noise_model.custom_drift_model = {_show(m)}: give a dict of the lists g_lst, nu_mean_lst and nu_std_lst "
                         "(aihwkit's CustomDriftPCMLikeNoiseModel)")
        return None
    table = {}
    for key, field in _DRIFT_KEYS.items():
        try:
            table[field] = [float(v) for v in m[key]]
        except (TypeError, ValueError):
            r.refused.append(f"noise_model.custom_drift_model[{key!r}] = {_show(m[key])} is not a list of numbers")
            return None
    return table


# aihwkit's converters that hold a weight on several conductance pairs (inference/converter/
# conductance.py): their f_lst maps to aimc's `device.pair_significance`.
_PAIR_CONVERTERS = ("NPairConductanceConverter", "DualPairConductanceConverter")


def _g_max(nm, default: float, r: _Reader, pairs: dict | None = None) -> float:
    """The noise model's g_max, its SinglePairConductanceConverter checked against aimc's mapping
    (g_min 0, the same g_max). Where the caller passes `pairs`, an NPairConductanceConverter or
    DualPairConductanceConverter maps too: its f_lst (significance factors, least significant
    first) goes into `pairs["pair_significance"]`."""
    conv = getattr(nm, "g_converter", None)
    g_max = r.num(nm, "noise_model.g_max", default)
    if conv is None:
        return g_max
    kind = _kind(conv)
    if kind in _PAIR_CONVERTERS and pairs is not None:
        f = getattr(conv, "f_lst", None)
        try:
            f = [float(v) for v in f]
        except (TypeError, ValueError):
            r.refused.append(f"noise_model.g_converter.f_lst = {_show(f)} is not a list of numbers")
            f = None
        if f is not None and not (1 <= len(f) <= 4 and all(math.isfinite(v) and v > 0.0 for v in f)):
            r.refuse("noise_model.g_converter.f_lst", f, "aimc holds a weight on 1 to 4 conductance pairs, each of significance > 0",
                     "give 1 to 4 positive factors")
        elif f is not None and f != [1.0]:
            pairs["pair_significance"] = f
    elif kind != "SinglePairConductanceConverter":
        more = ", NPairConductanceConverter or DualPairConductanceConverter" if pairs is not None else ""
        r.refused.append(f"noise_model.g_converter is {kind}; aimc maps {_kind(nm)}'s weights with aihwkit's "
                         f"SinglePairConductanceConverter (the default){more}")
        return g_max
    g_min = r.num(conv, "noise_model.g_converter.g_min", 0.0)
    if g_min != 0.0:
        r.refuse("noise_model.g_converter.g_min", g_min, "aimc's devices map a zero weight to 0 µS", "set it to 0.0 (aihwkit's default)")
    cg = r.num(conv, "noise_model.g_converter.g_max", g_max)
    if cg != g_max:
        r.refused.append(f"noise_model.g_max = {g_max!r} differs from noise_model.g_converter.g_max = {cg!r}: aimc has "
                         "one g_max for the mapping and the noise; make them equal")
    return g_max


def _base_fields(nm, name: str, g_max: float, t0: float, t_read: float, r: _Reader) -> dict:
    """The fields every mapped model has: the preset, g_max, the times and the three scales."""
    return {
        "model": name,
        "g_max": g_max,
        "t0": r.num(nm, "noise_model.t_0", t0),
        "t_read": r.num(nm, "noise_model.t_read", t_read),
        "prog_noise_scale": r.num(nm, "noise_model.prog_noise_scale", 1.0),
        "read_noise_scale": r.num(nm, "noise_model.read_noise_scale", 1.0),
        "drift_scale": r.num(nm, "noise_model.drift_scale", 1.0),
    }


def _prog_coeff(nm, default: list, r: _Reader) -> list | None:
    """The programming polynomial's coefficients (`default` where the object has none); None,
    with the refusal noted, where they are not numbers or more than a cubic's."""
    coeff = _get(nm, "prog_coeff", None)
    try:
        coeff = list(default) if coeff is None else [float(c) for c in coeff]
    except (TypeError, ValueError):
        r.refused.append(f"noise_model.prog_coeff = {_show(coeff)} is not a list of numbers")
        return None
    if len(coeff) == 0 or len(coeff) > 4 and any(c != 0.0 for c in coeff[4:]):
        r.refuse("noise_model.prog_coeff", coeff, "aimc's programming noise is a polynomial of degree <= 3 in g_T/g_max",
                 "give at most 4 coefficients")
        return None
    return coeff


def _state_independent(nm, r: _Reader) -> dict:
    """StateIndependentNoiseModel (inference/noise/custom.py) in aimc's device fields, exactly:
    programming noise c0 + c1 x + c2 x² µS (x = g_T/g_max, not rescaled: the reference g_max is
    g_max itself), ν = |ν_mean + ν_std·N| at every conductance (a flat drift table over [0, g_max]),
    and read noise |g_drift|/g_max·ρ·sqrt(ln((t + t_read)/(2 t_read)))·N (Q_s = 1/g_max at every
    conductance: a constant fit)."""
    pairs: dict = {}
    g_max = _g_max(nm, _PCM_G_REF, r, pairs)
    device = _base_fields(nm, "pcm", g_max, 20.0, 250.0e-9, r)
    device.update(pairs)
    coeff = _prog_coeff(nm, [0.2, 0.0, 0.0], r) or [0.2]
    mean, std = r.num(nm, "noise_model.drift_nu_mean", 0.1), r.num(nm, "noise_model.drift_nu_std", 0.05)
    q = 1.0 / g_max if g_max > 0 else 0.0
    device.update({
        "prog_coeff": (coeff + [0.0] * 4)[:4],
        "prog_g_ref": g_max,
        "drift_table": {"g": [0.0, g_max], "nu_mean": [mean, mean], "nu_std": [std, std]},
        "q_s": {"kind": "log_clamp_poly", "brk": 0.0, "a": 0.0, "b": 0.0, "lo": 0.0, "hi": 0.0, "c": [q, 0.0, 0.0, 0.0]},
    })
    return device


def _floats(values) -> list | None:
    """A list (tuple, array) of numbers as floats; None for anything else (a string, a bool, a
    dict, a number alone)."""
    if isinstance(values, (str, bytes, dict)):
        return None
    try:
        items = list(values)
    except TypeError:
        return None
    if any(isinstance(v, (bool, str, bytes)) for v in items):
        return None
    try:
        return [float(v) for v in items]
    except (TypeError, ValueError):
        return None


def _coeff_reference(nm, g_max: float, r: _Reader, missing: str) -> float | None:
    """The ReRAM models' `coeff_g_max_reference` (their σ is scaled by g_max / it); None, with the
    refusal noted (`missing` says why it must be there), where it is absent or not > 0."""
    if getattr(nm, "coeff_g_max_reference", None) is None:
        r.refused.append(f"noise_model.coeff_g_max_reference is missing: {missing}")
        return None
    ref = r.num(nm, "noise_model.coeff_g_max_reference", g_max)
    if not (math.isfinite(ref) and ref > 0.0):
        r.refuse("noise_model.coeff_g_max_reference", ref, "the g_max the coefficients were fitted at must be a finite number > 0",
                 "set it to the g_max of the fit, µS (g_max itself: the coefficients used as they are)")
        return None
    return ref


def _relax_table(nm, r: _Reader) -> dict | None:
    """ReRamWan2022NoiseModel's `coeff_dic` (time in s -> coefficients, c0 first) as aimc's
    `device.relax_table` (times ascending, each row padded to 5 coefficients); None, with the
    refusal noted, where it is not a dict of number -> list of numbers or holds more than aimc
    keeps. The values themselves (times > 0, finite coefficients) are checked by aimc, which names
    device.relax_table's fields."""
    dic = _get(nm, "coeff_dic", None)
    if dic is None:  # aihwkit's constructor puts its default table in place of None
        dic = _RERAM_COEFF_DIC
    if not isinstance(dic, dict) or not dic or _floats(dic.keys()) is None:
        r.refused.append(f"noise_model.coeff_dic = {_show(dic)}: give a dict of time (s) -> list of coefficients (µS, c0 first), "
                         "as aihwkit's ReRamWan2022NoiseModel takes it, e.g. {1.0: [0.348, 16.030, -43.853, 45.393, -16.815]}")
        return None
    times = sorted(dic, key=float)
    if len(times) > _RELAX_TIMES:
        r.refused.append(f"noise_model.coeff_dic has {len(times)} times ({', '.join(f'{float(t):g} s' for t in times)}), which aimc "
                         f"does not model (its relaxation table holds at most {_RELAX_TIMES}); keep at most {_RELAX_TIMES} of them, "
                         "the times you read at (the smallest also gives the programming σ)")
        return None
    rows = []
    for t in times:
        coeff = _floats(dic[t])
        if not coeff:
            r.refused.append(f"noise_model.coeff_dic[{t!r}] = {_show(dic[t])} is not a list of numbers; give 1 to {_RELAX_COEFFS} "
                             "coefficients (µS, c0 first)")
            return None
        if len(coeff) > _RELAX_COEFFS and any(c != 0.0 for c in coeff[_RELAX_COEFFS:]):
            r.refuse(f"noise_model.coeff_dic[{t!r}]", coeff, "aimc's relaxation σ is a polynomial of degree <= 4 in g_T/g_max",
                     f"give at most {_RELAX_COEFFS} coefficients")
            return None
        rows.append((coeff + [0.0] * _RELAX_COEFFS)[:_RELAX_COEFFS])
    return {"t": [float(t) for t in times], "coeff": rows}


def _reram(nm, r: _Reader) -> dict:
    """ReRamWan2022NoiseModel (inference/noise/reram.py) as aimc's `reram` device: its g_max, its
    `coeff_dic` as `device.relax_table` (always written, so the mapping is explicit), and its one
    `noise_scale`, which scales the programming and every read alike, as both `prog_noise_scale`
    and `drift_scale`. aihwkit programs with the first (smallest) time's σ and reads only at the
    table's times, as aimc does."""
    g_max = _g_max(nm, _RERAM_G_MAX, r)
    scale = r.num(nm, "noise_model.noise_scale", 1.0)
    device: dict[str, Any] = {"model": "reram", "g_max": g_max, "prog_noise_scale": scale, "drift_scale": scale}
    table = _relax_table(nm, r)
    ref = _coeff_reference(nm, g_max, r, "aihwkit's ReRamWan2022NoiseModel stores it only when it is not given (as g_max), "
                           "and fails when it programs otherwise; set it on the noise model, the g_max the coefficients were fitted at")
    if ref is None:
        return device
    if table is not None:
        if ref != g_max:
            # aihwkit's _apply_poly multiplies σ = Σ c_i x^i by g_max / coeff_g_max_reference; aimc
            # uses the table's coefficients in µS as they are, so the factor goes into them.
            table["coeff"] = [[c * (g_max / ref) for c in row] for row in table["coeff"]]
        device["relax_table"] = table
    return device


def _cmo_range(nm, r: _Reader) -> tuple[float, float]:
    """ReRamCMONoiseModel's conductance range (g_max, g_min), µS: its own, checked against its
    SingleDeviceConductanceConverter's (aimc maps each tile's weights affinely from [min W, max W]
    onto the same [g_min, g_max])."""
    g_max = r.num(nm, "noise_model.g_max", _CMO_G_MAX)
    g_min = r.num(nm, "noise_model.g_min", _CMO_G_MIN)
    conv = getattr(nm, "g_converter", None)
    if conv is not None and _kind(conv) != "SingleDeviceConductanceConverter":
        r.refused.append(f"noise_model.g_converter is {_kind(conv)}; aimc maps ReRamCMONoiseModel's weights onto one device "
                         "each, aihwkit's SingleDeviceConductanceConverter (the one its constructor makes)")
    elif conv is not None:
        for name, v in (("g_max", g_max), ("g_min", g_min)):
            cv = r.num(conv, f"noise_model.g_converter.{name}", v)
            if cv != v:
                r.refused.append(f"noise_model.{name} = {v!r} differs from noise_model.g_converter.{name} = {cv!r}: aimc has one "
                                 "conductance range for the mapping and the noise; make them equal")
    if not (math.isfinite(g_max) and g_max > 0.0):
        r.refuse("noise_model.g_max", g_max, "the largest conductance, µS, must be a finite number > 0",
                 f"set it to the device's, e.g. {_CMO_G_MAX} (aihwkit's default)")
    elif not (math.isfinite(g_min) and 0.0 <= g_min < g_max):
        r.refuse("noise_model.g_min", g_min, f"the one device's range must be 0 <= g_min < g_max = {g_max!r} µS",
                 f"set it in [0, g_max), e.g. {_CMO_G_MIN} (aihwkit's default)")
    return g_max, g_min


def _cmo_prog_coeff(nm, g_max: float, r: _Reader) -> list | None:
    """ReRamCMONoiseModel's programming σ as aimc's `prog_coeff` at `prog_g_ref = g_max`: the row
    of `coeff_dict` its `apply_programming_noise_to_conductance` picks (`acceptance_range` where
    that is a key, else the smallest key), σ = Σ c_i g^i with g in µS (its `_apply_poly` does not
    divide by g_max) rewritten in x = g/g_max as c_i·g_max^i, times g_max/coeff_g_max_reference
    (1 as its constructor sets it). None, with the refusal noted, where that cannot be read."""
    dic = _get(nm, "coeff_dict", None)
    if dic is None:  # aihwkit's constructor puts its default table in place of None
        dic = _CMO_COEFF_DICT
    if not isinstance(dic, dict) or not dic or _floats(dic.keys()) is None:
        r.refused.append(f"noise_model.coeff_dict = {_show(dic)}: give a dict of acceptance range -> list of coefficients (µS, "
                         "c0 first, in powers of g in µS), as aihwkit's ReRamCMONoiseModel takes it, e.g. "
                         "{0.2: [0.00081107, 0.00106879]}")
        return None
    acceptance = r.num(nm, "noise_model.acceptance_range", _CMO_ACCEPTANCE)
    key = acceptance if acceptance in dic else min(dic, key=float)
    coeff = _floats(dic[key])
    if not coeff:
        r.refused.append(f"noise_model.coeff_dict[{key!r}] = {_show(dic[key])} is not a list of numbers; give 1 to "
                         f"{_PROG_COEFFS} coefficients (µS, c0 first, in powers of g in µS)")
        return None
    if len(coeff) > _PROG_COEFFS and any(c != 0.0 for c in coeff[_PROG_COEFFS:]):
        r.refuse(f"noise_model.coeff_dict[{key!r}]", coeff, "aimc's programming noise is a polynomial of degree <= 3 in g",
                 f"give at most {_PROG_COEFFS} coefficients")
        return None
    ref = _coeff_reference(nm, g_max, r, "aihwkit's ReRamCMONoiseModel sets it to g_max in its constructor and scales σ by "
                           "g_max / coeff_g_max_reference when it programs; set it on the noise model (g_max: the coefficients "
                           "used as they are)")
    if ref is None:
        return None
    coeff = [c * g_max**i for i, c in enumerate((coeff + [0.0] * _PROG_COEFFS)[:_PROG_COEFFS])]
    if ref != g_max:
        coeff = [c * (g_max / ref) for c in coeff]
    return coeff


def _cmo_dict(nm, name: str, default: dict, r: _Reader) -> dict | None:
    """ReRamCMONoiseModel's `decay_dict` or `read_dict` (its default for None, which its
    constructor replaces); None, with the refusal noted, for anything but a dict."""
    d = _get(nm, name, None)
    if d is None:
        return default
    if not isinstance(d, dict):
        r.refused.append(f"noise_model.{name} = {_show(d)} is not a dict; give it as aihwkit's ReRamCMONoiseModel takes it, "
                         f"e.g. its default {default!r}")
        return None
    return d


def _log_relax(nm, r: _Reader) -> tuple[dict | None, float]:
    """ReRamCMONoiseModel's `decay_dict` and `read_dict` as aimc's `device.log_relax` ({mean,
    std, read_k}) and `device.t_read`. aimc's relaxation is linear in ln t, as aihwkit's
    `apply_drift_noise_to_conductance` reads it: the shift mean[0]·ln t, the spread
    std[0]·ln t + std[1], the read noise K·log10(g)·sqrt(ln((t + t_read)/(2 t_read)))."""
    t_read = _CMO_READ["t_read"]
    decay = _cmo_dict(nm, "decay_dict", _CMO_DECAY, r)
    read = _cmo_dict(nm, "read_dict", _CMO_READ, r)
    mean = std = None
    if decay is not None:
        mean, std = _floats(decay.get("mean", ())), _floats(decay.get("std", ()))
        if mean is None or std is None or len(mean) != 1 or len(std) != 2:
            r.refused.append(f"noise_model.decay_dict = {_show(decay)}: aimc's relaxation is linear in ln t, a shift mean[0]·ln t "
                             "and a spread std[0]·ln t + std[1] (µS); give exactly one 'mean' and two 'std' coefficients, as "
                             f"aihwkit's default {_CMO_DECAY!r}")
            mean = std = None
    k = None
    if read is not None:
        missing = [key for key in ("K", "t_read") if key not in read]
        if missing:
            r.refused.append(f"noise_model.read_dict = {_show(read)} lacks {' and '.join(repr(m) for m in missing)}, which aihwkit's "
                             "ReRamCMONoiseModel reads at every read; give both, the read-noise amplitude K (µS per decade of g) "
                             f"and the read's duration t_read (s), as its default {_CMO_READ!r}")
        else:
            if _number(read["K"]):
                k = float(read["K"])
            else:
                r.refused.append(f"noise_model.read_dict['K'] = {_show(read['K'])} is not a number")
            if not _number(read["t_read"]):
                r.refused.append(f"noise_model.read_dict['t_read'] = {_show(read['t_read'])} is not a number")
            elif not (math.isfinite(float(read["t_read"])) and float(read["t_read"]) > 0.0):
                r.refuse("noise_model.read_dict['t_read']", read["t_read"], "a read's duration, s, must be a finite number > 0",
                         f"set it to the read's duration, e.g. {_CMO_READ['t_read']} (aihwkit's default)")
            else:
                t_read = float(read["t_read"])
    if mean is None or k is None:
        return None, t_read
    return {"mean": mean[0], "std": std, "read_k": k}, t_read


def _number(v) -> bool:
    """Whether `v` is a number (not a bool or a string)."""
    if isinstance(v, (bool, str, bytes)):
        return False
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


def _reram_cmo(nm, r: _Reader) -> dict:
    """ReRamCMONoiseModel (inference/noise/reram.py, IBM Research Zurich's CMO/HfOx ReRAM) as
    aimc's `reram_cmo` device, every field written out: one device per weight on its
    SingleDeviceConductanceConverter's [g_min, g_max], programmed with the σ polynomial of its
    acceptance range (`_cmo_prog_coeff`), then at each read the log-time relaxation and read noise
    of `decay_dict` and `read_dict` (`_log_relax`), clamped to [g_min, g_max]; its three scales
    as they are."""
    g_max, g_min = _cmo_range(nm, r)
    relax, t_read = _log_relax(nm, r)
    device: dict[str, Any] = {
        "model": "reram_cmo",
        "g_max": g_max,
        "g_min": g_min,
        "t_read": t_read,
        "prog_noise_scale": r.num(nm, "noise_model.prog_noise_scale", 1.0),
        "read_noise_scale": r.num(nm, "noise_model.read_noise_scale", 1.0),
        "drift_scale": r.num(nm, "noise_model.drift_scale", 1.0),
    }
    coeff = _cmo_prog_coeff(nm, g_max, r)
    if coeff is not None:
        device["prog_coeff"] = coeff
        device["prog_g_ref"] = g_max
    if relax is not None:
        device["log_relax"] = relax
    return device


def _device(nm, r: _Reader) -> dict:
    """PCMLikeNoiseModel as aimc's `pcm` device, CustomDriftPCMLikeNoiseModel as the same with its
    drift table, HermesNoiseModel as `hermes` (two devices per weight, its default) or `hermes1`,
    StateIndependentNoiseModel as `pcm`'s fields set to its constant noise, ReRamWan2022NoiseModel
    as `reram` with its relaxation table, ReRamCMONoiseModel as `reram_cmo` (one device per weight,
    its log-time relaxation written out)."""
    if _kind(nm) == "StateIndependentNoiseModel":
        return _state_independent(nm, r)
    if _kind(nm) == "ReRamWan2022NoiseModel":
        return _reram(nm, r)
    if _kind(nm) == "ReRamCMONoiseModel":
        return _reram_cmo(nm, r)
    key = _kind(nm)
    if key == "HermesNoiseModel":
        n = getattr(nm, "num_devices", 2)
        if n not in (1, 2):
            r.refuse("noise_model.num_devices", n, "aihwkit's HERMES fits are of 1 or 2 devices per weight", "set it to 1 or 2")
            n = 2
        key = (key, n)
    if key not in _PRESETS:
        r.refused.append(f"noise_model is {_kind(nm)}; aimc maps aihwkit's PCMLikeNoiseModel (the default), "
                         "CustomDriftPCMLikeNoiseModel, HermesNoiseModel, StateIndependentNoiseModel and ReRamWan2022NoiseModel "
                         "with their SinglePairConductanceConverter, and ReRamCMONoiseModel with its "
                         "SingleDeviceConductanceConverter; use one of them")
        return {"model": "pcm"}
    name, g_max_default, t0, t_read, preset_coeff, preset_ref = _PRESETS[key]
    pairs: dict = {}
    device = _base_fields(nm, name, _g_max(nm, g_max_default, r, pairs), t0, t_read, r)
    device.update(pairs)
    coeff = _prog_coeff(nm, preset_coeff, r)
    own = coeff is not None and coeff != preset_coeff
    ref = getattr(nm, "prog_coeff_g_max_reference", None)
    if ref is None and own:
        # The constructors store the reference only when they set their own coefficients
        # (given coefficients with a given reference leave it unset, and aihwkit fails when it
        # programs); the reference must be on the object.
        r.refused.append("noise_model.prog_coeff_g_max_reference is missing beside own prog_coeff (aihwkit stores it only "
                         "when it is not given); set it on the noise model, the g_max the coefficients were fitted at")
    ref = preset_ref if ref is None else r.num(nm, "noise_model.prog_coeff_g_max_reference", preset_ref)
    if coeff is not None and (own or ref != preset_ref):
        device["prog_coeff"] = (coeff + [0.0] * 4)[:4]
        device["prog_g_ref"] = ref
    if _kind(nm) == "CustomDriftPCMLikeNoiseModel":
        table = _drift_table(nm, r)
        if table is not None:
            device["drift_table"] = table
    return device


def _drift_compensation(dc, r: _Reader) -> str:
    if dc is None:
        return "off"
    gdc = _GDC.get(_kind(dc))
    if gdc is None:
        r.refused.append(f"drift_compensation is {_kind(dc)}; aimc maps None, GlobalDriftCompensation, "
                         "GlobalDriftCompensationWithExactReference and PerColumnDriftCompensation")
        return "off"
    return gdc


def _inference_only(cfg, r: _Reader) -> None:
    """The settings that act in training only are not read; those that also change inference are
    refused: a remap type, a modifier active during test, input-range learning, another tile."""
    remap = getattr(cfg, "remap", None)
    rtype = _enum(_get(remap, "type", "NONE"))
    if rtype != "none":
        mapping = getattr(cfg, "mapping", None)
        omega = float(_get(mapping, "weight_scaling_omega", 0.0) or 0.0)
        columnwise = bool(_get(mapping, "weight_scaling_columnwise", False)) and omega > 0.0
        wmax = _get(remap, "remapped_wmax", 1.0)
        if not (rtype in _REMAP_AS_MAPPING and _REMAP_AS_MAPPING[rtype] == columnwise and omega > 0.0 and wmax == omega):
            r.refuse("remap.type", remap.type, "remapping resets the mapping scales that aimc takes from mapping.weight_scaling_omega; "
                     "only CHANNELWISE_SYMMETRIC with columnwise weight scaling, or LAYERWISE_SYMMETRIC without, at remapped_wmax = "
                     "weight_scaling_omega leaves the weights as the mapping does",
                     "set it to WeightRemapType.NONE (aihwkit's default), or make the mapping match it")
    mod = getattr(cfg, "modifier", None)
    pdrop = r.num(mod, "modifier.pdrop", 0.0)
    if _get(mod, "enable_during_test", False) and (_enum(_get(mod, "type", "NONE")) not in ("none", "copy") or pdrop > 0.0):
        r.refuse("modifier.enable_during_test", True, f"the weight modifier, {_show(_get(mod, 'type', None))}, would also perturb "
                 "inference, where aimc's device noise is the noise_model's", "set it to False (aihwkit's default)")
    # pre_post.input_range: the ranges are the model's (the model file's `PREFIX.input_range`,
    # from aimc.from_torch of the trained analog model); its other fields act in training only.
    tile = getattr(cfg, "tile_class", None)
    name = _class_name(tile)
    if tile is not None and name not in _TILES:
        r.refuse("tile_class", tile, "aimc follows aihwkit's InferenceTile (RPUCuda's inference tile) and TorchInferenceTile "
                 "(TorchInferenceRPUConfig's)", "leave it at InferenceTile (aihwkit's default)")
    elif name == "TorchInferenceTile":
        _torch_tile(cfg, r)


def _class_name(v) -> str | None:
    """A class, or its name as a string, as its name."""
    return v if isinstance(v, str) else getattr(v, "__name__", None)


def _torch_tile(cfg, r: _Reader) -> None:
    """TorchInferenceRPUConfig's tile: the same programming, drift and drift compensation
    (InferenceTileWithPeriphery), the same DAC, output noise and ADC in the same order, but its
    iterative bound management reruns the whole mini-batch when any output of it saturates
    (analog_mvm.py), where RPUCuda and aimc rerun the saturated vector alone: a batch-dependent
    result aimc does not reproduce, so it is refused. What the tile itself refuses (ConfigError:
    per-read weight noise, IR drop) is refused here too, rather than mapped to a run aihwkit
    cannot make."""
    sim = getattr(cfg, "simulator_tile_class", None)
    if sim is not None and _class_name(sim) != _TILES["TorchInferenceTile"]:
        r.refuse("simulator_tile_class", sim, "TorchInferenceTile runs on TorchSimulatorTile",
                 "leave it at TorchSimulatorTile (TorchInferenceRPUConfig's default)")
    fwd = getattr(cfg, "forward", None)
    if _get(fwd, "is_perfect", False) or _enum(_get(fwd, "mv_type", "ONE_PASS")) == "ideal":
        return
    bm = _get(fwd, "bound_management", "ITERATIVE")
    if _enum(bm) != "none":
        r.refuse("forward.bound_management", bm, "TorchInferenceTile reruns the whole mini-batch at a halved input scale when any "
                 "output of it saturates, so a vector's result depends on its batch; aimc, as RPUCuda's InferenceTile, reruns the "
                 "saturated vector alone", "set it to BoundManagementType.NONE, or use InferenceRPUConfig (whose bound management "
                 "aimc runs)")
    for field, default, what in (("w_noise", 0.0, "per-read weight noise"), ("ir_drop", 0.0, "IR drop")):
        v = _get(fwd, field, default)
        if v != default:
            r.refuse(f"forward.{field}", v, f"TorchInferenceTile does not model {what} (aihwkit raises a ConfigError for it)",
                     f"set it to {_show(default)}, or use InferenceRPUConfig")
    wt = _get(fwd, "w_noise_type", "NONE")
    if _enum(wt) != "none":
        r.refuse("forward.w_noise_type", wt, "TorchInferenceTile does not model per-read weight noise (aihwkit raises a "
                 "ConfigError for it)", "set it to WeightNoiseType.NONE, or use InferenceRPUConfig")


def from_aihwkit(rpu_config, max_out: int | None = None) -> dict:
    """aimc's settings for an aihwkit `InferenceRPUConfig`: a dict of the experiment's `gdc`
    and its `device`, `periphery` and `tile` tables, e.g.

        {"gdc": "readout", "device": {"model": "pcm", "g_max": 25.0, ...},
         "periphery": {"inp_res_bits": 7, "out_res_bits": 9, "out_bound": 12.0, ...},
         "tile": {"max_in": 512, "max_out": 512}}

    Every entry point takes the configuration itself (`rpu_config=`: `aimc.classifier(layers, x,
    y, rpu_config=cfg)`, `aimc.run(path, rpu_config=cfg)`); this dict is what they set, to read,
    or to write into an experiment file (`aimc.to_toml`). A setting aimc does not model raises a
    ValueError naming its attribute path and value (`forward.inp_noise = 0.01`), every such
    setting in one message; a setting at aihwkit's default passes. aihwkit is not imported:
    attributes are read by name (docs/aihwkit.md has the table). `max_out` is the tile output
    count aihwkit's `mapping.max_output_size = 0` (every layer's outputs on one tile) maps to: the
    model's largest layer output count, which the keyword calls pass; without it such a
    configuration is refused. `pre_post.input_range` (learned input ranges, as in aihwkit's
    StandardHWATrainingPreset) is the model's: the ranges travel with the layers (`from_torch`
    of the trained analog model reads them), not in these settings."""
    # InferenceRPUConfig or a subclass of it (aihwkit's presets, e.g. StandardHWATrainingPreset).
    if "InferenceRPUConfig" not in {c.__name__ for c in type(rpu_config).__mro__}:
        raise ValueError(f"from_aihwkit: rpu_config is {_kind(rpu_config)}; aimc maps aihwkit's InferenceRPUConfig "
                         "(RPUCuda's inference tile: PCM noise model, drift compensation, IOParameters periphery)")
    r = _Reader()
    # aihwkit's parts are objects whose attributes are read; a dict would be read as defaults.
    for part in ("forward", "mapping", "noise_model", "drift_compensation", "clip", "remap", "modifier", "pre_post"):
        value = getattr(rpu_config, part, None)
        if isinstance(value, (dict, list, tuple, str, bytes, int, float)):
            raise ValueError(f"from_aihwkit: rpu_config.{part} is a {type(value).__name__}; give aihwkit's object "
                             f"(e.g. InferenceRPUConfig().{part} with its attributes set), whose attributes are read by name")
    r.unknown_fields(rpu_config, "rpu_config", _CONFIG_KNOWN)
    periphery = _forward(getattr(rpu_config, "forward", None), r)
    tile, scaling = _mapping(getattr(rpu_config, "mapping", None), r, max_out)
    device = _device(getattr(rpu_config, "noise_model", None), r)
    gdc = _drift_compensation(getattr(rpu_config, "drift_compensation", None), r)
    if periphery.get("inp_noise", 0.0) > 0.0 and gdc != "off":
        # aimc's GDC readout with input noise adds the lines' noise to the output noise alone.
        for name in ("w_noise", "ir_drop"):
            if periphery.get(name, 0.0) > 0.0:
                r.refused.append(f"forward.inp_noise = {periphery['inp_noise']!r} with forward.{name} = {periphery[name]!r} under "
                                 f"drift compensation: aimc models the readout with input noise and output noise only, not with "
                                 f"{name}; set drift_compensation = None, or inp_noise or {name} to 0")
    _inference_only(rpu_config, r)
    r.raise_if_any()
    periphery.update(scaling)
    return {"gdc": gdc, "device": device, "periphery": periphery, "tile": tile}


# aihwkit's weight modifiers (WeightModifierType) that aimc's training draws, by their aimc name
# (src/train/modifier.rs), and the fields of WeightModifierParameter each reads.
_MODIFIERS = {"addnormal": ("gaussian", ("std_dev",)), "multnormal": ("mult_normal", ("std_dev",)),
              "poly": ("poly", ("std_dev", "coeffs")), "discretize": ("discretize", ("res",)),
              "discretizeaddnormal": ("discretize_add_normal", ("res", "std_dev")), "dropconnect": ("drop_connect", ())}


def training_from_aihwkit(rpu_config) -> dict:
    """What an aihwkit `InferenceRPUConfig` sets for hardware-aware training beyond its forward
    pass (which `from_aihwkit` reads): its weight modifier as aimc's `[training]` weight-noise
    fields (`{"weight_noise": "gaussian", "weight_noise_std": 0.1, ...}`, or None when its type is
    NONE or COPY), its drop connect (`pdrop`, which RPUCuda applies with NONE too) and its weight clipping as `{"sigma": ..., "fixed": ..., "channel_max": ...}` (LAYER_GAUSSIAN's
    sigma; FIXED_VALUE's, or any type's, fixed_value > 0; AVERAGE_CHANNEL_MAX). A setting aimc's
    training does not draw raises a ValueError naming its attribute path and the fix."""
    refused = []

    def refuse(path, value, why, fix):
        refused.append(f"rpu_config.{path} = {_show(value)}: {why}; {fix}")

    mod = getattr(rpu_config, "modifier", None)
    kind = _enum(_get(mod, "type", "NONE"))
    weight = None
    pdrop = float(_get(mod, "pdrop", 0.0))
    if kind in _MODIFIERS:
        name, reads = _MODIFIERS[kind]
        weight = {"weight_noise": name}
        std = float(_get(mod, "std_dev", 0.0))
        if "std_dev" in reads and std:
            weight["weight_noise_std"] = std
        elif "std_dev" in reads and name != "discretize_add_normal":
            refuse("modifier.std_dev", std, f"{_show(mod.type)} with std_dev 0 draws nothing", "give std_dev > 0, e.g. 0.1, or set type NONE")
        if "res" in reads:
            res = float(_get(mod, "res", 0.0))
            if not 0 < res <= 1:
                refuse("modifier.res", res, "the discretisation step relative to max|W| must be in (0, 1]", "give the step, e.g. 1/127")
            weight["weight_noise_res"] = res
        if "coeffs" in reads:
            weight["weight_noise_coeffs"] = [float(c) for c in _get(mod, "coeffs", [0.0105392, 0.0768, -0.046925])]
        if pdrop > 0:
            weight["weight_noise_pdrop"] = pdrop
        if not _get(mod, "rel_to_actual_wmax", True):
            weight["weight_noise_wmax"] = float(_get(mod, "assumed_wmax", 1.0))
        for field, default in (("sto_round", False), ("per_batch_sample", False), ("copy_last_column", False)):
            if _get(mod, field, default) != default:
                refuse(f"modifier.{field}", _get(mod, field, default), "aimc's training does not draw it",
                       f"set it to {default} (aihwkit's default)")
    elif kind not in ("none", "copy"):
        refuse("modifier.type", _get(mod, "type", None), "aimc's training draws ADD_NORMAL, MULT_NORMAL, POLY, DISCRETIZE, "
               "DISCRETIZE_ADD_NORMAL and DROP_CONNECT", "use one of them, or NONE to train with the noise model's programming noise")
    if not 0 <= pdrop < 1:
        refuse("modifier.pdrop", pdrop, "a probability in [0, 1)", "e.g. 0.05")
    clip = getattr(rpu_config, "clip", None)
    ckind = _enum(_get(clip, "type", "NONE"))
    fixed = float(_get(clip, "fixed_value", -1.0))
    clipping = {"sigma": 0.0, "fixed": 0.0, "channel_max": False}
    if ckind != "none" and fixed > 0:
        # aihwkit: a fixed_value > 0 bounds every clipping type.
        clipping["fixed"] = fixed
    if ckind == "layergaussian":
        clipping["sigma"] = float(_get(clip, "sigma", 2.5))
    elif ckind == "averagechannelmax":
        clipping["channel_max"] = True
    elif ckind == "fixedvalue" and not fixed > 0:
        refuse("clip.fixed_value", fixed, "WeightClipType.FIXED_VALUE clips at +-fixed_value", "give it > 0, e.g. 1.0")
    elif ckind not in ("none", "fixedvalue"):
        refuse("clip.type", _get(clip, "type", None), "aimc's training clips LAYER_GAUSSIAN, FIXED_VALUE and AVERAGE_CHANNEL_MAX",
               "use one of them or NONE")
    remap = getattr(rpu_config, "remap", None)
    if _enum(_get(remap, "type", "NONE")) in _REMAP_AS_MAPPING and ckind != "none":
        # aihwkit clips the tile's weights, which the remap keeps at max|W| = remapped_wmax per
        # channel (or layer): a fixed value at or above it never clips (StandardHWATrainingPreset).
        if ckind == "fixedvalue" and fixed >= float(_get(remap, "remapped_wmax", 1.0)):
            clipping = {"sigma": 0.0, "fixed": 0.0, "channel_max": False}
        else:
            refuse("clip.type", _get(clip, "type", None), "with a remap aihwkit clips the remapped tile weights, aimc's training the "
                   "layer's weights", "use FIXED_VALUE at or above remap.remapped_wmax (no clipping), or NONE")
    if refused:
        raise ValueError("prepare: " + "; ".join(refused))
    return {"weight_noise": weight, "pdrop": pdrop, "clip": clipping}


# aihwkit's InputRangeParameter fields that aimc's training reads, with their defaults
# (src/aihwkit/simulator/parameters/pre_post.py).
_INPUT_RANGE_READ = {"init_value": 3.0, "init_from_data": 100, "init_std_alpha": 3.0, "decay": 0.001, "input_min_percentage": 0.95,
                     "gradient_scale": 1.0, "gradient_relative": True, "learn_input_range": True}


def input_range_from_aihwkit(rpu_config) -> dict | None:
    """An aihwkit configuration's `pre_post.input_range` as `aimc.torch.prepare`'s
    `input_range` (its InputRangeParameter fields), or None when it is not enabled. Output-clipping
    management (`manage_output_clipping`) is refused: aimc's training does not model it."""
    ir = _get(getattr(rpu_config, "pre_post", None), "input_range", None)
    if not _get(ir, "enable", False):
        return None
    if _get(ir, "manage_output_clipping", False):
        raise ValueError("prepare: rpu_config.pre_post.input_range.manage_output_clipping = True: aimc's training does not shrink "
                         "the range on saturated outputs; set it to False (aihwkit's default)")
    out = {}
    for name, default in _INPUT_RANGE_READ.items():
        v = _get(ir, name, default)
        out[name] = bool(v) if isinstance(default, bool) else (int(v) if isinstance(default, int) else float(v))
    return out
