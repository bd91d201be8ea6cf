"""Schedule enumeration and plugin contract of the Triton DSL (no kernels run here)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "gpu"))
from triton_specs import CASES, CPU_SIZES, GPU_SIZES  # noqa: E402

from akg.dsls.triton.dsl import TritonDSL  # noqa: E402
from akg.plugins import find_hardware, get_backend, get_dsl  # noqa: E402
from akg.ir import Schedule  # noqa: E402
from akg.targets import BuildError, RenderError  # noqa: E402


def test_plugin_contract():
    dsl = get_dsl("triton")
    assert dsl.devices == ("cuda", "cpu") and dsl.timing_meaningful_on == ("cuda",)
    assert "tl.dot" in dsl.guide() or "triton" in dsl.guide().lower()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("hardware", ["h100-sxm", "a100-80gb", "rtx-4090"])
def test_gpu_schedules_are_short_distinct_and_render(case, hardware):
    dsl = TritonDSL()
    hw = find_hardware(hardware)
    schedules = dsl.schedules(case.group(GPU_SIZES[case.name]), hw)
    assert 1 <= len(schedules) <= 12 and len(set(schedules)) == len(schedules)
    for s in schedules:
        assert "_akg_g3_kernel" in dsl.render([(3, case.group(GPU_SIZES[case.name], s))], "cuda")


def test_matmul_tiles_fit_shared_memory():
    case = next(c for c in CASES if c.family == "matmul_epilogue")
    small = find_hardware("rtx-4090")
    for s in TritonDSL().schedules(case.group(GPU_SIZES[case.name]), small):
        used = s.get("num_stages") * (s.get("BM") * s.get("BK") + s.get("BK") * s.get("BN")) * 4
        assert used <= small.shared_mem_per_block
        assert s.get("precision") == "ieee"     # fp32 keeps fp32 accuracy by default


def test_tf32_only_when_allowed():
    case = next(c for c in CASES if c.family == "matmul_epilogue")
    hw = find_hardware("h100-sxm")
    allowed = TritonDSL(allow_tf32=True).schedules(case.group(GPU_SIZES[case.name]), hw)
    assert any(s.get("precision") == "tf32" for s in allowed)
    text = TritonDSL().render([(0, case.group((64, 64, 64), allowed[0]))], "cuda")
    assert 'input_precision="tf32"' in text


def test_interpreter_gets_one_schedule():
    cpu = get_backend("cpu").detect()
    for case in CASES:
        assert len(TritonDSL().schedules(case.group(CPU_SIZES[case.name]), cpu)) == 1


def test_unknown_family_is_a_render_error():
    case = CASES[0]
    group = case.group(CPU_SIZES[case.name])
    broken = type(group)(group.nodes, "library", group.kernel, group.schedule)
    with pytest.raises(RenderError, match="no template"):
        TritonDSL().render([(0, broken)], "cpu")


def test_lint_and_prebuild_report_problems():
    dsl = TritonDSL()
    assert any("jit" in p for p in dsl.lint("class ModelNew:\n    pass\n"))
    with pytest.raises(BuildError, match="line 1"):
        dsl.prebuild("def broken(:\n", "cuda")


def _variants(case_name: str, sizes) -> list[str]:
    case = next(c for c in CASES if c.name == case_name)
    return [s.get("variant") for s in TritonDSL().schedules(case.group(sizes), find_hardware("h100-sxm"))]


def test_few_long_rows_are_split_first_and_many_rows_are_not():
    assert _variants("mse_all", (1 << 26,))[0] == "split"          # one row of 67M elements
    assert _variants("logsumexp", (16, 1 << 20))[0] == "split"      # online pair, 16 rows
    assert "split" not in _variants("logsumexp", (8192, 8192))      # rows fill the SMs already
    assert "split" not in _variants("mse_all", (4096,))             # too short to pay for a second kernel


def test_split_is_not_offered_when_outputs_need_the_finished_row():
    # softmax writes a full-domain output from the row's max and sum: partials cannot produce it
    assert "split" not in _variants("softmax_lse", (16, 1 << 20))
    case = next(c for c in CASES if c.name == "softmax_lse")
    with pytest.raises(RenderError, match="split variant"):
        TritonDSL().render([(0, case.group((16, 1 << 20), Schedule().with_(variant="split", RBLOCK=1024, SPLIT=8)))], "cuda")


def test_squares_are_products_not_libdevice_pow():
    from akg.dsls.triton.exprs import ExprRenderer
    from akg.ir import Call, Const, Load
    render = ExprRenderer(lambda e: f"x{e.operand}").render
    assert render(Call("pow", (Load(0, "float32"), Const(2.0, "float32")), "float32")) == "(x0 * x0)"
    assert "libdevice.pow" in render(Call("pow", (Load(0, "float32"), Const(2.5, "float32")), "float32"))
    assert "libdevice.pow" in render(Call("pow", (Load(0, "float16"), Const(2.0, "float32")), "float16"))


def test_operands_read_transposed_get_tiled_schedules_first():
    assert _variants("nhwc_bias_relu", (32, 128, 128, 128))[0] == "tiled"
    assert "tiled" not in _variants("bias_gelu", (8192, 8192))
