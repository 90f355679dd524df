"""Bake scheduling with APScheduler; its job store lives in the memory SQLite file.

Triggers per agent: every N pending items, every T seconds, a cron line, and an explicit
``bake_now``. Schedules survive a restart (SQLAlchemyJobStore on the same file). A second bake
for an agent cannot start while one runs: the store's claim refuses it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import create_engine

from agent.runtime import Runtime

log = logging.getLogger(__name__)


class _BusyIsNormal(logging.Filter):
    """A poll that fires while the agent's bake still runs is skipped by design (one bake per
    agent); APScheduler reports each skip as a warning, once per poll interval."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


_apscheduler_log = logging.getLogger("agent.scheduler.apscheduler")
_apscheduler_log.addFilter(_BusyIsNormal())

# Persisted jobs name module-level functions; they find this process's runtime by database.
_RUNTIMES: dict[str, Runtime] = {}


def scheduled_bake(db: str, agent: str) -> None:
    runtime = _RUNTIMES.get(db)
    if runtime is None:  # a persisted job firing in a process without this runtime
        return
    runtime.bake(agent)


def bake_if_enough_pending(db: str, agent: str, threshold: int) -> None:
    runtime = _RUNTIMES.get(db)
    if runtime is None:
        return
    pending = [i for i in runtime.store.items(agent, status="pending") if i.kind != "note"]
    if len(pending) >= threshold:
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

    def bake_now(self, agent: str) -> None:
        """Queue an explicit bake (runs in the scheduler's pool; serving is not blocked)."""
        self.runtime.store.require_agent(agent)
        self.scheduler.add_job(scheduled_bake, "date", run_date=datetime.now(timezone.utc),
                               args=[self.db, agent], id=f"bake-now-{agent}", replace_existing=True)

    def jobs(self) -> list[str]:
        return [job.id for job in self.scheduler.get_jobs()]

    def shutdown(self, wait: bool = True) -> None:
        self.scheduler.shutdown(wait=wait)
        _RUNTIMES.pop(self.db, None)
