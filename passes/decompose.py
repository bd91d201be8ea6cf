"""decompose (stage "graph"): rewrite compound library nodes into akg primitives.

Softmax, norms, activations, losses, mean/var/std arrive from tracing as single ATen calls. Each is
re-traced on fake tensors with torch's own decomposition table (``torch._decomp``), and the result
is translated with the analyzer's ATen->akg translation and spliced in place of the node. Ops
torch cannot decompose (or whose decomposition is no simpler) stay library nodes.
"""
from __future__ import annotations

import torch
from torch._decomp import get_decompositions
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx.experimental.proxy_tensor import make_fx

from akg import ir
from akg.agents.analyzer import fx_outputs, translate_fx
from akg.passes.dead_code import eliminate_dead_nodes  # noqa: F401  (kept importable from here)
from akg.targets import PassContext

_aten = torch.ops.aten

# Compound ops worth opening up. Composite-implicit ops (softmax.int, layer_norm, linear helpers,
# cross_entropy_loss, ...) open up by themselves during re-tracing.
COMPOUND_OPS = [
    _aten._softmax, _aten._log_softmax, _aten.native_layer_norm, _aten.native_group_norm,
    _aten._native_batch_norm_legit_no_training, _aten._native_batch_norm_legit_functional,
    _aten.native_batch_norm, _aten.gelu, _aten.silu, _aten.mish, _aten.softplus, _aten.elu,
    _aten.selu, _aten.hardswish, _aten.hardsigmoid, _aten.leaky_relu, _aten.hardtanh, _aten.relu,
    _aten.clamp, _aten.mse_loss, _aten.smooth_l1_loss, _aten.huber_loss, _aten.nll_loss_forward,
    _aten.binary_cross_entropy, _aten.logsumexp, _aten.mean, _aten.var, _aten.std,
    _aten.var_mean, _aten.rsub, _aten.threshold, _aten.logit, _aten.xlogy, _aten.softshrink,
    _aten.hardshrink, _aten.celu, _aten.rrelu_with_noise, _aten.log_sigmoid_forward,
    _aten.addcmul, _aten.addcdiv, _aten.lerp, _aten.square, _aten.masked_fill,
    _aten.linalg_vector_norm, _aten.norm,
]


def _reduced_count(x: torch.Tensor, dim) -> int:
    dims = range(x.dim()) if dim is None or len(dim) == 0 else dim
    count = 1
    for d in dims:
        count *= x.shape[d]
    return count


def _var_mean(x, dim=None, *, correction=None, keepdim=False):
    # torch's own var_mean decomposition ends in prims.var; this one ends in sum and pointwise ops.
    dims = list(range(x.dim())) if dim is None or len(dim) == 0 else list(dim)
    n = _reduced_count(x, dims)
    mean = torch.sum(x, dims, keepdim=True) / n
    centred = x - mean
    var = torch.sum(centred * centred, dims, keepdim=keepdim) / max(n - (1 if correction is None else correction), 0)
    return var, (mean if keepdim else torch.squeeze(mean, dims))


def _var(x, dim=None, *, correction=None, keepdim=False):
    return _var_mean(x, dim, correction=correction, keepdim=keepdim)[0]


def _std(x, dim=None, *, correction=None, keepdim=False):
    return torch.sqrt(_var(x, dim, correction=correction, keepdim=keepdim))


_TABLE = get_decompositions(COMPOUND_OPS)
_TABLE.update({_aten.var_mean.correction: _var_mean, _aten.var.correction: _var, _aten.std.correction: _std,
               torch.ops.prims.var.default: lambda x, dims, correction, output_dtype=None: _var(x, dims, correction=correction)})


def resolve_overload(name: str):
    """``"aten.gelu.default"`` -> torch.ops.aten.gelu.default, or None."""
    obj = torch.ops
    for part in name.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _is_decomposable(op) -> bool:
    if op is None or not isinstance(op, torch._ops.OpOverload):
        return False
    return op in _TABLE or op.has_kernel_for_dispatch_key(torch._C.DispatchKey.CompositeImplicitAutograd)


