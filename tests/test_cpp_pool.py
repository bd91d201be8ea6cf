"""2-d pooling kernels of the cpp DSL, written as specs by hand, built by g++ and compared to torch."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from akg.ir import Acc, Operand, PoolKernel, TensorType, contiguous_strides
from test_cpp_support import Load, call, compile_group, f32, output

from akg.dsls.cpp.lowering import interior_columns


@pytest.fixture(autouse=True, scope="module")
def _private_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AKG_CACHE_DIR", str(tmp_path_factory.mktemp("akg-cache")))
        yield


def _pool(x, op, k, s, p, d=(1, 1), include_pad=True, divisor=None, epilogue=None, operands=(), **knobs):
    if op == "max":
        ref = F.max_pool2d(x, k, s, p, d)
    else:
        ref = F.avg_pool2d(x, k, s, p, False, include_pad, divisor)
    dtype = str(x.dtype).removeprefix("torch.")
    layout = None if x.is_contiguous() else tuple(x.stride())
    expr = epilogue if epilogue is not None else Acc(dtype)
    kernel = PoolKernel(op, Operand("x", TensorType(tuple(x.shape), dtype, layout), tuple(x.stride())),
                        tuple(ref.shape), k, s, p, d, include_pad, divisor, tuple(operands),
                        (output("y", expr, tuple(ref.shape)),))
    return compile_group("pool", kernel, **knobs), ref


@pytest.mark.parametrize("k,s,p,d", [((3, 3), (2, 2), (1, 1), (1, 1)), ((2, 2), (2, 2), (0, 0), (1, 1)),
                                     ((3, 2), (1, 2), (1, 0), (2, 1)), ((5, 5), (3, 3), (2, 2), (1, 1))])
def test_max_pool_matches_torch_with_padding_and_dilation(k, s, p, d):
    x = torch.randn(2, 3, 17, 19)
    x[0, 1, 4, 5] = float("nan")      # NaN wins inside its windows, as in torch
    launch, ref = _pool(x, "max", k, s, p, d, block=3)
    torch.testing.assert_close(launch(x)[0], ref, equal_nan=True, rtol=0, atol=0)


@pytest.mark.parametrize("include_pad,divisor", [(True, None), (False, None), (True, 5)])
@pytest.mark.parametrize("k,s,p", [((3, 3), (2, 2), (1, 1)), ((2, 2), (2, 2), (0, 0)), ((3, 2), (1, 2), (1, 1))])
def test_avg_pool_divisors_match_torch(k, s, p, include_pad, divisor):
    x = torch.randn(2, 3, 16, 13)
    launch, ref = _pool(x, "avg", k, s, p, include_pad=include_pad, divisor=divisor)
    torch.testing.assert_close(launch(x)[0], ref)


def test_pool_of_channels_last_input_with_epilogue_operand():
    x = torch.randn(2, 4, 12, 10).to(memory_format=torch.channels_last)
    bias = torch.randn(4)
    out_shape = (2, 4, 6, 5)
    bias_op = Operand("b", TensorType((4,), "float32"), (0, 1, 0, 0))
    relu = call("max", call("add", Acc("float32"), Load(0, "float32")), f32(0.0))
    launch, ref = _pool(x, "max", (2, 2), (2, 2), (0, 0), epilogue=relu, operands=(bias_op,), block=1)
    assert tuple(ref.shape) == out_shape
    torch.testing.assert_close(launch(x, bias)[0], (ref + bias.view(1, 4, 1, 1)).clamp_min(0))


def test_half_input_pools_in_float():
    x = torch.randn(1, 2, 9, 9).to(torch.bfloat16)
    launch, ref = _pool(x, "avg", (3, 3), (2, 2), (1, 1), epilogue=call("cast", Acc("float32"), dtype="bfloat16"))
    torch.testing.assert_close(launch(x)[0], ref)


def test_interior_columns_need_no_bounds_checks():
    for size, kernel, stride, padding, dilation in [(19, 3, 2, 1, 1), (10, 5, 3, 2, 1), (7, 3, 1, 1, 3), (4, 5, 1, 2, 1)]:
        out = (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
        lo, hi = interior_columns(size, out, kernel, stride, padding, dilation)
        inside = [c for c in range(out)
                  if all(0 <= c * stride - padding + t * dilation < size for t in range(kernel))]
        assert list(range(lo, hi)) == inside
