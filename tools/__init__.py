"""The agent's tools, written with langchain-core's ``@tool`` and chosen by name in config.

    build_tools(["remember", "recall", "clock"], ToolContext(store=store, agent="ada"))
"""

from tools.registry import TOOL_NAMES, ToolContext, build_tools

__all__ = ["TOOL_NAMES", "ToolContext", "build_tools"]
