"""The runtime loop on a tiny random Llama with the in-process engine (no vLLM): memory,
context-until-baked, a scheduler-triggered bake in a worker process, gate, swap."""

import time
from pathlib import Path

import pytest

from agent.runtime.config import RuntimeConfig
from agent.serving.engine import SamplingParams
from agent.serving.hf import TransformersEngine
from agent.runtime.runtime import Runtime
from agent.runtime.scheduler import BakeScheduler
from baking.config import BakeConfig
from tests.unit.tiny_bake import tiny_bake

TINY_BAKE = tiny_bake(batch_size=4)


def make_runtime(tiny_model, tmp_path, **overrides) -> Runtime:
    config = RuntimeConfig(home=tmp_path, model=str(tiny_model), bake=TINY_BAKE,
                           engine={"kind": "transformers"}, **overrides)
    return Runtime.open(config, TransformersEngine(str(tiny_model)))


def test_pending_items_are_served_from_context(tiny_model, tmp_path):
    runtime = make_runtime(tiny_model, tmp_path)
    runtime.store.create_agent("ada")
    runtime.store.add("ada", "You are terse.", "persona")
    runtime.store.add("ada", "The tower is blue.", "news")
    messages = runtime.messages_for("ada", [{"role": "user", "content": "What colour is the tower?"}])
    assert messages[0] == {"role": "system", "content": "You are terse."}
    assert "The tower is blue." in messages[1]["content"] and messages[1]["content"].endswith("tower?")
    assert runtime.chat("ada", [{"role": "user", "content": "Hi"}], SamplingParams(max_tokens=3)).adapter is None


def test_every_n_items_trigger_bakes_and_swaps_and_schedules_survive_restart(tiny_model, tmp_path, caplog):
    from apscheduler.events import EVENT_JOB_MAX_INSTANCES

    runtime = make_runtime(tiny_model, tmp_path, schedule={"bake_every_n_items": 2, "poll_s": 0.5},
                           gate={"min_fidelity": -1e9, "max_locality_kl": 1e9})
    runtime.store.create_agent("ada")
    scheduler = BakeScheduler(runtime)
    skipped = []
    scheduler.scheduler.add_listener(skipped.append, EVENT_JOB_MAX_INSTANCES)
    scheduler.start()
    try:
        runtime.store.add("ada", "The tower is blue.", "news")
        time.sleep(1.5)
        assert runtime.store.live("ada") is None  # one item: below the threshold
        runtime.store.add("ada", "The bridge is red.", "news")
        deadline = time.monotonic() + 120
        while runtime.store.live("ada") is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert runtime.store.live("ada").name == "ada-v0001"
        assert runtime.live_adapter("ada") == "ada-v0001"
        assert {i.status for i in runtime.store.items("ada")} == {"baked"}
        assert runtime.context_items("ada") == []
        assert "bake-n-ada" in scheduler.jobs()
        # Polls that fired while the bake ran were skipped quietly, not warned about each time.
        assert skipped
        assert not [r for r in caplog.records if "maximum number of running instances" in r.getMessage()]
    finally:
        scheduler.shutdown()
    # The job store is the same SQLite file: the jobs are still there after a restart.
    assert "apscheduler_jobs" in runtime.store.db.table_names()
    again = BakeScheduler(runtime)
    again.scheduler.start(paused=True)
    assert "bake-n-ada" in again.jobs()
    again.shutdown(wait=False)


def test_a_rejected_candidate_keeps_the_items_in_context(tiny_model, tmp_path):
    runtime = make_runtime(tiny_model, tmp_path, gate={"min_fidelity": 2.0})  # unreachable
    runtime.store.create_agent("ada")
    runtime.store.add("ada", "The tower is blue.", "news")
    runtime.bake("ada")
    (record,) = runtime.store.adapters("ada")
    assert record.status == "rejected" and "fidelity" in record.reason
    assert runtime.store.live("ada") is None and runtime.live_adapter("ada") is None
    assert [i.status for i in runtime.store.items("ada")] == ["pending"]


