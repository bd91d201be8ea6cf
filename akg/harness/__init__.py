"""Verification and timing that a candidate cannot touch.

    from akg.harness import evaluate, HarnessConfig, WorkerPool

Names are imported on first use: worker processes import this package too, and must not load
torch before they have left the network namespace (see ``worker``).
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "evaluate": "akg.harness.api", "WorkerPool": "akg.harness.api", "load_candidate": "akg.harness.api",
    "HarnessConfig": "akg.harness.config", "Tolerance": "akg.harness.config", "load_config": "akg.harness.config",
    "HarnessError": "akg.harness.errors", "CandidateError": "akg.harness.errors", "ConfigError": "akg.harness.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'akg.harness' has no attribute {name!r}")
