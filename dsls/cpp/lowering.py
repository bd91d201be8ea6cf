"""Lower one fused group (a kernel spec + schedule) to the context its C++ template needs.

The templates own the loop structure; this module owns the facts that vary: collapsed geometry,
parameter lists, per-tensor offsets, and every expression spelled for the loop it sits in.
"""
from __future__ import annotations

from dataclasses import dataclass

from akg.ir import (Acc, Call, Const, Expr, FusedGroup, Load, Output, PointwiseKernel, PoolKernel, RIndex,
                    ReductionKernel, ScanKernel, StageRef, walk)
from akg.targets import RenderError

from .geometry import Geometry, collapse, decompose, linear
from .exprs import CppRenderer

RENDERER = CppRenderer()


class IdentityNames:
    """Expression -> local variable name, looked up by object identity (see shared_subexpressions)."""

    def __init__(self) -> None:
        self._names: dict[int, tuple[Expr, str]] = {}   # the Expr is kept so its id stays unique

    def add(self, expr: Expr, name: str) -> None:
        self._names[id(expr)] = (expr, name)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, expr: Expr) -> bool:
        return id(expr) in self._names

    def __getitem__(self, expr: Expr) -> str:
        return self._names[id(expr)][1]


@dataclass(frozen=True)
class Spelling:
    """How leaves read inside one loop nest: loop variable -> collapsed dim it walks."""
    geometry: Geometry
    n_operands: int
    loop_vars: tuple[tuple[str, int], ...]
    stage_suffix: str = ""          # "[l]" where stage results are per-lane arrays

    def offset(self, tensor: int) -> str:
        base = f"bi{tensor}" if tensor < self.n_operands else f"bo{tensor - self.n_operands}"
        strides = self.geometry.strides[tensor]
        rest = linear([(var, strides[dim]) for var, dim in self.loop_vars])
        return base if rest == "0" else f"{base} + {rest}"

    def leaf(self, expr: Expr) -> str:
        if isinstance(expr, Load):
            if expr.operand >= self.n_operands:  # a value this kernel stored in its own output
                return f"out{expr.operand - self.n_operands}[{self.offset(expr.operand)}]"
            element = f"in{expr.operand}[{self.offset(expr.operand)}]"
            if RENDERER.compute_type(expr.dtype) == RENDERER.storage_type(expr.dtype):
                return element
            return f"(({RENDERER.compute_type(expr.dtype)}){element})"
        if isinstance(expr, StageRef):
            return f"s{expr.stage}{self.stage_suffix}" if expr.part == "value" else f"si{expr.stage}{self.stage_suffix}"
        if isinstance(expr, RIndex):
            return "rr"
        raise RenderError(f"{type(expr).__name__} cannot appear in this kernel family")

    def expr(self, expr: Expr, names: "IdentityNames | None" = None) -> str:
        return RENDERER.render(expr, self.leaf, names)

    def stores(self, outputs: list[tuple[int, Output]], prefix: str = "t") -> list[str]:
        """Store lines for ``outputs``, preceded by one local per sub-expression used more than
        once: traced graphs share values (x feeds several ops of a chain), and spelling each use
        in full grows the text exponentially with the chain and keeps gcc from vectorising it."""
        names = IdentityNames()
        lines = []
        for sub in shared_subexpressions([out.expr for _, out in outputs]):
            name = f"akg_{prefix}{len(names)}"
            lines.append(f"const {RENDERER.compute_type(sub.dtype)} {name} = {self.expr(sub, names)};")
            names.add(sub, name)
        for k, out in outputs:
            value = RENDERER.convert(self.expr(out.expr, names), out.expr.dtype, out.type.dtype)
            lines.append(f"out{k}[{self.offset(self.n_operands + k)}] = {value};")
        return lines


def shared_subexpressions(exprs: list[Expr]) -> list[Expr]:
    """Calls that occur more than once across ``exprs``, children before parents. Keyed by
    identity: a traced chain shares its nodes, and structural hashing of a shared DAG costs time
    exponential in its depth."""
    counts: dict[int, int] = {}
    order: list[Expr] = []

    def visit(e: Expr) -> None:
        if not isinstance(e, Call):
            return
        seen = counts.get(id(e), 0)
        counts[id(e)] = seen + 1
        if seen:   # its children were counted under its first occurrence
            return
        for a in e.args:
            visit(a)
        order.append(e)

    for e in exprs:
        visit(e)
    return [e for e in order if counts[id(e)] > 1]


