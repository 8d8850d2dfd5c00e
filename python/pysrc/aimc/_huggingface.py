"""Hugging Face models as aimc's transformer reads them (`from_torch` of a transformers model):
BERT, RoBERTa, XLM-R, ELECTRA, DistilBERT and MobileBERT sequence classifiers and
question-answering models under the names docs/transformer-names.md lists, with their
`[transformer]` settings from the model's config, and GPT-2 language models and sequence
classifiers under PyTorch's names. aihwkit's analog layers inside such a model are read by their
logical weights and input ranges. Every mapping refuses, by config field or tensor name, what the
engine's forward does not compute."""

from __future__ import annotations

import re

import numpy as np

from ._tensors import _ANALOG_LINEAR, TransformerModel, _analog_ranges, _analog_weights, _numpy

# The Hugging Face sequence classifiers from_torch maps, by config.model_type. BERT's, RoBERTa's
# and ELECTRA's state dicts keep BERT's names (the engine's name table reads them,
# docs/transformer-names.md); MobileBERT's keep their own (the engine reads its bottlenecks,
# stacked feed-forward networks and trigram embedding by those names); DistilBERT's are renamed
# to PyTorch's nn.TransformerEncoder names. The settings come from `model.config`.
_HF_CLASSIFIERS = {"bert": "BertForSequenceClassification", "roberta": "RobertaForSequenceClassification",
                   "xlm-roberta": "XLMRobertaForSequenceClassification", "electra": "ElectraForSequenceClassification",
                   "distilbert": "DistilBertForSequenceClassification", "mobilebert": "MobileBertForSequenceClassification"}
# The config's activation (transformers' ACT2FN names) → transformer.activation. "gelu" is the
# erf form; gelu_new, gelu_pytorch_tanh and gelu_fast are the tanh form (gelu_fast writes √(2/π)
# as 0.7978845608, 3e-11 from it: below f32's resolution).
_HF_ACTIVATIONS = {"gelu": "gelu_exact", "gelu_new": "gelu", "gelu_pytorch_tanh": "gelu", "gelu_fast": "gelu", "relu": "relu",
                   "silu": "silu", "swish": "silu", "tanh": "tanh"}
# Index buffers a state dict may hold beside its weights (skipped by name, never by dtype).
_HF_INDEX_BUFFERS = ("position_ids", "token_type_ids")
# The Hugging Face causal models from_torch maps, by config.model_type: the language model (for
# aimc.language_model) and the sequence classifier (for aimc.transformer).
_HF_LANGUAGE_MODELS = {"gpt2": "GPT2LMHeadModel"}
# The extractive question-answering heads from_torch maps (`qa_outputs`, start and end logits per
# token), by config.model_type: the encoders of _HF_CLASSIFIERS under a span head.
_HF_QUESTION_ANSWERING = {"bert": "BertForQuestionAnswering", "roberta": "RobertaForQuestionAnswering",
                          "xlm-roberta": "XLMRobertaForQuestionAnswering", "electra": "ElectraForQuestionAnswering",
                          "distilbert": "DistilBertForQuestionAnswering", "mobilebert": "MobileBertForQuestionAnswering"}
_HF_CAUSAL_CLASSIFIERS = {"gpt2": "GPT2ForSequenceClassification"}


