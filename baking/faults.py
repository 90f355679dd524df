"""Fault injection for the crash-safety tests.

With ``PROMPTBAKE_FAULT=kill@<point>`` in its environment, a process sends itself SIGKILL when
it reaches ``<point>``: a real, uncatchable kill at an exact phase of a bake, which no
external timer could hit reliably. Points: ``sampling`` (first teacher batch done),
``training`` (first optimiser step done), ``writing`` (weights written to the temporary
folder, not yet complete or renamed), ``registering`` (adapter folder complete, not yet in the
store). Later points: ``registered`` (the worker, right after the store recorded the adapter
and the gate's verdict) and ``promoting`` (the runtime, a candidate loaded and served its first
token, not yet promoted). Unset, :func:`fault_point` does nothing.
"""

from __future__ import annotations

import os
import signal

ENV = "PROMPTBAKE_FAULT"
POINTS = ("sampling", "training", "writing", "registering")  # before anything is registered
LATER_POINTS = ("registered", "promoting")


def fault_point(name: str) -> None:
    if os.environ.get(ENV) == f"kill@{name}":
        os.kill(os.getpid(), signal.SIGKILL)
