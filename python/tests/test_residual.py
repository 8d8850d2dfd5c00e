"""Residual networks from PyTorch: `from_torch` on modules with their own forward() (a
torchvision-style ResNet, functional forms), traced with torch.fx into layers with "input" and
"add" keys; what the trace shows but aimc does not compute is refused by name; `classifier`
checks the layers against the module's own outputs and runs them with PyTorch's accuracy as its
floating-point baseline. Needs torch (CI without it reports these tests as skipped)."""
import pathlib

import numpy as np
import pytest

import aimc
from aimc._fx import TracedLayers, _numpy_forward
from aimc._models import _resolve_pools

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional
ROOT = pathlib.Path(__file__).resolve().parents[2]


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock: two 3x3 convolutions with BatchNorm, the shortcut the
    block's input or a 1x1 convolution with BatchNorm (downsample), relu(out + identity)."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    """A stem (conv, BN, relu), an identity block, a downsampling block, global average pooling
    and a Linear head, on 1 x 8 x 8 images."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1, self.relu = nn.Conv2d(1, 4, 3, 1, 1, bias=False), nn.BatchNorm2d(4), nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(BasicBlock(4, 4))
        self.layer2 = nn.Sequential(BasicBlock(4, 8, stride=2))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _with_trained_batchnorms(net):
    """`net` in eval mode, its BatchNorms' statistics and affine parameters drawn as training
    would leave them (away from the identity)."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return net.eval()


def _resnet(seed=0):
    torch.manual_seed(seed)
    return _with_trained_batchnorms(ResNet())


def _decided(x, y, logits):
    """The rows whose top two logits differ by more than float32 rounding could flip."""
    top2 = logits.sort(1).values[:, -2:]
    keep = top2[:, 1] - top2[:, 0] > 1e-4
    return x[keep], y[keep], logits[keep]


def _same_outputs(net, layers, acts, x, input_shape):
    """The NumPy forward of the mapped layers against the module's own eval-mode output."""
    with torch.no_grad():
        want = net.eval()(x).double().numpy().reshape(len(x), -1)
    rows = x.numpy().reshape(len(x), -1).astype(np.float64)
    got = _numpy_forward(_resolve_pools(list(layers), input_shape), acts, rows, input_shape)
    return np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


def test_a_resnet_maps_its_shortcuts_as_input_and_add():
    """Each BasicBlock's sum is held by the layer computed last in it (conv2 for the identity
    shortcut, the downsample conv otherwise), which adds the other branch's output before its
    relu; the downsample conv reads the block's input, the first block's conv2, through "input";
    BatchNorms fold into their convolutions, the global pooling attaches to the layer holding the
    last sum (resolved on its 4 x 4 map, not the previous layer's chain). The layers' NumPy
    forward equals the module's."""
    net = _resnet()
    layers, acts = aimc.from_torch(net)
    assert isinstance(layers, TracedLayers) and layers.module is net
    assert acts == ["relu", "relu", "relu", "relu", "none", "relu", "none"]
    keys = [{k: layer[k] for k in ("input", "add", "pool") if k in layer} if isinstance(layer, dict) else None for layer in layers]
    assert keys == [{}, {}, {"add": 0}, {}, {}, {"input": 2, "add": 4, "pool": "avg"}, None]
    assert [np.shape(layer["weight"]) for layer in layers[:6]] == [(4, 1, 3, 3), (4, 4, 3, 3), (4, 4, 3, 3), (8, 4, 3, 3), (8, 8, 3, 3),
                                                                  (8, 4, 1, 1)]
    assert (layers[3]["stride"], layers[5]["stride"]) == ([2, 2], [2, 2])
    assert _resolve_pools(list(layers), (1, 8, 8))[5]["pool_size"] == 4
    assert _same_outputs(net, layers, acts, torch.randn(16, 1, 8, 8), (1, 8, 8))
    # The same stem as an nn.Sequential maps as before: a plain list, no tracing.
    stem, act = aimc.from_torch(nn.Sequential(net.conv1, net.bn1, nn.ReLU(), nn.Flatten(), nn.Linear(256, 3)))
    assert type(stem) is list and act == "relu" and "input" not in stem[0]


