"""Seeds: candidates that exist before the search proposes any — torch.compile's own code.

``--seed inductor`` compiles the problem's ``Model`` with ``torch.compile`` at the problem's shapes
and turns the module Inductor wrote into a self-contained candidate: the problem's source (for
``Model`` and its parameters), Inductor's output code as module-level code, and a ``ModelNew``
whose ``forward`` hands the model's parameters and the inputs to Inductor's ``call`` in the order
its graph lifted them. The search judges it with the same harness as every candidate, so it
starts where Inductor ends: a generated candidate must beat it to be the result.

Which DSL Inductor writes on a device is the DSL plugin's knowledge: a DSL lists the devices
where Inductor's kernels are written in its language (``inductor_devices``); elsewhere there is
no seed. The capture runs in a subprocess (``python -m akg.seeds``): Inductor's compile state
and its time stay out of the conductor, and a compile that hangs ends with the timeout.

What the seed keeps from Inductor's module, and why it passes the policy:
- the kernels are built and launched by torch's own runtime helpers (``AsyncCompile``, the
  kernel launchers): the same code torch.compile runs, not a call back into torch.compile;
- ``async_compile.wait(globals())`` becomes a wait on a dict of the kernels (``globals()`` is
  one of the interpreter tricks the static screen refuses);
- framework ops Inductor calls itself (its extern kernels such as ``addmm``, and fallbacks) are
  declared in ``AKG_LIBRARY_OPS``, as any candidate's library calls are; the list is what the
  harness's own op recorder saw while the seed was checked here;
- the benchmark harness at the end of Inductor's module (``get_args``, ``__main__``) is dropped.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from akg.processes import kill_group

ORIGIN = "inductor"
KNOWN = (ORIGIN,)
CAPTURE_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class ArgRef:
    """One argument of Inductor's ``call``: forward input number ``index``, or the model's
    parameter, buffer or tensor attribute at ``path`` (``lin.weight``)."""
    kind: str            # "input" | "state"
    index: int = -1
    path: str = ""

    def expression(self) -> str:
        return f"args[{self.index}]" if self.kind == "input" else f"_akg_state(self, {self.path!r})"


@dataclass(frozen=True)
class Captured:
    code: str                      # Inductor's output module, as it wrote it
    args: tuple[ArgRef, ...]       # what each of call()'s arguments is
    returns: str                   # "tensor" | "tuple" | "list": the forward's own result shape
    outputs: int


@dataclass(frozen=True)
class Seed:
    source: str | None             # the candidate's source; None when there is no seed
    reason: str = ""               # why not, in one line


class CaptureError(Exception):
    """Inductor's code could not become a seed; the message is one line."""


# ---- capture (runs in the subprocess) ------------------------------------------------------------

def capture(problem, device: str) -> Captured:
    """Compile ``problem``'s model on ``device`` with Inductor and capture the one module it writes."""
    import torch
    from torch._inductor.compile_fx import compile_fx

    model = problem.build_model(seed=0).to(device)
    inputs = [x.to(device) if isinstance(x, torch.Tensor) else x for x in problem.example_inputs(seed=0)]
    graphs: list[tuple[Any, list]] = []

    def backend(gm, example_inputs):
        graphs.append((gm, list(example_inputs)))
        return compile_fx(gm, example_inputs)

    # Inductor's caches on (FX graph and AOTAutograd): the compile lands in the cache the workers
    # share (the Seeder passes its folder), so torch.compile's baseline of the same graph is a cache
    # hit instead of a second cold compile, whichever of the two comes first; a hit here still
    # hands over the module (Inductor reports a cached graph's code). Python wrapper, not C++.
    out, codes = _compiled_code(_compiled_model(model, backend), inputs, caches=True)
    if not codes and graphs:   # a torch whose cache hit reports no code: compile once more, uncached
        graphs.clear()
        out, codes = _compiled_code(_compiled_model(model, backend), inputs, caches=False)
    if len(graphs) != 1 or len(codes) != 1:
        raise CaptureError(f"torch.compile wrote {len(codes)} modules for {len(graphs)} graphs; a seed needs exactly one")
    gm, example = graphs[0]
    args = _map_args(model, inputs, example)
    returns, outputs = _result_shape(out)
    return Captured(codes[0], args, returns, outputs)


def _compiled_model(model, backend):
    import torch
    return torch.compile(model, backend=backend, dynamic=False, fullgraph=True)


