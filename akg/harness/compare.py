"""Compare a candidate's outputs with the reference's: metadata first, then values.

Works on what crossed the process boundary: ``OutputInfo`` (what the worker saw of the returned
object before converting it) and plain CPU tensors.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from akg.harness.accuracy import judged_against_truth
from akg.harness.config import HarnessConfig
from akg.ir import Check


@dataclass(frozen=True)
class OutputInfo:
    """What the candidate returned for one output, as observed inside the worker."""
    type_name: str          # "Tensor" for a plain torch.Tensor
    plain: bool             # exactly torch.Tensor, strided, not meta/fake
    shape: tuple[int, ...]
    dtype: str
    device: str

    def to_wire(self) -> dict:
        return {"type_name": self.type_name, "plain": self.plain, "shape": list(self.shape),
                "dtype": self.dtype, "device": self.device}

    @classmethod
    def from_wire(cls, d: dict) -> "OutputInfo":
        return cls(str(d["type_name"]), bool(d["plain"]), tuple(int(s) for s in d["shape"]),
                   str(d["dtype"]), str(d["device"]))


@dataclass
class CaseResult:
    checks: list[Check]
    max_abs_err: float = 0.0
    rel_err: float = 0.0


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def device_type(device: str) -> str:
    return device.split(":")[0]


def compare_case(expected: list[torch.Tensor], infos: list[OutputInfo], actual: list[torch.Tensor | None],
                 device: str, config: HarnessConfig, case: str,
                 truth: Callable[[], list[torch.Tensor] | None] | None = None, values: bool = True) -> CaseResult:
    """All checks of one test case. Only failures carry details; passes are summarised by name.
    ``truth`` gives the float64 outputs, asked for only when a floating output misses the fixed
    tolerance (see accuracy.py). ``values=False``: metadata only (outputs judged statistically)."""
    result = CaseResult(checks=[])
    if len(infos) != len(expected):
        result.checks.append(Check("output_count", False, f"{case}: returned {len(infos)} outputs, expected {len(expected)}"))
        return result
    for i, (exp, info, act) in enumerate(zip(expected, infos, actual)):
        where = f"{case} output {i}"
        meta = _metadata_checks(exp, info, device, where)
        result.checks += meta
        if any(not c.passed for c in meta) or act is None or not values:
            if act is None and values and info.plain:
                result.checks.append(Check("allclose", False, f"{where}: no values came back"))
            continue
        value_checks, max_abs, rel = _value_checks(exp, act, config, where, device)
        if truth is not None and only_tolerance_failed(value_checks):
            value_checks, rel = _second_look(value_checks, rel, exp, act, truth, i, where)
        result.checks += value_checks
        result.max_abs_err = max(result.max_abs_err, max_abs)
        result.rel_err = max(result.rel_err, rel)
    return result


def only_tolerance_failed(checks) -> bool:
    """Whether the checks failed on accuracy bounds alone (allclose, rel_norm) and nothing else."""
    failed = {c.name for c in checks if not c.passed}
    return bool(failed) and failed <= {"allclose", "rel_norm"}


def _second_look(checks: list[Check], rel: float, exp: torch.Tensor, act: torch.Tensor, truth, index: int,
                 where: str) -> tuple[list[Check], float]:
    """The value checks redone against float64 when the reference's own error exceeds the tolerance."""
    if not exp.is_floating_point():
        return checks, rel
    exact = truth()
    if exact is None or index >= len(exact):
        return checks, rel
    judged = judged_against_truth(exp, act, exact[index], where)
    if judged is None:
        return checks, rel
    redone, cand_rel = judged
    return [c for c in checks if c.name not in ("allclose", "rel_norm")] + redone, cand_rel


def _metadata_checks(exp: torch.Tensor, info: OutputInfo, device: str, where: str) -> list[Check]:
    checks = [Check("plain_tensor", info.plain,
                    "" if info.plain else f"{where}: is a {info.type_name}, not a plain strided torch.Tensor")]
    if not info.plain:
        return checks
    checks.append(Check("shape", info.shape == tuple(exp.shape),
                        "" if info.shape == tuple(exp.shape) else f"{where}: shape {list(info.shape)}, expected {list(exp.shape)}"))
    want_dtype = dtype_name(exp.dtype)
    checks.append(Check("dtype", info.dtype == want_dtype,
                        "" if info.dtype == want_dtype else f"{where}: dtype {info.dtype}, expected {want_dtype}"))
    same_device = device_type(info.device) == device_type(device)
    checks.append(Check("device", same_device, "" if same_device else f"{where}: on {info.device}, expected {device}"))
    return checks


