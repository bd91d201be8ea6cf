"""The typed IR that agents pass to each other.

Every object is a frozen dataclass with a ``verify()`` that raises ``IRError`` naming what is wrong.
Stage boundaries (analyzer -> designer -> coder -> tester) call ``verify()`` so that a malformed
object is caught where it is made, not three stages later inside a template.

Layers:
- ``Graph``: the traced program (values, nodes), DSL-neutral.
- ``Expr``: scalar expression trees for pointwise / prologue / epilogue code. Each DSL renders them
  through its own op table.
- Kernel specs (``PointwiseKernel``, ``ReductionKernel``, ...): one fused group's work described
  over an iteration *domain* with per-operand element strides (0 = broadcast). Templates consume
  these; they never look at the Graph.
- ``KernelPlan`` / ``FusedGroup`` / ``Schedule``: what runs, in order, and with which knobs.
- ``Candidate`` / ``Verdict``: a generated program and what the harness found.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from typing import Any, Union

DTYPES = ("float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool")
FLOAT_DTYPES = ("float64", "float32", "float16", "bfloat16")
NODE_KINDS = ("pointwise", "reduction", "matmul", "conv", "pool", "scan", "gather", "view", "library")


class IRError(ValueError):
    """An IR object broke one of its invariants."""


def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise IRError(msg)


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, acc = [], 1
    for size in reversed(shape):
        strides.append(acc)
        acc *= max(size, 1)
    return tuple(reversed(strides))


# ----------------------------------------------------------------------------------------------
# Graph
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TensorType:
    shape: tuple[int, ...]
    dtype: str
    strides: tuple[int, ...] | None = None  # None means contiguous

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def itemsize(self) -> int:
        return {"float64": 8, "int64": 8, "float32": 4, "int32": 4, "float16": 2, "bfloat16": 2,
                "int16": 2, "int8": 1, "uint8": 1, "bool": 1}[self.dtype]

    @property
    def nbytes(self) -> int:
        return self.numel * self.itemsize

    def layout(self) -> tuple[int, ...]:
        return self.strides if self.strides is not None else contiguous_strides(self.shape)

    def verify(self) -> None:
        _require(self.dtype in DTYPES, f"unknown dtype {self.dtype!r}")
        _require(all(isinstance(s, int) and s >= 0 for s in self.shape), f"bad shape {self.shape}")
        if self.strides is not None:
            _require(len(self.strides) == len(self.shape), f"strides {self.strides} do not match shape {self.shape}")


@dataclass(frozen=True)
class Node:
    id: str
    op: str                     # akg primitive (add, sum, softmax, ...) or aten overload for library nodes
    kind: str                   # one of NODE_KINDS
    inputs: tuple[str, ...]     # value names
    outputs: tuple[str, ...]    # value names
    attrs: tuple[tuple[str, Any], ...] = ()

    def attr(self, key: str, default: Any = None) -> Any:
        for k, v in self.attrs:
            if k == key:
                return v
        return default

    def verify(self) -> None:
        _require(self.kind in NODE_KINDS, f"node {self.id}: unknown kind {self.kind!r}")
        _require(bool(self.outputs), f"node {self.id}: no outputs")


@dataclass(frozen=True)
class Graph:
    inputs: tuple[str, ...]                         # user inputs, in forward() order
    params: tuple[str, ...]                         # parameter / buffer values (names "p:<fqn>")
    nodes: tuple[Node, ...]
    outputs: tuple[str, ...]
    types: tuple[tuple[str, TensorType], ...]       # type of every tensor value
    constants: tuple[tuple[str, Any], ...] = ()     # non-tensor inputs specialised at trace time
    returns_tuple: bool = False                     # forward returned a tuple/list (else one tensor)

    def type_of(self, name: str) -> TensorType:
        for k, t in self.types:
            if k == name:
                return t
        raise IRError(f"value {name!r} has no type")

    def type_map(self) -> dict[str, TensorType]:
        return dict(self.types)

    def producers(self) -> dict[str, Node]:
        return {out: n for n in self.nodes for out in n.outputs}

    def consumers(self) -> dict[str, list[Node]]:
        users: dict[str, list[Node]] = {}
        for n in self.nodes:
            for i in n.inputs:
                users.setdefault(i, []).append(n)
        return users

    def verify(self) -> None:
        known = set(self.inputs) | set(self.params) | {k for k, _ in self.constants}
        typed = {k for k, _ in self.types}
        for name, t in self.types:
            t.verify()
        for n in self.nodes:
            n.verify()
            for i in n.inputs:
                _require(i in known, f"node {n.id} ({n.op}) reads {i!r} before it is defined")
            known.update(n.outputs)
        for o in self.outputs:
            _require(o in known, f"graph output {o!r} is never defined")
            _require(o in typed, f"graph output {o!r} has no type")


# ----------------------------------------------------------------------------------------------
# Scalar expressions
# ----------------------------------------------------------------------------------------------

# op -> arity. Each DSL has one table mapping these to its spelling; the C-like renderer shares one.
POINTWISE_OPS: dict[str, int] = {
    "add": 2, "sub": 2, "mul": 2, "div": 2, "floordiv": 2, "mod": 2, "pow": 2, "max": 2, "min": 2,
    "lt": 2, "le": 2, "gt": 2, "ge": 2, "eq": 2, "ne": 2, "and": 2, "or": 2, "xor": 2, "atan2": 2,
    "neg": 1, "abs": 1, "exp": 1, "exp2": 1, "expm1": 1, "log": 1, "log2": 1, "log1p": 1, "sqrt": 1,
    "rsqrt": 1, "sin": 1, "cos": 1, "tan": 1, "tanh": 1, "sigmoid": 1, "erf": 1, "floor": 1,
    "ceil": 1, "round": 1, "trunc": 1, "sign": 1, "not": 1, "reciprocal": 1, "isnan": 1, "isinf": 1,
    "asin": 1, "acos": 1, "atan": 1, "sinh": 1, "cosh": 1, "asinh": 1, "acosh": 1, "atanh": 1,
    "cast": 1, "where": 3,
}
COMPARISON_OPS = ("lt", "le", "gt", "ge", "eq", "ne", "isnan", "isinf")


@dataclass(frozen=True)
class Load:
    """Element of group operand ``operand`` at the current point of the domain."""
    operand: int
    dtype: str


@dataclass(frozen=True)
class Const:
    value: Union[float, int, bool]
    dtype: str


@dataclass(frozen=True)
class Call:
    op: str
    args: tuple["Expr", ...]
    dtype: str


@dataclass(frozen=True)
class StageRef:
    """Result of reduction/scan stage ``stage`` for the current row. part: "value" or "index"."""
    stage: int
    dtype: str
    part: str = "value"


@dataclass(frozen=True)
class RIndex:
    """Position along the reduced (or scanned) dimension, int64."""
    dtype: str = "int64"


@dataclass(frozen=True)
class Acc:
    """The accumulator of a matmul / conv / pool group at the current output element."""
    dtype: str = "float32"


Expr = Union[Load, Const, Call, StageRef, RIndex, Acc]


def walk(expr: Expr):
    """Pre-order traversal of an expression tree."""
    yield expr
    if isinstance(expr, Call):
        for a in expr.args:
            yield from walk(a)


def verify_expr(expr: Expr, n_operands: int, n_stages: int = 0, where: str = "expr") -> None:
    for e in walk(expr):
        _require(getattr(e, "dtype", None) in DTYPES, f"{where}: {type(e).__name__} has bad dtype {getattr(e, 'dtype', None)!r}")
        if isinstance(e, Call):
            _require(e.op in POINTWISE_OPS, f"{where}: unknown op {e.op!r}")
            _require(len(e.args) == POINTWISE_OPS[e.op], f"{where}: {e.op} takes {POINTWISE_OPS[e.op]} args, got {len(e.args)}")
        elif isinstance(e, Load):
            _require(0 <= e.operand < n_operands, f"{where}: Load({e.operand}) but group has {n_operands} operands")
        elif isinstance(e, StageRef):
            _require(0 <= e.stage < n_stages, f"{where}: StageRef({e.stage}) but only {n_stages} earlier stages")
            _require(e.part in ("value", "index"), f"{where}: StageRef part {e.part!r}")


# ----------------------------------------------------------------------------------------------
# Kernel specs: what one fused group computes, over an iteration domain
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Operand:
    """A tensor read by a group. ``strides`` are element strides over the group's domain
    (0 where the operand is broadcast); the tensor arrives with ``type`` (shape, dtype, layout)."""
    value: str
    type: TensorType
    strides: tuple[int, ...]


@dataclass(frozen=True)
class Output:
    """A tensor written by a group: element at domain point p is ``expr`` evaluated at p, stored at
    sum(p[d] * strides[d]). ``reduced`` outputs have stride 0 on the reduced dim and are written
    once per row after all stages."""
    value: str
    expr: Expr
    type: TensorType
    strides: tuple[int, ...]
    reduced: bool = False


@dataclass(frozen=True)
class PointwiseKernel:
    domain: tuple[int, ...]
    operands: tuple[Operand, ...]
    outputs: tuple[Output, ...]

    def verify(self) -> None:
        _verify_io(self.domain, self.operands, self.outputs, n_stages=0)


@dataclass(frozen=True)
class Stage:
    op: str      # sum | prod | max | min | argmax | argmin
    expr: Expr   # may use Load, RIndex and StageRef of earlier stages


REDUCE_OPS = ("sum", "prod", "max", "min", "argmax", "argmin")


@dataclass(frozen=True)
class ReductionKernel:
    """Row-wise multi-stage reduction: for each point of the domain with ``reduce_dim`` removed
    (a row), stages run in order over the reduce dim, then full outputs are written over it.
    Covers reductions with prologues/epilogues, softmax, norms, logsumexp, losses."""
    domain: tuple[int, ...]
    reduce_dim: int
    operands: tuple[Operand, ...]
    stages: tuple[Stage, ...]
    outputs: tuple[Output, ...]
    # Reduce over ``reduce_rank`` adjacent dims from ``reduce_dim`` on: a row of a group norm is
    # (channels of the group, pixels), and a per-channel weight walks only the first of them, so
    # the two cannot merge into one strided dim. Rank 1 is every other reduction.
    reduce_rank: int = 1

    @property
    def reduce_dims(self) -> tuple[int, ...]:
        return tuple(range(self.reduce_dim, self.reduce_dim + self.reduce_rank))

    @property
    def reduce_size(self) -> int:
        return math.prod(self.domain[d] for d in self.reduce_dims)

    @property
    def rows(self) -> int:
        return math.prod(self.domain) // max(self.reduce_size, 1)

    def verify(self) -> None:
        _require(self.reduce_rank >= 1 and 0 <= self.reduce_dim and self.reduce_dim + self.reduce_rank <= len(self.domain),
                 f"reduce dims {self.reduce_dim}..+{self.reduce_rank} outside domain {self.domain}")
        _require(bool(self.stages), "reduction kernel has no stages")
        for i, st in enumerate(self.stages):
            _require(st.op in REDUCE_OPS, f"stage {i}: unknown reduce op {st.op!r}")
            verify_expr(st.expr, len(self.operands), i, where=f"stage {i}")
            _require(self.reduce_rank == 1 or (st.op not in ("argmax", "argmin") and not any(isinstance(e, RIndex) for e in walk(st.expr))),
                     f"stage {i}: an index along several reduce dims is not defined")
        _verify_io(self.domain, self.operands, self.outputs, n_stages=len(self.stages))
        for o in self.outputs:
            if o.reduced:
                _require(all(o.strides[d] == 0 for d in self.reduce_dims), f"reduced output {o.value} has stride on the reduce dim")


@dataclass(frozen=True)
class ScanKernel:
    """Inclusive scan (cumsum / cumprod) along ``scan_dim`` of ``expr``; outputs may use
    StageRef(0) (the running value) and Loads."""
    domain: tuple[int, ...]
    scan_dim: int
    op: str      # sum | prod | max | min
    expr: Expr
    operands: tuple[Operand, ...]
    outputs: tuple[Output, ...]

    def verify(self) -> None:
        _require(self.op in ("sum", "prod", "max", "min"), f"unknown scan op {self.op!r}")
        verify_expr(self.expr, len(self.operands), 0, where="scan input")
        _verify_io(self.domain, self.operands, self.outputs, n_stages=1)


@dataclass(frozen=True)
class MatmulKernel:
    """out[b, m, n] = epilogue(sum_k a[b, m, k] * b[b, k, n]). ``a`` and ``b`` carry strides over
    (batch, m, k) and (batch, k, n); epilogue operands carry strides over (batch, m, n). Outputs
    use Acc() for the product and Load(i) for epilogue operand i."""
    batch: int
    m: int
    n: int
    k: int
    a: Operand
    b: Operand
    operands: tuple[Operand, ...]
    outputs: tuple[Output, ...]
    acc_dtype: str = "float32"

    @property
    def domain(self) -> tuple[int, ...]:
        return (self.batch, self.m, self.n)

    def verify(self) -> None:
        _require(len(self.a.strides) == 3 and len(self.b.strides) == 3, "matmul a/b strides must be over (batch, rows, cols)")
        _verify_io(self.domain, self.operands, self.outputs, n_stages=0)


@dataclass(frozen=True)
class ConvKernel:
    """Forward convolution over 1 to 3 spatial dims (one group), computed as an implicit GEMM:
    out[n, co, *o] = epilogue(sum over ci, *r of x[n, ci, *(o * stride - padding + r * dilation)]
    * w[co, ci, *r]), taps outside the input reading zero. ``input`` strides walk x's
    (N, C_in, *spatial) dims (``in_shape``), ``weight`` strides its (C_out, C_in, *kernel) dims
    (``weight_shape``); epilogue operands and outputs carry strides over the output's
    (N, C_out, *spatial) domain. Outputs use Acc() for the convolution and Load(i) for operand i."""
    input: Operand
    weight: Operand
    in_shape: tuple[int, ...]
    weight_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    operands: tuple[Operand, ...] = ()
    outputs: tuple[Output, ...] = ()
    acc_dtype: str = "float32"

    @property
    def domain(self) -> tuple[int, ...]:
        return self.out_shape

    @property
    def spatial(self) -> int:
        return len(self.out_shape) - 2

    @property
    def gemm(self) -> tuple[int, int, int]:
        """(M, N, K) of the implicit GEMM: output pixels, output channels, input channels x taps."""
        return (self.out_shape[0] * math.prod(self.out_shape[2:]), self.out_shape[1], math.prod(self.weight_shape[1:]))

    def verify(self) -> None:
        d = self.spatial
        _require(1 <= d <= 3, f"convolutions over {d} spatial dims are not supported")
        _require(len(self.in_shape) == d + 2 and len(self.weight_shape) == d + 2,
                 f"input {self.in_shape} / weight {self.weight_shape} do not match output {self.out_shape}")
        _require(len(self.input.strides) == d + 2 and len(self.weight.strides) == d + 2, "input/weight strides walk their own dims")
        _require(all(len(t) == d for t in (self.stride, self.padding, self.dilation)), "stride/padding/dilation need one value a spatial dim")
        _require(self.weight_shape[0] == self.out_shape[1] and self.weight_shape[1] == self.in_shape[1]
                 and self.in_shape[0] == self.out_shape[0], "channels or batch of input, weight and output disagree")
        _verify_io(self.domain, self.operands, self.outputs, n_stages=0)


@dataclass(frozen=True)
class PoolKernel:
    """2-d pooling over an NCHW input; outputs use Acc() for the pooled value."""
    op: str                      # max | avg
    input: Operand
    out_shape: tuple[int, ...]   # (N, C, OH, OW)
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int] = (1, 1)
    count_include_pad: bool = True
    divisor_override: int | None = None
    operands: tuple[Operand, ...] = ()
    outputs: tuple[Output, ...] = ()
    # Pointwise work before the pool (conv, subtract, hardswish, then max pool): each window
    # element is ``prologue`` evaluated there, its Loads indexing ``prologue_operands`` (strides
    # over the input's (N, C, H, W)); ``input`` is then one of them, giving the input's shape.
    prologue: "Expr | None" = None
    prologue_operands: tuple[Operand, ...] = ()
    # (N, C, H, W) of the pooled tensor. ``input`` names the buffer read, which is a view's base
    # when the pool reads a view (a group norm's output reshaped back to NCHW): its type is the
    # base's, its strides walk the view. Empty: the input's own shape.
    in_shape: tuple[int, ...] = ()

    @property
    def domain(self) -> tuple[int, ...]:
        return self.out_shape

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.in_shape) or tuple(self.input.type.shape)

    def verify(self) -> None:
        _require(self.op in ("max", "avg"), f"unknown pool op {self.op!r}")
        _require(len(self.out_shape) == 4, "pool kernels work on NCHW")
        _verify_io(self.domain, self.operands, self.outputs, n_stages=0)
        if self.prologue is not None:
            verify_expr(self.prologue, len(self.prologue_operands), 0, where="pool prologue")
            _require(self.input in self.prologue_operands, "a prologue pool's input is one of its prologue operands")
            _require(all(len(op.strides) == 4 for op in self.prologue_operands), "prologue operands walk (N, C, H, W)")


@dataclass(frozen=True)
class ValueRef:
    """A tensor argument of a library call."""
    name: str


@dataclass(frozen=True)
class LibraryCall:
    """Call a framework op as is: ``torch.ops.<op>(*args, **kwargs)`` with ValueRefs resolved.
    ``op`` is an overload name such as "aten.convolution.default". Views are library calls too."""
    op: str
    args: tuple[Any, ...]
    kwargs: tuple[tuple[str, Any], ...]
    outputs: tuple[str, ...]      # one per result (tuple results are unpacked)
    output_types: tuple[TensorType, ...] = ()

    def verify(self) -> None:
        _require(self.op.count(".") >= 1, f"library op {self.op!r} is not an overload name like aten.mm.default")

    @property
    def converts_layout(self) -> bool:
        return self.op in LAYOUT_CONVERSION_OPS


# Library ops that only copy a tensor into another memory format; they compute nothing.
LAYOUT_CONVERSION_OPS = frozenset({"aten.clone.default", "aten.contiguous.default"})


KernelSpec = Union[PointwiseKernel, ReductionKernel, ScanKernel, MatmulKernel, PoolKernel, ConvKernel, LibraryCall]


def _verify_io(domain, operands, outputs, n_stages: int) -> None:
    _require(all(isinstance(d, int) and d >= 0 for d in domain), f"bad domain {domain}")
    for i, op in enumerate(operands):
        op.type.verify()
        _require(len(op.strides) == len(domain), f"operand {i} ({op.value}) strides {op.strides} do not match domain {domain}")
    _require(bool(outputs), "kernel has no outputs")
    for o in outputs:
        o.type.verify()
        _require(len(o.strides) == len(domain), f"output {o.value} strides {o.strides} do not match domain {domain}")
        verify_expr(o.expr, len(operands), n_stages, where=f"output {o.value}")


# ----------------------------------------------------------------------------------------------
# Plans
# ----------------------------------------------------------------------------------------------

FAMILIES = ("pointwise", "reduction", "reduction_nd", "scan", "matmul_epilogue", "conv_epilogue", "pool", "pool_prologue",
            "library")
_FAMILY_SPEC = {"pointwise": PointwiseKernel, "reduction": ReductionKernel, "reduction_nd": ReductionKernel, "scan": ScanKernel,
                "matmul_epilogue": MatmulKernel, "conv_epilogue": ConvKernel, "pool": PoolKernel, "pool_prologue": PoolKernel, "library": LibraryCall}


@dataclass(frozen=True)
class Schedule:
    """DSL-specific knobs (tile sizes, warps, stages, threads, variant). Hashable."""
    knobs: tuple[tuple[str, Any], ...] = ()

    def get(self, key: str, default: Any = None) -> Any:
        return dict(self.knobs).get(key, default)

    def with_(self, **changes: Any) -> "Schedule":
        merged = dict(self.knobs)
        merged.update(changes)
        return Schedule(tuple(sorted(merged.items())))

    def __str__(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.knobs) or "default"


class ScheduleKnobs:
    """Mixin for a DSL's typed schedule (a frozen dataclass whose fields are its knobs): to and
    from the generic ``Schedule`` the search and the store carry. A knob the class does not have
    is refused, so a stored schedule of another DSL or version never loads silently."""

    def to_schedule(self) -> Schedule:
        return Schedule(tuple(sorted((f.name, getattr(self, f.name)) for f in fields(self))))

    @classmethod
    def from_schedule(cls, schedule: Schedule):
        unknown = sorted(set(dict(schedule.knobs)) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"{cls.__name__} has no knob {', '.join(unknown)}")
        return cls(**dict(schedule.knobs))


@dataclass(frozen=True)
class FusedGroup:
    nodes: tuple[str, ...]          # ids of the graph nodes this group computes
    family: str
    kernel: KernelSpec
    schedule: Schedule = Schedule()

    def verify(self) -> None:
        _require(self.family in FAMILIES, f"unknown family {self.family!r}")
        _require(isinstance(self.kernel, _FAMILY_SPEC[self.family]),
                 f"family {self.family} needs a {_FAMILY_SPEC[self.family].__name__}, got {type(self.kernel).__name__}")
        if isinstance(self.kernel, ReductionKernel):
            # Only DSLs that list "reduction_nd" see reductions over several dims.
            _require((self.kernel.reduce_rank > 1) == (self.family == "reduction_nd"),
                     f"family {self.family} with {self.kernel.reduce_rank} reduce dims")
        if isinstance(self.kernel, PoolKernel):
            _require((self.kernel.prologue is not None) == (self.family == "pool_prologue"),
                     f"family {self.family} and a pool prologue")
        self.kernel.verify()

    def written_values(self) -> tuple[str, ...]:
        if isinstance(self.kernel, LibraryCall):
            return self.kernel.outputs
        return tuple(o.value for o in self.kernel.outputs)

    def read_values(self) -> tuple[str, ...]:
        k = self.kernel
        if isinstance(k, LibraryCall):
            return tuple(_value_refs(k.args) + _value_refs(tuple(v for _, v in k.kwargs)))
        extra = (k.a.value, k.b.value) if isinstance(k, MatmulKernel) else \
            (k.input.value, k.weight.value) if isinstance(k, ConvKernel) else \
            (k.input.value,) + tuple(op.value for op in k.prologue_operands) if isinstance(k, PoolKernel) else ()
        return extra + tuple(op.value for op in k.operands)


def _value_refs(args) -> list[str]:
    found: list[str] = []
    for a in args:
        if isinstance(a, ValueRef):
            found.append(a.name)
        elif isinstance(a, (list, tuple)):
            found.extend(_value_refs(a))
    return found


@dataclass(frozen=True)
class KernelPlan:
    graph: Graph
    groups: tuple[FusedGroup, ...]
    name: str = "plan"               # says which fusion choices made it, e.g. "fuse-all", "split-epilogue"

    def verify(self) -> None:
        self.graph.verify()
        known = set(self.graph.inputs) | set(self.graph.params) | {k for k, _ in self.graph.constants}
        for g in self.groups:
            g.verify()
            for v in g.read_values():
                _require(v in known, f"plan {self.name}: group {g.nodes} reads {v!r} before it is written")
            known.update(g.written_values())
        for o in self.graph.outputs:
            _require(o in known, f"plan {self.name}: graph output {o!r} is never written")

    def with_schedules(self, schedules: tuple[Schedule, ...]) -> "KernelPlan":
        _require(len(schedules) == len(self.groups), "one schedule per group")
        groups = tuple(FusedGroup(g.nodes, g.family, g.kernel, s) for g, s in zip(self.groups, schedules))
        return KernelPlan(self.graph, groups, self.name)


# ----------------------------------------------------------------------------------------------
# Analysis, candidates, verdicts
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Analysis:
    graph: Graph
    flops: float
    bytes_moved: float                           # fewest bytes: inputs + params read once, outputs written once
    roofline_ms: tuple[tuple[str, float], ...]   # hardware name -> floor in ms
    bound: str                                   # memory | compute
    notes: tuple[str, ...] = ()

    def verify(self) -> None:
        self.graph.verify()
        _require(self.bound in ("memory", "compute"), f"bound must be memory or compute, got {self.bound!r}")
        _require(self.flops >= 0 and self.bytes_moved >= 0, "negative work")


ORIGINS_FIXED = ("reference", "template", "user", "inductor")


@dataclass(frozen=True)
class Candidate:
    id: str
    parent_id: str | None
    dsl: str
    source: str                       # one self-contained Python file defining ModelNew
    plan: KernelPlan | None
    origin: str                       # reference | template | user | inductor (akg.seeds) | llm:<model>
    description: str = ""            # e.g. the plan name and schedules

    def verify(self) -> None:
        _require(self.origin in ORIGINS_FIXED or self.origin.startswith("llm:"), f"bad origin {self.origin!r}")
        _require("ModelNew" in self.source, f"candidate {self.id}: source defines no ModelNew")
        if self.plan is not None:
            self.plan.verify()


STAGES = ("build", "load", "correctness", "timing", "done")


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str = ""


@dataclass(frozen=True)
class Verdict:
    candidate_id: str
    stage: str                                    # the last stage reached
    compiled: bool
    correct: bool
    checks: tuple[Check, ...] = ()
    errors: tuple[str, ...] = ()
    max_abs_err: float | None = None
    rel_err: float | None = None
    time_ms: float | None = None
    spread: float | None = None                   # (p75 - p25) / median of the candidate's trials
    baselines: tuple[tuple[str, float], ...] = ()  # eager_ms, compile_ms
    speedups: tuple[tuple[str, float], ...] = ()   # vs_eager, vs_compile
    roofline_fraction: float | None = None        # floor / time: 1.0 means at the floor
    profile: tuple[tuple[str, Any], ...] = ()
    timing_meaningful: bool = True                # False e.g. under an interpreter
    # Set when the time is below the roofline floor (yet above the slack that rejects it): a result
    # faster than physics allows means the timing or the hardware figures are off.
    suspect: str | None = None

    @property
    def accepted(self) -> bool:
        return self.compiled and self.correct and all(c.passed for c in self.checks)

    @property
    def reason(self) -> str:
        if self.accepted:
            return ""
        failed = [f"{c.name}: {c.detail}" if c.detail else c.name for c in self.checks if not c.passed]
        return "; ".join(list(self.errors) + failed)[:500] or "rejected"

    def verify(self) -> None:
        _require(self.stage in STAGES, f"unknown verdict stage {self.stage!r}")


# ----------------------------------------------------------------------------------------------
# Designs (LLM mode): the designer's structured plan, validated from the model's JSON
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class KernelDesign:
    name: str                        # the kernel's name in the plan
    ops: tuple[str, ...]             # which ops of the program it computes
    notes: str = ""                  # tiling, vectorisation, launch shape for this kernel


@dataclass(frozen=True)
class Design:
    """Which ops become which kernels, how they fuse, tile and use memory, and the one idea to try."""
    kernels: tuple[KernelDesign, ...]
    idea: str
    fusion: str = ""
    tiling: str = ""
    memory: str = ""

    def verify(self) -> None:
        _require(bool(self.kernels), "design: 'kernels' lists no kernel")
        _require(bool(self.idea.strip()), "design: 'idea' is empty")
        for k in self.kernels:
            _require(bool(k.name.strip()), "design: a kernel has no name")
            _require(bool(k.ops), f"design: kernel {k.name!r} computes no ops")

    @classmethod
    def from_json(cls, text: str) -> "Design":
        """Parse and validate; IRError names the first thing wrong, so it can go back to the model."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise IRError(f"design: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
        _require(isinstance(data, dict), "design: expected a JSON object")
        unknown = sorted(set(data) - {"kernels", "idea", "fusion", "tiling", "memory"})
        _require(not unknown, f"design: unknown key(s) {', '.join(unknown)}")
        kernels = data.get("kernels")
        _require(isinstance(kernels, list), "design: 'kernels' must be a list of objects")
        parsed = []
        for i, k in enumerate(kernels):
            _require(isinstance(k, dict), f"design: kernels[{i}] must be an object")
            ops = k.get("ops", [])
            _require(isinstance(ops, list) and all(isinstance(o, str) for o in ops),
                     f"design: kernels[{i}].ops must be a list of strings")
            parsed.append(KernelDesign(str(k.get("name", "")), tuple(ops), str(k.get("notes", ""))))
        for key in ("idea", "fusion", "tiling", "memory"):
            _require(isinstance(data.get(key, ""), str), f"design: '{key}' must be a string")
        design = cls(tuple(parsed), data.get("idea", ""), data.get("fusion", ""), data.get("tiling", ""),
                     data.get("memory", ""))
        design.verify()
        return design

    def to_json(self) -> str:
        return json.dumps({"kernels": [{"name": k.name, "ops": list(k.ops), "notes": k.notes} for k in self.kernels],
                           "idea": self.idea, "fusion": self.fusion, "tiling": self.tiling, "memory": self.memory},
                          indent=2)
