"""akg's MPS backend plugin: Apple GPUs through PyTorch's Metal Performance Shaders device."""
from akg.plugins import hookimpl


@hookimpl
def akg_backends():
    from .backend import MpsBackend
    return [MpsBackend()]
