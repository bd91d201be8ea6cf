"""Judging one candidate: drive a worker through load, test cases and timing, compare in the
conductor, and fold every observation into a Verdict with named checks."""
from __future__ import annotations

import statistics
from pathlib import Path
from dataclasses import dataclass, field

import torch

from akg.harness.compare import OutputInfo, compare_case, comparison_device, same_values
from akg.harness.config import HarnessConfig
from akg.harness.pool import Worker, WorkerFault
from akg.harness.reference import ExpectedCase, Reference
from akg.ir import Check, Verdict

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

    def fail(self, name: str, detail: str) -> None:
        self.book.add(name, False, detail)

    def verdict(self, correct: bool) -> Verdict:
        return Verdict(self.candidate_id, self.stage, self.compiled, correct, self.book.checks(),
                       tuple(self.errors), self.max_abs_err if self.compiled else None,
                       self.rel_err if self.compiled else None, self.time_ms, self.spread,
                       tuple(self.baselines), tuple(self.speedups), self.roofline_fraction, (),
                       self.timing_meaningful)


def judge(worker: Worker, reference: Reference, source: str, candidate_id: str, policy: str,
          config: HarnessConfig, floor_ms: float | None, compile_ms: float | None) -> Verdict:
    """The verdict on one candidate in ``worker`` (which is replaced afterwards, whatever it says)."""
    run = Run(candidate_id)
    try:
        if _load(worker, reference, source, candidate_id, policy, config, run):
            run.stage = "correctness"
            if _correctness(worker, reference, policy, config, run) and config.time:
                run.stage = "timing"
                _timing(worker, reference, config, floor_ms, compile_ms, run)
                if run.book.ok:
                    run.stage = "done"
    except WorkerFault as fault:
        run.fault = True
        run.fail("time_limit" if fault.kind == "timeout" else "worker_alive", str(fault))
    correct = run.compiled and run.book.ok
    return run.verdict(correct)


def _load(worker, reference, source, candidate_id, policy, config, run: Run) -> bool:
    reply = worker.request({"op": "load", "problem_path": str(Path(reference.problem.path).resolve()), "source": source,
                            "candidate_id": candidate_id, "policy": policy, "param_seed": reference.param_seed},
                           config.timeout_s, "loading the candidate")
    run.book.add("loads", bool(reply.get("ok")), str(reply.get("error", "")))
    if not reply.get("ok"):
        run.errors.append(str(reply.get("error", "load failed")))
        _integrity(reply, run, "while loading")
        return False
    run.compiled = True
    return _integrity(reply, run, "while loading")


def _integrity(reply: dict, run: Run, when: str) -> bool:
    changed = [str(c) for c in reply.get("integrity", [])]
    run.book.add("timer_integrity", not changed,
                 f"{when} the candidate replaced {', '.join(changed[:5])}" if changed else "")
    return not changed


def _correctness(worker, reference: Reference, policy: str, config: HarnessConfig, run: Run) -> bool:
    previous: tuple[ExpectedCase, list] | None = None
    for seed, distribution in config.cases():
        case_name = f"seed {seed} {distribution}"
        expected = reference.case(seed, distribution)
        reply = worker.request({"op": "run", "seed": seed, "distribution": distribution,
                                "inputs": reference.shared_inputs(seed, distribution),
                                "output_nbytes": expected.output_nbytes, "async_delay_s": config.async_delay_s},
                               config.timeout_s, f"running {case_name}")
        if not reply.get("ok"):
            run.fail("runs", f"{case_name}: {reply.get('error', 'forward failed')}")
            run.errors.append(str(reply.get("error", "forward failed")))
            return False
        run.book.add("runs", True)
        truth = lambda seed=seed, distribution=distribution: reference.truth(seed, distribution)
        _check_case(reply, expected, previous, case_name, policy, worker.device, config, run, truth)
        previous = (expected, reply["outputs"][0])
        if not run.book.ok:
            return False
    return True


