"""Sum over the last dimension in Triton: one program per row."""
import os

import torch
import torch.nn as nn

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # no GPU: Triton's interpreter runs the kernels on the CPU
import triton
import triton.language as tl

# "cpu": small enough for Triton's interpreter; "gpu" (AKG_SIZE=gpu): sizes worth timing on a GPU.
SIZE = os.environ.get("AKG_SIZE", "cpu")
ROWS, COLS = {"cpu": (32, 1000), "gpu": (4096, 8000)}[SIZE]


class Model(nn.Module):
    def forward(self, x):
        return x.sum(dim=-1)


@triton.jit
def _row_sum_kernel(x_ptr, y_ptr, n_cols, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    x = tl.load(x_ptr + row * n_cols + cols, mask=cols < n_cols, other=0.0)
    tl.store(y_ptr + row, tl.sum(x, axis=0))


class ModelNew(nn.Module):
    def forward(self, x):
        x = x.contiguous()
        n_cols = x.shape[-1]
        y = torch.empty(x.shape[:-1], dtype=x.dtype, device=x.device)
        _row_sum_kernel[(x.numel() // n_cols,)](x, y, n_cols, BLOCK=triton.next_power_of_2(n_cols))
        return y


def get_inputs():
    return [torch.randn(ROWS, COLS)]


def get_init_inputs():
    return []
