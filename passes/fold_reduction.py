"""fold-reduction (stage "graph"): a sum over a GEMM's output features folds into its weights.

``sum_n (x . W^T + b)[.., n] = x . (sum_n W[n, :])^T + sum_n b[n]``, so a linear (or a matmul by a
parameter) whose output is only summed over its last dim becomes a row reduction
``sum_k x[.., k] * w_row[k] + b_sum``: a GEMV that reads x once instead of a GEMM, which the
fuser makes one reduction kernel of (prologue multiply, epilogue bias). The summed weight and bias read only
parameters, so they are computed once per parameter version (``akg.hoist``). A mean traces as a
sum and a division, so it folds the same way (the division stays, on the small result).
"""
from __future__ import annotations

from akg import ir
from akg.hoist import once_values
from akg.passes.rewrite import Builder, Rewrite, RewritePass, single_use

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
            rw = self._fold(graph, node, red, weight, y, out_t)
            if rw is not None:
                yield rw

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

    def _fold(self, graph, node, red, weight, y, out_t) -> Rewrite | None:
        """sum(x * w_row, last dim) + b_sum: a row reduction the DSLs fuse into one kernel that
        reads x once (a GEMV written as what it is, not a library GEMM with one column)."""
        w, features = weight
        b = Builder(self.name, node.id)
        wt = graph.type_of(w)
        k = wt.shape[1 - features]
        w_row = b.view(b.sum(w, (features,), True, ir.TensorType(tuple(1 if d == features else s for d, s in enumerate(wt.shape)), wt.dtype)),
                       (k,), wt.dtype)
        x = node.attr("args")[0]
        xt = graph.type_of(x.name)
        if xt.shape[-1] != k or xt.dtype != y.dtype:
            return None
        products = b.pointwise("mul", (x, ir.ValueRef(w_row)), ir.TensorType(xt.shape, y.dtype))
        args = node.attr("args", ())
        bias = args[2] if node.op == "aten.linear.default" and len(args) > 2 else None
        keepdim = bool(red.attr("keepdim"))
        summed_t = ir.TensorType(y.shape[:-1] + (1,) if keepdim else y.shape[:-1], y.dtype)
        last = None if bias is not None else red.outputs[0]
        summed = b.sum(products, (len(xt.shape) - 1,), keepdim, summed_t, out=last)
        if bias is not None:
            bt = graph.type_of(bias.name)
            b_sum = b.sum(bias.name, (0,), keepdim, ir.TensorType((1,) if keepdim else (), bt.dtype))
            b.pointwise("add", (ir.ValueRef(summed), ir.ValueRef(b_sum)), out_t, out=red.outputs[0])
        return b.rewrite([node.id, red.id])
