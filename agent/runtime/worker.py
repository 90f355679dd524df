"""The baker worker: a separate process that bakes an agent's pending memories.

    python -m agent.runtime.worker --config runtime.json --agent ada

It claims the agent's pending items under a lease (renewed by a heartbeat while it runs),
bakes them on top of the agent's live adapter with ``--device`` (a second GPU in production),
gates the candidate, and records the verdict in the store. The serving process never waits on
it; it picks up candidates that passed the gate and swaps them in. If the worker dies, its
lease expires and the items return to pending; a half-written adapter is never registered.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

from agent.runtime.config import RuntimeConfig
from agent.runtime.gate import gate_verdict
from baking.config import CONTEXT_KINDS
from baking.faults import fault_point
from memory import MemoryStore
from memory.store import _process_alive


def earlier_items(store: MemoryStore, agent: str) -> list:
    """The agent's news/fact items already in its weights, as PromptItems for
    ``bake(earlier=...)``: each bake re-teaches them from the teacher with the item in
    context, a fixed share per fact, so the lineage keeps them (replay that never thins out)."""
    from baking import PromptItem

    live = store.live(agent)  # the live lineage's items: a rollback's later items are not in it
    items = [store.get(i) for i in store.contents(live)] if live is not None else []
    return [PromptItem.of_memory(item) for item in items if item.kind in CONTEXT_KINDS and item.status == "baked"]


def sweep_adapter_folders(store: MemoryStore, folder: Path) -> list[Path]:
    """Remove what killed bakes left in an agent's adapter folder: temporary folders of dead
    processes, and complete folders of runs that failed before their adapter was registered.
    Registered adapters (live, retired, rejected, candidates) are never touched."""
    removed = []
    registered = {Path(a.path).resolve() for a in store.adapters(folder.name)}
    statuses = {r.id: r.status for r in store.runs(folder.name)}
    for child in sorted(folder.iterdir()) if folder.is_dir() else []:
        tmp = re.fullmatch(r"\..+\.tmp-(\d+)", child.name)
        run = re.fullmatch(r"run-(\d+)", child.name)
        if tmp and not _process_alive(int(tmp.group(1))):
            removed.append(child)
        elif run and child.resolve() not in registered and statuses.get(int(run.group(1))) == "failed":
            removed.append(child)
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


@contextlib.contextmanager
def cpu_turn(device: str, lock_dir: Path | None = None,
             on_wait: Callable[[float], None] | None = None) -> Iterator[float]:
    """CPU bakes on one host take turns; yields the seconds spent waiting for the turn.

    Two bakes at once on a 2-core host each got half the cores and thrashed: two 3-item bakes
    took 785 s each, against about 70 s for one alone. In turn, both finish long before that.
    The lock is a file lock, so it holds across processes (scenario workers, `agent bake` in
    a shell) and is released by the kernel if a worker dies. It is per user (another user's
    lock file would not open). GPU bakes do not wait. While it waits, ``on_wait`` is called
    every few seconds with the seconds waited (a watcher must not mistake the wait for a stall)."""
    if not device.startswith("cpu"):
        yield 0.0
        return
    path = Path(lock_dir or tempfile.gettempdir()) / f"promptbake-cpu-bake-{os.getuid()}.lock"
    start = time.monotonic()
    with open(path, "a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if on_wait is not None:
                    on_wait(time.monotonic() - start)
                time.sleep(2.0)
        try:
            yield time.monotonic() - start
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class BakeWatch:
    """When to stop a running bake: never on a fixed clock while it progresses.

    ``check`` is called with the worker's progress file (parsed) and the time. A bake is
    stopped when its progress has not changed for ``stall_s``, when it runs past
    ``limit_factor`` × its own estimate (the worker writes it under ``_estimate`` before
    sampling; the limit counts from then) + ``start_allowance_s``, or past ``deadline`` (an
    explicit cap; inf if none).
    """

    def __init__(self, stall_s: float, limit_factor: float, start_allowance_s: float,
                 deadline: float = float("inf"), now: float | None = None) -> None:
        self.stall_s, self.limit_factor, self.allowance_s = stall_s, limit_factor, start_allowance_s
        self.deadline = deadline
        self.started = self.last_change = time.monotonic() if now is None else now
        self.seen: dict | None = None
        self.estimate: dict | None = None
        self.limit_s: float | None = None

    def check(self, progress: dict | None, now: float) -> str | None:
        if progress is not None and progress != self.seen:
            self.seen, self.last_change = progress, now
        if self.estimate is None and progress and "_estimate" in progress:
            # The limit's clock starts here: a wait for another CPU bake's turn is not this
            # bake's work (the waiting worker keeps its file changing, so it is no stall).
            self.estimate, self.started = progress["_estimate"], now
            self.limit_s = self.limit_factor * self.estimate["seconds"] + self.allowance_s
        if now - self.last_change > self.stall_s:
            return f"stalled: no progress for {self.stall_s:.0f} s"
        if self.limit_s is not None and now - self.started > self.limit_s:
            return (f"ran {now - self.started:.0f} s, past {self.limit_factor:g}x its estimate of "
                    f"{self.estimate['seconds']:.0f} s (+{self.allowance_s:.0f} s)")
        if now > self.deadline:
            return "timed out (timeout_s)"
        return None


def read_progress(path: Path | None) -> dict | None:
    """A worker's progress file ({label: [done, total, info]} plus ``_``-notes), or None."""
    try:
        return json.loads(path.read_text()) if path is not None else None
    except (OSError, ValueError):  # not written yet, or caught mid-write
        return None


