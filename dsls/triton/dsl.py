"""The Triton DSL plugin object: schedules, rendering, checks and the prompt guide."""
from __future__ import annotations

import ast
import importlib.util
import os
from pathlib import Path

from akg.ir import ConvKernel, FusedGroup, MatmulKernel, Schedule
from akg.targets import BuildError, HardwareSpec
from akg.dsls.triton import schedules
from akg.dsls.triton.render import render_groups

# fp32 matmuls round to TF32 (about 3e-4 relative error) exactly when torch computes them in TF32
# (torch.backends.cuda.matmul.allow_tf32 / set_float32_matmul_precision, read when schedules are
# made, after the problem's module ran), fp32 convolutions when cuDNN does
# (torch.backends.cudnn.allow_tf32); AKG_TRITON_ALLOW_TF32=1 or 0 overrides torch's flags.
TF32_ENV = "AKG_TRITON_ALLOW_TF32"


def torch_allows_tf32() -> bool:
    """Whether torch runs fp32 matmuls on TF32 with its current settings (what the reference does)."""
    import torch
    matmul = torch.backends.cuda.matmul
    try:
        return bool(matmul.allow_tf32)
    except RuntimeError:
        # The legacy flag and the newer fp32_precision API were both set: cuBLAS follows the newer one.
        return getattr(matmul, "fp32_precision", "ieee") == "tf32"


def torch_allows_conv_tf32() -> bool:
    """Whether torch runs fp32 convolutions on TF32 (cuDNN's flag, on by default): then the
    reference convolution is itself TF32-rounded and a TF32 implicit GEMM is as exact as it."""
    import torch
    try:
        return bool(torch.backends.cudnn.allow_tf32)
    except RuntimeError:
        return getattr(torch.backends.cudnn.conv, "fp32_precision", "tf32") == "tf32"


def allow_tf32_setting(explicit: bool | None, torch_flag=torch_allows_tf32) -> bool:
    if explicit is not None:
        return explicit
    env = os.environ.get(TF32_ENV)
    if env in ("0", "1"):
        return env == "1"
    return torch_flag()


def warm_up(source: str) -> None:
    """Compile the kernels ``source``'s ModelNew launches on its problem's inputs, without running
    them. Raises BuildError for a kernel that does not compile; anything else is left to the worker."""
    import importlib.util
    import tempfile
    import torch
    from triton.compiler.errors import CompilationError
    from triton.runtime.jit import JITFunction

    launch = JITFunction.run

    def compile_only(self, *args, **kwargs):
        kwargs["warmup"] = True
        return launch(self, *args, **kwargs)

    with tempfile.TemporaryDirectory(prefix="akg-warmup-") as folder:
        path = Path(folder) / "candidate.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location("akg_warmup_candidate", path)
        module = importlib.util.module_from_spec(spec)
        JITFunction.run = compile_only
        try:
            spec.loader.exec_module(module)
            with torch.device("meta"), torch.no_grad():
                inputs = module.get_inputs()
                module.ModelNew(*module.get_init_inputs())(*inputs)
        except CompilationError as err:
            raise BuildError(str(err).strip().splitlines()[-1][:2000] if str(err).strip() else "compilation failed") from None
        except Exception:
            pass  # not runnable on meta tensors: the worker compiles at first launch, as without this
        finally:
            JITFunction.run = launch


def _inductor_kernel_launched(tree: ast.AST) -> bool:
    """torch.compile's own launch (an Inductor seed): ``name = async_compile.triton("name", source)``
    compiles the @triton.jit function in ``source`` through torch's runtime and binds its launcher
    to ``name``, which the code launches with ``name.run(...)``."""
    built = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Attribute) and node.value.func.attr == "triton"
                and any(isinstance(a, ast.Constant) and isinstance(a.value, str) and _jit_function(a.value)
                        for a in node.value.args)):
            built |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "run"
               and isinstance(n.func.value, ast.Name) and n.func.value.id in built for n in ast.walk(tree))


def _jit_function(text: str) -> bool:
    try:
        inner = ast.parse(text)
    except SyntaxError:
        return False
    return any(isinstance(n, ast.FunctionDef) and any("jit" in ast.unparse(d) for d in n.decorator_list)
               for n in ast.walk(inner))


