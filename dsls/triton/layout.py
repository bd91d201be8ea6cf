"""Index arithmetic shared by the Triton templates: collapsing a domain and spelling offsets.

A kernel spec gives every tensor element strides over the group's domain. Adjacent dims that every
tensor walks contiguously (stride[d] == stride[d+1] * size[d+1], or 0 and 0) merge into one, so a
contiguous N-d elementwise op becomes a flat 1-d loop and needs no div/mod per element.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

INT32_LIMIT = 2**31 - 1


@dataclass(frozen=True)
class Collapsed:
    sizes: tuple[int, ...]
    strides: tuple[tuple[int, ...], ...]   # one stride vector per tensor, over ``sizes``


def collapse(sizes: tuple[int, ...], strides: list[tuple[int, ...]]) -> Collapsed:
    """Drop size-1 dims and merge adjacent dims that all tensors traverse contiguously."""
    keep = [d for d, n in enumerate(sizes) if n != 1]
    dims = [sizes[d] for d in keep]
    vecs = [[s[d] for d in keep] for s in strides]
    d = len(dims) - 2
    while d >= 0:
        if all(v[d] == v[d + 1] * dims[d + 1] for v in vecs):
            dims[d] *= dims[d + 1]
            for v in vecs:
                v[d] = v[d + 1]
                del v[d + 1]
            del dims[d + 1]
        d -= 1
    return Collapsed(tuple(dims), tuple(tuple(v) for v in vecs))


def coordinate_lines(index: str, sizes: tuple[int, ...], prefix: str) -> list[str]:
    """Statements decomposing a flat row-major ``index`` over ``sizes`` into ``{prefix}{d}``."""
    lines = []
    for d, n in enumerate(sizes):
        inner = math.prod(sizes[d + 1:])
        term = index if inner == 1 else f"({index} // {inner})"
        if d > 0:
            term = f"({term} % {n})"
        lines.append(f"{prefix}{d} = {term}")
    return lines


def offset(coords: list[str], strides: tuple[int, ...]) -> str:
    """The storage offset sum(coord * stride), leaving out broadcast (stride 0) dims."""
    terms = [c if s == 1 else f"{c} * {s}" for c, s in zip(coords, strides) if s != 0]
    return " + ".join(terms) or "0"


def needs_int64(sizes: tuple[int, ...], strides: list[tuple[int, ...]]) -> bool:
    """Whether the largest index or offset overflows int32."""
    span = math.prod(sizes) if sizes else 1
    reach = max((sum((n - 1) * s for n, s in zip(sizes, v)) for v in strides), default=0)
    return max(span, reach) > INT32_LIMIT


def transposed_dims(sizes: tuple[int, ...], operand_strides, output_strides) -> tuple[int, int] | None:
    """(y, x) of a pointwise domain whose outputs are contiguous along x (the last dim) while an
    operand is contiguous along an earlier y: a 1-d block would read that operand with a stride,
    so a tiled variant loads [YBLOCK, XBLOCK] tiles and lets Triton transpose through shared memory."""
    if len(sizes) < 2 or any(o[-1] != 1 for o in output_strides):
        return None
    x = len(sizes) - 1
    for strides in operand_strides:
        if strides[x] not in (0, 1) and 1 in strides[:x]:
            return strides.index(1), x
    return None
