"""The second look at a floating output that missed the fixed tolerance: is it as exact as the
reference itself?

The fixed tolerance (rtol/atol/relative norm per dtype) compares a candidate with the reference's
own float32 result. Where the reference is itself inexact — PyTorch runs fp32 convolutions on
TF32 tensor cores by default, about 1e-3 off — any other correct algorithm (a channels-last
convolution, a different cuDNN kernel) differs from it by more than the fixed tolerance. Such an
output is judged again against the float64 result: its error may be at most ``FACTOR`` times the
reference's own error, both as the largest elementwise error and as the relative error norm.
A candidate that computes something else is far outside either bound.
"""
from __future__ import annotations

import torch

from akg.ir import Check

# How much less exact than the reference a candidate may be, against float64.
FACTOR = 2.0


def judged_against_truth(expected: torch.Tensor, actual: torch.Tensor, truth: torch.Tensor,
                         where: str) -> tuple[list[Check], float] | None:
    """The allclose and rel_norm checks of one output redone against float64, and the candidate's
    relative error norm; None when the reference is no less exact than the fixed tolerance
    already assumes (the first verdict stands) or the float64 result does not fit the output."""
    if truth.shape != expected.shape or not truth.is_floating_point():
        return None
    t = truth.to(device=expected.device, dtype=torch.float64)
    finite = torch.isfinite(t) & torch.isfinite(expected.double())
    t, e, a = t[finite], expected.double()[finite], actual.to(expected.device).double()[finite]
    if t.numel() == 0:
        return None
    ref_err, cand_err = (e - t).abs_(), (a - t).abs_()
    ref_max, cand_max = float(ref_err.max()), float(cand_err.max())
    norm = float(t.norm()) or 1.0
    ref_rel, cand_rel = float(ref_err.norm()) / norm, float(cand_err.norm()) / norm
    if ref_max == 0.0:
        return None
    max_ok = cand_max <= FACTOR * ref_max
    rel_ok = cand_rel <= FACTOR * ref_rel
    return [
        Check("allclose", max_ok, "" if max_ok else
              f"{where}: max error vs float64 {cand_max:.3g} > {FACTOR:g}x the reference's own {ref_max:.3g}"),
        Check("rel_norm", rel_ok, "" if rel_ok else
              f"{where}: relative error norm vs float64 {cand_rel:.3g} > {FACTOR:g}x the reference's own {ref_rel:.3g}"),
    ], cand_rel
