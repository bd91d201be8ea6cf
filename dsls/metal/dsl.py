"""The metal DSL: Metal Shading Language kernels for Apple GPUs, compiled and dispatched by
``torch.mps.compile_shader``. Not yet run on an Apple GPU: its tests compile the rendered kernels
for the CPU through a small shim header and compare values with torch."""
from __future__ import annotations

import ast
from pathlib import Path

from akg.ir import FusedGroup, Schedule
from akg.targets import BuildError, HardwareSpec

from . import schedules
from .render import render_groups

GUIDE = Path(__file__).parent / "guide.md"


class MetalDSL:
    name = "metal"
    devices = ("mps",)
    families = ("pointwise", "reduction", "scan")
    timing_meaningful_on = ("mps",)
    interpreter_flags = ()

    def schedules(self, group: FusedGroup, hardware: HardwareSpec) -> list[Schedule]:
        return schedules.schedules(group, hardware) if group.family in self.families else []

    def render(self, groups: list[tuple[int, FusedGroup]], device: str) -> str:
        return render_groups(groups, device)

    def prebuild(self, source: str, device: str) -> None:
        # torch.mps.compile_shader compiles in the worker (milliseconds); only syntax is checked here.
        try:
            compile(source, "<candidate>", "exec")
        except SyntaxError as err:
            raise BuildError(f"line {err.lineno}: {err.msg}") from None

    def lint(self, source: str) -> list[str]:
        try:
            tree = ast.parse(source)
        except SyntaxError as err:
            return [f"syntax error at line {err.lineno}: {err.msg}"]
        problems = []
        if not any(isinstance(n, ast.ClassDef) and n.name == "ModelNew" for n in tree.body):
            problems.append("no class ModelNew at module level")
        if "kernel void" not in source:
            problems.append("no Metal `kernel void` function: the work would not run in Metal")
        return problems

    def guide(self) -> str:
        return GUIDE.read_text()

    def toolchain_problem(self) -> str | None:
        import torch
        if not hasattr(getattr(torch, "mps", None), "compile_shader"):
            return "torch.mps.compile_shader is missing: install torch >= 2.6 on macOS"
        return None

    def worker_environment(self) -> dict[str, str]:
        return {}   # compiled in memory by torch.mps.compile_shader: no cache to write

    def versions(self) -> dict[str, str]:
        import platform
        return {"macos": platform.mac_ver()[0] or "none"}
