"""The harness at KernelBench sizes on a GPU: inputs drawn on the device, passed to the worker by
CUDA IPC, outputs copied into the conductor's device buffers, nothing through the host; peak device
memory reported; a problem too big for the device refused in one line before any work.

    python -m pytest -m gpu tests/gpu/test_harness_device.py -q
"""
from __future__ import annotations

import resource
import subprocess
import sys
import time

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.gpu
if not torch.cuda.is_available():
    pytest.skip("needs an NVIDIA GPU", allow_module_level=True)

from akg.harness import HarnessConfig, WorkerPool, memory  # noqa: E402
from akg.problem import load_problem  # noqa: E402

GIB = 1 << 30
# 2 GiB of fp32 input (level-1 ReLU is 6.4 GB): big enough that a host copy would show in the
# conductor's resident memory, small enough for a quick test.
RELU = """
import torch
import torch.nn as nn

class Model(nn.Module):
    def forward(self, x):
        return torch.relu(x)

def get_inputs():
    return [torch.rand(4096, 131072) - 0.5]

def get_init_inputs():
    return []
"""
DROPOUT = """
import torch
import torch.nn as nn

class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.dropout = nn.Dropout(0.5)
    def forward(self, x):
        return torch.softmax(self.dropout(x), dim=-1)

def get_inputs():
    return [torch.randn(4096, 4096)]

def get_init_inputs():
    return []
"""
TOO_BIG = """
import torch
import torch.nn as nn

class Model(nn.Module):
    def forward(self, x):
        return x * 2

def get_inputs():
    return [torch.rand(16384, 1 << 20)]    # 64 GiB: 6 x (in + out) is far above any single GPU

def get_init_inputs():
    return []
"""
HONEST_RELU = "import torch\nimport torch.nn as nn\nclass ModelNew(nn.Module):\n    def forward(self, x):\n        return torch.relu(x)\n"
KEEPS_DROPOUT = ("import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\nclass ModelNew(nn.Module):\n"
                 "    def forward(self, x):\n        return torch.softmax(F.dropout(x, 0.5, training=True), dim=-1)\n")
# Finds the tensors the worker mapped from the conductor (not its own clones) and zeroes them.
WRITES_SHARED_INPUT = """
import gc
import torch
import torch.nn as nn

class ModelNew(nn.Module):
    def forward(self, x):
        for obj in gc.get_objects():
            if type(obj) is torch.Tensor and obj.is_cuda and obj.shape == x.shape and obj.data_ptr() != x.data_ptr():
                obj.zero_()
        return torch.relu(x)
"""
CONFIG = HarnessConfig(seeds=(0,), distributions=("problem", "large"), warmup=1, trials=3,
                       measure_compile=False, timeout_s=300.0)


@pytest.fixture(scope="module")
def problems(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpu-problems")
    paths = {}
    for name, text in (("relu_2g", RELU), ("dropout_softmax", DROPOUT), ("too_big", TOO_BIG)):
        paths[name] = root / f"{name}.py"
        paths[name].write_text(text)
    return paths


def test_a_2_gib_problem_travels_by_ipc_without_host_copies(problems):
    rss_before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with WorkerPool(device="cuda", workers=1, config=CONFIG, standby=False) as pool:
        verdict = pool.evaluate(problems["relu_2g"], HONEST_RELU, "relu", policy="standard")
    assert verdict.accepted, verdict.reason
    profile = dict(verdict.profile)
    footprint = profile["footprint_bytes"]
    assert footprint == 2 * 2 * GIB
    # Both processes held the data on the device, within the stated multiple of the footprint.
    assert footprint <= profile["peak_device_bytes_conductor"] <= (memory.CONDUCTOR_FACTOR * footprint
                                                               + memory.COMPARE_SCRATCH_BYTES)
    assert GIB <= profile["peak_device_bytes_worker"] <= memory.WORKER_FACTOR * footprint
    # The conductor never held a host copy of the 2 GiB input or output.
    grown_gib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before_kib) / (1 << 20)
    assert grown_gib < 1.0, f"conductor's resident memory grew by {grown_gib:.2f} GiB"


def test_a_candidate_writing_the_shared_inputs_is_caught(problems):
    with WorkerPool(device="cuda", workers=1, config=CONFIG.replace(time=False), standby=False) as pool:
        verdict = pool.evaluate(problems["relu_2g"], WRITES_SHARED_INPUT, "writes-shared", policy="standard")
        assert not verdict.accepted
        assert {c.name for c in verdict.checks if not c.passed} & {"input_mutation", "allclose"}, verdict.reason
        # The conductor drew the case again: an honest candidate after it is judged on clean inputs.
        after = pool.evaluate(problems["relu_2g"], HONEST_RELU, "relu-after", policy="standard")
    assert after.accepted, after.reason


def test_dropout_on_the_device_is_judged_under_the_same_seed(problems):
    with WorkerPool(device="cuda", workers=1, config=CONFIG, standby=False) as pool:
        verdict = pool.evaluate(problems["dropout_softmax"], KEEPS_DROPOUT, "keeps-dropout", policy="standard")
    assert verdict.accepted, verdict.reason
    assert {c.name: c.passed for c in verdict.checks}.get("random_seeded") is True


def test_a_problem_too_big_for_the_device_is_refused_before_any_work(problems):
    torch.cuda.init()
    allocated = torch.cuda.memory_allocated()
    start = time.monotonic()
    with WorkerPool(device="cuda", workers=1, config=CONFIG, standby=False) as pool:
        with pytest.raises(memory.ProblemTooLarge) as info:
            pool.evaluate(problems["too_big"], HONEST_RELU, "x", policy="standard")
    assert "\n" not in str(info.value) and "GiB is free" in str(info.value)
    assert torch.cuda.memory_allocated() == allocated and time.monotonic() - start < 60


def test_the_command_line_refuses_it_with_exit_code_5(problems, tmp_path):
    candidate = tmp_path / "cand.py"
    candidate.write_text(HONEST_RELU)
    done = subprocess.run([sys.executable, "-m", "akg.cli", "verify", str(problems["too_big"]), str(candidate),
                           "--device", "cuda"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 5, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("akg:")]
    assert len(errors) == 1 and "needs about" in errors[0] and "Traceback" not in done.stderr


def test_footprint_of_a_level1_sized_problem_matches_its_real_allocation(problems):
    problem = load_problem(problems["relu_2g"])
    footprint = memory.estimate_footprint(problem)
    torch.manual_seed(0)
    with torch.device("cuda"):
        (x,) = problem.get_inputs()
    y = torch.relu(x)
    assert footprint.inputs_bytes == x.numel() * 4 and footprint.outputs_bytes == y.numel() * 4