def _gpt2(module) -> TransformerModel:
    """A Hugging Face GPT-2 language model (`GPT2LMHeadModel`; Radford et al., "Language models are
    unsupervised multitask learners", 2019) as a `TransformerModel` under PyTorch's
    nn.TransformerEncoder names, for `language_model`: wte and wpe as the token and learned
    position tables; per block pre-LN (ln_1 before attention, ln_2 before the MLP) with causal
    softmax attention scaled 1/sqrt(d_head), c_attn's Q, K, V with their biases, c_proj, and the MLP
    c_fc, activation_function (gelu_new: the tanh form), c_proj; ln_f as the final norm; lm_head,
    which GPT-2 ties to wte (left out then: aimc ties it, logits = wte h with no bias). A
    `GPT2ForSequenceClassification` runs the same blocks for `transformer`: its `score` (no bias)
    is the head, on the last non-padding token (`pooling="last"`: transformers' last token that is
    not pad_token_id; the last token of the row without one). GPT-2's
    Conv1D layers store W as [in, out] (y = x W + b), so each is transposed to nn.Linear's
    [out, in]. The causal-mask buffers (attn.bias, attn.masked_bias) are skipped. What the config
    allows beyond that forward is refused by field name."""
    kind = type(module).__name__
    cfg = module.config
    lm, classifier = _HF_LANGUAGE_MODELS[cfg.model_type], _HF_CAUSAL_CLASSIFIERS[cfg.model_type]
    if kind not in (lm, classifier):
        raise ValueError(f"from_torch: {kind} is not {lm} or {classifier}; aimc scores GPT-2's next-token predictions or its "
                         "sequence classes, so give the model with its language-model or classification head")

    def field(name, default=None):
        return getattr(cfg, name, default)

    refuse = {"scale_attn_weights": (True, "attention scores scaled by 1/sqrt(d_head)"),
              "scale_attn_by_inverse_layer_idx": (False, "no extra 1/(layer + 1) scale of the scores"),
              "add_cross_attention": (False, "self-attention only")}
    for name, (want, what) in refuse.items():
        if bool(field(name, want)) != want:
            raise ValueError(f"from_torch: {kind}.config.{name} = {field(name)!r}; aimc runs GPT-2 with {what} ({name} = {want})")
    act = field("activation_function")
    if not isinstance(act, str) or act not in _HF_ACTIVATIONS:
        raise ValueError(f"from_torch: {kind}.config.activation_function = {act!r}; aimc maps {', '.join(sorted(_HF_ACTIVATIONS))}")
    sd = {name: t for name, t in module.state_dict().items() if not re.fullmatch(r"transformer\.h\.\d+\.attn\.(bias|masked_bias)", name)}
    fixed = {"transformer.wte.weight": "embedding.weight", "transformer.wpe.weight": "pos_embedding.weight",
             "transformer.ln_f.weight": "encoder.norm.weight", "transformer.ln_f.bias": "encoder.norm.bias"}
    # (GPT-2 part, aimc part, Conv1D to transpose)
    per_layer = {"ln_1": ("norm1", False), "attn.c_attn": ("self_attn.in_proj", True), "attn.c_proj": ("self_attn.out_proj", True),
                 "ln_2": ("norm2", False), "mlp.c_fc": ("linear1", True), "mlp.c_proj": ("linear2", True)}
    tensors = {}
    for name, t in sd.items():
        a = _numpy(t)
        if name in fixed:
            tensors[fixed[name]] = a
            continue
        if name == "lm_head.weight":
            continue
        if name == "lm_head.input_range":
            # aimc.torch's learned input range of the head (tied to the embedding or not).
            tensors[name] = a
            continue
        if name in ("score.weight", "score.input_range") and kind == classifier:
            tensors[name.replace("score", "classifier")] = a
            continue
        m = re.fullmatch(r"transformer\.h\.(\d+)\.(.+)\.(weight|bias|input_range)", name)
        if m is None or m.group(2) not in per_layer:
            raise ValueError(f"from_torch: {kind}'s state dict holds {name}, which GPT-2's forward does not read")
        n, part, what = m.groups()
        target, conv = per_layer[part]
        if target == "self_attn.in_proj" and what == "input_range":
            key = f"encoder.layers.{n}.self_attn.in_proj.input_range"
        elif target == "self_attn.in_proj":
            key = f"encoder.layers.{n}.self_attn.in_proj_{what}"
        else:
            key = f"encoder.layers.{n}.{target}.{what}"
        tensors[key] = np.ascontiguousarray(a.T) if conv and what == "weight" else a
    head = sd.get("lm_head.weight")
    if head is not None and not np.array_equal(_numpy(head), tensors["embedding.weight"]):
        tensors["lm_head.weight"] = _numpy(head)
    settings = {"heads": int(field("n_head")), "norm_first": True, "activation": _HF_ACTIVATIONS[act],
                "layer_norm_eps": float(field("layer_norm_epsilon", 1e-5)), "causal": True}
    settings.update({"task": "next_token"} if kind == lm else {"pooling": "last"})
    if field("pad_token_id") is not None:
        settings["pad_id"] = int(field("pad_token_id"))
    return TransformerModel(tensors, settings, "learned")