def parameters(kernel) -> str:
    ins = [f"const {RENDERER.storage_type(op.type.dtype)}* __restrict in{i}" for i, op in enumerate(kernel.operands)]
    outs = [f"{RENDERER.storage_type(o.type.dtype)}* __restrict out{k}" for k, o in enumerate(kernel.outputs)]
    return ", ".join(ins + outs)


def base_offsets(geometry: Geometry, n_operands: int, dims: list[int], extra: dict[int, str] | None = None) -> list[str]:
    """``const int64_t bi*/bo* = ...`` for every tensor at coordinates c{d} (plus ``extra`` dims
    whose coordinate is a named C expression)."""
    lines = []
    for t, strides in enumerate(geometry.strides):
        name = f"bi{t}" if t < n_operands else f"bo{t - n_operands}"
        terms = [(f"c{d}", strides[d]) for d in dims] + [(f"({var})", strides[d]) for d, var in (extra or {}).items()]
        lines.append(f"const int64_t {name} = {linear(terms)};")
    return lines


def _all_strides(kernel) -> list[tuple[int, ...]]:
    return [op.strides for op in kernel.operands] + [o.strides for o in kernel.outputs]


# ---- pointwise --------------------------------------------------------------------------------

def pointwise_context(name: str, kernel: PointwiseKernel) -> dict:
    geometry = collapse(kernel.domain, _all_strides(kernel))
    if not geometry.sizes:  # a single element
        geometry = Geometry((1,), tuple((0,) for _ in geometry.strides), None)
    inner_dim = len(geometry.sizes) - 1
    outer_dims = list(range(inner_dim))
    spelling = Spelling(geometry, len(kernel.operands), (("j", inner_dim),))
    outer = 1
    for d in outer_dims:
        outer *= geometry.sizes[d]
    return {
        "name": name,
        "params": parameters(kernel),
        "inner": geometry.sizes[inner_dim],
        "outer": outer,
        "outer_lines": decompose("task / nblocks", outer_dims, geometry.sizes)
        + base_offsets(geometry, len(kernel.operands), outer_dims),
        "body": spelling.stores(list(enumerate(kernel.outputs))),
    }


# ---- reduction --------------------------------------------------------------------------------

def _is_float(dtype: str) -> bool:
    return RENDERER.is_float(dtype)


def _limits(dtype: str, lowest: bool) -> str:
    ctype = RENDERER.compute_type(dtype)
    if _is_float(dtype):
        return f"(({ctype})({'-' if lowest else ''}INFINITY))"
    return f"std::numeric_limits<{ctype}>::{'lowest' if lowest else 'max'}()"


_WIDENED = ("add", "sub", "mul", "neg", "where")


def _cancels(expr: Expr) -> bool:
    """A sum or difference of two non-constant terms at the top of ``expr`` (through products,
    negations and selects): summed over a row, its rounding errors add up while the terms cancel."""
    if not isinstance(expr, Call) or expr.op not in _WIDENED:
        return False
    if expr.op in ("add", "sub") and not any(isinstance(a, Const) for a in expr.args):
        return True
    return any(_cancels(a) for a in expr.args[1 if expr.op == "where" else 0:])


def _widened(expr: Expr) -> Expr:
    """``expr`` with its top arithmetic (products, sums, negations, selects) in double: float
    products are then exact and only the function values (log, exp) keep float rounding."""
    if not isinstance(expr, Call) or expr.op not in _WIDENED or expr.dtype != "float32":
        return expr
    first = 1 if expr.op == "where" else 0
    return Call(expr.op, expr.args[:first] + tuple(_widened(a) for a in expr.args[first:]), "float64")


