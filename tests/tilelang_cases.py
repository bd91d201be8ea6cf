"""Hand-built kernel specs for the tilelang DSL's families (pointwise, row reductions, matmul with
a fused epilogue) in fp32, fp16 and bf16, each with its inputs and a torch reference. Shared by the
CPU tests (TileLang's C target), the CUDA lowering tests (no GPU) and the GPU tests, at sizes the
caller picks."""
from __future__ import annotations

import hashlib
import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from akg.ir import (Acc, Call, Const, FusedGroup, Load, MatmulKernel, Operand, Output, PointwiseKernel,
                    ReductionKernel, Schedule, Stage, StageRef, TensorType, contiguous_strides)


def call(op, *args, dtype="float32"):
    return Call(op, tuple(args), dtype)


def c32(value):
    return Const(value, "float32")


def tensor_type(t: torch.Tensor) -> TensorType:
    return TensorType(tuple(t.shape), str(t.dtype).removeprefix("torch."),
                      None if t.is_contiguous() else tuple(t.stride()))


def operand(name, t: torch.Tensor, strides) -> Operand:
    return Operand(name, tensor_type(t), tuple(strides))


def dense(name, t: torch.Tensor) -> Operand:
    return operand(name, t, t.stride())


def out(name, expr, shape, dtype="float32", strides=None, reduced=False) -> Output:
    return Output(name, expr, TensorType(tuple(shape), dtype), strides if strides is not None else contiguous_strides(tuple(shape)),
                  reduced)


def reduced_strides(domain, dim) -> tuple[int, ...]:
    strides = list(contiguous_strides(tuple(n for d, n in enumerate(domain) if d != dim)))
    strides.insert(dim, 0)
    return tuple(strides)


def wide(e, dtype):
    """A load widened to fp32, as the graph lowering spells half-precision math."""
    return e if dtype == "float32" else call("cast", e)


def narrow(e, dtype):
    return e if dtype == "float32" else call("cast", e, dtype=dtype)


@dataclass(frozen=True)
class Case:
    name: str
    family: str
    make: Callable[[tuple, str], tuple]   # (sizes, device) -> (kernel, inputs, reference outputs)
    cpu: tuple                            # sizes for TileLang's C target
    gpu: tuple                            # sizes for an H200
    dtype: str = "float32"

    def group(self, kernel, schedule: Schedule = Schedule()) -> FusedGroup:
        return FusedGroup((self.name,), self.family, kernel, schedule)


def _t(dtype):
    return getattr(torch, dtype)


# -- pointwise ---------------------------------------------------------------------------------

def _bias_gelu(dtype):
    def make(s, device):
        rows, cols = s
        x, b = torch.randn(rows, cols, device=device).to(_t(dtype)), torch.randn(cols, device=device).to(_t(dtype))
        v = call("add", wide(Load(0, dtype), dtype), wide(Load(1, dtype), dtype))
        inner = call("mul", c32(0.7978845608), call("add", v, call("mul", c32(0.044715), call("mul", v, call("mul", v, v)))))
        y = call("mul", call("mul", c32(0.5), v), call("add", c32(1.0), call("tanh", inner)))
        kernel = PointwiseKernel((rows, cols), (dense("x", x), operand("b", b, (0, 1))), (out("y", narrow(y, dtype), s, dtype),))
        return kernel, [x, b], [F.gelu(x.float() + b.float(), approximate="tanh").to(_t(dtype))]
    return make


def _nhwc_bias_relu(s, device):
    """relu(x + bias) with x channels-last and the output NCHW: an operand read transposed."""
    n, c, h, w = s
    x = torch.randn(*s, device=device).contiguous(memory_format=torch.channels_last)
    b = torch.randn(c, 1, 1, device=device)
    y = call("max", call("add", Load(0, "float32"), Load(1, "float32")), c32(0.0))
    kernel = PointwiseKernel(s, (dense("x", x), operand("b", b, (0, 1, 0, 0))), (out("y", y, s),))
    return kernel, [x, b], [torch.relu(x + b).contiguous()]


