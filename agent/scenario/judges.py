"""Judges for `ask` and `probe` events: a named registry of programmatic scorers.

Each judge maps an answer (and the question's choices, for multiple choice) to a score in
[0, 1]. The scenario names the judge and its arguments (`agent.scenario.schema.Judge`).
"""

from __future__ import annotations

import re
from typing import Callable, Sequence

from baking.evaluate import keyword_hit

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
