"""What a worker process needs to rebuild the caller's live module.

Workers are fresh interpreters started elsewhere (their own working directory, no ``__main__``
of the caller). Two things would stop them unpickling the caller's ``nn.Module``:

* its class lives in a module found only through the caller's ``sys.path`` (a ``mymod.py`` beside
  the calling script): the caller's path entries are handed over with the module;
* its class is defined in ``__main__`` (a script or a notebook), which a worker cannot import:
  the class's source is sent instead, with what it refers to (imports, constants, other
  ``__main__`` functions and classes), and the worker maps ``__main__`` to that source.

Where neither works (a ``__main__`` class whose source is not available, or that refers to a live
object that has no source) a :class:`PortableError` says which name blocks it, in one line.
"""
from __future__ import annotations

import builtins
import inspect
import os
import symtable
import sys
import textwrap
import types

from akg.errors import AkgError

MAIN = "__main__"
_LITERALS = (int, float, complex, str, bytes, bool, type(None))


class PortableError(AkgError):
    """The caller's object cannot be rebuilt in a worker."""


def caller_paths() -> list[str]:
    """The caller's import path as absolute folders ('' and '.' mean the caller's working dir)."""
    cwd = os.getcwd()
    paths = []
    for entry in sys.path:
        full = os.path.abspath(entry or cwd) if not os.path.isabs(entry or "") else entry
        if full not in paths and os.path.exists(full):
            paths.append(full)
    return paths


def main_classes(module) -> list[type]:
    """Classes of ``module`` and its submodules that are defined in ``__main__``."""
    found = []
    children = module.modules() if hasattr(module, "modules") else [module]
    for m in children:
        for cls in type(m).__mro__:
            if cls.__module__ == MAIN and cls not in found:
                found.append(cls)
    return found


def _literal(value) -> bool:
    if isinstance(value, _LITERALS):
        return True
    if isinstance(value, (tuple, list, frozenset, set)):
        return all(_literal(v) for v in value)
    if isinstance(value, dict):
        return all(_literal(k) and _literal(v) for k, v in value.items())
    return False


def _names(source: str) -> list[str]:
    """The global names a definition reads: not its parameters or locals, so a script's
    ``x = torch.randn(...)`` does not count for a ``forward(self, x)``."""
    top = symtable.symtable(source, "<definition>", "exec")
    seen = [s.get_name() for s in top.get_symbols() if s.is_referenced()]
    stack = list(top.get_children())
    while stack:
        table = stack.pop()
        stack.extend(table.get_children())
        for sym in table.get_symbols():
            if sym.is_global() and sym.is_referenced() and sym.get_name() not in seen:
                seen.append(sym.get_name())
    return seen


def main_source(classes: list[type]) -> str:
    """Python source that defines ``classes`` (and what they use from ``__main__``) in a fresh
    module. Definitions come after what they depend on."""
    main = sys.modules.get(MAIN)
    namespace = vars(main) if main is not None else {}
    imports: list[str] = []
    literals: list[str] = []
    definitions: list[str] = []
    done: set[str] = set()

    def define(name: str, obj, used_by: str) -> None:
        if name in done:
            return
        done.add(name)
        try:
            source = textwrap.dedent(inspect.getsource(obj))
        except (OSError, TypeError):
            raise PortableError(
                f"akg.optimize: {used_by} needs {name}, defined in __main__ without source akg can read; "
                f"move it into a module beside your script and import it from there") from None
        for ref in _names(source):
            if ref == name or ref in done or ref not in namespace or hasattr(builtins, ref):
                continue
            refer(ref, namespace[ref], name)
        definitions.append(source)

    def refer(name: str, value, used_by: str) -> None:
        if isinstance(value, types.ModuleType):
            done.add(name)
            imports.append(f"import {value.__name__}" if value.__name__ == name
                           else f"import {value.__name__} as {name}")
        elif (inspect.isclass(value) or inspect.isfunction(value)) and value.__module__ == MAIN:
            define(name, value, used_by)
        elif getattr(value, "__module__", None) not in (None, MAIN) and hasattr(value, "__qualname__") \
                and "." not in value.__qualname__ and "<" not in value.__qualname__:
            done.add(name)
            imports.append(f"from {value.__module__} import {value.__qualname__} as {name}")
        elif _literal(value):
            done.add(name)
            literals.append(f"{name} = {value!r}")
        else:
            raise PortableError(
                f"akg.optimize: {used_by} uses {name} ({type(value).__name__}), a live object in __main__ "
                f"that cannot be sent to a worker; move {used_by} into a module beside your script")

    for cls in classes:
        define(cls.__name__, cls, cls.__name__)
    return "\n".join(imports + literals) + "\n\n\n" + "\n\n".join(definitions)
