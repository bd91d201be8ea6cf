"""sigmoid(cummax(x, dim=0).values) in Triton: each program walks down the rows of a block of columns."""
import os

import torch
import torch.nn as nn

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")   # the CPU runs Triton's interpreter
import triton
import triton.language as tl


@triton.jit
def cummax_sigmoid_kernel(x_ptr, y_ptr, rows, cols, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < cols
    m = tl.load(x_ptr + offs, mask=mask, other=0.0)
    for r in range(0, rows):
        v = tl.load(x_ptr + r * cols + offs, mask=mask, other=0.0)
        # torch.cummax: a NaN becomes the running maximum and stays it.
        keep = (m != m) | ((v == v) & (v < m))
        m = tl.where(keep, m, v)
        tl.store(y_ptr + r * cols + offs, 1.0 / (1.0 + tl.exp(-m)), mask=mask)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        x = x.contiguous()
        y = torch.empty_like(x)
        rows, cols = x.shape
        block = 64
        cummax_sigmoid_kernel[(triton.cdiv(cols, block),)](x, y, rows, cols, BLOCK=block)
        return y
