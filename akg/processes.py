"""Ending a child that leads its own process group (started with ``start_new_session=True``), so
whatever it started (compile workers, build helpers) ends with it."""
from __future__ import annotations

import os
import signal
import subprocess


def kill_group(proc: subprocess.Popen, wait_s: float | None = None) -> None:
    """SIGKILL ``proc``'s whole group, then reap ``proc`` (waiting at most ``wait_s`` seconds
    where given). Call it before ``proc`` is reaped: until then its id cannot name another group."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(wait_s)
    except subprocess.TimeoutExpired:
        pass
