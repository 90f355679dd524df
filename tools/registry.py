"""Tool construction by name. Tools close over a small context (store, agent, feed path)."""

from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from langchain_core.tools import BaseTool, tool

from memory import MemoryStore


@dataclass
class ToolContext:
    store: MemoryStore | None = None
    agent: str | None = None
    news_path: Path | None = None  # a JSONL/RSS file or a folder of them
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)


def _remember(ctx: ToolContext) -> BaseTool:
    @tool
    def remember(text: str, kind: str = "fact") -> str:
        """Save something to your memory so it is baked into your weights later.

        Args:
            text: what to remember, one self-contained sentence.
            kind: one of fact, news, instruction, persona, note.
        """
        result = ctx.store.add(ctx.agent, text, kind, source="tool:remember", trust="tool")
        if result.duplicate:
            return f"already remembered as item {result.item.id} ({result.item.status})"
        if result.item.status == "review":
            return f"remembered as item {result.item.id}; it waits for an operator's approval before it is used"
        return f"remembered as item {result.item.id} (pending)"

    return remember


def _recall(ctx: ToolContext) -> BaseTool:
    @tool
    def recall(query: str) -> str:
        """List your memories that contain the query, with their status.

        Args:
            query: words to look for.
        """
        items = ctx.store.items(ctx.agent, query=query)
        if not items:
            return f"no memory matches {query!r}"
        return "\n".join(f"[{i.id}] ({i.kind}, {i.status}) {i.text}" for i in items[:10])

    return recall


MAX_FEED_BYTES = 16 << 20  # per feed file


def read_headlines(path: Path, max_bytes: int = MAX_FEED_BYTES) -> list[dict[str, str]]:
    """Headlines from a JSONL file ({"title", "summary"?, "date"?}), an RSS/Atom file, or a
    folder of them (sorted by file name). A file over ``max_bytes`` is refused unread."""
    path = Path(path)
    if path.is_dir():
        return [h for f in sorted(path.iterdir()) if f.suffix in (".jsonl", ".xml", ".rss")
                for h in read_headlines(f, max_bytes)]
    if path.stat().st_size > max_bytes:
        raise ValueError(f"{path}: {path.stat().st_size} bytes is over the {max_bytes}-byte feed file limit")
    if path.suffix == ".jsonl":
        rows = []
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{n}: not JSON: {e.msg}") from e
                if not isinstance(row, dict) or "title" not in row:
                    raise ValueError(f"{path}:{n}: a headline is an object with a 'title' field")
                rows.append({k: str(v) for k, v in row.items()})
        return rows
    root = ET.parse(path).getroot()
    rows = []
    for entry in root.iter():
        if entry.tag.split("}")[-1] in ("item", "entry"):
            fields = {child.tag.split("}")[-1]: (child.text or "").strip() for child in entry}
            rows.append({"title": fields.get("title", ""), "summary": fields.get("description", fields.get("summary", "")),
                         "date": fields.get("pubDate", fields.get("updated", ""))})
    return rows


def _news_feed(ctx: ToolContext) -> BaseTool:
    @tool
    def news_feed(limit: int = 5) -> str:
        """Read the latest headlines from the news feed.

        Args:
            limit: how many headlines to return.
        """
        if ctx.news_path is None:
            return "no news feed is configured"
        headlines = read_headlines(ctx.news_path)[-limit:]
        return "\n".join(f"- {h['title']}" + (f": {h['summary']}" if h.get("summary") else "") for h in headlines)

    return news_feed


def _clock(ctx: ToolContext) -> BaseTool:
    @tool
    def clock() -> str:
        """The current date and time (UTC)."""
        return ctx.now().strftime("%Y-%m-%d %H:%M UTC (%A)")

    return clock


_BUILDERS: dict[str, Callable[[ToolContext], BaseTool]] = {
    "remember": _remember,
    "recall": _recall,
    "news_feed": _news_feed,
    "clock": _clock,
}
TOOL_NAMES = tuple(_BUILDERS)


def build_tools(names: list[str], ctx: ToolContext) -> dict[str, BaseTool]:
    unknown = [n for n in names if n not in _BUILDERS]
    if unknown:
        raise ValueError(f"unknown tool(s) {unknown}; available: {', '.join(TOOL_NAMES)}")
    return {name: _BUILDERS[name](ctx) for name in names}
