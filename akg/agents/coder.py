"""The coder: turns a scheduled KernelPlan into one self-contained candidate source file.

The file embeds the problem's source (so ``ModelNew`` subclasses ``Model`` and keeps its parameter
names), the DSL's kernels and launchers (``_akg_g<i>`` functions rendered by the DSL plugin), and a
``forward`` that calls the groups in plan order. Library groups are rendered here: they are plain
framework calls, the same for every DSL.
"""
from __future__ import annotations

import hashlib
import re

import torch

import akg
from akg.ir import Candidate, FusedGroup, KernelPlan, LibraryCall, ValueRef
from akg.targets import DSL, RenderError

_IDENT = re.compile(r"[^0-9a-zA-Z_]")


def py_name(value: str) -> str:
    """A Python identifier for a graph value name."""
    return "v_" + _IDENT.sub("_", value)


def render_library_call(call: LibraryCall) -> str:
    args = [_render_arg(a) for a in call.args] + [f"{k}={_render_arg(v)}" for k, v in call.kwargs]
    target = "torch.ops." + call.op
    lhs = ", ".join(py_name(o) for o in call.outputs)
    if len(call.outputs) > 1:
        # Tuple results are unpacked; results the graph never uses are still named.
        return f"({lhs},) = tuple({target}({', '.join(args)}))[:{len(call.outputs)}]"
    return f"{lhs} = {target}({', '.join(args)})"


def _render_arg(a) -> str:
    if isinstance(a, ValueRef):
        return py_name(a.name)
    if isinstance(a, (list, tuple)):
        inner = ", ".join(_render_arg(x) for x in a)
        return f"[{inner}]" if isinstance(a, list) else f"({inner}{',' if len(a) == 1 else ''})"
    if isinstance(a, torch.device):
        return "_akg_device"  # the device the inputs arrived on, not the one traced on
    if isinstance(a, (torch.dtype, torch.memory_format, torch.layout)):
        return str(a)
    if isinstance(a, float) and (a != a or a in (float("inf"), float("-inf"))):
        return f"float('{a}')"
    if a is None or isinstance(a, (bool, int, float, str)):
        return repr(a)
    raise RenderError(f"library argument {a!r} of type {type(a).__name__} cannot be written into a candidate")


def _state_lines(plan: KernelPlan) -> list[str]:
    lines = []
    for name in plan.graph.params:
        fqn = name[2:] if name.startswith("p:") else name
        lines.append(f"{py_name(name)} = _akg_state(self, {fqn!r})")
    return lines


def _forward_body(plan: KernelPlan, donates: bool = False) -> list[str]:
    g = plan.graph
    lines = ["args = tuple(args)", "_akg_device = next((a.device for a in args if isinstance(a, torch.Tensor)), torch.device('cpu'))"]
    for i, name in enumerate(g.inputs):
        lines.append(f"{py_name(name)} = args[{i}]")
    lines += _state_lines(plan)
    once = _once_groups(plan)
    lines += _once_block(plan, once)
    donors = donor_reads(plan, once) if donates else {}
    for i, group in enumerate(plan.groups):
        if i not in once:
            lines.append(_group_line(i, group, donors.get(i)))
    outs = [py_name(o) for o in g.outputs]
    lines.append(f"return ({', '.join(outs)},)" if g.returns_tuple else f"return {outs[0]}")
    return lines


def _group_line(i: int, group: FusedGroup, donor: int | None = None) -> str:
    if isinstance(group.kernel, LibraryCall):
        return render_library_call(group.kernel)
    reads = ", ".join(py_name(v) for v in group.read_values())
    writes = ", ".join(py_name(v) for v in group.written_values())
    donate = "" if donor is None else f", _akg_donate={donor}"
    return f"({writes},) = _akg_g{i}({reads}{donate})"


