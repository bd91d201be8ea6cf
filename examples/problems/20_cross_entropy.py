"""Cross entropy of logits against int64 class targets, mean over the batch."""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

# "cpu": a forward takes a few ms on a small CPU; "gpu": KernelBench-scale inputs.
SIZE = os.environ.get("AKG_SIZE", "cpu")
batch, classes = {"cpu": (1024, 1000), "gpu": (32768, 4096)}[SIZE]

class Model(nn.Module):
    def forward(self, logits, targets):
        return F.cross_entropy(logits, targets)


def get_inputs():
    return [torch.randn(batch, classes), torch.randint(0, classes, (batch,))]


def get_init_inputs():
    return []
