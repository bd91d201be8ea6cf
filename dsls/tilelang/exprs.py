"""Render akg scalar expression trees (ir.Expr) as TileLang (TVM script) expressions.

TileLang's op table: each ir op maps to a ``T.*`` intrinsic or a Python operator on PrimExprs.
TVM wants both sides of a binary op in one dtype, so arguments are cast to the node's dtype;
half-precision inputs of transcendental functions are computed in fp32 and rounded back, as eager
PyTorch does per op. Leaves (loads, stage results, the reduce index, the accumulator) are named by
the caller, because each template knows where its values live.
"""
from __future__ import annotations

import math
from typing import Callable

from akg.ir import Acc, Call, Const, Expr, FLOAT_DTYPES, Load, RIndex, StageRef
from akg.targets import RenderError

# The dtype strings TileLang takes are numpy/torch names, except bool.
def tl_dtype(dtype: str) -> str:
    return repr(dtype)


_INFIX = {"add": "+", "sub": "-", "mul": "*", "lt": "<", "le": "<=", "gt": ">", "ge": ">=",
          "eq": "==", "ne": "!="}
_LOGICAL = {"and": "&", "or": "|", "xor": "^"}

# Float-only intrinsics: half inputs are upcast around them.
_FLOAT_FUNCS = {
    "exp": "T.exp", "exp2": "T.exp2", "log": "T.log", "log2": "T.log2", "log1p": "T.log1p",
    "sqrt": "T.sqrt", "rsqrt": "T.rsqrt", "sin": "T.sin", "cos": "T.cos", "tan": "T.tan", "tanh": "T.tanh",
    "asin": "T.asin", "acos": "T.acos", "atan": "T.atan", "sinh": "T.sinh", "cosh": "T.cosh",
    "asinh": "T.asinh", "acosh": "T.acosh", "atanh": "T.atanh", "erf": "T.erf", "floor": "T.floor",
    "ceil": "T.ceil", "trunc": "T.trunc", "round": "T.nearbyint", "sigmoid": "T.sigmoid",
    "pow": "T.pow", "atan2": "T.atan2",
}

LeafNamer = Callable[[Expr], str]


def literal(value, dtype: str) -> str:
    """A typed constant: TVM would otherwise guess int32/float32 for a bare Python literal."""
    if dtype == "bool":
        return "True" if value else "False"
    if dtype in FLOAT_DTYPES:
        value = float(value)
        if math.isnan(value):
            return f'T.cast(float("nan"), {tl_dtype(dtype)})'
        if math.isinf(value):
            return f"T.infinity({tl_dtype(dtype)})" if value > 0 else f"-T.infinity({tl_dtype(dtype)})"
        return f"T.cast({value!r}, {tl_dtype(dtype)})"
    return f"T.cast({int(value)}, {tl_dtype(dtype)})"


