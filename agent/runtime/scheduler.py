"""Bake scheduling with APScheduler; its job store lives in the memory SQLite file.

Triggers per agent: every N pending items, every T seconds and a cron line (an explicit
bake is `agent bake` or ``Runtime.bake``). Schedules survive a restart (SQLAlchemyJobStore on the same file). A second bake
for an agent cannot start while one runs: the store's claim refuses it.
"""

from __future__ import annotations

import logging
from datetime import timezone

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import create_engine

from agent.runtime.runtime import Runtime

log = logging.getLogger(__name__)


class _BusyIsNormal(logging.Filter):
    """A poll that fires while the agent's bake still runs is skipped by design (one bake per
    agent); APScheduler reports each skip as a warning, once per poll interval. A poll that
    races the executors' shutdown is dropped the same way."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "maximum number of running instances reached" in record.getMessage():
            return False
        # A poll that races the shutdown of the executors has nothing left to do: it stays in
        # the log as one line, without the traceback. Every other record passes unchanged.
        if record.exc_info and "cannot schedule new futures after shutdown" in str(record.exc_info[1]):
            record.msg, record.args = f"{record.getMessage()} (a poll raced the scheduler's shutdown)", ()
            record.exc_info, record.exc_text = None, None  # kept at its level (a WARNING or above shows)
        return True


_apscheduler_log = logging.getLogger("agent.runtime.scheduler.apscheduler")
_apscheduler_log.addFilter(_BusyIsNormal())

# Persisted jobs name module-level functions; they find this process's runtime by database.
_RUNTIMES: dict[str, Runtime] = {}


def refused_unchanged(runtime: Runtime, agent: str) -> bool:
    """True when the agent's last bake was refused (its adapter ``rejected``: by the gate, or
    when it was loaded) and its inputs have not changed since:
    the items the next bake would claim are the same, on the same live adapter. A bake is
    deterministic given its inputs, so a timed retry would only be refused again. A new item,
    a rollback or an explicit `agent bake` bakes again (so does a changed bake or gate config,
    which needs the explicit bake)."""
    store = runtime.store
    runs = store.runs(agent)  # in id order
    if not runs or runs[-1].status != "rejected":
        return False
    last = runs[-1]
    adapter = next((a for a in store.adapters(agent) if a.id == last.adapter_id), None)
    if adapter is None or adapter.status != "rejected":
        return False
    live = store.live(agent)
    pending = sorted(i.id for i in store.items(agent, status="pending") if i.kind != "note")
    next_claim = pending[:runtime.config.max_items_per_bake]  # claim takes the oldest first
    return adapter.parent == (live.name if live else None) and set(next_claim) == set(last.item_ids)


def scheduled_bake(db: str, agent: str, force: bool = False) -> None:
    runtime = _RUNTIMES.get(db)
    if runtime is None:  # a persisted job firing in a process without this runtime
        return
    if not force and refused_unchanged(runtime, agent):
        return
    runtime.bake(agent)


def enough_pending(runtime: Runtime, agent: str, threshold: int) -> bool:
    """The every-N-items trigger fires: ``threshold`` bakeable items are pending, and they are
    not the set the gate just refused."""
    pending = [i for i in runtime.store.items(agent, status="pending") if i.kind != "note"]
    return len(pending) >= threshold and not refused_unchanged(runtime, agent)


def bake_if_enough_pending(db: str, agent: str, threshold: int) -> None:
    runtime = _RUNTIMES.get(db)
    if runtime is not None and enough_pending(runtime, agent, threshold):
        runtime.bake(agent)


def swap_candidates(db: str) -> None:
    """Pick up candidates baked by workers started elsewhere (e.g. `agent bake` in a shell)."""
    runtime = _RUNTIMES.get(db)
    if runtime is not None:
        runtime.swap_ready()


class BakeScheduler:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.db = str(runtime.config.db_path.resolve())
        self.scheduler = BackgroundScheduler(
            # Its own connections wait for the write lock like the store's do (30 s), instead of
            # pysqlite's 5 s, so a busy bake never surfaces as "database is locked".
            jobstores={"default": SQLAlchemyJobStore(engine=create_engine(
                f"sqlite:///{self.db}", connect_args={"timeout": 30}))},
            executors={"default": ThreadPoolExecutor(4)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
            timezone=timezone.utc,
            logger=_apscheduler_log,
        )

    def start(self) -> None:
        """Register every agent's triggers from config (replacing older ones) and start."""
        _RUNTIMES[self.db] = self.runtime
        schedule = self.runtime.config.schedule
        self.scheduler.start()
        self.scheduler.add_job(swap_candidates, "interval", seconds=schedule.poll_s, args=[self.db],
                               id="swap-candidates", replace_existing=True)
        for agent in self.runtime.store.agents():
            self.add_agent(agent)

    def add_agent(self, agent: str) -> None:
        schedule = self.runtime.config.schedule
        if schedule.bake_every_n_items:
            self.scheduler.add_job(
                bake_if_enough_pending, "interval", seconds=schedule.poll_s,
                args=[self.db, agent, schedule.bake_every_n_items], id=f"bake-n-{agent}",
                replace_existing=True,
            )
        if schedule.bake_every_s:
            self.scheduler.add_job(scheduled_bake, "interval", seconds=schedule.bake_every_s,
                                   args=[self.db, agent], id=f"bake-every-{agent}", replace_existing=True)
        if schedule.cron:
            self.scheduler.add_job(scheduled_bake, CronTrigger.from_crontab(schedule.cron, timezone=timezone.utc),
                                   args=[self.db, agent], id=f"bake-cron-{agent}", replace_existing=True)

    def jobs(self) -> list[str]:
        return [job.id for job in self.scheduler.get_jobs()]

    def shutdown(self, wait: bool = True) -> None:
        self.scheduler.pause()  # no new submissions while the executors close
        self.scheduler.shutdown(wait=wait)
        _RUNTIMES.pop(self.db, None)
