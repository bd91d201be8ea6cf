"""Graph rewrites that are proven before they are used.

A rewrite pass proposes ``Rewrite``s: a few nodes of the graph replaced by others that write the
same values (the ones read elsewhere or returned). Before one is applied it is *proven*: the
region it replaces and its replacement are cut out of the graph as two small graphs over the same
inputs and parameters, every dimension shrunk to at most ``SHRINK`` (so a 32768x32768 weight costs
nothing to check; the identities these passes use do not depend on sizes), both are planned
unfused and executed by ``akg.planeval`` (the IR's reference semantics) on random inputs and random
parameters of two distributions, and their outputs must agree within the harness's tolerance for
their dtype, NaN positions included. A rewrite that fails its proof, or that cannot be shrunk
(a view that flattens dims, a grouped convolution), is not applied; the graph keeps the original.
The candidate built from the rewritten graph still goes through the full harness.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable

import torch

from akg import ir

SHRINK = 16          # largest dimension of a proof's tensors
TRIALS = ("normal", "positive")


@dataclass(frozen=True)
class Rewrite:
    """Replace nodes ``removed`` by ``added``. The added nodes write every value of the removed ones
    that is read elsewhere or returned, with the same shape and dtype; ``types`` gives the type of
    every other value they introduce."""
    rule: str
    removed: tuple[str, ...]
    added: tuple[ir.Node, ...]
    types: tuple[tuple[str, ir.TensorType], ...]


@dataclass(frozen=True)
class Proof:
    ok: bool
    detail: str = ""


# ----------------------------------------------------------------------------------------------
# building blocks for rules
# ----------------------------------------------------------------------------------------------

class Builder:
    """Collects the nodes and types of one rewrite; names are unique per rule and anchor."""

    def __init__(self, rule: str, anchor: str):
        self.rule, self.anchor = rule, anchor
        self.nodes: list[ir.Node] = []
        self.types: dict[str, ir.TensorType] = {}

    def fresh(self, what: str) -> str:
        return f"{self.rule}/{self.anchor}/{what}{len(self.nodes)}"

    def pointwise(self, op: str, args: tuple, t: ir.TensorType, out: str | None = None) -> str:
        out = out or self.fresh(op)
        inputs = tuple(dict.fromkeys(a.name for a in args if isinstance(a, ir.ValueRef)))
        self.nodes.append(ir.Node(f"{self.rule}:{self.anchor}:{len(self.nodes)}", op, "pointwise", inputs, (out,),
                                  (("args", tuple(args)),)))
        self.types[out] = ir.TensorType(t.shape, t.dtype)
        return out

    def view(self, value: str, shape: tuple[int, ...], dtype: str, out: str | None = None) -> str:
        out = out or self.fresh("view")
        self.nodes.append(ir.Node(f"{self.rule}:{self.anchor}:{len(self.nodes)}", "aten.view.default", "view", (value,), (out,),
                                  (("args", (ir.ValueRef(value), list(shape))), ("kwargs", ()), ("storage_offset", 0))))
        self.types[out] = ir.TensorType(tuple(shape), dtype)
        return out

    def sum(self, value: str, dims: tuple[int, ...], keepdim: bool, t: ir.TensorType, out: str | None = None) -> str:
        out = out or self.fresh("sum")
        self.nodes.append(ir.Node(f"{self.rule}:{self.anchor}:{len(self.nodes)}", "sum", "reduction", (value,), (out,),
                                  (("dims", tuple(dims)), ("keepdim", keepdim))))
        self.types[out] = ir.TensorType(t.shape, t.dtype)
        return out

    def node(self, node: ir.Node, types: dict[str, ir.TensorType] | None = None) -> None:
        self.nodes.append(node)
        self.types.update(types or {})

    def rewrite(self, removed: Iterable[str]) -> Rewrite:
        return Rewrite(self.rule, tuple(removed), tuple(self.nodes), tuple(self.types.items()))


def single_use(graph: ir.Graph, value: str, consumers: dict[str, list[ir.Node]]) -> ir.Node | None:
    """The one node reading ``value`` when exactly one does and it is not a graph output."""
    users = consumers.get(value, [])
    if value in graph.outputs or len(users) != 1:
        return None
    return users[0]


def replace_args(node: ir.Node, changes: dict[int, object], outputs: tuple[str, ...], node_id: str) -> ir.Node:
    """``node`` with positional args replaced (the list grown with None where short)."""
    args = list(node.attr("args", ()))
    while len(args) <= max(changes):
        args.append(None)
    for i, v in changes.items():
        args[i] = v
    attrs = tuple((k, tuple(args) if k == "args" else v) for k, v in node.attrs)
    inputs = tuple(dict.fromkeys(ir._value_refs(tuple(args)) + ir._value_refs(tuple(v for _, v in node.attr("kwargs", ())))))
    return ir.Node(node_id, node.op, node.kind, inputs, outputs, attrs)


# ----------------------------------------------------------------------------------------------
# applying
# ----------------------------------------------------------------------------------------------

def _escaping(graph: ir.Graph, removed: set[str]) -> list[str]:
    """Values written by removed nodes and read by kept nodes or returned."""
    written = [v for n in graph.nodes if n.id in removed for v in n.outputs]
    read_outside = {i for n in graph.nodes if n.id not in removed for i in n.inputs} | set(graph.outputs)
    return [v for v in written if v in read_outside]


def apply(graph: ir.Graph, rw: Rewrite) -> ir.Graph:
    """The graph with ``rw`` applied (the added nodes take the place of the last removed one)."""
    removed = set(rw.removed)
    last = max(i for i, n in enumerate(graph.nodes) if n.id in removed)
    kept_before = [n for n in graph.nodes[:last] if n.id not in removed]
    kept_after = [n for n in graph.nodes[last + 1:] if n.id not in removed]
    nodes = tuple(kept_before) + rw.added + tuple(kept_after)
    types = dict(graph.types)
    for k, t in rw.types:
        types.setdefault(k, t)
    defined = set(graph.inputs) | set(graph.params) | {v for n in nodes for v in n.outputs}
    out = ir.Graph(graph.inputs, graph.params, nodes, graph.outputs,
                   tuple((k, t) for k, t in types.items() if k in defined), graph.constants, graph.returns_tuple)
    out.verify()
    return out


# ----------------------------------------------------------------------------------------------
# proving
# ----------------------------------------------------------------------------------------------

def regions(graph: ir.Graph, rw: Rewrite) -> tuple[ir.Graph, ir.Graph]:
    """(before, after): the replaced nodes and their replacement as graphs of their own, over the
    values they read from the rest of the graph and returning the values the rest reads."""
    removed = set(rw.removed)
    old = [n for n in graph.nodes if n.id in removed]
    escaping = tuple(_escaping(graph, removed))
    types = {**graph.type_map(), **dict(rw.types)}
    made_new = {v for n in rw.added for v in n.outputs}
    missing = [v for v in escaping if v not in made_new]
    if missing:
        raise ir.IRError(f"{rw.rule}: the replacement does not write {', '.join(missing)}")
    constants = dict(graph.constants)

    def region(nodes: list[ir.Node]) -> ir.Graph:
        made = {v for n in nodes for v in n.outputs}
        reads = list(dict.fromkeys(i for n in nodes for i in n.inputs if i not in made))
        params = tuple(v for v in reads if v in graph.params)
        inputs = tuple(v for v in reads if v not in graph.params and v not in constants)
        consts = tuple((v, constants[v]) for v in reads if v in constants)
        used = set(reads) | made
        return ir.Graph(inputs, params, tuple(nodes), escaping, tuple((k, t) for k, t in types.items() if k in used), consts,
                        len(escaping) > 1)

    before, after = region(old), region(list(rw.added))
    return before, _same_reads(before, after)


def _same_reads(before: ir.Graph, after: ir.Graph) -> ir.Graph:
    """``after`` reading what ``before`` reads (unused ones too), so one draw feeds both."""
    inputs = tuple(dict.fromkeys(before.inputs + after.inputs))
    params = tuple(dict.fromkeys(before.params + after.params))
    types = dict(before.types)
    types.update(after.types)
    return ir.Graph(inputs, params, after.nodes, after.outputs, tuple(types.items()),
                    tuple(dict.fromkeys(before.constants + after.constants)), after.returns_tuple)


def _shrunk(size: int) -> int:
    return min(size, SHRINK)


def _shrink_arg(a, view: bool):
    if isinstance(a, list) and view and all(isinstance(x, int) for x in a):
        return [_shrunk(x) if x > 0 else x for x in a]
    if isinstance(a, (list, tuple)):
        return type(a)(_shrink_arg(x, view) for x in a)
    return a


def _shrink_node(n: ir.Node) -> ir.Node:
    """Shape arguments of views shrink with the tensors."""
    if n.kind != "view":
        return n
    attrs = tuple((k, _shrink_arg(v, True) if k in ("args", "kwargs") else v) for k, v in n.attrs)
    return ir.Node(n.id, n.op, n.kind, n.inputs, n.outputs, attrs)


def _draw(t: ir.TensorType, shape: tuple[int, ...], trial: str, gen: torch.Generator) -> torch.Tensor:
    dtype = getattr(torch, t.dtype)
    if t.dtype in ir.FLOAT_DTYPES:
        x = torch.randn(shape, generator=gen, dtype=torch.float64) if trial == "normal" else \
            torch.rand(shape, generator=gen, dtype=torch.float64) + 0.5
        return x.to(dtype)
    if t.dtype == "bool":
        return torch.rand(shape, generator=gen) > 0.5
    return torch.randint(0, 2, shape, generator=gen).to(dtype)


def _run_nodes(g: ir.Graph, env: dict[str, torch.Tensor]) -> dict[str, ir.TensorType]:
    """Execute ``g`` node by node on ``env`` (updated in place); the types of what it wrote."""
    from akg.agents.analyzer import tensor_type
    from akg.passes import exprs
    from akg.passes.lower import as_aten_node
    from akg.planeval import _overload, _resolve_args, _Scope, eval_expr
    types = g.type_map()
    found = {}
    for n in g.nodes:
        if n.kind == "pointwise":
            tensors, args = [], []
            for a in n.attr("args", ()):
                if isinstance(a, ir.ValueRef):
                    args.append(ir.Load(len(tensors), types[a.name].dtype))
                    tensors.append(env[a.name])
                else:
                    args.append(a)
            expr = exprs.pointwise_expr(n.op, args, types[n.outputs[0]].dtype, n.attr("dtype"))
            results = [eval_expr(expr, _Scope(tensors)).clone()]
        else:
            aten = as_aten_node(n)
            device = torch.device("cpu")
            r = _overload(aten.op)(*_resolve_args(aten.attr("args", ()), env, device),
                                   **{k: _resolve_args(v, env, device) for k, v in aten.attr("kwargs", ())})
            results = list(r) if isinstance(r, (tuple, list)) else [r]
        for name, value in zip(n.outputs, results):
            env[name] = value
            found[name] = tensor_type(value)
    return found


def _shrink_graph(g: ir.Graph, draws: dict[str, torch.Tensor]) -> ir.Graph:
    """``g`` with every tensor as small as ``draws`` (its inputs and parameters) make it."""
    from akg.agents.analyzer import tensor_type
    nodes = tuple(_shrink_node(n) for n in g.nodes)
    small = ir.Graph(g.inputs, g.params, nodes, g.outputs, g.types, g.constants, g.returns_tuple)
    env = dict(g.constants)
    env.update(draws)
    types = {k: tensor_type(v) for k, v in draws.items()}
    with torch.no_grad():
        types.update(_run_nodes(small, env))
    return ir.Graph(g.inputs, g.params, nodes, g.outputs, tuple(types.items()), g.constants, g.returns_tuple)


def _close(expected: torch.Tensor, actual: torch.Tensor, dtype: str) -> str:
    """'' when ``actual`` matches ``expected`` within the harness tolerance for ``dtype``."""
    from akg.harness.config import HarnessConfig
    if expected.shape != actual.shape or expected.dtype != actual.dtype:
        return f"shape/dtype {tuple(actual.shape)} {actual.dtype} != {tuple(expected.shape)} {expected.dtype}"
    if not expected.is_floating_point():
        return "" if torch.equal(expected, actual) else "values differ"
    e, a = expected.double(), actual.double()
    if not torch.equal(torch.isnan(e), torch.isnan(a)) or not torch.equal(e[torch.isinf(e)], a[torch.isinf(e)]) \
            or not torch.equal(torch.isinf(e), torch.isinf(a)):
        return "NaN/Inf positions differ"
    finite = torch.isfinite(e)
    e, a = e[finite], a[finite]
    if e.numel() == 0:
        return ""
    tol = HarnessConfig().tolerance(dtype)
    scale = max(1.0, float(e.abs().max()))
    err = (a - e).abs()
    if bool((err > tol.atol * scale + tol.rtol * e.abs()).any()):
        return f"max abs err {float(err.max()):.3g} beyond rtol={tol.rtol:g} atol={tol.atol:g}"
    norm = float(e.norm())
    if norm > 0 and float(err.norm()) / norm > tol.rel_norm:
        return f"relative error norm {float(err.norm()) / norm:.3g} > {tol.rel_norm:g}"
    return ""


def prove(graph: ir.Graph, rw: Rewrite, seed: int = 0) -> Proof:
    """Whether ``rw`` computes what it replaces, checked on random data by planeval."""
    from akg.passes.fuse import Strategy, fuse
    from akg.planeval import run_plan
    try:
        before, after = regions(graph, rw)
        before.verify()
        after.verify()
        for k, t in rw.types:   # a replaced value keeps its shape and dtype
            if k in before.outputs and (t.shape, t.dtype) != (graph.type_of(k).shape, graph.type_of(k).dtype):
                return Proof(False, f"{k} changes type")
        unfused = Strategy("unfused", matmul_kernel=False, pool_kernel=False, singletons=True)
        finite_seen = False
        for i, trial in enumerate(TRIALS):
            gen = torch.Generator().manual_seed(seed * len(TRIALS) + i)
            shapes = {v: tuple(_shrunk(s) for s in after.type_of(v).shape) for v in after.inputs + after.params
                      if v not in dict(after.constants)}
            draws = {v: _draw(after.type_of(v), s, trial, gen) for v, s in shapes.items()}
            small_before, small_after = _shrink_graph(before, dict(draws)), _shrink_graph(after, dict(draws))
            inputs = [draws.get(v, dict(before.constants).get(v)) for v in small_before.inputs]
            state = {p: draws[p] for p in small_before.params}
            expected = run_plan(fuse(small_before, unfused), inputs, state)
            inputs = [draws.get(v, dict(after.constants).get(v)) for v in small_after.inputs]
            state = {p: draws[p] for p in small_after.params}
            actual = run_plan(fuse(small_after, unfused), inputs, state)
            for name, e, a in zip(before.outputs, expected, actual):
                problem = _close(e, a, graph.type_of(name).dtype)
                if problem:
                    return Proof(False, f"{rw.rule}: {name} ({trial} draw): {problem}")
                finite_seen = finite_seen or bool(torch.isfinite(e).any()) if e.is_floating_point() else True
        if not finite_seen:
            return Proof(False, f"{rw.rule}: every output was NaN or Inf; nothing was compared")
        return Proof(True)
    except Exception as e:   # a region that cannot be cut, shrunk or run is not proven
        return Proof(False, f"{rw.rule}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300])


# ----------------------------------------------------------------------------------------------
# the pass shape
# ----------------------------------------------------------------------------------------------

Finder = Callable[[ir.Graph], Iterable[Rewrite]]

# What the rewrite passes did lately, (rule, detail), newest last: for tests and debugging.
LOG: deque[tuple[str, str]] = deque(maxlen=256)


def rewrite_graph(graph: ir.Graph, find: Finder, max_rounds: int = 256) -> ir.Graph:
    """Apply every proven rewrite ``find`` proposes until it proposes none that is new."""
    refused: set[tuple[str, ...]] = set()
    for _ in range(max_rounds):
        for rw in find(graph):
            if rw.removed in refused:
                continue
            proof = prove(graph, rw)
            if proof.ok:
                graph = apply(graph, rw)
                LOG.append((rw.rule, "applied at " + ", ".join(rw.removed)))
                break
            refused.add(rw.removed)
            LOG.append((rw.rule, "refused: " + proof.detail))
        else:
            return graph
    return graph


class RewritePass:
    """A graph pass made of one rewrite rule: ``find`` proposes, ``rewrite_graph`` proves and applies."""
    name = "rewrite"
    stage = "graph"
    order = 50

    def find(self, graph: ir.Graph) -> Iterable[Rewrite]:
        raise NotImplementedError

    def run(self, graph: ir.Graph, context) -> ir.Graph:
        return rewrite_graph(graph, self.find)

