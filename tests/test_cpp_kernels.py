"""Kernels written as specs by hand, rendered by the cpp DSL, compiled by g++ and compared to torch."""
from __future__ import annotations

import pytest
import torch

from test_cpp_support import (Call, Const, Load, PointwiseKernel, ReductionKernel, ScanKernel, Stage,
                              StageRef, call, compile_group, contiguous_strides, dense, f32, operand,
                              output, softmax_kernel)
from akg.ir import FusedGroup, RIndex, Schedule
from test_cpp_support import DSL


@pytest.fixture(autouse=True, scope="module")
def _private_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AKG_CACHE_DIR", str(tmp_path_factory.mktemp("akg-cache")))
        yield


def _run_pointwise(expr_of, tensors, shape, **knobs):
    ops = tuple(operand(f"t{i}", t, _broadcast_strides(t, shape)) for i, t in enumerate(tensors))
    outs = tuple(output(f"y{k}", e, shape) for k, e in enumerate(expr_of))
    return compile_group("pointwise", PointwiseKernel(shape, ops, outs), **knobs)(*tensors)


def _broadcast_strides(t: torch.Tensor, shape) -> tuple[int, ...]:
    """Domain strides of ``t`` broadcast (numpy rules) to ``shape``, using its real layout."""
    pad = len(shape) - t.dim()
    return tuple(0 if d < pad or t.shape[d - pad] == 1 else t.stride(d - pad) for d in range(len(shape)))


# ---- pointwise --------------------------------------------------------------------------------

def test_pointwise_broadcast_noncontiguous_and_multi_output():
    x = torch.randn(4, 5, 6)
    bias = torch.randn(5, 1)
    y = torch.randn(6, 5, 4).permute(2, 1, 0)  # a transposed view: strides (1, 4, 20)
    a, b, c = Load(0, "float32"), Load(1, "float32"), Load(2, "float32")
    total = call("add", call("mul", a, c), b)
    relu = call("max", total, f32(0.0))
    got_total, got_relu = _run_pointwise([total, relu], [x, bias, y], (4, 5, 6), block=8)
    expected = x * y + bias
    torch.testing.assert_close(got_total, expected)
    torch.testing.assert_close(got_relu, expected.clamp_min(0))


def test_pointwise_input_with_unexpected_layout_is_conformed():
    x = torch.randn(8, 16)
    kernel = PointwiseKernel((8, 16), (dense("x", x),), (output("y", call("neg", Load(0, "float32")), (8, 16)),))
    launch = compile_group("pointwise", kernel)
    transposed_copy = torch.randn(16, 8).t()  # same shape, column-major
    torch.testing.assert_close(launch(transposed_copy)[0], -transposed_copy)


def test_pointwise_float64_and_integer_semantics():
    a64 = torch.rand(1000, dtype=torch.float64) * 10
    (got,) = _run_pointwise([call("sqrt", call("log", Load(0, "float64")))], [a64], (1000,))
    torch.testing.assert_close(got, a64.log().sqrt(), equal_nan=True)

    a = torch.randint(-50, 50, (300,))
    b = torch.randint(1, 7, (300,)) * torch.where(torch.rand(300) < 0.5, -1, 1)
    la, lb = Load(0, "int64"), Load(1, "int64")
    got_floor, got_mod = _run_pointwise([call("floordiv", la, lb), call("mod", la, lb)], [a, b], (300,))
    assert torch.equal(got_floor, torch.div(a, b, rounding_mode="floor"))
    assert torch.equal(got_mod, torch.remainder(a, b))

    i32 = torch.randint(-1000, 1000, (257,), dtype=torch.int32)
    (got32,) = _run_pointwise([call("abs", call("mul", Load(0, "int32"), Const(3, "int32")))], [i32], (257,))
    assert torch.equal(got32, (i32 * 3).abs())


