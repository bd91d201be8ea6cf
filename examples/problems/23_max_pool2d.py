"""2-d max pooling, kernel 3, stride 2, padding 1."""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

# "cpu": a forward takes a few ms on a small CPU; "gpu": KernelBench-scale inputs.
SIZE = os.environ.get("AKG_SIZE", "cpu")
batch, channels, height, width = {"cpu": (8, 32, 64, 64), "gpu": (32, 64, 256, 256)}[SIZE]

class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

    def forward(self, x):
        return self.pool(x)


def get_inputs():
    return [torch.randn(batch, channels, height, width)]


def get_init_inputs():
    return []
