"""Hardware-aware fine-tuning from PyTorch (`aimc.torch`) and the native draw it uses
(`aimc._aimc.perturb_weights`, the trainers' equations drawn in blocks of rows). The draw's statistics are checked
without torch; the fine-tuning test runs where torch is installed (CI has no torch: it reports
that test as skipped)."""
import importlib
import pathlib
import sys

import numpy as np
import pytest

import aimc
from aimc._aimc import perturb_weights

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_aimc_imports_without_torch_and_aimc_torch_says_what_it_needs(monkeypatch):
    assert "torch" not in aimc.__all__
    # As on a machine without torch (None in sys.modules makes `import torch` fail).
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.delitem(sys.modules, "aimc.torch", raising=False)
    with pytest.raises(ImportError, match="needs PyTorch"):
        importlib.import_module("aimc.torch")


def test_perturb_weights_draws_the_device_models_noise():
    pcm = aimc.to_toml({"training": {"weight_noise": "pcm"}})
    w = [1.0] * 20000
    a = np.array(perturb_weights(w, pcm, 7))
    assert np.array_equal(a, np.array(perturb_weights(w, pcm, 7))), "the same seed draws the same noise"
    assert not np.array_equal(a, np.array(perturb_weights(w, pcm, 8)))
    # Every weight at max|W| = g_max: σ_prog(25 µS) = 1.0554 µS of 25, and G- programmed from 0
    # (σ 0.26 µS, clamped at 0) lowers the mean by 0.26348 / √(2π) / 25.
    assert abs(a.std() - 1.0554 / 25) < 0.1 * 1.0554 / 25
    assert abs(a.mean() - (1 - 0.26348 / np.sqrt(2 * np.pi) / 25)) < 2e-3
    g = aimc.to_toml({"training": {"weight_noise": "gaussian", "weight_noise_std": 0.1}})
    b = np.array(perturb_weights([2.0] + [0.0] * 19999, g, 1))
    assert abs(b[1:].std() - 0.2) < 0.01, "σ = 0.1 of max|W| = 2"
    with pytest.raises(ValueError, match="training.weight_noise"):
        perturb_weights([1.0], aimc.to_toml({"training": {"weight_noise": "pcn"}}), 0)
    with pytest.raises(ValueError, match="not finite"):
        perturb_weights([float("nan")], pcm, 0)


def _digits():
    data = np.loadtxt(ROOT / "experiments" / "data" / "digits.csv", delimiter=",")
    x, y = data[:, :64] / 16.0, data[:, 64].astype(np.int64)
    return x[:1347], y[:1347], x[1347:], y[1347:]


def _loss_at_10y(model, x, y, out):
    """Floating-point accuracy minus aimc's mean accuracy at 10 years (GDC on) of `model`."""
    layers, act = aimc.from_torch(model)
    r = aimc.classifier(layers, x, y, times=["10y"], trials=40, gdc="readout", activation=act, seed=3, backend="cpu", quiet=True,
                        periphery__out_noise=0.06, out=str(out))
    return r.fp_baseline - r.points[0]["summary"]["mean"]


def test_from_torch_maps_each_activation_as_pytorch_computes_it(tmp_path):
    """nn.GELU() is the exact (erf) GELU, aimc's "gelu_exact"; nn.GELU(approximate='tanh') its
    tanh form, "gelu"; nn.SiLU "silu": the classifier's floating-point baseline then predicts
    as PyTorch's forward does on every row."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(2)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 16), torch.nn.SiLU(), torch.nn.Linear(16, 16),
                              torch.nn.GELU(approximate="tanh"), torch.nn.Linear(16, 4))
    layers, act = aimc.from_torch(net)
    assert act == ["gelu_exact", "silu", "gelu", "none"]
    x = torch.randn(64, 8) * 2
    with torch.no_grad():
        logits = net(x).numpy()
    top2 = np.sort(logits, axis=1)[:, -2:]
    keep = top2[:, 1] - top2[:, 0] > 1e-4
    r = aimc.classifier(layers, x.numpy()[keep], logits.argmax(1)[keep], activation=act, times=["1s"], trials=2, backend="cpu",
                        quiet=True, out=str(tmp_path / "acts"), device="ideal", periphery__inp_res_bits=0,
                        periphery__out_res_bits=0, periphery__out_noise=0.0, periphery__out_bound=0.0)
    assert r.fp_baseline == 1.0


def test_a_conv1d_network_trains_and_evaluates_as_its_1xk_convolutions(tmp_path):
    """A 1-D CNN (Conv1d, BatchNorm1d, MaxPool1d, AdaptiveAvgPool1d(1), Linear): `prepare` trains
    each Conv1d per output position's patch (without noise, PyTorch's own output), and the
    classifier's floating-point baseline on [n, C, L] signals predicts as PyTorch does."""
    torch = pytest.importorskip("torch")
    import aimc.torch as at

    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Conv1d(2, 4, 3, padding=1), torch.nn.BatchNorm1d(4), torch.nn.ReLU(), torch.nn.MaxPool1d(2),
                              torch.nn.Conv1d(4, 6, 3, padding="same"), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool1d(1), torch.nn.Flatten(),
                              torch.nn.Linear(6, 3)).eval()
    with torch.no_grad():
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].running_var.uniform_(0.5, 2.0)
    x = torch.randn(50, 2, 16)
    with torch.no_grad():
        logits = net(x)
    at.prepare(net, device="none")
    net.train()
    net[1].eval()   # the BatchNorm's running statistics as evaluated
    with torch.no_grad():
        assert torch.allclose(net(x), logits, atol=1e-5)
    at.unprepare(net)
    net.eval()
    top2 = np.sort(logits.numpy(), axis=1)[:, -2:]
    keep = top2[:, 1] - top2[:, 0] > 1e-4
    r = aimc.classifier(net, x[keep], logits.argmax(1)[keep], times=["1s"], trials=2, backend="cpu", quiet=True, out=str(tmp_path / "c1d"),
                        device="ideal", periphery__inp_res_bits=0, periphery__out_res_bits=0, periphery__out_noise=0.0,
                        periphery__out_bound=0.0)
    assert r.fp_baseline == 1.0 and r.data["config"]["model"]["input_shape"] == [2, 1, 16]


