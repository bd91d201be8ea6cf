"""Judging one candidate: drive a worker through load, test cases and timing, compare in the
conductor, and fold every observation into a Verdict with named checks.

A reference that draws random numbers (see randomness.py) is judged in one of two ways, named by
the verdict's checks: ``random_seeded`` where the candidate's framework draws under the same seed
are the reference's, bit for bit (then every usual check applies unchanged); else
``random_statistical`` (moments over several seeds) plus ``random_support`` where the draws act as
an elementwise mask, with every check that does not compare values unchanged."""
from __future__ import annotations

import statistics
import time
from pathlib import Path
from dataclasses import dataclass, field

import torch

from akg.harness import messages as m, protocol, randomness
from akg.harness.compare import OutputInfo, compare_case, comparison_device, same_values
from akg.harness.config import HarnessConfig
from akg.harness.pool import Worker, WorkerFault
from akg.harness.reference import ExpectedCase, Reference, forward_seed
from akg.ir import Check, Verdict

# Forward seeds of the statistical check's samples: the reference's and the candidate's differ, so
# the two sets of draws are independent whatever generator the candidate uses.
REFERENCE_SAMPLE_SEED, CANDIDATE_SAMPLE_SEED = 500_000, 600_000

POLICIES = ("strict", "standard")
TIMING_SEEDS = (1000, 1001)


class CheckBook:
    """One Check per name: passed while every observation passed; the first failure's detail."""

    def __init__(self) -> None:
        self._order: list[str] = []
        self._failed: dict[str, str] = {}

    def add(self, name: str, passed: bool, detail: str = "") -> None:
        if name not in self._order:
            self._order.append(name)
        if not passed and name not in self._failed:
            self._failed[name] = detail

    def extend(self, checks: list[Check]) -> None:
        for c in checks:
            self.add(c.name, c.passed, c.detail)

    @property
    def ok(self) -> bool:
        return not self._failed

    def checks(self) -> tuple[Check, ...]:
        return tuple(Check(n, n not in self._failed, self._failed.get(n, "")) for n in self._order)


@dataclass
class Run:
    """What one evaluation has found so far."""
    candidate_id: str
    book: CheckBook = field(default_factory=CheckBook)
    errors: list[str] = field(default_factory=list)
    stage: str = "load"
    compiled: bool = False
    max_abs_err: float = 0.0
    rel_err: float = 0.0
    time_ms: float | None = None
    spread: float | None = None
    baselines: list[tuple[str, float]] = field(default_factory=list)
    speedups: list[tuple[str, float]] = field(default_factory=list)
    roofline_fraction: float | None = None
    timing_meaningful: bool = True
    fault: bool = False
    random_mode: str | None = None      # "seeded" | "statistical" for a reference that draws
    cases_run: int = 0                  # correctness cases the candidate ran (a screen runs one)
    peak_worker_bytes: int = 0
    suspect: str | None = None

    def fail(self, name: str, detail: str) -> None:
        self.book.add(name, False, detail)

    def verdict(self, correct: bool, profile: tuple = ()) -> Verdict:
        return Verdict(self.candidate_id, self.stage, self.compiled, correct, self.book.checks(),
                       tuple(self.errors), self.max_abs_err if self.compiled else None,
                       self.rel_err if self.compiled else None, self.time_ms, self.spread,
                       tuple(self.baselines), tuple(self.speedups), self.roofline_fraction, profile,
                       self.timing_meaningful, self.suspect)

    def memory_profile(self, reference: Reference, footprint_bytes: int | None) -> tuple:
        """Peak device memory of both processes (accelerators only), and the problem's footprint."""
        entries = []
        if footprint_bytes:
            entries.append(("footprint_bytes", int(footprint_bytes)))
        conductor = reference.peak_bytes
        if conductor or self.peak_worker_bytes:
            entries += [("peak_device_bytes_conductor", conductor), ("peak_device_bytes_worker", self.peak_worker_bytes)]
        return tuple(entries)


