"""Train a small PyTorch MLP on the digits data and ask aimc what PCM crossbars do to it.

    python3 -m venv .venv && .venv/bin/pip install ./python torch
    .venv/bin/python examples/torch_digits.py

Notebook-style: each block is a cell. Needs torch (not a dependency of aimc itself).
"""
import pathlib

import numpy as np
import torch

import aimc

# Data: the shipped digits (8x8 images, 0..16), the repository's fixed split.
root = pathlib.Path(__file__).resolve().parents[1]
raw = np.loadtxt(root / "experiments" / "data" / "digits.csv", delimiter=",")
x, y = raw[:, :-1] / 16.0, raw[:, -1].astype(np.int64)
(xtr, ytr), (xte, yte) = (x[:1347], y[:1347]), (x[1347:], y[1347:])

# A small model, trained for a few seconds.
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
xt, yt = torch.tensor(xtr, dtype=torch.float32), torch.tensor(ytr)
for _ in range(300):
    opt.zero_grad()
    torch.nn.functional.cross_entropy(model(xt), yt).backward()
    opt.step()

# The noisy crossbars: 500 programmings of the model, accuracy from 1 s to 10 years.
layers, activation = aimc.from_torch(model)
r = aimc.classifier(layers, xte, yte, times=["1s", "1d", "1y", "10y"], trials=500, activation=activation, out="results/torch_digits")
print(r.per_point())
print("report:", r.report_html)

# The same with an 8-bit ADC instead of 9: one keyword.
r8 = aimc.classifier(layers, xte, yte, times=["1y"], trials=500, activation=activation, periphery__out_res_bits=8, out="results/torch_digits_adc8")
print(r8.per_point())

# A small CNN on the same images: Conv2d layers are mapped as aihwkit maps them (unfolded kernel x
# in-channels = crossbar rows, out-channels = columns, one analog MVM per output pixel); BatchNorm2d
# is folded into its convolution, pooling and flatten run digitally.
cnn = torch.nn.Sequential(
    torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
    torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
    torch.nn.Flatten(), torch.nn.Linear(64, 10))
opt = torch.optim.Adam(cnn.parameters(), lr=1e-2)
images = xt.reshape(-1, 1, 8, 8)
for _ in range(200):
    opt.zero_grad()
    torch.nn.functional.cross_entropy(cnn(images), yt).backward()
    opt.step()
cnn.eval()
layers, activation = aimc.from_torch(cnn)
rc = aimc.classifier(layers, xte.reshape(-1, 1, 8, 8), yte, times=["1s", "1y"], trials=200, activation=activation, out="results/torch_digits_cnn")
print(rc.per_point())
print(rc.per_layer())    # which layer adds the most error
