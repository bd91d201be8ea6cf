"""Exact (erf) GELU in Triton: a flat pointwise kernel over blocks of elements."""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # no GPU: Triton's interpreter runs the kernels on the CPU
import triton
import triton.language as tl

# "cpu": small enough for Triton's interpreter; "gpu" (AKG_SIZE=gpu): sizes worth timing on a GPU.
SIZE = os.environ.get("AKG_SIZE", "cpu")
ROWS, COLS = {"cpu": (64, 1024), "gpu": (4096, 4096)}[SIZE]


class Model(nn.Module):
    def forward(self, x):
        return F.gelu(x)


@triton.jit
def _gelu_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    tl.store(y_ptr + offs, 0.5 * x * (1.0 + tl.erf(x * 0.7071067811865476)), mask=mask)


class ModelNew(nn.Module):
    def forward(self, x):
        x = x.contiguous()
        y = torch.empty_like(x)
        n = x.numel()
        _gelu_kernel[(triton.cdiv(n, 4096),)](x, y, n, BLOCK=4096)
        return y


def get_inputs():
    return [torch.randn(ROWS, COLS)]


def get_init_inputs():
    return []
