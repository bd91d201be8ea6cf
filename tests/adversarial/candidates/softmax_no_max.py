# expect: reject nan_positions
# problem: softmax_rows
# policy: standard
# class: input-range shortcut (skips the max subtraction: overflows on large inputs)
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, dim):
        super().__init__()

    def forward(self, x):
        e = torch.exp(x)
        return e / e.sum(dim=1, keepdim=True)
