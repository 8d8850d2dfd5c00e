"""The transformer side of the Python package: `from_torch` on transformer classifiers (faked
with small classes named like torch's, so torch is not needed), the state dict it writes, the
document `aimc.transformer` builds, and the engine's floating-point baseline against a NumPy
forward written here from PyTorch's definitions (post- and pre-LN, exact GELU by math.erf,
softmax attention over the non-padding keys, mean pooling over the non-padding tokens); the same
for Hugging Face BERT classifiers (faked state dicts under BERT's names, a NumPy forward written
from transformers' BertModel) and MobileBERT classifiers (under MobileBERT's names, a NumPy
forward written from transformers' MobileBertModel). Three tests compare with PyTorch's and
transformers' own forwards where they are installed."""
import json
import math
import pathlib
import struct

import numpy as np
import pytest

import aimc

# ---- Fake torch modules: attribute access and class names only, as from_torch reads them. ----


class Module:
    """Children registered in order, like nn.Module's named_children()."""

    def __init__(self, **children):
        self._children = list(children.items())
        for k, v in children.items():
            setattr(self, k, v)

    def named_children(self):
        return iter(self._children)


class Sequential(list):
    def named_children(self):
        return ((str(i), m) for i, m in enumerate(self))


class ModuleList(Sequential):
    pass


class Linear:
    def __init__(self, w, b=None):
        self.weight, self.bias = np.asarray(w, np.float32), None if b is None else np.asarray(b, np.float32)


class NonDynamicallyQuantizableLinear(Linear):
    """The class of nn.MultiheadAttention.out_proj."""


class Embedding:
    def __init__(self, w, padding_idx=None):
        self.weight, self.padding_idx, self.max_norm = np.asarray(w, np.float32), padding_idx, None


class LayerNorm:
    def __init__(self, d, rng, eps=1e-5):
        self.weight = (1 + 0.2 * rng.normal(size=d)).astype(np.float32)
        self.bias = (0.1 * rng.normal(size=d)).astype(np.float32)
        self.eps, self.normalized_shape = eps, (d,)


class MultiheadAttention:
    def __init__(self, d, heads, rng, bias=True, separate=False):
        self.embed_dim, self.kdim, self.vdim, self.num_heads = d, d, d, heads
        self.batch_first, self.dropout, self.bias_k, self.bias_v, self.add_zero_attn = True, 0.0, None, None, False
        w = (rng.normal(size=(3 * d, d)) / math.sqrt(d)).astype(np.float32)
        self._qkv_same_embed_dim = not separate
        if separate:
            self.in_proj_weight = None
            self.q_proj_weight, self.k_proj_weight, self.v_proj_weight = w[:d], w[d:2 * d], w[2 * d:]
        else:
            self.in_proj_weight = w
        self.in_proj_bias = (0.1 * rng.normal(size=3 * d)).astype(np.float32) if bias else None
        self.out_proj = NonDynamicallyQuantizableLinear(rng.normal(size=(d, d)) / math.sqrt(d), 0.1 * rng.normal(size=d) if bias else None)


class Dropout:
    pass


class GELU:
    def __init__(self, approximate="none"):
        self.approximate = approximate


class ReLU:
    pass


class Tanh:
    pass


def gelu(x):
    """Stands for torch.nn.functional.gelu (from_torch reads the function's name)."""
    return x


def relu(x):
    return x


def silu(x):
    return x


class TransformerEncoderLayer:
    def __init__(self, d, heads, dff, rng, norm_first=False, activation=gelu, eps=1e-5, bias=True, separate=False):
        self.self_attn = MultiheadAttention(d, heads, rng, bias=bias, separate=separate)
        self.linear1 = Linear(rng.normal(size=(dff, d)) / math.sqrt(d), 0.1 * rng.normal(size=dff) if bias else None)
        self.linear2 = Linear(rng.normal(size=(d, dff)) / math.sqrt(dff), 0.1 * rng.normal(size=d) if bias else None)
        self.norm1, self.norm2 = LayerNorm(d, rng, eps), LayerNorm(d, rng, eps)
        self.dropout, self.dropout1, self.dropout2 = Dropout(), Dropout(), Dropout()
        self.norm_first, self.activation = norm_first, activation


class TransformerEncoder:
    def __init__(self, layers, norm=None):
        self.layers, self.norm = ModuleList(layers), norm


class Conv1d:
    pass


class LSTM:
    pass


class PositionalEncoding:
    pass


def tiny(rng, norm_first=False, learned=False, layers=2, d=8, heads=2, vocab=12, dff=16, classes=3, activation=gelu, final_norm=False):
    """A transformer classifier: token (and position) embedding, encoder, a head of two Linear with GELU."""
    enc = TransformerEncoder([TransformerEncoderLayer(d, heads, dff, rng, norm_first, activation) for _ in range(layers)],
                             LayerNorm(d, rng) if final_norm else None)
    parts = {"embedding": Embedding(rng.normal(size=(vocab, d)), padding_idx=0)}
    if learned:
        parts["pos"] = Embedding(0.5 * rng.normal(size=(16, d)))
    parts["encoder"] = enc
    parts["classifier"] = Sequential([Linear(rng.normal(size=(6, d)) / math.sqrt(d), 0.1 * rng.normal(size=6)), GELU(), Dropout(),
                                      Linear(rng.normal(size=(classes, 6)) / math.sqrt(6), 0.1 * rng.normal(size=classes))])
    return Module(**parts)


# ---- The NumPy forward (float64), from PyTorch's definitions. ----


def _heads_softmax(q, k, v, heads, causal=False):
    """Multi-head softmax attention of the rows of q, k, v (every key attends: the rows are the
    non-padding tokens; causal: row i attends to rows j <= i), heads as consecutive column blocks."""
    dh = q.shape[1] // heads
    o = np.zeros_like(q)
    for hd in range(heads):
        sl = slice(hd * dh, (hd + 1) * dh)
        sc = q[:, sl] @ k[:, sl].T / math.sqrt(dh)
        if causal:
            sc = np.where(np.tril(np.ones_like(sc)) > 0, sc, -np.inf)
        a = np.exp(sc - sc.max(1, keepdims=True))
        o[:, sl] = (a / a.sum(1, keepdims=True)) @ v[:, sl]
    return o


def _ln(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


ACTS = {
    "gelu_exact": np.vectorize(lambda v: 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0)))),
    "gelu": lambda v: 0.5 * v * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (v + 0.044715 * v ** 3))),
    "relu": lambda v: np.maximum(v, 0.0),
    "tanh": np.tanh,
}


def sinusoids(seq, d):
    """Vaswani's: PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(p / 10000^(2i/d))."""
    p = np.arange(seq)[:, None].astype(np.float64)
    i2 = (np.arange(d) - np.arange(d) % 2).astype(np.float64)
    a = p / 10000.0 ** (i2 / d)
    return np.where(np.arange(d) % 2 == 0, np.sin(a), np.cos(a))


def numpy_forward(model, tokens, pad_id=None, embed_scale=1.0, pooled=False, causal=False):
    """The logits [n, classes] of a TransformerModel (or the pooled vectors [n, d] before the
    head): per sequence, its non-padding tokens (the padding keys are masked and nothing else
    mixes tokens, so the padded rows change nothing). `causal`: a language model, the causal mask
    and the head on every token, a list of [len, classes] logits."""
    t = {k: v.astype(np.float64) for k, v in model.tensors.items()}
    s = model.settings
    d, heads, eps = t["embedding.weight"].shape[1], s["heads"], s["layer_norm_eps"]
    act = ACTS[s["activation"]]
    heads_w = sorted((k[:-len(".weight")] for k in t if k.startswith("classifier.") and k.endswith(".weight")), key=lambda k: int(k.split(".")[1]) if k.count(".") else 0)
    out = []
    for row in np.asarray(tokens):
        n = int(np.argmax(row == pad_id)) if pad_id is not None and np.any(row == pad_id) else len(row)
        ids = row[:n]
        pos = t["pos_embedding.weight"][:n] if "pos_embedding.weight" in t else (sinusoids(n, d) if model.positions == "sinusoidal" else 0.0)
        x = t["embedding.weight"][ids] * embed_scale + pos
        if "embed_norm.weight" in t:
            x = _ln(x, t["embed_norm.weight"], t["embed_norm.bias"], eps)
        for layer in range(model.layers):
            p = f"encoder.layers.{layer}."

            def attention(h):
                qkv = h @ t[p + "self_attn.in_proj_weight"].T + t[p + "self_attn.in_proj_bias"]
                q, k, v = qkv[:, :d], qkv[:, d:2 * d], qkv[:, 2 * d:]
                o = _heads_softmax(q, k, v, heads, causal)
                return o @ t[p + "self_attn.out_proj.weight"].T + t[p + "self_attn.out_proj.bias"]

            def ffn(h):
                return act(h @ t[p + "linear1.weight"].T + t[p + "linear1.bias"]) @ t[p + "linear2.weight"].T + t[p + "linear2.bias"]

            n1 = lambda h: _ln(h, t[p + "norm1.weight"], t[p + "norm1.bias"], eps)
            n2 = lambda h: _ln(h, t[p + "norm2.weight"], t[p + "norm2.bias"], eps)
            if s["norm_first"]:
                x = x + attention(n1(x))
                x = x + ffn(n2(x))
            else:
                x = n1(x + attention(x))
                x = n2(x + ffn(x))
        if "encoder.norm.weight" in t:
            x = _ln(x, t["encoder.norm.weight"], t["encoder.norm.bias"], eps)
        h = x if causal else x.mean(0)
        if pooled:
            out.append(h)
            continue
        for j, k in enumerate(heads_w):
            h = h @ t[k + ".weight"].T + t[k + ".bias"]
            if j + 1 < len(heads_w):
                h = ACTS[s["head_activation"]](h)
        out.append(h)
    return out if causal else np.array(out)


def centre_head(model, tokens, pad_id=0):
    """Re-centres the first head layer on the data's pooled vectors: mean pooling makes every
    sequence's vector close to the others, so a random head would give one class to all and the
    accuracy would not notice a wrong step upstream; centred and scaled, predictions spread over
    the classes and depend on every part of the forward."""
    first = "classifier.0" if "classifier.0.weight" in model.tensors else "classifier"
    pooled = numpy_forward(model, tokens, pad_id, pooled=True)
    w = model.tensors[first + ".weight"].astype(np.float64) / pooled.std(0).mean()
    model.tensors[first + ".weight"] = w.astype(np.float32)
    model.tensors[first + ".bias"] = (-w @ pooled.mean(0)).astype(np.float32)


def read_safetensors(path):
    raw = pathlib.Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    return {k: np.frombuffer(data[v["data_offsets"][0]:v["data_offsets"][1]], "<f4").reshape(v["shape"]) for k, v in header.items() if k != "__metadata__"}


def padded_tokens(rng, n=20, seq=10, vocab=12):
    """n rows of ids 1..vocab-1, each padded with 0 after 3..seq tokens (a few unpadded)."""
    tok = rng.integers(1, vocab, size=(n, seq))
    for r in range(n):
        tok[r, 3 + (r * 7) % (seq - 2):] = 0
    return tok


# ---- from_torch ----