def _stage_context(k: int, op: str, value: Expr, spelling: Spelling) -> dict:
    dtype = value.dtype
    var_type = value_type = RENDERER.compute_type(dtype)
    if op == "sum" and dtype == "float32" and _cancels(value):
        # KL divergence's t*log(t) - t*log(p): each float product rounds by half an ulp of
        # itself while their difference is tiny, and over a long row those errors dominate.
        value, value_type = _widened(value), "double"
    acc, ai = f"a{k}[l]", f"ai{k}[l]"
    is_arg = op in ("argmax", "argmin")
    lane_type = None
    if op in ("sum", "prod"):
        # Wide accumulators: float sums of long rows would otherwise lose digits torch keeps.
        acc_type = "double" if _is_float(dtype) else "int64_t"
        if op == "sum" and value_type == "float":
            # Float lanes inside short blocks keep the loop at full SIMD width; each block's
            # lanes are folded into the double total, so error grows with the block, not the row.
            lane_type = "float"
        symbol = "+" if op == "sum" else "*"
        init = "0" if op == "sum" else "1"
        update = f"{acc} {symbol}= v;"
        fold = f"best {symbol}= a{k}[l];"
        chunk_fold = f"best {symbol}= part[c];"
    elif op in ("max", "min"):
        acc_type = value_type
        cmp = ">" if op == "max" else "<"
        init = _limits(dtype, lowest=op == "max")
        update = f"{acc} = (v != v || v {cmp} {acc}) ? v : {acc};"
        fold = f"best = akg_{op}(best, a{k}[l]);"
        chunk_fold = "best = akg_%s(best, part[c]);" % op
    elif is_arg:
        acc_type = value_type
        cmp = ">" if op == "argmax" else "<"
        init = _limits(dtype, lowest=op == "argmax")
        update = (f"{{ const bool take = {ai} < 0 || v {cmp} {acc} || (v != v && {acc} == {acc}); "
                  f"{acc} = take ? v : {acc}; {ai} = take ? rr : {ai}; }}")
        better = f"akg_{op}_better"
        fold = (f"if (ai{k}[l] >= 0 && (best_i < 0 || {better}(a{k}[l], ai{k}[l], best, best_i))) "
                f"{{ best = a{k}[l]; best_i = ai{k}[l]; }}")
        chunk_fold = (f"if (part_i[c] >= 0 && (best_i < 0 || {better}(part[c], part_i[c], best, best_i))) "
                      f"{{ best = part[c]; best_i = part_i[c]; }}")
    else:
        raise RenderError(f"reduce op {op!r} is not supported by the cpp DSL")
    return {"k": k, "acc_type": acc_type, "value_type": value_type, "var_type": var_type,
            "init": init, "step": update, "fold": fold, "chunk_fold": chunk_fold,
            "is_arg": is_arg, "expr": spelling.expr(value), "lane_type": lane_type or acc_type,
            "blocked": lane_type is not None, "store": "", "pick": None}


def _row_invariant(expr: Expr, geometry: Geometry, n_operands: int) -> bool:
    """``expr`` has one value per row: no reduce index, and every load has stride 0 on the reduce dim."""
    return not any(isinstance(e, RIndex) or (isinstance(e, Load) and geometry.strides[e.operand][geometry.keep] != 0)
                   for e in walk(expr))


def _pick_one(st: dict, stage, geometry: Geometry, spelling: Spelling) -> None:
    """A sum of ``where(rr == i, v, 0)`` with ``i`` fixed per row (a gather written as a one-hot
    sum: the target's logit in cross entropy) reads the one element at ``i`` instead of the whole
    row. Every other term is an exact zero, so the sum is ``0 + v`` (or 0 when ``i`` is outside
    the row), as the full loop would give."""
    expr = stage.expr
    if stage.op != "sum" or not (isinstance(expr, Call) and expr.op == "where" and len(expr.args) == 3):
        return
    cond, value, other = expr.args
    if not (isinstance(other, Const) and other.value == 0 and isinstance(cond, Call) and cond.op == "eq"):
        return
    a, b = cond.args
    index = b if isinstance(a, RIndex) else a if isinstance(b, RIndex) else None
    if index is None or index.dtype not in ("int64", "int32") or not _row_invariant(index, geometry, spelling.n_operands):
        return
    st["pick"] = {"index": spelling.expr(index), "expr": spelling.expr(value)}


def reduction_geometry(kernel: ReductionKernel) -> Geometry:
    return collapse(kernel.domain, _all_strides(kernel), keep=kernel.reduce_dim)


def column_possible(geometry: Geometry) -> bool:
    """The column variant needs exactly one (merged) dim after the reduce dim."""
    return geometry.keep == len(geometry.sizes) - 2


