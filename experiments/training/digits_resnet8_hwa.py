"""Trains experiments/models/digits_resnet8_hwa.safetensors: hardware-aware fine-tuning of the
shipped CIFAR-style ResNet-8 (digits_resnet8.safetensors, experiments/training/digits_resnet8.py)
against aimc's own PCM model with `aimc.torch` (docs/training.md), as
experiments/training/digits_cnn_hwa.toml fine-tunes the CNN: every mini-batch draws the PCM
programming noise on each convolution and the head, drifts the devices to 10 years with their
drift-exponent spread and read noise and compensates the mean drift, at 3x the device model's
noise; output noise at twice the evaluation's 0.06, the evaluation's 7-bit DAC with a
straight-through gradient, weights clipped at 2.5 sigma. The BatchNorms, the zero-padding
shortcuts and the pooling stay digital and noiseless, as they run in the evaluation; the
BatchNorms' running statistics follow the noisy convolutions. It writes the state dict as
PyTorch holds it, as digits_resnet8.py does.

experiments/hwa_digits_resnet8.toml runs it on PCM. Rebuild (CPU, torch 2.x and aimc's Python
package; bit for bit on the same torch version and CPU kind):

    python experiments/training/digits_resnet8_hwa.py experiments/models/digits_resnet8_hwa.safetensors
"""
import importlib.util
import pathlib
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.numpy import save_file
from safetensors.torch import load_file

import aimc.torch as at

root = pathlib.Path(__file__).resolve().parents[1]


def main(out: str) -> None:
    spec = importlib.util.spec_from_file_location("digits_resnet8", pathlib.Path(__file__).with_name("digits_resnet8.py"))
    fp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fp)
    torch.manual_seed(2027)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    data = np.loadtxt(root / "data" / "digits.csv", delimiter=",", dtype=np.float32)
    x = torch.from_numpy(data[:, :64] / 16.0).reshape(-1, 1, 8, 8)
    y = torch.from_numpy(data[:, 64].astype(np.int64))
    train, test = slice(0, 1347), slice(1347, 1797)
    net = fp.ResNet8()
    net.load_state_dict(load_file(root / "models" / "digits_resnet8.safetensors"))
    at.prepare(net, device="pcm", t="10y", noise_scale=3.0, output_noise=0.12, dac_bits=7, clip_sigma=2.5, seed=2027)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    epochs, batch = 20, 64
    for _ in range(epochs):
        net.train()
        for idx in torch.randperm(1347).split(batch):
            opt.zero_grad()
            F.cross_entropy(net(x[train][idx]), y[train][idx]).backward()
            opt.step()
    at.unprepare(net)
    net.eval()
    with torch.no_grad():
        acc = (net(x[test]).argmax(1) == y[test]).float().mean().item()
    meta = {"training": f"experiments/training/digits_resnet8_hwa.py, torch {torch.__version__}, floating-point test accuracy {acc:.4f}"}
    save_file({k: v.detach().numpy().copy() for k, v in net.state_dict().items()}, out, metadata=meta)
    print(f"test accuracy (floating point, BatchNorm in eval mode): {acc:.4f} -> {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(root / "models" / "digits_resnet8_hwa.safetensors"))
