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
CREATE TABLE IF NOT EXISTS baseline_times (
    problem TEXT NOT NULL, device TEXT NOT NULL, hardware TEXT NOT NULL, versions TEXT NOT NULL, eager_ms REAL,
    compile_ms REAL, created REAL NOT NULL, PRIMARY KEY (problem, device, hardware, versions));
"""

# Schema version 1 (LLM mode): prompts and replies content-addressed, and every LLM turn with its
# outcome. Only tables are added, so older stores open unchanged and gain them on first use.
_SCHEMA_LLM = """
CREATE TABLE IF NOT EXISTS llm_messages (id TEXT PRIMARY KEY, text TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS llm_turns (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run INTEGER, problem TEXT NOT NULL, role TEXT NOT NULL,
    model TEXT NOT NULL, prompt_hash TEXT NOT NULL, prompt_id TEXT, reply_id TEXT, parent TEXT, candidate TEXT,
    ok INTEGER NOT NULL, reason TEXT, prompt_tokens INTEGER, completion_tokens INTEGER, created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS llm_turns_candidate ON llm_turns (candidate);
"""
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class FinishedRun:
    best: str          # candidate id
    origin: str        # "reference" when nothing generated beat it
    source: str
    judged: int        # generated candidates the run judged (0: it ran out of time before any)
    pending: int = 0   # of those, passed screening but never fully verified (the run was cut short)


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
                self._migrate()
                self._add_columns()
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or attempt == 199:
                    raise
                time.sleep(0.05)

    def _migrate(self) -> None:
        if self._db.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
            self._db.executescript(_SCHEMA_LLM)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _add_columns(self) -> None:
        # Columns added since the first schema, each with a default, so older stores open and
        # their rows read as before. A verdict row's ``versions`` is the fingerprint of what it
        # depends on (akg.fingerprint); rows from before it have '' and match no fingerprint.
        # Under the write lock: two processes opening a store of the old shape at once would
        # otherwise both see the column missing, and the second ALTER would fail.
        with self._tx() as db:
            have = {r[1] for r in db.execute("PRAGMA table_info(verdicts)")}
            if "versions" not in have:
                db.execute("ALTER TABLE verdicts ADD COLUMN versions TEXT NOT NULL DEFAULT ''")

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
        """The newest finished run of this problem on this target: its best candidate, how many
        generated candidates it judged and how many of those it left unverified; None when no run
        finished."""
        row = self._db.execute(
            "SELECT r.id, c.id, c.origin, c.source FROM runs r JOIN candidates c ON c.id=r.best WHERE r.problem=? "
            "AND r.dsl=? AND r.device=? AND r.hardware=? AND r.status='done' ORDER BY r.id DESC LIMIT 1",
            (problem, dsl, device, hardware)).fetchone()
        if row is None:
            return None
        verdicts = self._db.execute(
            "SELECT rc.candidate, v.policy, v.accepted FROM run_candidates rc JOIN candidates c ON c.id=rc.candidate "
            "JOIN verdicts v ON v.candidate=rc.candidate WHERE rc.run=? AND c.origin!='reference' AND v.device=? "
            "AND v.hardware=?", (row[0], device, hardware)).fetchall()
        judged = {cid for cid, _, _ in verdicts}
        full = {cid for cid, policy, _ in verdicts if "+" not in policy}
        # Passed the quick screen but never fully verified: the run was cut short (time limit).
        pending = {cid for cid, policy, ok in verdicts if "+" in policy and ok} - full
        return FinishedRun(row[1], row[2], row[3], len(judged), len(pending))

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

    def add_verdict(self, verdict: Verdict, device: str, hardware: str, policy: str, versions: str = "") -> None:
        """Store (or replace) the verdict; ``versions``: the fingerprint of what it depends on."""
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO verdicts (candidate, device, hardware, policy, accepted, time_ms, "
                       "verdict, created, versions) VALUES (?,?,?,?,?,?,?,?,?)",
                       (verdict.candidate_id, device, hardware, policy, int(verdict.accepted), verdict.time_ms,
                        verdict_to_json(verdict), time.time(), versions))

    def verdict(self, candidate_id: str, device: str, hardware: str, policy: str,
                versions: str | None = None) -> Verdict | None:
        """The stored verdict; with ``versions``, only one stored under that fingerprint."""
        query = "SELECT verdict FROM verdicts WHERE candidate=? AND device=? AND hardware=? AND policy=?"
        args: tuple = (candidate_id, device, hardware, policy)
        if versions is not None:
            query, args = query + " AND versions=?", args + (versions,)
        row = self._db.execute(query, args).fetchone()
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

    # Baselines are kept per software stack (``versions``, see akg.versions): a new torch or
    # compiler measures them again. The older ``baselines`` table, without versions, is not read.
    def add_baselines(self, problem: str, device: str, hardware: str, eager_ms: float, compile_ms: float | None,
                      versions: str = "") -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO baseline_times VALUES (?,?,?,?,?,?,?)",
                       (problem, device, hardware, versions, eager_ms, compile_ms, time.time()))

    def baselines(self, problem: str, device: str, hardware: str, versions: str = "") -> dict[str, float | None] | None:
        row = self._db.execute("SELECT eager_ms, compile_ms FROM baseline_times WHERE problem=? AND device=? "
                               "AND hardware=? AND versions=?", (problem, device, hardware, versions)).fetchone()
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


    # -- LLM turns and the dataset export ------------------------------------------------------

    def add_message(self, message_id: str, text: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO llm_messages VALUES (?,?)", (message_id, text))

    def message(self, message_id: str) -> str | None:
        row = self._db.execute("SELECT text FROM llm_messages WHERE id=?", (message_id,)).fetchone()
        return row[0] if row else None

    def add_turn(self, turn: dict[str, Any]) -> None:
        """One LLM turn: role, model, prompt_hash (the prompt template), prompt_id/reply_id (the
        exchange), parent, the candidate it produced or None, ok, reason, tokens."""
        keys = ("run", "problem", "role", "model", "prompt_hash", "prompt_id", "reply_id", "parent", "candidate",
                "ok", "reason", "prompt_tokens", "completion_tokens")
        with self._tx() as db:
            db.execute(f"INSERT INTO llm_turns ({', '.join(keys)}, created) VALUES ({', '.join('?' * (len(keys) + 1))})",
                       tuple(turn.get(k) for k in keys) + (time.time(),))

    def turns(self, run: int | None = None) -> list[dict[str, Any]]:
        keys = ("id", "run", "problem", "role", "model", "prompt_hash", "prompt_id", "reply_id", "parent", "candidate",
                "ok", "reason", "prompt_tokens", "completion_tokens")
        where, args = ("WHERE run=?", (run,)) if run is not None else ("", ())
        rows = self._db.execute(f"SELECT {', '.join(keys)} FROM llm_turns {where} ORDER BY id", args).fetchall()
        return [dict(zip(keys, r)) for r in rows]

    def lineage(self, candidate_id: str) -> list[dict[str, Any]]:
        """The candidate and its ancestors, newest first, each with the LLM turn that wrote it."""
        chain, seen, current = [], set(), candidate_id
        while current and current not in seen:
            seen.add(current)
            row = self._db.execute("SELECT id, origin, parent, description FROM candidates WHERE id=?", (current,)).fetchone()
            if row is None:
                break
            entry = {"id": row[0], "origin": row[1], "parent": row[2], "description": row[3]}
            turn = self._db.execute("SELECT role, prompt_hash, prompt_id, reply_id FROM llm_turns WHERE candidate=? "
                                    "ORDER BY id LIMIT 1", (current,)).fetchone()
            if turn is not None:
                entry.update(zip(("role", "prompt_hash", "prompt_id", "reply_id"), turn))
            chain.append(entry)
            current = row[2]
        return chain

    def export_records(self) -> Iterator[dict[str, Any]]:
        """One record per candidate and target it was judged on (candidates never judged: one
        record without a verdict). The fully verified verdict is preferred to a screening one."""
        rows = self._db.execute(
            "SELECT c.id, p.name, c.problem, c.dsl, c.origin, c.parent, c.plan, c.description, c.source "
            "FROM candidates c JOIN problems p ON p.digest=c.problem ORDER BY c.created, c.id").fetchall()
        for cid, name, digest, dsl, origin, parent, plan, description, source in rows:
            turn = self._db.execute("SELECT role, model, prompt_hash, prompt_id, reply_id FROM llm_turns "
                                    "WHERE candidate=? ORDER BY id LIMIT 1", (cid,)).fetchone()
            lineage = {"parent": parent, "origin": origin, "plan": plan, "description": description,
                       "role": None, "model": None, "prompt_hash": None, "prompt_id": None, "reply_id": None}
            if turn is not None:
                lineage.update(zip(("role", "model", "prompt_hash", "prompt_id", "reply_id"), turn))
            base = {"candidate": cid, "problem": name, "problem_digest": digest, "dsl": dsl, "source": source,
                    "lineage": lineage, "prompt_id": lineage["prompt_id"], "reply_id": lineage["reply_id"]}
            verdicts = self._db.execute(
                "SELECT device, hardware, policy, verdict FROM verdicts WHERE candidate=? "
                "ORDER BY device, hardware, policy LIKE '%+screen', created DESC", (cid,)).fetchall()
            targets: dict[tuple[str, str], tuple[str, str]] = {}
            for device, hardware, policy, text in verdicts:
                targets.setdefault((device, hardware), (policy, text))
            if not targets:
                yield {**base, "device": None, "hardware": None, "policy": None, "verdict": None, "timings": None}
            for (device, hardware), (policy, text) in targets.items():
                v = json.loads(text)
                v["accepted"] = verdict_from_json(text).accepted
                timings = {"time_ms": v.get("time_ms"), "spread": v.get("spread"), "baselines": dict(v.get("baselines", ())),
                           "speedups": dict(v.get("speedups", ())), "roofline_fraction": v.get("roofline_fraction")}
                yield {**base, "device": device, "hardware": hardware, "policy": policy, "verdict": v, "timings": timings}


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
