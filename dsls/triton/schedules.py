"""Schedules worth measuring for each family, derived from the hardware descriptor, best guess
first, each list short enough (<= 12) that the search can measure all of it.

Under the interpreter (a non-GPU descriptor) timings mean nothing and every program is slow, so a
single small schedule is returned.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

from akg.ir import FusedGroup, MatmulKernel, PointwiseKernel, PoolKernel, ReductionKernel, ScanKernel, Schedule
from akg.targets import HardwareSpec
from akg.dsls.triton.layout import collapse, transposed_dims

MAX_SCHEDULES = 12
# Elements of a row block one program keeps in registers: beyond this a persistent row spills.
PERSISTENT_ELEMENTS = 16384
FALLBACK_SMEM = 99 * 1024   # consumer Ampere/Ada block limit: safe when a descriptor lacks it


def next_pow2(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


_POW2 = ("BLOCK", "XBLOCK", "YBLOCK", "RBLOCK", "BM", "BN", "BK")


@dataclass(frozen=True)
class TritonSchedule:
    """Every knob a Triton template reads, validated; None = the template's default. The search
    carries only the knobs a schedule sets (``to_schedule``), so schedule texts stay short."""
    variant: str | None = None        # pointwise: tiled; reduction: persistent, looped, split; scan: persistent, looped
    BLOCK: int | None = None
    XBLOCK: int | None = None
    YBLOCK: int | None = None
    ROWS: int | None = None
    RBLOCK: int | None = None
    SPLIT: int | None = None
    online: bool | None = None
    BM: int | None = None
    BN: int | None = None
    BK: int | None = None
    GROUP_M: int | None = None
    num_warps: int | None = None
    num_stages: int | None = None
    precision: str | None = None

    def __post_init__(self) -> None:
        if self.variant not in (None, "tiled", "persistent", "looped", "split"):
            raise ValueError(f"unknown Triton variant {self.variant!r}")
        for name in _POW2:
            value = getattr(self, name)
            if value is not None and (value < 1 or value & (value - 1)):
                raise ValueError(f"{name} must be a power of two, not {value}")
        for name in ("ROWS", "SPLIT", "GROUP_M", "num_stages"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, not {value}")
        if self.num_warps not in (None, 1, 2, 4, 8, 16, 32):
            raise ValueError(f"num_warps must be a power of two up to 32, not {self.num_warps}")
        if self.precision not in (None, "ieee", "tf32"):
            raise ValueError(f"precision must be ieee or tf32, not {self.precision!r}")

    @classmethod
    def from_schedule(cls, s: Schedule) -> "TritonSchedule":
        unknown = sorted(set(dict(s.knobs)) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"Triton schedules have no knob {', '.join(unknown)}")
        return cls(**dict(s.knobs))

    def to_schedule(self) -> Schedule:
        return Schedule(tuple(sorted((f.name, getattr(self, f.name)) for f in fields(self)
                                     if getattr(self, f.name) is not None)))


def schedule(**knobs) -> Schedule:
    return TritonSchedule(**knobs).to_schedule()


def unique(items: list[Schedule]) -> list[Schedule]:
    seen, out = set(), []
    for s in items:
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out[:MAX_SCHEDULES]


def for_group(group: FusedGroup, hw: HardwareSpec) -> list[Schedule]:
    k = group.kernel
    if hw.backend != "cuda":
        return [interpreter_schedule(k)]
    if isinstance(k, PointwiseKernel):
        return unique(tiled_pointwise(k) + pointwise(math.prod(k.domain), hw))
    if isinstance(k, ReductionKernel):
        return unique(reduction(k, hw))
    if isinstance(k, ScanKernel):
        return unique(scan(k.domain[k.scan_dim], hw))
    if isinstance(k, PoolKernel):
        return unique(pool(math.prod(k.out_shape), hw))
    if isinstance(k, MatmulKernel):
        return unique(matmul(k, hw))
    return []


def interpreter_schedule(k) -> Schedule:
    if isinstance(k, (PointwiseKernel, PoolKernel)):
        return schedule(BLOCK=256, num_warps=4)
    if isinstance(k, ReductionKernel):
        size = k.domain[k.reduce_dim]
        if size <= 1024:
            return schedule(variant="persistent", ROWS=4, RBLOCK=next_pow2(size), num_warps=4)
        return schedule(variant="looped", ROWS=2, RBLOCK=512, num_warps=4)
    if isinstance(k, ScanKernel):
        size = k.domain[k.scan_dim]
        return schedule(variant="persistent" if size <= 1024 else "looped", ROWS=2,
                        RBLOCK=min(next_pow2(size), 1024), num_warps=4)
    if isinstance(k, MatmulKernel):
        return schedule(BM=32, BN=32, BK=32, GROUP_M=4, num_warps=4, num_stages=1, precision="ieee")
    return schedule()


def pointwise(numel: int, hw: HardwareSpec) -> list[Schedule]:
    # Enough programs to fill every SM several times; beyond that, wider blocks amortise indexing.
    out = []
    for block, warps in ((1024, 4), (2048, 8), (4096, 8), (1024, 8), (2048, 4), (4096, 16), (8192, 16), (512, 4)):
        if block > next_pow2(numel) and out:
            continue
        out.append(schedule(BLOCK=min(block, max(next_pow2(numel), 128)), num_warps=warps))
    return out


def tiled_pointwise(k: PointwiseKernel) -> list[Schedule]:
    """2-d tiles when an operand is read transposed to the outputs (e.g. a channels-last
    convolution result feeding an NCHW output); none otherwise."""
    tensors = [op.strides for op in k.operands] + [o.strides for o in k.outputs]
    lay = collapse(k.domain, tensors)
    if transposed_dims(lay.sizes, lay.strides[:len(k.operands)], lay.strides[len(k.operands):]) is None:
        return []
    return [schedule(variant="tiled", YBLOCK=y, XBLOCK=x, num_warps=w)
            for y, x, w in ((64, 64, 4), (32, 128, 4), (128, 32, 4), (64, 128, 8), (32, 32, 4))]


def reduction(k: ReductionKernel, hw: HardwareSpec) -> list[Schedule]:
    size = k.domain[k.reduce_dim]
    rows = k.rows
    rblock = next_pow2(size)
    column = all(op.strides[k.reduce_dim] != 1 for op in k.operands if op.strides[k.reduce_dim] != 0) and any(
        op.strides[k.reduce_dim] != 0 for op in k.operands)
    out = split_reduction(k, hw)
    if column:
        # Reducing a non-innermost dim: many rows per program make the loads coalesce along rows.
        for r_rows, r_block, warps in ((64, 16, 4), (128, 8, 4), (32, 32, 4), (128, 16, 8), (256, 8, 8)):
            out.append(schedule(variant="looped", ROWS=min(r_rows, next_pow2(rows)), RBLOCK=min(r_block, rblock),
                                num_warps=warps, online=True))
    if rblock <= PERSISTENT_ELEMENTS:
        for per in (1, 2, 4, 8, 16):
            if per * rblock > PERSISTENT_ELEMENTS or (per > 1 and math.ceil(rows / per) < hw.compute_units):
                continue
            threads = max(per * rblock // 8, 128)   # about 8 elements a thread
            warps = min(max(threads // max(hw.warp_size, 32), 2), 16)
            out.append(schedule(variant="persistent", ROWS=per, RBLOCK=rblock, num_warps=warps))
            if warps < 16:
                out.append(schedule(variant="persistent", ROWS=per, RBLOCK=rblock, num_warps=warps * 2))
    for r_block, warps in ((2048, 8), (4096, 16), (1024, 4), (8192, 16)):
        if r_block < rblock:
            out.append(schedule(variant="looped", ROWS=1, RBLOCK=r_block, num_warps=warps, online=True))
    return out


# Rows per SM below which one program per row leaves SMs idle, and the row length from which
# splitting a row across programs pays for the second (combine) kernel.
SPLIT_BELOW_ROWS_PER_SM = 2
SPLIT_MIN_SIZE = 8192


def split_reduction(k: ReductionKernel, hw: HardwareSpec) -> list[Schedule]:
    """Split schedules for few long rows: enough (row, slice) programs to fill every SM a few
    times over. Empty when rows alone fill the device or the kernel cannot be split."""
    from akg.dsls.triton.families import split_obstacle   # families imports this module
    size, rows = k.domain[k.reduce_dim], k.rows
    if rows >= SPLIT_BELOW_ROWS_PER_SM * hw.compute_units or size < SPLIT_MIN_SIZE or split_obstacle(k):
        return []
    out = []
    # Measured on an H100 for a 67M-element mean: more, shorter slices kept improving up to 8 waves.
    for waves, r_block, warps in ((8, 4096, 16), (16, 4096, 16), (16, 2048, 8), (32, 2048, 8), (4, 4096, 16),
                                  (8, 2048, 8)):
        split = min(math.ceil(waves * hw.compute_units / rows), math.ceil(size / r_block))
        if split >= 2:
            out.append(schedule(variant="split", ROWS=1, RBLOCK=r_block, SPLIT=split, num_warps=warps, online=True))
    return out


def scan(size: int, hw: HardwareSpec) -> list[Schedule]:
    rblock = next_pow2(size)
    out = []
    if rblock <= 4096:
        for per, warps in ((1, 4), (2, 4), (4, 8), (1, 8)):
            out.append(schedule(variant="persistent", ROWS=per, RBLOCK=rblock, num_warps=warps))
    for r_block, warps in ((1024, 4), (2048, 8), (4096, 8)):
        if r_block < rblock:
            out.append(schedule(variant="looped", ROWS=1, RBLOCK=r_block, num_warps=warps))
    return out


def pool(numel: int, hw: HardwareSpec) -> list[Schedule]:
    return [schedule(BLOCK=b, num_warps=w) for b, w in ((256, 4), (512, 4), (1024, 8), (128, 4), (512, 8))]


# (BM, BN, BK, num_warps, num_stages): the usual Hopper/Ampere tile list, pruned below.
_MATMUL_TILES = (
    (128, 128, 32, 8, 3), (128, 64, 32, 4, 4), (64, 128, 32, 4, 4), (128, 128, 64, 8, 3),
    (64, 64, 32, 4, 4), (128, 256, 64, 8, 3), (256, 128, 64, 8, 3), (64, 64, 64, 4, 3),
    (128, 64, 64, 4, 3), (32, 64, 32, 4, 4), (64, 32, 32, 2, 5), (32, 32, 32, 2, 4),
)


def matmul(k: MatmulKernel, hw: HardwareSpec, allow_tf32: bool = False) -> list[Schedule]:
    itemsize = max(k.a.type.itemsize, k.b.type.itemsize)
    smem = hw.shared_mem_per_block or FALLBACK_SMEM
    out = []
    for bm, bn, bk, warps, stages in _MATMUL_TILES:
        bm, bn, bk = (min(bm, max(next_pow2(k.m), 16)), min(bn, max(next_pow2(k.n), 16)),
                      min(bk, max(next_pow2(k.k), 16)))
        if stages * (bm * bk + bk * bn) * itemsize > smem:
            continue
        out.append(schedule(BM=bm, BN=bn, BK=bk, GROUP_M=8, num_warps=warps, num_stages=stages, precision="ieee"))
    if allow_tf32 and "float32" in (k.a.type.dtype, k.b.type.dtype):
        out = [s.with_(precision="tf32") for s in out[:6]] + out[:6]
    return out
