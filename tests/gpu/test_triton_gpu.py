"""The Triton templates on a real NVIDIA GPU: every family, the first schedules the search would try."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.gpu
if not torch.cuda.is_available():
    pytest.skip("needs an NVIDIA GPU", allow_module_level=True)

sys.path.insert(0, str(Path(__file__).parent))
from triton_specs import CASES, GPU_SIZES, load_group, max_error  # noqa: E402

from akg.dsls.triton.dsl import TritonDSL  # noqa: E402
from akg.plugins import get_backend  # noqa: E402

SCHEDULES_PER_CASE = 4
# Medium sizes: big enough for every schedule's grid, small enough to compile and check quickly.
MEDIUM = {name: tuple(max(d // 4, 1) if i < 2 else d for i, d in enumerate(s)) for name, s in GPU_SIZES.items()}
MEDIUM["max_pool_relu"] = (8, 32, 112, 112)
MEDIUM["sum_middle"] = (16, 1024, 256)


@pytest.fixture(scope="module")
def hardware():
    return get_backend("cuda").detect()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_schedules_compile_and_match_torch(case, hardware):
    sizes = MEDIUM[case.name]
    dsl = TritonDSL()
    schedules = dsl.schedules(case.group(sizes), hardware)
    assert schedules, f"no schedule for {case.name}"
    torch.manual_seed(0)
    inputs = case.inputs(sizes, "cuda")
    want = case.reference(inputs)
    tolerance = 2e-3 if case.family == "matmul_epilogue" else 1e-4
    for schedule in schedules[:SCHEDULES_PER_CASE]:
        launcher = load_group(dsl.render([(0, case.group(sizes, schedule))], "cuda"))
        got = list(launcher(*inputs))
        torch.cuda.synchronize()
        assert max_error(got, want) < tolerance, f"{case.name} [{schedule}]"


def test_detect_matches_a_descriptor_or_derives_one(hardware):
    assert hardware.backend == "cuda" and hardware.compute_units > 0
    assert hardware.l2_bytes > 0 and hardware.warp_size == 32


def test_event_timing_and_flush():
    backend = get_backend("cuda")
    x = torch.randn(1 << 24, device="cuda")
    backend.flush_cache()
    ms = backend.time_call(lambda: x.mul_(1.0))
    assert 0.0 < ms < 1000.0
