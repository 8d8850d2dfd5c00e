"""SQuAD-style question answering data as `aimc.question_answering` reads it: questions and
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
