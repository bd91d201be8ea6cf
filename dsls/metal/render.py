"""Render fused groups into one Metal library plus the Python launchers that dispatch it.

The lowering (geometry, offsets, expressions) is the CUDA-C one with the Metal dialect's renderer;
the templates here are Metal's: one thread per element, row or output.
"""
from __future__ import annotations

import math
from pathlib import Path

import jinja2

from akg.dsls.cuda_c import lowering
from akg.dsls.cuda_c.schedules import PointwiseSchedule, ReductionSchedule, ScanSchedule
from akg.ir import FusedGroup, PointwiseKernel, ReductionKernel, ScanKernel
from akg.targets import RenderError

# runtime.py (it imports torch) is embedded as text: read, not imported, so listing plugins stays light
from .exprs import MetalRenderer
from .schedules import MetalSchedule, for_group

TEMPLATE_DIR = Path(__file__).parent / "templates"
RENDERER = MetalRenderer()
_UNARY = [(op, f"metal::{op}") for op in ("exp", "exp2", "log", "log2", "sqrt", "sin", "cos", "tan", "tanh", "asin", "acos",
                              "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "floor", "ceil", "trunc")]
# Metal's library has no expm1, log1p or erf: the prelude defines them.
_UNARY += [("round", "metal::rint"), ("expm1", "akg_expm1_"), ("log1p", "akg_log1p_"), ("erf", "akg_erf_")]


def template_environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE_DIR), undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True, autoescape=False)


def parameters(kernel) -> str:
    ins = [f"device const {RENDERER.storage_type(op.type.dtype)}* in{i} [[buffer({i})]]"
           for i, op in enumerate(kernel.operands)]
    n = len(ins)
    outs = [f"device {RENDERER.storage_type(o.type.dtype)}* out{k} [[buffer({n + k})]]"
            for k, o in enumerate(kernel.outputs)]
    return ", ".join(ins + outs)


def kernel_source(groups: list[tuple[int, FusedGroup]]) -> tuple[str, list[str], list[tuple[str, int]]]:
    """(the Metal source, the Python launchers, (kernel name, threads) per group)."""
    env = template_environment()
    kernels = [_template(env, "prelude.j2", {"unary": _UNARY})]
    launchers, dispatch = [], []
    for index, group in groups:
        schedule = for_group(group)
        if schedule is None:
            raise RenderError(f"group {index}: the metal DSL does not render the {group.family} family; "
                              "plan it as a library call")
        try:
            context, threads = _context(index, group, schedule)
        except (RenderError, ValueError) as error:
            raise RenderError(f"group {index} ({group.family} {group.nodes}): {error}") from None
        kernels.append(_template(env, f"{group.family}.j2", context))
        launchers.append(_template(env, "launcher.j2", _launcher_context(index, group, threads)))
        dispatch.append((f"akg_g{index}", threads))
    return "\n".join(kernels), launchers, dispatch


def render_groups(groups: list[tuple[int, FusedGroup]], device: str) -> str:
    if device != "mps":
        raise RenderError(f"the metal DSL runs on mps, not {device!r}")
    source, launchers, _ = kernel_source(groups)
    if "'''" in source:
        raise RenderError("generated Metal contains ''' and cannot be embedded")
    return "\n".join(["# ---- akg metal runtime ----", runtime_text(), f"_AKG_METAL_SOURCE = r'''{source}'''", "", "",
                      "def _akg_library():", "    return akg_library(_AKG_METAL_SOURCE)", "", *launchers])


def _context(index: int, group: FusedGroup, schedule: MetalSchedule) -> tuple[dict, int]:
    name, kernel = f"akg_g{index}", group.kernel
    if isinstance(kernel, PointwiseKernel):
        context = lowering.pointwise_context(RENDERER, name, kernel, PointwiseSchedule(vec=1))
        threads = context["outer"] * context["inner"]
    elif isinstance(kernel, ReductionKernel):
        variant = schedule.variant
        context = lowering.reduction_context(RENDERER, name, kernel, ReductionSchedule(variant))
        threads = context["outer"] * context["inner"] if variant == "column" else context["rows"]
    elif isinstance(kernel, ScanKernel):
        context = lowering.scan_context(RENDERER, name, kernel, ScanSchedule(schedule.variant))
        threads = context["outer"] * context["inner"] if schedule.variant == "column" else context["rows"]
    else:
        raise RenderError(f"no template for {group.family}")
    context["params"] = parameters(kernel)
    return context, (threads if math.prod(kernel.domain) else 0)


def _launcher_context(index: int, group: FusedGroup, threads: int) -> dict:
    kernel = group.kernel
    inputs = [{"arg": f"a{i}", "label": op.value, "dtype": op.type.dtype, "shape": tuple(op.type.shape),
               "strides": tuple(op.type.layout())} for i, op in enumerate(kernel.operands)]
    outputs = [{"var": f"o{k}", "dtype": o.type.dtype, "shape": tuple(o.type.shape)}
               for k, o in enumerate(kernel.outputs)]
    return {"index": index, "args": [a["arg"] for a in inputs], "inputs": inputs, "outputs": outputs,
            "symbol": f"akg_g{index}", "pointers": [a["arg"] for a in inputs] + [o["var"] for o in outputs],
            "threads": threads}


def _template(env: jinja2.Environment, name: str, context: dict) -> str:
    try:
        return env.get_template(name).render(**context)
    except jinja2.TemplateError as error:
        raise RenderError(f"template metal/{name} line {getattr(error, 'lineno', '?')}: {error}") from None


def runtime_text() -> str:
    text = Path(__file__).with_name("runtime.py").read_text()
    return text.split('"""', 2)[2].lstrip() if text.startswith('"""') else text
