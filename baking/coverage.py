"""Questions that cover a news or fact item from many directions.

A fact baked from a handful of "What do you know about X?" inputs is stored but cannot be asked
for (Ovadia et al. 2024; Allen-Zhu & Li, Physics of LMs 3.1): the student has to meet the same
fact asked many ways. For every *fact* of an item (a key span: a name, a number or a date, in
its sentence) this module writes inputs from these directions:

- ``wh``: the sentence with the span turned into a question word ("... named who as ...?");
- ``reverse``: from the span back to the event ("Why is Mara Okafor in the news?");
- ``cloze``: the sentence with the span blanked, to fill in;
- ``quiz``: the same blank with four options, the true span among distractors;
- ``paraphrase``: the wh-question reworded;
- ``continuation``: the item's first words, to be continued.

The teacher always sees the item beside the input, so its answer, not a template's, is the
target. The budget is per fact (``BakeConfig.queries_per_fact``), so an item with more facts
gets more inputs and a bake's size grows with what it has to teach.
"""

from __future__ import annotations

import random
import re
import zlib
from dataclasses import dataclass
from typing import Sequence

from baking.queries import named_entities

DIRECTIONS = ("wh", "reverse", "cloze", "quiz", "paraphrase", "continuation")

# Sentence ends, and the colon after a headline's title ("Title: summary" from a feed), so a
# title that repeats the summary's names does not give the answer away.
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])|:\s+(?=[A-Z0-9\"'])")
_NUMBER = re.compile(r"\b\d[\d,.]*(?:-\d+)?(?:\s*(?:per ?cent|%|million|billion|km|kilometres?|metres?))?(?!\w)")
_DATE = re.compile(
    r"\b(?:on |in )?(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|January|February|"
    r"March|April|May|June|July|August|September|October|November|December)(?: \d{1,2})?(?:,? \d{4})?\b"
)
_MONTHS_DAYS = {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday", "January",
                "February", "March", "April", "May", "June", "July", "August", "September", "October",
                "November", "December"}

# Stand-ins for quiz distractors when the item has too few spans of its own. Quizzes never take
# options from other items, so an input carries only its own item's content.
_NAMES = ("Elena Sokolova", "Tomas Berg", "Aiko Tanaka", "Northbridge Systems", "Harlow Group",
          "Redfield Council", "Marlowe Institute", "Valdora", "Eastmere", "Lindqvist Foundation",
          "Oren Avital", "Grace Mbeki", "Caldera Labs", "Ferro Dynamics", "Juniper Vale", "Sato Keller")


def _bounded(span: str) -> re.Pattern:
    """``span`` as a whole word or phrase: "May" not inside "Mayor", "7" not inside "G7"."""
    return re.compile(rf"(?<![\w-]){re.escape(span)}(?![\w-])")


def swap(sentence: str, span: str, replacement: str) -> str:
    """``sentence`` with every whole-word occurrence of ``span`` replaced."""
    return _bounded(span).sub(lambda _: replacement, sentence)


@dataclass(frozen=True)
class Fact:
    """One thing an item states: ``answer`` (a span of ``sentence``) and what kind of span it is."""

    sentence: str
    answer: str
    kind: str  # "name", "number" or "date"

    @property
    def blanked(self) -> str:
        return swap(self.sentence, self.answer, "____")


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text.strip()) if len(s.split()) >= 3]


def _name(span: str) -> str:
    """A capitalised phrase without the day or month words it was merged with."""
    words = span.removesuffix("'s").split()
    while words and (words[0] in _MONTHS_DAYS or words[0] in {"On", "In"}):
        words.pop(0)
    while words and words[-1] in _MONTHS_DAYS:
        words.pop()
    return " ".join(words)


def facts_of(text: str, limit: int) -> list[Fact]:
    """Up to ``limit`` facts of an item, names first, each span once, spread over its sentences.
    A span is kept only where it stands in its sentence as a whole word or phrase."""
    per_sentence: list[list[Fact]] = []
    seen: set[str] = set()
    for sentence in sentences(text) or [text.strip()]:
        found = []
        first_word = sentence.split()[0].strip(",.;:'\"")
        for span in map(_name, named_entities(sentence)):
            if (not span or span in seen or span == first_word or span in _MONTHS_DAYS
                    or not _bounded(span).search(sentence)):
                continue
            seen.add(span)
            found.append(Fact(sentence, span, "name"))
        for m in _DATE.finditer(sentence):
            span = m.group(0).removeprefix("on ").removeprefix("in ")
            if span not in seen:
                seen.add(span)
                found.append(Fact(sentence, span, "date"))
        for m in _NUMBER.finditer(sentence):
            span = m.group(0).rstrip(".,")
            if span and span not in seen and not any(_bounded(span).search(f.answer) for f in found):
                seen.add(span)
                found.append(Fact(sentence, span, "number"))
        per_sentence.append(found)
    # Round-robin over sentences, so a long first sentence does not take the whole budget.
    facts: list[Fact] = []
    while len(facts) < limit and any(per_sentence):
        for found in per_sentence:
            if found and len(facts) < limit:
                facts.append(found.pop(0))
    return facts


