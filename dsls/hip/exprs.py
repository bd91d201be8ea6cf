"""The HIP dialect of the C-like expression renderer: HIP's device math has CUDA's names, so the
data is CUDA-C's (the prelude differs: wavefront width, shuffles, native _Float16)."""
from __future__ import annotations

from akg.dsls.cuda_c.exprs import CudaRenderer


class HipRenderer(CudaRenderer):
    pass
