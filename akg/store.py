"""SQLite candidate store: problems, runs, candidates with lineage, verdicts, baselines.

One file (default ``.akg/akg.db`` under the working directory). It must survive ``kill -9`` of the
conductor at any point and be shared by two runs at once, so: WAL journal, synchronous=FULL,
every write is one short transaction, and nothing is kept only in memory between writes.
"""
from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

from akg.ir import Candidate, Check, Verdict

DEFAULT_STORE = Path(".akg") / "akg.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS problems (
    digest TEXT PRIMARY KEY, name TEXT NOT NULL, path TEXT, source TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, problem TEXT NOT NULL, dsl TEXT NOT NULL, device TEXT NOT NULL,
    hardware TEXT NOT NULL, status TEXT NOT NULL, options TEXT NOT NULL, started REAL NOT NULL,
    finished REAL, best TEXT);
CREATE TABLE IF NOT EXISTS candidates (
    id TEXT PRIMARY KEY, problem TEXT NOT NULL, dsl TEXT NOT NULL, origin TEXT NOT NULL, parent TEXT,
    plan TEXT, description TEXT, source TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS verdicts (
    candidate TEXT NOT NULL, device TEXT NOT NULL, hardware TEXT NOT NULL, policy TEXT NOT NULL,
    accepted INTEGER NOT NULL, time_ms REAL, verdict TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (candidate, device, hardware, policy));
CREATE TABLE IF NOT EXISTS run_candidates (
    run INTEGER NOT NULL, candidate TEXT NOT NULL, position INTEGER NOT NULL, PRIMARY KEY (run, candidate));
CREATE TABLE IF NOT EXISTS baselines (
    problem TEXT NOT NULL, device TEXT NOT NULL, hardware TEXT NOT NULL, eager_ms REAL, compile_ms REAL,
    created REAL NOT NULL, PRIMARY KEY (problem, device, hardware));
"""


@dataclass(frozen=True)
class FinishedRun:
    best: str          # candidate id
    origin: str        # "reference" when nothing generated beat it
    source: str
    judged: int        # generated candidates the run judged (0: it ran out of time before any)


class StoreError(RuntimeError):
    """The store file cannot be opened or is not an akg store."""


class Store:
    def __init__(self, path: str | Path = DEFAULT_STORE):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), timeout=60, isolation_level=None)
            self._db.execute("PRAGMA busy_timeout=60000")
            self._initialise()
            self._check_integrity()
        except (sqlite3.DatabaseError, OSError) as e:
            raise StoreError(f"store {self.path}: cannot open ({e}); pass --store with another path") from None

    def _check_integrity(self) -> None:
        # A partly damaged file opens fine and fails only at the query that meets the bad page,
        # possibly after an hour of search: find out now. quick_check reads every page once.
        rows = self._db.execute("PRAGMA quick_check").fetchall()
        problems = [r[0] for r in rows if r[0] != "ok"]
        if problems:
            raise sqlite3.DatabaseError(f"the file is damaged: {problems[0][:120]}")

    def _initialise(self) -> None:
        # Switching to WAL and creating tables can meet another process doing the same; SQLite
        # may answer "locked" without waiting there, so retry for a while.
        for attempt in range(200):
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.executescript(_SCHEMA)
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or attempt == 199:
                    raise
                time.sleep(0.05)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        # BEGIN IMMEDIATE takes the write lock up front, so two runs sharing a store serialise
        # their writes instead of failing midway with "database is locked".
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- problems and runs ---------------------------------------------------------------------

    def add_problem(self, digest: str, name: str, path: str | None, source: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO problems VALUES (?,?,?,?,?)", (digest, name, path, source, time.time()))

    def start_run(self, problem: str, dsl: str, device: str, hardware: str, options: dict) -> int:
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO runs (problem, dsl, device, hardware, status, options, started) VALUES (?,?,?,?,?,?,?)",
                (problem, dsl, device, hardware, "running", json.dumps(options, sort_keys=True), time.time()))
            return int(cur.lastrowid)

    def unfinished_run(self, problem: str, dsl: str, device: str, hardware: str) -> int | None:
        """The newest run of this problem/target that never finished (interrupted or still going)."""
        row = self._db.execute(
            "SELECT id FROM runs WHERE problem=? AND dsl=? AND device=? AND hardware=? AND status='running' "
            "ORDER BY id DESC LIMIT 1", (problem, dsl, device, hardware)).fetchone()
        return row[0] if row else None

    def finish_run(self, run: int, best: str | None, status: str = "done") -> None:
        with self._tx() as db:
            db.execute("UPDATE runs SET status=?, finished=?, best=? WHERE id=?", (status, time.time(), best, run))

    def run_info(self, run: int) -> dict[str, Any]:
        row = self._db.execute("SELECT id, problem, dsl, device, hardware, status, options, started, finished, best "
                               "FROM runs WHERE id=?", (run,)).fetchone()
        keys = ("id", "problem", "dsl", "device", "hardware", "status", "options", "started", "finished", "best")
        return dict(zip(keys, row)) if row else {}

    def best_of_finished(self, problem: str, dsl: str, device: str, hardware: str) -> "FinishedRun | None":
        """The newest finished run of this problem on this target: its best candidate and how many
        generated candidates it judged; None when no run finished."""
        row = self._db.execute(
            "SELECT r.id, c.id, c.origin, c.source FROM runs r JOIN candidates c ON c.id=r.best WHERE r.problem=? "
            "AND r.dsl=? AND r.device=? AND r.hardware=? AND r.status='done' ORDER BY r.id DESC LIMIT 1",
            (problem, dsl, device, hardware)).fetchone()
        if row is None:
            return None
        judged = self._db.execute(
            "SELECT COUNT(DISTINCT rc.candidate) FROM run_candidates rc JOIN candidates c ON c.id=rc.candidate "
            "JOIN verdicts v ON v.candidate=rc.candidate WHERE rc.run=? AND c.origin!='reference' AND v.device=? "
            "AND v.hardware=?", (row[0], device, hardware)).fetchone()[0]
        return FinishedRun(row[1], row[2], row[3], int(judged))

    # -- candidates and verdicts ---------------------------------------------------------------

    def add_candidate(self, problem: str, candidate: Candidate, run: int | None = None, position: int = 0) -> None:
        plan = candidate.plan.name if candidate.plan is not None else None
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO candidates VALUES (?,?,?,?,?,?,?,?,?)",
                       (candidate.id, problem, candidate.dsl, candidate.origin, candidate.parent_id, plan,
                        candidate.description, candidate.source, time.time()))
            if run is not None:
                db.execute("INSERT OR IGNORE INTO run_candidates VALUES (?,?,?)", (run, candidate.id, position))

    def candidate_source(self, candidate_id: str) -> str | None:
        row = self._db.execute("SELECT source FROM candidates WHERE id=?", (candidate_id,)).fetchone()
        return row[0] if row else None

    def add_verdict(self, verdict: Verdict, device: str, hardware: str, policy: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO verdicts VALUES (?,?,?,?,?,?,?,?)",
                       (verdict.candidate_id, device, hardware, policy, int(verdict.accepted), verdict.time_ms,
                        verdict_to_json(verdict), time.time()))

    def verdict(self, candidate_id: str, device: str, hardware: str, policy: str) -> Verdict | None:
        row = self._db.execute("SELECT verdict FROM verdicts WHERE candidate=? AND device=? AND hardware=? AND policy=?",
                               (candidate_id, device, hardware, policy)).fetchone()
        return verdict_from_json(row[0]) if row else None

    def history(self, problem: str, dsl: str, device: str, hardware: str, policy: str) -> list[tuple[dict, Verdict]]:
        """Every candidate of this problem and DSL with its verdict on this target, oldest first."""
        rows = self._db.execute(
            "SELECT c.id, c.origin, c.parent, c.plan, c.description, v.verdict FROM candidates c "
            "JOIN verdicts v ON v.candidate=c.id WHERE c.problem=? AND c.dsl=? AND v.device=? AND v.hardware=? "
            "AND v.policy=? ORDER BY v.created", (problem, dsl, device, hardware, policy)).fetchall()
        keys = ("id", "origin", "parent", "plan", "description")
        return [(dict(zip(keys, r[:5])), verdict_from_json(r[5])) for r in rows]

    # -- baselines -----------------------------------------------------------------------------

    def add_baselines(self, problem: str, device: str, hardware: str, eager_ms: float, compile_ms: float | None) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO baselines VALUES (?,?,?,?,?,?)",
                       (problem, device, hardware, eager_ms, compile_ms, time.time()))

    def baselines(self, problem: str, device: str, hardware: str) -> dict[str, float | None] | None:
        row = self._db.execute("SELECT eager_ms, compile_ms FROM baselines WHERE problem=? AND device=? AND hardware=?",
                               (problem, device, hardware)).fetchone()
        return {"eager_ms": row[0], "compile_ms": row[1]} if row else None

    # -- reading runs back (akg report) ----------------------------------------------------------

    def latest_runs(self) -> list[dict[str, Any]]:
        """The newest run of each problem and target, with the problem's name."""
        rows = self._db.execute(
            "SELECT r.id, r.problem, p.name, r.dsl, r.device, r.hardware, r.status, r.best FROM runs r "
            "JOIN problems p ON p.digest=r.problem WHERE r.id IN (SELECT MAX(id) FROM runs "
            "GROUP BY problem, dsl, device, hardware) ORDER BY p.name, r.dsl, r.device").fetchall()
        keys = ("id", "problem", "name", "dsl", "device", "hardware", "status", "best")
        return [dict(zip(keys, r)) for r in rows]

    def run_candidates(self, run: int) -> list[dict[str, Any]]:
        """A run's candidates in measured order, each with its newest verdict on the run's target and
        the seconds from the run's start to its first verdict (0 for verdicts reused from before)."""
        info = self.run_info(run)
        if not info:
            return []
        rows = self._db.execute(
            "SELECT c.id, c.parent, c.origin, c.description, "
            "(SELECT v.verdict FROM verdicts v WHERE v.candidate=c.id AND v.device=? AND v.hardware=? "
            " ORDER BY v.created DESC LIMIT 1), "
            "(SELECT MIN(v.created) FROM verdicts v WHERE v.candidate=c.id AND v.device=? AND v.hardware=?) "
            "FROM run_candidates rc JOIN candidates c ON c.id=rc.candidate WHERE rc.run=? ORDER BY rc.position",
            (info["device"], info["hardware"], info["device"], info["hardware"], run)).fetchall()
        return [{"id": r[0], "parent": r[1], "origin": r[2], "description": r[3],
                 "verdict": verdict_from_json(r[4]) if r[4] else None,
                 "elapsed_s": max(0.0, r[5] - info["started"]) if r[5] is not None else None} for r in rows]

    def run_timeline(self, run: int) -> dict[str, float]:
        """Candidate id -> seconds from the run's start to its first verdict."""
        return {c["id"]: c["elapsed_s"] for c in self.run_candidates(run) if c["elapsed_s"] is not None}

    def export(self) -> Iterator[dict[str, Any]]:
        """Every verified candidate with its problem source: a dataset of (program, kernel) pairs."""
        rows = self._db.execute(
            "SELECT p.name, p.source, c.id, c.dsl, c.origin, c.source, v.device, v.hardware, v.time_ms FROM candidates c "
            "JOIN problems p ON p.digest=c.problem JOIN verdicts v ON v.candidate=c.id WHERE v.accepted=1")
        keys = ("problem", "problem_source", "candidate", "dsl", "origin", "source", "device", "hardware", "time_ms")
        for r in rows:
            yield dict(zip(keys, r))


def verdict_to_json(v: Verdict) -> str:
    data = asdict(v)
    data["profile"] = [list(p) for p in v.profile]
    return json.dumps(data, default=str)


def verdict_from_json(text: str) -> Verdict:
    data = json.loads(text)
    data["checks"] = tuple(Check(**c) for c in data.get("checks", ()))
    for key in ("errors",):
        data[key] = tuple(data.get(key, ()))
    for key in ("baselines", "speedups", "profile"):
        data[key] = tuple(tuple(x) for x in data.get(key, ()))
    return Verdict(**data)
