"""The software a measurement depends on, as one key: a stored baseline is reused only on the
same stack (python, torch and the packages torch itself requires and has installed, such as its
compiler backends)."""
from __future__ import annotations

import functools
import hashlib
import platform
import re
from importlib import metadata


@functools.cache
def stack() -> str:
    """``python 3.11.7; torch 2.6.0; name 1.2; ...``: stable for one environment."""
    parts = [f"python {platform.python_version()}"]
    try:
        parts.append(f"torch {metadata.version('torch')}")
        requires = metadata.requires("torch") or []
    except metadata.PackageNotFoundError:
        requires = []
    names = sorted({re.split(r"[\s;<>=!~\[(]", r, maxsplit=1)[0].lower() for r in requires})
    for name in names:
        try:
            parts.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass  # an optional or platform-specific requirement that is not installed
    return "; ".join(parts)


def stack_key() -> str:
    return hashlib.sha256(stack().encode()).hexdigest()[:16]
