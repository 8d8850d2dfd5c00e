"""`aimc.from_aihwkit`: aihwkit's InferenceRPUConfig as aimc's settings, without aihwkit. The
configurations here are stand-ins with aihwkit's class names, enum names and attribute tree; a
default one maps to aimc's defaults (the settings of the aihwkit reference case), so the case's
agreement carries over, and anything aimc does not model is refused by its attribute path."""
import dataclasses
import json
import pathlib
import re
import subprocess
import sys
from enum import Enum
from types import SimpleNamespace

import numpy as np
import pytest

import aimc

ROOT = pathlib.Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "experiments" / "aihwkit_breast_cancer.toml"


# aihwkit's enums (src/aihwkit/simulator/parameters/enums.py), as aihwkit defines them.
class NoiseManagementType(Enum):
    NONE = "None"
    ABS_MAX = "AbsMax"
    ABS_MAX_NP_SUM = "AbsMaxNPSum"
    MAX = "Max"
    CONSTANT = "Constant"
    AVERAGE_ABS_MAX = "AverageAbsMax"


class BoundManagementType(Enum):
    NONE = "None"
    ITERATIVE = "Iterative"
    ITERATIVE_WORST_CASE = "IterativeWorstCase"
    SHIFT = "Shift"


class WeightNoiseType(Enum):
    NONE = "None"
    ADDITIVE_CONSTANT = "AdditiveConstant"
    PCM_READ = "PCMRead"


class AnalogMVType(Enum):
    IDEAL = "Ideal"
    ONE_PASS = "OnePass"
    POS_NEG_SEPARATE = "PosNegSeparate"
    POS_NEG_SEPARATE_DIGITAL_SUM = "PosNegSeparateDigitalSum"
    SPLIT_MODE = "SplitMode"
    BIT_WISE = "BitWise"


class WeightClipType(Enum):
    NONE = "None"
    FIXED_VALUE = "FixedValue"
    LAYER_GAUSSIAN = "LayerGaussian"
    AVERAGE_CHANNEL_MAX = "AverageChannelMax"


class WeightModifierType(Enum):
    NONE = "None"
    DISCRETIZE = "Discretize"
    MULT_NORMAL = "MultNormal"
    ADD_NORMAL = "AddNormal"
    DISCRETIZE_ADD_NORMAL = "DiscretizeAddNormal"
    DOREFA = "DoReFa"
    POLY = "Poly"
    PCM_NOISE = "PCMNoise"
    PROG_NOISE = "ProgNoise"
    DROP_CONNECT = "DropConnect"
    COPY = "Copy"


class WeightRemapType(Enum):
    NONE = "None"
    LAYERWISE_SYMMETRIC = "LayerwiseSymmetric"
    CHANNELWISE_SYMMETRIC = "ChannelwiseSymmetric"


class PulseType(Enum):
    NONE = "None"
    STOCHASTIC_COMPRESSED = "StochasticCompressed"


class RPUDataType(Enum):
    FLOAT = "float"
    DOUBLE = "double"
    HALF = "half"


def obj(kind: str, **fields):
    """An object whose class is named `kind` (aihwkit's class name), with these attributes."""
    return type(kind, (SimpleNamespace,), {})(**fields)


def io_parameters(**changes):
    """aihwkit's IOParameters() (src/aihwkit/simulator/parameters/io.py)."""
    fields = dict(
        is_perfect=False, mv_type=AnalogMVType.ONE_PASS, inp_bound=1.0, inp_noise=0.0, inp_res=1 / (2**7 - 2),
        inp_sto_round=False, inp_asymmetry=0.0, out_bound=12.0, out_noise=0.06, out_noise_std=0.0, out_res=1 / (2**9 - 2),
        out_sto_round=False, out_scale=1.0, out_asymmetry=0.0, bound_management=BoundManagementType.ITERATIVE,
        noise_management=NoiseManagementType.ABS_MAX, w_noise=0.0, w_noise_type=WeightNoiseType.NONE, ir_drop=0.0,
        ir_drop_g_ratio=1.0 / 0.35 / 5e-6, out_nonlinearity=0.0, out_nonlinearity_std=0.0, slope_calibration=0.0,
        v_offset_std=0.0, v_offset_w_min=-1.0, r_series=0.0, w_read_asymmetry_dtod=0.0, max_bm_factor=1000, max_bm_res=0.25,
        bm_test_negative_bound=True, nm_thres=0.0,
    )
    fields.update(changes)
    return obj("IOParameters", **fields)


def pcm_noise_model(g_max=25.0, **changes):
    """aihwkit's PCMLikeNoiseModel() as its constructor leaves it (src/aihwkit/inference/noise/pcm.py,
    its converter src/aihwkit/inference/converter/conductance.py)."""
    fields = dict(g_converter=obj("SinglePairConductanceConverter", g_max=g_max, g_min=0.0, scale_ratio=None), g_max=g_max,
                  prog_coeff_g_max_reference=25.0, prog_coeff=[0.26348, 1.9650, -1.1731], t_0=20.0, t_read=250.0e-9,
                  prog_noise_scale=1.0, read_noise_scale=1.0, drift_scale=1.0)
    fields.update(changes)
    return obj("PCMLikeNoiseModel", **fields)


def hermes_noise_model(num_devices=2, **changes):
    """aihwkit's HermesNoiseModel(num_devices=...) as its constructor leaves it
    (src/aihwkit/inference/noise/hermes.py): g_max, t_0 and the programming fit by the devices."""
    g_max = 20.7 if num_devices == 2 else 10.35
    coeff = [0.16603222, 4.71806468, -8.48101252, 4.68961419] if num_devices == 2 else [0.15781817, 2.32443916, -2.16310839, 0.68841818]
    fields = dict(num_devices=num_devices, g_converter=obj("SinglePairConductanceConverter", g_max=g_max, g_min=0.0, scale_ratio=None),
                  g_max=g_max, prog_coeff=coeff, prog_coeff_g_max_reference=g_max, t_0=300.0 if num_devices == 2 else 200.0,
                  t_read=512.0e-9, prog_noise_scale=1.0, read_noise_scale=1.0, drift_scale=1.0)
    fields.update(changes)
    return obj("HermesNoiseModel", **fields)


def reram_noise_model(**changes):
    """aihwkit's ReRamWan2022NoiseModel() as its constructor leaves it
    (src/aihwkit/inference/noise/reram.py): the converter's g_max, the reference set to it (the
    argument not given), the default coeff_dic (each list given c4 first there, reversed into c0
    first) and the unused prog_coeff_g_max_reference the default table sets."""
    fields = dict(g_converter=obj("SinglePairConductanceConverter", g_max=25.0, g_min=0.0, scale_ratio=None), g_max=25.0,
                  coeff_g_max_reference=25.0, prog_coeff_g_max_reference=40.0, noise_scale=1.0,
                  coeff_dic={1.0: [-16.815, 45.393, -43.853, 16.030, 0.348][::-1],
                             3600 * 24.0: [-16.458, 47.095, -50.773, 22.086, 0.701][::-1],
                             3600 * 24.0 * 2: [-11.934, 37.062, -43.507, 20.274, 0.782][::-1]})
    fields.update(changes)
    return obj("ReRamWan2022NoiseModel", **fields)


def reram_cmo_noise_model(**changes):
    """aihwkit's ReRamCMONoiseModel() as its constructor leaves it (src/aihwkit/inference/noise/reram.py,
    its converter SingleDeviceConductanceConverter in inference/converter/conductance.py): the
    converter's range, the reference set to g_max, the default coeff_dict (each list given c1 first
    there, reversed into c0 first), decay_dict and read_dict, and acceptance_range 0.2 (its default
    2e-2 is no key of coeff_dict, so the constructor puts the smallest key in its place)."""
    fields = dict(g_converter=obj("SingleDeviceConductanceConverter", g_max=88.199997, g_min=9.0, scale_ratio=None),
                  g_max=88.199997, g_min=9.0, coeff_g_max_reference=88.199997,
                  coeff_dict={0.2: [0.00106879, 0.00081107][::-1], 2: [0.01129027418, 0.0112185391][::-1]},
                  prog_noise_scale=1.0, read_noise_scale=1.0, drift_scale=1.0,
                  decay_dict={"mean": [-0.08900206], "std": [0.04201137, 0.41183342]},
                  read_dict={"K": 0.0277316483, "t_read": 1e-6}, acceptance_range=0.2)
    fields.update(changes)
    return obj("ReRamCMONoiseModel", **fields)


