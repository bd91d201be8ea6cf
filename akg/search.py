"""The conductor: propose candidates, build them in parallel, measure them, keep the best.

The reference (the unmodified model) is always a candidate, so the result is never slower than
eager. Every verdict is written to the store as soon as it exists; a candidate the store already
judged on this target is not measured again, which is what makes ``--resume`` and repeated runs
cheap and an interrupted run lossless.
"""
from __future__ import annotations

import os
import statistics
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Callable

from akg import fingerprint, plugins, reuse, versions
from akg.agents import coder, designer
from akg.build import Builders
from akg.deadline import KILL_BEFORE_S, Deadline
from akg.harness.errors import HarnessError
from akg.ir import Candidate, KernelPlan, Verdict
from akg.phases import Phases
from akg.problem import Problem
from akg.store import Store
from akg.targets import DSL, HardwareSpec, RenderError

# A generated candidate must beat the reference by this factor in the same interleaved
# measurement; below it the difference is within noise and the reference is kept.
MIN_SPEEDUP = 1.0
# The run's eager (a median over the run) this far from the first baseline is worth a note.
REBASE_NOTE_RATIO = 1.25


# Checks whose failure may not repeat (a loaded machine, a killed worker): such verdicts are
# measured again instead of reused from the store (see akg.reuse).
TRANSIENT_CHECKS = reuse.TRANSIENT_CHECKS


@dataclass
class SearchOptions:
    budget: int = 24                      # most candidates to measure (reference excluded)
    time_limit_s: float | None = None     # wall-clock limit, counted from ``started``
    started: float | None = None          # time.monotonic() when the command began (default: the search's start)
    policy: str = "strict"
    resume: bool = False
    near_floor: float = 1.15              # stop once a candidate is within this factor of the roofline floor
    screen: bool = True                   # judge search candidates on fewer cases; fully re-verify the winner
    finalists: int | None = None          # most full verifications at the end (None: until one passes or the time limit)
    build_workers: int = max(1, min(8, os.cpu_count() or 1))
    ray_address: str | None = None        # judge candidates on a Ray cluster's actors (akg.distributed)
    remeasure: bool = False               # time every candidate again instead of replaying stored timings
    replay: bool = False                  # reproduce a recorded run: stored verdicts as they are (akg.reuse)
    mode: str = "compiler"                # compiler | llm | both: who proposes candidates (llm needs an evolver)
    seeds: tuple[str, ...] = ()           # candidates judged before the search (akg.seeds.KNOWN): "inductor"


@dataclass
class Scored:
    candidate: Candidate
    verdict: Verdict
    reused: bool = False

    @property
    def time_ms(self) -> float:
        return self.verdict.time_ms if self.verdict.time_ms is not None else float("inf")


@dataclass
class SearchResult:
    best: Scored
    reference: Scored
    scored: list[Scored]
    baselines: dict
    run_id: int
    floor_ms: float | None
    timing_meaningful: bool
    notes: list[str] = field(default_factory=list)
    versions: dict = field(default_factory=dict)     # what the verdicts depend on (akg.fingerprint)
    stop_reason: str | None = None


Progress = Callable[[str, Scored | None], None]


