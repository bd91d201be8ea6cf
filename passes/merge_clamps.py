"""merge-clamps (stage "graph"): a chain of max/min against constants becomes one clamp.

relu is max(x, 0) and clamp(x, a, b) is min(max(x, a), b) once traced, so relu then clamp, or a
clamp of a clamp, are chains of max/min nodes. Any such chain is a monotone function
min(max(x, L), H) with L <= H: max(., c) takes (L, H) to (max(L, c), H), or to (c, c) when
c >= H (everything is c); min(., c) takes it to (L, min(H, c)), or (c, c) when c <= L. NaN passes
through max and min alike, so the merged pair keeps NaN where the chain did. The chain is
replaced by at most two nodes (fewer ops per element in whatever kernel the chain lands in).
"""
from __future__ import annotations

import math

from akg import ir
from akg.passes.rewrite import Builder, RewritePass, single_use

_SCALAR = (int, float)


def _bound(node: ir.Node) -> tuple[str, float] | None:
    """(value, c) when ``node`` is max/min of one tensor and a finite-or-infinite scalar (not NaN)."""
    if node.kind != "pointwise" or node.op not in ("max", "min"):
        return None
    args = node.attr("args", ())
    if len(args) != 2:
        return None
    refs = [a for a in args if isinstance(a, ir.ValueRef)]
    consts = [a for a in args if isinstance(a, _SCALAR) and not isinstance(a, bool)]
    if len(refs) != 1 or len(consts) != 1 or math.isnan(consts[0]):
        return None
    return refs[0].name, consts[0]


def compose(ops: list[tuple[str, float]]) -> tuple[float, float]:
    """(L, H) with chain(x) == min(max(x, L), H) for every non-NaN x."""
    lo, hi = -math.inf, math.inf
    for op, c in ops:
        if op == "max":
            lo, hi = (c, c) if c >= hi else (max(lo, c), hi)
        else:
            lo, hi = (c, c) if c <= lo else (lo, min(hi, c))
    return lo, hi


class MergeClampsPass(RewritePass):
    name = "merge-clamps"
    stage = "graph"
    order = 25

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
            lo, hi = compose([(n.op, _bound(n)[1]) for n in chain])
            steps = [("max", lo)] if lo > -math.inf else []
            steps += [("min", hi)] if hi < math.inf else []
            if not steps or len(steps) >= len(chain):
                continue
            out = chain[-1].outputs[0]
            b = Builder(self.name, node.id)
            value = x
            t = types[out]
            for i, (op, c) in enumerate(steps):
                value = b.pointwise(op, (ir.ValueRef(value), c), t, out=out if i == len(steps) - 1 else None)
            yield b.rewrite(n.id for n in chain)
