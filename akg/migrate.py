"""``akg migrate``: a kernel written in one DSL, regenerated and verified in another.

The source is a candidate file (a ``ModelNew`` with its kernels inline). The oracle is a problem
file's ``Model`` when one is given, else the source module's own ``Model``: then only the PyTorch
part of the file (``Model``, ``get_inputs``, ``get_init_inputs`` and what they use) is kept as the
oracle, so no source-DSL code reaches the generated candidates. Compiler mode regenerates the
computation from that PyTorch program through the usual optimize pipeline; LLM mode adds the
designer and coder, shown the source kernel to port. The source kernel is judged on the same
device as an extra baseline (verified, and timed where its DSL's timings mean something there).
"""
from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

from akg import plugins
from akg.errors import AkgError
from akg.pipeline import Target, atomic_write, optimize_problem
from akg.problem import Problem, load_problem
from akg.search import SearchOptions
from akg.store import Store

ORACLE_NAMES = ("Model", "get_inputs", "get_init_inputs")
SOURCE_POLICY = "standard"   # the source is a baseline, not a product: framework ops in it are allowed


@dataclass(frozen=True)
class SourceResult:
    """How the source kernel fared on the target device."""
    dsl: str | None              # the DSL plugin whose package the source imports, if any
    runs: bool                   # verified against the oracle on the device
    timed: bool                  # and timed with meaningful timings
    time_ms: float | None
    reason: str                  # why it did not run or was not timed ("" when timed)

    def as_dict(self) -> dict:
        return {"dsl": self.dsl, "runs": self.runs, "timed": self.timed, "time_ms": self.time_ms,
                "reason": self.reason, "policy": SOURCE_POLICY}


def source_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_kernel(path: Path) -> str:
    if not path.is_file():
        raise AkgError(f"kernel file {path}: no such file")
    try:
        text = path.read_text()
        ast.parse(text)
    except (OSError, UnicodeDecodeError) as e:
        raise AkgError(f"kernel file {path}: cannot read ({e})") from None
    except SyntaxError as e:
        raise AkgError(f"kernel file {path}: syntax error at line {e.lineno}: {e.msg}") from None
    return text


# -- the oracle ----------------------------------------------------------------------------------

def _defined_names(stmt: ast.stmt) -> set[str]:
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {stmt.name}
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in stmt.names}
    if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return set()


def _used_names(stmt: ast.stmt) -> set[str]:
    return {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name)} | \
           {n.value.id for n in ast.walk(stmt) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)}


def oracle_source(text: str, name: str) -> str:
    """The PyTorch part of a kernel file: the top-level statements that ``Model``, ``get_inputs``
    and ``get_init_inputs`` need, transitively; everything else (kernels, ModelNew, the source
    DSL's imports and set-up) is dropped."""
    tree = ast.parse(text)
    body = [s for s in tree.body if _defined_names(s)]
    defined = set().union(*(_defined_names(s) for s in body)) if body else set()
    missing = [n for n in ORACLE_NAMES if n not in defined]
    if missing:
        raise AkgError(f"kernel file {name}: defines no {', '.join(missing)}; pass --problem with the PyTorch "
                       "program it implements")
    needed, frontier = set(), set(ORACLE_NAMES)
    while frontier:
        needed |= frontier
        uses = set().union(*(_used_names(s) for s in body if _defined_names(s) & frontier))
        frontier = (uses & defined) - needed
    kept = [s for s in body if _defined_names(s) & needed]
    doc = f'"""Oracle for {name}: the PyTorch program of the kernel file, without its kernels."""\n'
    return doc + "\n\n".join(ast.get_source_segment(text, s) or ast.unparse(s) for s in kept) + "\n"


def oracle_problem(kernel_path: Path, kernel_text: str, problem_path: Path | None, out_dir: Path) -> tuple[Problem, str]:
    """The problem whose Model is the truth, and a phrase saying where it came from."""
    if problem_path is not None:
        return load_problem(problem_path), f"problem file {problem_path}"
    folder = out_dir / "oracle"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{kernel_path.stem}.py"   # workers load problems from files
    atomic_write(path, oracle_source(kernel_text, kernel_path.name))
    return load_problem(path), f"the Model of {kernel_path.name}"


