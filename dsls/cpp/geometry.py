"""Iteration-domain geometry for generated loops: merging dims and spelling offsets.

Kernel specs describe every tensor by element strides over the domain. Adjacent dims that every
tensor walks as one (stride[d] == stride[d+1] * size[d+1]) are merged, so a contiguous 4-d
elementwise op becomes one flat loop the compiler vectorises.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Geometry:
    sizes: tuple[int, ...]
    strides: tuple[tuple[int, ...], ...]   # per tensor, one stride per dim
    keep: int | None                       # index of the dim that was kept apart (reduce/scan), if any


def collapse(domain: tuple[int, ...], strides: list[tuple[int, ...]], keep: int | None = None) -> Geometry:
    """Drop size-1 dims and merge mergeable neighbours; ``keep`` stays a dim of its own."""
    dims = [d for d in range(len(domain)) if domain[d] != 1 or d == keep]
    sizes: list[int] = []
    merged: list[list[int]] = [[] for _ in strides]
    kept_at = None
    for d in dims:
        can_merge = (sizes and d != keep and kept_at != len(sizes) - 1
                     and all(s[d] * domain[d] == m[-1] for s, m in zip(strides, merged)))
        if can_merge:
            sizes[-1] *= domain[d]
            for s, m in zip(strides, merged):
                m[-1] = s[d]
        else:
            if d == keep:
                kept_at = len(sizes)
            sizes.append(domain[d])
            for s, m in zip(strides, merged):
                m.append(s[d])
    return Geometry(tuple(sizes), tuple(tuple(m) for m in merged), kept_at)


def decompose(index: str, dims: list[int], sizes: tuple[int, ...], prefix: str = "c") -> list[str]:
    """C statements splitting linear ``index`` into coordinates ``{prefix}{d}`` over ``dims``
    (row-major, last dim fastest)."""
    if not dims:
        return []
    if len(dims) == 1:
        return [f"const int64_t {prefix}{dims[0]} = {index};"]
    lines = [f"int64_t rest_{prefix} = {index};"]
    for d in reversed(dims[1:]):
        lines.append(f"const int64_t {prefix}{d} = rest_{prefix} % {sizes[d]}; rest_{prefix} /= {sizes[d]};")
    lines.append(f"const int64_t {prefix}{dims[0]} = rest_{prefix};")
    return lines


def linear(terms: list[tuple[str, int]]) -> str:
    """C text of sum(var * stride), without zero terms or unit multipliers."""
    parts = [var if stride == 1 else f"{var} * {stride}" for var, stride in terms if stride != 0]
    return " + ".join(parts) or "0"
