"""`agent chat`: an interactive session with one agent on the runtime.

Plain lines go to the agent (its live adapter + pending memories, through the tool loop).
Commands:

    /remember [kind:] TEXT   add a memory (kind: fact, news, persona, instruction, note)
    /bake                    bake the pending memories now (a worker process) and swap in
    /adapters                the agent's adapter versions
    /status                  live adapter, pending memories, engine
    /help, /quit
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from agent.runtime.config import RuntimeConfig
from agent.serving.engine import REPLY_PARAMS, EngineError, SamplingParams
from agent.loop import Agent
from agent.runtime.runtime import Runtime
from memory import MemoryInputError
from memory.kinds import ITEM_KINDS
from tools.registry import ToolContext, build_tools



@dataclass
class ChatSession:
    runtime: Runtime
    agent: str
    loop: Agent
    console: Console
    params: SamplingParams = REPLY_PARAMS

    @classmethod
    def open(cls, config: RuntimeConfig, agent: str, persona: str | None = None,
             tools: Iterable[str] = (), console: Console | None = None) -> "ChatSession":
        runtime = Runtime.open(config)
        store = runtime.store
        if agent not in store.agents():
            store.create_agent(agent)
            if persona:
                store.add(agent, persona, "persona", source="chat", trust="operator")
        session = cls(runtime, agent, None, console or Console())  # type: ignore[arg-type]
        toolset = build_tools(list(tools), ToolContext(store=store, agent=agent))
        session.loop = Agent(model=lambda messages, **tooling: runtime.chat(agent, messages, session.params, **tooling),
                             tools=toolset, tool_calling=config.engine.tool_calling,
                             tool_choice=config.engine.tool_choice)
        return session

    def handle(self, line: str) -> bool:
        """One input line; False when the session should end."""
        line = line.strip()
        if not line:
            return True
        if line.startswith("/"):
            command, _, rest = line.partition(" ")
            handler: Callable[[str], bool | None] | None = {
                "/remember": self._remember, "/bake": self._bake, "/adapters": self._adapters,
                "/status": self._status, "/help": self._help, "/quit": lambda _: False, "/exit": lambda _: False,
            }.get(command)
            if handler is None:
                self.console.print(f"unknown command {command}; /help lists them")
                return True
            return handler(rest.strip()) is not False
        try:
            steps = self.loop.run(line)
        except EngineError as e:
            self.console.print(f"[red]engine error:[/] {escape(str(e))}")
            return True
        for step in steps:
            for call, observation in zip(step.tool_calls, step.observations):
                self.console.print(f"[dim]  {escape(f'{call.name}({call.args}) -> {observation.content}')}[/]")
        final = steps[-1]
        self.console.print(f"[bold]{self.agent}[/] [dim]({final.adapter or 'base + context'})[/]: {escape(final.output)}")
        return True

    def _remember(self, rest: str) -> None:
        kind, text = "fact", rest
        head, sep, tail = rest.partition(":")
        if sep and head.strip() in ITEM_KINDS:
            kind, text = head.strip(), tail.strip()
        try:
            result = self.runtime.store.add(self.agent, text, kind, source="chat", trust="operator")
        except MemoryInputError as e:
            self.console.print(f"[red]refused:[/] {escape(str(e))}")
            return
        state = "duplicate of" if result.duplicate else "added as"
        self.console.print(f"{state} item {result.item.id} ({kind}, {result.item.status})")

    def _bake(self, _: str) -> None:
        pending = [i for i in self.runtime.store.items(self.agent, status="pending") if i.kind != "note"]
        if not pending:
            self.console.print("nothing pending to bake (notes are never baked)")
            return
        before = {a.id for a in self.runtime.store.adapters(self.agent)}
        try:
            with self.console.status(f"baking {len(pending)} item(s) in a worker process…"):
                process = self.runtime.bake(self.agent)
        except EngineError as e:
            self.console.print(f"[red]the new adapter could not be served:[/] {escape(str(e))}")
            return
        new = [a for a in self.runtime.store.adapters(self.agent) if a.id not in before]
        if not new:
            self.console.print(f"[red]the bake failed[/] (worker exit code {process.returncode}); the items "
                               f"stay pending. Log: {self.runtime.config.home / 'logs'}")
            return
        live = self.runtime.store.live(self.agent)
        self.console.print(escape(f"{new[-1].name}: {new[-1].status} ({new[-1].reason or ''}); "
                                  f"live: {live.name if live else 'none'}"))

    def _adapters(self, _: str) -> None:
        table = Table("name", "status", "items", "fidelity", "reason")
        for a in self.runtime.store.adapters(self.agent):
            f = a.metrics.get("fidelity")
            table.add_row(a.name, a.status, ",".join(map(str, a.item_ids)), f"{f:.3f}" if f is not None else "",
                          a.reason or "")
        self.console.print(table)

    def _status(self, _: str) -> None:
        store = self.runtime.store
        counts = {s: len(store.items(self.agent, status=s)) for s in ("pending", "baking", "baked")}
        engine = getattr(self.runtime.engine, "url", type(self.runtime.engine).__name__)
        self.console.print(f"agent {self.agent}: live {self.runtime.live_adapter(self.agent) or 'none'}; "
                           f"memories {counts}; engine {engine}")

    def _help(self, _: str) -> None:
        self.console.print(__doc__.split("Commands:")[1].rstrip())

    def repl(self, lines: Iterable[str] | None = None) -> None:
        """Read lines (stdin by default) until /quit or end of input; then close the runtime."""
        try:
            self._status("")
            if lines is None:
                while True:
                    try:
                        line = self.console.input("[bold green]you>[/] ")
                    except EOFError:
                        break
                    if not self.handle(line):
                        break
            else:
                for line in lines:
                    if not self.handle(line):
                        break
        except KeyboardInterrupt:
            pass
        finally:
            self.runtime.close()
