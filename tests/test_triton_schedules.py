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


def _matmul_case():
    return next(c for c in CASES if c.family == "matmul_epilogue")


def _tiles(schedules) -> list[tuple]:
    return [(s.get("BM"), s.get("BN"), s.get("precision")) for s in schedules]


def test_matmul_tiles_fit_shared_memory():
    small = find_hardware("rtx-4090")
    for s in TritonDSL(allow_tf32=False).schedules(_matmul_case().group(GPU_SIZES["linear_bias_relu"]), small):
        tile = (s.get("BM") * s.get("BK") + s.get("BK") * s.get("BN")) * 4
        split = 2 * tile if s.get("precision") == "tf32x3" else 0    # the high and low halves
        assert s.get("num_stages") * tile + split <= small.shared_mem_per_block
        assert s.get("precision") in ("tf32x3", "ieee")    # fp32 keeps fp32 accuracy by default


def test_tf32_only_when_allowed():
    hw = find_hardware("h100-sxm")
    allowed = TritonDSL(allow_tf32=True).schedules(_matmul_case().group(GPU_SIZES["linear_bias_relu"]), hw)
    assert allowed[0].get("precision") == "tf32"
    text = TritonDSL().render([(0, _matmul_case().group((64, 64, 64), allowed[0]))], "cuda")
    assert 'input_precision="tf32"' in text


def test_fp32_without_tf32_tries_the_split_tf32_product_first_then_ieee():
    hw = find_hardware("h200")
    found = TritonDSL(allow_tf32=False).schedules(_matmul_case().group((1024, 8192, 8192)), hw)
    precisions = [s.get("precision") for s in found]
    assert precisions[0] == "tf32x3" and "ieee" in precisions and "tf32" not in precisions
    assert len(found) == 12 and precisions.count("ieee") == 2     # the full list, IEEE as neighbours
    text = TritonDSL().render([(0, _matmul_case().group((1024, 8192, 8192), found[0]))], "cuda")
    assert 'input_precision="tf32x3"' in text


def test_without_tensor_cores_fp32_stays_ieee():
    import dataclasses
    hw = dataclasses.replace(find_hardware("h200"), tensor_cores=False)
    found = TritonDSL(allow_tf32=True).schedules(_matmul_case().group((1024, 1024, 1024)), hw)
    assert {s.get("precision") for s in found} == {"ieee"}


def test_tf32_follows_torch_flags_unless_the_environment_says(monkeypatch):
    import torch
    from akg.dsls.triton.dsl import TF32_ENV
    hw, group = find_hardware("h200"), _matmul_case().group((1024, 8192, 8192))
    monkeypatch.delenv(TF32_ENV, raising=False)
    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("high")        # what a problem allowing TF32 sets
        assert TritonDSL().schedules(group, hw)[0].get("precision") == "tf32"
        monkeypatch.setenv(TF32_ENV, "0")
        assert TritonDSL().schedules(group, hw)[0].get("precision") == "tf32x3"
        torch.set_float32_matmul_precision("highest")     # torch's default: IEEE fp32 matmuls
        monkeypatch.delenv(TF32_ENV)
        assert "tf32" not in [s.get("precision") for s in TritonDSL().schedules(group, hw)]
        monkeypatch.setenv(TF32_ENV, "1")
        assert TritonDSL().schedules(group, hw)[0].get("precision") == "tf32"
    finally:
        torch.set_float32_matmul_precision(before)


def test_matmul_tiles_are_ranked_by_waves_for_the_shape():
    hw = find_hardware("h200")                     # 132 SMs
    dsl = TritonDSL(allow_tf32=True)
    # 1024 x 8192: 256 tiles of 128x256 fill two waves; the wide tile comes first.
    assert _tiles(dsl.schedules(_matmul_case().group((1024, 8192, 4096)), hw))[0] == (128, 256, "tf32")
    # 12 x 11 tiles of 128x128 are exactly one wave; 128x256 tiles would leave 60 SMs idle.
    assert _tiles(dsl.schedules(_matmul_case().group((1536, 1408, 4096)), hw))[0] == (128, 128, "tf32")
    # A matrix smaller than a tile: the tile shrinks to it, with fewer warps.
    tiny = dsl.schedules(_matmul_case().group((100, 10, 64)), hw)[0]
    assert tiny.get("BM") <= 128 and tiny.get("BN") == 16 and tiny.get("num_warps") <= 4


def test_half_precision_matmul_has_no_precision_knob():
    from akg.dsls.triton.schedules import matmul
    group = _matmul_case().group((1024, 1024, 1024))
    k = group.kernel
    half = type(k.a.type)(k.a.type.shape, "float16")
    k16 = dataclasses_replace(k, a=dataclasses_replace(k.a, type=half),
                              b=dataclasses_replace(k.b, type=type(k.b.type)(k.b.type.shape, "float16")))
    found = matmul(k16, find_hardware("h200"))
    assert found and all(s.get("precision") is None for s in found)
    assert found[0].get("BK") == 64                # 128 bytes of a row per k-step


def dataclasses_replace(obj, **changes):
    import dataclasses
    return dataclasses.replace(obj, **changes)


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


def test_split_k_only_where_the_tiles_leave_sms_idle():
    hw = find_hardware("h200")                     # 132 SMs
    dsl = TritonDSL(allow_tf32=False)
    # 256 x 256 with K = 512K: four 128x128 tiles; 64 slices of K give every SM a program.
    long_k = dsl.schedules(_matmul_case().group((256, 256, 1 << 19)), hw)
    assert long_k[0].get("SPLIT") == 64 and (long_k[0].get("BM"), long_k[0].get("BN")) == (128, 128)
    text = dsl.render([(0, _matmul_case().group((256, 256, 1 << 19), long_k[0]))], "cuda")
    assert "_akg_g0_epilogue[grid]" in text and "grid + (64,)" in text
    # Enough tiles for the device, or too short a K to cut: no split.
    assert all(s.get("SPLIT") is None for s in dsl.schedules(_matmul_case().group((1024, 8192, 8192)), hw))
    assert all(s.get("SPLIT") is None for s in dsl.schedules(_matmul_case().group((256, 256, 256)), hw))
