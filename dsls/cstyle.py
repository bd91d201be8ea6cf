"""One renderer of ``akg.ir`` scalar expressions for every C-like kernel language.

A dialect (C++, CUDA-C, Metal) is a subclass that overrides *data*: the type names, the spelling
of each op, literal spelling. The rendering code below is shared, so an op added to the IR is added
to each dialect's table and nowhere else.

Leaves that depend on where the expression sits in a kernel (an operand load, a stage's value, the
reduce index, a matmul accumulator) are spelled by a ``leaf`` callback supplied by the template
code, because only it knows the loop structure.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping

from akg.ir import COMPARISON_OPS, Acc, Call, Const, Expr, Load, RIndex, StageRef

Leaf = Callable[[Expr], str]

# Ops whose arguments are converted to the result type before the op (torch computes in the
# promoted type); comparisons and logical ops compare their arguments as they are.
_ARITHMETIC_BINARY = ("add", "sub", "mul", "div", "floordiv", "mod", "pow", "max", "min", "atan2")
_LOGICAL = ("and", "or", "xor", "not")


class RenderExprError(ValueError):
    """An expression uses an op or dtype this dialect cannot spell."""


class CStyleRenderer:
    # dtype -> storage type in memory
    storage_types: dict[str, str] = {
        "float64": "double", "float32": "float", "int64": "int64_t", "int32": "int32_t",
        "int16": "int16_t", "int8": "int8_t", "uint8": "uint8_t", "bool": "bool",
    }
    # dtype -> type arithmetic happens in, where it differs from storage (half types widen)
    compute_overrides: dict[str, str] = {}

    # Infix binary operators. Other ops are function calls from the tables below.
    infix: dict[str, str] = {"add": "+", "sub": "-", "mul": "*", "lt": "<", "le": "<=", "gt": ">",
                             "ge": ">=", "eq": "==", "ne": "!="}
    # op -> function name, per float result type ("float32"/"float64") and for integers ("int").
    # A name may be the same for all kinds (overloaded helpers in the dialect's prelude).
    functions: dict[str, dict[str, str]] = {}
    # Float literals: suffix per float compute type; spelling of non-finite values.
    float_suffix: dict[str, str] = {"float": "f", "double": ""}
    infinity: str = "INFINITY"
    nan: str = "NAN"
    true_false: tuple[str, str] = ("true", "false")

    # ---- types ---------------------------------------------------------------------------------

    def storage_type(self, dtype: str) -> str:
        if dtype in self.storage_types:
            return self.storage_types[dtype]
        raise RenderExprError(f"dtype {dtype} has no {type(self).__name__} storage type")

    def compute_type(self, dtype: str) -> str:
        return self.compute_overrides.get(dtype) or self.storage_type(dtype)

    def is_float(self, dtype: str) -> bool:
        return self.compute_type(dtype) in self.float_suffix

    # ---- literals ------------------------------------------------------------------------------

    def literal(self, value, dtype: str) -> str:
        ctype = self.compute_type(dtype)
        if dtype == "bool":
            return self.true_false[0] if value else self.true_false[1]
        if ctype in self.float_suffix:
            return self._float_literal(float(value), ctype)
        value = int(value)
        if dtype == "int64" and value == -(2 ** 63):
            return "(-9223372036854775807LL - 1)"  # the positive half does not fit in a literal
        return f"(({ctype}){value}LL)" if dtype == "int64" else f"(({ctype}){value})"

    def _float_literal(self, value: float, ctype: str) -> str:
        if math.isnan(value):
            return f"(({ctype}){self.nan})"
        if math.isinf(value):
            return f"(({ctype}){'-' if value < 0 else ''}{self.infinity})"
        text = repr(value)  # shortest text that round-trips the double
        if "e" not in text and "." not in text:
            text += ".0"
        return text + self.float_suffix[ctype]

    # ---- expressions ---------------------------------------------------------------------------

    def render(self, expr: Expr, leaf: Leaf, names: Mapping[Expr, str] | None = None) -> str:
        """C text of ``expr`` in its compute type; ``leaf`` spells Load/StageRef/RIndex/Acc;
        sub-expressions found in ``names`` are spelled by that name (a local computed earlier)."""
        if names and expr in names:
            return names[expr]
        if isinstance(expr, (Load, StageRef, RIndex, Acc)):
            return leaf(expr)
        if isinstance(expr, Const):
            return self.literal(expr.value, expr.dtype)
        if isinstance(expr, Call):
            return self._call(expr, leaf, names)
        raise RenderExprError(f"cannot render {type(expr).__name__}")

    def convert(self, text: str, from_dtype: str, to_dtype: str) -> str:
        """Convert a value between dtypes with torch's rules (float -> bool is != 0)."""
        if self.compute_type(from_dtype) == self.compute_type(to_dtype) and from_dtype == to_dtype:
            return text
        if to_dtype == "bool":
            return f"({text} != 0)"
        converted = f"(({self.compute_type(to_dtype)})({text}))"
        if to_dtype in self.compute_overrides:
            # Narrow types are computed wide but must still round like the narrow type.
            return f"{self.round_function(to_dtype)}({converted})"
        return converted

    def round_function(self, dtype: str) -> str:
        raise RenderExprError(f"{type(self).__name__} cannot round to {dtype}")

    def _call(self, call: Call, leaf: Leaf, names=None) -> str:
        op, args = call.op, call.args
        if op == "cast":
            return self.convert(self.render(args[0], leaf, names), args[0].dtype, call.dtype)
        if op == "where":
            cond = self.convert(self.render(args[0], leaf, names), args[0].dtype, "bool")
            a, b = (self._operand_as(x, call.dtype, leaf, names) for x in args[1:])
            return f"({cond} ? {a} : {b})"
        if op in _LOGICAL:
            return self._logical(call, leaf, names)
        if op in COMPARISON_OPS:
            rendered = [self.render(a, leaf, names) for a in args]
        else:
            rendered = [self._operand_as(a, call.dtype, leaf, names) for a in args]
        if op in self.infix and len(args) == 2:
            return f"({rendered[0]} {self.infix[op]} {rendered[1]})"
        return f"{self.function_name(op, call.dtype if op not in COMPARISON_OPS else args[0].dtype)}({', '.join(rendered)})"

    def _operand_as(self, arg: Expr, dtype: str, leaf: Leaf, names=None) -> str:
        return self.convert(self.render(arg, leaf, names), arg.dtype, dtype)

    def _logical(self, call: Call, leaf: Leaf, names=None) -> str:
        # On bool results these are logical ops (torch.logical_*): operands become bools first;
        # on integer results they are bitwise.
        symbol = {"and": "&", "or": "|", "xor": "^", "not": "~"}[call.op]
        if call.dtype == "bool":
            args = [self.convert(self.render(a, leaf, names), a.dtype, "bool") for a in call.args]
            if call.op == "not":
                return f"(!{args[0]})"
        else:
            args = [self._operand_as(a, call.dtype, leaf, names) for a in call.args]
        if call.op == "not":
            return f"({symbol}{args[0]})"
        return f"({args[0]} {symbol} {args[1]})"

    def function_name(self, op: str, dtype: str) -> str:
        spellings = self.functions.get(op)
        if not spellings:
            raise RenderExprError(f"op {op} has no {type(self).__name__} spelling")
        kind = self.compute_type(dtype)
        kind = "float32" if kind == "float" else "float64" if kind == "double" else "int"
        name = spellings.get(kind) or spellings.get("any")
        if not name:
            raise RenderExprError(f"op {op} is not defined for {dtype} in {type(self).__name__}")
        return name