def test_a_resnet_with_learned_input_ranges_keeps_them_per_tile():
    """A ResNet prepared with aimc.torch's learned input ranges (tiles of 16 rows: a 3x3
    convolution of 4 channels, 36 patch inputs, has three): each layer carries its ranges, and
    the layers' forward clips each tile's inputs as the prepared module's eval forward does."""
    import aimc.torch as at

    net = _resnet(1)
    at.prepare(net, device="none", input_range={"init_value": 0.4, "init_from_data": 0}, max_in=16)
    with torch.no_grad():
        for m in net.modules():
            if hasattr(m, "input_range"):
                m.input_range.uniform_(0.2, 0.8)
    layers, acts = aimc.from_torch(net.eval())
    ranges = [layer["input_range"] if isinstance(layer, dict) else layer[2] for layer in layers]
    assert [len(r) for r in ranges] == [1, 3, 3, 3, 5, 1, 1]
    x = torch.randn(8, 1, 8, 8) * 3
    assert _same_outputs(net, layers, acts, x, (1, 8, 8))
    unclipped = [{k: v for k, v in layer.items() if k != "input_range"} if isinstance(layer, dict) else layer[:2] for layer in layers]
    assert not _same_outputs(net, unclipped, acts, x, (1, 8, 8)), "the ranges clip these inputs"


class Functional(nn.Module):
    """Functional activations, pooling and flattening, torch.add, x.mean((2, 3)), and a Linear
    shortcut (fc2's output adds fc1's)."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(2, 3, 3, padding=1), nn.Conv2d(3, 3, 3, padding=1)
        self.c = nn.Conv2d(3, 5, 1)
        self.fc1, self.fc2, self.fc3 = nn.Linear(5, 6), nn.Linear(6, 6), nn.Linear(6, 4)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.a(x)), 2)
        h = F.gelu(torch.add(self.b(h), h), approximate="tanh")
        h = self.c(h).relu().mean((2, 3))
        h = F.silu(self.fc1(self.drop(h.view(h.size(0), -1))))
        return self.fc3(torch.tanh(self.fc2(h) + h))


def test_functional_forms_and_a_linear_shortcut_map_as_their_modules():
    torch.manual_seed(1)
    net = Functional()
    layers, acts = aimc.from_torch(net)
    assert acts == ["relu", "gelu", "relu", "silu", "tanh", "none"]
    assert layers[0]["pool"] == "max" and layers[1]["add"] == 0 and layers[2]["pool_output"] == [1, 1]
    # A Linear with a residual key is a dict with its 2-D weight.
    assert layers[4]["add"] == 3 and np.shape(layers[4]["weight"]) == (6, 6) and isinstance(layers[3], tuple)
    assert _same_outputs(net, layers, acts, torch.randn(12, 2, 6, 6) * 2, (2, 6, 6))


def test_a_traced_forward_ending_in_log_softmax_runs_with_pytorchs_accuracy(tmp_path):
    """A module with its own forward but no shortcut (a convolution, a functional relu, a view,
    a Linear, then F.log_softmax over the classes): the layers leave the log-softmax out (the
    accuracy reads the argmax), `classifier`'s check applies it to their outputs before comparing
    them with the module's, and the engine's floating-point accuracy is PyTorch's."""
    torch.manual_seed(7)
    net = _module(lambda s, x: F.log_softmax(s.fc(F.relu(s.conv(x)).view(x.size(0), -1)), dim=1),
                  conv=nn.Conv2d(2, 3, 3, padding=1), fc=nn.Linear(3 * 5 * 5, 4)).eval()
    layers, act = aimc.from_torch(net)
    assert act == "relu" and layers.final == "log_softmax" and len(layers) == 2
    x, y = torch.randn(60, 2, 5, 5), torch.randint(0, 4, (60,))
    with torch.no_grad():
        want = (net(x).argmax(1) == y).double().mean().item()
    r = aimc.classifier(net, x, y, times=["1s"], trials=2, backend="cpu", quiet=True, out=str(tmp_path / "r"))
    assert r.fp_baseline == pytest.approx(want, abs=1e-12)


def _module(forward, **children):
    """An nn.Module of `children` whose forward is `forward(self, x)`."""
    cls = type("Net", (nn.Module,), {"forward": forward})
    m = cls()
    for name, child in children.items():
        setattr(m, name, child)
    return m


def _refusal(forward, **children):
    with pytest.raises(ValueError) as e:
        aimc.from_torch(_module(forward, **children))
    return str(e.value)


