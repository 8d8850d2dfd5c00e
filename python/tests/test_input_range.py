"""Learned input ranges and aihwkit's StandardHWATrainingPreset: `from_aihwkit` maps the preset
(constant noise management, 8-bit converters, columnwise weight scaling with learned output
scales, a channelwise remap, one tile per layer along the outputs); `from_torch` reads an aihwkit
analog model's weights (scales applied) and its tiles' input ranges; and `classifier` with the
preset, its noise switched off, classifies as aihwkit's forward pass (src/aihwkit/simulator/
tiles/periphery.py `pre_forward`/`post_forward` around rpucuda's forward), written here again in
NumPy, does. The configurations are test_aihwkit.py's stand-ins (aihwkit itself is not needed)."""

import pathlib

import numpy as np
import pytest

import aimc
from test_aihwkit import (BoundManagementType, NoiseManagementType, WeightClipType, WeightNoiseType, WeightRemapType,
                          inference_rpu_config, io_parameters, obj, with_changes)


def preset(**changes):
    """aihwkit's StandardHWATrainingPreset() (src/aihwkit/simulator/presets/inference.py): an
    InferenceRPUConfig subclass whose forward is a PresetIOParameters."""
    base = inference_rpu_config()
    fields = dict(vars(base))
    fields["forward"] = obj("PresetIOParameters", **vars(io_parameters(
        inp_res=254.0, out_res=254.0, bound_management=BoundManagementType.NONE, noise_management=NoiseManagementType.CONSTANT,
        nm_thres=1.0, w_noise=0.0175, w_noise_type=WeightNoiseType.PCM_READ, ir_drop=1.0, out_noise=0.04, out_bound=10.0)))
    for k, v in dict(weight_scaling_omega=1.0, weight_scaling_columnwise=True, max_input_size=512, max_output_size=0,
                     digital_bias=True, learn_out_scaling=True, out_scaling_columnwise=True).items():
        setattr(fields["mapping"], k, v)
    fields["remap"].type = WeightRemapType.CHANNELWISE_SYMMETRIC
    fields["clip"].type, fields["clip"].fixed_value = WeightClipType.FIXED_VALUE, 1.0
    ir = fields["pre_post"].input_range
    ir.enable, ir.init_value, ir.init_from_data, ir.init_std_alpha, ir.decay = True, 3.0, 100, 3.0, 0.001
    kind = type("StandardHWATrainingPreset", (type(base),), {})
    return with_changes(kind(**fields), **changes)


def test_the_standard_hwa_training_preset_maps():
    s = aimc.from_aihwkit(preset(), max_out=10)
    assert s["periphery"] == {"inp_bound": 1.0, "inp_res_bits": 8, "out_bound": 10.0, "out_res_bits": 8, "out_noise": 0.04,
                              "noise_management": "constant", "nm_thres": 1.0, "bound_management": "none", "max_bm_factor": 1000.0,
                              "max_bm_res": 0.25, "w_noise": 0.0175, "w_noise_type": "pcm_read", "ir_drop": 1.0,
                              "ir_drop_g_ratio": 571428.6, "weight_scaling_omega": 1.0, "weight_scaling_columnwise": True}
    assert s["tile"] == {"max_in": 512, "max_out": 10} and s["gdc"] == "readout"
    # Without the model's outputs, aihwkit's one tile per layer has no size to map to.
    with pytest.raises(ValueError, match=r"mapping\.max_output_size = 0 is not modelled"):
        aimc.from_aihwkit(preset())


def test_the_shipped_preset_case_is_the_presets_mapping():
    """experiments/aihwkit_breast_cancer_hwa_preset.toml (checked against aihwkit 1.1.0's Monte
    Carlo of the preset) writes out what `from_aihwkit` gives for the preset on its 32-output MLP,
    and its model file holds the preset's initial input range on every layer."""
    import json
    import struct
    import tomllib
    root = pathlib.Path(__file__).resolve().parents[2] / "experiments"
    exp = tomllib.loads((root / "aihwkit_breast_cancer_hwa_preset.toml").read_text())
    s = aimc.from_aihwkit(preset(), max_out=32)
    assert {k: s["periphery"][k] for k in exp["periphery"]} == exp["periphery"]
    defaults = {k: v for k, v in s["periphery"].items() if k not in exp["periphery"]}
    assert defaults == {"inp_bound": 1.0, "max_bm_factor": 1000.0, "max_bm_res": 0.25, "ir_drop_g_ratio": 571428.6}
    assert s["tile"] == exp["tile"] and s["gdc"] == "readout" and s["device"]["model"] == "pcm"
    # The safetensors layout: an 8-byte header length, the JSON header, then the data.
    raw = (root / exp["model"]["path"]).read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    ranges = {k: np.frombuffer(raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]], "<f4").tolist()
              for k, v in header.items() if k.endswith("input_range")}
    assert ranges == {f"{i}.input_range": [3.0] for i in (0, 2, 4)}