def inference_rpu_config(**changes):
    """aihwkit's InferenceRPUConfig() with all its defaults: src/aihwkit/simulator/configs/configs.py
    (InferenceRPUConfig), parameters/io.py, mapping.py (MappingParameter), inference.py
    (WeightClipParameter, WeightRemapParameter, WeightModifierParameter), pre_post.py
    (PrePostProcessingParameter, InputRangeParameter), runtime.py (RuntimeParameter), training.py
    (UpdateParameters), configs/devices.py (IdealDevice), inference/compensation/drift.py."""
    fields = dict(
        tile_class=type("InferenceTile", (), {}),
        tile_array_class=type("TileModuleArray", (), {}),
        runtime=obj("RuntimeParameter", data_type=RPUDataType.FLOAT, on_the_fly_bindings=False, offload_input=False,
                    offload_gradient=False),
        pre_post=obj("PrePostProcessingParameter", input_range=obj(
            "InputRangeParameter", enable=False, learn_input_range=True, init_value=3.0, init_from_data=100, init_std_alpha=3.0,
            decay=0.001, input_min_percentage=0.95, manage_output_clipping=False, output_min_percentage=0.95, gradient_scale=1.0,
            gradient_relative=True, calibration_info=None)),
        mapping=obj("MappingParameter", digital_bias=True, weight_scaling_omega=0.0, weight_scaling_columnwise=False,
                    weight_scaling_lr_compensation=False, learn_out_scaling=False, out_scaling_columnwise=False,
                    max_input_size=512, max_output_size=512),
        forward=io_parameters(),
        noise_model=pcm_noise_model(),
        drift_compensation=obj("GlobalDriftCompensation"),
        clip=obj("WeightClipParameter", fixed_value=-1.0, sigma=2.5, type=WeightClipType.NONE),
        remap=obj("WeightRemapParameter", remapped_wmax=1.0, max_scale_range=0.0, max_scale_ref=0.0, type=WeightRemapType.NONE),
        modifier=obj("WeightModifierParameter", std_dev=0.0, per_batch_sample=False, res=0.0, sto_round=False, dorefa_clip=0.6,
                     pdrop=0.0, enable_during_test=False, rel_to_actual_wmax=True, assumed_wmax=1.0, copy_last_column=False,
                     coeffs=[0.0105392, 0.0768, -0.046925], type=WeightModifierType.NONE, g_max=25.0, pcm_zero_thres=0.0,
                     pcm_t_inference=0.0, pcm_prob_at_reset=0.0, pcm_prob_at_gmax=0.0, pcm_prob_at_random=0.0, pcm_t0=20.0),
        device=obj("IdealDevice", construction_seed=0, diffusion=0.0, lifetime=0.0, reset_std=0.01),
        backward=io_parameters(is_perfect=True),
        update=obj("UpdateParameters", desired_bl=31, fixed_bl=True, pulse_type=PulseType.NONE, res=0, x_res_implicit=0,
                   d_res_implicit=0, d_sparsity=False, sto_round=False, update_bl_management=True, update_management=True,
                   um_grad_scale=1.0),
    )
    fields.update(changes)
    return obj("InferenceRPUConfig", **fields)


# aimc's defaults, as the reference case (experiments/aihwkit_breast_cancer.toml) runs them.
AIMC_DEFAULTS = {
    "gdc": "readout",
    "device": {"model": "pcm", "g_max": 25.0, "t0": 20.0, "t_read": 250e-9, "prog_noise_scale": 1.0, "read_noise_scale": 1.0,
               "drift_scale": 1.0},
    "periphery": {"inp_bound": 1.0, "inp_res_bits": 7, "out_bound": 12.0, "out_res_bits": 9, "out_noise": 0.06,
                  "noise_management": "abs_max", "bound_management": "iterative", "max_bm_factor": 1000.0, "max_bm_res": 0.25,
                  "w_noise": 0.0, "w_noise_type": "additive_constant", "ir_drop": 0.0, "ir_drop_g_ratio": 571428.6,
                  "weight_scaling_omega": 0.0, "weight_scaling_columnwise": False},
    "tile": {"max_in": 512, "max_out": 512},
}


def with_changes(cfg, **paths):
    """`cfg` with `forward__inp_noise=0.01`-style attributes changed (on the shared stand-ins)."""
    for key, value in paths.items():
        target = cfg
        *parents, last = key.split("__")
        for p in parents:
            target = getattr(target, p)
        setattr(target, last, value)
    return cfg


def test_the_default_config_maps_to_aimcs_defaults():
    assert aimc.from_aihwkit(inference_rpu_config()) == AIMC_DEFAULTS


def test_the_reference_case_runs_the_same_from_a_default_config(tmp_path):
    # The reference case at aimc's defaults against the same file with the default
    # InferenceRPUConfig's settings as its base: the same resolved settings and every trial equal,
    # the file's gdc axis still sweeping gdc.
    common = dict(backend="cpu", trials=40, quiet=True, set={"layer_insight_trials": 0})
    plain = aimc.run(REFERENCE, out=str(tmp_path / "plain"), **common)
    mapped = aimc.run(REFERENCE, out=str(tmp_path / "mapped"), rpu_config=inference_rpu_config(), **common)
    for key in ("device", "periphery", "tile", "gdc"):
        assert mapped.data["config"][key] == plain.data["config"][key], key
    assert [p["labels"] for p in mapped.points] == [p["labels"] for p in plain.points]
    assert {p["labels"]["gdc"] for p in mapped.points} == {"off", "readout"}
    assert [p["per_trial"] for p in mapped.points] == [p["per_trial"] for p in plain.points]


def test_non_default_settings_map_to_aimcs_fields():
    cfg = inference_rpu_config(
        forward=io_parameters(inp_res=1 / (2**8 - 2), out_res=62.0, out_noise=0.1, w_noise=0.02, w_noise_type=WeightNoiseType.PCM_READ,
                              ir_drop=1.0, ir_drop_g_ratio=2e5, noise_management="None", inp_bound=2.0,
                              bound_management="BoundManagementType.NONE", max_bm_factor=100, max_bm_res=0.5),
        noise_model=pcm_noise_model(g_max=30.0, t_0=10.0, t_read=1e-6, prog_noise_scale=0.5, read_noise_scale=2.0, drift_scale=0.3),
        drift_compensation=None,
    )
    with_changes(cfg, mapping__max_input_size=256, mapping__max_output_size=128, mapping__weight_scaling_omega=1.0,
                 mapping__weight_scaling_columnwise=True)
    s = aimc.from_aihwkit(cfg)
    assert s["gdc"] == "off"
    assert s["tile"] == {"max_in": 256, "max_out": 128}
    assert s["device"] == {"model": "pcm", "g_max": 30.0, "t0": 10.0, "t_read": 1e-6, "prog_noise_scale": 0.5, "read_noise_scale": 2.0,
                           "drift_scale": 0.3}
    assert s["periphery"] == {"inp_bound": 2.0, "inp_res_bits": 8, "out_bound": 12.0, "out_res_bits": 6, "out_noise": 0.1,
                              "noise_management": "none", "bound_management": "none", "max_bm_factor": 100.0, "max_bm_res": 0.5,
                              "w_noise": 0.02, "w_noise_type": "pcm_read", "ir_drop": 1.0, "ir_drop_g_ratio": 2e5,
                              "weight_scaling_omega": 1.0, "weight_scaling_columnwise": True}


