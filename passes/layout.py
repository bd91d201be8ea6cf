"""Where values live at run time, for building kernel operands.

A kernel reads a tensor "as it arrives": graph inputs and parameters with their traced layout,
kernel outputs freshly allocated and contiguous, library results as the op produces them. Views
are followed back to the tensor they alias, so a kernel reads the base tensor through strides and
the view costs nothing. Layouts are found by replaying ops on meta tensors.

``channels_last_convs`` rewrites a graph so that its 2-d convolutions run in channels-last memory
format; the fuse pass builds the "+channels-last" plans from it.
"""
from __future__ import annotations

import re

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


# ----------------------------------------------------------------------------------------------
# channels-last convolutions
# ----------------------------------------------------------------------------------------------

CHANNELS_LAST = "+channels-last"   # suffix of the plans fused from the channels-last graph

_CHANNELS_LAST_KWARGS = (("memory_format", torch.channels_last),)
_CONTIGUOUS_KWARGS = (("memory_format", torch.contiguous_format),)


def channels_last_convs(graph: ir.Graph) -> ir.Graph | None:
    """``graph`` with its 2-d convolutions run in channels-last (NHWC) memory format, or None when
    no convolution qualifies.

    cuDNN and oneDNN are much faster on NHWC; the inputs are converted before each such conv (the
    activation is a full copy; the weight, converted on every call too, is small). Which format a
    conv returns depends on the backend chosen at run time, which meta tensors cannot see (the meta
    kernel always says contiguous), so the output is pinned with ``contiguous(channels_last)``: a
    no-op where the backend already wrote NHWC, a copy elsewhere. Its consumers then read it with
    the strides the layout replay finds for the pinned value.

    A conv with other consumers (views into a group norm, reductions) or that is itself a graph
    output is instead converted back with ``contiguous(contiguous_format)`` (a copy where the
    backend wrote NHWC, a no-op elsewhere), so everything downstream sees the NCHW value it sees in
    the traced graph. Whether the NHWC conv pays for that copy is for the search to measure."""
    types, consumers = graph.type_map(), graph.consumers()
    names = _NameSource(set(types) | {n.id for n in graph.nodes})
    converted: dict[str, str] = {}   # value -> its channels-last copy, shared by every conv reading it
    renamed: dict[str, str] = {}     # conv output -> its pinned channels-last value
    nodes: list[ir.Node] = []
    for node in graph.nodes:
        node = _rename_inputs(node, renamed)
        if not _runs_channels_last(node, types, consumers, graph.outputs):
            nodes.append(node)
            continue
        epilogue_reads_nhwc = _feeds_only_pointwise(node, consumers, graph.outputs)
        x, w = node.inputs[0], node.inputs[1]
        for v in (x, w):
            if v not in converted:
                converted[v] = names.fresh(f"{v}.nhwc")
                nodes.append(_layout_node(names.fresh(f"{node.id}:to-nhwc:{v}"), "aten.clone.default", v, converted[v]))
        nodes.append(_rename_inputs(node, {x: converted[x], w: converted[w]}))
        out = node.outputs[0]
        if epilogue_reads_nhwc:
            renamed[out] = names.fresh(f"{out}.nhwc")
            nodes.append(_layout_node(names.fresh(f"{node.id}:pin-nhwc"), "aten.contiguous.default", out, renamed[out]))
        else:
            renamed[out] = names.fresh(f"{out}.nchw")
            nodes.append(_layout_node(names.fresh(f"{node.id}:to-nchw"), "aten.contiguous.default", out, renamed[out],
                                      _CONTIGUOUS_KWARGS))
    if not renamed:
        return None
    outputs = tuple(renamed.get(v, v) for v in graph.outputs)
    return ir.Graph(graph.inputs, graph.params, tuple(nodes), outputs,
                    graph.types + _replayed_types(nodes, types), graph.constants, graph.returns_tuple)


def _runs_channels_last(node: ir.Node, types: dict, consumers: dict, outputs: tuple[str, ...]) -> bool:
    """A conv over 4-d input and weight whose output is used (by a consumer or as a graph output)."""
    if node.kind != "conv" or len(node.inputs) < 2 or len(node.outputs) != 1:
        return False
    x, w, out = node.inputs[0], node.inputs[1], node.outputs[0]
    if not all(v in types and len(types[v].shape) == 4 for v in (x, w, out)):
        return False
    return out in outputs or bool(consumers.get(out))


def _feeds_only_pointwise(node: ir.Node, consumers: dict, outputs: tuple[str, ...]) -> bool:
    """Whether the conv output only feeds pointwise ops: those become the epilogue kernel, which
    reads NHWC through strides and writes its own output contiguous. Other consumers (views,
    reductions over channels) need the NCHW layout, and a conv that is itself a graph output would
    come back in the wrong memory format, so those get the conversion back."""
    out = node.outputs[0]
    users = consumers.get(out, [])
    return out not in outputs and bool(users) and all(u.kind == "pointwise" for u in users)


def _layout_node(node_id: str, op: str, src: str, out: str, kwargs=_CHANNELS_LAST_KWARGS) -> ir.Node:
    return ir.Node(node_id, op, "library", (src,), (out,),
                   (("args", (ir.ValueRef(src),)), ("kwargs", kwargs)))


def _rename_inputs(node: ir.Node, mapping: dict[str, str]) -> ir.Node:
    if not any(v in mapping for v in node.inputs):
        return node
    attrs = tuple((k, _rename_refs(v, mapping)) for k, v in node.attrs)
    return ir.Node(node.id, node.op, node.kind, tuple(mapping.get(v, v) for v in node.inputs), node.outputs, attrs)


def _rename_refs(a, mapping: dict[str, str]):
    if isinstance(a, ir.ValueRef):
        return ir.ValueRef(mapping.get(a.name, a.name))
    if isinstance(a, (list, tuple)):
        return type(a)(_rename_refs(x, mapping) for x in a)
    return a


def _replayed_types(nodes: list[ir.Node], types: dict[str, ir.TensorType]) -> tuple:
    """Types of the values the rewrite added, with the strides their ops produce on meta tensors."""
    metas: dict[str, torch.Tensor] = {}
    added = []
    for node in nodes:
        if node.outputs[0] in types:
            continue
        src, out = node.inputs[0], node.outputs[0]
        metas.setdefault(src, meta_tensor(types[src]))
        result = run_on_meta(node, metas)
        if not isinstance(result, torch.Tensor):
            raise ir.IRError(f"node {node.id}: {node.op} does not run on meta tensors")
        t = types[src]
        added.append((out, ir.TensorType(t.shape, t.dtype, tuple(result.stride()))))
    return tuple(added)


class _NameSource:
    """Names the graph does not use yet. Candidates turn value names into identifiers by replacing
    punctuation, so names are compared in that form ("x.nhwc" would clash with "x_nhwc")."""

    def __init__(self, taken: set[str]):
        self.taken = {self._identifier(t) for t in taken}

    def fresh(self, wanted: str) -> str:
        name, i = wanted, 1
        while self._identifier(name) in self.taken:
            name, i = f"{wanted}{i}", i + 1
        self.taken.add(self._identifier(name))
        return name

    @staticmethod
    def _identifier(name: str) -> str:
        return re.sub(r"[^0-9a-zA-Z_]", "_", name)
