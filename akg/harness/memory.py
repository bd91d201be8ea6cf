"""Device memory: a problem's footprint before any work, the check that it fits, and the peak
that conductor and worker reached.

The footprint (inputs + parameters + outputs) comes from shapes alone: ``get_inputs()`` and the
model run under ``FakeTensorMode``, where every tensor has a shape, dtype and device but no
storage, so a problem with 17 GB of inputs costs nothing to size. The harness holds a known
multiple of it (``PEAK_FACTOR``, see docs/verification.md): the check refuses a problem whose
multiple does not fit in the device's free memory, with one line, before anything is drawn.

Vendor-neutral: device memory is read through ``torch.accelerator``; the CPU has no such limit
here (the worker's address-space limit covers it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from akg.harness.errors import HarnessError

# What the harness holds at its peak on a device, in units of the problem's footprint F (inputs +
# parameters + outputs):
#   conductor: the cached case (the inputs workers map and the reference's outputs: at most
#              ``CACHED_CASES`` x F, see reference.py) + the next case's own draw, its redraw for a
#              value distribution and the reference's outputs (<= 1.5 F) + the buffers the worker
#              copies its two passes' outputs into (<= F): <= 4 F, plus the value checks' scratch, which
#              is fixed (chunks of 2**24 elements, a handful of float64 temporaries each: < 1 GiB);
#   worker:    its own copy of the parameters, one clone of the inputs per call, the candidate's
#              outputs, their copy taken at return (late writes), earlier outputs kept to see reuse
#              (bounded to one more set, see ``keep``), the poison blocks before a call: <= 3 F.
# The inputs a worker maps are the conductor's memory (no copy).
CACHED_CASES = 1
CONDUCTOR_FACTOR = 4.0
WORKER_FACTOR = 3.0
PEAK_FACTOR = CONDUCTOR_FACTOR + WORKER_FACTOR      # one worker: 7
# The value checks' scratch in the conductor, independent of the problem's size (measured on an
# H200 with 4 GiB footprints: 0.67 GiB above 4 F).
COMPARE_SCRATCH_BYTES = 1 << 30
# Earlier outputs a worker keeps alive on a device, in units of the current outputs' size.
KEEP_OUTPUTS_FACTOR = 1.0


class ProblemTooLarge(HarnessError):
    """The problem does not fit the device: reported before any work, exit code 5 (device)."""
    exit_code = 5


@dataclass(frozen=True)
class Footprint:
    inputs_bytes: int
    params_bytes: int
    outputs_bytes: int | None       # None where the model could not run on shapes alone

    @property
    def total_bytes(self) -> int:
        outputs = self.outputs_bytes if self.outputs_bytes is not None else self.inputs_bytes
        return self.inputs_bytes + self.params_bytes + outputs

    def as_dict(self) -> dict:
        return {"inputs_bytes": self.inputs_bytes, "params_bytes": self.params_bytes,
                "outputs_bytes": self.outputs_bytes, "total_bytes": self.total_bytes}


def _nbytes(values) -> int:
    total = 0
    for x in values:
        if isinstance(x, torch.Tensor):
            total += x.numel() * x.element_size()
        elif isinstance(x, (list, tuple)):
            total += _nbytes(x)
    return total


def estimate_footprint(problem) -> Footprint:
    """Inputs, parameters and outputs of ``problem`` in bytes, from shapes alone (no storage is
    allocated, on any device)."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from akg.problem import seed_everything

    mode = FakeTensorMode(allow_non_fake_inputs=True)
    seed_everything(0)
    with mode:
        inputs = problem.get_inputs()
        model = problem.model_cls(*problem.get_init_inputs())
    params = _nbytes(list(model.parameters()) + list(model.buffers()))
    outputs = None
    try:
        with mode, torch.no_grad():
            out = model(*inputs)
        outputs = _nbytes(out if isinstance(out, (list, tuple)) else [out])
    except Exception:  # an op without a shape rule, a data-dependent branch: size by inputs
        pass
    return Footprint(_nbytes(inputs), params, outputs)


