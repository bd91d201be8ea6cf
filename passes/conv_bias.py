"""conv-bias (stage "graph"): a convolution's bias moves into the epilogue that follows it.

``conv(x, W, b)`` whose output is read only by pointwise ops or reductions becomes
``conv(x, W, None) + b.view(C, 1, ...)``: the add joins the fused kernel after the convolution,
which reads the conv output anyway, so the bias costs nothing there. The library convolution
with a bias spends one more pass over its output adding it (cuDNN writes the result, then adds the
bias in a separate kernel), which for a large output is a sizeable part of the epilogue's time.
A conv that is a graph output, or whose output is read by views, library ops or a reduction over
scattered dims (batch statistics), keeps its bias: nothing would absorb the add. Runs after fold-affine, which folds scales and shifts into
the same bias first.
"""
from __future__ import annotations

from akg import ir
from akg.passes.rewrite import Builder, RewritePass, replace_args

CONV_OPS = ("aten.conv1d.default", "aten.conv2d.default", "aten.conv3d.default", "aten.convolution.default")
# Consumers that fuse with the add into one kernel after the convolution.
_ABSORBING = ("pointwise", "reduction")


def peelable_bias(graph: ir.Graph, node: ir.Node, consumers: dict[str, list[ir.Node]]) -> str | None:
    """The bias of ``node`` when it is a convolution whose bias can move into its epilogue."""
    args = node.attr("args", ())
    if node.op not in CONV_OPS or node.attr("kwargs") or len(args) < 3 or len(node.outputs) != 1:
        return None
    bias, out = args[2], node.outputs[0]
    if not isinstance(bias, ir.ValueRef) or out in graph.outputs:
        return None
    users = consumers.get(out, [])
    if not users or any(u.kind not in _ABSORBING or not _row_reduction(graph, u) for u in users):
        return None
    out_t, bias_t = graph.type_of(out), graph.type_of(bias.name)
    if len(out_t.shape) < 3 or bias_t.shape != (out_t.shape[1],) or bias_t.dtype != out_t.dtype:
        return None
    return bias.name


def _row_reduction(graph: ir.Graph, node: ir.Node) -> bool:
    """Pointwise ops, and reductions over adjacent dims, take the add as their prologue; a
    reduction over scattered dims (batch norm's batch statistics over N, H, W) would leave the add
    a kernel of its own, one more pass over the output."""
    if node.kind != "reduction":
        return True
    shape = graph.type_of(node.inputs[0]).shape
    dims = sorted(d % len(shape) for d in node.attr("dims", ()) if shape[d % len(shape)] > 1)
    return dims == list(range(dims[0], dims[0] + len(dims))) if dims else False


class ConvBiasPass(RewritePass):
    name = "conv-bias"
    stage = "graph"
    order = 40   # after fold-batchnorm and fold-affine, which fold into this bias

    def find(self, graph: ir.Graph):
        consumers = graph.consumers()
        for node in graph.nodes:
            bias = peelable_bias(graph, node, consumers)
            if bias is None:
                continue
            out = node.outputs[0]
            out_t = graph.type_of(out)
            b = Builder(self.name, node.id)
            raw = b.fresh("conv")
            b.node(replace_args(node, {2: None}, (raw,), f"{self.name}:{node.id}:conv"),
                   {raw: ir.TensorType(out_t.shape, out_t.dtype)})
            channel = b.view(bias, (out_t.shape[1],) + (1,) * (len(out_t.shape) - 2), out_t.dtype)
            b.pointwise("add", (ir.ValueRef(raw), ir.ValueRef(channel)), out_t, out=out)
            yield b.rewrite([node.id])
