"""The tilelang DSL: TileLang programs (``T.prim_func`` with T.Kernel, T.Parallel, T.reduce_*,
T.copy, T.gemm, T.Pipelined) compiled by tilelang for NVIDIA GPUs, or for the CPU through its C
target (serial loops, for correctness). A candidate carries its programs as Python functions and
the small runtime in ``runtime.py``; it needs torch and tilelang.
"""
from __future__ import annotations

import ast
import importlib.util
import os
import re
from pathlib import Path

from akg.ir import FusedGroup, Schedule
from akg.targets import BuildError, HardwareSpec

from . import schedules
from .render import render_groups

GUIDE = Path(__file__).parent / "guide.md"
# fp32 matmuls run T.gemm on TF32 tensor cores on the GPU: offered only when the user allows it.
TF32_ENV = "AKG_TILELANG_ALLOW_TF32"
_PROGRAM = re.compile(r"@T\.prim_func|@tilelang\.jit")


def build_all(source: str, target: str) -> None:
    """Compile every group's program of ``source`` into tilelang's disk cache, all at once in
    threads (nvcc runs as subprocesses). Raises BuildError with the compiler's message."""
    import tempfile
    import tilelang

    with tempfile.TemporaryDirectory(prefix="akg-tilelang-") as folder:
        try:
            programs = load_programs(source, Path(folder))
        except Exception as error:   # a program that does not even define is the candidate's fault
            raise BuildError(f"{type(error).__name__}: {str(error).strip()[-2000:]}") from None
        try:
            tilelang.par_compile([build() for build in programs.values()], target=target)
        except Exception as error:
            message = str(error).strip().splitlines()
            raise BuildError(message[-1][:2000] if message else type(error).__name__) from None


def load_programs(source: str, folder: Path) -> dict:
    """The ``_akg_tl<i>_program`` builders of a rendered source, imported from a file in ``folder``."""
    import importlib.util as util
    path = folder / "candidate.py"
    path.write_text(source)
    spec = util.spec_from_file_location(f"akg_tilelang_{abs(hash(source))}", path)
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {n: getattr(module, n) for n in sorted(vars(module)) if n.startswith("_akg_tl") and n.endswith("_program")}


def cuda_sources(source: str, arch: str = "sm_90") -> dict[str, str]:
    """Lower every program of a source rendered for "cuda" to CUDA C through TileLang's own
    pipeline (layout inference, pipelining, T.gemm's MMA choice), without a GPU or nvcc:
    {program name: CUDA C}. Raises BuildError naming the program that fails."""
    import tempfile
    import tvm
    from tilelang.engine.lower import lower
    from tvm.target import Target

    target = Target({"kind": "cuda", "arch": arch})
    out = {}
    with tempfile.TemporaryDirectory(prefix="akg-tilelang-") as folder:
        for name, program in load_programs(source, Path(folder)).items():
            try:
                with tvm.transform.PassContext(opt_level=3), target:
                    out[name] = lower(program(), target=target).kernel_source
            except Exception as error:
                message = str(error).strip().splitlines()
                raise BuildError(f"{name}: {message[-1][:2000] if message else type(error).__name__}") from None
    return out


class TileLangDSL:
    name = "tilelang"
    devices = ("cuda", "cpu")
    families = ("pointwise", "reduction", "matmul_epilogue")
    timing_meaningful_on = ("cuda",)
    interpreter_flags = ()

    def __init__(self, allow_tf32: bool | None = None):
        self.allow_tf32 = os.environ.get(TF32_ENV) == "1" if allow_tf32 is None else allow_tf32

    def schedules(self, group: FusedGroup, hardware: HardwareSpec) -> list[Schedule]:
        if group.family not in self.families:
            return []
        return schedules.schedules(group, hardware, self.allow_tf32)

    def render(self, groups: list[tuple[int, FusedGroup]], device: str) -> str:
        return render_groups(groups, device)

    def prebuild(self, source: str, device: str) -> None:
        """Compile the candidate's rendered programs into tilelang's disk cache, so the worker
        only loads them (GPU only: the C target builds in well under a second)."""
        try:
            compile(source, "<candidate>", "exec")
        except SyntaxError as err:
            raise BuildError(f"line {err.lineno}: {err.msg}") from None
        if device == "cuda" and importlib.util.find_spec("tilelang") is not None:
            import torch
            if torch.cuda.is_available() and "_akg_tl" in source:
                build_all(source, "cuda")

    def lint(self, source: str) -> list[str]:
        try:
            tree = ast.parse(source)
        except SyntaxError as err:
            return [f"syntax error at line {err.lineno}: {err.msg}"]
        problems = []
        if not _PROGRAM.search(source):
            problems.append("no @T.prim_func program: the work would not run in TileLang")
        if not any(isinstance(n, ast.ClassDef) and n.name == "ModelNew" for n in tree.body):
            problems.append("no class ModelNew at module level")
        return problems

    def guide(self) -> str:
        return GUIDE.read_text()

    def kernel_findings(self, source: str) -> list[str]:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            return []
        programs = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)
                    and any("prim_func" in ast.unparse(d) or "tilelang.jit" in ast.unparse(d) for d in n.decorator_list)}
        if not programs:
            return ["no TileLang program: no function is decorated with @T.prim_func or @tilelang.jit"]
        if "tilelang.compile" not in source and "tilelang.jit" not in source and "akg_kernel(" not in source:
            return [f"the TileLang program(s) {', '.join(sorted(programs))} are defined but never compiled "
                    "(tilelang.compile or @tilelang.jit)"]
        return []

    def toolchain_problem(self) -> str | None:
        if importlib.util.find_spec("tilelang") is None:
            return "tilelang is not installed: pip install 'akg[tilelang]'"
        return None

    def worker_environment(self) -> dict[str, str]:
        home_cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        return {"TILELANG_CACHE_DIR": os.environ.get("TILELANG_CACHE_DIR", str(home_cache / "tilelang"))}

    def versions(self) -> dict[str, str]:
        try:
            from importlib.metadata import version
            return {"tilelang": version("tilelang")}
        except Exception:
            return {"tilelang": "missing"}
