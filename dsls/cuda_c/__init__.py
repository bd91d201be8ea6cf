"""akg's CUDA-C DSL plugin: CUDA C++ kernels built with NVRTC for NVIDIA GPUs."""
from akg.plugins import hookimpl


@hookimpl
def akg_dsls():
    from .dsl import CudaCDSL
    return [CudaCDSL()]