@pytest.mark.parametrize("changes, field, value", [
    ({"forward__inp_res": -1}, "inp_res_bits", 0),                      # <= 0: no DAC quantisation
    ({"forward__inp_res": 254.0}, "inp_res_bits", 8),                   # > 1: a number of steps
    ({"forward__out_res": 0.0}, "out_res_bits", 0),
    ({"forward__out_bound": 0.0}, "out_bound", 0.0),                    # <= 0: no clipping ...
    ({"forward__out_bound": -1.0}, "out_res_bits", 0),                  # ... and no ADC quantisation
    ({"forward__w_noise": 0.05}, "w_noise", 0.0),                       # WeightNoiseType.NONE ignores w_noise
    ({"forward__w_noise": 0.05, "forward__w_noise_type": "AdditiveConstant"}, "w_noise", 0.05),
    ({"forward__noise_management": "ABS_MAX"}, "noise_management", "abs_max"),
    ({"mapping__weight_scaling_columnwise": True}, "weight_scaling_columnwise", False),  # only read with ω > 0
    ({"forward__is_perfect": True, "forward__inp_noise": 0.3, "forward__out_noise": 0.2}, "out_noise", 0.0),
    ({"forward__mv_type": AnalogMVType.IDEAL}, "inp_res_bits", 0),
    ({"forward__inp_noise": 0.05}, "inp_noise", 0.05),                  # Gaussian noise per input line after the DAC
])
def test_periphery_readings(changes, field, value):
    assert aimc.from_aihwkit(with_changes(inference_rpu_config(), **changes))["periphery"][field] == value


def test_an_ideal_forward_is_aimcs_perfect_periphery():
    p = aimc.from_aihwkit(inference_rpu_config(forward=io_parameters(is_perfect=True, out_nonlinearity=1.0)))["periphery"]
    assert (p["inp_res_bits"], p["out_res_bits"], p["out_bound"], p["out_noise"], p["w_noise"], p["ir_drop"], p["bound_management"]) == (
        0, 0, 0.0, 0.0, 0.0, 0.0, "none")


def test_the_noise_model_and_drift_compensation():
    # Own programming coefficients go with the reference they were fitted at.
    nm = pcm_noise_model(prog_coeff=[0.1, 1.0, -0.5, 0.2], prog_coeff_g_max_reference=20.0)
    assert aimc.from_aihwkit(inference_rpu_config(noise_model=nm))["device"]["prog_coeff"] == [0.1, 1.0, -0.5, 0.2]
    d = aimc.from_aihwkit(inference_rpu_config(noise_model=pcm_noise_model(prog_coeff=[0.1, 1.0], prog_coeff_g_max_reference=25.0)))["device"]
    assert (d["prog_coeff"], d["prog_g_ref"]) == ([0.1, 1.0, 0.0, 0.0], 25.0)
    # The default coefficients at another g_max keep aihwkit's 25 µS reference (aimc's preset).
    assert "prog_coeff" not in aimc.from_aihwkit(inference_rpu_config(noise_model=pcm_noise_model(g_max=40.0)))["device"]
    for kind, gdc in (("GlobalDriftCompensationWithExactReference", "exact_reference"),
                      ("PerColumnDriftCompensation", "readout_per_column")):
        assert aimc.from_aihwkit(inference_rpu_config(drift_compensation=obj(kind)))["gdc"] == gdc


def test_a_custom_drift_model_maps_to_a_drift_table(tmp_path):
    """CustomDriftPCMLikeNoiseModel (aihwkit's example table) maps to the pcm device with its
    measured drift as `device.drift_table`, which a run then draws ν from; a table aimc refuses
    names its field, and a malformed custom_drift_model is named before any run."""
    def custom(model):
        nm = pcm_noise_model()
        return obj("CustomDriftPCMLikeNoiseModel", custom_drift_model=model, **vars(nm))
    example = dict(g_lst=[0.0, 10.0, 25.0], nu_mean_lst=[0.08, 0.05, 0.03], nu_std_lst=[0.03, 0.02, 0.01])
    d = aimc.from_aihwkit(inference_rpu_config(noise_model=custom(example)))["device"]
    assert d["model"] == "pcm" and d["drift_table"] == {"g": [0.0, 10.0, 25.0], "nu_mean": [0.08, 0.05, 0.03], "nu_std": [0.03, 0.02, 0.01]}
    r = aimc.run(REFERENCE, rpu_config=inference_rpu_config(noise_model=custom(example)), trials=4, backend="cpu",
                 out=str(tmp_path / "custom"), quiet=True)
    assert r.data["config"]["device"]["drift_table"]["nu_mean"] == [0.08, 0.05, 0.03]
    plain = aimc.run(REFERENCE, trials=4, backend="cpu", out=str(tmp_path / "plain"), quiet=True)
    assert [p["per_trial"] for p in r.points] != [p["per_trial"] for p in plain.points]
    short = dict(example, g_lst=[0.0, 10.0, 20.0])
    with pytest.raises(ValueError, match=r"device\.drift_table\.g spans \[0, 20\] µS"):
        aimc.run(REFERENCE, rpu_config=inference_rpu_config(noise_model=custom(short)), trials=4, backend="cpu",
                 out=str(tmp_path / "short"), quiet=True)
    with pytest.raises(ValueError, match=r"noise_model\.custom_drift_model = .*give a dict of the lists g_lst"):
        aimc.from_aihwkit(inference_rpu_config(noise_model=custom({"g_lst": [0.0, 25.0]})))
    with pytest.raises(ValueError, match=r"custom_drift_model\['nu_std_lst'\] = 'x' is not a list of numbers"):
        aimc.from_aihwkit(inference_rpu_config(noise_model=custom(dict(example, nu_std_lst="x"))))


def test_hermes_maps_to_aimcs_hermes_presets(tmp_path):
    """HermesNoiseModel maps to aimc's `hermes` (two devices per weight, aihwkit's default) or
    `hermes1` preset, whose fields are the constructor's defaults, so nothing else is written;
    the reference case runs with it trial for trial as with `device.model = "hermes"`."""
    base = {"prog_noise_scale": 1.0, "read_noise_scale": 1.0, "drift_scale": 1.0}
    d2 = aimc.from_aihwkit(inference_rpu_config(noise_model=hermes_noise_model()))["device"]
    assert d2 == {"model": "hermes", "g_max": 20.7, "t0": 300.0, "t_read": 512e-9, **base}
    d1 = aimc.from_aihwkit(inference_rpu_config(noise_model=hermes_noise_model(num_devices=1)))["device"]
    assert d1 == {"model": "hermes1", "g_max": 10.35, "t0": 200.0, "t_read": 512e-9, **base}
    # A smaller g_max keeps the fit's reference, as aihwkit's constructor does.
    nm = hermes_noise_model(g_max=15.0, g_converter=obj("SinglePairConductanceConverter", g_max=15.0, g_min=0.0), prog_coeff_g_max_reference=20.7)
    assert aimc.from_aihwkit(inference_rpu_config(noise_model=nm))["device"] == {**d2, "g_max": 15.0}
    # The reference case without its `model = "pcm"` line (the configuration gives the model).
    text = REFERENCE.read_text().replace('model = "pcm"', "").replace('path = "', f'path = "{REFERENCE.parent}/')
    case = tmp_path / "case.toml"
    case.write_text(text)
    common = dict(backend="cpu", trials=6, quiet=True, set={"layer_insight_trials": 0})
    mapped = aimc.run(case, out=str(tmp_path / "mapped"), rpu_config=inference_rpu_config(noise_model=hermes_noise_model()), **common)
    plain = aimc.run(case, out=str(tmp_path / "plain"), **{**common, "set": {**common["set"], "device.model": "hermes"}})
    assert mapped.data["config"]["device"] == plain.data["config"]["device"]
    assert [p["per_trial"] for p in mapped.points] == [p["per_trial"] for p in plain.points]
    with pytest.raises(ValueError, match=r"noise_model\.num_devices = 3 is not modelled"):
        aimc.from_aihwkit(inference_rpu_config(noise_model=hermes_noise_model(num_devices=3)))
    with pytest.raises(ValueError, match=r"prog_coeff_g_max_reference is missing"):
        nm = hermes_noise_model(prog_coeff=[0.1, 1.0, -0.5])
        del nm.prog_coeff_g_max_reference
        aimc.from_aihwkit(inference_rpu_config(noise_model=nm))


