"""Inclusive cumulative product along the last dim, values kept near 1."""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

# "cpu": a forward takes a few ms on a small CPU; "gpu": KernelBench-scale inputs.
SIZE = os.environ.get("AKG_SIZE", "cpu")
batch, dim = {"cpu": (512, 1024), "gpu": (8192, 4096)}[SIZE]

class Model(nn.Module):
    def forward(self, x):
        return torch.cumprod(x, dim=-1)


def get_inputs():
    return [1 + 0.01 * torch.randn(batch, dim)]


def get_init_inputs():
    return []