def test_what_aimc_does_not_compute_is_refused_by_name():
    lin = lambda: nn.Linear(4, 4)  # noqa: E731
    assert "torch.cat() (node cat) in Net.forward is not an operation aimc maps" in _refusal(
        lambda s, x: (lambda a: s.fc2(torch.cat([a, a], 1)))(s.fc1(x)), fc1=lin(), fc2=nn.Linear(8, 2))
    assert "operator.mul() (node mul) in Net.forward is not an operation aimc maps" in _refusal(lambda s, x: s.fc(x) * 2, fc=lin())
    assert "adds the network's input" in _refusal(lambda s, x: s.fc(x) + x, fc=lin())
    assert "adds a constant" in _refusal(lambda s, x: s.fc(x) + 1, fc=lin())
    # fc1's output read both before its relu (by fc2) and after it.
    assert "changes the output of module fc1 (Linear) after module fc2 (Linear) read it" in _refusal(
        lambda s, x: (lambda a: s.fc3(s.fc2(a) + F.relu(a)))(s.fc1(x)), fc1=lin(), fc2=lin(), fc3=lin())
    assert ("operator.add() (node add) in Net.forward uses the output of module fc1 (Linear) from before "
            "torch.nn.functional.relu() (node relu)") in _refusal(lambda s, x: (lambda a: s.fc2(F.relu(a)) + a)(s.fc1(x)), fc1=lin(), fc2=lin())
    # The later branch (fc2) is activated before the sum: the sum cannot be its own output.
    assert "after its activation" in _refusal(lambda s, x: (lambda a: s.fc3(a + F.relu(s.fc2(a))))(s.fc1(x)),
                                              fc1=lin(), fc2=lin(), fc3=lin())
    assert "the output of module aux (Linear) is never used" in _refusal(lambda s, x: (lambda a: (s.aux(a), s.fc(a))[1])(s.fc1(x)),
                                                                         fc1=lin(), aux=lin(), fc=lin())
    assert "module lstm (LSTM) is not a module aimc maps" in _refusal(lambda s, x: s.lstm(x), lstm=nn.LSTM(4, 4))
    assert "torch.fx cannot trace it" in _refusal(lambda s, x: s.fc(x) if x.sum() > 0 else s.fc(-x), fc=lin())
    assert "reshapes to" in _refusal(lambda s, x: s.fc(s.conv(x).view(-1)), conv=nn.Conv2d(1, 1, 1), fc=lin())


def test_classifier_refuses_layers_that_differ_from_the_traced_module(tmp_path):
    """`classifier` runs the traced module and the layers on the first rows of x before the
    engine: layers changed after from_torch, or another activation, are refused."""
    net = _resnet(2)
    layers, acts = aimc.from_torch(net)
    x, y = torch.randn(10, 1, 8, 8), torch.randint(0, 3, (10,))
    kw = dict(times=["1s"], trials=2, backend="cpu", quiet=True, out=str(tmp_path / "r"))
    with pytest.raises(ValueError, match=r"layers read from ResNet's traced forward compute other outputs than the module on the "
                                         r"first 8 rows of x"):
        aimc.classifier(layers, x, y, activation=["tanh"] + acts[1:], **kw)
    layers[6] = (layers[6][0] * 2, layers[6][1])
    with pytest.raises(ValueError, match="compute other outputs than the module"):
        aimc.classifier(layers, x, y, activation=acts, **kw)


@pytest.mark.parametrize("make, shape, links", [
    (_resnet, (1, 8, 8), [(None, None), (None, None), (None, "0"), (None, None), (None, None), ("4", "8"), (None, None)]),
    (lambda: (torch.manual_seed(5), Functional())[1], (2, 6, 6), [(None, None), (None, "0"), (None, None), (None, None), (None, "6"),
                                                                  (None, None)]),
])
def test_a_residual_network_runs_with_pytorchs_accuracy_as_its_floating_point_baseline(tmp_path, make, shape, links):
    """`aimc.classifier(module, x, y)` on a traced ResNet (and on the functional network, whose
    Linear shortcut makes a Linear dict): the experiment file names each shortcut by the layer's
    name in the state dict, the floating-point accuracy the engine reports is PyTorch's own on
    the same rows, and the noisy trials run."""
    net = make().eval()
    torch.manual_seed(6)
    x, y = torch.randn(150, *shape), torch.randint(0, 3, (150,))
    with torch.no_grad():
        logits = net(x)
    x, y, logits = _decided(x, y, logits)
    r = aimc.classifier(net, x, y, times=["1s"], trials=3, backend="cpu", quiet=True, out=str(tmp_path / "r"))
    assert r.fp_baseline == pytest.approx((logits.argmax(1) == y).double().mean().item(), abs=1e-12)
    assert [(t.get("input"), t.get("add")) for t in r.data["config"]["model"]["layers"]] == links
    assert len(r.points[0]["per_trial"]) == 3 and all(0.0 <= v <= 1.0 for v in r.points[0]["per_trial"])


