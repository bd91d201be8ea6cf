"""The tester: judges candidates with the harness and returns Verdicts.

A thin role over ``akg.harness.WorkerPool``: it owns one pool (persistent workers), checks the
candidate object at the stage boundary, and never raises for a failed candidate.
"""
from __future__ import annotations

import re

from akg.harness import HarnessConfig, WorkerPool
from akg.ir import Candidate, Verdict
from akg.problem import Problem


class Tester:
    def __init__(self, device: str = "cpu", policy: str = "strict", config: HarnessConfig = HarnessConfig(),
                 workers: int = 1) -> None:
        self.device = device
        self.policy = policy
        self.config = config
        self._pool: WorkerPool | None = None
        self._workers = workers

    @property
    def pool(self) -> WorkerPool:
        # Started on first use: building a Tester should not spawn processes.
        if self._pool is None:
            self._pool = WorkerPool(device=self.device, workers=self._workers, config=self.config)
        return self._pool

    def test(self, problem: Problem, candidate: Candidate, floor_ms: float | None = None) -> Verdict:
        candidate.verify()
        verdict = self.pool.evaluate(problem, candidate.source, candidate.id, policy=self.policy, floor_ms=floor_ms)
        verdict.verify()
        return verdict

    def baselines(self, problem: Problem) -> dict:
        return self.pool.baselines(problem)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __enter__(self) -> "Tester":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def feedback(verdict: Verdict) -> str:
    """What the tester tells the coder about a verdict (prompts/tester.j2): build errors trimmed to
    their first lines, each failed check with where and how far off, timings against eager,
    torch.compile and the roofline floor, and profiler metrics where the device has them."""
    from akg.agents import prompts
    failed = [c for c in verdict.checks if not c.passed]
    errors = [_trim(e) for e in verdict.errors]
    profile = dict(verdict.profile)
    cases_run = profile.get("cases_run")
    return prompts.render("tester", v=verdict, failed=failed, errors=errors, speedups=dict(verdict.speedups),
                          profile=_kernel_metrics(verdict.profile), cases_run=cases_run).strip()


def _kernel_metrics(profile) -> list:
    """The profile entries that describe the kernel, not the harness's own bookkeeping (seconds
    per judging stage, cases run): those say nothing the coder can act on and differ from run to
    run, which would also make a prompt differ between a run and its replay."""
    return [(k, x) for k, x in profile if k != "cases_run" and not k.endswith("_s")]


_TEMP_PATH = re.compile(r"(?:/[^\s:/'\"]+)+/([^\s:/'\"]+\.\w+)")


def _trim(error: str, lines: int = 12, chars: int = 1500) -> str:
    # Compilers repeat themselves; the first errors (with their line numbers) are what helps.
    # Build folders are temporary: only the file name stays, so the feedback is the same each run.
    error = _TEMP_PATH.sub(r"\1", error)
    text = "\n    ".join(error.replace(" | ", "\n").splitlines()[:lines])
    return text[:chars] + (" ..." if len(text) > chars else "")