def _is_huggingface(module) -> bool:
    """A Hugging Face transformers model: it carries a config with a model_type."""
    return isinstance(getattr(getattr(module, "config", None), "model_type", None), str)


def _from_huggingface(module) -> TransformerModel:
    """A Hugging Face encoder classifier as a `TransformerModel`, its settings from its config.
    Every family runs post-LN layers with softmax self-attention over the non-padding keys
    (padding `pad_token_id`, trailing, masked as the attention mask a tokenizer gives), learned
    absolute positions and the first token's vector into the head:

    - BERT (`BertForSequenceClassification`): token-type row 0 added (single-segment inputs),
      the CLS token through the tanh pooler into the Linear classifier.
    - RoBERTa and XLM-R (`RobertaForSequenceClassification`, `XLMRobertaForSequenceClassification`):
      BERT's layers; a token at index i has position row i + pad_token_id + 1 (transformers'
      `create_position_ids_from_input_ids`), so the table is kept from that row on; the head is
      dense, tanh, out_proj on the <s> token (no pooler).
    - ELECTRA (`ElectraForSequenceClassification`, the discriminator): BERT's layers and token
      types; the head is dense, GELU (erf), out_proj on the first token (no pooler). An embedding
      narrower than the layers (`embeddings_project`, ELECTRA-small) is refused: its LayerNorm
      acts before the projection, which aimc's embedding does not model.
    - DistilBERT (`DistilBertForSequenceClassification`): no token types, LayerNorm ε 1e-12 (fixed
      in its code); the head is pre_classifier, ReLU, classifier on the CLS token.
    - MobileBERT (`MobileBertForSequenceClassification`): its own names, BERT's positions and token
      types. The token embedding (embedding_size wide) is concatenated with its neighbours' (next,
      own, previous over the padded row; `trigram_input`) and embedding_transformation widens it to
      hidden_size; every norm is `normalization_type` ('no_norm', x·weight + bias, or
      'layer_norm': `transformer.norm`). A layer narrows its input to intra_bottleneck_size
      (`use_bottleneck`; the attention's queries and keys through their own shared bottleneck with
      `key_query_shared_bottleneck`, all of Q, K, V from the input bottleneck with
      `use_bottleneck_attention`), runs attention and num_feedforward_networks feed-forward
      networks, each with its residual and norm, and widens back with a residual from its input.
      The first token goes through the tanh pooler (`classifier_activation`; without it, straight)
      into the Linear classifier. transformers' embedding and FFN-output LayerNorms keep
      nn.LayerNorm's ε 1e-5 whatever layer_norm_eps says, so 'layer_norm' needs layer_norm_eps
      1e-5; use_bottleneck_attention with key_query_shared_bottleneck, or with an
      intra_bottleneck_size equal to hidden_size, is refused.

    A family's question-answering model (`BertForQuestionAnswering`, ...) is the same encoder
    with `qa_outputs` [2, hidden] on every token in place of the pooler and classifier
    (`task = "qa_f1"`, for `question_answering`); RoBERTa's keeps its token-type row 0 alone, as
    its tokenizers write no token types.

    What a config allows beyond that forward is refused by field name."""
    kind = type(module).__name__
    cfg = module.config
    model_type = cfg.model_type
    if model_type in _HF_LANGUAGE_MODELS:
        return _gpt2(module)
    if model_type not in _HF_CLASSIFIERS:
        raise ValueError(f"from_torch: {kind} is a Hugging Face {model_type!r} model; aimc maps the sequence classifiers of BERT, "
                         "RoBERTa, XLM-R, ELECTRA, DistilBERT and MobileBERT. Export other weights under PyTorch nn.TransformerEncoder "
                         "or BERT names (docs/transformer-names.md), where their forward is that one")
    qa = kind == _HF_QUESTION_ANSWERING[model_type]
    if kind != _HF_CLASSIFIERS[model_type] and not qa:
        raise ValueError(f"from_torch: {kind} is not a sequence classifier or a question-answering model; aimc scores a "
                         f"classifier's accuracy or an answer span's F1: give a {_HF_CLASSIFIERS[model_type]} or a "
                         f"{_HF_QUESTION_ANSWERING[model_type]}, fine-tuned on your task")

    def field(name, default=None):
        return getattr(cfg, name, default)

    if field("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"from_torch: {kind}.config.position_embedding_type = {field('position_embedding_type')!r}; aimc adds "
                         "learned absolute positions ('absolute'), not relative position scores")
    for flag in ("is_decoder", "add_cross_attention"):
        if field(flag, False):
            raise ValueError(f"from_torch: {kind}.config.{flag} = True; aimc runs an encoder (bidirectional self-attention "
                             "over the non-padding tokens, no cross-attention)")
    labels = int(field("num_labels", 2))
    problem = field("problem_type")
    # transformers reads num_labels = 1 as a regression (STS-B) unless problem_type says otherwise.
    regression = not qa and labels == 1 and problem in (None, "regression")
    if not qa and not regression and (labels < 2 or problem in ("regression", "multi_label_classification")):
        raise ValueError(f"from_torch: {kind} has num_labels = {labels}, problem_type = {problem!r}; aimc scores a single-label "
                         "classifier by the argmax of its logits (num_labels >= 2, problem_type 'single_label_classification' or None) "
                         "or a regression head (num_labels = 1, problem_type 'regression' or None)")
    act_field = "activation" if model_type == "distilbert" else "hidden_act"
    act = field(act_field)
    if not isinstance(act, str) or act not in _HF_ACTIVATIONS:
        raise ValueError(f"from_torch: {kind}.config.{act_field} = {act!r}; aimc maps {', '.join(sorted(_HF_ACTIVATIONS))}")
    tensors = {}
    # aihwkit's analog layers (convert_to_analog keeps the module names): their logical weights,
    # bias and input ranges in the Linear's names, in place of their tiles' state.
    analog = {n: m for n, m in module.named_modules() if type(m).__name__ in _ANALOG_LINEAR} if hasattr(module, "named_modules") else {}
    for n, m in analog.items():
        w, b = _analog_weights(m, n, type(m).__name__)
        tensors[f"{n}.weight"], tensors[f"{n}.bias"] = w.astype(np.float32), b.astype(np.float32)
        ranges = _analog_ranges(m, n, type(m).__name__)
        if ranges is not None:
            tensors[f"{n}.input_range"] = np.asarray(ranges, dtype=np.float32)
    for name, t in module.state_dict().items():
        if name.rsplit(".", 1)[-1] in _HF_INDEX_BUFFERS or any(name.startswith(f"{n}.") for n in analog):
            continue
        floating = t.is_floating_point() if hasattr(t, "is_floating_point") else np.issubdtype(np.asarray(t).dtype, np.floating)
        if not floating:
            raise ValueError(f"from_torch: {kind}'s state dict holds {name} of dtype {t.dtype}; aimc reads floating-point weights "
                             f"(and skips the index buffers {', '.join(_HF_INDEX_BUFFERS)})")
        tensors[name] = _numpy(t)
    pad = field("pad_token_id")
    settings = {"heads": int(field("n_heads" if model_type == "distilbert" else "num_attention_heads")), "norm_first": False,
                "activation": _HF_ACTIVATIONS[act], "pooling": "cls"}
    if model_type == "bert":
        settings.update(head_activation="gelu_exact", layer_norm_eps=float(field("layer_norm_eps", 1e-12)))
    elif model_type == "electra":
        if field("embedding_size", field("hidden_size")) != field("hidden_size"):
            raise ValueError(f"from_torch: {kind}.config.embedding_size = {field('embedding_size')} but hidden_size = {field('hidden_size')}: "
                             "ELECTRA normalises the narrower embedding before embeddings_project widens it, which aimc's embedding "
                             "(LayerNorm at the layers' width) does not model; ELECTRA-base and -large have equal sizes")
        tensors = _bert_like_names(tensors, kind, None)
        settings.update(head_activation="gelu_exact", layer_norm_eps=float(field("layer_norm_eps", 1e-12)))
    elif model_type == "distilbert":
        # sinusoidal_pos_embds writes its sinusoids into position_embeddings.weight: the table as stored.
        tensors = _distilbert_names(tensors, kind)
        settings.update(head_activation="relu", layer_norm_eps=1e-12)
    elif model_type == "mobilebert":
        tensors = _mobilebert_tensors(tensors, kind, cfg)
        settings.update(head_activation="gelu_exact", layer_norm_eps=float(field("layer_norm_eps", 1e-12)),
                        norm=field("normalization_type", "no_norm"))
    else:
        if pad is None:
            raise ValueError(f"from_torch: {kind}.config.pad_token_id is None; RoBERTa's positions count from it (row i + pad + 1)")
        tensors = _bert_like_names(tensors, kind, int(pad) + 1)
        # RoBERTa's tokenizers write no token types: every token reads row 0, a second segment
        # (question answering's context) too, so only that row is kept.
        for name in [n for n in tensors if n.endswith("token_type_embeddings.weight")]:
            tensors[name] = tensors[name][:1]
        settings.update(head_activation="tanh", layer_norm_eps=float(field("layer_norm_eps", 1e-5)))
    if pad is not None:
        settings["pad_id"] = int(pad)
    if regression:
        # One output per sequence scored against real targets (GLUE's STS-B): Pearson's r unless
        # transformer(metric="spearman") asks for the rank correlation.
        settings["task"] = "regress_pearson"
    if qa:
        # The span head on every token (qa_outputs [2, hidden]); the F1 unless question_answering
        # asks for the exact match.
        settings["task"] = "qa_f1"
        del settings["pooling"], settings["head_activation"]
    return TransformerModel(tensors, settings, "learned")