def _check_case(reply, expected: ExpectedCase, previous, case_name, policy, device, config, run: Run,
                truth=None) -> None:
    infos = [OutputInfo.from_wire(d) for d in reply["infos"]]
    first, second = reply["outputs"]
    # Moved to where the comparison runs once for both passes (a copy per pass costs on a GPU).
    target = comparison_device(device)
    expected_there = [e.to(target) for e in expected.outputs]
    for outputs in (first, second):
        result = compare_case(expected_there, infos, outputs, device, config, case_name, truth)
        run.book.extend(result.checks)
        run.max_abs_err = max(run.max_abs_err, result.max_abs_err)
        run.rel_err = max(run.rel_err, result.rel_err)
    _check_unwritten(first, second, case_name, run)
    _check_fresh(reply, expected, previous, first, case_name, run)
    mutated = sorted(reply["mutated"])
    run.book.add("input_mutation", mutated == sorted(expected.mutated),
                 f"{case_name}: the candidate changed input(s) {mutated} (the reference changes {expected.mutated})")
    late = reply["late_writes"] or reply["new_threads"] > 0
    run.book.add("async_work", not late, f"{case_name}: " + (
        "outputs changed after forward returned" if reply["late_writes"] else
        f"{reply['new_threads']} thread(s) still running after forward returned"))
    if policy == "strict":
        violations = [str(v) for v in reply["violations"]]
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


def _check_fresh(reply, expected: ExpectedCase, previous, outputs: list, case_name: str, run: Run) -> None:
    extra_alias = [a for a, e in zip(reply["aliases_input"], expected.aliases_input) if sorted(a) != sorted(e)]
    detail = ""
    if extra_alias:
        detail = f"{case_name}: an output shares memory with input(s) {extra_alias[0]}"
    elif reply["aliases_earlier"]:
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
    reply = worker.request({"op": "time", "seeds": list(TIMING_SEEDS), "warmup": config.warmup, "trials": config.trials,
                            "inputs": [reference.shared_inputs(s, "problem") for s in TIMING_SEEDS]},
                           config.timeout_s, "timing")
    if not reply.get("ok"):
        run.fail("runs", f"timing: {reply.get('error', 'forward failed')}")
        return
    _integrity(reply, run, "during timing")
    last_seed = int(reply["last_seed"])
    expected = reference.case(last_seed, "problem")
    infos = [OutputInfo("Tensor", t is not None, tuple(t.shape) if t is not None else (),
                        str(t.dtype).removeprefix("torch.") if t is not None else "", worker.device)
             for t in reply["last_outputs"]]
    # The same bar as the correctness cases, second look against float64 included.
    truth = lambda: reference.truth(last_seed, "problem")
    result = compare_case(expected.outputs, infos, reply["last_outputs"], worker.device, config, "timing run", truth)
    timing_ok = all(c.passed for c in result.checks)
    first_bad = next((c.detail for c in result.checks if not c.passed), "")
    run.book.add("timing_outputs", timing_ok, f"outputs during timing are wrong: {first_bad}")
    cand, ref = [float(x) for x in reply["cand_ms"]], [float(x) for x in reply["ref_ms"]]
    run.time_ms = statistics.median(cand)
    run.spread = _spread(cand)
    eager = statistics.median(ref)
    run.baselines = [("eager_ms", eager)] + ([("compile_ms", compile_ms)] if compile_ms else [])
    if run.time_ms > 0:
        run.speedups = [("vs_eager", eager / run.time_ms)] + ([("vs_compile", compile_ms / run.time_ms)] if compile_ms else [])
    run.timing_meaningful = not reply.get("interpreted", False)
    if floor_ms:
        run.roofline_fraction = floor_ms / run.time_ms if run.time_ms > 0 else float("inf")
        plausible = run.time_ms >= floor_ms * config.floor_slack
        run.book.add("roofline_floor", plausible,
                     f"{run.time_ms:.4g} ms is below {config.floor_slack:g} x the roofline floor {floor_ms:.4g} ms; treated as a suspect")


def _spread(times: list[float]) -> float:
    if len(times) < 4:
        return 0.0
    q = statistics.quantiles(times, n=4)
    median = statistics.median(times)
    return (q[2] - q[0]) / median if median > 0 else 0.0
