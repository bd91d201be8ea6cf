"""The reference's side of every test case, computed in the conductor where no candidate runs.

Expected outputs never enter a worker before the candidate has returned: the worker ships the
candidate's outputs here and the comparison happens in this process.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from akg.harness.inputs import clone_args, make_inputs
from akg.problem import Problem, flatten_outputs


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

    def case(self, seed: int, distribution: str) -> ExpectedCase:
        key = (seed, distribution)
        if key not in self._cases:
            self._cases[key] = self._run(seed, distribution)
        return self._cases[key]

    def _run(self, seed: int, distribution: str) -> ExpectedCase:
        inputs = make_inputs(self.problem, seed, distribution, self.device)
        args = clone_args(inputs)
        with torch.no_grad():
            outputs = flatten_outputs(self.model(*args), self.problem.name)
        aliases = [[j for j, a in enumerate(args) if isinstance(a, torch.Tensor)
                    and a.untyped_storage().data_ptr() == out.untyped_storage().data_ptr()] for out in outputs]
        mutated = [i for i, (a, b) in enumerate(zip(args, inputs))
                   if isinstance(a, torch.Tensor) and not torch.equal(a.nan_to_num(), b.nan_to_num())]
        return ExpectedCase([o.detach().cpu().clone() for o in outputs], aliases, mutated)