def test_old_adapter_is_unloaded_only_after_its_in_flight_requests(tiny_model, tmp_path):
    runtime = make_runtime(tiny_model, tmp_path, gate={"min_fidelity": -1e9, "max_locality_kl": 1e9})
    runtime.store.create_agent("ada")
    runtime.store.add("ada", "The tower is blue.", "news")
    runtime.bake("ada")
    assert runtime.live_adapter("ada") == "ada-v0001"

    runtime.store.add("ada", "The bridge is red.", "news")
    with runtime.using("ada-v0001"):  # a request still being served by v0001
        runtime.bake("ada")
        assert runtime.live_adapter("ada") == "ada-v0002"
        time.sleep(0.3)
        assert "ada-v0001" in runtime.engine.adapters()  # not pulled from under the request
    deadline = time.monotonic() + 10
    while "ada-v0001" in runtime.engine.adapters() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert runtime.engine.adapters() == ["ada-v0002"]
    assert runtime.store.live("ada").parent == "ada-v0001"  # v2 was baked on top of v1


def test_langchain_chat_model_answers_with_the_live_adapter_and_context(tiny_model, tmp_path):
    from langchain_core.messages import AIMessage

    from agent.langchain_model import PromptbakeChatModel

    runtime = make_runtime(tiny_model, tmp_path, gate={"min_fidelity": -1e9, "max_locality_kl": 1e9})
    runtime.store.create_agent("ada")
    runtime.store.add("ada", "The tower is blue.", "news")
    runtime.bake("ada")
    runtime.store.add("ada", "The bridge is red.", "news")  # pending: goes in as context
    chat = PromptbakeChatModel(runtime=runtime, agent="ada", max_tokens=5)
    message = chat.invoke("What colour is the bridge?")
    assert isinstance(message, AIMessage)
    assert message.response_metadata["adapter"] == "ada-v0001"
    assert message.usage_metadata["input_tokens"] > len("The bridge is red.")  # context was sent


def test_every_baked_news_item_goes_back_to_the_baker_as_earlier_items_whatever_the_lineage_length(tmp_path):
    from agent.runtime.worker import earlier_items
    from memory import MemoryStore

    store = MemoryStore(tmp_path / "m.db")
    store.create_agent("ada")
    texts = ["Zentrix Robotics named Mara Okafor CEO.", "Port Alder opened the Glasswing Bridge.",
             "The Nordhaven Falcons won the Continental Cup.", "Halvorsen Bank named Ilsa Penrow CFO."]

    def bake_next(text: str, kind: str = "news") -> list:
        store.add("ada", text, kind)
        run, live = store.claim("ada", 60), store.live("ada")
        store.promote(store.register_candidate(run.id, str(tmp_path), live.name if live else None, {}, passed=True).id, "test")
        return earlier_items(store, "ada")

    assert [i.text for i in bake_next(texts[0])] == texts[:1]
    bake_next("You are a pirate.", "persona")  # a persona is not re-taught as news
    for n, text in enumerate(texts[1:], start=2):
        earlier = bake_next(text)
        assert [i.text for i in earlier] == texts[:n]  # every one, in lineage order: none thins out
        assert all(i.kind == "news" and i.id for i in earlier)
    store.add("ada", "Pending news is not in the weights yet.", "news")
    assert len(earlier_items(store, "ada")) == len(texts)


def test_per_bake_overrides_reach_the_worker_config(tiny_model, tmp_path):
    runtime = make_runtime(tiny_model, tmp_path)
    assert runtime.config_with(None) is runtime.config
    config = runtime.config_with({"num_queries": 96, "device": "cuda:1"})
    assert config.bake.num_queries == 96 and config.bake.device == "cuda:1" and config.worker_device == "cuda:1"
    assert config.bake.model == str(tiny_model)  # the server's model still wins
    with pytest.raises(ValueError):
        runtime.config_with({"num_querys": 96})


