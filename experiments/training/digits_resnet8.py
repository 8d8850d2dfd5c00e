"""Trains experiments/models/digits_resnet8.safetensors: the smallest member of the CIFAR ResNets
(He et al. 2016, §4.2: 6n + 2 layers, n = 1; written as pytorch_resnet_cifar10 writes them, with
option A's zero-padding shortcuts, `LambdaLayer(lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0,
p, p)))`, and the global pooling `F.avg_pool2d(out, out.size()[3])`) on the shipped digits'
training rows 0..1347, in floating point with PyTorch, as digits_resnet.py trains its network
(whose data loading, loop and writer it uses). It writes the state dict as PyTorch holds it; aimc
keeps the BatchNorms digital after each convolution, as aihwkit runs them.

    conv1    conv 3x3, 1 -> 8, BN, ReLU                                             8 x 8 x 8
    layer1   conv 3x3 8 -> 8, BN, ReLU; conv 3x3 8 -> 8, BN; + input; ReLU          8 x 8 x 8
    layer2   conv 3x3 stride 2, 8 -> 16, BN, ReLU; conv 3x3 16 -> 16, BN;
             + input[:, :, ::2, ::2] with 4 + 4 zero channels; ReLU                16 x 4 x 4
    layer3   as layer2, 16 -> 32, 8 + 8 zero channels                              32 x 2 x 2
    linear   global average pool, Linear 32 -> 10

experiments/digits_resnet8.toml runs it on PCM. Rebuild (CPU, torch 2.x; bit for bit on the same
torch version and CPU kind):

    python experiments/training/digits_resnet8.py experiments/models/digits_resnet8.safetensors
"""
import pathlib
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from digits_resnet import TRAIN, digits, fit, root, save  # noqa: E402  (the digits, the loop and the writer)


class LambdaLayer(nn.Module):
    def __init__(self, f):
        super().__init__()
        self.f = f

    def forward(self, x):
        return self.f(x)


class BasicBlock(nn.Module):
    """The CIFAR BasicBlock with option A: a block that halves the map and doubles the channels
    adds its input at every second row and column, zero channels padded on both sides."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = LambdaLayer(lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4), "constant", 0))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu(out)


class ResNet8(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.layer1 = nn.Sequential(BasicBlock(8, 8))
        self.layer2 = nn.Sequential(BasicBlock(8, 16, 2))
        self.layer3 = nn.Sequential(BasicBlock(16, 32, 2))
        self.linear = nn.Linear(32, classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, out.size()[3])
        out = out.view(out.size(0), -1)
        return self.linear(out)


def main(out: str) -> None:
    x, y = digits()
    net = ResNet8()
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    epochs, batch = 60, 64
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * ((TRAIN.stop + batch - 1) // batch))
    fit(net, x, y, opt, epochs, batch, sched)
    acc, _ = save(net, x, y, out, "digits_resnet8.py")
    print(f"test accuracy (floating point, BatchNorm in eval mode): {acc:.4f} -> {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(root / "models" / "digits_resnet8.safetensors"))
