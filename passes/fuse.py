"""fuse (stage "plan"): Graph -> one KernelPlan per fusion strategy.

Nodes are visited in graph order and grown greedily into groups over an iteration domain:
- pointwise chains share one domain (broadcast operands get stride 0);
- a reduction turns the open group into a row-wise ReductionKernel: its prologue becomes the stage
  expression, later reductions over the same rows become further stages, and pointwise consumers
  become reduced (once per row) or full (every element) outputs;
- a scan takes its pointwise prologue and epilogue;
- matmul and pool (and conv, in the fuse-all-conv strategy) start a group whose pointwise
  consumers form the epilogue (``Acc()``);
- a node whose inputs all come from outside still joins a pointwise or reduction group when its
  dims line up with the domain (gelu's two branches of x, a loss's second input, a per-row class
  index), and a reduction of an outside tensor over the group's rows becomes one more stage
  (torch's layer norm sums x twice; identical stages are computed once);
- ``gather`` of one element per row along the reduce dim becomes a masked-sum stage.
Every value inside a group has a *map*: for each of its dims, the domain dim it walks (None for
size-1 dims), which is all that is needed to turn shapes into per-operand strides.
Whatever joins no group (conv, gathers, unsupported ops, views that must exist) is a library call.
"""
from __future__ import annotations

import collections
import math
from dataclasses import dataclass, field, replace

from akg import ir
from akg.passes import exprs
from akg.passes.layout import CHANNELS_LAST, Layouts, channels_last_convs
from akg.targets import PassContext

_SCAN_OPS = {"cumsum": "sum", "cumprod": "prod", "cummax": "max", "cummin": "min"}


@dataclass(frozen=True)
class Strategy:
    name: str
    matmul_kernel: bool = True      # False: matmul as a library call, epilogue as its own kernel
    pool_kernel: bool = True
    split_reductions: bool = False  # each reduction its own kernel, consumers in separate kernels
    singletons: bool = False        # every node its own kernel
    # Reductions over several dims that some operand cannot walk as one strided dim (group norm's
    # per-channel weight inside a row of channels x pixels) stay one kernel with several reduce
    # dims; only DSLs with the "reduction_nd" family render those plans.
    nd_reductions: bool = False
    # A pointwise group read only by a following 2-d pool becomes that pool kernel's prologue
    # (family "pool_prologue"), so the pooled tensor's input is never written.
    pool_prologues: bool = False
    # Forward convolutions (one group) as generated implicit-GEMM kernels with their pointwise
    # consumers as the epilogue (family "conv_epilogue"); otherwise they stay library calls.
    conv_kernel: bool = False


