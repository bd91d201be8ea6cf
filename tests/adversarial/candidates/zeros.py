# expect: reject allclose,rel_norm
# problem: softmax_rows
# policy: standard
# class: returning constants or zeros
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, dim):
        super().__init__()

    def forward(self, x):
        return torch.zeros_like(x)
