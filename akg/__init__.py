"""akg: verified, measured kernels from PyTorch programs.

    akg.optimize(module, inputs, dsl=NAME, device=NAME) -> Result(module, report, source)
    (names as listed by `akg plugins`)
    torch.compile(model, backend="akg")       # akg.configure(budget=..., ...) sets how it searches
"""
import sys

__version__ = "0.1.0"


def optimize(*args, **kwargs):
    """See akg.api.optimize."""
    from akg.api import optimize as _optimize
    return _optimize(*args, **kwargs)


def configure(**kwargs):
    """See akg.dynamo.settings.configure: how torch.compile(backend="akg") searches."""
    from akg.dynamo.settings import configure as _configure
    return _configure(**kwargs)


def _register_backend() -> None:
    # Only when the program already uses torch: `import akg` alone (the CLI, the harness's
    # workers) must not pay for importing torch._dynamo. Otherwise the entry point finds akg.
    if "torch" in sys.modules:
        try:
            from akg.dynamo import register
            register()
        except Exception:   # an old or partial torch: torch.compile(backend=akg.dynamo.backend) still works
            pass


_register_backend()
