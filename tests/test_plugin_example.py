"""An out-of-tree DSL, installed as a separate distribution, is discovered and used by akg."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(ROOT / "examples" / "plugin_example")], check=True, timeout=300)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(target), env.get("PYTHONPATH", "")])
    return env


def test_akg_lists_the_installed_plugin(plugin_env):
    out = subprocess.run([sys.executable, "-m", "akg.cli", "plugins", "--json"], env=plugin_env,
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert json.loads(out)["dsls"]["torchexpr"]["families"] == ["pointwise"]


def test_akg_optimizes_with_the_installed_plugin(plugin_env, tmp_path):
    problem = ROOT / "examples" / "problems" / "01_pointwise_chain.py"
    r = subprocess.run([sys.executable, "-m", "akg.cli", "optimize", str(problem), "--dsl", "torchexpr",
                        "--device", "cpu", "--policy", "standard", "--budget", "2", "--no-compile",
                        "--out", str(tmp_path / "out"), "--store", str(tmp_path / "s.db"), "--json"],
                       env=plugin_env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    generated = [c for c in report["candidates"] if c["origin"] == "template"]
    assert generated and all(c["dsl"] == "torchexpr" for c in generated)
    assert any(c["correct"] for c in generated), [c["reason"] for c in generated]
