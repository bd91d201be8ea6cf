"""The store keeps every committed verdict through kill -9 and concurrent writers."""
import os
import signal
import subprocess
import sys
import textwrap
import time

from akg.ir import Candidate, Check, Verdict
from akg.store import Store


def _candidate(i: int) -> Candidate:
    return Candidate(f"c{i:04d}", None, "cpp", f"class ModelNew: pass  # {i}\n", None, "template", f"cand {i}")


def _verdict(i: int) -> Verdict:
    return Verdict(f"c{i:04d}", "done", True, True, checks=(Check("allclose", True, "max 1e-7"),),
                   time_ms=1.0 + i, spread=0.01, baselines=(("eager_ms", 2.0),), speedups=(("vs_eager", 2.0 / (1 + i)),))


def test_verdict_round_trip(tmp_path):
    with Store(tmp_path / "s.db") as store:
        store.add_problem("p", "prob", None, "src")
        run = store.start_run("p", "cpp", "cpu", "host", {"budget": 3})
        store.add_candidate("p", _candidate(1), run, 1)
        store.add_verdict(_verdict(1), "cpu", "host", "strict")
        got = store.verdict("c0001", "cpu", "host", "strict")
        assert got == _verdict(1)
        assert store.verdict("c0001", "cpu", "host", "standard") is None
        assert store.unfinished_run("p", "cpp", "cpu", "host") == run
        store.finish_run(run, "c0001")
        assert store.unfinished_run("p", "cpp", "cpu", "host") is None
        assert [row["id"] for row, _ in store.history("p", "cpp", "cpu", "host", "strict")] == ["c0001"]


WRITER = textwrap.dedent("""
    import sys, time
    from akg.ir import Candidate, Verdict
    from akg.store import Store
    store = Store(sys.argv[1])
    store.add_problem("p", "prob", None, "src")
    start, n = int(sys.argv[2]), int(sys.argv[3])
    for i in range(start, start + n):
        c = Candidate(f"c{i:04d}", None, "cpp", f"# {i}", None, "template")
        store.add_candidate("p", c)
        store.add_verdict(Verdict(c.id, "done", True, True, time_ms=float(i)), "cpu", "host", "strict")
        print(i, flush=True)
""")


def test_survives_sigkill_mid_run(tmp_path):
    db = tmp_path / "s.db"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db), "0", "100000"], stdout=subprocess.PIPE, text=True)
    committed = []
    for line in proc.stdout:
        committed.append(int(line))
        if len(committed) >= 40:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with Store(db) as store:
        for i in committed:  # everything the writer reported as done is there, intact
            v = store.verdict(f"c{i:04d}", "cpu", "host", "strict")
            assert v is not None and v.time_ms == float(i)


def test_two_writers_share_one_store(tmp_path):
    db = tmp_path / "s.db"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(start), "60"], stdout=subprocess.DEVNULL)
             for start in (0, 1000)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    with Store(db) as store:
        found = [store.verdict(f"c{i:04d}", "cpu", "host", "strict") for i in list(range(60)) + list(range(1000, 1060))]
        assert all(v is not None for v in found)


def test_processes_opening_an_older_store_at_once_all_open_it(tmp_path):
    # A store from before the verdicts' versions column, opened by several runs at the same moment:
    # each must open it (the column is added once), none may fail with "duplicate column".
    opener = "import sys; from akg.store import Store; Store(sys.argv[1]).close()"
    for trial in range(4):
        db = tmp_path / f"old{trial}.db"
        with Store(db) as store:
            store._db.execute("ALTER TABLE verdicts DROP COLUMN versions")
        procs = [subprocess.Popen([sys.executable, "-c", opener, str(db)], stderr=subprocess.PIPE, text=True)
                 for _ in range(6)]
        failures = [p.stderr.read().strip()[-200:] for p in procs if p.wait(timeout=120) != 0]
        assert not failures, failures[0]
