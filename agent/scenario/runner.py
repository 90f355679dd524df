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
import random
import shutil
import signal
import subprocess
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.markup import escape

from agent.runtime.config import RuntimeConfig
from agent.serving.engine import Completion, Engine, SamplingParams
from agent.scenario.judges import JUDGES, mc_loglik
from agent.loop import Agent, to_chat_dicts
from agent.runtime.runtime import Runtime
from agent.scenario.schema import (
    AskEvent, BakeEvent, CheckpointEvent, FeedEvent, Judge, ProbeEvent, Question, SayEvent,
    ScaleEvent, Scenario, ToolEvent, WaitForBakeEvent,
)
from agent.runtime.scheduler import BakeScheduler, enough_pending
from agent.runtime.worker import BakeWatch, fail_worker_run, read_progress
from baking.config import PromptItem
from baking.cost import BakeEstimate
from baking.render import Message, Query, teacher_messages
from memory import MemoryInputError
from tools.registry import ToolContext, build_tools, read_headlines

PROBE_PARALLEL = 8  # requests in flight at once; vLLM batches them


def seed_for(*parts: Any) -> int:
    """A stable 31-bit seed from the scenario seed and the call's coordinates."""
    return zlib.crc32(":".join(map(str, parts)).encode()) & 0x7FFFFFFF


def run_folder(root: Path, name: str) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = root / f"{name}-{stamp}"
    n = 1
    while folder.exists():
        n += 1
        folder = root / f"{name}-{stamp}-{n}"
    folder.mkdir(parents=True)
    return folder


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


