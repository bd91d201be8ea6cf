"""Candidate evaluation on a Ray cluster (``--ray auto`` or ``--ray ADDRESS``).

One actor per accelerator of the cluster (or, for a CPU target, one per CPU core); each actor
holds an ordinary local worker pool and judges one candidate at a time, so every measure of the
harness holds on every node. Actors only evaluate: verdicts come back to the conductor, which
alone writes the store, so the store stays the only record. A candidate whose actor is lost
(node gone, actor killed) is judged again on another actor, up to ``RETRIES`` times; a replacement
actor is started for each one lost.

``RayPool`` offers what the search uses of ``akg.harness.WorkerPool`` (evaluate, baselines, config,
cancel, close) plus ``parallelism``, the number of candidates it can judge at once.
"""
from __future__ import annotations

import os
import queue
import shutil
import tempfile
import threading
from pathlib import Path

from akg.errors import AkgError
from akg.harness import HarnessConfig
from akg.harness.errors import HarnessError
from akg.ir import Check, Verdict
from akg.problem import Problem

RETRIES = 3
STOPPED = "evaluation stopped: the time limit was reached"


def accelerator_resource(device: str) -> str | None:
    """The Ray resource one actor takes on ``device``, as its backend names it (None: one CPU)."""
    from akg import plugins
    return plugins.backend_for(device).ray_resource


def _ray():
    try:
        import ray
    except ImportError:
        raise AkgError("--ray needs Ray: pip install 'akg[ray]'") from None
    return ray


def cluster_address(ray) -> str:
    """The address other processes use to join the cluster this process is connected to."""
    return ray.get_runtime_context().gcs_address