# -- the source kernel as a baseline ---------------------------------------------------------------

def source_dsl(text: str) -> str | None:
    """The DSL plugin whose package the source imports (a DSL plugin is named after its package)."""
    imported = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    return next((name for name in sorted(plugins.dsls()) if name in imported), None)


def judge_source(problem: Problem, text: str, target: Target, harness_config) -> SourceResult:
    """Verify the source kernel on the target device; time it where its DSL's timings mean something."""
    from akg.harness import HarnessError, evaluate

    dsl_name = source_dsl(text)
    dsl = plugins.dsls().get(dsl_name) if dsl_name else None
    meaningful = dsl is None or target.device in dsl.timing_meaningful_on
    config = harness_config if meaningful else harness_config.replace(
        time=False, measure_compile=False, seeds=harness_config.seeds[:1], distributions=("problem", "uniform"))
    if "ModelNew" not in text:
        return SourceResult(dsl_name, False, False, None, "the file defines no ModelNew (a problem, not a kernel)")
    try:
        verdict = evaluate(problem, text, target, SOURCE_POLICY, config)
    except HarnessError as e:   # includes CandidateError
        return SourceResult(dsl_name, False, False, None, str(e).splitlines()[0][:300])
    if not verdict.accepted:
        return SourceResult(dsl_name, False, False, None, f"rejected on {target.device}: {verdict.reason[:300]}")
    if not meaningful or not verdict.timing_meaningful or verdict.time_ms is None:
        return SourceResult(dsl_name, True, False, None,
                            f"{dsl_name or 'the source'} timings on {target.device} are not meaningful (interpreted); verified only")
    return SourceResult(dsl_name, True, True, verdict.time_ms, "")


# -- one migration -------------------------------------------------------------------------------

def migrate(kernel_path: Path, target: Target, out_dir: Path, store: Store, options: SearchOptions, harness_config,
            problem_path: Path | None = None, progress=None, llm=None) -> dict:
    """Regenerate a kernel file's computation in the target DSL; DIR/best.py and DIR/report.json.
    ``llm`` (an ``akg.evolve.LLMRun``): LLM mode, whose designer and coder get the source kernel to port."""
    kernel_path, out_dir = Path(kernel_path), Path(out_dir)
    text = read_kernel(kernel_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    problem, oracle = oracle_problem(kernel_path, text, Path(problem_path) if problem_path else None, out_dir)
    if progress:
        progress(f"judging the source kernel {kernel_path.name} on {target.device}", None)
    source = judge_source(problem, text, target, harness_config)
    if progress:
        progress(f"source: {'timed %.4g ms' % source.time_ms if source.timed else source.reason}", None)
    if llm is not None:
        llm = replace(llm, options=replace(llm.options, port_source=text, port_source_dsl=source.dsl or ""))
    report = optimize_problem(problem, target, out_dir, store, options, harness_config, progress, llm=llm)
    report["migration"] = migration_section(kernel_path, text, oracle, source, report,
                                            getattr(options, "mode", "compiler") if llm is not None else "compiler")
    atomic_write(out_dir / "report.json", json.dumps(report, indent=2, default=str) + "\n")
    return report


def migration_section(kernel_path: Path, text: str, oracle: str, source: SourceResult, report: dict,
                      mode: str = "compiler") -> dict:
    best = report["best"]
    vs_source = None
    if source.timed and best["time_ms"] and best.get("timing_meaningful", True):
        vs_source = source.time_ms / best["time_ms"]
    generated = best["origin"] != "reference"
    return {"mode": mode, "source_file": str(kernel_path), "source_digest": source_digest(text),
            "oracle": oracle, "source": source.as_dict(), "ported": bool(best["correct"] and generated),
            "speedup_vs_source": vs_source,
            "baselines_timed": [name for name, ok in (("eager", report["baselines"]["eager_ms"] is not None),
                                                      ("torch.compile", report["baselines"]["compile_ms"] is not None),
                                                      ("source", source.timed)) if ok]}
