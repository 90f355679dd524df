"""The scenario events that bake: ``bake`` (start a worker) and ``wait_for_bake`` (follow it,
with its progress, until its adapter is swapped in or refused)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from agent.runtime.scheduler import enough_pending
from agent.runtime.worker import BakeWatch, fail_worker_run, read_progress
from agent.scenario.schema import BakeEvent, WaitForBakeEvent
from agent.scenario.state import AgentState
from baking.cost import BakeEstimate


class BakeEvents:
    """``ScenarioRunner``'s bake and wait_for_bake events (a mixin: the runner holds the state)."""

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
                     f"wall {m.get('wall_s', float('nan')):.0f} s; {record.reason or ''}")

    def _refused_by_gate(self, record) -> bool:
        return record.status == "rejected" and any(
            e["data"].get("adapter") == record.name for e in self.runtime.store.events(record.agent, ["gate_rejected"]))

    def _bake_row(self, record) -> dict[str, Any]:
        m = record.metrics
        run = next((r for r in self.runtime.store.runs(record.agent) if r.adapter_id == record.id), None)
        keys = ("fidelity", "kl_base", "kl_baked", "fact_recall", "locality_kl", "wall_s", "sampling_s", "training_s",
                "eval_s", "train_tokens_per_s", "peak_share", "dtype", "dtype_reason", "estimate_s", "cpu_isa")
        return {"agent": record.agent, "name": record.name, "status": record.status, "reason": record.reason,
                "parent": record.parent, "items": record.item_ids, "path": record.path,
                "started_s": run.started_at - self.started if run else None,
                "decided_s": run.finished_at - self.started if run and run.finished_at else None,
                # The verdict is the status; a rejection is the gate's when the store recorded it
                # as one (gate_rejected), else the check when the adapter was loaded.
                "gate": {"passed": not self._refused_by_gate(record), "reason": record.reason},
                **{k: m.get(k) for k in keys}}