def test_from_torch_maps_a_post_ln_encoder_with_a_gelu_head():
    rng = np.random.default_rng(0)
    net = tiny(rng)
    m = aimc.from_torch(net)
    assert isinstance(m, aimc.TransformerModel)
    assert m.settings == {"heads": 2, "norm_first": False, "activation": "gelu_exact", "head_activation": "gelu_exact",
                          "layer_norm_eps": 1e-5, "pooling": "mean", "pad_id": 0}
    assert m.positions == "sinusoidal" and (m.d_model, m.vocab, m.layers, m.classes) == (8, 12, 2, 3)
    per_layer = ["self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight", "self_attn.out_proj.bias",
                 "linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias", "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"]
    want = {"embedding.weight", "classifier.0.weight", "classifier.0.bias", "classifier.2.weight", "classifier.2.bias"}
    want |= {f"encoder.layers.{n}.{k}" for n in range(2) for k in per_layer}
    assert set(m.tensors) == want
    assert all(v.dtype == np.float32 for v in m.tensors.values())
    layer = net.encoder.layers[1]
    assert np.array_equal(m.tensors["encoder.layers.1.self_attn.in_proj_weight"], layer.self_attn.in_proj_weight)
    assert np.array_equal(m.tensors["encoder.layers.1.norm2.bias"], layer.norm2.bias)
    assert m.tensors["classifier.2.weight"].shape == (3, 6)


def test_from_torch_maps_pre_ln_learned_positions_and_norms():
    rng = np.random.default_rng(1)
    d = 8
    layers = ModuleList([TransformerEncoderLayer(d, 4, 12, rng, norm_first=True, activation=relu, eps=1e-6) for _ in range(2)])
    net = Module(tok=Embedding(rng.normal(size=(12, d))), pos=Embedding(rng.normal(size=(10, d))), norm=LayerNorm(d, rng, 1e-6),
                 drop=Dropout(), layers=layers, final=LayerNorm(d, rng, 1e-6), head=Linear(rng.normal(size=(4, d))))
    m = aimc.from_torch(net)
    assert m.settings == {"heads": 4, "norm_first": True, "activation": "relu", "head_activation": "gelu_exact", "layer_norm_eps": 1e-6, "pooling": "mean"}
    assert m.positions == "learned" and m.tensors["pos_embedding.weight"].shape == (10, d)
    assert np.array_equal(m.tensors["embed_norm.weight"], net.norm.weight) and np.array_equal(m.tensors["encoder.norm.bias"], net.final.bias)
    # One Linear head: classifier.weight, with its missing bias as zeros.
    assert m.tensors["classifier.weight"].shape == (4, d) and not m.tensors["classifier.bias"].any()
    # The encoder's own final norm maps to the same name.
    enc = TransformerEncoder(list(layers), LayerNorm(d, rng, 1e-6))
    m2 = aimc.from_torch(Sequential([net.tok, net.pos, net.norm, enc, net.head]))
    assert np.array_equal(m2.tensors["encoder.norm.weight"], enc.norm.weight)
    # A bare Embedding then encoder layers, no position table: "none" writes zeros of the sequence length.
    m3 = aimc.from_torch([net.tok, layers[0], net.head], positions="none")
    assert m3.positions == "none" and "pos_embedding.weight" not in m3.tensors
    assert not m3.state_dict(seq=7)["pos_embedding.weight"].any() and m3.state_dict(seq=7)["pos_embedding.weight"].shape == (7, d)


def test_from_torch_stacks_separate_qkv_and_zero_fills_missing_biases():
    rng = np.random.default_rng(2)
    layer = TransformerEncoderLayer(8, 2, 16, rng, bias=False, separate=True, activation=GELU("tanh"))
    m = aimc.from_torch([Embedding(rng.normal(size=(5, 8))), layer, Linear(np.ones((2, 8)))])
    a = layer.self_attn
    assert np.array_equal(m.tensors["encoder.layers.0.self_attn.in_proj_weight"], np.concatenate([a.q_proj_weight, a.k_proj_weight, a.v_proj_weight]))
    for k in ("self_attn.in_proj_bias", "self_attn.out_proj.bias", "linear1.bias", "linear2.bias"):
        assert not m.tensors[f"encoder.layers.0.{k}"].any()
    assert m.tensors["encoder.layers.0.self_attn.in_proj_bias"].shape == (24,)
    assert m.settings["activation"] == "gelu"  # GELU(approximate='tanh') is aimc's tanh form


def test_from_torch_refuses_what_it_cannot_map_by_class_name():
    rng = np.random.default_rng(3)
    emb, head = Embedding(rng.normal(size=(12, 8))), Linear(np.ones((3, 8)))
    layer = lambda **kw: TransformerEncoderLayer(8, 2, 16, rng, **kw)
    cases = [
        ([emb, MultiheadAttention(8, 2, rng), head], r"module 1 is MultiheadAttention; .*inside nn.TransformerEncoderLayer"),
        ([emb, Conv1d(), layer(), head], r"module 1 is Conv1d"),
        ([emb, layer(), LSTM(), head], r"module 2 is LSTM"),
        ([emb, PositionalEncoding(), layer(), head], r"is PositionalEncoding; .*sinusoids"),
        ([emb, layer(), head, ReLU()], r"ends with relu after its last Linear"),
        ([emb, layer(), head, GELU(), Linear(np.ones((2, 3))), Tanh(), Linear(np.ones((2, 2)))], r"activations \['gelu_exact', 'tanh'\]"),
        ([emb, layer(), layer(norm_first=True), head], r"differ in norm_first"),
        ([emb, layer(activation=ReLU()), layer(), head], r"differ in activation"),
        ([emb, layer(eps=1e-6), layer(), head], r"different eps"),
        ([emb, layer(activation=silu), head], r"module 1.activation is silu; aimc maps GELU"),
        ([layer(), head], r"module 0 is TransformerEncoderLayer; a transformer classifier starts with its token nn.Embedding"),
        ([emb, head], r"module 1 is Linear; expected"),
        ([MultiheadAttention(8, 2, rng), head], r"module 0 is MultiheadAttention; a transformer classifier starts .* inside nn.TransformerEncoderLayer"),
        ([emb, layer()], r"no classifier head"),
    ]
    for model, message in cases:
        with pytest.raises(ValueError, match=message):
            aimc.from_torch(model)
    wide = layer()
    wide.self_attn.kdim = 4
    with pytest.raises(ValueError, match=r"kdim 4 / vdim 8 != embed_dim 8"):
        aimc.from_torch([emb, wide, head])
    kv = layer()
    kv.self_attn.bias_k = np.zeros((1, 1, 8))
    with pytest.raises(ValueError, match="add_bias_kv"):
        aimc.from_torch([emb, kv, head])
    odd = layer()
    odd.self_attn = type("MyAttention", (), {})()
    with pytest.raises(ValueError, match=r"self_attn is MyAttention"):
        aimc.from_torch([emb, odd, head])
    nested = Module(embedding=emb, encoder=TransformerEncoder([layer(), Conv1d()]), classifier=Sequential([head]))
    with pytest.raises(ValueError, match=r"module 1 \(encoder.layers.1\) is Conv1d; an encoder's layers must be nn.TransformerEncoderLayer"):
        aimc.from_torch(nested)
    # A Sequential without transformer parts still maps as before.
    layers, act = aimc.from_torch([Linear(np.ones((4, 3))), ReLU(), Linear(np.ones((2, 4)))])
    assert act == "relu" and len(layers) == 2


def test_the_state_dict_written_is_the_models(tmp_path):
    m = aimc.from_torch(tiny(np.random.default_rng(4), learned=True, final_norm=True))
    m.save(tmp_path / "m.safetensors")
    back = read_safetensors(tmp_path / "m.safetensors")
    assert set(back) == set(m.tensors) and all(np.array_equal(back[k], m.tensors[k]) for k in back)
    assert "TransformerModel(d_model 8" in repr(m)


def test_transformer_builds_the_document(monkeypatch, tmp_path):
    """The experiment aimc.transformer hands the engine: settings given here override the model's."""
    import tomllib
    seen = {}

    def fake_run(text, path, backend, out, trials, quiet, overwrite=False, sets=None, base=None, need_ranges=False):
        doc = tomllib.loads(text)
        seen["doc"] = doc
        seen["model"] = read_safetensors(doc["model"]["path"])
        seen["csv"] = pathlib.Path(doc["data"]["path"]).read_text()
        (tmp_path / "results.json").write_text(json.dumps({"name": "t", "metric": "m", "points": []}))
        return json.dumps({"name": "t", "metric": "m", "points": []}), str(tmp_path)

    monkeypatch.setattr(aimc._runner, "_run_toml", fake_run)  # the document runner's engine call
    m = aimc.from_torch(tiny(np.random.default_rng(5)), positions="none")
    tok = np.array([[3, 4, 0, 0], [5, 6, 7, 8]])
    aimc.transformer(m, tok, [1, 2], times=["1h"], trials=3, attention="kernel", features=16, embed_scale=2.0, pooling="cls",
                     settings={"heads": 4}, digital=["head"], device="ideal", periphery__out_noise=0.0, transformer__causal=True)
    doc = seen["doc"]
    assert doc["workload"] == "transformer" and doc["trials"] == 3 and doc["sweep"]["t"] == ["1h"] and doc["device"]["model"] == "ideal"
    assert doc["transformer"] == {"heads": 4, "norm_first": False, "activation": "gelu_exact", "head_activation": "gelu_exact",
                                  "layer_norm_eps": 1e-5, "pooling": "cls", "pad_id": 0, "attention": "kernel", "features": 16,
                                  "embed_scale": 2.0, "causal": True}
    assert doc["model"]["digital"] == ["head"] and doc["periphery"] == {"out_noise": 0.0}
    assert seen["csv"] == "3,4,0,0,1\n5,6,7,8,2\n"
    assert seen["model"]["pos_embedding.weight"].shape == (4, 8) and not seen["model"]["pos_embedding.weight"].any()
    # A path with its settings.
    m.save(tmp_path / "m.safetensors", seq=4)
    aimc.transformer((tmp_path / "m.safetensors", {"heads": 2}), tok, [0, 1], trials=2)
    assert seen["doc"]["transformer"] == {"heads": 2} and seen["doc"]["model"]["path"] == str((tmp_path / "m.safetensors").resolve())
    # None removes a model's setting (here the padding id read from padding_idx).
    aimc.transformer(m, tok, [0, 1], settings={"pad_id": None})
    assert "pad_id" not in seen["doc"]["transformer"] and seen["doc"]["transformer"]["heads"] == 2
    with pytest.raises(ValueError, match="transformer__FIELD"):
        aimc.transformer(m, tok, [0, 1], layers__x=1)
    with pytest.raises(ValueError, match=r"tokens must be \[n, seq\]"):
        aimc.transformer(m, tok[0], [0, 1])
    with pytest.raises(ValueError, match="non-negative integers"):
        aimc.transformer(m, tok - 1, [0, 1])


# ---- Through the engine ----

IDEAL = dict(device="ideal", periphery__inp_res_bits=0, periphery__out_res_bits=0, periphery__out_noise=0.0, periphery__out_bound=0.0)