class ImageNetStem(nn.Module):
    """torchvision's ResNet as it is, scaled down: the 7x7 stride-2 stem, BatchNorm, relu and
    the padded max pool (3x3, stride 2, padding 1), one identity and one downsampling
    BasicBlock, global average pooling, the head."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 4, 7, 2, 3, bias=False), nn.BatchNorm2d(4)
        self.relu, self.maxpool = nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)
        self.layer1, self.layer2 = BasicBlock(4, 4), BasicBlock(4, 8, stride=2)
        self.avgpool, self.fc = nn.AdaptiveAvgPool2d((1, 1)), nn.Linear(8, 3)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def test_torchvisions_padded_stem_pool_runs_with_pytorchs_accuracy(tmp_path):
    """The stem's MaxPool2d(3, 2, padding=1) maps as a padded pooling (16 x 16 → 8 x 8 → 4 x 4),
    the NumPy forward equals the module's, and the engine's floating-point accuracy is
    PyTorch's; an AvgPool2d with padding and count_include_pad=False maps with its divisor."""
    torch.manual_seed(7)
    net = ImageNetStem().eval()
    layers, acts = aimc.from_torch(net)
    assert {k: layers[0][k] for k in ("pool", "pool_size", "pool_stride", "pool_padding")} == {
        "pool": "max", "pool_size": 3, "pool_stride": 2, "pool_padding": 1}
    x, y = torch.randn(120, 3, 16, 16), torch.randint(0, 3, (120,))
    assert _same_outputs(net, layers, acts, x[:16], (3, 16, 16))
    with torch.no_grad():
        logits = net(x)
    x, y, logits = _decided(x, y, logits)
    r = aimc.classifier(net, x, y, times=["1s"], trials=2, backend="cpu", quiet=True, out=str(tmp_path / "r"))
    assert r.fp_baseline == pytest.approx((logits.argmax(1) == y).double().mean().item(), abs=1e-12)
    stem = r.data["config"]["model"]["layers"][0]["conv"]["pool"]
    assert (stem["size"], stem["stride"], stem["padding"]) == (3, 2, [1, 1])
    avg = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.AvgPool2d(3, 2, 1, count_include_pad=False), nn.Flatten(), nn.Linear(18, 3))
    layers, act = aimc.from_torch(avg)
    assert (layers[0]["pool_padding"], layers[0]["pool_count_include_pad"]) == (1, False)
    x = torch.randn(4, 1, 7, 7)
    with torch.no_grad():
        want = avg(x).double().numpy()
    got = _numpy_forward(layers, [act, "none"], x.numpy().reshape(4, -1).astype(np.float64), (1, 7, 7))
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


def test_torchvisions_resnet18_maps_as_it_is():
    """torchvision's resnet18 itself (its stem, eight BasicBlocks, three downsample shortcuts):
    20 convolutions and the head, BatchNorms digital, and the layers' NumPy forward equals the
    module's on 32 x 32 images."""
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(8)
    net = torchvision.models.resnet18(num_classes=10).eval()
    layers, acts = aimc.from_torch(net)
    assert len(layers) == 21 and sum("batchnorm" in layer for layer in layers[:-1]) == 20
    assert sum("add" in layer for layer in layers[:-1]) == 8 and sum("input" in layer for layer in layers[:-1]) == 3
    assert _same_outputs(net, layers, acts, torch.randn(2, 3, 32, 32), (3, 32, 32))


@pytest.mark.parametrize("make, shape", [(lambda: _resnet(3), (1, 8, 8)), (lambda: _cifar_resnet(3), (3, 7, 7))])
def test_a_resnet_trains_against_aimcs_noise_and_evaluates_through_its_trace(tmp_path, make, shape):
    """`aimc.torch.prepare` wraps a ResNet's convolutions and head (BatchNorms and additions, and
    the CIFAR ResNet's zero-padding shortcuts, stay digital), a training step changes its weights
    under the noise, and after `unprepare` the same module maps through its trace with PyTorch's
    accuracy as the baseline."""
    import aimc.torch as at
    net = make().train()
    at.prepare(net, t="10y")
    before = net.conv1.weight.detach().clone()
    torch.manual_seed(9)
    x, y = torch.randn(64, *shape), torch.randint(0, 3, (64,))
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    F.cross_entropy(net(x), y).backward()
    opt.step()
    at.unprepare(net)
    assert not torch.equal(before, net.conv1.weight)
    net.eval()
    with torch.no_grad():
        logits = net(x)
    x, y, logits = _decided(x, y, logits)
    r = aimc.classifier(net, x, y, times=["1s"], trials=2, backend="cpu", quiet=True, out=str(tmp_path / "r"))
    assert r.fp_baseline == pytest.approx((logits.argmax(1) == y).double().mean().item(), abs=1e-12)


