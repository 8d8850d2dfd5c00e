"""Hardware-aware fine-tuning of a PyTorch model against aimc's own noise models.

    import aimc.torch as at
    at.prepare(model, device="pcm", t="10y", noise_scale=3.0, output_noise=0.12, dac_bits=7, clip_sigma=2.5)
    for x, y in loader:                  # an ordinary training loop: model.train(), loss, step
        loss = F.cross_entropy(model(x), y); opt.zero_grad(); loss.backward(); opt.step()
    at.unprepare(model)                  # plain Linear/Conv2d again, weights clipped
    layers, act = aimc.from_torch(model) # and evaluate it with aimc.classifier(...)

`prepare` wraps the forward pass of every `nn.Linear` and `nn.Conv2d` (the layers aimc maps onto
crossbars), and of every Hugging Face `Conv1D` (GPT-2's linear layers, W stored [in, out]: noise
and clipping act on W as a crossbar holds it, Wᵀ). In training mode each forward pass:

- draws a noisy copy of the weight with aimc's own code (`aimc::train::hwa`, the trainers'
  `[training]` section, through the Rust extension): the device model's programming noise on
  the differential pair (max|W| at g_max), optionally drifted to `t` with the drift-exponent
  spread and read noise and compensated by one global factor; or additive Gaussian noise of
  `weight_noise_std` x max|W| with `device="gaussian"`. The gradient flows to the clean weight
  (the noise is a constant of the step);
- quantises each input vector to `dac_bits` over its max|x| with a straight-through gradient
  (a Conv2d's input over each sample's max|x|, a bound on aimc's per-patch scaling);
- adds output noise of `output_noise` x max|x| per output (aihwkit's out_noise with abs-max noise
  management, aimc's `[periphery] out_noise`);
- clips the weight to +-clip_sigma x std(W) first (after the previous optimiser step).

In eval mode the layers compute in floating point. Draws are reproducible: layer i at step k uses
seed (seed, i, k). Torch is imported here only, so `import aimc` works without it.
"""

from __future__ import annotations

import numpy as np

try:
    import torch
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover - exercised only without torch
    raise ImportError("aimc.torch needs PyTorch (pip install torch); the rest of aimc works without it") from e

from . import to_toml
from ._aimc import perturb_weights

__all__ = ["prepare", "unprepare", "is_prepared"]

_KINDS = ("Linear", "Conv2d", "Conv1D")


def _training_toml(device, t, noise_scale: float, weight_noise_std: float) -> str:
    if device == "gaussian":
        table = {"weight_noise": "gaussian", "weight_noise_std": float(weight_noise_std)}
    else:
        fields = {}
        if isinstance(device, dict):
            # An experiment's [device] table (or aimc.from_aihwkit(cfg)["device"]): the model by
            # name, every other field set on it as the evaluation sets it.
            fields = dict(device)
            device = fields.pop("model", "pcm")
        table = {"weight_noise": device, "weight_noise_scale": float(noise_scale)}
        if t is not None:
            table["weight_noise_time"] = str(t)
        if fields:
            table["device"] = fields
    return to_toml({"training": table})


