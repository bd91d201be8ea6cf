"""Render fused groups into TileLang source: per group, a function building its ``T.prim_func``
(shapes, strides and the schedule baked in) and a launcher ``_akg_g<i>`` that compiles it once
and calls it on the group's tensors.

Each family has a context builder in ``lowering.py`` and a template in ``templates/<family>.j2``;
``render_groups`` is what the DSL plugin's ``render`` returns.
"""
from __future__ import annotations

import math
from pathlib import Path

import jinja2

from akg.ir import FusedGroup, MatmulKernel, PointwiseKernel, ReductionKernel
from akg.targets import RenderError

from . import lowering

# Read as text, never imported here: importing it imports tilelang, and akg (its plugin list, the
# other DSLs) must work where tilelang is not installed.
RUNTIME_FILE = Path(__file__).with_name("runtime.py")
from .schedules import for_group, obstacle

TEMPLATE_DIR = Path(__file__).parent / "templates"


def template_environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)), undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)


def runtime_text() -> str:
    """The runtime module as embedded in candidates (its docstring is about akg, not the candidate)."""
    text = RUNTIME_FILE.read_text()
    return text.split('"""', 2)[2].lstrip() if text.startswith('"""') else text


def _template(env: jinja2.Environment, name: str, context: dict) -> str:
    try:
        return env.get_template(name).render(**context)
    except jinja2.TemplateError as error:
        raise RenderError(f"template tilelang/{name} line {getattr(error, 'lineno', '?')}: {error}") from None


def _context(name: str, group: FusedGroup, device: str) -> dict:
    kernel = group.kernel
    problem = obstacle(kernel, allow_tf32=True, gpu=device == "cuda")
    if problem:
        raise RenderError(problem)
    schedule = for_group(group, device)
    if isinstance(kernel, PointwiseKernel):
        return lowering.pointwise_context(name, kernel, schedule, device)
    if isinstance(kernel, ReductionKernel):
        return lowering.reduction_context(name, kernel, schedule, device)
    if isinstance(kernel, MatmulKernel):
        return lowering.matmul_context(name, kernel, schedule, device)
    raise RenderError(f"no template for {group.family}")


def _launcher_context(index: int, group: FusedGroup, device: str, context: dict) -> dict:
    kernel = group.kernel
    labels = group.read_values()
    inputs, pointers = [], []
    if isinstance(kernel, MatmulKernel):
        for arg, op, view in (("a", kernel.a, context["a_view"]), ("b", kernel.b, context["b_view"])):
            inputs.append({"arg": arg, "label": op.value, "dtype": op.type.dtype, "shape": tuple(op.type.shape),
                           "view": f"akg_tile({arg}, {view.shape}, {view.strides})"})
            pointers.append(arg)
    for i, op in enumerate(kernel.operands):
        arg = f"r{i}"
        inputs.append({"arg": arg, "label": op.value, "dtype": op.type.dtype, "shape": tuple(op.type.shape),
                       "view": f"akg_flat({arg}, {tuple(op.type.layout())}, {lowering.span(op.type)})"})
        pointers.append(arg)
    outputs = [{"var": f"o{j}", "dtype": o.type.dtype, "shape": tuple(o.type.shape), "strides": tuple(o.type.layout())}
               for j, o in enumerate(kernel.outputs)]
    pointers += [f"akg_flat(o{j}, {o['strides']}, {lowering.span(o_spec.type)})"
                 for j, (o, o_spec) in enumerate(zip(outputs, kernel.outputs))]
    for entry, label in zip(inputs, labels):
        entry["label"] = label
    work = math.prod(kernel.domain) * (kernel.k if isinstance(kernel, MatmulKernel) else 1)
    if isinstance(kernel, ReductionKernel):
        work = math.prod(kernel.domain) or math.prod(d for i, d in enumerate(kernel.domain) if i != kernel.reduce_dim)
    workspaces = context.get("workspaces", [])
    programs = [f"{context['name']}_program"] + ([f"{context['name']}_combine_program"] if workspaces else [])
    return {"index": index, "args": [e["arg"] for e in inputs], "inputs": inputs, "outputs": outputs,
            "pointers": pointers + [w["name"] for w in workspaces], "device": device, "target": context["sp"].target,
            "key": f"g{index}", "programs": programs, "workspaces": workspaces, "work": work}


def render_groups(groups: list[tuple[int, FusedGroup]], device: str) -> str:
    lowering.spelling(device)   # refuses a device the DSL does not run on
    env = template_environment()
    parts = [runtime_text()]
    for index, group in groups:
        name = f"_akg_tl{index}"
        try:
            context = _context(name, group, device)
        except (RenderError, ValueError) as error:
            raise RenderError(f"group {index} ({group.family}, nodes {', '.join(group.nodes)}): {error}") from None
        parts.append(_template(env, f"{group.family}.j2", context))
        parts.append(_template(env, "launcher.j2", _launcher_context(index, group, device, context)))
    return "\n\n".join(parts)
