"""Screening memory items for prompt injection before they can reach the model.

News and facts are information. Text inside them that speaks to the model (orders it about,
claims a new role, fakes chat-template tokens) is what a poisoned headline looks like. Such
items are flagged and held for review; they reach neither the context nor the weights until
an operator approves them. The patterns are deliberately plain and few: a screen for the
obvious cases, not a guarantee.
"""

from __future__ import annotations

import re

# Kinds whose text should be information, not instructions to the model.
INFORMATION_KINDS = ("news", "fact", "note")

_PATTERNS: tuple[tuple[str, str], ...] = (
    ("ignore previous instructions",
     r"\b(ignore|disregard|forget|override)\b[^.!?\n]{0,30}\b(previous|prior|above|earlier|all|your|system)\b"
     r"[^.!?\n]{0,20}\b(instructions?|prompts?|rules|guidelines|directions)\b"),
    ("claims a new role", r"\byou are now\b|\bfrom now on,? you\b|\bact as (an?|the) \b|\bpretend (to be|you are)\b"),
    ("orders the model", r"\b(assistants?|chatbots?|language models?|AI models?|the model|LLMs?)\b[^.!?\n]{0,25}"
                         r"\b(must|should|shall|always|never)\b"),
    ("speaks to the model", r"\b(when|if) (you are|you're) asked\b|\b(always|never) (answer|respond|reply|say|tell)\b"
                            r"|\b(respond|reply|answer) only (with|in)\b"),
    ("mentions the system prompt", r"\bsystem (prompt|message|instructions?)\b|\bdeveloper mode\b|\bjailbreak\b"),
    ("chat-template tokens", r"<\|[a-z_]+\|>|\[/?INST\]|<</?SYS>>|^\s*(system|assistant)\s*:"),
)
_COMPILED = tuple((reason, re.compile(pattern, re.IGNORECASE | re.MULTILINE)) for reason, pattern in _PATTERNS)


def injection_flags(text: str, kind: str) -> list[str]:
    """Why ``text`` looks like an instruction aimed at the model (empty: it does not). Only
    information kinds are screened: a persona or instruction item is meant to instruct, and
    who may add one is decided by trust, not by its wording."""
    if kind not in INFORMATION_KINDS:
        return []
    return [reason for reason, pattern in _COMPILED if pattern.search(text)]
