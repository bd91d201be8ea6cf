"""``akg report``: one static HTML page (no server, no scripts) for a run, a bench, a port or a store.

Inputs it reads: a run folder (``report.json`` + ``best.py`` from optimize or migrate), a bench
JSON, a port folder or its ``report.json``, or the SQLite store (its newest run per problem and
target). Plots are inline SVG drawn here: search progress (best time against candidates measured
and against wall time), achieved time against the roofline floor per candidate, and for a suite
the speedup distribution and the roofline fraction per problem.
"""
from __future__ import annotations

import html
import json
import math
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
from markupsafe import Markup

import akg
from akg.errors import AkgError


TEMPLATES = Path(__file__).parent / "report_templates"   # package data of akg


@dataclass(frozen=True)
class RunView:
    """One search: its candidates in measured order and the best one."""
    title: str
    target: str
    eager_ms: float | None
    compile_ms: float | None
    floor_ms: float | None
    best: dict
    best_source: str | None
    candidates: tuple[dict, ...]          # id, parent, origin, description, correct, time_ms, reason, elapsed_s
    notes: tuple[str, ...] = ()
    extra: tuple[tuple[str, str], ...] = ()   # label, text (e.g. the migration source's baseline)


@dataclass(frozen=True)
class SuiteView:
    """A bench or a port: one row per problem or op."""
    kind: str                             # "bench" | "port" | "store"
    summary: tuple[tuple[str, str], ...]
    rows: tuple[dict, ...]                # name, status, verified, ported, time_ms, eager_ms, compile_ms, source_ms, speedups, roofline, reason


@dataclass(frozen=True)
class PageView:
    title: str
    subtitle: str
    suite: SuiteView | None = None
    runs: tuple[RunView, ...] = field(default_factory=tuple)


# -- loading ---------------------------------------------------------------------------------------