def _int_floor_mod(s, device):
    (n,) = s
    a, b = torch.randint(-50, 50, (n,), device=device), torch.randint(1, 7, (n,), device=device)
    kernel = PointwiseKernel(s, (dense("a", a), dense("b", b)),
                             (out("q", call("floordiv", Load(0, "int64"), Load(1, "int64"), dtype="int64"), s, "int64"),
                              out("m", call("mod", Load(0, "int64"), Load(1, "int64"), dtype="int64"), s, "int64")))
    return kernel, [a, b], [torch.floor_divide(a, b), torch.remainder(a, b)]


def _abs_mask(s, device):
    """|x|, x > 0.5 as a bool tensor, and a where() reading a bool operand; inf kept."""
    x, keep = torch.randn(*s, device=device), torch.rand(*s, device=device) > 0.3
    x[0, 0] = float("inf")
    X = Load(0, "float32")
    kernel = PointwiseKernel(s, (dense("x", x), dense("keep", keep)), (
        out("a", call("abs", X), s),
        out("m", call("gt", X, c32(0.5), dtype="bool"), s, "bool"),
        out("w", call("where", Load(1, "bool"), call("where", call("isinf", X, dtype="bool"), c32(0.0), X), c32(-1.0)), s)))
    return kernel, [x, keep], [x.abs(), x > 0.5, torch.where(keep, torch.where(x.isinf(), 0.0, x), -1.0)]


def _scalar_div(s, device):
    x = torch.randn((), device=device)
    kernel = PointwiseKernel((), (dense("x", x),), (out("y", call("div", Load(0, "float32"), c32(4.0)), ()),))
    return kernel, [x], [x / 4.0]


# -- row reductions ----------------------------------------------------------------------------

def _softmax(dtype):
    def make(s, device):
        x = torch.randn(*s, device=device).to(_t(dtype))
        L = wide(Load(0, dtype), dtype)
        shifted = call("sub", L, StageRef(0, "float32"))
        y = narrow(call("div", call("exp", shifted), StageRef(1, "float32")), dtype)
        lse = narrow(call("add", call("log", StageRef(1, "float32")), StageRef(0, "float32")), dtype)
        kernel = ReductionKernel(s, 1, (dense("x", x),), (Stage("max", L), Stage("sum", call("exp", shifted))),
                                 (out("y", y, s, dtype), out("lse", lse, (s[0],), dtype, reduced_strides(s, 1), True)))
        return kernel, [x], [torch.softmax(x.float(), 1).to(_t(dtype)), torch.logsumexp(x.float(), 1).to(_t(dtype))]
    return make


def _layer_norm(dtype):
    """Layer norm with weight and bias over the last dim: mean, variance, then the affine row."""
    def make(s, device):
        rows, cols = s
        x = torch.randn(rows, cols, device=device).to(_t(dtype))
        w, b = torch.randn(cols, device=device).to(_t(dtype)), torch.randn(cols, device=device).to(_t(dtype))
        L = wide(Load(0, dtype), dtype)
        mean = call("div", StageRef(0, "float32"), c32(float(cols)))
        centered = call("sub", L, mean)
        var = call("div", StageRef(1, "float32"), c32(float(cols)))
        normed = call("mul", centered, call("rsqrt", call("add", var, c32(1e-5))))
        y = narrow(call("add", call("mul", normed, wide(Load(1, dtype), dtype)), wide(Load(2, dtype), dtype)), dtype)
        kernel = ReductionKernel(s, 1, (dense("x", x), operand("w", w, (0, 1)), operand("b", b, (0, 1))),
                                 (Stage("sum", L), Stage("sum", call("mul", centered, centered))), (out("y", y, s, dtype),))
        want = F.layer_norm(x.float(), (cols,), w.float(), b.float()).to(_t(dtype))
        return kernel, [x, w, b], [want]
    return make


