"""The ``agent`` command line (``agent = "agent.cli:app"``; ``python -m agent.cli``).

``app`` holds the Typer app and what the commands share; each other module registers its
commands on it: ``bake``, ``memory`` (memory, adapters, forget, audit), ``scenario`` (scenario,
run, report) and ``serve`` (chat, serve), in the order ``agent --help`` lists them.
"""

from agent.cli.app import app
from agent.cli import bake, memory, scenario, serve  # noqa: F401,E402 - each registers its commands on app

__all__ = ["app"]
