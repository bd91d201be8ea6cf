"""Progress lines: distinguishing schedule values, k of the budget, time left, best so far, why the
search stopped, and one measurement per line; nothing at all with --json."""
import io
import re
import types

from rich.console import Console

from akg.ir import Candidate, Check, Verdict
from akg.progress import Progress
from akg.search import Scored, Search, SearchOptions
from akg.store import Store
from akg.targets import HardwareSpec

LONG = "unfused: pointwise[block=65536,threads=0]; pointwise[block=65536,threads=0]; pointwise[block="


def scored(cid, description, time_ms=1.0, eager=2.0, reused=False, accepted=True):
    c = Candidate(cid, None, "cpp", "class ModelNew: pass", None, "template", description)
    if accepted:
        v = Verdict(cid, "done", True, True, checks=(Check("runs", True),), time_ms=time_ms,
                    baselines=(("eager_ms", eager),), speedups=(("vs_eager", eager / time_ms),))
    else:
        v = Verdict(cid, "correctness", True, False, checks=(Check("values", False, "max abs err 2"),))
    return Scored(c, v, reused)


def progress(**kw):
    out = io.StringIO()
    return Progress(console=Console(file=out, width=400, soft_wrap=True), **kw), out


def test_candidate_lines_tell_neighbours_apart_and_count_the_budget():
    p, out = progress(budget=12, time_limit_s=600)
    p("candidate", scored("aaaaaaaaaaaa", LONG + "1024,threads=0]", time_ms=0.6, eager=1.5))
    p("candidate", scored("bbbbbbbbbbbb", LONG + "4096,threads=2]", time_ms=0.8, eager=1.6))
    p("candidate", scored("cccccccccccc", "fuse-all: pointwise[block=64]", reused=True))
    text = out.getvalue()
    assert LONG + "1024,threads=0]" in text and LONG + "4096,threads=2]" in text   # not cut at 70
    assert "[1/12] aaaaaaaaaaaa" in text and "[2/12] bbbbbbbbbbbb" in text and "[stored] cccccccccccc" in text
    assert re.search(r"\d+s left", text)
    assert "best 0.6 ms (2.50x)" in text
    assert p.done == 2 and p.replayed == 1


def test_each_line_divides_its_own_figures():
    p, out = progress(budget=4)
    p("candidate", scored("aaaaaaaaaaaa", "x", time_ms=6.185, eager=15.65))
    m = re.search(r"ok ([\d.]+) ms \(eager ([\d.]+) ms beside it: ([\d.]+)x\)", out.getvalue())
    t, e, x = map(float, m.groups())
    assert abs(e / t - x) < 0.01


def test_stop_reason_and_full_verification_not_counted():
    p, out = progress(budget=3)
    p("candidate", scored("aaaaaaaaaaaa", "x"))
    p("search stopped: the budget of 3 candidates was measured", None)
    p("verified", scored("aaaaaaaaaaaa", "x"))
    text = out.getvalue()
    assert "search stopped: the budget of 3 candidates was measured (1 measured, 0 from the store)" in text
    assert "[verify] aaaaaaaaaaaa" in text and "[final]" not in text and p.done == 1


def test_final_labels_only_the_end_of_search_choice():
    p, out = progress(budget=3)
    p("candidate", scored("aaaaaaaaaaaa", "x"))
    p("verified", scored("aaaaaaaaaaaa", "x"))          # promoted mid-search
    p("verified", scored("bbbbbbbbbbbb", "y", reused=True))   # a stored full verdict
    p("final", scored("aaaaaaaaaaaa", "x", reused=True))
    lines = out.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["[1/3]", "[verify]", "[verify]", "[final]"]
    assert p.done == 1


def test_quiet_prints_nothing():
    p, out = progress(quiet=True, budget=3)
    p("measuring eager and torch.compile baselines", None)
    p("candidate", scored("aaaaaaaaaaaa", "x"))
    p("search stopped: x", None)
    assert out.getvalue() == ""


def test_bench_problem_resets_counts():
    p, out = progress(budget=3)
    p("candidate", scored("aaaaaaaaaaaa", "x"))
    p("problem 02_gelu", None)
    assert p.done == 0 and p.best is None


def _search(tmp_path, **options):
    from akg.harness import HarnessConfig
    dsl = types.SimpleNamespace(name="fake", timing_meaningful_on=("cpu",), versions=lambda: {})
    pool = types.SimpleNamespace(config=HarnessConfig())
    s = Search(None, dsl, "cpu", HardwareSpec(name="hw", backend="cpu"), pool, Store(tmp_path / "s.db"),
               SearchOptions(**options))
    return s


def test_search_says_it_stopped_near_the_floor(tmp_path):
    s = _search(tmp_path, budget=12)
    s.floor_ms = 0.5
    s.scored.append(scored("aaaaaaaaaaaa", "x", time_ms=0.55))
    assert s._near_floor()
    assert "within 1.15x of the roofline floor 0.5 ms" in s.stop_reason


def test_search_says_it_stopped_at_budget_or_time(tmp_path):
    s = _search(tmp_path, budget=2)
    s.measured = 2
    assert s._out_of_budget() and s.stop_reason == "the budget of 2 candidates was measured"
    s = _search(tmp_path, budget=9, time_limit_s=0.01)
    assert s._out_of_budget() and "time limit of 0.01 s" in s.stop_reason
