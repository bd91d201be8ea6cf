"""What a stored verdict depends on besides the problem and the candidate, as one key.

A verdict is a fact about a candidate *on a toolchain*: installing a DSL's package, upgrading torch or the
compiler, moving to other hardware or changing how akg judges can turn a rejection into an
acceptance or change a timing. Verdicts are stored under the fingerprint of these versions and
reused only under the same fingerprint.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform

# Bump when the harness judges differently (new checks, other tolerances, another timing method):
# verdicts stored by an older harness are then measured again.
HARNESS_VERSION = "2026.12.1"


def dsl_versions(dsl) -> dict[str, str]:
    """The DSL's toolchain versions: its own ``versions()`` where the plugin has one, else the
    version of an installed distribution named like the DSL, else nothing known."""
    own = getattr(dsl, "versions", None)
    if callable(own):
        try:
            return {str(k): str(v) for k, v in dict(own()).items()}
        except Exception as e:  # a plugin's probe failing must not stop the search
            return {"toolchain": f"unknown ({type(e).__name__})"}
    try:
        return {dsl.name: importlib.metadata.version(dsl.name)}
    except importlib.metadata.PackageNotFoundError:
        return {}


def versions(dsl, device: str, hardware: str) -> dict[str, str]:
    """Everything a verdict of ``dsl`` on ``device``/``hardware`` depends on."""
    import torch
    from akg import versions as software
    return {"akg_harness": HARNESS_VERSION, "python": platform.python_version(), "torch": torch.__version__,
            "stack": software.stack_key(),   # torch's own requirements too (its compiler backends ...)
            "dsl": dsl.name, **{f"dsl:{k}": v for k, v in dsl_versions(dsl).items()},
            "device": device, "hardware": hardware}


def fingerprint(found: dict[str, str]) -> str:
    """A short stable key for a versions dict."""
    return hashlib.sha256(json.dumps(found, sort_keys=True).encode()).hexdigest()[:16]
