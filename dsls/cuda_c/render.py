"""Render fused groups into one CUDA-C translation unit plus the Python launchers that call it.

Each family has a context builder in ``lowering.py`` and a template in ``templates/<family>.j2``.
The dialect (renderer data, prelude switches, warp width) is a parameter, so the HIP DSL renders
through this module with its own dialect.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import jinja2

from akg.dsls.cstyle import CStyleRenderer
from akg.ir import FusedGroup, PointwiseKernel, ReductionKernel, ScanKernel
from akg.targets import RenderError

from . import lowering   # runtime.py (it imports torch) is embedded as text, not imported
from .exprs import CudaRenderer
from .schedules import PointwiseSchedule, ReductionSchedule, ScanSchedule, for_group

TEMPLATE_DIR = Path(__file__).parent / "templates"
_UNARY = [(op, f"{op}f", op) for op in ("exp", "exp2", "expm1", "log", "log2", "log1p", "sqrt", "sin", "cos",
                                         "tan", "tanh", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh",
                                         "atanh", "floor", "ceil", "trunc", "erf")]
_UNARY.append(("round", "rintf", "rint"))   # torch.round: half to even


@dataclass(frozen=True)
class Dialect:
    """What differs between the GPUs' C dialects when rendering through these templates."""
    name: str
    renderer: CStyleRenderer
    warp_size: int
    device: str            # the backend it runs on
    runtime: Path          # the runtime module embedded in candidates
    templates: Path        # the dialect's own templates (dialect.j2), searched before these


CUDA = Dialect("cuda_c", CudaRenderer(), 32, "cuda", Path(__file__).with_name("runtime.py"), TEMPLATE_DIR)


def template_environment(dialect: Dialect = CUDA) -> jinja2.Environment:
    folders = [str(dialect.templates)] + ([str(TEMPLATE_DIR)] if dialect.templates != TEMPLATE_DIR else [])
    return jinja2.Environment(loader=jinja2.FileSystemLoader(folders), undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True, autoescape=False)


def kernel_source(groups: list[tuple[int, FusedGroup]], dialect: Dialect = CUDA) -> tuple[str, list[str]]:
    """(the CUDA-C translation unit, the Python launchers) for the groups."""
    env = template_environment(dialect)
    kernels = [_template(env, "prelude.j2", {"unary": _UNARY, "warp_size": dialect.warp_size})]
    launchers = []
    for index, group in groups:
        schedule = for_group(group)
        if schedule is None:
            raise RenderError(f"group {index}: the {dialect.name} DSL does not render the {group.family} family; "
                              "plan it as a library call")
        try:
            context = _context(dialect, index, group, schedule)
        except (RenderError, ValueError) as error:
            raise RenderError(f"group {index} ({group.family} {group.nodes}): {error}") from None
        kernels.append(_template(env, f"{group.family}.j2", context))
        launchers.append(_template(env, "launcher.j2", _launcher_context(dialect, index, group, schedule, context)))
    return "\n".join(kernels), launchers


def render_groups(groups: list[tuple[int, FusedGroup]], device: str, dialect: Dialect = CUDA) -> str:
    if device != dialect.device:
        raise RenderError(f"the {dialect.name} DSL runs on {dialect.device}, not {device!r}")
    source, launchers = kernel_source(groups, dialect)
    if "'''" in source:
        raise RenderError("generated CUDA-C contains ''' and cannot be embedded")
    return "\n".join([
        f"# ---- akg {dialect.name} runtime ----",
        runtime_text(dialect.runtime),
        f"_AKG_CUDA_SOURCE = r'''{source}'''",
        "",
        "",
        "def _akg_module():",
        "    return akg_load(_AKG_CUDA_SOURCE)",
        "",
        *launchers,
    ])


def _context(dialect: Dialect, index: int, group: FusedGroup, schedule) -> dict:
    name, kernel, r = f"akg_g{index}", group.kernel, dialect.renderer
    if isinstance(kernel, PointwiseKernel):
        return lowering.pointwise_context(r, name, kernel, schedule)
    if isinstance(kernel, ReductionKernel):
        return lowering.reduction_context(r, name, kernel, schedule)
    if isinstance(kernel, ScanKernel):
        return lowering.scan_context(r, name, kernel, schedule)
    raise RenderError(f"no template for {group.family}")


def _launcher_context(dialect: Dialect, index: int, group: FusedGroup, schedule, context: dict) -> dict:
    kernel = group.kernel
    inputs = [{"arg": f"a{i}", "label": op.value, "dtype": op.type.dtype, "shape": tuple(op.type.shape),
               "strides": tuple(op.type.layout())} for i, op in enumerate(kernel.operands)]
    outputs = [{"var": f"o{k}", "dtype": o.type.dtype, "shape": tuple(o.type.shape)}
               for k, o in enumerate(kernel.outputs)]
    pointers = [a["arg"] for a in inputs] + [o["var"] for o in outputs]
    numel = math.prod(kernel.domain)
    threads = schedule.threads
    out = {"index": index, "args": [a["arg"] for a in inputs], "inputs": inputs, "outputs": outputs,
           "symbol": f"akg_g{index}", "pointers": pointers, "threads": threads, "work": numel,
           "split": None, "vec_tensors": [], "vec_bytes": 0, "scalar_work": numel, "grid": 1}
    if isinstance(schedule, PointwiseSchedule):
        vec = context["vec"]
        out["work"] = numel // vec if numel else 0
        if vec > 1:
            n_ops = len(kernel.operands)
            vec_tensors = [pointers[i] for i in context["vec_operands"]] + [pointers[n_ops + k] for k in context["vec_outputs"]]
            itemsize = max(_itemsize(t["dtype"]) for t in inputs + outputs)
            out.update(vec_tensors=vec_tensors, vec_bytes=itemsize * vec)
    elif isinstance(schedule, ReductionSchedule):
        if schedule.variant == "column":
            out["grid"] = f"akg_grid({context['outer'] * context['inner']}, {threads})"
        elif schedule.variant == "split":
            acc = context["stages"][0]["acc_type"]
            out["split"] = {"count": context["rows"] * schedule.split, "rows": context["rows"],
                            "dtype": {"double": "float64", "int64_t": "int64"}.get(acc, _torch_dtype(kernel.stages[0].expr.dtype))}
        else:
            out["grid"] = min(context["rows"], 1 << 20)
    elif isinstance(schedule, ScanSchedule):
        if schedule.variant == "column":
            out["grid"] = f"akg_grid({context['outer'] * context['inner']}, {threads})"
        else:
            out["grid"] = f"akg_grid({context['rows']} * {dialect.warp_size}, {threads})"
    return out


_ITEMSIZE = {"float64": 8, "int64": 8, "float32": 4, "int32": 4, "float16": 2, "bfloat16": 2, "int16": 2,
             "int8": 1, "uint8": 1, "bool": 1}


def _itemsize(dtype: str) -> int:
    return _ITEMSIZE[dtype]


def _torch_dtype(dtype: str) -> str:
    return dtype


def _template(env: jinja2.Environment, name: str, context: dict) -> str:
    try:
        return env.get_template(name).render(**context)
    except jinja2.TemplateError as error:
        raise RenderError(f"template cuda_c/{name} line {getattr(error, 'lineno', '?')}: {error}") from None


def runtime_text(path: Path = CUDA.runtime) -> str:
    """The runtime module as embedded in candidates (its docstring is about akg, not the candidate)."""
    text = Path(path).read_text()
    return text.split('"""', 2)[2].lstrip() if text.startswith('"""') else text
