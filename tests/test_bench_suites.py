"""``akg bench`` over real suite layouts: level folders, list files, --problems, --resume, --device."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from akg.bench import discover, select
from akg.errors import AkgError

PROBLEM = '''
import torch
import torch.nn as nn

class Model(nn.Module):
    def forward(self, x):
        return {expr}

def get_inputs():
    return [torch.randn(64, 128)]

def get_init_inputs():
    return []
'''


def _suite(root: Path) -> Path:
    """A KernelBench-like checkout: level folders, numbered files, numbers repeated across levels."""
    for rel, expr in (("level1/1_Relu.py", "torch.relu(x)"), ("level1/2_Tanh.py", "torch.tanh(x)"),
                      ("level1/10_Sigmoid.py", "torch.sigmoid(x)"), ("level2/1_Relu_Scale.py", "torch.relu(x) * 2"),
                      ("level2/_helper.py", "x"), (".hidden/3_X.py", "x")):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(PROBLEM.format(expr=expr))
    return root


def test_discover_walks_level_folders_in_number_order(tmp_path):
    ids = [e.id for e in discover(_suite(tmp_path))]
    assert ids == ["level1/1_Relu", "level1/2_Tanh", "level1/10_Sigmoid", "level2/1_Relu_Scale"]


def test_list_file_names_problems_relative_to_itself(tmp_path):
    _suite(tmp_path / "kb")
    listing = tmp_path / "list.txt"
    listing.write_text("# two problems\nkb/level1/2_Tanh.py\n\nkb/level2/1_Relu_Scale.py  # fused\n")
    assert [e.id for e in discover(listing)] == ["kb/level1/2_Tanh", "kb/level2/1_Relu_Scale"]
    listing.write_text("kb/level1/99_Missing.py\n")
    with pytest.raises(AkgError, match="line 1: no such problem file"):
        discover(listing)


def test_problems_select_by_number_range_and_name(tmp_path):
    entries = discover(_suite(tmp_path))
    pick = lambda spec: [e.id for e in select(entries, spec)]
    assert pick("1") == ["level1/1_Relu", "level2/1_Relu_Scale"]       # a number, in every level
    assert pick("2-10") == ["level1/2_Tanh", "level1/10_Sigmoid"]
    assert pick("Tanh,level2/1") == ["level1/2_Tanh", "level2/1_Relu_Scale"]
    assert pick("10_Sigmoid.py") == ["level1/10_Sigmoid"]
    assert pick(None) == [e.id for e in entries]
    with pytest.raises(AkgError, match="'Softmax' names no problem"):
        select(entries, "1,Softmax")


def _bench(suite, out, store, *extra, **popen):
    return [sys.executable, "-m", "akg.cli", "bench", str(suite), "--dsl", "cpp", "--device", "cpu", "--budget", "1",
            "--no-compile", "--trials", "3", "--out", str(out), "--store", str(store), *extra]


def test_bench_bad_selection_and_device_index_are_one_line_errors(tmp_path):
    suite = _suite(tmp_path / "kb")
    for extra, needle in ((["--problems", "77"], "names no problem"), (["--device", "cpu:1"], "no numbered devices")):
        command = _bench(suite, tmp_path / "o.json", tmp_path / "s.db")
        if extra[0] == "--device":
            command[command.index("--device") + 1] = extra[1]
        else:
            command += extra
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and needle in done.stderr and "Traceback" not in done.stderr, done.stderr


@pytest.mark.slow
def test_bench_killed_then_resumed_measures_nothing_twice(tmp_path):
    suite = _suite(tmp_path / "kb")
    (suite / "level1" / "2_Tanh.py").write_text("this is not python\n")  # a failing problem is a row, not the end
    out, store = tmp_path / "bench.json", tmp_path / "s.db"
    command = _bench(suite, out, store, "--problems", "1-2,Sigmoid", "--time-limit", "120")
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 400
    rows = []
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            rows = json.loads(out.read_text())["problems"]
        except (OSError, ValueError):
            rows = []
        if len(rows) >= 2:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(rows) >= 2, "the bench was killed before it wrote two rows"
    first = {r["problem"]: r for r in json.loads(out.read_text())["problems"]}

    done = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    rows = {r["problem"]: r for r in result["problems"]}
    assert set(rows) == {"level1/1_Relu", "level1/2_Tanh", "level1/10_Sigmoid", "level2/1_Relu_Scale"}
    for name, row in first.items():   # kept as they were, not run again
        assert rows[name] == row
        assert f"problem {name}\n" not in done.stderr
    assert "syntax" in rows["level1/2_Tanh"]["error"] or "not" in rows["level1/2_Tanh"]["error"]
    assert rows["level1/1_Relu"]["correct"] and rows["level2/1_Relu_Scale"]["correct"]
    assert result["time_limit_s"] == 120 and result["summary"]["problems"] == 4
