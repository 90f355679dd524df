"""The ``agent`` command line. Every user error ends in a one-line message and exit code 2."""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Optional

import click
import typer
from pydantic import ValidationError
from typer.core import TyperGroup
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from memory.kinds import BAKE_KINDS, ITEM_KINDS, TRUST_LEVELS


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
    from agent.scenario.schema import ScenarioError
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
            console.print(f"{record.name} {verdict}: {record.reason or record.metrics.get('gate', {}).get('reason', '')}")


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


memory_app = typer.Typer(no_args_is_help=True, help="The memory buffer: add, list, show, approve, retire.")
adapters_app = typer.Typer(no_args_is_help=True, help="Adapter versions: list, show, rollback.")
app.add_typer(memory_app, name="memory")
app.add_typer(adapters_app, name="adapters")
HOME = typer.Option(None, "--home", help="runtime folder (default runs/default)")
CONFIG = typer.Option(None, "--runtime-config", help="runtime YAML")


@memory_app.command("add")
def memory_add(
    agent: str = typer.Option(..., "--agent"),
    text: str = typer.Option(..., "--text"),
    kind: str = typer.Option("fact", "--kind", help=", ".join(ITEM_KINDS)),
    source: str = typer.Option("cli", "--source"),
    trust: str = typer.Option("operator", "--trust", help=", ".join(TRUST_LEVELS)),
    create: bool = typer.Option(False, "--create-agent", help="create the agent if it is new"),
    home: Optional[Path] = HOME, runtime_config: Optional[Path] = CONFIG,
) -> None:
    """Add a memory item (pending: served from context until baked)."""
    store = _store(_runtime_config(home, runtime_config))
    result = _guard(lambda: store.add(agent, text, kind, source=source, trust=trust, create_agent=create))
    if result.duplicate:
        console.print(f"duplicate of item {result.item.id} ({result.item.status}); nothing added")
    else:
        held = f"; flagged: {', '.join(result.item.flags)}" if result.item.flags else ""
        console.print(f"added item {result.item.id} for {agent} ({result.item.status}{held})")


@memory_app.command("list")
def memory_list(agent: str = typer.Option(..., "--agent"), status: Optional[str] = typer.Option(None, "--status"),
                home: Optional[Path] = HOME, runtime_config: Optional[Path] = CONFIG) -> None:
    """List an agent's memories with their status."""
    store = _store(_runtime_config(home, runtime_config))
    table = Table("id", "kind", "status", "baked in", "trust", "text")
    for item in _guard(lambda: store.items(agent, status=status)):
        table.add_row(str(item.id), item.kind, item.status, item.baked_in or "", item.trust, item.text[:80])
    console.print(table)


@memory_app.command("show")
def memory_show(item_id: int, home: Optional[Path] = HOME, runtime_config: Optional[Path] = CONFIG) -> None:
    """Show one memory item in full."""
    store = _store(_runtime_config(home, runtime_config))
    console.print_json(json.dumps(_guard(lambda: store.get(item_id)).__dict__))


@memory_app.command("approve")
def memory_approve(item_id: int, home: Optional[Path] = HOME, runtime_config: Optional[Path] = CONFIG) -> None:
    """Approve an item held for review (feed/tool trust, or flagged by the injection screen)."""
    store = _store(_runtime_config(home, runtime_config))
    item = _guard(lambda: store.approve(item_id))
    console.print(f"item {item.id} approved: {item.status} (source {item.source}, trust {item.trust})")


@memory_app.command("retire")
def memory_retire(item_id: int, home: Optional[Path] = HOME, runtime_config: Optional[Path] = CONFIG) -> None:
    """Retire an item: it leaves the context and is never baked again."""
    store = _store(_runtime_config(home, runtime_config))
    item = _guard(lambda: store.retire(item_id))
    console.print(f"item {item.id}: {item.status}")


@adapters_app.command("list")
def adapters_list(agent: str = typer.Option(..., "--agent"), home: Optional[Path] = HOME,
                  runtime_config: Optional[Path] = CONFIG) -> None:
    """List an agent's adapter versions."""
    store = _store(_runtime_config(home, runtime_config))
    table = Table("id", "name", "status", "parent", "items", "fidelity", "reason")
    for a in _guard(lambda: store.adapters(agent)):
        fidelity = a.metrics.get("fidelity")
        table.add_row(str(a.id), a.name, a.status, a.parent or "", ",".join(map(str, a.item_ids)),
                      f"{fidelity:.3f}" if fidelity is not None else "", a.reason or "")
    console.print(table)


@adapters_app.command("show")
def adapters_show(name: str, agent: str = typer.Option(..., "--agent"), home: Optional[Path] = HOME,
                  runtime_config: Optional[Path] = CONFIG) -> None:
    """Show one adapter version: path, parent, items, metrics, verdict."""
    store = _store(_runtime_config(home, runtime_config))
    matches = [a for a in _guard(lambda: store.adapters(agent)) if a.name == name]
    if not matches:
        fail(f"agent {agent!r} has no adapter {name!r}")
    console.print_json(json.dumps(matches[0].__dict__, default=str))


