"""The harness as the search and the command line use it: ``evaluate`` and ``WorkerPool``.

    evaluate(problem, candidate, target, policy, config) -> Verdict

is the one entry for a single candidate; ``WorkerPool.evaluate`` judges many with persistent
workers. Before any work the problem's footprint is checked against the device's free memory
(``memory.check_fits``): a problem too big gets one line and exit code 5, not an out-of-memory
error halfway.
"""
from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import torch

from akg.harness import memory, messages as m
from akg.harness.config import HarnessConfig
from akg.harness.errors import CandidateError, ConfigError, HarnessError
from akg.harness.evaluation import POLICIES, judge
from akg.harness.pool import Worker, WorkerFault, Workers
from akg.harness.reference import Reference
from akg.ir import Candidate, Verdict
from akg.problem import Problem, load_problem
from akg.processes import kill_pid_group

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
        self._footprints: dict[str, memory.Footprint] = {}
        self._baselines: dict[str, dict] = {}
        self._compiles: list[CompileBaseline] = []
        self._lock = threading.Lock()

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for job in self._compiles:
            job.close()
        self._workers.close()
        for reference in self._references.values():
            reference.close()

    def cache_dirs(self) -> dict[str, str]:
        """The build caches this pool's workers compile into (environment variable -> folder)."""
        from akg.harness import sandbox
        return sandbox.cache_dirs(self._workers.root)

    def cancel(self) -> None:
        """Kill every worker process now (a time limit ran out): evaluations in flight end as
        worker faults at once. The pool stays usable; ``close`` still cleans up."""
        for job in list(self._compiles):
            job.kill()
        for pid in self._workers.pids():
            kill_pid_group(pid)   # each worker leads its own process group

    def footprint(self, problem) -> memory.Footprint:
        """The problem's inputs, parameters and outputs in bytes, after checking that the harness's
        multiple of it fits on the device (``memory.ProblemTooLarge`` where it does not)."""
        problem = _as_problem(problem)
        key = f"{problem.path}:{problem.digest}"
        with self._lock:
            if key not in self._footprints:
                self._footprints[key] = memory.check_fits(problem, self.device, self._workers.count)
            return self._footprints[key]

    def _reference(self, problem: Problem) -> Reference:
        footprint = self.footprint(problem)   # before anything is drawn or built
        key = f"{problem.path}:{problem.digest}"
        with self._lock:
            if key not in self._references:
                cache = memory.CACHED_CASES * footprint.total_bytes if footprint.total_bytes else None
                self._references[key] = Reference(problem, self.device, self.config.seeds[0], cache)
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
        footprint = self.footprint(problem).total_bytes
        worker = self._workers.acquire()
        try:
            return judge(worker, reference, source, candidate_id, policy, config, floor_ms, compile_ms, footprint)
        finally:
            # No process sees a second candidate, accepted or not: what one left behind (a patched
            # binding would even become the next integrity snapshot's baseline) must not meet the
            # next. The standby started at acquire() makes the replacement cheap.
            self._workers.release(worker, replace=True)

    def baselines(self, problem, compile: bool | None = None) -> dict:
        """The reference's own times, measured in a worker with no candidate loaded:
        {"eager_ms": float, "compile_ms": float | None}. ``compile``: whether to time torch.compile
        too (default: the config's ``measure_compile``); ``compile_baseline`` does it apart."""
        problem = _as_problem(problem)
        self.footprint(problem)
        compile = self.config.measure_compile if compile is None else compile
        key = f"{problem.path}:{problem.digest}:{compile}"
        if key in self._baselines:
            return self._baselines[key]
        worker = self._workers.acquire()
        try:
            worker.settle_standby()
            reply = worker.request(m.Baselines(str(Path(problem.path).resolve()), self.config.seeds[0], BASELINE_SEED,
                                               self.config.warmup, self.config.trials, compile),
                                   m.Measured, self.config.timeout_s * 3, "measuring baselines")
        except WorkerFault as fault:
            raise HarnessError(f"problem {problem.name}: the reference failed in a worker ({fault}); check that it runs on {self.device}") from None
        finally:
            self._workers.release(worker, replace=True)
        if isinstance(reply, m.Failure):
            raise HarnessError(f"problem {problem.name}: the reference failed in a worker ({reply.error}); check that it runs on {self.device}")
        result = {"eager_ms": reply.eager_ms, "compile_ms": reply.compile_ms}
        self._baselines[key] = result
        return result

    def fits_beside(self, problem) -> bool:
        """Whether one more process holding the problem (torch.compile's baseline) fits on the
        device beside the conductor and the workers, by the same multiple ``footprint`` checks."""
        problem = _as_problem(problem)
        try:
            memory.refuse_if_too_big(problem, self.device, self.footprint(problem),
                                     memory.free_bytes(self.device), self._workers.count + 1)
        except memory.ProblemTooLarge:
            return False
        return True

    def compile_baseline(self, problem) -> "CompileBaseline":
        """Start torch.compile's cold compile of the reference now, in a process of its own (it
        is CPU work that need not wait for the device); time it later with ``CompileBaseline.time``."""
        problem = _as_problem(problem)
        self.footprint(problem)
        job = CompileBaseline(problem, self.device, self.config, self._workers.root, self._workers.zygote)
        with self._lock:
            self._compiles.append(job)
        return job


