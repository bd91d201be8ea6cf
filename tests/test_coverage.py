"""bench/coverage.py on a suite of its own: one problem that traces and generates, one whose
forward branches on data (export refuses it), one with a multi-gigabyte input that is never
allocated; the JSON counts and the markdown table agree with what happened."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

HEADER = "import torch\nimport torch.nn as nn\n\n"
TAIL = "\ndef get_init_inputs():\n    return []\n"

PROBLEMS = {
    "row_max_scale.py": """
class Model(nn.Module):
    def forward(self, x):
        return torch.max(x, dim=1, keepdim=True)[0] * 2.0

def get_inputs():
    return [torch.randn(8, 16)]
""",
    "branches_on_data.py": """
class Model(nn.Module):
    def forward(self, x):
        if x.sum() > 0:
            return x * 2.0
        return x

def get_inputs():
    return [torch.randn(8, 16)]
""",
    "huge_relu.py": """
class Model(nn.Module):
    def forward(self, x):
        return torch.relu(x) + 1.0

def get_inputs():
    return [torch.randn(4096, 1 << 20)]   # 16 GiB: only its shape is ever made
""",
}


def test_coverage_counts_and_reasons(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    for name, body in PROBLEMS.items():
        (suite / name).write_text(HEADER + body + TAIL)
    out, md = tmp_path / "cov.json", tmp_path / "cov.md"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "coverage.py"), str(suite), "--dsl", "cpp",
                           "--json", str(out), "--markdown", str(md), "--verify-below", "1"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads(out.read_text())
    rows = {r["problem"].split("/")[-1]: r for r in data["rows"]}
    assert rows["row_max_scale"]["traced"] and rows["row_max_scale"]["dsls"]["cpp"]["generates"]
    assert rows["row_max_scale"]["plans_match"]["matched"] == rows["row_max_scale"]["plans_match"]["checked"] > 0
    assert rows["huge_relu"]["traced"] and rows["huge_relu"]["dsls"]["cpp"]["generates"]
    assert "plans_match" not in rows["huge_relu"]          # over --verify-below: never run
    assert not rows["branches_on_data"]["traced"] and rows["branches_on_data"]["reason"].startswith("trace: ")
    summary = data["summary"]
    assert (summary["problems"], summary["traced"], summary["planned"]) == (3, 2, 2)
    assert summary["dsls"]["cpp"] == {**summary["dsls"]["cpp"], "renders": 2, "generates": 2}
    text = md.read_text()
    assert "| now | 3 | 2 | 2 | 2 / 2 |" in text and "branches_on_data" in text
