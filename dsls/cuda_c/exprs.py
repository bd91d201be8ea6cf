"""The CUDA-C dialect of the shared C-like expression renderer: only data lives here.

Every op is an overloaded ``akg_*`` device helper from ``templates/prelude.j2`` (float overloads call
the single-precision CUDA math functions, double ones the double-precision ones), so the table is
the same for every op and HIP reuses it unchanged.
"""
from __future__ import annotations

from akg.dsls.cstyle import CStyleRenderer
from akg.ir import POINTWISE_OPS

_INFIX_OR_SPECIAL = {"add", "sub", "mul", "lt", "le", "gt", "ge", "eq", "ne", "and", "or", "xor", "not",
                     "cast", "where", "neg", "div"}


def _functions() -> dict[str, dict[str, str]]:
    table = {op: {"any": f"akg_{op}"} for op in POINTWISE_OPS if op not in _INFIX_OR_SPECIAL}
    table["neg"] = {"any": "-"}
    table["div"] = {"any": ""}
    return table


class CudaRenderer(CStyleRenderer):
    storage_types = {**CStyleRenderer.storage_types, "float16": "akg_half", "bfloat16": "akg_bfloat16"}
    compute_overrides = {"float16": "float", "bfloat16": "float"}
    infix = {**CStyleRenderer.infix, "div": "/"}
    functions = _functions()
    # No <math.h> under NVRTC: the prelude defines these.
    infinity = "AKG_INF"
    nan = "AKG_NAN"

    def round_function(self, dtype: str) -> str:
        return {"float16": "akg_round_half", "bfloat16": "akg_round_bfloat16"}[dtype]
