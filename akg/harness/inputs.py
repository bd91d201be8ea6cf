"""Test inputs: the problem's own draw for a seed, moved to another value distribution.

The draw is deterministic in (problem, seed, distribution, device kind). The conductor draws
each case once and passes the result to workers (``Reference.shared_inputs``): sealed memory files
on the CPU, device memory handles on an accelerator; a worker that gets none draws the same values
itself with ``make_inputs``.

On an accelerator the draw happens there: ``get_inputs()`` runs with the device as torch's default
device, so ``torch.rand(4096, 393216)`` fills device memory from the device's generator (seeded the
same way, the same distributions) and no multi-GB tensor is made on the host and copied. The values
differ from the CPU draw of the same seed, as any two generators' do.
"""
from __future__ import annotations

import os
import random
from typing import Any

import torch

from akg.harness import protocol
from akg.problem import Problem, seed_everything


def make_inputs(problem: Problem, seed: int, distribution: str, device: str = "cpu") -> list[Any]:
    return to_device(draw_inputs(problem, seed, distribution, device), device)


def draw_inputs(problem: Problem, seed: int, distribution: str, device: str = "cpu") -> list[Any]:
    """The inputs as the problem's ``get_inputs`` made them: on the CPU for a CPU device, else
    with ``device`` as the default device (tensors it places explicitly stay where it put them)."""
    on_device = torch.device(device).type != "cpu"
    if on_device:
        with torch.device(device):
            inputs = problem.example_inputs(seed)
    else:
        inputs = problem.example_inputs(seed)
    generators: dict[torch.device, torch.Generator] = {}   # only "uniform" draws anew
    return [_redraw(x, distribution, _generator(generators, x.device, seed) if distribution == "uniform" else None)
            if _is_float(x) else x for x in inputs]


def _generator(generators: dict, device: torch.device, seed: int) -> torch.Generator:
    if device not in generators:
        generators[device] = torch.Generator(device=device).manual_seed(seed * 7919 + 17)
    return generators[device]


def to_device(inputs: list[Any], device: str) -> list[Any]:
    return [x.to(device) if isinstance(x, torch.Tensor) else x for x in inputs]


def replay_draw_state(seed: int, rng_state: torch.Tensor, py_rng_state: tuple) -> None:
    """Leave the random state as drawing the inputs for ``seed`` left it, for inputs that were
    drawn elsewhere: a model that draws random numbers then sees what it would have seen."""
    seed_everything(seed)
    torch.set_rng_state(rng_state)
    random.setstate(py_rng_state)


def mapped_draw(shared: dict, seed: int) -> list[Any]:
    """The inputs the conductor drew for ``seed`` and kept in sealed files
    (``Reference.shared_inputs``), with the random state left as that draw left it. Raises
    ``protocol.ProtocolError`` where the files do not map."""
    inputs = protocol.resolve(shared["inputs"], os.getpid(), device_handles=True)
    replay_draw_state(seed, shared["rng_state"], shared["py_rng_state"])
    return inputs


def clone_args(args: list[Any]) -> list[Any]:
    """Fresh copies for one call, so no call sees what an earlier one did to its inputs."""
    return [x.clone() if isinstance(x, torch.Tensor) else x for x in args]


def _is_float(x: Any) -> bool:
    return isinstance(x, torch.Tensor) and x.is_floating_point() and x.numel() > 0


def _redraw(x: torch.Tensor, distribution: str, generator: torch.Generator) -> torch.Tensor:
    if distribution == "problem":
        return x
    if distribution == "large":
        return x * 1e3
    if distribution == "small":
        return x * 1e-3
    if distribution == "uniform":
        # Same range as the problem's draw, so a domain such as "positive only" is kept.
        lo, hi = float(x.min()), float(x.max())
        # float64 on the CPU, as always; on a device the input's own precision (a float64 copy
        # of a multi-GB input would double what the draw holds)
        exact = x.device.type == "cpu" or x.dtype == torch.float64
        u = torch.rand(x.shape, generator=generator, dtype=torch.float64 if exact else torch.float32, device=x.device)
        return u.mul_(hi - lo).add_(lo).to(x.dtype)
    if distribution == "shifted":
        # Off-centre values: a mean far from zero breaks shortcuts that assume centred data.
        return x + x.abs().mean().clamp_min(1.0) * 3
    raise ValueError(f"unknown distribution {distribution!r}")