def _bert_like_names(tensors: dict, kind: str, first_position: int | None) -> dict:
    """RoBERTa's or ELECTRA's state dict under BERT's names: the head's dense and out_proj as an
    nn.Sequential's Linear layers 0 and 2; with `first_position` (RoBERTa: pad + 1, where a
    sequence's first token reads the table), the position table from that row."""
    out = {}
    for name, t in tensors.items():
        if first_position is not None and name.endswith("embeddings.position_embeddings.weight"):
            if t.shape[0] <= first_position:
                raise ValueError(f"from_torch: {kind}'s {name} has {t.shape[0]} rows; its positions start at row pad_token_id + 1 = {first_position}")
            out[name] = t[first_position:]
        elif name.startswith("classifier.dense."):
            out["classifier.0." + name.rsplit(".", 1)[-1]] = t
        elif name.startswith("classifier.out_proj."):
            out["classifier.2." + name.rsplit(".", 1)[-1]] = t
        else:
            out[name] = t
    return out


def _mobilebert_tensors(tensors: dict, kind: str, cfg) -> dict:
    """MobileBERT's state dict as the engine reads it (its own names), once its config is one the
    engine's forward runs. Without `trigram_input` and with an embedding as wide as the layers,
    transformers adds the embedding as it is and never applies embedding_transformation (which
    the state dict still holds): that Linear is left out, so that the engine does not apply it."""
    def field(name, default=None):
        return getattr(cfg, name, default)

    norm = field("normalization_type", "no_norm")
    if norm not in ("no_norm", "layer_norm"):
        raise ValueError(f"from_torch: {kind}.config.normalization_type = {norm!r}; aimc runs MobileBERT's 'no_norm' (x·weight + bias) "
                         "and 'layer_norm'")
    eps = float(field("layer_norm_eps", 1e-12))
    if norm == "layer_norm" and eps != 1e-5:
        raise ValueError(f"from_torch: {kind}.config.layer_norm_eps = {eps:g} with normalization_type 'layer_norm': transformers' "
                         "MobileBERT builds its embedding and FFN-output LayerNorms with nn.LayerNorm's ε 1e-5 whatever layer_norm_eps "
                         "says and the others with layer_norm_eps, while aimc runs one transformer.layer_norm_eps; a model whose "
                         "layer_norm_eps is 1e-5 (or normalization_type 'no_norm', MobileBERT's own) runs as transformers runs it")
    ffns = field("num_feedforward_networks", 1)
    if not isinstance(ffns, int) or ffns < 1:
        raise ValueError(f"from_torch: {kind}.config.num_feedforward_networks = {ffns!r}; a MobileBERT layer runs at least one "
                         "feed-forward network (its intermediate and output)")
    if field("use_bottleneck", True) and field("use_bottleneck_attention", False) and field("key_query_shared_bottleneck", False):
        raise ValueError(f"from_torch: {kind}.config.use_bottleneck_attention = True and key_query_shared_bottleneck = True: "
                         "transformers then reads Q, K and V from the input bottleneck and leaves the shared attention bottleneck "
                         "unused, which aimc does not model; set one of the two to False (google/mobilebert-uncased shares the query "
                         "and key bottleneck, without bottleneck attention)")
    if field("use_bottleneck", True) and field("use_bottleneck_attention", False) and field("intra_bottleneck_size") == field("hidden_size"):
        raise ValueError(f"from_torch: {kind}.config.use_bottleneck_attention = True with intra_bottleneck_size = hidden_size = "
                         f"{field('hidden_size')}: aimc tells attention on the input bottleneck by the width of V's input "
                         "(intra_bottleneck_size, not hidden_size), which these equal sizes do not show, and would run Q, K and V on "
                         "the layer's input; it runs such a model where intra_bottleneck_size differs from hidden_size")
    if not field("trigram_input", True) and field("embedding_size") == field("hidden_size"):
        tensors = {k: t for k, t in tensors.items() if ".embeddings.embedding_transformation." not in "." + k}
    return tensors


