"""The reference's side of every test case, computed in the conductor where no candidate runs.

Expected outputs never enter a worker before the candidate has returned: the worker ships the
candidate's outputs here and the comparison happens in this process.
"""
from __future__ import annotations

import copy
import os
import random
from dataclasses import dataclass

import torch

from akg.harness import protocol
from akg.harness.inputs import clone_args, draw_inputs, mapped_draw, to_device
from akg.problem import Problem, flatten_outputs

# Inputs kept in sealed memory files for the workers, per reference; cases past it are drawn by
# each worker itself, as a worker does wherever the files cannot be made.
SHARED_INPUT_BYTES = 8 << 30


@dataclass(frozen=True)
class ExpectedCase:
    outputs: list[torch.Tensor]                # on the CPU
    aliases_input: list[list[int]]             # per output: inputs whose storage it shares
    mutated: list[int]                         # inputs the reference changes in place

    @property
    def output_nbytes(self) -> list[int]:
        return [t.numel() * t.element_size() for t in self.outputs]


class Reference:
    """The problem's Model built under the parameter seed, and its results per case (cached)."""

    def __init__(self, problem: Problem, device: str, param_seed: int) -> None:
        self.problem = problem
        self.device = device
        self.param_seed = param_seed
        self.model = problem.build_model(param_seed).to(device)
        self._cases: dict[tuple[int, str], ExpectedCase] = {}
        self._truths: dict[tuple[int, str], list[torch.Tensor] | None] = {}
        self._shared: dict[tuple[int, str], dict | None] = {}
        self._shared_bytes = 0
        self._fds: list[int] = []

    def case(self, seed: int, distribution: str) -> ExpectedCase:
        key = (seed, distribution)
        if key not in self._cases:
            self._cases[key] = self._run(seed, distribution)
        return self._cases[key]

    def shared_inputs(self, seed: int, distribution: str) -> dict | None:
        """The case's inputs as drawn here, for a worker to map instead of drawing them again
        (hundreds of MB take seconds to draw); None where the worker must draw them itself."""
        key = (seed, distribution)
        if key not in self._shared:
            self._draw(seed, distribution)
        return self._shared[key]

    def close(self) -> None:
        while self._fds:
            os.close(self._fds.pop())

    def _draw(self, seed: int, distribution: str) -> list:
        """The case's inputs on the CPU. The first draw also goes into sealed memory files."""
        key = (seed, distribution)
        shared = self._shared.get(key)
        if shared is not None:
            return mapped_draw(shared, seed)
        inputs = draw_inputs(self.problem, seed, distribution)
        # What drawing did to the random state, so a worker that maps the files can do the same.
        rng_state, py_rng_state = torch.get_rng_state(), random.getstate()
        if key not in self._shared:
            self._shared[key] = self._share(inputs, rng_state, py_rng_state)
        return inputs

    def _share(self, inputs: list, rng_state: torch.Tensor, py_rng_state: tuple) -> dict | None:
        tensors = [x for x in inputs if isinstance(x, torch.Tensor)]
        nbytes = sum(t.numel() * t.element_size() for t in tensors)
        if (not all(_shareable(t) for t in tensors) or not all(_plain(x) for x in inputs if not isinstance(x, torch.Tensor))
                or self._shared_bytes + nbytes > SHARED_INPUT_BYTES):
            return None
        wire = []
        for x in inputs:
            if isinstance(x, torch.Tensor) and x.numel() * x.element_size() >= protocol.SHARE_MIN_BYTES:
                fd, handle = protocol.seal(x)
                self._fds.append(fd)
                wire.append(handle)
            else:
                wire.append(x)  # small tensors and plain values travel in the message
        self._shared_bytes += nbytes
        return {"inputs": wire, "rng_state": rng_state, "py_rng_state": py_rng_state}

    def _run(self, seed: int, distribution: str) -> ExpectedCase:
        inputs = to_device(self._draw(seed, distribution), self.device)
        args = clone_args(inputs)
        with torch.no_grad():
            outputs = flatten_outputs(self.model(*args), self.problem.name)
        aliases = [[j for j, a in enumerate(args) if isinstance(a, torch.Tensor)
                    and a.untyped_storage().data_ptr() == out.untyped_storage().data_ptr()] for out in outputs]
        mutated = [i for i, (a, b) in enumerate(zip(args, inputs))
                   if isinstance(a, torch.Tensor) and not torch.equal(a.nan_to_num(), b.nan_to_num())]
        return ExpectedCase([o.detach().cpu().clone() for o in outputs], aliases, mutated)

    def truth(self, seed: int, distribution: str) -> list[torch.Tensor] | None:
        """The case's outputs computed in float64 (model and floating inputs promoted), on the
        device: how far the reference itself is from exact, which bounds how exact a candidate
        must be (a TF32 convolution is about 1e-3 off). None when the model cannot run in float64."""
        key = (seed, distribution)
        if key not in self._truths:
            self._truths[key] = self._run_float64(seed, distribution)
        return self._truths[key]

    def _run_float64(self, seed: int, distribution: str) -> list[torch.Tensor] | None:
        inputs = to_device(self._draw(seed, distribution), self.device)   # the case's own draw
        promoted = [x.double() if isinstance(x, torch.Tensor) and x.is_floating_point() else x for x in inputs]
        try:
            model = copy.deepcopy(self.model).double()
            with torch.no_grad():
                outputs = flatten_outputs(model(*promoted), self.problem.name)
        except Exception:   # an op without a float64 kernel: the fixed tolerance stays the only bar
            return None
        return [o.detach() for o in outputs]


def _shareable(t: torch.Tensor) -> bool:
    """A tensor a worker gets back exactly from its bytes, shape and dtype."""
    return (type(t) is torch.Tensor and t.device.type == "cpu" and t.layout == torch.strided and t.is_contiguous()
            and not t.requires_grad and not t.is_conj() and not t.is_neg()
            and str(t.dtype).removeprefix("torch.") in protocol.SHARED_DTYPES)


def _plain(x) -> bool:
    """A value that crosses the pipe unchanged."""
    if isinstance(x, (list, tuple)):
        return all(_plain(v) for v in x)
    return x is None or type(x) in (bool, int, float, str)