class Search:
    def __init__(self, problem: Problem, dsl: DSL, device: str, hardware: HardwareSpec, pool, store: Store,
                 options: SearchOptions, progress: Progress | None = None):
        self.problem, self.dsl, self.device, self.hardware = problem, dsl, device, hardware
        self.pool, self.store, self.options = pool, store, options
        self.progress = progress or (lambda msg, scored: None)
        self.timing_meaningful = device in dsl.timing_meaningful_on
        self.scored: list[Scored] = []
        self.measured = 0
        self.started = time.monotonic()
        self.versions = fingerprint.versions(dsl, device, hardware.name)
        self.versions_key = fingerprint.fingerprint(self.versions)
        self.eager_ms: float | None = None    # the run's eager baseline, against which outliers show
        self._eager_samples: list[float] = []  # the baseline, then eager as timed beside each judgement
        self._eager_lock = threading.Lock()
        self.stop_reason: str | None = None   # why the search ended, for the user and the report
        self.deadline = Deadline(options.time_limit_s, options.started) if options.time_limit_s else None
        self._builds = ThreadPoolExecutor(max_workers=options.build_workers, thread_name_prefix="akg-build")
        self._builders = Builders(dsl.name, device, options.build_workers)
        self._width = max(1, int(getattr(pool, "parallelism", 1)))   # candidates judged at once
        self._judges = ThreadPoolExecutor(max_workers=self._width, thread_name_prefix="akg-judge")
        self._judged_s: list[float] = []      # how long each screened judgement took
        self._case_s: list[float] = []        # of which its correctness cases (the part that scales with them)
        self.baselines: dict | None = None
        self.reference: Scored | None = None
        self.verified: list[Scored] = []      # fully verified, accepted generated candidates
        self.floor_ms = None
        self.run_id = None
        self.notes: list[str] = []
        self.evolver = None   # LLM mode's loop (akg.evolve.Evolver), run after the templates
        self.phases = Phases(options.started)   # where the time goes (report.json "phases")
        self._prebuilt: dict[str, Future] = {}  # builds started before the baselines
        self._compile = None                     # torch.compile's baseline job, when measured apart
        self._compile_wanted = False
        self._full: dict[str, Scored] = {}       # fully verified this run, by candidate id
        self._baselines_job: Future | None = None   # the baselines, started by ``begin``
        self.seeder = None    # akg.seeds.Seeder: candidates judged first, e.g. torch.compile's own code
        self._held_for_seeds = 0   # budget kept for seeds still being captured in the background

    def kill(self) -> None:
        """Stop in-flight work now (the time limit): worker and build processes are killed, and
        what they were doing ends as a failed verdict; the search then winds down by itself."""
        self.pool.cancel()
        self._builders.kill()

    # -- bookkeeping ---------------------------------------------------------------------------

    def _out_of_budget(self) -> bool:
        if self.measured + self._held_for_seeds >= self.options.budget:
            self.stop_reason = self.stop_reason or f"the budget of {self.options.budget} candidates was measured"
            return True
        # Another candidate only if there is time left to judge it and then fully verify the best.
        if self.deadline is not None and self.deadline.remaining() < (self._judge_estimate_s() + self._full_estimate_s()
                                                                       + self._compile_timing_estimate_s()):
            self.stop_reason = self.stop_reason or (f"the time limit of {self.deadline.limit_s:g} s leaves no time "
                                                    "for another candidate")
            return True
        return False

    def _judge_estimate_s(self) -> float:
        return statistics.median(self._judged_s) if self._judged_s else 0.0

    def _full_estimate_s(self) -> float:
        """Time for one full verification: a screened judgement with its correctness cases scaled
        by the case counts (loading and timing do not grow with them)."""
        screen, full = len(self._screen_config().cases()), len(self.pool.config.cases())
        judge = self._judge_estimate_s()
        cases = min(judge, statistics.median(self._case_s)) if self._case_s else judge
        return judge + cases * (full / max(1, screen) - 1) + KILL_BEFORE_S

    def _compile_timing_estimate_s(self) -> float:
        """Time to keep for timing torch.compile's baseline at the end (its compile runs beside)."""
        if self._compile is None or not self.eager_ms:
            return 0.0
        runs = self.pool.config.warmup + self.pool.config.trials
        return 2 * runs * self.eager_ms / 1000 + 0.5

    def _time_left_for_full(self) -> bool:
        return self.deadline is None or self.deadline.remaining() >= self._full_estimate_s()

    def _key(self, full: bool = False) -> tuple[str, str, str]:
        # Screened and fully verified verdicts are stored apart: a screened pass is not a verification.
        level = self.options.policy if full or not self.options.screen else f"{self.options.policy}+screen"
        return (self.device, self.hardware.name, level)

    def _screen_config(self):
        full = self.pool.config
        if not self.options.screen:
            return full
        # One case, the pool's first seed with the problem's own values: the case the reference
        # keeps cached (inputs already on the device). The full cases run only for a candidate
        # that would become the new best, and always for the result (``_verify_fully``).
        return full.replace(seeds=full.seeds[:1], distributions=("problem",))

    def _accepted_generated(self) -> list[Scored]:
        """Accepted generated candidates, fastest first."""
        ok = [s for s in self.scored if s.verdict.accepted and s.candidate.origin != "reference"]
        return sorted(ok, key=lambda s: s.time_ms)

    def best_generated(self) -> Scored | None:
        ok = self._accepted_generated()
        return ok[0] if ok else None

    def _stored(self, candidate_id: str, full: bool = False) -> Verdict | None:
        """The stored verdict this target may reuse, or None when it must be measured."""
        known = self.store.verdict(candidate_id, *self._key(full), versions=self.versions_key)
        return known if known is not None and reuse.reusable(known, self.eager_ms, self.options.remeasure,
                                                              self.options.replay) else None

    def _keep(self, verdict: Verdict, full: bool = False) -> None:
        """Store a verdict unless the environment, not the candidate, caused it."""
        if reuse.environmental(verdict) is None:
            self.store.add_verdict(verdict, *self._key(full), versions=self.versions_key)

    # -- candidates ----------------------------------------------------------------------------

    def _candidate(self, plan: KernelPlan, parent: str | None) -> Candidate | Scored:
        try:
            return coder.make_candidate(plan, self.dsl, self.device, self.problem.source, self.problem.name, parent)
        except RenderError as e:
            failed = Candidate("render-" + coder.candidate_id(plan.name + str(plan.groups)), parent,
                               self.dsl.name, "# render failed\n", None, "template", plan.name)
            return Scored(failed, Verdict(failed.id, "build", False, False, errors=(f"render: {e}",)))

    def _prebuild(self, candidate: Candidate) -> str | None:
        try:
            compile(candidate.source, f"<candidate {candidate.id}>", "exec")
        except SyntaxError as e:
            return f"build: Python syntax error at line {e.lineno}: {e.msg}"
        with self.phases.span("builds"):
            error = self._builders.build(candidate.source)
        return f"build: {error}" if error else None

    def evaluate_plans(self, plans: list[KernelPlan], parent: str | None = None) -> list[Scored]:
        """Render, build (in parallel) and measure plans in order; stops at the budget. A pool
        that judges several candidates at once (``parallelism``) gets that many in flight."""
        made = [self._candidate(p, parent) for p in plans]
        builds: dict[str, Future] = {}
        for c in made:
            if isinstance(c, Candidate) and self._stored(c.id) is None:
                builds[c.id] = self._prebuilt.pop(c.id, None) or self._builds.submit(self._prebuild, c)
        results: list[Scored] = []
        pending: deque[tuple[Candidate | Scored, Future | Verdict | None]] = deque()
        queued = iter(made)
        while True:
            while len(pending) < self._width and not self._out_of_budget():
                c = next(queued, None)
                if c is None:
                    break
                pending.append((c, None if isinstance(c, Scored) else self._start(c, builds.get(c.id))))
            if not pending:
                break
            c, job = pending.popleft()
            scored = self._judged(c if isinstance(c, Scored) else self._finish(c, job))
            results.append(scored)
        for f in builds.values():
            f.cancel()
        return results

    def _start(self, candidate: Candidate, build: Future | None) -> Future | Verdict:
        """A stored verdict this target may reuse, or the judgement under way."""
        self.store.add_candidate(self.problem.digest, candidate, self.run_id, len(self.scored))
        known = self._stored(candidate.id)
        if known is not None:
            return known
        self.measured += 1
        return self._judges.submit(self._build_and_judge, candidate, build)

    def _build_and_judge(self, candidate: Candidate, build: Future | None) -> Verdict:
        build_error = build.result() if build is not None else None
        if build_error:
            return Verdict(candidate.id, "build", False, False, errors=(build_error[:2000],))
        began = time.monotonic()
        verdict = self._judge(candidate, self._screen_config())
        self._judged_s.append(time.monotonic() - began)
        self._case_s.append(float(dict(verdict.profile).get("correctness_s") or 0.0))
        return verdict

    def _finish(self, candidate: Candidate, job: Future | Verdict) -> Scored:
        if isinstance(job, Verdict):
            return Scored(candidate, job, reused=True)
        verdict = job.result()
        self._keep(verdict)   # only the conductor writes the store
        return Scored(candidate, verdict)

    def measure(self, candidate: Candidate, findings: tuple = ()) -> Scored:
        """Build and judge one candidate proposed outside the plan search (LLM mode); ``findings``
        (static checks) join the verdict's checks."""
        build = self._builds.submit(self._prebuild, candidate) if self._stored(candidate.id) is None else None
        return self._judged(self._measure(candidate, build, findings))

    def _judged(self, scored: Scored) -> Scored:
        """Record a judged candidate (milestones, the list, the progress line) and promote it to
        full verification where it would become the best."""
        self.phases.mark("first_judged_s")
        if scored.verdict.accepted:
            self.phases.mark("first_screened_s")
        self.scored.append(scored)
        self.progress("candidate", scored)
        return self._promote(scored)

    def _measure(self, candidate: Candidate, build: Future | None, findings: tuple = ()) -> Scored:
        job = self._start(candidate, build)
        if isinstance(job, Verdict):
            return Scored(candidate, job, reused=True)
        verdict = job.result()
        if findings:
            verdict = replace(verdict, checks=verdict.checks + tuple(findings))
        self._keep(verdict)
        return Scored(candidate, verdict)

    def _judge(self, candidate: Candidate, config) -> Verdict:
        verdict = self._judge_once(candidate, config)
        # Only a disturbance the interleaved eager shows is worth a second judgement now; widely
        # spread trials are merely not replayed later.
        outlier = reuse.timing_outlier(verdict, self.eager_ms, spread=False) if self.timing_meaningful else None
        if outlier:   # a disturbed measurement would steer the search and be replayed later: once more
            self.progress(f"measuring {candidate.id} again: {outlier}", None)
            again = self._judge_once(candidate, config)
            if again.accepted == verdict.accepted:
                verdict = again
        self._add_eager_timing(verdict)   # after the outlier test, which it must not soften
        return verdict

    def _add_eager_timing(self, verdict: Verdict) -> None:
        """The eager baseline is one timing, taken before the search while builds and workers start
        beside it; every judgement times eager again, interleaved. The run's eager is the median of
        all of them, so one disturbed (or, where eager's own time is bimodal, unlucky) baseline does
        not set the reference's time nor mark every candidate an outlier. The stored baseline
        follows at the end of the run."""
        beside = dict(verdict.baselines).get("eager_ms") if verdict.accepted else None
        if not self.timing_meaningful or not beside or not self.eager_ms or self.baselines is None:
            return
        with self._eager_lock:
            if not self._eager_samples:
                self._eager_samples.append(self.eager_ms)
            self._eager_samples.append(beside)
            self.eager_ms = statistics.median(self._eager_samples)
            self.baselines["eager_ms"] = self.eager_ms
            if self.reference is not None:
                self.reference.verdict = replace(self.reference.verdict, time_ms=self.eager_ms,
                                                 baselines=tuple(self.baselines.items()))

    def _eager_note(self) -> str | None:
        first = self._eager_samples[0] if self._eager_samples else None
        if first is None or max(first / self.eager_ms, self.eager_ms / first) <= REBASE_NOTE_RATIO:
            return None
        return (f"the eager baseline timed before the search ({first:.4g} ms) is far from the median of the "
                f"{len(self._eager_samples)} eager timings of this run ({self.eager_ms:.4g} ms), which is used")

    def _judge_once(self, candidate: Candidate, config) -> Verdict:
        # The torch.compile baseline comes from self.baselines (measured once, kept in the store);
        # measure_compile here would have the pool time it again.
        with self.phases.span("judging"):
            verdict = self.pool.evaluate(self.problem, candidate.source, candidate.id, policy=self.options.policy,
                                         floor_ms=self.floor_ms, config=config.replace(measure_compile=False))
        for key, value in verdict.profile:
            if key in ("load_s", "correctness_s", "timing_s") and isinstance(value, (int, float)):
                self.phases.add("judging_" + key.removesuffix("_s"), value)
        return verdict if self.timing_meaningful else replace(verdict, timing_meaningful=False)

    def _verify_fully(self, scored: Scored) -> Scored:
        """The full harness (every seed and distribution, fresh timing) on a screened candidate."""
        if not self.options.screen:
            return scored
        if scored.candidate.id in self._full:
            return self._full[scored.candidate.id]
        known = self._stored(scored.candidate.id, full=True)
        if known is not None:
            final = Scored(scored.candidate, known, reused=True)
            if known.accepted:
                self.verified.append(final)
            return final
        self.progress(f"full verification of {scored.candidate.id}", None)
        began = time.monotonic()
        verdict = self._judge(scored.candidate, self.pool.config)
        self.phases.add("full_verification", time.monotonic() - began)
        if verdict.accepted:
            self.phases.mark("first_verified_s")
        self._keep(verdict, full=True)
        final = Scored(scored.candidate, verdict)
        if verdict.accepted:
            self.verified.append(final)
        if reuse.environmental(verdict) is None:
            self._full[scored.candidate.id] = final
        self.progress("verified", final)   # not one of the budget's candidates
        return final

    def _promote(self, scored: Scored) -> Scored:
        """A screened candidate that would become the new best is fully verified now (not only
        at the end), so a verified result exists as early as possible; it replaces its screened
        entry. Others stay screened: the full cases are not spent on a candidate that cannot win."""
        if not self.options.screen or not scored.verdict.accepted or scored.candidate.origin == "reference":
            return scored
        if scored.reused:
            # A screen replayed from the store takes its stored full verdict where the run that
            # judged it promoted it, so a repeated run sees what the first one saw.
            known_full = self._stored(scored.candidate.id, full=True)
            return self._verify_fully(scored) if known_full is not None else scored
        best = min(self.verified, key=lambda s: s.time_ms, default=None)
        if self.timing_meaningful:
            speedup = dict(scored.verdict.speedups).get("vs_eager") or 0.0
            if speedup <= MIN_SPEEDUP or (best is not None and scored.time_ms >= best.time_ms):
                return scored
        elif best is not None:
            return scored   # timings mean nothing here: the first verified one is as good as any
        if not self._time_left_for_full():
            return scored   # the end-of-search choice says so if it stays the fastest
        final = self._verify_fully(scored)
        self.scored[self.scored.index(scored)] = final
        if not final.verdict.accepted:
            self.notes.append(f"{scored.candidate.id} passed screening but failed full verification: "
                              f"{final.verdict.reason[:200]}")
        return final

    # -- the search ----------------------------------------------------------------------------

    def prepare(self) -> None:
        """Start the build processes now, before the problem is checked and traced, where other
        work may go on beside a measurement (on a CPU they would take the cores)."""
        if self.options.mode != "llm" and self._beside_timing():
            self._builders.start()

    def close(self) -> None:
        """End the build processes (``run`` does; this is for a search that never ran)."""
        self._builders.close()

    def begin(self) -> None:
        """Open the run and, where other work may go on beside a measurement, start the baselines
        now: the eager one is timed in a worker while this process traces the problem."""
        if self.run_id is None:
            self.run_id = self._open_run()
        if not self._beside_timing() or self._baselines_job is not None:
            return
        known = self.store.baselines(*self._baselines_key())   # the store is this thread's
        if self._compile_beside() and (known is None or known["compile_ms"] is None):
            self._compile = self.pool.compile_baseline(self.problem)
        if known is None:
            self._baselines_job = self._judges.submit(self._measure_eager, self._compile_apart())

    def run(self, plans: list[KernelPlan], floor_ms: float | None) -> SearchResult:
        self.floor_ms = floor_ms
        if self.run_id is None:
            self.run_id = self._open_run()
        notes = self.notes
        try:
            options = designer.renderable_plans(plans, self.dsl, self.hardware)
            if self.options.mode != "llm" and self._beside_timing():
                self._build_early([po.plan for po in options])   # compilers start while the baselines run
            baselines = self.baselines = self._baselines(notes)
            self.eager_ms = baselines.get("eager_ms")
            reference = self.reference = self._reference(baselines)
            seeds = self._start_seeds()
            if not options:
                notes.append(f"no plan is renderable in {self.dsl.name}; the reference is the result")
            if self.options.mode != "llm":
                seeded = self.evaluate_plans([po.plan for po in options])
                seeds = self._judge_seeds(seeds, wait=False)
                self._tune(options, seeded)
            self._judge_seeds(seeds, wait=True)   # they join the population the LLM builds on
            if self.evolver is not None:
                self.evolver.run(self, options)
            self.stop_reason = self.stop_reason or "every plan and schedule worth trying was measured"
            self.progress(f"search stopped: {self.stop_reason}", None)
            best = self._choose(reference, notes)
            if self._eager_samples:   # the store learns the run's eager from this thread (sqlite)
                note = self._eager_note()
                if note:
                    notes.append(note)
                key = self._baselines_key()
                self.store.add_baselines(key[0], key[1], key[2], self.eager_ms, self.baselines.get("compile_ms"), key[3])
            self.progress("final", best)   # the end-of-search choice; full verifications said "verified"
            self._finish_compile(baselines, notes)
        finally:
            self._builders.close()
            self._builds.shutdown(wait=False, cancel_futures=True)
            self._judges.shutdown(wait=False, cancel_futures=True)
        if self.deadline is not None and self.deadline.expired():
            notes.append(f"the time limit ({self.deadline.limit_s:g} s) was reached; work in flight was stopped")
        self.store.finish_run(self.run_id, best.candidate.id)
        return SearchResult(best, reference, self.scored, baselines, self.run_id, floor_ms,
                            self.timing_meaningful, notes, self.versions, self.stop_reason)

    def _start_seeds(self) -> Future | None:
        """Seeds (e.g. torch.compile's own code) are captured in a subprocess that can take a
        while (Inductor compiles; a large model is built). Where other work may run beside
        timing, the capture runs in the background and the plans are judged meanwhile; elsewhere
        (a CPU: its cores are what is timed) it runs first, alone."""
        if self.seeder is None:
            return None
        if self._beside_timing():
            self._held_for_seeds = len(self.seeder.kinds)
            one = ThreadPoolExecutor(max_workers=1, thread_name_prefix="akg-seed")
            seeds = one.submit(self.seeder, self)
            one.shutdown(wait=False)   # the submitted capture still runs; nothing else will
            return seeds
        done: Future = Future()
        done.set_result(self.seeder(self))
        return done

    def _judge_seeds(self, seeds: Future | None, wait: bool) -> Future | None:
        """Judge the captured seeds now if they are ready, or (``wait``) when they are; returns
        them while still to be judged, None once judged (or when there are none)."""
        if seeds is None or not (wait or seeds.done()):
            return seeds
        self._held_for_seeds = 0
        for candidate, findings in seeds.result():
            if not self._out_of_budget():
                self._note_inaccurate_seed(self.measure(candidate, findings))
        return None

    def _note_inaccurate_seed(self, scored: Scored | None) -> None:
        """A seed of torch.compile's own code refused for accuracy alone means torch.compile's
        baseline time is of code that misses this harness's bound (e.g. TF32 where the
        reference ran in fp32): the speedup against it is against a faster, less accurate kernel."""
        from akg.harness.compare import only_tolerance_failed
        verdict = getattr(scored, "verdict", None)
        if verdict is not None and not verdict.accepted and only_tolerance_failed(verdict.checks):
            self.notes.append(f"torch.compile's own code ({scored.candidate.id}) was refused for accuracy "
                              f"({verdict.reason}): its baseline time is of code that misses this harness's bound")

    def _open_run(self) -> int:
        self.store.add_problem(self.problem.digest, self.problem.name,
                               str(self.problem.path) if self.problem.path else None, self.problem.source)
        target = (self.problem.digest, self.dsl.name, self.device, self.hardware.name)
        if self.options.resume:
            unfinished = self.store.unfinished_run(*target)
            if unfinished is not None:
                self.progress(f"resuming run {unfinished}", None)
                return unfinished
        opts = {"budget": self.options.budget, "policy": self.options.policy, "time_limit_s": self.options.time_limit_s,
                "mode": self.options.mode}
        return self.store.start_run(*target, opts)

    def _beside_timing(self) -> bool:
        """Whether other processes may work (compile, build) while something is timed: on an
        accelerator yes; on a CPU they would take the cores being timed."""
        try:
            return bool(plugins.backend_for(self.device).standby_during_timing)
        except Exception:  # an unknown backend: the cautious answer
            return False

    def _build_early(self, plans: list[KernelPlan]) -> None:
        """Start building the seeded candidates now, beside the reference and the baselines."""
        for plan in plans:
            c = self._candidate(plan, None)
            if isinstance(c, Candidate) and self.store.verdict(c.id, *self._key(), versions=self.versions_key) is None:
                self._prebuilt.setdefault(c.id, self._builds.submit(self._prebuild, c))

    def _baselines_key(self) -> tuple:
        return (self.problem.digest, self.device, self.hardware.name, versions.stack_key())

    def _baselines(self, notes: list[str]) -> dict:
        # Measured once per problem, device and software stack; every later run reuses them.
        key = self._baselines_key()
        known = self.store.baselines(*key)
        want_compile = self.pool.config.measure_compile
        if known is not None and (known["compile_ms"] is not None or not want_compile):
            self.progress("eager and torch.compile baselines from the store", None)
            return known
        apart = self._compile_apart()
        self._compile_wanted = apart
        if self._compile_beside() and self._compile is None:
            self._compile = self.pool.compile_baseline(self.problem)
        if known is not None and apart:
            self.progress("eager baseline from the store; torch.compile's is measured beside the search", None)
            return dict(known)
        self.progress("measuring the eager baseline" + (
            " and torch.compile's" if not apart else "; torch.compile's compiles beside the search"
            if self._compile is not None else "; torch.compile's after the search"), None)
        job, self._baselines_job = self._baselines_job, None   # started by ``begin``, beside the tracing
        try:
            measured = dict(job.result() if job is not None else self._measure_eager(apart))
        except HarnessError:
            if self.deadline is None or not self.deadline.expired():
                raise
            notes.append(f"eager and torch.compile baselines not measured: the time limit "
                         f"({self.deadline.limit_s:g} s) was reached while measuring them")
            self._compile_wanted = False
            return {"eager_ms": None, "compile_ms": None}
        self.store.add_baselines(key[0], key[1], key[2], measured["eager_ms"], measured.get("compile_ms"), key[3])
        return measured

    def _compile_apart(self) -> bool:
        # torch.compile's cold compile is long CPU work: a pool that can, compiles it in a process
        # of its own beside the search and times it at the end (``_finish_compile``).
        return self.pool.config.measure_compile and hasattr(self.pool, "compile_baseline")

    def _compile_beside(self) -> bool:
        """Whether torch.compile's baseline compiles beside the search: where other work may go on
        beside a measurement and one more process holding the problem fits on the device; else
        it compiles after the search."""
        fits = getattr(self.pool, "fits_beside", lambda problem: True)
        return self._compile_apart() and self._beside_timing() and fits(self.problem)

    def _measure_eager(self, apart: bool) -> dict:
        """The eager baseline (and torch.compile's, where it is not measured apart); no store
        access, so that it may run in another thread."""
        with self.phases.span("eager_baseline"):
            return self.pool.baselines(self.problem, compile=False) if apart else self.pool.baselines(self.problem)

    def _finish_compile(self, baselines: dict, notes: list[str]) -> None:
        """Time torch.compile's baseline now that the search is over (the device is quiet); its
        compile ran beside the search, or (on a CPU) runs now if the time limit leaves room."""
        if not self._compile_wanted or baselines.get("eager_ms") is None:
            return
        limit = f"the time limit ({self.deadline.limit_s:g} s)" if self.deadline is not None else ""
        if self._compile is None:
            if self.deadline is not None and self.deadline.expired():
                notes.append(f"torch.compile baseline not measured: {limit} was reached before it could start")
                return
            self._compile = self.pool.compile_baseline(self.problem)
        self.progress("timing torch.compile's baseline", None)
        wait_s = None if self.deadline is None else max(0.0, self.deadline.remaining() - KILL_BEFORE_S
                                                        - self._compile_timing_estimate_s())
        began = time.monotonic()
        compile_ms = self._compile.time(wait_s)
        if self._compile.compile_s is not None:
            self.phases.add("compile_baseline_compile", self._compile.compile_s)
        self.phases.add("compile_baseline_timing", time.monotonic() - began)
        if compile_ms is None:
            why = (f"{limit} was reached first ({self._compile.error})" if self.deadline is not None and
                   (self.deadline.expired() or not self._compile.done()) else self._compile.error)
            notes.append(f"torch.compile baseline not measured: {why}")
            return
        baselines["compile_ms"] = compile_ms
        key = self._baselines_key()
        self.store.add_baselines(key[0], key[1], key[2], baselines["eager_ms"], compile_ms, key[3])

    def _reference(self, baselines: dict) -> Scored:
        ref = coder.reference_candidate(self.problem.source, self.dsl.name)
        self.store.add_candidate(self.problem.digest, ref, self.run_id, 0)
        eager = baselines["eager_ms"]
        verdict = Verdict(ref.id, "done", True, True, time_ms=eager, baselines=tuple(baselines.items()),
                          speedups=(("vs_eager", 1.0),))
        scored = Scored(ref, verdict)
        self.scored.append(scored)
        return scored

    def _tune(self, options: list[designer.PlanOptions], seeded: list[Scored]) -> None:
        """Coordinate descent over schedules, best seeded plans first."""
        by_plan = {s.candidate.plan.name: s for s in seeded if s.verdict.accepted and s.candidate.plan is not None}
        ranked = sorted((po for po in options if po.plan.name in by_plan),
                        key=lambda po: by_plan[po.plan.name].time_ms)
        for po in ranked:
            current = by_plan[po.plan.name]
            for gi in designer.tunable_groups(po):
                if self._out_of_budget() or self._near_floor():
                    return
                tried = self.evaluate_plans(designer.neighbours(po, current.candidate.plan, gi), current.candidate.id)
                better = [s for s in tried if s.verdict.accepted and s.time_ms < current.time_ms]
                if better:
                    current = min(better, key=lambda s: s.time_ms)

    def _near_floor(self) -> bool:
        best = self.best_generated()
        near = bool(self.floor_ms and best and self.timing_meaningful
                    and best.time_ms <= self.floor_ms * self.options.near_floor)
        if near:
            self.stop_reason = self.stop_reason or (
                f"the best, {best.time_ms:.4g} ms, is within {self.options.near_floor:g}x of the roofline floor "
                f"{self.floor_ms:.4g} ms: little is left to gain")
        return near

    def _finalist(self, notes: list[str]) -> Scored | None:
        """The fastest screened candidate that also passes full verification: the screened ones are
        walked fastest first and fully verified until one passes, each failure noted. One that the
        time limit leaves no time to verify is passed over, not the end of the walk: a slower one
        may already be verified (mid-search or in the store) and costs nothing to take."""
        fresh, skipped, why = 0, [], ""
        for screened in self._accepted_generated():
            if fresh and self._cannot_win(screened):
                break   # neither can the slower ones: full cases are not spent on them
            if self._needs_full(screened):
                if not why and not self._time_left_for_full():
                    why = "the time limit left no time to fully verify it"
                if not why and self.options.finalists is not None and fresh >= self.options.finalists:
                    why = f"the {self.options.finalists} full verifications allowed at the end were spent"
                if why:   # from here on only candidates verified already can be taken
                    skipped.append(screened.candidate.id)
                    continue
                fresh += 1
            final = self._verify_fully(screened)
            self.scored[self.scored.index(screened)] = final
            if final.verdict.accepted:
                self._note_unverified(skipped, why, notes)
                return self._fastest_verified(final)
            notes.append(f"{screened.candidate.id} passed screening but failed full verification: {final.verdict.reason[:200]}")
        self._note_unverified(skipped, why, notes)
        return None

    def _cannot_win(self, scored: Scored) -> bool:
        """Whether its own measurement says it is no faster than eager, so that ``_choose`` would
        keep the reference even if it passed full verification."""
        return self.timing_meaningful and (dict(scored.verdict.speedups).get("vs_eager") or 0.0) <= MIN_SPEEDUP

    def _needs_full(self, scored: Scored) -> bool:
        """Whether taking this screened candidate would cost a full verification now."""
        return (self.options.screen and scored.candidate.id not in self._full
                and self._stored(scored.candidate.id, True) is None)

    @staticmethod
    def _note_unverified(skipped: list[str], why: str, notes: list[str]) -> None:
        if skipped:
            more = f" (nor {len(skipped) - 1} slower screened candidates)" if len(skipped) > 1 else ""
            notes.append(f"{skipped[0]} passed screening but {why}{more}")

    def _fastest_verified(self, passed: Scored) -> Scored:
        """``passed`` or a faster candidate fully verified earlier in the run: each full timing is a
        measurement of its own, so the walk's order (mostly screened times) need not be theirs."""
        if not self.timing_meaningful:
            return passed
        return min([passed] + [s for s in self.verified if s.verdict.accepted], key=lambda s: s.time_ms)

    def snapshot(self, notes: list[str]) -> SearchResult:
        """The result from what is fully verified so far, without measuring anything: for writing
        the results when the time limit ends a search that cannot wind down by itself."""
        reference = self.reference
        if reference is None:
            ref = coder.reference_candidate(self.problem.source, self.dsl.name)
            reference = Scored(ref, Verdict(ref.id, "done", True, True))
        best = min(self.verified, key=lambda s: s.time_ms, default=None)
        speedup = dict(best.verdict.speedups).get("vs_eager", 0.0) if best is not None else 0.0
        if best is None or (self.timing_meaningful and speedup <= MIN_SPEEDUP):
            best = reference
        return SearchResult(best, reference, list(self.scored) or [reference], self.baselines or {},
                            self.run_id, self.floor_ms, self.timing_meaningful, list(self.notes) + notes,
                            self.versions, self.stop_reason)

    def _choose(self, reference: Scored, notes: list[str]) -> Scored:
        best = self._finalist(notes)
        if best is None:
            notes.append("no generated candidate was verified; the reference is the result")
            return reference
        if not self.timing_meaningful:
            notes.append(f"timings on {self.device} with {self.dsl.name} are not meaningful; "
                         "the best verified generated candidate is returned for correctness only")
            return best
        speedup = dict(best.verdict.speedups).get("vs_eager")
        if speedup is None or speedup <= MIN_SPEEDUP:
            notes.append(f"the fastest generated candidate ({best.time_ms:.4g} ms, {speedup or 0:.3f}x eager) "
                         "does not beat the reference; the reference is the result")
            return reference
        return best