@pytest.mark.parametrize("variant", ["post_ln_sinusoidal", "pre_ln_learned"])
def test_fp_baseline_equals_a_numpy_forward(tmp_path, variant):
    """With an ideal device and perfect converters the floating-point baseline (the engine's f64
    reference) is the NumPy forward's accuracy, and every trial's accuracy is within two
    sequences of it (the engine computes in f32)."""
    rng = np.random.default_rng(6)
    if variant == "post_ln_sinusoidal":
        m = aimc.from_torch(tiny(rng))
    else:
        m = aimc.from_torch(tiny(rng, norm_first=True, learned=True, final_norm=True))
    tok = padded_tokens(rng)
    centre_head(m, tok)
    logits = numpy_forward(m, tok, pad_id=0)
    pred = np.argmax(logits, axis=1)
    assert len(set(pred)) == 3
    # The labels are the forward's own predictions: any sequence the engine predicts otherwise
    # moves the baseline off 1.
    want = 1.0
    r = aimc.transformer(m, tok, pred, times=["1h", "1y"], trials=4, backend="cpu", out=str(tmp_path / variant), quiet=True, **IDEAL)
    assert r.fp_baseline == want
    assert r.data["config"]["transformer"]["heads"] == 2
    for p in r.points:
        assert p["fp"] == want
        assert len(p["per_trial"]) == 4
        assert all(abs(v - want) <= 2 / len(tok) + 1e-12 for v in p["per_trial"]), p["per_trial"]


def test_language_model_equals_a_numpy_forward(tmp_path):
    """aimc.language_model: the floating-point perplexity and next-token accuracy are the NumPy
    causal forward's (the head on every token, each position scored against the next token), and
    with ideal crossbars every trial's perplexity lies within the f32 engine's error of it."""
    rng = np.random.default_rng(8)
    m = aimc.from_torch(tiny(rng, classes=12, final_norm=True, norm_first=True))
    tok = padded_tokens(rng)
    nll, hits, count = 0.0, 0, 0
    for row, z in zip(tok, numpy_forward(m, tok, pad_id=0, causal=True)):
        for i in range(len(z) - 1):
            nxt = row[i + 1]
            nll += np.log(np.exp(z[i] - z[i].max()).sum()) + z[i].max() - z[i][nxt]
            hits += int(np.argmax(z[i]) == nxt)
            count += 1
    ppl = math.exp(nll / count)
    r = aimc.language_model(m, tok, times=["1h", "1y"], trials=3, backend="cpu", out=str(tmp_path / "ppl"), quiet=True, **IDEAL)
    assert r.data["metric_column"] == "perplexity" and not r.data["higher_is_better"]
    assert r.data["config"]["transformer"]["task"] == "next_token" and r.data["config"]["transformer"]["causal"] is True
    for p in r.points:
        assert abs(p["fp"] / ppl - 1) < 1e-9
        assert all(abs(v / ppl - 1) < 1e-3 for v in p["per_trial"]), p["per_trial"]
    r = aimc.language_model(m, tok, metric="accuracy", times=["1h"], trials=2, backend="cpu", out=str(tmp_path / "acc"), quiet=True, **IDEAL)
    assert r.points[0]["fp"] == hits / count
    with pytest.raises(ValueError, match="labels=None"):
        aimc.transformer(m, tok, [0] * len(tok), settings={"task": "next_token"})
    with pytest.raises(ValueError, match="metric"):
        aimc.language_model(m, tok, metric="bits")


def test_matches_pytorch_forward(tmp_path):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self, norm_first):
            super().__init__()
            self.embedding = nn.Embedding(12, 8, padding_idx=0)
            self.pos = nn.Embedding(16, 8)
            layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.1, activation="gelu", batch_first=True, norm_first=norm_first)
            self.encoder = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(8) if norm_first else None, enable_nested_tensor=False)
            self.classifier = nn.Sequential(nn.Linear(8, 6), nn.GELU(), nn.Dropout(0.1), nn.Linear(6, 3))

        def forward(self, tok):
            pad = tok == 0
            x = self.embedding(tok) + self.pos(torch.arange(tok.shape[1]))
            h = self.encoder(x, src_key_padding_mask=pad)
            keep = (~pad).to(h.dtype).unsqueeze(-1)
            return self.classifier((h * keep).sum(1) / keep.sum(1))

    rng = np.random.default_rng(7)
    tok = padded_tokens(rng)
    for norm_first in (False, True):
        net = Net(norm_first).eval()
        with torch.no_grad():
            want = net(torch.as_tensor(tok)).double().numpy()
        m = aimc.from_torch(net)
        assert m.settings["norm_first"] is norm_first and m.positions == "learned"
        assert np.allclose(numpy_forward(m, tok, pad_id=0), want, atol=1e-4)
        y = rng.integers(0, 3, size=len(tok))
        r = aimc.transformer(m, tok, y, times=["1h"], trials=2, backend="cpu", out=str(tmp_path / str(norm_first)), quiet=True, **IDEAL)
        assert r.fp_baseline == float(np.mean(np.argmax(want, axis=1) == y))


# ---- Hugging Face encoders ----


class HFConfig:
    """The config fields from_torch reads, at transformers' defaults for each family."""

    def __init__(self, model_type, **kw):
        self.model_type = model_type
        self.vocab_size, self.max_position_embeddings, self.pad_token_id, self.num_labels, self.problem_type = 12, 16, 0, 3, None
        self.is_decoder, self.add_cross_attention = False, False
        if model_type == "distilbert":
            self.dim, self.n_layers, self.n_heads, self.hidden_dim, self.activation = 8, 2, 2, 16, "gelu"
        elif model_type == "mobilebert":
            # MobileBertConfig's defaults (google/mobilebert-uncased's forward) at a small size.
            self.vocab_size, self.hidden_size, self.embedding_size, self.intra_bottleneck_size = 50, 32, 8, 16
            self.num_hidden_layers, self.num_attention_heads, self.intermediate_size, self.num_feedforward_networks = 2, 4, 32, 3
            self.hidden_act, self.type_vocab_size, self.layer_norm_eps, self.normalization_type = "relu", 2, 1e-12, "no_norm"
            self.trigram_input, self.use_bottleneck, self.use_bottleneck_attention, self.key_query_shared_bottleneck = True, True, False, True
            self.classifier_activation = True
        else:
            self.hidden_size, self.num_hidden_layers, self.num_attention_heads, self.intermediate_size = 8, 2, 2, 16
            self.hidden_act, self.type_vocab_size, self.position_embedding_type = "gelu", 2, "absolute"
            self.layer_norm_eps = 1e-12 if model_type == "bert" else 1e-5
            if model_type == "roberta":
                self.pad_token_id, self.max_position_embeddings, self.type_vocab_size = 1, 18, 1
            if model_type == "electra":
                self.embedding_size = self.hidden_size
        self.__dict__.update(kw)


def hf_layer_names(model_type):
    """A family's layer prefix (of layer n) and its per-layer modules in transformers' order: Q,
    K, V, O, the attention LayerNorm, FFN1, FFN2, the output LayerNorm."""
    if model_type == "distilbert":
        return (lambda n: f"distilbert.transformer.layer.{n}."), (
            "attention.q_lin", "attention.k_lin", "attention.v_lin", "attention.out_lin", "sa_layer_norm", "ffn.lin1", "ffn.lin2",
            "output_layer_norm")
    prefix = {"xlm-roberta": "roberta"}.get(model_type, model_type)  # XLM-R is RoBERTa's code under roberta.
    return (lambda n: f"{prefix}.encoder.layer.{n}."), (
        "attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense", "attention.output.LayerNorm",
        "intermediate.dense", "output.dense", "output.LayerNorm")


HF_KINDS = {"bert": "BertForSequenceClassification", "roberta": "RobertaForSequenceClassification",
            "electra": "ElectraForSequenceClassification", "distilbert": "DistilBertForSequenceClassification"}


def hf_classifier(rng, model_type="bert", kind=None, **config):
    """A state dict under a Hugging Face classifier's names (with the position_ids buffer older
    transformers versions save), NumPy arrays standing in for tensors, in an object whose class
    is named like transformers'."""
    c = HFConfig(model_type, **config)
    distil = model_type == "distilbert"
    d, f, layers = (c.dim, c.hidden_dim, c.n_layers) if distil else (c.hidden_size, c.intermediate_size, c.num_hidden_layers)
    mat = lambda r, k: (rng.normal(size=(r, k)) / math.sqrt(k)).astype(np.float32)
    vec = lambda n, s=0.1: (s * rng.normal(size=n)).astype(np.float32)
    gamma = lambda: (1 + vec(d, 0.2)).astype(np.float32)
    P = model_type + "."
    e = P + "embeddings."
    sd = {e + "position_ids": np.arange(c.max_position_embeddings, dtype=np.int64)[None, :],
          e + "word_embeddings.weight": rng.normal(size=(c.vocab_size, d)).astype(np.float32),
          e + "position_embeddings.weight": (0.5 * rng.normal(size=(c.max_position_embeddings, d))).astype(np.float32)}
    if not distil:
        sd[e + "token_type_embeddings.weight"] = (0.5 * rng.normal(size=(c.type_vocab_size, d))).astype(np.float32)
    sd[e + "LayerNorm.weight"], sd[e + "LayerNorm.bias"] = gamma(), vec(d)
    layer, (q, k, v, o, norm1, ffn1, ffn2, norm2) = hf_layer_names(model_type)
    for n in range(layers):
        p = layer(n)
        # Drawn in transformers' order: the values are those of every seed before.
        for name, (w, b) in [(q, (mat(d, d), vec(d))), (k, (mat(d, d), vec(d))), (v, (mat(d, d), vec(d))), (o, (mat(d, d), vec(d))),
                             (norm1, (gamma(), vec(d))), (ffn1, (mat(f, d), vec(f))), (ffn2, (mat(d, f), vec(d))), (norm2, (gamma(), vec(d)))]:
            sd[p + name + ".weight"], sd[p + name + ".bias"] = w, b
    first, last = {"bert": ("bert.pooler.dense", "classifier"), "roberta": ("classifier.dense", "classifier.out_proj"),
                   "electra": ("classifier.dense", "classifier.out_proj"), "distilbert": ("pre_classifier", "classifier")}[model_type]
    sd[first + ".weight"], sd[first + ".bias"] = mat(d, d), vec(d)
    sd[last + ".weight"], sd[last + ".bias"] = mat(c.num_labels, d), vec(c.num_labels)
    return type(kind or HF_KINDS[model_type], (), {"config": c, "state_dict": lambda self: dict(sd), "_sd": sd})()