def test_a_rectangular_pooling_maps_as_the_engine_pools_it(tmp_path):
    """MaxPool2d((2, 1)) and AvgPool2d((1, 3), stride (1, 2)) map to [h, w] windows and strides,
    the NumPy forward equals the module's and the engine's floating-point accuracy PyTorch's."""
    torch.manual_seed(10)
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d((2, 1)), nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
                        nn.AvgPool2d((1, 3), stride=(1, 2)), nn.Flatten(), nn.Linear(4 * 4 * 3, 3)).eval()
    layers, act = aimc.from_torch(net)
    assert (layers[0]["pool_size"], layers[0]["pool_stride"], layers[1]["pool_size"], layers[1]["pool_stride"]) == ([2, 1], [2, 1], [1, 3],
                                                                                                                    [1, 2])
    x, y = torch.randn(100, 1, 8, 8), torch.randint(0, 3, (100,))
    with torch.no_grad():
        logits = net(x)
    got = _numpy_forward(layers, [act, act, "none"], x.numpy().reshape(100, -1).astype(np.float64), (1, 8, 8))
    assert np.abs(got - logits.double().numpy()).max() <= 1e-5 * logits.abs().max().item()
    x, y, logits = _decided(x, y, logits)
    r = aimc.classifier(net, x, y, times=["1s"], trials=2, backend="cpu", quiet=True, out=str(tmp_path / "r"))
    assert r.fp_baseline == pytest.approx((logits.argmax(1) == y).double().mean().item(), abs=1e-12)


def test_a_padded_1d_pooling_maps_along_the_signal():
    """MaxPool1d(3, 2, padding=1) and AvgPool1d(3, 1, padding=1, count_include_pad=False) after
    Conv1d layers pad along the signal only ([0, p]); the NumPy forward equals the module's."""
    torch.manual_seed(11)
    net = nn.Sequential(nn.Conv1d(2, 3, 3), nn.ReLU(), nn.MaxPool1d(3, 2, padding=1), nn.Conv1d(3, 4, 2), nn.ReLU(),
                        nn.AvgPool1d(3, 1, padding=1, count_include_pad=False), nn.Flatten(), nn.Linear(4 * 4, 3)).eval()
    layers, act = aimc.from_torch(net)
    assert (layers[0]["pool_padding"], layers[1]["pool_padding"], layers[1]["pool_count_include_pad"]) == ([0, 1], [0, 1], False)
    x = torch.randn(6, 2, 12)
    with torch.no_grad():
        want = net(x).double().numpy()
    got = _numpy_forward(layers, [act, act, "none"], x.numpy().reshape(6, -1).astype(np.float64), (2, 1, 12))
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


def _script(name: str):
    """A training script under experiments/training as a module (its network classes)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / "training" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class CifarResNet(nn.Module):
    """A CIFAR ResNet with one block per stage, the blocks experiments/training/digits_resnet8.py's
    (option A, as pytorch_resnet_cifar10 writes them): 3x3 stem (4 channels), stages of 4, 8 and
    16 channels (the last two downsampling through zero-padding shortcuts), global average pooling
    by F.avg_pool2d over the whole map, a Linear head; on 3 x 7 x 7 images, so the subsampling
    reads odd maps (7 → 4 → 2)."""

    def __init__(self):
        super().__init__()
        block = _script("digits_resnet8").BasicBlock
        self.conv1, self.bn1 = nn.Conv2d(3, 4, 3, 1, 1, bias=False), nn.BatchNorm2d(4)
        self.layer1 = nn.Sequential(block(4, 4))
        self.layer2 = nn.Sequential(block(4, 8, 2))
        self.layer3 = nn.Sequential(block(8, 16, 2))
        self.linear = nn.Linear(16, 3)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, out.size()[3])
        return self.linear(out.view(out.size(0), -1))


def _cifar_resnet(seed=0):
    torch.manual_seed(seed)
    return _with_trained_batchnorms(CifarResNet())


def test_a_cifar_resnet_maps_its_zero_padding_shortcuts():
    """The CIFAR ResNet's option-A blocks: each downsampling block's conv2 adds the block's input
    with "add_stride" 2 and "add_pad_channels" [p, p] (p = channels / 4), the identity block's
    conv2 adds its input as it is; F.avg_pool2d(out, out.size()[3]) is the pooling over the
    map's side, resolved to the 2 x 2 map's global pooling. The NumPy forward equals the
    module's on 7 x 7 images, whose stride-2 maps are odd (7 → 4 → 2)."""
    net = _cifar_resnet()
    layers, acts = aimc.from_torch(net)
    keys = [{k: layer[k] for k in ("input", "add", "add_stride", "add_pad_channels") if k in layer} for layer in layers[:7]]
    assert keys == [{}, {}, {"add": 0}, {}, {"add": 2, "add_stride": 2, "add_pad_channels": [2, 2]}, {},
                    {"add": 4, "add_stride": 2, "add_pad_channels": [4, 4]}]
    assert layers[6]["pool_side"] == 3
    assert acts == "relu"  # after every layer but the last
    resolved = _resolve_pools(list(layers), (3, 7, 7))
    assert (resolved[6]["pool_size"], resolved[6]["pool_stride"]) == (2, 2)
    assert _same_outputs(net, layers, acts, torch.randn(16, 3, 7, 7), (3, 7, 7))


