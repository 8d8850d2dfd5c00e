"""A vectorised PyTorch Monte Carlo of the same PCM path as `aimc bench` cases (a) and (c): the
baseline that aimc's GPU engine is compared with on the same card (BENCHMARKS.md).

Physics as aihwkit's PCMLikeNoiseModel (Nandakumar et al. 2019; Joshi et al., Nat. Commun. 11,
2473, 2020) with its default InferenceRPUConfig periphery: programming noise polynomial, folded-
normal drift exponent, 1/f read noise, global drift compensation, 7-bit DAC with abs-max noise
management, output noise 0.06, 9-bit ADC with bound 12, 512 x 512 tiles. Iterative bound
management is left out (it only adds work to this baseline). Case (e) runs the digits MLP of
`experiments/bench_mlp.toml` (1000 trials x 6 times, 450 test rows) and counts trial-points per
second as aimc does, host readback of the counts included. Rates are credited as aimc credits
its own: case (a) in weights (device-state samples) per second, case (c) in GEMM-equivalent FLOP/s
(2 per MAC of the 1024 x 1024 layer, batch 256, 256 trials). Cases (i) and (j) run a noisy
transformer encoder the same way (every matrix its own per-trial device state, DAC, output noise,
ADC and GDC; LayerNorm, softmax attention, GELU and mean pooling in FP32): (i) the shape of the
shipped LRA model (d 64, 2 heads, FFN 128, 2 weight-shared layers, 128 tokens), (j) BERT-base
(12 layers, hidden 768, 12 heads, FFN 3072, 384 tokens), credited in FLOP/s as aimc credits them
(`SeqModel::flops_per_sequence`: 2 per MAC of every analog matrix, 4·seq·keys·d per layer for
attention).

    python3 bench/torch_baseline.py            # needs a CUDA GPU and torch
"""
import math
import time

import torch

dev = torch.device("cuda")
torch.backends.cuda.matmul.allow_tf32 = False  # FP32 GEMMs, as aimc's WGSL
G_MAX, T0, T_READ, T = 25.0, 20.0, 250e-9, 3600.0
PROG = (0.26348, 1.9650, -1.1731)


def clamp_log(gr, a, b, lo, hi):
    return (a * torch.log(gr.clamp_min(1e-7)) + b).clamp(lo, hi)


def device_state(w, trials, t_since=T):
    """Programmed, drifted, read-noisy weights for `trials` draws of the signed matrix `w`,
    `t_since` seconds after programming."""
    scale = G_MAX / w.abs().amax()
    gt = (w.abs() * scale).expand(trials, *w.shape)
    x = gt / G_MAX
    sig = PROG[0] + PROG[1] * x + PROG[2] * x * x
    g = (gt + sig * torch.randn_like(gt)).clamp_min(0.0)
    nu = (clamp_log(x, -0.0155, 0.0244, 0.049, 0.1) + clamp_log(x, -0.0125, -0.0059, 0.008, 0.045) * torch.randn_like(gt)).abs()
    t = t_since + T0
    gd = g * torch.exp(-nu * math.log(t / T0))
    qs = (0.0088 / (g / G_MAX).clamp_min(1e-7).pow(0.65).clamp_min(1e-3)).clamp_max(0.2)
    gd = (gd + gd * qs * math.sqrt(math.log((t + T_READ) / (2 * T_READ))) * torch.randn_like(gt)).clamp_min(0.0)
    return torch.sign(w) * gd / scale


def quant(v, bits, bound):
    res = bound / (2 ** (bits - 1) - 1)
    return (torch.round(v / res) * res).clamp(-bound, bound)


def inference(w, x, trials, tile=512):
    we = device_state(w, trials)
    # GDC: one reference read of the summed columns at t0 (programmed state) vs now.
    alpha = w.abs().sum() / we.abs().sum(dim=(1, 2)).clamp_min(1e-12)
    xm = x.abs().amax(dim=1, keepdim=True).clamp_min(1e-12)
    xq = quant(x / xm, 7, 1.0)
    y = 0.0
    for k in range(0, w.shape[1], tile):
        yt = torch.matmul(xq[None, :, k : k + tile], we[:, :, k : k + tile].transpose(1, 2))
        yt = yt + 0.06 * torch.randn_like(yt)
        y = y + quant(yt, 9, 12.0)
    return y * xm[None] * alpha[:, None, None]


def inference_per_trial(w, x, tile=512, t_since=T):
    """`inference` with per-trial inputs x [trials, tokens, in] (every layer after the first)."""
    trials = x.shape[0]
    we = device_state(w, trials, t_since)
    alpha = w.abs().sum() / we.abs().sum(dim=(1, 2)).clamp_min(1e-12)
    xm = x.abs().amax(dim=2, keepdim=True).clamp_min(1e-12)
    xq = quant(x / xm, 7, 1.0)
    y = 0.0
    for k in range(0, w.shape[1], tile):
        yt = torch.matmul(xq[:, :, k : k + tile], we[:, :, k : k + tile].transpose(1, 2))
        yt = yt + 0.06 * torch.randn_like(yt)
        y = y + quant(yt, 9, 12.0)
    return y * xm * alpha[:, None, None]