def hf_forward(hf, tokens, pooled=False, types=None):
    """The logits of a Hugging Face classifier, written from transformers' modelling code on its
    own state dict: embeddings (word + position + token type 0 where the family has token types;
    RoBERTa's position of index i is row i + pad + 1) and their LayerNorm, post-LN layers
    (self-attention over the non-padding keys, feed-forward), then the first token through the
    head: BERT's tanh pooler and classifier, RoBERTa's dense, tanh, out_proj, ELECTRA's dense,
    GELU, out_proj, DistilBERT's
    pre_classifier, ReLU, classifier. `pooled`: the vector the last Linear reads; `types`: the
    token type of every token (default 0)."""
    c = hf.config
    mt = {"xlm-roberta": "roberta"}.get(c.model_type, c.model_type)  # XLM-R is RoBERTa's code under roberta.
    t = {k: v.astype(np.float64) for k, v in hf.state_dict().items() if np.issubdtype(v.dtype, np.floating)}
    if mt == "distilbert":
        heads, layers, eps, act = c.n_heads, c.n_layers, 1e-12, c.activation
    else:
        heads, layers, eps, act = c.num_attention_heads, c.num_hidden_layers, c.layer_norm_eps, c.hidden_act
    layer, names = hf_layer_names(c.model_type)
    act = {"gelu": ACTS["gelu_exact"], "gelu_new": ACTS["gelu"], "relu": ACTS["relu"]}[act]
    e = mt + ".embeddings."
    pad = c.pad_token_id
    head = {"bert": [("bert.pooler.dense", np.tanh), ("classifier", None)], "roberta": [("classifier.dense", np.tanh), ("classifier.out_proj", None)],
            "electra": [("classifier.dense", ACTS["gelu_exact"]), ("classifier.out_proj", None)],
            "distilbert": [("pre_classifier", ACTS["relu"]), ("classifier", None)]}[mt]
    out = []
    tokens = np.asarray(tokens)
    types = np.zeros_like(tokens) if types is None else np.asarray(types)
    for row, ty in zip(tokens, types):
        n = int(np.argmax(row == pad)) if np.any(row == pad) else len(row)
        positions = np.arange(n) + (pad + 1 if mt == "roberta" else 0)
        x = t[e + "word_embeddings.weight"][row[:n]] + t[e + "position_embeddings.weight"][positions]
        if e + "token_type_embeddings.weight" in t:
            x = x + t[e + "token_type_embeddings.weight"][ty[:n]]
        x = _ln(x, t[e + "LayerNorm.weight"], t[e + "LayerNorm.bias"], eps)
        for i in range(layers):
            p = layer(i)
            lin = lambda h, name: h @ t[p + name + ".weight"].T + t[p + name + ".bias"]
            ln = lambda h, name: _ln(h, t[p + name + ".weight"], t[p + name + ".bias"], eps)
            q, k, v = lin(x, names[0]), lin(x, names[1]), lin(x, names[2])
            o = _heads_softmax(q, k, v, heads)
            x = ln(x + lin(o, names[3]), names[4])
            x = ln(x + lin(act(lin(x, names[5])), names[6]), names[7])
        h = x[0]
        for j, (name, f) in enumerate(head):
            if pooled and j == len(head) - 1:
                break
            h = h @ t[name + ".weight"].T + t[name + ".bias"]
            h = f(h) if f is not None else h
        out.append(h)
    return np.array(out)


def mobilebert_classifier(rng, kind="MobileBertForSequenceClassification", **config):
    """A MobileBertForSequenceClassification state dict under transformers' names, NumPy arrays
    standing in for tensors, shaped as transformers builds it from the config: the
    embedding_transformation over 3 embeddings (trigram_input) or 1, attention and the
    feed-forward networks at intra_bottleneck_size with use_bottleneck (V reading the layer's input
    unless use_bottleneck_attention), the shared Q/K bottleneck with key_query_shared_bottleneck,
    the pooler with classifier_activation. The norms' weights are drawn around 1 and the padding
    token's embedding row is not zero, so that every part shows in the logits."""
    c = HFConfig("mobilebert", **config)
    h, inner = c.hidden_size, c.intra_bottleneck_size if c.use_bottleneck else c.hidden_size
    sd = {}

    def linear(name, rows, cols):
        sd[name + ".weight"] = (rng.normal(size=(rows, cols)) / math.sqrt(cols)).astype(np.float32)
        sd[name + ".bias"] = (0.1 * rng.normal(size=rows)).astype(np.float32)

    def norm(name, d):
        sd[name + ".weight"] = (1 + 0.2 * rng.normal(size=d)).astype(np.float32)
        sd[name + ".bias"] = (0.1 * rng.normal(size=d)).astype(np.float32)

    e = "mobilebert.embeddings."
    sd[e + "word_embeddings.weight"] = rng.normal(size=(c.vocab_size, c.embedding_size)).astype(np.float32)
    sd[e + "position_embeddings.weight"] = (0.5 * rng.normal(size=(c.max_position_embeddings, h))).astype(np.float32)
    sd[e + "token_type_embeddings.weight"] = (0.5 * rng.normal(size=(c.type_vocab_size, h))).astype(np.float32)
    linear(e + "embedding_transformation", h, (3 if c.trigram_input else 1) * c.embedding_size)
    norm(e + "LayerNorm", h)
    for n in range(c.num_hidden_layers):
        p = f"mobilebert.encoder.layer.{n}."
        linear(p + "attention.self.query", inner, inner)
        linear(p + "attention.self.key", inner, inner)
        linear(p + "attention.self.value", inner, inner if c.use_bottleneck_attention else h)
        linear(p + "attention.output.dense", inner, inner)
        norm(p + "attention.output.LayerNorm", inner)
        linear(p + "intermediate.dense", c.intermediate_size, inner)
        linear(p + "output.dense", inner, c.intermediate_size)
        norm(p + "output.LayerNorm", inner)
        if c.use_bottleneck:
            linear(p + "output.bottleneck.dense", h, inner)
            norm(p + "output.bottleneck.LayerNorm", h)
            linear(p + "bottleneck.input.dense", inner, h)
            norm(p + "bottleneck.input.LayerNorm", inner)
            if c.key_query_shared_bottleneck:
                linear(p + "bottleneck.attention.dense", inner, h)
                norm(p + "bottleneck.attention.LayerNorm", inner)
        for j in range(c.num_feedforward_networks - 1):
            linear(p + f"ffn.{j}.intermediate.dense", c.intermediate_size, inner)
            linear(p + f"ffn.{j}.output.dense", inner, c.intermediate_size)
            norm(p + f"ffn.{j}.output.LayerNorm", inner)
    if c.classifier_activation:
        linear("mobilebert.pooler.dense", h, h)
    linear("classifier", c.num_labels, h)
    return type(kind, (), {"config": c, "state_dict": lambda self: dict(sd), "_sd": sd})()


def mobilebert_forward(hf, tokens, pooled=False, types=None):
    """The logits of a MobileBertForSequenceClassification, written from transformers'
    modeling_mobilebert on its own state dict. Embeddings: with trigram_input each token's
    embedding beside its next and previous tokens' over the padded row (zeros past either end),
    embedding_transformation where trigram_input or embedding_size != hidden_size, + position row
    + token-type row, norm. A layer: the bottlenecks (the input one the attention residual;
    Q = K from the shared one and V from the layer input, or all three from the input one with
    use_bottleneck_attention), attention over the non-padding keys with head size
    true_hidden_size / heads, O + residual, norm; the num_feedforward_networks - 1 extra
    feed-forward networks, each + residual, norm; intermediate, output.dense + residual, norm;
    with use_bottleneck the output bottleneck + the layer input, norm. Every norm is NoNorm
    (x·weight + bias) or LayerNorm by normalization_type; transformers builds the embedding's and
    output's LayerNorm without an eps (nn.LayerNorm's 1e-5), the others with layer_norm_eps. The
    first token: the tanh pooler with classifier_activation, then the classifier. `pooled`: the
    vector the classifier reads; `types`: the token type of every token (default 0)."""
    c = hf.config
    t = {k: v.astype(np.float64) for k, v in hf.state_dict().items() if np.issubdtype(v.dtype, np.floating)}
    act = {"relu": ACTS["relu"], "gelu": ACTS["gelu_exact"], "gelu_new": ACTS["gelu"]}[c.hidden_act]
    heads, pad = c.num_attention_heads, c.pad_token_id
    lin = lambda x, name: x @ t[name + ".weight"].T + t[name + ".bias"]

    def norm(x, name, eps=c.layer_norm_eps):
        w, b = t[name + ".weight"], t[name + ".bias"]
        return x * w + b if c.normalization_type == "no_norm" else _ln(x, w, b, eps)

    e = "mobilebert.embeddings."
    out = []
    tokens = np.asarray(tokens)
    types = np.zeros_like(tokens) if types is None else np.asarray(types)
    for row, ty in zip(tokens, types):
        n = int(np.argmax(row == pad)) if np.any(row == pad) else len(row)
        w = t[e + "word_embeddings.weight"][row]  # the whole padded row: the last token's next is the padding
        if c.trigram_input:
            zero = np.zeros_like(w[:1])
            w = np.concatenate([np.concatenate([w[1:], zero]), w, np.concatenate([zero, w[:-1]])], axis=1)
        if c.trigram_input or c.embedding_size != c.hidden_size:
            w = lin(w, e + "embedding_transformation")
        x = w[:n] + t[e + "position_embeddings.weight"][:n] + t[e + "token_type_embeddings.weight"][ty[:n]]
        x = norm(x, e + "LayerNorm", 1e-5)
        for i in range(c.num_hidden_layers):
            p = f"mobilebert.encoder.layer.{i}."
            q = k = v = layer_input = x
            if c.use_bottleneck:
                layer_input = norm(lin(x, p + "bottleneck.input.dense"), p + "bottleneck.input.LayerNorm")
                if c.use_bottleneck_attention:
                    q = k = v = layer_input
                elif c.key_query_shared_bottleneck:
                    q = k = norm(lin(x, p + "bottleneck.attention.dense"), p + "bottleneck.attention.LayerNorm")
            q, k, v = lin(q, p + "attention.self.query"), lin(k, p + "attention.self.key"), lin(v, p + "attention.self.value")
            o = _heads_softmax(q, k, v, heads)
            a = norm(lin(o, p + "attention.output.dense") + layer_input, p + "attention.output.LayerNorm")
            for j in range(c.num_feedforward_networks - 1):
                f = p + f"ffn.{j}."
                a = norm(lin(act(lin(a, f + "intermediate.dense")), f + "output.dense") + a, f + "output.LayerNorm")
            y = norm(lin(act(lin(a, p + "intermediate.dense")), p + "output.dense") + a, p + "output.LayerNorm", 1e-5)
            if c.use_bottleneck:
                y = norm(lin(y, p + "output.bottleneck.dense") + x, p + "output.bottleneck.LayerNorm")
            x = y
        h = np.tanh(lin(x[0], "mobilebert.pooler.dense")) if c.classifier_activation else x[0]
        out.append(h if pooled else lin(h, "classifier"))
    return np.array(out)


def test_from_torch_maps_hugging_face_classifiers():
    rng = np.random.default_rng(11)
    hf = hf_classifier(rng, hidden_act="gelu_new", layer_norm_eps=1e-7, pad_token_id=3)
    m = aimc.from_torch(hf)
    assert m.settings == {"heads": 2, "norm_first": False, "activation": "gelu", "head_activation": "gelu_exact",
                          "layer_norm_eps": 1e-7, "pooling": "cls", "pad_id": 3}
    assert m.positions == "learned" and (m.d_model, m.vocab, m.layers, m.classes) == (8, 12, 2, 3)
    # BERT's names stay (the engine's table reads them); the index buffer is not a weight.
    assert set(m.tensors) == set(hf.state_dict()) - {"bert.embeddings.position_ids"}
    assert all(np.array_equal(m.tensors[k], v) for k, v in hf.state_dict().items() if k in m.tensors)
    assert "TransformerModel(d_model 8, vocab 12, 2 layers, 3 classes" in repr(m)
    # RoBERTa: BERT's names, the positions from row pad + 1, the head as Linear layers 0 and 2.
    hf = hf_classifier(rng, "roberta")
    m = aimc.from_torch(hf)
    sd = hf.state_dict()
    assert m.settings == {"heads": 2, "norm_first": False, "activation": "gelu_exact", "head_activation": "tanh",
                          "layer_norm_eps": 1e-5, "pooling": "cls", "pad_id": 1}
    assert np.array_equal(m.tensors["roberta.embeddings.position_embeddings.weight"], sd["roberta.embeddings.position_embeddings.weight"][2:])
    assert np.array_equal(m.tensors["classifier.0.weight"], sd["classifier.dense.weight"])
    assert np.array_equal(m.tensors["classifier.2.bias"], sd["classifier.out_proj.bias"])
    assert m.classes == 3 and not any(k.startswith("classifier.dense") for k in m.tensors)
    # DistilBERT: renamed to PyTorch's names, Q/K/V stacked.
    hf = hf_classifier(rng, "distilbert", activation="relu")
    m = aimc.from_torch(hf)
    sd = hf.state_dict()
    assert m.settings == {"heads": 2, "norm_first": False, "activation": "relu", "head_activation": "relu", "layer_norm_eps": 1e-12,
                          "pooling": "cls", "pad_id": 0}
    p = "distilbert.transformer.layer.1."
    want = np.concatenate([sd[p + "attention.q_lin.weight"], sd[p + "attention.k_lin.weight"], sd[p + "attention.v_lin.weight"]])
    assert np.array_equal(m.tensors["encoder.layers.1.self_attn.in_proj_weight"], want)
    assert np.array_equal(m.tensors["encoder.layers.0.norm1.weight"], sd["distilbert.transformer.layer.0.sa_layer_norm.weight"])
    assert np.array_equal(m.tensors["classifier.0.weight"], sd["pre_classifier.weight"])
    assert (m.d_model, m.layers, m.classes) == (8, 2, 3) and len(m.tensors) == 4 + 2 * 12 + 4


