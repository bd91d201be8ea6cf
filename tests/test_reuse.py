"""Stored verdicts are keyed by what they depend on, environment failures are not kept, and
timings that were disturbed (wide spread, eager far from the run's) are measured again."""
import sqlite3
import types

import pytest

from akg import cli, fingerprint, reuse
from akg.ir import Check, Verdict
from akg.search import Search, SearchOptions
from akg.store import Store
from akg.targets import HardwareSpec

HW = HardwareSpec(name="hw", backend="cpu")


def fake_dsl(version="1.0"):
    return types.SimpleNamespace(name="fake", timing_meaningful_on=("cpu",), versions=lambda: {"fakec": version})


def accepted(cid="c1", time_ms=1.0, spread=0.05, eager=2.0):
    return Verdict(cid, "done", True, True, checks=(Check("runs", True),), time_ms=time_ms, spread=spread,
                   baselines=(("eager_ms", eager),), speedups=(("vs_eager", eager / time_ms),))


def search(store, dsl=None, pool=None, **options):
    s = Search(None, dsl or fake_dsl(), "cpu", HW, pool, store, SearchOptions(**options))
    s.eager_ms = 2.0
    return s


def test_fingerprint_follows_toolchain_and_device():
    a = fingerprint.fingerprint(fingerprint.versions(fake_dsl("1.0"), "cpu", "hw"))
    assert a == fingerprint.fingerprint(fingerprint.versions(fake_dsl("1.0"), "cpu", "hw"))
    assert a != fingerprint.fingerprint(fingerprint.versions(fake_dsl("1.1"), "cpu", "hw"))
    assert a != fingerprint.fingerprint(fingerprint.versions(fake_dsl("1.0"), "cpu", "hw2"))
    found = fingerprint.versions(fake_dsl(), "cpu", "hw")
    assert found["akg_harness"] == fingerprint.HARNESS_VERSION and "torch" in found and found["dsl:fakec"] == "1.0"


def test_verdict_from_another_toolchain_is_not_replayed(tmp_path):
    with Store(tmp_path / "s.db") as store:
        old = search(store, fake_dsl("1.0"))
        old._keep(accepted())
        assert old._stored("c1") is not None
        assert search(store, fake_dsl("2.0"))._stored("c1") is None


def test_environment_failures_are_not_stored(tmp_path):
    missing = Verdict("c1", "load", False, False, checks=(Check("loads", False, "ModuleNotFoundError: No module named 'triton'"),),
                      errors=("ModuleNotFoundError: No module named 'triton'",))
    crashed = Verdict("c2", "correctness", True, False, checks=(Check("worker_alive", False, "killed by SIGKILL"),))
    wrong = Verdict("c3", "correctness", True, False, checks=(Check("values", False, "max abs err 3.0"),))
    with Store(tmp_path / "s.db") as store:
        s = search(store)
        for v in (missing, crashed, wrong):
            s._keep(v)
        assert store.verdict("c1", *s._key()) is None and store.verdict("c2", *s._key()) is None
        assert store.verdict("c3", *s._key()) is not None and s._stored("c3") is not None


def test_environment_failure_stored_by_older_akg_is_measured_again(tmp_path):
    missing = Verdict("c1", "load", False, False, checks=(Check("loads", False, "No module named 'triton'"),))
    with Store(tmp_path / "s.db") as store:
        s = search(store)
        store.add_verdict(missing, *s._key(), versions=s.versions_key)
        assert s._stored("c1") is None


@pytest.mark.parametrize("verdict,replayed", [
    (accepted(spread=0.05), True),
    (accepted(spread=0.60), False),                  # trials too spread out
    (accepted(time_ms=6.185, eager=15.6), False),    # eager beside it far from the run's 2.0 ms
])
def test_disturbed_timings_are_measured_again(tmp_path, verdict, replayed):
    with Store(tmp_path / "s.db") as store:
        s = search(store)
        s._keep(verdict)
        assert (s._stored("c1") is not None) == replayed


@pytest.mark.parametrize("verdict", [accepted(spread=0.60), accepted(time_ms=6.185, eager=15.6)])
def test_a_replayed_run_takes_disturbed_timings_as_recorded(tmp_path, verdict):
    """Reproducing a recorded run (an LLM cassette): measured again, a disturbed timing would
    steer the replay away from the recording."""
    with Store(tmp_path / "s.db") as store:
        s = search(store, replay=True)
        s._keep(verdict)
        assert s._stored("c1") == verdict


def test_remeasure_replays_rejections_but_not_timings(tmp_path):
    wrong = Verdict("c2", "correctness", True, False, checks=(Check("values", False, "wrong"),))
    with Store(tmp_path / "s.db") as store:
        s = search(store, remeasure=True)
        s._keep(accepted())
        s._keep(wrong)
        assert s._stored("c1") is None and s._stored("c2") is not None