@adapters_app.command("rollback")
def adapters_rollback(name: str, agent: str = typer.Option(..., "--agent"), home: Optional[Path] = HOME,
                      runtime_config: Optional[Path] = CONFIG) -> None:
    """Point the agent back at an earlier version (served at the next `agent serve`)."""
    store = _store(_runtime_config(home, runtime_config))
    record = _guard(lambda: store.rollback(agent, name))
    console.print(f"{agent} now points at {record.name}")


@app.command()
def forget(item_id: int = typer.Argument(..., help="the memory item to remove from memory and weights"),
           no_bake: bool = typer.Option(False, "--no-bake", help="only move the live pointer back; bake later"),
           home: Optional[Path] = HOME, runtime_config: Optional[Path] = CONFIG) -> None:
    """Remove an item from the weights: the agent goes back to the last adapter baked before
    it (or the base model), and the items baked since are baked again without it. A running
    `agent serve` switches to the new pointer at its next poll; the rebake goes live there."""
    config = _runtime_config(home, runtime_config)
    store = _store(config)
    plan = _guard(lambda: store.forget(item_id))
    console.print(f"item {plan.item} forgotten; {plan.agent} now serves "
                  f"{plan.back_to or 'the base model'} (was {plan.was_live or 'the base model'})")
    if plan.requeued and not no_bake:
        console.print(f"rebaking {len(plan.requeued)} item(s) without it: {list(plan.requeued)}")
        _bake_agent(plan.agent, home, runtime_config, None)


@app.command()
def audit(agent: Optional[str] = typer.Option(None, "--agent", help="only this agent's events"),
          kind: list[str] = typer.Option([], "--kind", help="only these kinds (repeatable), e.g. swap"),
          as_json: bool = typer.Option(False, "--json", help="one JSON object per line"),
          last: int = typer.Option(0, "--last", min=0, help="only the last N events"),
          home: Optional[Path] = HOME, runtime_config: Optional[Path] = CONFIG) -> None:
    """The audit log: every claim, bake, gate verdict, swap, rollback, approval and forget."""
    store = _store(_runtime_config(home, runtime_config))
    events = store.events(agent, kind)[-last:] if last else store.events(agent, kind)
    if as_json:
        for e in events:
            typer.echo(json.dumps(e))
        return
    table = Table("time (UTC)", "agent", "event", "details")
    for e in events:
        when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(e["ts"])) + f".{int(e['ts'] % 1 * 1000):03d}Z"
        table.add_row(when, e["agent"] or "", e["kind"], json.dumps(e["data"], default=str))
    console.print(table)


scenario_app = typer.Typer(no_args_is_help=True, help="Scenario files: schema, check.")
app.add_typer(scenario_app, name="scenario")


@scenario_app.command("schema")
def scenario_schema() -> None:
    """Print the scenario JSON Schema (for editor completion)."""
    from agent.scenario.schema import json_schema

    print(json_schema())


@scenario_app.command("check")
def scenario_check(path: Path) -> None:
    """Validate a scenario file; errors give the file, line and field."""
    from agent.scenario.schema import ScenarioError, load_scenario

    try:
        scenario = load_scenario(path)
    except ScenarioError as e:
        fail(str(e))
    console.print(f"{path}: ok ({len(scenario.agents)} agent(s), {len(scenario.timeline)} events)")


@app.command()
def run(
    scenario: Path = typer.Argument(..., help="scenario YAML (see scenarios/)"),
    runs: Path = typer.Option(Path("runs"), "--runs", help="where the run folder is created"),
    engine_url: Optional[str] = typer.Option(None, "--engine-url", help="attach to a running vLLM server"),
    max_scenario_bytes: int = typer.Option(1 << 20, "--max-scenario-bytes", min=1,
                                           help="refuse larger scenario files unread"),
    strict: bool = typer.Option(False, "--strict", help="exit 1 if a bake failed, was stopped or "
                                "refused, or a baked condition could not be measured"),
) -> None:
    """Run a scenario: its timeline against a real runtime; writes runs/<scenario>-<time>/."""
    from agent.serving.engine import EngineError
    from agent.scenario.runner import run_scenario
    from agent.scenario.schema import ScenarioError, load_scenario

    try:
        parsed = load_scenario(scenario, max_scenario_bytes)  # rejected before anything starts
    except ScenarioError as e:
        fail(str(e))
    engine = None
    if engine_url:
        from agent.serving.vllm import VLLMEngine

        try:
            engine = VLLMEngine.attach(engine_url)
        except EngineError as e:
            fail(str(e))
    console.print(f"[bold]{parsed.name}[/]: {len(parsed.agents)} agent(s), {len(parsed.timeline)} events")
    try:
        report = run_scenario(scenario, runs, engine=engine, console=console, max_bytes=max_scenario_bytes)
    except EngineError as e:
        fail(str(e))
    problems = json.loads((report.parent / "report.json").read_text()).get("problems") or []
    if problems:
        console.print(f"\n[bold red]FAILED[/] ({len(problems)} problem(s): {escape(problems[0])}); report: {report}")
        if strict:
            raise typer.Exit(1)
    else:
        console.print(f"\n[bold green]report:[/] {report}")


