# expect: reject allclose,rel_norm
# problem: softmax_rows
# policy: standard
# class: returning constants (the mean of a softmax row is exactly 1/cols)
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, dim):
        super().__init__()

    def forward(self, x):
        return torch.full_like(x, 1.0 / x.shape[1])
