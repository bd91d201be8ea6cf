"""Ending a child that leads its own process group (started with ``start_new_session=True``), so
whatever it started (compile workers, build helpers) ends with it."""
from __future__ import annotations

import os
import signal
import subprocess


def kill_pid_group(pid: int | None) -> None:
    """SIGKILL the process group that ``pid`` leads; nothing where there is none (None: a
    process never started, e.g. one a zygote was asked for but did not fork)."""
    if pid is None:
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def kill_group(proc: subprocess.Popen, wait_s: float | None = None) -> None:
    """SIGKILL ``proc``'s whole group, then reap ``proc`` (waiting at most ``wait_s`` seconds
    where given). Call it before ``proc`` is reaped: until then its id cannot name another group."""
    kill_pid_group(proc.pid)
    try:
        proc.wait(wait_s)
    except subprocess.TimeoutExpired:
        pass
