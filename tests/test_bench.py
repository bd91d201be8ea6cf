"""``akg bench`` end to end on the CPU: every row, the summary and the bandwidth columns."""
import json
import shutil
import subprocess
import sys

import pytest

from akg.bench import geomean, hbm_fraction, summarize
from example_paths import EXAMPLES


def test_bench_writes_rows_summary_and_measured_copy_bandwidth(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    for name in ("01_pointwise_chain.py", "11_sum_last_dim.py"):
        shutil.copy(EXAMPLES / name, suite / name)
    (suite / "99_broken.py").write_text("this is not python\n")
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "-m", "akg.cli", "bench", str(suite), "--dsl", "cpp", "--device", "cpu",
                           "--budget", "2", "--out", str(out), "--store", str(tmp_path / "akg.db")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    rows = {r["problem"]: r for r in result["problems"]}
    assert set(rows) == {"01_pointwise_chain", "11_sum_last_dim", "99_broken"}
    assert rows["99_broken"]["correct"] is False and rows["99_broken"]["error"]
    assert rows["01_pointwise_chain"]["correct"] and rows["11_sum_last_dim"]["correct"]
    assert result["summary"]["problems"] == 3 and result["summary"]["correct"] == 2
    assert result["copy_bandwidth_gbs"] > 0
    assert "| of copy bw |" in done.stdout
    for name in ("01_pointwise_chain", "11_sum_last_dim"):
        row = rows[name]
        if row["bound"] == "memory":
            assert row["hbm_fraction"] == pytest.approx(
                row["roofline_fraction"] * result["datasheet_bandwidth_gbs"] / result["copy_bandwidth_gbs"])


def test_hbm_fraction_only_for_memory_bound_rows():
    row = {"bound": "memory", "roofline_fraction": 0.5}
    assert hbm_fraction(row, 3350.0, 2680.0) == pytest.approx(0.625)
    assert hbm_fraction({**row, "bound": "compute"}, 3350.0, 2680.0) is None
    assert hbm_fraction(row, 3350.0, None) is None


def test_summary_counts_fast_p_over_all_problems():
    rows = [{"correct": True, "speedup_vs_eager": 2.5, "speedup_vs_compile": 1.2, "origin": "template"},
            {"correct": True, "speedup_vs_eager": 1.0, "speedup_vs_compile": 0.8, "origin": "reference"},
            {"correct": False, "speedup_vs_eager": None, "speedup_vs_compile": None, "origin": None}]
    s = summarize(rows)
    assert s["fast_0"] == pytest.approx(2 / 3) and s["fast_1"] == pytest.approx(1 / 3) and s["fast_2"] == pytest.approx(1 / 3)
    assert s["geomean_speedup_vs_eager"] == pytest.approx(geomean([2.5, 1.0])) and s["generated"] == 1
