"""Which verdicts the store keeps and which stored verdicts a search may replay.

A stored verdict saves a measurement only if measuring again would say the same. Three kinds do
not: failures caused by the machine rather than the candidate (a missing package or compiler, a
worker killed or timed out), which must not be kept as the candidate's verdict; timings taken
while the machine was disturbed (the candidate's own trials spread widely, or the eager reference
timed beside it ran far from the run's eager baseline); and, with ``--remeasure``, every timing.
"""
from __future__ import annotations

import re

from akg.ir import Verdict

# Checks that fail because of the worker's fate, not the candidate's result.
TRANSIENT_CHECKS = ("time_limit", "worker_alive")
# Failures that name a missing piece of the environment (package, executable, shared library).
_MISSING = re.compile(r"No module named|ModuleNotFoundError|command not found|cannot open shared object file|"
                      r"No such file or directory: '[^'/]+'")
MAX_SPREAD = 0.5           # (p75 - p25) / median of the candidate's trials above this: not a stable timing
MAX_EAGER_DRIFT = 2.0      # the eager timed beside a candidate vs the run's eager baseline, either way


def environmental(verdict: Verdict) -> str | None:
    """Why the rejection is the environment's, or None when it is the candidate's (or it passed)."""
    if verdict.accepted:
        return None
    failed = [c for c in verdict.checks if not c.passed]
    transient = next((c for c in failed if c.name in TRANSIENT_CHECKS), None)
    if transient is not None:
        return f"{transient.name}: {transient.detail}"[:200]
    text = " ".join(list(verdict.errors) + [c.detail for c in failed])
    match = _MISSING.search(text)
    return text[max(0, match.start() - 40):match.end() + 60].strip() if match else None


def timing_outlier(verdict: Verdict, eager_ms: float | None, spread: bool = True) -> str | None:
    """Why the verdict's timing should not be trusted, or None. ``spread``: count widely spread
    trials too (the median of spread trials is still usable in the run that took them; it is
    only not worth replaying later)."""
    if not verdict.accepted or verdict.time_ms is None:
        return None
    if spread and verdict.spread is not None and verdict.spread > MAX_SPREAD:
        return f"its trials spread {verdict.spread:.0%}"
    beside = dict(verdict.baselines).get("eager_ms")
    if eager_ms and beside:
        drift = max(beside / eager_ms, eager_ms / beside)
        if drift > MAX_EAGER_DRIFT:
            return f"eager timed beside it took {beside:.4g} ms against the run's {eager_ms:.4g} ms"
    return None


def reusable(verdict: Verdict, eager_ms: float | None, remeasure: bool, replay: bool = False) -> bool:
    """May a stored verdict (already matched on candidate, target, level and versions) be replayed?
    ``replay``: the run reproduces a recorded one (an LLM cassette), so its timings are replayed as
    they were recorded, disturbed or not: measured again, they would steer it elsewhere."""
    if environmental(verdict) is not None:
        return False          # stored by an older akg: measure it on today's environment
    if replay and not remeasure:
        return True
    if verdict.accepted and (remeasure or timing_outlier(verdict, eager_ms) is not None):
        return False
    return True
