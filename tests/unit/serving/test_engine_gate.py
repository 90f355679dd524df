"""The shared/exclusive gate that keeps a vLLM-CPU scoring request alone in its batch."""

import threading
import time

from agent.serving.vllm import SharedExclusive


def test_an_exclusive_holder_never_overlaps_a_shared_one():
    gate = SharedExclusive()
    inside = {"shared": 0, "exclusive": 0}
    overlaps = []
    lock = threading.Lock()

    def hold(kind: str) -> None:
        with (gate.exclusive() if kind == "exclusive" else gate.shared()):
            with lock:
                inside[kind] += 1
                if inside["exclusive"] and (inside["shared"] or inside["exclusive"] > 1):
                    overlaps.append(dict(inside))
            time.sleep(0.002)
            with lock:
                inside[kind] -= 1

    threads = [threading.Thread(target=hold, args=("exclusive" if i % 4 == 0 else "shared",)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert not any(t.is_alive() for t in threads)
    assert overlaps == []


def test_shared_holders_run_together():
    gate = SharedExclusive()
    barrier = threading.Barrier(3, timeout=5)

    def hold() -> None:
        with gate.shared():
            barrier.wait()  # all three must be inside at once, or this times out

    threads = [threading.Thread(target=hold) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert not barrier.broken