def _distilbert_names(tensors: dict, kind: str) -> dict:
    """DistilBERT's state dict under PyTorch's nn.TransformerEncoder names: Q, K and V stacked
    into in_proj, sa_layer_norm as norm1 and output_layer_norm as norm2 (both post-LN), the head's
    pre_classifier and classifier as an nn.Sequential's Linear layers 0 and 2."""
    fixed = {"distilbert.embeddings.word_embeddings.weight": "embedding.weight",
             "distilbert.embeddings.position_embeddings.weight": "pos_embedding.weight",
             "distilbert.embeddings.LayerNorm.weight": "embed_norm.weight", "distilbert.embeddings.LayerNorm.bias": "embed_norm.bias",
             "pre_classifier.weight": "classifier.0.weight", "pre_classifier.bias": "classifier.0.bias",
             "classifier.weight": "classifier.2.weight", "classifier.bias": "classifier.2.bias",
             "qa_outputs.weight": "qa_outputs.weight", "qa_outputs.bias": "qa_outputs.bias",
             # Learned input ranges (aimc.torch's `input_range`) of the head's layers.
             "pre_classifier.input_range": "classifier.0.input_range", "classifier.input_range": "classifier.2.input_range",
             "qa_outputs.input_range": "qa_outputs.input_range"}
    per_layer = {"attention.out_lin": "self_attn.out_proj", "sa_layer_norm": "norm1", "ffn.lin1": "linear1", "ffn.lin2": "linear2",
                 "output_layer_norm": "norm2"}
    out, qkv = {}, {}
    for name, t in tensors.items():
        if name in fixed:
            out[fixed[name]] = t
            continue
        m = re.fullmatch(r"distilbert\.transformer\.layer\.(\d+)\.(.+)\.(weight|bias|input_range)", name)
        if m is None:
            raise ValueError(f"from_torch: {kind}'s state dict holds {name}, which DistilBERT's forward does not read")
        n, part, what = m.groups()
        if part in ("attention.q_lin", "attention.k_lin", "attention.v_lin"):
            qkv.setdefault((n, what), {})[part[-5]] = t
        elif part in per_layer:
            out[f"encoder.layers.{n}.{per_layer[part]}.{what}"] = t
        else:
            raise ValueError(f"from_torch: {kind}'s state dict holds {name}, which DistilBERT's forward does not read")
    for (n, what), parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise ValueError(f"from_torch: {kind}'s layer {n} lacks attention.{'/'.join(sorted({'q', 'k', 'v'} - set(parts)))}_lin.{what}")
        if what == "input_range":
            # Q, K and V read the same input; stacked, they share one range per input tile.
            if not (np.array_equal(parts["q"], parts["k"]) and np.array_equal(parts["q"], parts["v"])):
                raise ValueError(f"from_torch: {kind}'s layer {n} has input ranges q {parts['q'].tolist()}, k {parts['k'].tolist()}, "
                                 f"v {parts['v'].tolist()}; aimc stacks DistilBERT's Q, K and V, which then share one range: give them equal ones")
            out[f"encoder.layers.{n}.self_attn.in_proj.input_range"] = parts["q"]
            continue
        out[f"encoder.layers.{n}.self_attn.in_proj_{what}"] = np.concatenate([parts["q"], parts["k"], parts["v"]])
    return out