def test_a_state_independent_model_maps_to_constant_noise(tmp_path):
    """StateIndependentNoiseModel (custom.py) maps onto pcm's fields exactly: its polynomial at
    its own g_max (no rescaling), one ν distribution at every conductance (a flat drift table) and
    read noise |g|/g_max (Q_s = 1/g_max, a constant fit); the document runs."""
    conv = obj("SinglePairConductanceConverter", g_max=20.0, g_min=0.0, scale_ratio=None)
    nm = obj("StateIndependentNoiseModel", g_converter=conv, g_max=20.0, prog_coeff=[0.2, 0.1, 0.0], prog_noise_scale=1.0,
             drift_nu_mean=0.08, drift_nu_std=0.02, drift_scale=1.0, t_0=20.0, read_noise_scale=0.5, t_read=250e-9)
    d = aimc.from_aihwkit(inference_rpu_config(noise_model=nm))["device"]
    assert (d["model"], d["g_max"], d["prog_coeff"], d["prog_g_ref"], d["read_noise_scale"]) == ("pcm", 20.0, [0.2, 0.1, 0.0, 0.0], 20.0, 0.5)
    assert d["drift_table"] == {"g": [0.0, 20.0], "nu_mean": [0.08, 0.08], "nu_std": [0.02, 0.02]}
    assert d["q_s"]["kind"] == "log_clamp_poly" and d["q_s"]["brk"] == 0.0 and d["q_s"]["c"] == [1 / 20.0, 0.0, 0.0, 0.0]
    r = aimc.run(REFERENCE, rpu_config=inference_rpu_config(noise_model=nm), trials=4, backend="cpu", out=str(tmp_path / "si"), quiet=True)
    assert r.data["config"]["device"]["q_s"]["c"][0] == 1 / 20.0 and len(r.points) > 0
    with pytest.raises(ValueError, match=r"noise_model\.g_converter is CustomPairConductanceConverter"):
        aimc.from_aihwkit(inference_rpu_config(noise_model=obj("StateIndependentNoiseModel", g_converter=obj("CustomPairConductanceConverter"))))


def pair_converter(kind="DualPairConductanceConverter", f_lst=(1.0, 3.0), g_max=25.0, **changes):
    """aihwkit's DualPairConductanceConverter(f_lst) or NPairConductanceConverter(f_lst) as its
    constructor leaves it (src/aihwkit/inference/converter/conductance.py)."""
    fields = dict(f_lst=None if f_lst is None else list(f_lst), g_max=g_max, g_min=0.0, scale_ratio=None)
    fields.update(changes)
    return obj(kind, **fields)


def test_pair_converters_map_to_pair_significance(tmp_path):
    """NPairConductanceConverter and DualPairConductanceConverter hold a weight on several
    conductance pairs: on PCM-like, HERMES and state-independent models their f_lst maps to
    `device.pair_significance` (one pair of significance 1 to nothing at all); the reference case
    runs on it; an f_lst aimc cannot hold, a g_min and a ReRAM model with pairs are refused by name."""
    d = aimc.from_aihwkit(inference_rpu_config(noise_model=pcm_noise_model(g_converter=pair_converter())))["device"]
    assert (d["model"], d["pair_significance"]) == ("pcm", [1.0, 3.0])
    nm = hermes_noise_model(g_converter=pair_converter("NPairConductanceConverter", (1.0, 1.0, 2.0), g_max=20.7))
    d = aimc.from_aihwkit(inference_rpu_config(noise_model=nm))["device"]
    assert (d["model"], d["pair_significance"]) == ("hermes", [1.0, 1.0, 2.0])
    d = aimc.from_aihwkit(inference_rpu_config(noise_model=pcm_noise_model(g_converter=pair_converter("NPairConductanceConverter", (1.0,)))))["device"]
    assert "pair_significance" not in d
    r = aimc.run(REFERENCE, rpu_config=inference_rpu_config(noise_model=pcm_noise_model(g_converter=pair_converter())), trials=4, backend="cpu",
                 out=str(tmp_path / "pairs"), quiet=True)
    assert r.data["config"]["device"]["pair_significance"] == [1.0, 3.0] and len(r.points) > 0
    for conv, message in [
        (pair_converter(f_lst=(1.0, 1.0, 1.0, 1.0, 1.0)), r"noise_model\.g_converter\.f_lst = \[1\.0, 1\.0, 1\.0, 1\.0, 1\.0\] is not modelled"),
        (pair_converter(f_lst=(1.0, 0.0)), r"noise_model\.g_converter\.f_lst = \[1\.0, 0\.0\] is not modelled"),
        (pair_converter(f_lst=None), r"noise_model\.g_converter\.f_lst = None is not a list of numbers"),
        (pair_converter(g_min=2.0), r"noise_model\.g_converter\.g_min = 2\.0 is not modelled"),
        (pair_converter(g_max=20.0), r"noise_model\.g_max = 25\.0 differs from noise_model\.g_converter\.g_max = 20\.0"),
    ]:
        with pytest.raises(ValueError, match=message):
            aimc.from_aihwkit(inference_rpu_config(noise_model=pcm_noise_model(g_converter=conv)))
    with pytest.raises(ValueError, match=r"noise_model\.g_converter is DualPairConductanceConverter; aimc maps ReRamWan2022NoiseModel's weights"):
        aimc.from_aihwkit(inference_rpu_config(noise_model=reram_noise_model(g_converter=pair_converter())))


def reference_case_at(tmp_path, times: str):
    """The reference case without its aihwkit results (a PCM run's) and its `model = "pcm"` line
    (the configuration gives the model), read at `times` (a TOML list), written to tmp_path."""
    text = REFERENCE.read_text().replace('model = "pcm"', "")
    text = re.sub(r"\[reference\][^\n]*\npath = [^\n]*\n", "", text)
    text = text.replace('path = "', f'path = "{REFERENCE.parent}/')
    text, n = re.subn(r"(?m)^t = \[.*\]$", f"t = {times}", text)
    assert n == 1
    tmp_path.mkdir(parents=True, exist_ok=True)
    case = tmp_path / "case.toml"
    case.write_text(text)
    return case


