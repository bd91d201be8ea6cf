"""Lower one fused group (kernel spec + typed schedule) to the context its TileLang template needs.

Every tensor reaches a program as a flat 1-d buffer over the elements its layout spans (the
launcher passes an ``as_strided`` view), so any stride pattern, broadcast or transposed, is one
offset expression; matmul inputs are the exception (``T.copy`` and ``T.gemm`` want 2-d or 3-d
tiles). The device picks the spelling: on the GPU, fragments and ``T.Parallel`` (threads share
the tile); on the CPU (TileLang's C target), thread-private buffers and serial ``T.grid`` loops.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from akg.dsls.cpp.geometry import Geometry, collapse
from akg.ir import (Acc, Expr, Load, MatmulKernel, Operand, Output, PointwiseKernel, ReductionKernel, RIndex, StageRef,
                    walk)
from akg.targets import RenderError

from .exprs import ExprRenderer, literal, tl_dtype
from .schedules import MatmulSchedule, PointwiseSchedule, ReductionSchedule, next_pow2, split_obstacle

INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class Spelling:
    """How a device writes tiles and parallel loops."""
    target: str          # tilelang.compile target
    fragment: str        # a tile shared by the program's threads
    shared: str          # a staging tile for T.copy / T.gemm
    loop: str            # the parallel loop over a tile
    portable: bool       # expressions only in intrinsics TileLang's C target lowers


GPU = Spelling("cuda", "T.alloc_fragment", "T.alloc_shared", "T.Parallel", False)
CPU = Spelling("c", "T.alloc_local", "T.alloc_local", "T.grid", True)


def spelling(device: str) -> Spelling:
    if device == "cuda":
        return GPU
    if device == "cpu":
        return CPU
    raise RenderError(f"the tilelang DSL runs on cuda or cpu, not {device!r}")


def span(t) -> int:
    """Elements between a tensor's first and last element, plus one (its flat buffer's length)."""
    shape, strides = t.shape, t.layout()
    if any(n == 0 for n in shape):
        return 1
    return 1 + sum((n - 1) * s for n, s in zip(shape, strides))


def linear(terms: list[tuple[str, int]]) -> str:
    parts = [var if stride == 1 else f"{var} * {stride}" for var, stride in terms if stride != 0]
    return " + ".join(parts) or "0"


def decompose(index: str, sizes: tuple[int, ...], names: list[str]) -> list[str]:
    """Statements splitting linear ``index`` into the coordinates ``names`` (row-major)."""
    if not sizes:
        return []
    if len(sizes) == 1:
        return [f"{names[0]} = {index}"]
    lines, inner = [], 1
    for d in reversed(range(len(sizes))):
        text = index if inner == 1 else f"{index} // {inner}"
        lines.append(f"{names[d]} = {text}" if d == 0 else f"{names[d]} = {text} % {sizes[d]}")
        inner *= sizes[d]
    return list(reversed(lines))


def storage(dtype: str) -> str:
    """The buffer dtype of a tensor: bool tensors travel as uint8 (TileLang's C target declares
    bool buffers as int8_t in kernels and bool in their wrappers, which does not build)."""
    return "uint8" if dtype == "bool" else dtype


def element(text: str, dtype: str) -> str:
    """A buffer element read as the tensor's dtype."""
    return f"({text} != T.cast(0, 'uint8'))" if dtype == "bool" else text


def buffer_params(kernel, names: list[str]) -> list[str]:
    tensors = [op.type for op in kernel.operands] + [o.type for o in kernel.outputs]
    return [f"{name}: T.Tensor(({span(t)},), {tl_dtype(storage(t.dtype))})" for name, t in zip(names, tensors)]


def io_names(kernel) -> list[str]:
    return [f"x{i}" for i in range(len(kernel.operands))] + [f"y{j}" for j in range(len(kernel.outputs))]


def wide(kernel) -> bool:
    """Whether an index can pass int32: the program then counts in int64."""
    tensors = [op.type for op in kernel.operands] + [o.type for o in kernel.outputs]
    return max([math.prod(kernel.domain)] + [span(t) for t in tensors]) > INT32_MAX