# Library ops whose result is always new storage (never a view or the input itself).
_ALLOCATING_OPS = frozenset({"conv1d", "conv2d", "conv3d", "convolution", "conv_transpose1d", "conv_transpose2d",
                             "conv_transpose3d", "mm", "addmm", "bmm", "baddbmm", "linear", "matmul"})


def donor_reads(plan: KernelPlan, once: set[int]) -> dict[int, int]:
    """Per pointwise group, the index (in its read order) of a value it may overwrite with its
    result: a temporary of this call (a kernel's output or an allocating library op's) that no
    later group reads and the forward does not return. Writing a pass's result over its input
    keeps one buffer in cache instead of two (and skips an allocation); the DSL's launcher checks
    shape, dtype and layout."""
    groups = [(i, g) for i, g in enumerate(plan.groups) if i not in once]
    fresh: set[str] = set()
    for _, g in groups:
        if not isinstance(g.kernel, LibraryCall) or g.kernel.op.split(".")[-2] in _ALLOCATING_OPS:
            fresh.update(g.written_values())
    # A value a library op reads may have a view of it alive elsewhere: never overwritten.
    fresh -= {v for g in plan.groups if isinstance(g.kernel, LibraryCall) for v in g.read_values()}
    outputs = set(plan.graph.outputs)
    donors: dict[int, int] = {}
    for n, (i, g) in enumerate(groups):
        if g.family != "pointwise" or len(g.written_values()) != 1:
            continue
        reads = g.read_values()
        later = {v for _, h in groups[n + 1:] for v in h.read_values()}
        for k, v in enumerate(reads):
            if v in fresh and v not in outputs and v not in later and reads.count(v) == 1:
                donors[i] = k
                break
    return donors


def _once_groups(plan: KernelPlan) -> set[int]:
    """Groups computing only from parameters (folded weights): run once per parameter version."""
    from akg.hoist import once_nodes
    once = set(once_nodes(plan.graph))
    outputs = set(plan.graph.outputs)
    return {i for i, g in enumerate(plan.groups)
            if g.nodes and set(g.nodes) <= once and not outputs & set(g.written_values())}


def _once_block(plan: KernelPlan, once: set[int]) -> list[str]:
    """The once-groups, run when a parameter they read was replaced or changed in place (its
    storage or version counter moved), their results kept on the module between calls."""
    if not once:
        return []
    groups = [plan.groups[i] for i in sorted(once)]
    written = {v for g in groups for v in g.written_values()}
    sources = list(dict.fromkeys(v for g in groups for v in g.read_values() if v not in written))
    # Only what per-call groups read is kept: intermediates (a scaled copy of a weight that is
    # then summed) are freed after the first call.
    later = {v for i, g in enumerate(plan.groups) if i not in once for v in g.read_values()}
    kept = list(dict.fromkeys(v for g in groups for v in g.written_values() if v in later))
    if not kept:
        return []
    names = ", ".join(py_name(v) for v in kept)
    lines = [f"_akg_key = _akg_fold_key(({''.join(py_name(v) + ', ' for v in sources)}))",
             "_akg_held = self.__dict__.get('_akg_once')",
             "if _akg_key is None or _akg_held is None or _akg_held[0] != _akg_key:"]
    lines += ["    " + _group_line(i, plan.groups[i]) for i in sorted(once)]
    lines += [f"    self.__dict__['_akg_once'] = (_akg_key, ({names},))",
              "else:",
              f"    ({names},) = _akg_held[1]"]
    return lines


FOLD_KEY_HELPER = '''def _akg_fold_key(tensors):
    # Folded weights stay valid while every parameter they come from keeps its storage and its
    # version counter (bumped by every in-place change); None (recompute) where a tensor has none.
    try:
        return tuple((t.data_ptr(), t._version, t.dtype, tuple(t.shape)) for t in tensors)
    except RuntimeError:
        return None


'''


def _fold_key_helper(plan: KernelPlan) -> str:
    return FOLD_KEY_HELPER if _once_groups(plan) else ""