def prepare(model, device: str = "pcm", t=None, noise_scale: float = 1.0, weight_noise_std: float = 0.0,
            output_noise: float = 0.0, dac_bits: int = 0, clip_sigma: float = 0.0, periphery: dict | None = None,
            seed: int = 0):
    """Wraps every nn.Linear and nn.Conv2d of `model` (in place; returns it) so that training
    sees aimc's noise (see the module docstring). `device`: an aimc device model name ("pcm",
    "hermes", "hermes1", "simple", ...) or "gaussian" or "none", or a device table as an
    experiment's [device] holds it (`{"model": "pcm", "g_max": 20.0, "drift_table": {...}}`, or
    `aimc.from_aihwkit(rpu_config)["device"]`: training then sees the aihwkit configuration's noise
    model); `t`: drift to this time ("10y")
    after programming; `noise_scale`: multiplies the device model's noise. `periphery` may give
    `out_noise` and `inp_res_bits` as in an experiment file's [periphery] (they set
    `output_noise` and `dac_bits` when those are left at 0). Errors name the argument."""
    if is_prepared(model):
        raise ValueError("prepare: the model is already prepared; call aimc.torch.unprepare(model) first")
    periphery = dict(periphery or {})
    unknown = set(periphery) - {"out_noise", "inp_res_bits"}
    if unknown:
        raise ValueError(f"prepare: periphery takes out_noise and inp_res_bits; unknown {sorted(unknown)}")
    output_noise = float(output_noise or periphery.get("out_noise", 0.0))
    dac_bits = int(dac_bits or periphery.get("inp_res_bits", 0))
    if output_noise < 0 or clip_sigma < 0 or noise_scale < 0:
        raise ValueError("prepare: output_noise, clip_sigma and noise_scale must be >= 0")
    if dac_bits == 1 or dac_bits > 24 or dac_bits < 0:
        raise ValueError(f"prepare: dac_bits = {dac_bits}; use 0 (no DAC) or 2..24")
    spec = None
    if device != "none":
        spec = _training_toml(device, t, noise_scale, weight_noise_std)
        # One draw on a dummy matrix checks the arguments with aimc's own messages.
        try:
            perturb_weights([1.0], spec, 0)
        except ValueError as e:
            raise ValueError(f"prepare: {e}".replace("training.device.", "device.").replace("training.weight_noise_std", "weight_noise_std")
                             .replace("training.weight_noise_time", "t").replace("training.weight_noise", "device")) from None
    step_dac = (2.0 / ((1 << dac_bits) - 2)) if dac_bits else 0.0
    layers = [m for m in model.modules() if type(m).__name__ in _KINDS]
    if not layers:
        raise ValueError("prepare: the model has no nn.Linear, nn.Conv2d or Conv1D layer to put on crossbars")
    for i, m in enumerate(layers):
        m._aimc = {"index": i, "steps": 0, "forward": m.forward}
        m.forward = _wrapped(m, spec, seed, step_dac, output_noise, float(clip_sigma))
    model._aimc_prepared = True
    return model


def is_prepared(model) -> bool:
    return bool(getattr(model, "_aimc_prepared", False))


def unprepare(model):
    """Restores every wrapped layer's own forward (in place; returns the model), with the weights
    clipped one last time as training saw them, ready for `aimc.from_torch`."""
    if not is_prepared(model):
        raise ValueError("unprepare: the model was not prepared with aimc.torch.prepare")
    for m in model.modules():
        state = getattr(m, "_aimc", None)
        if state is None:
            continue
        clip = m.forward.clip_sigma
        if clip > 0:
            with torch.no_grad():
                _clip_(m.weight, clip)
        m.forward = state["forward"]
        del m._aimc
    del model._aimc_prepared
    return model


def _clip_(w, k: float) -> None:
    bound = k * w.std(unbiased=False)
    w.clamp_(-bound, bound)


def _wrapped(m, spec, seed: int, step: float, output_noise: float, clip_sigma: float):
    conv = type(m).__name__ == "Conv2d"
    # Hugging Face's Conv1D: y = x W + b with W [in, out]; the crossbar holds Wᵀ [out, in].
    conv1d = type(m).__name__ == "Conv1D"

    def forward(x):
        if not m.training:
            return m._aimc["forward"](x)
        state = m._aimc
        k = state["steps"]
        state["steps"] = k + 1
        w = m.weight
        if clip_sigma > 0:
            with torch.no_grad():
                _clip_(w, clip_sigma)
        if spec is not None:
            held = w.detach().t() if conv1d else w.detach()
            flat = held.to("cpu", torch.float32).reshape(-1).numpy()
            draw_seed = (seed * 1_000_003 + state["index"]) * 1_000_033 + k
            cols = int(np.prod(tuple(held.shape)[1:]))
            noisy = np.asarray(perturb_weights(flat.tolist(), spec, draw_seed & 0xFFFF_FFFF_FFFF_FFFF, cols), dtype=np.float32)
            noisy = torch.from_numpy(noisy.reshape(tuple(held.shape))).to(w.device, w.dtype)
            delta = (noisy.t() if conv1d else noisy) - w.detach()
            w = w + delta
        if conv:
            amax = x.detach().abs().amax(dim=(1, 2, 3), keepdim=True)
        else:
            amax = x.detach().abs().amax(dim=-1, keepdim=True)
        if step:
            safe = torch.where(amax > 0, amax, torch.ones_like(amax))
            q = torch.clamp(torch.round(x / safe / step) * step, -1.0, 1.0) * safe
            x = x + (q - x).detach()
        if conv:
            y = m._conv_forward(x, w, m.bias)
        else:
            y = F.linear(x, w.t() if conv1d else w, m.bias)
        if output_noise > 0:
            scale = amax.reshape(amax.shape[0], *([1] * (y.dim() - 1))) if conv else amax
            y = y + output_noise * scale * torch.randn_like(y)
        return y

    forward.clip_sigma = clip_sigma
    return forward
