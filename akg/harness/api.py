"""The harness as the search and the command line use it: ``evaluate`` and ``WorkerPool``."""
from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

from akg.harness.config import HarnessConfig
from akg.harness.errors import CandidateError, ConfigError, HarnessError
from akg.harness.evaluation import POLICIES, judge
from akg.harness.pool import WorkerFault, Workers
from akg.harness.reference import Reference
from akg.ir import Verdict
from akg.problem import Problem, load_problem

BASELINE_SEED = 1000


def _as_problem(problem: Problem | str | Path) -> Problem:
    if isinstance(problem, Problem):
        if problem.path is None:
            raise HarnessError(f"problem {problem.name} has no file; workers load problems from files, so save it as a KernelBench-format .py first")
        return problem
    return load_problem(problem)


def _check_source(source: str, candidate_id: str) -> None:
    if not isinstance(source, str):
        raise CandidateError(f"candidate {candidate_id}: source must be Python text, got {type(source).__name__}")
    if "\0" in source:
        raise CandidateError(f"candidate {candidate_id}: contains NUL bytes; the file must be plain Python text")
    try:
        compile(source, f"<candidate {candidate_id}>", "exec")
    except SyntaxError as e:
        raise CandidateError(f"candidate {candidate_id}: syntax error at line {e.lineno}: {e.msg}; fix the file") from None
    if "ModelNew" not in source:
        raise CandidateError(f"candidate {candidate_id}: defines no ModelNew; add class ModelNew(nn.Module)")


def _check_policy(policy: str) -> None:
    if policy not in POLICIES:
        raise ConfigError(f"unknown policy {policy!r}; use one of {', '.join(POLICIES)}")


def load_candidate(path: str | Path) -> str:
    """A candidate file's text, with a CandidateError for anything that is not a readable file."""
    path = Path(path)
    try:
        source = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise CandidateError(f"candidate {path}: cannot read ({getattr(e, 'strerror', None) or e}); check the path") from None
    _check_source(source, path.name)
    return source


class WorkerPool:
    """Persistent workers for many candidates. Thread-safe: each evaluate takes one idle worker."""

    def __init__(self, device: str = "cpu", workers: int = 1, config: HarnessConfig = HarnessConfig(),
                 standby: bool = True) -> None:
        """``standby``: keep a started process ready to replace each worker (for pools that judge
        many candidates; a pool for one candidate would only start it to kill it)."""
        if not isinstance(config, HarnessConfig):
            raise ConfigError(f"config must be a HarnessConfig, got {type(config).__name__}")
        self.device = device
        self.config = config.validate()
        self._workers = Workers(device, workers, self.config, standby)
        self._references: dict[str, Reference] = {}
        self._baselines: dict[str, dict] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._workers.close()
        for reference in self._references.values():
            reference.close()

    def cancel(self) -> None:
        """Kill every worker process now (a time limit ran out): evaluations in flight end as
        worker faults at once. The pool stays usable; ``close`` still cleans up."""
        for pid in self._workers.pids():
            try:
                os.killpg(pid, signal.SIGKILL)  # each worker leads its own process group
            except (ProcessLookupError, PermissionError):
                pass

    def _reference(self, problem: Problem) -> Reference:
        key = f"{problem.path}:{problem.digest}"
        with self._lock:
            if key not in self._references:
                self._references[key] = Reference(problem, self.device, self.config.seeds[0])
            return self._references[key]

    def evaluate(self, problem, source: str, candidate_id: str, *, policy: str = "strict",
                 floor_ms: float | None = None, config: HarnessConfig | None = None) -> Verdict:
        """Judge one candidate. ``config`` overrides the pool's for this call only (e.g. fewer
        cases while screening); it must keep the pool's first seed, which built the parameters."""
        problem = _as_problem(problem)
        _check_policy(policy)
        _check_source(source, candidate_id)
        config = self.config if config is None else config.validate()
        reference = self._reference(problem)
        compile_ms = None
        if config.time and config.measure_compile:
            compile_ms = self.baselines(problem).get("compile_ms")
        worker = self._workers.acquire()
        try:
            return judge(worker, reference, source, candidate_id, policy, config, floor_ms, compile_ms)
        finally:
            # No process sees a second candidate, accepted or not: what one left behind (a patched
            # binding would even become the next integrity snapshot's baseline) must not meet the
            # next. The standby started at acquire() makes the replacement cheap.
            self._workers.release(worker, replace=True)

    def baselines(self, problem) -> dict:
        """The reference's own times, measured in a worker with no candidate loaded:
        {"eager_ms": float, "compile_ms": float | None}."""
        problem = _as_problem(problem)
        key = f"{problem.path}:{problem.digest}"
        if key in self._baselines:
            return self._baselines[key]
        worker = self._workers.acquire()
        try:
            worker.settle_standby()
            reply = worker.request({"op": "baselines", "problem_path": str(Path(problem.path).resolve()),
                                    "param_seed": self.config.seeds[0], "seed": BASELINE_SEED,
                                    "warmup": self.config.warmup, "trials": self.config.trials,
                                    "compile": self.config.measure_compile},
                                   self.config.timeout_s * 3, "measuring baselines")
        except WorkerFault as fault:
            raise HarnessError(f"problem {problem.name}: the reference failed in a worker ({fault}); check that it runs on {self.device}") from None
        finally:
            self._workers.release(worker, replace=True)
        if not reply.get("ok"):
            raise HarnessError(f"problem {problem.name}: the reference failed in a worker ({reply.get('error')}); check that it runs on {self.device}")
        result = {"eager_ms": float(reply["eager_ms"]),
                  "compile_ms": float(reply["compile_ms"]) if "compile_ms" in reply else None}
        self._baselines[key] = result
        return result


def evaluate(problem, source: str, candidate_id: str, *, device: str = "cpu", policy: str = "strict",
             config: HarnessConfig = HarnessConfig(), floor_ms: float | None = None) -> Verdict:
    """Judge one candidate in a fresh worker; the worker is gone when this returns."""
    problem = _as_problem(problem)
    _check_policy(policy)
    _check_source(source, candidate_id)
    with WorkerPool(device=device, workers=1, config=config, standby=False) as pool:
        return pool.evaluate(problem, source, candidate_id, policy=policy, floor_ms=floor_ms)
