"""Scalar expressions for akg pointwise nodes, with explicit casts where dtypes meet."""
from __future__ import annotations

from akg import ir

_FLOAT_RANK = {"bool": 0, "uint8": 1, "int8": 1, "int16": 2, "int32": 3, "int64": 4,
               "bfloat16": 5, "float16": 5, "float32": 6, "float64": 7}
_LOGICAL = ("and", "or", "xor", "not")


def const(value, like: str) -> ir.Const:
    """A Python scalar as a Const, typed like the tensor it meets (torch's scalar promotion)."""
    if isinstance(value, bool):
        return ir.Const(value, "bool")
    if isinstance(value, int) and like in ir.FLOAT_DTYPES:
        return ir.Const(float(value), like)
    if isinstance(value, int):
        return ir.Const(value, like if like != "bool" else "int64")
    return ir.Const(float(value), like if like in ir.FLOAT_DTYPES else "float32")


def cast(e: ir.Expr, dtype: str) -> ir.Expr:
    if e.dtype == dtype:
        return e
    if isinstance(e, ir.Const):
        return ir.Const(bool(e.value) if dtype == "bool" else float(e.value) if dtype in ir.FLOAT_DTYPES else int(e.value), dtype)
    return ir.Call("cast", (e,), dtype)


def _common(dtypes: list[str]) -> str:
    return max(dtypes, key=lambda d: _FLOAT_RANK[d]) if dtypes else "float32"


def pointwise_expr(op: str, args: list, out_dtype: str, attrs_dtype: str | None = None) -> ir.Expr:
    """``op`` applied to ``args`` (Exprs or Python scalars), result of ``out_dtype``."""
    tensor_dtypes = [a.dtype for a in args if not isinstance(a, (int, float, bool))]
    if op == "cast":
        return cast(args[0], attrs_dtype or out_dtype)
    if op == "where":
        branches = [a if not isinstance(a, (int, float, bool)) else const(a, out_dtype) for a in args[1:]]
        cond = args[0] if not isinstance(args[0], (int, float, bool)) else const(args[0], "bool")
        return ir.Call("where", (cast(cond, "bool"), cast(branches[0], out_dtype), cast(branches[1], out_dtype)), out_dtype)
    if op in _LOGICAL:
        operand_dtype = "bool"
    elif op in ir.COMPARISON_OPS:
        operand_dtype = _common(tensor_dtypes)
    else:
        operand_dtype = out_dtype
    exprs = [const(a, operand_dtype) if isinstance(a, (int, float, bool)) else cast(a, operand_dtype) for a in args]
    return ir.Call(op, tuple(exprs), out_dtype)
