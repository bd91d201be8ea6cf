"""Builders shared by the cpp DSL tests: kernel specs written by hand, rendered, built and run."""
from __future__ import annotations

import torch

from akg.dsls.cpp import CppDSL
from akg.ir import (Call, Const, FusedGroup, Load, Operand, Output, PointwiseKernel, ReductionKernel,
                    Schedule, ScanKernel, Stage, StageRef, TensorType, contiguous_strides)

DSL = CppDSL()
TORCH_DTYPE = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
               "bfloat16": torch.bfloat16, "int64": torch.int64, "int32": torch.int32, "bool": torch.bool}


def operand(name: str, tensor: torch.Tensor, domain_strides: tuple[int, ...]) -> Operand:
    dtype = str(tensor.dtype).removeprefix("torch.")
    strides = None if tensor.is_contiguous() else tuple(tensor.stride())
    return Operand(name, TensorType(tuple(tensor.shape), dtype, strides), domain_strides)


def dense(name: str, tensor: torch.Tensor) -> Operand:
    """An operand read at the domain point equal to its own index (domain == tensor shape)."""
    return operand(name, tensor, tuple(tensor.stride()))


def output(name: str, expr, shape: tuple[int, ...], domain_strides=None, reduced=False) -> Output:
    return Output(name, expr, TensorType(tuple(shape), expr.dtype),
                  domain_strides if domain_strides is not None else contiguous_strides(shape), reduced)


def call(op: str, *args, dtype: str | None = None) -> Call:
    return Call(op, tuple(args), dtype or args[0].dtype)


def f32(value) -> Const:
    return Const(value, "float32")


def compile_group(family: str, kernel, **knobs):
    """Render one group, build it and return its ``_akg_g0`` launcher."""
    group = FusedGroup(("n0",), family, kernel, Schedule(tuple(sorted(knobs.items()))))
    group.verify()
    source = DSL.render([(0, group)], "cpu")
    namespace: dict = {}
    exec(compile(source, "<cpp candidate>", "exec"), namespace)
    return namespace["_akg_g0"]


def reduce_last(x: torch.Tensor):
    """Domain and per-row output strides for a reduction over the last dim of ``x``."""
    domain = tuple(x.shape)
    row_shape = domain[:-1]
    return domain, row_shape, contiguous_strides(row_shape) + (0,)


def softmax_kernel(x: torch.Tensor, dim: int) -> ReductionKernel:
    domain = tuple(x.shape)
    xs = Load(0, "float32")
    row_strides = list(contiguous_strides(domain))
    out_stats_shape = tuple(1 if d == dim else n for d, n in enumerate(domain))
    shifted = call("exp", call("sub", xs, StageRef(0, "float32")))
    return ReductionKernel(
        domain, dim, (dense("x", x),),
        (Stage("max", xs), Stage("sum", shifted)),
        (output("y", call("div", shifted, StageRef(1, "float32")), domain),))


__all__ = ["torch", "DSL", "TORCH_DTYPE", "operand", "dense", "output", "call", "f32", "compile_group",
           "reduce_last", "softmax_kernel", "Load", "Const", "Call", "StageRef", "Stage",
           "PointwiseKernel", "ReductionKernel", "ScanKernel", "contiguous_strides"]
