"""The summary line and report.json: each figure comes from one measurement, so a reader can divide
one by the other; figures from another measurement are labelled; a time below the floor is suspect."""
import re
import types
from pathlib import Path

from akg import cli
from akg.ir import Candidate, Check, Verdict
from akg.pipeline import build_report
from akg.search import Scored, SearchResult


def _result(best_ms=0.4264, beside_eager=1.6915, baseline_eager=0.4067, compile_ms=0.9, floor_ms=None):
    ref = Scored(Candidate("ref000000000", None, "cpp", "x", None, "reference", "reference"),
                 Verdict("ref000000000", "done", True, True, time_ms=baseline_eager, speedups=(("vs_eager", 1.0),)))
    best_v = Verdict("best00000000", "done", True, True, checks=(Check("runs", True),), time_ms=best_ms, spread=0.03,
                     baselines=(("eager_ms", beside_eager), ("compile_ms", compile_ms)),
                     speedups=(("vs_eager", beside_eager / best_ms), ("vs_compile", compile_ms / best_ms)))
    best = Scored(Candidate("best00000000", None, "cpp", "x", None, "template", "fuse-all: pointwise[block=64]"), best_v)
    return SearchResult(best, ref, [ref, best], {"eager_ms": baseline_eager, "compile_ms": compile_ms}, 1, floor_ms,
                        True, [], {"torch": "x"}, "the budget of 2 candidates was measured")


def _report(result):
    target = types.SimpleNamespace(dsl=types.SimpleNamespace(name="cpp"), device="cpu",
                                   hardware=types.SimpleNamespace(name="hw"))
    return build_report(types.SimpleNamespace(name="p"), target, result, {}, types.SimpleNamespace(path=Path("s.db")))


def test_report_best_figures_divide():
    best = _report(_result())["best"]
    assert best["eager_ms"] == 1.6915 and best["time_ms"] == 0.4264
    assert abs(best["eager_ms"] / best["time_ms"] - best["speedup_vs_eager"]) < 1e-9
    assert abs(best["compile_ms"] / best["time_ms"] - best["speedup_vs_compile"]) < 1e-9
    assert "interleaved" in best["measurement"]


def test_report_labels_the_separate_baselines_and_says_why_it_stopped():
    report = _report(_result())
    assert report["baselines"]["eager_ms"] == 0.4067 and "before the search" in report["baselines"]["measurement"]
    assert report["stopped"] == "the budget of 2 candidates was measured"
    assert report["versions"] == {"torch": "x"}
    cand = report["candidates"][1]
    assert abs(cand["eager_ms"] / cand["time_ms"] - cand["speedup_vs_eager"]) < 1e-9


def test_summary_line_divides(capsys):
    cli._print_summary({**_report(_result()), "problem": "p", "dsl": "cpp", "device": "cpu", "hardware": "hw"}, Path("o"))
    line = next(l for l in capsys.readouterr().out.splitlines() if "best:" in l)
    t, e, x = map(float, re.search(r"verified ([\d.]+) ms · eager ([\d.]+) ms timed with it: ([\d.]+)x", line).groups())
    assert abs(e / t - x) / x < 1e-3


def test_below_the_floor_is_suspect(capsys):
    report = _report(_result(best_ms=0.4, floor_ms=0.53))
    assert "below the roofline floor" in report["best"]["suspect"]
    assert _report(_result(best_ms=0.6, floor_ms=0.53))["best"]["suspect"] is None
    cli._print_summary(report, Path("o"))
    assert "suspect:" in capsys.readouterr().out


def test_bench_row_divides():
    from akg.bench import _result_line, _row
    report = _report(_result())
    report["analysis"] = {}
    row = _row(report)
    assert abs(row["eager_ms"] / row["time_ms"] - row["speedup_vs_eager"]) < 1e-9
    assert row["baseline_eager_ms"] == 0.4067
    assert "0.4264 ms · 3.967x vs eager" in _result_line(row)
