"""SQuAD-style question answering data as `aimc.question_answering` reads it, in two forms.

`squad_windows` (SQuAD's official metrics, as Hugging Face's run_qa and aihwkit's BERT example
score it): each (question, context) pair tokenized with truncation="only_second" and a document
stride, so a long context gives several overlapping windows (rows); beside the rows, the text the
engine scores against: every question's context and annotated answers, and every row's question
and each token's character span in the context (the fast tokenizer's offset mapping; [0, 0]
outside the context). Per trial the engine picks each question's answer from its windows, the
best by start + end logit, takes the context text it covers and scores it by SQuAD v1.1's
normalised exact match and F1 (Rajpurkar et al., EMNLP 2016; workload::transformer::squad).

    w = aimc.squad_windows(tokenizer, questions, contexts, answers, max_length=384, doc_stride=128)
    r = aimc.question_answering(model, w)

`squad_features` (token-level scores): questions and
contexts through a fast Hugging Face tokenizer (`[CLS] question [SEP] context [SEP]`, the context
truncated to fit), and each annotated answer, given in characters of its context as SQuAD gives it
(`{"text": [...], "answer_start": [...]}`), mapped to the tokens that cover it with the tokenizer's
offset mapping, as Hugging Face's `prepare_train_features` maps the answers of SQuAD v1.1
(Rajpurkar et al., EMNLP 2016). A question keeps the answers that lie inside its tokenized
context; a question with none left (the truncation cut them all off) is dropped and its index is
left out of `kept`. Rows with fewer answers than the most repeat their first, which changes no
score (each question scores its best answer).

    enc, starts, ends, kept = aimc.squad_features(tokenizer, questions, contexts, answers, max_length=384)
    r = aimc.question_answering(model, enc, starts, ends)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


def token_span(offsets, sequence_ids, start_char: int, end_char: int) -> tuple[int, int] | None:
    """The first and last token of the context (sequence id 1) that cover the characters
    start_char..end_char (end excluded) of the context: the first token ending after start_char
    and the last starting before end_char. None when the answer is not wholly inside the
    tokenized context."""
    ctx = [i for i, s in enumerate(sequence_ids) if s == 1]
    if not ctx or end_char <= start_char:
        return None
    first, last = ctx[0], ctx[-1]
    if offsets[first][0] > start_char or offsets[last][1] < end_char:
        return None
    s = next(i for i in ctx if offsets[i][1] > start_char)
    e = max(i for i in ctx if offsets[i][0] < end_char)
    return (s, e) if s <= e else None


def features(tokenizer, questions: Sequence[str], contexts: Sequence[str], answers: Sequence, max_length: int = 384):
    """Tokenizes (question, context) pairs and maps their answers to token spans (module
    header). `answers[i]` is SQuAD's `{"text": [...], "answer_start": [...]}` or a list of
    (text, answer_start) pairs. Returns (enc, starts, ends, kept): the tokenizer's `input_ids`,
    `token_type_ids` and `attention_mask` of the kept questions, padded to `max_length`; starts
    and ends [n, k], k the most answers of a kept question; the indices of the kept questions."""
    if not (len(questions) == len(contexts) == len(answers)):
        raise ValueError(f"questions, contexts and answers must be as long: {len(questions)}, {len(contexts)}, {len(answers)}")
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("squad_features needs a fast tokenizer (offset mapping): AutoTokenizer.from_pretrained(..., use_fast=True)")
    enc = tokenizer(list(questions), list(contexts), truncation="only_second", max_length=max_length, padding="max_length",
                    return_offsets_mapping=True, return_token_type_ids=True)
    rows, spans = [], []
    for i, given in enumerate(answers):
        pairs = list(zip(given["text"], given["answer_start"])) if isinstance(given, dict) else list(given)
        if not pairs:
            raise ValueError(f"answers[{i}] is empty; every question needs at least one annotated answer")
        found = []
        for text, start in pairs:
            if contexts[i][start:start + len(text)] != text:
                raise ValueError(f"answers[{i}]: {text!r} is not at character {start} of its context "
                                 f"(it reads {contexts[i][start:start + len(text)]!r})")
            span = token_span(enc["offset_mapping"][i], enc.sequence_ids(i), start, start + len(text))
            if span is not None:
                found.append(span)
        if found:
            rows.append(i)
            spans.append(found)
    if not rows:
        raise ValueError(f"no question kept an answer inside its tokenized context of {max_length} tokens; raise max_length")
    k = max(len(s) for s in spans)
    spans = [s + [s[0]] * (k - len(s)) for s in spans]
    starts = np.array([[a for a, _ in s] for s in spans], dtype=np.int64)
    ends = np.array([[b for _, b in s] for s in spans], dtype=np.int64)
    out = {key: np.asarray(enc[key])[rows] for key in ("input_ids", "token_type_ids", "attention_mask")}
    return out, starts, ends, rows


@dataclass
class SquadWindows:
    """`squad_windows`'s result: `enc` the tokenizer's `input_ids`, `token_type_ids` and
    `attention_mask` of every window [rows, max_length]; `question` [rows] each window's
    question; `text` the questions' contexts and answers and the windows' offsets, as
    `data.answer_text` reads it (JSON); `segment_sep` the tokenizer's separator id (the context
    follows a row's first one: `transformer.segment_sep`)."""
    enc: dict
    question: np.ndarray
    text: dict
    segment_sep: int

    def __len__(self) -> int:
        return len(self.question)