def library_ops(plan: KernelPlan) -> tuple[str, ...]:
    return tuple(sorted({g.kernel.op for g in plan.groups if isinstance(g.kernel, LibraryCall)}))


def assemble(plan: KernelPlan, dsl: DSL, device: str, problem_source: str, problem_name: str) -> str:
    """The full candidate file. Raises RenderError when the DSL cannot render a group."""
    kernel_groups = [(i, g) for i, g in enumerate(plan.groups) if not isinstance(g.kernel, LibraryCall)]
    kernels = dsl.render(kernel_groups, device) if kernel_groups else ""
    schedules = "; ".join(f"g{i}:{g.family}[{g.schedule}]" for i, g in kernel_groups)
    # A DSL whose launchers take ``_akg_donate`` may write a pass's result over a dead input.
    body = "\n".join("        " + line for line in _forward_body(plan, getattr(dsl, "donates_inputs", False)))
    return f'''"""Generated by akg {akg.__version__} for problem {problem_name}.
dsl={dsl.name} device={device} plan={plan.name}
{schedules}
Needs only torch and the DSL's own toolchain."""
import torch
import torch.nn as nn

# ---- problem source: defines Model, whose parameters ModelNew inherits ----
{problem_source}

# ---- kernels ({dsl.name}) ----
{kernels}

# Framework ops this candidate calls on purpose (library groups); policy "strict" allows only these.
AKG_LIBRARY_OPS = {library_ops(plan)!r}


def _akg_state(module, fqn):
    obj = module
    for part in fqn.split("."):
        obj = getattr(obj, part)
    return obj


{_fold_key_helper(plan)}class ModelNew(Model):
    def forward(self, *args):
{body}
'''


def candidate_id(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:12]


def make_candidate(plan: KernelPlan, dsl: DSL, device: str, problem_source: str, problem_name: str,
                   parent_id: str | None = None) -> Candidate:
    source = assemble(plan, dsl, device, problem_source, problem_name)
    description = f"{plan.name}: " + "; ".join(f"{g.family}[{g.schedule}]" for g in plan.groups if g.family != "library")
    return Candidate(candidate_id(source), parent_id, dsl.name, source, plan, "template", description)


REFERENCE_TEMPLATE = '''"""The unmodified reference, as a candidate: akg's fallback when nothing generated beats it."""
import torch
import torch.nn as nn

{problem_source}


class ModelNew(Model):
    pass
'''


def reference_candidate(problem_source: str, dsl_name: str) -> Candidate:
    source = REFERENCE_TEMPLATE.format(problem_source=problem_source)
    return Candidate(candidate_id(source), None, dsl_name, source, None, "reference", "unmodified reference")


# -- LLM mode --------------------------------------------------------------------------------------

def write(client, context, design=None) -> "Turn":
    """The coder role over an LLM (prompts/coder.j2): one complete candidate file in the target DSL
    from the design (none with ``--agents coder``), the DSL's guide and a template kernel."""
    from akg.agents import prompts
    answer = prompts.ask(client, "coder", context, context.parent.id, design=design)
    if isinstance(answer, prompts.Turn):
        return answer
    what = f"coder: {design.idea}" if design is not None else "coder"
    return candidate_from_reply(answer, "coder", client.model, context.dsl, context.parent.id, what)


def candidate_from_reply(exchange, role: str, model: str, dsl_name: str, parent_id: str | None,
                         description: str) -> "Turn":
    """The reply's candidate (origin ``llm:<model>``) or a failed turn saying why there is none."""
    from akg.agents import prompts
    source, reason = prompts.extract_source(exchange.text)
    if source is None:
        return prompts.Turn(role, model, prompts.prompt_hash(role), parent_id, exchange, reason=reason)
    candidate = Candidate(candidate_id(source), parent_id, dsl_name, source, None, f"llm:{model}",
                          " ".join(description.split())[:120])
    return prompts.Turn(role, model, prompts.prompt_hash(role), parent_id, exchange, candidate=candidate)