def connect(address: str):
    """Join the cluster at ``address``; ``auto``: a running local cluster, else a new one."""
    ray = _ray()
    if ray.is_initialized():
        return ray
    from akg import plugins
    # The caches the DSLs name travel with their settings, so every node builds into the same ones.
    caches = tuple(name for dsl in plugins.dsls().values() for name in dsl.worker_environment())
    runtime_env = {"env_vars": {k: v for k, v in os.environ.items()
                                if k.startswith(("AKG_", "TORCHINDUCTOR") + caches)}}
    try:
        if address == "auto":
            try:
                ray.init(address="auto", runtime_env=runtime_env, log_to_driver=False)
            except ConnectionError:  # no cluster running here: start one for this command
                ray.init(runtime_env=runtime_env, log_to_driver=False)
        else:
            ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
    except Exception as e:
        raise AkgError(f"--ray {address}: cannot join the Ray cluster ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    return ray


def _lost_errors(errors) -> tuple[type, ...]:
    """Ray's exceptions for an actor or its node gone (killed, crashed, out of memory)."""
    names = ("RayActorError", "WorkerCrashedError", "ObjectLostError", "OutOfMemoryError", "NodeDiedError")
    return tuple(getattr(errors, n) for n in names if isinstance(getattr(errors, n, None), type))


class _Evaluator:
    """The actor: a local pool on its node, problems materialised from their source text."""

    def __init__(self, device: str, config: HarnessConfig) -> None:
        from akg.harness import WorkerPool
        self._folder = Path(tempfile.mkdtemp(prefix="akg-ray-"))
        self._pool = WorkerPool(device=device, workers=1, config=config)
        self._problems: dict[str, Problem] = {}

    def _problem(self, name: str, digest: str, source: str) -> Problem:
        if digest not in self._problems:
            from akg.problem import load_problem
            path = self._folder / digest / f"{name}.py"   # the node may not share the conductor's files
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(source)
            self._problems[digest] = load_problem(path)
        return self._problems[digest]

    def evaluate(self, problem: tuple[str, str, str], source: str, candidate_id: str, policy: str,
                 floor_ms: float | None, config: HarnessConfig) -> Verdict:
        return self._pool.evaluate(self._problem(*problem), source, candidate_id, policy=policy, floor_ms=floor_ms,
                                   config=config)

    def baselines(self, problem: tuple[str, str, str]) -> dict:
        return self._pool.baselines(self._problem(*problem))

    def cancel(self) -> None:
        """Kill this node's worker processes (runs beside a busy ``evaluate``: the actor is threaded)."""
        self._pool.cancel()

    def shutdown(self) -> None:
        self._pool.close()
        shutil.rmtree(self._folder, ignore_errors=True)


class RayPool:
    def __init__(self, address: str, device: str, config: HarnessConfig = HarnessConfig(), actors: int | None = None):
        self.ray = connect(address)
        self.device, self.config = device, config.validate()
        resource = accelerator_resource(device)
        available = int(self.ray.cluster_resources().get(resource or "CPU", 0))
        count = actors or available
        if count < 1:
            raise AkgError(f"--ray: the cluster has no {resource or 'CPU'} for device {device!r}")
        options = {"num_gpus": 1} if resource == "GPU" else ({"resources": {resource: 1}} if resource else {"num_cpus": 1})
        # Two threads per actor: one judges, the other can cancel it (a time limit) meanwhile.
        self._actor_class = self.ray.remote(max_restarts=0, max_concurrency=2, **options)(_Evaluator)
        self._idle: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._live: list = []
        self._cancelled = False
        for _ in range(count):
            self._add_actor()
        self.parallelism = count

    def _add_actor(self) -> None:
        actor = self._actor_class.remote(self.device, self.config)
        with self._lock:
            self._live.append(actor)
        self._idle.put(actor)

    def _take(self):
        while True:
            if self._cancelled:
                raise HarnessError(STOPPED)
            try:
                return self._idle.get(timeout=0.5)
            except queue.Empty:
                pass

    def _drop(self, actor) -> None:
        with self._lock:
            if actor not in self._live or self._cancelled:
                return
            self._live.remove(actor)
        try:
            self.ray.kill(actor)
        except Exception:
            pass
        self._add_actor()   # the cluster keeps its number of actors

    def actors(self) -> list:
        with self._lock:
            return list(self._live)

    def _call(self, method: str, *args, what: str):
        """Run ``method`` on an idle actor; on a lost actor, again on another one."""
        errors = self.ray.exceptions
        last = ""
        for attempt in range(RETRIES + 1):
            actor = self._take()
            try:
                result = self.ray.get(getattr(actor, method).remote(*args))
            except _lost_errors(errors) as e:
                self._drop(actor)
                last = str(e).splitlines()[0] if str(e) else type(e).__name__
                continue
            except errors.RayTaskError as e:  # the call itself raised: the actor is fine
                self._idle.put(actor)
                cause = e.cause if getattr(e, "cause", None) is not None else e
                raise cause from None
            self._idle.put(actor)
            return result
        raise HarnessError(f"{what}: the Ray actors judging it were lost {RETRIES + 1} times ({last})")

    @staticmethod
    def _wire(problem: Problem) -> tuple[str, str, str]:
        return (problem.name, problem.digest, problem.source)

    def evaluate(self, problem: Problem, source: str, candidate_id: str, *, policy: str = "strict",
                 floor_ms: float | None = None, config: HarnessConfig | None = None) -> Verdict:
        config = self.config if config is None else config.validate()
        try:
            return self._call("evaluate", self._wire(problem), source, candidate_id, policy, floor_ms, config,
                              what=f"candidate {candidate_id}")
        except HarnessError as e:
            if "actors judging it were lost" not in str(e) and str(e) != STOPPED:
                raise
            return Verdict(candidate_id, "load", False, False, (Check("worker_alive", False, str(e)),), (str(e),))

    def baselines(self, problem: Problem) -> dict:
        return self._call("baselines", self._wire(problem), what=f"problem {problem.name}")

    def __enter__(self) -> "RayPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def cancel(self) -> None:
        """The time limit: every actor kills its worker processes, so the candidates in flight come
        back at once as failed verdicts; later calls fail at once."""
        self._cancelled = True
        self._each("cancel", timeout_s=5)

    def close(self) -> None:
        self._cancelled = True
        self._each("shutdown", timeout_s=30)   # workers end with their pools, not orphaned by a kill
        with self._lock:
            live, self._live = list(self._live), []
        for actor in live:
            try:
                self.ray.kill(actor)
            except Exception:
                pass

    def _each(self, method: str, timeout_s: float) -> None:
        calls = [getattr(actor, method).remote() for actor in self.actors()]
        try:
            self.ray.wait(calls, num_returns=len(calls), timeout=timeout_s)
        except Exception:
            pass
