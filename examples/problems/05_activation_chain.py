"""leaky_relu, then hardtanh, then elu, then gelu (tanh approximation)."""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

# "cpu": a forward takes a few ms on a small CPU; "gpu": KernelBench-scale inputs.
SIZE = os.environ.get("AKG_SIZE", "cpu")
batch, dim = {"cpu": (512, 2048), "gpu": (8192, 8192)}[SIZE]

class Model(nn.Module):
    def __init__(self, negative_slope):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x):
        x = F.leaky_relu(x, self.negative_slope)
        x = F.hardtanh(x, -2.0, 2.0)
        x = F.elu(x, alpha=0.5)
        return F.gelu(x, approximate="tanh")


def get_inputs():
    return [torch.randn(batch, dim) * 2]


def get_init_inputs():
    return [0.05]
