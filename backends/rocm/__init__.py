"""akg's ROCm backend plugin: AMD GPUs through PyTorch's ROCm build."""
from akg.plugins import hookimpl


@hookimpl
def akg_backends():
    from .backend import RocmBackend
    return [RocmBackend()]