def test_from_torch_refuses_what_a_hugging_face_model_runs_beyond_aimcs_forward():
    rng = np.random.default_rng(12)
    cases = [
        (dict(hidden_act="quick_gelu"), r"config.hidden_act = 'quick_gelu'; aimc maps gelu, gelu_fast"),
        (dict(position_embedding_type="relative_key"), r"position_embedding_type = 'relative_key'; aimc adds learned absolute"),
        (dict(is_decoder=True), r"config.is_decoder = True; aimc runs an encoder"),
        (dict(num_labels=1, problem_type="single_label_classification"), r"num_labels = 1, .*single-label classifier"),
        (dict(problem_type="multi_label_classification"), r"problem_type = 'multi_label_classification'; aimc scores a single-label"),
    ]
    for config, message in cases:
        with pytest.raises(ValueError, match=message):
            aimc.from_torch(hf_classifier(rng, **config))
    with pytest.raises(ValueError, match=r"DistilBertForSequenceClassification.config.activation = 'swiglu'"):
        aimc.from_torch(hf_classifier(rng, "distilbert", activation="swiglu"))
    with pytest.raises(ValueError, match=r"embedding_size = 4 but hidden_size = 8: ELECTRA normalises the narrower embedding"):
        aimc.from_torch(hf_classifier(rng, "electra", embedding_size=4))
    with pytest.raises(ValueError, match=r"pad_token_id is None; RoBERTa's positions count from it"):
        aimc.from_torch(hf_classifier(rng, "roberta", pad_token_id=None))
    with pytest.raises(ValueError, match=r"positions = 'none' with a Hugging Face model"):
        aimc.from_torch(hf_classifier(rng), positions="none")
    with pytest.raises(ValueError, match=r"BertModel is not a sequence classifier or a question-answering model; .*give a BertForSequenceClassification or a BertForQuestionAnswering"):
        aimc.from_torch(hf_classifier(rng, kind="BertModel"))
    deberta = hf_classifier(rng, kind="DebertaV2ForSequenceClassification")
    deberta.config.model_type = "deberta-v2"
    with pytest.raises(ValueError, match=r"is a Hugging Face 'deberta-v2' model; aimc maps the sequence classifiers of BERT, RoBERTa"):
        aimc.from_torch(deberta)
    hf = hf_classifier(rng)
    hf._sd["bert.embeddings.token_type_map"] = np.zeros(4, np.int64)
    with pytest.raises(ValueError, match=r"holds bert.embeddings.token_type_map of dtype int64; aimc reads floating-point weights"):
        aimc.from_torch(hf)
    hf = hf_classifier(rng, "distilbert")
    hf._sd["distilbert.transformer.layer.0.attention.rotary.weight"] = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match=r"holds distilbert.transformer.layer.0.attention.rotary.weight, which DistilBERT's forward"):
        aimc.from_torch(hf)
    del hf._sd["distilbert.transformer.layer.0.attention.rotary.weight"], hf._sd["distilbert.transformer.layer.1.attention.k_lin.bias"]
    with pytest.raises(ValueError, match=r"layer 1 lacks attention.k_lin.bias"):
        aimc.from_torch(hf)
    with pytest.raises(ValueError, match=r"positions = 'learned' is for transformer classifiers"):
        aimc.from_torch([Linear(np.ones((2, 3)))], positions="learned")


@pytest.mark.parametrize("model_type", ["bert", "roberta", "electra", "distilbert"])
def test_a_hugging_face_classifier_through_the_engine_equals_its_numpy_forward(tmp_path, model_type):
    """The engine runs the mapped model with the settings from its config: with an ideal device
    and perfect converters its floating-point baseline is the accuracy of a NumPy forward written
    from transformers' code on the original state dict (the module passed to `transformer`
    directly), and every trial is within two sequences of it."""
    rng = np.random.default_rng(13)
    hf = hf_classifier(rng, model_type)
    pad = hf.config.pad_token_id
    tok = padded_tokens(rng)
    tok = np.where(tok == 0, pad, np.where(tok == pad, 0, tok))  # the family's padding id trails
    # Re-centre the last head layer on the vectors it reads so the predictions spread over the classes.
    last = {"bert": "classifier", "roberta": "classifier.out_proj", "electra": "classifier.out_proj", "distilbert": "classifier"}[model_type]
    pooled = hf_forward(hf, tok, pooled=True)
    w = hf._sd[last + ".weight"].astype(np.float64) / pooled.std(0).mean()
    hf._sd[last + ".weight"], hf._sd[last + ".bias"] = w.astype(np.float32), (-w @ pooled.mean(0)).astype(np.float32)
    pred = np.argmax(hf_forward(hf, tok), axis=1)
    assert len(set(pred)) == 3
    # The labels are the forward's own predictions: any sequence the engine predicts otherwise
    # moves the baseline off 1.
    r = aimc.transformer(hf, tok, pred, times=["1h", "1y"], trials=4, backend="cpu", out=str(tmp_path / model_type), quiet=True, **IDEAL)
    assert r.fp_baseline == 1.0
    assert r.data["config"]["transformer"]["pooling"] == "cls"
    for p in r.points:
        assert all(v >= 1.0 - 2 / len(tok) - 1e-12 for v in p["per_trial"]), p["per_trial"]


def pairs(rng, n=20, seq=12, vocab=12, sep=3, pad=0):
    """n sentence pairs as a BERT tokenizer writes them, [CLS] A [SEP] B [SEP] then padding, with
    their token_type_ids (0 through the first [SEP], 1 after it, 0 on padding); ids other than
    [CLS] = 2 and [SEP] = `sep` drawn from 4..vocab-1; a few rows are one segment alone."""
    tok = np.full((n, seq), pad)
    types = np.zeros((n, seq), dtype=np.int64)
    for r in range(n):
        a = 1 + r % 4
        b = 0 if r % 7 == 3 else 1 + (r * 3) % 4
        row = [2] + list(rng.integers(4, vocab, size=a)) + [sep] + (list(rng.integers(4, vocab, size=b)) + [sep] if b else [])
        tok[r, :len(row)] = row
        if b:
            types[r, a + 2:len(row)] = 1
    return tok, types


def test_sentence_pairs_read_token_type_row_1_after_the_separator(tmp_path):
    """A BERT pair's second segment reads token-type row 1: with a tokenizer's token_type_ids the
    engine's baseline equals a NumPy forward given those types, and differs from one that adds
    type 0 everywhere; token types the separator rule does not give are refused by row."""
    rng = np.random.default_rng(15)
    hf = hf_classifier(rng, type_vocab_size=2)
    hf._sd["bert.embeddings.token_type_embeddings.weight"][1] *= 6.0  # a second segment that matters
    tok, types = pairs(rng)
    pooled = hf_forward(hf, tok, pooled=True, types=types)
    w = hf._sd["classifier.weight"].astype(np.float64) / pooled.std(0).mean()
    hf._sd["classifier.weight"], hf._sd["classifier.bias"] = w.astype(np.float32), (-w @ pooled.mean(0)).astype(np.float32)
    pred = np.argmax(hf_forward(hf, tok, types=types), axis=1)
    assert len(set(pred)) == 3 and np.any(pred != np.argmax(hf_forward(hf, tok), axis=1))
    r = aimc.transformer(hf, tok, pred, times=["1h"], trials=2, backend="cpu", out=str(tmp_path / "pairs"), quiet=True,
                         token_type_ids=types, **IDEAL)
    assert r.fp_baseline == 1.0 and r.data["config"]["transformer"]["segment_sep"] == 3
    # A tokenizer's output as it is: the same run.
    enc = {"input_ids": tok, "token_type_ids": types, "attention_mask": (tok != 0).astype(np.int64)}
    r2 = aimc.transformer(hf, enc, pred, times=["1h"], trials=2, backend="cpu", out=str(tmp_path / "enc"), quiet=True, **IDEAL)
    assert r2.points[0]["per_trial"] == r.points[0]["per_trial"]
    # An attention mask that is not the trailing padding: named.
    left = dict(enc, attention_mask=np.roll(enc["attention_mask"], 2, axis=1))
    with pytest.raises(ValueError, match=r"attention_mask row 0 is 0 at token 0, but aimc masks the keys from the first pad_id \(0\) on"):
        aimc.transformer(hf, left, pred, trials=2, backend="cpu", out=str(tmp_path / "bad"), quiet=True, **IDEAL)
    with pytest.raises(ValueError, match=r"token_type_ids are given twice"):
        aimc.transformer(hf, enc, pred, trials=2, backend="cpu", out=str(tmp_path / "bad"), quiet=True, token_type_ids=types, **IDEAL)
    with pytest.raises(ValueError, match=r"tokens holds \['labels'\] beside input_ids"):
        aimc.transformer(hf, dict(enc, labels=pred), pred, trials=2, backend="cpu", out=str(tmp_path / "bad"), quiet=True, **IDEAL)
    # Without them every token is type 0: the baseline moves.
    r = aimc.transformer(hf, tok, pred, times=["1h"], trials=2, backend="cpu", out=str(tmp_path / "single"), quiet=True, **IDEAL)
    assert r.fp_baseline < 1.0
    bad = types.copy()
    bad[1, -1] = 1  # a padding token typed 1 is ignored; a content token typed 0 after the separator is not
    bad[0, 4] = 0  # row 0 is [CLS] a [SEP] b [SEP]: its closing [SEP] typed 0
    with pytest.raises(ValueError, match=r"token_type_ids row 0 is not 0 up to the first separator \(3\)"):
        aimc.transformer(hf, tok, pred, trials=2, backend="cpu", out=str(tmp_path / "bad"), quiet=True, token_type_ids=bad, **IDEAL)
    with pytest.raises(ValueError, match=r"hold 0 \(first segment\) and 1"):
        aimc.transformer(hf, tok, pred, trials=2, backend="cpu", out=str(tmp_path / "bad"), quiet=True, token_type_ids=types * 2, **IDEAL)
    with pytest.raises(ValueError, match=r"settings segment_sep = 5 but token_type_ids switch to type 1 after token 3"):
        aimc.transformer(hf, tok, pred, trials=2, backend="cpu", out=str(tmp_path / "bad"), quiet=True, token_type_ids=types,
                         settings={"segment_sep": 5}, **IDEAL)
    # RoBERTa's table has one row: no second segment to read.
    roberta = hf_classifier(rng, "roberta")
    tok_r = np.where(tok == 0, 1, tok)
    with pytest.raises(ValueError, match=r"segment_sep = 3: the model's token-type table has 1 rows"):
        aimc.transformer(roberta, tok_r, pred, trials=2, backend="cpu", out=str(tmp_path / "bad"), quiet=True, token_type_ids=types, **IDEAL)