def _mean_middle(s, device):
    """mean over the middle dim of (a, b, c): a reduction along a strided dim."""
    x = torch.randn(*s, device=device)
    y = call("div", StageRef(0, "float32"), c32(float(s[1])))
    kernel = ReductionKernel(s, 1, (dense("x", x),), (Stage("sum", Load(0, "float32")),),
                             (out("y", y, (s[0], s[2]), strides=reduced_strides(s, 1), reduced=True),))
    return kernel, [x], [x.mean(1)]


def _row_max_min(s, device):
    x = torch.randn(*s, device=device)
    L = Load(0, "float32")
    kernel = ReductionKernel(s, 1, (dense("x", x),), (Stage("max", L), Stage("min", L)),
                             (out("hi", StageRef(0, "float32"), (s[0],), strides=reduced_strides(s, 1), reduced=True),
                              out("span", call("sub", StageRef(0, "float32"), StageRef(1, "float32")), (s[0],),
                                  strides=reduced_strides(s, 1), reduced=True)))
    return kernel, [x], [x.amax(1), x.amax(1) - x.amin(1)]


def _argmax_last(s, device):
    """argmax along the last dim, with ties: the first index of the maximum, as torch."""
    x = torch.randint(0, 5, s, device=device).float()
    kernel = ReductionKernel(s, 1, (dense("x", x),), (Stage("argmax", Load(0, "float32")),),
                             (out("i", StageRef(0, "int64", "index"), (s[0],), "int64", reduced_strides(s, 1), True),))
    return kernel, [x], [x.argmax(1)]


def _argmin_middle(s, device):
    x = torch.randn(*s, device=device).to(torch.float16)
    kernel = ReductionKernel(s, 1, (dense("x", x),), (Stage("argmin", Load(0, "float16")),),
                             (out("i", StageRef(0, "int64", "index"), (s[0], s[2]), "int64", reduced_strides(s, 1), True),))
    return kernel, [x], [x.argmin(1)]


def _mse_all(s, device):
    (n,) = s
    a, b = torch.randn(n, device=device), torch.randn(n, device=device)
    d = call("sub", Load(0, "float32"), Load(1, "float32"))
    kernel = ReductionKernel(s, 0, (dense("a", a), dense("b", b)), (Stage("sum", call("mul", d, d)),),
                             (out("loss", call("div", StageRef(0, "float32"), c32(float(n))), (), strides=(0,), reduced=True),))
    return kernel, [a, b], [F.mse_loss(a, b)]


# -- matmul + epilogue -------------------------------------------------------------------------

def _linear_bias_gelu(dtype):
    """gelu(x @ w.T + bias), w an nn.Linear weight (read transposed)."""
    def make(s, device):
        m, n, k = s
        x, w = torch.randn(m, k, device=device).to(_t(dtype)), (torch.randn(n, k, device=device) / math.sqrt(k)).to(_t(dtype))
        bias = torch.randn(n, device=device).to(_t(dtype))
        v = call("add", Acc(), wide(Load(0, dtype), dtype))
        y = call("mul", call("mul", c32(0.5), v), call("add", c32(1.0), call("erf", call("mul", v, c32(0.7071067811865476)))))
        kernel = MatmulKernel(1, m, n, k, operand("x", x, (0, k, 1)), operand("w", w, (0, 1, k)),
                              (operand("bias", bias, (0, 0, 1)),), (out("y", narrow(y, dtype), (m, n), dtype, (0, n, 1)),))
        want = F.gelu(x.float() @ w.float().t() + bias.float()).to(_t(dtype))
        return kernel, [x, w, bias], [want]
    return make


