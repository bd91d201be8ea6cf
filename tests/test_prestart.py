"""The zygote `akg optimize` starts at its entry (before it imports torch) is the one its pool
would start: the pool adopts it only when device, network setting and environment match, its
workers are isolated like any other, and a command that stops early leaves nothing behind."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from akg.harness import HarnessConfig, WorkerPool, prestart

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers are forked on Linux only")

PROBLEMS = Path(__file__).parent / "adversarial" / "problems"
SCALE_ADD = PROBLEMS / "scale_add.py"
QUICK = HarnessConfig(seeds=(0,), distributions=("problem",), warmup=1, trials=2, measure_compile=False,
                      timeout_s=60.0, time=False)


@pytest.fixture
def own_tmp(tmp_path, monkeypatch):
    """Pool directories land here, so a test sees exactly what was left behind."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    yield tmp_path
    prestart.discard()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("akg-"))


def test_the_pool_adopts_the_prestarted_zygote_and_forks_its_workers_there(own_tmp):
    prestart.start("cpu", network=False)
    held = prestart._held
    assert held is not None and held.zygote.alive()
    with WorkerPool(device="cpu", workers=1, config=QUICK) as pool:
        assert pool._workers.zygote is held.zygote and pool._workers.root == held.root
        (pid,) = pool._workers.pids(wait=True)
        ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        assert ppid == held.zygote.process.pid, "the worker was not forked by the prestarted zygote"
    assert prestart._held is None, "a zygote is handed over once"
    assert held.zygote.process.poll() is not None and _leftovers(own_tmp) == []


@pytest.mark.parametrize("change", ["environment", "network", "device"])
def test_a_zygote_that_differs_from_the_pools_is_ended_not_adopted(own_tmp, monkeypatch, change):
    prestart.start("cpu", network=False)
    held = prestart._held
    device, network = "cpu", False
    if change == "environment":   # e.g. a GPU chosen after the start, through the environment
        monkeypatch.setenv("AKG_PRESTART_CHANGED", "1")
    elif change == "network":
        network = True
    else:
        device = "meta"
    assert prestart.adopt(device, network) is None
    assert held.zygote.process.wait(10) is not None
    assert _leftovers(own_tmp) == []


def test_a_command_that_fails_before_its_pool_leaves_no_zygote(own_tmp, monkeypatch):
    from akg import cli
    started = []
    real_start = prestart.start

    def start(device, network):
        real_start(device, network)
        started.append(prestart._held)

    monkeypatch.setattr(prestart, "start", start)
    bad = own_tmp / "bad.py"
    bad.write_text("this is not python\n")
    code = cli.main(["optimize", str(bad), "--dsl", "cpp", "--device", "cpu", "--out", str(own_tmp / "out"),
                     "--store", str(own_tmp / "s.db")])
    assert code == 2
    assert started and started[0] is not None, "the zygote was not started at the command's entry"
    assert started[0].zygote.process.wait(10) is not None, "the unadopted zygote was left running"
    assert prestart._held is None and _leftovers(own_tmp) == []


def test_listing_plugins_and_the_zygote_environment_import_no_torch(tmp_path):
    """What the command does before the zygote starts must stay light, or the two imports run one
    after the other again."""
    code = ("import sys; from pathlib import Path; from akg import plugins; from akg.harness import prestart; "
            "from akg.config import load_config; load_config(None); plugins.get_dsl('cpp'); "
            "[prestart.environment(d, Path(sys.argv[1])) for d in ('cpu', 'cuda')]; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"torch imported before the zygote starts: {out.stdout.strip()[:200]}"
