"""The tester: judges candidates with the harness and returns Verdicts.

A thin role over ``akg.harness.WorkerPool``: it owns one pool (persistent workers), checks the
candidate object at the stage boundary, and never raises for a failed candidate.
"""
from __future__ import annotations

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
