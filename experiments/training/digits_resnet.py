"""Trains experiments/models/digits_resnet.safetensors: a small ResNet (He et al. 2016, the
BasicBlock of torchvision's resnet18) on the shipped digits' training rows 0..1347, in floating
point with PyTorch. It writes the state dict as PyTorch holds it (the BatchNorms apart, which
aimc keeps digital after each convolution, as aihwkit runs them: `batchnorm` in the experiment's
layer tables), and digits_resnet_folded.safetensors beside it, every BatchNorm folded into the
convolution before it (W' = s W, b' = beta - s mean, s = gamma / sqrt(var + eps)).

    stem   conv 3x3, 1 -> 8, BN, ReLU                                       8 x 8 x 8
    b1     conv 3x3 8 -> 8, BN, ReLU; conv 3x3 8 -> 8, BN; + stem; ReLU      8 x 8 x 8
    b2     conv 3x3 stride 2, 8 -> 16, BN, ReLU; conv 3x3 16 -> 16, BN;
           + the shortcut conv 1x1 stride 2, 8 -> 16, BN; ReLU; global average pool   16
    fc     Linear 16 -> 10

experiments/digits_resnet.toml runs it on PCM, experiments/digits_resnet_folded.toml the folded
file. Rebuild (CPU, torch 2.x; bit for bit on the same torch version and CPU kind):

    python experiments/training/digits_resnet.py experiments/models/digits_resnet.safetensors
"""
import pathlib
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.numpy import save_file

root = pathlib.Path(__file__).resolve().parents[1]
TRAIN, TEST = slice(0, 1347), slice(1347, 1797)


class Block(nn.Module):
    """torchvision's BasicBlock: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.down is None else self.down(x)))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.b1 = Block(8, 8, 1)
        self.b2 = Block(8, 16, 2)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.b2(self.b1(self.stem(x)))
        return self.fc(x.mean(dim=(2, 3)))


def fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[np.ndarray, np.ndarray]:
    """The convolution with its eval-mode BatchNorm folded in: W' = s W, b' = beta - s mean."""
    s = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().double()
    w = conv.weight.detach().double() * s[:, None, None, None]
    b = bn.bias.detach().double() - s * bn.running_mean.double()
    return w.float().numpy(), b.float().numpy()


def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """The shipped digits as 1 x 8 x 8 images in [0, 1] and their labels; rows 0..1347 train,
    1347..1797 test. Seeds torch (2027) and makes it deterministic on one CPU thread first."""
    torch.manual_seed(2027)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    data = np.loadtxt(root / "data" / "digits.csv", delimiter=",", dtype=np.float32)
    return torch.from_numpy(data[:, :64] / 16.0).reshape(-1, 1, 8, 8), torch.from_numpy(data[:, 64].astype(np.int64))


def fit(net: nn.Module, x: torch.Tensor, y: torch.Tensor, opt, epochs: int = 60, batch: int = 64, sched=None) -> None:
    """`epochs` of mini-batches of the train split in a random order, cross-entropy, `opt` (and
    `sched`) stepped after each."""
    for _ in range(epochs):
        net.train()
        for idx in torch.randperm(TRAIN.stop).split(batch):
            opt.zero_grad()
            F.cross_entropy(net(x[TRAIN][idx]), y[TRAIN][idx]).backward()
            opt.step()
            if sched is not None:
                sched.step()


def save(net: nn.Module, x: torch.Tensor, y: torch.Tensor, out: str, script: str) -> tuple[float, dict]:
    """The test accuracy of `net` in eval mode and the metadata naming it and `script`; the state
    dict written to `out` with that metadata."""
    net.eval()
    with torch.no_grad():
        acc = (net(x[TEST]).argmax(1) == y[TEST]).float().mean().item()
    # One metadata key: safetensors writes several in any order, and the file is then not the
    # same bytes twice.
    meta = {"training": f"experiments/training/{script}, torch {torch.__version__}, floating-point test accuracy {acc:.4f}"}
    save_file({k: v.detach().numpy().copy() for k, v in net.state_dict().items()}, out, metadata=meta)
    return acc, meta


def main(out: str) -> None:
    x, y = digits()
    net = Net()
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    epochs, batch = 60, 64
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * ((TRAIN.stop + batch - 1) // batch))
    fit(net, x, y, opt, epochs, batch, sched)
    acc, meta = save(net, x, y, out, "digits_resnet.py")
    tensors = {}
    for name, conv, bn in [
        ("stem", net.stem[0], net.stem[1]),
        ("b1.conv1", net.b1.conv1, net.b1.bn1),
        ("b1.conv2", net.b1.conv2, net.b1.bn2),
        ("b2.conv1", net.b2.conv1, net.b2.bn1),
        ("b2.conv2", net.b2.conv2, net.b2.bn2),
        ("b2.down", net.b2.down[0], net.b2.down[1]),
    ]:
        tensors[f"{name}.weight"], tensors[f"{name}.bias"] = fold(conv, bn)
    tensors["fc.weight"] = net.fc.weight.detach().numpy().copy()
    tensors["fc.bias"] = net.fc.bias.detach().numpy().copy()
    folded = out.replace(".safetensors", "_folded.safetensors")
    save_file(tensors, folded, metadata=meta)
    print(f"test accuracy (floating point, BatchNorm in eval mode): {acc:.4f} -> {out}, {folded}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(root / "models" / "digits_resnet.safetensors"))
