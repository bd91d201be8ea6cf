"""Shared fixtures of the adversarial suite: one worker pool for the whole session, caches in a
temporary directory, and a summary table of every verdict at the end."""
from __future__ import annotations

import os
import pytest

SUMMARY: list[tuple[str, str, str, str]] = []


@pytest.fixture(scope="session")
def adversarial_summary() -> list[tuple[str, str, str, str]]:
    """(candidate, expected, verdict, failed checks) rows for the table printed at the end."""
    return SUMMARY


@pytest.fixture(scope="session")
def harness_cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("akg-cache")
    saved = {k: os.environ.get(k) for k in ("AKG_CACHE_DIR", "TORCH_EXTENSIONS_DIR", "TRITON_CACHE_DIR")}
    os.environ["AKG_CACHE_DIR"] = str(root / "akg")
    os.environ["TORCH_EXTENSIONS_DIR"] = str(root / "torch_extensions")
    os.environ["TRITON_CACHE_DIR"] = str(root / "triton")
    yield root
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def fast_config():
    from akg.harness import HarnessConfig
    return HarnessConfig(seeds=(0, 1), warmup=1, trials=3, measure_compile=False, timeout_s=60.0,
                         memory_limit_mb=4096, max_processes=64)


@pytest.fixture(scope="session")
def pool(harness_cache, fast_config):
    from akg.harness import WorkerPool
    with WorkerPool(device="cpu", workers=2, config=fast_config) as p:
        yield p


def pytest_terminal_summary(terminalreporter):
    if not SUMMARY:
        return
    tr = terminalreporter
    tr.section("adversarial suite")
    tr.write_line(f"{'candidate':32} {'expected':10} {'verdict':10} caught by / reason")
    for name, expected, verdict, caught in SUMMARY:
        tr.write_line(f"{name:32} {expected:10} {verdict:10} {caught}")
    false_accepts = sum(1 for _, e, v, _ in SUMMARY if e == "reject" and v == "accepted")
    false_rejects = sum(1 for _, e, v, _ in SUMMARY if e == "accept" and v == "rejected")
    tr.write_line(f"{len(SUMMARY)} candidates: {false_accepts} false accepts, {false_rejects} false rejects")