def test_reram_maps_to_aimcs_reram_with_its_relaxation_table(tmp_path):
    """ReRamWan2022NoiseModel maps to aimc's `reram` with its coeff_dic always written out as
    `device.relax_table` (times ascending, rows padded to 5 coefficients, scaled by g_max /
    coeff_g_max_reference as aihwkit's _apply_poly does) and its one noise_scale as both
    prog_noise_scale and drift_scale; the reference case, read at the table's times, runs with it
    trial for trial as with `device.model = "reram"`, and a time outside the table is refused."""
    def device(nm):
        return aimc.from_aihwkit(inference_rpu_config(noise_model=nm))["device"]
    default = {"model": "reram", "g_max": 25.0, "prog_noise_scale": 1.0, "drift_scale": 1.0,
               "relax_table": {"t": [1.0, 86400.0, 172800.0],
                               "coeff": [[0.348, 16.030, -43.853, 45.393, -16.815], [0.701, 22.086, -50.773, 47.095, -16.458],
                                         [0.782, 20.274, -43.507, 37.062, -11.934]]}}
    assert device(reram_noise_model()) == default
    # The constructor fills coeff_dic=None with the default table.
    assert device(reram_noise_model(coeff_dic=None)) == default
    # Own coefficients: times sorted, short rows padded; noise_scale scales both draws.
    d = device(reram_noise_model(coeff_dic={86400: [0.5, 1.0, -0.5], 1: (0.3, 2.0, -1.0)}, noise_scale=0.5))
    assert d == {"model": "reram", "g_max": 25.0, "prog_noise_scale": 0.5, "drift_scale": 0.5,
                 "relax_table": {"t": [1.0, 86400.0], "coeff": [[0.3, 2.0, -1.0, 0.0, 0.0], [0.5, 1.0, -0.5, 0.0, 0.0]]}}
    # Coefficients fitted at 40 µS used at g_max 25: aihwkit scales σ by 25/40.
    d = device(reram_noise_model(coeff_dic={1.0: [0.4, 8.0, -4.0]}, coeff_g_max_reference=40.0))
    assert d["relax_table"]["coeff"] == [pytest.approx([0.4 * 25 / 40, 8.0 * 25 / 40, -4.0 * 25 / 40, 0.0, 0.0])]
    # Zeros beyond the 5th coefficient are no higher degree.
    assert device(reram_noise_model(coeff_dic={1.0: [0.3, 1.0, 0.0, 0.0, 0.0, 0.0]}))["relax_table"]["coeff"] == [[0.3, 1.0, 0.0, 0.0, 0.0]]

    nm = reram_noise_model(coeff_dic={1.0: [0.3, 1.0]})
    del nm.coeff_g_max_reference  # given to the constructor: aihwkit never stores it
    with pytest.raises(ValueError, match=r"noise_model\.coeff_g_max_reference is missing: aihwkit's ReRamWan2022NoiseModel stores it only"):
        device(nm)
    with pytest.raises(ValueError, match=r"noise_model\.coeff_dic\[1\.0\] = \[0\.3, .*polynomial of degree <= 4.*give at most 5 coefficients"):
        device(reram_noise_model(coeff_dic={1.0: [0.3, 1.0, 0.0, 0.0, 0.0, 0.1]}))
    with pytest.raises(ValueError, match=r"noise_model\.coeff_dic has 5 times \(1 s, 2 s, 3 s, 4 s, 5 s\).*keep at most 4"):
        device(reram_noise_model(coeff_dic={float(t): [0.3] for t in range(1, 6)}))
    with pytest.raises(ValueError, match=r"noise_model\.coeff_dic = \[0\.3, 1\.0\]: give a dict of time"):
        device(reram_noise_model(coeff_dic=[0.3, 1.0]))
    with pytest.raises(ValueError, match=r"noise_model\.coeff_dic\[1\.0\] = 'x' is not a list of numbers"):
        device(reram_noise_model(coeff_dic={1.0: "x"}))
    with pytest.raises(ValueError, match=r"noise_model\.g_converter is DualPairConductanceConverter"):
        device(reram_noise_model(g_converter=obj("DualPairConductanceConverter", g_max=25.0, g_min=0.0)))
    with pytest.raises(ValueError, match=r"noise_model\.g_max = 25\.0 differs from noise_model\.g_converter\.g_max = 40\.0"):
        device(reram_noise_model(g_converter=obj("SinglePairConductanceConverter", g_max=40.0, g_min=0.0)))

    # The reference case read at aihwkit's table times.
    case = reference_case_at(tmp_path, '["1s", "1d", "2d"]')
    common = dict(backend="cpu", trials=6, quiet=True, set={"layer_insight_trials": 0})
    cfg = inference_rpu_config(noise_model=reram_noise_model())
    mapped = aimc.run(case, out=str(tmp_path / "mapped"), rpu_config=cfg, **common)
    plain = aimc.run(case, out=str(tmp_path / "plain"), **{**common, "set": {**common["set"], "device.model": "reram"}})
    assert mapped.data["config"]["device"] == plain.data["config"]["device"]
    assert mapped.data["config"]["device"]["relax_table"] == default["relax_table"]
    assert [p["labels"] for p in mapped.points] == [p["labels"] for p in plain.points]
    assert {p["t_inf"] for p in mapped.points} == {1.0, 86400.0, 172800.0}
    assert [p["per_trial"] for p in mapped.points] == [p["per_trial"] for p in plain.points]
    hour = reference_case_at(tmp_path / "hour", '["1s", "1h"]')
    with pytest.raises(ValueError, match=r"3600 s after programming: device\.model = \"reram\" is measured at 1 s, 86400 s, 172800 s only \(device\.relax_table\.t"):
        aimc.run(hour, out=str(tmp_path / "hour_out"), rpu_config=cfg, **common)


def test_reram_cmo_maps_to_aimcs_reram_cmo_with_every_field_written(tmp_path):
    """ReRamCMONoiseModel maps to aimc's `reram_cmo` with every field written out: its
    SingleDeviceConductanceConverter's range, the programming σ = Σ c_i g^i (g in µS) of the row
    its acceptance_range picks, rewritten in g/g_max (c_i·g_max^i at prog_g_ref = g_max) and
    scaled by g_max / coeff_g_max_reference as aihwkit's _apply_poly does, decay_dict and
    read_dict as `device.log_relax` and `t_read`; the reference case runs with it trial for trial
    as with `device.model = "reram_cmo"`, at any time."""
    def device(nm):
        return aimc.from_aihwkit(inference_rpu_config(noise_model=nm))["device"]
    g_max = 88.199997
    default = {"model": "reram_cmo", "g_max": g_max, "g_min": 9.0, "t_read": 1e-06, "prog_noise_scale": 1.0,
               "read_noise_scale": 1.0, "drift_scale": 1.0, "prog_coeff": [0.00081107, 0.00106879 * g_max, 0.0, 0.0],
               "prog_g_ref": g_max, "log_relax": {"mean": -0.08900206, "std": [0.04201137, 0.41183342], "read_k": 0.0277316483}}
    assert device(reram_cmo_noise_model()) == default
    # The constructor fills None with its defaults; an acceptance_range that is no key programs
    # with the smallest key's row, as aihwkit does.
    assert device(reram_cmo_noise_model(coeff_dict=None, decay_dict=None, read_dict=None)) == default
    assert device(reram_cmo_noise_model(acceptance_range=2e-2)) == default
    # The 2 % acceptance range's row.
    assert device(reram_cmo_noise_model(acceptance_range=2))["prog_coeff"] == [0.0112185391, 0.01129027418 * g_max, 0.0, 0.0]
    # Coefficients fitted at twice g_max: aihwkit scales σ by g_max / reference, a half.
    d = device(reram_cmo_noise_model(coeff_g_max_reference=2 * g_max))
    assert d["prog_coeff"] == pytest.approx([0.00081107 / 2, 0.00106879 * g_max / 2, 0.0, 0.0])
    assert {k: v for k, v in d.items() if k != "prog_coeff"} == {k: v for k, v in default.items() if k != "prog_coeff"}
    # Own values: a cubic in µS rewritten in g/g_max, zeros beyond the 4th coefficient, another
    # range (the converter's, too), the scales, the relaxation and the read noise as they are.
    nm = reram_cmo_noise_model(g_converter=obj("SingleDeviceConductanceConverter", g_max=50.0, g_min=5.0), g_max=50.0, g_min=5.0,
                               coeff_g_max_reference=50.0, coeff_dict={0.5: [0.1, 0.01, 0.001, 0.0001, 0.0]}, acceptance_range=0.5,
                               prog_noise_scale=0.5, read_noise_scale=2.0, drift_scale=0.0,
                               decay_dict={"mean": (-0.1,), "std": np.array([0.05, 0.4])}, read_dict={"K": 0.03, "t_read": 1e-5})
    assert device(nm) == {"model": "reram_cmo", "g_max": 50.0, "g_min": 5.0, "t_read": 1e-5, "prog_noise_scale": 0.5,
                          "read_noise_scale": 2.0, "drift_scale": 0.0, "prog_coeff": [0.1, 0.01 * 50.0, 0.001 * 50.0**2, 0.0001 * 50.0**3],
                          "prog_g_ref": 50.0, "log_relax": {"mean": -0.1, "std": [0.05, 0.4], "read_k": 0.03}}

    refusals = [
        (dict(g_converter=obj("SinglePairConductanceConverter", g_max=88.199997, g_min=0.0)),
         r"noise_model\.g_converter is SinglePairConductanceConverter; aimc maps ReRamCMONoiseModel's weights onto one device each"),
        (dict(g_converter=obj("SingleDeviceConductanceConverter", g_max=80.0, g_min=9.0)),
         r"noise_model\.g_max = 88\.199997 differs from noise_model\.g_converter\.g_max = 80\.0"),
        (dict(g_converter=obj("SingleDeviceConductanceConverter", g_max=88.199997, g_min=8.0)),
         r"noise_model\.g_min = 9\.0 differs from noise_model\.g_converter\.g_min = 8\.0"),
        (dict(g_converter=obj("SingleDeviceConductanceConverter", g_max=88.199997, g_min=-1.0), g_min=-1.0),
         r"noise_model\.g_min = -1\.0 is not modelled by aimc \(the one device's range must be 0 <= g_min < g_max"),
        (dict(g_converter=obj("SingleDeviceConductanceConverter", g_max=88.199997, g_min=88.199997), g_min=88.199997),
         r"noise_model\.g_min = 88\.199997 is not modelled"),
        (dict(decay_dict={"mean": [-0.089, 0.001], "std": [0.042, 0.41]}),
         r"noise_model\.decay_dict = .*linear in ln t.*exactly one 'mean' and two 'std' coefficients"),
        (dict(decay_dict={"mean": [-0.089], "std": [0.42]}), r"noise_model\.decay_dict = .*exactly one 'mean' and two 'std'"),
        (dict(decay_dict={"std": [0.042, 0.41]}), r"noise_model\.decay_dict = .*exactly one 'mean'"),
        (dict(decay_dict=[-0.089]), r"noise_model\.decay_dict = \[-0\.089\] is not a dict"),
        (dict(read_dict={"K": 0.0277}), r"noise_model\.read_dict = \{'K': 0\.0277\} lacks 't_read'"),
        (dict(read_dict={}), r"noise_model\.read_dict = \{\} lacks 'K' and 't_read'"),
        (dict(read_dict={"K": "x", "t_read": 1e-6}), r"noise_model\.read_dict\['K'\] = 'x' is not a number"),
        (dict(read_dict={"K": 0.0277, "t_read": 0.0}), r"noise_model\.read_dict\['t_read'\] = 0\.0 is not modelled"),
        (dict(coeff_dict={0.2: [0.1, 0.01, 0.0, 0.0, 1e-6]}),
         r"noise_model\.coeff_dict\[0\.2\] = \[0\.1, .*polynomial of degree <= 3 in g.*give at most 4 coefficients"),
        (dict(coeff_dict={0.2: "x"}), r"noise_model\.coeff_dict\[0\.2\] = 'x' is not a list of numbers"),
        (dict(coeff_dict=[0.1, 0.01]), r"noise_model\.coeff_dict = \[0\.1, 0\.01\]: give a dict of acceptance range"),
        (dict(acceptance_range="0.2"), r"noise_model\.acceptance_range = '0\.2' is not a number"),
        (dict(prog_noise_scale="x"), r"noise_model\.prog_noise_scale = 'x' is not a number"),
        (dict(coeff_g_max_reference=0.0), r"noise_model\.coeff_g_max_reference = 0\.0 is not modelled"),
        (dict(coeff_g_max_reference=-88.2), r"noise_model\.coeff_g_max_reference = -88\.2 is not modelled"),
    ]
    for changes, message in refusals:
        with pytest.raises(ValueError, match=message):
            device(reram_cmo_noise_model(**changes))
    nm = reram_cmo_noise_model()
    del nm.coeff_g_max_reference
    with pytest.raises(ValueError, match=r"noise_model\.coeff_g_max_reference is missing: aihwkit's ReRamCMONoiseModel sets it"):
        device(nm)
    # A row other than the one programmed with is not read.
    assert device(reram_cmo_noise_model(coeff_dict={0.2: [0.00081107, 0.00106879], 2: "unused"})) == default

    # The reference case read at 1 s, 1 h and 1 d.
    case = reference_case_at(tmp_path, '["1s", "1h", "1d"]')
    common = dict(backend="cpu", trials=6, quiet=True, set={"layer_insight_trials": 0})
    mapped = aimc.run(case, out=str(tmp_path / "mapped"), rpu_config=inference_rpu_config(noise_model=reram_cmo_noise_model()), **common)
    plain = aimc.run(case, out=str(tmp_path / "plain"), **{**common, "set": {**common["set"], "device.model": "reram_cmo"}})
    assert mapped.data["config"]["device"] == plain.data["config"]["device"]
    resolved = mapped.data["config"]["device"]
    assert resolved["name"] == "reram_cmo" and resolved["programming"] == "single"
    assert {k: resolved[k] for k in default if k != "model"} == {k: v for k, v in default.items() if k != "model"}
    assert [p["labels"] for p in mapped.points] == [p["labels"] for p in plain.points]
    assert {p["t_inf"] for p in mapped.points} == {1.0, 3600.0, 86400.0}
    assert [p["per_trial"] for p in mapped.points] == [p["per_trial"] for p in plain.points]