def _bmm_residual(dtype):
    """a @ b + residual over a batch, all (batch, rows, cols) contiguous."""
    def make(s, device):
        batch, m, n, k = s
        a = torch.randn(batch, m, k, device=device).to(_t(dtype))
        b = (torch.randn(batch, k, n, device=device) / math.sqrt(k)).to(_t(dtype))
        r = torch.randn(batch, m, n, device=device).to(_t(dtype))
        y = narrow(call("add", Acc(), wide(Load(0, dtype), dtype)), dtype)
        kernel = MatmulKernel(batch, m, n, k, operand("a", a, (m * k, k, 1)), operand("b", b, (k * n, n, 1)),
                              (operand("r", r, (m * n, n, 1)),), (out("y", y, (batch, m, n), dtype, (m * n, n, 1)),))
        return kernel, [a, b, r], [(torch.bmm(a.float(), b.float()) + r.float()).to(_t(dtype))]
    return make


CASES = [
    Case("bias_gelu", "pointwise", _bias_gelu("float32"), (5, 37), (8192, 8192)),
    Case("bias_gelu_fp16", "pointwise", _bias_gelu("float16"), (6, 64), (8192, 8192), "float16"),
    Case("nhwc_bias_relu", "pointwise", _nhwc_bias_relu, (2, 5, 3, 7), (32, 128, 128, 128)),
    Case("int_floor_mod", "pointwise", _int_floor_mod, (1000,), (1 << 24,)),
    Case("scalar_div", "pointwise", _scalar_div, (), ()),
    Case("abs_mask", "pointwise", _abs_mask, (7, 33), (8192, 8192)),
    Case("softmax", "reduction", _softmax("float32"), (6, 300), (4096, 16384)),
    Case("softmax_bf16", "reduction", _softmax("bfloat16"), (5, 2100), (4096, 16384), "bfloat16"),
    Case("layer_norm", "reduction", _layer_norm("float32"), (5, 200), (8192, 8192)),
    Case("layer_norm_fp16", "reduction", _layer_norm("float16"), (7, 96), (8192, 8192), "float16"),
    Case("mean_middle", "reduction", _mean_middle, (3, 17, 10), (64, 4096, 256)),
    Case("row_max_min", "reduction", _row_max_min, (9, 40), (8192, 8192)),
    Case("mse_all", "reduction", _mse_all, (3000,), (1 << 26,)),
    Case("argmax_ties", "reduction", _argmax_last, (7, 300), (8192, 8192)),
    Case("argmin_middle_fp16", "reduction", _argmin_middle, (3, 50, 9), (64, 4096, 256), "float16"),
    Case("linear_bias_gelu", "matmul_epilogue", _linear_bias_gelu("float32"), (33, 40, 48), (4096, 4096, 4096)),
    Case("linear_bias_gelu_fp16", "matmul_epilogue", _linear_bias_gelu("float16"), (33, 40, 48), (4096, 4096, 4096), "float16"),
    Case("bmm_residual_bf16", "matmul_epilogue", _bmm_residual("bfloat16"), (3, 20, 24, 40), (16, 1024, 1024, 1024), "bfloat16"),
]

TOLERANCE = {"float32": 1e-4, "float16": 1e-2, "bfloat16": 2e-2}


def load_group(source: str, folder: Path, index: int = 0):
    """Import rendered source from a file (TileLang reads a program's source from its file) and
    return its launcher ``_akg_g{index}``."""
    path = folder / f"group_{hashlib.sha256(source.encode()).hexdigest()[:16]}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, f"_akg_g{index}")


def max_error(got, want) -> float:
    """Largest elementwise error relative to the reference's scale; mismatches for integers."""
    worst = 0.0
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, w.shape, g.dtype, w.dtype)
        if not w.is_floating_point():
            worst = max(worst, float((g != w).sum()))
            continue
        g, w = g.float(), w.float()
        finite = torch.isfinite(w)
        # inf and nan must sit where the reference has them (else the error is inf).
        if not torch.equal(finite, torch.isfinite(g)) or not torch.equal(g[~finite].nan_to_num(), w[~finite].nan_to_num()):
            return float("inf")
        if finite.any():
            worst = max(worst, float((g[finite] - w[finite]).abs().max() / (w[finite].abs().max() + 1e-6)))
    return worst
