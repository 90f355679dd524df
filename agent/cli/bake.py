"""``agent bake``: prompts or an agent's pending memories into an adapter, with a summary."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from pydantic import ValidationError
from rich.table import Table
import typer

from agent.cli.app import KindChoice, _guard, _runtime_config, _store, _validation_message, app, console, fail


@app.command()
def bake(
    out: Optional[Path] = typer.Option(None, "--out", help="adapter folder to write"),
    agent: Optional[str] = typer.Option(None, "--agent", help="bake this agent's pending memories"),
    home: Optional[Path] = typer.Option(None, "--home", help="runtime folder (with --agent)"),
    runtime_config: Optional[Path] = typer.Option(None, "--runtime-config", help="runtime YAML (with --agent)"),
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
    """Bake prompts into a LoRA adapter (Prompt Baking) and write it with bake.json.

    With --agent, bake that agent's pending memories in a worker process instead; the result
    is gated and goes live in the serving runtime (now if `agent serve` runs, else at its start).
    """
    from baking import BakeConfig, BakeError, PromptItem, bake as run_bake
    from baking.model import ModelError

    if agent is not None:
        _bake_agent(agent, home, runtime_config, device)
        return
    if out is None:
        fail("give --out DIR (bake texts) or --agent NAME (bake an agent's pending memories)")

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
    except (BakeError, ModelError, ValueError) as e:  # ValueError: e.g. a --device not on this host
        fail(str(e))
    _print_summary(version.metrics, version.path)
    if show:
        _show_answers(version, show)


def _bake_agent(agent: str, home: Path | None, config_path: Path | None, device: str | None) -> None:
    from agent.runtime.worker import run_worker

    config = _runtime_config(home, config_path)
    if device:
        config = config.replace(worker_device=device)
    store = _store(config)
    _guard(lambda: store.require_agent(agent))
    before = {a.id for a in store.adapters(agent)}
    try:
        run_worker(config, agent, progress=True)
    except Exception as e:  # noqa: BLE001 - the worker recorded it; its items are pending again
        fail(f"the bake of {agent} failed ({type(e).__name__}: {e}); its items are back to pending "
             "and are served from context")
    for record in store.adapters(agent):
        if record.id not in before:
            verdict = "passed the gate" if record.status == "candidate" else f"was {record.status}"
            console.print(f"{record.name} {verdict}: {record.reason or ''}")



def _print_summary(metrics: dict, path: Path) -> None:
    table = Table(title=f"baked → {path}", show_header=False)
    rows = [
        ("fidelity", f"{metrics['fidelity']:.3f}  (1 − KL(prompted‖baked) / KL(prompted‖parent))"),
        ("KL prompted‖parent", f"{metrics['kl_base']:.4f} nats/token"),
        ("KL prompted‖baked", f"{metrics['kl_baked']:.4f} nats/token"),
        ("wall", f"{metrics['wall_s']:.1f} s  (sampling {metrics['sampling_s']:.1f} s, "
                 f"training {metrics['training_s']:.1f} s; estimated {metrics['estimate_s']:.0f} s)"),
        ("training", f"{metrics['train_tokens_per_s']:.0f} tokens/s, peak share {metrics['peak_share']:.2f} "
                     f"of {metrics['peak_flops'] / 1e9:.0f} GFLOP/s ({metrics['dtype']}, {metrics['device']})"),
        ("precision", f"{metrics['dtype']}: {metrics['dtype_reason']}"),
    ]
    if metrics.get("fact_recall") is not None:
        rows.insert(1, ("fact recall", f"{metrics['fact_recall']:.3f}  (share of the prompt's gain in the "
                                       f"new facts' log-likelihood: {metrics['fact_gain_baked']:.2f} of "
                                       f"{metrics['fact_gain_teacher']:.2f} nats per fact)"))
    if metrics.get("num_conversations"):
        rows.append(("conversations", f"{metrics['num_conversations']} × {metrics['conversation_turns']} turns, "
                                      "KL on every assistant turn"))
    if metrics.get("facts_per_item"):
        facts = metrics["facts_per_item"]
        rows.append(("coverage", f"{sum(facts)} facts in {len(facts)} items × {metrics['queries_per_fact']} "
                                 "inputs per fact"))
    if metrics.get("inputs_by_source"):
        rows.append(("inputs", ", ".join(f"{k} {v}" for k, v in metrics["inputs_by_source"].items())))
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)


def _show_answers(version, n: int) -> None:
    from baking.evaluate import answer_pairs

    for question, before, after in answer_pairs(version.path, n):
        console.print(f"[bold]Q:[/] {question}")
        console.print(f"  [dim]parent:[/] {before}")
        console.print(f"  [green]baked:[/]  {after}\n")
