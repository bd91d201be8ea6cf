"""fold-affine (stage "graph"): scales, divisions, shifts after a GEMM or a convolution move into
its weights and bias.

After ``y = linear(x, W, b)`` or ``y = conv(x, W, b)`` with W a parameter, work made of
``y * c``, ``y / c``, ``y + c``, ``y - c``, ``c - y`` where every c is a Python number or a
parameter-only value that varies at most along the output channel (a scale vector, a
per-channel bias, batch norm's folded scale and shift), sums and differences of such values
(``y * s + y``, a residual add of a copy of y) and copies, ending in one value read elsewhere,
is ``y * A + B`` with per-channel A and B;
so it is ``x . (W * A) + (b * A + B)``: one GEMM or convolution with no epilogue for it. A and B,
the scaled weight and bias are parameter-only nodes (``akg.hoist``): computed once per parameter
version, not per call. Division by a value that may be zero divides the weights instead of the
result (inf/NaN may then land elsewhere); a Python divisor of zero is not folded.
"""
from __future__ import annotations

import math
import operator

from akg import ir
from akg.hoist import once_values
from akg.passes.rewrite import Builder, RewritePass, replace_args, single_use

_CONV_OPS = ("aten.conv1d.default", "aten.conv2d.default", "aten.conv3d.default", "aten.convolution.default")
_STEPS = ("mul", "div", "add", "sub")


def weight_head(graph: ir.Graph, node: ir.Node, stored: frozenset[str]) -> tuple[int, str, str | None] | None:
    """(channel dim of the output, weight, bias or None) for a linear or (non-transposed)
    convolution whose weight and bias are parameters or parameter-only values."""
    args = node.attr("args", ())
    if node.attr("kwargs") or len(args) < 2 or not isinstance(args[1], ir.ValueRef):
        return None
    if node.op == "aten.linear.default":
        channel = len(graph.type_of(node.outputs[0]).shape) - 1
    elif node.op in _CONV_OPS:
        if node.op == "aten.convolution.default" and (len(args) < 7 or args[6]):
            return None   # transposed: the weight's first dim is the input channels
        channel = 1
    else:
        return None
    bias = args[2] if len(args) > 2 else None
    if bias is not None and not isinstance(bias, ir.ValueRef):
        return None
    weight = args[1].name
    if weight not in stored or (bias is not None and bias.name not in stored):
        return None
    if channel < 0 or len(graph.type_of(weight).shape) < 2:
        return None
    return channel, weight, bias.name if bias is not None else None


def _per_channel(graph: ir.Graph, value: str, out: ir.TensorType, channel: int, c: int) -> bool:
    """``value`` broadcast against ``out`` varies at most along ``channel`` (size ``c``)."""
    shape = graph.type_of(value).shape
    offset = len(out.shape) - len(shape)
    if offset < 0:
        return False
    return all(s == 1 or (i + offset == channel and s == c) for i, s in enumerate(shape))


def _step(graph: ir.Graph, node: ir.Node, v: str, y: ir.TensorType, channel: int, c: int,
          stored: frozenset[str]) -> tuple[str, object, bool] | None:
    """(op, operand, operand first) when ``node`` is one foldable step applied to ``v``."""
    out = graph.type_of(node.outputs[0])
    if node.kind != "pointwise" or node.op not in _STEPS or (out.shape, out.dtype) != (y.shape, y.dtype):
        return None
    args = node.attr("args", ())
    if len(args) != 2:
        return None
    first = not (isinstance(args[0], ir.ValueRef) and args[0].name == v)
    other = args[0] if first else args[1]
    if first and not (isinstance(args[1], ir.ValueRef) and args[1].name == v):
        return None
    if isinstance(other, ir.ValueRef):
        if other.name == v or other.name not in stored or graph.type_of(other.name).dtype != y.dtype \
                or not _per_channel(graph, other.name, y, channel, c):
            return None
    elif isinstance(other, bool) or not isinstance(other, (int, float)) or not math.isfinite(other):
        return None
    if first and node.op == "div":
        return None   # c / y is not affine in y
    if node.op == "div" and not isinstance(other, ir.ValueRef) and other == 0:
        return None
    return node.op, other, first


_PY_OPS = {"mul": operator.mul, "div": operator.truediv, "add": operator.add, "sub": operator.sub}


