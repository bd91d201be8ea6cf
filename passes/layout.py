"""Where values live at run time, for building kernel operands.

A kernel reads a tensor "as it arrives": graph inputs and parameters with their traced layout,
kernel outputs freshly allocated and contiguous, library results as the op produces them. Views
are followed back to the tensor they alias, so a kernel reads the base tensor through strides and
the view costs nothing. Layouts are found by replaying ops on meta tensors.
"""
from __future__ import annotations

import torch

from akg import ir
from akg.passes.decompose import resolve_overload


def meta_tensor(t: ir.TensorType) -> torch.Tensor:
    return torch.empty_strided(t.shape, t.layout(), dtype=getattr(torch, t.dtype), device="meta")


def _substitute(args, tensors: dict[str, torch.Tensor]):
    if isinstance(args, ir.ValueRef):
        return tensors[args.name]
    if isinstance(args, (list, tuple)):
        return type(args)(_substitute(a, tensors) for a in args)
    if isinstance(args, torch.device):
        return torch.device("meta")
    return args


def run_on_meta(node: ir.Node, inputs: dict[str, torch.Tensor]):
    """The node's ATen call on meta tensors; None when it cannot run there."""
    op = resolve_overload(node.op)
    if op is None:
        return None
    try:
        return op(*_substitute(node.attr("args", ()), inputs), **dict(_substitute(node.attr("kwargs", ()), inputs)))
    except Exception:
        return None


class Layouts:
    """Arrival layouts of the values of one plan, and view resolution."""

    def __init__(self, graph: ir.Graph):
        self.graph = graph
        self.types = graph.type_map()
        self.producers = graph.producers()
        self.arrival: dict[str, ir.TensorType] = {v: self.types[v] for v in graph.inputs + graph.params if v in self.types}

    def kernel_output(self, value: str) -> ir.TensorType:
        t = self.types[value]
        self.arrival[value] = ir.TensorType(t.shape, t.dtype, ir.contiguous_strides(t.shape))
        return self.arrival[value]

    def library_output(self, node: ir.Node) -> tuple[ir.TensorType, ...]:
        metas = {v: meta_tensor(self.arrival.get(v, self.types[v])) for v in node.inputs}
        result = run_on_meta(node, metas)
        results = result if isinstance(result, (tuple, list)) else (result,)
        found = []
        for i, out in enumerate(node.outputs):
            got = results[i] if i < len(results) else None
            t = self.types[out]
            if isinstance(got, torch.Tensor) and tuple(got.shape) == t.shape:
                t = ir.TensorType(t.shape, t.dtype, tuple(got.stride()))
            self.arrival[out] = t
            found.append(t)
        return tuple(found)

    def type_of(self, value: str) -> ir.TensorType:
        return self.arrival.get(value, self.types[value])

    def resolve(self, value: str) -> tuple[str, tuple[int, ...]] | None:
        """(base value, element strides of ``value`` inside the base as it arrives) when ``value``
        is a chain of views of an arrived tensor, at storage offset 0; else None."""
        chain, base = [], value
        while base in self.producers and self.producers[base].kind == "view" and len(self.producers[base].inputs) == 1:
            chain.append(self.producers[base])
            base = self.producers[base].inputs[0]
        replayed = self._replay(base, chain) if chain and base in self.arrival else None
        if replayed is not None:
            return replayed
        if value in self.arrival:
            return value, self.arrival[value].layout()
        return None

    def _replay(self, base: str, chain: list[ir.Node]):
        root = meta_tensor(self.arrival[base])
        current = root
        for node in reversed(chain):
            current = run_on_meta(node, {node.inputs[0]: current})
            if not isinstance(current, torch.Tensor) or not torch._C._is_alias_of(current, root):
                return None
        if current.storage_offset() != 0:
            return None
        return base, tuple(current.stride())