@pytest.mark.parametrize("nm, thres, want", [
    (NoiseManagementType.CONSTANT, 2.0, {"noise_management": "constant", "nm_thres": 2.0}),
    (NoiseManagementType.CONSTANT, 0.0, {"noise_management": "constant"}),
    (NoiseManagementType.ABS_MAX, 0.5, {"noise_management": "abs_max", "nm_thres": 0.5}),
    # NONE reads no threshold (rpucuda's computeNoiseManagement returns 1 first).
    (NoiseManagementType.NONE, 2.0, {"noise_management": "none"}),
])
def test_noise_management_and_its_threshold(nm, thres, want):
    p = aimc.from_aihwkit(inference_rpu_config(forward=io_parameters(noise_management=nm, nm_thres=thres)))["periphery"]
    assert {k: p[k] for k in ("noise_management", "nm_thres") if k in p} == want


def test_a_remap_and_learned_scales_the_mapping_divides_out_are_read():
    base = dict(mapping__weight_scaling_omega=1.0, mapping__weight_scaling_columnwise=True)
    cfg = with_changes(inference_rpu_config(), remap__type=WeightRemapType.CHANNELWISE_SYMMETRIC, mapping__learn_out_scaling=True,
                       mapping__out_scaling_columnwise=True, **base)
    assert aimc.from_aihwkit(cfg)["periphery"]["weight_scaling_columnwise"] is True
    layerwise = with_changes(inference_rpu_config(), remap__type=WeightRemapType.LAYERWISE_SYMMETRIC, mapping__weight_scaling_omega=1.0,
                             mapping__learn_out_scaling=True)
    assert aimc.from_aihwkit(layerwise)["periphery"]["weight_scaling_omega"] == 1.0
    with pytest.raises(ValueError, match=r"remap\.type = WeightRemapType\.CHANNELWISE_SYMMETRIC is not modelled"):
        aimc.from_aihwkit(with_changes(inference_rpu_config(), remap__type=WeightRemapType.CHANNELWISE_SYMMETRIC, remap__remapped_wmax=0.5,
                                       **base))


class _Tile:
    def __init__(self, r):
        self.input_range = None if r is None else np.array([r], dtype=np.float32)


class _Array:
    """aihwkit's TileModuleArray: its tiles as array[input tile][output tile]."""

    def __init__(self, grid):
        self.array = [[_Tile(r) for r in row] for row in grid]


def analog(kind: str, w, b, module):
    m = obj(kind, analog_module=module)
    m.get_weights = lambda: (w, b)
    return m


def sequential(*modules):
    s = obj("AnalogSequential")
    s.children = lambda: iter(modules)
    return s


def test_from_torch_reads_an_analog_models_weights_and_input_ranges():
    rng = np.random.default_rng(1)
    w1, b1, w2, b2 = rng.normal(size=(6, 10)), rng.normal(size=6), rng.normal(size=(3, 6)), rng.normal(size=3)
    model = sequential(analog("AnalogLinear", w1, b1, _Array([[0.5, 0.5], [2.0, 2.0]])), obj("ReLU"),
                       analog("AnalogLinearMapped", w2, b2, _Tile(1.5)))
    layers, act = aimc.from_torch(model)
    assert act == "relu" and len(layers) == 2
    np.testing.assert_allclose(layers[0][0], w1.astype(np.float32))
    assert layers[0][2].tolist() == [0.5, 2.0] and layers[1][2].tolist() == [1.5]
    # Without ranges a layer is (W, b), as a digital Linear.
    assert len(aimc.from_torch(sequential(analog("AnalogLinear", w2, b2, _Tile(None))))[0][0]) == 2
    with pytest.raises(ValueError, match=r"input tile 1 has input ranges \[2\.0, 3\.0\] on its output tiles"):
        aimc.from_torch(sequential(analog("AnalogLinear", w1, b1, _Array([[0.5, 0.5], [2.0, 3.0]]))))
    with pytest.raises(ValueError, match=r"input ranges on some tiles only"):
        aimc.from_torch(sequential(analog("AnalogLinear", w1, b1, _Array([[0.5], [None]]))))


