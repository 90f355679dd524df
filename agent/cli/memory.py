"""``agent memory``, ``agent adapters``, ``agent forget`` and ``agent audit``: the memory buffer,
the adapter versions, un-baking an item and the audit log."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

from rich.table import Table
import typer

from agent.cli.app import CONFIG, HOME, _guard, _runtime_config, _store, app, console, fail
from agent.cli.bake import _bake_agent
from memory.kinds import ITEM_KINDS, TRUST_LEVELS


memory_app = typer.Typer(no_args_is_help=True, help="The memory buffer: add, list, show, approve, retire.")
adapters_app = typer.Typer(no_args_is_help=True, help="Adapter versions: list, show, rollback.")
app.add_typer(memory_app, name="memory")
app.add_typer(adapters_app, name="adapters")


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