def test_a_cifar_resnet_runs_with_pytorchs_accuracy_and_records_its_shortcuts(tmp_path):
    """`aimc.classifier` on the CIFAR ResNet: the experiment file names the zero-padding
    shortcuts, the engine's floating-point accuracy is PyTorch's on the same rows, and the
    report names each shortcut."""
    net = _cifar_resnet(1)
    torch.manual_seed(2)
    x, y = torch.randn(150, 3, 7, 7), torch.randint(0, 3, (150,))
    with torch.no_grad():
        logits = net(x)
    x, y, logits = _decided(x, y, logits)
    r = aimc.classifier(net, x, y, times=["1s"], trials=3, backend="cpu", quiet=True, out=str(tmp_path / "r"))
    assert r.fp_baseline == pytest.approx((logits.argmax(1) == y).double().mean().item(), abs=1e-12)
    tables = r.data["config"]["model"]["layers"]
    assert [(t.get("add"), t.get("add_stride"), t.get("add_pad_channels")) for t in tables if "add" in t] == [
        ("0", None, None), ("4", 2, [2, 2]), ("8", 2, [4, 4])]
    report = (tmp_path / "r" / "report.md").read_text()
    assert "adds 8 through a zero-padding shortcut (stride 2, channels padded 4 + 4)" in report


def test_what_a_zero_padding_shortcut_does_not_compute_is_refused_by_name():
    conv = lambda: nn.Conv2d(2, 4, 3, 2, 1)  # noqa: E731
    fc = lambda: nn.Linear(4 * 2 * 2, 2)  # noqa: E731
    stem = lambda: nn.Conv2d(1, 2, 3, 1, 1)  # noqa: E731

    def forward(index=(slice(None), slice(None), slice(None, None, 2), slice(None, None, 2)), pad=(0, 0, 0, 0, 1, 1), mode="constant"):
        def f(s, x):
            h = F.relu(s.stem(x))
            return s.fc(F.relu(s.conv(h) + F.pad(h[index], pad, mode)).flatten(1))
        return f

    modules = dict(stem=stem(), conv=conv(), fc=fc())
    layers, _ = aimc.from_torch(_module(forward(), **modules))
    assert (layers[1]["add"], layers[1]["add_stride"], layers[1]["add_pad_channels"]) == (0, 2, [1, 1])
    assert "indexes the maps of module stem (Conv2d) as" in _refusal(
        forward(index=(slice(None), slice(None), slice(1, None, 2), slice(None, None, 2))), **modules)
    assert "pads the maps of module stem (Conv2d) with (1, 1, 0, 0, 1, 1)" in _refusal(forward(pad=(1, 1, 0, 0, 1, 1)), **modules)
    assert "(mode 'reflect'" in _refusal(forward(mode="reflect"), **modules)
    # A subsampled map read by a convolution is no shortcut.
    assert "subsampled or zero-padded; aimc maps those only as the shortcut a residual addition adds" in _refusal(
        lambda s, x: s.fc(F.relu(s.conv(F.relu(s.stem(x))[:, :, ::2, ::2])).flatten(1)), **modules)
    # The later branch cannot be the padded one.
    assert "adds the subsampled or zero-padded output of module conv (Conv2d)" in _refusal(
        lambda s, x: (lambda h: s.fc(F.relu(h + F.pad(s.conv(h)[:, :, ::1, ::1], (0, 0, 0, 0, 0, 0))).flatten(1)))(F.relu(s.stem(x))),
        stem=nn.Conv2d(1, 4, 3, 2, 1), conv=nn.Conv2d(4, 4, 3, 1, 1), fc=fc())


