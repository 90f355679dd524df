"""Where the user inputs x come from.

A bake is only as good as its queries. The default source mixes:

- a generic pool of diverse user requests written for this project (``data/generic_queries.txt``);
- persona questions that invite the model to show who it is (``data/persona_queries.txt``);
- per news/fact item: inputs about each of its facts from many directions (:mod:`baking.coverage`);
  the baker adds questions the model itself writes with the item in context
  (:func:`question_writing_prompt`), keeping those the item can answer;
- second turns of conversations, built by the baker from first-turn teacher answers, so that a
  persona holds deeper into a dialogue.
"""

from __future__ import annotations

import random
import re
from functools import cache
from pathlib import Path
from typing import Protocol, Sequence

from baking.config import CONTEXT_KINDS, SYSTEM_KINDS, PromptItem
from baking.render import Query

_DATA = Path(__file__).parent / "data"


@cache
def _pool(name: str) -> tuple[str, ...]:
    lines = (_DATA / name).read_text().splitlines()
    return tuple(line.strip() for line in lines if line.strip())


def generic_queries() -> tuple[str, ...]:
    """The shipped pool of generic user requests (>= 200)."""
    return _pool("generic_queries.txt")


def persona_queries() -> tuple[str, ...]:
    """Shipped questions that invite a persona to show itself."""
    return _pool("persona_queries.txt")


def general_knowledge() -> tuple[str, ...]:
    """Shipped general-knowledge questions, open and multiple-choice: inputs a news bake must
    not change (its locality term)."""
    return _pool("general_knowledge.txt")


def other_news() -> tuple[str, ...]:
    """Shipped made-up news sentences, never baked: quizzes about them are news-shaped inputs
    whose answers a news bake must leave alone (its locality term)."""
    return _pool("other_news.txt")


def control_questions(n: int) -> list[str]:
    """``n`` fixed, unrelated generic requests from the held-out split, for locality."""
    return list(split_pool(generic_queries(), held_out=True)[-n:]) if n else []


class QuerySource(Protocol):
    """Draws training and held-out inputs for a bake."""

    def draw(
        self, items: Sequence[PromptItem], n: int, rng: random.Random, held_out: bool
    ) -> list[Query]:
        """``n`` single-turn queries for ``items``; ``held_out`` draws from a disjoint split."""
        ...


_NAME = re.compile(r"\b(?:[A-Z][\w'&.-]*)(?:\s+(?:of|de|the|&)?\s*[A-Z][\w'&.-]*)*")
_STOP = {"The", "A", "An", "In", "On", "At", "This", "That", "It", "Its", "Their", "Today"}


def named_entities(text: str) -> list[str]:
    """Capitalised phrases in ``text`` (a cheap, dependency-free stand-in for NER)."""
    found = []
    for m in _NAME.finditer(text):
        words = [w for w in m.group(0).split() if w not in _STOP]
        phrase = " ".join(words).strip(" .,'")
        if phrase and phrase not in found and len(phrase) > 2:
            found.append(phrase)
    return found


def split_pool(pool: Sequence[str], held_out: bool) -> list[str]:
    # Every 4th entry is held out, so evaluation never sees a training input.
    return [q for i, q in enumerate(pool) if (i % 4 == 3) == held_out]


class DefaultQuerySource:
    """The shipped pools, mixed by the kinds being baked.

    News and fact items get ``queries_per_fact`` inputs per fact (:mod:`baking.coverage`), each
    with only its own item in context, whatever ``n`` is; ``n`` is the budget of the persona,
    instruction and generic inputs. Held-out draws split ``n`` over the items instead.
    """

    def __init__(self, queries_per_fact: int = 16, facts_per_item: int = 6,
                 directions: Sequence[str] | None = None) -> None:
        from baking.coverage import DIRECTIONS

        self.queries_per_fact = queries_per_fact
        self.facts_per_item = facts_per_item
        self.directions = tuple(directions or DIRECTIONS)

    def draw(
        self, items: Sequence[PromptItem], n: int, rng: random.Random, held_out: bool
    ) -> list[Query]:
        from baking.coverage import coverage_questions, interleave, questions_by_fact

        generic = split_pool(generic_queries(), held_out)
        queries: list[Query] = []
        context_items = [i for i, it in enumerate(items) if it.kind in CONTEXT_KINDS]
        has_system = any(it.kind in SYSTEM_KINDS for it in items)
        if held_out and context_items:
            # n over the items, round-robin (each item's facts in turn), so an item without
            # held-out inputs leaves its share to the others.
            lanes = [[Query.single(q, (i,), f"item:{d}") for d, q in interleave(questions_by_fact(
                items[i].text, n, self.facts_per_item, rng, True, self.directions))] for i in context_items]
            queries += interleave(lanes)[:n]
        for i in context_items if not held_out else []:
            own = coverage_questions(items[i].text, self.queries_per_fact, self.facts_per_item, rng,
                                     directions=self.directions)
            queries += [Query.single(q, (i,), f"item:{direction}") for direction, q in own]
        if has_system:
            persona = split_pool(persona_queries(), held_out)
            k = min(n // 3, len(persona)) if any(it.kind == "persona" for it in items) else 0
            queries += [Query.single(q, (), "persona") for q in rng.sample(persona, k)]
            queries += [Query.single(q, (), "generic") for q in rng.sample(generic, min(n - k, len(generic)))]
        return queries


class ListQuerySource:
    """User-supplied inputs; the held-out split takes every 4th."""

    def __init__(self, texts: Sequence[str]) -> None:
        if not texts:
            raise ValueError("ListQuerySource needs at least one query")
        self.texts = list(texts)

    def draw(
        self, items: Sequence[PromptItem], n: int, rng: random.Random, held_out: bool
    ) -> list[Query]:
        pool = split_pool(self.texts, held_out) or self.texts
        return [Query.single(q) for q in rng.choices(pool, k=n)]


def parse_model_question(text: str) -> str | None:
    """First well-formed question in a model's output, or None."""
    for line in text.splitlines():
        line = line.strip().strip('"').removeprefix("Question:").strip()
        if line.endswith("?") and 3 <= len(line.split()) <= 30:
            return line
    return None


def question_writing_prompt(item_text: str) -> list[dict[str, str]]:
    """Messages asking the model to write a question about an item it can see."""
    return [
        {
            "role": "user",
            "content": (
                f"News: {item_text}\n\n"
                "Write one short question that a reader could ask about this news. "
                "Reply with the question only."
            ),
        }
    ]