def reduction_context(name: str, kernel: ReductionKernel, variant: str, lanes: int, block: int) -> dict:
    geometry = reduction_geometry(kernel)
    keep, n_ops = geometry.keep, len(kernel.operands)
    reduced = [(k, o) for k, o in enumerate(kernel.outputs) if o.reduced]
    full = [(k, o) for k, o in enumerate(kernel.outputs) if not o.reduced]
    context = {"name": name, "params": parameters(kernel), "reduce_size": geometry.sizes[keep],
               "variant": variant, "lanes": lanes, "block": block}
    if variant == "column":
        if not column_possible(geometry):
            raise RenderError("the column variant needs the reduce dim followed by one mergeable inner dim")
        inner_dim, outer_dims = keep + 1, list(range(keep))
        spelling = Spelling(geometry, n_ops, (("rr", keep), ("l", inner_dim)), stage_suffix="[l]")
        reduced_spelling = Spelling(geometry, n_ops, (("l", inner_dim),), stage_suffix="[l]")
        context.update(
            inner=geometry.sizes[inner_dim], outer=_product(geometry.sizes, outer_dims),
            offset_lines=decompose("task / nblocks", outer_dims, geometry.sizes)
            + base_offsets(geometry, n_ops, outer_dims, extra={inner_dim: "i0"}))
    else:
        row_dims = [d for d in range(len(geometry.sizes)) if d != keep]
        spelling = Spelling(geometry, n_ops, (("rr", keep),))
        reduced_spelling = Spelling(geometry, n_ops, ())
        context.update(rows=_product(geometry.sizes, row_dims),
                       offset_lines=decompose("row", row_dims, geometry.sizes)
                       + base_offsets(geometry, n_ops, row_dims))
    context["stages"] = [_stage_context(k, st.op, st.expr, spelling) for k, st in enumerate(kernel.stages)]
    if variant != "column":
        for st, stage in zip(context["stages"], kernel.stages):
            _pick_one(st, stage, geometry, spelling)
        full = _reuse_stage_values(kernel, full, context["stages"], spelling)
    context["reduced_outputs_body"] = reduced_spelling.stores(reduced, prefix="r")
    context["full_outputs_body"] = spelling.stores(full, prefix="f")
    return context


def _replace(expr: Expr, old: Expr, new: Expr) -> Expr:
    if expr == old:
        return new
    if isinstance(expr, Call):
        return Call(expr.op, tuple(_replace(a, old, new) for a in expr.args), expr.dtype)
    return expr


def _contains(expr: Expr, sub: Expr) -> bool:
    return expr == sub or (isinstance(expr, Call) and any(_contains(a, sub) for a in expr.args))


def _reuse_stage_values(kernel: ReductionKernel, full: list[tuple[int, Output]], stages: list[dict],
                        spelling: Spelling) -> list[tuple[int, Output]]:
    """Softmax-like kernels: where a full output's expression contains a stage's per-element
    expression (exp(x - max) in softmax), the stage loop stores those values into that output and
    the output loop reads them back, so the expensive part is computed once per element."""
    n_ops = len(kernel.operands)
    taken: set[int] = set()
    result = list(full)
    for k_stage in reversed(range(len(kernel.stages))):
        value = kernel.stages[k_stage].expr
        if stages[k_stage]["pick"]:   # the stage reads one element of the row, not all of them
            continue
        if not isinstance(value, Call) or not _is_float(value.dtype):
            continue
        for pos, (k, out) in enumerate(result):
            if k in taken or out.type.dtype != value.dtype:
                continue
            if RENDERER.compute_type(out.type.dtype) != RENDERER.storage_type(out.type.dtype):
                continue
            if not _contains(out.expr, value) or out.expr == value:
                continue
            stored = Load(n_ops + k, value.dtype)
            result[pos] = (k, Output(out.value, _replace(out.expr, value, stored), out.type, out.strides,
                                     out.reduced))
            stages[k_stage]["store"] = f"out{k}[{spelling.offset(n_ops + k)}] = v;"
            taken.add(k)
            break
    return result


def _product(sizes: tuple[int, ...], dims: list[int]) -> int:
    result = 1
    for d in dims:
        result *= sizes[d]
    return result


# ---- scan -------------------------------------------------------------------------------------

def scan_geometry(kernel: ScanKernel) -> Geometry:
    return collapse(kernel.domain, _all_strides(kernel), keep=kernel.scan_dim)