def test_classifier_takes_the_sequential_itself(tmp_path):
    """`aimc.classifier(net, x, y)` with the nn.Sequential and torch tensors runs what
    `from_torch` reads, with the model's own activations: the same trials as the layers and
    arrays; an activation that contradicts the model's is refused."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(4)
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    x = torch.randn(30, 6)
    y = net(x).argmax(1)
    kw = dict(times=["1d"], trials=3, backend="cpu", quiet=True)
    direct = aimc.classifier(net, x, y, out=str(tmp_path / "direct"), **kw)
    layers, act = aimc.from_torch(net)
    read = aimc.classifier(layers, x.numpy(), y.numpy(), activation=act, out=str(tmp_path / "read"), **kw)
    assert act == "tanh" and direct.points[0]["per_trial"] == read.points[0]["per_trial"]
    with pytest.raises(ValueError, match="activation='relu', but the model's own activations read as 'tanh'"):
        aimc.classifier(net, x, y, activation="relu", out=str(tmp_path / "bad"), **kw)


def _encoder_classifier(torch):
    """A PyTorch transformer classifier of nn.TransformerEncoder layers (its attention an
    nn.MultiheadAttention), learned positions and mean pooling over the non-padding tokens, as
    aimc's `from_torch` maps it; and 40 token rows padded with 0."""
    class Classifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding, self.pos = torch.nn.Embedding(12, 16, padding_idx=0), torch.nn.Embedding(16, 16)
            layer = torch.nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
            self.encoder = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
            self.classifier = torch.nn.Linear(16, 3)

        def forward(self, x):
            pad = x == 0
            h = self.encoder(self.embedding(x) + self.pos(torch.arange(x.shape[1])), src_key_padding_mask=pad)
            keep = (~pad).unsqueeze(-1).float()
            return self.classifier((h * keep).sum(1) / keep.sum(1))

    tok = np.random.default_rng(1).integers(1, 12, size=(40, 10))
    for r in range(40):
        tok[r, 4 + r % 6:] = 0
    return Classifier().eval(), tok


def test_multihead_attention_trains_on_its_crossbars(tmp_path):
    """prepare puts nn.MultiheadAttention's projections on crossbars as aimc's transformer maps
    them: Q, K and V as three matrices (views of in_proj_weight, which gets their gradient) and
    out_proj, beside linear1 and linear2: six wrapped layers per encoder layer. Without noise the
    prepared forward is PyTorch's (padding and causal masks, batch first or not); with the device
    model it moves; unprepare restores the module. With learned input ranges (one for Q, K and V,
    `self_attn.in_proj.input_range`, as the evaluation reads it) the evaluation's floating-point
    baseline clips as the prepared network does: every prediction agrees, where the unclipped
    network disagrees on some."""
    torch = pytest.importorskip("torch")
    import aimc.torch as at

    torch.manual_seed(0)
    for batch_first in (True, False):
        enc = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=batch_first), 2,
                                          enable_nested_tensor=False).train()
        x = torch.randn(3, 5, 16) if batch_first else torch.randn(5, 3, 16)
        pad = torch.zeros(3, 5, dtype=torch.bool)
        pad[0, 3:] = True
        causal = torch.nn.Transformer.generate_square_subsequent_mask(5)
        want = (enc(x, src_key_padding_mask=pad).detach(), enc(x, mask=causal).detach())
        at.prepare(enc, device="none")
        assert len([m for m in enc.modules() if hasattr(m, "_aimc")]) == 12
        got = (enc(x, src_key_padding_mask=pad).detach(), enc(x, mask=causal).detach())
        assert all(torch.allclose(g, w, atol=1e-6, equal_nan=True) for g, w in zip(got, want))
        at.unprepare(enc)
        a = enc.layers[0].self_attn
        assert a._qkv_same_embed_dim and not hasattr(a, "in_proj") and not hasattr(a, "_aimc_attention")
    at.prepare(enc, device="pcm", t="10y")
    enc(x, mask=causal).sum().backward()
    assert enc.layers[0].self_attn.in_proj_weight.grad.abs().sum() > 0
    assert not torch.allclose(enc(x, mask=causal).detach(), want[1], atol=1e-3)
    at.unprepare(enc)

    net, tok = _encoder_classifier(torch)
    t = torch.as_tensor(tok)
    with torch.no_grad():
        plain = net(t).argmax(1).numpy()
    at.prepare(net, device="none", input_range={"init_value": 0.4, "init_from_data": 0})
    ranges = sorted(k for k in net.state_dict() if k.endswith("input_range"))
    assert "encoder.layers.1.self_attn.in_proj.input_range" in ranges and len(ranges) == 9, ranges
    net.eval()
    with torch.no_grad():
        logits = net(t).numpy()
    labels = logits.argmax(1)
    assert np.any(labels != plain), "the ranges change some predictions"
    top2 = np.sort(logits, axis=1)[:, -2:]
    assert np.all(top2[:, 1] - top2[:, 0] > 1e-4), "a near tie would leave the prediction to rounding"
    at.unprepare(net)
    model = aimc.from_torch(net)
    assert sorted(k for k in model.tensors if k.endswith("input_range")) == ranges
    r = aimc.transformer(model, tok, labels, times=["1s"], trials=2, backend="cpu", quiet=True, out=str(tmp_path / "ranged"))
    assert r.fp_baseline == 1.0


