"""reshape-epilogue (stage "graph"): pointwise work after a normalisation runs in the shape the
statistics were reduced in.

Group norm reduces a (N, C, H, W) tensor viewed as (N, G, C/G, H*W) and then applies its affine
and whatever follows (activations, scales, residual adds) in (N, C, H, W), reading per-(n, c)
values that are views of (N, G, C/G, 1) ones. The fuser walks one shape per kernel, so that
tail became kernels of its own. This pass moves each such pointwise op into the reduced shape:
``op(x, a)`` over S becomes ``op(x', a').view(S)`` over S', where x' is the S'-shaped view the
reduction reads, and a' is a broadcast operand reshaped block by block (a block: dims of S and
of S' with the same product, e.g. C <-> (G, C/G), (H, W) <-> H*W); a broadcast operand must be
full or all ones inside each block. Values that are views of S'-shaped ones are read at their
source. The next op then reads a view of an S'-shaped value and moves too, so the norm, its
affine and the chain after it become one reduction kernel over several reduce dims
(``reduction_nd``, the ``fuse-all-nd`` plan); other plans fuse the moved ops as before.

Each rewrite is proven on random data before it is applied: the op and its reshaped form are
evaluated at small sizes that keep the block structure (``prove_commutes``), NaN positions
included, like the other rewrite passes' proofs.
"""
from __future__ import annotations

import math

import torch

from akg import ir
from akg.hoist import once_values
from akg.passes.rewrite import LOG, Builder, Proof, Rewrite, TRIALS, _close, _draw, apply

RULE = "reshape-epilogue"
_RESHAPES = ("aten.view.default", "aten.reshape.default", "aten._unsafe_view.default", "aten.unsqueeze.default",
             "aten.squeeze.dim", "aten.squeeze.dims", "aten.squeeze.default", "aten.as_strided.default",
             "prims.broadcast_in_dim.default")


def _dense(t: ir.TensorType) -> bool:
    """Row-major over its dims of size > 1 (size-1 dims may carry any stride)."""
    expect = 1
    for size, stride in reversed(list(zip(t.shape, t.layout()))):
        if size == 1:
            continue
        if stride != expect:
            return False
        expect *= size
    return True


def is_reshape(graph: ir.Graph, node: ir.Node) -> bool:
    """A view node that only regroups the dims of a dense value (same elements, same order)."""
    if node.kind != "view" or node.op not in _RESHAPES or len(node.inputs) != 1 or len(node.outputs) != 1:
        return False
    src, out = graph.type_of(node.inputs[0]), graph.type_of(node.outputs[0])
    if src.numel != out.numel or not _dense(src) or not _dense(out):
        return False
    if node.op == "aten.as_strided.default":
        args = node.attr("args", ())
        offset = args[3] if len(args) > 3 else 0
        return offset in (0, None) and (len(args) < 3 or tuple(args[2]) == ir.contiguous_strides(tuple(args[1]))
                                        or _dense(ir.TensorType(tuple(args[1]), out.dtype, tuple(args[2]))))
    return True


def blocks(a: tuple[int, ...], b: tuple[int, ...]) -> list[tuple[list[int], list[int]]] | None:
    """Dims of ``a`` and ``b`` grouped into consecutive blocks of equal products, each block one
    dim on at least one side; None when the shapes are not such regroupings (or have 1s)."""
    if 1 in a or 1 in b or math.prod(a) != math.prod(b):
        return None
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        da, db, pa, pb = [i], [j], a[i], b[j]
        i, j = i + 1, j + 1
        while pa != pb:
            if pa < pb and i < len(a):
                da.append(i)
                pa *= a[i]
                i += 1
            elif pb < pa and j < len(b):
                db.append(j)
                pb *= b[j]
                j += 1
            else:
                return None
        if len(da) > 1 and len(db) > 1:
            return None
        out.append((da, db))
    return out if i == len(a) and j == len(b) else None


