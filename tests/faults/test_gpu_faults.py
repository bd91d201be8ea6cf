"""GPU-only faults: an illegal memory access and a kernel that never finishes fail their
candidate, the worker is replaced, and the pool judges the next candidate. Run with ``-m gpu``."""
from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.gpu

PROBLEM = Path(__file__).parent.parent / "adversarial" / "problems" / "scale_add.py"

HONEST = """
import torch
import torch.nn as nn
class ModelNew(nn.Module):
    def forward(self, x, y):
        return x * 2.0 + y
"""

TRITON_HEADER = """
import torch
import torch.nn as nn
import triton
import triton.language as tl
"""

OUT_OF_BOUNDS = TRITON_HEADER + """
@triton.jit
def _scribble(out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK) + (1 << 40)   # far outside any allocation
    tl.store(out_ptr + offs, 1.0)

class ModelNew(nn.Module):
    def forward(self, x, y):
        out = torch.empty_like(x)
        _scribble[(4,)](out, x.numel(), BLOCK=1024)
        torch.cuda.synchronize()
        return out
"""

SPIN = TRITON_HEADER + """
@triton.jit
def _spin(flag_ptr):
    while tl.load(flag_ptr, volatile=True) == 0:
        pass

class ModelNew(nn.Module):
    def forward(self, x, y):
        flag = torch.zeros(1, dtype=torch.int32, device=x.device)
        _spin[(1,)](flag)
        return x * 2.0 + y
"""

SIDE_STREAM = """
import torch
import torch.nn as nn
class ModelNew(nn.Module):
    def forward(self, x, y):
        out = torch.empty_like(x)
        stream = torch.cuda.Stream()
        with torch.cuda.stream(stream):
            torch.cuda._sleep(50_000_000)
            torch.add(x * 2.0, y, out=out)
        return out
"""


@pytest.fixture(scope="module")
def gpu_pool(tmp_path_factory):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    from akg.harness import HarnessConfig, WorkerPool
    config = HarnessConfig(seeds=(0,), distributions=("problem",), warmup=1, trials=3,
                           measure_compile=False, timeout_s=20.0)
    with WorkerPool(device="cuda", workers=1, config=config) as pool:
        yield pool


def _recovers(pool) -> bool:
    return pool.evaluate(PROBLEM, HONEST, "honest-after", policy="standard").accepted


def test_illegal_memory_access(gpu_pool):
    verdict = gpu_pool.evaluate(PROBLEM, OUT_OF_BOUNDS, "oob", policy="standard")
    failed = {c.name for c in verdict.checks if not c.passed}
    assert not verdict.accepted and failed & {"runs", "worker_alive"}
    assert _recovers(gpu_pool)


def test_device_hang(gpu_pool):
    verdict = gpu_pool.evaluate(PROBLEM, SPIN, "spin", policy="standard")
    assert not verdict.accepted and "time_limit" in {c.name for c in verdict.checks if not c.passed}
    assert _recovers(gpu_pool)


def test_side_stream_work_after_return(gpu_pool):
    verdict = gpu_pool.evaluate(PROBLEM, SIDE_STREAM, "side-stream", policy="standard")
    failed = {c.name for c in verdict.checks if not c.passed}
    assert not verdict.accepted and failed & {"async_work", "unwritten_output", "nan_positions"}
