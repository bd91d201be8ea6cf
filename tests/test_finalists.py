"""The end-of-search choice: screened candidates are walked fastest first and fully verified until
one passes; a failure or a candidate the time limit cannot verify is noted and the next is tried,
so the reference wins only when no generated candidate passes full verification."""
import time
import types

from akg.deadline import Deadline
from akg.harness import HarnessConfig
from akg.ir import Candidate, Check, Verdict
from akg.search import Scored, Search, SearchOptions
from akg.store import Store
from akg.targets import HardwareSpec

EAGER = 2.0


def verdict(cid, time_ms, cases, ok=True):
    if not ok:
        return Verdict(cid, "correctness", True, False, checks=(Check("values", False, f"{cid}: max abs err 3"),),
                       profile=(("cases_run", cases),))
    return Verdict(cid, "done", True, True, checks=(Check("runs", True),), time_ms=time_ms,
                   baselines=(("eager_ms", EAGER),), speedups=(("vs_eager", EAGER / time_ms),),
                   profile=(("cases_run", cases),))


class FullPool:
    """Judges full verifications only (screens are made by the test): ``full`` maps a candidate
    id to its full time, or None where it fails full verification."""

    def __init__(self, full):
        self.config, self.full, self.judged = HarnessConfig(), full, []

    def evaluate(self, problem, source, cid, policy, floor_ms, config):
        assert len(config.cases()) == len(self.config.cases())   # only full verifications come here
        self.judged.append(cid)
        t = self.full[cid]
        return verdict(cid, t, len(config.cases()), ok=t is not None)


def make_search(tmp_path, full, **options):
    dsl = types.SimpleNamespace(name="fake", timing_meaningful_on=("cpu",), versions=lambda: {})
    store = Store(tmp_path / "s.db")
    problem = types.SimpleNamespace(digest="d" * 16, name="p", path=None, source="")
    s = Search(problem, dsl, "cpu", HardwareSpec(name="hw", backend="cpu"), FullPool(full), store,
               SearchOptions(**options))
    s.eager_ms, s.floor_ms = EAGER, None
    s.said = []
    s.progress = lambda msg, scored: s.said.append((msg, scored.candidate.id if scored else None))
    ref = Candidate("ref000000000", None, "fake", "# reference", None, "reference", "unmodified reference")
    s.reference = Scored(ref, Verdict(ref.id, "done", True, True, time_ms=EAGER, speedups=(("vs_eager", 1.0),)))
    s.scored.append(s.reference)
    return s


def screened(cid, time_ms):
    c = Candidate(cid, None, "fake", f"# {cid}", None, "template", f"plan {cid}")
    return Scored(c, verdict(cid, time_ms, 1))


def test_next_fastest_is_verified_when_the_fastest_fails(tmp_path):
    # Four screened finalists; the three fastest fail the full cases, the fourth passes.
    full = {"aaaa": None, "bbbb": None, "cccc": None, "dddd": 0.9}
    s = make_search(tmp_path, full)
    for cid, t in (("aaaa", 0.5), ("bbbb", 0.6), ("cccc", 0.7), ("dddd", 0.8)):
        s.scored.append(screened(cid, t))
    notes = []
    best = s._choose(s.reference, notes)
    assert best.candidate.id == "dddd" and best.verdict.accepted and best.time_ms == 0.9
    assert s.pool.judged == ["aaaa", "bbbb", "cccc", "dddd"]   # fastest first, one full verification each
    for cid in ("aaaa", "bbbb", "cccc"):
        assert any(n.startswith(f"{cid} passed screening but failed full verification") and f"{cid}: max abs err" in n
                   for n in notes)
    assert not any("reference is the result" in n for n in notes)
    s.store.close()