class CompileBaseline:
    """torch.compile's baseline in a worker of its own: ``start`` compiles (the cold codegen) while
    the search goes on; ``time`` measures the compiled model once the device is quiet. Neither
    raises: a failure or a kill leaves ``error`` set and the time None."""

    def __init__(self, problem: Problem, device: str, config: HarnessConfig, root: Path, zygote=None) -> None:
        from concurrent.futures import ThreadPoolExecutor
        self.problem, self.config = problem, config
        self.error: str | None = None
        self.compile_s: float | None = None
        self._worker = Worker(device, config, root, f"compile-{id(self):x}", zygote)
        self._worker.start_device()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="akg-compile")
        self._compiled = self._thread.submit(self._compile)

    def _compile(self) -> bool:
        message = m.CompileBaseline(str(Path(self.problem.path).resolve()), self.config.seeds[0], BASELINE_SEED)
        try:
            reply = self._worker.request(message, m.Compiled, self.config.timeout_s * 3, "compiling torch.compile's baseline")
        except WorkerFault as fault:
            self.error = str(fault)
            return False
        if isinstance(reply, m.Failure):
            self.error = reply.error or "torch.compile failed"
            return False
        self.compile_s = reply.compile_s
        return True

    def done(self) -> bool:
        return self._compiled.done()

    def time(self, wait_s: float | None = None) -> float | None:
        """The compiled model's median time (ms); waits at most ``wait_s`` for the compile, and
        None (``error`` says why) when it has not finished by then or failed."""
        from concurrent.futures import TimeoutError as FutureTimeout
        try:
            compiled = self._compiled.result(timeout=wait_s)
        except FutureTimeout:
            self.error = "its compile had not finished"
            return None
        if not compiled:
            return None
        try:
            reply = self._worker.request(m.TimeCompiled(self.config.warmup, self.config.trials), m.Compiled,
                                         self.config.timeout_s, "timing torch.compile's baseline")
        except WorkerFault as fault:
            self.error = str(fault)
            return None
        if isinstance(reply, m.Failure) or reply.compile_ms is None:
            self.error = getattr(reply, "error", None) or "the compiled model returned no time"
            return None
        return reply.compile_ms

    def kill(self) -> None:
        """Stop the process now (a time limit): a request in flight ends as a worker fault. The
        pipes stay open for the thread reading them; ``close`` cleans up."""
        if self._worker.process is not None:
            kill_pid_group(self._worker.process.pid)   # None: a forked one whose zygote died first

    def close(self) -> None:
        self.kill()
        self._thread.shutdown(wait=True)   # the reading thread ends with the process
        self._worker.discard()


def evaluate(problem: Problem | str | Path, candidate: Candidate | str, target: Any = "cpu", policy: str = "strict",
             config: HarnessConfig = HarnessConfig(), *, floor_ms: float | None = None,
             device: str | None = None) -> Verdict:
    """Judge one candidate in a fresh worker; the worker is gone when this returns.

    ``problem``: a Problem with a file, or a file path. ``candidate``: an ``akg.ir.Candidate`` or
    the source text of one (named by its digest). ``target``: a device name ("cpu", or an
    accelerator such as the one ``torch.accelerator`` reports) or any object with a ``device``
    attribute naming one (``akg.pipeline.Target``). ``policy``: "strict" or "standard".

    Older form, still accepted: ``evaluate(problem, source, candidate_id, device=..., ...)``."""
    source, candidate_id, device_name = _submission(candidate, target, device)
    problem = _as_problem(problem)
    _check_policy(policy)
    _check_source(source, candidate_id)
    with WorkerPool(device=device_name, workers=1, config=config, standby=False) as pool:
        return pool.evaluate(problem, source, candidate_id, policy=policy, floor_ms=floor_ms)


def _submission(candidate, target, device: str | None) -> tuple[str, str, str]:
    """(source, candidate id, device name) from ``evaluate``'s arguments, old form included."""
    if isinstance(candidate, Candidate):
        return candidate.source, candidate.id, device or _device_of(target)
    if isinstance(target, str) and (device is not None or not _is_device_name(target)):
        return candidate, target, device or "cpu"   # evaluate(problem, source, candidate_id, device=...)
    source = candidate
    digest = hashlib.sha256(source.encode(errors="replace")).hexdigest()[:12] if isinstance(source, str) else "unknown"
    return source, f"candidate-{digest}", device or _device_of(target)


def _device_of(target) -> str:
    name = target if isinstance(target, str) else getattr(target, "device", None)
    if not isinstance(name, str) or not _is_device_name(name):
        raise ConfigError(f"target must be a device name or have a .device naming one, got {target!r}")
    return name


def _is_device_name(name: str) -> bool:
    try:
        torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        return False
    return True
