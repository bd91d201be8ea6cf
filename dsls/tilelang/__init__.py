"""The TileLang DSL plugin: renders fused groups as TileLang programs (``T.prim_func``), compiled
by tilelang for the GPU (CUDA) or for the CPU (its C target)."""
from akg.plugins import hookimpl


@hookimpl
def akg_dsls():
    from akg.dsls.tilelang.dsl import TileLangDSL
    return [TileLangDSL()]
