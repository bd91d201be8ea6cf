"""Every Triton template family, rendered and run under Triton's interpreter on the CPU."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")
import torch

sys.path.insert(0, str(Path(__file__).parent / "gpu"))
from triton_specs import CASES, CPU_SIZES, load_group, max_error  # noqa: E402

from akg.dsls.triton.dsl import TritonDSL  # noqa: E402
from akg.ir import Schedule  # noqa: E402
from akg.plugins import get_backend  # noqa: E402

CASES_BY_NAME = {c.name: c for c in CASES}
TOLERANCE = 1e-4


@pytest.fixture(autouse=True)
def _triton_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path / "triton"))
    monkeypatch.setenv("TRITON_INTERPRET", "1")


def run_case(name: str, schedule: Schedule | None = None, sizes=None) -> float:
    case = CASES_BY_NAME[name]
    sizes = sizes or CPU_SIZES[name]
    group = case.group(sizes)
    if schedule is None:
        [schedule] = TritonDSL().schedules(group, get_backend("cpu").detect())
    group = case.group(sizes, schedule)
    launcher = load_group(TritonDSL().render([(0, group)], "cpu"))
    torch.manual_seed(0)
    inputs = case.inputs(sizes, "cpu")
    return max_error(list(launcher(*inputs)), case.reference(inputs))


@pytest.mark.parametrize("name", sorted(CASES_BY_NAME))
def test_family_matches_torch_with_interpreter_schedule(name):
    assert run_case(name) < TOLERANCE


def variant(**knobs) -> Schedule:
    return Schedule().with_(num_warps=4, **knobs)


@pytest.mark.parametrize("name,schedule", [
    ("softmax_lse", variant(variant="looped", ROWS=2, RBLOCK=64, online=True)),
    ("softmax_lse", variant(variant="looped", ROWS=1, RBLOCK=128, online=False)),
    ("layer_norm", variant(variant="looped", ROWS=2, RBLOCK=64)),
    ("sum_middle", variant(variant="looped", ROWS=16, RBLOCK=4)),
    ("argmax_last", variant(variant="looped", ROWS=4, RBLOCK=16)),
    ("argmin_first", variant(variant="persistent", ROWS=4, RBLOCK=64)),
    ("cumsum", variant(variant="looped", ROWS=2, RBLOCK=16)),
    ("bias_gelu", variant(BLOCK=32)),
    ("linear_bias_relu", variant(BM=16, BN=32, BK=16, GROUP_M=2, num_stages=1, precision="ieee")),
])
def test_schedule_variants_compute_the_same_function(name, schedule):
    assert run_case(name, schedule) < TOLERANCE


def test_argmax_returns_first_occurrence_of_ties():
    case = CASES_BY_NAME["argmax_last"]
    x = torch.zeros(4, 40)
    x[:, 5] = x[:, 30] = 3.0          # tie: torch returns the first index
    x[2, :] = 1.0                     # all equal: index 0
    for schedule in (variant(variant="persistent", ROWS=2, RBLOCK=64), variant(variant="looped", ROWS=2, RBLOCK=8)):
        launcher = load_group(TritonDSL().render([(0, case.group((4, 40), schedule))], "cpu"))
        (got,) = launcher(x)
        assert torch.equal(got, x.argmax(1))


def test_interpreter_header_is_set_only_for_cpu():
    group = CASES_BY_NAME["bias_gelu"].group(CPU_SIZES["bias_gelu"], variant(BLOCK=64))
    cpu_text = TritonDSL().render([(0, group)], "cpu")
    gpu_text = TritonDSL().render([(0, group)], "cuda")
    assert cpu_text.index('TRITON_INTERPRET"] = "1"') < cpu_text.index("import triton")
    assert "TRITON_INTERPRET" not in gpu_text
    assert "_akg_g0_kernel[grid]" in gpu_text and "BLOCK=64" in gpu_text
