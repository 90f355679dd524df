"""The ``agent`` app: its error boundary (every user error ends in a one-line message and exit
code 2), and what its commands share: ``fail``, the runtime config, the store."""

from __future__ import annotations

import importlib
import os
from enum import Enum
from pathlib import Path

import click
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
import typer
from typer.core import TyperGroup

from memory.kinds import BAKE_KINDS


# Exits and usage errors pass through to the CLI framework (typer vendors its own click).
def _vendored_click_exception() -> tuple[type, ...]:
    try:  # typer >= 0.2x vendors click; older ones use click itself (already listed)
        return (importlib.import_module("typer._click").ClickException,)
    except (ImportError, AttributeError):
        return ()


_PASS_THROUGH = (typer.Exit, typer.Abort, click.exceptions.Exit, click.ClickException, click.exceptions.Abort,
                 *_vendored_click_exception())


class _ErrorBoundary(TyperGroup):
    """Every command runs inside this: a user error (bad input, a refused item, an engine
    that cannot start, a failed bake) is one line on stderr and exit code 2; anything else is
    one line and exit code 1, with the traceback kept in a file for a bug report."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except _PASS_THROUGH:
            raise
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130)
        except Exception as e:  # noqa: BLE001 - the boundary: nothing escapes as a traceback
            message = user_error(e)
            if message is not None:
                err.print(f"[bold red]error:[/] {escape(message)}")
                raise typer.Exit(2)
            err.print(f"[bold red]internal error:[/] {escape(f'{type(e).__name__}: {e}')} "
                      f"(traceback in {_save_traceback(e)})")
            raise typer.Exit(1)


def user_error(e: Exception) -> str | None:
    """The one-line message for an error the user can act on, or None for a bug."""
    from agent.serving.engine import EngineError
    from agent.scenario.load import ScenarioError
    from baking import BakeError
    from baking.model import ModelError
    from memory import MemoryInputError

    if isinstance(e, ValidationError):
        return _validation_message(e)
    if isinstance(e, (BakeError, ModelError, MemoryInputError, EngineError, ScenarioError, OSError)):
        return str(e) or type(e).__name__
    return None


def _save_traceback(e: Exception) -> Path:
    import tempfile
    import traceback

    fd, path = tempfile.mkstemp(prefix="promptbake-error-", suffix=".txt")
    with os.fdopen(fd, "w") as out:
        out.write("".join(traceback.format_exception(e)))
    return Path(path)


app = typer.Typer(add_completion=False, no_args_is_help=True, cls=_ErrorBoundary)
console = Console()
err = Console(stderr=True, soft_wrap=True)  # an error is one line, however long


KindChoice = Enum("KindChoice", {kind: kind for kind in BAKE_KINDS}, type=str)  # what `agent bake` takes


@app.callback()
def root() -> None:
    """promptbake: bake prompts, memories and news into LoRA adapters; serve them on vLLM."""


def fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(2)


def _validation_message(e: ValidationError) -> str:
    parts = []
    for problem in e.errors():
        where = ".".join(str(p) for p in problem["loc"]) or "value"
        parts.append(f"{where}: {problem['msg']}")
    return "; ".join(parts)



def _runtime_config(home: Path | None, config_path: Path | None):
    from agent.runtime.config import RuntimeConfig

    try:
        config = RuntimeConfig.from_yaml(config_path) if config_path else RuntimeConfig()
        if home is not None:
            config = config.replace(home=home)
    except FileNotFoundError:
        fail(f"--runtime-config {config_path} does not exist")
    except ValidationError as e:
        fail(f"bad runtime config: {_validation_message(e)}")
    return config


def _store(config):
    import sqlite3

    from memory import MemoryStore

    try:
        return MemoryStore(config.db_path, max_item_chars=config.max_item_chars, auto_approve=config.auto_approve)
    except (OSError, sqlite3.Error) as e:
        fail(f"cannot open the memory store {config.db_path}: {e}")


def _guard(action):
    """Run ``action``; a refused input becomes a one-line error and exit code 2."""
    from memory import MemoryInputError

    try:
        return action()
    except MemoryInputError as e:
        fail(str(e))



HOME = typer.Option(None, "--home", help="runtime folder (default runs/default)")
CONFIG = typer.Option(None, "--runtime-config", help="runtime YAML")
