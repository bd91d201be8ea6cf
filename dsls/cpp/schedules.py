"""Schedules worth measuring for a group on a CPU: variant, lanes/blocks, threads, grain.

Only ``variant``, ``lanes`` and ``block`` change the generated C++; ``threads`` and ``grain`` are
runtime arguments, so schedules that differ only in them share one binary.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields

from akg.ir import FusedGroup, PointwiseKernel, PoolKernel, ReductionKernel, Schedule, ScanKernel
from akg.targets import HardwareSpec

from .lowering import column_possible, reduction_geometry, scan_geometry

MAX_SCHEDULES = 8
_SMALL_NUMEL = 1 << 14           # below this, waking a thread pool costs more than the work
_SPLIT_MIN_REDUCE = 1 << 14      # rows this long are worth cutting across threads


def _pow2(x: float) -> int:
    return 1 << max(0, round(math.log2(max(x, 1))))


def _fp32_lanes(hardware: HardwareSpec | None) -> int:
    bits = hardware.vector_width_bits if hardware and hardware.vector_width_bits else 256
    return max(4, bits // 32)


def _cores(hardware: HardwareSpec | None) -> int:
    return hardware.compute_units if hardware else (os.cpu_count() or 1)


@dataclass(frozen=True)
class CppSchedule:
    """The knobs of one cpp kernel, validated. The search sees them as an ``ir.Schedule``
    (``to_schedule``); rendering reads them back typed (``from_schedule``)."""
    variant: str = "row"        # reductions and scans: "row", "split" or "column"
    lanes: int = 16             # reductions: partial results per stage (SIMD width x unroll)
    block: int = 64             # pointwise: inner-dim block per task; column variants: columns per task;
                                # pool: output rows per task
    threads: int = 0            # OpenMP threads; 0 = the runtime's default
    grain: int = 0              # split reductions: elements per task

    VARIANTS = ("row", "split", "column")

    def __post_init__(self) -> None:
        if self.variant not in self.VARIANTS:
            raise ValueError(f"cpp schedule variant {self.variant!r} is not one of {', '.join(self.VARIANTS)}")
        for name in ("lanes", "block"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"cpp schedule {name} must be at least 1, not {getattr(self, name)}")
        for name in ("threads", "grain"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"cpp schedule {name} must not be negative, not {getattr(self, name)}")

    @classmethod
    def from_schedule(cls, schedule: Schedule) -> "CppSchedule":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(dict(schedule.knobs)) - names)
        if unknown:
            raise ValueError(f"cpp schedules have no knob {', '.join(unknown)}")
        return cls(**dict(schedule.knobs))

    def to_schedule(self, *names: str) -> Schedule:
        """The knobs named (all when none are) as the search's schedule value."""
        chosen = names or tuple(f.name for f in fields(self))
        return Schedule(tuple(sorted((n, getattr(self, n)) for n in chosen)))


def _knobs(**knobs) -> Schedule:
    # Validated through CppSchedule; only the knobs given are kept, so schedule texts stay short.
    return CppSchedule(**knobs).to_schedule(*knobs)


def pointwise_schedules(kernel: PointwiseKernel, hardware: HardwareSpec | None) -> list[Schedule]:
    numel, cores = math.prod(kernel.domain), _cores(hardware)
    # A few tasks per core balance load; blocks stay long enough to amortise the task setup.
    best = min(max(_pow2(numel / (4 * cores)), 2048), 1 << 16)
    found = [_knobs(threads=0, block=b) for b in (best, best * 4, max(best // 4, 512))]
    if numel < _SMALL_NUMEL:
        found.insert(0, _knobs(threads=1, block=best))
    return found


def reduction_schedules(kernel: ReductionKernel, hardware: HardwareSpec | None) -> list[Schedule]:
    geometry = reduction_geometry(kernel)
    keep, cores, lanes = geometry.keep, _cores(hardware), _fp32_lanes(hardware)
    reduce_size = geometry.sizes[keep]
    rows = math.prod(geometry.sizes) // max(reduce_size, 1)
    # Two vectors of partial results per stage hide the latency of dependent adds.
    row = [_knobs(variant="row", lanes=l, threads=0, grain=0) for l in (2 * lanes, lanes, 4 * lanes)]
    found: list[Schedule] = []
    if rows < 2 * cores and reduce_size >= _SPLIT_MIN_REDUCE:
        grain = max(_pow2(reduce_size / (4 * cores)), 4096)
        found += [_knobs(variant="split", lanes=2 * lanes, threads=0, grain=g) for g in (grain, grain * 4)]
    if column_possible(geometry) and geometry.sizes[keep + 1] >= 4:
        inner = geometry.sizes[keep + 1]
        blocks = [b for b in (64, 256, 16) if b <= max(inner, 16)]
        found += [_knobs(variant="column", block=b, threads=0, grain=0) for b in blocks]
    found += row
    if math.prod(kernel.domain) < _SMALL_NUMEL:
        found.insert(0, found[0].with_(threads=1))
    return found[:MAX_SCHEDULES]


def scan_schedules(kernel: ScanKernel, hardware: HardwareSpec | None) -> list[Schedule]:
    geometry = scan_geometry(kernel)
    found: list[Schedule] = []
    if column_possible(geometry) and geometry.sizes[geometry.keep + 1] >= 4:
        found += [_knobs(variant="column", block=b, threads=0, grain=0) for b in (64, 256)]
    found.append(_knobs(variant="row", block=64, threads=0, grain=0))
    if math.prod(kernel.domain) < _SMALL_NUMEL:
        found.insert(0, found[0].with_(threads=1))
    return found


def pool_schedules(kernel: PoolKernel, hardware: HardwareSpec | None) -> list[Schedule]:
    n, c, oh, ow = kernel.out_shape
    cores = _cores(hardware)
    # Whole planes per task when there are enough planes to share out, else blocks of rows.
    per_task = oh if n * c >= 4 * cores else max(1, -(-oh * n * c // (4 * cores)))
    found = [_knobs(threads=0, block=b) for b in dict.fromkeys((per_task, max(1, per_task // 4), 8))]
    if math.prod(kernel.out_shape) < _SMALL_NUMEL:
        found.insert(0, found[0].with_(threads=1))
    return found


def schedules(group: FusedGroup, hardware: HardwareSpec | None) -> list[Schedule]:
    kernel = group.kernel
    if isinstance(kernel, PoolKernel):
        return pool_schedules(kernel, hardware)
    if isinstance(kernel, PointwiseKernel):
        return pointwise_schedules(kernel, hardware)
    if isinstance(kernel, ReductionKernel):
        return reduction_schedules(kernel, hardware)
    if isinstance(kernel, ScanKernel):
        return scan_schedules(kernel, hardware)
    return []


def default_schedule(group: FusedGroup) -> CppSchedule:
    """The best guess for this machine, completed with any knobs the group's schedule sets."""
    found = schedules(group, None)
    base = found[0] if found else Schedule()
    return CppSchedule.from_schedule(base.with_(**dict(group.schedule.knobs)) if group.schedule.knobs else base)
