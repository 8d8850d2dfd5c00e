"""Train a small PyTorch ResNet on the digits data and ask aimc what PCM crossbars do to it.

    python3 -m venv .venv && .venv/bin/pip install ./python torch
    .venv/bin/python python/examples/resnet_digits.py

Notebook-style: each block is a cell. Needs torch (not a dependency of aimc itself). The model
is an ordinary nn.Module with its own forward (torchvision's BasicBlock: relu(F(x) + shortcut));
`aimc.from_torch` reads it by tracing that forward with torch.fx, and `aimc.classifier` checks
what it read against the module's own outputs before it runs.
"""
import pathlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import aimc

# Data: the shipped digits (8x8 images, 0..16), the repository's fixed split.
root = pathlib.Path(__file__).resolve().parents[2]
raw = np.loadtxt(root / "experiments" / "data" / "digits.csv", delimiter=",", dtype=np.float32)
x, y = torch.from_numpy(raw[:, :-1] / 16.0).reshape(-1, 1, 8, 8), torch.from_numpy(raw[:, -1].astype(np.int64))
(xtr, ytr), (xte, yte) = (x[:1347], y[:1347]), (x[1347:], y[1347:])


class Block(nn.Module):
    """torchvision's BasicBlock: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), the
    shortcut the block's input or, where the shape changes, a 1x1 convolution with BatchNorm."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.down is None else self.down(x)))


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.blocks = nn.Sequential(Block(8, 8), Block(8, 16, stride=2))
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(self.blocks(self.stem(x)).mean((2, 3)))   # global average pooling


# Trained on the CPU, in about a minute.
torch.manual_seed(0)
net = ResNet()
opt = torch.optim.Adam(net.parameters(), lr=3e-3)
for _ in range(30):
    net.train()
    for idx in torch.randperm(len(xtr)).split(64):
        opt.zero_grad()
        F.cross_entropy(net(xtr[idx]), ytr[idx]).backward()
        opt.step()
net.eval()
with torch.no_grad():
    print("PyTorch test accuracy:", (net(xte).argmax(1) == yte).float().mean().item())

# What aimc reads: seven layers, each BatchNorm kept digital after its convolution, as aihwkit
# runs it ("batchnorm"; from_torch(net, fold_batchnorm=True) folds them into the weights the
# tiles hold instead, and PCM's drift then acts on those); the block sums held by the layer
# computed last in each block ("add"), the 1x1 shortcut reading the first block's output ("input").
layers, activation = aimc.from_torch(net)
for i, layer in enumerate(layers):
    keys = {k: layer[k] for k in ("input", "add", "pool") if isinstance(layer, dict) and k in layer}
    print(i, np.shape(layer["weight"] if isinstance(layer, dict) else layer[0]), activation[i], keys)

# The noisy crossbars: 200 programmings, accuracy from 1 s to 10 years. The floating-point
# baseline in the report is PyTorch's accuracy above.
r = aimc.classifier(net, xte, yte, times=["1s", "1d", "1y", "10y"], trials=200, out="results/resnet_digits")
print(r.per_point())
print(r.per_layer())    # which layer adds the most error
print("report:", r.report_html)

# At aihwkit's default mapping (weight_scaling_omega = 0) the tiles hold the convolutions' own
# weights, which train small under BatchNorm, low in the ADC's range and the output noise.
# Rescaling every tile to max|W| = 1 keeps far more at 10 years (docs/aihwkit.md, "The network
# around the tiles"); so does folding the BatchNorms into the weights.
r1 = aimc.classifier(net, xte, yte, times=["1s", "10y"], trials=200, out="results/resnet_digits_omega1",
                     periphery__weight_scaling_omega=1.0)
print(r1.per_point())