def reshaped_shape(shape: tuple[int, ...], s: tuple[int, ...], s2: tuple[int, ...], bl) -> tuple[int, ...] | None:
    """The S'-side shape of an operand broadcast against S, or None when a block is partly broadcast."""
    if len(shape) > len(s):
        return None
    padded = (1,) * (len(s) - len(shape)) + tuple(shape)
    out: list[int] = []
    for da, db in bl:
        if all(padded[d] == s[d] for d in da):
            out += [s2[d] for d in db]
        elif all(padded[d] == 1 for d in da):
            out += [1] * len(db)
        else:
            return None
    return tuple(out)


class _Graph:
    def __init__(self, graph: ir.Graph):
        self.graph = graph
        self.producer = {v: n for n in graph.nodes for v in n.outputs}
        self.consumers = graph.consumers()
        self.once = once_values(graph) | set(graph.params)

    def root(self, value: str) -> str:
        """The value ``value`` is a chain of pure reshapes of."""
        while value in self.producer and is_reshape(self.graph, self.producer[value]):
            value = self.producer[value].inputs[0]
        return value

    def reduced_view(self, value: str, shape: tuple[int, ...]) -> str | None:
        """A reshape of ``value`` read by a reduction, with ``shape`` when given."""
        for c in self.consumers.get(value, []):
            out = c.outputs[0] if c.outputs else None
            if out is None or not is_reshape(self.graph, c):
                continue
            t = self.graph.type_of(out)
            if (not shape or t.shape == shape) and any(u.kind == "reduction" for u in self.consumers.get(out, [])):
                return out
        return None

    def target(self, node: ir.Node) -> tuple[int, ...] | None:
        """The reduced shape S' a pointwise node over S could move into. A moved node never moves
        back."""
        if node.id.startswith(RULE + ":"):
            return None
        s = self.graph.type_of(node.outputs[0]).shape
        for a in node.attr("args", ()):
            if not isinstance(a, ir.ValueRef) or self.graph.type_of(a.name).shape != s:
                continue
            view = self.reduced_view(a.name, ())
            if view is not None:
                return self.graph.type_of(view).shape
            root = self.root(a.name)
            maker = self.producer.get(root)
            if root != a.name and maker is not None and maker.id.startswith(RULE + ":"):
                return self.graph.type_of(root).shape
        return None


def propose(graph: ir.Graph, node: ir.Node, g: _Graph) -> tuple[Rewrite, tuple] | None:
    """The rewrite of ``node`` into the reduced shape, with what its proof needs."""
    out_t = graph.type_of(node.outputs[0])
    s2 = g.target(node)
    if s2 is None or len(out_t.shape) < 2 or s2 == out_t.shape:
        return None
    bl = blocks(out_t.shape, s2)
    if bl is None:
        return None
    b = Builder(RULE, node.id)
    args, shapes = [], []
    for a in node.attr("args", ()):
        if not isinstance(a, ir.ValueRef):
            args.append(a)
            shapes.append(None)
            continue
        t = graph.type_of(a.name)
        want = reshaped_shape(t.shape, out_t.shape, s2, bl)
        if want is None:
            return None
        root = g.root(a.name)
        if t.shape != out_t.shape and graph.type_of(root).shape != want and root not in g.once:
            # A broadcast operand must already live in the reduced shape (the norm's per-group
            # values) or read only parameters; anything else (a logsumexp's max over S after the
            # norm) belongs to work in S, which stays there.
            return None
        if graph.type_of(root).shape == want:
            value = root
        elif t.shape == out_t.shape and g.reduced_view(a.name, want) is not None:
            value = g.reduced_view(a.name, want)
        elif _dense(graph.type_of(root)):
            value = b.view(root, want, t.dtype)
        else:
            return None
        args.append(ir.ValueRef(value))
        shapes.append((t.shape, want))
    moved = b.pointwise(node.op, tuple(args), ir.TensorType(s2, out_t.dtype))
    if node.attr("dtype") is not None:   # a cast keeps its target dtype
        b.nodes[-1] = ir.Node(b.nodes[-1].id, node.op, "pointwise", b.nodes[-1].inputs, b.nodes[-1].outputs,
                              b.nodes[-1].attrs + (("dtype", node.attr("dtype")),))
    b.view(moved, out_t.shape, out_t.dtype, out=node.outputs[0])
    return b.rewrite([node.id]), (node, out_t, s2, bl, shapes)


