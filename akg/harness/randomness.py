"""Models that draw random numbers (dropout in training mode, ``torch.rand*``, ``bernoulli``):
how they are recognised and how a candidate for one is judged.

Recognised at the framework's dispatch level: every aten op tagged ``nondeterministic_seeded``
(the random ops) is seen, whatever Python call reached it. The harness sets the same seed right
before every forward, the reference's and the candidate's, so:

- a candidate that keeps the random op as the framework's call draws the same numbers; its draws
  are compared bit for bit (a digest of each) and its outputs with the usual tolerance
  (check ``random_seeded``);
- a candidate whose own kernel draws its random numbers (seeded from the framework's generator, so
  that the same seed reproduces them) is judged statistically over several seeds: the per-element
  mean and variance of its outputs against the reference's, overall and per input bin (keep rate,
  scaling, independence from the input; check ``random_statistical``); plus, where the reference's
  outputs take only the values of its two extreme draws (a mask applied elementwise: everything
  kept or everything dropped), every candidate output value must be one of those two
  (check ``random_support``): the exact check of everything but the draw.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from akg.ir import Check

_RANDOM_TAG = torch.Tag.nondeterministic_seeded
_DIGEST_CHUNK = 1 << 24
_INT_OF_SIZE = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}

# How many elements of an output the statistical check looks at (a fixed random subset).
SAMPLE_ELEMENTS = 1 << 16


def is_random_op(func) -> bool:
    return _RANDOM_TAG in getattr(func, "tags", ())


def op_name(func) -> str:
    return f"aten.{getattr(func, '__name__', str(func))}"


def digest(t: torch.Tensor, weights: torch.Tensor | None = None) -> str:
    """A digest of the exact bits of ``t``: per chunk a weighted sum of its words, chained (the
    same on every device; in chunks, so no large temporary is made; one synchronisation).
    ``weights`` (int64, at least one chunk long) replaces the public position weights with secret
    ones: then nobody who does not know them can change values and keep the digest."""
    flat = t.detach().contiguous().reshape(-1)
    if flat.dtype == torch.bool:
        flat = flat.view(torch.uint8)
    elif flat.element_size() in _INT_OF_SIZE and not flat.is_complex():
        flat = flat.view(_INT_OF_SIZE[flat.element_size()])
    else:
        flat = flat.view(torch.uint8)
    n = min(flat.numel(), _DIGEST_CHUNK)
    if weights is None:
        weights = torch.arange(n, device=flat.device, dtype=torch.int64) % 65521 + 1
    weights = weights[:n].to(flat.device)
    total = torch.zeros((), dtype=torch.int64, device=flat.device)
    for start in range(0, flat.numel(), _DIGEST_CHUNK):
        chunk = flat[start:start + _DIGEST_CHUNK].to(torch.int64)
        # int64 arithmetic wraps: a sum modulo 2^64, the same on every device
        total = total * 1_000_003 + (chunk * weights[:chunk.numel()]).sum() + chunk.sum()
    return f"{tuple(t.shape)}:{str(t.dtype).removeprefix('torch.')}:{int(total) & ((1 << 64) - 1):x}"


def secret_weights(device) -> torch.Tensor:
    """Weights for ``digest`` that only this process knows (drawn from the OS's randomness)."""
    g = torch.Generator().manual_seed(int.from_bytes(os.urandom(8), "little") >> 1)
    return torch.randint(1, 1 << 62, (_DIGEST_CHUNK,), generator=g, dtype=torch.int64).to(device)


def _drawn(out) -> list[torch.Tensor]:
    """The random part of a random op's result: for (output, mask) pairs such as native_dropout,
    the mask alone (the output also depends on the input, which a candidate may compute otherwise)."""
    if isinstance(out, torch.Tensor):
        return [out]
    tensors = [t for t in out if isinstance(t, torch.Tensor)] if isinstance(out, (tuple, list)) else []
    masks = [t for t in tensors if t.dtype == torch.bool]
    return masks or tensors


class RandomDraws(TorchDispatchMode):
    """Records every framework random draw in its scope: the op and a digest of what it drew."""

    def __init__(self, digests: bool = True) -> None:
        super().__init__()
        self.ops: list[str] = []
        self.draws: list[str] = []
        self._digests = digests

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if is_random_op(func):
            self.ops.append(op_name(func))
            if self._digests:
                self.draws.append(op_name(func) + "=" + ",".join(digest(t) for t in _drawn(out)))
        return out


class NoExtremes(Exception):
    """A random op whose draws have no two extremes (a normal distribution, a permutation)."""


# Random ops whose every draw lies between two values, and how to read those from the call.
_BOUNDED = {"bernoulli", "bernoulli_", "rand", "rand_like", "uniform_", "randint", "randint_like", "native_dropout"}


class ExtremeDraws(TorchDispatchMode):
    """Runs the model with every random draw replaced by its lowest (``high=False``) or highest
    possible value: for a dropout or a threshold mask, everything dropped or everything kept."""

    def __init__(self, high: bool) -> None:
        super().__init__()
        self.high = high

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not is_random_op(func):
            return func(*args, **kwargs)
        base = getattr(func, "__name__", "").split(".")[0]
        if base not in _BOUNDED:
            raise NoExtremes(op_name(func))
        if base == "native_dropout":
            x, p, train = args[0], args[1], args[2] if len(args) > 2 else kwargs.get("train")
            if train is False:
                return func(*args, **kwargs)
            if self.high:
                return x * (1.0 / (1.0 - p)) if p < 1 else torch.zeros_like(x), torch.ones_like(x, dtype=torch.bool)
            return torch.zeros_like(x), torch.zeros_like(x, dtype=torch.bool)
        out = func(*args, **kwargs)
        with torch.no_grad():
            out.fill_(self._value(base, out, args, kwargs))
        return out

    def _value(self, base: str, out: torch.Tensor, args, kwargs) -> float:
        if base.startswith("bernoulli"):
            return 1.0 if self.high else 0.0
        if base.startswith("randint"):
            # randint(high, size) or randint(low, high, size): ints before the size
            ints = [a for a in args if isinstance(a, int)]
            low, high = (0, ints[0]) if len(ints) == 1 else (ints[0], ints[1])
            low, high = kwargs.get("low", low), kwargs.get("high", high)
            return float(high - 1 if self.high else low)
        low, high = 0.0, 1.0
        if base == "uniform_":
            low = float(args[1]) if len(args) > 1 else float(kwargs.get("from", 0.0))
            high = float(args[2]) if len(args) > 2 else float(kwargs.get("to", 1.0))
        if not self.high:
            return low
        # The draw is below ``high``; the largest value below it in the output's type.
        return float(torch.nextafter(torch.tensor(high, dtype=out.dtype), torch.tensor(low, dtype=out.dtype)))


@dataclass(frozen=True)
class Support:
    """Per output, the two values each element can take (every draw at its low or high extreme);
    None where the model's outputs are not of that kind."""
    low: list[torch.Tensor]
    high: list[torch.Tensor]

    def violations(self, outputs: list, tolerance) -> list[tuple[int, int]]:
        """Per output, (index, how many elements are neither value) for those with any."""
        bad = []
        for i, (lo, hi, out) in enumerate(zip(self.low, self.high, outputs)):
            if out is None:
                continue
            out = out.to(lo.device)
            n = int((~(_near(out, lo, tolerance(lo.dtype)) | _near(out, hi, tolerance(lo.dtype)))).sum())
            if n:
                bad.append((i, n))
        return bad


def _near(a: torch.Tensor, b: torch.Tensor, tol) -> torch.Tensor:
    if not b.is_floating_point():
        return a == b
    a, b = a.double(), b.double()
    scale = max(1.0, float(b.abs().max())) if b.numel() else 1.0
    return ((a - b).abs() <= tol.atol * scale + tol.rtol * b.abs()) | ((a == b) | (a.isnan() & b.isnan()))


def sample_index(numel: int, device) -> torch.Tensor:
    """The fixed subset of element positions the statistical check reads (all of a small output)."""
    if numel <= SAMPLE_ELEMENTS:
        return torch.arange(numel, device=device)
    g = torch.Generator().manual_seed(numel)
    return torch.randint(numel, (SAMPLE_ELEMENTS,), generator=g).to(device)


# Bounds of the statistical check. The per-element statistic is
#   z = (mean_cand - mean_ref) / sqrt((var_cand + var_ref) / K)
# whose mean square is about 1.0-1.15 for K = 16 samples from the same distribution (sample
# variances in the denominator widen its tails); a wrong keep rate, scale or an input-dependent
# mask moves it well past the bound. The variance share (see _moments_detail) stays within
# 0.5 +- 0.01 for the same distribution (measured on dropout and dropout-then-softmax); a keep rate
# of 0.55 instead of 0.5 moves it to 0.45.
Z2_BOUND = 1.6
SHARE_BAND = 0.04
BINS = 4


def statistical_check(ref: list[torch.Tensor], cand: list[torch.Tensor], where: str) -> Check:
    """``ref``/``cand``: K samples each (same elements, shape [K, n], float64) of one output under
    different seeds. Passes when the candidate's per-element mean and variance match the
    reference's overall and in each bin of reference mean (independence from the input)."""
    r, c = torch.stack(ref).double(), torch.stack(cand).double()
    k = r.shape[0]
    mr, mc, vr, vc = r.mean(0), c.mean(0), r.var(0), c.var(0)
    detail = _moments_detail(mr, mc, vr, vc, k, "")
    if detail:
        return Check("random_statistical", False, f"{where}: {detail}")
    order = torch.argsort(mr)
    for b, idx in enumerate(torch.tensor_split(order, BINS)):
        if idx.numel() < 64:
            continue
        detail = _moments_detail(mr[idx], mc[idx], vr[idx], vc[idx], k, f" among elements in reference-mean quartile {b + 1}")
        if detail:
            return Check("random_statistical", False, f"{where}: output distribution depends on the input: {detail}")
    return Check("random_statistical", True)


def _moments_detail(mr, mc, vr, vc, k: int, where: str) -> str:
    spread = vr + vc
    random_here = spread > 0
    scale = max(1.0, float(mr.abs().max())) if mr.numel() else 1.0
    # Where neither side varied over the seeds the values must agree as deterministic ones do.
    fixed = ~random_here
    if bool(fixed.any()) and not bool(((mc[fixed] - mr[fixed]).abs() <= 1e-5 * scale + 1e-4 * mr[fixed].abs()).all()):
        return f"values that do not vary with the seed differ from the reference's{where}"
    if not bool(random_here.any()):
        return ""
    z2 = float(((mc - mr)[random_here] ** 2 / (spread[random_here] / k)).mean())
    if z2 > Z2_BOUND:
        return (f"per-element means differ from the reference's over {k} seeds (mean z^2 {z2:.3g} > {Z2_BOUND:g}; "
                f"wrong keep rate or scaling){where}")
    # Per element, var_cand / (var_ref + var_cand) is about 1/2 whatever the element's scale (a
    # ratio of sums would be ruled by a few large elements); its mean moves with the keep rate.
    n = int(random_here.sum())
    share = float((vc[random_here] / spread[random_here]).mean())
    band = SHARE_BAND + 0.25 / math.sqrt(n)
    if abs(share - 0.5) > band:
        return (f"variance over seeds differs from the reference's (share {share:.3g}, expected 0.5 +- {band:.2g}; "
                f"wrong keep rate, or draws that do not vary){where}")
    return ""