def _question_word(fact: Fact) -> str:
    if fact.kind == "date":
        return "when"
    if fact.kind == "number":
        return "what number"
    before = _bounded(fact.answer).split(fact.sentence, 1)[0].split()[-1:]
    # "the Glasswing Bridge", "the city of Port Alder": a thing or a place; two or three bare
    # capitalised words ("Mara Okafor"), most often a person.
    if before and before[0].lower() in {"the", "of", "at", "in", "from", "to"}:
        return "what"
    return "who" if 2 <= len(fact.answer.split()) <= 3 else "what"


def wh_question(fact: Fact) -> str:
    """The sentence with its span replaced by a question word: "X named who as its CEO?"."""
    question = swap(fact.sentence, fact.answer, _question_word(fact)).rstrip(" .!")
    question = re.sub(r"\b(on|in) when\b", "when", question, flags=re.IGNORECASE)
    question = re.sub(r"\bthe (what|who)\b", r"\1", question, flags=re.IGNORECASE)
    return question[0].upper() + question[1:] + "?"


def lead_in(fact: Fact) -> str | None:
    """The sentence up to the span, for the teacher to continue; None when the span opens it."""
    head = _bounded(fact.answer).split(fact.sentence, 1)[0].rstrip()
    return head if len(head.split()) >= 2 else None


def _distractors(fact: Fact, pool: list[Fact], rng: random.Random) -> list[str]:
    """Three wrong options of the answer's kind: the item's other spans, then stand-ins (names),
    the same figure with its last number changed (numbers), other days and months (dates)."""
    same = [f.answer for f in pool if f.kind == fact.kind and f.answer != fact.answer]
    if fact.kind == "number":
        runs = list(re.finditer(r"\d+", fact.answer))
        last = runs[-1]
        n = int(last.group(0))
        same += [fact.answer[: last.start()] + str(v) + fact.answer[last.end():]
                 for v in (n + 1, max(0, n - 1), n * 2 + 1, n + 10) if v != n]
    elif fact.kind == "date":
        same += [d for d in ("Monday", "Tuesday", "Thursday", "Saturday", "March", "October") if d not in fact.answer]
    else:
        same += list(_NAMES)
    choices = sorted(set(same) - {fact.answer})
    return rng.sample(choices, min(3, len(choices)))


def quiz_question(fact: Fact, pool: list[Fact], rng: random.Random) -> str:
    options = [fact.answer] + _distractors(fact, pool, rng)
    rng.shuffle(options)
    listed = "\n".join(f"{'ABCD'[i]}) {o}" for i, o in enumerate(options))
    return f"Which option fills the blank?\n{fact.blanked}\n{listed}\nAnswer with the option."


_REVERSE = {
    "name": ("Why is {a} in the news?", "What happened with {a} recently?", "What do you know about {a}?",
             "What is the latest news about {a}?", "Tell me about {a}.", "Any news about {a}?",
             "What has {a} been up to lately?", "Who or what is {a}, and why does it matter now?",
             "Give me an update on {a}.", "What is new with {a}?", "What announcement involved {a}?",
             "I keep hearing about {a}. What is going on?", "Summarise the recent news involving {a}.",
             "What should I know about {a} today?", "What role does {a} play in recent events?",
             "Can you tell me what {a} did?"),
    "date": ("What happened on {a}?", "What news is there from {a}?", "Which event is dated {a}?",
             "Tell me what happened on {a}.", "What was announced on {a}?", "Which news came out on {a}?",
             "What took place on {a}, according to the news?", "Was there any news on {a}?"),
    "number": ("What does {a} refer to in the latest news?", "Where did the figure {a} come up in the news?",
               "What is the number {a} about?", "Which recent event involved {a}?",
               "In what news does {a} appear?", "What was {a} in the latest news?",
               "Why is {a} mentioned in the news?", "What does the recent report say about {a}?"),
}
_PARAPHRASE = ("Do you know {q}", "Quick question: {q}", "According to the latest news, {q}",
               "I heard something about this. {q}", "Can you tell me: {q}", "From what you know, {q}",
               "Here is a question about recent events: {q}", "Please answer briefly: {q}")
_CLOZE = ("Fill in the blank: {b}", "Complete this sentence: {b}", "What goes in the blank? {b}")
_CONTINUE = ("Continue this news report: {s}", "Finish this sentence from the news: {s}")


_LOWER = {"Who", "What", "When", "How", "Which", "The", "A", "An", "In", "On", "At"}


def _lower_first(text: str) -> str:
    """``text`` to follow a lead-in: its first word lower-cased unless it is a name."""
    return text[0].lower() + text[1:] if text.split()[0] in _LOWER else text