def is_accelerator(device: str) -> bool:
    try:
        return torch.device(device).type not in ("cpu", "meta")
    except (RuntimeError, TypeError, ValueError):   # a backend name torch does not know
        return False


def _device_module(device: str):
    """torch's module for the device's type (the one ``torch.accelerator`` wraps), for calls older
    torch versions have only there."""
    return getattr(torch, torch.device(device).type, None)


def _memory_call(device: str, name: str, fallback: str, *args):
    dev = torch.device(device)
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None and hasattr(accelerator, name):
        return getattr(accelerator, name)(dev, *args)
    return getattr(_device_module(device), fallback)(dev, *args)


def free_bytes(device: str) -> int | None:
    """Free memory on ``device`` now; None for the CPU or where it cannot be read."""
    if not is_accelerator(device):
        return None
    try:
        free, _total = _memory_call(device, "get_memory_info", "mem_get_info")
        return int(free)
    except Exception:
        return None


def check_fits(problem, device: str, workers: int = 1) -> Footprint:
    """The problem's footprint, after checking that the harness's multiple of it (conductor and
    ``workers`` workers on one device) fits in ``device``'s free memory; raises
    ``ProblemTooLarge`` (one line) where it does not."""
    try:
        footprint = estimate_footprint(problem)
    except Exception:   # get_inputs or the constructor does what fake tensors cannot
        return Footprint(0, 0, None)
    refuse_if_too_big(problem, device, footprint, free_bytes(device), workers)
    return footprint


def peak_factor(workers: int = 1) -> float:
    return CONDUCTOR_FACTOR + WORKER_FACTOR * max(1, workers)


def refuse_if_too_big(problem, device: str, footprint: Footprint, free: int | None, workers: int = 1) -> None:
    factor = peak_factor(workers)
    need = int(math.ceil(factor * footprint.total_bytes)) + COMPARE_SCRATCH_BYTES
    if free is not None and need > free:
        raise ProblemTooLarge(
            f"problem {problem.name}: needs about {_gib(need)} on {device} ({factor:g} x its "
            f"{_gib(footprint.total_bytes)} of inputs, parameters and outputs, plus 1 GiB) but {_gib(free)} is free; "
            f"use a device with more memory or smaller inputs")


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB"


# ---- peaks and bounded keeping, used in both processes -------------------------------------------

def reset_peak(device: str) -> None:
    if is_accelerator(device):
        try:
            _memory_call(device, "reset_peak_memory_stats", "reset_peak_memory_stats")
        except Exception:
            pass


def peak_bytes(device: str) -> int:
    """The most memory this process held on ``device`` since the last ``reset_peak`` (0 on a CPU)."""
    if not is_accelerator(device):
        return 0
    try:
        return int(_memory_call(device, "max_memory_allocated", "max_memory_allocated"))
    except Exception:
        return 0


def synchronize() -> None:
    """Wait for every stream of this process on the current accelerator."""
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None and accelerator.is_available():
        accelerator.synchronize()


def keep(device: str, now: list[torch.Tensor], kept: list[torch.Tensor], max_count: int = 8) -> list[torch.Tensor]:
    """The earlier outputs to keep alive after a call returned ``now``: on a CPU the last
    ``max_count``; on a device only as many as fit ``KEEP_OUTPUTS_FACTOR`` times ``now``'s size
    (at KernelBench sizes eight 6 GB outputs would not fit)."""
    if not is_accelerator(device):
        return now + kept[:max_count]
    budget = KEEP_OUTPUTS_FACTOR * _nbytes(now)
    result, used = list(now), 0
    for t in kept[:max_count]:
        size = t.numel() * t.element_size()
        if used + size > budget:
            break
        result.append(t)
        used += size
    return result