def _example(t: ir.TensorType, mode) -> torch.Tensor:
    # A fake tensor: shapes, dtypes and strides without storage, so a node over gigabytes of
    # data decomposes without allocating any (make_fx reuses the inputs' fake mode).
    with mode:
        return torch.empty_strided(t.shape, t.layout(), dtype=getattr(torch, t.dtype))


def _substitute(args, tensors: dict[str, torch.Tensor]):
    if isinstance(args, ir.ValueRef):
        return tensors[args.name]
    if isinstance(args, (list, tuple)):
        return type(args)(_substitute(a, tensors) for a in args)
    return args


def _rename(node: ir.Node, mapping: dict[str, str]) -> ir.Node:
    def fix(a):
        if isinstance(a, ir.ValueRef):
            return ir.ValueRef(mapping.get(a.name, a.name))
        if isinstance(a, (list, tuple)):
            return type(a)(fix(x) for x in a)
        return a
    attrs = tuple((k, fix(v)) for k, v in node.attrs)
    return ir.Node(node.id, node.op, node.kind, tuple(mapping.get(i, i) for i in node.inputs),
                   tuple(mapping.get(o, o) for o in node.outputs), attrs)


def decompose_node(node: ir.Node, types: dict[str, ir.TensorType]):
    """(new nodes, new types) replacing ``node``, or None when it stays as is."""
    op = resolve_overload(node.op)
    if not _is_decomposable(op):
        return None
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    tensors = {name: _example(types[name], mode) for name in node.inputs}
    args, kwargs = node.attr("args", ()), dict(node.attr("kwargs", ()))

    def call(*xs):
        bound = dict(zip(node.inputs, xs))
        return op(*_substitute(args, bound), **_substitute(kwargs, bound))

    try:
        gm = make_fx(call, decomposition_table=_TABLE, tracing_mode="fake")(*tensors.values())
    except Exception:   # torch could not trace it: the node stays a library call
        return None
    calls = [n for n in gm.graph.nodes if n.op == "call_function"]
    if len(calls) == 1 and calls[0].target is op:
        return None
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    tr = translate_fx(gm, dict(zip(placeholders, node.inputs)), prefix=node.outputs[0] + "/")
    produced = [tr.names[o] if isinstance(o, torch.fx.Node) else o for o in fx_outputs(gm)]
    return _splice(node, tr, produced, types)


def _splice(node: ir.Node, tr, produced: list, known: dict[str, ir.TensorType]):
    """Name the decomposition's results like the original node's outputs."""
    mapping, nodes, types = {}, list(tr.nodes), dict(tr.types)
    known = {**known, **types}
    for i, (want, got) in enumerate(zip(node.outputs, produced)):
        if isinstance(got, str) and got not in node.inputs and got not in mapping:
            mapping[got] = want
            types[want] = types.pop(got)
        else:   # the result is an input or a constant: copy it into the wanted name
            if not isinstance(got, str):
                return None
            source = known[mapping.get(got, got)] if got in known or got in mapping else None
            if source is None:
                return None
            nodes.append(ir.Node(f"{node.id}/copy{i}", "cast", "pointwise", (got,), (want,),
                                 (("args", (ir.ValueRef(got),)), ("dtype", source.dtype))))
            types[want] = ir.TensorType(source.shape, source.dtype, None)
    return [_rename(n, mapping) for n in nodes], types


class DecomposePass:
    name = "decompose"
    stage = "graph"
    order = 10

    def run(self, graph: ir.Graph, context: PassContext) -> ir.Graph:
        types = graph.type_map()
        nodes: list[ir.Node] = []
        for node in graph.nodes:
            replaced = decompose_node(node, types) if node.kind == "library" else None
            if replaced is None:
                nodes.append(node)
                continue
            new_nodes, new_types = replaced
            types.update(new_types)
            nodes.extend(new_nodes)
        out = ir.Graph(graph.inputs, graph.params, tuple(nodes), graph.outputs, tuple(types.items()),
                       graph.constants, graph.returns_tuple)
        return eliminate_dead_nodes(out)
