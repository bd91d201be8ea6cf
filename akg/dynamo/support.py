"""Which ATen nodes akg takes, asked of akg's own frontend.

A node is supported when the analyzer's ATen->akg translation (plus the decompose pass for compound
ops such as softmax or layer norm) turns it into akg primitives whose kinds the chosen DSL renders
as kernels; views are always fine (they fold into strides). Everything else stays with Inductor.
"""
from __future__ import annotations

import operator

import torch
import torch.fx
from torch.fx.passes.operator_support import OperatorSupportBase

from akg.agents.analyzer import _fold_scalar, _Translator, tensor_type
from akg.passes.decompose import decompose_node
from akg.targets import DSL

# akg node kind -> the kernel family a DSL must render for akg to take it.
_FAMILY_OF_KIND = {"pointwise": "pointwise", "reduction": "reduction", "scan": "scan", "pool": "pool",
                   "matmul": "matmul_epilogue"}
# Kinds that are worth a kernel of their own (a partition of views only is left alone).
KERNEL_KINDS = ("pointwise", "reduction", "scan", "pool", "matmul")


def supported_kinds(dsl: DSL) -> frozenset[str]:
    return frozenset({"view"} | {k for k, fam in _FAMILY_OF_KIND.items() if fam in dsl.families})


def _is_tensor(v) -> bool:
    return isinstance(v, torch.Tensor)


def node_kinds(node: torch.fx.Node) -> frozenset[str] | None:
    """The akg node kinds ``node`` becomes after decomposition, or None when akg cannot translate it."""
    val = node.meta.get("val")
    if node.op != "call_function" or not (_is_tensor(val) or (isinstance(val, (tuple, list)) and val
                                                                and all(_is_tensor(v) for v in val))):
        return None
    if isinstance(node.target, torch._ops.OpOverload) and node.target._schema.is_mutable:
        return None   # in-place ops: their effect reaches beyond the values a kernel returns
    inputs = node.all_input_nodes
    if any(not _is_tensor(n.meta.get("val")) for n in inputs):
        return None
    names = {n: f"in{i}" for i, n in enumerate(inputs)}
    try:
        tr = _Translator(names)
        tr.types.update({names[n]: tensor_type(n.meta["val"]) for n in inputs})
        tr.translate(node)
    except Exception:   # the translator refuses what it does not understand
        return None
    kinds: set[str] = set()
    for akg_node in tr.nodes:
        if akg_node.kind != "library":
            kinds.add(akg_node.kind)
            continue
        try:
            opened = decompose_node(akg_node, dict(tr.types))
        except Exception:
            opened = None
        if opened is None:
            return None
        kinds.update(n.kind for n in opened[0])
    return frozenset(kinds)


class AkgSupport(OperatorSupportBase):
    """The OperatorSupport CapabilityBasedPartitioner asks: akg's frontend on one target's DSL."""

    def __init__(self, dsl: DSL):
        self.kinds = supported_kinds(dsl)
        self._memo: dict[torch.fx.Node, bool] = {}

    def is_node_supported(self, submodules, node: torch.fx.Node) -> bool:
        if node not in self._memo:
            self._memo[node] = self._decide(node)
        return self._memo[node]

    def _decide(self, node: torch.fx.Node) -> bool:
        if node.op != "call_function":
            return False   # placeholders, get_attr constants, outputs stay outside (constants become inputs)
        if node.target is operator.getitem:
            src = node.args[0]
            return isinstance(src, torch.fx.Node) and self.is_node_supported(None, src)
        if _fold_scalar(node) is not None:
            return True    # a 0-d constant made in the graph: the translator folds it into the kernel
        kinds = node_kinds(node)
        return kinds is not None and kinds <= self.kinds

    def worth_a_kernel(self, nodes) -> bool:
        """A partition earns a search only when some node becomes a kernel, not just views/scalars."""
        for node in nodes:
            if node.op == "call_function" and node.target is not operator.getitem and _fold_scalar(node) is None:
                kinds = node_kinds(node)
                if kinds and kinds & set(KERNEL_KINDS):
                    return True
        return False