def comparison_device(device: str) -> str:
    """Where to compare: on the GPU when judging a GPU candidate (float64 passes over hundreds of
    MB take seconds on a CPU), else the CPU. The conductor's own copy, never the worker's."""
    from akg import plugins
    return plugins.backend_for(device).comparison_device()


# Elements per chunk of the value checks: each float64 temporary is 128 MB, so comparing a 6 GB
# output holds a few hundred MB beside it, not four float64 copies of it.
CHUNK_ELEMENTS = 1 << 24


def _chunks(exp: torch.Tensor, act: torch.Tensor):
    e, a = exp.reshape(-1), act.reshape(-1)
    for start in range(0, e.numel(), CHUNK_ELEMENTS):
        yield e[start:start + CHUNK_ELEMENTS].double(), a[start:start + CHUNK_ELEMENTS].double()


def _value_checks(exp: torch.Tensor, act: torch.Tensor, config: HarnessConfig, where: str, device: str = "cpu"):
    target = comparison_device(device)
    exp, act = exp.to(target), act.to(target)
    if not exp.is_floating_point() and not exp.is_complex():
        equal = torch.equal(exp, act)
        mismatches = int((exp != act).sum()) if not equal else 0
        return [Check("allclose", equal, "" if equal else f"{where}: {mismatches} of {exp.numel()} values differ (exact match required)")], float(mismatches > 0), float(mismatches > 0)
    tol = config.tolerance(dtype_name(exp.dtype))
    # First pass: NaN/Inf positions and the largest finite expected magnitude (the atol scale).
    misplaced, finite_count, max_expected = 0, 0, 0.0
    for e, a in _chunks(exp, act):
        finite = torch.isfinite(e)
        if bool(finite.all()) and bool(torch.isfinite(a).all()):
            finite_count += e.numel()
            max_expected = max(max_expected, float(e.abs().max())) if e.numel() else max_expected
            continue
        misplaced += int((e.isnan() != a.isnan()).sum() + (e.isposinf() != a.isposinf()).sum()
                         + (e.isneginf() != a.isneginf()).sum())
        finite_count += int(finite.sum())
        if bool(finite.any()):
            max_expected = max(max_expected, float(e.abs().masked_fill_(~finite, 0).max()))
    if misplaced:
        return [Check("nan_positions", False, f"{where}: NaN/Inf at {misplaced} positions where the reference has none (or the reverse)")], float("inf"), float("inf")
    checks = [Check("nan_positions", True)]
    if finite_count == 0:
        return checks, 0.0, 0.0
    # Second pass over the finite positions (where both sides agree on which those are).
    scale = max(1.0, max_expected)
    n_bad, max_abs, diff_sq, exp_sq = 0, 0.0, 0.0, 0.0
    for e, a in _chunks(exp, act):
        finite = torch.isfinite(e)
        if not bool(finite.all()):
            e, a = e.masked_fill(~finite, 0.0), a.masked_fill(~finite, 0.0)
        diff = (a - e).abs_()
        max_abs = max(max_abs, float(diff.max()))
        e_abs = e.abs_()
        exp_sq += float(e_abs.square().sum())
        diff_sq += float(diff.square().sum())
        n_bad += int((diff > e_abs.mul_(tol.rtol).add_(tol.atol * scale)).sum())
    checks.append(Check("allclose", n_bad == 0, "" if n_bad == 0 else
                        f"{where}: {n_bad} of {finite_count} values outside rtol={tol.rtol:g} atol={tol.atol:g} (max abs err {max_abs:.3g})"))
    norm, diff_norm = math.sqrt(exp_sq), math.sqrt(diff_sq)
    rel = diff_norm / norm if norm > 0 else diff_norm
    rel_ok = rel <= tol.rel_norm
    checks.append(Check("rel_norm", rel_ok, "" if rel_ok else f"{where}: relative error norm {rel:.3g} > {tol.rel_norm:g}"))
    return checks, max_abs, rel


def same_values(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bitwise-equal values, NaNs equal to NaNs."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if torch.equal(a, b):
        return True  # one pass, no copies; NaNs never compare equal here, so the path below sees them
    if not a.is_floating_point():
        return False
    return torch.equal(torch.nan_to_num(a, nan=0.5), torch.nan_to_num(b, nan=0.5)) and torch.equal(a.isnan(), b.isnan())