def store_value(render: ExprRenderer, out: Output) -> str:
    value = render.as_dtype(out.expr, out.type.dtype)
    return f"T.cast({value}, 'uint8')" if out.type.dtype == "bool" else value


# -- pointwise ----------------------------------------------------------------------------------

def pointwise_context(name: str, kernel: PointwiseKernel, s: PointwiseSchedule, device: str) -> dict:
    sp = spelling(device)
    strides = [op.strides for op in kernel.operands] + [o.strides for o in kernel.outputs]
    g = collapse(kernel.domain, strides)
    n_ops = len(kernel.operands)
    coords = [f"c{d}" for d in range(len(g.sizes))]
    offset = [linear(list(zip(coords, st))) for st in g.strides]

    def leaf(e: Expr) -> str:
        if isinstance(e, Load):
            return element(f"x{e.operand}[{offset[e.operand]}]", kernel.operands[e.operand].type.dtype)
        raise RenderError(f"{type(e).__name__} cannot appear in a pointwise kernel")

    render = ExprRenderer(leaf, sp.portable)
    stores = [f"y{j}[{offset[n_ops + j]}] = {store_value(render, o)}" for j, o in enumerate(kernel.outputs)]
    numel = math.prod(kernel.domain)
    return dict(name=name, sp=sp, params=buffer_params(kernel, io_names(kernel)), numel=numel,
                block=s.block, threads=s.threads, ragged=numel % s.block != 0, wide=wide(kernel),
                coords=decompose("idx", g.sizes, coords), stores=stores)


# -- row reductions -----------------------------------------------------------------------------

def accumulator_dtype(op: str, dtype: str) -> str:
    """Accumulate half floats in fp32 and integer sums in int64, as torch does."""
    if dtype in ("float16", "bfloat16", "float32"):
        return "float32"
    if dtype == "float64":
        return dtype
    if op == "sum":
        return "int64"
    return "int32" if dtype == "bool" else dtype


def identity(op: str, dtype: str) -> str:
    if op == "sum":
        return literal(0, dtype)
    if dtype in ("float16", "bfloat16", "float32", "float64"):
        return f"-T.infinity({tl_dtype(dtype)})" if op == "max" else f"T.infinity({tl_dtype(dtype)})"
    return f"T.min_value({tl_dtype(dtype)})" if op == "max" else f"T.max_value({tl_dtype(dtype)})"


