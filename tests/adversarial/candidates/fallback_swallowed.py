# expect: reject strict_policy
# problem: softmax_rows
# policy: strict
# class: exceptions swallowed into a fallback (the "kernel" always fails; torch does the work)
import torch
import torch.nn as nn


def _kernel(x):
    raise RuntimeError("kernel not built")


class ModelNew(nn.Module):
    def __init__(self, dim):
        super().__init__()

    def forward(self, x):
        try:
            return _kernel(x)
        except Exception:
            return torch.softmax(x, dim=1)
