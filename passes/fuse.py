"""fuse (stage "plan"): Graph -> one KernelPlan per fusion strategy.

Nodes are visited in graph order and grown greedily into groups over an iteration domain:
- pointwise chains share one domain (broadcast operands get stride 0);
- a reduction turns the open group into a row-wise ReductionKernel: its prologue becomes the stage
  expression, later reductions over the same rows become further stages, and pointwise consumers
  become reduced (once per row) or full (every element) outputs;
- a scan takes its pointwise prologue and epilogue;
- matmul and pool start a group whose pointwise consumers form the epilogue (``Acc()``).
Every value inside a group has a *map*: for each of its dims, the domain dim it walks (None for
size-1 dims), which is all that is needed to turn shapes into per-operand strides.
Whatever joins no group (conv, gathers, unsupported ops, views that must exist) is a library call.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from akg import ir
from akg.passes import exprs
from akg.passes.layout import Layouts
from akg.targets import PassContext

_SCAN_OPS = {"cumsum": "sum", "cumprod": "prod"}


@dataclass(frozen=True)
class Strategy:
    name: str
    matmul_kernel: bool = True      # False: matmul as a library call, epilogue as its own kernel
    pool_kernel: bool = True
    split_reductions: bool = False  # each reduction its own kernel, consumers in separate kernels
    singletons: bool = False        # every node its own kernel


STRATEGIES = (
    Strategy("fuse-all"),
    Strategy("library-matmul", matmul_kernel=False, pool_kernel=False),
    Strategy("split-reductions", split_reductions=True),
)


class _JoinFailed(Exception):
    pass


# ----------------------------------------------------------------------------------------------
# stride helpers
# ----------------------------------------------------------------------------------------------

def domain_strides(shape: tuple[int, ...], strides: tuple[int, ...], dmap: tuple, rank: int) -> tuple[int, ...]:
    """Element strides over the domain of a tensor whose dim i walks domain dim dmap[i]."""
    out = [0] * rank
    for size, stride, d in zip(shape, strides, dmap):
        if size > 1 and d is not None:
            out[d] += stride
    return tuple(out)


def collapse(domain: tuple[int, ...], stride_sets: list[tuple[int, ...]], special: set[int]):
    """Merge adjacent domain dims wherever every stride set allows it. ``special`` dims (reduce or
    scan dims) only merge with each other. Returns (domain, stride_sets, special) or raises."""
    keep = [d for d in range(len(domain)) if domain[d] != 1]
    dims = [[d] for d in keep]
    merged: list[list[int]] = []
    for group in dims:
        if merged:
            prev, d = merged[-1][-1], group[0]
            same_kind = (prev in special) == (d in special)
            fits = all(s[prev] == s[d] * domain[d] for s in stride_sets)
            if same_kind and fits:
                merged[-1].append(d)
                continue
        merged.append(group)
    if not merged:
        return (1,), [tuple([0]) for _ in stride_sets], set()
    new_domain = tuple(math.prod(domain[d] for d in g) for g in merged)
    new_sets = [tuple(s[g[-1]] for g in merged) for s in stride_sets]
    new_special = {i for i, g in enumerate(merged) if g[0] in special}
    return new_domain, new_sets, new_special


# ----------------------------------------------------------------------------------------------
# one open group
# ----------------------------------------------------------------------------------------------

@dataclass
class _Group:
    kind: str                                   # pointwise | reduction | scan | matmul | pool
    domain: tuple[int, ...]
    special: tuple[int, ...] = ()               # reduce dims or the scan dim
    nodes: list[str] = field(default_factory=list)
    exprs: dict[str, ir.Expr] = field(default_factory=dict)
    maps: dict[str, tuple] = field(default_factory=dict)
    reduced: set[str] = field(default_factory=set)
    operands: list[ir.Operand] = field(default_factory=list)
    stages: list[ir.Stage] = field(default_factory=list)
    scan: tuple | None = None                   # (op, expr)
    head: object = None                         # matmul / pool parameters

    def has(self, value: str) -> bool:
        return value in self.exprs


class _Fuser:
    def __init__(self, graph: ir.Graph, strategy: Strategy):
        self.graph, self.strategy = graph, strategy
        self.types = graph.type_map()
        self.layouts = Layouts(graph)
        self.consumers = graph.consumers()
        self.groups: list[ir.FusedGroup] = []
        self.open: _Group | None = None

    # -- driver -------------------------------------------------------------------------------
    def plan(self) -> ir.KernelPlan:
        for node in self.graph.nodes:
            self.visit(node)
        self.close()
        groups = prune_dead_groups(self.groups, self.graph.outputs)
        return ir.KernelPlan(self.graph, tuple(groups), self.strategy.name)

    def visit(self, node: ir.Node) -> None:
        if self.strategy.singletons and node.kind != "view":
            self.close()
        handler = {"pointwise": self.pointwise, "reduction": self.reduction, "scan": self.scan_node,
                   "view": self.view, "matmul": self.matmul, "pool": self.pool}.get(node.kind)
        if handler is not None:
            try:
                handler(node)
                return
            except _JoinFailed:
                pass
        self.close()
        self.library(node)

    # -- operands -----------------------------------------------------------------------------
    def operand(self, g: _Group, value: str, dmap: tuple) -> ir.Load:
        resolved = self.layouts.resolve(value)
        if resolved is None:
            raise _JoinFailed(value)
        base, strides = resolved
        t = self.types[value]
        over = domain_strides(t.shape, strides, dmap, len(g.domain))
        op = ir.Operand(base, self.layouts.type_of(base), over)
        if op not in g.operands:
            g.operands.append(op)
        return ir.Load(g.operands.index(op), t.dtype)

    def arg_expr(self, g: _Group, a, out_shape: tuple[int, ...], out_map: tuple):
        if not isinstance(a, ir.ValueRef):
            return a
        if g.has(a.name):
            return g.exprs[a.name]
        shape = self.types[a.name].shape
        offset = len(out_shape) - len(shape)
        return self.operand(g, a.name, tuple(out_map[i + offset] for i in range(len(shape))))

    # -- pointwise ----------------------------------------------------------------------------
    def pointwise(self, node: ir.Node) -> None:
        out = node.outputs[0]
        t = self.types[out]
        g = self.open
        dmap = self.pointwise_map(g, node) if g is not None else None
        if g is None or dmap is None or not self.may_join(g, node, dmap):
            self.close()
            g = self.open = _Group("pointwise", t.shape or (1,))
            dmap = tuple(range(len(t.shape)))
        args = [self.arg_expr(g, a, t.shape, dmap) for a in node.attr("args", ())]
        g.exprs[out] = exprs.pointwise_expr(node.op, args, t.dtype, node.attr("dtype"))
        g.maps[out] = dmap
        if g.kind == "reduction" and not any(d in g.special for s, d in zip(t.shape, dmap) if s > 1):
            g.reduced.add(out)
        g.nodes.append(node.id)

    def pointwise_map(self, g: _Group, node: ir.Node) -> tuple | None:
        """The domain map of the node's output inside ``g``, or None when it does not fit."""
        shape = self.types[node.outputs[0]].shape
        dmap: list = [None] * len(shape)
        for a in node.attr("args", ()):
            if not (isinstance(a, ir.ValueRef) and g.has(a.name)):
                continue
            a_shape, a_map = self.types[a.name].shape, g.maps[a.name]
            offset = len(shape) - len(a_shape)
            for i, (size, d) in enumerate(zip(a_shape, a_map)):
                if size == 1:
                    continue
                if dmap[i + offset] not in (None, d):
                    return None
                dmap[i + offset] = d
        for j, size in enumerate(shape):
            if size > 1 and dmap[j] is None:
                # a dim only external operands have: it must line up with the domain by position
                if len(shape) != len(g.domain) or g.domain[j] != size or j in dmap:
                    return None
                dmap[j] = j
            if dmap[j] is not None and g.domain[dmap[j]] != size:
                return None
        if not any(isinstance(a, ir.ValueRef) and g.has(a.name) for a in node.attr("args", ())):
            return None
        return tuple(dmap)

    def may_join(self, g: _Group, node: ir.Node, dmap: tuple) -> bool:
        t = self.types[node.outputs[0]]
        full = any(d in g.special for s, d in zip(t.shape, dmap) if s > 1)
        if g.kind == "reduction" and full and self.strategy.split_reductions:
            return False
        if g.kind in ("matmul", "pool") and any(d is None for s, d in zip(t.shape, dmap) if s > 1):
            return False
        if g.kind == "reduction":
            return self.reduce_dims_collapse(g, node, t.shape, dmap)
        return True

    def reduce_dims_collapse(self, g: _Group, node: ir.Node, shape, dmap) -> bool:
        """Several reduce dims must stay one after collapsing, for every operand the node adds."""
        if len(g.special) < 2:
            return True
        sets = [domain_strides(shape, ir.contiguous_strides(shape), dmap, len(g.domain))]
        for a in node.attr("args", ()):
            if isinstance(a, ir.ValueRef) and not g.has(a.name):
                resolved = self.layouts.resolve(a.name)
                if resolved is None:
                    return False
                a_shape = self.types[a.name].shape
                offset = len(shape) - len(a_shape)
                sets.append(domain_strides(a_shape, resolved[1], tuple(dmap[i + offset] for i in range(len(a_shape))), len(g.domain)))
        r = g.special
        return all(s[r[i]] == s[r[i + 1]] * g.domain[r[i + 1]] for s in sets for i in range(len(r) - 1))

    # -- reductions ---------------------------------------------------------------------------
    def reduction(self, node: ir.Node) -> None:
        x, out = node.inputs[0], node.outputs[0]
        x_shape = self.types[x].shape
        dims = node.attr("dims")
        g = self.open
        joined = g is not None and g.has(x) and x not in g.reduced and g.kind in ("pointwise", "reduction")
        if joined:
            xmap = g.maps[x]
            rdims = tuple(sorted({xmap[d] for d in dims if x_shape[d] > 1}))
            covers = sorted(d for s, d in zip(x_shape, xmap) if s > 1) == [d for d, s in enumerate(g.domain) if s > 1]
            if g.kind == "pointwise":
                joined = covers and bool(rdims) and self.rdims_ok(rdims)
            else:
                joined = covers and rdims == g.special and not self.strategy.split_reductions
        if joined and g.kind == "pointwise":
            g.kind, g.special = "reduction", rdims
        if not joined:
            rdims = tuple(d for d in dims if x_shape[d] > 1)
            if not rdims or not self.rdims_ok(rdims):
                raise _JoinFailed(node.id)
            self.close()
            g = self.open = _Group("reduction", x_shape, rdims)
            xmap = tuple(range(len(x_shape)))
            expr = self.operand(g, x, xmap)
            if not self.reduce_dims_collapse_operand(g):
                self.open = None
                raise _JoinFailed(node.id)
        else:
            expr = g.exprs[x]
        self.add_stage(g, node, expr, xmap)

    def rdims_ok(self, rdims: tuple[int, ...]) -> bool:
        return list(rdims) == list(range(rdims[0], rdims[0] + len(rdims)))

    def reduce_dims_collapse_operand(self, g: _Group) -> bool:
        r = g.special
        return all(op.strides[r[i]] == op.strides[r[i + 1]] * g.domain[r[i + 1]] for op in g.operands for i in range(len(r) - 1))

    def add_stage(self, g: _Group, node: ir.Node, expr: ir.Expr, xmap: tuple) -> None:
        out = node.outputs[0]
        t = self.types[out]
        dims, keepdim = node.attr("dims"), node.attr("keepdim")
        if node.op in ("sum", "prod") and expr.dtype != t.dtype:
            expr = exprs.cast(expr, t.dtype)
        g.stages.append(ir.Stage(node.op, expr))
        index = len(g.stages) - 1
        part = "index" if node.op.startswith("arg") else "value"
        g.exprs[out] = ir.StageRef(index, t.dtype, part)
        x_dims = range(len(xmap))
        g.maps[out] = tuple(None if d in dims else xmap[d] for d in x_dims) if keepdim else tuple(xmap[d] for d in x_dims if d not in dims)
        g.reduced.add(out)
        g.nodes.append(node.id)

    # -- scans --------------------------------------------------------------------------------
    def scan_node(self, node: ir.Node) -> None:
        x, out = node.inputs[0], node.outputs[0]
        shape, dim = self.types[x].shape, node.attr("dim")
        g = self.open
        if g is not None and g.kind == "pointwise" and g.has(x) and g.maps[x] == tuple(range(len(shape))) and g.domain == shape:
            g.kind, g.special = "scan", (dim,)
            expr = g.exprs[x]
        else:
            self.close()
            g = self.open = _Group("scan", shape or (1,), (dim,))
            expr = self.operand(g, x, tuple(range(len(shape))))
        g.scan = (_SCAN_OPS[node.op], expr)
        g.exprs[out] = ir.StageRef(0, self.types[out].dtype)
        g.maps[out] = tuple(range(len(shape)))
        g.nodes.append(node.id)

    # -- views --------------------------------------------------------------------------------
    def view(self, node: ir.Node) -> None:
        src, out = node.inputs[0], node.outputs[0]
        g = self.open
        if g is not None and g.has(src):
            dmap = self.trivial_view_map(src, out, g.maps[src])
            if dmap is None:
                raise _JoinFailed(node.id)
            g.exprs[out], g.maps[out] = g.exprs[src], dmap
            if src in g.reduced:
                g.reduced.add(out)
            g.nodes.append(node.id)
            return
        self.library(node)   # pruned later when every reader absorbs the view into its strides

    def trivial_view_map(self, src: str, out: str, src_map: tuple) -> tuple | None:
        """Views that only add or drop size-1 dims keep the walk of the other dims."""
        a, b = self.types[src].shape, self.types[out].shape
        big_a = [(s, d) for s, d in zip(a, src_map) if s > 1]
        if [s for s in b if s > 1] != [s for s, _ in big_a]:
            return None
        walk = iter(d for _, d in big_a)
        return tuple(next(walk) if s > 1 else None for s in b)

    # -- matmul / pool --------------------------------------------------------------------------
    def matmul(self, node: ir.Node) -> None:
        if not self.strategy.matmul_kernel:
            raise _JoinFailed(node.id)
        from akg.passes.heads import matmul_head
        self.close()
        self.open = matmul_head(self, node)

    def pool(self, node: ir.Node) -> None:
        if not self.strategy.pool_kernel:
            raise _JoinFailed(node.id)
        from akg.passes.heads import pool_head
        self.close()
        self.open = pool_head(self, node)

    # -- closing ------------------------------------------------------------------------------
    def library(self, node: ir.Node) -> None:
        from akg.passes.lower import library_call
        call = library_call(node, self.layouts)
        self.groups.append(ir.FusedGroup((node.id,), "library", call))

    def close(self) -> None:
        g, self.open = self.open, None
        if g is None:
            return
        from akg.passes.heads import build_kernel
        members = set(g.nodes)
        needed = [v for v in g.exprs if v in self.graph.outputs or any(c.id not in members for c in self.consumers.get(v, []))]
        if not needed:
            return
        kernel, family = build_kernel(self, g, needed)
        self.groups.append(ir.FusedGroup(tuple(g.nodes), family, kernel))
        for v in needed:
            self.layouts.kernel_output(v)


def prune_dead_groups(groups: list[ir.FusedGroup], outputs: tuple[str, ...]) -> list[ir.FusedGroup]:
    live, kept = set(outputs), []
    for g in reversed(groups):
        if any(v in live for v in g.written_values()):
            kept.append(g)
            live.update(g.read_values())
    kept.reverse()
    return kept


def fuse(graph: ir.Graph, strategy: Strategy) -> ir.KernelPlan:
    return _Fuser(graph, strategy).plan()


def _signature(plan: ir.KernelPlan):
    return tuple((g.family, g.nodes) for g in plan.groups)


class FusePass:
    name = "fuse"
    stage = "plan"
    order = 10

    def run(self, graph: ir.Graph, context: PassContext) -> list[ir.KernelPlan]:
        plans, seen = [], set()
        for strategy in STRATEGIES:
            try:
                plan = fuse(graph, strategy)
                plan.verify()
            except (ir.IRError, _JoinFailed):
                continue   # this strategy does not fit the graph; the others still may
            if _signature(plan) not in seen:
                seen.add(_signature(plan))
                plans.append(plan)
        return plans