def scan_context(name: str, kernel: ScanKernel, variant: str, block: int) -> dict:
    geometry = scan_geometry(kernel)
    keep, n_ops = geometry.keep, len(kernel.operands)
    dtype = kernel.expr.dtype
    value_type = RENDERER.compute_type(dtype)
    if kernel.op in ("sum", "prod"):
        acc_type = "double" if _is_float(dtype) else "int64_t"
        init = "0" if kernel.op == "sum" else "1"
        combine = f"a[l] {'+' if kernel.op == 'sum' else '*'} v"
    else:
        acc_type = value_type
        init = _limits(dtype, lowest=kernel.op == "max")
        combine = f"akg_{kernel.op}(a[l], v)"
    context = {"name": name, "params": parameters(kernel), "scan_size": geometry.sizes[keep],
               "variant": variant, "block": block, "acc_type": acc_type, "value_type": value_type,
               "var_type": value_type, "init": init, "combine": combine}
    if variant == "column":
        if not column_possible(geometry):
            raise RenderError("the column variant needs the scan dim followed by one mergeable inner dim")
        inner_dim, outer_dims = keep + 1, list(range(keep))
        spelling = Spelling(geometry, n_ops, (("rr", keep), ("l", inner_dim)))
        context.update(inner=geometry.sizes[inner_dim], outer=_product(geometry.sizes, outer_dims),
                       offset_lines=decompose("task / nblocks", outer_dims, geometry.sizes)
                       + base_offsets(geometry, n_ops, outer_dims, extra={inner_dim: "i0"}))
    else:
        row_dims = [d for d in range(len(geometry.sizes)) if d != keep]
        spelling = Spelling(geometry, n_ops, (("rr", keep),))
        context.update(rows=_product(geometry.sizes, row_dims),
                       offset_lines=decompose("row", row_dims, geometry.sizes)
                       + base_offsets(geometry, n_ops, row_dims))
    context["expr"] = spelling.expr(kernel.expr)
    context["outputs_body"] = spelling.stores(list(enumerate(kernel.outputs)))
    return context


# ---- pool -------------------------------------------------------------------------------------

# Each task keeps one output row of accumulators on its stack.
MAX_POOL_ROW = 1 << 16


@dataclass(frozen=True)
class PoolSpelling(Spelling):
    """Epilogue spelling of a pool kernel: ``Acc()`` is the pooled value of the column."""

    def leaf(self, expr: Expr) -> str:
        if isinstance(expr, Acc):
            return "acc"
        return super().leaf(expr)


def interior_columns(size: int, out: int, kernel: int, stride: int, padding: int, dilation: int) -> tuple[int, int]:
    """[lo, hi): the output columns whose whole window lies inside an input of ``size``."""
    lo = min(out, -(-padding // stride))
    hi = (size - 1 + padding - (kernel - 1) * dilation) // stride + 1
    return lo, max(lo, min(out, hi))


def pool_context(name: str, kernel: PoolKernel, block: int) -> dict:
    n, c, oh, ow = kernel.out_shape
    in_dtype = kernel.input.type.dtype
    if len(kernel.input_shape) != 4 or len(kernel.input.strides) != 4:
        raise RenderError("pool kernels read a 4-d NCHW input")
    if not _is_float(in_dtype):
        raise RenderError(f"the cpp pool kernel pools floating-point inputs, not {in_dtype}")
    if ow > MAX_POOL_ROW:
        raise RenderError(f"output rows of {ow} elements exceed the kernel's row buffer ({MAX_POOL_ROW})")
    h, w = kernel.input_shape[2], kernel.input_shape[3]
    sn, sc, sh, sw = kernel.input.strides
    (kh, kw), (s_h, s_w), (ph, pw), (dh, dw) = kernel.kernel, kernel.stride, kernel.padding, kernel.dilation
    acc_type = RENDERER.compute_type(in_dtype)
    if kernel.op == "max":
        init = _limits(in_dtype, lowest=True)
        update = "buf[c3] = (v != v || v > buf[c3]) ? v : buf[c3];"
    else:
        init, update = "0", "buf[c3] += v;"
    w_lo, w_hi = interior_columns(w, ow, kw, s_w, pw, dw)
    geometry = Geometry(tuple(kernel.out_shape), tuple(_all_strides(kernel)), None)
    spelling = PoolSpelling(geometry, len(kernel.operands), (("c3", 3),))
    params = parameters(kernel)
    return {
        "name": name, "params": params, "in_type": RENDERER.storage_type(in_dtype), "acc_type": acc_type,
        "N": n, "C": c, "OH": oh, "OW": ow, "H": h, "W": w, "sN": sn, "sC": sc, "sH": sh, "sW": sw,
        "KH": kh, "KW": kw, "SH": s_h, "SW": s_w, "PH": ph, "PW": pw, "DH": dh, "DW": dw,
        "w_lo": w_lo, "w_hi": w_hi, "block": max(1, min(block, oh)), "op": kernel.op, "init": init,
        "update": update, "count_include_pad": kernel.count_include_pad, "divisor": kernel.divisor_override,
        "offset_lines": base_offsets(geometry, len(kernel.operands), [0, 1, 2]),
        "body": spelling.stores(list(enumerate(kernel.outputs))),
    }