def judge(worker: Worker, reference: Reference, source: str, candidate_id: str, policy: str,
          config: HarnessConfig, floor_ms: float | None, compile_ms: float | None,
          footprint_bytes: int | None = None) -> Verdict:
    """The verdict on one candidate in ``worker`` (which is replaced afterwards, whatever it says)."""
    run = Run(candidate_id)
    clock = _StageClock()
    try:
        if clock.timed("load_s", _load, worker, reference, source, candidate_id, policy, config, run):
            run.stage = "correctness"
            if clock.timed("correctness_s", _correctness, worker, reference, policy, config, run) and config.time:
                run.stage = "timing"
                clock.timed("timing_s", _timing, worker, reference, config, floor_ms, compile_ms, run)
                if run.book.ok:
                    run.stage = "done"
    except WorkerFault as fault:
        run.fault = True
        run.fail("time_limit" if fault.kind == "timeout" else "worker_alive", str(fault))
    correct = run.compiled and run.book.ok
    return run.verdict(correct, run.memory_profile(reference, footprint_bytes) + clock.profile()
                       + (("cases_run", run.cases_run),))


class _StageClock:
    """Seconds each stage of a judgement took (the verdict's profile: where judging time goes)."""

    def __init__(self) -> None:
        self._seconds: list[tuple[str, float]] = []

    def timed(self, name: str, stage, *args):
        began = time.monotonic()
        try:
            return stage(*args)
        finally:
            self._seconds.append((name, round(time.monotonic() - began, 4)))

    def profile(self) -> tuple:
        return tuple(self._seconds)


def _load(worker, reference, source, candidate_id, policy, config, run: Run) -> bool:
    reply = worker.request(m.Load(str(Path(reference.problem.path).resolve()), source, candidate_id, policy,
                                  reference.param_seed), m.Loaded, config.timeout_s, "loading the candidate")
    failed = isinstance(reply, m.Failure)
    run.book.add("loads", not failed, reply.error if failed else "")
    if failed:
        run.errors.append(reply.error or "load failed")
        _integrity(reply, run, "while loading")
        return False
    run.compiled = True
    return _integrity(reply, run, "while loading")


def _integrity(reply: m.Message, run: Run, when: str) -> bool:
    changed = list(reply.integrity)
    run.book.add("timer_integrity", not changed,
                 f"{when} the candidate replaced {', '.join(changed[:5])}" if changed else "")
    return not changed


def _correctness(worker, reference: Reference, policy: str, config: HarnessConfig, run: Run) -> bool:
    previous: tuple[ExpectedCase, list] | None = None
    for seed, distribution in config.cases():
        case_name = f"seed {seed} {distribution}"
        run.cases_run += 1
        expected = reference.case(seed, distribution)
        buffers = _output_buffers(reference, expected, passes=2)
        reply = worker.request(m.RunCase(seed, distribution, reference.shared_inputs(seed, distribution),
                                         tuple(expected.output_nbytes), config.async_delay_s, forward_seed(seed),
                                         _wire_buffers(buffers), bool(expected.draws)),
                               m.CaseResult, config.timeout_s, f"running {case_name}")
        _check_inputs_intact(reference, seed, distribution, case_name, run)
        if isinstance(reply, m.Failure):
            run.fail("runs", f"{case_name}: {reply.error or 'forward failed'}")
            run.errors.append(reply.error or "forward failed")
            return False
        run.book.add("runs", True)
        run.peak_worker_bytes = max(run.peak_worker_bytes, reply.peak_bytes)
        outputs = [_received(reply.outputs[p], reply.written[p] if reply.written else (), buffers[p] if buffers else None)
                   for p in range(2)]
        values = True
        if expected.draws:
            values = _random_case(worker, reference, reply, expected, outputs, seed, distribution, case_name, config, run)
        truth = lambda seed=seed, distribution=distribution: reference.truth(seed, distribution)
        _check_case(reply, outputs, expected, previous, case_name, policy, worker.device, config, run, truth, values)
        previous = (expected, outputs[0])
        if not run.book.ok:
            return False
    return True


