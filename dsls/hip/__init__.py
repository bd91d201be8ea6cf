"""akg's HIP DSL plugin: HIP kernels built with hiprtc for AMD GPUs."""
from akg.plugins import hookimpl


@hookimpl
def akg_dsls():
    from .dsl import HipDSL
    return [HipDSL()]
