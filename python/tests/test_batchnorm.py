"""BatchNorm from PyTorch: by default `from_torch` keeps a BatchNorm after a layer digital, as
aihwkit runs it (the tiles hold the layer's own weights, the BatchNorm its running statistics);
`fold_batchnorm=True` folds it into the weights instead, bit for bit as aimc always did. Both
compute the module's eval-mode forward, `classifier` runs both with PyTorch's accuracy as its
floating-point baseline, and their noisy accuracies differ. Needs torch (CI without it reports
these tests as skipped)."""
import numpy as np
import pytest

import aimc

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional

from test_residual import _module, _resnet, _same_outputs  # noqa: E402


def _randomised(net):
    """`net` in eval mode, its BatchNorms' running statistics and affine parameters drawn away
    from the identity they start as."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                if m.affine:
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.2, 0.2)
    return net.eval()


def _cnn(seed=0):
    """A Sequential CNN on 1 x 8 x 8 images: a BatchNorm2d after each Conv2d (the second without
    affine parameters), a BatchNorm1d after the first Linear."""
    torch.manual_seed(seed)
    return _randomised(nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6, affine=False), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)))


def _pairs(net):
    """(layer, BatchNorm after it) of the networks here, in the order from_torch lists the layers."""
    if isinstance(net, nn.Sequential):
        return [(net[0], net[1]), (net[4], net[5]), (net[9], net[10])]
    b1, b2 = net.layer1[0], net.layer2[0]
    return [(net.conv1, net.bn1), (b1.conv1, b1.bn1), (b1.conv2, b1.bn2), (b2.conv1, b2.bn1), (b2.conv2, b2.bn2),
            (b2.downsample[0], b2.downsample[1])]


def _numpy(t):
    return t.detach().numpy()


def _as_dict(layer) -> dict:
    return layer if isinstance(layer, dict) else {}


def _fold(layer, bn):
    """The fold of `bn` into `layer` computed apart: in float64 from the float32 tensors, W' = s W,
    b' = s b + (beta - s mean), s = gamma / sqrt(var + eps), rounded to float32."""
    f64 = lambda t: _numpy(t).astype(np.float64)  # noqa: E731
    s = (f64(bn.weight) if bn.affine else 1.0) / np.sqrt(f64(bn.running_var) + bn.eps)
    shift = (f64(bn.bias) if bn.affine else 0.0) - s * f64(bn.running_mean)
    w = f64(layer.weight)
    b = f64(layer.bias) if layer.bias is not None else np.zeros(w.shape[0])
    return (w * s.reshape((-1,) + (1,) * (w.ndim - 1))).astype(np.float32), (b * s + shift).astype(np.float32)


@pytest.mark.parametrize("make", [_cnn, _resnet])
def test_batchnorms_stay_digital_by_default(make):
    """Each layer keeps its module's own weights and bias and gets the BatchNorm after it as its
    "batchnorm": the running statistics, gamma and beta (1 and 0 without affine parameters) as
    float32, and eps; the Linear with a BatchNorm1d is a dict. The layers' NumPy forward, the
    BatchNorm after the MVM + bias and before the residual add and activation, is the module's."""
    net = make()
    layers, acts = aimc.from_torch(net)
    for layer, (module, bn) in zip(layers, _pairs(net)):
        np.testing.assert_array_equal(layer["weight"], _numpy(module.weight).reshape(np.shape(layer["weight"])))
        np.testing.assert_array_equal(layer["bias"], _numpy(module.bias) if module.bias is not None else np.zeros(len(layer["bias"])))
        got = layer["batchnorm"]
        assert got["eps"] == bn.eps and all(got[k].dtype == np.float32 for k in ("weight", "bias", "running_mean", "running_var"))
        np.testing.assert_array_equal(got["running_mean"], _numpy(bn.running_mean))
        np.testing.assert_array_equal(got["running_var"], _numpy(bn.running_var))
        np.testing.assert_array_equal(got["weight"], _numpy(bn.weight) if bn.affine else np.ones(bn.num_features, np.float32))
        np.testing.assert_array_equal(got["bias"], _numpy(bn.bias) if bn.affine else np.zeros(bn.num_features, np.float32))
    assert "batchnorm" not in _as_dict(layers[-1])
    if make is _cnn:
        assert set(layers[2]) == {"weight", "bias", "batchnorm"} and isinstance(layers[3], tuple)
    assert _same_outputs(net, layers, acts, torch.randn(16, 1, 8, 8), (1, 8, 8))


@pytest.mark.parametrize("make", [_cnn, _resnet])
def test_fold_batchnorm_folds_them_into_the_weights_as_before(make):
    """With fold_batchnorm=True no layer has a "batchnorm" and each layer's weights and bias are
    the fold computed apart, bit for bit (a Linear stays a tuple); the forward is the module's."""
    net = make()
    layers, acts = aimc.from_torch(net, fold_batchnorm=True)
    for layer, (module, bn) in zip(layers, _pairs(net)):
        w, b = (layer["weight"], layer["bias"]) if isinstance(layer, dict) else layer
        want_w, want_b = _fold(module, bn)
        assert "batchnorm" not in _as_dict(layer)
        np.testing.assert_array_equal(w, want_w.reshape(np.shape(w)))
        np.testing.assert_array_equal(b, want_b)
    if make is _cnn:
        assert isinstance(layers[2], tuple)
    assert _same_outputs(net, layers, acts, torch.randn(16, 1, 8, 8), (1, 8, 8))


