"""akg as a torch.compile backend: ``torch.compile(model, backend="akg")``.

Registered under the name "akg" when akg is imported (if torch is loaded by then) and through the
``torch_dynamo_backends`` entry point, so the name works without importing akg first.
"""
from __future__ import annotations

from akg.dynamo.compiler import backend, reset_stats, stats
from akg.dynamo.settings import CompileSettings, configure, current

__all__ = ["backend", "configure", "current", "stats", "reset_stats", "CompileSettings", "register"]


def register() -> None:
    """Add "akg" to torch's backend registry (once; the entry point may have added it already)."""
    from torch._dynamo.backends import registry
    # _BACKENDS also holds discovered entry points: torch registers those itself when it loads
    # them (and would refuse a second registration of the name).
    if "akg" not in registry._BACKENDS and "akg" not in registry._COMPILER_FNS:
        registry.register_backend(backend, name="akg")