class ScenarioRunner:
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

    def feed(self, event: FeedEvent) -> None:
        added, duplicates, refused, review = [], 0, [], []
        entries: list[tuple[str, str, str, str]] = []  # text, kind, source, trust
        for item in event.items:
            text, kind = (item, event.kind) if isinstance(item, str) else (item.text, item.kind)
            entries.append((text, kind, "scenario", "operator"))
        if event.file is not None:
            path = self.base_dir / event.file
            self.agents[event.agent].tools.news_path = path  # what the news_feed tool reads from now on
            for h in read_headlines(path):
                text = h["title"] + (f": {h['summary']}" if h.get("summary") else "")
                entries.append((text, event.kind, f"feed:{event.file}", "feed"))
        for text, kind, source, trust in entries:
            try:
                result = self.runtime.store.add(event.agent, text, kind, source=source, trust=trust)
            except MemoryInputError as e:  # refused with the reason; the run goes on
                refused.append({"text": text[:200], "reason": str(e)})
                continue
            if result.duplicate:
                duplicates += 1
            elif result.item.status == "review":
                review.append({"id": result.item.id, "text": text[:200], "trust": trust,
                               "flags": list(result.item.flags)})
            else:
                added.append(result.item.id)
        self.report["feeds"].append({"agent": event.agent, "event": self.index, "added": added,
                                     "duplicates": duplicates, "refused": refused, "review": review})
        extra = f", {duplicates} duplicate(s)" if duplicates else ""
        extra += (f", {len(review)} held for review (trust {review[0]['trust']}"
                  + (f", flagged: {', '.join(review[0]['flags'])}" if review[0]["flags"] else "") + ")") if review else ""
        extra += f", {len(refused)} refused: {refused[0]['reason']}" if refused else ""
        self.log("feed", event.agent, f"{len(added)} item(s) added (pending, in context until baked){extra}",
                 added=added, duplicates=duplicates, refused=refused)

    # -------------------------------------------------------- conversation
    def say(self, event: SayEvent) -> None:
        state = self.agents[event.agent]
        turns = len(event.messages) if event.messages else event.simulator.turns
        conditions = sorted({c for _, p in state.probes for c in p.conditions})
        for condition in conditions:
            state.conversations.setdefault(condition, [])
        for i in range(turns):
            seed = seed_for(self.scenario.seed, event.agent, state.turn)
            live_history = [m for m in to_chat_dicts(state.loop.history) if m["role"] in ("user", "assistant")]
            if event.messages:
                users = {c: event.messages[i] for c in ["live", *conditions]}
            else:  # each conversation has its own simulated user, who reacts to that conversation
                histories = {"live": live_history, **{c: state.conversations[c] for c in conditions}}
                simulated = self._parallel([lambda h=h: self._simulate_user(event, h, seed) for h in histories.values()])
                users = dict(zip(histories, simulated))
            user = users["live"]
            params = SamplingParams(temperature=event.temperature, max_tokens=event.max_tokens, seed=seed)
            state.live_params = params
            steps = state.loop.run(user)

            def reply(condition: str) -> str:
                conversation = state.conversations[condition] + [{"role": "user", "content": users[condition]}]
                messages, adapter = self.condition_call(event.agent, condition, conversation)
                return self._engine('chat', messages, adapter, params).text

            answers = self._parallel([lambda c=c: reply(c) for c in conditions])
            for condition, answer in zip(conditions, answers):
                state.conversations[condition] += [{"role": "user", "content": users[condition]},
                                                   {"role": "assistant", "content": answer}]
            state.turn += 1
            final = steps[-1]
            calls = [c.name for s in steps for c in s.tool_calls]
            self.log("say", event.agent, f"turn {state.turn}: {user[:60]!r} -> {final.output[:70]!r}"
                     + (f" (tools: {', '.join(calls)})" if calls else ""),
                     turn=state.turn, user=user, reply=final.output, adapter=final.adapter, tools=calls,
                     prompt_tokens=sum(s.prompt_tokens for s in steps), seconds=round(sum(s.seconds for s in steps), 3))
            self._fire_probes(event.agent)
        self._save_conversations(event.agent)

    def _simulate_user(self, event: SayEvent, history: list[Message], seed: int) -> str:
        """The base model playing the user of ``history``: roles flipped, a user-role system prompt."""
        sim = event.simulator
        flipped = [{"role": "assistant" if m["role"] == "user" else "user", "content": m["content"]} for m in history]
        if not flipped or flipped[-1]["role"] != "user":
            flipped.append({"role": "user", "content": "Hello! What would you like to talk about?"})
        messages = [{"role": "system", "content": sim.user_prompt}, *flipped]
        params = SamplingParams(temperature=sim.temperature, max_tokens=sim.max_tokens, seed=seed)
        text = self._engine('chat', messages, None, params).text.strip().split("\n")[0].strip()
        if len(text) < 3:  # an empty or degenerate turn: a generic question keeps the talk going
            from baking.queries import generic_queries

            text = random.Random(seed).choice(generic_queries())
        return text

    def _save_conversations(self, agent: str) -> None:
        state = self.agents[agent]
        saved = {c: list(m) for c, m in state.conversations.items()}
        saved["live"] = [m for m in to_chat_dicts(state.loop.history)]
        self.report["conversations"][agent] = saved

    # ------------------------------------------------------------ judging
    def _answers(self, messages: list[Message], adapter: str | None, samples: int, max_tokens: int,
                 seed: int) -> list[str]:
        if samples == 1:
            params = SamplingParams(temperature=0.0, max_tokens=max_tokens, seed=seed)
            return [self._engine('chat', messages, adapter, params).text]
        params = SamplingParams(temperature=1.0, max_tokens=max_tokens, seed=seed)
        return [c.text for c in self._engine('sample', messages, adapter, samples, params)]

    def _judge(self, judge: Judge, messages: list[Message], adapter: str | None, answers: list[str]) -> float:
        if judge.name == "mc_loglik":
            return mc_loglik(self._engine('score', messages, adapter, judge.choices), judge.answer_idx)
        argument = judge.words if judge.name == "keyword_rate" else judge.value
        return sum(JUDGES[judge.name](a, argument) for a in answers) / len(answers)

    def _score_question(self, agent: str, question: Question, text: str, condition: str,
                        event: AskEvent) -> dict[str, Any]:
        messages, adapter = self.condition_call(agent, condition, [{"role": "user", "content": text}])
        seed = seed_for(self.scenario.seed, agent, text)
        if question.choices:
            logliks = self._engine('score', messages, adapter, question.choices)
            best = max(range(len(logliks)), key=logliks.__getitem__)
            return {"answer": question.choices[best], "score": mc_loglik(logliks, question.answer_idx),
                    "adapter": adapter, "logliks": [round(x, 4) for x in logliks]}
        answers = self._answers(messages, adapter, event.samples, event.max_tokens, seed)
        judge = question.judge or Judge(name="contains", value=question.expected)
        return {"answer": answers[0], "score": self._judge(judge, messages, adapter, answers), "adapter": adapter}

    def ask(self, event: AskEvent) -> None:
        point = event.label or f"after bake {self._bakes_done(event.agent)}"
        questions: list[tuple[str | None, Question]] = []
        if event.inline() is not None:
            questions.append((None, event.inline()))
        for name in event.sets:
            questions += [(name, q) for q in self.scenario.question_sets[name]]
        jobs = []
        for set_name, q in questions:
            variants = [("original", q.question)] + [("paraphrase", p) for p in q.paraphrases]
            for variant, text in variants:
                for condition in [c for c in event.conditions if self.has_adapter(event.agent, c)]:
                    row = {"agent": event.agent, "point": point, "event": self.index,
                           "bakes": self._bakes_done(event.agent), "set": set_name, "question": text,
                           "variant": variant, "control": q.control, "condition": condition,
                           "expected": q.expected if q.expected is not None else (
                               q.choices[q.answer_idx] if q.choices else None)}
                    jobs.append((row, lambda q=q, t=text, c=condition: self._score_question(
                        event.agent, q, t, c, event)))
        results = self._parallel([job for _, job in jobs])
        rows = [{**row, **result} for (row, _), result in zip(jobs, results)]
        self.report["asks"].extend(rows)
        skipped = [c for c in event.conditions if not self.has_adapter(event.agent, c)]
        summary = [f"(no adapter yet: {', '.join(skipped)} skipped)"] if skipped else []
        finished = [r for r in self.runtime.store.runs(event.agent) if r.status not in ("running", "awaiting_swap")]
        if skipped and finished:  # a bake ended, yet nothing went live
            self.report["skipped"].append({"agent": event.agent, "point": point, "event": self.index,
                                           "conditions": skipped})
        for condition in event.conditions:
            scored = [r["score"] for r in rows if r["condition"] == condition and not r["control"]]
            if scored:
                summary.append(f"{condition} {sum(scored) / len(scored):.2f}")
        self.log("ask", event.agent, f"{point}: {len(questions)} question(s); accuracy " + ", ".join(summary),
                 point=point, rows=len(rows))

    def probe(self, event: ProbeEvent) -> None:
        """Arm the probe; it fires now if the current turn is one of its turns."""
        state = self.agents[event.agent]
        state.probes.append((self.index, event))
        for condition in event.conditions:
            state.conversations.setdefault(condition, [])
        self.log("probe", event.agent, f"armed: {len(event.all_questions())} question(s), judge "
                 f"{event.judge.name}, conditions {', '.join(event.conditions)}")
        self._fire_probes(event.agent, only=self.index)

    def _fire_probes(self, agent: str, only: int | None = None) -> None:
        state = self.agents[agent]
        for index, probe in state.probes:
            if (only is not None and index != only) or not probe.due(state.turn):
                continue
            jobs = []
            conditions = [c for c in probe.conditions if self.has_adapter(agent, c)]
            for condition in conditions:
                for question in probe.all_questions():
                    conversation = state.conversations[condition] + [{"role": "user", "content": question}]
                    jobs.append((condition, question, conversation))

            def run(job):
                condition, question, conversation = job
                messages, adapter = self.condition_call(agent, condition, conversation)
                seed = seed_for(self.scenario.seed, agent, "probe", question, state.turn)
                answers = self._answers(messages, adapter, probe.samples, probe.max_tokens, seed)
                return {"agent": agent, "probe": index, "turn": state.turn, "condition": condition,
                        "question": question, "adapter": adapter, "answers": answers,
                        "score": self._judge(probe.judge, messages, adapter, answers)}

            rows = self._parallel([lambda j=j: run(j) for j in jobs])
            self.report["probes"].extend(rows)
            means = []
            for condition in conditions:
                scores = [r["score"] for r in rows if r["condition"] == condition]
                means.append(f"{condition} {sum(scores) / len(scores):.2f}")
            self.log("probe", agent, f"turn {state.turn}: " + ", ".join(means), turn=state.turn, probe=index)

    # -------------------------------------------------------------- bakes
    def _bakes_done(self, agent: str) -> int:
        """Bakes that went live for ``agent`` so far."""
        return sum(1 for a in self.runtime.store.adapters(agent) if a.status in ("live", "retired"))

    def bake(self, event: BakeEvent) -> None:
        state = self.agents[event.agent]
        if state.bake is not None:
            self.log("bake", event.agent, "a bake is still running; waiting for it first")
            self.wait_for_bake(WaitForBakeEvent(type="wait_for_bake", agent=event.agent))
        if event.rebake:
            requeued = self.runtime.store.requeue(event.agent)
            self.log("bake", event.agent, f"re-bake (Prompt Pursuit): {len(requeued)} item(s) back to pending",
                     requeued=requeued)
        pending = [i for i in self.runtime.store.items(event.agent, status="pending") if i.kind != "note"]
        if not pending:
            self.log("bake", event.agent, "nothing pending; no bake started")
            return
        state.bakes_started += 1
        state.bake_progress = self.folder / "logs" / f"bake-{event.agent}-{state.bakes_started}.progress.json"
        state.bake_progress.parent.mkdir(parents=True, exist_ok=True)
        state.bake = self.runtime.bake(event.agent, wait=False, progress_file=state.bake_progress,
                                       overrides=event.config)
        self.log("bake", event.agent, f"started on {len(pending)} item(s) in worker pid {state.bake.pid}; "
                 "serving goes on", items=[i.id for i in pending], pid=state.bake.pid)

    def wait_for_bake(self, event: WaitForBakeEvent) -> None:
        state = self.agents[event.agent]
        deadline = time.monotonic() + event.timeout_s if event.timeout_s else float("inf")
        if state.bake is None and self.scheduler is not None:
            # A scheduler trigger is due (or its worker is starting): wait until it has run once
            # (a rejected bake returns its items to pending; that does not make us wait again).
            # A scheduled worker that dies gives its items back when its lease runs out.
            runs_before = len(self.runtime.store.runs(event.agent))

            def busy() -> bool:
                new_run = len(self.runtime.store.runs(event.agent)) > runs_before
                return self._running_run(event.agent) or (self._trigger_due(event.agent) and not new_run)

            while busy() and time.monotonic() < deadline:
                time.sleep(0.5)
            if time.monotonic() >= deadline:
                self.log("bake_timeout", event.agent, f"no scheduled bake finished within {event.timeout_s:.0f} s")
        elif state.bake is not None:
            stopped = self._follow(event.agent, state, event, deadline)
            if stopped is not None:
                self._stop_worker(event.agent, state, stopped)
                self.report["errors"].append({"agent": event.agent, "event": self.index, "error": f"bake stopped: {stopped}"})
                self.log("bake_stopped", event.agent, f"{stopped}; items back to pending")
            code = state.bake.returncode
            pid = state.bake.pid
            state.bake = None
            if code != 0 and stopped is None:
                # A worker killed hard (SIGKILL, OOM) recorded nothing: the report must count it.
                fail_worker_run(self.runtime.store, event.agent, pid, f"worker exited with code {code}")
                tail = (self.folder / "logs" / f"worker-{event.agent}.log").read_text(errors="replace")[-600:]
                self.report["errors"].append({"agent": event.agent, "event": self.index, "error": tail})
                self.log("bake_failed", event.agent, f"worker exited with {code}; items stay pending. "
                         f"Log: {self.folder / 'logs'}")
        else:
            self.log("wait_for_bake", event.agent, "no bake running")
            return
        self.runtime.swap_ready(event.agent)
        for swap in self.runtime.swaps[len(self.report["swaps"]):]:  # this thread's and the scheduler's
            self.report["swaps"].append({"agent": swap.agent, "adapter": swap.adapter, "previous": swap.previous,
                                         "latency_s": swap.latency_s, "t": time.time() - self.started})
            self.log("swap", swap.agent, f"{swap.previous or 'base'} -> {swap.adapter} "
                     f"(adapter on disk -> first token {swap.latency_s * 1000:.0f} ms)")
        self._log_verdicts(event.agent)

    def _stop_worker(self, agent: str, state: AgentState, reason: str) -> None:
        """Kill a worker and return its items to pending now (not when its lease runs out)."""
        state.bake.kill()
        state.bake.wait()
        fail_worker_run(self.runtime.store, agent, state.bake.pid, reason)

    def _trigger_due(self, agent: str) -> bool:
        """The scheduler's every-N-items trigger will fire for ``agent``."""
        n = self.config.schedule.bake_every_n_items
        return n is not None and enough_pending(self.runtime, agent, n)

    def _running_run(self, agent: str) -> bool:
        return any(r.status == "running" for r in self.runtime.store.runs(agent))

    def _follow(self, agent: str, state: AgentState, event: WaitForBakeEvent, deadline: float) -> str | None:
        """Rich progress bars for the worker's sampling and training, read from its file, until
        it exits; returns why it must be stopped instead (see :class:`BakeWatch`), or None."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        watch = BakeWatch(event.stall_s, event.limit_factor, event.start_allowance_s, deadline)
        with Progress(TextColumn("  [bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), TextColumn("{task.fields[info]}"), console=self.console,
                      transient=False) as bars:
            tasks: dict[str, Any] = {}
            while state.bake.poll() is None:
                progress = self._update_bars(bars, tasks, state.bake_progress)
                had_estimate = watch.estimate is not None
                stop = watch.check(progress, time.monotonic())
                if watch.estimate is not None and not had_estimate:
                    self.log("bake_estimate", agent,
                             f"{BakeEstimate(**watch.estimate).line()}; stopped if it makes no progress "
                             f"for {event.stall_s:.0f} s or runs past {watch.limit_s:.0f} s",
                             estimate=watch.estimate, limit_s=watch.limit_s)
                if stop is not None:
                    return stop
                time.sleep(0.5)
            self._update_bars(bars, tasks, state.bake_progress)
        return None

    @staticmethod
    def _update_bars(bars, tasks: dict[str, Any], path: Path) -> dict | None:
        progress = read_progress(path)
        if progress is None:
            return None
        for label, value in progress.items():
            if label.startswith("_"):  # a note (the estimate), not a bar
                continue
            done, total, info = value
            if label not in tasks:
                tasks[label] = bars.add_task(label, total=total, info="")
            bars.update(tasks[label], completed=done, total=total, info=info)
        return progress

    def _log_verdicts(self, agent: str) -> None:
        for record in self.runtime.store.adapters(agent):
            if record.name in self.reported or record.status == "candidate":
                continue
            self.reported.add(record.name)
            m = record.metrics
            self.log("verdict", agent, f"{record.name} {record.status}: fidelity {m.get('fidelity', float('nan')):.3f}, "
                     f"wall {m.get('wall_s', float('nan')):.0f} s; {record.reason or m.get('gate', {}).get('reason', '')}")

    def _bake_row(self, record) -> dict[str, Any]:
        m = record.metrics
        run = next((r for r in self.runtime.store.runs(record.agent) if r.adapter_id == record.id), None)
        keys = ("fidelity", "kl_base", "kl_baked", "fact_recall", "locality_kl", "wall_s", "sampling_s", "training_s",
                "eval_s", "train_tokens_per_s", "peak_share", "dtype", "dtype_reason", "estimate_s", "cpu_isa")
        return {"agent": record.agent, "name": record.name, "status": record.status, "reason": record.reason,
                "parent": record.parent, "items": record.item_ids, "path": record.path,
                "started_s": run.started_at - self.started if run else None,
                "decided_s": run.finished_at - self.started if run and run.finished_at else None,
                "gate": m.get("gate"), **{k: m.get(k) for k in keys}}

    # ------------------------------------------------------------- scale
    def scale(self, event: ScaleEvent) -> None:
        from baking.scale import scale_adapter

        live = self.runtime.store.live(event.agent)
        if live is None:
            self.log("scale", event.agent, "nothing baked yet; skipped")
            self.report["errors"].append({"agent": event.agent, "event": self.index, "error": "scale before any bake"})
            return
        base_dir = self.folder / "adapters" / event.agent / "scaled"
        variants = [("scale", s, scale_adapter(live.path, s, base_dir / f"{live.name}-x{s:g}")) for s in event.scales]
        record = json.loads((Path(live.path) / "bake.json").read_text())
        variants += [("snapshot", float(f), Path(live.path) / p) for f, p in sorted(record.get("half_bakes", {}).items())]
        rows = [self._strength("prompted", 1.0, None, event, prompted=True)]
        for kind, value, path in variants:
            tag = f"{value:g}".replace(".", "p")  # PEFT adapter names cannot contain dots
            name = f"{live.name}-{'x' if kind == 'scale' else 'f'}{tag}-e{self.index}"
            self.runtime.engine.load_adapter(name, path)
            try:
                rows.append(self._strength(kind, value, name, event))
            finally:
                self.runtime.engine.unload_adapter(name)
        for row in rows:
            row.update(agent=event.agent, source=live.name)
        self.report["scales"].extend(rows)
        tags = {"prompted": "prompted", "scale": "x", "snapshot": "snapshot "}
        curve = ", ".join(f"{tags[r['kind']]}{r['value']:g}={r['score']:.2f}" for r in rows)
        self.log("scale", event.agent, f"{live.name}: {curve}")

    def _strength(self, kind: str, value: float, adapter: str | None, event: ScaleEvent,
                  prompted: bool = False) -> dict[str, Any]:
        def one(question: str) -> tuple[float, list[str]]:
            conversation = [{"role": "user", "content": question}]
            if prompted:
                messages, _ = self.condition_call(event.agent, "prompted", conversation)
            else:
                messages = conversation
            seed = seed_for(self.scenario.seed, event.agent, "scale", question)
            answers = self._answers(messages, adapter, event.samples, event.max_tokens, seed)
            return self._judge(event.judge, messages, adapter, answers), answers

        results = self._parallel([lambda q=q: one(q) for q in event.questions])
        return {"kind": kind, "value": value, "adapter": adapter,
                "score": sum(s for s, _ in results) / len(results),
                "answers": [a for _, answers in results for a in answers][:4]}

    def tool(self, event: ToolEvent) -> None:
        step = self.agents[event.agent].loop.use_tool(event.name, event.args)
        result = step.observations[0].content
        self.log("tool", event.agent, f"{event.name}({json.dumps(event.args)}) -> {str(result)[:100]!r}",
                 name=event.name, args=event.args, result=result)

    # --------------------------------------------------------- checkpoint
    def checkpoint(self, event: CheckpointEvent) -> None:
        store = self.runtime.store
        snapshot = {"label": event.label, "t": time.time() - self.started,
                    "live": {a: self.runtime.live_adapter(a) for a in self.agents},
                    "items": {a: {s: len(store.items(a, status=s)) for s in ("pending", "baking", "baked", "retired")}
                              for a in self.agents}}
        self.report["checkpoints"].append(snapshot)
        self.write_report()
        self.log("checkpoint", None, f"{event.label}: live {snapshot['live']}", **snapshot)

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
        for b in self.report["bakes"]:
            if b["status"] != "rejected":
                continue
            gate = b.get("gate") or {}
            found.append(f"{b['name']} was refused by the gate: {gate['reason']}" if gate.get("passed") is False
                         else f"{b['name']} was rejected: {b['reason']}")
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
    from agent.scenario.schema import MAX_SCENARIO_BYTES, load_scenario

    scenario = load_scenario(path, max_bytes or MAX_SCENARIO_BYTES)
    # SIGTERM ends the run like Ctrl-C: the report is written and the vLLM server is stopped.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    folder = run_folder(runs_root, scenario.name)
    shutil.copy(path, folder / "scenario.yaml")
    runner = ScenarioRunner(scenario, folder, engine=engine, scenario_path=Path(path), console=console)
    return runner.run()
