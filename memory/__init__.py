"""Durable memory buffer and adapter registry in SQLite."""