def test_the_shipped_resnet8_maps_as_its_experiment_file_states_it(tmp_path):
    """experiments/training/digits_resnet8.py's module (the CIFAR ResNet as pytorch_resnet_cifar10
    writes it) with the shipped weights: `from_torch` gives the shortcuts, BatchNorms and pooling
    that experiments/digits_resnet8.toml's layer tables state, layer by layer, and the engine's
    floating-point accuracy on the test split is the training script's, 429 of 450."""
    import tomllib
    from safetensors.torch import load_file
    root = ROOT
    net = _script("digits_resnet8").ResNet8()
    net.load_state_dict(load_file(root / "experiments/models/digits_resnet8.safetensors"))
    net.eval()
    layers, acts = aimc.from_torch(net)
    exp = tomllib.loads((root / "experiments/digits_resnet8.toml").read_text())
    tables = exp["model"]["layers"]
    names = [t["name"] for t in tables]
    resolved = _resolve_pools(list(layers), (1, 8, 8))
    assert len(resolved) == len(tables)
    for i, (layer, table) in enumerate(zip(resolved, tables)):
        mapped = layer if isinstance(layer, dict) else {}
        assert ("batchnorm" in mapped) == ("batchnorm" in table), names[i]
        assert ({k: names[mapped[k]] for k in ("input", "add") if k in mapped}
                == {k: table[k] for k in ("input", "add") if k in table}), names[i]
        for k in ("add_stride", "add_pad_channels", "stride", "padding", "pool", "pool_size"):
            want = table.get(k)
            got = mapped.get(k)
            if k in ("stride", "padding") and got is not None:
                got = got[0] if got[0] == got[1] else got
                want = 1 if k == "stride" and want is None else 0 if want is None else want
            assert got == want, (names[i], k, got, want)
    assert acts == "relu"
    data = np.loadtxt(root / "experiments/data/digits.csv", delimiter=",")[1347:1797]
    x, y = data[:, :64].reshape(-1, 1, 8, 8) / 16.0, data[:, 64].astype(np.int64)
    r = aimc.classifier(net, x, y, times=["1s"], trials=2, backend="cpu", quiet=True, out=str(tmp_path / "r"))
    assert r.fp_baseline == pytest.approx(429 / 450, abs=1e-12)


def test_an_nn_sequential_of_blocks_maps_through_its_trace():
    """An nn.Sequential whose children include blocks with their own forward (ResNet
    BasicBlocks between a stem and a head, as aihwkit's examples build ResNets) is read from its
    trace, whole: the blocks' shortcuts become "add" and "input" links, and the NumPy forward
    equals the module's."""
    torch.manual_seed(11)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, 1, 1), nn.BatchNorm2d(4), nn.ReLU(), BasicBlock(4, 4), BasicBlock(4, 8, 2),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3)).eval()
    layers, acts = aimc.from_torch(net)
    assert isinstance(layers, TracedLayers)
    keys = [{k: layer[k] for k in ("input", "add") if k in layer} if isinstance(layer, dict) else None for layer in layers]
    assert keys == [{}, {}, {"add": 0}, {}, {}, {"input": 2, "add": 4}, None]
    assert _same_outputs(net, layers, acts, torch.randn(8, 1, 8, 8), (1, 8, 8))


class _Tile(nn.Module):
    def __init__(self, r):
        super().__init__()
        self.input_range = None if r is None else nn.Parameter(torch.tensor([r]))


class AnalogConv2d(nn.Module):
    """A stand-in for aihwkit's AnalogConv2d as convert_to_analog leaves it: `get_weights()` gives
    the logical weights unfolded [out, in·kh·kw] and the bias, `analog_module` its tile with its
    input range, and its forward computes with noise, as its tiles do."""

    def __init__(self, conv, r=None):
        super().__init__()
        for k in ("kernel_size", "stride", "padding", "dilation", "groups", "padding_mode"):
            setattr(self, k, getattr(conv, k))
        self.w = nn.Parameter(conv.weight.detach().clone())
        self.b = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone())
        self.analog_module = _Tile(r)

    def get_weights(self):
        return self.w.detach().reshape(len(self.w), -1), None if self.b is None else self.b.detach()

    def forward(self, x):
        r = self.analog_module.input_range
        y = F.conv2d(x if r is None else x.clamp(-r.item(), r.item()), self.w, self.b, self.stride, self.padding)
        return y + 0.1 * torch.randn_like(y)


class AnalogLinear(nn.Module):
    """aihwkit's AnalogLinear, as `AnalogConv2d` stands in for its convolution."""

    def __init__(self, fc, r=None):
        super().__init__()
        self.w, self.b = nn.Parameter(fc.weight.detach().clone()), nn.Parameter(fc.bias.detach().clone())
        self.analog_module = _Tile(r)

    def get_weights(self):
        return self.w.detach(), self.b.detach()

    def forward(self, x):
        r = self.analog_module.input_range
        y = F.linear(x if r is None else x.clamp(-r.item(), r.item()), self.w, self.b)
        return y + 0.1 * torch.randn_like(y)