@pytest.mark.parametrize("model_type", ["bert", "roberta", "xlm-roberta", "electra", "distilbert"])
def test_matches_hugging_face_forward(tmp_path, model_type):
    """transformers' own forward: the NumPy forward above, and the engine's baseline."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    small = dict(vocab_size=12, num_labels=3, initializer_range=0.5)
    if model_type == "distilbert":
        config = transformers.DistilBertConfig(dim=8, n_layers=2, n_heads=2, hidden_dim=16, max_position_embeddings=16, **small)
        net = transformers.DistilBertForSequenceClassification(config)
    else:
        cls, model = {"bert": (transformers.BertConfig, transformers.BertForSequenceClassification),
                      "roberta": (transformers.RobertaConfig, transformers.RobertaForSequenceClassification),
                      "xlm-roberta": (transformers.XLMRobertaConfig, transformers.XLMRobertaForSequenceClassification),
                      "electra": (transformers.ElectraConfig, transformers.ElectraForSequenceClassification)}[model_type]
        if model_type == "electra":
            small = dict(small, embedding_size=8)
        config = cls(hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16,
                     max_position_embeddings=16 if model_type == "bert" else 18, **small)
        net = model(config)
    net = net.eval()
    pad = net.config.pad_token_id
    rng = np.random.default_rng(14)
    tok = padded_tokens(rng)
    tok = np.where(tok == 0, pad, np.where(tok == pad, 0, tok))
    with torch.no_grad():
        ids = torch.as_tensor(tok)
        want = net(input_ids=ids, attention_mask=(ids != pad).long()).logits.double().numpy()
    fake = type(type(net).__name__, (), {"config": net.config, "state_dict": lambda self: {k: v.numpy() for k, v in net.state_dict().items()}})()
    assert np.allclose(hf_forward(fake, tok), want, atol=1e-4)
    top2 = np.sort(want, axis=1)[:, -2:]
    assert np.all(top2[:, 1] - top2[:, 0] > 1e-3), "a near tie would leave the prediction to rounding"
    r = aimc.transformer(net, tok, np.argmax(want, axis=1), times=["1h"], trials=2, backend="cpu", out=str(tmp_path / "hf"), quiet=True,
                         **IDEAL)
    assert r.fp_baseline == 1.0
    if model_type == "bert":
        # A sentence pair with transformers' token_type_ids.
        tok, types = pairs(rng, sep=3, vocab=12)
        with torch.no_grad():
            ids = torch.as_tensor(tok)
            want = net(input_ids=ids, attention_mask=(ids != pad).long(), token_type_ids=torch.as_tensor(types)).logits.double().numpy()
        assert np.allclose(hf_forward(fake, tok, types=types), want, atol=1e-4)
        r = aimc.transformer(net, tok, np.argmax(want, axis=1), times=["1h"], trials=2, backend="cpu", out=str(tmp_path / "pairs"), quiet=True,
                             token_type_ids=types, **IDEAL)
        assert r.fp_baseline == 1.0


# ---- MobileBERT ----

# Configs whose forwards differ in every optional part: google/mobilebert-uncased's (trigram
# embedding, shared Q/K bottleneck, stacked feed-forward networks, NoNorm, pooler); LayerNorm with
# Q, K, V from the input bottleneck and no pooler; no bottleneck, one embedding through the
# projection and one feed-forward network; an embedding as wide as the layers, added as it is;
# all of these off, so that no tensor name but the prefix is MobileBERT's own and the forward
# differs from BERT's by NoNorm and the missing pooler alone.
MOBILEBERT = {
    "no_norm": {},
    "layer_norm": dict(normalization_type="layer_norm", layer_norm_eps=1e-5, key_query_shared_bottleneck=False,
                       use_bottleneck_attention=True, classifier_activation=False),
    "no_bottleneck": dict(use_bottleneck=False, trigram_input=False, num_feedforward_networks=1),
    "wide_embedding": dict(trigram_input=False, embedding_size=32, num_feedforward_networks=2),
    "bert_like": dict(use_bottleneck=False, trigram_input=False, embedding_size=32, num_feedforward_networks=1,
                      classifier_activation=False),
}


def test_from_torch_maps_mobilebert():
    """MobileBERT's state dict goes to the engine under its own names (less the index buffer);
    its settings come from the config, the norm kind always written."""
    rng = np.random.default_rng(16)
    hf = mobilebert_classifier(rng)
    hf._sd["mobilebert.embeddings.position_ids"] = np.arange(16, dtype=np.int64)[None, :]
    m = aimc.from_torch(hf)
    assert m.settings == {"heads": 4, "norm_first": False, "activation": "relu", "head_activation": "gelu_exact",
                          "layer_norm_eps": 1e-12, "norm": "no_norm", "pooling": "cls", "pad_id": 0}
    assert set(m.tensors) == set(hf.state_dict()) - {"mobilebert.embeddings.position_ids"}
    assert all(np.array_equal(m.tensors[k], v) for k, v in hf.state_dict().items() if k in m.tensors)
    # The layers' width is the position table's, not the narrower token embedding's.
    assert m.positions == "learned" and (m.d_model, m.vocab, m.layers, m.classes) == (32, 50, 2, 3)
    assert m.tensors["mobilebert.embeddings.embedding_transformation.weight"].shape == (32, 24)
    assert "mobilebert.encoder.layer.1.ffn.1.output.LayerNorm.bias" in m.tensors and "mobilebert.pooler.dense.weight" in m.tensors
    m = aimc.from_torch(mobilebert_classifier(rng, **MOBILEBERT["layer_norm"], hidden_act="gelu"))
    assert m.settings["norm"] == "layer_norm" and m.settings["layer_norm_eps"] == 1e-5 and m.settings["activation"] == "gelu_exact"
    assert not any(k.startswith("mobilebert.pooler.") or ".bottleneck.attention." in k for k in m.tensors)
    # One embedding projected (narrower than the layers): the projection stays.
    m = aimc.from_torch(mobilebert_classifier(rng, **MOBILEBERT["no_bottleneck"]))
    assert m.tensors["mobilebert.embeddings.embedding_transformation.weight"].shape == (32, 8)
    assert not any(".bottleneck." in k or ".ffn." in k for k in m.tensors) and m.d_model == 32
    # One embedding as wide as the layers: transformers adds it as it is and never applies the
    # embedding_transformation its state dict holds, so the engine is not given it.
    hf = mobilebert_classifier(rng, **MOBILEBERT["wide_embedding"])
    assert "mobilebert.embeddings.embedding_transformation.weight" in hf.state_dict()
    m = aimc.from_torch(hf)
    assert set(m.tensors) == set(hf.state_dict()) - {"mobilebert.embeddings.embedding_transformation.weight",
                                                     "mobilebert.embeddings.embedding_transformation.bias"}


def test_from_torch_refuses_mobilebert_configs_beyond_aimcs_forward():
    rng = np.random.default_rng(17)
    cases = [
        (dict(normalization_type="batch_norm"), r"config.normalization_type = 'batch_norm'; aimc runs MobileBERT's 'no_norm'"),
        (dict(normalization_type="layer_norm"), r"config.layer_norm_eps = 1e-12 with normalization_type 'layer_norm': transformers' "
                                                r"MobileBERT builds its embedding and FFN-output LayerNorms with nn.LayerNorm's ε 1e-5"),
        (dict(num_feedforward_networks=0), r"config.num_feedforward_networks = 0; a MobileBERT layer runs at least one"),
        (dict(use_bottleneck_attention=True), r"config.use_bottleneck_attention = True and key_query_shared_bottleneck = True: "
                                              r".*leaves the shared attention bottleneck unused"),
        (dict(use_bottleneck_attention=True, key_query_shared_bottleneck=False, intra_bottleneck_size=32),
         r"config.use_bottleneck_attention = True with intra_bottleneck_size = hidden_size = 32: aimc tells attention on the input "
         r"bottleneck by the width of V's input"),
        (dict(hidden_act="quick_gelu"), r"MobileBertForSequenceClassification.config.hidden_act = 'quick_gelu'; aimc maps"),
        (dict(num_labels=1, problem_type="single_label_classification"), r"num_labels = 1, .*single-label classifier"),
    ]
    for config, message in cases:
        with pytest.raises(ValueError, match=message):
            aimc.from_torch(mobilebert_classifier(rng, **config))
    # Without a bottleneck, its attention flags have nothing to act on; without bottleneck
    # attention, equal widths leave nothing undecided.
    m = aimc.from_torch(mobilebert_classifier(rng, use_bottleneck=False, use_bottleneck_attention=True))
    assert m.settings["norm"] == "no_norm"
    m = aimc.from_torch(mobilebert_classifier(rng, intra_bottleneck_size=32))
    assert m.tensors["mobilebert.encoder.layer.0.bottleneck.attention.dense.weight"].shape == (32, 32)
    with pytest.raises(ValueError, match=r"MobileBertModel is not a sequence classifier or a question-answering model; .*give a MobileBertForSequenceClassification"):
        aimc.from_torch(mobilebert_classifier(rng, kind="MobileBertModel"))


@pytest.mark.parametrize("variant", list(MOBILEBERT))
def test_mobilebert_through_the_engine_equals_its_numpy_forward(tmp_path, variant):
    """The engine runs a MobileBERT classifier from its own names with the settings from its
    config: with an ideal device and perfect converters its floating-point baseline is the
    accuracy of the NumPy forward written from transformers' code (the labels are that forward's
    predictions, so the baseline is 1 exactly), and every trial is within two sequences of it. The
    padding token's embedding row is not zero, so a trigram embedding that did not read the
    padding after a row's last token would move the baseline. With "no_norm", sentence pairs too."""
    rng = np.random.default_rng(18)
    hf = mobilebert_classifier(rng, **MOBILEBERT[variant])
    assert hf._sd["mobilebert.embeddings.word_embeddings.weight"][0].any()
    tok = padded_tokens(rng, vocab=50)
    # Re-centre the classifier on the vectors it reads so the predictions spread over the classes.
    pooled = mobilebert_forward(hf, tok, pooled=True)
    w = hf._sd["classifier.weight"].astype(np.float64) / pooled.std(0).mean()
    hf._sd["classifier.weight"], hf._sd["classifier.bias"] = w.astype(np.float32), (-w @ pooled.mean(0)).astype(np.float32)
    logits = mobilebert_forward(hf, tok)
    pred = np.argmax(logits, axis=1)
    assert len(set(pred)) == 3
    top2 = np.sort(logits, axis=1)[:, -2:]
    assert np.all(top2[:, 1] - top2[:, 0] > 1e-3), "a near tie would leave the prediction to rounding"
    r = aimc.transformer(hf, tok, pred, times=["1h", "1y"], trials=4, backend="cpu", out=str(tmp_path / variant), quiet=True, **IDEAL)
    assert r.fp_baseline == 1.0
    assert r.data["config"]["transformer"]["norm"] == hf.config.normalization_type
    for p in r.points:
        assert all(v >= 1.0 - 2 / len(tok) - 1e-12 for v in p["per_trial"]), p["per_trial"]
    if variant == "no_norm":
        hf._sd["mobilebert.embeddings.token_type_embeddings.weight"][1] *= 6.0  # a second segment that matters
        tok, types = pairs(rng, vocab=50)
        pred = np.argmax(mobilebert_forward(hf, tok, types=types), axis=1)
        assert np.any(pred != np.argmax(mobilebert_forward(hf, tok), axis=1))
        r = aimc.transformer(hf, tok, pred, times=["1h"], trials=2, backend="cpu", out=str(tmp_path / "pairs"), quiet=True,
                             token_type_ids=types, **IDEAL)
        assert r.fp_baseline == 1.0 and r.data["config"]["transformer"]["segment_sep"] == 3