def test_an_analog_conv1d_reads_as_its_1xk_convolution():
    """aihwkit's AnalogConv1d: `get_weights()` gives the unfolded [out, in·k] matrix, folded back
    to the Conv1d it is ([out, in, 1, k] for aimc's 1 x k convolution), with its stride, padding
    and input range."""
    rng = np.random.default_rng(3)
    w, b = rng.normal(size=(4, 2 * 3)), rng.normal(size=4)
    conv = analog("AnalogConv1d", w, b, _Tile(0.7))
    conv.kernel_size, conv.stride, conv.padding, conv.dilation, conv.groups, conv.padding_mode = (3,), (2,), (1,), (1,), 1, "zeros"
    layers, act = aimc.from_torch(sequential(conv, obj("ReLU"), obj("Flatten"), analog("AnalogLinear", rng.normal(size=(3, 8)), np.zeros(3), _Tile(None))))
    c = layers[0]
    assert c["weight"].shape == (4, 2, 1, 3) and (c["stride"], c["padding"], c["conv1d"]) == ([1, 2], [0, 1], True)
    np.testing.assert_allclose(c["weight"][:, :, 0, :], w.reshape(4, 2, 3).astype(np.float32))
    assert c["input_range"].tolist() == pytest.approx([0.7])


def _batchnorm(kind: str, n: int, rng):
    return obj(kind, weight=rng.uniform(0.5, 1.5, n), bias=rng.normal(0, 0.2, n), running_mean=rng.normal(0, 0.3, n),
               running_var=rng.uniform(0.5, 2.0, n), eps=1e-5)


def test_a_batchnorm_after_an_analog_layer_stays_digital_or_folds():
    """aihwkit's convert_to_analog leaves the BatchNorm after an AnalogConv2d or AnalogLinear
    digital, so the layer keeps the weights and input ranges its tiles hold and gets the
    BatchNorm as its "batchnorm" (an AnalogLinear then a dict); with fold_batchnorm=True it is
    folded into those weights, the ranges kept."""
    rng = np.random.default_rng(5)
    wc, bc, wl, bl = rng.normal(size=(4, 2 * 3 * 3)), rng.normal(size=4), rng.normal(size=(5, 4 * 6 * 6)), rng.normal(size=5)
    conv = analog("AnalogConv2d", wc, bc, _Tile(0.6))
    conv.kernel_size, conv.stride, conv.padding, conv.dilation, conv.groups, conv.padding_mode = (3, 3), (1, 1), (1, 1), (1, 1), 1, "zeros"
    bn2, bn1 = _batchnorm("BatchNorm2d", 4, rng), _batchnorm("BatchNorm1d", 5, rng)
    model = sequential(conv, bn2, obj("ReLU"), obj("Flatten"), analog("AnalogLinear", wl, bl, _Tile(0.9)), bn1, obj("ReLU"),
                       analog("AnalogLinear", rng.normal(size=(3, 5)), np.zeros(3), _Tile(None)))
    layers, act = aimc.from_torch(model)
    assert act == "relu" and set(layers[1]) == {"weight", "bias", "input_range", "batchnorm"} and len(layers[2]) == 2
    np.testing.assert_array_equal(layers[0]["weight"], wc.reshape(4, 2, 3, 3).astype(np.float32))
    np.testing.assert_array_equal(layers[1]["weight"], wl.astype(np.float32))
    assert (layers[0]["input_range"].tolist(), layers[1]["input_range"].tolist()) == ([pytest.approx(0.6)], [pytest.approx(0.9)])
    for layer, bn in ((layers[0], bn2), (layers[1], bn1)):
        np.testing.assert_array_equal(layer["batchnorm"]["running_mean"], bn.running_mean.astype(np.float32))
    folded, _ = aimc.from_torch(model, fold_batchnorm=True)
    s = bn1.weight.astype(np.float32) / np.sqrt(bn1.running_var.astype(np.float32).astype(np.float64) + bn1.eps)
    assert "batchnorm" not in folded[0] and len(folded[1]) == 3 and folded[1][2].tolist() == [pytest.approx(0.9)]
    np.testing.assert_allclose(folded[1][0], wl * s[:, None], rtol=1e-6)


def _net():
    rng = np.random.default_rng(7)
    layers = [(rng.normal(0, 0.4, (12, 8)), rng.normal(0, 0.1, 12), np.array([0.5])),
              (rng.normal(0, 0.4, (4, 12)), rng.normal(0, 0.1, 4), np.array([0.8]))]
    x = rng.normal(0, 1, (60, 8))
    h = np.maximum(np.clip(x, -0.5, 0.5) @ layers[0][0].T + layers[0][1], 0)
    y = np.argmax(np.clip(h, -0.8, 0.8) @ layers[1][0].T + layers[1][1], axis=1)
    return layers, x, y


