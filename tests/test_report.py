"""``akg report``: a static page from a run folder, a bench JSON and a store, checked in headless Chromium."""
import json
import re
from akg.cli import main
from akg.ir import Candidate, Verdict
from akg.report import best_so_far, load_view, render_html
from akg.store import Store
from headless import blank_png_bytes, dump_dom, png_size, screenshot


def _run_report(store_path=None, run_id=None) -> dict:
    cands = [
        {"id": "ref000000000", "origin": "reference", "dsl": "cpp", "parent": None, "description": "unmodified reference",
         "correct": True, "time_ms": 2.0, "speedup_vs_eager": 1.0, "roofline_fraction": 0.05, "reason": ""},
        {"id": "aaaaaaaaaaaa", "origin": "template", "dsl": "cpp", "parent": None, "description": "fuse-all: x",
         "correct": True, "time_ms": 1.0, "speedup_vs_eager": 2.0, "roofline_fraction": 0.1, "reason": ""},
        {"id": "bbbbbbbbbbbb", "origin": "template", "dsl": "cpp", "parent": "aaaaaaaaaaaa", "description": "fuse-all: y",
         "correct": False, "time_ms": None, "speedup_vs_eager": None, "roofline_fraction": None,
         "reason": "correctness: seed 0 output 0 differs <b>badly</b>"},
        {"id": "cccccccccccc", "origin": "template", "dsl": "cpp", "parent": "aaaaaaaaaaaa", "description": "fuse-all: z",
         "correct": True, "time_ms": 0.5, "speedup_vs_eager": 4.0, "roofline_fraction": 0.2, "reason": ""},
    ]
    return {"problem": "toy_problem", "dsl": "cpp", "device": "cpu", "hardware": "cpu-host",
            "best": {"candidate_id": "cccccccccccc", "origin": "template", "dsl": "cpp", "description": "fuse-all: z",
                     "correct": True, "time_ms": 0.5, "speedup_vs_eager": 4.0, "speedup_vs_compile": 3.0,
                     "roofline_fraction": 0.2, "timing_meaningful": True},
            "baselines": {"eager_ms": 2.0, "compile_ms": 1.5}, "analysis": {"floor_ms": 0.1},
            "candidates": cands, "notes": ["a note"], "run_id": run_id, "store": store_path}


def test_best_so_far_is_a_running_minimum():
    assert best_so_far([(0, None), (1, 3.0), (2, 5.0), (3, 1.0), (4, None)]) == [(1, 3.0), (2, 3.0), (3, 1.0), (4, 1.0)]


def test_run_page_has_plots_candidates_lineage_and_source(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "report.json").write_text(json.dumps(_run_report()))
    (run / "best.py").write_text("class ModelNew:  # the <best> kernel\n    pass\n")
    page = render_html(load_view(run))
    assert page.count("<svg") == 3   # progress vs candidates, vs wall time, time vs floor
    assert "each accepted candidate" in page and "roofline floor" in page
    assert "the &lt;best&gt; kernel" in page                      # source shown, escaped
    assert "&lt;b&gt;badly&lt;/b&gt;" in page                    # verdict reasons escaped
    rows = re.findall(r'<tr class="(ok|bad)"><td>(\d+)</td><td class="l">(\w+)</td><td class="l">(\w*)</td>', page)
    assert [(r[2], r[3]) for r in rows] == [("ref000000000", ""), ("aaaaaaaaaaaa", ""),
                                            ("bbbbbbbbbbbb", "aaaaaaaaaaaa"), ("cccccccccccc", "aaaaaaaaaaaa")]
    assert [r[0] for r in rows] == ["ok", "ok", "bad", "ok"]


