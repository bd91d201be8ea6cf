"""SwiGLU-style gate: silu(x) * y, with a broadcast bias added to y."""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

# "cpu": a forward takes a few ms on a small CPU; "gpu": KernelBench-scale inputs.
SIZE = os.environ.get("AKG_SIZE", "cpu")
batch, dim = {"cpu": (512, 2048), "gpu": (8192, 8192)}[SIZE]

class Model(nn.Module):
    def forward(self, x, y, bias):
        return F.silu(x) * (y + bias)


def get_inputs():
    return [torch.randn(batch, dim), torch.randn(batch, dim), torch.randn(dim)]


def get_init_inputs():
    return []
