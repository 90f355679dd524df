"""The managed server's process: tied to its runtime's life, and reaped when a dead runtime left it."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

from memory.store import _process_alive  # one definition of a live process (zombies count as gone)

# Run before vLLM's own exec: ask Linux for SIGTERM when the parent dies (PR_SET_PDEATHSIG,
# kept across exec), then become vLLM. Exits at once if the parent is already gone.
_PDEATHSIG_LAUNCH = (
    "import ctypes, os, signal, sys\n"
    "try: ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)\n"
    "except (OSError, AttributeError): pass\n"
    "if os.getppid() != int(sys.argv[1]): sys.exit(1)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def with_parent_death_signal(command: list[str]) -> list[str]:
    """``command`` wrapped so that, on Linux, it dies with this process even after SIGKILL
    (a managed vLLM must not outlive its runtime); unchanged elsewhere, where the pidfile
    that the next start reaps (:func:`reap_orphan`) is the only guard."""
    if not sys.platform.startswith("linux"):
        return command
    return [sys.executable, "-c", _PDEATHSIG_LAUNCH, str(os.getpid()), *command]


def reap_orphan(pidfile: Path, grace_s: float = 20.0) -> int | None:
    """Stop the process group a pidfile names, if it was left by a runtime that is gone: the
    owner recorded in it is dead, the pid still has the recorded start time (not reused) and
    leads its own group. A live owner's server (another runtime on the same home) is never
    touched. Returns the pid stopped, or None."""
    try:
        pid, started, owner = (int(x) for x in pidfile.read_text().split()[:3])
    except (OSError, ValueError):
        return None
    if _process_alive(owner) and owner != os.getpid():
        return None  # another live runtime's server
    try:
        leads = os.getpgid(pid) == pid
    except ProcessLookupError:
        leads = False
    if not leads or _start_time(pid) != started:
        pidfile.unlink(missing_ok=True)  # gone, or the pid now belongs to something else
        return None
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + wait
        while _group_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not _group_alive(pid):
            break
    pidfile.unlink(missing_ok=True)
    return pid


def _start_time(pid: int) -> int:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat); -1 if gone."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return -1


def _group_alive(pgid: int) -> bool:
    """Any non-zombie process left in group ``pgid``."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False