def _answer_texts(i: int, given, context: str, unanswerable: bool) -> list:
    """Question i's annotated answers as text: SQuAD's {"text": [...], "answer_start": [...]},
    (text, start) pairs, or strings. Where a start is given the text must stand there in the
    context (a misaligned data set is refused, not scored). None at all only in SQuAD 2.0."""
    if isinstance(given, dict):
        pairs = list(zip(given["text"], given["answer_start"])) if "answer_start" in given else [(t, None) for t in given["text"]]
    else:
        pairs = [(a, None) if isinstance(a, str) else tuple(a) for a in given]
    if not all(isinstance(t, str) for t, _ in pairs):
        raise ValueError(f"answers[{i}] must hold answer texts")
    if not pairs and not unanswerable:
        raise ValueError(f"answers[{i}] holds no answer: every SQuAD v1.1 question has one; for SQuAD 2.0's unanswerable questions "
                         "give version_2_with_negative=True")
    for text, start in pairs:
        if start is not None and context[start:start + len(text)] != text:
            raise ValueError(f"answers[{i}]: {text!r} is not at character {start} of its context "
                             f"(it reads {context[start:start + len(text)]!r})")
    return [t for t, _ in pairs]


def windows(tokenizer, questions: Sequence[str], contexts: Sequence[str], answers: Sequence, max_length: int = 384,
            doc_stride: int = 128, version_2_with_negative: bool = False) -> SquadWindows:
    """Tokenizes (question, context) pairs into windows of `max_length` tokens, consecutive
    windows of a context overlapping by `doc_stride` tokens (Hugging Face's `stride`), and keeps
    the text SQuAD's official metrics need (module header). Questions lose their leading
    whitespace, as run_qa strips it. `answers[i]` is SQuAD's `{"text": [...], "answer_start":
    [...]}`, a list of (text, answer_start) pairs or a list of texts: only the texts are scored
    (a text must stand at its given start), every question keeps all of them, and no question is
    dropped. `version_2_with_negative` (Hugging Face's flag): SQuAD 2.0, where a question may have
    no answer and the engine answers nothing where the null score wins."""
    if not (len(questions) == len(contexts) == len(answers)):
        raise ValueError(f"questions, contexts and answers must be as long: {len(questions)}, {len(contexts)}, {len(answers)}")
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("squad_windows needs a fast tokenizer (offset mapping): AutoTokenizer.from_pretrained(..., use_fast=True)")
    if not 0 <= doc_stride < max_length:
        raise ValueError(f"doc_stride = {doc_stride}: the tokens consecutive windows share, from 0 to below max_length = {max_length}")
    texts = [_answer_texts(i, a, c, version_2_with_negative) for i, (a, c) in enumerate(zip(answers, contexts))]
    # A window's context is max_length less the question's tokens and the special tokens; it
    # must exceed the stride for the windows to advance (the tokenizer panics otherwise), and
    # then every question has at least one window.
    special = tokenizer.num_special_tokens_to_add(pair=True)
    for i, ids in enumerate(tokenizer([q.lstrip() for q in questions], add_special_tokens=False)["input_ids"]):
        room = max_length - len(ids) - special
        if room <= doc_stride:
            raise ValueError(f"question {i} takes {len(ids)} tokens, which leaves {room} context tokens per window of max_length = "
                             f"{max_length}, not more than doc_stride = {doc_stride}: raise max_length or lower doc_stride")
    enc = tokenizer([q.lstrip() for q in questions], list(contexts), truncation="only_second", max_length=max_length, stride=doc_stride,
                    return_overflowing_tokens=True, return_offsets_mapping=True, padding="max_length", return_token_type_ids=True)
    question = np.asarray(enc["overflow_to_sample_mapping"], dtype=np.int64)
    rows = []
    for r, q in enumerate(question):
        ids = enc.sequence_ids(r)
        rows.append({"question": int(q), "offsets": [[int(a), int(b)] if ids[t] == 1 else [0, 0]
                                                     for t, (a, b) in enumerate(enc["offset_mapping"][r])]})
    text = {"version": 2 if version_2_with_negative else 1, "questions": [{"context": c, "answers": t} for c, t in zip(contexts, texts)],
            "rows": rows}
    out = {key: np.asarray(enc[key]) for key in ("input_ids", "token_type_ids", "attention_mask")}
    return SquadWindows(enc=out, question=question, text=text, segment_sep=int(tokenizer.sep_token_id))

