"""bench/kb_table.py on a suite of its own and small results files: every problem of the suite has a
row (verified result, reason, or not run yet), the latest run of a problem wins, and the summary
line is computed from the rows run."""
from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("kb_table", ROOT / "bench" / "kb_table.py")
kb_table = importlib.util.module_from_spec(spec)
sys.modules["kb_table"] = kb_table
spec.loader.exec_module(kb_table)


def suite(tmp_path) -> Path:
    level = tmp_path / "kb" / "level1"
    level.mkdir(parents=True)
    for name in ("1_Square_matmul", "2_Relu", "10_Softmax", "11_Argmax", "12_Never_run"):
        (level / f"{name}.py").write_text("# a problem file\n")
    return level


def row(problem, origin="template", eager=2.0, compile_=1.5, notes=(), correct=True, **extra):
    return {"problem": problem, "path": f"somewhere/level1/{problem}.py", "correct": correct, "origin": origin,
            "speedup_vs_eager": eager, "speedup_vs_compile": compile_, "candidates": 5, "measured": 4,
            "wall_s": 30.0, "notes": list(notes), **extra}


def results(tmp_path, name, date, rows, device="cuda") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"date": date, "device": device, "dsl": "triton", "hardware": "h200",
                                "hardware_display": "Test GPU", "time_limit_s": 60, "problems": rows}))
    return path


def test_every_suite_problem_has_a_row_and_the_latest_run_wins(tmp_path):
    level = suite(tmp_path)
    old = results(tmp_path, "old.json", "2026-01-01", [
        row("2_Relu", origin="reference", eager=1.0, notes=["no generated candidate was verified"]),
        row("10_Softmax", eager=1.2)])
    new = results(tmp_path, "new.json", "2026-02-01", [
        row("2_Relu", eager=3.0, compile_=2.5, memory={"footprint_bytes": 1, "peak_device_bytes_worker": 3 * 2**30}),
        row("1_Square_matmul", origin="reference", eager=1.0, compile_=0.9,
            notes=["abcd passed screening but the time limit left no time to fully verify it", "second"]),
        {"problem": "11_Argmax", "path": "x/level1/11_Argmax.py", "correct": False, "origin": None,
         "error": "did not finish | within the limit", "wall_s": 75.0, "speedup_vs_eager": None,
         "speedup_vs_compile": None},
        row("99_Elsewhere")])      # not a problem of this suite: ignored
    text = kb_table.render([level], [kb_table.load_results(new), kb_table.load_results(old)], "T")
    lines = {line.split(" | ")[0].removeprefix("| "): line for line in text.splitlines() if line.startswith("| ")}
    assert lines["2_Relu"] == "| 2_Relu | verified (template) | 3.00 | 2.50 | 5 | 3.0 GiB | |"   # new.json's
    assert lines["10_Softmax"] == "| 10_Softmax | verified (template) | 1.20 | 1.50 | 5 | — | |"
    assert lines["1_Square_matmul"].startswith("| 1_Square_matmul | reference | 1.00 | 0.90 | 5 | — | abcd passed")
    assert "second" not in lines["1_Square_matmul"]       # the first note only
    assert lines["11_Argmax"] == "| 11_Argmax | error | | | | | did not finish \\| within the limit |"
    assert lines["12_Never_run"] == "| 12_Never_run | not run yet | | | | | |"
    assert "99_Elsewhere" not in text
    assert {len(re.split(r"(?<!\\)\|", line)) - 2 for line in text.splitlines() if line.startswith("|")} == {7}
    # four of five run; fast_1: 2_Relu (3.0) and 10_Softmax (1.2) of four; geomeans over the three
    # correct ones, (3.0 * 1.2 * 1.0) ** (1/3) and (2.5 * 1.5 * 0.9) ** (1/3); 12 judged in 165 s
    summary = next(line for line in text.splitlines() if line.startswith("**"))
    assert summary.startswith("**4 of 5 problems run** · fast_0 0.75 · fast_1 0.50 · fast_1.5 0.25 · fast_2 0.25")
    assert "geomean vs eager 1.53 · vs torch.compile 1.50" in summary and "2 generated results" in summary
    assert "4.36 candidates per GPU-minute" in summary


def test_command_line_writes_the_file_and_bad_input_is_one_line(tmp_path, capsys):
    level = suite(tmp_path)
    res = results(tmp_path, "r.json", "2026-01-01", [row("2_Relu")], device="cpu")
    out = tmp_path / "table.md"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "kb_table.py"), str(res), "--suite", str(level),
                           "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "candidates per minute" in out.read_text() and "**1 of 5 problems run**" in out.read_text()
    (tmp_path / "bad.json").write_text("{\"rows\": []}")
    assert kb_table.main([str(tmp_path / "bad.json"), "--suite", str(level)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not an akg bench results file" in err
    assert kb_table.main([str(res), "--suite", str(tmp_path / "missing")]) == 2
    assert "neither a folder of problem files nor a list file" in capsys.readouterr().err