def _compiled_code(compiled, inputs: list, caches: bool) -> tuple[Any, list[str]]:
    """Run ``compiled`` once; its output and the modules Inductor wrote (or loaded from its cache)."""
    import torch
    from torch._inductor import config as inductor_config
    from torch._inductor.utils import run_and_get_code

    patches = {"fx_graph_cache": caches, "freezing": False, "cpp_wrapper": False}
    dynamo_patches = {k: v for k, v in {"specialize_float": True}.items() if hasattr(torch._dynamo.config, k)}
    functorch_config = torch._functorch.config
    aot_patches = {k: caches for k in ("enable_autograd_cache",) if hasattr(functorch_config, k)}
    try:
        with torch.no_grad(), inductor_config.patch(patches), torch._dynamo.config.patch(dynamo_patches), \
                functorch_config.patch(aot_patches):
            return run_and_get_code(compiled, *inputs)
    except Exception as e:  # a graph break (fullgraph) or a compile failure of Inductor's own
        raise CaptureError(f"torch.compile could not compile the model as one graph: {_line(e)}") from None
    finally:
        torch._dynamo.reset()


def _line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:300] if text else ''}"


def _map_args(model, inputs: list, example: list) -> tuple[ArgRef, ...]:
    """Each graph input as a forward input or a piece of the model's state, by identity: dynamo
    lifts parameters and buffers to graph inputs and passes the very objects."""
    import torch
    state: dict[int, str] = {}
    for name, t in list(model.named_parameters(remove_duplicate=False)) + list(model.named_buffers(remove_duplicate=False)):
        state.setdefault(id(t), name)
    for prefix, module in model.named_modules(remove_duplicate=False):
        for attr, value in vars(module).items():
            if isinstance(value, torch.Tensor) and not attr.startswith("_"):
                state.setdefault(id(value), f"{prefix}.{attr}" if prefix else attr)
    by_input = {id(x): i for i, x in enumerate(inputs) if isinstance(x, torch.Tensor)}
    refs = []
    for position, value in enumerate(example):
        if id(value) in by_input:
            refs.append(ArgRef("input", index=by_input[id(value)]))
        elif id(value) in state:
            refs.append(ArgRef("state", path=state[id(value)]))
        else:
            raise CaptureError(f"graph input {position} ({type(value).__name__}) is neither a forward input nor "
                               "a parameter, buffer or tensor attribute of the model")
    return tuple(refs)


def _result_shape(out) -> tuple[str, int]:
    import torch
    if isinstance(out, torch.Tensor):
        return "tensor", 1
    if isinstance(out, (tuple, list)) and out and all(isinstance(o, torch.Tensor) for o in out):
        return type(out).__name__, len(out)
    raise CaptureError(f"the model returns {type(out).__name__}; a seed handles a tensor or a tuple/list of tensors")


# ---- the candidate's text --------------------------------------------------------------------------

_DROPPED_FUNCTIONS = {"get_args", "benchmark_compiled_module"}
# Names the candidate file binds around Inductor's module (the header imports torch.nn as nn).
_CANDIDATE_NAMES = {"ModelNew", "AKG_LIBRARY_OPS", "_akg_state", "_akg_kernels", "nn"}


def standalone_code(code: str, problem_source: str) -> tuple[str, dict[str, str]]:
    """Inductor's module made fit for a candidate file: the names the problem's module (or the
    candidate's own code) already binds renamed, unless both import the same thing; the wait on
    ``globals()`` replaced; the benchmark helpers dropped. Returns the text and the renames."""
    tree, problem = ast.parse(code), ast.parse(problem_source)
    taken = _bound_names(problem) | _CANDIDATE_NAMES
    ours, theirs = _imports(tree), _imports(problem)
    renames = {name: f"_akg_ind_{name}" for name in _bound_names(tree)
               if name in taken and not (name in theirs and ours.get(name) == theirs[name])}
    lines = code.splitlines()
    kernels = [t.id for node in tree.body if isinstance(node, ast.Assign) and _is_async_compile(node.value)
               for t in node.targets if isinstance(t, ast.Name)]
    edits: list[tuple[int, int, list[str]]] = []   # (first line, last line, replacement), 1-based
    for node in tree.body:
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            edits.append((node.lineno, node.end_lineno, []))
        elif isinstance(node, ast.FunctionDef) and node.name in _DROPPED_FUNCTIONS:
            edits.append((node.lineno, node.end_lineno, []))
        elif isinstance(node, ast.Expr) and _is_wait_on_globals(node.value):
            waiter = ast.unparse(node.value.func.value)
            table = "{" + ", ".join(f"{k!r}: {k}" for k in kernels) + "}"
            edits.append((node.lineno, node.end_lineno, [
                "# Kernels compiled in a pool of threads are futures until waited for (Inductor waits on the module globals).",
                f"_akg_kernels = {table}",
                f"{waiter}.wait(_akg_kernels)",
                *[f"{k} = _akg_kernels[{k!r}]" for k in kernels]]))
    for first, last, replacement in sorted(edits, reverse=True):
        lines[first - 1:last] = replacement
    text = "\n".join(lines).rstrip() + "\n"
    if not any(_is_wait_on_globals(n.value) for n in tree.body if isinstance(n, ast.Expr)) and kernels:
        raise CaptureError("Inductor's module has kernels but no async_compile.wait(globals()) to replace")
    return _rename(text, renames), renames