def reduction_context(name: str, kernel: ReductionKernel, s: ReductionSchedule, device: str) -> dict:
    sp = spelling(device)
    strides = [op.strides for op in kernel.operands] + [o.strides for o in kernel.outputs]
    g: Geometry = collapse(kernel.domain, strides, keep=kernel.reduce_dim)
    row_dims = [d for d in range(len(g.sizes)) if d != g.keep]
    size = g.sizes[g.keep]
    rows = math.prod(g.sizes[d] for d in row_dims)
    n_ops = len(kernel.operands)
    coords = [f"c{d}" for d in row_dims]

    def offset(t: int, along: bool) -> str:
        terms = [(f"c{d}", g.strides[t][d]) for d in row_dims]
        return linear(terms + ([("r", g.strides[t][g.keep])] if along else []))

    acc = [accumulator_dtype(st.op, st.expr.dtype) for st in kernel.stages]
    chunks = math.ceil(size / s.rblock)
    split, span_len = 1, size
    if s.split > 1:
        problem = split_obstacle(kernel)
        if problem:
            raise RenderError(f"split variant: {problem}")
        # Each of the row's programs covers span_len elements (whole tiles); none is left empty.
        span_len = math.ceil(math.ceil(size / s.split) / s.rblock) * s.rblock
        split, chunks = math.ceil(size / span_len), span_len // s.rblock
    # A row that fits one tile is read from memory once: every stage and output then reads the
    # operand's tile (v<i>) instead of memory again.
    along_exprs = [st.expr for st in kernel.stages] + [o.expr for o in kernel.outputs if not o.reduced]
    used = sorted({e.operand for x in along_exprs for e in walk(x) if isinstance(e, Load)})
    preload = [i for i in used if i < n_ops] if chunks == 1 and split == 1 else []

    def leaf_for(along: bool):
        def leaf(e: Expr) -> str:
            if isinstance(e, Load):
                if e.operand >= n_ops:
                    raise RenderError("a reduction reading its own output")
                if not along and g.strides[e.operand][g.keep] != 0:
                    raise RenderError(f"a reduced output reads operand {e.operand} along the reduced dim")
                dtype = kernel.operands[e.operand].type.dtype
                if along and e.operand in preload:
                    return element(f"v{e.operand}[i, j]", dtype)
                return element(f"x{e.operand}[{offset(e.operand, along)}]", dtype)
            if isinstance(e, StageRef):
                if e.part != "value":   # argmax/argmin: the first index of the extreme
                    return f"T.cast(s{e.stage}_i[i], {tl_dtype(e.dtype)})"
                text = f"s{e.stage}[i]"
                return text if acc[e.stage] == e.dtype else f"T.cast({text}, {tl_dtype(e.dtype)})"
            if isinstance(e, RIndex):
                return f"T.cast(r, {tl_dtype(e.dtype)})"
            raise RenderError(f"{type(e).__name__} cannot appear in a reduction kernel")
        return leaf

    along, at_row = ExprRenderer(leaf_for(True), sp.portable), ExprRenderer(leaf_for(False), sp.portable)
    # argmax/argmin run as two passes: the extreme (max/min), then the first index holding it.
    reduce_op = {"argmax": "max", "argmin": "min"}
    stages = [dict(index=k, op=reduce_op.get(st.op, st.op), acc=tl_dtype(acc[k]),
                   identity=identity(reduce_op.get(st.op, st.op), acc[k]), value=along.as_dtype(st.expr, acc[k]),
                   argument=st.op in reduce_op) for k, st in enumerate(kernel.stages)]
    reduced = [f"y{j}[{offset(n_ops + j, False)}] = {store_value(at_row, o)}"
               for j, o in enumerate(kernel.outputs) if o.reduced]
    full = [f"y{j}[{offset(n_ops + j, True)}] = {store_value(along, o)}"
            for j, o in enumerate(kernel.outputs) if not o.reduced]
    tiles = [dict(name=f"v{i}", dtype=tl_dtype(storage(kernel.operands[i].type.dtype)),
                  load=f"x{i}[{offset(i, True)}]", zero=literal(0, storage(kernel.operands[i].type.dtype))) for i in preload]
    workspaces = [dict(name=f"w{k}", dtype=acc[k], size=rows * split) for k in range(len(kernel.stages))] if split > 1 else []
    params = buffer_params(kernel, io_names(kernel)) + [f"{w['name']}: T.Tensor(({w['size']},), {tl_dtype(w['dtype'])})"
                                                         for w in workspaces]
    combine_width = max(next_pow2(split), 32)
    # Bounds checks only where tiles overhang: unmasked tiles load in vectors on the GPU.
    mask = " and ".join(([f"row < {rows}"] if rows % s.rows else []) +
                        ([f"r < {size}"] if split * chunks * s.rblock != size else []))
    return dict(name=name, sp=sp, params=params, rows=rows, size=size, split=split, workspaces=workspaces,
                r_step=_r_step(split, span_len, s.rblock, wide(kernel)), combine_width=combine_width,
                combine_threads=min(128, s.rows * combine_width), mask=mask,
                rows_per=s.rows, rblock=s.rblock, chunks=chunks, threads=s.threads, tiles=tiles,
                wide=wide(kernel), coords=decompose("row", tuple(g.sizes[d] for d in row_dims), coords),
                stages=stages, reduced=reduced, full=full)


def _r_step(split: int, span_len: int, rblock: int, wide_index: bool) -> str:
    """Where lane j of step ch sits along the row (in int64 where the row passes int32)."""
    cast = (lambda v: f"T.cast({v}, 'int64')") if wide_index else (lambda v: v)
    base = f"{cast('sp')} * {span_len} + " if split > 1 else ""
    return f"{base}{cast('ch')} * {rblock} + j"


