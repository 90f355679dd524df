"""A managed server never outlives its runtime: a parent-death signal on Linux, and a pidfile
that the next start reaps. Real processes and real signals."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.serving.process import reap_orphan, with_parent_death_signal

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")


def _gone(pid: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state == "Z":
            return True
        time.sleep(0.1)
    return False


@linux_only
def test_a_child_started_with_the_parent_death_signal_dies_when_its_parent_is_sigkilled(tmp_path):
    parent_code = (
        "import subprocess, sys, time\n"
        "from agent.serving.process import with_parent_death_signal\n"
        "child = subprocess.Popen(with_parent_death_signal([sys.executable, '-c', 'import time; time.sleep(600)']),"
        " start_new_session=True)\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).parents[3])
    child = int(parent.stdout.readline())
    time.sleep(0.5)  # the launcher has exec'd into the child by now
    assert not _gone(child, 0.2)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    assert _gone(child, 10), "the child outlived its SIGKILLed parent"


def _dead_pid() -> int:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return gone.pid


def test_the_next_start_reaps_a_vllm_group_a_killed_runtime_left(tmp_path):
    from agent.serving.process import _start_time

    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "vllm.entrypoints.fake"],
                              start_new_session=True)
    pidfile = tmp_path / "vllm.pid"
    pidfile.write_text(f"{orphan.pid} {_start_time(orphan.pid)} {_dead_pid()}\n")  # its runtime is gone
    assert reap_orphan(pidfile, grace_s=5) == orphan.pid
    assert orphan.wait(timeout=10) == -signal.SIGTERM and not pidfile.exists()


def test_a_live_runtimes_server_and_a_reused_pid_are_left_alone(tmp_path):
    from agent.serving.process import _start_time

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        pidfile = tmp_path / "vllm.pid"
        pidfile.write_text(f"{other.pid} {_start_time(other.pid)} {owner.pid}\n")  # its runtime still runs
        assert reap_orphan(pidfile) is None and other.poll() is None and pidfile.exists()
        pidfile.write_text(f"{other.pid} {_start_time(other.pid) - 1} {_dead_pid()}\n")  # pid reused since
        assert reap_orphan(pidfile) is None and other.poll() is None and not pidfile.exists()
        assert reap_orphan(tmp_path / "missing.pid") is None
    finally:
        for p in (other, owner):
            p.kill()
            p.wait()


def test_the_wrapper_keeps_the_command_and_its_arguments():
    command = ["vllm-server", "--port", "8000"]
    wrapped = with_parent_death_signal(command)
    assert wrapped[-3:] == command and (wrapped == command or str(os.getpid()) in wrapped)