class _Terms:
    """Per-channel A and B of ``y * A + B``: Python numbers or values of shape (C,) or (1,)."""

    def __init__(self, graph: ir.Graph, b: Builder, c: int, dtype: str):
        self.graph, self.b, self.c, self.dtype = graph, b, c, dtype
        self.a: object = 1.0
        self.s: object = 0.0

    def shape(self, name: str) -> tuple[int, ...]:
        return self.b.types[name].shape if name in self.b.types else self.graph.type_of(name).shape

    def as_vector(self, name: str) -> ir.ValueRef:
        """A per-channel operand (shape (C,1,1), (1,C), ...) as (C,) or (1,)."""
        shape = self.shape(name)
        if shape in ((self.c,), (1,)):
            return ir.ValueRef(name)
        return ir.ValueRef(self.b.view(name, (math.prod(shape),), self.dtype))

    def op(self, op: str, p, q):
        refs = [x for x in (p, q) if isinstance(x, ir.ValueRef)]
        if not refs:
            return _PY_OPS[op](p, q)
        if op in ("mul", "div") and not isinstance(p, ir.ValueRef) and p == 0.0:
            return 0.0   # the shift B starts at exactly 0; scaling it keeps it 0
        if op == "mul" and 1.0 in [x for x in (p, q) if not isinstance(x, ir.ValueRef)]:
            return q if p == 1.0 and not isinstance(p, ir.ValueRef) else p
        if op in ("add", "sub") and not isinstance(q, ir.ValueRef) and q == 0.0:
            return p
        if op == "add" and not isinstance(p, ir.ValueRef) and p == 0.0:
            return q
        size = self.c if any(self.shape(x.name) == (self.c,) for x in refs) else 1
        return ir.ValueRef(self.b.pointwise(op, (p, q), ir.TensorType((size,), self.dtype)))


class FoldAffinePass(RewritePass):
    name = "fold-affine"
    stage = "graph"
    order = 20

    def find(self, graph: ir.Graph):
        stored = frozenset(graph.params) | once_values(graph)
        consumers = graph.consumers()
        for node in graph.nodes:
            head = weight_head(graph, node, stored)
            if head is None:
                continue
            channel, weight, bias = head
            y = graph.type_of(node.outputs[0])
            if y.dtype not in ir.FLOAT_DTYPES:
                continue
            c = graph.type_of(weight).shape[0]
            region = self._region(graph, node, y, channel, c, stored, consumers)
            if region is not None:
                rw = self._fold_region(graph, node, region, weight, bias, c, y.dtype)
                if rw is not None:
                    yield rw
                    continue
            chain, steps, v = [], [], node.outputs[0]
            while True:
                nxt = single_use(graph, v, consumers)
                step = _step(graph, nxt, v, y, channel, c, stored) if nxt is not None else None
                if step is None:
                    break
                chain.append(nxt)
                steps.append(step)
                v = nxt.outputs[0]
            for n in range(len(steps), 0, -1):   # the longest prefix that folds
                rw = self._fold(graph, node, chain[:n], steps[:n], weight, bias, c, y.dtype)
                if rw is not None:
                    yield rw
                    break

    def _fold(self, graph, head, chain, steps, weight, bias, c, dtype):
        b = Builder(self.name, head.id)
        terms = _Terms(graph, b, c, dtype)
        for op, other, first in steps:
            if isinstance(other, ir.ValueRef):
                other = terms.as_vector(other.name)
            if op in ("mul", "div"):
                terms.a, terms.s = terms.op(op, terms.a, other), terms.op(op, terms.s, other)
            elif op == "add":
                terms.s = terms.op("add", terms.s, other)
            elif first:   # other - y
                terms.a, terms.s = terms.op("mul", terms.a, -1.0), terms.op("sub", other, terms.s)
            else:
                terms.s = terms.op("sub", terms.s, other)
        return self._finish(graph, head, b, terms, terms.a, terms.s, chain[-1].outputs[0],
                            [head.id] + [n.id for n in chain], weight, bias, c, dtype)

    def _finish(self, graph, head, b, terms, a, s, out, removed, weight, bias, c, dtype):
        """The rewrite: scaled weight and bias, and the head writing ``out`` in place of ``removed``."""
        w_type = graph.type_of(weight)
        if isinstance(a, ir.ValueRef):
            a_view = b.view(a.name, (math.prod(terms.shape(a.name)),) + (1,) * (len(w_type.shape) - 1), dtype)
            new_w = b.pointwise("mul", (ir.ValueRef(weight), ir.ValueRef(a_view)), w_type)
        elif a != 1.0:
            new_w = b.pointwise("mul", (ir.ValueRef(weight), a), w_type)
        else:
            new_w = weight
        if bias is not None:
            new_b = terms.op("add", terms.op("mul", ir.ValueRef(bias), a), s)
        elif isinstance(s, ir.ValueRef) and terms.shape(s.name) == (c,):
            new_b = s
        elif not isinstance(s, ir.ValueRef) and s == 0.0:
            new_b = None
        else:
            return None   # a shift but no bias to carry it: no (C,) tensor to put it in
        if isinstance(new_b, ir.ValueRef) and terms.shape(new_b.name) != (c,):
            return None   # e.g. a shift from a one-element parameter and no bias
        if new_b is not None and not isinstance(new_b, ir.ValueRef):
            return None
        changes = {1: ir.ValueRef(new_w), 2: new_b}
        b.node(replace_args(head, changes, (out,), f"{self.name}:{head.id}:head"))
        return b.rewrite(removed)

    # -- regions: affine in y along several paths (y * s + y, a residual of a copy of y) --------
    @staticmethod
    def _region(graph, head, y, channel, c, stored, consumers):
        """(nodes, exit) when the nodes after ``head`` that are affine in its output form a region
        with one value read outside it, and that region is more than a single chain; else None."""
        inside = {head.outputs[0]}
        nodes = []
        start = next(i for i, n in enumerate(graph.nodes) if n is head)
        for n in graph.nodes[start + 1:]:
            reads = [i for i in n.inputs if i in inside]
            if not reads or _region_step(graph, n, inside, y, channel, c, stored) is None:
                continue
            nodes.append(n)
            inside.add(n.outputs[0])
        made = [n.outputs[0] for n in nodes]
        ids = {n.id for n in nodes} | {head.id}
        exits = [v for v in [head.outputs[0]] + made
                 if v in graph.outputs or any(u.id not in ids for u in consumers.get(v, []))]
        if len(exits) != 1 or exits[0] == head.outputs[0]:
            return None
        if all(len(consumers.get(v, [])) <= 1 for v in [head.outputs[0]] + made) and \
                not any(_region_step(graph, n, inside, y, channel, c, stored) == "both" for n in nodes):
            return None   # a plain chain: the chain rule handles it (and shorter prefixes)
        used = _reaching(nodes, exits[0])
        return [n for n in nodes if n.outputs[0] in used], exits[0]

    def _fold_region(self, graph, head, region, weight, bias, c, dtype):
        nodes, out = region
        b = Builder(self.name, head.id)
        terms = _Terms(graph, b, c, dtype)
        forms = {head.outputs[0]: (1.0, 0.0)}
        for n in nodes:
            forms[n.outputs[0]] = _region_form(graph, n, forms, terms)
        a, s = forms[out]
        return self._finish(graph, head, b, terms, a, s, out, [head.id] + [n.id for n in nodes], weight, bias, c, dtype)


