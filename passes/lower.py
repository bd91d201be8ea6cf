"""lower (stage "plan"): library calls for what no kernel family covers, and the unfused plan.

The unfused plan gives every node its own kernel (views still fold into strides; matmul, conv and
pool are framework calls), so every graph has at least one valid plan.
"""
from __future__ import annotations

from akg import ir
from akg.targets import PassContext


def _aten_reduction(node: ir.Node) -> tuple[str, tuple]:
    x, dims, keepdim = ir.ValueRef(node.inputs[0]), list(node.attr("dims")), node.attr("keepdim")
    if node.op == "sum":
        return "aten.sum.dim_IntList", (x, dims, keepdim)
    if node.op in ("max", "min"):
        return f"aten.a{node.op}.default", (x, dims, keepdim)
    if len(dims) != 1:
        raise ValueError(f"{node.op} over several dims has no single ATen call")
    if node.op == "prod":
        return "aten.prod.dim_int", (x, dims[0], keepdim)
    return f"aten.{node.op}.default", (x, dims[0], keepdim)


def as_aten_node(node: ir.Node) -> ir.Node:
    """The node as an ATen call (structured nodes already are one)."""
    if node.kind == "reduction":
        op, args = _aten_reduction(node)
    elif node.kind == "scan":
        if node.op in ("cummax", "cummin"):   # the ATen call returns (values, indices)
            raise ValueError(f"{node.op} values alone have no single ATen call")
        op, args = f"aten.{node.op}.default", (ir.ValueRef(node.inputs[0]), node.attr("dim"))
    elif node.kind == "pointwise":
        raise ValueError("pointwise nodes are kernels, not library calls")
    else:
        return node
    return ir.Node(node.id, op, "library", node.inputs, node.outputs, (("args", args), ("kwargs", ())))


def library_call(node: ir.Node, layouts) -> ir.LibraryCall:
    aten = as_aten_node(node)
    types = layouts.library_output(aten)
    return ir.LibraryCall(aten.op, tuple(aten.attr("args", ())), tuple(aten.attr("kwargs", ())), aten.outputs, types)


class LowerPass:
    name = "lower"
    stage = "plan"
    order = 90

    def run(self, graph: ir.Graph, context: PassContext) -> list[ir.KernelPlan]:
        from akg.passes.fuse import Strategy, fuse
        return [fuse(graph, Strategy("unfused", matmul_kernel=False, pool_kernel=False, singletons=True))]