def test_pointwise_bool_logic_and_where():
    x, y = torch.randn(500), torch.randn(500)
    lx, ly = Load(0, "float32"), Load(1, "float32")
    positive = call("gt", lx, f32(0.0), dtype="bool")
    both = call("and", positive, call("lt", ly, f32(0.5), dtype="bool"), dtype="bool")
    chosen = call("where", both, lx, ly, dtype="float32")
    got_mask, got_where = _run_pointwise([both, chosen], [x, y], (500,))
    mask = (x > 0) & (y < 0.5)
    assert got_mask.dtype == torch.bool and torch.equal(got_mask, mask)
    assert torch.equal(got_where, torch.where(mask, x, y))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_pointwise_half_types_compute_in_float(dtype):
    torch_dtype = getattr(torch, dtype)
    x, y = torch.randn(999).to(torch_dtype), torch.randn(999).to(torch_dtype)
    lx, ly = Load(0, dtype), Load(1, dtype)
    (got,) = _run_pointwise([call("mul", call("add", lx, ly), lx)], [x, y], (999,))
    assert got.dtype == torch_dtype
    expected = ((x.float() + y.float()) * x.float()).to(torch_dtype)
    # Rounded once (here) against rounded twice (torch eager): at most one ulp apart.
    torch.testing.assert_close(got, (x + y) * x, atol=0, rtol=2 ** -7 if dtype == "bfloat16" else 2 ** -10)
    torch.testing.assert_close(got, expected, atol=0, rtol=0)


def test_shared_subexpressions_are_computed_once():
    # Each step uses the previous value three times: spelled out in full, the kernel would
    # compute 3^k copies of step k; with one local per shared value each step is computed once.
    x, steps = torch.randn(1000), 7
    e, expected = Load(0, "float32"), x.clone()
    for _ in range(steps):
        e = call("add", call("where", call("gt", e, f32(0.0), dtype="bool"), e, call("mul", e, f32(0.5)), dtype="float32"),
                 call("expm1", call("mul", e, f32(0.01))))
        expected = torch.where(expected > 0, expected, expected * 0.5) + torch.expm1(expected * 0.01)
    kernel = PointwiseKernel((1000,), (operand("t0", x, (1,)),), (output("y0", e, (1000,)),))
    source = DSL.render([(0, FusedGroup(("n0",), "pointwise", kernel, Schedule(())))], "cpu")
    body = source[source.index('extern "C" void akg_g0'):]
    assert body.count("akg_expm1(") == steps
    (got,) = compile_group("pointwise", kernel)(x)
    torch.testing.assert_close(got, expected)


# erf and tanh (beyond |x| = 0.625) are rational minimax approximations, a few ulp off near +-1.
MAX_ULP = {"exp": 2, "log": 2, "tanh": 5, "sigmoid": 4, "erf": 6, "expm1": 3, "log1p": 2}
SPECIALS = [float("nan"), float("inf"), float("-inf"), 0.0, -0.0, 1e-45, 1e-38, 88.7, 89.0, -87.0, -103.0, -104.5]


@pytest.mark.parametrize("op", ["exp", "log", "tanh", "sigmoid", "erf", "expm1", "log1p"])
def test_vector_math_is_accurate_with_ieee_special_values(op):
    torch.manual_seed(0)
    wide = torch.cat([torch.randn(4000) * 3, torch.rand(2000) * 200 - 100, torch.rand(1000) * 1e-3,
                      torch.tensor(SPECIALS)])
    x = wide.abs() if op == "log" else wide
    x = torch.cat([x, torch.tensor([-1.0, float("nan")])]) if op == "log" else x
    if op == "log1p":  # the interesting domain is (-1, inf), with the edge at -1
        x = torch.cat([x, torch.rand(2000) * 2 - 1, torch.tensor([-1.0, -1.0 + 2 ** -24, -0.999, 1e30, 3.4e38])])
    (got,) = _run_pointwise([call(op, Load(0, "float32"))], [x], (x.numel(),))
    expected = getattr(torch, op)(x.double()).float()
    assert torch.equal(torch.isnan(got), torch.isnan(expected))
    finite = torch.isfinite(expected)
    assert torch.equal(got[~finite & ~torch.isnan(expected)], expected[~finite & ~torch.isnan(expected)])
    ulp = (got[finite].double() - expected[finite].double()).abs() / _ulp(expected[finite])
    assert ulp.max().item() <= MAX_ULP[op], f"{op}: {ulp.max().item():.1f} ulp at x={x[finite][ulp.argmax()].item()!r}"


def _ulp(values: torch.Tensor) -> torch.Tensor:
    """Spacing of float32 numbers at ``values`` (denormal spacing near zero)."""
    nxt = torch.nextafter(values.abs(), torch.tensor(float("inf")))
    return (nxt - values.abs()).double().clamp_min(2.0 ** -149)


# ---- reductions -------------------------------------------------------------------------------

