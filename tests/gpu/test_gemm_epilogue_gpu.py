"""Fused GEMM + epilogue at a real size on an NVIDIA GPU: the schedules the search seeds first for
an fp32 linear layer (torch's default flags: IEEE fp32 matmuls) meet the harness's fp32
tolerance against a float64 reference, and plain TF32 does not (the bound tells them apart)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.gpu
if not torch.cuda.is_available():
    pytest.skip("needs an NVIDIA GPU", allow_module_level=True)

sys.path.insert(0, str(Path(__file__).parent))
from triton_specs import CASES, load_group  # noqa: E402

from akg.dsls.triton.dsl import TritonDSL  # noqa: E402
from akg.harness.config import DEFAULT_TOLERANCES  # noqa: E402
from akg.plugins import get_backend  # noqa: E402

SIZE = (1024, 8192, 8192)          # (M, N, K): a 1024-row batch through an 8192 x 8192 linear layer
CASE = next(c for c in CASES if c.name == "linear_bias_relu")
FP32 = DEFAULT_TOLERANCES["float32"]


@pytest.fixture(scope="module")
def problem():
    torch.manual_seed(0)
    inputs = CASE.inputs(SIZE, "cuda")
    x, w, b = (t.double() for t in inputs)
    want = torch.relu(x @ w.T + b)
    return inputs, want


def _errors(got: torch.Tensor, want: torch.Tensor) -> tuple[float, bool]:
    """(relative norm error, elementwise bound met) as the harness measures fp32 outputs."""
    diff = (got.double() - want).abs()
    scale = max(1.0, float(want.abs().max()))
    elementwise = bool((diff <= FP32.atol * scale + FP32.rtol * want.abs()).all())
    return float(diff.norm() / want.norm()), elementwise


def _run(schedule, inputs) -> torch.Tensor:
    launcher = load_group(TritonDSL().render([(0, CASE.group(SIZE, schedule))], "cuda"))
    out = launcher(*inputs)[0]
    torch.cuda.synchronize()
    return out


def _first(precision: str, allow_tf32: bool):
    hardware = get_backend("cuda").detect()
    found = TritonDSL(allow_tf32=allow_tf32).schedules(CASE.group(SIZE), hardware)
    return next((s for s in found if s.get("precision") == precision), None)


@pytest.mark.parametrize("precision", ["tf32x3", "ieee"])
def test_seeded_fp32_schedules_meet_the_fp32_tolerance(precision, problem):
    schedule = _first(precision, allow_tf32=False)
    if schedule is None:
        pytest.skip(f"no {precision} schedule on this GPU")
    inputs, want = problem
    rel, elementwise = _errors(_run(schedule, inputs), want)
    assert rel <= FP32.rel_norm and elementwise, f"{schedule}: relative norm error {rel:.2e}"


def test_plain_tf32_misses_the_fp32_tolerance(problem):
    schedule = _first("tf32", allow_tf32=True)
    if schedule is None:
        pytest.skip("no TF32 on this GPU")
    inputs, want = problem
    rel, _ = _errors(_run(schedule, inputs), want)
    assert rel > FP32.rel_norm, f"TF32 at {rel:.2e}: the fp32 bound would not catch a TF32 kernel"


def test_split_k_schedule_for_a_long_k_meets_the_fp32_tolerance():
    """256 x 256 with K = 128K: four output tiles, so the seeded schedule splits K across
    programs (a workspace of partial products, then the epilogue kernel)."""
    size = (256, 256, 1 << 17)
    hardware = get_backend("cuda").detect()
    schedule = TritonDSL(allow_tf32=False).schedules(CASE.group(size), hardware)[0]
    assert (schedule.get("SPLIT") or 1) > 1, schedule
    torch.manual_seed(0)
    inputs = CASE.inputs(size, "cuda")
    x, w, b = (t.double() for t in inputs)
    want = torch.relu(x @ w.T + b)
    launcher = load_group(TritonDSL().render([(0, CASE.group(size, schedule))], "cuda"))
    got = launcher(*inputs)[0]
    torch.cuda.synchronize()
    rel, elementwise = _errors(got, want)
    assert rel <= FP32.rel_norm and elementwise, f"{schedule}: relative norm error {rel:.2e}"
