"""Inclusive prefix sum along the last dimension in Triton: one program per row, tl.cumsum."""
import os

import torch
import torch.nn as nn

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # no GPU: Triton's interpreter runs the kernels on the CPU
import triton
import triton.language as tl

# "cpu": small enough for Triton's interpreter; "gpu" (AKG_SIZE=gpu): sizes worth timing on a GPU.
SIZE = os.environ.get("AKG_SIZE", "cpu")
ROWS, COLS = {"cpu": (16, 256), "gpu": (4096, 4096)}[SIZE]


class Model(nn.Module):
    def forward(self, x):
        return torch.cumsum(x, dim=-1)


@triton.jit
def _cumsum_kernel(x_ptr, y_ptr, n_cols, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * n_cols + cols, mask=mask, other=0.0)
    tl.store(y_ptr + row * n_cols + cols, tl.cumsum(x, axis=0), mask=mask)


class ModelNew(nn.Module):
    def forward(self, x):
        x = x.contiguous()
        y = torch.empty_like(x)
        n_cols = x.shape[-1]
        _cumsum_kernel[(x.numel() // n_cols,)](x, y, n_cols, BLOCK=triton.next_power_of_2(n_cols))
        return y


def get_inputs():
    return [torch.randn(ROWS, COLS)]


def get_init_inputs():
    return []
