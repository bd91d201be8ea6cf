"""The cuda_c DSL: CUDA C++ kernels compiled by NVRTC at run time, launched through the CUDA driver.

A candidate carries its CUDA-C as a string plus the small runtime in ``runtime.py``; it needs only
torch (whose CUDA wheels ship libnvrtc) and the NVIDIA driver. Matmuls and convolutions stay
library calls (cuBLAS/cuDNN through torch) with the fused epilogue as a generated kernel.
"""
from __future__ import annotations

import ast
import os
import re
from pathlib import Path

from akg.ir import FusedGroup, Schedule
from akg.targets import BuildError, HardwareSpec

from . import schedules   # runtime imports torch: imported where used, so listing plugins stays light
from .render import render_groups

GUIDE = Path(__file__).parent / "guide.md"
SOURCE_PATTERN = re.compile(r"^_AKG_CUDA_SOURCE = r'''(.*?)'''$", re.MULTILINE | re.DOTALL)
_ALLOWED_IMPORTS = {"torch", "ctypes", "hashlib", "os", "glob", "sys", "tempfile", "math", "typing",
                    "functools", "pathlib", "__future__", "numbers", "itertools", "collections"}


class CudaCDSL:
    name = "cuda_c"
    devices = ("cuda",)
    families = ("pointwise", "reduction", "scan")
    timing_meaningful_on = ("cuda",)
    interpreter_flags = ()

    def schedules(self, group: FusedGroup, hardware: HardwareSpec) -> list[Schedule]:
        if group.family not in self.families:
            return []
        return schedules.schedules(group, hardware)

    def render(self, groups: list[tuple[int, FusedGroup]], device: str) -> str:
        return render_groups(groups, device)

    def prebuild(self, source: str, device: str) -> None:
        """Compile every kernel source of the candidate into the cubin cache (keyed by source,
        options and architecture), so the worker only loads it."""
        import torch
        if not torch.cuda.is_available():
            return
        from . import runtime
        for text in SOURCE_PATTERN.findall(source):
            try:
                runtime.akg_build(text, runtime.akg_arch())
            except runtime.AkgCudaError as error:
                raise BuildError(str(error)) from None

    def lint(self, source: str) -> list[str]:
        try:
            tree = ast.parse(source)
        except SyntaxError as error:
            return [f"syntax error on line {error.lineno}: {error.msg}"]
        problems = []
        if not any(isinstance(n, ast.ClassDef) and n.name == "ModelNew" for n in tree.body):
            problems.append("the source defines no class ModelNew at module level")
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else []
            for module in names:
                if module.split(".")[0] not in _ALLOWED_IMPORTS:
                    problems.append(f"imports {module}; a cuda_c candidate may use only torch, ctypes and the stdlib")
        if "__global__" not in source:
            problems.append("no __global__ kernel: the work would not run in CUDA-C")
        return problems

    def guide(self) -> str:
        return GUIDE.read_text()

    def kernel_findings(self, source: str) -> list[str]:
        return kernel_findings(source, "CUDA-C")

    def toolchain_problem(self) -> str | None:
        # Candidates compile with NVRTC in the worker; torch's CUDA wheels ship it.
        from . import runtime
        try:
            runtime.akg_nvrtc()
        except runtime.AkgCudaError:
            return "libnvrtc is not installed: install torch with CUDA (or the CUDA toolkit)"
        return None

    def worker_environment(self) -> dict[str, str]:
        home_cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        return {"AKG_CACHE_DIR": os.environ.get("AKG_CACHE_DIR", str(home_cache / "akg"))}

    def versions(self) -> dict[str, str]:
        return {"nvrtc": nvrtc_version()}


_GLOBAL = re.compile(r'__global__\s+(?:void\s+)?(?:__launch_bounds__\([^)]*\)\s*)?(?:void\s+)?(\w+)\s*\(')


def kernel_findings(source: str, language: str) -> list[str]:
    """A __global__ kernel in one of the source's strings, and its name used from Python (the
    string given to a launch, or an attribute of a loaded module)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    kernels = {name for text in strings for name in _GLOBAL.findall(text)}
    if not kernels:
        return [f"no {language} kernel: no string holds a __global__ function"]
    used = {s for s in strings if s in kernels} | {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    if not kernels & used:
        return [f"the {language} kernel(s) {', '.join(sorted(kernels))} are defined but never launched from Python"]
    return []


def nvrtc_version() -> str:
    import ctypes
    from . import runtime
    try:
        lib = runtime.akg_nvrtc()
    except runtime.AkgCudaError:
        return "missing"
    major, minor = ctypes.c_int(), ctypes.c_int()
    return "unknown" if lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)) else f"{major.value}.{minor.value}"
