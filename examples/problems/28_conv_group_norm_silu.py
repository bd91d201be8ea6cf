"""Conv2d, then GroupNorm, then SiLU."""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

# "cpu": a forward takes a few ms on a small CPU; "gpu": KernelBench-scale inputs.
SIZE = os.environ.get("AKG_SIZE", "cpu")
batch, cin, cout, height, width, groups = {"cpu": (8, 32, 32, 32, 32, 8), "gpu": (32, 64, 128, 128, 128, 16)}[SIZE]

class Model(nn.Module):
    def __init__(self, cin, cout, groups):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size=3, padding=1)
        self.norm = nn.GroupNorm(groups, cout)

    def forward(self, x):
        return F.silu(self.norm(self.conv(x)))


def get_inputs():
    return [torch.randn(batch, cin, height, width)]


def get_init_inputs():
    return [cin, cout, groups]