class TritonDSL:
    name = "triton"
    devices = ("cuda", "cpu")
    families = ("pointwise", "reduction", "reduction_nd", "scan", "matmul_epilogue", "conv_epilogue", "pool",
                "pool_prologue")
    timing_meaningful_on = ("cuda",)
    # Set by candidates rendered for the CPU: their kernels run in Triton's interpreter.
    interpreter_flags = ("TRITON_INTERPRET",)
    # torch.compile's Inductor writes Triton kernels on NVIDIA GPUs: its code can seed a search (akg.seeds).
    inductor_devices = ("cuda",)

    def __init__(self, allow_tf32: bool | None = None):
        self._allow_tf32 = allow_tf32

    @property
    def allow_tf32(self) -> bool:
        return allow_tf32_setting(self._allow_tf32)

    @property
    def conv_allow_tf32(self) -> bool:
        return allow_tf32_setting(self._allow_tf32, torch_allows_conv_tf32)

    def schedules(self, group: FusedGroup, hardware: HardwareSpec) -> list[Schedule]:
        if group.family not in self.families:
            return []
        if isinstance(group.kernel, MatmulKernel) and hardware.backend == "cuda":
            return schedules.unique(schedules.matmul(group.kernel, hardware, self.allow_tf32))
        if isinstance(group.kernel, ConvKernel) and hardware.backend == "cuda":
            return schedules.unique(schedules.conv(group.kernel, hardware, self.conv_allow_tf32))
        return schedules.for_group(group, hardware)

    def render(self, groups: list[tuple[int, FusedGroup]], device: str) -> str:
        return render_groups(groups, device)

    def worker_env(self, device: str) -> dict[str, str]:
        # On the CPU any Triton kernel runs in the interpreter, which Triton must know when it is
        # first imported (its standard-library @jit functions, tl.sum and the like, are bound then).
        return {"TRITON_INTERPRET": "1"} if device == "cpu" else {}

    def prebuild(self, source: str, device: str) -> None:
        """On a GPU, compile every kernel a forward launches into Triton's cache (the worker shares
        it), so the worker loads them instead of compiling: the candidate runs once on meta tensors
        of the problem's shapes with each launch turned into a compile-only warmup, which gives the
        same specialisations (dtypes, sizes, divisibility) as the real inputs. A forward that
        cannot run on meta tensors (data-dependent code) is left to compile at first launch."""
        try:
            compile(source, "<candidate>", "exec")
        except SyntaxError as err:
            raise BuildError(f"line {err.lineno}: {err.msg}") from None
        if device == "cuda" and not _inductor_kernel_launched(ast.parse(source)):
            # (torch.compile's code builds its kernels through Inductor's cache when it loads,
            # and its launchers are not Triton's JITFunction: nothing to warm up on meta tensors.)
            warm_up(source)

    def lint(self, source: str) -> list[str]:
        try:
            tree = ast.parse(source)
        except SyntaxError as err:
            return [f"syntax error at line {err.lineno}: {err.msg}"]
        problems = []
        jitted = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)
                  and any("jit" in ast.unparse(d) for d in n.decorator_list)]
        if not jitted:
            problems.append("no @triton.jit kernel: the work would not run in Triton")
        if not any(isinstance(n, ast.ClassDef) and n.name == "ModelNew" for n in tree.body):
            problems.append("no class ModelNew at module level")
        return problems

    def guide(self) -> str:
        return (Path(__file__).parent / "guide.md").read_text()

    def worker_environment(self) -> dict[str, str]:
        home_cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        return {"TRITON_CACHE_DIR": os.environ.get("TRITON_CACHE_DIR", str(home_cache / "triton"))}

    def worker_preload(self, device: str) -> None:
        """Import Triton and compute its cache key (a hash of its own sources: about half a second
        that every fresh worker would spend before its first kernel); touches no device."""
        from triton.runtime.cache import triton_key
        triton_key()

    def versions(self) -> dict[str, str]:
        try:
            import triton
        except ImportError:
            return {"triton": "missing"}
        return {"triton": triton.__version__}

    def kernel_findings(self, source: str) -> list[str]:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            return []
        jitted = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)
                  and any("jit" in ast.unparse(d) or "autotune" in ast.unparse(d) for d in n.decorator_list)}
        if _inductor_kernel_launched(tree):
            return []
        if not jitted:
            return ["no @triton.jit kernel: the work would not run in Triton"]
        # A launch is kernel[grid](...): a call of a subscripted jitted function.
        launched = {n.func.value.id for n in ast.walk(tree) if isinstance(n, ast.Call)
                    and isinstance(n.func, ast.Subscript) and isinstance(n.func.value, ast.Name)}
        if not jitted & launched:
            return [f"the Triton kernel(s) {', '.join(sorted(jitted))} are defined but never launched (kernel[grid](...))"]
        return []

    def toolchain_problem(self) -> str | None:
        # Every candidate imports triton in its worker: without it each one would be rejected.
        if importlib.util.find_spec("triton") is None:
            return "triton is not installed: pip install 'akg[triton]'"
        return None
