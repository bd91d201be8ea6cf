from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="module")
def fault_pool(tmp_path_factory):
    """A pool with short time limits, so hangs cost seconds; one worker, so every test also
    shows that a replaced worker serves the next candidate."""
    from akg.harness import HarnessConfig, WorkerPool
    saved = os.environ.get("AKG_CACHE_DIR")
    os.environ["AKG_CACHE_DIR"] = str(tmp_path_factory.mktemp("fault-cache"))
    config = HarnessConfig(seeds=(0,), distributions=("problem",), warmup=0, trials=1, time=False,
                           measure_compile=False, timeout_s=6.0, memory_limit_mb=1024, max_processes=32)
    with WorkerPool(device="cpu", workers=1, config=config) as pool:
        yield pool
    if saved is None:
        os.environ.pop("AKG_CACHE_DIR", None)
    else:
        os.environ["AKG_CACHE_DIR"] = saved