def test_a_refused_set_is_not_rebaked_by_the_schedule_until_something_changes(tiny_model, tmp_path):
    from agent.runtime.scheduler import _RUNTIMES, bake_if_enough_pending, refused_unchanged, scheduled_bake

    runtime = make_runtime(tiny_model, tmp_path, gate={"min_fidelity": 2.0})  # unreachable
    runtime.store.create_agent("ada")
    runtime.store.add("ada", "The tower is blue.", "news")
    assert not refused_unchanged(runtime, "ada")  # no bake yet
    runtime.bake("ada")
    assert [r.status for r in runtime.store.runs("ada")] == ["rejected"]
    assert refused_unchanged(runtime, "ada")
    db = str(runtime.config.db_path.resolve())
    _RUNTIMES[db] = runtime
    try:
        bake_if_enough_pending(db, "ada", 1)  # the trigger fires, but the same inputs would be refused again
        scheduled_bake(db, "ada")  # so would an interval or cron bake
        assert len(runtime.store.runs("ada")) == 1
        scheduled_bake(db, "ada", force=True)  # an explicit bake (`agent bake`) always bakes
        assert len(runtime.store.runs("ada")) == 2
        runtime.store.add("ada", "The bridge is red.", "news")  # a new item changes the inputs
        assert not refused_unchanged(runtime, "ada")
        bake_if_enough_pending(db, "ada", 1)
        assert len(runtime.store.runs("ada")) == 3
    finally:
        _RUNTIMES.pop(db, None)


def test_cpu_bakes_take_turns_and_a_dead_holder_frees_the_turn(tmp_path):
    import subprocess
    import sys
    import threading

    from agent.runtime.worker import cpu_turn

    held = threading.Event()

    def first() -> None:
        with cpu_turn("cpu", tmp_path):
            held.set()
            time.sleep(0.6)

    thread = threading.Thread(target=first)
    thread.start()
    held.wait(5)
    with cpu_turn("cuda:1", tmp_path) as waited:  # a GPU bake does not wait for the CPU
        assert waited == 0.0
    with cpu_turn("cpu", tmp_path) as waited:
        assert waited >= 0.4
    thread.join()
    # A holder killed with SIGKILL releases its turn (the kernel drops the file lock).
    holder = subprocess.Popen([sys.executable, "-c", (
        "import time; from agent.runtime.worker import cpu_turn\n"
        f"with cpu_turn('cpu', {str(tmp_path)!r}):\n    print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[3])
    try:
        assert holder.stdout.readline().strip() == "held"
    finally:
        holder.kill()
        holder.wait()
    with cpu_turn("cpu", tmp_path) as waited:
        assert waited < 5


def test_a_failing_lease_heartbeat_is_reported_and_retried_not_silent(tmp_path, monkeypatch, capsys):
    import sqlite3

    import baking
    from agent.runtime.worker import run_worker
    from memory import MemoryStore

    config = RuntimeConfig(home=tmp_path, lease_s=0.3, engine={"kind": "transformers"})
    store = MemoryStore(config.db_path)
    store.create_agent("ada")
    store.add("ada", "The tower is blue.", "news")

    def broken_renew(self, run_id, lease_s, pid=None):
        raise sqlite3.OperationalError("simulated: disk I/O error")

    def slow_bake(*args, **kwargs):
        time.sleep(1.0)  # about 10 beats
        raise RuntimeError("simulated: the bake ends")

    monkeypatch.setattr(MemoryStore, "renew", broken_renew)
    monkeypatch.setattr(baking, "bake", slow_bake)
    with pytest.raises(RuntimeError, match="the bake ends"):
        run_worker(config, "ada")
    err = capsys.readouterr().err
    assert "lease renewal failed (1 in a row): OperationalError: simulated: disk I/O error" in err
    assert "(3 in a row)" in err  # the thread lived on and kept trying
    events = store.events("ada", kinds=("heartbeat_failed",))
    assert len(events) == 1 and "disk I/O error" in events[0]["data"]["error"]  # once per streak


def test_the_scheduler_log_filter_keeps_every_traceback_record_visible():
    import logging

    from agent.runtime.scheduler import _BusyIsNormal

    def record(error: Exception) -> logging.LogRecord:
        try:
            raise error
        except Exception:
            import sys

            return logging.LogRecord("agent.runtime.scheduler.apscheduler", logging.ERROR, __file__, 1,
                                     "Job %s raised", ("poll",), sys.exc_info())

    shutdown = record(RuntimeError("cannot schedule new futures after shutdown"))
    assert _BusyIsNormal().filter(shutdown) is True  # kept, as one line
    assert shutdown.exc_info is None and shutdown.levelno == logging.ERROR and "Job poll raised" in shutdown.getMessage()
    other = record(ValueError("a real bug"))
    assert _BusyIsNormal().filter(other) is True and other.exc_info is not None and other.levelno == logging.ERROR