def _output_buffers(reference: Reference, expected: ExpectedCase, passes: int) -> list[list] | None:
    """On an accelerator, device buffers this process owns for the worker to copy each pass's
    outputs into (so nothing crosses to the host); None on the CPU (sealed files carry them)."""
    if not reference.on_device:
        return None
    # Filled with 0xFF bytes (NaN in every float type): a buffer the worker claims to have written
    # but did not can never hold what freed memory happened to hold, an expected output included.
    return [[_poisoned_like(o) for o in expected.outputs] for _ in range(passes)]


def _poisoned_like(t: torch.Tensor) -> torch.Tensor:
    buffer = torch.empty_like(t, memory_format=torch.contiguous_format)
    if buffer.numel():
        buffer.view(-1).view(torch.uint8).fill_(0xFF)
    return buffer


def _wire_buffers(buffers: list[list] | None):
    return None if buffers is None else [[protocol.share_device(b) for b in one] for one in buffers]


def _received(outputs, written, buffers) -> list:
    """One pass's outputs: the buffer where the worker wrote into it, else what it sent."""
    return [buffers[i] if buffers is not None and i < len(written) and written[i] else t
            for i, t in enumerate(outputs)]


def _check_inputs_intact(reference: Reference, seed: int, distribution: str, case_name: str, run: Run) -> None:
    intact = reference.inputs_intact(seed, distribution)
    if not intact:
        run.fail("input_mutation", f"{case_name}: the candidate wrote into the inputs shared with the harness")


def _random_case(worker, reference: Reference, reply: m.CaseResult, expected: ExpectedCase, outputs, seed: int,
                 distribution: str, case_name: str, config: HarnessConfig, run: Run) -> bool:
    """A case of a reference that draws random numbers. Returns whether the outputs' values are
    compared as usual (seeded mode) rather than by the statistical checks."""
    same_draws = tuple(reply.random_draws) == tuple(expected.draws)
    if run.random_mode is None:
        run.random_mode = "seeded" if same_draws else "statistical"
        if run.random_mode == "statistical":
            _statistical(worker, reference, seed, distribution, case_name, config, run)
    if run.random_mode == "seeded":
        run.book.add("random_seeded", same_draws, f"{case_name}: under the same seed the candidate's framework random "
                     f"draws ({len(reply.random_draws)}) are not the reference's ({len(expected.draws)}), bit for bit")
        return True
    _check_support(reference, seed, distribution, outputs, case_name, config, run)
    return False


def _statistical(worker, reference: Reference, seed: int, distribution: str, case_name: str,
                 config: HarnessConfig, run: Run) -> None:
    k = config.random_samples
    ref_seeds = [REFERENCE_SAMPLE_SEED + i for i in range(k)]
    cand_seeds = [CANDIDATE_SAMPLE_SEED + i for i in range(k)]
    reply = worker.request(m.Sample(seed, distribution, reference.shared_inputs(seed, distribution), tuple(cand_seeds)),
                           m.Samples, config.timeout_s * 2, f"sampling {case_name} under {k} seeds")
    _check_inputs_intact(reference, seed, distribution, case_name, run)
    if isinstance(reply, m.Failure):
        run.fail("runs", f"{case_name} (sampling): {reply.error or 'forward failed'}")
        return
    _integrity(reply, run, f"while sampling {case_name}")
    ref = reference.samples(seed, distribution, ref_seeds)
    for i in range(len(ref[0])):
        cand = [sample[i] if i < len(sample) else None for sample in reply.outputs]
        where = f"{case_name} output {i}"
        if any(c is None or c.shape != ref[0][i].shape for c in cand):
            run.fail("random_statistical", f"{where}: the candidate's samples are missing or have another shape")
            continue
        target = ref[0][i].device
        run.book.extend([randomness.statistical_check([r[i] for r in ref], [c.to(target).double() for c in cand], where)])


def _check_support(reference: Reference, seed: int, distribution: str, outputs, case_name: str,
                   config: HarnessConfig, run: Run) -> None:
    support = reference.support(seed, distribution)
    if support is None:
        return
    tolerance = lambda dtype: config.tolerance(str(dtype).removeprefix("torch."))
    for p, one_pass in enumerate(outputs):
        bad = support.violations(list(one_pass), tolerance)
        run.book.add("random_support", not bad, f"{case_name} output {bad[0][0]}: {bad[0][1]} values are neither "
                     "the reference's with the draw kept nor with it dropped" if bad else "")