# -- matmul with a fused epilogue ---------------------------------------------------------------

@dataclass(frozen=True)
class MatmulInput:
    """How one matmul input reaches the program: a contiguous (batch?, rows, cols) tensor, read
    transposed when its memory order is the transpose of the (m, k) / (k, n) operand."""
    shape: tuple[int, ...]        # of the contiguous tensor the launcher passes
    strides: tuple[int, ...]      # view of the original tensor with that shape (as_strided)
    transposed: bool
    batched: bool


def matmul_input(op: Operand, batch: int, rows: int, cols: int) -> MatmulInput:
    sb, sr, sc = op.strides
    batched = batch > 1 and sb != 0
    transposed = sr == 1 and sc != 1 and rows > 1
    shape = (cols, rows) if transposed else (rows, cols)
    strides = (sc, sr) if transposed else (sr, sc)
    if batched:
        shape, strides = (batch,) + shape, (sb,) + strides
    return MatmulInput(shape, strides, transposed, batched)


def matmul_context(name: str, kernel: MatmulKernel, s: MatmulSchedule, device: str) -> dict:
    sp = spelling(device)
    a = matmul_input(kernel.a, kernel.batch, kernel.m, kernel.k)
    b = matmul_input(kernel.b, kernel.batch, kernel.k, kernel.n)
    n_ops = len(kernel.operands)
    coords = ("bz", "m", "n")
    offset = [linear(list(zip(coords, st))) for st in [op.strides for op in kernel.operands] + [o.strides for o in kernel.outputs]]

    def leaf(e: Expr) -> str:
        if isinstance(e, Acc):
            return "acc[i, j]" if e.dtype == "float32" else f"T.cast(acc[i, j], {tl_dtype(e.dtype)})"
        if isinstance(e, Load):
            return element(f"x{e.operand}[{offset[e.operand]}]", kernel.operands[e.operand].type.dtype)
        raise RenderError(f"{type(e).__name__} cannot appear in a matmul epilogue")

    render = ExprRenderer(leaf, sp.portable)
    stores = [f"y{j}[{offset[n_ops + j]}] = {store_value(render, o)}" for j, o in enumerate(kernel.outputs)]

    def tile(inp: MatmulInput, tensor: str, row0: str, col0: str) -> str:
        start = f"{col0}, {row0}" if inp.transposed else f"{row0}, {col0}"
        return f"{tensor}[bz, {start}]" if inp.batched else f"{tensor}[{start}]"

    def smem(inp: MatmulInput, rows: int, cols: int) -> tuple[int, int]:
        return (cols, rows) if inp.transposed else (rows, cols)

    dtype = tl_dtype(kernel.a.type.dtype)
    epilogue_params = [f"x{i}: T.Tensor(({span(op.type)},), {tl_dtype(storage(op.type.dtype))})" for i, op in enumerate(kernel.operands)]
    output_params = [f"y{j}: T.Tensor(({span(o.type)},), {tl_dtype(storage(o.type.dtype))})" for j, o in enumerate(kernel.outputs)]
    return dict(
        name=name, sp=sp, M=kernel.m, N=kernel.n, K=kernel.k, batch=kernel.batch,
        params=[f"a: T.Tensor({a.shape}, {dtype})", f"b: T.Tensor({b.shape}, {dtype})"] + epilogue_params + output_params,
        a_tile=tile(a, "a", "by * BM", "ko * BK"), b_tile=tile(b, "b", "ko * BK", "bx * BN"),
        a_smem=smem(a, s.bm, s.bk), b_smem=smem(b, s.bk, s.bn), trans_a=a.transposed, trans_b=b.transposed,
        dtype=dtype, BM=s.bm, BN=s.bn, BK=s.bk, threads=s.threads, stages=s.stages,
        ragged=kernel.m % s.bm != 0 or kernel.n % s.bn != 0, stores=stores, a_view=a, b_view=b,
        by="T.cast(by, 'int64')" if wide(kernel) else "by", bx="T.cast(bx, 'int64')" if wide(kernel) else "bx",
    )
