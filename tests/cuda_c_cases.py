"""Hand-written kernel specs covering every cuda_c family and variant, shared by the compile
tests (nvcc, no GPU) and the GPU tests (run and compared with torch)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from akg.ir import FusedGroup, Load, PointwiseKernel, ReductionKernel, RIndex, ScanKernel, Schedule, Stage, StageRef
from test_cpp_support import call, contiguous_strides, dense, f32, operand, output, softmax_kernel


@dataclass(frozen=True)
class Case:
    name: str
    family: str
    make: Callable[[], tuple[object, list[torch.Tensor], Callable]]   # -> (kernel, inputs, torch reference)
    knobs: tuple = ()

    def group(self, kernel) -> FusedGroup:
        return FusedGroup(("n0",), self.family, kernel, Schedule(tuple(sorted(self.knobs))))


def _pointwise_chain(dtype=torch.float32, shape=(64, 1024)):
    def make():
        x, y = torch.randn(shape).to(dtype), torch.randn(shape[-1]).to(dtype)
        name = str(dtype).removeprefix("torch.")
        a, b = Load(0, name), Load(1, name)
        wide = lambda e: call("cast", e, dtype="float32") if name != "float32" else e
        expr = call("sigmoid", call("add", wide(a), call("mul", wide(b), f32(2.0))))
        out = expr if name == "float32" else call("cast", expr, dtype=name)
        bstrides = (0, 1)
        kernel = PointwiseKernel(shape, (dense("x", x), operand("y", y, bstrides)), (output("o", out, shape),))
        return kernel, [x, y], lambda x, y: torch.sigmoid(x.float() + y.float() * 2).to(dtype)
    return make


def _pointwise_transposed():
    def make():
        x = torch.randn(96, 80).t()          # read transposed: no vectors for it
        kernel = PointwiseKernel((80, 96), (operand("x", x, tuple(x.stride())),),
                                 (output("o", call("max", Load(0, "float32"), f32(0.0)), (80, 96)),))
        return kernel, [x], lambda x: x.clamp_min(0)
    return make


def _pointwise_int():
    def make():
        a = torch.randint(-50, 50, (1000,))
        b = torch.randint(1, 7, (1000,))
        kernel = PointwiseKernel((1000,), (dense("a", a), dense("b", b)),
                                 (output("o", call("mod", Load(0, "int64"), Load(1, "int64")), (1000,)),
                                  output("p", call("floordiv", Load(0, "int64"), Load(1, "int64")), (1000,))))
        return kernel, [a, b], lambda a, b: (torch.remainder(a, b), torch.floor_divide(a, b))
    return make


def _softmax(shape=(32, 3000), dim=1):
    def make():
        x = torch.randn(shape)
        return softmax_kernel(x, dim), [x], lambda x: torch.softmax(x, dim)
    return make


def _row_sum_mean(shape=(16, 5000)):
    def make():
        x = torch.randn(shape)
        rows = shape[:-1]
        xs = Load(0, "float32")
        kernel = ReductionKernel(shape, 1, (dense("x", x),), (Stage("sum", xs),),
                                 (output("m", call("div", StageRef(0, "float32"), f32(float(shape[1]))), rows,
                                         contiguous_strides(rows) + (0,), reduced=True),))
        return kernel, [x], lambda x: x.mean(1)
    return make


def _argmax(shape=(40, 777)):
    def make():
        x = torch.randn(shape)
        x[3, 5] = float("nan")
        rows = shape[:-1]
        kernel = ReductionKernel(shape, 1, (dense("x", x),), (Stage("argmax", Load(0, "float32")),),
                                 (output("i", StageRef(0, "int64", "index"), rows, contiguous_strides(rows) + (0,), reduced=True),))
        return kernel, [x], lambda x: x.argmax(1)
    return make


def _bool_any_and_argmax(shape=(16, 300)):
    def make():
        x = torch.rand(shape) > 0.995
        rows = shape[:-1]
        xs = Load(0, "bool")
        kernel = ReductionKernel(shape, 1, (dense("x", x),), (Stage("max", xs), Stage("argmax", xs)),
                                 (output("any", StageRef(0, "bool"), rows, contiguous_strides(rows) + (0,), reduced=True),
                                  output("first", StageRef(1, "int64", "index"), rows, contiguous_strides(rows) + (0,),
                                         reduced=True)))
        return kernel, [x], lambda x: (x.any(1), x.to(torch.uint8).argmax(1))
    return make


def _column_max(shape=(8, 300, 200)):
    def make():
        x = torch.randn(shape)
        out_shape = (shape[0], shape[2])
        kernel = ReductionKernel(shape, 1, (dense("x", x),), (Stage("max", Load(0, "float32")),),
                                 (output("m", StageRef(0, "float32"), out_shape, (shape[2], 0, 1), reduced=True),))
        return kernel, [x], lambda x: x.amax(1)
    return make


def _scan(shape=(24, 1000), dim=1, op="sum"):
    def make():
        x = torch.randn(shape)
        strides = list(contiguous_strides(shape))
        kernel = ScanKernel(shape, dim, op, Load(0, "float32"), (dense("x", x),),
                            (output("c", StageRef(0, "float32"), shape),))
        ref = {"sum": lambda x: torch.cumsum(x, dim), "max": lambda x: torch.cummax(x, dim).values}[op]
        return kernel, [x], ref
    return make


CASES = [
    Case("pointwise_vec4", "pointwise", _pointwise_chain(), (("threads", 256), ("vec", 4))),
    Case("pointwise_scalar", "pointwise", _pointwise_chain(), (("threads", 128), ("vec", 1))),
    Case("pointwise_half", "pointwise", _pointwise_chain(torch.float16), (("threads", 256), ("vec", 4))),
    Case("pointwise_bf16", "pointwise", _pointwise_chain(torch.bfloat16), (("threads", 256), ("vec", 2))),
    Case("pointwise_transposed", "pointwise", _pointwise_transposed(), (("threads", 256), ("vec", 4))),
    Case("pointwise_int", "pointwise", _pointwise_int(), (("threads", 256), ("vec", 4))),
    Case("softmax_row", "reduction", _softmax(), (("split", 1), ("threads", 256), ("variant", "row"))),
    Case("softmax_middle_column", "reduction", _softmax((4, 300, 64), 1), (("split", 1), ("threads", 128), ("variant", "column"))),
    Case("mean_row", "reduction", _row_sum_mean(), (("split", 1), ("threads", 512), ("variant", "row"))),
    Case("mean_split", "reduction", _row_sum_mean((4, 1 << 16)), (("split", 8), ("threads", 256), ("variant", "split"))),
    Case("argmax_row", "reduction", _argmax(), (("split", 1), ("threads", 128), ("variant", "row"))),
    Case("bool_any_argmax_row", "reduction", _bool_any_and_argmax(), (("split", 1), ("threads", 128), ("variant", "row"))),
    Case("max_column", "reduction", _column_max(), (("split", 1), ("threads", 256), ("variant", "column"))),
    Case("cumsum_row", "scan", _scan(), (("threads", 128), ("variant", "row"))),
    Case("cummax_row", "scan", _scan(op="max"), (("threads", 256), ("variant", "row"))),
    Case("cumsum_column", "scan", _scan((6, 500, 64), 1), (("threads", 128), ("variant", "column"))),
]
