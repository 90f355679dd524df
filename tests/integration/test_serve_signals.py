"""`agent serve` with a real managed vLLM, stopped the way service managers stop it: SIGTERM
shuts everything down; after SIGKILL, no vLLM process is left either."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from agent.serving.vllm import free_port

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")]


def _group(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def _serve(home: Path) -> tuple[subprocess.Popen, int]:
    """`agent serve` on its own port; returns it, healthy, and its vLLM's process group."""
    port = free_port()
    log = open(home / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "serve", "--home", str(home), "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        assert proc.poll() is None, (home / "serve.log").read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(1)
    else:
        proc.kill()
        pytest.fail("agent serve did not become healthy in 600 s")
    vllm = int((home / "logs" / "vllm.pid").read_text().split()[0])  # pid, start time, owner
    assert _group(vllm), "the managed vLLM is not running"
    return proc, vllm


def _empty_within(pgid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _group(pgid) and time.monotonic() < deadline:
        time.sleep(0.5)
    return not _group(pgid)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_no_vllm_process_outlives_agent_serve(tmp_path, sig):
    proc, vllm = _serve(tmp_path)
    try:
        proc.send_signal(sig)
        code = proc.wait(timeout=90)
        if sig == signal.SIGTERM:
            assert code == 0, (tmp_path / "serve.log").read_text()
            assert "stopping" in (tmp_path / "serve.log").read_text()
        assert _empty_within(vllm, 60), f"vLLM group {vllm} still has {_group(vllm)} after {sig.name}"
    finally:
        proc.kill()
        for pid in _group(vllm):  # never leave one behind for the next test
            subprocess.run(["kill", "-9", str(pid)], check=False)
