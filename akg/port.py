"""``akg port``: migrate every problem or kernel file of a folder (a library) to one DSL.

Per op, ``DIR/ops/<op>/`` holds the migration's best.py and report.json; an op whose report there
was made from the same file for the same target is not redone, and the store makes a half-done op
cheap to finish, so an interrupted port resumes where it stopped. From the results:

- ``DIR/<library>/``, an importable package: one module per op (``<library>.kernels.<op>``) and an
  ``__init__.py`` that exposes each op by its file's name as an ``nn.Module`` class
  (``<library>.<op>``) and registers them as torch custom ops;
- ``DIR/report.json``: per op, verified or not, speedups vs the source, eager and torch.compile,
  and why an op fell back to the reference;
- ``DIR/report.html``: the same as a page with plots (``akg.report``).
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import keyword
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import jinja2

import akg
from akg.bench import geomean
from akg.errors import AkgError
from akg.migrate import migrate, source_digest
from akg.pipeline import Target, atomic_write
from akg.search import SearchOptions
from akg.store import Store


@dataclass(frozen=True)
class OpFile:
    name: str      # a Python identifier made from the file's name
    path: Path


# Names the package's __init__ defines itself.
RESERVED = {"kernels", "OPS", "PORTED", "SOURCE_FILES", "register_custom_ops", "importlib", "torch"}


def identifier(stem: str) -> str:
    name = re.sub(r"\W", "_", stem)
    if not name or name[0].isdigit() or keyword.iskeyword(name) or name in RESERVED or name.startswith("_"):
        name = "op_" + name
    return name


def library_files(library: Path) -> list[OpFile]:
    files = sorted(p for p in Path(library).glob("*.py") if not p.name.startswith("_"))
    ops = [OpFile(identifier(p.stem), p) for p in files]
    seen: dict[str, Path] = {}
    for op in ops:
        if op.name in seen:
            raise AkgError(f"library {library}: {seen[op.name].name} and {op.path.name} give the same op name {op.name}")
        seen[op.name] = op.path
    return ops


def _done_before(op: OpFile, op_dir: Path, target: Target) -> dict | None:
    """The op's earlier report when it was made from this very file for this target."""
    try:
        report = json.loads((op_dir / "report.json").read_text())
    except (OSError, ValueError):
        return None
    same = (report.get("migration", {}).get("source_digest") == source_digest(op.path.read_text())
            and (report.get("dsl"), report.get("device"), report.get("hardware"))
            == (target.dsl.name, target.device, target.hardware.name))
    return report if same and (op_dir / "best.py").is_file() else None


def _row(op: OpFile, report: dict | None, error: str | None, reused: bool) -> dict:
    if report is None:
        return {"op": op.name, "file": op.path.name, "verified": False, "ported": False, "origin": None,
                "fallback_reason": error, "error": error, "reused": reused}
    best, mig = report["best"], report["migration"]
    ported = mig["ported"]
    reason = None
    if not ported:
        reason = "; ".join(report["notes"])[:400] or "no generated candidate was verified"
    return {"op": op.name, "file": op.path.name, "verified": bool(best["correct"]), "ported": ported,
            "origin": best["origin"], "candidate_id": best["candidate_id"], "description": best["description"],
            "time_ms": best["time_ms"], "eager_ms": report["baselines"]["eager_ms"],
            "compile_ms": report["baselines"]["compile_ms"], "source_ms": mig["source"]["time_ms"],
            "source_runs": mig["source"]["runs"], "source_note": mig["source"]["reason"],
            "speedup_vs_eager": best["speedup_vs_eager"], "speedup_vs_compile": best["speedup_vs_compile"],
            "speedup_vs_source": mig["speedup_vs_source"], "roofline_fraction": best["roofline_fraction"],
            "floor_ms": report["analysis"].get("floor_ms"), "timing_meaningful": best.get("timing_meaningful", True),
            "candidates": len(report["candidates"]), "fallback_reason": reason, "error": None, "reused": reused}


