"""Worker-side watch over what a candidate may tamper with: the timer, torch, builtins, tracing
hooks, the reference model; plus the framework ops a forward dispatches (policy "strict").

Everything here is bound when the worker starts, before candidate code exists, so a candidate that
replaces ``time.perf_counter`` or ``torch.allclose`` changes what it sees, not what the harness
uses, and the change is reported by ``IntegritySnapshot.changes``.
"""
from __future__ import annotations

import builtins
import sys
import threading
import time
from typing import Any, Iterable

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

# Ops a forward may dispatch under "strict" without declaring them: allocation, views, metadata,
# and same-dtype copies (making an input contiguous for a kernel). Everything else is framework
# compute and must be a kernel of the DSL or listed in AKG_LIBRARY_OPS.
ALLOWED_STRICT_OPS = frozenset({
    "empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "zeros", "zeros_like",
    "new_zeros", "ones", "ones_like", "new_ones", "full", "full_like", "new_full", "zero_", "fill_",
    "scalar_tensor", "lift_fresh", "lift_fresh_copy", "arange",
    "view", "_unsafe_view", "reshape", "as_strided", "expand", "expand_as", "permute", "transpose",
    "t", "squeeze", "unsqueeze", "select", "slice", "alias", "detach", "split", "split_with_sizes",
    "chunk", "unbind", "narrow", "flatten", "unflatten", "view_as", "movedim", "contiguous",
    "clone", "copy_", "_to_copy", "resize_", "set_", "_reshape_alias",
    "sym_size", "sym_stride", "sym_numel", "sym_storage_offset", "is_contiguous", "_local_scalar_dense",
    "is_same_size", "is_nonzero", "dim", "size", "stride", "numel",
})


def op_base_name(op: Any) -> str:
    """``aten::add.Tensor`` -> ``add``."""
    name = getattr(op, "__name__", str(op))           # "add.Tensor"
    return name.split(".")[0]


def op_full_name(op: Any) -> str:
    """The overload as AKG_LIBRARY_OPS spells it: ``aten.add.Tensor``."""
    packet = getattr(op, "_schema", None)
    ns = packet.name.split("::")[0] if packet is not None else "aten"
    return f"{ns}.{getattr(op, '__name__', str(op))}"


class OpRecorder(TorchDispatchMode):
    """Records every framework op dispatched inside its scope, except the ops a declared library
    op dispatches itself (``aten.linear`` runs ``aten.addmm``): those are attributed to it."""

    def __init__(self, declared: Iterable[str] = ()) -> None:
        super().__init__()
        self.ops: list[str] = []
        self.declared = frozenset(declared)
        self.inside_declared = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not self.inside_declared:
            self.ops.append(op_full_name(func))
        return func(*args, **(kwargs or {}))


class DeclaredOpScope(TorchFunctionMode):
    """Sees calls of declared ops before they decompose (composite ops never reach the dispatch
    mode by their own name) and tells the recorder that what follows belongs to them."""

    def __init__(self, recorder: OpRecorder) -> None:
        super().__init__()
        self.recorder = recorder

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if isinstance(func, torch._ops.OpOverload) and op_full_name(func) in self.recorder.declared:
            self.recorder.ops.append(op_full_name(func))
            self.recorder.inside_declared += 1
            try:
                return func(*args, **(kwargs or {}))
            finally:
                self.recorder.inside_declared -= 1
        return func(*args, **(kwargs or {}))


def policy_violations(ops: Iterable[str], declared: Iterable[str], dtype_changes_allowed: bool = False) -> list[str]:
    declared_set = set(declared)
    bad = []
    for full in ops:
        base = full.split(".")[1] if full.count(".") >= 1 else full
        if full in declared_set or base in ALLOWED_STRICT_OPS:
            continue
        if full not in bad:
            bad.append(full)
    return bad


# ---- integrity --------------------------------------------------------------------------------

def _watched_namespaces(extra: dict[str, Any]) -> dict[str, Any]:
    import torch.nn.functional as F
    from akg import plugins
    spaces = {"time": time, "builtins": builtins, "torch": torch, "torch.nn.functional": F,
              "torch.Tensor": torch.Tensor, "threading": threading, "torch.nn.Module": torch.nn.Module}
    for backend in plugins.backends().values():  # every device's timers and synchronisation
        spaces.update(backend.watched_namespaces())
    spaces.update(extra)
    return spaces


def _members(obj: Any) -> dict[str, int]:
    try:
        items = vars(obj).items()
    except TypeError:
        return {}
    return {k: id(v) for k, v in list(items)}


class IntegritySnapshot:
    """Identities of the functions and classes the harness relies on, and the tracing hooks."""

    def __init__(self, extra: dict[str, Any] | None = None) -> None:
        self._spaces = _watched_namespaces(extra or {})
        self._ids = {name: _members(obj) for name, obj in self._spaces.items()}

    def changes(self) -> list[str]:
        found = []
        for name, obj in self._spaces.items():
            now = _members(obj)
            before = self._ids[name]
            # Only what existed before: imports legitimately add submodules and lazy attributes.
            for key, ident in before.items():
                if now.get(key) != ident:
                    found.append(f"{name}.{key}")
        if sys.gettrace() is not None or sys.getprofile() is not None:
            found.append("sys.settrace/setprofile")
        if getattr(threading, "_trace_hook", None) or getattr(threading, "_profile_hook", None):
            found.append("threading.settrace/setprofile")
        return sorted(found)


# ---- threads left running ----------------------------------------------------------------------

def python_threads() -> set[int]:
    return {t.ident for t in threading.enumerate() if t.is_alive()}
