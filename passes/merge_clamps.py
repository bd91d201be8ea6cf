"""merge-clamps (stage "graph"): a chain of max/min against constants and positive scales
becomes one scale and one clamp.

relu is max(x, 0) and clamp(x, a, b) is min(max(x, a), b) once traced, so relu then clamp, or a
clamp of a clamp, are chains of max/min nodes. Any such chain, with multiplications and divisions
by positive constants in between, is a monotone function min(max(x * S, L), H) with L <= H:
max(., c) takes (L, H) to (max(L, c), H), or to (c, c) when c >= H (everything is c); min(., c)
takes it to (L, min(H, c)), or (c, c) when c <= L; a positive factor s scales S, L and H alike.
NaN passes through max and min alike, so the merged form keeps NaN where the chain did. The
chain becomes at most three nodes, the scale first: right after a GEMM or a convolution
(relu then divide) fold-affine then moves it into the weights.
"""
from __future__ import annotations

import math

from akg import ir
from akg.passes.rewrite import Builder, RewritePass, single_use

_SCALAR = (int, float)


def _bound(node: ir.Node) -> tuple[str, float] | None:
    """(value, c) when ``node`` is max/min of one tensor and a scalar (not NaN), or a
    multiplication or division by a positive finite scalar."""
    if node.kind != "pointwise" or node.op not in ("max", "min", "mul", "div"):
        return None
    args = node.attr("args", ())
    if len(args) != 2 or (node.op == "div" and not isinstance(args[0], ir.ValueRef)):
        return None
    refs = [a for a in args if isinstance(a, ir.ValueRef)]
    consts = [a for a in args if isinstance(a, _SCALAR) and not isinstance(a, bool)]
    if len(refs) != 1 or len(consts) != 1 or math.isnan(consts[0]):
        return None
    if node.op in ("mul", "div") and not (0 < consts[0] < math.inf):
        return None
    return refs[0].name, consts[0]


def compose(ops: list[tuple[str, float]]) -> tuple[float, float, float]:
    """(S, L, H) with chain(x) == min(max(x * S, L), H) for every non-NaN x."""
    scale, lo, hi = 1.0, -math.inf, math.inf
    for op, c in ops:
        if op in ("mul", "div"):
            f = c if op == "mul" else 1.0 / c
            scale, lo, hi = scale * f, lo * f, hi * f
        elif op == "max":
            lo, hi = (c, c) if c >= hi else (max(lo, c), hi)
        else:
            lo, hi = (c, c) if c <= lo else (lo, min(hi, c))
    return scale, lo, hi


class MergeClampsPass(RewritePass):
    name = "merge-clamps"
    stage = "graph"
    order = 18   # before fold-affine, which folds the leading scale into a GEMM or convolution

    def find(self, graph: ir.Graph):
        types = graph.type_map()
        consumers = graph.consumers()
        producers = graph.producers()
        for node in graph.nodes:
            start = _bound(node)
            if start is None:
                continue
            x = start[0]
            dtype = types[x].dtype
            if dtype not in ir.FLOAT_DTYPES:
                continue
            prev = producers.get(x)
            if prev is not None and _bound(prev) is not None and single_use(graph, x, consumers) is node \
                    and types[prev.outputs[0]].dtype == dtype:
                continue   # not the head of its chain
            chain = [node]
            while True:
                nxt = single_use(graph, chain[-1].outputs[0], consumers)
                if nxt is None or _bound(nxt) is None or types[nxt.outputs[0]].dtype != dtype:
                    break
                chain.append(nxt)
            if types[chain[0].outputs[0]].dtype != dtype:
                continue
            current = [(n.op, _bound(n)[1]) for n in chain]
            if not any(op in ("max", "min") for op, _ in current):
                continue   # scales alone: nothing to merge
            scale, lo, hi = compose(current)
            steps = [("mul", scale)] if scale != 1.0 else []
            steps += [("max", lo)] if lo > -math.inf else []
            steps += [("min", hi)] if hi < math.inf else []
            if not steps or len(steps) > len(chain) or steps == current:
                continue   # already in the merged form (this also ends the pass's rounds)
            out = chain[-1].outputs[0]
            b = Builder(self.name, node.id)
            value = x
            t = types[out]
            for i, (op, c) in enumerate(steps):
                value = b.pointwise(op, (ir.ValueRef(value), c), t, out=out if i == len(steps) - 1 else None)
            yield b.rewrite(n.id for n in chain)
