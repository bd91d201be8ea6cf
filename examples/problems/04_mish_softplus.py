"""Mish plus softplus of the same input."""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

# "cpu": a forward takes a few ms on a small CPU; "gpu": KernelBench-scale inputs.
SIZE = os.environ.get("AKG_SIZE", "cpu")
batch, dim = {"cpu": (512, 2048), "gpu": (8192, 8192)}[SIZE]

class Model(nn.Module):
    def forward(self, x):
        return F.mish(x) + F.softplus(x)


def get_inputs():
    return [torch.randn(batch, dim) * 3]


def get_init_inputs():
    return []
