"""The static first screen of an untrusted candidate: what reading the file shows, before running it.

Findings become checks in the verdict next to the harness's own; they are not the only defence
(the harness runs the candidate anyway and checks what it does). Three questions:
- ``static_kernel``: is a kernel of the target DSL defined and launched? The DSL plugin answers
  (``kernel_findings``), because only it knows what a kernel of its language looks like;
- ``static_framework_ops``: under policy strict, does any function call framework compute
  (``torch.exp``, ``F.softmax``, ``torch.ops.aten.mm``) that ``AKG_LIBRARY_OPS`` does not declare?
- ``static_tricks``: does it reach for interpreter internals (frames, ``inspect``, ``gc``,
  ``globals()``) — the usual way to find the reference's results or the harness's state?
"""
from __future__ import annotations

import ast
import functools

from akg.harness.guard import ALLOWED_STRICT_OPS
from akg.ir import Check

# torch attributes that compute nothing: types, devices, modes, allocation from data.
_TORCH_NON_COMPUTE = frozenset({
    "device", "dtype", "Size", "Tensor", "no_grad", "inference_mode", "enable_grad", "set_grad_enabled",
    "is_tensor", "is_floating_point", "tensor", "as_tensor", "from_numpy", "get_default_dtype", "manual_seed",
    "float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool", "long",
    "float", "half", "double", "int", "finfo", "iinfo", "empty_like", "strided", "contiguous_format",
    "channels_last", "preserve_format", "get_num_threads", "set_num_threads", "is_grad_enabled",
})
# torch sub-namespaces that are about devices and tooling, not compute (plus each backend's own
# device namespace, asked of the backends: see _tooling).
_TORCH_TOOLING = frozenset({"backends", "version", "utils", "library", "_C", "testing", "cpu"})


@functools.lru_cache(maxsize=1)
def _tooling() -> frozenset[str]:
    from akg import plugins
    devices = {name.split(".")[1] for b in plugins.backends().values() for name in b.watched_namespaces()
               if name.startswith("torch.") and name.count(".") == 1}
    return _TORCH_TOOLING | devices
_TRICK_ATTRS = frozenset({"_getframe", "f_back", "f_globals", "f_locals", "f_code", "f_builtins", "gi_frame",
                          "tb_frame", "__globals__", "__subclasses__", "__closure__", "__code__",
                          "get_referrers", "get_referents", "get_objects", "pythonapi", "_current_frames",
                          "settrace", "setprofile", "currentframe"})
_TRICK_MODULES = frozenset({"inspect", "gc", "builtins", "traceback", "ctypes.pythonapi"})
_TRICK_CALLS = frozenset({"globals", "__import__", "eval", "exec", "breakpoint"})
_HARNESS_SIDE = ("Model", "get_inputs", "get_init_inputs")   # the problem's own code, embedded verbatim


def findings(source: str, dsl, policy: str) -> tuple[Check, ...]:
    """The static checks for ``source`` in ``dsl`` under ``policy``; empty when it does not parse
    (the build stage reports syntax errors with their line)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return ()
    checks = []
    kernel_findings = getattr(dsl, "kernel_findings", None)
    if kernel_findings is not None:
        problems = list(kernel_findings(source))
        checks.append(Check("static_kernel", not problems, "; ".join(problems)[:500]))
    if policy == "strict":
        ops = framework_calls(tree)
        checks.append(Check("static_framework_ops", not ops,
                            f"forward code calls framework compute {', '.join(ops[:6])} that AKG_LIBRARY_OPS "
                            "does not declare; under policy strict the work must run in the DSL's kernels" if ops else ""))
    tricks = interpreter_tricks(tree)
    checks.append(Check("static_tricks", not tricks,
                        f"reaches for interpreter internals: {', '.join(tricks[:6])}" if tricks else ""))
    return tuple(checks)


def _candidate_functions(tree: ast.Module) -> list[ast.AST]:
    """Every function of the candidate's own code (the embedded problem excluded)."""
    found = []
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in _HARNESS_SIDE:
            continue
        found += [n for n in ast.walk(node) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))]
    return found


def _aliases(tree: ast.Module) -> dict[str, str]:
    """Local names bound to torch modules: ``F`` -> ``torch.nn.functional``."""
    names = {"torch": "torch"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("torch"):
                    names[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("torch") and node.level == 0:
            for a in node.names:
                names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def _dotted(node: ast.AST) -> list[str] | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return parts[::-1]


def _declared(tree: ast.Module) -> set[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "AKG_LIBRARY_OPS" for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return set()
            return {str(v).split(".")[1] if str(v).count(".") >= 1 else str(v) for v in value}
    return set()


def framework_calls(tree: ast.Module) -> list[str]:
    """Calls of torch compute functions inside the candidate's functions, e.g. ``torch.exp``."""
    aliases, declared = _aliases(tree), _declared(tree)
    found: list[str] = []
    for fn in _candidate_functions(tree):
        for node in ast.walk(fn):
            if not isinstance(node, ast.Call):
                continue
            parts = _dotted(node.func)
            if not parts or parts[0] not in aliases:
                continue
            full = aliases[parts[0]].split(".") + parts[1:]
            if full[0] != "torch" or len(full) < 2:
                continue
            name = full[-1]
            if full[1] in _tooling() or name in _TORCH_NON_COMPUTE or name in ALLOWED_STRICT_OPS:
                continue
            if full[1] == "ops" and len(full) >= 4:
                name = full[3]
            if name in declared or name.rstrip("_") in declared:
                continue
            if full[1] == "nn" and (len(full) < 3 or full[2] != "functional"):
                continue  # torch.nn.Module, torch.nn.Parameter: building blocks, not calls of compute
            label = ".".join(full)
            if label not in found:
                found.append(label)
    return found


def interpreter_tricks(tree: ast.Module) -> list[str]:
    found: list[str] = []

    def note(what: str) -> None:
        if what not in found:
            found.append(what)

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in _TRICK_ATTRS:
            note(f".{node.attr}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _TRICK_CALLS:
            note(f"{node.func.id}()")
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name in _TRICK_MODULES:
                    note(f"import {a.name}")
        elif isinstance(node, ast.ImportFrom) and node.module in _TRICK_MODULES:
            note(f"from {node.module} import")
    return found