def test_training_only_settings_are_not_read():
    cfg = with_changes(inference_rpu_config(), clip__type=WeightClipType.LAYER_GAUSSIAN, clip__sigma=2.0,
                       modifier__type=WeightModifierType.ADD_NORMAL, modifier__std_dev=0.1, modifier__pdrop=0.1,
                       mapping__weight_scaling_lr_compensation=True, runtime__data_type=RPUDataType.DOUBLE,
                       pre_post__input_range__init_value=5.0, backward__out_noise=0.2, update__desired_bl=10)
    assert aimc.from_aihwkit(cfg) == AIMC_DEFAULTS


@pytest.mark.parametrize("changes, message", [
    ({"forward__inp_asymmetry": 0.1}, r"^from_aihwkit: forward\.inp_asymmetry = 0\.1 is not modelled by aimc \(an input asymmetry of "
                                      r"separate positive and negative passes\); set it to 0\.0 \(aihwkit's default\)$"),
    ({"forward__inp_noise": -0.1}, r"forward\.inp_noise = -0\.1"),
    ({"forward__inp_noise": 0.05, "forward__w_noise": 0.02, "forward__w_noise_type": "AdditiveConstant"},
     r"forward\.inp_noise = 0\.05 with forward\.w_noise = 0\.02 under drift compensation"),
    ({"forward__out_nonlinearity": 0.5}, r"forward\.out_nonlinearity = 0\.5 is not modelled"),
    ({"forward__out_noise_std": 0.3}, r"forward\.out_noise_std = 0\.3 is not modelled"),
    ({"forward__inp_sto_round": True}, r"forward\.inp_sto_round = True is not modelled"),
    ({"forward__bm_test_negative_bound": False}, r"forward\.bm_test_negative_bound = False is not modelled"),
    ({"forward__mv_type": AnalogMVType.POS_NEG_SEPARATE}, r"forward\.mv_type = AnalogMVType\.POS_NEG_SEPARATE is not modelled"),
    ({"forward__noise_management": NoiseManagementType.ABS_MAX_NP_SUM},
     r"forward\.noise_management = NoiseManagementType\.ABS_MAX_NP_SUM is not modelled"),
    ({"forward__bound_management": BoundManagementType.SHIFT}, r"forward\.bound_management = BoundManagementType\.SHIFT"),
    ({"forward__inp_res": 0.0079}, r"forward\.inp_res = 0\.0079 .*126\.58.* the nearest is 7 bits: set it to 1/\(2\*\*7 - 2\)"),
    ({"forward__out_res": 1 / 100}, r"forward\.out_res = 0\.01 .* the nearest is 7 bits"),
    ({"forward__inp_bound": 2.0}, r"forward\.inp_bound = 2\.0 with forward\.noise_management = NoiseManagementType\.ABS_MAX"),
    ({"forward__inp_bound": 0.0, "forward__noise_management": NoiseManagementType.NONE}, r"forward\.inp_bound = 0\.0 is not modelled"),
    ({"mapping__digital_bias": False}, r"mapping\.digital_bias = False is not modelled"),
    ({"mapping__learn_out_scaling": True}, r"mapping\.learn_out_scaling = True is not modelled"),
    ({"mapping__max_input_size": 0, "mapping__max_output_size": 0}, r"mapping\.max_input_size = 0 is not modelled"),
    ({"mapping__max_input_size": 4096}, r"mapping\.max_input_size = 4096 .* at most 2048 inputs"),
    ({"remap__type": WeightRemapType.LAYERWISE_SYMMETRIC}, r"remap\.type = WeightRemapType\.LAYERWISE_SYMMETRIC is not modelled"),
    # A channelwise remap with one scale per tile would leave other weights than the mapping.
    ({"remap__type": WeightRemapType.CHANNELWISE_SYMMETRIC, "mapping__weight_scaling_omega": 1.0},
     r"remap\.type = WeightRemapType\.CHANNELWISE_SYMMETRIC is not modelled"),
    ({"mapping__max_output_size": 0}, r"mapping\.max_output_size = 0 is not modelled"),
    ({"mapping__learn_out_scaling": True, "mapping__out_scaling_columnwise": True, "mapping__weight_scaling_omega": 1.0},
     r"mapping\.learn_out_scaling = True is not modelled .*weight_scaling_columnwise"),
    ({"modifier__type": WeightModifierType.ADD_NORMAL, "modifier__enable_during_test": True},
     r"modifier\.enable_during_test = True .*ADD_NORMAL"),
    ({"noise_model__g_converter__g_min": 2.0}, r"noise_model\.g_converter\.g_min = 2\.0 is not modelled"),
    ({"noise_model__g_max": 30.0}, r"noise_model\.g_max = 30\.0 differs from noise_model\.g_converter\.g_max = 25\.0"),
    ({"noise_model__prog_coeff": [0.1, 0.2, 0.3, 0.4, 0.5]}, r"noise_model\.prog_coeff = \[0\.1, 0\.2, 0\.3, 0\.4, 0\.5\]"),
])
def test_unmodelled_settings_are_refused_by_name(changes, message):
    with pytest.raises(ValueError, match=message):
        aimc.from_aihwkit(with_changes(inference_rpu_config(), **changes))


