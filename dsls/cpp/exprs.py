"""The C++ dialect of the shared C-like expression renderer: only data lives here."""
from __future__ import annotations

from akg.dsls.cstyle import CStyleRenderer

# libm names per float width; the akg_* names are overloaded helpers from the C++ prelude
# (vectorisable in float, libm in double).
_LIBM = ("sqrt", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh",
         "atanh", "floor", "ceil", "trunc", "log2", "exp2", "atan2")
_PRELUDE = ("exp", "expm1", "log", "log1p", "tanh", "sigmoid", "erf", "max", "min", "mod", "floordiv", "abs", "sign",
            "reciprocal", "rsqrt", "isnan", "isinf", "pow")


def _cpp_functions() -> dict[str, dict[str, str]]:
    table = {op: {"any": f"std::{op}"} for op in _LIBM}
    table.update({op: {"any": f"akg_{op}"} for op in _PRELUDE})
    # torch.round rounds half to even: nearbyint does that in the default rounding mode.
    table["round"] = {"float32": "std::nearbyint", "float64": "std::nearbyint"}
    table["neg"] = {"any": "-"}
    # Integer division in the IR is C's truncating division (torch rounding_mode="trunc").
    table["div"] = {"any": ""}
    return table


class CppRenderer(CStyleRenderer):
    storage_types = {**CStyleRenderer.storage_types, "float16": "akg_half", "bfloat16": "akg_bfloat16"}
    compute_overrides = {"float16": "float", "bfloat16": "float"}
    infix = {**CStyleRenderer.infix, "div": "/"}
    functions = _cpp_functions()

    def round_function(self, dtype: str) -> str:
        return {"float16": "akg_round_half", "bfloat16": "akg_round_bfloat16"}[dtype]
