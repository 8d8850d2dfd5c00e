"""Extractive question answering from Python: `question_answering` and `squad_features`, the
Hugging Face question-answering families through `from_torch`, their answers against
transformers' own start and end logits where it is installed, and SQuAD's character answers
mapped to token spans through a fast tokenizer."""

import math

import numpy as np
import pytest

import aimc
from test_transformer import HF_KINDS, IDEAL, hf_classifier

def qa_model(rng, model_type="bert"):
    """A Hugging Face question-answering model's state dict (NumPy arrays): the classifier's
    encoder with `qa_outputs` [2, d] in place of its pooler and classifier."""
    hf = hf_classifier(rng, model_type, kind=HF_KINDS[model_type].replace("SequenceClassification", "QuestionAnswering"), type_vocab_size=2)
    for k in [k for k in hf._sd if "pooler" in k or "classifier" in k]:
        del hf._sd[k]
    d = hf.config.dim if model_type == "distilbert" else hf.config.hidden_size
    hf._sd["qa_outputs.weight"] = (rng.normal(size=(2, d)) / math.sqrt(d)).astype(np.float32)
    hf._sd["qa_outputs.bias"] = np.zeros(2, dtype=np.float32)
    return hf


def qa_rows(rng, n=16, seq=14, vocab=12, sep=3):
    """n `[CLS] question [SEP] context [SEP]` rows with their token_type_ids, contexts of 3..7 tokens."""
    tok = np.zeros((n, seq), dtype=np.int64)
    types = np.zeros((n, seq), dtype=np.int64)
    for r in range(n):
        q, c = 1 + r % 3, 3 + (r * 5) % 5
        row = [2] + list(rng.integers(4, vocab, size=q)) + [sep] + list(rng.integers(4, vocab, size=c)) + [sep]
        tok[r, :len(row)] = row
        types[r, q + 2:len(row)] = 1
    return tok, types


def best_spans(start, end, tok, sep=3, max_answer=30, pad=0):
    """Each row's answer as aimc picks it: the context span (after the first separator, the
    separators and padding excluded) with the largest start + end logit, the first on ties; and
    the margin to the runner-up."""
    out, margins = [], []
    for s, e, row in zip(start, end, tok):
        first = int(np.flatnonzero(row == sep)[0])
        ctx = [p for p in range(len(row)) if p > first and row[p] not in (sep, pad)]
        scores = sorted(((s[a] + e[b], a, b) for a in ctx for b in ctx if a <= b < a + max_answer), key=lambda x: (-x[0], x[1], x[2]))
        out.append(scores[0][1:])
        margins.append(scores[0][0] - scores[1][0])
    return np.array(out), np.array(margins)


def test_from_torch_maps_question_answering_models():
    """A Hugging Face *ForQuestionAnswering maps with its span head as the head and the task set;
    question_answering checks its spans' shapes by name."""
    rng = np.random.default_rng(21)
    for model_type in ("bert", "distilbert"):
        m = aimc.from_torch(qa_model(rng, model_type))
        assert m.settings["task"] == "qa_f1" and "pooling" not in m.settings
        assert m.tensors["qa_outputs.weight"].shape == (2, 8) and not any("pooler" in k or "classifier" in k for k in m.tensors)
    tok, _ = qa_rows(rng)
    with pytest.raises(ValueError, match=r"starts and ends must be \[n\] token positions"):
        aimc.question_answering(m, tok, np.zeros((16, 2)), np.zeros((16, 3)), trials=2, backend="cpu", quiet=True)
    with pytest.raises(ValueError, match=r"metric = 'em': give 'f1'"):
        aimc.question_answering(m, tok, np.zeros(16), np.zeros(16), metric="em")