def _to_analog(module, ranges):
    """`module` with every Conv2d and Linear replaced by its analog stand-in, in place (as
    aihwkit's convert_to_analog does), `ranges` giving some of them, by name, an input range."""
    for name, child in list(module.named_modules()):
        for attr, m in list(child.named_children()):
            full = f"{name}.{attr}" if name else attr
            if isinstance(m, nn.Conv2d):
                setattr(child, attr, AnalogConv2d(m, ranges.get(full)))
            elif isinstance(m, nn.Linear):
                setattr(child, attr, AnalogLinear(m, ranges.get(full)))
    return module


def test_an_analog_resnet_maps_through_its_trace_and_runs_as_its_ideal_network(tmp_path):
    """A CIFAR ResNet after aihwkit's convert_to_analog (here its stand-ins, with noisy forwards):
    its analog convolutions and head are read in the trace by their logical weights and input
    ranges, and `classifier` checks the layers against the module's graph with each analog
    module ideal, so the floating-point baseline is the trained network's, clipped at the stem's
    input range."""
    import copy
    net = _cifar_resnet(4)
    analog = _to_analog(copy.deepcopy(net), {"conv1": 0.8}).eval()
    layers, acts = aimc.from_torch(analog)
    assert isinstance(layers, TracedLayers) and sorted(layers.analog.values()) == list(range(8))
    assert layers[0]["input_range"].tolist() == [pytest.approx(0.8)]
    np.testing.assert_array_equal(layers[4]["weight"], net.layer2[0].conv2.weight.detach().numpy())
    assert (layers[4]["add"], layers[4]["add_stride"], layers[4]["add_pad_channels"]) == (2, 2, [2, 2])
    torch.manual_seed(5)
    x, y = torch.randn(150, 3, 7, 7), torch.randint(0, 3, (150,))
    with torch.no_grad():
        logits = net(x.clamp(-0.8, 0.8))
        assert not torch.equal(analog(x), analog(x))  # the stand-ins' own forward is noisy
    x, y, logits = _decided(x, y, logits)
    r = aimc.classifier(analog, x, y, times=["1s"], trials=2, backend="cpu", quiet=True, out=str(tmp_path / "r"))
    assert r.fp_baseline == pytest.approx((logits.argmax(1) == y).double().mean().item(), abs=1e-12)
    # Another layer than the module's is still refused.
    layers[4]["weight"] = layers[4]["weight"] * 2
    with pytest.raises(ValueError, match="compute other outputs than the module"):
        aimc.classifier(layers, x, y, activation=acts, times=["1s"], trials=2, backend="cpu", quiet=True, out=str(tmp_path / "bad"))


def test_a_resnet_converted_by_aihwkit_maps_through_its_trace(tmp_path):
    """aihwkit itself (skipped without it): the CIFAR ResNet after `convert_to_analog` with
    TorchInferenceRPUConfig tiles and learned input ranges of 0.8 maps through its trace (an
    AnalogWrapper around AnalogSequentials of AnalogConv2d), passes `classifier`'s check with each
    analog module ideal, and its floating-point baseline is the digital network's with every
    layer's inputs clipped at 0.8, as the tiles' ranges clip them."""
    import copy
    pytest.importorskip("aihwkit")
    from aihwkit.nn.conversion import convert_to_analog
    from aihwkit.simulator.configs import TorchInferenceRPUConfig
    from aihwkit.simulator.parameters.enums import BoundManagementType, NoiseManagementType
    net = _cifar_resnet(4)
    cfg = TorchInferenceRPUConfig()
    cfg.forward.bound_management, cfg.forward.noise_management = BoundManagementType.NONE, NoiseManagementType.NONE
    ranges = cfg.pre_post.input_range
    ranges.enable, ranges.init_value, ranges.init_from_data = True, 0.8, 0
    analog = convert_to_analog(copy.deepcopy(net), cfg).eval()
    layers, _ = aimc.from_torch(analog)
    assert isinstance(layers, TracedLayers) and len(layers.analog) == 8
    assert (layers[4]["add"], layers[4]["add_stride"], layers[4]["add_pad_channels"]) == (2, 2, [2, 2])
    clipped = copy.deepcopy(net)
    for m in clipped.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.register_forward_pre_hook(lambda mod, inp: (inp[0].clamp(-0.8, 0.8),))
    torch.manual_seed(5)
    x, y = torch.randn(150, 3, 7, 7), torch.randint(0, 3, (150,))
    with torch.no_grad():
        logits = clipped(x)
    x, y, logits = _decided(x, y, logits)
    r = aimc.classifier(analog, x, y, times=["1s"], trials=2, backend="cpu", quiet=True, out=str(tmp_path / "r"), rpu_config=cfg)
    assert r.fp_baseline == pytest.approx((logits.argmax(1) == y).double().mean().item(), abs=1e-12)