def _check_case(reply: m.CaseResult, outputs, expected: ExpectedCase, previous, case_name, policy, device, config,
                run: Run, truth=None, values: bool = True) -> None:
    infos = list(reply.infos)
    first, second = outputs
    # Moved to where the comparison runs once for both passes (a copy per pass costs on a GPU).
    target = comparison_device(device)
    expected_there = [e.to(target) for e in expected.outputs]
    for one_pass in (first, second):
        result = compare_case(expected_there, infos, one_pass, device, config, case_name, truth, values=values)
        run.book.extend(result.checks)
        run.max_abs_err = max(run.max_abs_err, result.max_abs_err)
        run.rel_err = max(run.rel_err, result.rel_err)
    _check_unwritten(first, second, case_name, run)
    _check_fresh(reply, expected, previous, first, case_name, run)
    mutated = sorted(reply.mutated)
    run.book.add("input_mutation", mutated == sorted(expected.mutated),
                 f"{case_name}: the candidate changed input(s) {mutated} (the reference changes {expected.mutated})")
    late = reply.late_writes or reply.new_threads > 0
    run.book.add("async_work", not late, f"{case_name}: " + (
        "outputs changed after forward returned" if reply.late_writes else
        f"{reply.new_threads} thread(s) still running after forward returned"))
    if policy == "strict":
        violations = list(reply.violations)
        run.book.add("strict_policy", not violations,
                     f"framework ops {', '.join(violations[:6])} ran in forward but are not declared in AKG_LIBRARY_OPS")
    _integrity(reply, run, f"after {case_name}")


def _check_unwritten(first: list, second: list, case_name: str, run: Run) -> None:
    # The two passes ran on the same inputs with memory pre-filled with different bytes.
    for i, (a, b) in enumerate(zip(first, second)):
        if a is None or b is None:
            continue
        differs = not same_values(a, b)
        run.book.add("unwritten_output", not differs or _close(a, b),
                     f"{case_name} output {i}: values depend on what memory held before the call")


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    if not a.is_floating_point():
        return False
    a, b = a.double(), b.double()
    if not torch.equal(a.isnan(), b.isnan()):
        return False
    fa, fb = a.nan_to_num(0.0, 0.0, 0.0), b.nan_to_num(0.0, 0.0, 0.0)
    scale = max(1.0, float(fb.abs().max())) if fb.numel() else 1.0
    return bool(((fa - fb).abs() <= 1e-3 * scale).all())


def _check_fresh(reply: m.CaseResult, expected: ExpectedCase, previous, outputs: list, case_name: str, run: Run) -> None:
    extra_alias = [list(a) for a, e in zip(reply.aliases_input, expected.aliases_input) if sorted(a) != sorted(e)]
    detail = ""
    if extra_alias:
        detail = f"{case_name}: an output shares memory with input(s) {extra_alias[0]}"
    elif reply.aliases_earlier:
        detail = f"{case_name}: an output is the same tensor as an earlier call's result"
    elif previous is not None:
        prev_expected, prev_outputs = previous
        for i, (now, before) in enumerate(zip(outputs, prev_outputs)):
            if (now is not None and before is not None and same_values(now, before)
                    and i < len(prev_expected.outputs) and not same_values(expected.outputs[i], prev_expected.outputs[i])):
                detail = f"{case_name} output {i}: identical to the previous call's result although the inputs changed"
                break
    run.book.add("fresh_outputs", not detail, detail)


