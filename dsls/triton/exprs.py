"""Render akg scalar expression trees (ir.Expr) as Triton tensor expressions.

Triton's own op table: each ir op maps to a tl.* / libdevice spelling. Half-precision inputs of
transcendental functions are computed in fp32 and rounded back to the node's dtype, which matches
what eager PyTorch does per op. Leaves (loads, stage results, the reduce index, the accumulator) are
named by the caller, because each template knows where its values live.
"""
from __future__ import annotations

import math
from typing import Callable

from akg.ir import Acc, Call, Const, Expr, FLOAT_DTYPES, Load, RIndex, StageRef
from akg.targets import RenderError

TL_DTYPES = {
    "float64": "tl.float64", "float32": "tl.float32", "float16": "tl.float16", "bfloat16": "tl.bfloat16",
    "int64": "tl.int64", "int32": "tl.int32", "int16": "tl.int16", "int8": "tl.int8", "uint8": "tl.uint8",
    "bool": "tl.int1",
}

_INFIX = {"add": "+", "sub": "-", "mul": "*", "lt": "<", "le": "<=", "gt": ">", "ge": ">=",
          "eq": "==", "ne": "!=", "and": "&", "or": "|", "xor": "^"}

# Functions that only take fp32/fp64 arguments in Triton; half inputs are upcast around them.
_FLOAT_FUNCS = {
    "exp": "tl.exp", "exp2": "tl.exp2", "log": "tl.log", "log2": "tl.log2", "sqrt": "tl.sqrt_rn",
    "rsqrt": "tl.rsqrt", "sin": "tl.sin", "cos": "tl.cos", "erf": "tl.erf", "floor": "tl.floor",
    "ceil": "tl.ceil", "sigmoid": "_akg_sigmoid",
    "tan": "libdevice.tan", "tanh": "libdevice.tanh", "expm1": "libdevice.expm1", "log1p": "libdevice.log1p",
    "asin": "libdevice.asin", "acos": "libdevice.acos", "atan": "libdevice.atan",
    "sinh": "libdevice.sinh", "cosh": "libdevice.cosh", "asinh": "libdevice.asinh",
    "acosh": "libdevice.acosh", "atanh": "libdevice.atanh", "round": "libdevice.nearbyint",
    "trunc": "libdevice.trunc", "atan2": "libdevice.atan2", "pow": "libdevice.pow",
}
# Triton's interpreter has no libdevice: these are spelled with tl.* primitives there (helpers in
# INTERPRETER_HELPERS). Ops missing from both tables render only for the GPU.
_INTERPRETER_FUNCS = {
    "tanh": "_akg_tanh", "tan": "_akg_tan", "expm1": "_akg_expm1", "log1p": "_akg_log1p",
    "sinh": "_akg_sinh", "cosh": "_akg_cosh", "asinh": "_akg_asinh", "acosh": "_akg_acosh",
    "atanh": "_akg_atanh", "round": "_akg_round_half_even", "trunc": "_akg_trunc", "pow": "_akg_pow",
}

LeafNamer = Callable[[Expr], str]


def tl_dtype(dtype: str) -> str:
    return TL_DTYPES[dtype]


def literal(value, dtype: str) -> str:
    """A Python literal Triton accepts inside @triton.jit code."""
    if dtype == "bool":
        return "True" if value else "False"
    if dtype in FLOAT_DTYPES:
        value = float(value)
        if math.isnan(value):
            return 'float("nan")'
        if math.isinf(value):
            return 'float("inf")' if value > 0 else 'float("-inf")'
        return repr(value)
    return repr(int(value))