def _is_async_compile(value: ast.AST) -> bool:
    return (isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute)
            and isinstance(value.func.value, ast.Name) and value.func.value.id == "async_compile")


def _is_wait_on_globals(value: ast.AST) -> bool:
    return (isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr == "wait"
            and len(value.args) == 1 and isinstance(value.args[0], ast.Call)
            and isinstance(value.args[0].func, ast.Name) and value.args[0].func.id == "globals")


def _bound_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {a.asname or a.name.split(".")[0] for a in node.names}
    return names


def _imports(tree: ast.Module) -> dict[str, str]:
    """Module-level names bound by imports: ``F`` -> ``torch.nn.functional``."""
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Import):
            for a in node.names:
                found[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                found[a.asname or a.name] = f"{node.module}.{a.name}"
    return found


def _rename(text: str, renames: dict[str, str]) -> str:
    """Rename the module-level bindings in ``renames`` wherever they are meant: a name read or
    written at module level, or read in a function that does not bind it itself, a module-level
    def or class, an import's alias. Attributes, keyword arguments, a function's own locals and
    the text inside strings (kernel sources) stay as written."""
    if not renames:
        return text
    tree = ast.parse(text)
    lines = text.splitlines(keepends=True)
    spans: list[tuple[int, int, int, str]] = []        # (line, start col, end col, new text)

    def visit(node: ast.AST, local: frozenset[str], closure: frozenset[str]) -> None:
        """``local``: names this scope binds itself; ``closure``: those of enclosing functions."""
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                for outer in getattr(child, "decorator_list", []) + child.args.defaults + \
                        [d for d in child.args.kw_defaults if d is not None]:
                    visit(ast.Expr(outer), local, closure)
                inner = closure | _locals(child)
                body = child.body if isinstance(child.body, list) else [ast.Expr(child.body)]
                visit(ast.Module(body, []), inner, inner)
            elif isinstance(child, ast.ClassDef):
                visit(child, frozenset(_targets(child.body)), closure)   # methods do not see class names
            elif isinstance(child, ast.Name) and child.id in renames and child.id not in local:
                spans.append((child.lineno, child.col_offset, child.end_col_offset, renames[child.id]))
            else:
                visit(child, local, closure)

    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and stmt.name in renames:
            line = lines[stmt.lineno - 1]
            col = line.index(stmt.name, stmt.col_offset)
            spans.append((stmt.lineno, col, col + len(stmt.name), renames[stmt.name]))
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            for a in stmt.names:
                bound = a.asname or a.name.split(".")[0]
                if bound in renames:
                    module = a.name if a.asname or isinstance(stmt, ast.ImportFrom) else a.name.split(".")[0]
                    spans.append((a.lineno, a.col_offset, a.end_col_offset, f"{module} as {renames[bound]}"))
        else:
            visit(ast.Module([stmt], []), frozenset(), frozenset())
    for row, start, end, new in sorted(spans, reverse=True):   # last first: earlier columns stay valid
        line = lines[row - 1]
        lines[row - 1] = line[:start] + new + line[end:]
    return "".join(lines)


def _targets(body: list[ast.stmt]) -> set[str]:
    """Names a block binds itself (not in nested functions)."""
    names: set[str] = set()
    for stmt in body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(stmt.name)
            continue
        for node in ast.walk(stmt):
            if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
                names.add(node.id)
    return names


def _locals(fn: ast.AST) -> frozenset[str]:
    a = fn.args
    params = {p.arg for p in a.posonlyargs + a.args + a.kwonlyargs} | {p.arg for p in (a.vararg, a.kwarg) if p}
    body = fn.body if isinstance(fn.body, list) else []
    declared = {n for stmt in body for node in ast.walk(stmt) if isinstance(node, (ast.Global, ast.Nonlocal))
                for n in node.names}
    return frozenset((params | _targets(body)) - declared)


def assemble(captured: Captured, problem_source: str, problem_name: str, dsl_name: str, device: str,
             library_ops: tuple[str, ...] = ()) -> str:
    """The candidate file: problem source, Inductor's module, ModelNew calling it."""
    import akg
    code, renames = standalone_code(captured.code, problem_source)
    call = renames.get("call", "call")
    arguments = ", ".join(a.expression() for a in captured.args)
    if captured.returns == "tensor":
        result = "out[0]"
    else:
        result = f"{captured.returns}(out[:{captured.outputs}])"
    return f'''"""Generated by akg {akg.__version__} for problem {problem_name}: torch.compile's own code as a seed.
dsl={dsl_name} device={device} origin={ORIGIN}
Inductor's output module for the problem's shapes, kernels inline; torch's runtime builds and
launches them. Needs only torch and the DSL's toolchain; it never calls torch.compile."""
import torch
import torch.nn as nn

# ---- problem source: defines Model, whose parameters ModelNew inherits ----
{problem_source}

# ---- torch.compile (Inductor) output code ----
{code}

# Framework ops Inductor's code calls itself (extern kernels, fallbacks); policy "strict" allows only these.
AKG_LIBRARY_OPS = {tuple(library_ops)!r}


def _akg_state(module, path):
    obj = module
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


class ModelNew(Model):
    def forward(self, *args):
        # call() takes the graph's inputs in the order dynamo lifted them (parameters included).
        with torch.no_grad():
            out = {call}([{arguments}])
        return {result}
'''


# ---- checking the seed here (the harness judges it again) -----------------------------------------

def check(source: str, problem, device: str) -> tuple[str, ...]:
    """Run the seed once against the eager model; returns the framework ops it needs declared.
    Raises CaptureError when it does not load or does not match."""
    import importlib.util
    import torch
    from akg.harness.guard import OpRecorder, policy_violations
    from akg.problem import flatten_outputs

    with tempfile.TemporaryDirectory(prefix="akg-seed-") as folder:
        path = Path(folder) / "seed_candidate.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location("akg_seed_candidate", path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
            reference = problem.build_model(seed=0).to(device)
            candidate = module.ModelNew(*problem.get_init_inputs()).to(device)
            candidate.load_state_dict(reference.state_dict(), strict=False)
            inputs = [x.to(device) if isinstance(x, torch.Tensor) else x for x in problem.example_inputs(seed=1)]
            with torch.no_grad():
                expected = flatten_outputs(reference(*[_clone(x) for x in inputs]))
                recorder = OpRecorder()
                with recorder:
                    got = module.ModelNew.forward(candidate, *[_clone(x) for x in inputs])
                got = flatten_outputs(got)
        except CaptureError:
            raise
        except Exception as e:
            raise CaptureError(f"the seed does not run: {_line(e)}") from None
    if len(got) != len(expected):
        raise CaptureError(f"the seed returns {len(got)} outputs, the model {len(expected)}")
    for i, (g, e) in enumerate(zip(got, expected)):
        if g.shape != e.shape or g.dtype != e.dtype:
            raise CaptureError(f"output {i}: the seed gives {tuple(g.shape)} {g.dtype}, the model {tuple(e.shape)} {e.dtype}")
        scale = float(e.abs().max()) if e.numel() and e.is_floating_point() else 1.0
        if not torch.allclose(g.double(), e.double(), rtol=1e-3, atol=1e-3 * max(1.0, scale), equal_nan=True):
            raise CaptureError(f"output {i} differs from the model's (largest difference "
                               f"{float((g.double() - e.double()).abs().max()):.3g})")
    return tuple(sorted(policy_violations(recorder.ops, ())))


def _clone(x):
    import torch
    return x.clone() if isinstance(x, torch.Tensor) else x


def build(problem, device: str, dsl_name: str) -> str:
    """Capture, assemble, check, and assemble again with the ops the check saw declared."""
    captured = capture(problem, device)
    draft = assemble(captured, problem.source, problem.name, dsl_name, device)
    ops = check(draft, problem, device)
    return assemble(captured, problem.source, problem.name, dsl_name, device, ops)


# ---- the conductor's side ---------------------------------------------------------------------------

def offers(dsl, device: str) -> bool:
    """Whether Inductor writes its kernels in ``dsl`` on ``device`` (the DSL plugin says)."""
    return device in tuple(getattr(dsl, "inductor_devices", ()))


def inductor_seed(problem, dsl, device: str, timeout_s: float = CAPTURE_TIMEOUT_S,
                  env: dict[str, str] | None = None) -> Seed:
    """The seed from torch.compile's code for ``problem`` in a subprocess, or why there is none."""
    if not offers(dsl, device):
        return Seed(None, f"torch.compile does not write {dsl.name} kernels on {device}")
    if timeout_s <= 0:
        return Seed(None, "no time left to capture torch.compile's code")
    with tempfile.TemporaryDirectory(prefix="akg-seed-") as folder:
        # The problem's own file where it has one (it may import modules beside it).
        # (resolved here: the capture runs in the temporary folder)
        problem_file = Path(problem.path).resolve() if getattr(problem, "path", None) else Path(folder) / f"{problem.name}.py"
        if not problem_file.exists():
            problem_file = Path(folder) / f"{problem.name}.py"
            problem_file.write_text(problem.source)
        result = Path(folder) / "seed.json"
        command = [sys.executable, "-m", "akg.seeds", str(problem_file), device, dsl.name, str(result)]
        # Its own process group: a timeout also ends the compile workers Inductor may start.
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, **(env or {})}, cwd=folder, start_new_session=True)
        try:
            stdout, stderr = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            kill_group(proc)   # before it is reaped: its id cannot name another group yet
            return Seed(None, f"capturing torch.compile's code took longer than {timeout_s:g} s")
        if not result.exists():
            tail = (stderr or stdout or "").strip().splitlines()
            return Seed(None, f"capturing torch.compile's code failed (exit {proc.returncode}): {tail[-1][:300] if tail else ''}")
        answer = json.loads(result.read_text())
    return Seed(answer.get("source"), answer.get("reason", ""))


