"""Render fused groups as HIP: the CUDA-C templates and lowering with the HIP dialect (64-wide
wavefronts, HIP shuffles, native _Float16) and the HIP runtime."""
from __future__ import annotations

from pathlib import Path

from akg.dsls.cuda_c.render import Dialect, kernel_source as _kernel_source, render_groups as _render_groups
from akg.ir import FusedGroup

from .exprs import HipRenderer

HIP = Dialect("hip", HipRenderer(), 64, "rocm", Path(__file__).with_name("runtime.py"), Path(__file__).parent / "templates")


def kernel_source(groups: list[tuple[int, FusedGroup]]) -> tuple[str, list[str]]:
    return _kernel_source(groups, HIP)


def render_groups(groups: list[tuple[int, FusedGroup]], device: str) -> str:
    return _render_groups(groups, device, HIP)
