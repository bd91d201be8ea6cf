"""Shared fixtures: caches and temp files in the session's temp dir, and the example problems."""
import os
import tempfile
from pathlib import Path

import pytest

from example_paths import EXAMPLE_PROBLEMS, EXAMPLES  # noqa: F401  (re-exported for fixtures)


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path_factory, monkeypatch):
    """Build caches go to a per-session temp dir, never the user's home."""
    root = tmp_path_factory.getbasetemp() / "caches"
    for var, sub in (("AKG_CACHE_DIR", "akg"), ("TORCH_EXTENSIONS_DIR", "torch_extensions"), ("TRITON_CACHE_DIR", "triton"),
                     ("TILELANG_CACHE_DIR", "tilelang")):
        monkeypatch.setenv(var, str(root / sub))
    return root


@pytest.fixture(autouse=True, scope="session")
def private_tempdir(tmp_path_factory):
    """Everything akg puts in the temp dir (worker scratch, the API's default output, folders a
    killed conductor could not remove) goes under pytest's own temp tree, in this process and in
    every process it starts, so the suite leaves no akg-* folders in the system temp dir."""
    root = tmp_path_factory.getbasetemp() / "tmp"
    root.mkdir(exist_ok=True)
    saved = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"] = str(root)
    tempfile.tempdir = str(root)
    yield root
    tempfile.tempdir = saved[1]
    if saved[0] is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = saved[0]


@pytest.fixture(scope="session")
def example_problems() -> list[Path]:
    return EXAMPLE_PROBLEMS