def _reaching(nodes, out: str) -> set[str]:
    """Values of ``nodes`` that ``out`` depends on (itself included)."""
    need, by_out = {out}, {n.outputs[0]: n for n in nodes}
    for n in reversed(nodes):
        if n.outputs[0] in need:
            need.update(n.inputs)
    return {v for v in need if v in by_out}


_COPIES = ("aten.detach.default", "aten.alias.default")


def _region_step(graph, node, inside, y, channel, c, stored):
    """What ``node`` does to region values, or None when it is not affine in them."""
    out = graph.type_of(node.outputs[0])
    if (out.shape, out.dtype) != (y.shape, y.dtype):
        return None
    args = node.attr("args", ())
    if node.kind == "view" and node.op in _COPIES and len(node.inputs) == 1:
        return "copy"
    if node.kind != "pointwise":
        return None
    if node.op == "cast" and len(node.inputs) == 1 and node.attr("dtype") in (None, y.dtype):
        return "copy"
    if node.op not in _STEPS or len(args) != 2:
        return None
    ins = [isinstance(a, ir.ValueRef) and a.name in inside for a in args]
    if all(ins):
        return "both" if node.op in ("add", "sub") else None
    v = args[0].name if ins[0] else args[1].name
    return "step" if _step(graph, node, v, y, channel, c, stored) is not None else None


def _region_form(graph, node, forms, terms):
    """(A, B) of ``node``'s output from its inputs' forms."""
    args = node.attr("args", ())
    if node.kind == "view" or node.op == "cast":
        return forms[node.inputs[0]]
    inside = [isinstance(a, ir.ValueRef) and a.name in forms for a in args]
    if all(inside):
        (a1, s1), (a2, s2) = forms[args[0].name], forms[args[1].name]
        return terms.op(node.op, a1, a2), terms.op(node.op, s1, s2)
    first = not inside[0]
    v = args[1].name if first else args[0].name
    other = args[0] if first else args[1]
    if isinstance(other, ir.ValueRef):
        other = terms.as_vector(other.name)
    a, s = forms[v]
    if node.op in ("mul", "div"):
        return terms.op(node.op, a, other), terms.op(node.op, s, other)
    if node.op == "add":
        return a, terms.op("add", s, other)
    if first:   # other - y
        return terms.op("mul", a, -1.0), terms.op("sub", other, s)
    return a, terms.op("sub", s, other)
