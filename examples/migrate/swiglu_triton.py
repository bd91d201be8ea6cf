"""The elementwise half of a SwiGLU layer written in Triton, as a kernel file to migrate:
silu(gate) * up, where gate and up are the two halves of the input's last dimension.

    akg migrate examples/migrate/swiglu_triton.py --to cpp --device cpu --out out/migrate

The oracle is this file's Model (PyTorch); akg regenerates the computation in C++, verifies it
against the oracle and times it against eager, torch.compile and (on a GPU) this Triton kernel.
"""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # no GPU: Triton's interpreter runs the kernel on the CPU
import triton
import triton.language as tl

# "cpu": small enough for Triton's interpreter; "gpu" (AKG_SIZE=gpu): sizes worth timing on a GPU.
SIZE = os.environ.get("AKG_SIZE", "cpu")
ROWS, HIDDEN = {"cpu": (64, 1024), "gpu": (8192, 8192)}[SIZE]


class Model(nn.Module):
    def forward(self, x):
        gate, up = x.chunk(2, dim=-1)
        return F.silu(gate) * up


@triton.jit
def _swiglu_kernel(x_ptr, y_ptr, n_half, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < n_half
    gate = tl.load(x_ptr + row * 2 * n_half + cols, mask=mask, other=0.0)
    up = tl.load(x_ptr + row * 2 * n_half + n_half + cols, mask=mask, other=0.0)
    tl.store(y_ptr + row * n_half + cols, gate / (1.0 + tl.exp(-gate)) * up, mask=mask)


class ModelNew(nn.Module):
    def forward(self, x):
        x = x.contiguous()
        rows, n_half = x.numel() // x.shape[-1], x.shape[-1] // 2
        y = torch.empty(*x.shape[:-1], n_half, dtype=x.dtype, device=x.device)
        _swiglu_kernel[(rows, triton.cdiv(n_half, 1024))](x, y, n_half, BLOCK=1024)
        return y


def get_inputs():
    return [torch.randn(ROWS, 2 * HIDDEN)]


def get_init_inputs():
    return []
