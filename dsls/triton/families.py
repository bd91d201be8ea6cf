"""Template contexts for each kernel family: index arithmetic, loads, expressions, the schedule.

Names in generated kernels: operand i is pointer ``p{i}`` and its loaded block ``x{i}``; output j is
pointer ``q{j}``; stage k's result is ``s{k}`` (argmax/argmin: ``s{k}`` value, ``s{k}_i`` index).
"""
from __future__ import annotations

import math

from akg.ir import (Acc, Expr, FusedGroup, Load, MatmulKernel, Operand, Output, PointwiseKernel,
                    PoolKernel, ReductionKernel, RIndex, ScanKernel, StageRef, walk, FLOAT_DTYPES)
from akg.targets import RenderError
from akg.dsls.triton.exprs import ExprRenderer, literal, tl_dtype
from akg.dsls.triton.layout import collapse, coordinate_lines, needs_int64, offset
from akg.dsls.triton import schedules as sched


# ----------------------------------------------------------------------------------------------
# shared pieces
# ----------------------------------------------------------------------------------------------

def used_operands(exprs: list[Expr]) -> list[int]:
    return sorted({e.operand for x in exprs for e in walk(x) if isinstance(e, Load)})


def torch_dtype(dtype: str) -> str:
    return f"torch.{dtype}"


def device_expr(reads: list[str], device: str) -> str:
    return f"{reads[0]}.device" if reads else f"torch.device({device!r})"


def alloc_lines(outputs: tuple[Output, ...], dev: str) -> list[str]:
    return [f"o{j} = torch.empty({tuple(o.type.shape)!r}, dtype={torch_dtype(o.type.dtype)}, device={dev})"
            for j, o in enumerate(outputs)]


def launcher_names(group: FusedGroup, n_outputs: int) -> tuple[list[str], list[str]]:
    reads = [f"r{i}" for i in range(len(group.read_values()))]
    writes = [f"o{j}" for j in range(n_outputs)]
    return reads, writes


def store_value(expr_text: str, expr: Expr, dtype: str, shape: str) -> str:
    """The value to store, converted to the output dtype; constant-only expressions are broadcast."""
    has_leaf = any(not hasattr(e, "args") and not hasattr(e, "value") for e in walk(expr))
    value = f"({expr_text}).to({tl_dtype(dtype)})" if has_leaf else f"tl.full({shape}, {expr_text}, {tl_dtype(dtype)})"
    return value


def leaf_namer(loads: str = "x{}", stages: str = "s{}", rindex: str = "r", acc: str = "acc",
               stage_dtypes: dict[int, str] | None = None):
    def name(e: Expr) -> str:
        if isinstance(e, Load):
            return loads.format(e.operand)
        if isinstance(e, StageRef):
            text = stages.format(e.stage) + ("_i" if e.part == "index" else "")
            have = (stage_dtypes or {}).get(e.stage)
            if e.part == "value" and have is not None and have != e.dtype:
                text = f"{text}.to({tl_dtype(e.dtype)})"
            return text
        if isinstance(e, RIndex):
            return rindex
        if isinstance(e, Acc):
            return acc if e.dtype == "float32" else f"{acc}.to({tl_dtype(e.dtype)})"
        raise RenderError(f"unexpected leaf {type(e).__name__}")
    return name


# ----------------------------------------------------------------------------------------------
# pointwise
# ----------------------------------------------------------------------------------------------

def pointwise_context(name: str, group: FusedGroup, device: str) -> dict:
    k: PointwiseKernel = group.kernel
    s = group.schedule
    tensors = [op.strides for op in k.operands] + [o.strides for o in k.outputs]
    lay = collapse(k.domain, tensors)
    coords = [f"c{d}" for d in range(len(lay.sizes))]
    op_strides, out_strides = lay.strides[:len(k.operands)], lay.strides[len(k.operands):]
    exprs = [o.expr for o in k.outputs]
    loads = [f"x{i} = tl.load(p{i} + {offset(coords, op_strides[i])}, mask=mask)"
             for i in used_operands(exprs)]
    render = ExprRenderer(leaf_namer()).render
    stores = [f"tl.store(q{j} + {offset(coords, out_strides[j])}, "
              f"{store_value(render(o.expr), o.expr, o.type.dtype, '[BLOCK]')}, mask=mask)"
              for j, o in enumerate(k.outputs)]
    reads, writes = launcher_names(group, len(k.outputs))
    numel = math.prod(k.domain)
    return dict(
        name=name, reads=reads, writes=writes,
        params=[f"p{i}" for i in range(len(k.operands))] + [f"q{j}" for j in range(len(k.outputs))],
        args=reads + writes, wide=needs_int64(k.domain, tensors),
        coords=coordinate_lines("offs", lay.sizes, "c"), loads=loads, stores=stores,
        allocs=alloc_lines(k.outputs, device_expr(reads, device)), numel=numel,
        block=s.get("BLOCK", 1024), num_warps=s.get("num_warps", 4),
    )


def reduction_context(name, group, device):
    raise RenderError("not implemented yet")


def scan_context(name, group, device):
    raise RenderError("not implemented yet")


def pool_context(name, group, device):
    raise RenderError("not implemented yet")


def matmul_context(name, group, device):
    raise RenderError("not implemented yet")


REDUCE_HELPERS = ""
