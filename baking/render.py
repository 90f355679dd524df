"""Render teacher and student prompts by item kind.

- Personas and instructions go in the system prompt.
- News and facts go as a context block in the last user turn, next to the question: the 135M
  default model uses in-context news reliably only there, not in the system prompt.

The student sees the same conversation with none of the baked items: no system prompt of ours
(the chat template's default, if any, applies) and no context block.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from baking.config import CONTEXT_KINDS, SYSTEM_KINDS, PromptItem

Message = dict[str, str]


@dataclass(frozen=True)
class Query:
    """One user input x: a conversation ending in a user turn, without any baked item.

    ``context`` lists indices into the bake's items whose news/fact text the teacher sees next
    to the last user turn; personas and instructions always apply.
    """

    messages: tuple[tuple[str, str], ...]  # ((role, content), ...), last role == "user"
    context: tuple[int, ...] = ()
    source: str = "generic"

    def __post_init__(self) -> None:
        if not self.messages or self.messages[-1][0] != "user":
            raise ValueError(f"a query must end with a user turn, got {self.messages!r}")

    @classmethod
    def single(cls, text: str, context: tuple[int, ...] = (), source: str = "generic") -> "Query":
        return cls((("user", text),), context, source)

    @property
    def text(self) -> str:
        return self.messages[-1][1]


def system_prompt(items: Sequence[PromptItem]) -> str | None:
    """The persona and instruction texts, joined; None when there are none."""
    parts = [item.text for item in items if item.kind in SYSTEM_KINDS]
    return "\n".join(parts) if parts else None


def context_block(texts: Sequence[str]) -> str:
    lines = "\n".join(f"- {t}" for t in texts)
    return f"Recent news and facts you know:\n{lines}\n\n"


def teacher_messages(items: Sequence[PromptItem], query: Query) -> list[Message]:
    """The prompted conversation: system prompt from personas/instructions, context block from
    the query's news/fact items in front of the last user turn."""
    return with_items(items, query.context, [{"role": r, "content": c} for r, c in query.messages])


def with_items(items: Sequence[PromptItem], context: Sequence[int], messages: list[dict]) -> list[dict]:
    """``messages`` with the items rendered in: personas and instructions as the system prompt,
    the news/fact items listed in ``context`` in front of the last user turn. Other turns (e.g.
    OpenAI tool calls and results when serving) pass through unchanged."""
    messages = [dict(m) for m in messages]
    texts = [items[i].text for i in context if items[i].kind in CONTEXT_KINDS]
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
    if texts and last_user is not None:
        messages[last_user]["content"] = context_block(texts) + (messages[last_user]["content"] or "")
    system = system_prompt(items)
    return ([{"role": "system", "content": system}] if system else []) + messages


def student_messages(query: Query) -> list[Message]:
    """The un-prompted conversation the baked model must answer alike."""
    return [{"role": r, "content": c} for r, c in query.messages]


def encode(tokenizer, messages: list[Message], add_generation_prompt: bool = True) -> list[int]:
    """Token ids of ``messages``, by default with the assistant generation prompt appended."""
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, tokenize=True)
    if isinstance(ids, dict) or hasattr(ids, "input_ids"):  # some versions return a BatchEncoding
        ids = ids["input_ids"]
    return list(ids)


def encode_conversation(tokenizer, messages: list[Message]) -> tuple[list[int], list[int]]:
    """Token ids of a conversation, and the positions of every assistant turn's tokens: its
    text and its end-of-turn token, where a bake puts its loss (not the template's newline).

    Raises ValueError if the template does not render a conversation's prefixes as prefixes of
    its ids (a template that rewrites earlier turns), since the positions would then be wrong.
    """
    ids = encode(tokenizer, messages, add_generation_prompt=False)
    positions: list[int] = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prefix = encode(tokenizer, messages[:i])
        start, end = len(prefix), len(encode(tokenizer, messages[: i + 1], add_generation_prompt=False))
        if ids[:start] != prefix or end > len(ids):
            raise ValueError("the chat template does not render a conversation's turns as prefixes")
        turn = ids[start:end]
        if tokenizer.eos_token_id in turn:
            end = start + turn.index(tokenizer.eos_token_id) + 1
        positions += range(start, end)
    return ids, positions
