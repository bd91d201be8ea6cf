"""Typed schedules for CUDA-C kernels and the lists worth measuring for a group on a GPU.

Each family has a frozen dataclass whose defaults are valid and whose fields are checked on
construction; the search sees them as ``ir.Schedule`` knobs (``to_schedule``), rendering reads
them back typed (``for_group``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from akg.ir import FusedGroup, PointwiseKernel, ReductionKernel, ScanKernel, Schedule, ScheduleKnobs
from akg.targets import HardwareSpec

MAX_SCHEDULES = 8
_THREADS = (32, 64, 128, 256, 512, 1024)


def _check_threads(threads: int, warp: int = 32) -> None:
    if threads not in _THREADS or threads % warp:
        raise ValueError(f"threads must be one of {_THREADS}, not {threads}")


@dataclass(frozen=True)
class PointwiseSchedule(ScheduleKnobs):
    threads: int = 256       # threads per block
    vec: int = 4             # elements per thread per step, loaded as one aligned vector (1 = scalar)

    def __post_init__(self) -> None:
        _check_threads(self.threads)
        if self.vec not in (1, 2, 4, 8):
            raise ValueError(f"vec must be 1, 2, 4 or 8, not {self.vec}")

    def scalar(self) -> "PointwiseSchedule":
        return replace(self, vec=1)


@dataclass(frozen=True)
class ReductionSchedule(ScheduleKnobs):
    variant: str = "row"     # row: a block per row; column: a thread per output; split: blocks per row
    threads: int = 256
    split: int = 1           # split: blocks per row (partials folded by a second kernel)

    def __post_init__(self) -> None:
        _check_threads(self.threads)
        if self.variant not in ("row", "column", "split"):
            raise ValueError(f"unknown reduction variant {self.variant!r}")
        if self.split < 1 or (self.variant == "split") != (self.split > 1):
            raise ValueError("split > 1 exactly when the variant is split")


@dataclass(frozen=True)
class ScanSchedule(ScheduleKnobs):
    variant: str = "row"     # row: a warp per row, chunks of a warp's width; column: a thread per line
    threads: int = 128

    def __post_init__(self) -> None:
        _check_threads(self.threads)
        if self.variant not in ("row", "column"):
            raise ValueError(f"unknown scan variant {self.variant!r}")


def _geometry(kernel, keep):
    from .lowering import collapse, _all_strides
    return collapse(kernel.domain, _all_strides(kernel), keep=keep)


def pointwise(kernel: PointwiseKernel, hw: HardwareSpec) -> list[PointwiseSchedule]:
    return [PointwiseSchedule(threads=t, vec=v) for t, v in ((256, 4), (512, 4), (128, 4), (256, 2), (256, 1))]


def reduction(kernel: ReductionKernel, hw: HardwareSpec) -> list[ReductionSchedule]:
    from .lowering import column_possible, split_obstacle
    g = _geometry(kernel, kernel.reduce_dim)
    size = g.sizes[g.keep]
    rows = math.prod(g.sizes) // max(size, 1)
    sms = hw.compute_units or 132
    found: list[ReductionSchedule] = []
    if column_possible(g) and g.sizes[g.keep + 1] >= 32:
        found += [ReductionSchedule("column", 256), ReductionSchedule("column", 128)]
    if rows < 2 * sms and size >= 1 << 15 and split_obstacle(kernel) is None:
        per_row = max(2, min(256, (4 * sms) // max(rows, 1)))
        found += [ReductionSchedule("split", 512, per_row), ReductionSchedule("split", 256, per_row)]
    threads = 1024 if size >= 8192 else 512 if size >= 2048 else 256 if size >= 512 else 128 if size >= 128 else 32
    found += [ReductionSchedule("row", threads)] + [ReductionSchedule("row", t) for t in (256, 512, 128) if t != threads]
    return found[:MAX_SCHEDULES]


def scan(kernel: ScanKernel, hw: HardwareSpec) -> list[ScanSchedule]:
    from .lowering import column_possible
    g = _geometry(kernel, kernel.scan_dim)
    found = [ScanSchedule("column", 128)] if column_possible(g) and g.sizes[g.keep + 1] >= 32 else []
    return found + [ScanSchedule("row", 128), ScanSchedule("row", 256)]


def for_kernel(kernel, hw: HardwareSpec | None):
    hw = hw or HardwareSpec(name="unknown", backend="")
    if isinstance(kernel, PointwiseKernel):
        return pointwise(kernel, hw)
    if isinstance(kernel, ReductionKernel):
        return reduction(kernel, hw)
    if isinstance(kernel, ScanKernel):
        return scan(kernel, hw)
    return []


def schedules(group: FusedGroup, hw: HardwareSpec) -> list[Schedule]:
    return [s.to_schedule() for s in for_kernel(group.kernel, hw)]


_TYPES = {PointwiseKernel: PointwiseSchedule, ReductionKernel: ReductionSchedule, ScanKernel: ScanSchedule}


def for_group(group: FusedGroup):
    """The group's schedule, typed; the first of the list when the group carries none."""
    cls = _TYPES.get(type(group.kernel))
    if cls is None:
        return None
    if group.schedule.knobs:
        return cls.from_schedule(group.schedule)
    found = for_kernel(group.kernel, None)
    return found[0] if found else cls()
