"""The cpp DSL: plain C++ with OpenMP, compiled by g++ into a shared library loaded with ctypes.

A candidate carries its C++ as a string plus the small runtime in ``runtime.py``; it needs only
torch, the standard library and a C++ compiler.
"""
from __future__ import annotations

import ast
import functools
import os
import re
import subprocess
import shutil
from pathlib import Path

from akg.ir import FusedGroup, Schedule
from akg.targets import BuildError, HardwareSpec

from . import schedules   # runtime imports torch: loaded where used, so listing plugins stays light
from .render import render_groups

GUIDE = Path(__file__).parent / "guide.md"
_SOURCE_PATTERN = re.compile(r"^_AKG_CPP_SOURCE = r'''(.*?)'''$", re.MULTILINE | re.DOTALL)
# extern "C" functions: a declaration after extern "C" (alone or in an extern "C" { ... } block).
_EXTERN_C = re.compile(r'extern\s+"C"\s*\{?\s*(?:[A-Za-z_][\w:<>]*[\s\*&]+)+?([A-Za-z_]\w*)\s*\(')
_DEFINITION = re.compile(r'\b([A-Za-z_]\w*)\s*\([^;{}()]*\)\s*(?:const\s*)?\{')
_CPP_KEYWORDS = {"if", "for", "while", "switch", "catch", "return", "sizeof"}
_ALLOWED_IMPORTS = {"torch", "ctypes", "hashlib", "os", "subprocess", "tempfile", "platform", "math", "typing",
                    "functools", "pathlib", "sys", "__future__", "numbers", "itertools", "collections"}


class CppDSL:
    name = "cpp"
    devices = ("cpu",)
    families = ("pointwise", "reduction", "scan", "pool")
    timing_meaningful_on = ("cpu",)
    interpreter_flags = ()
    # torch.compile's Inductor writes C++ kernels on the CPU: its code can seed a search (akg.seeds).
    inductor_devices = ("cpu",)
    # Launchers take ``_akg_donate=<read index>``: a pointwise pass writes over a dead temporary
    # input (akg.agents.coder.donor_reads) when its layout allows (render.donatable_inputs).
    donates_inputs = True

    # ---- the DSL protocol ----------------------------------------------------------------------

    def schedules(self, group: FusedGroup, hardware: HardwareSpec) -> list[Schedule]:
        if group.family not in self.families:
            return []
        return schedules.schedules(group, hardware)

    def render(self, groups: list[tuple[int, FusedGroup]], device: str) -> str:
        return render_groups(groups, device)

    def prebuild(self, source: str, device: str) -> None:
        from . import runtime
        for cpp in _SOURCE_PATTERN.findall(source):
            try:
                runtime.akg_build(cpp)
            except runtime.AkgBuildError as error:
                raise BuildError(str(error)) from None

    def lint(self, source: str) -> list[str]:
        try:
            tree = ast.parse(source)
        except SyntaxError as error:
            return [f"syntax error on line {error.lineno}: {error.msg}"]
        problems = []
        if not any(isinstance(n, ast.ClassDef) and n.name == "ModelNew" for n in tree.body):
            problems.append("the source defines no class ModelNew at module level")
        for module in _imported_modules(tree):
            if module.split(".")[0] not in _ALLOWED_IMPORTS:
                problems.append(f"imports {module}; a cpp candidate may use only torch, ctypes and the stdlib")
        if "cpp_extension" in source:
            problems.append("uses torch.utils.cpp_extension, whose builds take tens of seconds; "
                            "compile plain extern \"C\" functions with g++ and load them with ctypes")
        return problems

    def guide(self) -> str:
        return GUIDE.read_text()

    def worker_environment(self) -> dict[str, str]:
        return {"AKG_CACHE_DIR": runtime_cache_dir()}

    def versions(self) -> dict[str, str]:
        return {"g++": compiler_version()}


    def kernel_findings(self, source: str) -> list[str]:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            return []
        strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        kernels = {name for text in strings for name in _EXTERN_C.findall(text)}
        # Inside an extern "C" { ... } block every function definition is exported.
        kernels |= {name for text in strings if re.search(r'extern\s+"C"\s*\{', text)
                    for name in _DEFINITION.findall(text) if name not in _CPP_KEYWORDS}
        if not kernels:
            return ['no C++ kernel: no string holds an extern "C" function for g++ to build']
        called = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        called |= {s for s in strings if s in kernels}   # getattr(lib, "name")
        if _inductor_kernel_called(tree):
            return []
        if not kernels & called:
            return [f"the C++ kernel(s) {', '.join(sorted(kernels))} are defined but never called from Python"]
        return []

    def toolchain_problem(self) -> str | None:
        # Candidates compile their kernels with this compiler in the worker.
        from . import runtime
        if shutil.which(runtime.AKG_CXX) is None:
            return f"the C++ compiler {runtime.AKG_CXX!r} is not on PATH: install g++ (or set CXX)"
        return None


def _inductor_kernel_called(tree: ast.AST) -> bool:
    """torch.compile's own launch (an Inductor seed): ``name = async_compile.cpp_pybinding(types,
    source)`` builds the extern "C" function in ``source`` through torch's runtime and binds it to
    ``name``, which the code then calls."""
    built = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Attribute) and node.value.func.attr == "cpp_pybinding"
                and any(isinstance(a, ast.Constant) and isinstance(a.value, str) and _EXTERN_C.search(a.value)
                        for a in node.value.args)):
            built |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in built for n in ast.walk(tree))


def _imported_modules(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return found


def runtime_cache_dir() -> str:
    home_cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return os.environ.get("AKG_CACHE_DIR", str(home_cache / "akg"))


@functools.lru_cache(maxsize=1)
def compiler_version() -> str:
    try:
        out = subprocess.run(["g++", "-dumpfullversion"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "missing"
    return out.strip() or "unknown"
