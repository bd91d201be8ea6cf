"""akg migrate on a real NVIDIA GPU: the Triton source runs on the device, so it is timed as a
baseline beside eager and torch.compile, and the result is compared against it."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.gpu
if not torch.cuda.is_available():
    pytest.skip("needs an NVIDIA GPU", allow_module_level=True)

from akg import plugins  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "migrate" / "swiglu_triton.py"


@pytest.mark.parametrize("dsl", ["triton", "cuda_c"])
def test_migrate_triton_kernel_on_cuda(tmp_path, dsl):
    if dsl not in plugins.dsls():
        pytest.skip(f"DSL {dsl} is not installed")
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "akg.cli", "migrate", str(EXAMPLE), "--to", dsl, "--device", "cuda",
                           "--budget", "3", "--out", str(out), "--store", str(tmp_path / "akg.db")],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    mig = report["migration"]
    assert mig["source"]["dsl"] == "triton" and mig["source"]["runs"] and mig["source"]["timed"], mig["source"]
    assert "source" in mig["baselines_timed"] and report["best"]["correct"]
    assert mig["speedup_vs_source"] and mig["speedup_vs_source"] > 0
