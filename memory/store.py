"""The durable memory buffer and adapter registry: one SQLite file (WAL), one API.

Tables:

- ``agents``: name, live adapter pointer.
- ``items``: what an agent should carry, with kind, source, trust, content hash (dedup per
  agent), status ``pending -> baking -> baked`` (or ``retired``), ``baked_in`` and a lease
  (``bake_run``, ``lease_expires``) so a dead worker's items return to ``pending``.
- ``adapters``: versions per agent with a never-reused integer id, parent, item ids, metrics,
  status ``candidate | live | rejected | retired`` and a reason.
- ``bake_runs`` and ``events``: the history.

Every state change runs in one ``BEGIN IMMEDIATE`` transaction, so concurrent writers (the
serving process, a worker process, the CLI) never see half a change.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import threading
import time
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import sqlite_utils

from memory.kinds import ITEM_KINDS, TRUST_LEVELS, AdapterStatus, ItemKind, ItemStatus, Trust
from memory.screen import injection_flags

# Trust levels whose items go straight to pending (context now, weights at the next bake).
# Others, and anything the injection screen flags, wait in ``review`` for ``approve``.
DEFAULT_AUTO_APPROVE = ("operator", "user")
DEFAULT_MAX_ITEM_CHARS = 2000
_AGENT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


class MemoryInputError(ValueError):
    """Input the store refuses; the message says why."""


@dataclass(frozen=True)
class MemoryItem:
    id: int
    agent: str
    kind: ItemKind
    text: str
    source: str
    trust: Trust
    content_hash: str
    created_at: float
    status: ItemStatus
    baked_in: str | None
    bake_run: int | None
    lease_expires: float | None
    flags: tuple[str, ...] = ()  # why the injection screen held it for review


@dataclass(frozen=True)
class AddResult:
    item: MemoryItem
    duplicate: bool  # True: the same text was already stored for this agent; nothing changed


@dataclass(frozen=True)
class AdapterRecord:
    """One adapter version. ``id`` is the vLLM lora_int_id: unique, never reused."""

    id: int
    agent: str
    name: str  # "<agent>-v0007": the name it is served under, never reloaded
    version: int
    path: str
    parent: str | None
    item_ids: tuple[int, ...]
    metrics: dict[str, Any]
    status: AdapterStatus
    reason: str | None
    created_at: float
    item_hashes: tuple[str, ...] = ()  # content hashes of item_ids, in the same order
    weights_sha256: str | None = None  # adapter_digest() of the folder when it was registered


@dataclass(frozen=True)
class ForgetPlan:
    """What :meth:`MemoryStore.forget` did: the live pointer moved back to ``back_to`` (None:
    the base model) and ``requeued`` items went back to pending, to be baked again without
    the forgotten one."""

    item: int
    agent: str
    was_live: str | None
    back_to: str | None
    requeued: tuple[int, ...]


@dataclass(frozen=True)
class BakeRun:
    id: int
    agent: str
    status: str  # running | awaiting_swap | succeeded | rejected | failed
    item_ids: tuple[int, ...]
    pid: int | None
    started_at: float
    finished_at: float | None
    adapter_id: int | None
    error: str | None


def adapter_digest(folder: str | Path) -> str | None:
    """SHA-256 over an adapter folder's weights and config (``*.safetensors``,
    ``adapter_config.json``), recorded at registration and checked before every load, so
    edited weights of valid shape are refused; None when the folder has none of them."""
    folder = Path(folder)
    files = sorted(folder.glob("*.safetensors")) + [folder / "adapter_config.json"]
    digest, found = hashlib.sha256(), False
    for file in files:
        if file.is_file():
            found = True
            digest.update(file.name.encode() + b"\0")
            with open(file, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest() if found else None


def content_hash(text: str) -> str:
    """Hash of the normalised text: case, spacing and Unicode form do not make a new item."""
    normal = " ".join(unicodedata.normalize("NFKC", text).split()).casefold()
    return hashlib.sha256(normal.encode()).hexdigest()


def check_text(text: str, max_chars: int) -> str:
    """The stripped text, or MemoryInputError saying what is wrong with it."""
    if not isinstance(text, str) or not text.strip():
        raise MemoryInputError("memory text is empty")
    text = text.strip()
    if len(text) > max_chars:
        raise MemoryInputError(f"memory text has {len(text)} characters, over the limit of {max_chars}")
    bad = [c for c in text if unicodedata.category(c) == "Cc" and c not in "\n\t"]
    if bad:
        raise MemoryInputError(f"memory text contains control characters {sorted(set(map(repr, bad)))}")
    return text


class MemoryStore:
    """The one API over the SQLite file, shared by the CLI, the tools and the scheduler."""

    def __init__(self, path: Path | str, max_item_chars: int = DEFAULT_MAX_ITEM_CHARS,
                 auto_approve: Sequence[str] = DEFAULT_AUTO_APPROVE) -> None:
        unknown = set(auto_approve) - set(TRUST_LEVELS)
        if unknown:
            raise MemoryInputError(f"auto_approve: unknown trust level(s) {sorted(unknown)}; expected {TRUST_LEVELS}")
        self.auto_approve = tuple(auto_approve)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_item_chars = max_item_chars
        self._lock = threading.RLock()
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA foreign_keys=ON")
        self.db = sqlite_utils.Database(conn)
        self._create()

    # ----------------------------------------------------------------- schema
    def _create(self) -> None:
        with self._tx():
            if "agents" not in self.db.table_names():
                self.db["agents"].create({"name": str, "created_at": float, "live_adapter": int}, pk="name")
            if "items" not in self.db.table_names():
                self.db["items"].create(
                    {"id": int, "agent": str, "kind": str, "text": str, "source": str, "trust": str,
                     "content_hash": str, "created_at": float, "status": str, "baked_in": str,
                     "bake_run": int, "lease_expires": float},
                    pk="id", foreign_keys=[("agent", "agents", "name")],
                )
                self.db["items"].create_index(["agent", "content_hash"], unique=True)
                self.db["items"].create_index(["agent", "status"])
            if "adapters" not in self.db.table_names():
                # AUTOINCREMENT: an id is never reused, even after deleting rows.
                self.db.execute(
                    "CREATE TABLE adapters (id INTEGER PRIMARY KEY AUTOINCREMENT, agent TEXT "
                    "REFERENCES agents(name), name TEXT UNIQUE, version INTEGER, path TEXT, "
                    "parent TEXT, item_ids TEXT, metrics TEXT, status TEXT, reason TEXT, "
                    "created_at REAL)"
                )
            if "bake_runs" not in self.db.table_names():
                self.db["bake_runs"].create(
                    {"id": int, "agent": str, "status": str, "item_ids": str, "pid": int,
                     "started_at": float, "finished_at": float, "adapter_id": int, "error": str},
                    pk="id",
                )
            if "events" not in self.db.table_names():
                self.db["events"].create(
                    {"id": int, "ts": float, "agent": str, "kind": str, "data": str}, pk="id"
                )
            # Columns added since the first release: older databases get them on open.
            if "item_hashes" not in self.db["adapters"].columns_dict:
                self.db.execute("ALTER TABLE adapters ADD COLUMN item_hashes TEXT NOT NULL DEFAULT '[]'")
            if "weights_sha256" not in self.db["adapters"].columns_dict:
                self.db.execute("ALTER TABLE adapters ADD COLUMN weights_sha256 TEXT")
            if "flags" not in self.db["items"].columns_dict:
                self.db.execute("ALTER TABLE items ADD COLUMN flags TEXT NOT NULL DEFAULT '[]'")
            # The audit log is append-only: SQLite itself refuses to change or delete a row.
            for action in ("UPDATE", "DELETE"):
                self.db.execute(
                    f"CREATE TRIGGER IF NOT EXISTS events_no_{action.lower()} BEFORE {action} ON events "
                    "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END")

    @contextmanager
    def _tx(self) -> Iterator[None]:
        """One write transaction; BEGIN IMMEDIATE takes the write lock up front."""
        conn = self.db.conn
        with self._lock:  # threads share the connection: one transaction at a time
            if conn.in_transaction:  # nested (same thread, under the lock): join the outer one
                yield
                return
            self._begin(conn)
            try:
                yield
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @staticmethod
    def _begin(conn: sqlite3.Connection, patience_s: float = 120.0) -> None:
        """BEGIN IMMEDIATE, retried: SQLite's busy handler covers most waits for the write lock,
        but WAL recovery and lock upgrades can still answer SQLITE_BUSY at once under load."""
        deadline, pause = time.monotonic() + patience_s, 0.01
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 0.5)

    def close(self) -> None:
        self.db.conn.close()

    # ----------------------------------------------------------------- agents
    def create_agent(self, name: str) -> None:
        if not _AGENT_NAME.match(name or ""):
            raise MemoryInputError(
                f"agent name {name!r} must be 1-40 characters of a-z, 0-9, '-' or '_', "
                "starting with a letter or digit"
            )
        with self._tx():
            if not self.db["agents"].count_where("name = ?", [name]):
                self.db["agents"].insert({"name": name, "created_at": time.time(), "live_adapter": None})
                self._event(name, "agent_created", {})

    def agents(self) -> list[str]:
        return [row["name"] for row in self.db["agents"].rows_where(order_by="name")]

    def require_agent(self, name: str) -> None:
        if not self.db["agents"].count_where("name = ?", [name]):
            known = ", ".join(self.agents()) or "none yet"
            raise MemoryInputError(f"unknown agent {name!r} (known: {known})")

    # ------------------------------------------------------------------ items
    def add(
        self,
        agent: str,
        text: str,
        kind: ItemKind = "fact",
        *,
        source: str = "cli",
        trust: Trust = "operator",
        create_agent: bool = False,
    ) -> AddResult:
        """Store an item: ``pending`` when its trust level is auto-approved and the injection
        screen passes it, else ``review`` (neither in context nor baked until :meth:`approve`).
        A duplicate (same normalised text) is reported, not an error. ``create_agent`` creates
        a new agent in the same transaction, so a refused item never leaves an empty agent."""
        if not create_agent:
            self.require_agent(agent)
        if kind not in ITEM_KINDS:
            raise MemoryInputError(f"unknown kind {kind!r}; expected one of {', '.join(ITEM_KINDS)}")
        if trust not in TRUST_LEVELS:
            raise MemoryInputError(f"unknown trust {trust!r}; expected one of {', '.join(TRUST_LEVELS)}")
        text = check_text(text, self.max_item_chars)
        digest = content_hash(text)
        flags = injection_flags(text, kind)
        status = "pending" if trust in self.auto_approve and not flags else "review"
        with self._tx():
            if create_agent:
                self.create_agent(agent)
            existing = list(self.db["items"].rows_where("agent = ? AND content_hash = ?", [agent, digest]))
            if existing:
                return AddResult(_item(existing[0]), duplicate=True)
            row_id = self.db["items"].insert(
                {"agent": agent, "kind": kind, "text": text, "source": source, "trust": trust,
                 "content_hash": digest, "created_at": time.time(), "status": status,
                 "baked_in": None, "bake_run": None, "lease_expires": None, "flags": json.dumps(flags)}
            ).last_pk
            self._event(agent, "item_added", {"id": row_id, "kind": kind, "trust": trust, "source": source,
                                              "status": status, "hash": digest})
            if flags:
                self._event(agent, "item_flagged", {"id": row_id, "flags": flags})
        return AddResult(self.get(row_id), duplicate=False)

    def get(self, item_id: int) -> MemoryItem:
        if not isinstance(item_id, int) or not -2**63 <= item_id < 2**63:
            raise MemoryInputError(f"no memory item with id {item_id}")
        rows = list(self.db["items"].rows_where("id = ?", [item_id]))
        if not rows:
            raise MemoryInputError(f"no memory item with id {item_id}")
        return _item(rows[0])

    def items(self, agent: str, status: str | None = None, query: str | None = None) -> list[MemoryItem]:
        self.require_agent(agent)
        where, args = "agent = ?", [agent]
        if status is not None:
            where += " AND status = ?"
            args.append(status)
        if query:
            where += " AND text LIKE ?"
            args.append(f"%{query}%")
        return [_item(r) for r in self.db["items"].rows_where(where, args, order_by="id")]

    def retire(self, item_id: int) -> MemoryItem:
        item = self.get(item_id)
        with self._tx():
            self.db["items"].update(item_id, {"status": "retired", "bake_run": None, "lease_expires": None})
            self._event(item.agent, "item_retired", {"id": item_id})
        return self.get(item_id)

    def requeue(self, agent: str, kinds: tuple[str, ...] = ("persona", "instruction")) -> list[int]:
        """Return baked items of ``kinds`` to pending, to bake them again on top of the live
        adapter (Prompt Pursuit); the adapters that hold them keep their provenance."""
        with self._tx():
            ids = [r["id"] for r in self.db["items"].rows_where(
                f"agent = ? AND status = 'baked' AND kind IN ({','.join('?' * len(kinds))})",
                [agent, *kinds], order_by="id")]
            if ids:
                self.db.execute(f"UPDATE items SET status='pending' WHERE id IN ({','.join('?' * len(ids))})", ids)
                self._event(agent, "items_requeued", {"items": ids})
        return ids

    def approve(self, item_id: int) -> MemoryItem:
        """An operator vetted an item held for review: it becomes pending (in context now,
        baked at the next bake). Its source and trust stay as they were, for provenance."""
        item = self.get(item_id)
        if item.status != "review":
            raise MemoryInputError(f"item {item_id} is {item.status}, not waiting for review; nothing to approve")
        with self._tx():
            self.db["items"].update(item_id, {"status": "pending"})
            self._event(item.agent, "item_approved", {"id": item_id, "trust": item.trust, "flags": list(item.flags)})
        return self.get(item_id)

    # ---------------------------------------------------------------- leasing
    def claim(self, agent: str, lease_s: float, pid: int | None = None, limit: int | None = None) -> BakeRun | None:
        """Start a bake run holding every pending item of ``agent`` under a lease.

        Returns None if nothing is pending, or a run of this agent is still running (a live
        worker) or its adapter awaits the swap (one bake per agent at a time). A running run
        whose worker process is gone is failed first, its items back to pending. Items added
        later stay pending.
        """
        self.require_agent(agent)
        now = time.time()
        with self._tx():
            self._expire(now)
            for r in self.db["bake_runs"].rows_where("agent = ? AND status = 'running'", [agent]):
                if r["pid"] is not None and not _process_alive(r["pid"]):
                    self._fail_run(r["id"], f"interrupted: its worker (pid {r['pid']}) is gone")
            busy = list(self.db["bake_runs"].rows_where(
                "agent = ? AND status IN ('running', 'awaiting_swap')", [agent]))
            if busy:
                return None
            pending = [r["id"] for r in self.db["items"].rows_where(
                "agent = ? AND status = 'pending' AND kind != 'note'", [agent], order_by="id", limit=limit)]
            if not pending:
                return None
            run_id = self.db["bake_runs"].insert(
                {"agent": agent, "status": "running", "item_ids": json.dumps(pending), "pid": pid,
                 "started_at": now, "finished_at": None, "adapter_id": None, "error": None}
            ).last_pk
            self.db.execute(
                f"UPDATE items SET status='baking', bake_run=?, lease_expires=? "
                f"WHERE id IN ({','.join('?' * len(pending))})",
                [run_id, now + lease_s, *pending],
            )
            self._event(agent, "bake_claimed", {"run": run_id, "items": pending})
        return self.run(run_id)

    def renew(self, run_id: int, lease_s: float, pid: int | None = None) -> None:
        """Extend a running bake's lease (the worker's heartbeat)."""
        with self._tx():
            self.db.execute(
                "UPDATE items SET lease_expires=? WHERE bake_run=? AND status='baking'",
                [time.time() + lease_s, run_id],
            )
            if pid is not None:
                self.db["bake_runs"].update(run_id, {"pid": pid})

    def _expire(self, now: float) -> None:
        expired = {r["bake_run"] for r in self.db["items"].rows_where(
            "status = 'baking' AND lease_expires < ?", [now])}
        for run_id in expired:
            self._fail_run(run_id, "lease expired: the worker stopped without finishing")

    def recover(self) -> int:
        """On (re)start: a running bake whose worker process is gone has its items returned to
        pending (a live worker keeps its claim; its lease still guards it)."""
        with self._tx():
            dead = [r["id"] for r in self.db["bake_runs"].rows_where("status = 'running'")
                    if not _process_alive(r["pid"])]
            for run_id in dead:
                self._fail_run(run_id, "interrupted: its worker is gone (runtime restarted)")
        return len(dead)

    def fail(self, run_id: int, error: str) -> None:
        with self._tx():
            self._fail_run(run_id, error)

    def _fail_run(self, run_id: int, error: str) -> None:
        """A running run ends as failed, its items back to pending. A run that already has its
        adapter registered (awaiting the swap, or finished) is left as it is."""
        if self.db["bake_runs"].get(run_id)["status"] != "running":
            return
        self.db.execute(
            "UPDATE items SET status='pending', bake_run=NULL, lease_expires=NULL "
            "WHERE bake_run=? AND status='baking'",
            [run_id],
        )
        self.db["bake_runs"].update(run_id, {"status": "failed", "error": error, "finished_at": time.time()})
        agent = self.db["bake_runs"].get(run_id)["agent"]
        self._event(agent, "bake_failed", {"run": run_id, "error": error})

    def run(self, run_id: int) -> BakeRun:
        return _run(self.db["bake_runs"].get(run_id))

    def runs(self, agent: str) -> list[BakeRun]:
        return [_run(r) for r in self.db["bake_runs"].rows_where("agent = ?", [agent], order_by="id")]

    # --------------------------------------------------------------- adapters
    def register_candidate(
        self, run_id: int, path: str, parent: str | None, metrics: dict[str, Any], *,
        passed: bool, reason: str | None = None,
    ) -> AdapterRecord:
        """Record a finished bake's adapter with the gate's verdict, in one transaction: the
        verdict is the adapter's status (``candidate`` passed, ``rejected`` refused) and ``reason``.

        Passed: a candidate (not yet served); the run awaits the swap, its items stay claimed
        with no lease to expire. Refused: the adapter is recorded as rejected and the items go
        back to pending, so a crash can never leave a refused adapter looking promotable.
        """
        run = self.run(run_id)
        with self._tx():
            if self.db["bake_runs"].get(run_id)["status"] != "running":
                raise MemoryInputError(f"bake run {run_id} is {self.run(run_id).status}, not running; "
                                       "its items were returned (lease expired or worker presumed dead)")
            version = 1 + (self.db.execute(
                "SELECT COALESCE(MAX(version), 0) FROM adapters WHERE agent = ?", [run.agent]
            ).fetchone()[0])
            name = f"{run.agent}-v{version:04d}"
            hashes = [self.get(i).content_hash for i in run.item_ids]
            cursor = self.db.execute(
                "INSERT INTO adapters (agent, name, version, path, parent, item_ids, metrics, "
                "status, reason, created_at, item_hashes, weights_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [run.agent, name, version, path, parent, json.dumps(list(run.item_ids)),
                 json.dumps(metrics), "candidate" if passed else "rejected", reason,
                 time.time(), json.dumps(hashes), adapter_digest(path)],
            )
            adapter_id = cursor.lastrowid
            if passed:
                self.db["bake_runs"].update(run_id, {"adapter_id": adapter_id, "status": "awaiting_swap"})
                self.db.execute("UPDATE items SET lease_expires=NULL WHERE bake_run=? AND status='baking'", [run_id])
                self._event(run.agent, "gate_passed", {"run": run_id, "adapter": name, "reason": reason,
                                                       "fidelity": metrics.get("fidelity"),
                                                       "locality_kl": metrics.get("locality_kl")})
            else:
                self.db.execute(
                    "UPDATE items SET status='pending', bake_run=NULL, lease_expires=NULL "
                    "WHERE bake_run=? AND status='baking'", [run_id])
                self.db["bake_runs"].update(run_id, {"adapter_id": adapter_id, "status": "rejected",
                                                     "finished_at": time.time(), "error": reason})
                self._event(run.agent, "gate_rejected", {"run": run_id, "adapter": name, "reason": reason,
                                                         "fidelity": metrics.get("fidelity"),
                                                         "locality_kl": metrics.get("locality_kl")})
        return self.adapter(adapter_id)

    def reject(self, adapter_id: int, reason: str) -> None:
        """The gate refused the candidate: its items go back to pending (served from context)."""
        record = self.adapter(adapter_id)
        with self._tx():
            self.db.execute("UPDATE adapters SET status='rejected', reason=? WHERE id=?", [reason, adapter_id])
            run_id = self.db.execute("SELECT id FROM bake_runs WHERE adapter_id=?", [adapter_id]).fetchone()[0]
            self.db.execute(
                "UPDATE items SET status='pending', bake_run=NULL, lease_expires=NULL "
                "WHERE bake_run=? AND status='baking'", [run_id])
            self.db["bake_runs"].update(run_id, {"status": "rejected", "finished_at": time.time(), "error": reason})
            self._event(record.agent, "adapter_rejected", {"adapter": record.name, "reason": reason})

    def promote(self, adapter_id: int, reason: str) -> AdapterRecord:
        """Make a candidate live: move the agent's pointer, retire the old live adapter and
        mark the run's items baked, all in one transaction. Anything that is not a candidate
        (rejected, retired, live) is refused inside that transaction, whoever calls."""
        record = self.adapter(adapter_id)
        with self._tx():
            row = self.db.execute("SELECT status FROM adapters WHERE id=?", [adapter_id]).fetchone()
            if row is None or row[0] != "candidate":
                raise MemoryInputError(f"adapter {record.name!r} is {row[0] if row else 'gone'}; only a "
                                       "candidate can be promoted")
            old = self.live(record.agent)
            if old is not None:
                self.db.execute("UPDATE adapters SET status='retired' WHERE id=?", [old.id])
            self.db.execute("UPDATE adapters SET status='live', reason=? WHERE id=?", [reason, adapter_id])
            self.db["agents"].update(record.agent, {"live_adapter": adapter_id})
            run = self.db.execute("SELECT id FROM bake_runs WHERE adapter_id=?", [adapter_id]).fetchone()
            if run is not None:
                self.db.execute(
                    "UPDATE items SET status='baked', baked_in=?, lease_expires=NULL "
                    "WHERE bake_run=? AND status='baking'", [record.name, run[0]])
                self.db["bake_runs"].update(run[0], {"status": "succeeded", "finished_at": time.time()})
            self._event(record.agent, "adapter_live", {"adapter": record.name,
                                                       "previous": old.name if old else None})
        return self.adapter(adapter_id)

    def rollback(self, agent: str, name: str) -> AdapterRecord:
        """Point ``agent`` back at an earlier adapter version (it is served under a new load)."""
        self.require_agent(agent)
        rows = list(self.db.execute(
            "SELECT id, status FROM adapters WHERE agent=? AND name=?", [agent, name]).fetchall())
        if not rows:
            known = ", ".join(a.name for a in self.adapters(agent)) or "none"
            raise MemoryInputError(f"agent {agent!r} has no adapter {name!r} (known: {known})")
        adapter_id, status = rows[0]
        if status in ("candidate", "rejected"):
            raise MemoryInputError(f"adapter {name!r} is {status}; only a version that was live can be rolled back to")
        forgotten = [i for i in self.contents(self.adapter(adapter_id)) if self.get(i).status == "forgotten"]
        if forgotten:
            raise MemoryInputError(f"adapter {name!r} holds forgotten item(s) {forgotten}; it cannot serve again")
        with self._tx():
            old = self.live(agent)
            if old is not None and old.id != adapter_id:
                self.db.execute("UPDATE adapters SET status='retired' WHERE id=?", [old.id])
            self.db.execute("UPDATE adapters SET status='live', reason=? WHERE id=?",
                            [f"rollback from {old.name if old else 'none'}", adapter_id])
            self.db["agents"].update(agent, {"live_adapter": adapter_id})
            self._event(agent, "adapter_rollback", {"to": name, "from": old.name if old else None})
        return self.adapter(adapter_id)

    def adapter(self, adapter_id: int) -> AdapterRecord:
        if not isinstance(adapter_id, int) or not -2**63 <= adapter_id < 2**63:
            raise MemoryInputError(f"no adapter with id {adapter_id}")
        try:
            return _adapter(self.db["adapters"].get(adapter_id))
        except sqlite_utils.db.NotFoundError:
            raise MemoryInputError(f"no adapter with id {adapter_id}") from None

    def by_name(self, name: str) -> AdapterRecord:
        rows = self.db.execute("SELECT id FROM adapters WHERE name=?", [name]).fetchall()
        if not rows:
            raise MemoryInputError(f"no adapter named {name!r}")
        return self.adapter(rows[0][0])

    def lineage(self, record: AdapterRecord) -> list[AdapterRecord]:
        """The adapters ``record`` was baked on top of, oldest first, ending with ``record``."""
        chain = [record]
        while chain[0].parent is not None:
            chain.insert(0, self.by_name(chain[0].parent))
        return chain

    def contents(self, record: AdapterRecord) -> list[int]:
        """Every item id in ``record``'s weights: its own bake's and its ancestors'."""
        seen: list[int] = []
        for ancestor in self.lineage(record):
            seen += [i for i in ancestor.item_ids if i not in seen]
        return seen

    def forget(self, item_id: int) -> ForgetPlan:
        """Take an item out of its agent's memory and weights.

        The item becomes ``forgotten`` (never in context, never baked again). If the live
        adapter's lineage holds it, the live pointer moves back to the last adapter baked
        before it (or to the base model), and every other item baked since goes back to
        pending, so the next bake rebuilds the lineage without it. Refused while a bake of
        this agent is in flight.
        """
        item = self.get(item_id)
        if item.status == "forgotten":
            raise MemoryInputError(f"item {item_id} is already forgotten")
        with self._tx():
            busy = self.db.execute("SELECT id FROM bake_runs WHERE agent=? AND status IN ('running', 'awaiting_swap')",
                                   [item.agent]).fetchall()
            if busy:
                raise MemoryInputError(f"a bake of {item.agent!r} is in flight (run {busy[0][0]}); forget after it ends")
            live = self.live(item.agent)
            chain = self.lineage(live) if live is not None else []
            first = next((k for k, a in enumerate(chain) if item_id in a.item_ids), None)
            self.db["items"].update(item_id, {"status": "forgotten", "bake_run": None, "lease_expires": None})
            back_to, requeued = live, []
            if first is not None:
                back_to = chain[first - 1] if first > 0 else None
                later = [i for a in chain[first:] for i in a.item_ids if i != item_id]
                requeued = [i for i in dict.fromkeys(later) if self.get(i).status == "baked"]
                if requeued:
                    self.db.execute(f"UPDATE items SET status='pending', baked_in=NULL WHERE id IN "
                                    f"({','.join('?' * len(requeued))})", requeued)
                self.db.execute("UPDATE adapters SET status='retired', reason=? WHERE id=?",
                                [f"holds forgotten item {item_id}", live.id])
                if back_to is not None:
                    self.db.execute("UPDATE adapters SET status='live', reason=? WHERE id=?",
                                    [f"forget {item_id}: lineage restarts here", back_to.id])
                self.db["agents"].update(item.agent, {"live_adapter": back_to.id if back_to else None})
            plan = ForgetPlan(item_id, item.agent, live.name if live else None,
                              back_to.name if back_to else None, tuple(requeued))
            self._event(item.agent, "item_forgotten", {"id": item_id, "hash": item.content_hash,
                                                       "was_live": plan.was_live, "back_to": plan.back_to,
                                                       "requeued": list(plan.requeued)})
        return plan

    def adapters(self, agent: str) -> list[AdapterRecord]:
        self.require_agent(agent)
        ids = [r[0] for r in self.db.execute("SELECT id FROM adapters WHERE agent=? ORDER BY id", [agent])]
        return [self.adapter(i) for i in ids]

    def live(self, agent: str) -> AdapterRecord | None:
        self.require_agent(agent)
        live_id = self.db["agents"].get(agent)["live_adapter"]
        return self.adapter(live_id) if live_id is not None else None

    # ----------------------------------------------------------------- events
    def _event(self, agent: str | None, kind: str, data: dict[str, Any]) -> None:
        self.db["events"].insert({"ts": time.time(), "agent": agent, "kind": kind, "data": json.dumps(data)})

    def audit(self, agent: str | None, kind: str, **data: Any) -> None:
        """Append an event from outside the store (a swap, an engine restart, a forget)."""
        with self._tx():
            self._event(agent, kind, data)

    def events(self, agent: str | None = None, kinds: Sequence[str] = ()) -> list[dict[str, Any]]:
        """The audit log, oldest first: every claim, bake failure, gate verdict, swap, rollback,
        approval and forget, with its time."""
        clauses, args = [], []
        if agent:
            clauses.append("agent = ?")
            args.append(agent)
        if kinds:
            clauses.append(f"kind IN ({','.join('?' * len(kinds))})")
            args += list(kinds)
        where = " AND ".join(clauses) or None
        return [{**r, "data": json.loads(r["data"])} for r in
                self.db["events"].rows_where(where, args, order_by="id")]


def _process_alive(pid: int | None) -> bool:
    """True while ``pid`` runs; a zombie (killed, not yet reaped by its parent) counts as gone."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (not Linux): signal 0 succeeded
    return state not in ("Z", "X")


def _item(row: dict[str, Any]) -> MemoryItem:
    return MemoryItem(**{**row, "flags": tuple(json.loads(row.get("flags") or "[]"))})


def _run(row: dict[str, Any]) -> BakeRun:
    return BakeRun(**{**row, "item_ids": tuple(json.loads(row["item_ids"]))})


def _adapter(row: dict[str, Any]) -> AdapterRecord:
    return AdapterRecord(**{**row, "item_ids": tuple(json.loads(row["item_ids"])),
                            "item_hashes": tuple(json.loads(row.get("item_hashes") or "[]")),
                            "metrics": json.loads(row["metrics"] or "{}")})
