"""fold-batchnorm (stage "graph"): eval-mode batch norm becomes a per-channel scale and shift.

Batch norm with running statistics (eval mode, or ``training=False``) is
``y = x * A + B`` with ``A = weight / sqrt(running_var + eps)`` and ``B = bias - running_mean * A``,
per channel (dim 1). A and B read only parameters, so they are computed once per parameter
version (``akg.hoist``); each call is one multiply-add per element instead of a library call.
When x comes from a linear or convolution, ``fold-affine`` (which runs next) moves A and B into
its weight and bias, so the norm costs nothing per call. Batch norm with batch statistics
(training) is never rewritten.
"""
from __future__ import annotations

from akg import ir
from akg.passes.rewrite import Builder, RewritePass

# overload -> (index of ``training`` or None when it has none, index of eps)
_EVAL_FORMS = {
    "aten._native_batch_norm_legit_no_training.default": (None, 6),
    "aten._native_batch_norm_legit.default": (5, 7),
    "aten.native_batch_norm.default": (5, 7),
    "aten.batch_norm.default": (5, 7),
}


def _eval_batch_norm(node: ir.Node):
    """(x, weight, bias, mean, var, eps) of a batch norm using running statistics, else None."""
    form = _EVAL_FORMS.get(node.op)
    args = node.attr("args", ())
    if form is None or node.attr("kwargs") or len(args) <= form[1]:
        return None
    training, eps = form
    if training is not None and args[training] is not False:
        return None
    x, weight, bias, mean, var = args[:5]
    if not all(isinstance(a, ir.ValueRef) for a in (x, mean, var)) or not isinstance(eps, (int, float)):
        return None
    if any(a is not None and not isinstance(a, ir.ValueRef) for a in (weight, bias)):
        return None
    name = lambda a: a.name if a is not None else None   # noqa: E731
    return x.name, name(weight), name(bias), mean.name, var.name, float(args[eps])


class FoldBatchNormPass(RewritePass):
    name = "fold-batchnorm"
    stage = "graph"
    order = 15

    def find(self, graph: ir.Graph):
        used = {i for n in graph.nodes for i in n.inputs} | set(graph.outputs)
        stored = set(graph.params)
        for node in graph.nodes:
            parts = _eval_batch_norm(node)
            if parts is None or any(o in used for o in node.outputs[1:]):
                continue
            x, weight, bias, mean, var, eps = parts
            if not {v for v in (weight, bias, mean, var) if v is not None} <= stored:
                continue   # statistics that are not parameters are not folded
            xt = graph.type_of(x)
            if len(xt.shape) < 2 or xt.dtype not in ir.FLOAT_DTYPES:
                continue
            c = xt.shape[1]
            vec = ir.TensorType((c,), graph.type_of(var).dtype)
            if graph.type_of(var).shape != (c,) or graph.type_of(var).dtype != xt.dtype:
                continue
            b = Builder(self.name, node.id)
            inv = b.pointwise("rsqrt", (ir.ValueRef(b.pointwise("add", (ir.ValueRef(var), eps), vec)),), vec)
            scale = b.pointwise("mul", (ir.ValueRef(weight), ir.ValueRef(inv)), vec) if weight else inv
            shift = b.pointwise("mul", (ir.ValueRef(mean), ir.ValueRef(scale)), vec)
            shift = b.pointwise("sub", (ir.ValueRef(bias), ir.ValueRef(shift)), vec) if bias else \
                b.pointwise("neg", (ir.ValueRef(shift),), vec)
            trailing = (1,) * (len(xt.shape) - 2)
            if trailing:
                scale = b.view(scale, (c,) + trailing, xt.dtype)
                shift = b.view(shift, (c,) + trailing, xt.dtype)
            out_t = graph.type_of(node.outputs[0])
            scaled = b.pointwise("mul", (ir.ValueRef(x), ir.ValueRef(scale)), out_t)
            b.pointwise("add", (ir.ValueRef(scaled), ir.ValueRef(shift)), out_t, out=node.outputs[0])
            yield b.rewrite([node.id])