class Seeder:
    """What the search judges before its own candidates (``Search.seeder``): for each kind asked
    for, the candidate and its static screen, or a note saying why there is none."""

    def __init__(self, kinds: tuple[str, ...], problem, dsl, device: str, pool=None) -> None:
        unknown = [k for k in kinds if k not in KNOWN]
        if unknown:
            from akg.errors import AkgError
            raise AkgError(f"unknown seed {unknown[0]!r}; known: {', '.join(KNOWN)}")
        self.kinds, self.problem, self.dsl, self.device = kinds, problem, dsl, device
        # The capture compiles into the workers' Inductor cache, so they load its kernels built.
        self.env = pool.cache_dirs() if hasattr(pool, "cache_dirs") else {}

    def __call__(self, search) -> list[tuple[Any, tuple]]:
        from akg import screen
        from akg.agents import coder
        from akg.ir import Candidate
        found = []
        for kind in self.kinds:   # only "inductor" so far
            timeout = CAPTURE_TIMEOUT_S
            if search.deadline is not None:
                timeout = min(timeout, search.deadline.remaining() - search._full_estimate_s())
            search.progress("capturing torch.compile's code as a seed", None)
            seed = inductor_seed(self.problem, self.dsl, self.device, timeout, self.env)
            if seed.source is None:
                search.notes.append(f"no {kind} seed: {seed.reason}")
                continue
            candidate = Candidate(coder.candidate_id(seed.source), None, self.dsl.name, seed.source, None, ORIGIN,
                                  "torch.compile's own code (Inductor), standalone")
            found.append((candidate, screen.findings(seed.source, self.dsl, search.options.policy)))
        return found


def main(argv: list[str]) -> int:
    """``python -m akg.seeds PROBLEM DEVICE DSL OUT_JSON``: writes {"source"} or {"reason"}."""
    from akg.problem import load_problem
    problem_file, device, dsl_name, out = argv
    problem = load_problem(problem_file)
    try:
        answer = {"source": build(problem, device, dsl_name)}
    except CaptureError as e:
        answer = {"source": None, "reason": str(e)}
    Path(out).write_text(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