def _refused(module, match, **kw):
    with pytest.raises(ValueError, match=match):
        aimc.from_torch(module, **kw)


def test_batchnorms_aimc_cannot_keep_digital_are_refused_by_name():
    """Two BatchNorms after one layer are folded with fold_batchnorm=True and refused otherwise
    (aimc keeps one digital BatchNorm per layer), in a Sequential and in a traced forward; a
    BatchNorm of the other kind, of another width, after an activation or after a residual add
    is refused either way, naming the module."""
    conv, bn = lambda: nn.Conv2d(1, 4, 3), lambda: _randomised(nn.BatchNorm2d(4))
    twice = nn.Sequential(conv(), bn(), bn(), nn.ReLU())
    _refused(twice, r"module 2 \(BatchNorm2d\) is a second BatchNorm after module 0 \(Conv2d\); aimc keeps one digital BatchNorm "
                    r"per layer: merge the two, or fold them .*fold_batchnorm=True")
    assert len(aimc.from_torch(twice, fold_batchnorm=True)[0]) == 1
    traced = _module(lambda s, x: s.fc(torch.flatten(F.relu(s.bn2(s.bn1(s.conv(x)))), 1)), conv=conv(), bn1=bn(), bn2=bn(),
                     fc=nn.Linear(4 * 6 * 6, 3)).eval()
    _refused(traced, r"module bn2 \(BatchNorm2d\) is a second BatchNorm after module conv \(Conv2d\)")
    layers, acts = aimc.from_torch(traced, fold_batchnorm=True)
    assert _same_outputs(traced, layers, acts, torch.randn(4, 1, 8, 8), (1, 8, 8))
    for fold in (False, True):
        _refused(nn.Sequential(conv(), nn.ReLU(), bn()), r"module 2 \(BatchNorm2d\) does not directly follow a Conv2d", fold_batchnorm=fold)
        _refused(nn.Sequential(conv(), nn.BatchNorm1d(4)), r"module 1 \(BatchNorm1d\) follows module 0 \(Conv2d\); aimc applies a "
                                                           r"BatchNorm2d to a Conv2d's outputs", fold_batchnorm=fold)
        _refused(nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(6)), r"module 1 \(BatchNorm1d\) has 6 features but module 0 \(Linear\) "
                                                                    r"has 5 outputs", fold_batchnorm=fold)
        _refused(_module(lambda s, x: (lambda a: s.bn(s.b(a) + a))(F.relu(s.a(x))), a=nn.Linear(4, 4), b=nn.Linear(4, 4), bn=nn.BatchNorm1d(4)),
                 r"module bn \(BatchNorm1d\) normalises the output of module b \(Linear\) after its residual add", fold_batchnorm=fold)
    _refused(nn.Sequential(nn.Embedding(10, 4), nn.TransformerEncoderLayer(4, 1, 8, batch_first=True), nn.Linear(4, 2)),
             r"fold_batchnorm=True with a transformer, which has no BatchNorm to fold", fold_batchnorm=True)


@pytest.mark.parametrize("make", [_cnn, _resnet])
def test_classifier_runs_digital_and_folded_batchnorms_with_pytorchs_accuracy(tmp_path, make):
    """`aimc.classifier(module, x, y)` with the BatchNorms digital (the default) and folded: the
    floating-point accuracy the engine reports is PyTorch's own on the same rows either way,
    results.json records each digital BatchNorm, and on PCM (same seed, so the same draws) the
    noisy accuracies of the two differ, as the tiles hold other weights."""
    net = make()
    torch.manual_seed(3)
    x, y = torch.randn(150, 1, 8, 8), torch.randint(0, 3, (150,))
    with torch.no_grad():
        logits = net(x)
    top2 = logits.sort(1).values[:, -2:]
    keep = top2[:, 1] - top2[:, 0] > 1e-4   # no row whose class float32 rounding could flip
    x, y, logits = x[keep], y[keep], logits[keep]
    want = (logits.argmax(1) == y).double().mean().item()
    runs = {fold: aimc.classifier(net, x, y, times=["1s", "10y"], trials=4, backend="cpu", quiet=True, out=str(tmp_path / str(fold)),
                                  fold_batchnorm=fold) for fold in (False, True)}
    for r in runs.values():
        assert r.fp_baseline == pytest.approx(want, abs=1e-12)
        assert all(len(p["per_trial"]) == 4 for p in r.points)
    digital = ["digital"] * len(_pairs(net)) + [None]
    assert [t.get("batchnorm") for t in runs[False].data["config"]["model"]["layers"]] == digital
    assert all("batchnorm" not in t for t in runs[True].data["config"]["model"]["layers"])
    assert [p["per_trial"] for p in runs[False].points] != [p["per_trial"] for p in runs[True].points]
