"""The Metal Shading Language dialect of the shared C-like expression renderer: only data.

Every op is an overloaded ``akg_*`` helper from ``templates/prelude.j2`` (calling ``metal::``
functions), so the op table is the CUDA-C one. Metal has no double: float64 is not spelled.
"""
from __future__ import annotations

from akg.dsls.cstyle import CStyleRenderer
from akg.dsls.cuda_c.exprs import CudaRenderer


class MetalRenderer(CStyleRenderer):
    storage_types = {"float32": "float", "float16": "half", "bfloat16": "bfloat", "int64": "long",
                     "int32": "int", "int16": "short", "int8": "char", "uint8": "uchar", "bool": "bool"}
    compute_overrides = {"float16": "float", "bfloat16": "float"}
    float_suffix = {"float": "f"}
    infix = CudaRenderer.infix
    functions = CudaRenderer.functions
    infinity = "AKG_INF"
    nan = "AKG_NAN"

    def round_function(self, dtype: str) -> str:
        return {"float16": "akg_round_half", "bfloat16": "akg_round_bfloat16"}[dtype]

    def literal(self, value, dtype: str) -> str:
        if dtype == "int64" and int(value) == -(2 ** 63):
            return "((long)(-9223372036854775807L - 1))"
        text = super().literal(value, dtype)
        return text.replace("LL)", "L)")   # MSL spells 64-bit literals with L
