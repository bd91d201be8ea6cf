"""One optimisation end to end: resolve the target, analyse, plan, search, write the results.

Shared by ``akg optimize``, ``akg bench`` and the Python API, so all three produce the same files.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from akg import plugins
from akg.deadline import Deadline, Watchdog
from akg.errors import AkgError, DeviceUnavailable
from akg.ir import Verdict
from akg.phases import Phases
from akg.problem import Problem, validate
from akg.search import Scored, Search, SearchOptions, SearchResult
from akg.store import Store
from akg.targets import HardwareSpec, Target  # noqa: F401  (Target: importable from here as before)


def resolve_target(dsl_name: str, device_name: str | None) -> Target:
    try:
        dsl = plugins.get_dsl(dsl_name)
    except plugins.PluginError as e:
        raise AkgError(str(e)) from None
    if device_name is None:
        device_name = next((d for d in dsl.devices if d in plugins.backends() and plugins.backends()[d].available()),
                           dsl.devices[0])
    device_name, index = _device_index(device_name)
    missing = plugins.toolchain_problem(dsl)
    if missing:
        raise DeviceUnavailable(missing)
    if device_name not in dsl.devices:
        raise AkgError(f"DSL {dsl.name} does not run on device {device_name!r}; it runs on: {', '.join(dsl.devices)}")
    try:
        backend = plugins.get_backend(device_name)
    except plugins.PluginError as e:
        raise AkgError(str(e)) from None
    if index is not None:
        select = getattr(backend, "select", None)
        if select is None:
            raise AkgError(f"device {device_name!r} has no numbered devices; use --device {device_name}")
        select(index)  # before anything touches the device: workers inherit the choice
    if not backend.available():
        raise DeviceUnavailable(f"device {device_name!r}{'' if index is None else f' number {index}'} is not available on this machine; "
                                f"try --device {'cpu' if 'cpu' in dsl.devices else dsl.devices[0]}")
    return Target(dsl, backend, backend.detect())


def _device_index(device: str) -> tuple[str, int | None]:
    """``name:N`` -> (name, N); a plain name -> (name, None)."""
    name, sep, index = device.partition(":")
    if not sep:
        return device, None
    if not index.isdigit():
        raise AkgError(f"--device {device}: the part after ':' must be a device number, e.g. {name}:0")
    return name, int(index)


def plan_problem(problem: Problem) -> tuple[Any, list, list[str]]:
    """Analysis and fusion plans; a program akg cannot trace still runs (reference only)."""
    from akg.agents import analyzer
    try:
        graph, plans = analyzer.plans_for(problem)
        return graph, plans, []
    except Exception as e:  # tracing arbitrary user programs can fail in many ways
        return None, [], [f"could not trace the program ({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}); "
                          "only the reference runs"]


def floor_for(problem: Problem, hardware: HardwareSpec, graph=None) -> tuple[float | None, dict]:
    """The roofline floor and analysis summary; ``graph`` (the decomposed trace) saves a second trace."""
    from akg.agents import analyzer
    try:
        analysis = analyzer.analyze(problem, [hardware], graph)
    except Exception:
        return None, {}
    floor = dict(analysis.roofline_ms).get(hardware.name)
    return floor, {"flops": analysis.flops, "bytes": analysis.bytes_moved, "floor_ms": floor, "bound": analysis.bound}


def optimize_problem(problem: Problem, target: Target, out_dir: Path | None, store: Store,
                     options: SearchOptions, harness_config, progress=None, running: "Running | None" = None,
                     llm=None) -> dict:
    """``running``: the command line's time-limit watchdog, already started (see ``Running``);
    without it a time limit is enforced here, from now, and never ends the process. ``llm``: an
    ``akg.evolve.LLMRun`` for LLM mode; if its endpoint fails midway, the results measured so far
    are written and the LLMError (exit 7) is raised afterwards."""
    if running is not None:
        running.problem, running.target, running.store = problem, target, store
        return _optimize(problem, target, out_dir, store, options, harness_config, progress, running, llm)
    if options.time_limit_s is None:
        return _optimize(problem, target, out_dir, store, options, harness_config, progress, Running(), llm)
    if options.started is None:
        options = replace(options, started=time.monotonic())
    running = Running(Deadline(options.time_limit_s, options.started), out_dir)
    running.problem, running.target, running.store = problem, target, store
    with Watchdog(running.deadline, running.kill):
        return _optimize(problem, target, out_dir, store, options, harness_config, progress, running, llm)


def _optimize(problem: Problem, target: Target, out_dir: Path | None, store: Store, options: SearchOptions,
              harness_config, progress, running: Running, llm=None) -> dict:
    from akg.harness import WorkerPool

    phases = Phases(options.started)
    phases.since_start("startup")   # imports, loading the problem, opening the store, the device
    harness_config = target.harness_settings(harness_config)
    # Workers start first: they import (in processes of their own) while this process checks the
    # problem's size and traces it. Nothing is measured before the size check.
    with phases.span("workers"):
        if options.ray_address:
            from akg.distributed import RayPool
            pool_context = RayPool(options.ray_address, target.device, harness_config)
        else:
            pool_context = WorkerPool(device=target.device, workers=1, config=harness_config)
    with pool_context as pool:
        search = Search(problem, target.dsl, target.device, target.hardware, pool, store, options, progress)
        search.phases = phases
        running.pool, running.search = pool, search
        search.prepare()   # build processes import beside the checks below
        try:
            with phases.span("footprint"):   # a problem too big for the device: one line, before any work
                _check_fits(pool, problem, target.device)
            with phases.span("validate"):
                validate(problem, target.device)
            if llm is not None:
                llm.client.check_endpoint()  # before anything is measured: a wrong URL or key fails at once
            search.begin()   # the baselines start beside the tracing where the device allows it
            with phases.span("trace"):
                graph, plans, notes = plan_problem(problem)
            running.notes = notes
            with phases.span("floor"):
                floor_ms, analysis = floor_for(problem, target.hardware, graph) if graph is not None else (None, {})
            running.analysis = analysis
            search.evolver = _evolver(llm, problem, target, graph, floor_ms)
            if options.seeds:
                from akg.seeds import Seeder
                search.seeder = Seeder(options.seeds, problem, target.dsl, target.device, pool)
            result = search.run(plans, floor_ms)
        finally:
            search.close()   # the build processes, whatever ended the search
    result.notes[:0] = notes
    report = build_report(problem, target, result, analysis, store)
    report["best"]["lineage"] = store.lineage(result.best.candidate.id)
    report["phases"] = phases.as_dict()
    # seconds from the start to the first judged, first screened and first fully verified candidate
    report["milestones"] = phases.milestones()
    if search.evolver is not None:
        report["llm"] = search.evolver.report()
    if out_dir is not None:
        write_results(Path(out_dir), result.best.candidate.source, report)
    if search.evolver is not None and search.evolver.error is not None:
        raise search.evolver.error
    return report


def _check_fits(pool, problem: Problem, device: str) -> None:
    """Size the problem (on fake tensors) and check it fits, through the pool where it can: the pool
    keeps the footprint for its own checks, so the problem is sized once per run, not twice."""
    from akg.harness.memory import check_fits
    footprint = getattr(pool, "footprint", None)
    if footprint is not None and problem.path is not None:
        footprint(problem)
    else:
        check_fits(problem, device)


def _evolver(llm, problem: Problem, target: Target, graph, floor_ms: float | None):
    if llm is None:
        return None
    from akg.agents import analyzer
    from akg.evolve import Evolver
    try:  # without a plan graph, analyze traces the program itself (planning can fail where tracing works)
        analysis = analyzer.analyze(problem, [target.hardware], graph)
    except Exception:  # the brief then says there is no analysis
        analysis = None
    if floor_ms is None and analysis is not None:
        floor_ms = dict(analysis.roofline_ms).get(target.hardware.name)
    return Evolver(llm.client, llm.options, analysis, floor_ms)


class Running:
    """What a time limit's watchdog acts on, filled in as the command gets that far. The command
    line starts the watchdog before anything else (imports, device detection and the reference's
    checks count against the limit) with ``rescue`` as its last resort."""

    def __init__(self, deadline: Deadline | None = None, out_dir: Path | None = None, dsl: str = "",
                 device: str = "") -> None:
        self.deadline, self.out_dir, self.dsl, self.device = deadline, out_dir, dsl, device
        self.problem: Problem | None = None
        self.target: Target | None = None
        self.store: Store | None = None
        self.search: Search | None = None
        self.pool = None
        self.notes: list[str] = []
        self.analysis: dict = {}

    def kill(self) -> None:
        if self.search is not None:
            self.search.kill()

    def rescue(self) -> None:
        """From the watchdog thread: write what is verified, clean up, exit 0."""
        import sys
        note = (f"the time limit ({self.deadline.limit_s:g} s) was reached while akg itself was busy; "
                "the result is what was fully verified before it")
        try:
            if self.problem is not None and self.out_dir is not None:
                result = self._snapshot(list(self.notes) + [note])
                report = build_report(self.problem, self._target(), result, self.analysis, self.store)
                if self.search is not None:
                    report["phases"] = self.search.phases.as_dict()
                write_results(Path(self.out_dir), result.best.candidate.source, report)
                note += f"; wrote {Path(self.out_dir) / 'best.py'} and {Path(self.out_dir) / 'report.json'}"
            print(f"akg: {note}", file=sys.stderr, flush=True)
            self.kill()
            if self.pool is not None:
                self.pool.close()
            from akg.harness import prestart
            prestart.discard()   # the command's zygote, if the limit came before its pool
        finally:
            os._exit(0)

    def _target(self):
        """The target, or (before it was resolved) what the command named."""
        if self.target is not None:
            return self.target
        from types import SimpleNamespace
        return SimpleNamespace(dsl=SimpleNamespace(name=self.dsl, timing_meaningful_on=()), device=self.device,
                               hardware=SimpleNamespace(name="not detected"))

    def _snapshot(self, notes: list[str]) -> SearchResult:
        if self.search is not None:
            return self.search.snapshot(notes)
        from akg.agents import coder
        target = self._target()
        ref = coder.reference_candidate(self.problem.source, target.dsl.name)
        scored = Scored(ref, Verdict(ref.id, "done", True, True))
        return SearchResult(scored, scored, [scored], {}, None, None,
                            target.device in target.dsl.timing_meaningful_on, notes)


def _speedups(scored: Scored, baselines: dict) -> tuple[float | None, float | None]:
    t = scored.verdict.time_ms
    if t is None or t <= 0:
        return None, None
    own = dict(scored.verdict.speedups)
    eager = own.get("vs_eager")
    if eager is None and baselines.get("eager_ms"):
        eager = baselines["eager_ms"] / t
    compile_ms = baselines.get("compile_ms")
    vs_compile = own.get("vs_compile") or (compile_ms / t if compile_ms else None)
    return eager, vs_compile


def _candidate_entry(s: Scored, baselines: dict) -> dict:
    v: Verdict = s.verdict
    eager, vs_compile = _speedups(s, baselines) if v.accepted else (None, None)
    return {"id": s.candidate.id, "origin": s.candidate.origin, "dsl": s.candidate.dsl,
            "parent": s.candidate.parent_id, "description": s.candidate.description,
            "correct": bool(v.accepted), "time_ms": v.time_ms, "spread": v.spread,
            "speedup_vs_eager": eager, "speedup_vs_compile": vs_compile,
            # the eager time measured beside this candidate: speedup_vs_eager = eager_ms / time_ms
            "eager_ms": dict(v.baselines).get("eager_ms") if v.accepted else None,
            "roofline_fraction": v.roofline_fraction, "suspect": v.suspect, "reason": v.reason, "reused": s.reused,
            # correctness cases this verdict ran: one for a screened candidate, all for a fully verified one
            "cases_run": dict(v.profile).get("cases_run")}


def build_report(problem: Problem, target: Target, result: SearchResult, analysis: dict, store: Store) -> dict:
    best = result.best
    eager, vs_compile = _speedups(best, result.baselines)
    if best.candidate.origin == "reference":
        eager = 1.0
    best_time = best.verdict.time_ms
    # Every figure of "best" comes from the best's own measurement (eager interleaved with it), so
    # speedup_vs_eager == eager_ms / time_ms; torch.compile is timed once per run, apart, and is
    # labelled so. "baselines" are the separate measurement taken before the search.
    beside = dict(best.verdict.baselines)
    best_eager_ms = beside.get("eager_ms", best_time if best.candidate.origin == "reference" else None)
    best_compile_ms = beside.get("compile_ms") or result.baselines.get("compile_ms")
    if best_eager_ms and best_time:
        eager = best_eager_ms / best_time
    if best_compile_ms and best_time:
        vs_compile = best_compile_ms / best_time
    return {
        "problem": problem.name,
        "dsl": target.dsl.name,
        "device": target.device,
        "hardware": target.hardware.name,
        "best": {"candidate_id": best.candidate.id, "origin": best.candidate.origin, "dsl": best.candidate.dsl,
                 "description": best.candidate.description, "correct": bool(best.verdict.accepted),
                 "time_ms": best_time, "speedup_vs_eager": eager, "speedup_vs_compile": vs_compile,
                 "eager_ms": best_eager_ms, "compile_ms": best_compile_ms,
                 "measurement": ("eager baseline" if best.candidate.origin == "reference"
                                 else "interleaved with eager; torch.compile timed apart"),
                 "spread": best.verdict.spread, "suspect": _suspect(best.verdict, result.floor_ms),
                 "cases_run": dict(best.verdict.profile).get("cases_run"),
                 "roofline_fraction": (result.floor_ms / best_time) if result.floor_ms and best_time else None,
                 "timing_meaningful": result.timing_meaningful},
        "baselines": {"eager_ms": result.baselines.get("eager_ms"), "compile_ms": result.baselines.get("compile_ms"),
                      "measurement": "eager before the search, apart from the candidates; torch.compile compiled "
                                     "beside the search and timed after it"},
        "stopped": result.stop_reason,
        "analysis": analysis,
        # the problem's footprint and the peak device memory of the harness's processes (bytes)
        "memory": _memory(result),
        "candidates": [_candidate_entry(s, result.baselines) for s in result.scored],
        "notes": result.notes,
        "versions": result.versions,
        "run_id": result.run_id,
        "store": str(store.path) if store is not None else None,
    }


def _suspect(verdict: Verdict, floor_ms: float | None) -> str | None:
    """A time below the roofline floor is physically implausible: say so instead of reporting it plainly."""
    if verdict.suspect:
        return verdict.suspect
    if not floor_ms or verdict.time_ms is None or not verdict.accepted or verdict.time_ms >= floor_ms:
        return None
    return (f"{verdict.time_ms:.4g} ms is below the roofline floor {floor_ms:.4g} ms "
            f"(fraction {floor_ms / verdict.time_ms:.2f}): the measurement or the hardware figures are off")


def _memory(result: SearchResult) -> dict:
    keys = ("footprint_bytes", "peak_device_bytes_conductor", "peak_device_bytes_worker")
    found: dict = {}
    for scored in result.scored:
        for key, value in scored.verdict.profile:
            if key in keys and isinstance(value, (int, float)):
                found[key] = max(found.get(key, 0), value)
    return found


def write_results(out_dir: Path, best_source: str, report: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / "best.py", best_source)
    atomic_write(out_dir / "report.json", json.dumps(report, indent=2, default=str) + "\n")


def atomic_write(path: Path, text: str) -> None:
    # Write-then-rename: a crash mid-write never leaves a truncated best.py behind.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    # mkstemp makes the file 0600; results are for sharing, so give them the usual 0666 & ~umask.
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


def _umask() -> int:
    mask = os.umask(0o022)   # the only portable way to read it is to set it and put it back
    os.umask(mask)
    return mask
