"""Where a run's wall time goes: seconds per named phase, for report.json's ``phases``.

Phases on the conductor's critical path (start-up, tracing, the eager baseline, judging) add up to
about the wall time; work that runs beside it (builds in their processes, torch.compile's cold
compile) is counted as busy seconds and may overlap the rest, so the sum can exceed the wall time.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager

# The order report.json lists them in; a phase never entered is left out.
ORDER = ("startup", "footprint", "validate", "trace", "floor", "workers", "eager_baseline",
         "compile_baseline_compile", "compile_baseline_timing", "builds", "reference", "judging",
         "judging_load", "judging_correctness", "judging_timing", "full_verification", "writing")


class Phases:
    """Thread-safe running totals, counted from ``started`` (time.monotonic())."""

    def __init__(self, started: float | None = None) -> None:
        self.started = time.monotonic() if started is None else started
        self._seconds: dict[str, float] = {}
        self._marks: dict[str, float] = {}     # moments, seconds from the start: the first time each happened
        self._lock = threading.Lock()

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self._seconds[name] = self._seconds.get(name, 0.0) + max(0.0, float(seconds))

    @contextmanager
    def span(self, name: str):
        began = time.monotonic()
        try:
            yield
        finally:
            self.add(name, time.monotonic() - began)

    def since_start(self, name: str) -> None:
        """Record ``name`` as everything from the start until now (start-up: imports, loading)."""
        self.add(name, time.monotonic() - self.started)

    def mark(self, name: str) -> None:
        """Note the first time ``name`` happened (e.g. the first fully verified candidate)."""
        with self._lock:
            self._marks.setdefault(name, time.monotonic() - self.started)

    def milestones(self) -> dict:
        with self._lock:
            return {name: round(t, 3) for name, t in self._marks.items()}

    def as_dict(self) -> dict:
        with self._lock:
            seconds = dict(self._seconds)
        ordered = [n for n in ORDER if n in seconds] + sorted(n for n in seconds if n not in ORDER)
        out = {n: round(seconds[n], 3) for n in ordered}
        out["wall"] = round(time.monotonic() - self.started, 3)
        return out