def fail_worker_run(store: MemoryStore, agent: str, pid: int, reason: str) -> None:
    """Fail the still-running claim of worker ``pid`` (stopped, or killed before it could record
    anything), so its items return to pending now instead of when its lease runs out."""
    for run in store.runs(agent):
        if run.status == "running" and run.pid == pid:
            store.fail(run.id, reason)


def watch_worker(process, progress_file: Path | None, watch: BakeWatch, poll_s: float = 0.5) -> str | None:
    """Wait for a worker process under ``watch``; kill it and return why if it must stop."""
    while process.poll() is None:
        stop = watch.check(read_progress(progress_file), time.monotonic())
        if stop is not None:
            process.kill()
            process.wait()
            return stop
        time.sleep(poll_s)
    return None


def run_worker(config: RuntimeConfig, agent: str, progress: bool | Path = False) -> int:
    from baking import PromptItem, bake

    store = MemoryStore(config.db_path, max_item_chars=config.max_item_chars, auto_approve=config.auto_approve)
    run = store.claim(agent, config.lease_s, pid=os.getpid(), limit=config.max_items_per_bake)
    if run is None:
        print(f"{agent}: nothing pending to bake (or a bake is already running)")
        return 0
    stop = threading.Event()

    def heartbeat() -> None:
        """Renew the lease every lease_s / 3. A failed renewal never ends the thread quietly:
        it is printed (the worker's log), the first of a streak is audited, and it tries again,
        since a lease left to expire hands the items to another bake."""
        beat, failures = None, 0
        while not stop.wait(config.lease_s / 3):
            try:
                beat = beat or MemoryStore(config.db_path)
                beat.renew(run.id, config.lease_s)
                failures = 0
            except Exception as e:  # noqa: BLE001 - reported, then retried at the next beat
                failures += 1
                error = f"{type(e).__name__}: {e}"[:500]
                print(f"{agent}: lease renewal failed ({failures} in a row): {error}", file=sys.stderr, flush=True)
                if failures == 1:
                    with contextlib.suppress(Exception):  # the store itself may be what failed
                        store.audit(agent, "heartbeat_failed", run=run.id, error=error)

    threading.Thread(target=heartbeat, daemon=True).start()
    try:
        items = [store.get(i) for i in run.item_ids]
        prompt_items = [PromptItem.of_memory(it) for it in items]
        live = store.live(agent)
        for path in sweep_adapter_folders(store, config.adapters_dir / agent):
            print(f"removed {path}: left by a bake that was killed")
        out = config.adapters_dir / agent / f"run-{run.id:04d}"
        def waiting(seconds: float) -> None:
            if isinstance(progress, Path):
                progress.write_text(json.dumps({"_waiting": {"seconds": round(seconds)}}))

        with cpu_turn(config.bake.device, on_wait=waiting) as waited:  # the lease is renewed meanwhile
            if waited > 1:
                print(f"{agent}: waited {waited:.0f} s for another CPU bake on this host to finish")
            version = bake(
                prompt_items, out, config.bake, parent=live.path if live else None,
                earlier=earlier_items(store, agent), overwrite=True,
                progress=progress,
            )
        passed, reason = gate_verdict(version.metrics, config, [it.kind for it in prompt_items])
        fault_point("registering")
        record = store.register_candidate(run.id, str(out.resolve()), live.name if live else None, version.metrics,
                                          passed=passed, reason=reason)
        fault_point("registered")
        print(json.dumps({"run": run.id, "adapter": record.name, "passed": passed, "reason": reason}))
        return 0
    except BaseException as e:  # record the failure; the items go back to pending
        store.fail(run.id, f"{type(e).__name__}: {e}")
        raise
    finally:
        stop.set()


def spawn_worker(config: RuntimeConfig, agent: str, log: Path | None = None,
                 progress_file: Path | None = None, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``python -m agent.runtime.worker`` for ``agent``; its output goes to <home>/logs/.
    ``env`` replaces the worker's environment (e.g. CUDA_VISIBLE_DEVICES)."""
    logs = config.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    config_file = Path(tempfile.mkstemp(prefix="runtime-", suffix=".json", dir=logs)[1])
    config_file.write_text(config.model_dump_json())
    log = log or logs / f"worker-{agent}.log"
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "agent.runtime.worker", "--config", str(config_file), "--agent", agent,
             *(["--progress-file", str(progress_file)] if progress_file else [])],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True, help="RuntimeConfig as JSON")
    parser.add_argument("--agent", required=True)
    parser.add_argument("--device", help="override the baker's device, e.g. cuda:1")
    parser.add_argument("--progress", action="store_true", help="a rich progress display")
    parser.add_argument("--progress-file", type=Path, help="keep this JSON file current instead")
    args = parser.parse_args()
    config = RuntimeConfig.model_validate_json(args.config.read_text())
    if args.device:
        config = config.replace(worker_device=args.device)
    sys.exit(run_worker(config, args.agent, progress=args.progress_file or args.progress))


if __name__ == "__main__":
    main()