class ExprRenderer:
    """Turns one expression tree into TileLang source text; ``leaf`` names Load/StageRef/RIndex/Acc
    (already in the leaf's own dtype)."""

    def __init__(self, leaf: LeafNamer, portable: bool = False):
        self.leaf = leaf
        self.portable = portable   # spell only what TileLang's C target lowers (the CPU)

    def render(self, e: Expr) -> str:
        if isinstance(e, (Load, StageRef, RIndex, Acc)):
            return self.leaf(e)
        if isinstance(e, Const):
            return literal(e.value, e.dtype)
        if isinstance(e, Call):
            return self._call(e)
        raise RenderError(f"cannot render expression node {type(e).__name__}")

    def as_dtype(self, e: Expr, dtype: str) -> str:
        """``e`` converted to ``dtype`` (no cast when it already is)."""
        if isinstance(e, Const):
            return literal(e.value, dtype)
        text = self.render(e)
        return text if e.dtype == dtype else f"T.cast({text}, {tl_dtype(dtype)})"

    def _call(self, e: Call) -> str:
        op, d = e.op, e.dtype
        if op == "cast":
            return self.as_dtype(e.args[0], d)
        if op == "where":
            c, a, b = e.args
            return f"T.if_then_else({self.as_dtype(c, 'bool')}, {self.as_dtype(a, d)}, {self.as_dtype(b, d)})"
        if op in ("lt", "le", "gt", "ge", "eq", "ne"):
            # Compare in the wider of the two argument types, as torch promotes before comparing.
            a, b = e.args
            common = a.dtype if a.dtype in FLOAT_DTYPES else b.dtype
            return f"({self.as_dtype(a, common)} {_INFIX[op]} {self.as_dtype(b, common)})"
        if op in _LOGICAL:
            a, b = (self.as_dtype(x, d) for x in e.args)
            return f"({a} {_LOGICAL[op]} {b})"
        if op in _INFIX:
            a, b = (self.as_dtype(x, d) for x in e.args)
            return f"({a} {_INFIX[op]} {b})"
        if op == "pow" and self._small_power(e) is not None:
            return self._small_power(e)
        if op in _FLOAT_FUNCS:
            return self._float_func(_FLOAT_FUNCS[op], e)
        return self._special(op, e)

    def _small_power(self, e: Call) -> str | None:
        """x**2 and x**3 as products, as ATen computes them."""
        base, exponent = e.args
        if not isinstance(exponent, Const) or exponent.value not in (2, 3) or e.dtype not in FLOAT_DTYPES:
            return None
        x = self.as_dtype(base, e.dtype)
        return f"({x} * {x})" if exponent.value == 2 else f"({x} * {x} * {x})"

    def _float_func(self, fn: str, e: Call) -> str:
        compute = e.dtype if e.dtype in ("float32", "float64") else "float32"
        text = f"{fn}({', '.join(self.as_dtype(a, compute) for a in e.args)})"
        return text if compute == e.dtype else f"T.cast({text}, {tl_dtype(e.dtype)})"

    def _special(self, op: str, e: Call) -> str:
        d, args = e.dtype, e.args
        if op == "div":
            a, b = (self.as_dtype(x, d) for x in args)
            return f"({a} / {b})" if d in FLOAT_DTYPES else f"T.floordiv({a}, {b})"
        if op == "floordiv":
            a, b = (self.as_dtype(x, d) for x in args)
            return f"T.floor({a} / {b})" if d in FLOAT_DTYPES else f"T.floordiv({a}, {b})"
        if op == "mod":
            a, b = (self.as_dtype(x, d) for x in args)
            return f"({a} - T.floor({a} / {b}) * {b})" if d in FLOAT_DTYPES else f"T.floormod({a}, {b})"
        if op in ("max", "min"):
            a, b = (self.as_dtype(x, d) for x in args)
            return f"T.{op}({a}, {b})"
        a = self.as_dtype(args[0], d) if op not in ("isnan", "isinf", "not") else self.render(args[0])
        if op == "neg":
            return f"(-{a})"
        if op == "abs":
            # T.abs of a float lowers to fabs, which TileLang's C target leaves unresolved.
            zero = literal(0, d)
            return f"T.if_then_else({a} < {zero}, -{a}, {a})" if self.portable else f"T.abs({a})"
        if op == "reciprocal":
            return f"({literal(1, d)} / {a})"
        if op == "expm1":
            # TileLang has no expm1 intrinsic: exp(x) - 1 loses digits only for |x| near 0.
            wide = d if d == "float64" else "float32"
            return f"T.cast(T.exp({self.as_dtype(args[0], wide)}) - {literal(1, wide)}, {tl_dtype(d)})"
        if op == "isnan":
            return f"T.isnan({a})"
        if op == "isinf":
            if self.portable:   # T.isinf lowers through fabs too
                inf = f"T.infinity({tl_dtype(args[0].dtype)})"
                return f"(({a} == {inf}) or ({a} == -{inf}))"
            return f"T.isinf({a})"
        if op == "not":
            return f"({self.as_dtype(args[0], 'bool')} == False)"
        if op == "sign":
            one, zero = literal(1, d), literal(0, d)
            return f"(T.if_then_else({a} > {zero}, {one}, {zero}) - T.if_then_else({a} < {zero}, {one}, {zero}))"
        raise RenderError(f"op {op!r} has no TileLang spelling")
