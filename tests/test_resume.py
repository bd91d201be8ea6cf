"""kill -9 of a running `akg optimize`, then --resume: nothing verified is lost or re-measured."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from akg import reuse
from akg.store import verdict_from_json

ROOT = Path(__file__).resolve().parents[1]
PROBLEM = ROOT / "examples" / "problems" / "12_mean_middle_dim.py"


def _optimize(tmp_path, *extra):
    return [sys.executable, "-m", "akg.cli", "optimize", str(PROBLEM), "--dsl", "cpp", "--device", "cpu",
            "--budget", "6", "--no-compile", "--trials", "30", "--out", str(tmp_path / "out"),
            "--store", str(tmp_path / "s.db"), *extra]


def _verdicts(db: Path) -> dict[tuple, str]:
    """Every stored verdict by its full key: a candidate has one row per level (screened, fully
    verified), and a row added after the kill must not be mistaken for a changed one."""
    if not db.exists():
        return {}
    try:
        with sqlite3.connect(db, timeout=30) as conn:
            rows = conn.execute("SELECT candidate, device, hardware, policy, verdict FROM verdicts").fetchall()
            return {tuple(r[:4]): r[4] for r in rows}
    except sqlite3.OperationalError:  # tables not created yet
        return {}


def test_sigkill_then_resume_keeps_every_verdict(tmp_path):
    db = tmp_path / "s.db"
    proc = subprocess.Popen(_optimize(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 400
    while len(_verdicts(db)) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the conductor and its workers, mid-run
    proc.wait()
    before = _verdicts(db)
    assert len(before) >= 2, "the run was killed before it stored two verdicts"

    with sqlite3.connect(db) as conn:
        runs = conn.execute("SELECT status FROM runs").fetchall()
    assert runs == [("running",)], (runs, proc.returncode)

    r = subprocess.run(_optimize(tmp_path, "--resume", "--json"), capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    after = _verdicts(db)
    eager = report["baselines"]["eager_ms"]
    # Every stored verdict survives unchanged, unless its timing was disturbed (then it is measured again).
    disturbed = {key[0] for key, verdict in before.items()
                 if reuse.timing_outlier(verdict_from_json(verdict), eager)
                 or reuse.environmental(verdict_from_json(verdict))}
    for key, verdict in before.items():
        assert after[key] == verdict or key[0] in disturbed, (key, verdict)
    reused = {c["id"] for c in report["candidates"] if c["reused"]}
    # Stored ones were not measured again; a screened one may since have been fully verified (a new row).
    verified_since = {key[0] for key in after.keys() - before.keys()}
    assert {key[0] for key in before} - verified_since - disturbed <= reused | {report["candidates"][0]["id"]}
    with sqlite3.connect(db) as conn:
        runs = conn.execute("SELECT status FROM runs").fetchall()
    assert runs == [("done",)]  # the interrupted run was continued, not duplicated
