"""The live progress of ``akg port`` (rich): ops done of all, the op being ported, its phase,
candidates measured and the best so far, and the time left estimated from the ops done."""
from __future__ import annotations

import threading
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class PortProgress:
    def __init__(self, library: Path, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.bar = Progress(TextColumn("[bold]port[/bold]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            TextColumn("left"), TimeRemainingColumn(), TextColumn("{task.description}"),
                            console=self.console, transient=False)
        from akg.port import library_files
        try:
            total = len(library_files(library))
        except Exception:   # port_library reports a bad folder itself
            total = None
        self.task = self.bar.add_task("starting", total=total)
        self._lock = threading.Lock()
        self._local = threading.local()
        self.started = time.monotonic()

    def __enter__(self) -> "PortProgress":
        self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.update(self.task, description="done" if exc[0] is None else "stopped")
        self.bar.stop()

    def candidate(self, message: str, scored) -> None:
        """The search's progress callback: phase messages and measured candidates."""
        with self._lock:
            if scored is None:
                self.bar.update(self.task, description=message[:90])
                return
            v = scored.verdict
            mark = f"ok {v.time_ms:.4g} ms" if v.accepted and v.time_ms is not None else ("ok" if v.accepted else "rejected")
            self.bar.update(self.task, description=f"candidate {scored.candidate.id}: {mark}")

    def op_done(self, row: dict) -> None:
        with self._lock:
            result = "error" if row.get("error") else ("ported" if row["ported"] else "fallback")
            speed = row.get("speedup_vs_eager")
            extra = f" {speed:.2f}x eager" if speed and row.get("timing_meaningful", True) else ""
            why = f" — {row['fallback_reason'][:100]}" if result != "ported" and row.get("fallback_reason") else ""
            again = " (done earlier)" if row.get("reused") else ""
            self.console.print(f"  {row['op']:<20} {result}{extra}{again}{why}", markup=False, highlight=False)
            self.bar.advance(self.task)