def _timing(worker, reference: Reference, config: HarnessConfig, floor_ms, compile_ms, run: Run) -> None:
    worker.settle_standby()
    expected_by_seed = {s: reference.case(s, "problem") for s in TIMING_SEEDS}   # before the worker runs
    draws = any(e.draws for e in expected_by_seed.values())
    buffers = _output_buffers(reference, expected_by_seed[TIMING_SEEDS[-1]], passes=1)
    reply = worker.request(m.Time(TIMING_SEEDS, config.warmup, config.trials,
                                  tuple(reference.shared_inputs(s, "problem") for s in TIMING_SEEDS),
                                  tuple(forward_seed(s) for s in TIMING_SEEDS) if draws else None,
                                  _wire_buffers(buffers)[0] if buffers else None),
                           m.Timed, config.timeout_s, "timing")
    for s in TIMING_SEEDS:
        _check_inputs_intact(reference, s, "problem", "timing", run)
    if isinstance(reply, m.Failure):
        run.fail("runs", f"timing: {reply.error or 'forward failed'}")
        return
    run.peak_worker_bytes = max(run.peak_worker_bytes, reply.peak_bytes)
    _integrity(reply, run, "during timing")
    last_seed = reply.last_seed
    if last_seed not in expected_by_seed:
        run.fail("timing_outputs", f"the worker reports timing seed {last_seed}, which it was not given")
        return
    expected = expected_by_seed[last_seed]
    # Buffers were made for the last seed's outputs; other seeds' outputs have the same shapes.
    last = _received(reply.last_outputs, reply.written, buffers[0] if buffers else None)
    infos = [OutputInfo("Tensor", t is not None, tuple(t.shape) if t is not None else (),
                        str(t.dtype).removeprefix("torch.") if t is not None else "", worker.device)
             for t in last]
    # The same bar as the correctness cases, second look against float64 included.
    truth = lambda: reference.truth(last_seed, "problem")
    values = run.random_mode != "statistical"
    result = compare_case(expected.outputs, infos, last, worker.device, config, "timing run", truth, values=values)
    checks = list(result.checks)
    if not values:
        support = reference.support(last_seed, "problem")
        bad = support.violations(last, lambda d: config.tolerance(str(d).removeprefix("torch."))) if support else []
        checks.append(Check("random_support", not bad, "values neither kept nor dropped" if bad else ""))
    timing_ok = all(c.passed for c in checks)
    first_bad = next((c.detail for c in checks if not c.passed), "")
    run.book.add("timing_outputs", timing_ok, f"outputs during timing are wrong: {first_bad}")
    cand, ref = [float(x) for x in reply.cand_ms], [float(x) for x in reply.ref_ms]
    run.time_ms = statistics.median(cand)
    run.spread = _spread(cand)
    eager = statistics.median(ref)
    run.baselines = [("eager_ms", eager)] + ([("compile_ms", compile_ms)] if compile_ms else [])
    if run.time_ms > 0:
        run.speedups = [("vs_eager", eager / run.time_ms)] + ([("vs_compile", compile_ms / run.time_ms)] if compile_ms else [])
    run.timing_meaningful = not reply.interpreted
    if floor_ms:
        run.roofline_fraction = floor_ms / run.time_ms if run.time_ms > 0 else float("inf")
        plausible, run.suspect = floor_check(run.time_ms, floor_ms, config.floor_slack)
        run.book.add("roofline_floor", plausible,
                     f"{run.time_ms:.4g} ms is below {config.floor_slack:g} x the roofline floor {floor_ms:.4g} ms; treated as a suspect")


def floor_check(time_ms: float, floor_ms: float, slack: float) -> tuple[bool, str | None]:
    """(plausible, suspect): far below the floor (under ``slack`` x floor) rejects the candidate;
    below the floor at all keeps it but marks the verdict suspect, so no report shows a time
    faster than the hardware allows as if it were plain."""
    if time_ms >= floor_ms:
        return True, None
    note = (f"{time_ms:.4g} ms is below the roofline floor {floor_ms:.4g} ms (fraction {floor_ms / time_ms:.2f}): "
            "the timing or the hardware figures are off")
    return time_ms >= floor_ms * slack, note


def _spread(times: list[float]) -> float:
    if len(times) < 4:
        return 0.0
    q = statistics.quantiles(times, n=4)
    median = statistics.median(times)
    return (q[2] - q[0]) / median if median > 0 else 0.0
