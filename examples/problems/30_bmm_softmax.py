"""Batched matmul followed by a softmax over the last dim (attention scores)."""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

# "cpu": a forward takes a few ms on a small CPU; "gpu": KernelBench-scale inputs.
SIZE = os.environ.get("AKG_SIZE", "cpu")
batch, m, k, n = {"cpu": (16, 256, 64, 256), "gpu": (64, 1024, 128, 1024)}[SIZE]

class Model(nn.Module):
    def forward(self, q, k):
        return torch.softmax(torch.bmm(q, k) * 0.125, dim=-1)


def get_inputs():
    return [torch.randn(batch, m, k), torch.randn(batch, k, n)]


def get_init_inputs():
    return []
