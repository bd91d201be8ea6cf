"""Render pointwise groups through templates/pointwise.j2."""
from pathlib import Path

import jinja2

from akg.ir import PointwiseKernel
from akg.targets import RenderError

from .exprs import render_expr

_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                          undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def render_group(index, group) -> str:
    k = group.kernel
    if not isinstance(k, PointwiseKernel):
        raise RenderError(f"group {index}: torchexpr renders only pointwise groups, not {group.family}")
    outputs = [{"shape": tuple(o.type.shape), "dtype": o.type.dtype, "strides": tuple(o.strides),
                "expr": render_expr(o.expr)} for o in k.outputs]
    return _ENV.get_template("pointwise.j2").render(
        index=index, domain=tuple(k.domain), operand_strides=[tuple(o.strides) for o in k.operands], outputs=outputs)


def render_groups(groups, device) -> str:
    return "\n\n".join(render_group(i, g) for i, g in groups)
