"""Judges for `ask` and `probe` events: a named registry of programmatic scorers.

Each judge maps an answer (and the question's choices, for multiple choice) to a score in
[0, 1]. The scenario names the judge and its arguments (`agent.scenario.Judge`).
"""

from __future__ import annotations

import re
from typing import Callable, Sequence

import torch

from baking.evaluate import keyword_hit
from baking.render import Message, encode

# Frequent function words per language: a dependency-free language check that is reliable
# on the few-sentence answers a judge sees.
_STOPWORDS = {
    "en": "the and is are of to in that it you for with this was have be not on what",
    "fr": "le la les et est sont de des du un une que qui pas pour dans ce vous je il elle",
    "es": "el la los las y es son de del un una que no para por en con se lo como",
    "de": "der die das und ist sind nicht ein eine zu mit den von ich sie es auf für",
    "it": "il lo la gli le e è sono di del un una che non per con si come ma anche",
}
_WORD = re.compile(r"[a-zàâäçéèêëîïôöùûüÿñß]+", re.IGNORECASE)


def detect_language(text: str) -> str | None:
    """The language whose function words are most frequent in ``text`` (None if none occur)."""
    words = [w.lower() for w in _WORD.findall(text)]
    counts = {lang: sum(w in set(stop.split()) for w in words) for lang, stop in _STOPWORDS.items()}
    best = max(counts, key=counts.get)
    return best if counts[best] > 0 else None


def contains(answer: str, value: str) -> float:
    return float(value.casefold() in answer.casefold())


def regex(answer: str, pattern: str) -> float:
    return float(re.search(pattern, answer, flags=re.IGNORECASE | re.MULTILINE) is not None)


def keyword_rate(answer: str, words: Sequence[str]) -> float:
    """1 if the answer uses any of the keywords (whole words); averaged over answers it is the
    rate of answers that do."""
    return float(keyword_hit(answer, words))


def language(answer: str, code: str) -> float:
    return float(detect_language(answer) == code)


@torch.no_grad()
def choice_logliks(model, tokenizer, messages: list[Message], choices: Sequence[str]) -> list[float]:
    """Sum of log p(choice tokens | prompt) for each choice, the model as an assistant turn; the
    choices go through the model as one right-padded batch."""
    prompt = encode(tokenizer, messages)
    device = next(model.parameters()).device
    ids = [tokenizer(choice, add_special_tokens=False)["input_ids"] for choice in choices]
    width = len(prompt) + max(len(i) for i in ids)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    rows = torch.tensor([prompt + i + [pad] * (width - len(prompt) - len(i)) for i in ids], device=device)
    mask = torch.tensor([[1] * (len(prompt) + len(i)) + [0] * (width - len(prompt) - len(i)) for i in ids],
                        device=device)
    with torch.no_grad():
        logits = model(input_ids=rows, attention_mask=mask).logits[:, len(prompt) - 1 : -1].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    return [float(logprobs[k, : len(i)].gather(-1, torch.tensor(i, device=device)[:, None]).sum())
            for k, i in enumerate(ids)]


def mc_loglik(logliks: Sequence[float], answer_idx: int) -> float:
    """1 if the right choice has the highest log-likelihood."""
    return float(max(range(len(logliks)), key=logliks.__getitem__) == answer_idx)


JUDGES: dict[str, Callable[..., float]] = {
    "contains": contains,
    "regex": regex,
    "keyword_rate": keyword_rate,
    "language": language,
    "mc_loglik": mc_loglik,
}