def test_perturb_weights_takes_the_devices_fields():
    """`[training.device]` (what `aimc.torch.prepare(device={...})` writes) sets fields on the
    named model as an experiment's [device] does: with programming and read noise off and one ν
    for every device (a flat measured drift table), drifting to 10 y moves every weight alike, so
    the compensated copies are all equal; pcm's own ν spread makes them differ. Bad fields are
    named under training.device."""
    quiet = {"prog_noise_scale": 0.0, "read_noise_scale": 0.0}
    flat = {**quiet, "drift_table": {"g": [0.0, 25.0], "nu_mean": [0.1, 0.1], "nu_std": [0.0, 0.0]}}
    spec = lambda device: aimc.to_toml({"training": {"weight_noise": "pcm", "weight_noise_time": "10y", "device": device}})
    w = [1.0] * 2000
    a = np.array(perturb_weights(w, spec(flat), 3))
    b = np.array(perturb_weights(w, spec(quiet), 3))
    assert a.std() == 0.0 and b.std() > 1e-3, (a.std(), b.std())
    # A measured programming table of σ = 0, no drift: the noisy copy is the weights themselves.
    exact = aimc.to_toml({"training": {"weight_noise": "pcm", "device": {"prog_table": {"g": [0.0, 25.0], "sigma": [0.0, 0.0]}}}})
    assert np.allclose(perturb_weights(w, exact, 3), 1.0, atol=1e-6)
    with pytest.raises(ValueError, match=r"training\.device\.gmax: unknown field"):
        perturb_weights(w, spec({"gmax": 20.0}), 0)
    with pytest.raises(ValueError, match=r"training\.device\.drift_table\.g spans \[0, 10\]"):
        perturb_weights(w, spec({"drift_table": {"g": [0.0, 10.0], "nu_mean": [0.1, 0.1], "nu_std": [0.0, 0.0]}}), 0)


