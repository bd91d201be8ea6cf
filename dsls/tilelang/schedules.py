"""Typed schedules for TileLang programs and the lists worth measuring for a group.

Each family has a frozen dataclass whose defaults are valid and whose fields are checked on
construction; the search sees them as ``ir.Schedule`` knobs (``to_schedule``), rendering reads
them back typed (``for_group``). On a CPU (TileLang's C target, for correctness) one schedule is
returned: timings there are not what the search optimises.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from akg.ir import FusedGroup, MatmulKernel, PointwiseKernel, ReductionKernel, Schedule, ScheduleKnobs
from akg.targets import HardwareSpec

MAX_SCHEDULES = 8
_THREADS = (32, 64, 128, 256, 512, 1024)
REDUCE_OPS = ("sum", "max", "min", "argmax", "argmin")   # the stages the reduction template computes
FALLBACK_SMEM = 99 * 1024                   # a block's shared memory where a descriptor lacks it
PERSISTENT = 16384                          # tile elements a program keeps in registers
MAX_SPLIT = 1024                            # programs per row of a split reduction
# Rows per SM below which one program per row leaves SMs idle, and the row length from which
# splitting a row over programs pays for the second (combine) program.
SPLIT_BELOW_ROWS_PER_SM = 2
SPLIT_MIN_SIZE = 8192


def next_pow2(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


def _pow2(name: str, value: int, low: int = 1, high: int = 1 << 16) -> None:
    if value < low or value > high or value & (value - 1):
        raise ValueError(f"{name} must be a power of two in [{low}, {high}], not {value}")


@dataclass(frozen=True)
class PointwiseSchedule(ScheduleKnobs):
    block: int = 1024        # elements per program (T.Parallel extent)
    threads: int = 256

    def __post_init__(self) -> None:
        _pow2("block", self.block, 32)
        if self.threads not in _THREADS or self.block < self.threads:
            raise ValueError(f"threads must be one of {_THREADS} and at most block, not {self.threads}")


@dataclass(frozen=True)
class ReductionSchedule(ScheduleKnobs):
    rows: int = 1            # rows per program
    rblock: int = 1024       # elements of a row per step (the reduced tile's width)
    threads: int = 128
    split: int = 1           # programs per row (partials folded by a second program)

    def __post_init__(self) -> None:
        _pow2("rows", self.rows, 1, 256)
        if not 1 <= self.split <= MAX_SPLIT:
            raise ValueError(f"split must be 1 to {MAX_SPLIT}, not {self.split}")
        _pow2("rblock", self.rblock, 32)
        if self.threads not in _THREADS or self.rows * self.rblock < self.threads:
            raise ValueError(f"threads must be one of {_THREADS} and at most rows * rblock, not {self.threads}")


@dataclass(frozen=True)
class MatmulSchedule(ScheduleKnobs):
    bm: int = 128
    bn: int = 128
    bk: int = 32
    threads: int = 128
    stages: int = 2          # T.Pipelined depth of the K loop

    def __post_init__(self) -> None:
        for name in ("bm", "bn", "bk"):
            _pow2(name, getattr(self, name), 16, 256)
        if self.threads not in (128, 256):
            raise ValueError(f"threads must be 128 or 256, not {self.threads}")
        if not 1 <= self.stages <= 4:
            raise ValueError(f"stages must be 1 to 4, not {self.stages}")


_TYPES = {PointwiseKernel: PointwiseSchedule, ReductionKernel: ReductionSchedule, MatmulKernel: MatmulSchedule}


def obstacle(kernel, allow_tf32: bool = False, gpu: bool = True) -> str | None:
    """Why the templates cannot compute ``kernel`` (None when they can)."""
    if not gpu and "bfloat16" in _dtypes(kernel):
        return "TileLang's C target has no bfloat16 (it renders for cuda)"
    if isinstance(kernel, ReductionKernel):
        bad = [st.op for st in kernel.stages if st.op not in REDUCE_OPS]
        return f"reduction stage {bad[0]} has no T.reduce_* form" if bad else None
    if isinstance(kernel, MatmulKernel):
        da, db = kernel.a.type.dtype, kernel.b.type.dtype
        if da != db or da not in ("float16", "bfloat16", "float32"):
            return f"T.gemm of {da} x {db}"
        if gpu and da == "float32" and not allow_tf32:
            # TileLang's fp32 T.gemm runs on TF32 tensor cores: not IEEE fp32 unless allowed.
            return "fp32 T.gemm rounds to TF32 on the GPU (allow TF32 to use it)"
        return None
    if isinstance(kernel, PointwiseKernel):
        return None
    return f"no TileLang template for {type(kernel).__name__}"


def _dtypes(kernel) -> set[str]:
    tensors = [op.type for op in kernel.operands] + [o.type for o in kernel.outputs]
    if isinstance(kernel, MatmulKernel):
        tensors += [kernel.a.type, kernel.b.type]
    return {t.dtype for t in tensors}


def pointwise(kernel: PointwiseKernel, hw: HardwareSpec) -> list[PointwiseSchedule]:
    numel = max(math.prod(kernel.domain), 1)
    out = []
    for block, threads in ((1024, 256), (2048, 256), (512, 128), (4096, 512), (1024, 128), (256, 128)):
        if block > max(next_pow2(numel), 256) and out:
            continue
        out.append(PointwiseSchedule(block, threads))
    return out


def reduction(kernel: ReductionKernel, hw: HardwareSpec) -> list[ReductionSchedule]:
    size, rows = kernel.reduce_size, kernel.rows
    # A row up to PERSISTENT elements is one tile (read once); longer rows loop over tiles.
    width = max(next_pow2(size), 32)
    sms = hw.compute_units or 132
    out = []
    widths = (width,) if width <= PERSISTENT else ()
    for rblock in dict.fromkeys(widths + (min(width, 4096), min(width, 2048), min(width, 1024))):
        for per in (1, 2, 4, 8):
            if per * rblock > PERSISTENT or (per > 1 and math.ceil(rows / per) < sms):
                continue
            threads = min(max(per * rblock // 16, 32), 1024)   # about 16 elements a thread
            threads = 1 << (threads.bit_length() - 1)
            out.append(ReductionSchedule(per, rblock, threads))
    return list(dict.fromkeys(split_reduction(kernel, hw) + (out or [ReductionSchedule(1, width, min(128, width))])))


def split_obstacle(kernel: ReductionKernel) -> str | None:
    """Why a row cannot be split over programs (None when it can): every stage must combine from
    independent partials and every output must need only the finished row results."""
    from akg.ir import StageRef, walk
    if any(not o.reduced for o in kernel.outputs):
        return "an output over the full row needs each finished row, not partials"
    for i, st in enumerate(kernel.stages):
        if st.op in ("argmax", "argmin"):
            return f"stage {i} ({st.op}) needs the row's extreme before its index"
        if any(isinstance(e, StageRef) for e in walk(st.expr)):
            return f"stage {i} ({st.op}) depends on an earlier stage's row result"
    return None


def split_reduction(kernel: ReductionKernel, hw: HardwareSpec) -> list[ReductionSchedule]:
    """Few long rows (a loss over every element, a global sum): enough (row, slice) programs to
    fill every SM a few times over."""
    size, rows = kernel.reduce_size, kernel.rows
    sms = hw.compute_units or 132
    if rows >= SPLIT_BELOW_ROWS_PER_SM * sms or size < SPLIT_MIN_SIZE or split_obstacle(kernel):
        return []
    out = []
    for waves, rblock, threads in ((8, 4096, 256), (16, 2048, 128), (4, 4096, 512), (16, 4096, 256)):
        split = min(math.ceil(waves * sms / rows), math.ceil(size / rblock), MAX_SPLIT)
        if split >= 2:
            out.append(ReductionSchedule(1, rblock, threads, split))
    return out


def matmul(kernel: MatmulKernel, hw: HardwareSpec) -> list[MatmulSchedule]:
    itemsize = 4 if kernel.a.type.dtype == "float32" else 2
    smem = hw.shared_mem_per_block or FALLBACK_SMEM
    out = []
    for bm, bn, bk, threads, stages in ((128, 128, 32, 128, 3), (128, 256, 32, 256, 3), (128, 128, 64, 256, 3),
                                        (64, 128, 32, 128, 4), (128, 64, 32, 128, 4), (64, 64, 32, 128, 4),
                                        (256, 128, 32, 256, 3), (64, 64, 64, 128, 2)):
        bm, bn, bk = (min(bm, max(next_pow2(kernel.m), 16)), min(bn, max(next_pow2(kernel.n), 16)),
                      min(bk, max(next_pow2(kernel.k), 16)))
        if stages * (bm * bk + bk * bn) * itemsize > smem:
            continue
        schedule = MatmulSchedule(bm, bn, bk, threads, stages)
        if schedule not in out:
            out.append(schedule)
    return out


def cpu_schedule(kernel):
    """One small schedule for TileLang's C target (serial loops: correctness, not speed)."""
    if isinstance(kernel, PointwiseKernel):
        return PointwiseSchedule(256, 128)
    if isinstance(kernel, ReductionKernel):
        return ReductionSchedule(2, min(max(next_pow2(kernel.reduce_size), 32), 1024), 64)
    return MatmulSchedule(32, 32, 32, 128, 1)


def for_kernel(kernel, hw: HardwareSpec | None, allow_tf32: bool = False) -> list:
    gpu = hw is None or hw.backend == "cuda"
    if obstacle(kernel, allow_tf32, gpu) is not None:
        return []
    if not gpu:
        return [cpu_schedule(kernel)]
    hw = hw or HardwareSpec(name="unknown", backend="cuda")
    if isinstance(kernel, PointwiseKernel):
        return pointwise(kernel, hw)[:MAX_SCHEDULES]
    if isinstance(kernel, ReductionKernel):
        return reduction(kernel, hw)[:MAX_SCHEDULES]
    return matmul(kernel, hw)[:MAX_SCHEDULES]


def schedules(group: FusedGroup, hw: HardwareSpec, allow_tf32: bool = False) -> list[Schedule]:
    return [s.to_schedule() for s in for_kernel(group.kernel, hw, allow_tf32)]


def for_group(group: FusedGroup, device: str):
    """The group's schedule, typed; the device's default when the group carries none."""
    cls = _TYPES.get(type(group.kernel))
    if cls is None:
        return None
    if group.schedule.knobs:
        return cls.from_schedule(group.schedule)
    return cpu_schedule(group.kernel) if device == "cpu" else cls()