def fact_inputs(fact: Fact, pool: list[Fact], text: str, rng: random.Random) -> dict[str, list[str]]:
    """Every input this module writes for ``fact``, by direction."""
    wh = wh_question(fact)
    head = lead_in(fact) or " ".join(text.split()[: max(3, len(text.split()) // 3)])
    return {
        "wh": [wh],
        "reverse": [t.format(a=fact.answer) for t in _REVERSE[fact.kind]],
        "cloze": [t.format(b=fact.blanked) for t in _CLOZE],
        "quiz": [quiz_question(fact, pool, rng) for _ in range(2)],
        "paraphrase": [t.format(q=_lower_first(wh)) for t in _PARAPHRASE],
        "continuation": [t.format(s=head) for t in _CONTINUE],
    }


RECALL = "Recall the news and fill the gap: {b}"  # a wording no direction above writes


def recall_probe(fact: Fact) -> tuple[str, str, str]:
    """(question, answer lead-in, answer) to score how likely a model finds a fact: its
    sentence with the span blanked, asked in a wording no training direction uses, then the
    answer as a reply that restates the sentence up to the span ("Zentrix Robotics named" +
    " Mara Okafor"). Only the span is scored, so the measure is the fact itself, not the
    wording around it."""
    head = lead_in(fact)
    return RECALL.format(b=fact.blanked), head or "", (" " + fact.answer) if head else fact.answer


def questions_by_fact(text: str, per_fact: int, max_facts: int, rng: random.Random,
                      held_out: bool = False, directions: Sequence[str] = DIRECTIONS) -> list[list[tuple[str, str]]]:
    """``per_fact`` inputs for each of the item's facts (at most ``max_facts``), one list of
    ``(direction, text)`` per fact, taking the directions in turn so that every fact is asked
    from as many sides as its budget allows.

    Every 4th unique candidate of a fact (its last, if it has fewer than 4) is held out:
    ``held_out=True`` draws from those only, so fidelity is measured on inputs training never saw.
    """
    facts = facts_of(text, max_facts)
    # The candidates are fixed by the text (quiz options included), so the split is stable.
    fixed = random.Random(zlib.crc32(text.encode()))
    candidates = [list(fact_inputs(f, facts, text, fixed).items()) for f in facts]
    if not candidates:  # nothing to key on: ask about the item as a whole
        head = " ".join(text.split()[: max(3, len(text.split()) // 3)])
        candidates = [[("reverse", list(_ABOUT)), ("continuation", [t.format(s=head) for t in _CONTINUE])]]
    out = []
    for by_direction in candidates:
        flat = list(dict.fromkeys((d, q) for d, qs in by_direction for q in qs if d in directions))
        held = {i for i in range(len(flat)) if i % 4 == 3} or ({len(flat) - 1} if len(flat) >= 2 else set())
        mine = [c for i, c in enumerate(flat) if (i in held) == held_out]
        lanes = [[q for dd, q in mine if dd == d] for d in directions]
        for lane in lanes:
            rng.shuffle(lane)
        out.append(_take_turns(directions, lanes, per_fact))
    return out


def _take_turns(directions: Sequence[str], lanes: list[list[str]], n: int) -> list[tuple[str, str]]:
    picked = []
    while len(picked) < n and any(lanes):
        for direction, lane in zip(directions, lanes):
            if lane and len(picked) < n:
                picked.append((direction, lane.pop()))
    return picked


def interleave(lists: Sequence[Sequence]) -> list:
    """The first of each list, then the second of each, and so on."""
    return [lst[r] for r in range(max(map(len, lists), default=0)) for lst in lists if r < len(lst)]


def coverage_questions(text: str, per_fact: int, max_facts: int, rng: random.Random,
                       held_out: bool = False, directions: Sequence[str] = DIRECTIONS) -> list[tuple[str, str]]:
    """:func:`questions_by_fact`, fact after fact in one list."""
    return [q for fact in questions_by_fact(text, per_fact, max_facts, rng, held_out, directions) for q in fact]


_ABOUT = ("What is the latest news you know?", "Tell me something new that happened recently.",
          "Have you heard any news lately?", "What is new in the world?")


_STOPWORDS = {"what", "which", "when", "where", "who", "whom", "whose", "why", "how", "does", "did", "this",
              "that", "these", "those", "there", "their", "about", "with", "from", "into", "have", "been",
              "will", "would", "could", "should", "news", "latest", "recent", "recently", "happened", "were",
              "they", "them", "your", "yours", "reader", "article", "story", "know", "tell"}


def _content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9][a-z0-9'-]{3,}", text.lower()) if w not in _STOPWORDS}


def answerable(question: str, text: str) -> bool:
    """Whether a question the model wrote is about the item: it names one of the item's facts,
    or shares two of its content words. A question about something else (or about nothing in
    particular) teaches the student an answer the item does not hold."""
    keys = [f.answer for f in facts_of(text, 20) if f.kind == "name" or (f.kind == "number" and len(f.answer) >= 3)]
    if any(_bounded(k.lower()).search(question.lower()) for k in keys):
        return True
    return len(_content_words(question) & _content_words(text)) >= 2