STRATEGIES = (
    Strategy("fuse-all"),
    Strategy("fuse-all-nd", nd_reductions=True, pool_prologues=True),
    Strategy("library-matmul", matmul_kernel=False, pool_kernel=False),
    Strategy("split-reductions", split_reductions=True),
    # fuse-all-nd with the convolutions generated too (only DSLs with every family render it)
    Strategy("fuse-all-conv", nd_reductions=True, pool_prologues=True, conv_kernel=True),
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
    kind: str                                   # pointwise | reduction | scan | matmul | pool | conv
    domain: tuple[int, ...]
    special: tuple[int, ...] = ()               # reduce dims or the scan dim
    nodes: list[str] = field(default_factory=list)
    exprs: dict[str, ir.Expr] = field(default_factory=dict)
    maps: dict[str, tuple] = field(default_factory=dict)
    reduced: set[str] = field(default_factory=set)
    operands: list[ir.Operand] = field(default_factory=list)
    stages: list[ir.Stage] = field(default_factory=list)
    scan: tuple | None = None                   # (op, expr)
    head: object = None                         # matmul / pool / conv parameters

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
        groups = write_through_reshapes(prune_dead_groups(self.groups, self.graph.outputs), self.graph)
        return ir.KernelPlan(self.graph, tuple(groups), self.strategy.name)

    def visit(self, node: ir.Node) -> None:
        if self.strategy.singletons and node.kind != "view":
            self.close()
        handler = {"pointwise": self.pointwise, "reduction": self.reduction, "scan": self.scan_node,
                   "view": self.view, "matmul": self.matmul, "pool": self.pool,
                   "conv": self.conv}.get(node.kind)
        if node.op == "aten.gather.default":
            handler = self.gather
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
        joins_group = any(isinstance(a, ir.ValueRef) and g.has(a.name) for a in node.attr("args", ()))
        if not joins_group and g.kind not in ("pointwise", "reduction"):
            return None   # an unrelated node only rides along in groups without a fixed head
        return self.place_external_dims(g, shape, tuple(dmap))

    def place_external_dims(self, g: _Group, shape: tuple[int, ...], dmap: tuple) -> tuple | None:
        """Complete ``dmap`` for dims that only external tensors have. They must line up with the
        domain: by position (same rank), right-aligned like broadcasting, or, in a reduction
        group, onto the row dims in order (a per-row value such as a class index)."""
        for placement in self.external_placements(g, shape):
            filled = list(dmap)
            for j, size in enumerate(shape):
                if size > 1 and filled[j] is None:
                    filled[j] = placement[j]
            if self.map_fits(g, shape, filled):
                return tuple(filled)
        return None

    def external_placements(self, g: _Group, shape: tuple[int, ...]):
        rank, big = len(g.domain), [j for j, s in enumerate(shape) if s > 1]
        if len(shape) <= rank:
            offset = rank - len(shape)
            yield [j + offset for j in range(len(shape))]
        if g.kind == "reduction":
            rows = [d for d, s in enumerate(g.domain) if s > 1 and d not in g.special]
            if len(rows) == len(big):
                placement: list = [None] * len(shape)
                for j, d in zip(big, rows):
                    placement[j] = d
                yield placement

    def map_fits(self, g: _Group, shape: tuple[int, ...], dmap: list) -> bool:
        walked = [d for s, d in zip(shape, dmap) if s > 1]
        if len(set(walked)) != len(walked):
            return False
        return all(d is None or (0 <= d < len(g.domain) and g.domain[d] == s) for s, d in zip(shape, dmap) if s > 1)

    def may_join(self, g: _Group, node: ir.Node, dmap: tuple) -> bool:
        t = self.types[node.outputs[0]]
        full = any(d in g.special for s, d in zip(t.shape, dmap) if s > 1)
        if g.kind == "reduction" and full and self.strategy.split_reductions:
            return False
        if g.kind in ("matmul", "pool", "conv") and any(d is None for s, d in zip(t.shape, dmap) if s > 1):
            return False
        if g.kind == "reduction":
            return self.reduce_dims_collapse(g, node, t.shape, dmap)
        return True

    def reduce_dims_collapse(self, g: _Group, node: ir.Node, shape, dmap) -> bool:
        """Several reduce dims must stay one after collapsing, for every operand the node adds."""
        if len(g.special) < 2 or self.strategy.nd_reductions:
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
        x = node.inputs[0]
        g = self.open
        joined = self.join_reduction(g, node) if g is not None else None
        if joined is None:
            g, expr, xmap = self.start_reduction(node)
        else:
            expr, xmap = joined
        self.add_stage(g, node, expr, xmap)

    def join_reduction(self, g: _Group, node: ir.Node):
        """(stage expr, input map) when the reduction becomes a stage of the open group: its input
        is computed there or read from outside over the same domain, and it reduces the group's
        rows (e.g. layer norm's mean, variance and the mean torch computes a second time)."""
        x, dims = node.inputs[0], node.attr("dims")
        x_shape = self.types[x].shape
        if g.kind not in ("pointwise", "reduction") or x in g.reduced:
            return None
        xmap = g.maps[x] if g.has(x) else self.place_external_dims(g, x_shape, (None,) * len(x_shape))
        if xmap is None:
            return None
        rdims = tuple(sorted({xmap[d] for d in dims if x_shape[d] > 1}))
        covers = sorted(d for s, d in zip(x_shape, xmap) if s > 1) == [d for d, s in enumerate(g.domain) if s > 1]
        if not covers or not rdims:
            return None
        if g.kind == "pointwise":
            if not self.rdims_ok(rdims) or not all(self.collapses(op.strides, rdims, g.domain) for op in g.operands):
                return None
        elif rdims != g.special or self.strategy.split_reductions:
            return None
        if g.has(x):
            expr = g.exprs[x]
        else:
            if not self.external_collapses(g, x, xmap, rdims):
                return None
            expr = self.operand(g, x, xmap)
        if g.kind == "pointwise":
            g.kind, g.special = "reduction", rdims
        return expr, xmap

    def start_reduction(self, node: ir.Node):
        x, dims = node.inputs[0], node.attr("dims")
        x_shape = self.types[x].shape
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
        return g, expr, xmap

    def external_collapses(self, g: _Group, value: str, vmap: tuple, rdims: tuple[int, ...]) -> bool:
        resolved = self.layouts.resolve(value)
        if resolved is None:
            return False
        strides = domain_strides(self.types[value].shape, resolved[1], vmap, len(g.domain))
        return self.collapses(strides, rdims, g.domain)

    def collapses(self, strides: tuple[int, ...], rdims: tuple[int, ...], domain: tuple[int, ...]) -> bool:
        return self.strategy.nd_reductions or self.strides_collapse(strides, rdims, domain)

    @staticmethod
    def strides_collapse(strides: tuple[int, ...], rdims: tuple[int, ...], domain: tuple[int, ...]) -> bool:
        """Several reduce dims must merge into one for this operand."""
        return all(strides[rdims[i]] == strides[rdims[i + 1]] * domain[rdims[i + 1]] for i in range(len(rdims) - 1))

    def rdims_ok(self, rdims: tuple[int, ...]) -> bool:
        return list(rdims) == list(range(rdims[0], rdims[0] + len(rdims)))

    def reduce_dims_collapse_operand(self, g: _Group) -> bool:
        if self.strategy.nd_reductions:
            return True
        r = g.special
        return all(op.strides[r[i]] == op.strides[r[i + 1]] * g.domain[r[i + 1]] for op in g.operands for i in range(len(r) - 1))

    def add_stage(self, g: _Group, node: ir.Node, expr: ir.Expr, xmap: tuple) -> None:
        out = node.outputs[0]
        t = self.types[out]
        dims, keepdim = node.attr("dims"), node.attr("keepdim")
        if node.op in ("sum", "prod") and expr.dtype != t.dtype:
            expr = exprs.cast(expr, t.dtype)
        index = self.stage_index(g, ir.Stage(node.op, expr))
        part = "index" if node.op.startswith("arg") else "value"
        g.exprs[out] = ir.StageRef(index, t.dtype, part)
        x_dims = range(len(xmap))
        g.maps[out] = tuple(None if d in dims else xmap[d] for d in x_dims) if keepdim else tuple(xmap[d] for d in x_dims if d not in dims)
        g.reduced.add(out)
        g.nodes.append(node.id)

    @staticmethod
    def stage_index(g: _Group, stage: ir.Stage) -> int:
        """Index of ``stage`` in the group, reusing an identical earlier stage (torch's norms
        compute the mean twice; one pass over the row is enough)."""
        if stage not in g.stages:
            g.stages.append(stage)
        return g.stages.index(stage)

    # -- gathers ------------------------------------------------------------------------------
    def gather(self, node: ir.Node) -> None:
        """``gather(x, d, index)`` along the reduce dim of the open row group, with one index per
        row (cross entropy's target logit), becomes the stage sum(where(RIndex == index, x, 0)):
        the row is already being read, so picking one element of it costs no extra pass."""
        args = node.attr("args", ())
        g = self.open
        if g is None or g.kind != "reduction" or len(g.special) != 1 or len(args) != 3 or node.attr("kwargs"):
            raise _JoinFailed(node.id)
        src, dim, index = args
        if not (isinstance(src, ir.ValueRef) and isinstance(index, ir.ValueRef) and g.has(src.name)) or src.name in g.reduced:
            raise _JoinFailed(node.id)
        shape = self.types[src.name].shape
        dim %= len(shape)
        src_map = g.maps[src.name]
        row_shape = tuple(1 if i == dim else s for i, s in enumerate(shape))
        if src_map[dim] != g.special[0] or self.types[index.name].shape != row_shape:
            raise _JoinFailed(node.id)
        row_map = tuple(None if i == dim else d for i, d in enumerate(src_map))
        picked = self.row_value(g, index.name, row_map)
        value = g.exprs[src.name]
        hit = ir.Call("eq", (ir.RIndex(), exprs.cast(picked, "int64")), "bool")
        masked = ir.Call("where", (hit, value, exprs.const(0, value.dtype)), value.dtype)
        out = node.outputs[0]
        g.exprs[out] = ir.StageRef(self.stage_index(g, ir.Stage("sum", masked)), self.types[out].dtype)
        g.maps[out] = row_map
        g.reduced.add(out)
        g.nodes.append(node.id)

    def row_value(self, g: _Group, value: str, row_map: tuple) -> ir.Expr:
        """A per-row value as an expression of the group: computed there, or read from outside."""
        if g.has(value):
            if value not in g.reduced:
                raise _JoinFailed(value)
            return g.exprs[value]
        return self.operand(g, value, row_map)

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

    def conv(self, node: ir.Node) -> None:
        if not self.strategy.conv_kernel:
            raise _JoinFailed(node.id)
        from akg.passes.heads import conv_head
        g = conv_head(self, node)   # raises before the open group closes when the conv does not fit
        self.close()
        self.open = g

    def pool(self, node: ir.Node) -> None:
        if not self.strategy.pool_kernel:
            raise _JoinFailed(node.id)
        from akg.passes.heads import pool_head, pool_prologue
        prologue = pool_prologue(self, node) if self.strategy.pool_prologues else None
        if prologue is None:
            self.close()
        g = pool_head(self, node, prologue)
        self.open = g

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


def write_through_reshapes(groups: list[ir.FusedGroup], graph: ir.Graph) -> list[ir.FusedGroup]:
    """A kernel output read only by a pure reshape (a norm's tail computed in the reduced shape,
    then viewed back to the model's shape) is written as the reshaped value itself: the same
    elements in the same order, so the same strides over the kernel's domain; the view's library
    call goes."""
    from akg.passes.reshape_epilogue import is_reshape
    nodes = {n.id: n for n in graph.nodes}
    readers = collections.Counter(v for g in groups for v in g.read_values())
    writer = {v: i for i, g in enumerate(groups) if not isinstance(g.kernel, ir.LibraryCall) for v in g.written_values()}
    groups, dropped = list(groups), set()
    for i, g in enumerate(groups):
        node = nodes.get(g.nodes[0]) if isinstance(g.kernel, ir.LibraryCall) and len(g.nodes) == 1 else None
        if node is None or not is_reshape(graph, node):
            continue
        src, out = node.inputs[0], node.outputs[0]
        j = writer.get(src)
        if j is None or readers[src] != 1 or src in graph.outputs:
            continue
        k = groups[j].kernel
        t = graph.type_of(out)
        outs = tuple(replace(o, value=out, type=ir.TensorType(t.shape, t.dtype)) if o.value == src else o for o in k.outputs)
        groups[j] = ir.FusedGroup(groups[j].nodes + g.nodes, groups[j].family, replace(k, outputs=outs), groups[j].schedule)
        dropped.add(i)
    return [g for i, g in enumerate(groups) if i not in dropped]


def fuse(graph: ir.Graph, strategy: Strategy) -> ir.KernelPlan:
    return _Fuser(graph, strategy).plan()


def _variants(graph: ir.Graph):
    """(graph, strategy) pairs to fuse: every strategy on the graph as traced, then on the graph
    with channels-last convolutions, when it has any (which layout wins is measured, not guessed)."""
    for strategy in STRATEGIES:
        yield graph, strategy
    channels_last = channels_last_convs(graph)
    if channels_last is not None:
        # (a generated convolution reads any layout as it is: converting its input first only costs)
        for strategy in STRATEGIES:
            if not strategy.conv_kernel:
                yield channels_last, replace(strategy, name=strategy.name + CHANNELS_LAST)


def _signature(plan: ir.KernelPlan):
    return tuple((g.family, g.nodes) for g in plan.groups)


class FusePass:
    name = "fuse"
    stage = "plan"
    order = 10

    def run(self, graph: ir.Graph, context: PassContext) -> list[ir.KernelPlan]:
        plans, seen = [], set()
        for variant, strategy in _variants(graph):
            try:
                plan = fuse(variant, strategy)
                plan.verify()
            except (ir.IRError, _JoinFailed, ValueError):
                continue   # this strategy does not fit the graph; the others still may
            if _signature(plan) not in seen:
                seen.add(_signature(plan))
                plans.append(plan)
        return plans
