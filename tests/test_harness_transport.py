"""How results travel from a worker and how workers are replaced: large tensors in sealed memory
files that the conductor verifies before it maps them, and standby processes that take a replaced
worker's place without ever having loaded a candidate."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from akg.harness import HarnessConfig, WorkerPool, protocol, runner
from akg.harness.inputs import make_inputs
from akg.harness.reference import Reference
from akg.problem import load_problem

BIG_SCALE_ADD = """
import torch
import torch.nn as nn

class Model(nn.Module):
    def forward(self, x, y):
        return x * 2.0 + y

def get_inputs():
    return [torch.randn(1 << 19), torch.randn(1 << 19)]   # 2 MB each: above SHARE_MIN_BYTES

def get_init_inputs():
    return []
"""
HONEST = "import torch\nimport torch.nn as nn\nclass ModelNew(nn.Module):\n    def forward(self, x, y):\n        return x * 2.0 + y\n"
HALF_WRITTEN = (Path(__file__).parent / "adversarial" / "candidates" / "half_written.py").read_text()
REUSE = """
import torch
import torch.nn as nn
class ModelNew(nn.Module):
    cached = None
    def forward(self, x, y):
        if ModelNew.cached is None:
            ModelNew.cached = x * 2.0 + y
        return ModelNew.cached
"""
REPORTS_PID = """
import os
import torch.nn as nn
class ModelNew(nn.Module):
    def forward(self, x, y):
        raise RuntimeError(f"pid {os.getpid()}")
"""
CONFIG = HarnessConfig(seeds=(0,), distributions=("problem", "large"), warmup=0, trials=2,
                       measure_compile=False, timeout_s=60.0)


@pytest.fixture(scope="module")
def big_problem(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("problems") / "big_scale_add.py"
    path.write_text(BIG_SCALE_ADD)
    return path


@pytest.fixture(scope="module")
def pool():
    with WorkerPool(device="cpu", workers=1, config=CONFIG) as p:
        yield p


def failed(verdict) -> set[str]:
    return {c.name for c in verdict.checks if not c.passed}


# ---- sealed memory files ------------------------------------------------------------------------

@pytest.fixture
def mapped(monkeypatch) -> list[torch.Tensor]:
    """Tensors the conductor mapped from a worker's memory files during the test."""
    seen = []
    original = protocol._map_shared

    def spy(handle, pid):
        tensor = original(handle, pid)
        if pid != os.getpid():  # not the conductor's own files (its draw of the inputs)
            seen.append(tensor)
        return tensor
    monkeypatch.setattr(protocol, "_map_shared", spy)
    return seen


def test_large_outputs_arrive_in_memory_files_and_honest_code_passes(pool, big_problem, mapped):
    verdict = pool.evaluate(big_problem, HONEST, "honest", policy="standard")
    assert verdict.accepted, verdict.reason
    # two passes of two cases, plus the timed output (the rest are the workers' probes)
    assert len([t for t in mapped if t.numel() == 1 << 19]) == 5


@pytest.mark.parametrize("source, checks", [(HALF_WRITTEN, {"unwritten_output", "nan_positions", "allclose"}),
                                            (REUSE, {"fresh_outputs"})], ids=["half_written", "reuse"])
def test_large_outputs_are_checked_as_before(pool, big_problem, mapped, source, checks):
    verdict = pool.evaluate(big_problem, source, "cheat", policy="standard")
    assert not verdict.accepted and failed(verdict) & checks, verdict.reason
    assert mapped


COUNTS_MEMORY_FILES = """
import os
import torch.nn as nn
def target(fd):
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:  # the descriptor listdir itself used
        return ""
class ModelNew(nn.Module):
    def forward(self, x, y):
        files = [target(fd) for fd in os.listdir("/proc/self/fd")]
        raise RuntimeError(f"memory files {sum(f.startswith('/memfd:') for f in files)}")
"""


def test_inputs_arrive_as_the_conductors_files(pool, big_problem):
    verdict = pool.evaluate(big_problem, COUNTS_MEMORY_FILES, "count-files", policy="standard")
    assert "memory files 2" in verdict.reason  # x and y; nothing drawn in the worker


def test_a_worker_maps_the_conductors_draw_and_the_random_state_it_left(big_problem, monkeypatch):
    problem = load_problem(big_problem)
    reference = Reference(problem, "cpu", 0)
    try:
        shared = reference.shared_inputs(5, "uniform")
        assert all(isinstance(h, dict) for h in shared["inputs"])  # both inputs in files
        expected, after_draw = make_inputs(problem, 5, "uniform"), torch.rand(4)
        monkeypatch.setattr(runner, "make_inputs", lambda *a: pytest.fail("drew the inputs again"))
        worker_side = SimpleNamespace(state=SimpleNamespace(device="cpu"), problem=problem)
        got = runner.LoadedCandidate._inputs(worker_side, shared, 5, "uniform")
        assert all(torch.equal(a, b) for a, b in zip(got, expected)) and len(got) == 2
        assert torch.equal(torch.rand(4), after_draw)
        # files that did not arrive: the worker draws the inputs itself
        monkeypatch.setattr(runner, "make_inputs", lambda *a: "drawn")
        lost = dict(shared, inputs=[dict(h, shared_tensor=-1) for h in shared["inputs"]])
        assert runner.LoadedCandidate._inputs(worker_side, lost, 5, "uniform") == "drawn"
    finally:
        reference.close()


