"""What the scenario runner keeps per agent, and the seeds of its sampled calls."""

from __future__ import annotations

import subprocess
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.loop import Agent
from agent.scenario.schema import ProbeEvent
from agent.serving.engine import SamplingParams
from baking.render import Message
from tools.registry import ToolContext


def seed_for(*parts: Any) -> int:
    """A stable 31-bit seed from the scenario seed and the call's coordinates."""
    return zlib.crc32(":".join(map(str, parts)).encode()) & 0x7FFFFFFF



@dataclass
class AgentState:
    loop: Agent
    turn: int = 0
    conversations: dict[str, list[Message]] = field(default_factory=dict)  # condition -> turns
    probes: list[tuple[int, ProbeEvent]] = field(default_factory=list)
    bake: subprocess.Popen | None = None
    bake_progress: Path | None = None
    bakes_started: int = 0
    live_params: SamplingParams = SamplingParams()
    tools: ToolContext | None = None
