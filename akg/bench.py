"""``akg bench``: optimise every problem of a suite and summarise the speedups.

fast_p (as in KernelBench) is the fraction of problems whose result is correct and more than p
times faster than eager PyTorch; fast_0 is the fraction correct. Geomeans are over all problems,
the reference fallback counting as 1.0 against eager.
"""
from __future__ import annotations

import datetime
import json
import math
import platform
import functools
from pathlib import Path

import torch

import akg
from akg.pipeline import Target, optimize_problem, atomic_write
from akg.problem import load_problem
from akg.search import SearchOptions
from akg.store import Store
from akg.targets import median_device_ms

FAST_P = (0.0, 1.0, 1.5, 2.0)


def problem_files(suite: Path) -> list[Path]:
    return sorted(p for p in Path(suite).glob("*.py") if not p.name.startswith("_"))


def copy_bandwidth_gbs(backend) -> float | None:
    """The measured device-to-device copy rate (bytes read + written per second), timed like every
    candidate: the practical memory roof, beside the descriptor's datasheet bandwidth."""
    nbytes = backend.probe_copy_bytes  # far beyond any cache
    try:
        src = torch.ones(nbytes // 4, dtype=torch.float32, device=backend.torch_device)
        dst = torch.empty_like(src)
        ms = median_device_ms(backend, lambda: functools.partial(dst.copy_, src), warmup=3, trials=10)
        return 2 * nbytes / (ms * 1e-3) / 1e9
    except (RuntimeError, MemoryError):   # a device too small or busy: the column stays empty
        return None


def hbm_fraction(row: dict, datasheet_gbs: float, copy_gbs: float | None) -> float | None:
    """Achieved bandwidth over the measured copy rate, for memory-bound problems."""
    if row.get("bound") != "memory" or not row.get("roofline_fraction") or not copy_gbs or not datasheet_gbs:
        return None
    return row["roofline_fraction"] * datasheet_gbs / copy_gbs


def _row(report: dict) -> dict:
    best = report["best"]
    return {"problem": report["problem"], "correct": best["correct"], "origin": best["origin"],
            "description": best["description"], "time_ms": best["time_ms"],
            "eager_ms": report["baselines"]["eager_ms"], "compile_ms": report["baselines"]["compile_ms"],
            "speedup_vs_eager": best["speedup_vs_eager"], "speedup_vs_compile": best["speedup_vs_compile"],
            "roofline_fraction": best["roofline_fraction"], "floor_ms": report["analysis"].get("floor_ms"),
            "bound": report["analysis"].get("bound"), "candidates": len(report["candidates"]),
            "notes": report["notes"]}


def geomean(values: list[float]) -> float | None:
    vals = [v for v in values if v and v > 0]
    return math.exp(sum(math.log(v) for v in vals) / len(vals)) if vals else None


def summarize(rows: list[dict]) -> dict:
    n = len(rows)
    ok = [r for r in rows if r.get("correct")]
    fast = {f"fast_{p:g}": (sum(1 for r in ok if (r["speedup_vs_eager"] or 0) > p) if p > 0 else len(ok)) / n if n else 0.0
            for p in FAST_P}
    return {"problems": n, "correct": len(ok), **fast,
            "geomean_speedup_vs_eager": geomean([r["speedup_vs_eager"] for r in ok]),
            "geomean_speedup_vs_compile": geomean([r["speedup_vs_compile"] for r in ok]),
            "generated": sum(1 for r in ok if r["origin"] != "reference")}


def run_bench(suite: Path, target: Target, out_file: Path, store: Store, options: SearchOptions,
              harness_config, progress=None, results_dir: Path | None = None) -> dict:
    rows = []
    copy_gbs = copy_bandwidth_gbs(target.backend)
    for path in problem_files(suite):
        if progress:
            progress(f"problem {path.stem}", None)
        try:
            problem = load_problem(path)
            out_dir = results_dir / path.stem if results_dir else None
            report = optimize_problem(problem, target, out_dir, store, options, harness_config, progress)
            row = _row(report)
            row["hbm_fraction"] = hbm_fraction(row, target.hardware.memory_bandwidth_gbs, copy_gbs)
            rows.append(row)
        except Exception as e:  # one broken problem must not end the suite; its row says why
            message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            rows.append({"problem": path.stem, "correct": False, "origin": None, "error": message,
                         "speedup_vs_eager": None, "speedup_vs_compile": None})
            if progress:
                progress(f"problem {path.stem} failed: {message}", None)
        _write(out_file, target, suite, rows, copy_gbs)  # after every problem, so an interrupted bench keeps its rows
    return _write(out_file, target, suite, rows, copy_gbs)


def _write(out_file: Path, target: Target, suite: Path, rows: list[dict], copy_gbs: float | None = None) -> dict:
    result = {"akg_version": akg.__version__, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
              "suite": str(suite), "dsl": target.dsl.name, "device": target.device, "hardware": target.hardware.name,
              "hardware_display": target.hardware.display_name, "torch": torch.__version__,
              "python": platform.python_version(), "machine": platform.machine(),
              "datasheet_bandwidth_gbs": target.hardware.memory_bandwidth_gbs, "copy_bandwidth_gbs": copy_gbs,
              "versions": target.versions(), "summary": summarize(rows), "problems": rows}
    out_file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out_file, json.dumps(result, indent=2, default=str) + "\n")
    return result


def markdown_table(result: dict) -> str:
    lines = ["| problem | result | time ms | eager ms | compile ms | vs eager | vs compile | roofline | of copy bw |",
             "|---|---|---|---|---|---|---|---|---|"]
    fmt = lambda v, d=3: "—" if v is None else f"{v:.{d}f}"
    for r in result["problems"]:
        what = "error" if r.get("error") else ("generated" if r["origin"] not in (None, "reference") else "reference")
        lines.append(f"| {r['problem']} | {what} | {fmt(r.get('time_ms'))} | {fmt(r.get('eager_ms'))} | "
                     f"{fmt(r.get('compile_ms'))} | {fmt(r.get('speedup_vs_eager'), 2)} | "
                     f"{fmt(r.get('speedup_vs_compile'), 2)} | {fmt(r.get('roofline_fraction'), 2)} | "
                     f"{fmt(r.get('hbm_fraction'), 2)} |")
    s = result["summary"]
    lines.append("")
    lines.append(f"fast_0 {s['fast_0']:.2f} · fast_1 {s['fast_1']:.2f} · fast_1.5 {s['fast_1.5']:.2f} · "
                 f"fast_2 {s['fast_2']:.2f} · geomean vs eager {fmt(s['geomean_speedup_vs_eager'], 2)} · "
                 f"vs torch.compile {fmt(s['geomean_speedup_vs_compile'], 2)}")
    return "\n".join(lines)
