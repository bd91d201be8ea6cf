"""The Triton DSL plugin: renders fused groups as @triton.jit kernels (GPU, or Triton's
interpreter on the CPU for correctness)."""
from akg.plugins import hookimpl


@hookimpl
def akg_dsls():
    from akg.dsls.triton.dsl import TritonDSL
    return [TritonDSL()]
