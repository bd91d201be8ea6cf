"""Render fused groups into Triton source: one @triton.jit kernel and one launcher per group.

Each family has a context builder here and a template in templates/<family>.j2;
the builder computes index arithmetic, loads, expressions and the baked-in schedule, the template
holds the kernel's skeleton. ``render_groups`` is what the DSL plugin's ``render`` returns.
"""
from __future__ import annotations

from pathlib import Path

import jinja2

from akg.ir import FusedGroup, Load, walk
from akg.targets import RenderError
from akg.dsls.triton import families
from akg.dsls.triton.exprs import INTERPRETER_HELPERS, PRELUDE_HELPERS
from akg.dsls.triton.schedules import TritonSchedule

_INTERPRETER_HEADER = '''import os
# Triton reads TRITON_INTERPRET when a kernel is defined: on the CPU the kernels run in its
# interpreter, for correctness only.
os.environ["TRITON_INTERPRET"] = "1"
'''

_IMPORTS = '''import torch
import triton
import triton.language as tl
from triton.language.extra import libdevice
'''

_BUILDERS = {
    "pointwise": families.pointwise_context,
    "reduction": families.reduction_context,
    "reduction_nd": families.reduction_context,   # the same kernel, rows over several reduce dims
    "pool_prologue": families.pool_context,       # the pool kernel computing its window elements
    "scan": families.scan_context,
    "pool": families.pool_context,
    "matmul_epilogue": families.matmul_context,
    "conv_epilogue": families.conv_context,
}


# Families that share another family's skeleton.
_TEMPLATE_OF = {"reduction_nd": "reduction", "pool_prologue": "pool"}


def template_environment() -> jinja2.Environment:
    folder = Path(__file__).parent / "templates"
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder)), undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def render_group(env: jinja2.Environment, index: int, group: FusedGroup, device: str) -> str:
    builder = _BUILDERS.get(group.family)
    if builder is None:
        raise RenderError(f"group {index} ({group.family}): the triton DSL has no template for this family")
    try:
        TritonSchedule.from_schedule(group.schedule)   # a wrong knob fails here, with its name
        context = builder(f"_akg_g{index}", group, device)
        # A family's variant may have its own skeleton (the split reduction's two kernels).
        template = context.pop("template", _TEMPLATE_OF.get(group.family, group.family))
        return env.get_template(f"{template}.j2").render(**context)
    except (RenderError, ValueError) as err:
        raise RenderError(f"group {index} ({group.family}, nodes {', '.join(group.nodes)}): {err}") from None
    except jinja2.TemplateError as err:
        line = getattr(err, "lineno", "?")
        raise RenderError(f"group {index}: template {group.family}.j2 line {line}: {err}") from None


def render_groups(groups: list[tuple[int, FusedGroup]], device: str) -> str:
    env = template_environment()
    interpreter = device == "cpu"
    header = _INTERPRETER_HEADER if interpreter else ""
    helpers = PRELUDE_HELPERS + (INTERPRETER_HELPERS if interpreter else "")
    bodies = [render_group(env, i, g, device) for i, g in groups]
    return header + _IMPORTS + helpers + "\n" + families.REDUCE_HELPERS + "\n\n" + "\n\n".join(bodies)
