"""LLM mode on a real NVIDIA GPU: the scripted server's Triton kernel is built, verified and timed on
the device with origin llm:<model> (whether it beats the templates is printed, not asserted). Scripted replies: machinery, not model quality."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("openai")   # LLM mode's client: pip install 'akg[llm]'
pytestmark = pytest.mark.gpu
if not torch.cuda.is_available():
    pytest.skip("needs an NVIDIA GPU", allow_module_level=True)

sys.path.insert(0, str(Path(__file__).parent.parent))
from llm_server import ScriptedServer, kernel_reply  # noqa: E402

from akg.cli import main  # noqa: E402

PROBLEM = '''import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x):
        return torch.sigmoid(torch.cummax(x, dim=0).values)


def get_inputs():
    return [torch.randn(2048, 4096)]


def get_init_inputs():
    return []
'''


def test_llm_triton_kernel_on_the_gpu(tmp_path, capsys):
    problem = tmp_path / "cummax_sigmoid.py"
    problem.write_text(PROBLEM)
    (tmp_path / "akg.toml").write_text("[llm]\nislands = 1\n")
    with ScriptedServer([kernel_reply("triton_ok.py")]) as server:
        code = main(["optimize", str(problem), "--dsl", "triton", "--device", "cuda", "--llm", server.model,
                     "--llm-url", server.url, "--agents", "coder", "--llm-budget", "1", "--budget", "2",
                     "--store", str(tmp_path / "s.db"), "--out", str(tmp_path / "out"),
                     "--config", str(tmp_path / "akg.toml"), "--json"])
    assert code == 0, capsys.readouterr().err
    report = json.loads(capsys.readouterr().out)
    llm = [c for c in report["candidates"] if c["origin"] == f"llm:{server.model}"]
    assert llm and llm[0]["correct"] and llm[0]["time_ms"] > 0, llm
    print("LLM candidate", llm[0]["time_ms"], "ms", llm[0]["speedup_vs_eager"], "x eager; best", report["best"]["origin"])
    assert report["best"]["correct"] and report["best"]["timing_meaningful"]
