"""A DSL plugin living outside akg: pointwise groups rendered as torch expressions."""
from akg.ir import Call, Const, Load, PointwiseKernel, Schedule
from akg.plugins import hookimpl
from akg.targets import RenderError

# akg op -> torch spelling; ops missing here make render() fail, which akg records and skips.
TORCH_OPS = {
    "add": "({0} + {1})", "sub": "({0} - {1})", "mul": "({0} * {1})", "div": "({0} / {1})",
    "max": "torch.maximum({0}, {1})", "min": "torch.minimum({0}, {1})", "pow": "torch.pow({0}, {1})",
    "neg": "(-{0})", "abs": "torch.abs({0})", "exp": "torch.exp({0})", "log": "torch.log({0})",
    "sqrt": "torch.sqrt({0})", "rsqrt": "torch.rsqrt({0})", "tanh": "torch.tanh({0})",
    "sigmoid": "torch.sigmoid({0})", "erf": "torch.erf({0})", "log1p": "torch.log1p({0})",
    "lt": "({0} < {1})", "le": "({0} <= {1})", "gt": "({0} > {1})", "ge": "({0} >= {1})",
    "eq": "({0} == {1})", "ne": "({0} != {1})", "where": "torch.where({0}, {1}, {2})",
    "cast": "({0}).to(torch.{dtype})",
}


def render_expr(e) -> str:
    if isinstance(e, Load):
        return f"ops[{e.operand}]"
    if isinstance(e, Const):
        return f"torch.tensor({e.value!r}, dtype=torch.{e.dtype})"
    if isinstance(e, Call) and e.op in TORCH_OPS:
        return TORCH_OPS[e.op].format(*(render_expr(a) for a in e.args), dtype=e.dtype)
    raise RenderError(f"torchexpr cannot render {type(e).__name__} {getattr(e, 'op', '')}")


def render_group(index, group) -> str:
    k = group.kernel
    if not isinstance(k, PointwiseKernel):
        raise RenderError(f"group {index}: torchexpr renders only pointwise groups, not {group.family}")
    lines = [f"def _akg_g{index}(*tensors):",
             f"    ops = [torch.as_strided(t, {k.domain!r}, s) for t, s in zip(tensors, {[o.strides for o in k.operands]!r})]",
             "    results = []"]
    for out in k.outputs:
        lines += [f"    out = torch.empty({out.type.shape!r}, dtype=torch.{out.type.dtype}, device=tensors[0].device)",
                  f"    value = ({render_expr(out.expr)}).to(torch.{out.type.dtype})",
                  f"    torch.as_strided(out, {k.domain!r}, {out.strides!r}).copy_(value.expand({k.domain!r}))",
                  "    results.append(out)"]
    lines.append("    return tuple(results)")
    return "\n".join(lines)


class TorchExprDSL:
    name = "torchexpr"
    devices = ("cpu", "cuda")
    families = ("pointwise",)
    timing_meaningful_on = ("cpu", "cuda")

    def schedules(self, group, hardware):
        return [Schedule()] if group.family == "pointwise" else []

    def render(self, groups, device):
        return "\n\n".join(render_group(i, g) for i, g in groups)

    def prebuild(self, source, device):
        return None

    def lint(self, source):
        return [] if "ModelNew" in source else ["no ModelNew defined"]

    def guide(self):
        return "Write ModelNew.forward as torch expressions over the inputs."


@hookimpl
def akg_dsls():
    return [TorchExprDSL()]