def _reduce_kernel(x, dim, op, part="value", out_dtype=None):
    domain = tuple(x.shape)
    kept = tuple(1 if d == dim else n for d, n in enumerate(domain))
    strides = list(contiguous_strides(kept))
    strides[dim] = 0
    ref = StageRef(0, "int64" if part == "index" else x_dtype(x), part)
    return ReductionKernel(domain, dim, (dense("x", x),), (Stage(op, Load(0, x_dtype(x))),),
                           (output("y", ref, kept, tuple(strides), reduced=True),))


def x_dtype(x: torch.Tensor) -> str:
    return str(x.dtype).removeprefix("torch.")


TORCH_REDUCE = {"sum": lambda x, d: x.sum(d, keepdim=True), "prod": lambda x, d: x.prod(d, keepdim=True),
                "max": lambda x, d: x.amax(d, keepdim=True), "min": lambda x, d: x.amin(d, keepdim=True)}


@pytest.mark.parametrize("dim", [0, 1, 2])
@pytest.mark.parametrize("variant", ["row", "column", "split"])
def test_reductions_over_each_dim(dim, variant):
    x = torch.randn(6, 7, 40)
    x[1, 2, 3] = float("nan")
    for op, reference in TORCH_REDUCE.items():
        kernel = _reduce_kernel(x, dim, op)
        if variant == "column" and dim == 2:
            continue  # nothing after the last dim to vectorise across
        (got,) = compile_group("reduction", kernel, variant=variant, lanes=8, block=16, grain=5)(x)
        torch.testing.assert_close(got, reference(x, dim), equal_nan=True, msg=f"{op} over dim {dim}")


@pytest.mark.parametrize("variant", ["row", "column", "split"])
@pytest.mark.parametrize("op", ["argmax", "argmin"])
def test_argmax_argmin_first_occurrence_and_nan(variant, op):
    x = torch.randint(0, 3, (5, 37, 9)).float()  # many ties
    x[2, 20, 4] = float("nan")
    x[2, 30, 4] = float("nan")
    x[3, 7, 1] = float("-inf") if op == "argmax" else float("inf")
    x[3, :, 2] = float("-inf") if op == "argmax" else float("inf")
    (got,) = compile_group("reduction", _reduce_kernel(x, 1, op, part="index"),
                           variant=variant, lanes=4, block=4, grain=6)(x)
    assert got.dtype == torch.int64
    assert torch.equal(got, getattr(torch, op)(x, 1, keepdim=True))


@pytest.mark.parametrize("dim", [0, 1, 2])
def test_softmax_every_dim_and_variant(dim):
    x = torch.randn(9, 33, 17) * 4
    kernel = softmax_kernel(x, dim)
    for variant in ("row", "column", "split"):
        if variant == "column" and dim == 2:
            continue
        (got,) = compile_group("reduction", kernel, variant=variant, grain=8, block=16)(x)
        torch.testing.assert_close(got, torch.softmax(x, dim), msg=variant)


def test_layernorm_with_broadcast_weight_and_stat_outputs():
    rows, n = 37, 300
    x, w, b = torch.randn(rows, n) * 3 + 1, torch.randn(n), torch.randn(n)
    lx, lw, lb = Load(0, "float32"), Load(1, "float32"), Load(2, "float32")
    mean = call("div", StageRef(0, "float32"), f32(float(n)))
    centered = call("sub", lx, mean)
    rstd = call("rsqrt", call("add", call("div", StageRef(1, "float32"), f32(float(n))), f32(1e-5)))
    y = call("add", call("mul", call("mul", centered, rstd), lw), lb)
    kernel = ReductionKernel(
        (rows, n), 1, (dense("x", x), operand("w", w, (0, 1)), operand("b", b, (0, 1))),
        (Stage("sum", lx), Stage("sum", call("mul", centered, centered))),
        (output("y", y, (rows, n)), output("rstd", rstd, (rows, 1), (1, 0), reduced=True)))
    for variant in ("row", "split"):
        got_y, got_rstd = compile_group("reduction", kernel, variant=variant, grain=64)(x, w, b)
        torch.testing.assert_close(got_y, torch.nn.functional.layer_norm(x, (n,), w, b, 1e-5), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got_rstd, torch.rsqrt(x.var(1, unbiased=False, keepdim=True) + 1e-5))


