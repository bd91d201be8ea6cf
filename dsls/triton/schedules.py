"""Schedules worth measuring for each family, derived from the hardware descriptor, best guess
first, each list short enough (<= 12) that the search can measure all of it.

Under the interpreter (a non-GPU descriptor) timings mean nothing and every program is slow, so a
single small schedule is returned.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

from akg.ir import ConvKernel, FusedGroup, MatmulKernel, Operand, PointwiseKernel, PoolKernel, ReductionKernel, ScanKernel, Schedule
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
        if self.precision not in (None, "ieee", "tf32", "tf32x3"):
            raise ValueError(f"precision must be ieee, tf32 or tf32x3, not {self.precision!r}")

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
    if isinstance(k, ConvKernel):
        return unique(conv(k, hw))
    return []


def interpreter_schedule(k) -> Schedule:
    if isinstance(k, (PointwiseKernel, PoolKernel)):
        return schedule(BLOCK=256, num_warps=4)
    if isinstance(k, ReductionKernel):
        size = k.reduce_size
        if size <= 1024:
            return schedule(variant="persistent", ROWS=4, RBLOCK=next_pow2(size), num_warps=4)
        return schedule(variant="looped", ROWS=2, RBLOCK=512, num_warps=4)
    if isinstance(k, ScanKernel):
        size = k.domain[k.scan_dim]
        return schedule(variant="persistent" if size <= 1024 else "looped", ROWS=2,
                        RBLOCK=min(next_pow2(size), 1024), num_warps=4)
    if isinstance(k, (MatmulKernel, ConvKernel)):
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
    size = k.reduce_size
    rows = k.rows
    rblock = next_pow2(size)
    inner = k.reduce_dims[-1]
    column = all(op.strides[inner] != 1 for op in k.operands if op.strides[inner] != 0) and any(
        op.strides[inner] != 0 for op in k.operands)
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
    size, rows = k.reduce_size, k.rows
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


# Matmul tiles: (BM, BN, num_warps) with a relative per-SM throughput for each way tl.dot runs.
# Bigger tiles reuse each loaded element more (intensity BM*BN/(BM+BN)); the weights follow the
# usual Hopper/Ampere tables (Triton's matmul tutorial, Inductor's mm configs: 128x256 and
# 128x128 tiles with 8 warps on tensor cores, 128x128 and 64x128 on the FMA units).
# "tf32x3" holds two more fragments per operand (the hi/lo split), so its widest tiles lose more
# to register pressure than plain TF32.
_MATMUL_TILES = (
    # BM, BN, warps, tensor cores, tf32x3, FMA (ieee fp32)
    (128, 256, 8, 1.00, 0.80, 0.0),
    (256, 128, 8, 1.00, 0.80, 0.0),
    (128, 128, 8, 0.90, 0.90, 1.00),
    (128, 128, 4, 0.85, 0.80, 0.90),
    (64, 256, 8, 0.80, 0.75, 0.0),
    (128, 64, 4, 0.75, 0.75, 0.85),
    (64, 128, 4, 0.75, 0.75, 0.85),
    (64, 64, 4, 0.50, 0.50, 0.70),
    (32, 64, 4, 0.30, 0.30, 0.50),
    (64, 32, 2, 0.30, 0.30, 0.50),
    (32, 32, 2, 0.20, 0.20, 0.35),
)
_WEIGHT_COLUMN = {"tc": 3, "tf32x3": 4, "ieee": 5}
MAX_STAGES = 4


def matmul_precisions(k: MatmulKernel, hw: HardwareSpec, allow_tf32: bool) -> tuple[str | None, ...]:
    """How tl.dot may run this matmul, best first. fp32 operands: TF32 exactly when torch computes
    the reference in TF32; otherwise "tf32x3" (three TF32 products of the operands' high and low
    halves: fp32-level accuracy on the tensor cores, the dropped low x low term ~2^-22 relative)
    and plain IEEE fp32 on the FMA units. Other dtypes run on tensor cores as they are (None: no precision knob)."""
    if "float32" not in (k.a.type.dtype, k.b.type.dtype) and k.a.type.dtype == k.b.type.dtype:
        return (None,)
    if not hw.tensor_cores or not hw.peak("tf32"):
        return ("ieee",)
    return ("tf32", "tf32x3") if allow_tf32 else ("tf32x3", "ieee")


def matmul_tiles(k: MatmulKernel, hw: HardwareSpec, precision: str | None) -> list[Schedule]:
    """The tile table ranked for this shape: per-SM work = waves of tiles x tile size / the tile's
    relative throughput, so a tile that leaves most SMs idle in its last wave (wave quantisation)
    or too few tiles to fill the device ranks below a smaller one. BK covers 128 bytes of a row."""
    itemsize = max(k.a.type.itemsize, k.b.type.itemsize)
    smem = hw.shared_mem_per_block or FALLBACK_SMEM
    sms = max(hw.compute_units, 1)
    column = _WEIGHT_COLUMN["tc" if precision in (None, "tf32") else precision]
    bk = min(max(128 // itemsize, 16), max(next_pow2(k.k), 16))
    ranked = []
    for rank, row in enumerate(_MATMUL_TILES):
        bm, bn, warps, weight = row[0], row[1], row[2], row[column]
        if not weight:
            continue
        bm, bn = min(bm, max(next_pow2(k.m), 16)), min(bn, max(next_pow2(k.n), 16))
        warps = min(warps, max(bm * bn // 512, 1))   # a tile cut down to a small matrix needs fewer warps
        per_stage = (bm * bk + bk * bn) * itemsize
        # tf32x3 splits each operand tile into high and low halves after it is loaded; the halves
        # go back through shared memory for the tensor cores, beside the pipeline's buffers.
        split = 2 * per_stage if precision == "tf32x3" else 0
        stages = min(MAX_STAGES - (1 if split else 0), (smem - split) // per_stage)
        if stages < 2:
            continue
        tiles = math.ceil(k.m / bm) * math.ceil(k.n / bn) * k.batch
        for split in sorted({1, split_k(tiles, k.k, bk, sms)}):
            # Per-SM work of one K slice; the workspace's extra write and read cost SPLIT_K_COST.
            work = math.ceil(tiles * split / sms) * bm * bn / (split * weight) * (SPLIT_K_COST if split > 1 else 1.0)
            knobs = dict(SPLIT=split) if split > 1 else {}
            ranked.append((work, rank, split, schedule(BM=bm, BN=bn, BK=bk, GROUP_M=8, num_warps=warps,
                                                       num_stages=stages, precision=precision, **knobs)))
    return [s for *_, s in sorted(ranked, key=lambda t: t[:3])]


SPLIT_K_MAX = 64
# Each slice keeps at least this much of K: shorter slices gain less than the second kernel's
# launch and the workspace's round trip cost.
SPLIT_K_MIN_K = 1024
SPLIT_K_COST = 1.15


def split_k(tiles: int, k: int, bk: int, sms: int) -> int:
    """Slices of K for a grid of ``tiles`` that leaves SMs idle: the fewest (a power of two) that
    give every SM a program, as long as each slice keeps SPLIT_K_MIN_K of K; 1 when the tiles fill the
    device or K is too short to cut."""
    split = 1
    while tiles * split < sms and split < SPLIT_K_MAX and k >= 2 * split * max(SPLIT_K_MIN_K, bk):
        split *= 2
    return split


SECOND_PRECISION_SCHEDULES = 2


def matmul(k: MatmulKernel, hw: HardwareSpec, allow_tf32: bool = False) -> list[Schedule]:
    """The best-ranked tiles of the first precision, then the best two of the second (the
    search tunes a plan only from an accepted seed, so the second precision is a neighbour, and
    on tensor cores the first is the faster one)."""
    precisions = matmul_precisions(k, hw, allow_tf32)
    first = matmul_tiles(k, hw, precisions[0])
    if len(precisions) == 1:
        return first
    second = matmul_tiles(k, hw, precisions[1])[:SECOND_PRECISION_SCHEDULES]
    return first[:MAX_SCHEDULES - len(second)] + second


def conv_gemm(k: ConvKernel) -> MatmulKernel:
    """The implicit GEMM of a convolution as the matmul its tiles are ranked for: (N*spatial) x
    C_out x (C_in*taps), reading the input's and the weight's element types."""
    m, n, kdim = k.gemm
    return MatmulKernel(1, m, n, kdim, Operand(k.input.value, k.input.type, (0, 0, 0)),
                        Operand(k.weight.value, k.weight.type, (0, 0, 0)), (), ())


def conv(k: ConvKernel, hw: HardwareSpec, allow_tf32: bool = False) -> list[Schedule]:
    """The matmul tile table ranked for the implicit GEMM's shape, without split-K (a
    convolution's K, channels x taps, is short next to its M), first precision then the best two
    of the second, as for matmuls. ``allow_tf32``: the reference convolution runs in TF32."""
    gemm = conv_gemm(k)
    precisions = matmul_precisions(gemm, hw, allow_tf32)
    ranked = [[s for s in matmul_tiles(gemm, hw, p) if s.get("SPLIT", 1) == 1] for p in precisions]
    if len(ranked) == 1:
        return ranked[0]
    second = ranked[1][:SECOND_PRECISION_SCHEDULES]
    return ranked[0][:MAX_SCHEDULES - len(second)] + second
