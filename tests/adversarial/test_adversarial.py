"""Every candidate under candidates/ is judged by the real harness; malicious or broken ones must
be rejected by one of the checks their header names, honest ones must be accepted.

Header of a candidate file:
    # expect: reject CHECK[,CHECK...]   or   # expect: accept
    # problem: NAME (a file under problems/)
    # policy: strict | standard
"""
from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent
PROBLEMS = HERE / "problems"
CANDIDATES = sorted((HERE / "candidates").glob("*.py"))


def header(path: Path) -> dict[str, str]:
    fields = {}
    for line in path.read_text().splitlines():
        if not line.startswith("# "):
            break
        key, _, value = line[2:].partition(":")
        fields[key.strip()] = value.strip()
    return fields


def test_suite_size():
    kinds = [header(p)["expect"].split()[0] for p in CANDIDATES]
    assert kinds.count("reject") >= 20 and kinds.count("accept") >= 8


@pytest.mark.parametrize("path", CANDIDATES, ids=[p.stem for p in CANDIDATES])
def test_candidate(pool, adversarial_summary, path: Path):
    meta = header(path)
    expected, _, checks = meta["expect"].partition(" ")
    verdict = pool.evaluate(PROBLEMS / f"{meta['problem']}.py", path.read_text(), path.stem, policy=meta["policy"])
    failed = [c.name for c in verdict.checks if not c.passed]
    adversarial_summary.append((path.stem, expected, "accepted" if verdict.accepted else "rejected",
                    ",".join(failed) or verdict.reason[:60]))
    if expected == "accept":
        assert verdict.accepted, verdict.reason
        assert verdict.time_ms is not None and verdict.time_ms > 0
    else:
        allowed = set(checks.split(","))
        assert not verdict.accepted
        assert allowed & set(failed), f"caught by {failed}, expected one of {sorted(allowed)}: {verdict.reason}"
