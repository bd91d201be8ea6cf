"""Workers forked by the pool's zygote are the workers a fresh process would be: their own process
group, scratch directory and environment (no secrets), and a pool whose zygote is gone still works."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from akg.harness import HarnessConfig, WorkerPool
from akg.harness.pool import Worker, Workers

PROBLEMS = Path(__file__).parent / "adversarial" / "problems"
SCALE_ADD = PROBLEMS / "scale_add.py"
QUICK = HarnessConfig(seeds=(0,), distributions=("problem",), warmup=1, trials=2, measure_compile=False,
                      timeout_s=60.0, time=False)
# A candidate that reports, through its error, what the process it runs in looks like.
REPORTER = """import os, tempfile
import torch.nn as nn
class ModelNew(nn.Module):
    def forward(self, x, y):
        facts = dict(pid=os.getpid(), pgid=os.getpgid(0), ppid=os.getppid(), cwd=os.getcwd(),
                     tmp=tempfile.gettempdir(), secret=os.environ.get("AKG_TEST_API_TOKEN"))
        raise RuntimeError("FACTS" + repr(facts))
"""


def _facts(verdict) -> dict:
    text = verdict.reason
    start = text.index("FACTS") + len("FACTS")
    return eval(text[start:text.index("}", start) + 1])   # the dict the candidate wrote


@pytest.fixture
def secret(monkeypatch):
    monkeypatch.setenv("AKG_TEST_API_TOKEN", "hunter2")


@pytest.mark.skipif(not os.sys.platform.startswith("linux"), reason="workers are forked on Linux only")
def test_a_forked_worker_is_isolated_like_a_fresh_one(secret):
    with WorkerPool(device="cpu", workers=1, config=QUICK) as pool:
        verdicts = [pool.evaluate(SCALE_ADD, REPORTER + f"# {i}\n", f"reporter{i}", policy="standard")
                    for i in range(2)]
        zygote_pid = pool._workers.zygote.process.pid
    first, second = (_facts(v) for v in verdicts)
    assert first["ppid"] == zygote_pid, "the worker was not forked by the zygote"
    assert first["pid"] != second["pid"], "a second candidate ran in the first one's process"
    for facts in (first, second):
        assert facts["pgid"] == facts["pid"], "a worker leads its own process group"
        assert facts["secret"] is None, "a secret reached the worker's environment"
        assert Path(facts["cwd"]).name.startswith("worker-")
        assert facts["tmp"] == facts["cwd"], "temporary files go to the worker's own scratch"
    assert first["cwd"] != second["cwd"]


def test_workers_start_afresh_when_the_zygote_is_gone():
    workers = Workers("cpu", 1, QUICK, standby=False)
    try:
        if workers.zygote is None:
            pytest.skip("this platform starts every worker afresh")
        os.killpg(workers.zygote.process.pid, signal.SIGKILL)
        workers.zygote.process.wait(10)
        fresh = Worker("cpu", QUICK, workers.root, "after", workers.zygote)
        try:
            fresh.start_device()
            fresh._await_ready()   # raises WorkerFault if it never started
            assert fresh.process.pid != workers.zygote.process.pid
            assert fresh.alive()
        finally:
            fresh.discard()
    finally:
        workers.close()


def test_exec_start_is_still_available(monkeypatch):
    monkeypatch.setenv("AKG_WORKER_START", "exec")
    workers = Workers("cpu", 1, QUICK, standby=False)
    try:
        assert workers.zygote is None
        worker = workers.acquire()
        worker._await_ready()
        assert worker.alive()
        workers.release(worker, replace=False)
    finally:
        workers.close()


@pytest.mark.skipif(not os.sys.platform.startswith("linux"), reason="workers are forked on Linux only")
def test_a_forked_worker_leads_its_group_once_its_pid_is_known():
    """The pool kills a worker by its process group: a pid handed out before the child's setsid
    would name no group, and the kill would miss it."""
    workers = Workers("cpu", 3, QUICK, standby=False)
    try:
        for _ in range(3):
            worker = workers.acquire()
            pid = worker.process.pid
            assert os.getpgid(pid) == pid
            workers.release(worker, replace=True)
    finally:
        workers.close()
