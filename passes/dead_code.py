"""dead-code (stage "graph"): nodes whose results reach no output are removed.

Walks the graph backwards from its outputs. A node that draws random numbers stays even when its
result is unused: removing it would shift every later draw from the framework's generator, and
the harness checks that draws match the reference bit for bit. Removing a node changes no output
by construction (nothing it writes is read on a path to one), so this rewrite needs no numeric
proof; its tests run the pruned graph's candidate through the harness.
"""
from __future__ import annotations

from akg import ir
from akg.hoist import is_random


def eliminate_dead_nodes(graph: ir.Graph) -> ir.Graph:
    live = set(graph.outputs)
    kept = []
    for n in reversed(graph.nodes):
        if any(o in live for o in n.outputs) or is_random(n):
            kept.append(n)
            live.update(n.inputs)
            live.update(n.outputs)
    kept.reverse()
    known = live | set(graph.inputs) | set(graph.params)
    types = tuple((k, t) for k, t in graph.types if k in known)
    return ir.Graph(graph.inputs, graph.params, tuple(kept), graph.outputs, types, graph.constants, graph.returns_tuple)


class DeadCodePass:
    name = "dead-code"
    stage = "graph"
    order = 95

    def run(self, graph: ir.Graph, context) -> ir.Graph:
        return eliminate_dead_nodes(graph)
