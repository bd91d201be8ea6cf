"""A markdown table of `akg bench` results over a whole suite: every problem of the suite, run or not.

Each problem's row is its result from the results files (the latest run where several have it):
the verified result (origin, speedups vs eager and vs torch.compile, candidates, peak device
memory), or for a problem whose result is the reference or an error, the one-line reason (its
first note), or "not run yet". A summary line per suite sits on top: fast_p and geomeans over the
problems run (as `akg bench` computes them) and candidates judged per device-minute.

    python bench/kb_table.py bench/results/h200-kernelbench.json bench/results/h200-kernelbench-level2.json \
        --suite KernelBench/KernelBench/level1 --suite KernelBench/KernelBench/level2 --out docs/kernelbench.md
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from akg.bench import FAST_P, Entry, discover, summarize
from akg.errors import AkgError, EXIT_USAGE

NOTE_CHARS = 160


@dataclass(frozen=True)
class Results:
    """One `akg bench` results file: its rows and what they ran on."""
    path: Path
    date: str
    device: str
    hardware: str
    dsl: str
    time_limit_s: float | None
    rows: tuple[dict, ...]


def load_results(path: Path) -> Results:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise AkgError(f"{path}: cannot read an akg bench results file ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("problems"), list):
        raise AkgError(f"{path}: not an akg bench results file (no \"problems\" list)")
    rows = tuple(r for r in data["problems"] if isinstance(r, dict) and r.get("problem"))
    return Results(Path(path), str(data.get("date") or ""), str(data.get("device") or ""),
                   str(data.get("hardware_display") or data.get("hardware") or ""), str(data.get("dsl") or ""),
                   data.get("time_limit_s"), rows)


def _key(path: str | Path) -> tuple[str, str]:
    """(level folder, file stem): how a row and a suite file are matched across checkouts."""
    p = Path(path)
    return p.parent.name, p.stem.removesuffix(".py")


def _row_path(row: dict) -> str:
    return row.get("path") or row["problem"]


def match(entries: list[Entry], results: list[Results]) -> dict[str, tuple[dict, Results]]:
    """Each entry's row, by entry id: matched on level folder and file name, or on the file name
    alone where the row carries no folder; the latest results file wins where several have it."""
    by_key = {_key(e.path): e.id for e in entries}
    by_stem: dict[str, list[str]] = {}
    for e in entries:
        by_stem.setdefault(e.path.stem, []).append(e.id)
    found: dict[str, tuple[dict, Results]] = {}
    for res in sorted(results, key=lambda r: r.date):   # later runs replace earlier ones
        for row in res.rows:
            folder, stem = _key(_row_path(row))
            entry_id = by_key.get((folder, stem))
            if entry_id is None and not any(folder == k[0] for k in by_key):
                same = by_stem.get(stem, [])
                entry_id = same[0] if len(same) == 1 else None
            if entry_id is not None:
                found[entry_id] = (row, res)
    return found


def _fmt(value, digits: int = 2, unit: str = "") -> str:
    return "—" if value is None else f"{value:.{digits}f}{unit}"


def _peak_memory(row: dict) -> str:
    memory = row.get("memory") or {}
    peak = max((v for k, v in memory.items() if k.startswith("peak_") and isinstance(v, (int, float))), default=None)
    return "—" if peak is None else f"{peak / 2**30:.1f} GiB"


def _cell(text: str) -> str:
    text = " ".join(str(text).split())
    if len(text) > NOTE_CHARS:
        text = text[:NOTE_CHARS - 1] + "…"
    return text.replace("|", "\\|")


def table_row(entry: Entry, found: tuple[dict, Results] | None) -> str:
    name = _cell(entry.id)
    if found is None:
        return f"| {name} | not run yet | | | | | |"
    row, _ = found
    notes = row.get("notes") or []
    if row.get("error") or not row.get("correct"):
        reason = row.get("error") or (notes[0] if notes else "no verified result")
        return f"| {name} | error | | | | | {_cell(reason)} |"
    origin = row.get("origin") or "?"
    speeds = f"{_fmt(row.get('speedup_vs_eager'))} | {_fmt(row.get('speedup_vs_compile'))}"
    counted = f"{row.get('candidates', '—')}"
    if origin == "reference":
        reason = notes[0] if notes else "no generated candidate beat the reference"
        return f"| {name} | reference | {speeds} | {counted} | {_peak_memory(row)} | {_cell(reason)} |"
    return f"| {name} | verified ({_cell(origin)}) | {speeds} | {counted} | {_peak_memory(row)} | |"


def summary_line(rows: list[dict], total: int, device: str) -> str:
    s = summarize(rows)
    per = "minute" if device == "cpu" else "GPU-minute"
    fast = " · ".join(f"fast_{p:g} {s[f'fast_{p:g}']:.2f}" for p in FAST_P)
    return (f"**{s['problems']} of {total} problems run** · {fast} (over the problems run) · "
            f"geomean vs eager {_fmt(s['geomean_speedup_vs_eager'])} · "
            f"vs torch.compile {_fmt(s['geomean_speedup_vs_compile'])} · "
            f"{s['generated']} generated results · "
            f"{_fmt(s['candidates_per_minute'])} candidates per {per}")


def suite_section(suite: Path, results: list[Results]) -> str:
    entries = discover(suite)
    if not entries:
        raise AkgError(f"suite {suite}: no problem files")
    found = match(entries, results)
    used = sorted({f"`{res.path.name}` ({res.hardware}, {res.dsl} on {res.device}, {res.date[:10]})"
                   for _, res in found.values()})
    lines = [f"## {suite.name}", "",
             summary_line([row for row, _ in found.values()], len(entries), next(iter(
                 {res.device for _, res in found.values()}), "")), ""]
    if used:
        lines += [f"From {'; '.join(used)}.", ""]
    lines += ["| problem | result | vs eager | vs torch.compile | candidates | peak memory | why not generated |",
              "|---|---|---|---|---|---|---|"]
    lines += [table_row(e, found.get(e.id)) for e in entries]
    return "\n".join(lines) + "\n"


def render(suites: list[Path], results: list[Results], title: str) -> str:
    files = " ".join(_shown(r.path) for r in results)
    folders = " ".join(f"--suite KERNELBENCH/{s.name}" for s in suites)
    head = [f"# {title}", "",
            "Every problem of each suite with its result from `akg bench` results files: the verified "
            "result (origin, speedups vs eager and vs torch.compile, candidates, peak device memory), or "
            "for a problem whose result is the reference or an error the first note of its run, or \"not "
            "run yet\". fast_p is the fraction of the problems run whose result is correct and more than "
            "p times faster than eager; candidates are those of the run, the reference included. "
            "Generated by", "", f"```\npython bench/kb_table.py {files} {folders} --out docs/kernelbench.md\n```", ""]
    return "\n".join(head) + "\n" + "\n".join(suite_section(s, results) for s in suites)


def _shown(path: Path) -> str:
    """A results file as the command line names it: relative to here where it is below."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Markdown table of akg bench results over whole suites.")
    parser.add_argument("results", nargs="+", type=Path, help="akg bench JSON results files")
    parser.add_argument("--suite", action="append", type=Path, required=True,
                        help="a suite folder (repeatable), e.g. kernelbench/level1")
    parser.add_argument("--title", default="KernelBench results")
    parser.add_argument("--out", type=Path, help="markdown file to write (default: standard output)")
    args = parser.parse_args(argv)
    try:
        results = [load_results(p) for p in args.results]
        text = render(args.suite, results, args.title)
        if args.out is not None:
            args.out.write_text(text)
        else:
            sys.stdout.write(text)
    except (AkgError, OSError) as e:
        print(f"kb_table: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