def test_aihwkits_own_pair_converters_map(tmp_path):
    """aihwkit itself (skipped without it): its DualPairConductanceConverter and
    NPairConductanceConverter on its PCMLikeNoiseModel and HermesNoiseModel map to
    `device.pair_significance`; the reference case runs from the config."""
    pytest.importorskip("aihwkit")
    from aihwkit.inference.converter.conductance import DualPairConductanceConverter, NPairConductanceConverter
    from aihwkit.inference.noise.hermes import HermesNoiseModel
    from aihwkit.inference.noise.pcm import PCMLikeNoiseModel
    from aihwkit.simulator.configs import InferenceRPUConfig
    cfg = InferenceRPUConfig()
    cfg.noise_model = PCMLikeNoiseModel(g_converter=DualPairConductanceConverter(f_lst=[1.0, 3.0]))
    d = aimc.from_aihwkit(cfg)["device"]
    assert (d["model"], d["pair_significance"]) == ("pcm", [1.0, 3.0])
    r = aimc.run(REFERENCE, rpu_config=cfg, trials=4, backend="cpu", out=str(tmp_path / "pairs"), quiet=True)
    assert r.data["config"]["device"]["pair_significance"] == [1.0, 3.0]
    cfg.noise_model = HermesNoiseModel(g_converter=NPairConductanceConverter(f_lst=[1.0, 1.0, 2.0], g_max=20.7))
    d = aimc.from_aihwkit(cfg)["device"]
    assert (d["model"], d["pair_significance"]) == ("hermes", [1.0, 1.0, 2.0])


@pytest.mark.parametrize("changes, message", [
    ({"forward": obj("IOParametersIRDropT")}, r"forward is IOParametersIRDropT; aimc maps aihwkit's IOParameters"),
    ({"noise_model": obj("MyNoiseModel")}, r"noise_model is MyNoiseModel; aimc maps aihwkit's PCMLikeNoiseModel .*and "
                                            r"ReRamCMONoiseModel with its SingleDeviceConductanceConverter"),
    ({"noise_model": pcm_noise_model(g_converter=obj("CustomPairConductanceConverter", g_max=25.0))},
     r"noise_model\.g_converter is CustomPairConductanceConverter; aimc maps PCMLikeNoiseModel's weights .*NPairConductanceConverter"),
    ({"drift_compensation": obj("MyCompensation")}, r"drift_compensation is MyCompensation; aimc maps None, GlobalDriftCompensation"),
    ({"tile_class": type("CustomInferenceTile", (), {})}, r"tile_class = CustomInferenceTile is not modelled .*leave it at InferenceTile"),
    ({"tile_class": "CustomInferenceTile"}, r"tile_class = 'CustomInferenceTile' is not modelled"),
])
def test_unmodelled_classes_are_refused_by_name(changes, message):
    with pytest.raises(ValueError, match=message):
        aimc.from_aihwkit(inference_rpu_config(**changes))


def torch_inference_rpu_config(**changes):
    """aihwkit's TorchInferenceRPUConfig(): an InferenceRPUConfig subclass whose only own fields
    are its tile classes (src/aihwkit/simulator/configs/configs.py)."""
    cfg = with_changes(inference_rpu_config(tile_class=type("TorchInferenceTile", (), {}),
                                            simulator_tile_class=type("TorchSimulatorTile", (), {})), **changes)
    return type("TorchInferenceRPUConfig", (type(cfg),), {})(**vars(cfg))


def test_torch_inference_rpu_config_maps_without_its_batch_wide_bound_management():
    """TorchInferenceRPUConfig's tile has InferenceRPUConfig's device model and periphery, so with
    bound management off it maps as InferenceRPUConfig does; its default iterative bound
    management (whole mini-batch reruns) is refused with the fix, as are the settings the tile
    itself raises a ConfigError for; an ideal forward disregards the bound management."""
    with pytest.raises(ValueError, match=r"forward\.bound_management = BoundManagementType\.ITERATIVE .*whole mini-batch.*"
                                         r"set it to BoundManagementType\.NONE"):
        aimc.from_aihwkit(torch_inference_rpu_config())
    off = {"forward__bound_management": BoundManagementType.NONE}
    want = aimc.from_aihwkit(with_changes(inference_rpu_config(), **off))
    assert aimc.from_aihwkit(torch_inference_rpu_config(**off)) == want
    assert want["periphery"]["bound_management"] == "none"
    by_name = with_changes(torch_inference_rpu_config(**off), tile_class="TorchInferenceTile", simulator_tile_class="TorchSimulatorTile")
    assert aimc.from_aihwkit(by_name) == want
    ideal = aimc.from_aihwkit(torch_inference_rpu_config(forward__is_perfect=True))
    assert ideal == aimc.from_aihwkit(with_changes(inference_rpu_config(), forward__is_perfect=True))
    for changes, message in [
        ({"forward__w_noise": 0.01}, r"forward\.w_noise = 0\.01 .*TorchInferenceTile does not model per-read weight noise"),
        ({"forward__w_noise_type": WeightNoiseType.PCM_READ}, r"forward\.w_noise_type = WeightNoiseType\.PCM_READ .*TorchInferenceTile"),
        ({"forward__ir_drop": 1.0}, r"forward\.ir_drop = 1\.0 .*TorchInferenceTile does not model IR drop"),
        ({"simulator_tile_class": type("RPUCudaSimulatorTile", (), {})}, r"simulator_tile_class = RPUCudaSimulatorTile .*TorchSimulatorTile"),
    ]:
        with pytest.raises(ValueError, match=message):
            aimc.from_aihwkit(with_changes(torch_inference_rpu_config(**off), **changes))


def test_a_tile_class_by_name_and_a_pdrop_that_is_no_number():
    """The tile class named by a string passes as the class does; a modifier's pdrop that is not
    a number is named, not a TypeError."""
    assert aimc.from_aihwkit(inference_rpu_config(tile_class="InferenceTile")) == aimc.from_aihwkit(inference_rpu_config())
    cfg = with_changes(inference_rpu_config(), modifier__pdrop="0.1")
    with pytest.raises(ValueError, match=r"modifier\.pdrop = '0\.1' is not a number"):
        aimc.from_aihwkit(cfg)


def test_other_configs_and_a_missing_reference_are_refused():
    with pytest.raises(ValueError, match=r"rpu_config is TorchInferenceRPUConfig; aimc maps aihwkit's InferenceRPUConfig"):
        aimc.from_aihwkit(obj("TorchInferenceRPUConfig", **vars(inference_rpu_config())))
    # PCMLikeNoiseModel(prog_coeff=..., prog_coeff_g_max_reference=...) leaves the reference unset.
    nm = pcm_noise_model(prog_coeff=[0.1, 1.0, -0.5])
    del nm.prog_coeff_g_max_reference
    with pytest.raises(ValueError, match=r"noise_model\.prog_coeff_g_max_reference is missing"):
        aimc.from_aihwkit(inference_rpu_config(noise_model=nm))


def test_every_unmodelled_setting_in_one_message():
    cfg = with_changes(inference_rpu_config(), forward__out_noise_std=0.01, forward__out_scale=2.0, mapping__digital_bias=False)
    with pytest.raises(ValueError) as e:
        aimc.from_aihwkit(cfg)
    text = str(e.value)
    assert text.startswith("from_aihwkit: 3 settings of this InferenceRPUConfig are not modelled by aimc:")
    for name in ("forward.out_noise_std = 0.01", "forward.out_scale = 2.0", "mapping.digital_bias = False"):
        assert name in text


