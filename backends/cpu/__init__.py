"""akg's CPU backend plugin: runs candidates on the host CPU."""
from akg.plugins import hookimpl

from .backend import CpuBackend


@hookimpl
def akg_backends():
    return [CpuBackend()]