@pytest.mark.parametrize("model_type", ["bert", "roberta", "electra", "distilbert", "mobilebert"])
def test_question_answering_matches_transformers(tmp_path, model_type):
    """transformers' own start and end logits, their answers picked by the same rule, are the
    labels: the engine's floating-point exact match and F1 are then 1, for a tokenizer's output as
    it is; shifted answers score what their overlap says."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(3)
    small = dict(vocab_size=12, initializer_range=0.5)
    if model_type == "distilbert":
        net = transformers.DistilBertForQuestionAnswering(transformers.DistilBertConfig(dim=8, n_layers=2, n_heads=2, hidden_dim=16,
                                                                                          max_position_embeddings=16, **small))
    elif model_type == "electra":
        net = transformers.ElectraForQuestionAnswering(transformers.ElectraConfig(hidden_size=8, embedding_size=8, num_hidden_layers=2,
                                                                                  num_attention_heads=2, intermediate_size=16,
                                                                                  max_position_embeddings=16, **small))
    elif model_type == "mobilebert":
        net = transformers.MobileBertForQuestionAnswering(transformers.MobileBertConfig(
            hidden_size=32, embedding_size=8, intra_bottleneck_size=16, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=32, num_feedforward_networks=2, max_position_embeddings=16, **small))
    elif model_type == "roberta":
        net = transformers.RobertaForQuestionAnswering(transformers.RobertaConfig(hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                                                                                  intermediate_size=16, max_position_embeddings=18, **small))
    else:
        net = transformers.BertForQuestionAnswering(transformers.BertConfig(hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                                                                            intermediate_size=16, max_position_embeddings=16, **small))
    net = net.eval()
    rng = np.random.default_rng(22)
    tok, types = qa_rows(rng)
    pad = net.config.pad_token_id
    tok = np.where(tok == 0, pad, np.where(tok == pad, 0, tok))  # the model's padding id (RoBERTa's is 1)
    enc = {"input_ids": tok, "attention_mask": (tok != pad).astype(np.int64)}
    if model_type in ("bert", "electra", "mobilebert"):
        enc["token_type_ids"] = types
    with torch.no_grad():
        out = net(**{k: torch.as_tensor(v) for k, v in enc.items()})
    spans, margins = best_spans(out.start_logits.double().numpy(), out.end_logits.double().numpy(), tok, pad=pad)
    assert np.all(margins > 1e-4), "a near tie would leave the answer to rounding"
    settings = None if model_type in ("bert", "electra", "mobilebert") else {"segment_sep": 3}
    for metric in ("f1", "exact_match"):
        r = aimc.question_answering(net, enc, spans[:, 0], spans[:, 1], metric=metric, settings=settings, times=["1h"], trials=2,
                                    backend="cpu", out=str(tmp_path / f"{model_type}-{metric}"), quiet=True, **IDEAL)
        assert r.fp_baseline == 1.0 and all(v == 1.0 for v in r.points[0]["per_trial"]), (metric, r.points[0]["per_trial"])
    # Labels one token longer where the context allows: F1 = 2 len / (2 len + 1), no exact match.
    longer = spans.copy()
    room = np.array([row[e + 1] not in (pad, 3) for row, e in zip(tok, spans[:, 1])])
    longer[room, 1] += 1
    want = np.mean([2 * (b - a + 1) / (2 * (b - a + 1) + 1) if ok else 1.0 for (a, b), ok in zip(spans, room)])
    r = aimc.question_answering(net, enc, longer[:, 0], longer[:, 1], settings=settings, times=["1h"], trials=2, backend="cpu",
                                out=str(tmp_path / f"{model_type}-longer"), quiet=True, **IDEAL)
    assert room.any() and abs(r.fp_baseline - want) < 1e-12, (r.fp_baseline, want)
    # Two annotations per row, the longer one first: the best of them is the exact answer again.
    r = aimc.question_answering(net, enc, np.stack([longer[:, 0], spans[:, 0]], 1), np.stack([longer[:, 1], spans[:, 1]], 1),
                                metric="exact_match", settings=settings, times=["1h"], trials=2, backend="cpu",
                                out=str(tmp_path / f"{model_type}-two"), quiet=True, **IDEAL)
    assert r.fp_baseline == 1.0 and r.data["config"]["transformer"]["answers"] == 2


def test_token_span_maps_characters_to_the_covering_context_tokens():
    """SQuAD's character answers to token spans: the first context token ending after the start
    and the last starting before the end; answers reaching past the tokenized context give none."""
    # [CLS] q [SEP] "the cat sat" split as the|ca|##t|sat [SEP], offsets into the context.
    offsets = [(0, 0), (0, 1), (0, 0), (0, 3), (4, 6), (6, 7), (8, 11), (0, 0)]
    seq_ids = [None, 0, None, 1, 1, 1, 1, None]
    assert aimc.squad.token_span(offsets, seq_ids, 4, 7) == (4, 5)    # "cat": both word pieces
    assert aimc.squad.token_span(offsets, seq_ids, 5, 6) == (4, 4)    # inside one token
    assert aimc.squad.token_span(offsets, seq_ids, 0, 11) == (3, 6)
    assert aimc.squad.token_span(offsets, seq_ids, 8, 14) is None     # past the truncated context
    assert aimc.squad.token_span(offsets, seq_ids, 3, 3) is None      # empty


def test_squad_features_through_a_tokenizer(tmp_path):
    """A WordPiece tokenizer's pairs and offsets: each kept answer's tokens decode to its text,
    several annotations fill [n, k], a truncated-away answer drops its question, a misplaced
    answer is refused, and the result runs through question_answering."""
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    words = ["the", "cat", "sat", "on", "mat", "who", "where", "did", "a", "dog", "ran", "far", "park", "in", "?"]
    tokenizers = pytest.importorskip("tokenizers")
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words)}
    wordpiece = tokenizers.BertWordPieceTokenizer(vocab, lowercase=True)
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=wordpiece._tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                                               cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    contexts = ["the cat sat on the mat", "a dog ran far in the park", "the dog sat in the park on the mat"]
    questions = ["who sat ?", "where did the dog run ?", "where did the dog sit ?"]
    answers = [{"text": ["the cat", "cat"], "answer_start": [0, 4]}, {"text": ["the park"], "answer_start": [17]},
               [("the mat", 27)]]
    enc, starts, ends, kept = aimc.squad_features(tok, questions, contexts, answers, max_length=16)
    # The third context is cut at 16 tokens before its answer: that question is dropped.
    assert kept == [0, 1] and starts.shape == ends.shape == (2, 2)
    for r, i in enumerate(kept):
        given = answers[i]["text"]
        for j in range(2):
            text = tok.decode(enc["input_ids"][r][starts[r, j]:ends[r, j] + 1])
            assert text == given[min(j, len(given) - 1)], (i, j, text)
    with pytest.raises(ValueError, match=r"answers\[0\]: 'cat' is not at character 0"):
        aimc.squad_features(tok, questions[:1], contexts[:1], [{"text": ["cat"], "answer_start": [0]}], max_length=16)
    torch.manual_seed(1)
    net = transformers.BertForQuestionAnswering(transformers.BertConfig(vocab_size=len(words) + 5, hidden_size=8, num_hidden_layers=1,
                                                                        num_attention_heads=2, intermediate_size=16,
                                                                        max_position_embeddings=16)).eval()
    r = aimc.question_answering(net, enc, starts, ends, times=["1h"], trials=2, backend="cpu", out=str(tmp_path / "qa"), quiet=True, **IDEAL)
    assert 0.0 <= r.fp_baseline <= 1.0 and r.data["config"]["transformer"]["answers"] == 2


def _normalize(s):
    """SQuAD v1.1's evaluation script's `normalize_answer` (the test's own oracle)."""
    import re
    import string
    s = "".join(ch for ch in s.lower() if ch not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", s).split())


def _official(prediction, answers, v2=False):
    """SQuAD v1.1's exact match and F1 of one predicted text, each the best over the answers;
    with `v2` SQuAD 2.0's (no answers: the empty one; an empty side scores 1 if both are)."""
    from collections import Counter
    pred = _normalize(prediction).split()
    em, f1 = 0.0, 0.0
    for a in (answers or [""]) if v2 else answers:
        gold = _normalize(a).split()
        em = max(em, float(pred == gold))
        if v2 and not (pred and gold):
            f1 = max(f1, float(pred == gold))
            continue
        same = sum((Counter(pred) & Counter(gold)).values())
        if same:
            p, r = same / len(pred), same / len(gold)
            f1 = max(f1, 2 * p * r / (p + r))
    return em, f1


def _official_of_logits(w, contexts, answers, start_logits, end_logits, v2=False, threshold=0.0, n_best_size=None):
    """The mean official (EM, F1) of the answers a model's start and end logits give over
    `squad_windows` w: in every window the context span of at most 30 tokens with the largest
    start + end logit, each question's best window's by that score (the first on ties), its
    text from the offsets; with `v2` no answer where the lowest null score (position 0's start +
    end logit) of its windows beats that score by more than `threshold`. With `n_best_size`
    the spans are the ones Hugging Face's `postprocess_qa_predictions` tries, as its code writes
    it: the n_best_size largest start and end logits by `np.argsort`, over the window's tokens
    (its attention mask), those outside the context skipped. Also the number of empty answers and
    each question's null score less its best span's."""
    start, end = start_logits.double().numpy(), end_logits.double().numpy()
    best, null = {}, {}
    for r, q in enumerate(w.question):
        offsets = w.text["rows"][r]["offsets"]
        ctx = [t for t, (a, b) in enumerate(offsets) if b > a]
        if n_best_size is None:
            spans = [(a, b, start[r, a] + end[r, b]) for a in ctx for b in ctx if a <= b < a + 30]
        else:
            n = int(w.enc["attention_mask"][r].sum())
            starts = np.argsort(start[r, :n])[-1:-n_best_size - 1:-1].tolist()
            ends = np.argsort(end[r, :n])[-1:-n_best_size - 1:-1].tolist()
            spans = [(a, b, start[r, a] + end[r, b]) for a in starts for b in ends
                     if offsets[a][1] > offsets[a][0] and offsets[b][1] > offsets[b][0] and a <= b and b - a + 1 <= 30]
        if not spans:
            null[q] = min(null.get(q, np.inf), start[r, 0] + end[r, 0])
            continue
        s, e, v = max(spans, key=lambda x: x[2])
        if q not in best or v > best[q][3]:
            best[q] = (r, s, e, v)
        null[q] = min(null.get(q, np.inf), start[r, 0] + end[r, 0])
    scores, empty, diffs = [], 0, []
    for q in sorted(null):
        if q not in best:
            empty += 1
            scores.append(_official("", answers[q], v2))
            continue
        r, s, e, v = best[q]
        offs = w.text["rows"][r]["offsets"]
        pred = "" if v2 and null[q] - v > threshold else contexts[q][offs[s][0]:offs[e][1]]
        empty += pred == ""
        diffs.append(null[q] - v)
        scores.append(_official(pred, answers[q], v2))
    return np.mean([x[0] for x in scores]), np.mean([x[1] for x in scores]), empty, diffs


def _wordpiece(words):
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words)}
    wordpiece = tokenizers.BertWordPieceTokenizer(vocab, lowercase=True)
    return transformers.PreTrainedTokenizerFast(tokenizer_object=wordpiece._tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                                                cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def test_squad_windows_score_officially_as_transformers_answers(tmp_path):
    """Long contexts cut into overlapping windows: every question has its windows and every
    context token its characters; the engine's floating-point exact match and F1 are SQuAD's
    official ones of the answers transformers' own logits give (each question's best window by
    start + end logit, its text from the offsets), for a model whose answers are not all right."""
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    words = ["the", "cat", "sat", "on", "mat", "who", "where", "did", "a", "dog", "ran", "far", "park", "in", "?", "red", "big", "."]
    tok = _wordpiece(words)
    rng = np.random.default_rng(5)
    body = [w for w in words if w not in ("who", "where", "did", "?")]
    contexts = [" ".join(rng.choice(body, size=int(rng.integers(8, 30)))) for _ in range(12)]
    questions = ["  where did the dog sit ?", "who ran ?", "where ?"] * 4
    answers = []
    for c in contexts:
        ws = c.split()
        a = int(rng.integers(0, len(ws) - 2))
        first = len(" ".join(ws[:a])) + (a > 0)
        answers.append({"text": [" ".join(ws[a:a + 2]), ws[a + 1]], "answer_start": [first, first + len(ws[a]) + 1]})
    w = aimc.squad_windows(tok, questions, contexts, answers, max_length=16, doc_stride=4)
    assert len(w) > len(questions) and sorted(set(w.question.tolist())) == list(range(12))
    for r, row in enumerate(w.text["rows"]):
        ids = w.enc["input_ids"][r]
        ctx = contexts[row["question"]]
        for t, (a, b) in enumerate(row["offsets"]):
            if b > a:
                assert tok.decode([ids[t]]).replace("##", "") == ctx[a:b].lower(), (r, t)
    torch.manual_seed(3)
    net = transformers.BertForQuestionAnswering(transformers.BertConfig(vocab_size=len(words) + 5, hidden_size=8, num_hidden_layers=1,
                                                                        num_attention_heads=2, intermediate_size=16,
                                                                        max_position_embeddings=16)).eval()
    with torch.no_grad():
        out = net(**{k: torch.tensor(v) for k, v in w.enc.items()})
    em, f1, _, _ = _official_of_logits(w, contexts, [a["text"] for a in answers], out.start_logits, out.end_logits)
    assert 0 < f1 < 1, f"F1 {f1}: the case needs some answers right and some wrong"
    for metric, want in (("f1", f1), ("exact_match", em)):
        r = aimc.question_answering(net, w, metric=metric, times=["1h"], trials=2, backend="cpu", out=str(tmp_path / metric), quiet=True, **IDEAL)
        assert r.fp_baseline == pytest.approx(want, abs=1e-12), metric
        assert "official SQuAD" in r.data["metric"]
    # Hugging Face's n_best_size cut, 2 of a window's up to 16 tokens: the answers its
    # post-processing gives, some of them other answers than every span's.
    em3, f13, _, _ = _official_of_logits(w, contexts, [a["text"] for a in answers], out.start_logits, out.end_logits, n_best_size=2)
    assert (em3, f13) != (em, f1), "n_best_size = 2 changes no answer: the case does not test it"
    r = aimc.question_answering(net, w, n_best_size=2, times=["1h"], trials=2, backend="cpu", out=str(tmp_path / "n_best"), quiet=True, **IDEAL)
    assert r.fp_baseline == pytest.approx(f13, abs=1e-12) and r.data["config"]["transformer"]["n_best"] == 2
    with pytest.raises(ValueError, match=r"n_best_size = -1: give a whole number"):
        aimc.question_answering(net, w, n_best_size=-1)
    # The same baseline from one noiseless pass of the engine instead of the f64 reference.
    r = aimc.question_answering(net, w, settings={"baseline": "engine"}, times=["1h"], trials=2, backend="cpu",
                                out=str(tmp_path / "engine"), quiet=True, **IDEAL)
    assert r.fp_baseline == pytest.approx(f1, abs=1e-12) and r.data["config"]["transformer"]["baseline"] == "engine"
    # SQuAD 2.0: every third question without an answer; the null score decides.
    texts = [[] if q % 3 == 0 else a["text"] for q, a in enumerate(answers)]
    w2 = aimc.squad_windows(tok, questions, contexts, texts, max_length=16, doc_stride=4, version_2_with_negative=True)
    with torch.no_grad():
        out = net(**{k: torch.tensor(v) for k, v in w2.enc.items()})
    em2, f12, empty, diffs = _official_of_logits(w2, contexts, texts, out.start_logits, out.end_logits, v2=True)
    assert 0 < empty < 12, f"{empty} empty answers: the case needs the null score to win sometimes"
    for metric, want in (("f1", f12), ("exact_match", em2)):
        r = aimc.question_answering(net, w2, metric=metric, times=["1h"], trials=2, backend="cpu", out=str(tmp_path / f"v2-{metric}"),
                                    quiet=True, **IDEAL)
        assert r.fp_baseline == pytest.approx(want, abs=1e-12) and "SQuAD 2.0" in r.data["metric"], metric
    # Hugging Face's null_score_diff_threshold: midway across the widest gap between two
    # questions' differences that 0 does not already split, so the threshold moves some answers
    # and no question lies within rounding of it.
    d = np.sort(diffs)
    gap, k = max((d[i] - d[i - 1], i) for i in range(1, len(d)) if not d[i - 1] <= 0 < d[i])
    assert gap > 1e-4
    threshold = float((d[k - 1] + d[k]) / 2)
    _, f1t, empty_t, _ = _official_of_logits(w2, contexts, texts, out.start_logits, out.end_logits, v2=True, threshold=threshold)
    assert empty_t != empty, "the threshold changes no answer: the case does not test it"
    r = aimc.question_answering(net, w2, null_score_diff_threshold=threshold, times=["1h"], trials=2, backend="cpu",
                                out=str(tmp_path / "v2-threshold"), quiet=True, **IDEAL)
    assert r.fp_baseline == pytest.approx(f1t, abs=1e-12)
    with pytest.raises(ValueError, match=r"answers\[0\] holds no answer"):
        aimc.squad_windows(tok, questions, contexts, texts, max_length=16, doc_stride=4)
    with pytest.raises(ValueError, match="leave out starts and ends"):
        aimc.question_answering(net, w, np.zeros(len(w)), np.zeros(len(w)))
    with pytest.raises(ValueError, match=r"answers\[0\]: 'cat' is not at character 0"):
        aimc.squad_windows(tok, questions[:1], ["the cat"], [{"text": ["cat"], "answer_start": [0]}], max_length=16, doc_stride=4)
    with pytest.raises(ValueError, match="doc_stride = 16"):
        aimc.squad_windows(tok, questions, contexts, answers, max_length=16, doc_stride=16)


def test_squad_windows_with_a_byte_level_bpe_tokenizer(tmp_path):
    """RoBERTa's pairs, `<s> question </s></s> context </s>`, no token types: the windows carry
    the tokenizer's separator, so a RoBERTa reader scores SQuAD's official F1 with no settings,
    and the floating-point score is the official one of transformers' own answers."""
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    tokenizers = pytest.importorskip("tokenizers")
    rng = np.random.default_rng(8)
    words = ["the", "cat", "sat", "on", "mat", "dog", "ran", "far", "park", "big", "red", "hat", "Paris", "France", "1998,"]
    contexts = [" ".join(rng.choice(words, size=int(rng.integers(6, 25)))) for _ in range(10)]
    bpe = tokenizers.ByteLevelBPETokenizer()
    bpe.train_from_iterator(contexts + ["who ran ?", "where did it sit ?"], vocab_size=300, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.post_processor = tokenizers.processors.RobertaProcessing(("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>")))
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                                               cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>")
    questions = ["who ran ?", "where did it sit ?"] * 5
    answers = []
    for c in contexts:
        ws = c.split()
        a = int(rng.integers(1, len(ws) - 1))
        answers.append([" ".join(ws[a:a + 2])])
    with pytest.raises(ValueError, match=r"question 0 takes \d+ tokens, which leaves 2 context tokens per window"):
        aimc.squad_windows(tok, questions, contexts, answers, max_length=12, doc_stride=5)
    w = aimc.squad_windows(tok, questions, contexts, answers, max_length=24, doc_stride=4)
    ids = w.enc["input_ids"]
    assert w.segment_sep == tok.sep_token_id and len(w) > 10 and not np.any(w.enc["token_type_ids"])
    assert all(row[:len(tok("who ran ?")["input_ids"])].tolist()[-1] == tok.sep_token_id for row in ids[w.question % 2 == 0])
    torch.manual_seed(4)
    net = transformers.RobertaForQuestionAnswering(transformers.RobertaConfig(
        vocab_size=len(tok), hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
        max_position_embeddings=28, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)).eval()
    with torch.no_grad():
        out = net(input_ids=torch.tensor(ids), attention_mask=torch.tensor(w.enc["attention_mask"]))
    _, f1, _, _ = _official_of_logits(w, contexts, answers, out.start_logits, out.end_logits)
    r = aimc.question_answering(net, w, times=["1h"], trials=2, backend="cpu", out=str(tmp_path / "roberta"), quiet=True, **IDEAL)
    assert r.fp_baseline == pytest.approx(f1, abs=1e-12) and r.data["config"]["transformer"]["segment_sep"] == tok.sep_token_id
