"""Concurrent writers on one memory file while a bake runs: processes adding through the API,
the CLI, the agent's remember tool and a feed, with a real worker baking and renewing its
lease. No write is lost, ids are unique, nobody sees "database is locked"."""

import json
import sqlite3
import os
import subprocess
import sys
import threading

from agent.runtime.config import RuntimeConfig
from agent.runtime.worker import spawn_worker
from memory.store import MemoryStore
from tools.registry import ToolContext, build_tools
from tests.unit.tiny_bake import tiny_bake

TINY_BAKE = tiny_bake(epochs=2)
PER_WRITER = 40


# Separate interpreters, not forked children: a child forked while a parent thread holds an
# SQLite lock inherits SQLite's per-process lock table and waits forever.
WRITER = """
import json, sys
from memory.store import MemoryStore
store = MemoryStore(sys.argv[1])
print(json.dumps([store.add("ada", f"Writer {sys.argv[2]} fact {i}.", "fact").item.id for i in range(int(sys.argv[3]))]))
"""


def test_concurrent_writers_during_a_bake_lose_nothing(tiny_model, tmp_path):
    config = RuntimeConfig(home=tmp_path, model=str(tiny_model), bake=TINY_BAKE, lease_s=1.0,
                           engine={"kind": "transformers"}, gate={"min_fidelity": -1e9, "max_locality_kl": 1e9})
    store = MemoryStore(config.db_path, auto_approve=("operator", "user", "feed"))
    store.create_agent("ada")
    first = [store.add("ada", f"Before the bake {i}.", "news").item.id for i in range(3)]
    worker = spawn_worker(config, "ada")  # heartbeats every lease_s / 3 while it bakes

    errors: list[BaseException] = []

    def guarded(fn):
        def run():
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - the test reports any failure
                errors.append(e)
        return run

    def tool_writer():
        remember = build_tools(["remember"], ToolContext(store=MemoryStore(config.db_path), agent="ada"))["remember"]
        for i in range(PER_WRITER):
            assert "remembered as item" in remember.invoke({"text": f"Tool note {i}.", "kind": "fact"})

    def feed_writer():
        feed = MemoryStore(config.db_path, auto_approve=("operator", "user", "feed"))
        for i in range(PER_WRITER):
            feed.add("ada", f"Headline {i} from the wire.", "news", source="feed:wire", trust="feed")

    def cli_writer():
        for i in range(5):
            subprocess.run([sys.executable, "-m", "agent.cli", "memory", "add", "--agent", "ada", "--text",
                            f"CLI fact {i}.", "--home", str(tmp_path)], check=True, capture_output=True, timeout=120)

    threads = [threading.Thread(target=guarded(f)) for f in (tool_writer, feed_writer, cli_writer)]
    for t in threads:
        t.start()
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(config.db_path), str(k), str(PER_WRITER)],
                                stdout=subprocess.PIPE, text=True) for k in range(3)]
    written = [i for w in writers for i in json.loads(w.communicate(timeout=300)[0])]
    assert [w.returncode for w in writers] == [0, 0, 0]
    for t in threads:
        t.join(timeout=300)
    assert worker.wait(timeout=300) == 0
    assert errors == []

    items = store.items("ada")
    texts = [i.text for i in items]
    assert len(items) == len(set(i.id for i in items)) == 3 + 3 * PER_WRITER + PER_WRITER * 2 + 5
    assert set(written) <= {i.id for i in items} and len(set(written)) == 3 * PER_WRITER
    assert sum(t.startswith("Tool note") for t in texts) == PER_WRITER
    assert sum(t.startswith("CLI fact") for t in texts) == 5
    # The bake took what was pending when it claimed; everything written later is still there.
    record = store.adapters("ada")[-1]
    assert set(first) <= set(record.item_ids)
    assert {store.get(i).status for i in record.item_ids} == {"baking"}  # awaiting the swap
    assert all(store.get(i).status in ("pending", "review") for i in written if i not in record.item_ids)
    with sqlite3.connect(config.db_path) as db:  # concurrent writers left a sound file
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