def _small(bl, s, s2) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Small S and S' with the same blocks: a split side keeps at most 3 per dim."""
    a, b = [0] * len(s), [0] * len(s2)
    for da, db in bl:
        if len(da) == 1 and len(db) == 1:
            a[da[0]] = b[db[0]] = min(s[da[0]], 4)
        elif len(da) == 1:
            for d in db:
                b[d] = min(s2[d], 3)
            a[da[0]] = math.prod(b[d] for d in db)
        else:
            for d in da:
                a[d] = min(s[d], 3)
            b[db[0]] = math.prod(a[d] for d in da)
    return tuple(a), tuple(b)


def prove_commutes(node: ir.Node, out_t: ir.TensorType, s2, bl, shapes, graph: ir.Graph, seed: int = 0) -> Proof:
    """``op(args)`` equals ``op(args reshaped block by block).view(S)`` on random data at small
    sizes with the same blocks."""
    from akg.passes import exprs
    from akg.planeval import _Scope, eval_expr
    small_s, small_s2 = _small(bl, out_t.shape, s2)
    small_bl = blocks(small_s, small_s2)
    if small_bl is None or len(small_bl) != len(bl):
        return Proof(False, f"{RULE}: the blocks of {out_t.shape} -> {s2} cannot be shrunk")
    try:
        for i, trial in enumerate(TRIALS):
            gen = torch.Generator().manual_seed(seed * len(TRIALS) + i)
            before, after, expr_args = [], [], []
            for a, shape in zip(node.attr("args", ()), shapes):
                if shape is None:
                    expr_args.append(a)
                    continue
                t = graph.type_of(a.name)
                full, _ = shape
                pad = len(out_t.shape) - len(full)
                small = tuple(1 if full[d] == 1 else small_s[d + pad] for d in range(len(full)))
                x = _draw(t, small, trial, gen)
                want = reshaped_shape(small, small_s, small_s2, small_bl)
                expr_args.append(ir.Load(len(before), t.dtype))
                before.append(x)
                after.append(x.reshape(want))
            expr = exprs.pointwise_expr(node.op, expr_args, out_t.dtype, node.attr("dtype"))
            expected = eval_expr(expr, _Scope(before)).expand(small_s)
            actual = eval_expr(expr, _Scope(after)).expand(small_s2).reshape(small_s)
            problem = _close(expected, actual, out_t.dtype)
            if problem:
                return Proof(False, f"{RULE}: {node.id} ({trial} draw): {problem}")
        return Proof(True)
    except Exception as e:   # an op that cannot be evaluated here is not proven
        return Proof(False, f"{RULE}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300])


class ReshapeEpiloguePass:
    name = RULE
    stage = "graph"
    order = 45   # after the folds and conv-bias (its add moves too), before dead-code clears the old views

    def run(self, graph: ir.Graph, context) -> ir.Graph:
        refused: set[str] = set()
        for _ in range(256):
            g = _Graph(graph)
            for node in graph.nodes:
                if node.kind != "pointwise" or node.id in refused or len(node.outputs) != 1:
                    continue
                found = propose(graph, node, g)
                if found is None:
                    continue
                rw, parts = found
                proof = prove_commutes(*parts, graph)
                if proof.ok:
                    graph = apply(graph, rw)
                    LOG.append((RULE, "applied at " + node.id))
                    break
                refused.add(node.id)
                LOG.append((RULE, "refused: " + proof.detail))
            else:
                return graph
        return graph