def encoder(weights, x, trials, heads, shared=1):
    """A post-LN encoder of noisy crossbars over token activations x [tokens, d] (one sequence
    batch, flattened), for `trials` programmings: [trials, tokens, d] after mean pooling's input."""
    ln = torch.nn.functional.layer_norm
    h = x.expand(trials, *x.shape).contiguous()
    for _ in range(shared):
        for wq, wk, wv, wo, w1, w2 in weights:
            t, n, d = h.shape
            q, k, v = (inference_per_trial(m, h).view(t, n, heads, d // heads).transpose(1, 2) for m in (wq, wk, wv))
            a = torch.nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(t, n, d)
            h = ln(h + inference_per_trial(wo, a), (d,))
            f = torch.nn.functional.gelu(inference_per_trial(w1, h))
            h = ln(h + inference_per_trial(w2, f), (d,))
    return h


def transformer_case(name, layers, d, heads, dff, seq, seqs, trials, shared, bell):
    weights = [(bell(d, d), bell(d, d), bell(d, d), bell(d, d), bell(dff, d), bell(d, dff)) for _ in range(layers)]
    x = bell(seq, d)
    t = timed(lambda: [encoder(weights, x, trials, heads, shared) for _ in range(seqs)], 1)
    flops = seqs * trials * layers * shared * (2 * seq * (4 * d * d + 2 * d * dff) + 4 * seq * seq * d)
    print(f"{name}: {seqs} sequences x {trials} trials in {t:.3f} s: {flops / t / 1e12:.3f} TFLOP/s, {seqs * trials / t:.1f} sequence-trials/s")
    return t / (seqs * trials)


def mlp_case():
    """(e) `experiments/bench_mlp.toml`: the digits MLP 64-256-64-10 (GELU) over the 450 test
    rows, 1000 trials at each of 6 times since programming, correct answers counted per trial."""
    import numpy as np
    from safetensors.torch import load_file

    p = load_file("experiments/models/digits_mlp_256.safetensors", device="cuda")
    rows = np.loadtxt("experiments/data/digits.csv", delimiter=",", dtype=np.float32)[1347:1797]
    x = torch.tensor(rows[:, :64] / 16.0, device=dev)
    label = torch.tensor(rows[:, 64], device=dev).long()
    layers = [(p[f"{i}.weight"], p[f"{i}.bias"]) for i in (0, 2, 4)]
    times = [1.0, 3600.0, 86400.0, 30 * 86400.0, 365.25 * 86400.0, 3652.5 * 86400.0]
    trials = 1000

    def run():
        correct = []
        for t in times:
            h = x.expand(trials, *x.shape)
            for i, (w, b) in enumerate(layers):
                h = inference_per_trial(w, h, t_since=t) + b
                if i < len(layers) - 1:
                    h = torch.nn.functional.gelu(h, approximate="tanh")
            correct.append((h.argmax(-1) == label).sum(-1))
        return torch.stack(correct).cpu()

    te = timed(run, 3)
    acc = run().float().mean(1) / len(label)
    print(f"(e) MLP 64-256-64-10, {trials} trials x {len(times)} times: {trials * len(times) / te / 1e3:.1f} k trial-points/s "
          f"(mean accuracy {', '.join(f'{a:.3f}' for a in acc.tolist())})")


def timed(f, reps):
    f()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        f()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / reps


def main():
    gen = torch.Generator(device=dev).manual_seed(0)
    bell = lambda *s: torch.rand(4, *s, device=dev, generator=gen).mul(2).sub(1).mean(0)
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    # (a) device state, 512 x 512, 4096 trials, in chunks of 256 trials.
    w = bell(512, 512)
    ta = timed(lambda: [device_state(w, 256) for _ in range(16)], 3)
    print(f"(a) device state 512x512, 4096 trials: {512 * 512 * 4096 / ta / 1e9:.2f} G weights/s")
    # (c) batched inference 1024 x 1024, batch 256, 256 trials, in chunks of 32 trials.
    w, x = bell(1024, 1024), bell(256, 1024)
    tc = timed(lambda: [inference(w, x, 32) for _ in range(8)], 3)
    print(f"(c) batched inference 1024x1024, batch 256, 256 trials: {2 * 256 * 1024 * 1024 * 256 / tc / 1e12:.3f} TFLOP/s")
    mlp_case()
    # (i) the shipped LRA shape; (j) BERT-base, one noisy pass per sequence.
    transformer_case("(i) LRA-shaped encoder, d 64, 128 tokens", 1, 64, 2, 128, 128, 8, 64, 2, bell)
    per = transformer_case("(j) BERT-base-sized encoder, 384 tokens", 12, 768, 12, 3072, 384, 4, 1, 1, bell)
    # SQuAD v1.1 dev: 10,570 questions in 10,784 windows of 384 tokens (doc stride 128).
    print(f"(j) SQuAD dev (10,784 windows of 384 tokens), one noisy pass: {10784 * per:.0f} s")


if __name__ == "__main__":
    main()