class ExprRenderer:
    """Turns one expression tree into Triton source text; ``leaf`` names Load/StageRef/RIndex/Acc."""

    def __init__(self, leaf: LeafNamer, interpreter: bool = False):
        self.leaf = leaf
        self.interpreter = interpreter

    def render(self, e: Expr) -> str:
        if isinstance(e, (Load, StageRef, RIndex, Acc)):
            return self.leaf(e)
        if isinstance(e, Const):
            return literal(e.value, e.dtype)
        if isinstance(e, Call):
            return self._call(e)
        raise RenderError(f"cannot render expression node {type(e).__name__}")

    def _arg(self, e: Expr, compute_dtype: str) -> str:
        """An argument, converted when the node computes in a float type the argument lacks."""
        text = self.render(e)
        if compute_dtype in FLOAT_DTYPES and e.dtype not in FLOAT_DTYPES and not isinstance(e, Const):
            return f"{text}.to({tl_dtype(compute_dtype)})"
        return text

    def _call(self, e: Call) -> str:
        op, d = e.op, e.dtype
        if op == "cast":
            return f"{self.render(e.args[0])}.to({tl_dtype(d)})"
        if op == "where":
            c, a, b = e.args
            return f"tl.where({self.render(c)}, {self._arg(a, d)}, {self._arg(b, d)})"
        if op in ("lt", "le", "gt", "ge", "eq", "ne"):
            # Compare in the wider of the two argument types, as torch promotes before comparing.
            a, b = e.args
            common = a.dtype if a.dtype in FLOAT_DTYPES else b.dtype
            return f"({self._arg(a, common)} {_INFIX[op]} {self._arg(b, common)})"
        if op in _INFIX:
            a, b = (self._arg(x, d) for x in e.args)
            return f"({a} {_INFIX[op]} {b})"
        if op == "pow" and self._small_power(e) is not None:
            return self._small_power(e)
        if op in _FLOAT_FUNCS:
            fn = _FLOAT_FUNCS[op]
            if self.interpreter and fn.startswith("libdevice."):
                if op not in _INTERPRETER_FUNCS:
                    raise RenderError(f"op {op!r} needs libdevice, which Triton's interpreter lacks; use --device cuda")
                fn = _INTERPRETER_FUNCS[op]
            return self._float_func(fn, e)
        return self._special(op, e)

    def _small_power(self, e: Call) -> str | None:
        """x**2 and x**3 as products, as ATen computes them: libdevice.pow costs tens of
        instructions per element, enough to slow a memory-bound kernel."""
        base, exponent = e.args
        if not isinstance(exponent, Const) or exponent.value not in (2, 3) or e.dtype not in ("float32", "float64"):
            return None
        x = self._upcast(base, e.dtype)
        return f"({x} * {x})" if exponent.value == 2 else f"({x} * {x} * {x})"

    def _float_func(self, fn: str, e: Call) -> str:
        half = e.dtype in ("float16", "bfloat16")
        compute = "float32" if half or e.dtype not in FLOAT_DTYPES else e.dtype
        args = ", ".join(self._upcast(a, compute) for a in e.args)
        text = f"{fn}({args})"
        return f"{text}.to({tl_dtype(e.dtype)})" if compute != e.dtype else text

    def _upcast(self, a: Expr, compute: str) -> str:
        text = self.render(a)
        if isinstance(a, Const):
            return text
        return text if a.dtype == compute else f"{text}.to({tl_dtype(compute)})"

    def _special(self, op: str, e: Call) -> str:
        d = e.dtype
        args = e.args
        if op == "div":
            if d in FLOAT_DTYPES:
                a, b = (self._arg(x, d) for x in args)
                return f"({a} / {b})"
            return f"_akg_floordiv({self.render(args[0])}, {self.render(args[1])})"
        if op == "floordiv":
            a, b = (self._arg(x, d) for x in args)
            if d in FLOAT_DTYPES:
                return f"tl.floor({a} / {b})"
            return f"_akg_floordiv({a}, {b})"
        if op == "mod":
            a, b = (self._arg(x, d) for x in args)
            if d in FLOAT_DTYPES:
                return f"({a} - tl.floor({a} / {b}) * {b})"
            return f"_akg_mod({a}, {b})"
        if op in ("max", "min"):
            a, b = (self._arg(x, d) for x in args)
            fn = "tl.maximum" if op == "max" else "tl.minimum"
            nan = ", propagate_nan=tl.PropagateNan.ALL" if d in FLOAT_DTYPES else ""
            return f"{fn}({a}, {b}{nan})"
        a = self.render(args[0])
        if op == "neg":
            return f"(-{a})"
        if op == "abs":
            return f"tl.abs({a})"
        if op == "not":
            return f"({a} == 0)"
        if op == "reciprocal":
            return f"(1.0 / {self._arg(args[0], d)})"
        if op == "isnan":
            return f"({a} != {a})"
        if op == "isinf":
            return f'(tl.abs({a}) == float("inf"))'
        if op == "sign":
            one = "1.0" if d in FLOAT_DTYPES else "1"
            zero = "0.0" if d in FLOAT_DTYPES else "0"
            return (f"(tl.where({a} > 0, {one}, {zero}) - tl.where({a} < 0, {one}, {zero}))"
                    f".to({tl_dtype(d)})")
        raise RenderError(f"op {op!r} has no Triton spelling")


PRELUDE_HELPERS = '''
@triton.jit
def _akg_sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))

@triton.jit
def _akg_floordiv(a, b):
    # Python/torch floor division; Triton's // truncates toward zero like C.
    q = a // b
    return q - ((a % b != 0) & ((a < 0) != (b < 0))).to(q.dtype)


@triton.jit
def _akg_mod(a, b):
    r = a % b
    return r + tl.where((r != 0) & ((r < 0) != (b < 0)), b, 0)
'''


INTERPRETER_HELPERS = '''
@triton.jit
def _akg_tanh(x):
    t = tl.exp(-2.0 * tl.abs(x))
    r = (1.0 - t) / (1.0 + t)
    return tl.where(x < 0, -r, r)


@triton.jit
def _akg_tan(x):
    return tl.sin(x) / tl.cos(x)


@triton.jit
def _akg_expm1(x):
    return tl.exp(x) - 1.0


@triton.jit
def _akg_log1p(x):
    return tl.log(1.0 + x)


@triton.jit
def _akg_sinh(x):
    return 0.5 * (tl.exp(x) - tl.exp(-x))


@triton.jit
def _akg_cosh(x):
    return 0.5 * (tl.exp(x) + tl.exp(-x))


@triton.jit
def _akg_asinh(x):
    return tl.log(x + tl.sqrt(x * x + 1.0))


@triton.jit
def _akg_acosh(x):
    return tl.log(x + tl.sqrt(x * x - 1.0))


@triton.jit
def _akg_atanh(x):
    return 0.5 * tl.log((1.0 + x) / (1.0 - x))


@triton.jit
def _akg_trunc(x):
    return tl.where(x < 0, tl.ceil(x), tl.floor(x))


@triton.jit
def _akg_round_half_even(x):
    r = tl.floor(x)
    d = x - r
    odd = (r - 2.0 * tl.floor(r * 0.5)) != 0
    return tl.where(d > 0.5, r + 1.0, tl.where(d < 0.5, r, tl.where(odd, r + 1.0, r)))


@triton.jit
def _akg_pow(a, b):
    # Negative bases only have real powers for integral exponents; the sign follows b's parity.
    mag = tl.exp(b * tl.log(tl.abs(a)))
    odd = (b - 2.0 * tl.floor(b * 0.5)) == 1.0
    mag = tl.where((a < 0) & odd, -mag, mag)
    mag = tl.where((a < 0) & (b != tl.floor(b)), float("nan"), mag)
    return tl.where(b == 0, 1.0, mag)
'''
