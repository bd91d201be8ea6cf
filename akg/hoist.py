"""Work that depends only on a model's parameters: computed once, not on every call.

Graph rewrites fold scales, batch norms and reductions into weights; the folded weights are nodes
whose inputs are parameters (or other such nodes). A candidate computes them on its first call
and keeps them while every parameter they come from is unchanged (same storage, same version
counter), and the analyzer leaves them out of the per-call FLOPs and bytes, so the roofline floor
is that of the program as it runs on the second call.

A node is computed once when it reads at least one value, every value it reads is a parameter or
computed once, it draws no random numbers, and none of its results is a graph output (an output
must be a fresh tensor on every call).
"""
from __future__ import annotations

import torch

from akg import ir


def is_random(node: ir.Node) -> bool:
    """Whether ``node`` draws from the framework's random generator (then it runs on every call,
    and removing it would shift every later draw)."""
    op = _overload(node.op)
    if op is None:
        return node.kind == "library" and any(w in node.op for w in ("rand", "bernoulli", "dropout", "normal"))
    return torch.Tag.nondeterministic_seeded in getattr(op, "tags", ())


def _overload(name: str):
    if "." not in name:
        return None   # an akg primitive (add, sum, ...): never random
    obj = torch.ops
    for part in name.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj if isinstance(obj, torch._ops.OpOverload) else None


def once_nodes(graph: ir.Graph) -> tuple[str, ...]:
    """Ids of the nodes computed once per parameter version, in graph order."""
    known = set(graph.params)
    outputs = set(graph.outputs)
    found = []
    for n in graph.nodes:
        if n.inputs and all(i in known for i in n.inputs) and not is_random(n) and not outputs & set(n.outputs):
            known.update(n.outputs)
            found.append(n.id)
    return tuple(found)


def once_values(graph: ir.Graph) -> frozenset[str]:
    """Values computed once: the results of ``once_nodes``."""
    ids = set(once_nodes(graph))
    return frozenset(v for n in graph.nodes if n.id in ids for v in n.outputs)


def per_call(graph: ir.Graph) -> tuple[tuple[ir.Node, ...], tuple[str, ...]]:
    """(nodes run on every call, the parameters and once-computed values they read)."""
    ids = set(once_nodes(graph))
    stored = set(graph.params) | once_values(graph)
    nodes = tuple(n for n in graph.nodes if n.id not in ids)
    read = tuple(dict.fromkeys(i for n in nodes for i in n.inputs if i in stored))
    return nodes, read