@pytest.mark.parametrize("variant", list(MOBILEBERT))
def test_matches_hugging_face_mobilebert_forward(tmp_path, variant):
    """transformers' own MobileBertForSequenceClassification, randomly initialised at a small
    size (its norms' weights and the padding row drawn too, as training would leave them): the
    NumPy forward above, and the engine's baseline, on single sequences and on sentence pairs
    with transformers' token_type_ids."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    small = dict(vocab_size=50, hidden_size=32, embedding_size=8, intra_bottleneck_size=16, num_attention_heads=4, intermediate_size=32,
                 num_hidden_layers=2, num_feedforward_networks=3, max_position_embeddings=16, num_labels=3, initializer_range=0.2)
    net = transformers.MobileBertForSequenceClassification(transformers.MobileBertConfig(**{**small, **MOBILEBERT[variant]})).eval()
    with torch.no_grad():
        for name, v in net.state_dict().items():
            if name.endswith("LayerNorm.weight"):
                v.copy_(1 + 0.2 * torch.randn(v.shape))
            elif name.endswith("LayerNorm.bias"):
                v.copy_(0.1 * torch.randn(v.shape))
        net.mobilebert.embeddings.word_embeddings.weight[net.config.pad_token_id] = torch.randn(net.config.embedding_size)
    fake = type(type(net).__name__, (), {"config": net.config, "state_dict": lambda self: {k: v.numpy() for k, v in net.state_dict().items()}})()
    rng = np.random.default_rng(19)
    pad = net.config.pad_token_id
    for what, (tok, types) in (("single", (padded_tokens(rng, vocab=50), None)), ("pairs", pairs(rng, vocab=50))):
        with torch.no_grad():
            # Re-centre the classifier so the predictions spread over the classes.
            pooled = mobilebert_forward(fake, tok, pooled=True, types=types)
            w = net.classifier.weight.double() / pooled.std(0).mean()
            net.classifier.weight.copy_(w)
            net.classifier.bias.copy_(-w @ torch.as_tensor(pooled.mean(0)))
            ids = torch.as_tensor(tok)
            kw = {} if types is None else {"token_type_ids": torch.as_tensor(types)}
            want = net(input_ids=ids, attention_mask=(ids != pad).long(), **kw).logits.double().numpy()
        assert np.allclose(mobilebert_forward(fake, tok, types=types), want, atol=1e-4)
        top2 = np.sort(want, axis=1)[:, -2:]
        assert np.all(top2[:, 1] - top2[:, 0] > 1e-3), "a near tie would leave the prediction to rounding"
        assert len(set(np.argmax(want, axis=1))) > 1
        r = aimc.transformer(net, tok, np.argmax(want, axis=1), times=["1h"], trials=2, backend="cpu", out=str(tmp_path / what),
                             quiet=True, token_type_ids=types, **IDEAL)
        assert r.fp_baseline == 1.0


# ---- Hugging Face GPT-2, a causal language model ----


def gpt2_lm(rng, tied=True, layers=2, d=8, heads=2, vocab=12, positions=16, **config):
    """A GPT2LMHeadModel state dict under transformers' names, NumPy arrays standing in for tensors:
    Conv1D weights stored [in, out], the causal-mask buffers older versions save, lm_head tied to
    wte (the same array) or its own."""
    c = HFConfig("gpt2", **{**dict(n_embd=d, n_head=heads, n_layer=layers, n_positions=positions, vocab_size=vocab, pad_token_id=None,
                                   activation_function="gelu_new", layer_norm_epsilon=1e-5, scale_attn_weights=True,
                                   scale_attn_by_inverse_layer_idx=False), **config})
    conv = lambda i, o: (rng.normal(size=(i, o)) / math.sqrt(i)).astype(np.float32)
    vec = lambda n, s=0.1: (s * rng.normal(size=n)).astype(np.float32)
    sd = {"transformer.wte.weight": rng.normal(size=(vocab, d)).astype(np.float32),
          "transformer.wpe.weight": (0.5 * rng.normal(size=(positions, d))).astype(np.float32)}
    for n in range(layers):
        p = f"transformer.h.{n}."
        sd[p + "ln_1.weight"], sd[p + "ln_1.bias"] = 1 + vec(d, 0.2), vec(d)
        sd[p + "attn.bias"] = np.tril(np.ones((positions, positions), np.float32))[None, None]
        sd[p + "attn.c_attn.weight"], sd[p + "attn.c_attn.bias"] = 2 * conv(d, 3 * d), vec(3 * d)
        sd[p + "attn.c_proj.weight"], sd[p + "attn.c_proj.bias"] = conv(d, d), vec(d)
        sd[p + "ln_2.weight"], sd[p + "ln_2.bias"] = 1 + vec(d, 0.2), vec(d)
        sd[p + "mlp.c_fc.weight"], sd[p + "mlp.c_fc.bias"] = conv(d, 4 * d), vec(4 * d)
        sd[p + "mlp.c_proj.weight"], sd[p + "mlp.c_proj.bias"] = conv(4 * d, d), vec(d)
    sd["transformer.ln_f.weight"], sd["transformer.ln_f.bias"] = 1 + vec(d, 0.2), vec(d)
    sd["lm_head.weight"] = sd["transformer.wte.weight"] if tied else rng.normal(size=(vocab, d)).astype(np.float32)
    return type("GPT2LMHeadModel", (), {"config": c, "state_dict": lambda self: dict(sd), "_sd": sd})()


def gpt2_forward(hf, tokens, head="lm_head.weight"):
    """transformers' GPT2LMHeadModel in NumPy (float64), per row of unpadded tokens: h = wte[ids] +
    wpe[0..n); per block h += c_proj(attn(ln_1 h)), h += c_proj(gelu_new(c_fc(ln_2 h))) with
    Conv1D y = x W + b and causal softmax attention scaled 1/sqrt(d_head); ln_f; logits = h headᵀ
    (lm_head, or a sequence classifier's score) on every token."""
    t = {k: v.astype(np.float64) for k, v in hf._sd.items()}
    c = hf.config
    d, heads, eps = c.n_embd, c.n_head, c.layer_norm_epsilon
    gelu_new = ACTS["gelu"]
    out = []
    for row in tokens:
        row = np.asarray(row)
        h = t["transformer.wte.weight"][row] + t["transformer.wpe.weight"][:len(row)]
        for n in range(c.n_layer):
            p = f"transformer.h.{n}."
            a = _ln(h, t[p + "ln_1.weight"], t[p + "ln_1.bias"], eps) @ t[p + "attn.c_attn.weight"] + t[p + "attn.c_attn.bias"]
            o = _heads_softmax(a[:, :d], a[:, d:2 * d], a[:, 2 * d:], heads, causal=True)
            h = h + o @ t[p + "attn.c_proj.weight"] + t[p + "attn.c_proj.bias"]
            m = gelu_new(_ln(h, t[p + "ln_2.weight"], t[p + "ln_2.bias"], eps) @ t[p + "mlp.c_fc.weight"] + t[p + "mlp.c_fc.bias"])
            h = h + m @ t[p + "mlp.c_proj.weight"] + t[p + "mlp.c_proj.bias"]
        h = _ln(h, t["transformer.ln_f.weight"], t["transformer.ln_f.bias"], eps)
        out.append(h @ t[head].T)
    return out


def perplexity_of(tokens, logits):
    """exp of the mean -ln softmax(logits[i])[tokens[i + 1]] over every row's positions, and the hits."""
    nll, hits, count = 0.0, 0, 0
    for row, z in zip(tokens, logits):
        for i in range(len(z) - 1):
            nll += np.log(np.exp(z[i] - z[i].max()).sum()) + z[i].max() - z[i][row[i + 1]]
            hits += int(np.argmax(z[i]) == row[i + 1])
            count += 1
    return math.exp(nll / count), hits / count


@pytest.mark.parametrize("tied", [True, False])
def test_gpt2_through_the_engine_equals_its_numpy_forward(tmp_path, tied):
    """from_torch maps GPT2LMHeadModel (Conv1D weights transposed, the mask buffers skipped, a tied
    lm_head left for the engine to tie, an untied one written); aimc.language_model's
    floating-point perplexity is the NumPy GPT-2's, and ideal crossbars stay within f32 error."""
    rng = np.random.default_rng(9)
    hf = gpt2_lm(rng, tied=tied)
    m = aimc.from_torch(hf)
    assert m.settings == {"heads": 2, "norm_first": True, "activation": "gelu", "layer_norm_eps": 1e-5, "task": "next_token", "causal": True}
    assert ("lm_head.weight" in m.tensors) is not tied and m.classes == 12 and m.positions == "learned"
    assert m.tensors["encoder.layers.0.self_attn.in_proj_weight"].shape == (24, 8)
    tok = rng.integers(0, 12, size=(10, 16))
    ppl, acc = perplexity_of(tok, gpt2_forward(hf, tok))
    r = aimc.language_model(m, tok, times=["1h"], trials=2, backend="cpu", out=str(tmp_path / "ppl"), quiet=True, tail_above=ppl / 2, **IDEAL)
    assert abs(r.points[0]["fp"] / ppl - 1) < 1e-9
    assert all(abs(v / ppl - 1) < 1e-3 for v in r.points[0]["per_trial"])
    # The tail risk of a perplexity is above a value: every trial here.
    assert r.points[0]["tail"]["above"] and r.points[0]["tail"]["probability"] == 1.0
    r = aimc.language_model(m, tok, metric="accuracy", times=["1h"], trials=2, backend="cpu", out=str(tmp_path / "acc"), quiet=True, **IDEAL)
    assert r.points[0]["fp"] == acc
    # The test-set interval over the 10 sequences, in the per-point table.
    row = r.per_point()
    row = row[0] if isinstance(row, list) else row.iloc[0].to_dict()
    assert row["test_ci_lo"] < row["mean"] < row["test_ci_hi"] <= 1.0


def test_gpt2_sequence_classifier_through_the_engine_equals_its_numpy_forward(tmp_path):
    """from_torch maps GPT2ForSequenceClassification: the same blocks, `score` (no bias) as the head
    on the last non-padding token (pooling "last"); rows padded with pad_token_id classify as their
    unpadded tokens, and aimc's floating-point accuracy is the NumPy GPT-2's."""
    rng = np.random.default_rng(12)
    lm = gpt2_lm(rng, pad_token_id=0)
    sd = {k: v for k, v in lm._sd.items() if k != "lm_head.weight"}
    sd["score.weight"] = (2 * rng.normal(size=(3, 8))).astype(np.float32)
    hf = type("GPT2ForSequenceClassification", (), {"config": lm.config, "state_dict": lambda self: dict(sd), "_sd": sd})()
    m = aimc.from_torch(hf)
    assert m.settings == {"heads": 2, "norm_first": True, "activation": "gelu", "layer_norm_eps": 1e-5, "causal": True, "pooling": "last",
                          "pad_id": 0}
    assert m.classes == 3 and "classifier.weight" in m.tensors
    lengths = [1 + (5 * r) % 16 for r in range(24)]
    tok = np.zeros((24, 16), np.int64)
    for r, n in enumerate(lengths):
        tok[r, :n] = rng.integers(1, 12, size=n)
    pred = np.array([np.argmax(z[-1]) for z in gpt2_forward(hf, [row[:n] for row, n in zip(tok, lengths)], head="score.weight")])
    labels = np.where(np.arange(24) % 4 == 0, (pred + 1) % 3, pred)
    r = aimc.transformer(m, tok, labels, times=["1h"], trials=2, backend="cpu", out=str(tmp_path / "cls"), quiet=True, **IDEAL)
    assert r.points[0]["fp"] == 18 / 24
    assert r.data["config"]["transformer"]["pooling"] == "last"


def test_gpt2_configs_beyond_its_forward_are_refused():
    rng = np.random.default_rng(10)
    with pytest.raises(ValueError, match="scale_attn_by_inverse_layer_idx"):
        aimc.from_torch(gpt2_lm(rng, scale_attn_by_inverse_layer_idx=True))
    with pytest.raises(ValueError, match="activation_function"):
        aimc.from_torch(gpt2_lm(rng, activation_function="quick_gelu"))
    hf = gpt2_lm(rng)
    hf._sd["transformer.h.0.attn.rotary.weight"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="rotary"):
        aimc.from_torch(hf)
    with pytest.raises(ValueError, match="GPT2LMHeadModel or GPT2ForSequenceClassification"):
        aimc.from_torch(type("GPT2Model", (), {"config": gpt2_lm(rng).config, "state_dict": lambda self: {}})())


def test_gpt2_matches_transformers(tmp_path):
    """The same against transformers' own GPT2LMHeadModel: its loss on the tokens (the mean
    next-token cross-entropy) gives aimc's floating-point perplexity."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=40, n_positions=24, n_embd=16, n_layer=2, n_head=4, initializer_range=0.2)
    net = transformers.GPT2LMHeadModel(cfg).eval()
    tok = np.random.default_rng(11).integers(0, 40, size=(6, 24))
    with torch.no_grad():
        loss = net(torch.as_tensor(tok), labels=torch.as_tensor(tok)).loss.double().item()
    m = aimc.from_torch(net)
    r = aimc.language_model(m, tok, times=["1h"], trials=2, backend="cpu", out=str(tmp_path / "hf"), quiet=True, **IDEAL)
    assert abs(math.log(r.points[0]["fp"]) - loss) < 1e-5, (math.log(r.points[0]["fp"]), loss)


def hf_gpt2_classifier(seed, rows_seed):
    """transformers' own GPT2ForSequenceClassification (vocabulary 40, 24 positions, width 16, 2
    layers, 4 heads, 3 classes, pad_token_id 0) drawn from `seed`, and 12 rows of 2 to 23 tokens
    padded with 0 to 24."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(vocab_size=40, n_positions=24, n_embd=16, n_layer=2, n_head=4, initializer_range=0.2, num_labels=3,
                                  pad_token_id=0)
    gen = np.random.default_rng(rows_seed)
    tok = np.zeros((12, 24), np.int64)
    for r in range(12):
        n = 2 + (7 * r) % 22
        tok[r, :n] = gen.integers(1, 40, size=n)
    return transformers.GPT2ForSequenceClassification(cfg).eval(), tok