def port_one(op: OpFile, target: Target, out_dir: Path, store_path: Path, options: SearchOptions, harness_config,
             progress=None, llm=None) -> dict:
    op_dir = out_dir / "ops" / op.name
    earlier = _done_before(op, op_dir, target)
    if earlier is not None:
        return _row(op, earlier, None, reused=True)
    if getattr(options, "time_limit_s", None):
        options = dataclasses.replace(options, started=None)   # the time limit is per op, from its start
    try:
        # One store connection per op: SQLite connections stay in their thread, and the store
        # serialises writes between them.
        with Store(store_path) as store:
            report = migrate(op.path, target, op_dir, store, options, harness_config, progress=progress, llm=llm)
        return _row(op, report, None, reused=False)
    except Exception as e:  # one broken op must not end the port; its row says why
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return _row(op, None, message[:300], reused=False)


def summarize(rows: list[dict]) -> dict:
    ported = [r for r in rows if r["ported"]]
    timed = [r for r in ported if r.get("timing_meaningful", True)]
    return {"ops": len(rows), "verified": sum(1 for r in rows if r["verified"]), "ported": len(ported),
            "fallback": sum(1 for r in rows if r["verified"] and not r["ported"]),
            "errors": sum(1 for r in rows if r.get("error")),
            "geomean_speedup_vs_eager": geomean([r["speedup_vs_eager"] for r in timed]),
            "geomean_speedup_vs_compile": geomean([r["speedup_vs_compile"] for r in timed]),
            "geomean_speedup_vs_source": geomean([r["speedup_vs_source"] for r in timed])}


def port_library(library: Path, target: Target, out_dir: Path, store_path: Path, options: SearchOptions,
                 harness_config, jobs: int = 1, progress=None, on_op_done=None, llm=None) -> dict:
    """Port every op of ``library``; ``jobs`` ops at once. Returns the report (also DIR/report.json)."""
    library, out_dir = Path(library), Path(out_dir)
    if not library.is_dir():
        raise AkgError(f"library {library}: not a folder of kernel or problem files")
    ops = library_files(library)
    if not ops:
        raise AkgError(f"library {library}: no .py files")
    out_dir.mkdir(parents=True, exist_ok=True)

    def one(op: OpFile) -> dict:
        row = port_one(op, target, out_dir, store_path, options, harness_config, progress, llm)
        if on_op_done:
            on_op_done(row)
        return row

    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="akg-port") as pool:
        rows = list(pool.map(one, ops))
    package = write_package(library, ops, rows, out_dir, target)
    report = {"akg_version": akg.__version__, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
              "library": str(library), "package": str(package), "dsl": target.dsl.name, "device": target.device,
              "hardware": target.hardware.name, "hardware_display": target.hardware.display_name,
              "mode": getattr(options, "mode", "compiler") if llm is not None else "compiler", "summary": summarize(rows), "ops": rows}
    atomic_write(out_dir / "report.json", json.dumps(report, indent=2, default=str) + "\n")
    from akg.report import load_view, render_html
    atomic_write(out_dir / "report.html", render_html(load_view(out_dir / "report.json")))
    return report


def write_package(library: Path, ops: list[OpFile], rows: list[dict], out_dir: Path, target: Target) -> Path:
    """DIR/<library>/: each op's best.py as a module, and an __init__.py exposing them."""
    name = identifier(library.resolve().name)
    package = out_dir / name
    if package.exists():
        shutil.rmtree(package)
    (package / "kernels").mkdir(parents=True)
    atomic_write(package / "kernels" / "__init__.py", '"""One module per op: the verified candidate files."""\n')
    entries = []
    for op, row in zip(ops, rows):
        best = out_dir / "ops" / op.name / "best.py"
        if row.get("error") or not best.is_file():
            continue
        shutil.copyfile(best, package / "kernels" / f"{op.name}.py")
        entries.append({"name": op.name, "ported": row["ported"], "file": op.path.name})
    from akg.report import TEMPLATES
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True)
    text = env.get_template("package_init.py.j2").render(package=name, ops=entries, dsl=target.dsl.name,
                                                     device=target.device, version=akg.__version__,
                                                     skipped=[r["op"] for r in rows if r.get("error")])
    atomic_write(package / "__init__.py", text)
    return package
