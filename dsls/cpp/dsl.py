"""The cpp DSL: plain C++ with OpenMP, compiled by g++ into a shared library loaded with ctypes.

A candidate carries its C++ as a string plus the small runtime in ``runtime.py``; it needs only
torch, the standard library and a C++ compiler.
"""
from __future__ import annotations

import ast
import math
import re
import traceback
from pathlib import Path

import jinja2

import akg.templates
from akg.ir import FusedGroup, PointwiseKernel, ReductionKernel, Schedule, ScanKernel
from akg.targets import BuildError, HardwareSpec, RenderError

from . import lowering, runtime, tuning

TEMPLATE_DIR = Path(akg.templates.__file__).parent / "kernels" / "cpp"
GUIDE = Path(__file__).parent / "guide.md"
_SOURCE_PATTERN = re.compile(r"^_AKG_CPP_SOURCE = r'''(.*?)'''$", re.MULTILINE | re.DOTALL)
# extern "C" functions: a declaration after extern "C" (alone or in an extern "C" { ... } block).
_EXTERN_C = re.compile(r'extern\s+"C"\s*\{?\s*(?:[A-Za-z_][\w:<>]*[\s\*&]+)+?([A-Za-z_]\w*)\s*\(')
_DEFINITION = re.compile(r'\b([A-Za-z_]\w*)\s*\([^;{}()]*\)\s*(?:const\s*)?\{')
_CPP_KEYWORDS = {"if", "for", "while", "switch", "catch", "return", "sizeof"}
_ALLOWED_IMPORTS = {"torch", "ctypes", "hashlib", "os", "subprocess", "tempfile", "math", "typing",
                    "functools", "pathlib", "sys", "__future__", "numbers", "itertools", "collections"}


class CppDSL:
    name = "cpp"
    devices = ("cpu",)
    families = ("pointwise", "reduction", "scan")
    timing_meaningful_on = ("cpu",)

    def __init__(self) -> None:
        self._env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
                                       undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                                       trim_blocks=False, autoescape=False)

    # ---- the DSL protocol ----------------------------------------------------------------------

    def schedules(self, group: FusedGroup, hardware: HardwareSpec) -> list[Schedule]:
        if group.family not in self.families:
            return []
        return tuning.schedules(group, hardware)

    def render(self, groups: list[tuple[int, FusedGroup]], device: str) -> str:
        if device != "cpu":
            raise RenderError(f"the cpp DSL runs on the cpu, not {device!r}; pick --device cpu or another DSL")
        kernels = [self._template("prelude.j2", {})]
        launchers = []
        for index, group in groups:
            schedule = tuning.default_schedule(group)
            kernels.append(self._kernel(index, group, schedule))
            launchers.append(self._launcher(index, group, schedule))
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

    def prebuild(self, source: str, device: str) -> None:
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
        if not kernels & called:
            return [f"the C++ kernel(s) {', '.join(sorted(kernels))} are defined but never called from Python"]
        return []

    # ---- rendering -----------------------------------------------------------------------------

    def _kernel(self, index: int, group: FusedGroup, schedule: Schedule) -> str:
        kernel, name = group.kernel, f"akg_g{index}"
        try:
            if isinstance(kernel, PointwiseKernel):
                return self._template("pointwise.j2", lowering.pointwise_context(name, kernel))
            if isinstance(kernel, ReductionKernel):
                context = lowering.reduction_context(name, kernel, schedule.get("variant", "row"),
                                                     schedule.get("lanes", 16), schedule.get("block", 64))
                return self._template("reduction.j2", context)
            if isinstance(kernel, ScanKernel):
                context = lowering.scan_context(name, kernel, schedule.get("variant", "row"), schedule.get("block", 64))
                return self._template("scan.j2", context)
        except RenderError as error:
            raise RenderError(f"group {index} ({group.family} {group.nodes}): {error}") from None
        except ValueError as error:  # an op or dtype the C++ renderer cannot spell
            raise RenderError(f"group {index} ({group.family} {group.nodes}): {error}") from None
        raise RenderError(f"group {index}: the cpp DSL does not render the {group.family} family; "
                          "plan it as a library call")

    def _launcher(self, index: int, group: FusedGroup, schedule: Schedule) -> str:
        kernel = group.kernel
        inputs = [{"arg": f"a{i}", "label": op.value, "dtype": op.type.dtype, "shape": tuple(op.type.shape),
                   "strides": tuple(op.type.layout())} for i, op in enumerate(kernel.operands)]
        outputs = [{"var": f"o{k}", "dtype": o.type.dtype, "shape": tuple(o.type.shape)}
                   for k, o in enumerate(kernel.outputs)]
        context = {"index": index, "args": [a["arg"] for a in inputs], "inputs": inputs, "outputs": outputs,
                   "numel": math.prod(kernel.domain), "symbol": f"akg_g{index}",
                   "pointers": [a["arg"] for a in inputs] + [o["var"] for o in outputs],
                   "threads": int(schedule.get("threads", 0)),
                   "grain": int(schedule.get("block", 0) if isinstance(kernel, PointwiseKernel)
                                else schedule.get("grain", 0))}
        return self._template("launcher.j2", context)

    def _template(self, name: str, context: dict) -> str:
        try:
            return self._env.get_template(name).render(**context)
        except jinja2.TemplateError as error:
            raise RenderError(f"template cpp/{name}{_template_line(error)}: {error}") from None


def _template_line(error: Exception) -> str:
    lineno = getattr(error, "lineno", None)
    if lineno is None:
        frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename.endswith(".j2")]
        lineno = frames[-1].lineno if frames else None
    return f" line {lineno}" if lineno else ""


def _imported_modules(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return found


def runtime_text() -> str:
    """runtime.py as embedded in candidates (its module docstring is about akg, not the candidate)."""
    text = Path(runtime.__file__).read_text()
    return text.split('"""', 2)[2].lstrip() if text.startswith('"""') else text
