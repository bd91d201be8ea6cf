"""``--time-limit S`` as a wall-clock contract: at S the command stops and writes what it has.

Three moments, counted from when the command started (not from when the search did, so imports,
tracing and baselines are inside the limit):

- the search stops proposing while it still has time to fully verify its best candidate;
- ``KILL_BEFORE_S`` before the end, a watchdog thread kills whatever is still running (worker and
  build processes), again and again until the search has unwound, so no measurement outlives S;
- ``RESCUE_AFTER_S`` after the end, if the conductor itself is still busy (a slow reference
  computed in-process cannot be interrupted), the watchdog writes the results from what is
  verified so far and ends the process: the command never takes more than a few seconds over S.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

KILL_BEFORE_S = 1.0      # in-flight work is killed this long before the end
RESCUE_AFTER_S = 5.0     # a conductor still busy this long after the end is abandoned
KILL_EVERY_S = 0.25      # after the end, kill again: a worker started after the last kill dies too


class Deadline:
    """The end of a time limit, on the monotonic clock."""

    def __init__(self, limit_s: float, started: float | None = None) -> None:
        if limit_s <= 0:
            raise ValueError(f"time limit must be positive, got {limit_s!r}")
        self.limit_s = float(limit_s)
        self.started = time.monotonic() if started is None else started
        self.end = self.started + self.limit_s

    def remaining(self) -> float:
        return self.end - time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def expired(self) -> bool:
        return self.remaining() <= KILL_BEFORE_S


class Watchdog:
    """Enforces a Deadline from a daemon thread: ``kill`` from KILL_BEFORE_S before the end until
    stopped, ``rescue`` (which should not return) if the owner has not stopped it RESCUE_AFTER_S
    after the end. Use as a context manager around the work."""

    def __init__(self, deadline: Deadline, kill: Callable[[], None],
                 rescue: Callable[[], None] | None = None) -> None:
        self.deadline, self._kill, self._rescue = deadline, kill, rescue
        self._done = threading.Event()
        self.fired = False            # True once the kill moment was reached
        self._thread = threading.Thread(target=self._watch, name="akg-deadline", daemon=True)

    def __enter__(self) -> "Watchdog":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._done.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

    def _watch(self) -> None:
        if self._done.wait(max(0.0, self.deadline.remaining() - KILL_BEFORE_S)):
            return
        self.fired = True
        rescue_at = self.deadline.end + RESCUE_AFTER_S
        while not self._done.is_set():
            try:
                self._kill()
            except Exception:  # a kill racing a process's own exit: try again next round
                pass
            if self._rescue is not None and time.monotonic() >= rescue_at:
                self._rescue()
                return
            self._done.wait(KILL_EVERY_S)
