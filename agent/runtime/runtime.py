"""The runtime: memory store + serving engine + baker workers + hot swap.

- Pending memories are served from context (persona/instructions in the system prompt,
  news/facts next to the question); baked ones come from the agent's live adapter.
- A bake runs in a separate worker process (``agent.runtime.worker``); the serving path never waits.
- A candidate that passed the gate is loaded under its new, never reused name; then the
  agent's live pointer moves (one store transaction) and the old adapter is unloaded once the
  requests still using it have finished.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from agent.runtime.config import RuntimeConfig
from agent.runtime.engine import open_engine, serving_max_rank
from agent.runtime.gate import AdapterRefused, check_adapter
from agent.serving.engine import Completion, Engine, EngineError, EngineUnavailable, SamplingParams
from baking.config import BakeConfig, PromptItem
from baking.faults import fault_point
from baking.render import Message, with_items
from memory.store import ForgetPlan
from memory import AdapterRecord, MemoryStore


@dataclass(frozen=True)
class Swap:
    agent: str
    adapter: str
    previous: str | None
    latency_s: float  # adapter on disk -> first token served with it


class Runtime:
    def __init__(self, config: RuntimeConfig, engine: Engine, store: MemoryStore | None = None,
                 max_lora_rank: int | None = None) -> None:
        self.config = config
        self.engine = engine
        self.store = store or MemoryStore(config.db_path, max_item_chars=config.max_item_chars,
                                          auto_approve=config.auto_approve)
        self._in_flight: Counter[str] = Counter()
        self._idle = threading.Condition()
        self._swap_lock = threading.Lock()
        self._loaded: dict[str, str] = {}  # agent -> adapter name currently served for it
        self._names: set[str] = set()  # every name ever loaded here: never reused, even after a restart
        self.swaps: list[Swap] = []  # every hot swap, whichever thread made it
        self._down = threading.Event()  # set while the supervisor restarts the engine
        self._down_since = 0.0
        # What the engine was started with (Runtime.open passes the rank it derived).
        self.max_lora_rank = max_lora_rank or serving_max_rank(config, self.store)
        self._stop = threading.Event()
        self._supervisor: threading.Thread | None = None

    @classmethod
    def open(cls, config: RuntimeConfig, engine: Engine | None = None) -> "Runtime":
        """Open the store (returning dead bakes' items to pending), start the engine, and load
        every agent's live adapter and any candidate that passed the gate meanwhile."""
        config.home.mkdir(parents=True, exist_ok=True)
        store = MemoryStore(config.db_path, max_item_chars=config.max_item_chars,
                                          auto_approve=config.auto_approve)
        store.recover()
        rank = serving_max_rank(config, store)
        runtime = cls(config, engine or open_engine(config, rank), store, max_lora_rank=rank)
        try:
            for agent in store.agents():
                runtime._load_live(agent)
            runtime.swap_ready()
        except BaseException:
            runtime.engine.close()  # a runtime that failed to open leaves no server behind
            raise
        return runtime

    def _load_live(self, agent: str) -> None:
        """Load ``agent``'s live adapter. One that fails validation (e.g. tampered on disk) is
        audited and the agent is served from the base model and its context meanwhile, so one
        bad folder never takes the other agents down; engine errors propagate."""
        live = self.store.live(agent)
        self._loaded.pop(agent, None)
        if live is None:
            return
        try:
            self._load_fresh(live)
        except AdapterRefused as e:
            self.store.audit(agent, "live_adapter_refused", adapter=live.name, reason=str(e)[:500],
                             serving="base model and context")

    # ------------------------------------------------------------- serving
    def live_adapter(self, agent: str) -> str | None:
        return self._loaded.get(agent)

    def context_items(self, agent: str) -> list[PromptItem]:
        """The agent's pending (and in-bake) memories, served from context until baked."""
        items = self.store.items(agent, status="pending") + self.store.items(agent, status="baking")
        return [PromptItem.of_memory(it) for it in sorted(items, key=lambda it: it.id)]

    def messages_for(self, agent: str, conversation: list[Message]) -> list[Message]:
        """The conversation with pending memories in context (rendered as the baker does).

        A conversation with OpenAI tool turns (assistant ``tool_calls``, ``tool`` results) keeps
        them as they are; the context block goes in front of its last user turn, as for a
        plain conversation."""
        items = self.context_items(agent)
        turns = [m for m in conversation if m["role"] != "system"]
        messages = with_items(items, range(len(items)), turns)
        user_system = [m for m in conversation if m["role"] == "system"]
        if user_system:  # a caller's own system prompt goes after the persona/instructions
            if messages[0]["role"] == "system":
                messages[0] = {"role": "system", "content": messages[0]["content"] + "\n" + user_system[0]["content"]}
            else:
                messages.insert(0, user_system[0])
        return messages

    @contextmanager
    def using(self, adapter: str | None) -> Iterator[None]:
        """Hold ``adapter`` loaded while a request runs (a swap unloads it only afterwards)."""
        if adapter is None:
            yield
            return
        with self._idle:
            self._in_flight[adapter] += 1
        try:
            yield
        finally:
            with self._idle:
                self._in_flight[adapter] -= 1
                self._idle.notify_all()

    def chat(self, agent: str, conversation: list[Message], params: SamplingParams = SamplingParams(),
             with_context: bool = True, adapter: str | None | bool = True, tools: list[dict] | None = None,
             tool_choice: str | dict = "auto") -> Completion:
        """Answer as ``agent``: its live adapter (weights) + its pending memories (context).

        ``adapter=False`` asks the base model; a string asks that adapter explicitly. ``tools``
        (OpenAI function specs) go to the engine's native tool calling.
        """
        self.store.require_agent(agent)
        if self._down.is_set():
            raise EngineUnavailable("the serving engine is restarting; retry in a few seconds")
        name = self.live_adapter(agent) if adapter is True else (adapter or None)
        messages = self.messages_for(agent, conversation) if with_context else conversation
        with self.using(name):
            return self.engine.chat(messages, name, params, tools=tools, tool_choice=tool_choice)

    # ---------------------------------------------------------------- swap
    def _load_fresh(self, record: AdapterRecord, serve: bool = True) -> str:
        """Load ``record`` under a name the engine has never seen (a re-load after restart
        or rollback gets a suffix), so vLLM never serves stale cache for a reused name.
        ``serve`` points the agent at it at once; a swap does that only after promotion."""
        check_adapter(record, self.config, self.max_lora_rank, self.store)
        name, n = record.name, 1
        while name in self._names or name in self.engine.adapters():
            n += 1
            name = f"{record.name}-r{n}"
        self._names.add(name)
        self.engine.load_adapter(name, record.path)
        if serve:
            self._loaded[record.agent] = name
        return name

    def swap_ready(self, agent: str | None = None) -> list[Swap]:
        """Load and promote every candidate that passed the gate (the oldest first). One that
        fails does not stop the others; the first failure is raised at the end. While the
        engine is down nothing is tried: the candidates wait for the recovery."""
        swaps, errors = [], []
        if self._down.is_set():
            return swaps
        with self._swap_lock:
            for name in [agent] if agent else self.store.agents():
                for record in self.store.adapters(name):
                    # The verdict is the status: a refused adapter is registered as rejected,
                    # and the store promotes nothing but a candidate.
                    if record.status == "candidate":
                        try:
                            swaps.append(self._swap(record))
                        except Exception as e:  # noqa: BLE001 - raised below, after the others
                            errors.append(e)
                try:
                    self._serve_live(name)
                except Exception as e:  # noqa: BLE001
                    errors.append(e)
        if errors:
            raise errors[0]
        return swaps

    def _swap(self, record: AdapterRecord) -> Swap:
        """Load the candidate, serve it one token, promote it in the store; only then point
        the agent at it. If any step fails, requests keep going to the old adapter and the
        candidate is unloaded; one the engine cannot serve is rejected."""
        previous = self._loaded.get(record.agent)
        start = time.perf_counter()
        try:
            name = self._load_fresh(record, serve=False)
        except EngineUnavailable:
            raise  # the engine is down, not the adapter: it stays a candidate for the next try
        except EngineError as e:
            self.store.reject(record.id, f"engine could not load it: {e}")
            raise
        try:
            # Adapter on disk -> first token served with it.
            try:
                self.engine.chat([{"role": "user", "content": "Hi"}], name, SamplingParams(max_tokens=1))
            except EngineUnavailable:
                raise  # the engine is down, not the adapter: it stays a candidate for the next try
            except EngineError as e:
                self.store.reject(record.id, f"engine could not serve it: {e}")
                raise
            latency = time.perf_counter() - start
            fault_point("promoting")  # crash-safety tests: loaded and served, not yet promoted
            self.store.promote(record.id, record.reason or "promoted")
        except BaseException:
            self._unload_quietly(name, record.agent)
            raise
        self._loaded[record.agent] = name  # the pointer moves only after the promotion committed
        swap = Swap(record.agent, name, previous, latency)
        self.swaps.append(swap)
        self.store.audit(record.agent, "swap", adapter=record.name, served_as=name, previous=previous,
                         latency_s=round(latency, 4))
        if previous is not None:
            threading.Thread(target=self._unload_when_idle, args=(previous,), daemon=True).start()
        return swap

    def _unload_when_idle(self, name: str) -> None:
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight[name] == 0)
        self._unload_quietly(name)

    def _unload_quietly(self, name: str, agent: str | None = None) -> None:
        """Unload ``name``; a failure does not stop the caller, but it is in the audit log
        (e.g. gone after an engine restart, or a leaked adapter slot to look at)."""
        try:
            self.engine.unload_adapter(name)
        except Exception as e:  # noqa: BLE001 - recorded, not raised: nothing serves it any more
            self.store.audit(agent, "unload_failed", adapter=name, error=f"{type(e).__name__}: {e}"[:500])

    def forget(self, item_id: int, wait: bool = True) -> "ForgetPlan":
        """Take an item out of memory and weights: serve the last adapter baked before it (or
        the base model) at once, then rebake the items baked since, without it."""
        with self._swap_lock:
            plan = self.store.forget(item_id)
            self._serve_live(plan.agent)
        if plan.requeued:
            self.bake(plan.agent, wait=wait)
        return plan

    def _serve_live(self, agent: str) -> None:
        """Make what is served for ``agent`` match the store's live pointer (after a forget,
        or a rollback made from the CLI while this runtime serves)."""
        live, previous = self.store.live(agent), self._loaded.get(agent)
        if live is None:
            self._loaded.pop(agent, None)
        elif previous is None or not (previous == live.name or previous.startswith(live.name + "-r")):
            self._load_fresh(live)
        else:
            return
        if previous is not None and previous != self._loaded.get(agent):
            threading.Thread(target=self._unload_when_idle, args=(previous,), daemon=True).start()

    def rollback(self, agent: str, version: str) -> Swap:
        """Serve an earlier version again: loaded (and validated) first, then the store's
        pointer moves, then requests do; a version that cannot load changes nothing."""
        with self._swap_lock:
            previous = self._loaded.get(agent)
            target = next((a for a in self.store.adapters(agent) if a.name == version), None)
            start = time.perf_counter()
            name = self._load_fresh(target, serve=False) if target is not None else None
            try:
                self.store.rollback(agent, version)  # refuses candidates, rejected, forgotten
            except BaseException:
                if name is not None:
                    self._unload_quietly(name, agent)
                raise
            self._loaded[agent] = name
            latency = time.perf_counter() - start
            if previous is not None:
                threading.Thread(target=self._unload_when_idle, args=(previous,), daemon=True).start()
            return Swap(agent, name, previous, latency)

    # ---------------------------------------------------------------- bake
    def config_with(self, overrides: dict | None) -> RuntimeConfig:
        """The runtime config with BakeConfig ``overrides`` for one bake (``device`` moves the worker)."""
        if not overrides:
            return self.config
        overrides = dict(overrides)
        device = overrides.pop("device", self.config.worker_device)  # the baker's device is the worker's
        bake = {**self.config.bake.model_dump(exclude={"model", "device", "max_lora_rank"}), **overrides}
        BakeConfig.model_validate({**bake, "max_lora_rank": self.max_lora_rank})  # a typo in an override names the field
        # The engine serves at most the rank it was started with: a larger one is refused here,
        # before the bake, not after it.
        engine = {**self.config.engine.model_dump(), "max_lora_rank": self.max_lora_rank}
        return self.config.replace(bake=bake, engine=engine, worker_device=device)

    def bake(self, agent: str, wait: bool = True, progress_file: Path | None = None,
             overrides: dict | None = None) -> subprocess.Popen | None:
        """Run a baker worker process for ``agent``; with ``wait``, swap its result in.
        ``overrides`` changes BakeConfig fields for this bake only."""
        from agent.runtime.worker import BakeWatch, fail_worker_run, spawn_worker, watch_worker

        self.store.require_agent(agent)
        if progress_file is None and wait:  # watched here: stopped if it stalls or overruns
            progress_file = self.config.home / "logs" / f"bake-{agent}.progress.json"
            progress_file.parent.mkdir(parents=True, exist_ok=True)
            progress_file.unlink(missing_ok=True)
        process = spawn_worker(self.config_with(overrides), agent, progress_file=progress_file)
        if not wait:
            return process
        c = self.config
        stopped = watch_worker(process, progress_file, BakeWatch(c.bake_stall_s, c.bake_limit_factor,
                                                                 c.bake_start_allowance_s))
        if stopped is not None or process.returncode != 0:
            fail_worker_run(self.store, agent, process.pid, f"bake stopped: {stopped}" if stopped
                            else f"worker exited with code {process.returncode}")
        self.swap_ready(agent)
        return process

    # ------------------------------------------------------------ supervise
    def supervise(self, interval_s: float = 2.0, failures: int = 3) -> None:
        """Watch the engine from a thread. When its process has exited, or /health failed
        ``failures`` checks in a row, restart it and reload every agent's live adapter under a
        fresh name. Meanwhile :meth:`chat` fails at once with :class:`EngineUnavailable`
        (retryable) instead of hanging. Every outage is in the audit log."""
        if not hasattr(self.engine, "restart"):
            return  # in-process engines have no server to lose

        def watch() -> None:
            misses, attempt = 0, 0
            while not self._stop.wait(min(interval_s * 2 ** min(attempt, 6), 60.0) if attempt else interval_s):
                try:
                    if self._down.is_set():  # a recovery failed part-way: retry, with backoff
                        attempt += 1
                        if self._recover_engine(f"retry {attempt} after a failed recovery"):
                            attempt = 0
                        continue
                    exited = getattr(self.engine, "process", None) is not None and self.engine.process.poll() is not None
                    misses = 0 if (not exited and self.engine.health()) else misses + 1
                    if not exited and misses < failures:
                        continue
                    attempt = 0 if self._recover_engine("its process exited" if exited
                                                        else f"{misses} failed health checks") else 1
                    misses = 0
                except Exception as e:  # noqa: BLE001 - the supervisor must outlive any one check
                    print(f"engine supervisor: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
                    attempt = max(attempt, 1)

        self._supervisor = threading.Thread(target=watch, name="engine-supervisor", daemon=True)
        self._supervisor.start()

    def _recover_engine(self, why: str) -> bool:
        """Restart the engine if it is not serving, then reload every live adapter. Requests
        get :class:`EngineUnavailable` until all of it has worked; any failure (a restart, one
        adapter's reload, or anything unexpected) is audited and leaves the runtime down, so
        the supervisor tries again. Returns whether the engine is back."""
        try:
            if not self._down.is_set():
                self._down.set()
                self._down_since = time.monotonic()
                self.store.audit(None, "engine_down", reason=why)
            exited = getattr(self.engine, "process", None) is not None and self.engine.process.poll() is not None
            restarted = exited or not self.engine.health()
            if restarted:
                if self._stop.is_set():
                    return False  # closing: no new server
                self.engine.restart()
            with self._swap_lock:
                if restarted:
                    self._loaded.clear()  # a restarted engine has no adapters
                loaded = set(self.engine.adapters())
                for agent in self.store.agents():
                    if self._loaded.get(agent) not in loaded:
                        self._load_live(agent)  # a refused folder: that agent serves from base
            self.store.audit(None, "engine_restarted", downtime_s=round(time.monotonic() - self._down_since, 2),
                             reloaded=dict(self._loaded))
            self._down.clear()
        except Exception as e:  # noqa: BLE001 - stays down and audited; the supervisor retries
            with contextlib.suppress(Exception):  # the store itself may be what failed
                self.store.audit(None, "engine_restart_failed", attempt=why, error=f"{type(e).__name__}: {e}"[:500])
            return False
        try:
            self.swap_ready()  # candidates that waited for the outage
        except Exception as e:  # noqa: BLE001 - the engine is back; a bad candidate is audited by the swap
            print(f"after the restart, a swap failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        return True

    def close(self) -> None:
        self._stop.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout=5)
        self.engine.close()
        self.store.close()