def load_view(path: str | Path) -> PageView:
    """A page for whatever ``path`` is; AkgError (one line) when it is none of the known inputs."""
    path = Path(path)
    if not path.exists():
        raise AkgError(f"report: {path}: no such file or folder")
    if path.is_dir():
        for name in ("report.json",):
            if (path / name).is_file():
                return load_view(path / name)
        raise AkgError(f"report: {path}: no report.json in this folder (a run, migrate or port output folder)")
    if path.suffix in (".db", ".sqlite", ".sqlite3"):
        return _store_view(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        if _is_sqlite(path):
            return _store_view(path)
        raise AkgError(f"report: {path}: not a report JSON or akg store ({str(e).splitlines()[0][:120]})") from None
    if isinstance(data, dict) and "ops" in data and "summary" in data:
        return _port_view(path, data)
    if isinstance(data, dict) and "problems" in data and "summary" in data:
        return _bench_view(path, data)
    if isinstance(data, dict) and "best" in data and "candidates" in data:
        run = _run_view(data, path.parent / "best.py")
        return PageView(f"akg · {run.title}", run.target, None, (run,))
    raise AkgError(f"report: {path}: JSON of an unknown kind (expected a run, bench or port report)")


def _is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def _timeline(report: dict) -> dict[str, float]:
    """Seconds from the run's start to each candidate's first verdict, from the store when it is there."""
    store, run = report.get("store"), report.get("run_id")
    if not store or run is None or not Path(store).is_file():
        return {}
    try:
        from akg.store import Store
        with Store(store) as s:
            return s.run_timeline(int(run))
    except Exception:   # an old or foreign store: the wall-time plot is left out
        return {}


def _run_view(report: dict, best_path: Path | None, timeline: dict[str, float] | None = None) -> RunView:
    timeline = _timeline(report) if timeline is None else timeline
    candidates = tuple({**c, "elapsed_s": timeline.get(c["id"])} for c in report["candidates"])
    extra = []
    mig = report.get("migration")
    if mig:
        src = mig["source"]
        what = f"{src['time_ms']:.4g} ms" if src["timed"] else src["reason"]
        extra.append(("migrated from", f"{mig['source_file']} ({src.get('dsl') or 'unknown DSL'}): {what}"))
        extra.append(("oracle", mig["oracle"]))
        if mig.get("speedup_vs_source"):
            extra.append(("vs source", f"{mig['speedup_vs_source']:.2f}x"))
    source = best_path.read_text() if best_path is not None and best_path.is_file() else None
    return RunView(report["problem"], f"{report['dsl']} on {report['device']} ({report['hardware']})",
                   report["baselines"].get("eager_ms"), report["baselines"].get("compile_ms"),
                   report.get("analysis", {}).get("floor_ms"), report["best"], source, candidates,
                   tuple(report.get("notes", ())), tuple(extra))


def _fmt(v, digits: int = 3, unit: str = "") -> str:
    return "—" if v is None else f"{v:.{digits}f}{unit}"


def _bench_view(path: Path, data: dict) -> PageView:
    s = data["summary"]
    rows = tuple({"name": r["problem"], "status": "error" if r.get("error") else
                  ("generated" if r.get("origin") not in (None, "reference") else "reference"),
                  "verified": bool(r.get("correct")), "time_ms": r.get("time_ms"), "eager_ms": r.get("eager_ms"),
                  "compile_ms": r.get("compile_ms"), "source_ms": None,
                  "speedup_vs_eager": r.get("speedup_vs_eager"), "speedup_vs_compile": r.get("speedup_vs_compile"),
                  "speedup_vs_source": None, "roofline_fraction": r.get("roofline_fraction"),
                  "reason": r.get("error") or "; ".join(r.get("notes") or ())}
                 for r in data["problems"])
    summary = (("problems", str(s["problems"])), ("correct", str(s["correct"])), ("generated", str(s.get("generated"))),
               ("fast_1", _fmt(s.get("fast_1"), 2)), ("fast_2", _fmt(s.get("fast_2"), 2)),
               ("geomean vs eager", _fmt(s.get("geomean_speedup_vs_eager"), 2, "x")),
               ("geomean vs torch.compile", _fmt(s.get("geomean_speedup_vs_compile"), 2, "x")))
    subtitle = f"{data['dsl']} on {data['device']} ({data.get('hardware_display') or data['hardware']}) · {data.get('date', '')}"
    return PageView(f"akg bench · {data['suite']}", subtitle, SuiteView("bench", summary, rows), ())


def _port_view(path: Path, data: dict) -> PageView:
    s = data["summary"]
    rows = tuple({"name": r["op"], "status": "error" if r.get("error") else ("ported" if r["ported"] else "fallback"),
                  "verified": r["verified"], "time_ms": r.get("time_ms"), "eager_ms": r.get("eager_ms"),
                  "compile_ms": r.get("compile_ms"), "source_ms": r.get("source_ms"),
                  "speedup_vs_eager": r.get("speedup_vs_eager"), "speedup_vs_compile": r.get("speedup_vs_compile"),
                  "speedup_vs_source": r.get("speedup_vs_source"), "roofline_fraction": r.get("roofline_fraction"),
                  "reason": r.get("fallback_reason") or r.get("source_note") or ""}
                 for r in data["ops"])
    summary = (("ops", str(s["ops"])), ("verified", str(s["verified"])), ("ported", str(s["ported"])),
               ("fell back", str(s["fallback"])), ("errors", str(s["errors"])),
               ("geomean vs eager", _fmt(s.get("geomean_speedup_vs_eager"), 2, "x")),
               ("geomean vs torch.compile", _fmt(s.get("geomean_speedup_vs_compile"), 2, "x")),
               ("geomean vs source", _fmt(s.get("geomean_speedup_vs_source"), 2, "x")))
    runs = []
    for r in data["ops"]:
        op_dir = path.parent / "ops" / r["op"]
        try:
            runs.append(_run_view(json.loads((op_dir / "report.json").read_text()), op_dir / "best.py"))
        except (OSError, ValueError, KeyError):
            continue
    subtitle = f"{data['dsl']} on {data['device']} ({data.get('hardware_display') or data['hardware']}) · {data.get('date', '')}"
    return PageView(f"akg port · {data['library']}", subtitle, SuiteView("port", summary, rows), tuple(runs))


def _store_view(path: Path) -> PageView:
    from akg.store import Store, StoreError
    try:
        with Store(path) as store:
            runs = store.latest_runs()
            views = [_store_run(store, r) for r in runs]
    except (StoreError, sqlite3.DatabaseError) as e:
        raise AkgError(f"report: {path}: cannot read the store ({str(e).splitlines()[0][:160]})") from None
    rows = tuple({"name": v.title, "status": "generated" if v.best.get("origin") not in (None, "reference") else "reference",
                  "verified": bool(v.best.get("correct")), "time_ms": v.best.get("time_ms"), "eager_ms": v.eager_ms,
                  "compile_ms": v.compile_ms, "source_ms": None,
                  "speedup_vs_eager": (v.eager_ms / v.best["time_ms"]) if v.eager_ms and v.best.get("time_ms") else None,
                  "speedup_vs_compile": (v.compile_ms / v.best["time_ms"]) if v.compile_ms and v.best.get("time_ms") else None,
                  "speedup_vs_source": None, "roofline_fraction": None, "reason": "; ".join(v.notes)}
                 for v in views)
    summary = (("runs", str(len(views))), ("with a generated best", str(sum(r["status"] == "generated" for r in rows))))
    return PageView(f"akg store · {path}", "newest run of each problem and target", SuiteView("store", summary, rows),
                    tuple(views))


def _store_run(store, run: dict) -> RunView:
    entries = store.run_candidates(run["id"])
    base = store.baselines(run["problem"], run["device"], run["hardware"]) or {}
    eager = base.get("eager_ms")
    candidates = []
    for e in entries:
        v = e["verdict"]
        t = v.time_ms if v is not None else None
        if e["origin"] == "reference":
            t, ok, reason = eager, True, ""
        else:
            ok, reason = (bool(v.accepted), v.reason) if v is not None else (False, "not measured")
        candidates.append({"id": e["id"], "parent": e["parent"], "origin": e["origin"], "description": e["description"],
                           "correct": ok, "time_ms": t, "reason": reason, "elapsed_s": e["elapsed_s"],
                           "speedup_vs_eager": (eager / t) if eager and t and ok else None,
                           "roofline_fraction": v.roofline_fraction if v is not None else None})
    best = next((c for c in candidates if c["id"] == run["best"]), None) or {}
    notes = () if run["status"] == "done" else (f"run {run['id']} did not finish ({run['status']})",)
    return RunView(run["name"], f"{run['dsl']} on {run['device']} ({run['hardware']})", eager, base.get("compile_ms"),
                   None, best, store.candidate_source(run["best"]) if run["best"] else None, tuple(candidates), notes)


# -- plots (inline SVG) ------------------------------------------------------------------------------

W, H, PAD_L, PAD_B, PAD_T, PAD_R = 520, 260, 62, 48, 26, 14
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    step = (hi - lo) / (n - 1)
    return [lo + i * step for i in range(n)]


def _axes(xlabel: str, ylabel: str, xlo: float, xhi: float, ylo: float, yhi: float, log_y: bool = False,
          xticks: list[tuple[float, str]] | None = None):
    """The frame, tick labels and a mapping from data to pixels."""
    def fx(x: float) -> float:
        return PAD_L + (x - xlo) / ((xhi - xlo) or 1.0) * (W - PAD_L - PAD_R)

    def fy(y: float) -> float:
        if log_y:
            y, lo, hi = math.log10(max(y, 1e-12)), math.log10(ylo), math.log10(yhi)
        else:
            lo, hi = ylo, yhi
        return H - PAD_B - (y - lo) / ((hi - lo) or 1.0) * (H - PAD_B - PAD_T)

    parts = [f'<rect x="{PAD_L}" y="{PAD_T}" width="{W - PAD_L - PAD_R}" height="{H - PAD_B - PAD_T}" '
             'fill="#fff" stroke="#999"/>']
    yt = [10 ** v for v in _ticks(math.log10(ylo), math.log10(yhi))] if log_y else _ticks(ylo, yhi)
    for v in yt:
        parts.append(f'<text x="{PAD_L - 6}" y="{fy(v) + 4:.1f}" text-anchor="end" font-size="10">{v:.3g}</text>')
        parts.append(f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{fy(v):.1f}" y2="{fy(v):.1f}" stroke="#eee"/>')
    for v, label in ([(v, f"{v:.3g}") for v in _ticks(xlo, xhi)] if xticks is None else xticks):
        parts.append(f'<text x="{fx(v):.1f}" y="{H - PAD_B + 14}" text-anchor="middle" font-size="10">{html.escape(label)}</text>')
    parts.append(f'<text x="{(PAD_L + W - PAD_R) / 2}" y="{H - 6}" text-anchor="middle" font-size="11">{html.escape(xlabel)}</text>')
    parts.append(f'<text x="12" y="{(PAD_T + H - PAD_B) / 2}" text-anchor="middle" font-size="11" '
                 f'transform="rotate(-90 12 {(PAD_T + H - PAD_B) / 2})">{html.escape(ylabel)}</text>')
    return parts, fx, fy


def _svg(title: str, parts: list[str], legend: list[tuple[str, str]] = ()) -> str:
    keys = "".join(f'<rect x="{W - PAD_R - 150}" y="{PAD_T + 6 + 14 * i}" width="10" height="3" fill="{c}"/>'
                   f'<text x="{W - PAD_R - 136}" y="{PAD_T + 10 + 14 * i}" font-size="10">{html.escape(t)}</text>'
                   for i, (t, c) in enumerate(legend))
    return (f'<svg class="plot" role="img" aria-label="{html.escape(title)}" xmlns="http://www.w3.org/2000/svg" '
            f'width="{W}" height="{H}" viewBox="0 0 {W} {H}"><title>{html.escape(title)}</title>'
            f'<text x="{PAD_L}" y="16" font-size="12" font-weight="600">{html.escape(title)}</text>'
            + "".join(parts) + keys + "</svg>")


def _empty(title: str, why: str) -> str:
    return _svg(title, [f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle" font-size="12" fill="#777">'
                        f'{html.escape(why)}</text>'])


def best_so_far(points: list[tuple[float, float | None]]) -> list[tuple[float, float]]:
    """(x, best time up to x) for each x where some accepted time exists."""
    out, best = [], math.inf
    for x, t in points:
        if t is not None and t > 0:
            best = min(best, t)
        if best < math.inf:
            out.append((x, best))
    return out


def progress_plot(run: RunView, by_wall_time: bool) -> str:
    title = "best time vs " + ("wall time" if by_wall_time else "candidates measured")
    ok = [c for c in run.candidates if c.get("correct")]
    if by_wall_time:
        pts = [(c["elapsed_s"], c["time_ms"]) for c in ok if c.get("elapsed_s") is not None]
        pts.sort()
    else:
        pts = [(float(i), c["time_ms"]) for i, c in enumerate(run.candidates) if c.get("correct")]
    line = best_so_far(pts)
    if not line:
        return _empty(title, "no timed accepted candidates" + (" with wall-clock times (store not found)" if by_wall_time else ""))
    times = [t for _, t in line] + [t for _, t in pts if t]
    ylo, yhi = min(times + [run.floor_ms or math.inf]) * 0.8, max(times) * 1.25
    xhi = max(x for x, _ in pts) or 1.0
    parts, fx, fy = _axes("seconds since the run started" if by_wall_time else "candidate #", "time (ms)",
                          0.0, xhi, ylo, yhi, log_y=True)
    for x, t in pts:
        if t:
            parts.append(f'<circle cx="{fx(x):.1f}" cy="{fy(t):.1f}" r="2.5" fill="#bbb"/>')
    path = []
    for i, (x, t) in enumerate(line):
        if i:
            path.append(f"L{fx(x):.1f},{fy(line[i - 1][1]):.1f}")
        path.append(("M" if not i else "L") + f"{fx(x):.1f},{fy(t):.1f}")
    path.append(f"L{fx(xhi):.1f},{fy(line[-1][1]):.1f}")
    parts.append(f'<path d="{" ".join(path)}" fill="none" stroke="{_COLORS[0]}" stroke-width="2"/>')
    legend = [("best so far", _COLORS[0]), ("each accepted candidate", "#bbb")]
    if run.floor_ms:
        parts.append(f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{fy(run.floor_ms):.1f}" y2="{fy(run.floor_ms):.1f}" '
                     f'stroke="{_COLORS[1]}" stroke-dasharray="5,3"/>')
        legend.append(("roofline floor", _COLORS[1]))
    return _svg(title, parts, legend)


def roofline_plot(run: RunView) -> str:
    title = "achieved time vs roofline floor per candidate"
    pts = [(i, c["time_ms"], c.get("correct")) for i, c in enumerate(run.candidates) if c.get("time_ms")]
    if not pts:
        return _empty(title, "no timed candidates")
    if not run.floor_ms:
        return _empty(title, "no roofline floor for this problem (not traced)")
    times = [t for _, t, _ in pts] + [run.floor_ms]
    parts, fx, fy = _axes("candidate #", "time (ms), log scale", 0.0, max(1.0, float(len(run.candidates) - 1)),
                          min(times) * 0.8, max(times) * 1.25, log_y=True)
    for i, t, ok in pts:
        colour = _COLORS[2] if ok else _COLORS[1]
        parts.append(f'<circle cx="{fx(i):.1f}" cy="{fy(t):.1f}" r="3" fill="{colour}"><title>'
                     f'{html.escape(run.candidates[i]["id"])}: {t:.4g} ms, {run.floor_ms / t:.1%} of the floor</title></circle>')
    parts.append(f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{fy(run.floor_ms):.1f}" y2="{fy(run.floor_ms):.1f}" '
                 f'stroke="{_COLORS[0]}" stroke-dasharray="5,3"/>')
    return _svg(title, parts, [("roofline floor", _COLORS[0]), ("accepted", _COLORS[2]), ("rejected", _COLORS[1])])


def speedup_histogram(rows: tuple[dict, ...], key: str = "speedup_vs_eager") -> str:
    title = "speedup distribution (" + key.removeprefix("speedup_").replace("_", " ") + ")"
    vals = [r[key] for r in rows if r.get(key)]
    if not vals:
        return _empty(title, "no timed results")
    logs = [math.log2(v) for v in vals]
    lo, hi = math.floor(min(logs + [0.0]) * 2) / 2, math.ceil(max(logs + [0.0]) * 2) / 2 + 0.5
    edges = [lo + 0.5 * i for i in range(int(round((hi - lo) / 0.5)) + 1)]
    counts = [sum(1 for v in logs if a <= v < b) for a, b in zip(edges, edges[1:])]
    ticks = [(float(v), f"{2.0 ** v:g}x") for v in range(math.ceil(lo), math.floor(hi) + 1)]
    parts, fx, fy = _axes("speedup (log scale, bins of 2^0.5)", "count", lo, hi, 0.0, max(counts) * 1.2 or 1.0,
                          xticks=ticks)
    for (a, b), n in zip(zip(edges, edges[1:]), counts):
        if n:
            parts.append(f'<rect x="{fx(a) + 1:.1f}" y="{fy(n):.1f}" width="{fx(b) - fx(a) - 2:.1f}" '
                         f'height="{fy(0) - fy(n):.1f}" fill="{_COLORS[0]}"><title>{2 ** a:.2g}x–{2 ** b:.2g}x: {n}</title></rect>')
    parts.append(f'<line x1="{fx(0):.1f}" x2="{fx(0):.1f}" y1="{PAD_T}" y2="{H - PAD_B}" stroke="{_COLORS[1]}" stroke-dasharray="4,3"/>')
    return _svg(title, parts, [("1x (no speedup)", _COLORS[1])])


def roofline_bars(rows: tuple[dict, ...]) -> str:
    title = "roofline fraction per op (floor / achieved time)"
    data = [(r["name"], r["roofline_fraction"]) for r in rows if r.get("roofline_fraction")]
    if not data:
        return _empty(title, "no roofline fractions (untimed or untraced)")
    parts, fx, fy = _axes("", "fraction of the floor", 0.0, float(len(data)), 0.0, max(1.0, max(v for _, v in data)),
                          xticks=[])
    width = (W - PAD_L - PAD_R) / len(data)
    slanted = len(data) > 8   # many names: written at an angle so they do not overlap
    for i, (name, v) in enumerate(data):
        x = PAD_L + i * width
        parts.append(f'<rect x="{x + 2:.1f}" y="{fy(v):.1f}" width="{width - 4:.1f}" height="{fy(0) - fy(v):.1f}" '
                     f'fill="{_COLORS[2]}"><title>{html.escape(name)}: {v:.1%}</title></rect>')
        cx, cy = x + width / 2, H - PAD_B + 10
        turn = f' transform="rotate(-35 {cx:.1f} {cy})" text-anchor="end"' if slanted else ' text-anchor="middle"'
        parts.append(f'<text x="{cx:.1f}" y="{cy + (0 if slanted else 8)}" font-size="8"{turn}>{html.escape(name[:14])}</text>')
    return _svg(title, parts)


# -- the page --------------------------------------------------------------------------------------

def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                             autoescape=jinja2.select_autoescape(["html", "j2"]), trim_blocks=True, lstrip_blocks=True)
    env.filters["ms"] = lambda v: "—" if v is None else f"{v:.4g}"
    env.filters["x"] = lambda v: "—" if v is None else f"{v:.2f}x"
    env.filters["pct"] = lambda v: "—" if v is None else f"{v:.1%}"
    return env


def render_html(view: PageView) -> str:
    suite_plots = []
    if view.suite is not None:
        suite_plots = [speedup_histogram(view.suite.rows), speedup_histogram(view.suite.rows, "speedup_vs_compile"),
                       roofline_bars(view.suite.rows)]
    runs = [{"view": r, "plots": [progress_plot(r, False), progress_plot(r, True), roofline_plot(r)]} for r in view.runs]
    return _environment().get_template("page.html.j2").render(
        page=view, suite_plots=[Markup(p) for p in suite_plots],
        runs=[{"view": r["view"], "plots": [Markup(p) for p in r["plots"]]} for r in runs],
        version=akg.__version__, open_runs=len(view.runs) == 1)


def write_report(source: str | Path, out: str | Path) -> PageView:
    from akg.pipeline import atomic_write
    view = load_view(source)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, render_html(view))
    return view
