"""The runtime process (`agent serve`) is killed with SIGKILL and started again: memories, the
adapter registry, live pointers and schedules come back as they were."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from agent.runtime.config import RuntimeConfig
from agent.runtime.worker import spawn_worker
from memory.store import MemoryStore
from tests.unit.tiny_bake import tiny_bake

TINY_BAKE = tiny_bake()


def serve(config_file, log, env=None, new_session=True):
    return subprocess.Popen([sys.executable, "-m", "agent.cli", "serve", "--runtime-config", str(config_file)],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=new_session, env=env)


def runtime_file(tmp_path, tiny_model, bake_every_n_items: int) -> tuple[dict, Path]:
    """A runtime config on the tiny model whose gate passes anything, and its YAML file."""
    data = {"home": str(tmp_path), "model": str(tiny_model), "bake": TINY_BAKE, "engine": {"kind": "transformers"},
            "gate": {"min_fidelity": -1e9, "max_locality_kl": 1e9},
            "schedule": {"bake_every_s": 3600, "bake_every_n_items": bake_every_n_items, "poll_s": 0.5}}
    config_file = tmp_path / "runtime.yaml"
    config_file.write_text(yaml.safe_dump(data))
    return data, config_file


def wait_for(log, text, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text():
            return
        time.sleep(0.5)
    raise AssertionError(f"{text!r} not in {log}:\n{log.read_text()[-2000:]}")


def state(db):
    store = MemoryStore(db)
    tables = {t: sorted(map(str, store.db[t].rows)) for t in ("agents", "items", "adapters", "bake_runs")}
    tables["jobs"] = sorted(r["id"] for r in store.db["apscheduler_jobs"].rows)
    store.close()
    return tables


def test_a_killed_runtime_comes_back_as_it_was(tiny_model, tmp_path):
    data, config_file = runtime_file(tmp_path, tiny_model, 50)
    config = RuntimeConfig(**data)
    store = MemoryStore(config.db_path)
    store.create_agent("ada")
    store.add("ada", "The tower is blue.", "news")
    assert spawn_worker(config, "ada").wait(timeout=300) == 0  # a candidate the runtime swaps in
    store.add("ada", "The bridge is red.", "news")  # pending: in context, not baked yet

    first = serve(config_file, tmp_path / "serve1.log")
    wait_for(tmp_path / "serve1.log", "agent ada: live adapter ada-v0001")
    time.sleep(2)  # the scheduler has written its jobs
    before = state(config.db_path)
    assert before["jobs"] and store.live("ada").name == "ada-v0001"
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()

    second = serve(config_file, tmp_path / "serve2.log")
    try:
        wait_for(tmp_path / "serve2.log", "agent ada: live adapter ada-v0001")
        time.sleep(2)
        assert state(config.db_path) == before
        assert [i.status for i in store.items("ada")] == ["baked", "pending"]
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        second.wait(timeout=60)


def test_a_runtime_killed_between_register_and_promote_swaps_the_candidate_in_once(tiny_model, tmp_path):
    from baking.faults import ENV

    data, config_file = runtime_file(tmp_path, tiny_model, 1)
    store = MemoryStore(RuntimeConfig(**data).db_path)
    store.create_agent("ada")
    first = serve(config_file, tmp_path / "serve1.log", env={**os.environ, ENV: "kill@promoting"}, new_session=False)
    wait_for(tmp_path / "serve1.log", "agent ada: live adapter (none")
    store.add("ada", "The tower is blue.", "news")  # the schedule bakes it; the swap kills the runtime
    assert first.wait(timeout=600) == -signal.SIGKILL, (tmp_path / "serve1.log").read_text()[-2000:]
    [candidate] = store.adapters("ada")
    assert candidate.status == "candidate" and store.live("ada") is None

    second = serve(config_file, tmp_path / "serve2.log")
    try:
        wait_for(tmp_path / "serve2.log", "agent ada: live adapter ada-v0001")
        time.sleep(2)  # a poll or two: nothing is baked again
        assert [(a.name, a.status) for a in store.adapters("ada")] == [("ada-v0001", "live")]
        assert len(store.runs("ada")) == 1 and [i.status for i in store.items("ada")] == ["baked"]
        assert len(store.events("ada", kinds=("swap",))) == 1
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        second.wait(timeout=60)
