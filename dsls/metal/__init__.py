"""akg's Metal DSL plugin: MSL kernels for Apple GPUs through torch.mps.compile_shader."""
from akg.plugins import hookimpl


@hookimpl
def akg_dsls():
    from .dsl import MetalDSL
    return [MetalDSL()]