def test_bench_json_gives_the_per_problem_table(tmp_path):
    bench = {"suite": "s", "dsl": "cpp", "device": "cpu", "hardware": "cpu-host", "date": "today",
             "summary": {"problems": 2, "correct": 1, "generated": 1, "fast_1": 0.5, "fast_2": 0.5,
                         "geomean_speedup_vs_eager": 2.5, "geomean_speedup_vs_compile": 1.2},
             "problems": [{"problem": "p_one", "correct": True, "origin": "template", "time_ms": 1.0, "eager_ms": 2.5,
                           "compile_ms": 1.2, "speedup_vs_eager": 2.5, "speedup_vs_compile": 1.2,
                           "roofline_fraction": 0.3, "notes": []},
                          {"problem": "p_two", "correct": False, "origin": None, "error": "problem p_two: broken",
                           "speedup_vs_eager": None, "speedup_vs_compile": None}]}
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(bench))
    page = render_html(load_view(path))
    assert re.findall(r'data-name="(\w+)"', page) == ["p_one", "p_two"]
    assert "problem p_two: broken" in page and "speedup distribution" in page


def _store_with_a_run(path):
    with Store(path) as store:
        store.add_problem("d1", "stored_problem", None, "source")
        run = store.start_run("d1", "cpp", "cpu", "cpu-host", {})
        ref = Candidate("r1", None, "cpp", "ref", None, "reference", "unmodified reference")
        good = Candidate("g1", None, "cpp", "class ModelNew: pass  # stored best", None, "template", "plan a")
        bad = Candidate("b1", "g1", "cpp", "bad", None, "template", "plan b")
        for i, c in enumerate((ref, good, bad)):
            store.add_candidate("d1", c, run, i)
        store.add_baselines("d1", "cpu", "cpu-host", 2.0, None)
        store.add_verdict(Verdict("g1", "done", True, True, time_ms=1.0), "cpu", "cpu-host", "strict")
        store.add_verdict(Verdict("b1", "correctness", True, False, errors=("wrong values",)), "cpu", "cpu-host", "strict")
        store.finish_run(run, "g1")
    return run


def test_store_page_reads_the_newest_run(tmp_path):
    _store_with_a_run(tmp_path / "akg.db")
    view = load_view(tmp_path / "akg.db")
    assert [r["name"] for r in view.suite.rows] == ["stored_problem"]
    run = view.runs[0]
    assert [c["id"] for c in run.candidates] == ["r1", "g1", "b1"]
    assert [c["correct"] for c in run.candidates] == [True, True, False]
    assert run.candidates[2]["parent"] == "g1" and "wrong values" in run.candidates[2]["reason"]
    assert all(c["elapsed_s"] is not None for c in run.candidates[1:])
    assert "# stored best" in render_html(view)


def test_cli_bad_input_is_one_line(tmp_path, capsys):
    (tmp_path / "x.json").write_text("{\"what\": 1}")
    (tmp_path / "garbage.db").write_text("not a database")
    for target in (tmp_path / "missing", tmp_path / "x.json", tmp_path / "garbage.db"):
        assert main(["report", str(target), "--out", str(tmp_path / "r.html")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("akg: error: report:"), err
    assert not (tmp_path / "r.html").exists()


def test_report_in_headless_chromium(tmp_path):
    """The page a user opens: the candidate table has its rows and the plots draw something."""
    store = tmp_path / "akg.db"
    run_id = _store_with_a_run(store)
    run = tmp_path / "run"
    run.mkdir()
    (run / "report.json").write_text(json.dumps(_run_report(str(store), run_id)))
    (run / "best.py").write_text("class ModelNew: pass\n")
    out = tmp_path / "report.html"
    assert main(["report", str(run), "--out", str(out)]) == 0
    profile = tmp_path / "profile"
    dom = dump_dom(out, profile)
    body = dom[dom.index('<table class="candidates">'):]
    body = body[:body.index("</table>")]
    assert body.count("<tr") == 5                # header + 4 candidates
    assert dom.count("<svg") == 3 and "toy_problem" in dom
    png = screenshot(out, tmp_path / "shot.png", profile)
    assert png_size(png) == (1200, 1400)
    assert len(png) > 3 * blank_png_bytes(tmp_path, profile), "the screenshot looks blank"
