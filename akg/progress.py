"""Progress of a long command (optimize, bench, port, migrate) on the terminal, with rich.

One object per command. It is the search's progress callback (``progress(message, scored)``) and
has explicit methods for commands that are not a search:

* ``phase(text)``      what is happening now (baselines, full verification, problem 3 of 30 ...)
* ``candidate(scored)`` one line per measured candidate: k of the budget, its distinguishing
  schedule values (never cut), its time with the eager time measured beside it and their ratio,
  the best so far and the time left
* ``stopped(reason)``   why the search ended (budget, time limit, near the roofline floor, nothing left)

A full verification's line is labelled ``[verify]`` (mid-search promotions and the end-of-search
walk alike); ``[final]`` labels the one line with the end-of-search choice.

Every figure on a candidate line comes from that candidate's own interleaved measurement, so its
speedup is its eager time divided by its time. With ``quiet`` (``--json``) nothing is printed.
On a terminal a status line (phase, k of budget, best, time left) stays below the log lines.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from rich.console import Console
from rich.markup import escape


@dataclass(frozen=True)
class Best:
    candidate_id: str
    time_ms: float
    eager_ms: float | None      # measured beside it, interleaved

    @property
    def speedup(self) -> float | None:
        return self.eager_ms / self.time_ms if self.eager_ms and self.time_ms else None


def describe(scored) -> str:
    """The candidate's plan and every schedule value: what tells it apart from its neighbours."""
    return scored.candidate.description


def timing_text(verdict) -> str:
    """'0.5024 ms (eager 2.105 ms beside it: 4.19x)' from one interleaved measurement."""
    if verdict.time_ms is None:
        return ""
    eager = dict(verdict.baselines).get("eager_ms")
    if not eager or not verdict.time_ms:
        return f"{verdict.time_ms:.4g} ms"
    return f"{verdict.time_ms:.4g} ms (eager {eager:.4g} ms beside it: {eager / verdict.time_ms:.2f}x)"


class Progress:
    def __init__(self, quiet: bool = False, budget: int | None = None, time_limit_s: float | None = None,
                 console: Console | None = None, live: bool = True, started: float | None = None) -> None:
        self.quiet = quiet
        self.budget, self.time_limit_s = budget, time_limit_s
        self.console = console or Console(stderr=True, soft_wrap=True)
        self.started = time.monotonic()
        # The time limit counts from the command's start (``started``, time.monotonic()), not from here.
        self.limit_started = started if started is not None else self.started
        self.phase_text = "starting"
        self.done = 0                 # candidates measured (stored verdicts replayed do not count)
        self.replayed = 0
        self.best: Best | None = None
        self.stop_reason: str | None = None
        self._live = None
        if live and not quiet and self.console.is_terminal:
            from rich.live import Live
            self._live = Live(self._status(), console=self.console, transient=True, refresh_per_second=2)
            self._live.start()

    # -- the search's callback -----------------------------------------------------------------

    def __call__(self, message: str, scored) -> None:
        if scored is not None:
            # "verified": a full verification (mid-search or in the end-of-search walk);
            # "final": the end-of-search choice, once
            label = {"verified": "[verify]", "final": "[final]"}.get(message)
            self.candidate(scored, counted=message == "candidate", label=label)
        elif message.startswith("search stopped: "):
            self.stopped(message.removeprefix("search stopped: "))
        else:
            if message.startswith("problem "):   # bench: each problem's search starts afresh
                self.done, self.replayed, self.best, self.stop_reason = 0, 0, None, None
                self.started_problem = time.monotonic()
            self.phase(message)

    # -- explicit use --------------------------------------------------------------------------

    def phase(self, text: str) -> None:
        self.phase_text = text
        self._print(f"{self._stamp()} {escape(text)}")

    def candidate(self, scored, counted: bool = True, label: str | None = None) -> None:
        v = scored.verdict
        if scored.reused:
            self.replayed += 1
        elif counted:
            self.done += 1
        if v.accepted and v.time_ms is not None and scored.candidate.origin != "reference":
            if self.best is None or v.time_ms < self.best.time_ms:
                self.best = Best(scored.candidate.id, v.time_ms, dict(v.baselines).get("eager_ms"))
        if v.accepted:
            status = "[green]ok[/green] " + escape(timing_text(v))
            if getattr(v, "suspect", None):
                status += " [yellow]suspect: below the roofline floor[/yellow]"
        else:
            status = f"[red]rejected[/red] {escape(v.reason[:160])}"
        count = label or (f"[{self.done}/{self.budget}]" if self.budget and counted and not scored.reused else
                          "[stored]" if scored.reused else "[verify]")
        tail = [t for t in (self._best_text(), self._left_text()) if t]
        self._print(f"{self._stamp()} {escape(f'{count:>8}')} {scored.candidate.id} {escape(describe(scored))}  {status}"
                    + (f"  [dim]{escape(' · '.join(tail))}[/dim]" if tail else ""))

    def stopped(self, reason: str) -> None:
        self.stop_reason = reason
        self._print(f"{self._stamp()} search stopped: {escape(reason)} "
                    f"({self.done} measured, {self.replayed} from the store)")

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- text ----------------------------------------------------------------------------------

    def time_left_s(self) -> float | None:
        if self.time_limit_s is None:
            return None
        return max(0.0, self.time_limit_s - (time.monotonic() - getattr(self, "started_problem", self.limit_started)))

    def _best_text(self) -> str:
        if self.best is None:
            return ""
        speed = f" ({self.best.speedup:.2f}x)" if self.best.speedup else ""
        return f"best {self.best.time_ms:.4g} ms{speed}"

    def _left_text(self) -> str:
        left = self.time_left_s()
        return "" if left is None else f"{left:.0f}s left"

    def _status(self):
        from rich.text import Text
        parts = [self.phase_text]
        if self.budget:
            parts.append(f"{self.done} of {self.budget} measured")
        parts += [t for t in (self._best_text(), self._left_text()) if t]
        return Text(" · ".join(parts), style="bold")

    def _stamp(self) -> str:
        return f"[dim]{time.monotonic() - self.started:7.1f}s[/dim]"

    def _print(self, text: str) -> None:
        if self.quiet:
            return
        self.console.print(text)
        if self._live is not None:
            self._live.update(self._status())