def _aihwkit_forward(layers, x):
    """aihwkit's InferenceTile forward under the preset with its noise and IR drop off: per layer,
    `pre_forward` clips to the input range and divides by it; rpucuda's forward divides by the
    constant noise-management scale (nm_thres 1), quantises with the 8-bit DAC (2/254 steps,
    ties to even, clipped to ±1), multiplies with the columnwise-scaled weights (max|W| = 1 per
    output), quantises with the 8-bit ADC over ±10; `post_forward` multiplies back the range and
    the mapping scales; the bias is digital."""
    h = x
    for i, (w, b, r) in enumerate(layers):
        r = float(r[0])
        alpha = np.abs(w).max(axis=1)
        q = np.clip(np.round(np.clip(h, -r, r) / r / (2 / 254)) * (2 / 254), -1, 1)
        y = q @ (w / alpha[:, None]).T
        y = np.clip(np.round(y / (20 / 254)) * (20 / 254), -10, 10)
        h = y * r * alpha + b
        if i + 1 < len(layers):
            h = np.maximum(h, 0)
    return h


def test_classifier_with_the_preset_computes_aihwkits_forward(tmp_path):
    layers, x, y = _net()
    quiet = preset(forward__out_noise=0.0, forward__w_noise=0.0, forward__ir_drop=0.0, noise_model__prog_noise_scale=0.0,
                   noise_model__read_noise_scale=0.0, noise_model__drift_scale=0.0)
    r = aimc.classifier(layers, x, y, times=["1s"], trials=3, backend="cpu", quiet=True, layer_insight_trials=0,
                        out=str(tmp_path / "preset"), rpu_config=quiet)
    assert r.data["config"]["tile"]["max_out"] == 12 and r.data["config"]["periphery"]["noise_management"] == "constant"
    want = int((np.argmax(_aihwkit_forward(layers, x), axis=1) == y).sum())
    (w1, b1, _), (w2, b2, _) = layers
    unclipped = int((np.argmax(np.maximum(x @ w1.T + b1, 0) @ w2.T + b2, axis=1) == y).sum())
    assert unclipped + 3 <= want, f"the ranges clip: {want} correct with them, {unclipped} without"
    for c in r.points[0]["per_trial_correct"]:
        # f32 in the engine against f64 here may flip a near tie.
        assert abs(c - want) <= 1, (c, want)


def test_classifier_refuses_layers_without_the_ranges_the_config_learns(tmp_path):
    layers, x, y = _net()
    with pytest.raises(ValueError, match=r"layers\[0\] has no input range, but the rpu_config's pre_post\.input_range is enabled"):
        aimc.classifier([(w, b) for w, b, _ in layers], x, y, times=["1s"], trials=2, backend="cpu", quiet=True, rpu_config=preset(),
                        out=str(tmp_path / "x"))


def test_a_run_with_a_config_that_learns_ranges_needs_a_model_that_has_them(tmp_path):
    root = pathlib.Path(__file__).resolve().parents[2]
    # A file gives no layer sizes: aihwkit's one tile per layer along the outputs needs its size.
    with pytest.raises(ValueError, match=r"mapping\.max_output_size = 0 is not modelled"):
        aimc.run(root / "experiments/smoke.toml", trials=2, backend="cpu", quiet=True, out=str(tmp_path / "smoke"), rpu_config=preset())
    with pytest.raises(ValueError, match=r"pre_post\.input_range is enabled, but the model holds no input ranges"):
        aimc.run(root / "experiments/smoke.toml", trials=2, backend="cpu", quiet=True, out=str(tmp_path / "smoke"),
                 rpu_config=preset(mapping__max_output_size=64))
    # The shipped model trained with learned ranges runs under the preset.
    doc = {"name": "ranges", "workload": "classifier", "seed": 1, "trials": 2, "layer_insight_trials": 0, "weight_error_trials": 0,
           "model": {"path": str(root / "experiments/models/digits_mlp_hwa_ranges.safetensors")},
           "data": {"path": str(root / "experiments/data/digits.csv"), "scale": 16.0, "rows": [1347, 1397]}, "sweep": {"t": ["1s"]}}
    r = aimc.run(doc, backend="cpu", quiet=True, out=str(tmp_path / "r"), rpu_config=preset(mapping__max_output_size=64))
    assert r.data["config"]["periphery"]["noise_management"] == "constant"
    assert r.data["config"]["model"]["layers"][0]["input_range"] == pytest.approx([1.4939834])