def test_split_loss_over_all_elements_with_rindex():
    a, b = torch.randn(100_000), torch.randn(100_000)
    la, lb = Load(0, "float32"), Load(1, "float32")
    diff = call("sub", la, lb)
    weighted = call("mul", call("mul", diff, diff), call("cast", RIndex(), dtype="float32"))
    kernel = ReductionKernel((100_000,), 0, (dense("a", a), dense("b", b)), (Stage("sum", weighted),),
                             (output("loss", call("div", StageRef(0, "float32"), f32(1e5)), (), (0,), reduced=True),))
    expected = ((a - b).double() ** 2 * torch.arange(100_000).double()).sum() / 1e5
    for variant in ("split", "row"):
        (got,) = compile_group("reduction", kernel, variant=variant, grain=4096)(a, b)
        assert got.shape == ()
        torch.testing.assert_close(got.double(), expected, rtol=1e-6, atol=0)


def test_one_hot_sum_picks_the_indexed_element():
    # Cross entropy's gather as a one-hot sum over the row: targets out of range give 0, as the
    # full sum would; the generated stage reads one element instead of looping over the row.
    rows, n = 40, 300
    x = torch.randn(rows, n)
    x[3, 7] = float("nan")                         # NaN away from the target does not leak in
    t = torch.randint(0, n, (rows,))
    t[3], t[5], t[6] = 8, -100, n + 2
    lx, lt = Load(0, "float32"), Load(1, "int64")
    shifted = call("sub", lx, StageRef(0, "float32"))
    picked = call("where", call("eq", RIndex(), lt, dtype="bool"),
                  call("sub", shifted, call("log", StageRef(1, "float32"))), f32(0.0), dtype="float32")
    kernel = ReductionKernel(
        (rows, n), 1, (dense("x", x), operand("t", t, (1, 0))),
        (Stage("max", lx), Stage("sum", call("exp", shifted)), Stage("sum", picked)),
        (output("nll", call("neg", StageRef(2, "float32")), (rows,), (1, 0), reduced=True),))
    logp = torch.log_softmax(x, 1)
    valid = (t >= 0) & (t < n)
    expected = torch.where(valid, -logp.gather(1, t.clamp(0, n - 1)[:, None])[:, 0], torch.zeros(()))
    for variant in ("row", "split"):
        group = FusedGroup(("n0",), "reduction", kernel, Schedule((("grain", 64), ("variant", variant))))
        assert "One element of the row is picked" in DSL.render([(0, group)], "cpu")
        (got,) = compile_group("reduction", kernel, variant=variant, grain=64)(x, t)
        expected_rows = expected.clone()
        expected_rows[3] = float("nan")             # the max stage sees row 3's NaN, as torch does
        torch.testing.assert_close(got, expected_rows, equal_nan=True)


def test_reduction_of_transposed_operand_and_integer_sum():
    x = torch.randn(30, 20).t()  # (20, 30) with strides (1, 20)
    (got,) = compile_group("reduction", _reduce_kernel(x, 1, "sum"))(x)
    torch.testing.assert_close(got, x.sum(1, keepdim=True))
    xi = torch.randint(-5, 5, (8, 50), dtype=torch.int32)
    kernel = ReductionKernel((8, 50), 1, (dense("x", xi),), (Stage("sum", call("cast", Load(0, "int32"), dtype="int64")),),
                             (output("y", StageRef(0, "int64"), (8,), (1, 0), reduced=True),))
    (got_int,) = compile_group("reduction", kernel)(xi)
    assert torch.equal(got_int, xi.sum(1))


# ---- scans ------------------------------------------------------------------------------------

@pytest.mark.parametrize("dim", [0, 1, 2])
@pytest.mark.parametrize("op", ["sum", "prod"])
def test_scan_along_each_dim_with_prologue_and_epilogue(dim, op):
    x = torch.rand(5, 6, 7) + 0.5
    lx = Load(0, "float32")
    prologue = call("mul", lx, f32(1.5))
    epilogue = call("add", StageRef(0, "float32"), lx)
    kernel = ScanKernel((5, 6, 7), dim, op, prologue, (dense("x", x),), (output("y", epilogue, (5, 6, 7)),))
    scan = torch.cumsum if op == "sum" else torch.cumprod
    for variant in ("row", "column"):
        if variant == "column" and dim == 2:
            continue
        (got,) = compile_group("scan", kernel, variant=variant, block=4)(x)
        torch.testing.assert_close(got, scan(x * 1.5, dim) + x, msg=variant)


def test_scan_of_integers():
    x = torch.randint(-3, 4, (4, 100))
    kernel = ScanKernel((4, 100), 1, "sum", Load(0, "int64"), (dense("x", x),),
                        (output("y", StageRef(0, "int64"), (4, 100)),))
    (got,) = compile_group("scan", kernel)(x)
    assert torch.equal(got, torch.cumsum(x, 1))
