"""fold-reduction (stage "graph"): a sum over a GEMM's output features folds into its weights.

``sum_n (x . W^T + b)[.., n] = x . (sum_n W[n, :])^T + sum_n b[n]``, so a linear (or a matmul by a
parameter) whose output is only summed over its last dim becomes a product with one summed
weight row: a GEMV reading x once instead of a GEMM. The summed weight and bias read only
parameters, so they are computed once per parameter version (``akg.hoist``). A mean traces as a
sum and a division, so it folds the same way (the division stays, on the small result).
"""
from __future__ import annotations

from akg import ir
from akg.hoist import once_values
from akg.passes.rewrite import Builder, RewritePass, replace_args, single_use

_MATMULS = ("aten.mm.default", "aten.matmul.default")


class FoldReductionPass(RewritePass):
    name = "fold-reduction"
    stage = "graph"
    order = 30

    def find(self, graph: ir.Graph):
        stored = frozenset(graph.params) | once_values(graph)
        consumers = graph.consumers()
        for node in graph.nodes:
            weight = self._weight(graph, node, stored)
            if weight is None:
                continue
            y = graph.type_of(node.outputs[0])
            red = single_use(graph, node.outputs[0], consumers)
            if red is None or red.kind != "reduction" or red.op != "sum" or y.dtype not in ir.FLOAT_DTYPES:
                continue
            if tuple(red.attr("dims")) != (len(y.shape) - 1,) or y.shape[-1] <= 1:
                continue
            out_t = graph.type_of(red.outputs[0])
            if out_t.dtype != y.dtype:
                continue
            yield self._fold(graph, node, red, weight, y, out_t)

    @staticmethod
    def _weight(graph: ir.Graph, node: ir.Node, stored) -> tuple[str, int] | None:
        """(weight, the dim its output features run along) for a linear or a matmul by a 2-d
        parameter; None otherwise."""
        args = node.attr("args", ())
        if node.attr("kwargs") or len(args) < 2 or not isinstance(args[1], ir.ValueRef):
            return None
        w = args[1].name
        if w not in stored or len(graph.type_of(w).shape) != 2:
            return None
        if node.op == "aten.linear.default":
            bias = args[2] if len(args) > 2 else None
            if bias is not None and not (isinstance(bias, ir.ValueRef) and bias.name in stored):
                return None
            return w, 0
        if node.op in _MATMULS and len(args) == 2:
            return w, 1
        return None

    def _fold(self, graph, node, red, weight, y, out_t) -> "Rewrite":
        w, features = weight
        b = Builder(self.name, node.id)
        wt = graph.type_of(w)
        summed_shape = tuple(1 if d == features else s for d, s in enumerate(wt.shape))
        w_sum = b.sum(w, (features,), True, ir.TensorType(summed_shape, wt.dtype))
        changes = {1: ir.ValueRef(w_sum)}
        args = node.attr("args", ())
        if node.op == "aten.linear.default" and len(args) > 2 and args[2] is not None:
            bt = graph.type_of(args[2].name)
            changes[2] = ir.ValueRef(b.sum(args[2].name, (0,), True, ir.TensorType((1,), bt.dtype)))
        keep_shape = y.shape[:-1] + (1,)
        keepdim = bool(red.attr("keepdim"))
        product = red.outputs[0] if keepdim else b.fresh("product")
        b.node(replace_args(node, changes, (product,), f"{self.name}:{node.id}:head"),
               {product: ir.TensorType(keep_shape, y.dtype)})
        if not keepdim:
            b.view(product, out_t.shape, out_t.dtype, out=red.outputs[0])
        return b.rewrite([node.id, red.id])
