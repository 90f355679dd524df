"""`agent run scenario.yaml`: play a scenario's timeline against a real runtime.

The run folder ``runs/<scenario>-<timestamp>/`` is the runtime's home, so it holds the memory
database, the adapters and the logs; the runner adds ``events.jsonl`` (one line per event, as
it happens), ``report.json`` and the rendered ``report.md`` with its PNG plots.

Conditions (for ``ask``, ``probe`` and the conversations probes look at):

- ``base``: the base model, no memories in the prompt;
- ``prompted``: the base model with every memory of the agent in the prompt (persona and
  instructions as the system prompt, news and facts next to the question);
- ``baked``: the agent's live adapter, nothing in the prompt;
- ``baked+prompted``: the live adapter with the memories in the prompt (re-prompting).

Besides those, each agent has its *live* conversation: what the product does, the live
adapter plus the still-pending memories in context, through the tool-using agent loop.
Every sampled call gets a seed derived from the scenario seed, the agent and the turn.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.markup import escape

from agent.loop import Agent
from agent.runtime.config import RuntimeConfig
from agent.runtime.runtime import Runtime
from agent.runtime.scheduler import BakeScheduler
from agent.scenario.bakes import BakeEvents
from agent.scenario.measure import MeasureEvents
from agent.scenario.schema import (AskEvent, BakeEvent, CheckpointEvent, FeedEvent, ProbeEvent, SayEvent, ScaleEvent,
                                   Scenario, ToolEvent, WaitForBakeEvent)
from agent.scenario.state import AgentState
from agent.scenario.talk import TalkEvents
from agent.serving.engine import Completion, Engine
from baking.config import PromptItem
from baking.render import Message, Query, teacher_messages
from tools.registry import ToolContext, build_tools

PROBE_PARALLEL = 8  # requests in flight at once; vLLM batches them


def run_folder(root: Path, name: str) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = root / f"{name}-{stamp}"
    n = 1
    while folder.exists():
        n += 1
        folder = root / f"{name}-{stamp}-{n}"
    folder.mkdir(parents=True)
    return folder


class ScenarioRunner(TalkEvents, MeasureEvents, BakeEvents):
    """Plays a scenario: the core here (set-up, dispatch, report); the events by family in
    ``talk``, ``measure`` and ``bakes``."""

    def __init__(self, scenario: Scenario, folder: Path, engine: Engine | None = None,
                 scenario_path: Path | None = None, console: Console | None = None) -> None:
        self.scenario = scenario
        self.folder = folder
        self.base_dir = scenario_path.parent if scenario_path else Path.cwd()
        self.console = console or Console()
        bake = scenario.bake
        if "seed" not in bake.model_fields_set:
            bake = bake.model_copy(update={"seed": scenario.seed})
        self.config = RuntimeConfig(
            home=folder, model=scenario.model, engine=scenario.engine, gate=scenario.gate,
            schedule=scenario.schedule, bake=bake, max_item_chars=scenario.memory.max_item_chars,
            auto_approve=scenario.memory.auto_approve,
            worker_device=bake.device,
        )
        self.started = time.time()
        self.events_file = open(folder / "events.jsonl", "a")
        self.report: dict[str, Any] = {
            "scenario": {"name": scenario.name, "description": scenario.description,
                         "path": str(scenario_path) if scenario_path else None, "seed": scenario.seed,
                         "model": scenario.model, "engine": scenario.engine.kind},
            "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "agents": [a.name for a in scenario.agents],
            "gate": scenario.gate.model_dump(),
            "asks": [], "probes": [], "scales": [], "swaps": [], "feeds": [], "checkpoints": [],
            "conversations": {}, "bakes": [], "failed_bakes": [], "errors": [], "skipped": [],
            "problems": [],
        }
        self.log("start", folder=str(folder), scenario=scenario.name)
        self.runtime = Runtime.open(self.config, engine)
        settings = getattr(self.runtime.engine, "settings", None)
        if settings is not None:  # a managed vLLM: which dtype it serves in, and why
            self.report["scenario"]["serving_dtype"] = {"dtype": settings.dtype, "reason": settings.dtype_reason}
            self.log("engine", None, f"vLLM --dtype {settings.dtype}: {settings.dtype_reason}")
        self.scheduler = None
        if any([scenario.schedule.bake_every_n_items, scenario.schedule.bake_every_s, scenario.schedule.cron]):
            self.scheduler = BakeScheduler(self.runtime)
        self.agents: dict[str, AgentState] = {}
        self.reported: set[str] = set()  # adapters whose verdict was logged
        for spec in scenario.agents:
            self._create_agent(spec)
        if self.scheduler is not None:
            self.scheduler.start()

    # ----------------------------------------------------------- plumbing
    def log(self, kind: str, agent: str | None = None, line: str | None = None, **data: Any) -> None:
        """One events.jsonl record, and one console line when ``line`` is given."""
        t = round(time.time() - self.started, 2)
        self.events_file.write(json.dumps({"t": t, "event": kind, "agent": agent, **data}, default=str) + "\n")
        self.events_file.flush()
        if line:
            who = f"[cyan]{agent}[/] " if agent else ""
            self.console.print(f"[dim]{t:7.1f}s[/] [bold]{kind:<13}[/] {who}{escape(line)}", highlight=False)

    def _create_agent(self, spec) -> None:
        store = self.runtime.store
        store.create_agent(spec.name)
        if spec.persona:
            store.add(spec.name, spec.persona, "persona", source="scenario", trust="operator")
        for text in spec.instructions:
            store.add(spec.name, text, "instruction", source="scenario", trust="operator")
        context = ToolContext(store=store, agent=spec.name)  # news_path: set by each file feed
        if self.scenario.clock is not None:
            fixed = self.scenario.clock if self.scenario.clock.tzinfo else self.scenario.clock.replace(tzinfo=dt.timezone.utc)
            context.now = lambda: fixed
        tools = build_tools(spec.tools, context)
        engine = self.config.engine
        loop = Agent(model=lambda msgs, name=spec.name, **tooling: self._live_chat(name, msgs, **tooling),
                     tools=tools, tool_calling=engine.tool_calling, tool_choice=engine.tool_choice)
        state = AgentState(loop=loop, tools=context)
        self.agents[spec.name] = state
        self.report["conversations"][spec.name] = {}
        self.log("agent", spec.name, f"persona={'yes' if spec.persona else 'no'}, "
                 f"{len(spec.instructions)} instruction(s), tools: {', '.join(spec.tools) or 'none'}")

    def _live_chat(self, agent: str, messages: list[Message], **tooling: Any) -> Completion:
        return self.runtime.chat(agent, messages, self.agents[agent].live_params, **tooling)

    def prompt_items(self, agent: str) -> list[PromptItem]:
        """Every memory of the agent that a prompt would carry (retired ones excluded; notes as
        facts, as the runtime's context carries them: ``PromptItem.of_memory``)."""
        items = [it for it in self.runtime.store.items(agent) if it.status != "retired"]
        return [PromptItem.of_memory(it) for it in items]

    def has_adapter(self, agent: str, condition: str) -> bool:
        """False for the baked conditions while the agent has no live adapter (they would
        silently be the base model)."""
        return condition not in ("baked", "baked+prompted") or self.runtime.live_adapter(agent) is not None

    def condition_call(self, agent: str, condition: str, conversation: list[Message]) -> tuple[list[Message], str | None]:
        """The messages and adapter for ``conversation`` (ending in a user turn) under ``condition``."""
        items = self.prompt_items(agent) if condition in ("prompted", "baked+prompted") else []
        adapter = self.runtime.live_adapter(agent) if condition in ("baked", "baked+prompted") else None
        query = Query(tuple((m["role"], m["content"]) for m in conversation), tuple(range(len(items))), "scenario")
        return teacher_messages(items, query), adapter

    def _engine(self, method: str, messages: list[Message], adapter: str | None, *args: Any) -> Any:
        """An engine call that holds ``adapter`` loaded until it returns (a concurrent swap
        unloads the old adapter only afterwards)."""
        with self.runtime.using(adapter):
            return getattr(self.runtime.engine, method)(messages, adapter, *args)

    def _parallel(self, calls: list[Callable[[], Any]]) -> list[Any]:
        with ThreadPoolExecutor(PROBE_PARALLEL) as pool:
            return list(pool.map(lambda f: f(), calls))

    # ------------------------------------------------------------- events
    def run(self) -> Path:
        """Play the timeline, wait for outstanding bakes, write the report; returns report.md."""
        handlers = {FeedEvent: self.feed, SayEvent: self.say, AskEvent: self.ask, ProbeEvent: self.probe,
                    BakeEvent: self.bake, WaitForBakeEvent: self.wait_for_bake, ScaleEvent: self.scale,
                    ToolEvent: self.tool, CheckpointEvent: self.checkpoint}
        try:
            for index, event in enumerate(self.scenario.timeline):
                self.index = index
                handlers[type(event)](event)
            for name, state in self.agents.items():
                if state.bake is not None:
                    self.wait_for_bake(WaitForBakeEvent(type="wait_for_bake", agent=name))
        finally:
            for name, state in self.agents.items():
                if state.bake is not None and state.bake.poll() is None:  # the run was interrupted
                    self._stop_worker(name, state, "the scenario run was interrupted")
            if self.scheduler is not None:
                self.scheduler.shutdown(wait=True)
            self.finish()
        from agent.scenario.report import render

        return render(self.folder)

    # ------------------------------------------------------------ finish
    def write_report(self) -> None:
        store = self.runtime.store
        for agent in self.agents:
            self._save_conversations(agent)
            self._log_verdicts(agent)
        self.report["bakes"] = [self._bake_row(r) for a in self.agents for r in store.adapters(a)]
        self.report["failed_bakes"] = [{"agent": r.agent, "run": r.id, "error": r.error, "items": r.item_ids}
                                       for a in self.agents for r in store.runs(a) if r.status == "failed"]
        self.report["problems"] = self.problems()
        self.report["finished_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        self.report["wall_s"] = time.time() - self.started
        tmp = self.folder / "report.json.tmp"
        tmp.write_text(json.dumps(self.report, indent=2, default=str))
        tmp.replace(self.folder / "report.json")

    def problems(self) -> list[str]:
        """What kept the run from showing its main job: bakes that failed, were stopped or were
        refused by the gate, and asks whose baked conditions had no adapter to ask."""
        found = [f"bake run {f['run']} ({f['agent']}) failed: {f['error'][:160]}" for f in self.report["failed_bakes"]]
        # The verdict is the adapter's status; its reason says what refused it (the gate's
        # measures, or the check when it was loaded).
        found += [f"{b['name']} was refused by the gate: {b['reason']}" if b["gate"]["passed"] is False
                  else f"{b['name']} was rejected: {b['reason']}" for b in self.report["bakes"] if b["status"] == "rejected"]
        found += [f"ask '{s['point']}' ({s['agent']}): no live adapter, {', '.join(s['conditions'])} not measured"
                  for s in self.report["skipped"]]
        return found

    def finish(self) -> None:
        try:
            self.write_report()
            problems = self.report["problems"]
            verdict = (f"FAILED: {len(problems)} problem(s), first: {problems[0]}" if problems
                       else "all bakes went live")
            self.log("done", None, f"{time.time() - self.started:.0f} s; {verdict}; report in {self.folder}")
        finally:
            self.events_file.close()
            self.runtime.close()


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_scenario(path: Path, runs_root: Path = Path("runs"), engine: Engine | None = None,
                 console: Console | None = None, max_bytes: int | None = None) -> Path:
    """Validate ``path`` (a ScenarioError before anything starts), run it, return report.md."""
    from agent.scenario.load import MAX_SCENARIO_BYTES, load_scenario

    scenario = load_scenario(path, max_bytes or MAX_SCENARIO_BYTES)
    # SIGTERM ends the run like Ctrl-C: the report is written and the vLLM server is stopped.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    folder = run_folder(runs_root, scenario.name)
    shutil.copy(path, folder / "scenario.yaml")
    runner = ScenarioRunner(scenario, folder, engine=engine, scenario_path=Path(path), console=console)
    return runner.run()
