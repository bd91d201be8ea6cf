"""The torchexpr expression dialect: how each akg IR op is spelled as a torch expression."""
from akg.ir import Call, Const, Load
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