HOLDER = textwrap.dedent("""
    import fcntl, os, sys, time
    seals = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
    def memfd(data, sealed):
        fd = os.memfd_create("akg-tensor", os.MFD_ALLOW_SEALING)
        os.write(fd, data)
        if sealed:
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
        return fd
    data = bytes(range(16)) * 4
    plain = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
    os.write(plain, data)
    print(memfd(data, True), memfd(data, False), plain, flush=True)
    time.sleep(60)
""")


@pytest.fixture
def holder(tmp_path):
    """A process holding a sealed memory file, an unsealed one and a plain file, 64 bytes each."""
    child = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "plain")], stdout=subprocess.PIPE, text=True)
    try:
        yield child.pid, [int(fd) for fd in child.stdout.readline().split()]
    finally:
        child.kill()
        child.wait()


def _handle(fd, nbytes=64, dtype="uint8", shape=(64,)):
    return {"shared_tensor": fd, "nbytes": nbytes, "dtype": dtype, "shape": list(shape)}


def test_a_sealed_memory_file_is_mapped(holder):
    pid, (sealed, _, _) = holder
    message = protocol.resolve({"outputs": [[_handle(sealed, dtype="float32", shape=(4, 4))], None]}, pid)
    tensor = message["outputs"][0][0]
    assert tensor.shape == (4, 4) and tensor.dtype == torch.float32
    assert bytes(tensor.view(torch.uint8).flatten().numpy()) == bytes(range(16)) * 4


@pytest.mark.parametrize("which, handle, fragment", [
    (1, {}, "not sealed"),                                    # the sender could still change it
    (2, {}, "not in a memory file"),                          # a file on disk
    (0, {"nbytes": 32, "shape": (32,)}, "announced size"),    # a size that is not the file's
    (0, {"shape": (65,)}, "does not match"),
    (0, {"dtype": "object"}, "malformed"),
    (0, {"shared_tensor": 999}, "cannot open"),
])
def test_a_file_the_sender_could_change_or_misdescribe_is_refused(holder, which, handle, fragment):
    pid, fds = holder
    fields = {"fd": fds[which]} | handle
    fd = fields.pop("shared_tensor", fields.pop("fd"))
    with pytest.raises(protocol.ProtocolError, match=fragment):
        protocol.resolve({"outputs": [_handle(fd, **{k: v for k, v in fields.items() if k != "fd"})]}, pid)


def test_a_sealed_file_cannot_be_written_after_export():
    protocol.share_tensors(True)
    try:
        handle = protocol.export(torch.arange(1 << 18, dtype=torch.float32))
        assert isinstance(handle, dict)
        with pytest.raises(PermissionError):
            os.pwrite(handle["shared_tensor"], b"\0" * 8, 0)
        tensor = protocol.resolve(handle, os.getpid())
        assert torch.equal(tensor, torch.arange(1 << 18, dtype=torch.float32))
    finally:
        protocol.release_exported()
        protocol.share_tensors(False)


def test_small_tensors_travel_inline():
    protocol.share_tensors(True)
    try:
        assert isinstance(protocol.export(torch.ones(16)), torch.Tensor)
    finally:
        protocol.share_tensors(False)


# ---- standby workers ----------------------------------------------------------------------------

def _pid(verdict) -> int:
    return int(re.search(r"pid (\d+)", verdict.reason).group(1))


def _next_worker(pool) -> int:
    worker = pool._workers.acquire()
    try:
        return worker.process.pid
    finally:
        pool._workers.release(worker, replace=False)


def test_a_rejected_candidates_worker_is_replaced_by_its_standby(pool, big_problem):
    judged, successors = [], []
    for i in range(3):
        judged.append(_pid(pool.evaluate(big_problem, REPORTS_PID, f"pid-{i}", policy="standard")))
        successors.append(_next_worker(pool))
        assert not Path(f"/proc/{judged[-1]}").exists(), "the worker that ran a rejected candidate lives on"
    assert len(set(judged)) == 3  # no process saw two candidates
    assert judged[1:] == successors[:-1]  # each replacement was the standby, started beforehand


def test_a_dead_standby_is_replaced(pool, big_problem):
    worker = pool._workers.acquire()
    worker.standby.process.kill()
    worker.standby.process.wait()
    pool._workers.release(worker, replace=True)
    verdict = pool.evaluate(big_problem, HONEST, "after-dead-standby", policy="standard")
    assert verdict.accepted, verdict.reason


def test_close_ends_workers_and_standbys(big_problem):
    with WorkerPool(device="cpu", workers=1, config=CONFIG) as p:
        p.evaluate(big_problem, REPORTS_PID, "pid", policy="standard")
        _next_worker(p)  # hands out the promoted standby, which starts a standby of its own
        pids = p._workers.pids(wait=True)
        assert len(pids) == 2
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1]


def test_a_one_off_evaluation_starts_no_standby(big_problem):
    from akg.harness.pool import Workers
    workers = Workers("cpu", 1, CONFIG, standby=False)
    try:
        worker = workers.acquire()
        assert worker.standby is None
        workers.release(worker, replace=True)
    finally:
        workers.close()


def test_a_standby_leaves_the_device_alone_until_the_measurements_are_over():
    from akg.harness.pool import Workers
    # Only the order is observed, so this runs without a GPU: the standby would fail at its start.
    workers = Workers("cuda", 1, CONFIG)
    try:
        worker = workers.acquire()
        standby = worker.standby
        worker.settle_standby()  # on a GPU the candidate's timing does not wait for the standby
        assert protocol.receive(standby._recv_fd, 120)["op"] == "ready"  # imports done
        with pytest.raises(protocol.ReplyTimeout):
            protocol.receive(standby._recv_fd, 2.0)  # and nothing more: it waits for the word
        workers.release(worker, replace=False)
        assert standby._device_started
    finally:
        workers.close()