def test_gpt2_sequence_classifier_matches_transformers(tmp_path):
    """The same against transformers' own GPT2ForSequenceClassification on padded rows: its
    predictions (the score on the last token that is not pad_token_id) are aimc's floating-point
    ones, so labels set from them give exactly the accuracy they were set to."""
    torch = pytest.importorskip("torch")
    net, tok = hf_gpt2_classifier(seed=1, rows_seed=13)
    with torch.no_grad():
        pred = net(torch.as_tensor(tok), attention_mask=torch.as_tensor((tok != 0).astype(np.int64))).logits.argmax(-1).numpy()
    labels = np.where(np.arange(12) % 3 == 0, (pred + 1) % 3, pred)
    r = aimc.transformer(aimc.from_torch(net), tok, labels, times=["1h"], trials=2, backend="cpu", out=str(tmp_path / "hf"), quiet=True, **IDEAL)
    assert r.points[0]["fp"] == 8 / 12


def test_gpt2_sequence_classifier_file_runs_as_from_torch(tmp_path):
    """The model.safetensors that GPT2ForSequenceClassification.save_pretrained writes runs
    through the CLI's GPT-2 reader (`transformer.` names, Conv1D weights, `score` as the head) to
    the same floating-point accuracy and per-trial accuracies as the live model through from_torch."""
    net, tok = hf_gpt2_classifier(seed=2, rows_seed=14)
    net.save_pretrained(str(tmp_path / "hf"), safe_serialization=True)
    labels = np.random.default_rng(15).integers(0, 3, size=12)
    live = aimc.transformer(net, tok, labels, times=["1d"], trials=3, backend="cpu", out=str(tmp_path / "live"), quiet=True)
    m = aimc.from_torch(net)
    from_file = aimc.transformer(str(tmp_path / "hf" / "model.safetensors"), tok, labels, times=["1d"], trials=3, backend="cpu",
                                 out=str(tmp_path / "file"), quiet=True, settings=m.settings)
    assert live.points[0]["fp"] == from_file.points[0]["fp"]
    assert live.points[0]["per_trial"] == from_file.points[0]["per_trial"]


@pytest.mark.parametrize("model_type", ["bert", "electra", "distilbert", "mobilebert"])
def test_a_bert_with_learned_input_ranges_evaluates_clipped(tmp_path, model_type):
    """A Hugging Face BERT-family classifier prepared with aimc.torch's input ranges: its state
    dict carries each Linear's range (`...query.input_range`, the head's), the engine clips every
    layer's inputs by them, and its floating-point baseline is the prepared model's own eval-mode
    forward (which clips too): every prediction agrees, where the network without its ranges
    disagrees on some."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    import aimc.torch as at

    torch.manual_seed(0)
    small = dict(vocab_size=12, num_labels=3, initializer_range=0.5)
    if model_type == "distilbert":
        net = transformers.DistilBertForSequenceClassification(
            transformers.DistilBertConfig(dim=8, n_layers=2, n_heads=2, hidden_dim=16, max_position_embeddings=16, **small))
    elif model_type == "mobilebert":
        # The trigram embedding projection, the bottlenecks and a stacked pair: every kind of
        # MobileBERT crossbar layer has its range.
        net = transformers.MobileBertForSequenceClassification(transformers.MobileBertConfig(
            hidden_size=16, embedding_size=8, intra_bottleneck_size=8, num_attention_heads=2, intermediate_size=16, num_hidden_layers=2,
            num_feedforward_networks=2, max_position_embeddings=16, **small))
    else:
        cls, model = {"bert": (transformers.BertConfig, transformers.BertForSequenceClassification),
                      "electra": (transformers.ElectraConfig, transformers.ElectraForSequenceClassification)}[model_type]
        extra = dict(embedding_size=8) if model_type == "electra" else {}
        net = model(cls(hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16, max_position_embeddings=16,
                        **small, **extra))
    net = net.eval()
    tok = padded_tokens(np.random.default_rng(14))
    ids = torch.as_tensor(tok)
    with torch.no_grad():
        plain = net(input_ids=ids, attention_mask=(ids != 0).long()).logits.double().numpy()
    at.prepare(net, device="none", input_range={"init_value": 0.5, "init_from_data": 0})
    net.eval()
    assert any(k.endswith("input_range") for k in net.state_dict())
    with torch.no_grad():
        clipped = net(input_ids=ids, attention_mask=(ids != 0).long()).logits.double().numpy()
    labels = np.argmax(clipped, axis=1)
    assert np.any(np.argmax(plain, axis=1) != labels), "the ranges change some predictions"
    top2 = np.sort(clipped, axis=1)[:, -2:]
    assert np.all(top2[:, 1] - top2[:, 0] > 1e-3), "a near tie would leave the prediction to rounding"
    r = aimc.transformer(net, tok, labels, times=["1h"], trials=2, backend="cpu", out=str(tmp_path / "r"), quiet=True, **IDEAL)
    assert r.fp_baseline == 1.0
    assert all(c == len(tok) for c in r.points[0]["per_trial_correct"])


def test_an_aihwkit_analog_bert_is_read_by_its_layers_weights_and_ranges(tmp_path):
    """aihwkit's convert_to_analog keeps module names and puts AnalogLinear layers in place of
    nn.Linear: from_torch reads each one's get_weights() (scales applied) and its tiles' input
    ranges under the Linear's names, and none of its tile state."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")

    class Tile(torch.nn.Module):
        def __init__(self, r):
            super().__init__()
            self.input_range = torch.nn.Parameter(torch.tensor([r]))
            self.shared_weights = torch.nn.Parameter(torch.zeros(2, 2))   # tile state, not read

    class AnalogLinear(torch.nn.Module):
        def __init__(self, lin, r):
            super().__init__()
            self.analog_module = Tile(r)
            self._w, self._b = lin.weight.detach().clone() * 2.0, lin.bias.detach().clone()

        def get_weights(self):
            return self._w, self._b

    torch.manual_seed(0)
    config = transformers.BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                                     max_position_embeddings=16, vocab_size=12, num_labels=3)
    net = transformers.BertForSequenceClassification(config).eval()
    attn = net.bert.encoder.layer[0].attention.self
    want = attn.query.weight.detach().numpy() * 2.0
    attn.query = AnalogLinear(attn.query, 0.7)
    model = aimc.from_torch(net)
    t = model.tensors
    np.testing.assert_allclose(t["bert.encoder.layer.0.attention.self.query.weight"], want)
    assert t["bert.encoder.layer.0.attention.self.query.input_range"].tolist() == pytest.approx([0.7])
    assert not any("analog_module" in k for k in t)
    r = aimc.transformer(net, padded_tokens(np.random.default_rng(3)), np.zeros(20, dtype=int), times=["1h"], trials=2, backend="cpu",
                         out=str(tmp_path / "r"), quiet=True, **IDEAL)
    assert r.points[0]["per_trial_correct"]


def test_a_ranged_bert_runs_under_the_standard_hwa_preset(tmp_path):
    """The preset's one tile per layer along the outputs is the model's largest layer (here the
    feed-forward's 16), and its learned ranges come from the prepared model."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    import aimc.torch as at
    from test_input_range import preset

    torch.manual_seed(0)
    net = transformers.BertForSequenceClassification(transformers.BertConfig(
        hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16, max_position_embeddings=16, vocab_size=12,
        num_labels=3)).eval()
    tok = padded_tokens(np.random.default_rng(2))
    with pytest.raises(ValueError, match=r"pre_post\.input_range is enabled, but the model holds no input ranges"):
        aimc.transformer(net, tok, np.zeros(len(tok), dtype=int), times=["1h"], trials=2, backend="cpu", quiet=True,
                         out=str(tmp_path / "none"), rpu_config=preset())
    at.prepare(net, device="none", input_range=True)
    r = aimc.transformer(net, tok, np.zeros(len(tok), dtype=int), times=["1h"], trials=2, backend="cpu", quiet=True,
                         out=str(tmp_path / "r"), rpu_config=preset())
    assert r.data["config"]["tile"]["max_out"] == 16
