"""Hand-built kernel specs for every Triton family, with inputs and a torch reference.

Shared by the interpreter tests (tiny sizes), the GPU tests and bench/triton_kernels.py (GPU sizes),
so all three exercise the same kernels.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from akg.ir import (Acc, Call, Const, FusedGroup, Load, MatmulKernel, Operand, Output, PointwiseKernel,
                    PoolKernel, ReductionKernel, RIndex, ScanKernel, Schedule, Stage, StageRef, TensorType,
                    contiguous_strides)

F32 = "float32"


def ttype(shape, dtype=F32) -> TensorType:
    return TensorType(tuple(shape), dtype)


def call(op, *args, dtype=F32):
    return Call(op, tuple(args), dtype)


def dense(value, shape, dtype=F32) -> Operand:
    return Operand(value, ttype(shape, dtype), contiguous_strides(tuple(shape)))


def reduced_strides(domain, dim) -> tuple[int, ...]:
    strides = list(contiguous_strides(tuple(n for d, n in enumerate(domain) if d != dim)))
    strides.insert(dim, 0)
    return tuple(strides)


@dataclass(frozen=True)
class Case:
    name: str
    family: str
    build: Callable[[tuple], object]                 # sizes -> kernel spec
    inputs: Callable[[tuple, str], list]             # sizes, device -> tensors
    reference: Callable[[list], list]                # tensors -> expected outputs
    bytes_moved: Callable[[tuple], float]
    flops: Callable[[tuple], float] = lambda s: 0.0

    def group(self, sizes, schedule: Schedule = Schedule()) -> FusedGroup:
        return FusedGroup((self.name,), self.family, self.build(sizes), schedule)


# -- pointwise: y = gelu_tanh(x + bias) * 0.5 over (rows, cols) with a broadcast bias
def _bias_gelu(s):
    rows, cols = s
    x = call("add", Load(0, F32), Load(1, F32))
    inner = call("mul", Const(0.7978845608, F32), call("add", x, call("mul", Const(0.044715, F32),
                                                                     call("mul", x, call("mul", x, x)))))
    y = call("mul", call("mul", Const(0.5, F32), x), call("add", Const(1.0, F32), call("tanh", inner)))
    bias = Operand("b", ttype((cols,)), (0, 1))
    return PointwiseKernel((rows, cols), (dense("x", s), bias), (Output("y", y, ttype(s), contiguous_strides(s)),))


def _bias_gelu_ref(t):
    return [F.gelu(t[0] + t[1], approximate="tanh")]


# -- relu(x + bias) where x is channels-last (NHWC in memory) and the output NCHW-contiguous:
#    the channels-last convolution epilogue, an operand read transposed to the output
def _nhwc_bias_relu(s):
    n, c, h, w = s
    x = Operand("x", ttype(s), (c * h * w, 1, w * c, c))
    bias = Operand("b", ttype((c, 1, 1)), (0, 1, 0, 0))
    y = call("max", call("add", Load(0, F32), Load(1, F32)), Const(0.0, F32))
    return PointwiseKernel(s, (x, bias), (Output("y", y, ttype(s), contiguous_strides(s)),))


def _nhwc_inputs(s, device):
    return [torch.randn(*s, device=device).contiguous(memory_format=torch.channels_last),
            torch.randn(s[1], 1, 1, device=device)]


# -- a 0-d pointwise kernel (a loss's final division): offsets are constant, yet loads are blocks
def _scalar_div(s):
    y = call("div", Load(0, F32), Const(4.0, F32))
    return PointwiseKernel((), (Operand("x", ttype(()), ()),), (Output("y", y, ttype(()), ()),))


# -- softmax + logsumexp along dim 1 of (rows, cols): max, sum(exp), then the normalised row
def _softmax(s, dim=1):
    L = Load(0, F32)
    shifted = call("sub", L, StageRef(0, F32))
    y = call("div", call("exp", shifted), StageRef(1, F32))
    lse = call("add", call("log", StageRef(1, F32)), StageRef(0, F32))
    out_shape = tuple(n for d, n in enumerate(s) if d != dim)
    return ReductionKernel(s, dim, (dense("x", s),), (Stage("max", L), Stage("sum", call("exp", shifted))),
                           (Output("y", y, ttype(s), contiguous_strides(s)),
                            Output("lse", lse, ttype(out_shape), reduced_strides(s, dim), reduced=True)))


# -- layer norm without affine, two stages: mean, then variance; eps 1e-5
def _layer_norm(s):
    rows, cols = s
    L = Load(0, F32)
    mean = call("div", StageRef(0, F32), Const(float(cols), F32))
    centered = call("sub", L, mean)
    var = call("div", StageRef(1, F32), Const(float(cols), F32))
    y = call("mul", centered, call("rsqrt", call("add", var, Const(1e-5, F32))))
    return ReductionKernel(s, 1, (dense("x", s),), (Stage("sum", L), Stage("sum", call("mul", centered, centered))),
                           (Output("y", y, ttype(s), contiguous_strides(s)),))


# -- sum over the middle dim of (a, b, c): a column reduction
def _sum_middle(s):
    out = (s[0], s[2])
    return ReductionKernel(s, 1, (dense("x", s),), (Stage("sum", Load(0, F32)),),
                           (Output("y", StageRef(0, F32), ttype(out), reduced_strides(s, 1), reduced=True),))


# -- mean((a - b)^2) over every element: one long row, the case a split reduction exists for
def _mse_all(s):
    (n,) = s
    d = call("sub", Load(0, F32), Load(1, F32))
    mean = call("div", StageRef(0, F32), Const(float(n), F32))
    return ReductionKernel(s, 0, (dense("a", s), dense("b", s)), (Stage("sum", call("mul", d, d)),),
                           (Output("loss", mean, ttype(()), (0,), reduced=True),))


# -- logsumexp along dim 1 alone: the online max/sum pair with only a reduced output
def _logsumexp(s):
    L = Load(0, F32)
    lse = call("add", call("log", StageRef(1, F32)), StageRef(0, F32))
    stages = (Stage("max", L), Stage("sum", call("exp", call("sub", L, StageRef(0, F32)))))
    return ReductionKernel(s, 1, (dense("x", s),), stages,
                           (Output("lse", lse, ttype((s[0],)), reduced_strides(s, 1), reduced=True),))


def _argmax_last(s):
    return ReductionKernel(s, 1, (dense("x", s),), (Stage("argmax", Load(0, F32)),),
                           (Output("i", StageRef(0, "int64", "index"), ttype((s[0],), "int64"),
                                   reduced_strides(s, 1), reduced=True),))


def _argmin_first(s):
    return ReductionKernel(s, 0, (dense("x", s),), (Stage("argmin", Load(0, F32)),),
                           (Output("i", StageRef(0, "int64", "index"), ttype((s[1],), "int64"),
                                   reduced_strides(s, 0), reduced=True),))


def _cumsum(s):
    return ScanKernel(s, 1, "sum", Load(0, F32), (dense("x", s),),
                      (Output("y", StageRef(0, F32), ttype(s), contiguous_strides(s)),))


def _max_pool(s):
    n, c, h, w = s
    oh, ow = (h + 2 - 3) // 2 + 1, (w + 2 - 3) // 2 + 1
    out = (n, c, oh, ow)
    y = call("max", Acc(), Const(0.0, F32))   # fused relu
    return PoolKernel("max", dense("x", s), out, (3, 3), (2, 2), (1, 1),
                      outputs=(Output("y", y, ttype(out), contiguous_strides(out)),))


def _linear_bias_relu(s):
    m, n, k = s
    a = Operand("x", ttype((m, k)), (0, k, 1))
    b = Operand("w", ttype((n, k)), (0, 1, k))           # nn.Linear weight, read transposed
    bias = Operand("bias", ttype((n,)), (0, 0, 1))
    y = call("max", call("add", Acc(), Load(0, F32)), Const(0.0, F32))
    return MatmulKernel(1, m, n, k, a, b, (bias,), (Output("y", y, ttype((m, n)), (0, n, 1)),))


def _bmm_scale(s):
    b, m, n, k = s
    x = Operand("x", ttype((b, m, k)), (m * k, k, 1))
    y = Operand("y", ttype((b, k, n)), (k * n, n, 1))
    out = call("mul", Acc(), Const(0.5, F32))
    return MatmulKernel(b, m, n, k, x, y, (), (Output("z", out, ttype((b, m, n)), (m * n, n, 1)),))


def _ties(s, device):
    """Rows with repeated maxima and a constant row: argmax must return the first index."""
    x = torch.randint(0, 3, s, device=device).float()
    x[0] = 1.0
    return [x]


def _randn(*shapes):
    return lambda s, device: [torch.randn(*shape(s), device=device) for shape in shapes]


CASES = [
    Case("bias_gelu", "pointwise", _bias_gelu, _randn(lambda s: s, lambda s: (s[1],)), _bias_gelu_ref,
         lambda s: 4 * (2 * s[0] * s[1] + s[1])),
    Case("softmax_lse", "reduction", _softmax, _randn(lambda s: s),
         lambda t: [torch.softmax(t[0], 1), torch.logsumexp(t[0], 1)], lambda s: 4 * (2 * s[0] * s[1] + s[0])),
    Case("layer_norm", "reduction", _layer_norm, _randn(lambda s: s),
         lambda t: [F.layer_norm(t[0], (t[0].shape[1],))], lambda s: 8 * s[0] * s[1]),
    Case("sum_middle", "reduction", _sum_middle, _randn(lambda s: s),
         lambda t: [t[0].sum(1)], lambda s: 4 * (math.prod(s) + s[0] * s[2])),
    Case("nhwc_bias_relu", "pointwise", _nhwc_bias_relu, _nhwc_inputs, lambda t: [torch.relu(t[0] + t[1]).contiguous()],
         lambda s: 8 * math.prod(s)),
    Case("scalar_div", "pointwise", _scalar_div, lambda s, device: [torch.randn((), device=device)],
         lambda t: [t[0] / 4.0], lambda s: 8),
    Case("mse_all", "reduction", _mse_all, _randn(lambda s: s, lambda s: s),
         lambda t: [F.mse_loss(t[0], t[1])], lambda s: 8 * s[0]),
    Case("logsumexp", "reduction", _logsumexp, _randn(lambda s: s),
         lambda t: [torch.logsumexp(t[0], 1)], lambda s: 4 * (s[0] * s[1] + s[0])),
    Case("argmax_last", "reduction", _argmax_last, _randn(lambda s: s),
         lambda t: [t[0].argmax(1)], lambda s: 4 * s[0] * s[1] + 8 * s[0]),
    Case("argmax_ties", "reduction", _argmax_last, _ties, lambda t: [t[0].argmax(1)],
         lambda s: 4 * s[0] * s[1] + 8 * s[0]),
    Case("argmin_first", "reduction", _argmin_first, _randn(lambda s: s),
         lambda t: [t[0].argmin(0)], lambda s: 4 * s[0] * s[1] + 8 * s[1]),
    Case("cumsum", "scan", _cumsum, _randn(lambda s: s), lambda t: [t[0].cumsum(1)], lambda s: 8 * s[0] * s[1]),
    Case("max_pool_relu", "pool", _max_pool, _randn(lambda s: s),
         lambda t: [torch.relu(F.max_pool2d(t[0], 3, 2, 1))],
         lambda s: 4 * math.prod(s) * 1.25),
    Case("linear_bias_relu", "matmul_epilogue", _linear_bias_relu, _randn(lambda s: (s[0], s[2]), lambda s: (s[1], s[2]), lambda s: (s[1],)),
         lambda t: [torch.relu(F.linear(t[0], t[1], t[2]))],
         lambda s: 4 * (s[0] * s[2] + s[1] * s[2] + s[0] * s[1]), lambda s: 2.0 * s[0] * s[1] * s[2]),
    Case("bmm_scale", "matmul_epilogue", _bmm_scale, _randn(lambda s: (s[0], s[1], s[3]), lambda s: (s[0], s[3], s[2])),
         lambda t: [torch.bmm(t[0], t[1]) * 0.5],
         lambda s: 4 * s[0] * (s[1] * s[3] + s[3] * s[2] + s[1] * s[2]), lambda s: 2.0 * s[0] * s[1] * s[2] * s[3]),
]

# Tiny sizes for the interpreter; GPU sizes of tens to hundreds of MB for the device.
CPU_SIZES = {"nhwc_bias_relu": (2, 5, 3, 7), "scalar_div": (), "mse_all": (3000,), "logsumexp": (3, 700), "bias_gelu": (5, 37), "softmax_lse": (6, 300), "layer_norm": (5, 200), "sum_middle": (3, 17, 10),
             "argmax_last": (7, 50), "argmax_ties": (6, 45), "argmin_first": (40, 9), "cumsum": (4, 70), "max_pool_relu": (2, 3, 9, 11),
             "linear_bias_relu": (33, 40, 48), "bmm_scale": (3, 20, 17, 40)}
GPU_SIZES = {"nhwc_bias_relu": (32, 128, 128, 128), "scalar_div": (), "mse_all": (8192 * 8192,), "logsumexp": (16, 1 << 20), "bias_gelu": (8192, 8192), "softmax_lse": (4096, 16384), "layer_norm": (8192, 8192),
             "sum_middle": (64, 4096, 256), "argmax_last": (8192, 8192), "argmax_ties": (4096, 4096), "argmin_first": (8192, 8192),
             "cumsum": (8192, 4096), "max_pool_relu": (32, 64, 224, 224), "linear_bias_relu": (4096, 4096, 4096),
             "bmm_scale": (16, 512, 512, 8192)}


def load_group(source: str, index: int = 0):
    """Import rendered DSL text from a file (Triton reads a kernel's source from its file) and
    return its launcher ``_akg_g{index}``."""
    folder = Path(tempfile.mkdtemp(prefix="akg-triton-"))
    path = folder / f"group_{hashlib.sha256(source.encode()).hexdigest()[:16]}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, f"_akg_g{index}")


def max_error(got: list, want: list) -> float:
    """Largest elementwise error relative to the reference scale; exact match for integer outputs."""
    worst = 0.0
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, w.shape, g.dtype, w.dtype)
        if not w.is_floating_point():
            worst = max(worst, float((g != w).sum()))
            continue
        worst = max(worst, float((g - w).abs().max() / (w.abs().max() + 1e-6)))
    return worst


def run_on_interpreter(requests: list[dict]) -> dict[str, float | str]:
    """Render and run cases on the CPU: {request id: max error, or the failure as text}.
    Each request: {"id", "case", "sizes" (optional), "knobs" (optional; default: the DSL's own)}."""
    from akg.dsls.triton.dsl import TritonDSL
    from akg.plugins import get_backend

    dsl, cases = TritonDSL(), {c.name: c for c in CASES}
    results: dict[str, float | str] = {}
    for req in requests:
        case = cases[req["case"]]
        sizes = tuple(req.get("sizes") or CPU_SIZES[case.name])
        knobs = req.get("knobs")
        schedule = (Schedule().with_(**knobs) if knobs is not None
                    else dsl.schedules(case.group(sizes), get_backend("cpu").detect())[0])
        try:
            launcher = load_group(dsl.render([(0, case.group(sizes, schedule))], "cpu"))
            torch.manual_seed(0)
            inputs = case.inputs(sizes, "cpu")
            results[req["id"]] = max_error(list(launcher(*inputs)), case.reference(inputs))
        except Exception as exc:   # reported per request so one failure does not hide the others
            results[req["id"]] = f"{type(exc).__name__}: {exc}"
    return results


if __name__ == "__main__":
    # Run as a fresh process with TRITON_INTERPRET=1 set before triton is first imported.
    print(json.dumps(run_on_interpreter(json.load(sys.stdin))))
