"""Shared fixtures: caches in a temp dir, and the example problems."""
from pathlib import Path

import pytest

from example_paths import EXAMPLE_PROBLEMS, EXAMPLES  # noqa: F401  (re-exported for fixtures)


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path_factory, monkeypatch):
    """Build caches go to a per-session temp dir, never the user's home."""
    root = tmp_path_factory.getbasetemp() / "caches"
    for var, sub in (("AKG_CACHE_DIR", "akg"), ("TORCH_EXTENSIONS_DIR", "torch_extensions"), ("TRITON_CACHE_DIR", "triton")):
        monkeypatch.setenv(var, str(root / sub))
    return root


@pytest.fixture(scope="session")
def example_problems() -> list[Path]:
    return EXAMPLE_PROBLEMS
