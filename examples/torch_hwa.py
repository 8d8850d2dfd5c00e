"""Fine-tune a PyTorch model against aimc's PCM noise, then ask aimc how much it gained.

    python3 -m venv .venv && .venv/bin/pip install ./python torch
    .venv/bin/python examples/torch_hwa.py

Notebook-style: each block is a cell. Needs torch (not a dependency of aimc itself). The noise
drawn during fine-tuning is aimc's own (`aimc.torch`, docs/training.md): the PCM programming
noise drifted to 10 years, output noise, the 7-bit DAC and 2.5-sigma clipping.
"""
import pathlib

import numpy as np
import torch
import torch.nn.functional as F

import aimc
import aimc.torch as at

# Data: the shipped digits (8x8 images, 0..16), the repository's fixed split.
root = pathlib.Path(__file__).resolve().parents[1]
raw = np.loadtxt(root / "experiments" / "data" / "digits.csv", delimiter=",")
x, y = raw[:, :-1] / 16.0, raw[:, -1].astype(np.int64)
(xtr, ytr), (xte, yte) = (x[:1347], y[:1347]), (x[1347:], y[1347:])
xt, yt = torch.tensor(xtr, dtype=torch.float32), torch.tensor(ytr)

# A floating-point model, trained for a few seconds.
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
for _ in range(300):
    opt.zero_grad()
    F.cross_entropy(model(xt), yt).backward()
    opt.step()


def analog(model, label):
    """aimc's accuracy at 1 s and 10 years on PCM with GDC, and the loss from floating point."""
    layers, act = aimc.from_torch(model)
    r = aimc.classifier(layers, xte, yte, times=["1s", "10y"], trials=200, gdc="readout", activation=act, seed=1, quiet=True,
                        out=f"results/torch_hwa/{label.replace(' ', '_')}")
    for p in r.points:
        print(f"{label:>16} {p['time_label']:>5}: {100 * p['summary']['mean']:.2f} % "
              f"(floating point {100 * r.fp_baseline:.2f} %, loss {100 * (r.fp_baseline - p['summary']['mean']):.2f} points)")


analog(model, "floating point")

# Hardware-aware fine-tuning: the same loop, with aimc's noise in every Linear's forward pass.
at.prepare(model, device="pcm", t="10y", noise_scale=3.0, output_noise=0.12, dac_bits=7, clip_sigma=2.5, seed=0)
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
model.train()
for epoch in range(30):
    perm = torch.randperm(xt.shape[0])
    for i in range(0, xt.shape[0], 32):
        idx = perm[i:i + 32]
        loss = F.cross_entropy(model(xt[idx]), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
at.unprepare(model)

analog(model, "hardware-aware")
