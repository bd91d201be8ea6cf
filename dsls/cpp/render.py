"""Render fused groups into one C++ translation unit plus the Python launchers that call it.

Each family has a context builder in ``lowering.py`` and a template in ``templates/<family>.j2``;
``render_groups`` is what the DSL plugin's ``render`` returns.
"""
from __future__ import annotations

import math
import traceback
from pathlib import Path

import jinja2

from akg.ir import contiguous_strides, FusedGroup, PointwiseKernel, PoolKernel, ReductionKernel, ScanKernel
from akg.targets import RenderError

from . import lowering
from .schedules import CppSchedule, default_schedule

TEMPLATE_DIR = Path(__file__).parent / "templates"


def template_environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE_DIR), undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True, trim_blocks=False, autoescape=False)


def render_groups(groups: list[tuple[int, FusedGroup]], device: str) -> str:
    if device != "cpu":
        raise RenderError(f"the cpp DSL runs on the cpu, not {device!r}; pick --device cpu or another DSL")
    env = template_environment()
    kernels = [_template(env, "prelude.j2", {})]
    launchers = []
    for index, group in groups:
        schedule = default_schedule(group)
        kernels.append(_kernel(env, index, group, schedule))
        launchers.append(_launcher(env, index, group, schedule))
    cpp = "\n".join(kernels)
    if "'''" in cpp:
        raise RenderError("generated C++ contains ''' and cannot be embedded")
    return "\n".join([
        "# ---- akg cpp runtime ----",
        runtime_text(),
        f"_AKG_CPP_SOURCE = r'''{cpp}'''",
        "",
        "",
        "def _akg_library():",
        "    return akg_load(_AKG_CPP_SOURCE)",
        "",
        *launchers,
    ])


_FAMILIES = ("pointwise", "reduction", "scan", "pool")   # CppDSL.families


def _kernel(env: jinja2.Environment, index: int, group: FusedGroup, schedule: CppSchedule) -> str:
    kernel, name = group.kernel, f"akg_g{index}"
    if group.family not in _FAMILIES:
        # A reduction over several dims would render as a row reduction and compute the wrong thing.
        raise RenderError(f"group {index}: the cpp DSL does not render the {group.family} family; "
                          "plan it as a library call")
    try:
        if isinstance(kernel, PointwiseKernel):
            return _template(env, "pointwise.j2", lowering.pointwise_context(name, kernel))
        if isinstance(kernel, ReductionKernel):
            context = lowering.reduction_context(name, kernel, schedule.variant, schedule.lanes, schedule.block)
            return _template(env, "reduction.j2", context)
        if isinstance(kernel, ScanKernel):
            context = lowering.scan_context(name, kernel, schedule.variant, schedule.block)
            return _template(env, "scan.j2", context)
        if isinstance(kernel, PoolKernel):
            return _template(env, "pool.j2", lowering.pool_context(name, kernel, schedule.block))
    except RenderError as error:
        raise RenderError(f"group {index} ({group.family} {group.nodes}): {error}") from None
    except ValueError as error:  # an op or dtype the C++ renderer cannot spell
        raise RenderError(f"group {index} ({group.family} {group.nodes}): {error}") from None
    raise RenderError(f"group {index}: the cpp DSL does not render the {group.family} family; "
                      "plan it as a library call")


def _launcher(env: jinja2.Environment, index: int, group: FusedGroup, schedule: CppSchedule) -> str:
    kernel = group.kernel
    # Pool kernels read their input ahead of the epilogue operands (FusedGroup.read_values order).
    read = ((kernel.input,) if isinstance(kernel, PoolKernel) else ()) + tuple(kernel.operands)
    inputs = [{"arg": f"a{i}", "label": op.value, "dtype": op.type.dtype, "shape": tuple(op.type.shape),
               "strides": tuple(op.type.layout())} for i, op in enumerate(read)]
    outputs = [{"var": f"o{k}", "dtype": o.type.dtype, "shape": tuple(o.type.shape)}
               for k, o in enumerate(kernel.outputs)]
    context = {"index": index, "args": [a["arg"] for a in inputs], "inputs": inputs, "outputs": outputs,
               "donors": donatable_inputs(kernel),
               "numel": math.prod(kernel.domain), "symbol": f"akg_g{index}",
               "pointers": [a["arg"] for a in inputs] + [o["var"] for o in outputs],
               "threads": schedule.threads,
               "grain": schedule.block if isinstance(kernel, PointwiseKernel) else schedule.grain}
    return _template(env, "launcher.j2", context)


def donatable_inputs(kernel) -> tuple[int, ...]:
    """Operands a pointwise kernel may overwrite with its one output: read at exactly the offsets
    it writes (same shape, dtype and contiguous layout) and only once, so every element is read
    before the same iteration stores over it. The caller says which one is dead (``_akg_donate``)."""
    if not isinstance(kernel, PointwiseKernel) or len(kernel.outputs) != 1:
        return ()
    out = kernel.outputs[0].type
    contiguous = contiguous_strides(tuple(out.shape))
    values = [op.value for op in kernel.operands]
    return tuple(i for i, op in enumerate(kernel.operands)
                 if values.count(op.value) == 1 and op.type.dtype == out.dtype
                 and tuple(op.type.shape) == tuple(out.shape) and tuple(op.type.layout()) == contiguous
                 and tuple(out.layout()) == contiguous and math.prod(out.shape) > 1)


def _template(env: jinja2.Environment, name: str, context: dict) -> str:
    try:
        return env.get_template(name).render(**context)
    except jinja2.TemplateError as error:
        raise RenderError(f"template cpp/{name}{_template_line(error)}: {error}") from None


def _template_line(error: Exception) -> str:
    lineno = getattr(error, "lineno", None)
    if lineno is None:
        frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename.endswith(".j2")]
        lineno = frames[-1].lineno if frames else None
    return f" line {lineno}" if lineno else ""


def runtime_text() -> str:
    """runtime.py as embedded in candidates (its module docstring is about akg, not the candidate)."""
    text = Path(__file__).with_name("runtime.py").read_text()
    return text.split('"""', 2)[2].lstrip() if text.startswith('"""') else text
