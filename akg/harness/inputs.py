"""Test inputs: the problem's own draw for a seed, moved to another value distribution.

The conductor (for the reference) and the worker (for the candidate) both call ``make_inputs``;
it is deterministic in (problem, seed, distribution), so the two sides agree without shipping
tensors across the process boundary.
"""
from __future__ import annotations

from typing import Any

import torch

from akg.problem import Problem


def make_inputs(problem: Problem, seed: int, distribution: str, device: str = "cpu") -> list[Any]:
    inputs = problem.example_inputs(seed)
    generator = torch.Generator().manual_seed(seed * 7919 + 17)
    moved = [_redraw(x, distribution, generator) if _is_float(x) else x for x in inputs]
    return [x.to(device) if isinstance(x, torch.Tensor) else x for x in moved]


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
        u = torch.rand(x.shape, generator=generator, dtype=torch.float64)
        return (lo + (hi - lo) * u).to(x.dtype)
    if distribution == "shifted":
        # Off-centre values: a mean far from zero breaks shortcuts that assume centred data.
        return x + x.abs().mean().clamp_min(1.0) * 3
    raise ValueError(f"unknown distribution {distribution!r}")
