"""Durable memory buffer and adapter registry in SQLite."""

from memory.store import (
    AdapterRecord,
    AddResult,
    BakeRun,
    MemoryInputError,
    MemoryItem,
    MemoryStore,
)

__all__ = ["AdapterRecord", "AddResult", "BakeRun", "MemoryInputError", "MemoryItem", "MemoryStore"]