def test_a_newer_aihwkits_fields_pass_only_at_their_defaults():
    # aihwkit's parameters are dataclasses: a field this mapping does not know is compared with
    # its own default.
    @dataclasses.dataclass
    class IOParameters:
        inp_res: float = 1 / (2**7 - 2)
        new_effect: float = 0.0

    assert aimc.from_aihwkit(inference_rpu_config(forward=IOParameters()))["periphery"]["inp_res_bits"] == 7
    with pytest.raises(ValueError, match=r"forward\.new_effect = 0\.5 is not known to aimc's mapping"):
        aimc.from_aihwkit(inference_rpu_config(forward=IOParameters(new_effect=0.5)))


def _net():
    rng = np.random.default_rng(3)
    layers = [(rng.normal(0, 0.3, (12, 8)).astype(np.float32), rng.normal(0, 0.1, 12).astype(np.float32)),
              (rng.normal(0, 0.3, (3, 12)).astype(np.float32), np.zeros(3, np.float32))]
    x = rng.normal(0, 1, (30, 8))
    y = np.argmax(np.maximum(x @ layers[0][0].T.astype(np.float64) + layers[0][1], 0) @ layers[1][0].T.astype(np.float64), axis=1)
    return layers, x, y


def test_classifier_with_a_default_config_equals_aimcs_defaults(tmp_path):
    layers, x, y = _net()
    common = dict(times=["1h", "1y"], trials=6, backend="cpu", quiet=True, layer_insight_trials=0)
    plain = aimc.classifier(layers, x, y, out=str(tmp_path / "plain"), **common)
    mapped = aimc.classifier(layers, x, y, out=str(tmp_path / "mapped"), rpu_config=inference_rpu_config(), **common)
    for key in ("device", "periphery", "tile", "gdc"):
        assert mapped.data["config"][key] == plain.data["config"][key], key
    assert [p["per_trial"] for p in mapped.points] == [p["per_trial"] for p in plain.points]


def test_classifier_with_a_non_default_config_equals_the_same_settings_written_out(tmp_path):
    layers, x, y = _net()
    common = dict(times=["1h", "1y"], trials=6, backend="cpu", quiet=True, layer_insight_trials=0)
    cfg = inference_rpu_config(forward=io_parameters(out_res=1 / (2**8 - 2), out_noise=0.1), drift_compensation=None,
                               noise_model=pcm_noise_model(drift_scale=0.5))
    mapped = aimc.classifier(layers, x, y, out=str(tmp_path / "mapped"), rpu_config=cfg, **common)
    written = aimc.classifier(layers, x, y, out=str(tmp_path / "written"), gdc="off", periphery__out_res_bits=8, periphery__out_noise=0.1,
                              device__drift_scale=0.5, **common)
    assert mapped.data["config"]["periphery"]["out_res_bits"] == 8 and mapped.data["config"]["gdc"] == "off"
    assert [p["per_trial"] for p in mapped.points] == [p["per_trial"] for p in written.points]
    # Keywords still override the rpu_config's settings; the device comes from one place.
    over = aimc.classifier(layers, x, y, out=str(tmp_path / "over"), rpu_config=cfg, gdc="readout", periphery__out_res_bits=9,
                           device__drift_scale=1.0, **common)
    plain = aimc.classifier(layers, x, y, out=str(tmp_path / "plain"), periphery__out_noise=0.1, **common)
    assert [p["per_trial"] for p in over.points] == [p["per_trial"] for p in plain.points]
    with pytest.raises(ValueError, match=r"device='hermes' and rpu_config= both give the device"):
        aimc.classifier(layers, x, y, device="hermes", rpu_config=cfg, **common)


def test_weight_error_takes_an_rpu_config(tmp_path):
    w = np.random.default_rng(1).normal(0, 0.2, (6, 5)).astype(np.float32)
    cfg = inference_rpu_config(noise_model=pcm_noise_model(prog_noise_scale=0.0))
    r = aimc.weight_error(w, times=["1s"], trials=4, backend="cpu", quiet=True, out=str(tmp_path / "w"), rpu_config=cfg)
    assert r.data["config"]["device"]["prog_noise_scale"] == 0.0


def test_import_aimc_needs_neither_aihwkit_nor_torch():
    code = ("import sys, aimc; cfg = aimc.from_aihwkit; "
            "assert 'aihwkit' not in sys.modules and 'torch' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert json.dumps(aimc.from_aihwkit(inference_rpu_config()))  # plain data: JSON and TOML ready
    assert aimc.to_toml(aimc.from_aihwkit(inference_rpu_config())).startswith('"gdc" = "readout"')


def test_values_that_are_not_numbers_are_refused_by_name():
    cfg = with_changes(inference_rpu_config(), forward__out_noise="high", noise_model__t_0=None)
    with pytest.raises(ValueError, match=r"forward\.out_noise = 'high' is not a number\n  noise_model\.t_0 = None is not a number"):
        aimc.from_aihwkit(cfg)
    # Nor is a number's text or a bool taken for it.
    cfg = with_changes(inference_rpu_config(), forward__out_noise=True, noise_model__t_0="20")
    with pytest.raises(ValueError, match=r"forward\.out_noise = True is not a number\n  noise_model\.t_0 = '20' is not a number"):
        aimc.from_aihwkit(cfg)


def test_sweeps_vary_what_the_rpu_config_sets_and_conflicts_are_refused(tmp_path):
    # A keyword call's sweep= axis varies a field the rpu_config maps, as a file's axis does.
    w = np.random.default_rng(2).normal(0, 0.2, (6, 5)).astype(np.float32)
    common = dict(times=["1h"], trials=2, backend="cpu", quiet=True)
    for k, sweep in enumerate(({"t": ["1h"], "gdc": ["off", "readout"]}, {"t": ["1h"], "adc_bits": [7, 8]},
                               {"t": ["1h"], "tile": ["4x4", "8x8"]})):
        r = aimc.weight_error(w, out=str(tmp_path / f"w{k}"), rpu_config=inference_rpu_config(), sweep=sweep, **common)
        assert len(r.points) == 2, sweep

    # A file: the reference case's model and data, with other sections and axes.
    ref = REFERENCE.parent / "reference" / "aihwkit_breast_cancer"
    head = (f'name = "t"\nworkload = "classifier"\nseed = 1\ntrials = 2\nlayer_insight_trials = 0\n'
            f'[model]\npath = "{ref / "bc_mlp_10_32_32_2.safetensors"}"\nactivation = "relu"\n[data]\npath = "{ref / "bc_test.csv"}"\n')

    def run(name, extra, sweep):
        f = tmp_path / f"{name}.toml"
        f.write_text(head + extra + '[sweep]\nt = ["1h"]\n' + sweep)
        return aimc.run(str(f), rpu_config=inference_rpu_config(), backend="cpu", quiet=True, out=str(tmp_path / name))

    # A tile axis varies the tile the configuration maps.
    r = run("tiled", "", 'tile = ["8x8", "16x16"]\n')
    assert {p["labels"]["tile"] for p in r.points} == {"8x8", "16x16"}
    # A model axis is refused: the configuration's PCM fields would be laid over the other presets.
    with pytest.raises(ValueError, match=r"aihwkit configuration gives the device .* the sweep sets device\.model"):
        run("models", "", 'model = ["pcm", "hermes"]\n')
    # A file field the configuration contradicts is refused (which was meant is not guessed); the
    # same value is taken.
    with pytest.raises(ValueError, match=r"periphery\.out_res_bits = 8 in the experiment and the aihwkit configuration gives "
                                         r"periphery\.out_res_bits = 9: remove it from the experiment"):
        run("own", "[periphery]\nout_res_bits = 8\n", "")
    with pytest.raises(ValueError, match=r"device\.model = \"hermes\" in the experiment"):
        run("own_device", '[device]\nmodel = "hermes"\n', "")
    assert len(run("same", "[periphery]\nout_res_bits = 9\n[device]\ng_max = 25\n", "").points) == 1


def test_parts_given_as_dicts_are_refused():
    for part in ("mapping", "modifier", "pre_post", "forward", "noise_model"):
        with pytest.raises(ValueError, match=rf"rpu_config\.{part} is a dict; give aihwkit's object"):
            aimc.from_aihwkit(inference_rpu_config(**{part: {"max_input_size": 256}}))
