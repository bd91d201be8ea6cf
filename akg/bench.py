"""``akg bench``: optimise every problem of a suite and summarise the speedups.

fast_p (as in KernelBench) is the fraction of problems whose result is correct and more than p
times faster than eager PyTorch; fast_0 is the fraction correct. Geomeans are over all problems,
the reference fallback counting as 1.0 against eager.
"""
from __future__ import annotations

import datetime
import functools
import json
import math
import platform
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

import akg
from akg.errors import AkgError
from akg.processes import kill_group
from akg.pipeline import Target, atomic_write
from akg.targets import median_device_ms

FAST_P = (0.0, 1.0, 1.5, 2.0)


@dataclass(frozen=True)
class Entry:
    """One problem of a suite: ``id`` is its path under the suite without ``.py`` (unique across
    level folders), ``number`` the leading number of its file name, if any."""
    id: str
    path: Path
    number: int | None


def _number(stem: str) -> int | None:
    head = stem.split("_", 1)[0]
    return int(head) if head.isdigit() else None


def _entry(path: Path, root: Path) -> Entry:
    try:
        rel = path.resolve().relative_to(root.resolve())
    except ValueError:
        rel = Path(path.name)
    return Entry(rel.with_suffix("").as_posix(), path, _number(path.stem))


def discover(suite: Path) -> list[Entry]:
    """Problems of a suite: a folder searched recursively (a KernelBench checkout with its level
    folders, or a flat folder), or a list file naming one problem file per line (``#`` comments;
    paths relative to the list file). Files and folders starting with ``_`` or ``.`` are skipped."""
    suite = Path(suite)
    if suite.is_dir():
        files = [p for p in suite.rglob("*.py")
                 if not any(part.startswith(("_", ".")) for part in p.relative_to(suite).parts)]
        entries = [_entry(p, suite) for p in files]
    elif suite.is_file():
        entries = []
        for n, line in enumerate(suite.read_text().splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            path = Path(line) if Path(line).is_absolute() else suite.parent / line
            if not path.is_file():
                raise AkgError(f"suite {suite}: line {n}: no such problem file {line}")
            entries.append(_entry(path, suite.parent))
    else:
        raise AkgError(f"suite {suite}: neither a folder of problem files nor a list file")
    # Folder by folder, then by problem number (so 2_ comes before 10_), then by name.
    entries.sort(key=lambda e: (str(Path(e.id).parent), e.number if e.number is not None else 1 << 30, e.id))
    if len({e.id for e in entries}) != len(entries):
        raise AkgError(f"suite {suite}: two lines name the same problem")
    return entries


def select(entries: list[Entry], spec: str | None) -> list[Entry]:
    """The entries ``spec`` names: comma-separated numbers (``19``), ranges (``23-30``) and names
    (a file name with or without its number or ``.py``, or a path under the suite such as
    ``level1/19_ReLU``). A number selects that problem in every level folder."""
    if not spec:
        return entries
    chosen: set[str] = set()
    for token in (t.strip() for t in spec.split(",")):
        if not token:
            continue
        matched = [e for e in entries if _matches(e, token)]
        if not matched:
            raise AkgError(f"--problems: {token!r} names no problem of the suite")
        chosen.update(e.id for e in matched)
    return [e for e in entries if e.id in chosen]


def _matches(entry: Entry, token: str) -> bool:
    low, high = token.split("-", 1) if "-" in token else (token, token)
    if low.isdigit() and high.isdigit():
        return entry.number is not None and int(low) <= entry.number <= int(high)
    token = token.removesuffix(".py")
    stem = Path(entry.id).name
    bare = stem.split("_", 1)[1] if entry.number is not None and "_" in stem else stem
    return token in (entry.id, stem, bare) or ("/" in token and entry.id.startswith(token + "_"))


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
    finally:
        src = dst = None  # the problems run in other processes: give the memory back
        cache = getattr(getattr(torch, backend.torch_device, None), "empty_cache", None)
        if cache is not None:
            cache()


def hbm_fraction(row: dict, datasheet_gbs: float, copy_gbs: float | None) -> float | None:
    """Achieved bandwidth over the measured copy rate, for memory-bound problems."""
    if row.get("bound") != "memory" or not row.get("roofline_fraction") or not copy_gbs or not datasheet_gbs:
        return None
    return row["roofline_fraction"] * datasheet_gbs / copy_gbs


def _row(report: dict) -> dict:
    best = report["best"]
    return {"problem": report["problem"], "correct": best["correct"], "origin": best["origin"],
            "description": best["description"], "time_ms": best["time_ms"],
            # eager as timed with the best (interleaved), so speedup_vs_eager == eager_ms / time_ms;
            # the separate baseline measurement before the search is kept apart
            "eager_ms": best.get("eager_ms", report["baselines"]["eager_ms"]),
            "compile_ms": best.get("compile_ms", report["baselines"]["compile_ms"]),
            "baseline_eager_ms": report["baselines"]["eager_ms"],
            "speedup_vs_eager": best["speedup_vs_eager"], "speedup_vs_compile": best["speedup_vs_compile"],
            "roofline_fraction": best["roofline_fraction"], "floor_ms": report["analysis"].get("floor_ms"),
            "bound": report["analysis"].get("bound"), "candidates": len(report["candidates"]),
            "measured": sum(1 for c in report["candidates"] if not c.get("reused") and c["origin"] != "reference"),
            # torch.compile's own code judged as a candidate (--seed inductor): its time, when it passed
            "inductor_seed_ms": next((c["time_ms"] for c in report["candidates"]
                                      if c["origin"] == "inductor" and c["correct"]), None),
            "notes": report["notes"],
            # the problem's footprint and the peak device memory of akg's processes (bytes)
            "memory": report.get("memory"),
            # seconds per phase of the run (start-up, tracing, baselines, builds, judging): where the limit went
            "phases": report.get("phases"), "milestones": report.get("milestones")}


def geomean(values: list[float]) -> float | None:
    vals = [v for v in values if v and v > 0]
    return math.exp(sum(math.log(v) for v in vals) / len(vals)) if vals else None


def summarize(rows: list[dict]) -> dict:
    n = len(rows)
    ok = [r for r in rows if r.get("correct")]
    fast = {f"fast_{p:g}": (sum(1 for r in ok if (r["speedup_vs_eager"] or 0) > p) if p > 0 else len(ok)) / n if n else 0.0
            for p in FAST_P}
    measured = sum(r.get("measured") or 0 for r in rows)
    minutes = sum(r.get("wall_s") or 0 for r in rows) / 60
    return {"problems": n, "correct": len(ok), **fast,
            "candidates_measured": measured,
            "candidates_per_minute": measured / minutes if minutes else None,
            "geomean_speedup_vs_eager": geomean([r["speedup_vs_eager"] for r in ok]),
            "geomean_speedup_vs_compile": geomean([r["speedup_vs_compile"] for r in ok]),
            "generated": sum(1 for r in ok if r["origin"] != "reference")}


# A problem's optimize runs in a process of its own; past its time limit plus this, it is killed
# (its own watchdog should have ended it within 10 s of the limit).
KILL_AFTER_LIMIT_S = 15.0


def run_bench(entries: list[Entry], target: Target, out_file: Path, optimize_args: list[str], *,
              suite: Path, device: str, time_limit_s: float | None = None, resume: bool = False,
              results_dir: Path | None = None, progress=None) -> dict:
    """Optimise each entry in its own ``akg optimize`` process (so a crash, a hang or a device
    left in a bad state costs one row) and rewrite ``out_file`` after each. ``optimize_args``:
    the flags every problem shares (--dsl, --store, --budget, ...). With ``resume``, rows already
    in ``out_file`` are kept and their problems not run again."""
    say = progress or (lambda message, scored: None)
    previous = _previous(out_file) if resume else {}
    rows = [r for r in previous.get("problems", []) if r["problem"] in {e.id for e in entries}]
    done = {r["problem"] for r in rows}
    copy_gbs = previous.get("copy_bandwidth_gbs") if previous else copy_bandwidth_gbs(target.backend)
    if done:
        say(f"resuming: {len(done)} of {len(entries)} problems already have results", None)
    for number, entry in enumerate(entries, 1):
        if entry.id in done:
            continue
        say(f"problem {entry.id} ({number} of {len(entries)})", None)
        row = _run_one(entry, optimize_args, device, time_limit_s, resume, results_dir)
        if row.get("error"):
            say(f"problem {entry.id} failed: {row['error']}", None)
        else:
            row["hbm_fraction"] = hbm_fraction(row, target.hardware.memory_bandwidth_gbs, copy_gbs)
            say(f"problem {entry.id}: {_result_line(row)}", None)
        rows.append(row)
        _write(out_file, target, suite, rows, copy_gbs, time_limit_s)  # after every problem: a killed bench keeps its rows
    return _write(out_file, target, suite, rows, copy_gbs, time_limit_s)


def _result_line(row: dict) -> str:
    """One problem's outcome for the progress log: its time and the speedups of the same report."""
    fmt = lambda v, unit="": "n/a" if v is None else f"{v:.4g}{unit}"
    return (f"{row.get('origin')} {fmt(row.get('time_ms'), ' ms')} · {fmt(row.get('speedup_vs_eager'), 'x')} vs eager · "
            f"{fmt(row.get('speedup_vs_compile'), 'x')} vs torch.compile")


def _previous(out_file: Path) -> dict:
    if not out_file.exists():
        return {}
    try:
        return json.loads(out_file.read_text())
    except (OSError, ValueError) as e:
        raise AkgError(f"--resume: cannot read {out_file} ({e}); move it away to start over") from None


def _run_one(entry: Entry, optimize_args: list[str], device: str, time_limit_s: float | None, resume: bool,
             results_dir: Path | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="akg-bench-") as scratch:
        out_dir = results_dir / entry.id if results_dir else Path(scratch) / "out"
        command = [sys.executable, "-m", "akg.cli", "optimize", str(entry.path), "--device", device,
                   "--out", str(out_dir), *optimize_args]
        if time_limit_s is not None:
            command += ["--time-limit", f"{time_limit_s:g}"]
        if resume:
            command.append("--resume")  # an interrupted run of this problem continues where it stopped
        started = time.monotonic()
        code, last_error, timed_out = _call(command, None if time_limit_s is None else time_limit_s + KILL_AFTER_LIMIT_S)
        wall = time.monotonic() - started
        report = _read_report(out_dir / "report.json")
    base = {"problem": entry.id, "path": str(entry.path), "wall_s": round(wall, 2), "time_limit_s": time_limit_s}
    if report is not None and (code == 0 or timed_out):
        return {**_row(report), **base}
    if timed_out:
        error = f"did not finish within the time limit ({time_limit_s:g} s) and was killed"
    else:
        error = last_error or f"akg optimize exited with status {code}"
    return {**base, "correct": False, "origin": None, "error": error,
            "speedup_vs_eager": None, "speedup_vs_compile": None}


def _call(command: list[str], timeout_s: float | None) -> tuple[int | None, str, bool]:
    """Run one optimize, passing its progress lines on; (exit code, its last error line, killed)."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own group: a kill takes its workers along
    last = [""]

    def relay() -> None:
        for line in proc.stderr:
            sys.stderr.write(line)
            if line.startswith("akg: error:"):
                last[0] = line.removeprefix("akg: error:").strip()
            elif "Error" in line and not last[0]:
                last[0] = line.strip()[:300]

    reader = threading.Thread(target=relay, daemon=True)
    reader.start()
    try:
        code = proc.wait(timeout_s)
        timed_out = False
    except subprocess.TimeoutExpired:
        code, timed_out = None, True
    except BaseException:  # Ctrl-C: take the problem's process group down with the bench
        kill_group(proc)
        raise
    if timed_out:
        kill_group(proc)
    reader.join(5)
    return code, last[0], timed_out


def _read_report(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write(out_file: Path, target: Target, suite: Path, rows: list[dict], copy_gbs: float | None = None,
           time_limit_s: float | None = None) -> dict:
    result = {"akg_version": akg.__version__, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
              "suite": str(suite), "dsl": target.dsl.name, "device": target.device, "hardware": target.hardware.name,
              "time_limit_s": time_limit_s,
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
