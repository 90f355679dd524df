"""The ``agent`` command line. Every user error ends in a one-line message and exit code 2."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True)
console = Console()
err = Console(stderr=True)


class KindChoice(str, Enum):
    persona = "persona"
    instruction = "instruction"
    news = "news"
    fact = "fact"


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


@app.command()
def bake(
    out: Path = typer.Option(..., "--out", help="adapter folder to write"),
    kind: KindChoice = typer.Option(KindChoice.persona, "--kind", help="what the texts are"),
    text: list[str] = typer.Option([], "--text", help="a prompt to bake (repeatable)"),
    text_file: Optional[Path] = typer.Option(None, "--text-file", help="one prompt per line"),
    config: Optional[Path] = typer.Option(None, "--config", help="BakeConfig YAML"),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:1 ..."),
    parent: Optional[Path] = typer.Option(None, "--parent", help="adapter to continue from"),
    model: Optional[str] = typer.Option(None, "--model", help="model name, HF folder or .gguf"),
    rank: Optional[int] = typer.Option(None, "--rank", help="LoRA rank"),
    half_bake: list[float] = typer.Option([], "--half-bake", help="snapshot fraction (repeatable)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace a non-empty --out"),
    show: int = typer.Option(0, "--show", help="print N held-out answers, parent vs baked"),
) -> None:
    """Bake prompts into a LoRA adapter (Prompt Baking) and write it with bake.json."""
    from baking import BakeConfig, BakeError, PromptItem, bake as run_bake
    from baking.model import ModelError

    texts = list(text)
    if text_file is not None:
        if not text_file.is_file():
            fail(f"--text-file {text_file} does not exist")
        texts += [line for line in text_file.read_text().splitlines() if line.strip()]
    if not texts:
        fail("nothing to bake: give --text TEXT (repeatable) or --text-file FILE")
    try:
        items = [PromptItem(kind=kind.value, text=t) for t in texts]
    except ValidationError as e:
        fail(f"bad --text: {_validation_message(e)}")
    overrides = {
        k: v
        for k, v in {"device": device, "model": model, "lora_rank": rank}.items()
        if v is not None
    }
    if half_bake:
        overrides["half_bake_fractions"] = half_bake
    try:
        base = BakeConfig.from_yaml(config).model_dump() if config else {}
        cfg = BakeConfig(**{**base, **overrides})
    except FileNotFoundError:
        fail(f"--config {config} does not exist")
    except ValidationError as e:
        fail(f"bad bake config: {_validation_message(e)}")
    except ValueError as e:
        fail(str(e))
    try:
        version = run_bake(items, out, cfg, parent=parent, overwrite=overwrite)
    except (BakeError, ModelError) as e:
        fail(str(e))
    _print_summary(version.metrics, version.path)
    if show:
        _show_answers(version, show)


def _print_summary(metrics: dict, path: Path) -> None:
    table = Table(title=f"baked → {path}", show_header=False)
    rows = [
        ("fidelity", f"{metrics['fidelity']:.3f}  (1 − KL(prompted‖baked) / KL(prompted‖parent))"),
        ("KL prompted‖parent", f"{metrics['kl_base']:.4f} nats/token"),
        ("KL prompted‖baked", f"{metrics['kl_baked']:.4f} nats/token"),
        ("wall", f"{metrics['wall_s']:.1f} s  (sampling {metrics['sampling_s']:.1f} s, "
                 f"training {metrics['training_s']:.1f} s)"),
        ("training", f"{metrics['train_tokens_per_s']:.0f} tokens/s, "
                     f"peak share {metrics['peak_share']:.2f} ({metrics['dtype']}, {metrics['device']})"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)


def _show_answers(version, n: int) -> None:
    from baking.evaluate import answer_pairs

    for question, before, after in answer_pairs(version.path, n):
        console.print(f"[bold]Q:[/] {question}")
        console.print(f"  [dim]parent:[/] {before}")
        console.print(f"  [green]baked:[/]  {after}\n")


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
