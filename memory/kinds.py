"""The one vocabulary of memory items and adapters: what an item is, how far it is trusted, and
where an item or an adapter stands. Everything else (the store, the baker's ``PromptItem``, the
scenario schema, the CLI and chat) uses these, and derives any tuple it needs with ``get_args``.
No imports of ours: ``baking`` and ``agent`` both depend on it."""

from __future__ import annotations

from typing import Literal, get_args

# What a bake takes (baking.PromptItem): personas and instructions go to the system prompt,
# news and facts next to the question (baking.config.SYSTEM_KINDS / CONTEXT_KINDS).
BakeKind = Literal["persona", "instruction", "news", "fact"]
# What memory holds: the bakeable kinds, plus notes, which stay in context and are never baked.
ItemKind = Literal[BakeKind, "note"]
Trust = Literal["operator", "user", "tool", "feed"]  # who said it; feed and tool wait for review
ItemStatus = Literal["review", "pending", "baking", "baked", "retired", "forgotten"]
AdapterStatus = Literal["candidate", "live", "rejected", "retired"]

BAKE_KINDS: tuple[str, ...] = get_args(BakeKind)
ITEM_KINDS: tuple[str, ...] = get_args(ItemKind)
TRUST_LEVELS: tuple[str, ...] = get_args(Trust)
