"""Typed schedules for Metal kernels: the variant of reductions and scans (a thread per row, or a
thread per output with neighbouring threads on neighbouring addresses)."""
from __future__ import annotations

from dataclasses import dataclass, fields

from akg.dsls.cuda_c.lowering import column_possible, reduction_geometry, scan_geometry
from akg.ir import FusedGroup, PointwiseKernel, ReductionKernel, ScanKernel, Schedule
from akg.targets import HardwareSpec


@dataclass(frozen=True)
class MetalSchedule:
    variant: str = "row"      # reductions and scans: "row" (thread per row) or "column" (thread per output)

    def __post_init__(self) -> None:
        if self.variant not in ("row", "column"):
            raise ValueError(f"unknown Metal variant {self.variant!r}")

    def to_schedule(self) -> Schedule:
        return Schedule(tuple((f.name, getattr(self, f.name)) for f in fields(self)))

    @classmethod
    def from_schedule(cls, schedule: Schedule) -> "MetalSchedule":
        unknown = sorted(set(dict(schedule.knobs)) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"Metal schedules have no knob {', '.join(unknown)}")
        return cls(**dict(schedule.knobs))


def for_kernel(kernel) -> list[MetalSchedule]:
    if isinstance(kernel, PointwiseKernel):
        return [MetalSchedule()]
    if isinstance(kernel, (ReductionKernel, ScanKernel)):
        geometry = reduction_geometry(kernel) if isinstance(kernel, ReductionKernel) else scan_geometry(kernel)
        found = [MetalSchedule("column")] if column_possible(geometry) else []
        return found + [MetalSchedule("row")]
    return []


def schedules(group: FusedGroup, hardware: HardwareSpec) -> list[Schedule]:
    return [s.to_schedule() for s in for_kernel(group.kernel)]


def for_group(group: FusedGroup) -> MetalSchedule | None:
    found = for_kernel(group.kernel)
    if not found:
        return None
    return MetalSchedule.from_schedule(group.schedule) if group.schedule.knobs else found[0]
