"""The executable semantics of a KernelPlan, in plain torch.

``run_plan`` evaluates every group of a plan the way its kernel spec says: operands are read with
``torch.as_strided`` through the spec's strides, expression trees are evaluated with torch ops,
reductions stage by stage. DSL templates are tested against it, and plans against the problem's
reference.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from akg import ir

_UNARY = {
    "neg": torch.neg, "abs": torch.abs, "exp": torch.exp, "exp2": torch.exp2, "expm1": torch.expm1,
    "log": torch.log, "log2": torch.log2, "log1p": torch.log1p, "sqrt": torch.sqrt, "rsqrt": torch.rsqrt,
    "sin": torch.sin, "cos": torch.cos, "tan": torch.tan, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
    "erf": torch.erf, "floor": torch.floor, "ceil": torch.ceil, "round": torch.round, "trunc": torch.trunc,
    "sign": torch.sign, "not": torch.logical_not, "reciprocal": torch.reciprocal, "isnan": torch.isnan,
    "isinf": torch.isinf, "asin": torch.asin, "acos": torch.acos, "atan": torch.atan, "sinh": torch.sinh,
    "cosh": torch.cosh, "asinh": torch.asinh, "acosh": torch.acosh, "atanh": torch.atanh,
}
_BINARY = {
    "add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div,
    "floordiv": lambda a, b: torch.div(a, b, rounding_mode="floor"), "mod": torch.fmod, "pow": torch.pow,
    "max": torch.maximum, "min": torch.minimum, "lt": torch.lt, "le": torch.le, "gt": torch.gt,
    "ge": torch.ge, "eq": torch.eq, "ne": torch.ne, "and": torch.logical_and, "or": torch.logical_or,
    "xor": torch.logical_xor, "atan2": torch.atan2,
}


def torch_dtype(name: str) -> torch.dtype:
    return getattr(torch, name)


class _Scope:
    """What the leaves of an expression mean at one evaluation site."""

    def __init__(self, loads, stages=(), rindex=None, acc=None):
        self.loads, self.stages, self.rindex, self.acc = loads, stages, rindex, acc


def eval_expr(e: ir.Expr, scope: _Scope) -> torch.Tensor:
    if isinstance(e, ir.Load):
        return scope.loads[e.operand]
    if isinstance(e, ir.Const):
        return torch.tensor(e.value, dtype=torch_dtype(e.dtype))
    if isinstance(e, ir.StageRef):
        value, index = scope.stages[e.stage]
        return (index if e.part == "index" else value).to(torch_dtype(e.dtype))
    if isinstance(e, ir.RIndex):
        return scope.rindex
    if isinstance(e, ir.Acc):
        return scope.acc
    args = [eval_expr(a, scope) for a in e.args]
    dtype = torch_dtype(e.dtype)
    if e.op == "cast":
        return args[0].to(dtype)
    if e.op == "where":
        return torch.where(args[0].bool(), args[1], args[2]).to(dtype)
    fn = _UNARY.get(e.op) or _BINARY[e.op]
    return fn(*args).to(dtype)


def _view(t: torch.Tensor, shape, strides) -> torch.Tensor:
    return torch.as_strided(t, tuple(shape), tuple(strides), t.storage_offset())


def _loads(operands, env, shape) -> list[torch.Tensor]:
    return [_view(env[op.value], shape, op.strides) for op in operands]


def _store(out: ir.Output, value: torch.Tensor, shape, device) -> torch.Tensor:
    result = torch.empty(out.type.shape, dtype=torch_dtype(out.type.dtype), device=device)
    value = value.expand(shape)
    # A point written several times (stride 0 on a dim of size > 1: e.g. a bias scaled in the
    # kernel that scales the weight, over the weight's domain) must get the same value each time;
    # it is then written once (torch refuses to copy into overlapping memory).
    repeated = [d for d, (n, s) in enumerate(zip(shape, out.strides)) if s == 0 and n > 1]
    if repeated:
        first = value[tuple(slice(0, 1) if d in repeated else slice(None) for d in range(len(shape)))]
        if not torch.allclose(value, first.expand(shape), rtol=0, atol=0, equal_nan=True):
            raise ValueError(f"output {out.value} is written with different values at one location")
        shape, value = first.shape, first
    _view(result, shape, out.strides).copy_(value)
    return result


def _device(env, kernel) -> torch.device:
    for t in env.values():
        if isinstance(t, torch.Tensor):
            return t.device
    return torch.device("cpu")


def run_pointwise(k: ir.PointwiseKernel, env) -> list[torch.Tensor]:
    scope = _Scope(_loads(k.operands, env, k.domain))
    return [_store(o, eval_expr(o.expr, scope), k.domain, _device(env, k)) for o in k.outputs]


def _reduce(op: str, x: torch.Tensor, dim):
    if isinstance(dim, tuple):   # several reduce dims (no index: the kernel spec refuses argmax there)
        if len(dim) == 1:
            dim = dim[0]
        else:
            fn = {"sum": torch.sum, "max": torch.amax, "min": torch.amin}.get(op)
            if op == "prod":
                return torch.prod(x.flatten(dim[0], dim[-1]), dim[0], keepdim=True).unflatten(dim[0], (1,) * len(dim)), None
            return fn(x, dim, keepdim=True), None
    if op == "sum":
        return torch.sum(x, dim, keepdim=True), None
    if op == "prod":
        return torch.prod(x, dim, keepdim=True), None
    if op in ("max", "argmax"):
        v, i = torch.max(x, dim, keepdim=True)
        return v, torch.argmax(x, dim, keepdim=True)
    v, i = torch.min(x, dim, keepdim=True)
    return v, torch.argmin(x, dim, keepdim=True)


def _rindex(domain, dim, device) -> torch.Tensor:
    shape = [1] * len(domain)
    shape[dim] = domain[dim]
    return torch.arange(domain[dim], device=device).reshape(shape)


def run_reduction(k: ir.ReductionKernel, env) -> list[torch.Tensor]:
    device = _device(env, k)
    scope = _Scope(_loads(k.operands, env, k.domain), [], _rindex(k.domain, k.reduce_dim, device))
    for st in k.stages:
        x = eval_expr(st.expr, scope).expand(k.domain)
        scope.stages.append(_reduce(st.op, x, k.reduce_dims))
    row_shape = tuple(1 if d in k.reduce_dims else s for d, s in enumerate(k.domain))
    row_scope = _Scope(_loads(k.operands, env, row_shape), scope.stages, torch.zeros((), dtype=torch.int64))
    results = []
    for o in k.outputs:
        if o.reduced:
            value = eval_expr(o.expr, row_scope).expand(row_shape)
            results.append(_store_rows(o, value, k, row_shape, device))
        else:
            results.append(_store(o, eval_expr(o.expr, scope), k.domain, device))
    return results


def _store_rows(o: ir.Output, value, k: ir.ReductionKernel, row_shape, device) -> torch.Tensor:
    result = torch.empty(o.type.shape, dtype=torch_dtype(o.type.dtype), device=device)
    _view(result, row_shape, o.strides).copy_(value)
    return result


_SCAN = {"sum": torch.cumsum, "prod": torch.cumprod}


def run_scan(k: ir.ScanKernel, env) -> list[torch.Tensor]:
    device = _device(env, k)
    scope = _Scope(_loads(k.operands, env, k.domain), [], _rindex(k.domain, k.scan_dim, device))
    x = eval_expr(k.expr, scope).expand(k.domain)
    if k.op in _SCAN:
        running = _SCAN[k.op](x, k.scan_dim)
    else:
        running = (torch.cummax if k.op == "max" else torch.cummin)(x, k.scan_dim).values
    scope.stages.append((running, None))
    return [_store(o, eval_expr(o.expr, scope), k.domain, device) for o in k.outputs]


def run_matmul(k: ir.MatmulKernel, env) -> list[torch.Tensor]:
    a = _view(env[k.a.value], (k.batch, k.m, k.k), k.a.strides).to(torch_dtype(k.acc_dtype))
    b = _view(env[k.b.value], (k.batch, k.k, k.n), k.b.strides).to(torch_dtype(k.acc_dtype))
    scope = _Scope(_loads(k.operands, env, k.domain), acc=torch.bmm(a, b))
    return [_store(o, eval_expr(o.expr, scope), k.domain, a.device) for o in k.outputs]


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def run_conv(k: ir.ConvKernel, env) -> list[torch.Tensor]:
    dtype = torch_dtype(k.acc_dtype)
    x = _view(env[k.input.value], k.in_shape, k.input.strides).to(dtype)
    w = _view(env[k.weight.value], k.weight_shape, k.weight.strides).to(dtype)
    # Padding is given before each dim; what the output needs after it beyond that (padding="same"
    # with an even kernel pads one more after) is added as zeros, the surplus output cut off.
    after = [max(0, (o - 1) * s + d * (r - 1) + 1 - (i + 2 * p)) for o, s, d, r, i, p in
             zip(k.out_shape[2:], k.stride, k.dilation, k.weight_shape[2:], k.in_shape[2:], k.padding)]
    if any(after):
        x = F.pad(x, [v for e in reversed(after) for v in (0, e)])
    acc = _CONV[k.spatial](x, w, None, k.stride, k.padding, k.dilation)
    acc = acc[(...,) + tuple(slice(0, o) for o in k.out_shape[2:])]
    scope = _Scope(_loads(k.operands, env, k.domain), acc=acc)
    return [_store(o, eval_expr(o.expr, scope), k.domain, x.device) for o in k.outputs]


def run_pool(k: ir.PoolKernel, env) -> list[torch.Tensor]:
    x = _view(env[k.input.value], k.input_shape, k.input.strides)
    if k.prologue is not None:
        shape = k.input_shape
        x = eval_expr(k.prologue, _Scope(_loads(k.prologue_operands, env, shape))).expand(shape)
    if k.op == "max":
        acc = F.max_pool2d(x, k.kernel, k.stride, k.padding, k.dilation)
    else:
        acc = F.avg_pool2d(x, k.kernel, k.stride, k.padding, False, k.count_include_pad, k.divisor_override)
    scope = _Scope(_loads(k.operands, env, k.domain), acc=acc)
    return [_store(o, eval_expr(o.expr, scope), k.domain, x.device) for o in k.outputs]


def _resolve_args(a, env, device):
    if isinstance(a, ir.ValueRef):
        return env[a.name]
    if isinstance(a, (list, tuple)):
        return type(a)(_resolve_args(x, env, device) for x in a)
    if isinstance(a, torch.device):
        return device
    return a


def _overload(name: str):
    obj = torch.ops
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def run_library(k: ir.LibraryCall, env) -> list[torch.Tensor]:
    device = _device(env, k)
    result = _overload(k.op)(*_resolve_args(k.args, env, device), **{key: _resolve_args(v, env, device) for key, v in k.kwargs})
    results = list(result) if isinstance(result, (tuple, list)) else [result]
    return results[:len(k.outputs)]


_RUNNERS = {ir.PointwiseKernel: run_pointwise, ir.ReductionKernel: run_reduction, ir.ScanKernel: run_scan,
            ir.MatmulKernel: run_matmul, ir.ConvKernel: run_conv, ir.PoolKernel: run_pool, ir.LibraryCall: run_library}


def run_group(group: ir.FusedGroup, env: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """The written values of one group (FusedGroup.written_values order)."""
    return _RUNNERS[type(group.kernel)](group.kernel, env)


def run_plan(plan: ir.KernelPlan, inputs: list, state: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """Execute ``plan`` on forward ``inputs`` with parameters/buffers ``state`` ("p:<fqn>" keys);
    returns the graph outputs in order."""
    g = plan.graph
    env: dict[str, object] = dict(g.constants)
    env.update(zip(g.inputs, inputs))
    env.update({name: state[name] for name in g.params})
    with torch.no_grad():
        for group in plan.groups:
            env.update(zip(group.written_values(), run_group(group, env)))
    return [env[o] for o in g.outputs]


def model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A module's parameters and buffers keyed the way plans name them."""
    state = {f"p:{k}": v for k, v in model.named_parameters()}
    state.update({f"p:{k}": v for k, v in model.named_buffers()})
    return state
