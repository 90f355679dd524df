"""A bake is stopped for stalling or for running far past its own estimate, never on a fixed
clock while it progresses."""

import subprocess
import sys
import time

from agent.runtime.worker import BakeWatch, watch_worker


def progress(done: int, estimate: float | None = None) -> dict:
    state = {"training": [done, 100, ""]}
    if estimate is not None:
        state["_estimate"] = {"seconds": estimate, "dtype": "fp32", "flops_per_s": 7e10, "phases": {}}
    return state


def test_a_bake_that_keeps_progressing_is_never_stopped_without_an_estimate():
    watch = BakeWatch(stall_s=60, limit_factor=4, start_allowance_s=120, now=0)
    for t in range(0, 100_000, 30):  # 28 hours, progress every 30 s
        assert watch.check(progress(t), now=t) is None


def test_a_bake_without_progress_is_stopped_as_stalled():
    watch = BakeWatch(stall_s=60, limit_factor=4, start_allowance_s=120, now=0)
    assert watch.check(progress(1), now=10) is None
    assert watch.check(progress(1), now=69) is None
    assert watch.check(progress(1), now=71) == "stalled: no progress for 60 s"


def test_a_bake_past_its_limit_is_stopped_and_the_limit_counts_from_its_estimate():
    watch = BakeWatch(stall_s=60, limit_factor=2, start_allowance_s=100, now=0)
    for t in range(0, 500, 20):  # waiting for another bake's turn: no estimate yet
        assert watch.check({"_waiting": {"seconds": t}}, now=t) is None
    assert watch.check(progress(0, estimate=50), now=500) is None
    assert watch.limit_s == 2 * 50 + 100
    assert watch.check(progress(5, estimate=50), now=690) is None
    stop = watch.check(progress(6, estimate=50), now=701)
    assert stop is not None and "past 2x its estimate of 50 s" in stop


def test_an_explicit_cap_still_applies():
    watch = BakeWatch(stall_s=60, limit_factor=4, start_allowance_s=120, deadline=100, now=0)
    assert watch.check(progress(1), now=99) is None
    assert watch.check(progress(2), now=101) == "timed out (timeout_s)"


def test_a_stalled_worker_process_is_killed_and_the_reason_returned(tmp_path):
    progress = tmp_path / "progress.json"
    progress.write_text('{"training": [3, 10, ""]}')  # and never again
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    start = time.monotonic()
    stopped = watch_worker(worker, progress, BakeWatch(stall_s=1, limit_factor=4, start_allowance_s=0),
                           poll_s=0.1)
    assert stopped == "stalled: no progress for 1 s"
    assert worker.returncode is not None and time.monotonic() - start < 30


def test_a_worker_that_finishes_is_not_stopped(tmp_path):
    worker = subprocess.Popen([sys.executable, "-c", "pass"])
    assert watch_worker(worker, tmp_path / "none.json", BakeWatch(60, 4, 120), poll_s=0.1) is None
    assert worker.returncode == 0
