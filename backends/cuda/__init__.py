"""The CUDA backend plugin: NVIDIA GPUs through PyTorch's CUDA runtime."""
from akg.plugins import hookimpl


@hookimpl
def akg_backends():
    from akg.backends.cuda.backend import CudaBackend
    return [CudaBackend()]