@app.command()
def report(run_dir: Path = typer.Argument(..., help="a run folder with report.json")) -> None:
    """Re-render a run's report.md and plots from its report.json."""
    from agent.scenario.report import render

    if not (run_dir / "report.json").is_file():
        fail(f"{run_dir} has no report.json (is it a run folder?)")
    console.print(f"report: {render(run_dir)}")


@app.command()
def chat(
    agent: str = typer.Option("assistant", "--agent", help="the agent to talk to (created if new)"),
    persona: Optional[str] = typer.Option(None, "--persona", help="a persona for a new agent"),
    tools: list[str] = typer.Option(["remember", "recall", "clock"], "--tool", help="tools by name (repeatable)"),
    engine_kind: Optional[str] = typer.Option(None, "--engine", help="vllm (default) or transformers"),
    home: Optional[Path] = typer.Option(None, "--home", help="runtime folder (default runs/chat)"),
    runtime_config: Optional[Path] = CONFIG,
) -> None:
    """Chat with an agent. Commands: /remember [kind:] TEXT, /bake, /adapters, /status, /quit."""
    from agent.chat import ChatSession
    from agent.serving.engine import EngineError

    config = _runtime_config(home or Path("runs/chat"), runtime_config)
    if engine_kind:
        try:
            config = config.replace(engine={**config.engine.model_dump(), "kind": engine_kind})
        except ValidationError as e:
            fail(f"bad --engine {engine_kind!r}: {_validation_message(e)}")
    try:
        session = ChatSession.open(config, agent, persona=persona, tools=tools, console=console)
    except EngineError as e:
        fail(str(e))
    except ValueError as e:
        fail(str(e))
    session.repl()


@app.command()
def serve(home: Optional[Path] = HOME, runtime_config: Optional[Path] = CONFIG,
          host: Optional[str] = typer.Option(None, "--host", help="bind address (default 127.0.0.1)"),
          allow_remote: bool = typer.Option(False, "--allow-remote",
                                            help="allow a non-loopback --host; needs $PROMPTBAKE_API_KEY"),
          port: int = typer.Option(8400, "--port", help="the agents' OpenAI-compatible endpoint")) -> None:
    """Start the runtime (vLLM + scheduler) and print where the endpoint is; Ctrl-C stops it.
    It binds to 127.0.0.1 unless --host and --allow-remote say otherwise, and then every request
    needs the API key from $PROMPTBAKE_API_KEY (the config's engine.api_key_env)."""
    import signal
    import threading

    from agent.serving.engine import EngineError
    from agent.serving.vllm import VLLMEngine
    from agent.runtime.runtime import Runtime
    from agent.runtime.scheduler import BakeScheduler

    config = _runtime_config(home, runtime_config)
    if host is not None or allow_remote:
        engine = {**config.engine.model_dump(), **({"host": host} if host else {}),
                  "allow_remote": allow_remote or config.engine.allow_remote}
        try:
            config = config.replace(engine=engine)
        except ValidationError as e:
            fail(f"bad serve options: {_validation_message(e)}")
    # While starting, SIGTERM interrupts like Ctrl-C: the start in progress stops its vLLM.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        runtime = Runtime.open(config)
    except EngineError as e:
        fail(str(e))
    scheduler = BakeScheduler(runtime)
    scheduler.start()
    runtime.supervise()  # restarts vLLM if it dies and reloads the live adapters
    from agent.serving.server import AgentServer

    server = AgentServer(runtime, config.engine.host, port, os.environ.get(config.engine.api_key_env) or None)
    try:
        server.start()
    except EngineError as e:
        scheduler.shutdown(wait=False)
        runtime.close()
        fail(str(e))
    console.print(f"agents' OpenAI-compatible endpoint: {server.url}/v1  (model = an agent's name)")
    if isinstance(runtime.engine, VLLMEngine):
        console.print(f"vLLM endpoint: {runtime.engine.url}/v1  (model 'base' or an adapter name)")
    for name in runtime.store.agents():
        console.print(f"  agent {name}: live adapter {runtime.live_adapter(name) or '(none: base + context)'}")
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):  # systemd, Docker, Kubernetes and kill send SIGTERM
        signal.signal(sig, lambda signum, frame: stopping.set())
    try:
        while not stopping.wait(1):
            pass
        console.print("stopping: in-flight requests finish (10 s at most), then the scheduler and vLLM stop")
    finally:
        server.stop()
        scheduler.shutdown(wait=False)
        runtime.close()


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



if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