def test_fine_tuning_with_aimc_noise_lowers_the_loss_under_aimc(tmp_path):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    import aimc.torch as at

    torch.manual_seed(0)
    xtr, ytr, xte, yte = _digits()
    X, Y = torch.tensor(xtr, dtype=torch.float32), torch.tensor(ytr)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.train()
    for _ in range(60):                       # floating point: full-batch steps
        loss = F.cross_entropy(model(X), Y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    before = _loss_at_10y(model, xte, yte, tmp_path / "before")

    with pytest.raises(ValueError, match="device"):
        at.prepare(model, device="pcn")
    # A device table (an experiment's [device], or from_aihwkit's) names its bad fields.
    with pytest.raises(ValueError, match=r"prepare: device\.gmax: unknown field"):
        at.prepare(model, device={"model": "pcm", "gmax": 20.0})
    at.prepare(model, device="pcm", t="10y", noise_scale=3.0, output_noise=0.12, dac_bits=7, clip_sigma=2.5, seed=1)
    assert at.is_prepared(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    for _ in range(5):                        # a few epochs of mini-batches with aimc's noise
        for i in range(0, X.shape[0], 64):
            loss = F.cross_entropy(model(X[i:i + 64]), Y[i:i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():                     # eval mode is floating point: deterministic
        assert torch.equal(model(X[:5]), model(X[:5]))
    at.unprepare(model)
    assert not at.is_prepared(model)
    after = _loss_at_10y(model, xte, yte, tmp_path / "after")
    print(f"loss from floating point at 10 y under aimc: {before:.4f} before fine-tuning, {after:.4f} after")
    assert after < before, f"loss from floating point at 10 y: {after:.4f} after fine-tuning, {before:.4f} before"


def test_a_gpt2_language_model_fine_tunes_through_its_conv1d_layers(tmp_path):
    """GPT-2's linear layers are Hugging Face Conv1D (W stored [in, out]): `prepare` wraps them
    with the noise drawn on Wᵀ as a crossbar holds it; in eval mode the prepared model is the plain
    one; a few noisy steps on the next-token loss move and clip every Conv1D; the fine-tuned model
    maps and runs through aimc.language_model."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    import aimc.torch as at
    torch.manual_seed(0)
    net = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=30, n_positions=16, n_embd=16, n_layer=2, n_head=2))
    tok = torch.as_tensor(np.random.default_rng(1).integers(0, 30, size=(8, 16)))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.eval()
    with torch.no_grad():
        plain = net(tok).logits
    at.prepare(net, device="pcm", t="10y", noise_scale=3.0, output_noise=0.12, clip_sigma=2.5, seed=3)
    convs = [m for m in net.modules() if type(m).__name__ == "Conv1D"]
    assert len(convs) == 8 and all(hasattr(m, "_aimc") for m in convs)
    with torch.no_grad():
        assert torch.equal(net(tok).logits, plain), "eval mode computes in floating point"
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(3):
        loss = net(tok, labels=tok).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    at.unprepare(net)
    for name, v in net.state_dict().items():
        if name.endswith("c_attn.weight"):
            assert not torch.equal(v, before[name])
            # Clipped at 2.5 sigma of the weights before the cut: the extremes sit at the bound.
            assert int((v.abs() == v.abs().max()).sum()) >= 2, f"{name} is clipped"
    net.eval()
    r = aimc.language_model(net, tok.numpy(), times=["1h"], trials=2, backend="cpu", out=str(tmp_path / "lm"), quiet=True)
    assert r.points[0]["fp"] > 1.0 and len(r.points[0]["per_trial"]) == 2


def _crossbar_case(torch):
    """aimc's crossbar test case (src/train/periphery.rs): Linear(7, 3) with every weight 2 and
    biases 0.5, -0.25, 0.125, and one input vector that needs the gradient."""
    lin = torch.nn.Linear(7, 3)
    with torch.no_grad():
        lin.weight.fill_(2.0)
        lin.bias.copy_(torch.tensor([0.5, -0.25, 0.125]))
    return lin, torch.tensor([[4.0, -0.35, 1.3, 0.02, -0.03, 0.011, 0.9]], requires_grad=True)


def _conv_case(torch):
    """aimc's hand-computed convolution (src/train/cnn.rs, hand_case): Conv2d(2, 2, 3) whose
    output 0 sums channel 0's 3x3 neighbourhood and output 1 takes channel 0's top-left neighbour
    plus 10 x channel 1's centre, biases 0.5 and -1; and its image, 1..9 and nine ones."""
    conv = torch.nn.Conv2d(2, 2, 3, padding=1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0].fill_(1.0)
        conv.weight[1, 0, 0, 0] = 1.0
        conv.weight[1, 1, 1, 1] = 10.0
        conv.bias.copy_(torch.tensor([0.5, -1.0]))
    return conv, torch.cat([torch.arange(1.0, 10.0).reshape(1, 1, 3, 3), torch.ones(1, 1, 3, 3)], dim=1)


def test_the_adc_and_tiles_follow_aimcs_periphery():
    torch = pytest.importorskip("torch")
    import aimc.torch as at

    torch.manual_seed(3)
    lin, x = _crossbar_case(torch)
    with pytest.raises(ValueError, match="out_bound > 0"):
        at.prepare(lin, device="none", adc_bits=4)
    with pytest.raises(ValueError, match="max_in = 0"):
        at.prepare(lin, device="none", max_in=0)
    # aimc's crossbar test case (src/train/periphery.rs): a 4-bit ADC over +-2, tiles of at most
    # 3 rows, so 7 inputs split 3, 2, 2. Tile sums in units of their slice's max|x|: 9.9/4
    # saturates at 2 (x 4); -0.02/0.03 rounds to -2 steps (x 0.03); 1.822/0.9 rounds to the top
    # code 2 (x 0.9); the bias adds after the ADC.
    at.prepare(lin, device="none", periphery={"out_res_bits": 4, "out_bound": 2.0}, max_in=3)
    lin.train()
    y = lin(x)
    want = torch.tensor([0.5, -0.25, 0.125]) + 2.0 * 4.0 - 2.0 * (4.0 / 14.0) * 0.03 + 2.0 * 0.9
    assert torch.allclose(y.detach()[0], want, atol=1e-5), y
    y.sum().backward()
    # Straight through the rounding, zero through the clamp: the first tile's outputs are
    # clipped, so its inputs get no gradient; the others get the sum of their weight columns.
    # Too with 768 inputs on 512-row tiles: two slices of 384.
    from aimc.torch import _tiles
    assert list(_tiles(768, 512)) == [(0, 384), (384, 768)] and list(_tiles(7, 3)) == [(0, 3), (3, 5), (5, 7)]
    assert torch.allclose(x.grad, torch.tensor([[0.0, 0.0, 0.0, 6.0, 6.0, 6.0, 6.0]])), x.grad
    assert torch.allclose(lin.bias.grad, torch.ones(3))
    at.unprepare(lin)
    # omega = 1 per column: every weight 2, so outputs are in units of 2 max|x| and the first
    # tile no longer clips: 4 steps x 8; -0.02/0.06 rounds to -1 step x 0.06; 1.822/1.8 to 4
    # steps x 1.8 (aimc's weight-scaling case in src/train/periphery.rs).
    at.prepare(lin, device="none", adc_bits=4, out_bound=2.0, max_in=3,
               periphery={"weight_scaling_omega": 1.0, "weight_scaling_columnwise": True})
    lin.train()
    step = 4.0 / 14.0
    want = torch.tensor([0.5, -0.25, 0.125]) + 4 * step * 8.0 - step * 0.06 + 4 * step * 1.8
    assert torch.allclose(lin(x.detach())[0], want, atol=1e-5)
    at.unprepare(lin)
    with pytest.raises(ValueError, match="weight_scaling_omega > 0"):
        at.prepare(lin, device="none", weight_scaling_columnwise=True)
    # One tile and no ADC is the plain layer with the DAC: nothing else changed.
    at.prepare(lin, device="none", dac_bits=24)
    lin.train()
    assert torch.allclose(lin(x.detach()), torch.nn.functional.linear(x.detach(), lin.weight, lin.bias), atol=1e-5)


def test_a_convolution_trains_per_patch_as_the_evaluation_maps_it(tmp_path):
    """A Conv2d trains as aimc's evaluation (and aihwkit's AnalogConv2d) computes it: one vector
    per output pixel, its C_in·kh·kw patch split over the tiles, each slice quantised over its own
    max|x| (here a 3-bit DAC on tiles of at most 10 rows: 18-column patches as two slices of 9).
    With learned input ranges the layer holds one per input tile of its patches, and eval mode
    clips each patch column to its tile's range; the evaluation's floating-point baseline, which
    clips the same way (576-column patches on two 512-row tiles, ranges 0.5 and 0.8), agrees with every prediction of
    the prepared network, where the unclipped one disagrees on some."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F
    import aimc.torch as at

    torch.manual_seed(5)
    conv = torch.nn.Conv2d(2, 3, 3, padding=1, stride=(1, 2))
    x = torch.randn(4, 2, 5, 6)
    at.prepare(conv, device="none", dac_bits=3, max_in=10)
    conv.train()
    y = conv(x).detach()
    at.unprepare(conv)
    p = F.unfold(x, 3, padding=1, stride=(1, 2)).transpose(1, 2)          # [4, 5·3, 18]
    w = conv.weight.detach().reshape(3, -1)
    step = 2.0 / 6.0
    want = conv.bias.detach().clone()
    for a, b in ((0, 9), (9, 18)):
        xs = p[..., a:b]
        amax = xs.abs().amax(dim=-1, keepdim=True)
        want = want + (torch.clamp(torch.round(xs / amax / step) * step, -1, 1) * amax) @ w[:, a:b].T
    assert y.shape == (4, 3, 5, 3)
    assert torch.allclose(y, want.transpose(1, 2).reshape(4, 3, 5, 3), atol=1e-5)
    # Scaled over the whole map instead, the corner pixels would round otherwise.
    whole = torch.nn.functional.conv2d(x, conv.weight.detach(), conv.bias.detach(), padding=1, stride=(1, 2))
    assert not torch.allclose(y, whole, atol=1e-3)
    with pytest.raises(ValueError, match=r"layer 0 \(Conv2d\) has groups = 2; aimc maps a convolution with one group"):
        at.prepare(torch.nn.Conv2d(2, 2, 3, groups=2), device="none")
    with pytest.raises(ValueError, match=r"padding_mode = 'reflect'"):
        at.prepare(torch.nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect"), device="none")

    net = torch.nn.Sequential(torch.nn.Conv2d(64, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 3))
    imgs = torch.randn(40, 64, 4, 4)
    with torch.no_grad():
        plain = net(imgs).argmax(1).numpy()
    at.prepare(net, device="none", input_range={"init_value": 0.6, "init_from_data": 0})
    assert tuple(net[0].input_range.shape) == (2,) and tuple(net[3].input_range.shape) == (1,)
    with torch.no_grad():
        net[0].input_range.copy_(torch.tensor([0.5, 0.8]))   # columns 0..287, 288..575
    net.eval()
    with torch.no_grad():
        logits = net(imgs)
    bounds = torch.cat([torch.full((288,), 0.5), torch.full((288,), 0.8)])
    cols = torch.maximum(torch.minimum(F.unfold(imgs, 3, padding=1).transpose(1, 2), bounds), -bounds)
    first = (cols @ net[0].weight.detach().reshape(4, -1).T + net[0].bias.detach()).transpose(1, 2).reshape(40, 4, 4, 4)
    assert torch.allclose(logits, net[3](torch.relu(first).flatten(1).clamp(-0.6, 0.6)), atol=1e-5)
    labels = logits.argmax(1).numpy()
    assert np.any(labels != plain), "the ranges change some predictions"
    top2 = np.sort(logits.numpy(), axis=1)[:, -2:]
    assert np.all(top2[:, 1] - top2[:, 0] > 1e-4), "a near tie would leave the prediction to rounding"
    at.unprepare(net)
    layers, act = aimc.from_torch(net)
    assert layers[0]["input_range"].tolist() == pytest.approx([0.5, 0.8])
    r = aimc.classifier(layers, imgs.numpy(), labels, activation=act, times=["1h"], trials=2, backend="cpu", quiet=True,
                        out=str(tmp_path / "conv"), device="ideal", periphery__inp_res_bits=0, periphery__out_res_bits=0,
                        periphery__out_noise=0.0, periphery__out_bound=0.0)
    assert r.fp_baseline == 1.0


def test_bound_management_redoes_a_saturated_tile_as_aimc_does():
    torch = pytest.importorskip("torch")
    import aimc.torch as at

    lin, x = _crossbar_case(torch)
    with pytest.raises(ValueError, match="out_bound > 0"):
        at.prepare(lin, device="none", bound_management="iterative")
    with pytest.raises(ValueError, match="bound_management = 'sometimes'"):
        at.prepare(lin, device="none", adc_bits=4, out_bound=2.0, bound_management="sometimes")
    # aimc's case (src/train/periphery.rs, bound_management_redoes_a_saturated_tile): the first
    # tile's 9.9/4 saturates +-2 and is redone at 1/2, 1.2375 rounding to 4 steps, x 2 x 4; the
    # others as without bound management; nothing clipped, so every input gets its gradient.
    at.prepare(lin, device="none", periphery={"out_res_bits": 4, "out_bound": 2.0, "bound_management": "iterative"}, max_in=3)
    assert lin.forward.adc[2] == 1024   # no DAC: the reduction stops past max_bm_factor
    lin.train()
    y = lin(x)
    step = 4.0 / 14.0
    want = torch.tensor([0.5, -0.25, 0.125]) + 4 * step * 2 * 4.0 - 2 * step * 0.03 + 2.0 * 0.9
    assert torch.allclose(y.detach()[0], want, atol=1e-5), y
    y.sum().backward()
    assert torch.allclose(x.grad, torch.full((1, 7), 6.0)), x.grad
    at.unprepare(lin)
    # A convolution per output pixel (src/train/cnn.rs, conv_bound_management_redoes_a_saturated_pixel):
    # the centre pixel needs 1/4; channel 0's 45 / 9 / 4 rounds to 4 steps, channel 1's 11 / 9 / 4
    # to 1 step, each x 4 x 9, then the bias.
    conv, img = _conv_case(torch)
    at.prepare(conv, device="none", adc_bits=4, out_bound=2.0, bound_management="iterative")
    conv.train()
    y = conv(img).detach()
    assert abs(float(y[0, 0, 1, 1]) - (4 * step * 4 * 9 + 0.5)) < 1e-4, y
    assert abs(float(y[0, 1, 1, 1]) - (step * 4 * 9 - 1.0)) < 1e-4, y
    exact = torch.nn.functional.conv2d(img, conv.weight.detach(), conv.bias.detach(), padding=1)
    assert float((y - exact).abs().max()) <= step * 4 * 9 / 2 + 1e-4


def test_an_aihwkit_configuration_sets_the_training_periphery():
    torch = pytest.importorskip("torch")
    import aimc.torch as at
    from test_aihwkit import BoundManagementType, NoiseManagementType, WeightNoiseType, inference_rpu_config, with_changes

    lin = torch.nn.Linear(600, 4)
    # aihwkit's default trains with iterative bound management, and so does prepare: the 7-bit
    # DAC's last reduction is 16. Per-read weight noise and mixed arguments are refused by
    # attribute path, with the fix.
    at.prepare(lin, rpu_config=inference_rpu_config())
    assert lin.forward.adc[2] == 16
    at.unprepare(lin)
    noisy = with_changes(inference_rpu_config(), forward__bound_management=BoundManagementType.NONE,
                         forward__w_noise_type=WeightNoiseType.PCM_READ, forward__w_noise=0.02)
    at.prepare(lin, rpu_config=noisy)
    assert lin.forward.w_noise == (0.02, True)
    at.unprepare(lin)
    at.prepare(lin, rpu_config=with_changes(noisy, forward__ir_drop=1.0))
    assert lin.forward.ir_drop == (1.0, 571428.6)
    at.unprepare(lin)
    with pytest.raises(ValueError, match=r"rpu_config\.forward\.noise_management = 'none'"):
        at.prepare(lin, rpu_config=with_changes(noisy, forward__noise_management=NoiseManagementType.NONE))
    # Input noise maps for the evaluation; training refuses it rather than leave it out.
    with pytest.raises(ValueError, match=r"rpu_config\.forward\.inp_noise = 0\.05: training adds no input noise"):
        at.prepare(lin, rpu_config=with_changes(inference_rpu_config(), forward__inp_noise=0.05))
    cfg = with_changes(inference_rpu_config(), forward__bound_management=BoundManagementType.NONE, forward__out_noise=0.0)
    with pytest.raises(ValueError, match="remove dac_bits or rpu_config"):
        at.prepare(lin, rpu_config=cfg, dac_bits=7)
    # Its 7-bit DAC, 9-bit ADC over +-12 and 512-row tiles (600 inputs: two slices of 300): each
    # slice's output lies on the ADC grid in units of the slice's max|x|.
    at.prepare(lin, rpu_config=cfg, noise_scale=0.0)   # programming noise x 0: the weights as they are
    lin.train()
    torch.manual_seed(1)
    x = torch.randn(3, 600)
    step = 24.0 / 510.0
    with torch.no_grad():
        y = lin(x) - lin.bias
        dac = lambda s: torch.round(s / s.abs().amax(-1, keepdim=True) / (2 / 126)) * (2 / 126) * s.abs().amax(-1, keepdim=True)
        want = 0
        for a, b in ((0, 300), (300, 600)):
            xs = x[:, a:b]
            amax = xs.abs().amax(-1, keepdim=True)
            p = torch.nn.functional.linear(dac(xs), lin.weight[:, a:b]) / amax
            want = want + torch.round(p / step) * step * amax
    assert torch.allclose(y, want, atol=1e-4), (y, want)
    at.unprepare(lin)


def test_an_aihwkit_configurations_modifier_and_clipping_train_as_in_aihwkit():
    torch = pytest.importorskip("torch")
    import aimc.torch as at
    from test_aihwkit import (WeightClipType, WeightModifierType, inference_rpu_config, io_parameters, with_changes)

    def perfect(**changes):
        # aihwkit's ideal forward pass, so only the modifier and the clipping act.
        return with_changes(inference_rpu_config(forward=io_parameters(is_perfect=True)), **changes)

    torch.manual_seed(0)
    lin = torch.nn.Linear(6, 2, bias=False)
    w0 = torch.tensor([[0.33, -0.71, 0.07, 0.52, -0.26, 0.9], [-0.12, 0.44, 0.68, -0.93, 0.2, 0.01]])
    x = torch.randn(4, 6)

    def run(cfg, **kwargs):
        with torch.no_grad():
            lin.weight.copy_(w0)
        at.prepare(lin, rpu_config=cfg, **kwargs)
        lin.train()
        with torch.no_grad():
            y = lin(x)
        run.clipped = lin.weight.detach().clone()   # as the forward pass clipped it
        at.unprepare(lin)
        return y

    # DISCRETIZE to 0.1 of an assumed max of 1 (rel_to_actual_wmax off): the forward multiplies the
    # weights on that grid (0.33 -> 0.3, -0.71 -> -0.7, 0.07 -> 0.1, ...).
    y = run(perfect(modifier__type=WeightModifierType.DISCRETIZE, modifier__res=0.1, modifier__rel_to_actual_wmax=False))
    grid = torch.sign(w0) * torch.floor(w0.abs() / 0.1 + 0.5) * 0.1
    assert torch.allclose(y, x @ grid.t(), atol=1e-5), (y, x @ grid.t())
    # ADD_NORMAL: aimc's "gaussian", std_dev relative to max|W|; the noise changes the outputs.
    y = run(perfect(modifier__type=WeightModifierType.ADD_NORMAL, modifier__std_dev=0.1))
    assert not torch.allclose(y, x @ w0.t(), atol=1e-3)
    # DROP_CONNECT with pdrop: some products vanish, the rest are the weights as they are.
    y = run(perfect(modifier__type=WeightModifierType.DROP_CONNECT, modifier__pdrop=0.5))
    assert not torch.allclose(y, x @ w0.t(), atol=1e-3)
    # Clipping: FIXED_VALUE at 0.3; AVERAGE_CHANNEL_MAX at the mean of the rows' max|W|,
    # (0.9 + 0.93) / 2; LAYER_GAUSSIAN with a fixed_value > 0 at the smaller of the two.
    # (Without a modifier the noise model's programming noise trains, here x 0.)
    y = run(perfect(clip__type=WeightClipType.FIXED_VALUE, clip__fixed_value=0.3), noise_scale=0.0)
    assert torch.allclose(y, x @ w0.clamp(-0.3, 0.3).t(), atol=1e-5)
    assert float(run.clipped.abs().max()) == pytest.approx(0.3)
    run(perfect(clip__type=WeightClipType.AVERAGE_CHANNEL_MAX), noise_scale=0.0)
    assert float(run.clipped.abs().max()) == pytest.approx(0.915)
    # Clipped once: a forward pass without an optimiser step after it leaves unprepare nothing to
    # clip (the channel mean, now (0.9 + 0.915) / 2, would shrink the weights again).
    assert float(lin.weight.detach().abs().max()) == pytest.approx(0.915)
    run(perfect(clip__type=WeightClipType.LAYER_GAUSSIAN, clip__sigma=3.0, clip__fixed_value=0.2), noise_scale=0.0)
    assert float(run.clipped.abs().max()) == pytest.approx(0.2)
    # What training does not draw, or an argument the configuration already gives, is refused.
    with pytest.raises(ValueError, match=r"rpu_config\.modifier\.type = WeightModifierType\.DOREFA"):
        at.prepare(lin, rpu_config=perfect(modifier__type=WeightModifierType.DOREFA))
    with pytest.raises(ValueError, match=r"rpu_config\.modifier\.std_dev = 0\.0: WeightModifierType\.MULT_NORMAL with std_dev 0"):
        at.prepare(lin, rpu_config=perfect(modifier__type=WeightModifierType.MULT_NORMAL))
    with pytest.raises(ValueError, match=r"rpu_config\.modifier\.sto_round = True"):
        at.prepare(lin, rpu_config=perfect(modifier__type=WeightModifierType.DISCRETIZE, modifier__res=0.1, modifier__sto_round=True))
    with pytest.raises(ValueError, match="remove clip_sigma and clip_value"):
        at.prepare(lin, rpu_config=perfect(clip__type=WeightClipType.FIXED_VALUE, clip__fixed_value=0.3), clip_sigma=2.5)
    with pytest.raises(ValueError, match="t and noise_scale act on the noise model's programming noise"):
        at.prepare(lin, rpu_config=perfect(modifier__type=WeightModifierType.ADD_NORMAL, modifier__std_dev=0.1), t="10y")
    assert not at.is_prepared(lin)


def test_per_read_weight_noise_has_aimcs_std():
    torch = pytest.importorskip("torch")
    import aimc.torch as at

    # aimc's case (src/train/periphery.rs, w_noise_has_the_evaluations_std): 4,000 reads of one
    # vector; sigma = w_noise x ||x|| (additive constant) or w_noise x sqrt(sum |w| x^2) (PCM
    # read), the tile unit max|x| cancelling; within 5 % (5 sigma of the sampling error, 1.1 %).
    torch.manual_seed(5)
    lin, x = _crossbar_case(torch)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([((i * 13 % 11) - 5.2) * 0.11 for i in range(21)]).reshape(3, 7))
    xs = x.detach().expand(4000, 7)
    exact = torch.nn.functional.linear(xs, lin.weight, lin.bias).detach()
    for kind in ("additive_constant", "pcm_read"):
        at.prepare(lin, device="none", periphery={"w_noise": 0.1, "w_noise_type": kind})
        lin.train()
        got = (lin(xs).detach() - exact).std(dim=0)
        at.unprepare(lin)
        want = 0.1 * (xs[0] ** 2).sum().sqrt() if kind == "additive_constant" else 0.1 * (lin.weight.abs() * xs[0] ** 2).sum(1).sqrt()
        assert torch.allclose(got, want.expand(3) if want.dim() == 0 else want, rtol=0.05), (kind, got, want)
    # A convolution per output pixel (src/train/cnn.rs, conv_w_noise_has_the_patch_std): the centre
    # pixel's patch holds 1..9 and nine ones.
    conv, img = _conv_case(torch)
    img = img.expand(4000, 2, 3, 3)
    exact = torch.nn.functional.conv2d(img, conv.weight.detach(), conv.bias.detach(), padding=1)
    for kind, o, want in (("additive_constant", 0, 0.1 * 294 ** 0.5), ("pcm_read", 1, 0.1 * 11 ** 0.5)):
        at.prepare(conv, device="none", w_noise=0.1, w_noise_type=kind)
        conv.train()
        got = float((conv(img).detach() - exact)[:, o, 1, 1].std())
        at.unprepare(conv)
        assert abs(got / want - 1) < 0.05, (kind, got, want)
    with pytest.raises(ValueError, match="w_noise_type = 'pcm'"):
        at.prepare(conv, device="none", w_noise=0.1, w_noise_type="pcm")


def test_ir_drop_is_aimcs_formula():
    torch = pytest.importorskip("torch")
    import aimc.torch as at

    # aimc's cases (src/train/periphery.rs, ir_drop_is_the_evaluations_formula; src/train/cnn.rs,
    # conv_ir_drop_is_the_evaluations_formula), by hand in float64: y = W x - alpha ir_drop c(a)
    # sum w x~ (1 - r_k^2), x~ = x / alpha, r_k = 1 - k/n, a = n / g sum |w| |x~|.
    def want(w, x, alpha, g):
        n = len(x)
        xt = [v / alpha for v in x]
        sa = sum(abs(a) * abs(b) for a, b in zip(w, xt))
        sp = sum(a * b * (1 - (1 - k / n) ** 2) for k, (a, b) in enumerate(zip(w, xt)))
        a = n / g * sa
        return sum(a_ * b for a_, b in zip(w, x)) - alpha * 0.8 * a * (a * (0.05 * a - 0.2) + 0.5) * sp

    lin, x = _crossbar_case(torch)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([((i * 13 % 11) - 5.2) * 0.11 for i in range(21)]).reshape(3, 7))
        lin.bias.zero_()
    at.prepare(lin, device="none", ir_drop=0.8, ir_drop_g_ratio=10.0)
    lin.train()
    y = lin(x).detach()[0]
    at.unprepare(lin)
    w = lin.weight.detach().tolist()
    for o in range(3):
        assert abs(float(y[o]) - want(w[o], x[0].tolist(), 4.0, 10.0)) < 1e-4, (o, y)
    conv, img = _conv_case(torch)
    with torch.no_grad():
        conv.bias.zero_()
    at.prepare(conv, device="none", periphery={"ir_drop": 0.8, "ir_drop_g_ratio": 20.0})
    conv.train()
    y = conv(img).detach()
    at.unprepare(conv)
    for o in range(2):
        assert abs(float(y[0, o, 1, 1]) - want(conv.weight[o].reshape(-1).tolist(), img.reshape(-1).tolist(), 9.0, 20.0)) < 1e-3, (o, y)


def test_input_ranges_clip_and_learn_as_aihwkit_does():
    """prepare(input_range=...): each input tile's slice clipped to its range and divided by it;
    the inputs' gradient straight through, the range's aihwkit's (post_backward): the clipped
    inputs' gradient that would widen it, relative to the range, plus the decay while enough
    inputs lie inside; init_from_data sets it to the running mean of init_std_alpha x std(x)."""
    torch = pytest.importorskip("torch")
    import aimc.torch as at

    torch.manual_seed(3)
    lin = torch.nn.Linear(600, 4)
    at.prepare(lin, device="none", input_range={"init_value": 0.5, "init_from_data": 0, "decay": 0.01, "input_min_percentage": 0.1})
    assert tuple(lin.input_range.shape) == (2,) and lin.input_range.requires_grad   # two 300-input tiles
    lin.train()
    x = torch.randn(5, 600, requires_grad=True)
    c = torch.randn(5, 4)
    y = lin(x)
    want = torch.nn.functional.linear(torch.clamp(x.detach(), -0.5, 0.5), lin.weight.detach(), lin.bias.detach())
    assert torch.allclose(y.detach(), want, atol=1e-5)
    (y * c).sum().backward()
    up = c @ lin.weight.detach()                        # the gradient at the clipped inputs
    assert torch.allclose(x.grad, up, atol=1e-5), "the inputs' gradient passes the clip unmasked"
    for t, (a, b) in enumerate(((0, 300), (300, 600))):
        xs, g = x.detach()[:, a:b], up[:, a:b]
        expect = torch.clamp((xs >= 0.5) * g, max=0).sum() - torch.clamp((xs <= -0.5) * g, min=0).sum()
        expect = expect * 0.5 + 0.01 * 0.5 * float((xs.abs() < 0.5).float().mean() > 0.1)
        assert torch.allclose(lin.input_range.grad[t], expect, atol=1e-4), (t, lin.input_range.grad, expect)
    # Eval mode clips too: the noiseless network as trained.
    lin.eval()
    assert torch.allclose(lin(x.detach()), want, atol=1e-5)
    at.unprepare(lin)
    assert tuple(lin.input_range.shape) == (2,), "the ranges stay for from_torch and the state dict"

    lin = torch.nn.Linear(8, 2)
    at.prepare(lin, device="none", input_range={"init_from_data": 2, "init_std_alpha": 3.0})
    lin.train()
    xs = [torch.randn(16, 8) * s for s in (1.0, 2.0)]
    for v in xs:
        lin(v)
    assert torch.allclose(lin.input_range.detach(), torch.tensor([1.5 * (xs[0].std() + xs[1].std())]), atol=1e-5)
    lin(torch.randn(16, 8) * 10)
    assert torch.allclose(lin.input_range.detach(), torch.tensor([1.5 * (xs[0].std() + xs[1].std())]), atol=1e-5), "only the first two"
    with pytest.raises(ValueError, match=r"input_range takes .* unknown \['init'\]"):
        at.prepare(torch.nn.Linear(2, 2), input_range={"init": 1.0})


def test_the_standard_hwa_preset_trains_and_its_ranges_reach_the_evaluation(tmp_path):
    torch = pytest.importorskip("torch")
    import aimc
    import aimc.torch as at
    from test_input_range import NoiseManagementType, preset

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    at.prepare(model, rpu_config=preset())
    assert model[0].forward.ranges["init_from_data"] == 100 and model[0].forward.clip == (0.0, 0.0, False)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x = torch.randn(64, 8)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 1).long()
    model.train()
    first = model[0].input_range.detach().clone()
    for _ in range(20):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert not torch.equal(first, model[0].input_range.detach()), "the ranges are learned"
    at.unprepare(model)
    assert {"0.input_range", "2.input_range"} <= set(model.state_dict())
    layers, act = aimc.from_torch(model)
    assert len(layers[0]) == 3 and layers[0][2].shape == (1,)
    r = aimc.classifier(layers, x.numpy(), y.numpy(), activation=act, times=["1s"], trials=4, backend="cpu", quiet=True,
                        layer_insight_trials=0, rpu_config=preset(), out=str(tmp_path / "r"))
    assert r.data["config"]["periphery"]["noise_management"] == "constant"
    # Without ranges the preset's constant noise management is not what training models.
    from test_aihwkit import with_changes
    with pytest.raises(ValueError, match=r"rpu_config\.forward\.noise_management = 'constant'"):
        at.prepare(torch.nn.Linear(4, 2), rpu_config=with_changes(preset(), pre_post__input_range__enable=False))
    with pytest.raises(ValueError, match=r"forward\.nm_thres = 0\.5: training scales every slice by its max\|x\| without saturating"):
        at.prepare(torch.nn.Linear(4, 2), rpu_config=with_changes(preset(), pre_post__input_range__enable=False,
                                                                  forward__noise_management=NoiseManagementType.ABS_MAX, forward__nm_thres=0.5))
    with pytest.raises(ValueError, match=r"forward\.noise_management = 'abs_max': training with input ranges"):
        at.prepare(torch.nn.Linear(4, 2), rpu_config=preset(forward__noise_management=NoiseManagementType.ABS_MAX))


def test_a_gpt2_with_learned_input_ranges_reaches_the_evaluation(tmp_path):
    """GPT-2 prepared with input ranges: every Conv1D and the tied lm_head learn one, the state
    dict carries them (`h.N.attn.c_attn.input_range`, `lm_head.input_range`), and
    aimc.language_model reads them: its floating-point perplexity (the clipped network) differs
    from the same weights' without their ranges."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    import aimc.torch as at
    torch.manual_seed(0)
    net = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=30, n_positions=16, n_embd=16, n_layer=2, n_head=2)).eval()
    tok = np.random.default_rng(1).integers(0, 30, size=(8, 16))
    common = dict(times=["1h"], trials=2, backend="cpu", quiet=True, device="ideal", periphery__inp_res_bits=0, periphery__out_res_bits=0,
                  periphery__out_noise=0.0, periphery__out_bound=0.0)
    plain = aimc.language_model(net, tok, out=str(tmp_path / "plain"), **common)
    at.prepare(net, device="none", input_range={"init_value": 0.5, "init_from_data": 0})
    sd = net.state_dict()
    assert "transformer.h.0.attn.c_attn.input_range" in sd and "lm_head.input_range" in sd
    ranged = aimc.language_model(net, tok, out=str(tmp_path / "ranged"), **common)
    assert ranged.points[0]["fp"] != pytest.approx(plain.points[0]["fp"], rel=1e-3)
    # With an ideal device and perfect converters every trial is the floating-point network.
    assert ranged.points[0]["per_trial"] == pytest.approx([ranged.points[0]["fp"]] * 2, rel=1e-4)