def test_no_time_for_the_fastest_still_takes_one_verified_mid_search(tmp_path):
    # bbbb was promoted and verified mid-search; aaaa screened faster when the limit left no
    # time to verify it. The verified one is the result, not the reference.
    s = make_search(tmp_path, {"bbbb": 0.95})
    b = screened("bbbb", 0.9)
    s.scored.append(b)
    assert s._promote(b).verdict.accepted and s.pool.judged == ["bbbb"]
    s.deadline = Deadline(10, time.monotonic() - 100)   # the limit has passed
    s.scored.append(screened("aaaa", 0.5))
    notes = []
    best = s._choose(s.reference, notes)
    assert best.candidate.id == "bbbb" and best.verdict.profile == (("cases_run", len(HarnessConfig().cases())),)
    assert s.pool.judged == ["bbbb"]                    # nothing measured after the limit
    assert "aaaa passed screening but the time limit left no time to fully verify it" in notes
    s.store.close()


def test_a_faster_candidate_verified_earlier_wins_over_the_walks_first_pass(tmp_path):
    # bbbb verified mid-search at 0.7 ms; the walk's first pass, aaaa, screened faster (0.6) but
    # its full timing says 0.8 ms: the faster verified one is the result.
    s = make_search(tmp_path, {"aaaa": 0.8, "bbbb": 0.7})
    b = screened("bbbb", 0.72)
    s.scored.append(b)
    s._promote(b)
    s.scored.append(screened("aaaa", 0.6))
    best = s._choose(s.reference, [])
    assert best.candidate.id == "bbbb" and best.time_ms == 0.7 and s.pool.judged == ["bbbb", "aaaa"]
    s.store.close()


def test_finalists_bounds_the_full_verifications_at_the_end(tmp_path):
    s = make_search(tmp_path, {"aaaa": None, "bbbb": None, "cccc": 0.9}, finalists=2)
    for cid, t in (("aaaa", 0.5), ("bbbb", 0.6), ("cccc", 0.7)):
        s.scored.append(screened(cid, t))
    notes = []
    assert s._choose(s.reference, notes) is s.reference and s.pool.judged == ["aaaa", "bbbb"]
    assert "cccc passed screening but the 2 full verifications allowed at the end were spent" in notes
    s.store.close()


def test_every_finalist_failing_leaves_the_reference(tmp_path):
    s = make_search(tmp_path, {"aaaa": None, "bbbb": None})
    for cid, t in (("aaaa", 0.5), ("bbbb", 0.6)):
        s.scored.append(screened(cid, t))
    notes = []
    assert s._choose(s.reference, notes) is s.reference
    assert sum("failed full verification" in n for n in notes) == 2
    assert notes[-1] == "no generated candidate was verified; the reference is the result"
    s.store.close()


def test_progress_labels_mid_search_verification_apart_from_the_final_choice(tmp_path):
    # The search says "verified" for each full verification (mid-search and in the end-of-search
    # walk) and "final" once, for the choice, which Progress prints as [verify] and [final].
    s = make_search(tmp_path, {"aaaa": None, "bbbb": 0.9, "cccc": 0.8})
    b = screened("bbbb", 0.85)
    s.scored.append(b)
    s._promote(b)                                       # mid-search
    s.scored.append(screened("aaaa", 0.5))
    s.scored.append(screened("cccc", 0.95))
    s.options.budget = 0
    s._baselines = lambda notes: {"eager_ms": EAGER, "compile_ms": None}
    s._reference = lambda baselines: s.reference
    s.run([], None)
    said = [(m, cid) for m, cid in s.said if cid is not None]
    assert said == [("verified", "bbbb"), ("verified", "aaaa"), ("final", "bbbb")]
    s.store.close()


def test_after_one_failure_candidates_slower_than_eager_are_not_verified(tmp_path):
    # The fastest is slower than eager in its screen and fails; the next ones are slower still:
    # even a pass could not beat the reference, so no full cases are spent on them.
    s = make_search(tmp_path, {"aaaa": None, "bbbb": 2.6, "cccc": 2.7})
    for cid, t in (("aaaa", 2.5), ("bbbb", 2.6), ("cccc", 2.7)):
        s.scored.append(screened(cid, t))
    notes = []
    assert s._choose(s.reference, notes) is s.reference and s.pool.judged == ["aaaa"]
    assert notes == ["aaaa passed screening but failed full verification: values: aaaa: max abs err 3",
                     "no generated candidate was verified; the reference is the result"]
    s.store.close()
