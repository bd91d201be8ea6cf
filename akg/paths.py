"""Checks on the paths a command will write, made before any work starts.

A search can take an hour; finding only at its end that ``--out`` lies under a file or on a
read-only filesystem would waste it. Each check raises one line (exit code 2) naming the flag.
"""
from __future__ import annotations

import os
from pathlib import Path

from akg.errors import AkgError


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return Path(".")


def _check_creatable(path: Path, flag: str) -> None:
    """``path`` does not exist: its nearest existing ancestor must be a writable folder."""
    ancestor = _nearest_existing(path.parent if path.parent != path else path)
    if not ancestor.is_dir():
        raise AkgError(f"{flag} {path}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise AkgError(f"{flag} {path}: cannot create it, {ancestor} is not writable (read-only or no permission)")


def check_output_dir(path: str | Path, flag: str = "--out") -> Path:
    """A folder akg will create (if needed) and write files into."""
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise AkgError(f"{flag} {path}: exists and is not a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise AkgError(f"{flag} {path}: folder is not writable (read-only or no permission)")
        return path
    _check_creatable(path, flag)
    return path


def check_output_file(path: str | Path, flag: str = "--out") -> Path:
    """A file akg will create or replace (its folder is created if needed)."""
    path = Path(path)
    if path.is_dir():
        raise AkgError(f"{flag} {path}: is a folder; give a file name")
    if path.exists():
        if not os.access(path.parent, os.W_OK | os.X_OK):
            raise AkgError(f"{flag} {path}: its folder is not writable (read-only or no permission)")
        return path
    _check_creatable(path, flag)
    return path
