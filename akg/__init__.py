"""akg: verified, measured kernels from PyTorch programs.

    akg.optimize(module, inputs, dsl=NAME, device=NAME) -> Result(module, report, source)
    (names as listed by `akg plugins`)
"""
__version__ = "0.1.0"


def optimize(*args, **kwargs):
    """See akg.api.optimize."""
    from akg.api import optimize as _optimize
    return _optimize(*args, **kwargs)