def test_outlier_is_measured_again_within_the_run(tmp_path):
    first, second = accepted(time_ms=6.185, eager=15.6), accepted(time_ms=0.6, eager=1.9)
    replies = iter([first, second])
    pool = types.SimpleNamespace(evaluate=lambda *a, **k: next(replies))
    said = []
    with Store(tmp_path / "s.db") as store:
        s = search(store, pool=pool)
        s.progress = lambda msg, scored: said.append(msg)
        s.floor_ms = None
        s.problem = types.SimpleNamespace()
        cand = types.SimpleNamespace(source="", id="c1")
        from akg.harness import HarnessConfig
        assert s._judge(cand, HarnessConfig()) is second
    assert any("again" in m and "15.6" in m for m in said)


def test_old_store_gains_the_versions_column_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript("""CREATE TABLE verdicts (
        candidate TEXT NOT NULL, device TEXT NOT NULL, hardware TEXT NOT NULL, policy TEXT NOT NULL,
        accepted INTEGER NOT NULL, time_ms REAL, verdict TEXT NOT NULL, created REAL NOT NULL,
        PRIMARY KEY (candidate, device, hardware, policy));""")
    from akg.store import verdict_to_json
    db.execute("INSERT INTO verdicts VALUES (?,?,?,?,?,?,?,?)", ("c1", "cpu", "hw", "strict", 1, 1.0,
                                                                verdict_to_json(accepted()), 0.0))
    db.commit()
    db.close()
    with Store(path) as store:
        assert store.verdict("c1", "cpu", "hw", "strict").time_ms == 1.0     # still readable
        assert store.verdict("c1", "cpu", "hw", "strict", versions="abc") is None   # but not current


def test_remeasure_flag():
    args = cli.build_parser().parse_args(["optimize", "p.py", "--dsl", "cpp", "--remeasure"])
    assert cli._settings(args)[0].remeasure
    args = cli.build_parser().parse_args(["bench", "d", "--dsl", "cpp", "--out", "x.json", "--remeasure"])
    assert cli._settings(args)[0].remeasure


def test_environmental_names_the_missing_piece():
    v = Verdict("c", "build", False, False, errors=("build: [Errno 2] No such file or directory: 'cc9'",))
    assert "cc9" in reuse.environmental(v)


def test_bench_passes_remeasure_to_each_problem(tmp_path, monkeypatch):
    import akg.bench
    seen = {}

    def fake_run_bench(entries, target, out, shared, **kw):
        seen["shared"] = shared
        return {"summary": {}, "rows": []}
    monkeypatch.setattr(akg.bench, "run_bench", fake_run_bench)
    monkeypatch.setattr(akg.bench, "markdown_table", lambda result: "")
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "p.py").write_text("x = 1\n")
    cli.main(["bench", str(tmp_path / "suite"), "--dsl", "cpp", "--out", str(tmp_path / "b.json"),
              "--store", str(tmp_path / "s.db"), "--remeasure"])
    assert "--remeasure" in seen["shared"]


def test_spread_alone_is_not_judged_twice_in_the_run(tmp_path):
    spread = accepted(spread=0.9)
    replies = iter([spread])
    pool = types.SimpleNamespace(evaluate=lambda *a, **k: next(replies))
    with Store(tmp_path / "s.db") as store:
        s = search(store, pool=pool)
        s.floor_ms, s.problem = None, types.SimpleNamespace()
        from akg.harness import HarnessConfig
        assert s._judge(types.SimpleNamespace(source="", id="c1"), HarnessConfig()) is spread
        s._keep(spread)
        assert s._stored("c1") is None          # but not replayed by a later run


class ScriptedPool:
    """Answers each evaluate with the next verdict of a script (the harness itself is tested elsewhere)."""

    def __init__(self, verdicts):
        self.verdicts = list(verdicts)

    def evaluate(self, *args, **kwargs):
        return self.verdicts.pop(0)


def test_the_runs_eager_is_the_median_of_the_baseline_and_the_eager_timed_beside_each_judgement(tmp_path):
    """The baseline (2.0 ms) was timed while builds started beside it; the eager timed beside the
    candidates says about 1 ms. The run's eager, the reference's time and the baselines follow the
    median, so later candidates are not all outliers judged twice."""
    with Store(tmp_path / "s.db") as store:
        pool = ScriptedPool([accepted("a", 0.5, eager=0.95), accepted("a", 0.5, eager=1.0),
                             accepted("b", 0.5, eager=0.9), accepted("c", 0.4, eager=1.05)])
        s = search(store, pool=pool)
        s.baselines = {"eager_ms": 2.0, "compile_ms": 1.5}
        s.reference = types.SimpleNamespace(verdict=accepted("ref", 2.0, eager=2.0))
        config = types.SimpleNamespace(replace=lambda **kw: None)
        s._judge(types.SimpleNamespace(id="a", source=""), config)   # 0.95 against 2.0: judged again
        assert s.eager_ms == pytest.approx(1.5)                      # median of 2.0 and the re-judged 1.0
        s._judge(types.SimpleNamespace(id="b", source=""), config)   # agrees with the run's eager: once
        s._judge(types.SimpleNamespace(id="c", source=""), config)
        assert pool.verdicts == []
        assert s.eager_ms == pytest.approx(1.025) and s.baselines["eager_ms"] == pytest.approx(1.025)
        assert s.reference.verdict.time_ms == pytest.approx(1.025)
        assert "far from the median of the 4 eager timings" in s._eager_note()
