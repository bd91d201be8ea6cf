"""akg's C++ DSL plugin: OpenMP C++ kernels for the CPU."""
from akg.plugins import hookimpl

from .dsl import CppDSL


@hookimpl
def akg_dsls():
    return [CppDSL()]
