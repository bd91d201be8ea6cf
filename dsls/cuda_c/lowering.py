"""Lower one fused group (kernel spec + typed schedule) to the context its CUDA-C template needs.

The templates own the thread structure; this module owns what varies: collapsed geometry, offsets,
which operands are read as aligned vectors, and every expression spelled for the loop it sits in.
The renderer (a CStyleRenderer dialect) is a parameter, so HIP reuses all of it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from akg.dsls.cpp.geometry import Geometry, collapse, decompose, linear
from akg.dsls.cstyle import CStyleRenderer
from akg.ir import Expr, Load, Output, PointwiseKernel, ReductionKernel, RIndex, ScanKernel, StageRef
from akg.targets import RenderError

from .schedules import PointwiseSchedule, ReductionSchedule, ScanSchedule


@dataclass(frozen=True)
class Spelling:
    """How leaves read inside one loop: loop variable -> collapsed dim it walks."""
    renderer: CStyleRenderer
    geometry: Geometry
    n_operands: int
    loop_vars: tuple[tuple[str, int], ...]
    vector_operands: frozenset[int] = field(default_factory=frozenset)   # read from x{i}.v[v]

    def offset(self, tensor: int) -> str:
        base = f"bi{tensor}" if tensor < self.n_operands else f"bo{tensor - self.n_operands}"
        strides = self.geometry.strides[tensor]
        rest = linear([(var, strides[dim]) for var, dim in self.loop_vars])
        return base if rest == "0" else f"{base} + {rest}"

    def leaf(self, expr: Expr) -> str:
        r = self.renderer
        if isinstance(expr, Load):
            if expr.operand >= self.n_operands:  # a value this kernel stored in its own output
                k = expr.operand - self.n_operands
                element = f"out{k}[{self.offset(expr.operand)}]"
            elif expr.operand in self.vector_operands:
                element = f"x{expr.operand}.v[v]"
            else:
                element = f"in{expr.operand}[{self.offset(expr.operand)}]"
            if r.compute_type(expr.dtype) == r.storage_type(expr.dtype):
                return element
            return f"(({r.compute_type(expr.dtype)}){element})"
        if isinstance(expr, StageRef):
            return f"s{expr.stage}" if expr.part == "value" else f"si{expr.stage}"
        if isinstance(expr, RIndex):
            return "rr"
        raise RenderError(f"{type(expr).__name__} cannot appear in this kernel family")

    def expr(self, expr: Expr) -> str:
        return self.renderer.render(expr, self.leaf)

    def value(self, out: Output) -> str:
        return self.renderer.convert(self.expr(out.expr), out.expr.dtype, out.type.dtype)

    def stores(self, outputs: list[tuple[int, Output]]) -> list[str]:
        return [f"out{k}[{self.offset(self.n_operands + k)}] = {self.value(out)};" for k, out in outputs]


def parameters(renderer: CStyleRenderer, kernel) -> str:
    ins = [f"const {renderer.storage_type(op.type.dtype)}* __restrict__ in{i}" for i, op in enumerate(kernel.operands)]
    outs = [f"{renderer.storage_type(o.type.dtype)}* __restrict__ out{k}" for k, o in enumerate(kernel.outputs)]
    return ", ".join(ins + outs)


def base_offsets(geometry: Geometry, n_operands: int, dims: list[int], extra: dict[int, str] | None = None) -> list[str]:
    lines = []
    for t, strides in enumerate(geometry.strides):
        name = f"bi{t}" if t < n_operands else f"bo{t - n_operands}"
        terms = [(f"c{d}", strides[d]) for d in dims] + [(f"({var})", strides[d]) for d, var in (extra or {}).items()]
        lines.append(f"const int64_t {name} = {linear(terms)};")
    return lines


def _all_strides(kernel) -> list[tuple[int, ...]]:
    return [op.strides for op in kernel.operands] + [o.strides for o in kernel.outputs]


def _product(sizes, dims) -> int:
    return math.prod(sizes[d] for d in dims)


# ---- pointwise --------------------------------------------------------------------------------

def vector_width(kernel: PointwiseKernel, requested: int) -> int:
    """The vector width the schedule asks for, if the layout allows it: the inner dim a multiple of
    it and every tensor read or written along the inner dim contiguous with vector-aligned outer
    strides (the launcher still checks the base pointers' alignment at run time)."""
    if requested <= 1:
        return 1
    geometry = _pointwise_geometry(kernel)
    inner = len(geometry.sizes) - 1
    if geometry.sizes[inner] % requested:
        return 1
    for strides in geometry.strides:
        if strides[inner] == 1 and any(s % requested for s in strides[:inner]):
            return 1
    if not any(strides[inner] == 1 for strides in geometry.strides[len(kernel.operands):]):
        return 1   # no output is written contiguously: vectors gain nothing
    return requested


def _pointwise_geometry(kernel: PointwiseKernel) -> Geometry:
    geometry = collapse(kernel.domain, _all_strides(kernel))
    if not geometry.sizes:  # a single element
        geometry = Geometry((1,), tuple((0,) for _ in geometry.strides), None)
    return geometry


def pointwise_context(renderer: CStyleRenderer, name: str, kernel: PointwiseKernel, schedule: PointwiseSchedule) -> dict:
    geometry = _pointwise_geometry(kernel)
    n_ops = len(kernel.operands)
    inner_dim = len(geometry.sizes) - 1
    outer_dims = list(range(inner_dim))
    vec = vector_width(kernel, schedule.vec)
    vec_ops = frozenset(i for i in range(n_ops) if vec > 1 and geometry.strides[i][inner_dim] == 1)
    vec_outs = [k for k in range(len(kernel.outputs)) if vec > 1 and geometry.strides[n_ops + k][inner_dim] == 1]
    spelling = Spelling(renderer, geometry, n_ops, (("j", inner_dim),), vec_ops)
    loads = [f"const akg_vec<{renderer.storage_type(kernel.operands[i].type.dtype)}, {vec}> x{i} = "
             f"*reinterpret_cast<const akg_vec<{renderer.storage_type(kernel.operands[i].type.dtype)}, {vec}>*>"
             f"(in{i} + bi{i} + j0);" for i in sorted(vec_ops)]
    body, stores = [], []
    for k, out in enumerate(kernel.outputs):
        storage = renderer.storage_type(out.type.dtype)
        if k in vec_outs:
            loads.append(f"akg_vec<{storage}, {vec}> y{k};")
            body.append(f"y{k}.v[v] = {spelling.value(out)};")
            stores.append(f"*reinterpret_cast<akg_vec<{storage}, {vec}>*>(out{k} + bo{k} + j0) = y{k};")
        else:
            body += spelling.stores([(k, out)])
    context = {
        "name": name, "params": parameters(renderer, kernel), "inner": geometry.sizes[inner_dim],
        "outer": _product(geometry.sizes, outer_dims), "vec": vec, "threads": schedule.threads,
        "outer_lines": decompose("task", outer_dims, geometry.sizes) + base_offsets(geometry, n_ops, outer_dims),
        "loads": loads, "body": body, "stores": stores,
        "vec_operands": sorted(vec_ops), "vec_outputs": vec_outs,
        # The same kernel without vectors, for base pointers that turn out misaligned at run time.
        "scalar": None,
    }
    if vec > 1:
        context["scalar"] = pointwise_context(renderer, name + "_scalar", kernel, schedule.scalar())
    return context


# ---- reduction --------------------------------------------------------------------------------

def _is_float(renderer: CStyleRenderer, dtype: str) -> bool:
    return renderer.is_float(dtype)


_INT_RANGES = {"int64": (-(2 ** 63), 2 ** 63 - 1), "int32": (-(2 ** 31), 2 ** 31 - 1),
               "int16": (-(2 ** 15), 2 ** 15 - 1), "int8": (-128, 127), "uint8": (0, 255), "bool": (0, 1)}


def _extreme(renderer: CStyleRenderer, dtype: str, lowest: bool) -> str:
    ctype = renderer.compute_type(dtype)
    if _is_float(renderer, dtype):
        return f"(({ctype})({'-' if lowest else ''}AKG_INF))"
    if dtype not in _INT_RANGES:
        raise RenderError(f"no extreme value for {dtype}")
    return renderer.literal(_INT_RANGES[dtype][0 if lowest else 1], dtype)


def accumulator(renderer: CStyleRenderer, op: str, dtype: str) -> tuple[str, str, str]:
    """(accumulator type, identity, combiner struct) for a reduce or scan op over ``dtype``."""
    value_type = renderer.compute_type(dtype)
    if op in ("sum", "prod"):
        # Wide accumulators: float sums of long rows would otherwise lose digits torch keeps.
        # (float where the dialect has no double: Metal)
        wide = "double" if "float64" in renderer.storage_types else "float"
        acc = wide if _is_float(renderer, dtype) else "int64_t"
        return acc, "0" if op == "sum" else "1", "AkgSum" if op == "sum" else "AkgProd"
    if op in ("max", "min", "argmax", "argmin"):
        lowest = op in ("max", "argmax")
        # bool has no warp shuffle: its extremes are kept as int32 (0/1).
        acc = "int32_t" if value_type == "bool" else value_type
        return acc, _extreme(renderer, dtype, lowest), "AkgMax" if lowest else "AkgMin"
    raise RenderError(f"reduce op {op!r} is not supported")


def _stage(renderer: CStyleRenderer, k: int, op: str, value: Expr, spelling: Spelling) -> dict:
    acc_type, init, combiner = accumulator(renderer, op, value.dtype)
    return {"k": k, "op": op, "acc_type": acc_type, "init": init, "combiner": combiner,
            "value_type": renderer.compute_type(value.dtype), "is_arg": op in ("argmax", "argmin"),
            "is_max": op == "argmax", "expr": spelling.expr(value)}


def reduction_geometry(kernel: ReductionKernel) -> Geometry:
    return collapse(kernel.domain, _all_strides(kernel), keep=kernel.reduce_dim)


def column_possible(geometry: Geometry) -> bool:
    """The column variant needs exactly one (merged) dim after the reduce dim."""
    return geometry.keep == len(geometry.sizes) - 2


def split_obstacle(kernel: ReductionKernel) -> str | None:
    if len(kernel.stages) != 1:
        return "the split variant renders single-stage reductions"
    if kernel.stages[0].op not in ("sum", "prod", "max", "min"):
        return "the split variant renders sum, prod, max and min"
    if any(not o.reduced for o in kernel.outputs):
        return "the split variant renders reductions without full-size outputs"
    return None


def reduction_context(renderer: CStyleRenderer, name: str, kernel: ReductionKernel, schedule: ReductionSchedule) -> dict:
    geometry = reduction_geometry(kernel)
    keep, n_ops = geometry.keep, len(kernel.operands)
    reduced = [(k, o) for k, o in enumerate(kernel.outputs) if o.reduced]
    full = [(k, o) for k, o in enumerate(kernel.outputs) if not o.reduced]
    context = {"name": name, "params": parameters(renderer, kernel), "reduce_size": geometry.sizes[keep],
               "variant": schedule.variant, "threads": schedule.threads, "split": schedule.split}
    if schedule.variant == "column":
        if not column_possible(geometry):
            raise RenderError("the column variant needs the reduce dim followed by one mergeable inner dim")
        inner_dim, outer_dims = keep + 1, list(range(keep))
        spelling = Spelling(renderer, geometry, n_ops, (("rr", keep),))
        reduced_spelling = Spelling(renderer, geometry, n_ops, ())
        context.update(inner=geometry.sizes[inner_dim], outer=_product(geometry.sizes, outer_dims),
                       offset_lines=decompose("task", outer_dims, geometry.sizes)
                       + base_offsets(geometry, n_ops, outer_dims, extra={inner_dim: "i0"}))
    else:
        if schedule.variant == "split":
            obstacle = split_obstacle(kernel)
            if obstacle:
                raise RenderError(obstacle)
        row_dims = [d for d in range(len(geometry.sizes)) if d != keep]
        spelling = Spelling(renderer, geometry, n_ops, (("rr", keep),))
        reduced_spelling = Spelling(renderer, geometry, n_ops, ())
        context.update(rows=_product(geometry.sizes, row_dims),
                       offset_lines=decompose("row", row_dims, geometry.sizes) + base_offsets(geometry, n_ops, row_dims))
    context["stages"] = [_stage(renderer, k, st.op, st.expr, spelling) for k, st in enumerate(kernel.stages)]
    context["reduced_outputs_body"] = reduced_spelling.stores(reduced)
    context["full_outputs_body"] = spelling.stores(full)
    return context


# ---- scan -------------------------------------------------------------------------------------

def scan_geometry(kernel: ScanKernel) -> Geometry:
    return collapse(kernel.domain, _all_strides(kernel), keep=kernel.scan_dim)


def scan_context(renderer: CStyleRenderer, name: str, kernel: ScanKernel, schedule: ScanSchedule) -> dict:
    geometry = scan_geometry(kernel)
    keep, n_ops = geometry.keep, len(kernel.operands)
    acc_type, init, combiner = accumulator(renderer, kernel.op, kernel.expr.dtype)
    context = {"name": name, "params": parameters(renderer, kernel), "scan_size": geometry.sizes[keep],
               "variant": schedule.variant, "threads": schedule.threads, "acc_type": acc_type, "init": init,
               "combiner": combiner, "value_type": renderer.compute_type(kernel.expr.dtype)}
    if schedule.variant == "column":
        if not column_possible(geometry):
            raise RenderError("the column variant needs the scan dim followed by one mergeable inner dim")
        inner_dim, outer_dims = keep + 1, list(range(keep))
        context.update(inner=geometry.sizes[inner_dim], outer=_product(geometry.sizes, outer_dims),
                       offset_lines=decompose("task", outer_dims, geometry.sizes)
                       + base_offsets(geometry, n_ops, outer_dims, extra={inner_dim: "i0"}))
    else:
        row_dims = [d for d in range(len(geometry.sizes)) if d != keep]
        context.update(rows=_product(geometry.sizes, row_dims),
                       offset_lines=decompose("row", row_dims, geometry.sizes) + base_offsets(geometry, n_ops, row_dims))
    spelling = Spelling(renderer, geometry, n_ops, (("rr", keep),))
    context["expr"] = spelling.expr(kernel.expr)
    context["outputs_body"] = spelling.stores(list(enumerate(kernel.outputs)))
    return context
