"""Mean over the middle dim of a 3-d tensor, without keepdim."""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

# "cpu": a forward takes a few ms on a small CPU; "gpu": KernelBench-scale inputs.
SIZE = os.environ.get("AKG_SIZE", "cpu")
batch, dim, inner = {"cpu": (16, 256, 256), "gpu": (128, 1024, 512)}[SIZE]

class Model(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return torch.mean(x, dim=self.dim)


def get_inputs():
    return [torch.randn(batch, dim, inner)]


def get_init_inputs():
    return [1]
