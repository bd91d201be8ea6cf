"""akg.optimize from an ordinary script: the model class in a module beside the script, and one
defined in the script itself (__main__), with the script run from another folder and no PYTHONPATH."""
import json
import os
import subprocess
import sys

import pytest

SIBLING = '''
import torch
import torch.nn as nn

class Sibling(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.randn(64))

    def forward(self, x):
        return torch.tanh(x * self.scale) + 1.0
'''

SCRIPT = '''
import json, sys
import torch
import torch.nn as nn
import akg
from akg.harness import HarnessConfig
from mymod import Sibling      # found only through the script's folder on sys.path

OFFSET = 0.5

def shift(t):
    return t + OFFSET

class Local(nn.Module):        # lives in __main__
    def forward(self, x):
        return shift(torch.relu(x)) * 2.0

x = torch.randn(32, 64)        # a global named like forward's parameter: not sent along
config = HarnessConfig(seeds=(0,), distributions=("problem",), trials=3, warmup=1, measure_compile=False)
out = {}
for name, model in (("sibling", Sibling()), ("main", Local())):
    r = akg.optimize(model, [x], dsl="cpp", device="cpu", budget=1, out=sys.argv[1] + "/" + name,
                     store=sys.argv[1] + "/s.db", config=config)
    out[name] = {"correct": r.report["best"]["correct"],
                 "same": bool(torch.allclose(r.module(x), model(x), atol=1e-5)),
                 "reference_failed": any("worker" in c["reason"] for c in r.report["candidates"])}
print("RESULT " + json.dumps(out))
'''


def test_script_with_sibling_module_and_main_class(tmp_path):
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    (project / "mymod.py").write_text(SIBLING)
    (project / "script.py").write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, str(project / "script.py"), str(tmp_path / "out")], cwd=elsewhere,
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(next(l for l in r.stdout.splitlines() if l.startswith("RESULT "))[7:])
    for name in ("sibling", "main"):
        assert result[name] == {"correct": True, "same": True, "reference_failed": False}, (name, r.stderr[-2000:])


def test_main_class_that_uses_a_live_object_gets_one_clear_line(tmp_path):
    script = tmp_path / "s.py"
    script.write_text('''
import torch, torch.nn as nn
from akg import portable
W = torch.randn(4)
class Local(nn.Module):
    def forward(self, x):
        return x * W
try:
    portable.main_source(portable.main_classes(Local()))
except portable.PortableError as e:
    print("ERR", e)
''')
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert r.stdout.startswith("ERR akg.optimize: Local uses W (Tensor)"), r.stdout + r.stderr


def test_default_output_folder_is_announced(tmp_path, monkeypatch, capsys):
    import akg.api
    calls = {}

    def stop(problem, target, out_dir, *a, **k):  # the announcement comes before any search
        calls["out"] = out_dir
        raise KeyboardInterrupt
    monkeypatch.setattr("akg.pipeline.optimize_problem", stop)
    import torch
    with pytest.raises(KeyboardInterrupt):
        akg.api.optimize(torch.nn.ReLU(), [torch.randn(4)], dsl="cpp", device="cpu", store=tmp_path / "s.db")
    assert f"akg: writing results to {calls['out']}" in capsys.readouterr().err
