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
import pathlib
import sys

import torch
from safetensors.torch import load_file

import aimc.torch as at

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from digits_resnet import digits, fit, root, save  # noqa: E402  (the digits, the loop and the writer)
from digits_resnet8 import ResNet8  # noqa: E402


def main(out: str) -> None:
    x, y = digits()
    net = ResNet8()
    net.load_state_dict(load_file(root / "models" / "digits_resnet8.safetensors"))
    at.prepare(net, device="pcm", t="10y", noise_scale=3.0, output_noise=0.12, dac_bits=7, clip_sigma=2.5, seed=2027)
    fit(net, x, y, torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9), epochs=20, batch=64)
    at.unprepare(net)
    acc, _ = save(net, x, y, out, "digits_resnet8_hwa.py")
    print(f"test accuracy (floating point, BatchNorm in eval mode): {acc:.4f} -> {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(root / "models" / "digits_resnet8_hwa.safetensors"))
